//! STOMP over SockJS: each SockJS session is a STOMP session exactly like a WebSocket one
//! (the same handshake, users, heart-beats, flow control, limits and metrics), through a
//! carrier over the session's [`Connection`]. Each STOMP frame travels as one SockJS message,
//! as @stomp/stompjs sends and expects them; a heart-beat is a message holding one EOL.

use std::io;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use stompede_protocol::Decoder;
use tokio::time::Instant;

use super::{Connection, Options, Service};
use crate::broker::metrics::Metrics;
use crate::context::ServerContext;
use crate::session;
use crate::transport::{FrameSink, FrameSource, FrameStart, Inbound, InboundError};

/// Runs a STOMP session on every SockJS session.
pub struct StompService {
    ctx: Arc<ServerContext>,
}

impl StompService {
    /// The service for the server `ctx`.
    pub fn new(ctx: Arc<ServerContext>) -> StompService {
        StompService { ctx }
    }
}

impl Service for StompService {
    fn open(&self, connection: Connection) {
        let ctx = self.ctx.clone();
        let metrics = ctx.broker.metrics();
        // Counted and rate-limited as the other transports count what they accept.
        Metrics::incr(&metrics.connections_accepted);
        if !ctx.rate.admit() {
            Metrics::incr(&metrics.connections_rate_limited);
            connection.close(1013, "connection rate limit exceeded; retry later");
            return;
        }
        let (source, sink) = carrier(connection, &ctx);
        let peer = source.connection.peer().to_owned();
        ctx.tracker.clone().spawn(async move {
            session::run(ctx, source, sink, None, peer).await;
        });
    }
}

/// The SockJS options of the server `ctx`: its `sockjs-*` settings, STOMP's frame limit for
/// messages, shutdown with the server's.
pub fn options(ctx: &ServerContext) -> Options {
    let config = &ctx.config;
    let max_frame = config.frame_limits().max_frame_bytes();
    Options {
        heartbeat: std::time::Duration::from_millis(config.sockjs_heartbeat_ms),
        session_timeout: std::time::Duration::from_millis(config.sockjs_session_timeout_ms),
        response_limit: config.sockjs_response_limit,
        jsessionid: config.sockjs_jsessionid,
        max_sessions: config.sockjs_max_sessions,
        websocket: true,
        // About one outbox's worth: past it the STOMP writer waits, the outbox fills, and
        // flow control paces publishers, then cuts the session, as for any slow subscriber.
        max_pending_bytes: config
            .outbox_high_water_bytes
            .clamp(64 * 1024, 4 * 1024 * 1024),
        // A frame of the largest size, JSON-quoted (most bytes quote as themselves; a body
        // that needs more escaping than that is refused with 413).
        max_message_bytes: max_frame.saturating_mul(2).saturating_add(64 * 1024),
        sockjs_url: config.sockjs_client_url.clone(),
        shutdown: ctx.shutdown.clone(),
        tracker: ctx.tracker.clone(),
    }
}

fn carrier(connection: Connection, ctx: &ServerContext) -> (SockJsSource, SockJsSink) {
    let session = connection.session();
    (
        SockJsSource {
            connection,
            buf: BytesMut::new(),
            message_ended: false,
            lenient: ctx.config.lenient_websocket_frames,
            last_activity: Instant::now(),
        },
        SockJsSink {
            session,
            records: Records::default(),
        },
    )
}

/// Reads STOMP frames from the session's messages.
pub struct SockJsSource {
    connection: Connection,
    /// Message bytes not yet decoded.
    buf: BytesMut,
    /// A message ended and the decoder has not yet been told.
    message_ended: bool,
    lenient: bool,
    last_activity: Instant,
}

impl FrameSource for SockJsSource {
    async fn next(&mut self, decoder: &mut Decoder) -> Result<Option<Inbound>, InboundError> {
        loop {
            if let Some(item) = decoder.decode(&mut self.buf)? {
                return Ok(Some(Inbound {
                    item,
                    text: Some(true),
                }));
            }
            if std::mem::take(&mut self.message_ended) && self.lenient {
                if let Some(item) = decoder.decode_end_of_message(&mut self.buf)? {
                    return Ok(Some(Inbound {
                        item,
                        text: Some(true),
                    }));
                }
            }
            if self.buf.is_empty() {
                // Decoded frames keep their slices; an idle session keeps no buffer.
                self.buf = BytesMut::new();
            }
            let Some(message) = self.connection.recv().await else {
                return Ok(None);
            };
            self.buf.extend_from_slice(message.as_bytes());
            self.message_ended = true;
            self.last_activity = Instant::now();
        }
    }

