//! STOMP over SockJS: each SockJS session is a STOMP session exactly like a WebSocket one
//! (the same handshake, users, heart-beats, flow control, limits and metrics), through a
//! carrier over the session's [`Connection`]. Each STOMP frame travels as one SockJS message,
//! as @stomp/stompjs sends and expects them; a heart-beat is a message holding one EOL.
//!
//! The sink quotes each frame as it writes it (the session queues messages quoted, ready for
//! its `a[...]` frames): a MESSAGE's per-subscription head on its own, its shared tail (the
//! other headers and the body) once per message for all its recipients
//! ([`Message::encoded_tail`](crate::broker::message::Message::encoded_tail)), as the other
//! transports share the encoded tail.

use std::io;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use stompede_protocol::{Decoder, Version};
use tokio::time::Instant;

use super::{frames, Connection, Options, Service};
use crate::broker::message::Message;
use crate::broker::metrics::Metrics;
use crate::context::ServerContext;
use crate::session;
use crate::transport::{FrameSink, FrameSource, FrameStart, Inbound, InboundError, PartialClock};

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
            partial: PartialClock::default(),
        },
        SockJsSink {
            quoted: session.quoted(),
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
    /// When the unfinished frame in `buf` began.
    partial: PartialClock,
}

impl FrameSource for SockJsSource {
    async fn next(&mut self, decoder: &mut Decoder) -> Result<Option<Inbound>, InboundError> {
        loop {
            if let Some(item) = decoder.decode(&mut self.buf)? {
                self.partial
                    .decoded(!self.buf.is_empty(), self.last_activity);
                return Ok(Some(Inbound {
                    item,
                    text: Some(true),
                }));
            }
            if std::mem::take(&mut self.message_ended) && self.lenient {
                if let Some(item) = decoder.decode_end_of_message(&mut self.buf)? {
                    self.partial
                        .decoded(!self.buf.is_empty(), self.last_activity);
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
            let buffered = self.buf.len();
            self.buf.extend_from_slice(message.as_bytes());
            self.message_ended = true;
            self.last_activity = Instant::now();
            self.partial.arrived(buffered, self.last_activity);
        }
    }

    fn last_activity(&self) -> Instant {
        self.last_activity
    }

    fn partial(&self) -> Option<(Instant, usize)> {
        self.partial.partial(self.buf.len())
    }

    async fn discard_input(&mut self) {
        self.buf = BytesMut::new();
        while self.connection.recv().await.is_some() {}
    }
}

/// Bytes the sink puts before each frame in the writer's buffer: the length of the frame's
/// bytes in the buffer, then of what the writer splices after them (see [`Records`]).
const RECORD_HEAD: usize = 16;

/// Writes STOMP frames as SockJS messages. The writer's buffer holds each frame behind its
/// lengths ([`begin_frame`](FrameSink::begin_frame) sets room aside, `end_frame` fills it in),
/// so that a write, large message tails spliced in, can be cut back into frames, each sent as
/// one message.
pub struct SockJsSink {
    session: Arc<super::session::Session>,
    records: Records,
    /// Frames go out quoted, inside SockJS frames (all but the raw WebSocket): the records
    /// quote each frame's bytes from the writer's buffer, and MESSAGE tails come quoted.
    quoted: bool,
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
        let own = (buf.len() - start.at - start.head) as u64;
        buf[start.at..start.at + 8].copy_from_slice(&own.to_le_bytes());
        buf[start.at + 8..start.at + RECORD_HEAD].copy_from_slice(&(spliced as u64).to_le_bytes());
    }

    fn encoded_tail<'m>(&self, message: &'m Message, version: Version) -> Option<&'m Bytes> {
        self.quoted
            .then(|| message.encoded_tail(version, frames::quote_message))
    }

    async fn write_all_vectored(&mut self, parts: &mut [io::IoSlice<'_>]) -> io::Result<()> {
        let mut messages = Vec::new();
        // The write's messages go into one buffer they share, which lives as long as any of
        // them is queued: sized to the write, whose record heads (not copied) make room for
        // what quoting adds to the frames' heads.
        let bytes: usize = parts.iter().map(|part| part.len()).sum();
        self.records.frames.reserve(bytes);
        for part in parts.iter() {
            self.records.feed(part, &mut messages, self.quoted);
        }
        if self.records.at_boundary() {
            // Whatever the buffer has left is let go: an idle session holds none of it.
            self.records.frames = BytesMut::new();
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

/// Frame heads at most this long are remembered quoted (see [`Records::quote`]).
const CACHED_HEAD: usize = 128;

/// Cuts frames back out of the bytes a write carries (which may split a frame between parts,
/// and a part between frames). Each record is a head of two lengths, the frame's bytes from
/// the writer's buffer, then the bytes the writer spliced after them: when quoting, the
/// buffer's bytes are quoted here and the spliced ones (a MESSAGE's shared tail) come quoted.
#[derive(Debug, Default)]
struct Records {
    head: [u8; RECORD_HEAD],
    /// Bytes of `head` received.
    head_len: usize,
    /// Bytes of the current frame's own part (from the writer's buffer) still to come.
    own: usize,
    /// Bytes of the current frame's spliced part still to come.
    spliced: usize,
    /// The own part of a frame cut between two parts, gathered to be quoted whole.
    partial: Vec<u8>,
    /// The frames of the current write, each split off as its own message once complete.
    frames: BytesMut,
    /// The last frame head quoted, and its quoting: a subscription's MESSAGEs all start with
    /// the same head (`MESSAGE`, `subscription`; an `ack` differs per message), so it is
    /// quoted once, not per delivery.
    last_head: (Vec<u8>, Vec<u8>),
}

impl Records {
    /// No frame is partly received.
    fn at_boundary(&self) -> bool {
        self.head_len == 0 && self.own == 0 && self.spliced == 0
    }

    /// Appends the messages completed by `data` to `messages`: quoted when `quoted`, else
    /// checked as UTF-8 (SockJS carries text: a body that is not UTF-8 cannot cross it
    /// unchanged).
    fn feed(&mut self, mut data: &[u8], messages: &mut Vec<Bytes>, quoted: bool) {
        while !data.is_empty() {
            if self.head_len < RECORD_HEAD {
                let take = (RECORD_HEAD - self.head_len).min(data.len());
                self.head[self.head_len..self.head_len + take].copy_from_slice(&data[..take]);
                self.head_len += take;
                data = &data[take..];
                if self.head_len == RECORD_HEAD {
                    let mut own = [0u8; 8];
                    let mut spliced = [0u8; 8];
                    own.copy_from_slice(&self.head[..8]);
                    spliced.copy_from_slice(&self.head[8..]);
                    self.own = u64::from_le_bytes(own) as usize;
                    self.spliced = u64::from_le_bytes(spliced) as usize;
                    if self.own == 0 && self.spliced == 0 {
                        self.head_len = 0;
                    }
                }
                continue;
            }
            if self.own > 0 {
                let take = self.own.min(data.len());
                let (own, rest) = data.split_at(take);
                self.own -= take;
                data = rest;
                if self.own == 0 && self.partial.is_empty() {
                    self.own_part(own, quoted);
                } else {
                    self.partial.extend_from_slice(own);
                    if self.own == 0 {
                        let own = std::mem::take(&mut self.partial);
                        self.own_part(&own, quoted);
                    }
                }
            } else {
                let take = self.spliced.min(data.len());
                self.frames.extend_from_slice(&data[..take]);
                self.spliced -= take;
                data = &data[take..];
            }
            if self.own == 0 && self.spliced == 0 {
                self.head_len = 0;
                let frame = self.frames.split().freeze();
                messages.push(if quoted || std::str::from_utf8(&frame).is_ok() {
                    frame
                } else {
                    Bytes::from(String::from_utf8_lossy(&frame).into_owned())
                });
            }
        }
    }

    /// A frame's own part, whole: quoted (its spliced part, if any, follows quoted), or as
    /// it is.
    fn own_part(&mut self, own: &[u8], quoted: bool) {
        if quoted {
            self.quote(own);
        } else {
            self.frames.extend_from_slice(own);
        }
    }

    /// Quotes `own` into the current frame, from the last head's quoting when it is the same.
    fn quote(&mut self, own: &[u8]) {
        if own == self.last_head.0 {
            self.frames.extend_from_slice(&self.last_head.1);
            return;
        }
        let start = self.frames.len();
        frames::quote_raw_inside(&mut self.frames, own);
        if own.len() <= CACHED_HEAD {
            self.last_head.0.clear();
            self.last_head.0.extend_from_slice(own);
            self.last_head.1.clear();
            self.last_head.1.extend_from_slice(&self.frames[start..]);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use stompede_protocol::{write_command, write_header, Command, Escaping, Headers};
    use tokio_util::sync::CancellationToken;
    use tokio_util::task::TaskTracker;

    use super::super::session::{self, Attach, Outgoing, Timing};
    use super::*;

    /// Bodies with everything quoting treats apart, and bytes that are not UTF-8.
    fn awkward_bodies() -> Vec<Vec<u8>> {
        let mut controls: Vec<u8> = (0u8..0x20).collect();
        controls.extend_from_slice(b"\x7f");
        vec![
            b"".to_vec(),
            b"plain text".to_vec(),
            br#"{"say":"\"hi\"","path":"C:\\dir\\"}"#.to_vec(),
            controls,
            "é ü ß 中文 🦀 100%".as_bytes().to_vec(),
            "\u{2028}line\u{2029}para\u{200c}\u{206f}\u{fff0}\u{fffd}\u{ffff}"
                .as_bytes()
                .to_vec(),
            b"binary \xff\xfe\x00 ends cut \xe2\x80".to_vec(),
            b"\xed\xa0\x80 \xc3".to_vec(),
            "x".repeat(5000).into_bytes(),
        ]
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_quoted_once_for_all_recipients_reads_as_quoting_each_delivery() {
        let timing = Timing {
            heartbeat: Duration::from_secs(25),
            timeout: Duration::from_secs(5),
            max_pending_bytes: 1 << 20,
            tracker: TaskTracker::new(),
            shutdown: CancellationToken::new(),
        };
        let (session, _from_client) = session::unregistered(&timing, true);
        let Attach::Opened(id) = session.attach(false) else {
            panic!("not opened");
        };
        let shutdown = CancellationToken::new();
        let mut sink = SockJsSink {
            quoted: true,
            session: session.clone(),
            records: Records::default(),
        };
        let mut headers = Headers::default();
        headers.push("content-type", "text/plain; charset=utf-8");
        headers.push("x-note", "«quoted\" \u{2028}»");
        for body in awkward_bodies() {
            let message = Message::new(
                "m-1".into(),
                "/topic/t".into(),
                &headers,
                Bytes::from(body.clone()),
                false,
            );
            for version in [Version::V1_0, Version::V1_1, Version::V1_2] {
                let escaping = Escaping::for_frame(Command::Message, version);
                for subscription in ["sub-0", "s\"1\\\u{2028}é"] {
                    // As the writer writes a delivery: the head, then the shared tail spliced.
                    let tail = sink.encoded_tail(&message, version).unwrap();
                    let mut buf = BytesMut::new();
                    let start = sink.begin_frame(&mut buf, 0);
                    write_command(&mut buf, Command::Message);
                    write_header(&mut buf, escaping, "subscription", subscription);
                    let head = buf[start.at + start.head..].to_vec();
                    sink.end_frame(&mut buf, start, false, tail.len());
                    let mut parts = [io::IoSlice::new(&buf), io::IoSlice::new(tail)];
                    sink.write_all_vectored(&mut parts).await.unwrap();

                    // As each delivery was quoted before: the whole frame as (lossy) text.
                    let mut frame = head;
                    frame.extend_from_slice(message.tail(version));
                    let expected = frames::quote(&String::from_utf8_lossy(&frame));
                    let Outgoing::Messages(messages, _) = session.next(id, &shutdown).await else {
                        panic!("no message");
                    };
                    assert_eq!(messages.len(), 1);
                    let got = format!("\"{}\"", std::str::from_utf8(&messages[0]).unwrap());
                    assert_eq!(got, expected, "{body:?} {version:?} {subscription:?}");
                }
                // Quoted once: every recipient shares the same bytes.
                let again = message.encoded_tail(version, frames::quote_message);
                let first = sink.encoded_tail(&message, version).unwrap();
                assert_eq!(again.as_ptr(), first.as_ptr());
            }
        }
    }

    /// A write as the writer makes it: each frame's own bytes behind its record head, then
    /// its spliced tail (if any) as a part of its own; returns the parts' bytes in order.
    fn write_of(frames: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut write = Vec::new();
        for (own, spliced) in frames {
            let mut head = [0u8; RECORD_HEAD];
            head[..8].copy_from_slice(&(own.len() as u64).to_le_bytes());
            head[8..].copy_from_slice(&(spliced.len() as u64).to_le_bytes());
            write.extend_from_slice(&head);
            write.extend_from_slice(own);
            write.extend_from_slice(spliced);
        }
        write
    }

    #[test]
    fn a_raw_websocket_sink_writes_frames_unquoted() {
        let mut records = Records::default();
        let mut messages = Vec::new();
        records.feed(
            &write_of(&[(b"MESSAGE\n\n\xff\0", b"")]),
            &mut messages,
            false,
        );
        assert_eq!(messages, ["MESSAGE\n\n\u{fffd}\0"]);
    }

    #[test]
    fn frames_are_cut_back_out_of_any_split_of_the_write() {
        let write = write_of(&[
            (b"CONNECTED\n\n\0", b""),
            (b"\n", b""),
            (b"MESSAGE\n\nbody\0", b""),
            (
                b"MESSAGE\nsubscription:1\n",
                b"destination:/topic/t\n\nspliced\0",
            ),
        ]);
        for cut in 0..write.len() {
            let mut records = Records::default();
            let mut messages = Vec::new();
            records.feed(&write[..cut], &mut messages, false);
            records.feed(&write[cut..], &mut messages, false);
            assert_eq!(
                messages,
                [
                    "CONNECTED\n\n\0",
                    "\n",
                    "MESSAGE\n\nbody\0",
                    "MESSAGE\nsubscription:1\ndestination:/topic/t\n\nspliced\0"
                ],
                "cut {cut}"
            );
        }
    }

    #[test]
    fn quoted_frames_are_cut_back_out_of_any_split_and_repeated_heads_reused() {
        let head: &[u8] = b"MESSAGE\nsubscription:s\"1\n";
        let tail = frames::quote_message(b"destination:/t\n\nb\0");
        let write = write_of(&[
            (b"\n", b""),
            (head, &tail),
            (head, &tail),
            (b"RECEIPT\nreceipt-id:\xe2\x80\xa8\n\n\0", b""),
            (head, &tail),
        ]);
        let message = r#"MESSAGE\nsubscription:s\"1\ndestination:/t\n\nb\u0000"#;
        for cut in 0..write.len() {
            let mut records = Records::default();
            let mut messages = Vec::new();
            records.feed(&write[..cut], &mut messages, true);
            records.feed(&write[cut..], &mut messages, true);
            assert_eq!(
                messages,
                [
                    r#"\n"#,
                    message,
                    message,
                    r#"RECEIPT\nreceipt-id:\u2028\n\n\u0000"#,
                    message
                ],
                "cut {cut}"
            );
        }
    }
}
