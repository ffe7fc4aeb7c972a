//! Carriers of STOMP frames: plain TCP and WebSocket. Each adapts its socket to a
//! [`FrameSource`] (bytes in, decoded frames out) and a [`FrameSink`] (encoded frames out), so
//! one session implementation serves them all.

pub mod admin;
pub mod tcp;
pub mod ws;

mod rate;
pub mod socket;

use std::future::Future;
use std::io;

use bytes::Bytes;
use stompede_protocol::{DecodeError, Decoded, Decoder};
use tokio::time::Instant;

pub(crate) use rate::{ConnectionRate, RateLimits};

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
}

/// The writing side of a connection.
pub trait FrameSink: Send + 'static {
    /// True for byte streams, where frames can be concatenated into one write; false for
    /// message transports, where each frame is one message.
    fn is_stream(&self) -> bool;

    /// Queues bytes (one frame, or for streams any number of frames) for writing.
    fn write(&mut self, bytes: Bytes, text: bool) -> impl Future<Output = io::Result<()>> + Send;

    /// Writes everything queued to the socket.
    fn flush(&mut self) -> impl Future<Output = io::Result<()>> + Send;

    /// Closes the connection (a WebSocket close frame, a TCP FIN).
    fn close(&mut self) -> impl Future<Output = ()> + Send;
}
