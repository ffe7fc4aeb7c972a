//! What a session needs from the connection that carries it: decoded frames in
//! ([`FrameSource`]) and encoded frames out ([`FrameSink`]). Each transport (TCP, WebSocket)
//! implements both; the session knows nothing else of it.

use std::future::Future;
use std::io;

use bytes::{Bytes, BytesMut};
use stompede_protocol::{DecodeError, Decoded, Decoder, Version};
use tokio::time::Instant;

use crate::broker::message::Message;

/// One decoded item with what the carrier knows of its kind.
#[derive(Debug)]
pub struct Inbound {
    /// The frame or heart-beat.
    pub item: Decoded,
    /// `Some(true)` when it arrived in a text WebSocket message, `Some(false)` in a binary one,
    /// `None` on a byte stream (TCP).
    pub text: Option<bool>,
}

/// Reading failed.
#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    /// The socket failed.
    #[error("read failed: {0}")]
    Io(#[from] io::Error),
    /// The peer sent something that is not STOMP.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// The reading side of a connection.
pub trait FrameSource: Send {
    /// The next heart-beat or frame; `None` when the peer closed. Cancel-safe: partial input
    /// stays buffered in `self` and `decoder`.
    fn next(
        &mut self,
        decoder: &mut Decoder,
    ) -> impl Future<Output = Result<Option<Inbound>, InboundError>> + Send;

    /// When bytes last arrived (heart-beat accounting counts any byte).
    fn last_activity(&self) -> Instant;

    /// The frame that has begun to arrive and is not complete yet, if any: since when, and how
    /// many of its bytes (transport framing included) are buffered. The session cuts off a
    /// frame that takes too long (`frame-timeout-ms`, `frame-min-rate`).
    fn partial(&self) -> Option<(Instant, usize)>;

    /// Flow control has held this connection's reads (its client SENDs to topics or queues
    /// faster than their consumers take): from now on the kernel should hold little of its
    /// input, so that what waits for the broker waits in the client, where the pace reaches it
    /// (`config::PACED_RECEIVE_BUFFER`). Called after every paced frame, once its wait is
    /// over (what the kernel took during that first wait drains at the old size); true when
    /// this call bounded the buffer. Does nothing by default.
    fn paced(&mut self) -> bool {
        false
    }

    /// True when the transport can ask the peer for a sign of life ([`ping`](Self::ping)).
    const PINGS: bool = false;

    /// Asks the peer for a sign of life (a WebSocket ping, which the peer must answer, section
    /// 5.5.2 of RFC 6455): any byte it sends then counts as [`last_activity`](Self::last_activity).
    /// Once per silence: a second call before the next byte arrives does nothing. Does nothing
    /// by default.
    fn ping(&mut self) {}

    /// Reads and drops whatever the peer still sends, until it closes its side (or, on
    /// WebSocket, sends its close frame) or the read fails. Called once the server has written
    /// its last frame and half-closed: closing a socket with unread input makes the kernel
    /// reset the connection, and a reset can destroy that last frame (an ERROR) before the
    /// peer has read it. The caller bounds the wait.
    fn discard_input(&mut self) -> impl Future<Output = ()> + Send;
}

/// When the unfinished input in a source's buffers began to arrive: a source calls
/// [`arrived`](Self::arrived) after each read and [`decoded`](Self::decoded) after each item.
/// Input that went without making an item (a WebSocket pong, say) leaves the buffers empty, so
/// the next read starts a new clock.
/// Both take the time the source already read for [`FrameSource::last_activity`], so the cut-off
/// costs no clock read per frame.
#[derive(Debug, Default, Clone, Copy)]
pub struct PartialClock {
    since: Option<Instant>,
}

impl PartialClock {
    /// Bytes arrived at `at` into buffers that held `buffered` bytes before: unfinished input
    /// starts then, unless some was already waiting.
    pub fn arrived(&mut self, buffered: usize, at: Instant) {
        if buffered == 0 || self.since.is_none() {
            self.since = Some(at);
        }
    }

    /// An item was decoded; bytes still buffered (`remaining`) came with the last read, at
    /// `at`, and start the next frame's clock.
    pub fn decoded(&mut self, remaining: bool, at: Instant) {
        self.since = remaining.then_some(at);
    }

    /// Since when the buffered input has been waiting to make a frame, when `buffered` bytes
    /// of it are there.
    pub fn partial(&self, buffered: usize) -> Option<(Instant, usize)> {
        match (self.since, buffered) {
            (Some(since), 1..) => Some((since, buffered)),
            _ => None,
        }
    }
}

/// Where a frame starts in the write buffer, from [`FrameSink::begin_frame`].
#[derive(Debug, Clone, Copy)]
pub struct FrameStart {
    /// Offset of the frame (its transport header first) in the buffer.
    pub at: usize,
    /// Bytes set aside there for the transport's header.
    pub head: usize,
}

/// The writing side of a connection. The writer encodes frames into one buffer, each between
/// [`begin_frame`](FrameSink::begin_frame) and [`end_frame`](FrameSink::end_frame) (which add
/// the transport's own framing, if any), and writes the buffer with one call; large message
/// tails, shared by every subscriber, are not copied into it but written from where they are
/// ([`write_all_vectored`](FrameSink::write_all_vectored)).
pub trait FrameSink: Send + 'static {
    /// The transport's name, for operators (`tcp`, `websocket`, `sockjs`).
    fn transport(&self) -> &'static str;

    /// Starts a frame at the end of `buf`; `size_hint` is the expected size of the frame.
    fn begin_frame(&self, buf: &mut BytesMut, size_hint: usize) -> FrameStart;

    /// Ends the frame started at `start`: everything after it, then `spliced` bytes that will
    /// be written right after `buf`'s current end from a buffer of their own, make one frame,
    /// sent as text when `text` (message transports).
    fn end_frame(&self, buf: &mut BytesMut, start: FrameStart, text: bool, spliced: usize);

    /// For a transport that carries each frame re-encoded (SockJS quotes it as a JSON string):
    /// the shared tail of `message` re-encoded, computed once per message and shared by its
    /// recipients ([`Message::encoded_tail`]). The writer then always splices it after the
    /// per-subscription head, and the sink re-encodes the frame's bytes from its buffer itself
    /// (the `spliced` bytes of [`end_frame`](FrameSink::end_frame) come re-encoded). `None`
    /// (the default): frames go as encoded.
    fn encoded_tail<'m>(&self, _message: &'m Message, _version: Version) -> Option<&'m Bytes> {
        None
    }

    /// Writes all of `parts`, in order, with as few system calls as the socket allows.
    fn write_all_vectored(
        &mut self,
        parts: &mut [io::IoSlice<'_>],
    ) -> impl Future<Output = io::Result<()>> + Send;

    /// Writes all of `bytes` to the socket.
    fn write_all(&mut self, bytes: &[u8]) -> impl Future<Output = io::Result<()>> + Send {
        async move {
            self.write_all_vectored(&mut [io::IoSlice::new(bytes)])
                .await
        }
    }

    /// Resolves when the transport has frames of its own to send (a WebSocket pong); the
    /// writer then calls [`take_control`](FrameSink::take_control).
    fn control(&self) -> impl Future<Output = ()> + Send;

    /// Appends the transport's pending frames of its own to `buf`.
    fn take_control(&mut self, buf: &mut BytesMut);

    /// Closes the connection (a WebSocket close frame, a TCP FIN).
    fn close(&mut self) -> impl Future<Output = ()> + Send;
}

/// Writes one whole frame to `sink` (ERROR frames outside the writer's batches).
pub async fn write_frame<W: FrameSink>(sink: &mut W, bytes: &[u8], text: bool) -> io::Result<()> {
    let mut buf = BytesMut::with_capacity(bytes.len() + 16);
    let start = sink.begin_frame(&mut buf, bytes.len());
    buf.extend_from_slice(bytes);
    sink.end_frame(&mut buf, start, text, 0);
    sink.write_all(&buf).await
}
