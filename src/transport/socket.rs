//! Socket options: those every accepted connection gets, the receive buffer a paced connection
//! keeps, and waiting for input without a buffer.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;

/// Unsent bytes the kernel may hold per socket before reporting it writable again.
///
/// Without this bound the kernel's send buffer (autotuned up to 4 MiB) holds a slow
/// subscriber's backlog where the outbox's high-water mark cannot see it: about a second of
/// fan-out at full rate before any publisher is paced. With it the backlog stays in the outbox,
/// where flow control measures it. 32 KiB is about 100 small frames: enough to keep the socket
/// busy between two wake-ups of the writer, little enough not to add latency.
const NOTSENT_LOWAT: u32 = 32 * 1024;

/// Tunes an accepted connection: no Nagle delay (frames are batched already), a bounded
/// unsent queue in the kernel, and, when `receive_buffer` is not 0, a fixed receive buffer.
///
/// A paced publisher's session stops reading its socket, and what the kernel then keeps
/// accepting for it waits in the receive buffer; autotuned, that buffer grows to several MiB,
/// tens of milliseconds of a flooding publisher's messages that flow control cannot see. A
/// fixed buffer bounds that wait, at the price of a smaller TCP window: uploads from far away
/// (a large SEND or HTTP request over a long round trip) get slower, so it is left to the
/// operator (`tcp-receive-buffer`; BENCHMARKS.md has the measurements).
pub fn tune(stream: &TcpStream, receive_buffer: usize) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "TCP_NODELAY not set");
    }
    if receive_buffer > 0 {
        if let Err(error) = socket2::SockRef::from(stream).set_recv_buffer_size(receive_buffer) {
            tracing::debug!(%error, "SO_RCVBUF not set");
        }
    }
    if let Err(error) = socket2::SockRef::from(stream).set_tcp_notsent_lowat(NOTSENT_LOWAT) {
        tracing::debug!(%error, "TCP_NOTSENT_LOWAT not set");
    }
}

/// Turns TCP keep-alive on for an accepted connection (`tcp-keepalive-secs`; 0: left off):
/// the first probe after `idle_secs` of silence, then up to four more a fifth of it apart, so
/// the kernel reports a peer that vanished without a word (a half-open connection: a machine
/// powered off, a NAT entry dropped) after about twice `idle_secs`, and its session ends on a
/// failed read. Keep-alive probes are answered by the peer's kernel: they find dead peers, not
/// idle ones (WebSocket pings and STOMP heart-beats do that).
pub fn keepalive(stream: &TcpStream, idle_secs: u64) {
    if idle_secs == 0 {
        return;
    }
    let idle = std::time::Duration::from_secs(idle_secs);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(idle)
        .with_interval((idle / 5).max(std::time::Duration::from_secs(1)))
        .with_retries(5);
    if let Err(error) = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive) {
        tracing::debug!(%error, "SO_KEEPALIVE not set");
    }
}

/// The receive buffer a connection should take once paced, given the one it has from the start
/// (`tcp-receive-buffer`, 0 when autotuned): 0 (nothing to do) when that is already as small.
pub fn paced_bound(receive_buffer: usize, paced_receive_buffer: usize) -> usize {
    if receive_buffer != 0 && receive_buffer <= paced_receive_buffer {
        0
    } else {
        paced_receive_buffer
    }
}

/// Fixes `stream`'s kernel receive buffer at `bytes` (a live connection's advertised window
/// shrinks as it drains; the kernel no longer autotunes it). False when the kernel refused.
pub fn bound_receive_buffer(stream: &TcpStream, bytes: usize) -> bool {
    match socket2::SockRef::from(stream).set_recv_buffer_size(bytes) {
        Ok(()) => true,
        Err(error) => {
            tracing::debug!(%error, "SO_RCVBUF not set");
            false
        }
    }
}

/// Applies a paced bound still `pending` (the bytes, 0 once applied or when there is none) to
/// `read`, once; true when this call bounded the buffer.
pub fn bound_once<R: ReadSide>(pending: &mut usize, read: &R) -> bool {
    let bytes = std::mem::take(pending);
    bytes > 0 && read.bound(bytes)
}

