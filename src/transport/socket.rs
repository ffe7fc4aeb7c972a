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

/// Tunes an accepted connection: no Nagle delay (frames are batched already) and a bounded
/// unsent queue in the kernel.
pub fn tune(stream: &TcpStream) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "TCP_NODELAY not set");
    }
    if let Err(error) = socket2::SockRef::from(stream).set_tcp_notsent_lowat(NOTSENT_LOWAT) {
        tracing::debug!(%error, "TCP_NOTSENT_LOWAT not set");
    }
}
