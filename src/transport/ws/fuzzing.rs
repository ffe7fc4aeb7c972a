//! The WebSocket reader as the fuzz targets drive it (feature `fuzzing`): the very
//! [`WsSource`] the server reads every `/ws` connection with, over an in-memory reader that
//! hands out the bytes in the pieces it is given, and a session over an in-memory pipe.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use stompede_protocol::{Decoded, Decoder};
use tokio::io::{AsyncRead, DuplexStream, ReadBuf};

use super::{upgrade, ReadOptions, Shared, WsSource};
use crate::transport::socket::ReadSide;
use crate::transport::FrameSource;

/// Hands out its bytes in the given pieces (at most one piece a read), then the end of input.
/// Never waits.
#[derive(Debug)]
struct Pieces {
    pieces: VecDeque<Vec<u8>>,
    /// Bytes not read yet.
    left: usize,
    /// Reads that returned bytes.
    reads: usize,
}

impl AsyncRead for Pieces {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        while self.pieces.front().is_some_and(Vec::is_empty) {
            self.pieces.pop_front();
        }
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let this = &mut *self;
        if let Some(front) = this.pieces.front_mut() {
            let n = front.len().min(buf.remaining());
            buf.put_slice(&front[..n]);
            front.drain(..n);
            this.left -= n;
            this.reads += 1;
        }
        Poll::Ready(Ok(()))
    }
}

impl ReadSide for Pieces {}

/// What one call of the reader gave.
#[derive(Debug)]
pub enum Step<T> {
    /// An item.
    Item(T),
    /// The peer closed (its close frame, or the end of input).
    End,
    /// The connection failed: the error's text.
    Failed(String),
    /// The reader waited, on a reader that never waits: a bug.
    Waited,
}

/// A server-side WebSocket reader over bytes given in pieces.
pub struct WsReader {
    source: WsSource<Pieces>,
}

impl std::fmt::Debug for WsReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsReader").finish_non_exhaustive()
    }
}

impl WsReader {
    /// A reader of `pieces`, taking messages up to `max_message` bytes; `lenient` as the
    /// server's `lenient-websocket-frames` (a STOMP frame may end with its message).
    pub fn new(pieces: Vec<Vec<u8>>, max_message: usize, lenient: bool) -> WsReader {
        let left = pieces.iter().map(Vec::len).sum();
        let read = Pieces {
            pieces: pieces.into(),
            left,
            reads: 0,
        };
        let options = ReadOptions {
            lenient,
            max_message,
            paced_receive_buffer: 0,
        };
        WsReader {
            source: WsSource::new(read, Bytes::new(), Arc::new(Shared::default()), options),
        }
    }

    /// The next whole data message, `(text, payload)`, as the echo server reads them.
    pub fn next_message(&mut self) -> Step<(bool, BytesMut)> {
        match self.source.next_message().now_or_never() {
            None => Step::Waited,
            Some(Ok(Some(message))) => Step::Item(message),
            Some(Ok(None)) => Step::End,
            Some(Err(error)) => Step::Failed(error.to_string()),
        }
    }

    /// The next STOMP frame or heart-beat, with whether it came in a text message, as a
    /// session reads them.
    pub fn next_frame(&mut self, decoder: &mut Decoder) -> Step<(Decoded, Option<bool>)> {
        match self.source.next(decoder).now_or_never() {
            None => Step::Waited,
            Some(Ok(Some(inbound))) => Step::Item((inbound.item, inbound.text)),
            Some(Ok(None)) => Step::End,
            Some(Err(error)) => Step::Failed(error.to_string()),
        }
    }

    /// Bytes of input not read from the pieces yet.
    pub fn unread(&self) -> usize {
        self.source.read.left
    }

    /// Reads that returned bytes so far.
    pub fn reads(&self) -> usize {
        self.source.read.reads
    }

    /// Bytes the reader holds: raw input not yet taken apart, and payload not yet decoded.
    pub fn buffered(&self) -> usize {
        self.source.raw.len() + self.source.stomp.len()
    }

    /// The close code the server is to send (the client's own echoed, or why it failed).
    pub fn close_code(&self) -> Option<u16> {
        self.source.shared.lock().close
    }

    /// The control frames owed to the peer (pongs), encoded; taken.
    pub fn take_control(&self) -> BytesMut {
        let mut out = BytesMut::new();
        self.source.shared.take_control(&mut out);
        out
    }
}

/// Runs one STOMP session on the server side of an in-memory pipe, as `/ws` runs an upgraded
/// connection (same reader, writer and options, from `server`'s configuration); the other end
/// speaks WebSocket as a client.
pub async fn ws_session(server: &crate::Server, pipe: DuplexStream) {
    let ctx = server.context().clone();
    let options = ReadOptions {
        lenient: ctx.config.lenient_websocket_frames,
        max_message: ctx.config.frame_limits().max_frame_bytes(),
        paced_receive_buffer: 0,
    };
    let (read, write) = tokio::io::split(pipe);
    let (source, sink) = upgrade::source_and_sink(read, write, Bytes::new(), options);
    crate::session::run(ctx, source, sink, None, "fuzz".into()).await;
}