/// The reading half of a connection, beyond `AsyncRead`: waiting for input without a buffer,
/// and the kernel's receive buffer. The defaults serve a connection read through another
/// layer (an HTTP upgrade that could not be taken apart, an in-memory pipe).
pub trait ReadSide: AsyncRead + Unpin {
    /// Ready once input (or an error, or the end) is there to read; a quiet connection waits
    /// here holding no buffer. By default a read into an empty buffer, which some readers
    /// answer at once: the caller then waits in a read with a buffer.
    fn poll_input(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self).poll_read(cx, &mut ReadBuf::new(&mut []))
    }

    /// Fixes the receive buffer at `bytes`; false (the default) where the half does not reach
    /// a TCP socket.
    fn bound(&self, _bytes: usize) -> bool {
        false
    }
}

impl ReadSide for OwnedReadHalf {
    fn poll_input(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A read into an empty buffer returns at once on a socket: wait for readiness instead.
        self.as_ref().poll_read_ready(cx)
    }

    fn bound(&self, bytes: usize) -> bool {
        bound_receive_buffer(self.as_ref(), bytes)
    }
}

impl<T: AsyncRead> ReadSide for tokio::io::ReadHalf<T> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PACED_RECEIVE_BUFFER;

    #[tokio::test]
    async fn a_receive_buffer_is_fixed_only_when_asked() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _a = TcpStream::connect(addr).await.unwrap();
        let (autotuned, _) = listener.accept().await.unwrap();
        let _b = TcpStream::connect(addr).await.unwrap();
        let (fixed, _) = listener.accept().await.unwrap();
        tune(&autotuned, 0);
        tune(&fixed, 48 * 1024);
        let size = |s: &TcpStream| socket2::SockRef::from(s).recv_buffer_size().unwrap();
        // Linux doubles the value asked for (bookkeeping overhead).
        assert_eq!(size(&fixed), 2 * 48 * 1024);
        assert!(autotuned.nodelay().unwrap() && fixed.nodelay().unwrap());
        assert_ne!(size(&autotuned), size(&fixed));
    }

    #[tokio::test]
    async fn keepalive_is_set_as_configured() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _a = TcpStream::connect(addr).await.unwrap();
        let (on, _) = listener.accept().await.unwrap();
        let _b = TcpStream::connect(addr).await.unwrap();
        let (off, _) = listener.accept().await.unwrap();
        keepalive(&on, 60);
        keepalive(&off, 0);
        let on = socket2::SockRef::from(&on);
        assert!(on.keepalive().unwrap());
        assert_eq!(on.tcp_keepalive_time().unwrap().as_secs(), 60);
        assert_eq!(on.tcp_keepalive_interval().unwrap().as_secs(), 12);
        assert_eq!(on.tcp_keepalive_retries().unwrap(), 5);
        assert!(!socket2::SockRef::from(&off).keepalive().unwrap());
    }

    #[tokio::test]
    async fn a_paced_connections_read_half_bounds_its_live_socket() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        tune(&accepted, 0);
        let (mut read, _write) = accepted.into_split();
        assert!(read.bound(PACED_RECEIVE_BUFFER));
        let size = socket2::SockRef::from(read.as_ref())
            .recv_buffer_size()
            .unwrap();
        assert_eq!(size, 2 * PACED_RECEIVE_BUFFER);
        // A buffer fixed from the start at or below the paced size is left alone.
        assert_eq!(paced_bound(0, PACED_RECEIVE_BUFFER), PACED_RECEIVE_BUFFER);
        assert_eq!(paced_bound(16 * 1024, PACED_RECEIVE_BUFFER), 0);
        assert_eq!(
            paced_bound(1 << 20, PACED_RECEIVE_BUFFER),
            PACED_RECEIVE_BUFFER
        );
        let (pipe, _other) = tokio::io::duplex(64);
        assert!(!tokio::io::split(pipe).0.bound(PACED_RECEIVE_BUFFER));
        // Input is waited for, not read: once what came is read, a quiet socket is not ready.
        tokio::io::AsyncWriteExt::write_all(&mut client, b"x")
            .await
            .unwrap();
        std::future::poll_fn(|cx| read.poll_input(cx))
            .await
            .unwrap();
        let n = tokio::io::AsyncReadExt::read(&mut read, &mut [0; 8]).await;
        assert_eq!(n.unwrap(), 1);
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(read.poll_input(&mut cx).is_pending());
    }
}