    fn last_activity(&self) -> Instant {
        self.last_activity
    }

    async fn discard_input(&mut self) {
        self.buf = BytesMut::new();
        while self.connection.recv().await.is_some() {}
    }
}

/// Bytes of the length the sink puts before each frame in the writer's buffer.
const RECORD_HEAD: usize = 8;

/// Writes STOMP frames as SockJS messages. The writer's buffer holds each frame behind its
/// length ([`begin_frame`](FrameSink::begin_frame) sets room aside, `end_frame` fills it in),
/// so that a write, large message tails spliced in, can be cut back into frames, each sent as
/// one message.
pub struct SockJsSink {
    session: Arc<super::session::Session>,
    records: Records,
}

impl FrameSink for SockJsSink {
    fn transport(&self) -> &'static str {
        "sockjs"
    }

    fn begin_frame(&self, buf: &mut BytesMut, size_hint: usize) -> FrameStart {
        let at = buf.len();
        buf.reserve(RECORD_HEAD + size_hint);
        buf.put_bytes(0, RECORD_HEAD);
        FrameStart {
            at,
            head: RECORD_HEAD,
        }
    }

    fn end_frame(&self, buf: &mut BytesMut, start: FrameStart, _text: bool, spliced: usize) {
        let len = (buf.len() - start.at - start.head + spliced) as u64;
        buf[start.at..start.at + RECORD_HEAD].copy_from_slice(&len.to_le_bytes());
    }

    async fn write_all_vectored(&mut self, parts: &mut [io::IoSlice<'_>]) -> io::Result<()> {
        let mut messages = Vec::new();
        for part in parts.iter() {
            self.records.feed(part, &mut messages);
        }
        self.session
            .send(messages)
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))
    }

    async fn control(&self) {
        std::future::pending::<()>().await;
    }

    fn take_control(&mut self, _buf: &mut BytesMut) {}

    async fn close(&mut self) {
        self.session.close(1000, "Normal closure");
    }
}

/// Cuts length-prefixed frames back out of the bytes a write carries (which may split a
/// frame between parts, and a part between frames).
#[derive(Debug, Default)]
struct Records {
    head: [u8; RECORD_HEAD],
    /// Bytes of `head` received.
    head_len: usize,
    /// Bytes of the current frame still to come.
    remaining: usize,
    frame: Vec<u8>,
}

impl Records {
    fn feed(&mut self, mut data: &[u8], messages: &mut Vec<String>) {
        while !data.is_empty() {
            if self.head_len < RECORD_HEAD {
                let take = (RECORD_HEAD - self.head_len).min(data.len());
                self.head[self.head_len..self.head_len + take].copy_from_slice(&data[..take]);
                self.head_len += take;
                data = &data[take..];
                if self.head_len == RECORD_HEAD {
                    self.remaining = u64::from_le_bytes(self.head) as usize;
                    self.frame = Vec::with_capacity(self.remaining);
                    if self.remaining == 0 {
                        self.head_len = 0;
                    }
                }
                continue;
            }
            let take = self.remaining.min(data.len());
            self.frame.extend_from_slice(&data[..take]);
            self.remaining -= take;
            data = &data[take..];
            if self.remaining == 0 {
                self.head_len = 0;
                let frame = std::mem::take(&mut self.frame);
                // SockJS carries text: a body that is not UTF-8 cannot cross it unchanged.
                messages.push(match String::from_utf8(frame) {
                    Ok(text) => text,
                    Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_cut_back_out_of_any_split_of_the_write() {
        let sink_buf = {
            let mut buf = BytesMut::new();
            for frame in ["CONNECTED\n\n\0", "\n", "MESSAGE\n\nbody\0"] {
                let start = FrameStart {
                    at: buf.len(),
                    head: RECORD_HEAD,
                };
                buf.put_bytes(0, RECORD_HEAD);
                buf.extend_from_slice(frame.as_bytes());
                let len = (buf.len() - start.at - RECORD_HEAD) as u64;
                buf[start.at..start.at + RECORD_HEAD].copy_from_slice(&len.to_le_bytes());
            }
            buf
        };
        for cut in 0..sink_buf.len() {
            let mut records = Records::default();
            let mut messages = Vec::new();
            records.feed(&sink_buf[..cut], &mut messages);
            records.feed(&sink_buf[cut..], &mut messages);
            assert_eq!(
                messages,
                ["CONNECTED\n\n\0", "\n", "MESSAGE\n\nbody\0"],
                "cut {cut}"
            );
        }
    }
}
