//! Plain TCP STOMP: a byte stream, frames back to back.

use std::io;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use stompede_protocol::Decoder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use super::{FrameSink, FrameSource, Inbound, InboundError};
use crate::broker::Broker;
use crate::server::ServerContext;
use crate::session;

/// Read buffer growth step.
const READ_CHUNK: usize = 16 * 1024;

/// Reads frames from a TCP stream.
pub struct TcpSource {
    read: OwnedReadHalf,
    buf: BytesMut,
    last_activity: Instant,
}

impl FrameSource for TcpSource {
    async fn next(&mut self, decoder: &mut Decoder) -> Result<Option<Inbound>, InboundError> {
        loop {
            if let Some(item) = decoder.decode(&mut self.buf)? {
                return Ok(Some(Inbound { item, text: None }));
            }
            if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
                self.buf.reserve(READ_CHUNK);
            }
            if self.read.read_buf(&mut self.buf).await? == 0 {
                return Ok(None);
            }
            self.last_activity = Instant::now();
        }
    }

    fn last_activity(&self) -> Instant {
        self.last_activity
    }
}

/// Writes frames to a TCP stream.
pub struct TcpSink {
    write: OwnedWriteHalf,
    pending: Vec<Bytes>,
}

impl FrameSink for TcpSink {
    fn is_stream(&self) -> bool {
        true
    }

    async fn write(&mut self, bytes: Bytes, _text: bool) -> io::Result<()> {
        self.pending.push(bytes);
        Ok(())
    }

    async fn flush(&mut self) -> io::Result<()> {
        for chunk in self.pending.drain(..) {
            self.write.write_all(&chunk).await?;
        }
        Ok(())
    }

    async fn close(&mut self) {
        let _ = self.write.shutdown().await;
    }
}

/// Splits a connected stream into a source and a sink.
pub fn split(stream: TcpStream) -> (TcpSource, TcpSink) {
    super::socket::tune(&stream);
    let (read, write) = stream.into_split();
    (
        TcpSource {
            read,
            buf: BytesMut::with_capacity(READ_CHUNK),
            last_activity: Instant::now(),
        },
        TcpSink {
            write,
            pending: Vec::new(),
        },
    )
}

/// Accepts connections until shutdown; each gets its own session task, so a slow client never
/// holds up the accept loop.
pub async fn serve(listener: TcpListener, ctx: Arc<ServerContext>) {
    loop {
        let accepted = tokio::select! {
            _ = ctx.shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Typically EMFILE: back off briefly rather than spin.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let metrics = ctx.broker.metrics();
        crate::broker::metrics::Metrics::incr(&metrics.connections_accepted);
        if !ctx.rate.admit() {
            crate::broker::metrics::Metrics::incr(&metrics.connections_rate_limited);
            tracing::warn!(%peer, "connection refused: connection rate limit");
            let ctx = ctx.clone();
            ctx.tracker.clone().spawn(async move {
                refuse(stream).await;
            });
            continue;
        }
        let ctx2 = ctx.clone();
        ctx.tracker.spawn(async move {
            let (source, sink) = split(stream);
            session::run(ctx2, source, sink, None, peer.to_string()).await;
        });
    }
}

async fn refuse(mut stream: TcpStream) {
    let frame = Broker::error_frame(
        "connection rate limit exceeded",
        "Too many new connections per second; retry later.",
        None,
    );
    let bytes = stompede_protocol::to_bytes(&frame, stompede_protocol::Version::V1_0);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), stream.write_all(&bytes)).await;
}
