//! The WebSocket reader as the fuzz targets drive it (feature `fuzzing`): the very
//! [`WsSource`] the server reads every `/ws` connection with, over an in-memory reader that
//! hands out the bytes in the pieces it is given, and a session over an in-memory pipe.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use stompede_protocol::{Decoded, Decoder};
use tokio::io::DuplexStream;

use super::pieces::{AtEnd, Pieces};
use super::{upgrade, ReadOptions, Shared, WsSource};
use crate::transport::FrameSource;

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
        let read = Pieces::new(pieces, AtEnd::Close);
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
