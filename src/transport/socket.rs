//! Socket options every accepted connection gets.

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
/// (a large SEND or a REST upload over a long round trip) get slower, so it is left to the
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
