//! Carriers of STOMP frames: plain TCP, WebSocket and SockJS. Each adapts its socket to a
//! [`FrameSource`] (bytes in, decoded frames out) and a [`FrameSink`] (encoded frames out), so
//! one session implementation serves them all.

pub mod admin;
pub mod http;
pub(crate) mod origin;
pub mod sockjs;
pub mod tcp;
pub mod ws;

pub mod socket;
pub mod stream;
pub mod tls;

pub use crate::session::carrier::{
    FrameSink, FrameSource, FrameStart, Inbound, InboundError, PartialClock,
};

use std::io;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Reads `read` to its end, keeping nothing (see [`FrameSource::discard_input`]).
pub(crate) async fn discard<R: AsyncRead + Unpin + Send + ?Sized>(read: &mut R) {
    let mut scrap = vec![0; 8 * 1024];
    while let Ok(1..) = read.read(&mut scrap).await {}
}

/// What an accept loop does when `accept` fails: a connection that died before it was taken
/// (aborted, reset) is skipped; anything else, typically EMFILE, is logged and waited out
/// briefly rather than retried in a spin that would also flood the log.
pub(crate) async fn accept_failed(error: &io::Error) {
    match error.kind() {
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset => {
            tracing::debug!(%error, "accept failed");
        }
        _ => {
            tracing::warn!(%error, "accept failed");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
}

/// Most buffers one `writev` takes (Linux's `UIO_MAXIOV`).
const MAX_IOVECS: usize = 1024;

/// Writes every byte of `parts`: one `writev` when the socket takes it all, more when not.
pub(crate) async fn write_all_vectored<W: AsyncWrite + Unpin + Send + ?Sized>(
    write: &mut W,
    mut parts: &mut [io::IoSlice<'_>],
) -> io::Result<()> {
    // Drop leading empty parts, so that a write of nothing is not taken for a closed peer.
    io::IoSlice::advance_slices(&mut parts, 0);
    while !parts.is_empty() {
        let n = write
            .write_vectored(&parts[..parts.len().min(MAX_IOVECS)])
            .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        io::IoSlice::advance_slices(&mut parts, n);
    }
    Ok(())
}

/// Sizes reads: a quiet connection reads into a small buffer, one whose reads fill the buffer
/// gets a larger one (up to [`ReadSize::MAX`]), so a busy publisher makes few system calls
/// while an idle subscriber holds next to nothing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadSize(usize);

impl Default for ReadSize {
    fn default() -> Self {
        ReadSize(ReadSize::MIN)
    }
}

impl ReadSize {
    /// The smallest read: a CONNECT or SUBSCRIBE fits.
    pub(crate) const MIN: usize = 512;
    /// The largest read.
    pub(crate) const MAX: usize = 64 * 1024;

    /// Makes room in `buf` for the next read; returns the room.
    pub(crate) fn prepare(&self, buf: &mut BytesMut) -> usize {
        let want = self.0;
        if buf.is_empty() && (buf.capacity() < want / 2 || buf.capacity() > want * 4) {
            // Nothing buffered: a fresh buffer of the current size (this also lets go of a
            // large one once the connection has become quiet).
            *buf = BytesMut::with_capacity(want);
        } else if buf.capacity() - buf.len() < want / 2 {
            buf.reserve(want);
        }
        buf.capacity() - buf.len()
    }

    /// True while reads are at the smallest size: the connection sends little.
    pub(crate) fn is_quiet(&self) -> bool {
        self.0 == Self::MIN
    }

    /// Adapts to a read of `n` bytes into `room`.
    pub(crate) fn record(&mut self, n: usize, room: usize) {
        if n >= room {
            self.0 = (self.0 * 2).min(Self::MAX);
        } else if n < self.0 / 4 {
            self.0 = (self.0 / 2).max(Self::MIN);
        }
    }
}

#[cfg(test)]
mod read_size_tests {
    use super::*;

    #[test]
    fn grows_while_reads_fill_the_buffer_and_shrinks_when_quiet() {
        let mut size = ReadSize::default();
        let mut buf = BytesMut::new();
        let mut room = size.prepare(&mut buf);
        assert!(room >= ReadSize::MIN);
        for _ in 0..20 {
            size.record(room, room);
            buf.clear();
            room = size.prepare(&mut buf);
        }
        assert_eq!(size.0, ReadSize::MAX);
        assert!(buf.capacity() >= ReadSize::MAX / 2);
        for _ in 0..20 {
            size.record(1, room);
            buf.clear();
            room = size.prepare(&mut buf);
        }
        assert_eq!(size.0, ReadSize::MIN);
        assert!(
            buf.capacity() < ReadSize::MIN * 4,
            "the large buffer is let go"
        );
    }

    #[test]
    fn a_partial_frame_is_kept_when_room_is_made() {
        let size = ReadSize::default();
        let mut buf = BytesMut::from(&b"SEND\n"[..]);
        size.prepare(&mut buf);
        assert_eq!(&buf[..], b"SEND\n");
        assert!(buf.capacity() - buf.len() >= ReadSize::MIN / 2);
    }
}

#[cfg(test)]
mod vectored_tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn every_part_arrives_in_order_through_partial_writes() {
        // A 64-byte pipe takes a few bytes of one part per write, so every write is partial.
        let (mut write, mut read) = tokio::io::duplex(64);
        let parts: Vec<Vec<u8>> = (0..2_000u32)
            .map(|i| vec![(i % 251) as u8; (i as usize * 7) % 300 + 1])
            .collect();
        let expected: Vec<u8> = parts.concat();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            read.read_to_end(&mut got).await.unwrap();
            got
        });
        let mut slices: Vec<io::IoSlice<'_>> = parts.iter().map(|p| io::IoSlice::new(p)).collect();
        write_all_vectored(&mut write, &mut slices).await.unwrap();
        drop(write);
        assert_eq!(reader.await.unwrap(), expected);
    }

    #[tokio::test]
    async fn a_peer_that_takes_nothing_is_an_error_not_a_loop() {
        struct Refuses;
        impl AsyncWrite for Refuses {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
                _: &[u8],
            ) -> std::task::Poll<io::Result<usize>> {
                std::task::Poll::Ready(Ok(0))
            }
            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }
            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }
        }
        let mut slices = [io::IoSlice::new(b"abc")];
        let error = write_all_vectored(&mut Refuses, &mut slices)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::WriteZero);
    }
}
