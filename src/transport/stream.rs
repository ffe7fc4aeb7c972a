//! The byte stream under a session or an HTTP connection: a TCP socket, or TLS over one. Once
//! the TLS handshake is done both carry the same sessions, HTTP requests and WebSocket upgrades
//! through the same code; only the bytes on the wire differ.
//!
//! Split into a reading and a writing half like a socket (a session reads in one task and
//! writes in another). A TLS connection is one rustls state machine for both directions, so its
//! halves share it behind a lock, as `tokio::io::split` would, but keep the TCP socket within
//! reach: flow control can still bound a paced connection's receive buffer, and a quiet
//! connection still waits for input without holding a read buffer.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::socket::ReadSide;

/// An accepted connection: plain TCP, or TLS over TCP once its handshake is done.
#[derive(Debug)]
pub enum Stream {
    /// Plain TCP.
    Tcp(TcpStream),
    /// TLS over TCP (boxed: rustls's connection state is large, a socket is small).
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    /// True for TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// Splits the stream into halves that can be used from two tasks.
    pub fn into_split(self) -> (ReadHalf, WriteHalf) {
        match self {
            Stream::Tcp(tcp) => {
                let (read, write) = tcp.into_split();
                (ReadHalf::Tcp(read), WriteHalf::Tcp(write))
            }
            Stream::Tls(tls) => {
                let shared = Arc::new(Mutex::new(*tls));
                (
                    ReadHalf::Tls(TlsHalf(shared.clone())),
                    WriteHalf::Tls(TlsHalf(shared)),
                )
            }
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(tcp) => tcp.is_write_vectored(),
            Stream::Tls(tls) => tls.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(tcp) => Pin::new(tcp).poll_flush(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

/// One half of a TLS connection: both halves share the rustls connection and its socket.
#[derive(Debug)]
pub struct TlsHalf(
    // A std Mutex: held for one poll of the rustls stream, which never waits, and never across
    // an await (as in `tokio::io::split`).
    Arc<Mutex<TlsStream<TcpStream>>>,
);

impl TlsHalf {
    fn lock(&self) -> MutexGuard<'_, TlsStream<TcpStream>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The reading half of a [`Stream`].
#[derive(Debug)]
pub enum ReadHalf {
    /// Plain TCP.
    Tcp(OwnedReadHalf),
    /// TLS.
    Tls(TlsHalf),
}

impl ReadHalf {
    /// Reads into `buf` once [`ReadSide::poll_input`] was ready: `Some(0)` at the end,
    /// `None` when there was nothing after all (the caller waits for input again, holding no
    /// buffer). A TLS half may instead wait in the read, for the rest of a TLS record.
    pub fn poll_read_some(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<io::Result<Option<usize>>> {
        match self {
            ReadHalf::Tcp(read) => Poll::Ready(match read.try_read_buf(buf) {
                Ok(n) => Ok(Some(n)),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => Ok(None),
                Err(error) => Err(error),
            }),
            ReadHalf::Tls(_) => tokio_util::io::poll_read_buf(Pin::new(self), cx, buf).map_ok(Some),
        }
    }
}

impl AsyncRead for ReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ReadHalf::Tcp(read) => Pin::new(read).poll_read(cx, buf),
            ReadHalf::Tls(half) => Pin::new(&mut *half.lock()).poll_read(cx, buf),
        }
    }
}

impl ReadSide for ReadHalf {
    fn poll_input(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            ReadHalf::Tcp(read) => read.poll_input(cx),
            ReadHalf::Tls(half) => {
                let tls = half.lock();
                let (tcp, connection) = tls.get_ref();
                // rustls decrypts every whole record it has read: when it wants to read (no
                // plaintext waiting, no close_notify), only the socket can bring more.
                if connection.wants_read() {
                    tcp.poll_read_ready(cx)
                } else {
                    Poll::Ready(Ok(()))
                }
            }
        }
    }

    fn bound(&self, bytes: usize) -> bool {
        match self {
            ReadHalf::Tcp(read) => read.bound(bytes),
            ReadHalf::Tls(half) => {
                super::socket::bound_receive_buffer(half.lock().get_ref().0, bytes)
            }
        }
    }
}

/// The writing half of a [`Stream`]. Over TLS a write may leave a record's tail in rustls when
/// the socket is full: writers flush after writing.
#[derive(Debug)]
pub enum WriteHalf {
    /// Plain TCP.
    Tcp(OwnedWriteHalf),
    /// TLS.
    Tls(TlsHalf),
}

impl AsyncWrite for WriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteHalf::Tcp(write) => Pin::new(write).poll_write(cx, buf),
            WriteHalf::Tls(half) => Pin::new(&mut *half.lock()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteHalf::Tcp(write) => Pin::new(write).poll_write_vectored(cx, bufs),
            WriteHalf::Tls(half) => Pin::new(&mut *half.lock()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            WriteHalf::Tcp(write) => write.is_write_vectored(),
            WriteHalf::Tls(half) => half.lock().is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Tcp(write) => Pin::new(write).poll_flush(cx),
            WriteHalf::Tls(half) => Pin::new(&mut *half.lock()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Tcp(write) => Pin::new(write).poll_shutdown(cx),
            WriteHalf::Tls(half) => Pin::new(&mut *half.lock()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::tls::Tls;
    use tokio::io::AsyncWriteExt;

    /// A TLS connection over loopback: the server's stream and the client's.
    async fn tls_pair() -> (Stream, tokio_rustls::client::TlsStream<TcpStream>) {
        let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, made.cert.pem()).unwrap();
        std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
        let tls = Tls::load(&cert, &key, std::time::Duration::from_secs(10)).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(made.cert.der().clone()).unwrap();
        let client =
            rustls::ClientConfig::builder_with_provider(super::super::tls::ring_provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connect = async {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
            tokio_rustls::TlsConnector::from(Arc::new(client))
                .connect(name, tcp)
                .await
                .unwrap()
        };
        let metrics = crate::broker::metrics::Metrics::default();
        let accept = async {
            let (tcp, peer) = listener.accept().await.unwrap();
            tls.accept(tcp, peer, &metrics).await.unwrap()
        };
        let (client, server) = tokio::join!(connect, accept);
        (server, client)
    }

    fn ready(read: &mut ReadHalf) -> bool {
        let waker = futures::task::noop_waker();
        read.poll_input(&mut Context::from_waker(&waker)).is_ready()
    }

    #[tokio::test]
    async fn a_tls_read_half_waits_for_input_bounds_its_socket_and_never_misses_plaintext() {
        let (server, mut client) = tls_pair().await;
        assert!(server.is_tls());
        let (mut read, _write) = server.into_split();
        // The kernel receive buffer is reached through the TLS layer.
        assert!(read.bound(64 * 1024));
        let ReadHalf::Tls(half) = &read else {
            panic!("a TLS half")
        };
        let size = socket2::SockRef::from(half.lock().get_ref().0)
            .recv_buffer_size()
            .unwrap();
        assert_eq!(size, 2 * 64 * 1024);
        // Quiet: no input to wait for.
        assert!(!ready(&mut read));
        // Two records' worth arrive; a small read leaves plaintext in rustls, which
        // `poll_input` must report at once (the socket has nothing more to say).
        client.write_all(&[7u8; 20_000]).await.unwrap();
        client.flush().await.unwrap();
        std::future::poll_fn(|cx| read.poll_input(cx))
            .await
            .unwrap();
        let mut got = 0;
        while got < 20_000 {
            let mut buf = BytesMut::with_capacity(1000);
            let n = std::future::poll_fn(|cx| read.poll_read_some(cx, &mut buf))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0 && buf.iter().all(|&b| b == 7));
            got += n;
            if got < 20_000 {
                // More is there, decrypted or on the socket: input is ready without waiting.
                std::future::poll_fn(|cx| read.poll_input(cx))
                    .await
                    .unwrap();
            }
        }
        assert_eq!(got, 20_000);
        assert!(!ready(&mut read), "all of it was read");
        // The end of the connection is input too.
        client.shutdown().await.unwrap();
        std::future::poll_fn(|cx| read.poll_input(cx))
            .await
            .unwrap();
        let mut buf = BytesMut::with_capacity(64);
        let end = std::future::poll_fn(|cx| read.poll_read_some(cx, &mut buf)).await;
        assert_eq!(end.unwrap(), Some(0));
    }
}
