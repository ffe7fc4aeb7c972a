//! Plain TCP STOMP: a byte stream, frames back to back.

use std::io;
use std::sync::Arc;

use bytes::BytesMut;
use stompede_protocol::Decoder;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use super::socket::ReadSide;
use super::stream::{ReadHalf, Stream, WriteHalf};
use super::tls::Tls;
use super::{FrameSink, FrameSource, FrameStart, Inbound, InboundError, PartialClock, ReadSize};
use crate::context::ServerContext;
use crate::session;

/// Reads frames from a TCP stream (plain or TLS).
pub struct TcpSource {
    read: ReadHalf,
    /// Bytes read and not yet decoded. Empty (no allocation) while the connection is quiet:
    /// the source waits for readiness, not in a read, so an idle session holds no buffer.
    buf: BytesMut,
    size: ReadSize,
    last_activity: Instant,
    /// The receive buffer to keep once paced; 0 once set (or when not configured).
    paced_receive_buffer: usize,
    /// When the unfinished frame in `buf` began.
    partial: PartialClock,
}

impl FrameSource for TcpSource {
    async fn next(&mut self, decoder: &mut Decoder) -> Result<Option<Inbound>, InboundError> {
        loop {
            if let Some(item) = decoder.decode(&mut self.buf)? {
                self.partial
                    .decoded(!self.buf.is_empty(), self.last_activity);
                return Ok(Some(Inbound { item, text: None }));
            }
            if self.buf.is_empty() {
                // Even with no capacity left, an emptied buffer holds its whole allocation.
                self.buf = BytesMut::new();
            }
            std::future::poll_fn(|cx| self.read.poll_input(cx)).await?;
            let buffered = self.buf.len();
            let room = self.size.prepare(&mut self.buf);
            match std::future::poll_fn(|cx| self.read.poll_read_some(cx, &mut self.buf)).await? {
                Some(0) => return Ok(None),
                Some(n) => {
                    self.size.record(n, room);
                    self.last_activity = Instant::now();
                    self.partial.arrived(buffered, self.last_activity);
                }
                None => {}
            }
        }
    }

    fn last_activity(&self) -> Instant {
        self.last_activity
    }

    fn partial(&self) -> Option<(Instant, usize)> {
        self.partial.partial(self.buf.len())
    }

    fn paced(&mut self) -> bool {
        super::socket::bound_once(&mut self.paced_receive_buffer, &self.read)
    }

    async fn discard_input(&mut self) {
        self.buf = BytesMut::new();
        super::discard(&mut self.read).await;
    }
}

/// Writes frames to a TCP stream (plain or TLS): STOMP frames back to back, no framing of its
/// own.
pub struct TcpSink {
    write: WriteHalf,
    /// "tcp" or "tcp+tls", for the session list and the audit log.
    transport: &'static str,
}

impl FrameSink for TcpSink {
    fn transport(&self) -> &'static str {
        self.transport
    }

    fn begin_frame(&self, buf: &mut BytesMut, _size_hint: usize) -> FrameStart {
        FrameStart {
            at: buf.len(),
            head: 0,
        }
    }

    fn end_frame(&self, _buf: &mut BytesMut, _start: FrameStart, _text: bool, _spliced: usize) {}

    async fn write_all_vectored(&mut self, parts: &mut [io::IoSlice<'_>]) -> io::Result<()> {
        super::write_all_vectored(&mut self.write, parts).await?;
        // A no-op on plain TCP; over TLS it sends what rustls kept of the last record.
        self.write.flush().await
    }

    fn control(&self) -> impl std::future::Future<Output = ()> + Send {
        std::future::pending()
    }

    fn take_control(&mut self, _buf: &mut BytesMut) {}

    async fn close(&mut self) {
        let _ = self.write.shutdown().await;
    }
}

/// Splits a connected stream (tuned already: `socket::tune`) into a source and a sink, with the
/// receive buffer it keeps once paced ([`FrameSource::paced`]).
pub fn split(stream: Stream, paced_receive_buffer: usize) -> (TcpSource, TcpSink) {
    let transport = if stream.is_tls() { "tcp+tls" } else { "tcp" };
    let (read, write) = stream.into_split();
    (
        TcpSource {
            read,
            buf: BytesMut::new(),
            size: ReadSize::default(),
            last_activity: Instant::now(),
            paced_receive_buffer,
            partial: PartialClock::default(),
        },
        TcpSink { write, transport },
    )
}

/// Accepts connections until shutdown; each gets its own session task, so a slow client never
/// holds up the accept loop. With `tls` (the `stomps` listener) the task does the TLS
/// handshake first, then runs the same session as a plain connection.
pub async fn serve(listener: TcpListener, ctx: Arc<ServerContext>, tls: Option<Arc<Tls>>) {
    loop {
        let accepted = tokio::select! {
            _ = ctx.shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                super::accept_failed(&error).await;
                continue;
            }
        };
        let metrics = ctx.broker.metrics();
        crate::broker::metrics::Metrics::incr(&metrics.connections_accepted);
        if !ctx.rate.admit() {
            crate::broker::metrics::Metrics::incr(&metrics.connections_rate_limited);
            tracing::warn!(%peer, "connection refused: connection rate limit");
            if tls.is_none() {
                let ctx = ctx.clone();
                ctx.tracker.clone().spawn(async move {
                    refuse(stream).await;
                });
            }
            // Over TLS the ERROR frame would cost a handshake, the very work the limit bounds:
            // the connection is closed unanswered.
            continue;
        }
        let ctx2 = ctx.clone();
        let tls = tls.clone();
        ctx.tracker.spawn(async move {
            let config = &ctx2.config;
            super::socket::tune(&stream, config.tcp_receive_buffer);
            super::socket::keepalive(&stream, config.tcp_keepalive_secs);
            let Some(stream) = super::tls::establish(stream, peer, tls, &ctx2).await else {
                return;
            };
            let paced =
                super::socket::paced_bound(config.tcp_receive_buffer, config.paced_receive_buffer);
            let (source, sink) = split(stream, paced);
            session::run(ctx2, source, sink, None, peer.to_string()).await;
        });
    }
}

async fn refuse(mut stream: TcpStream) {
    let frame = session::error_frame(
        "connection rate limit exceeded",
        "Too many new connections per second; retry later.",
        None,
    );
    let bytes = stompede_protocol::to_bytes(&frame, stompede_protocol::Version::V1_0);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), stream.write_all(&bytes)).await;
}
