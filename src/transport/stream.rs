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
