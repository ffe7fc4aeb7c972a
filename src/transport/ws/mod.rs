//! WebSocket STOMP (at `/ws` on the HTTP port), as @stomp/stompjs, RabbitMQ Web-STOMP and
//! Spring speak it: one frame per message usually, but several frames in one message and one
//! frame across messages are accepted too.
//!
//! The WebSocket protocol (RFC 6455) is done here rather than by a general library, for memory
//! and for the write path. An idle session holds a read buffer of `ReadSize::MIN` bytes and
//! nothing for writing (a general library holds a read buffer of its configured size, zeroed,
//! and a write buffer at its high-water mark, for as long as the connection lives). The writer
//! frames every MESSAGE of a batch straight into one buffer, written with one system call.
//! Payloads are unmasked in place and handed to the STOMP decoder without a copy.

pub mod echo;
pub(crate) mod frame;
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzzing;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod pieces;
pub(crate) mod upgrade;

pub use upgrade::router;

use std::io;
use std::sync::{Arc, Mutex};

use bytes::{BufMut, Bytes, BytesMut};
use stompede_protocol::Decoder;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::socket::ReadSide;
use super::{FrameSink, FrameSource, FrameStart, Inbound, InboundError, PartialClock, ReadSize};
use frame::{code, Fail, Utf8Check};

/// What the reading and the writing halves of one connection share: the WebSocket frames the
/// reader must have sent (a pong, the reply to a close) but cannot write itself, as the writer
/// task owns the socket's writing half.
#[derive(Debug, Default)]
struct Shared {
    // A std Mutex: set and taken in a few instructions, never across an await.
    control: Mutex<Control>,
    /// Wakes the writer when `control` has something.
    wake: Notify,
}

#[derive(Debug, Default)]
struct Control {
    /// The pong frames owed, encoded, oldest first (section 5.5.2). Bounded by
    /// [`MAX_PENDING_PONGS`]: past it only the latest ping is answered, which the section
    /// allows. Empty (no allocation) once written.
    pongs: BytesMut,
    /// A ping of our own is due (keep-alive: the peer has been silent).
    ping: bool,
    /// The close code to send when the connection closes: the client's own when it closed
    /// first (echoed, section 5.5.1), or why it failed.
    close: Option<u16>,
}

/// Bytes of pong frames that may wait for the writer: a few pings' worth (a ping's payload is
/// at most 125 bytes).
const MAX_PENDING_PONGS: usize = 1024;

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Owes the peer a pong for a ping with this payload, and wakes the writer.
    fn pong(&self, payload: &[u8]) {
        {
            let mut control = self.lock();
            if control.pongs.len() + payload.len() + 2 > MAX_PENDING_PONGS {
                control.pongs.clear();
            }
            frame::put_server_frame(&mut control.pongs, frame::PONG, payload);
        }
        self.wake.notify_one();
    }

    /// Appends what the reader left for the writer (pongs, a ping) to `buf`.
    fn take_control(&self, buf: &mut BytesMut) {
        let mut control = self.lock();
        if !control.pongs.is_empty() {
            buf.extend_from_slice(&std::mem::take(&mut control.pongs));
        }
        if std::mem::take(&mut control.ping) {
            frame::put_server_frame(buf, frame::PING, b"");
        }
    }
}

/// A data frame whose payload is arriving.
#[derive(Debug, Clone, Copy)]
struct Payload {
    fin: bool,
    mask: [u8; 4],
    /// Payload bytes already unmasked (the mask's phase).
    offset: usize,
    remaining: u64,
}

/// What [`WsSource::pump`] did.
enum Pumped {
    /// Payload bytes were handed to the STOMP buffer, or a message ended.
    Data,
    /// More bytes from the socket are needed.
    More,
    /// The client sent a close frame.
    Closed,
}

/// Reads STOMP frames from WebSocket messages.
pub struct WsSource<R> {
    read: R,
    /// Bytes from the socket not yet taken apart into WebSocket frames.
    raw: BytesMut,
    /// Unmasked payload bytes, for the STOMP decoder.
    stomp: BytesMut,
    size: ReadSize,
    /// The data frame being received.
    payload: Option<Payload>,
    /// A data message is open (its last frame has not arrived): `Some(utf8)` for text.
    message: Option<Option<Utf8Check>>,
    /// Bytes of the open message so far.
    message_len: u64,
    /// Largest message accepted.
    max_message: u64,
    /// Kind of the message the buffered bytes came from.
    text: bool,
    /// A message ended and the decoder has not yet been told.
    message_ended: bool,
    lenient: bool,
    closed: bool,
    /// A keep-alive ping went out and no byte has arrived since.
    pinged: bool,
    last_activity: Instant,
    shared: Arc<Shared>,
    /// The receive buffer to keep once paced; 0 once set (or when not configured).
    paced_receive_buffer: usize,
    /// When the unfinished frame in `raw` and `stomp` began.
    partial: PartialClock,
}

impl<R: ReadSide + Send> WsSource<R> {
    /// Bytes received and not yet made into an item: WebSocket framing and STOMP.
    fn buffered(&self) -> usize {
        self.raw.len() + self.stomp.len()
    }
}

impl<R: ReadSide + Send> FrameSource for WsSource<R> {
    const PINGS: bool = true;

    async fn next(&mut self, decoder: &mut Decoder) -> Result<Option<Inbound>, InboundError> {
        loop {
            if let Some(item) = decoder.decode(&mut self.stomp)? {
                self.partial
                    .decoded(self.buffered() > 0, self.last_activity);
                return Ok(Some(Inbound {
                    item,
                    text: Some(self.text),
                }));
            }
            if std::mem::take(&mut self.message_ended) && self.lenient {
                if let Some(item) = decoder.decode_end_of_message(&mut self.stomp)? {
                    self.partial
                        .decoded(self.buffered() > 0, self.last_activity);
                    return Ok(Some(Inbound {
                        item,
                        text: Some(self.text),
                    }));
                }
            }
            if self.closed {
                return Ok(None);
            }
            match self.pump() {
                Ok(Pumped::Data) => continue,
                Ok(Pumped::Closed) => {
                    self.closed = true;
                    return Ok(None);
                }
                Ok(Pumped::More) => {}
                Err(fail) => return Err(InboundError::Io(self.failed(fail))),
            }
            if self.stomp.is_empty() {
                // Decoded frames keep their slices of it; this session keeps nothing. (Not only
                // when it has capacity left: a buffer consumed to its end has none, yet still
                // holds the whole allocation it was split from.)
                self.stomp = BytesMut::new();
            }
            // `fill`, written out: awaiting it would add its state to every session's task.
            if self.raw.is_empty() && self.size.is_quiet() {
                // A quiet connection waits for its next bytes without a buffer.
                self.raw = BytesMut::new();
                std::future::poll_fn(|cx| self.read.poll_input(cx)).await?;
            }
            let buffered = self.buffered();
            let room = self.size.prepare(&mut self.raw);
            let n = self.read.read_buf(&mut self.raw).await?;
            if n == 0 {
                return Ok(None);
            }
            self.size.record(n, room);
            self.last_activity = Instant::now();
            self.partial.arrived(buffered, self.last_activity);
            self.pinged = false;
        }
    }

    fn last_activity(&self) -> Instant {
        self.last_activity
    }

    fn partial(&self) -> Option<(Instant, usize)> {
        self.partial.partial(self.buffered())
    }

    fn paced(&mut self) -> bool {
        crate::transport::socket::bound_once(&mut self.paced_receive_buffer, &self.read)
    }

    fn ping(&mut self) {
        if !std::mem::replace(&mut self.pinged, true) {
            self.shared.lock().ping = true;
            self.shared.wake.notify_one();
        }
    }

    async fn discard_input(&mut self) {
        // What follows our close frame is the peer's reply to it and whatever it sent before
        // that reply: none of it is acted on any more. The peer's close frame ends the wait
        // (section 7.1.1: the server then closes the TCP connection first, and a client
        // waits for that).
        self.stomp = BytesMut::new();
        self.message = None;
        loop {
            match self.skip() {
                Ok(true) => return,
                Ok(false) => {}
                // Not WebSocket any more: read to the end without looking.
                Err(_) => break,
            }
            match self.fill().await {
                Ok(true) => {}
                Ok(false) | Err(_) => return,
            }
        }
        self.raw = BytesMut::new();
        crate::transport::discard(&mut self.read).await;
    }
}

impl<R: ReadSide + Send> WsSource<R> {
    /// Reads more bytes from the socket into `raw`; false at the end of input.
    async fn fill(&mut self) -> io::Result<bool> {
        if self.raw.is_empty() && self.size.is_quiet() {
            // A quiet connection waits for its next bytes without a buffer.
            self.raw = BytesMut::new();
            std::future::poll_fn(|cx| self.read.poll_input(cx)).await?;
        }
        let room = self.size.prepare(&mut self.raw);
        let n = self.read.read_buf(&mut self.raw).await?;
        if n == 0 {
            return Ok(false);
        }
        self.size.record(n, room);
        self.last_activity = Instant::now();
        self.pinged = false;
        Ok(true)
    }

    /// The next whole data message, `(text, payload)`, for a server of messages rather than
    /// STOMP frames (the echo server); `None` once the peer has closed (its close frame is to
    /// be answered by the sink) or the connection has ended.
    pub(crate) async fn next_message(&mut self) -> io::Result<Option<(bool, BytesMut)>> {
        loop {
            if std::mem::take(&mut self.message_ended) {
                return Ok(Some((self.text, std::mem::take(&mut self.stomp))));
            }
            if self.closed {
                return Ok(None);
            }
            match self.pump() {
                Ok(Pumped::Data) => continue,
                Ok(Pumped::Closed) => {
                    self.closed = true;
                    return Ok(None);
                }
                Ok(Pumped::More) => {}
                Err(fail) => return Err(self.failed(fail)),
            }
            if !self.fill().await? {
                return Ok(None);
            }
        }
    }
}

impl<R> WsSource<R> {
    fn new(read: R, already_read: Bytes, shared: Arc<Shared>, options: ReadOptions) -> Self {
        WsSource {
            read,
            // A copy: the bytes are a slice of the HTTP server's whole read buffer.
            raw: BytesMut::from(&already_read[..]),
            stomp: BytesMut::new(),
            size: ReadSize::default(),
            payload: None,
            message: None,
            message_len: 0,
            max_message: options.max_message as u64,
            text: true,
            message_ended: false,
            lenient: options.lenient,
            closed: false,
            pinged: false,
            last_activity: Instant::now(),
            shared,
            paced_receive_buffer: options.paced_receive_buffer,
            partial: PartialClock::default(),
        }
    }

    /// The connection failed (section 7.1.7): the close code is left for the sink, nothing
    /// more is read, and nothing already taken from the failed message is handed on (its
    /// bytes may hold whole STOMP frames before the bad ones).
    fn failed(&mut self, fail: Fail) -> io::Error {
        self.shared.lock().close = Some(fail.code);
        self.closed = true;
        self.stomp = BytesMut::new();
        self.message_ended = false;
        io::Error::new(io::ErrorKind::InvalidData, fail)
    }

    /// Skips the frames in `raw` without acting on them (the server has closed); true once
    /// the peer's close frame has begun.
    fn skip(&mut self) -> Result<bool, Fail> {
        loop {
            if let Some(payload) = &mut self.payload {
                let n = payload.remaining.min(self.raw.len() as u64);
                bytes::Buf::advance(&mut self.raw, n as usize);
                payload.remaining -= n;
                if payload.remaining > 0 {
                    return Ok(false);
                }
                self.payload = None;
            }
            let Some(head) = frame::parse_head(&self.raw)? else {
                return Ok(false);
            };
            if head.opcode == frame::CLOSE {
                return Ok(true);
            }
            bytes::Buf::advance(&mut self.raw, head.head_len);
            self.payload = Some(Payload {
                fin: head.fin,
                mask: head.mask,
                offset: 0,
                remaining: head.len,
            });
        }
    }

    /// Takes WebSocket frames apart from `raw`: payload to `stomp` (stopping at the end of each
    /// message, so the decoder can be told), control frames answered.
    fn pump(&mut self) -> Result<Pumped, Fail> {
        loop {
            if let Some(payload) = &mut self.payload {
                let n = payload.remaining.min(self.raw.len() as u64) as usize;
                if n == 0 && payload.remaining > 0 {
                    return Ok(Pumped::More);
                }
                let mut chunk = self.raw.split_to(n);
                frame::apply_mask(&mut chunk, payload.mask, payload.offset);
                payload.offset += n;
                payload.remaining -= n as u64;
                let done = payload.remaining == 0;
                let fin = payload.fin;
                if done {
                    self.payload = None;
                }
                if let Some(Some(utf8)) = &mut self.message {
                    if !utf8.feed(&chunk) {
                        return Err(Fail {
                            code: code::INVALID_DATA,
                            reason: "text message is not UTF-8",
                        });
                    }
                }
                if self.stomp.is_empty() {
                    self.stomp = chunk;
                } else {
                    self.stomp.unsplit(chunk);
                }
                if done && fin {
                    if let Some(Some(utf8)) = self.message.take() {
                        if !utf8.is_complete() {
                            return Err(Fail {
                                code: code::INVALID_DATA,
                                reason: "text message ends inside a character",
                            });
                        }
                    }
                    self.message_ended = true;
                    return Ok(Pumped::Data);
                }
                if n > 0 {
                    return Ok(Pumped::Data);
                }
                continue;
            }
            let Some(head) = frame::parse_head(&self.raw)? else {
                return Ok(Pumped::More);
            };
            if head.is_control() {
                let end = head.head_len + head.len as usize;
                if self.raw.len() < end {
                    return Ok(Pumped::More);
                }
                let mut body = self.raw.split_to(end).split_off(head.head_len);
                frame::apply_mask(&mut body, head.mask, 0);
                match head.opcode {
                    // Answered at once, whatever the session is doing (section 5.5.2).
                    frame::PING => self.shared.pong(&body),
                    frame::CLOSE => {
                        let reply = close_reply(&body)?;
                        self.shared.lock().close = Some(reply);
                        return Ok(Pumped::Closed);
                    }
                    _ => {} // A pong: activity, nothing else.
                }
                continue;
            }
            match (head.opcode, self.message.is_some()) {
                (frame::CONTINUATION, false) => {
                    return Err(Fail::protocol("continuation frame outside a message"))
                }
                (frame::CONTINUATION, true) => {}
                (_, true) => return Err(Fail::protocol("new message before the last one ended")),
                (opcode, false) => {
                    self.text = opcode == frame::TEXT;
                    self.message = Some(self.text.then(Utf8Check::default));
                    self.message_len = 0;
                }
            }
            self.message_len = self.message_len.saturating_add(head.len);
            if self.message_len > self.max_message {
                return Err(Fail {
                    code: code::TOO_BIG,
                    reason: "message larger than the limit",
                });
            }
            bytes::Buf::advance(&mut self.raw, head.head_len);
            self.payload = Some(Payload {
                fin: head.fin,
                mask: head.mask,
                offset: 0,
                remaining: head.len,
            });
        }
    }
}

/// The close code to echo for a client's close frame (section 5.5.1).
pub(crate) fn close_reply(body: &[u8]) -> Result<u16, Fail> {
    match body {
        [] => Ok(code::NORMAL),
        [_] => Err(Fail::protocol("close frame with a one-byte body")),
        [a, b, reason @ ..] => {
            let code = u16::from_be_bytes([*a, *b]);
            if !frame::valid_close_code(code) {
                return Err(Fail::protocol("invalid close code"));
            }
            if std::str::from_utf8(reason).is_err() {
                return Err(Fail {
                    code: code::INVALID_DATA,
                    reason: "close reason is not UTF-8",
                });
            }
            Ok(code)
        }
    }
}

/// Writes STOMP frames as WebSocket messages, one frame per message.
pub struct WsSink<W> {
    write: W,
    shared: Arc<Shared>,
    /// "websocket" or "websocket+tls", for the session list and the audit log.
    pub(crate) transport: &'static str,
}

impl<W: AsyncWrite + Unpin + Send + 'static> FrameSink for WsSink<W> {
    fn transport(&self) -> &'static str {
        self.transport
    }

    fn begin_frame(&self, buf: &mut BytesMut, size_hint: usize) -> FrameStart {
        let head = frame::server_head_len(size_hint);
        let at = buf.len();
        buf.put_bytes(0, head);
        FrameStart { at, head }
    }

    fn end_frame(&self, buf: &mut BytesMut, start: FrameStart, text: bool, spliced: usize) {
        let FrameStart { at, head } = start;
        let here = buf.len() - at - head;
        let len = here + spliced;
        let need = frame::server_head_len(len);
        if need != head {
            // The hint was in another length class: move the payload (rare).
            let end = buf.len();
            if need > head {
                buf.put_bytes(0, need - head);
            }
            buf.copy_within(at + head..end, at + need);
            buf.truncate(at + need + here);
        }
        let opcode = if text { frame::TEXT } else { frame::BINARY };
        frame::write_server_head(&mut buf[at..at + need], opcode, len);
    }

    async fn write_all_vectored(&mut self, parts: &mut [io::IoSlice<'_>]) -> io::Result<()> {
        super::write_all_vectored(&mut self.write, parts).await?;
        self.write.flush().await
    }

    fn control(&self) -> impl std::future::Future<Output = ()> + Send {
        let shared: &Shared = &self.shared;
        async move { shared.wake.notified().await }
    }

    fn take_control(&mut self, buf: &mut BytesMut) {
        self.shared.take_control(buf);
    }

    async fn close(&mut self) {
        let code = self.shared.lock().close.unwrap_or(code::NORMAL);
        let mut buf = BytesMut::with_capacity(4);
        frame::put_server_frame(&mut buf, frame::CLOSE, &code.to_be_bytes());
        // Bounded: a peer that reads nothing (its window full) must not hold the task.
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            self.write.write_all(&buf).await?;
            self.write.shutdown().await
        })
        .await;
    }
}

/// Time allowed for writing the close frame.
const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// How a session reads its WebSocket, from the server's configuration.
#[derive(Debug, Clone, Copy)]
struct ReadOptions {
    lenient: bool,
    max_message: usize,
    paced_receive_buffer: usize,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use stompede_protocol::{Command, Decoded, Limits};

    use super::frame::{client_frame, BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT};
    use super::pieces::{AtEnd, Pieces};
    use super::*;

    fn source(pieces: Vec<Vec<u8>>, max_message: usize) -> WsSource<Pieces> {
        read_from(Pieces::new(pieces, AtEnd::Close), true, max_message)
    }

    /// A peer that sends `pieces` and then keeps the connection open, read strictly.
    fn hanging(pieces: Vec<Vec<u8>>, max_message: usize) -> WsSource<Pieces> {
        read_from(Pieces::new(pieces, AtEnd::Hang), false, max_message)
    }

    fn read_from(read: Pieces, lenient: bool, max_message: usize) -> WsSource<Pieces> {
        let options = ReadOptions {
            lenient,
            max_message,
            paced_receive_buffer: 0,
        };
        WsSource::new(read, Bytes::new(), Arc::new(Shared::default()), options)
    }

    #[tokio::test]
    async fn bytes_the_http_server_read_past_the_upgrade_come_first() {
        let first = client_frame(
            true,
            TEXT,
            b"CONNECT\naccept-version:1.2\n\n\0",
            [1, 2, 3, 4],
        );
        let (head, tail) = first.split_at(3);
        let options = ReadOptions {
            lenient: false,
            max_message: 1024,
            paced_receive_buffer: 0,
        };
        let mut source = WsSource::new(
            Pieces::new(vec![tail.to_vec()], AtEnd::Close),
            Bytes::copy_from_slice(head),
            Arc::new(Shared::default()),
            options,
        );
        let mut decoder = Decoder::new(Limits::default());
        let Some(Inbound {
            item: Decoded::Frame(frame),
            ..
        }) = source.next(&mut decoder).await.unwrap()
        else {
            panic!("no frame");
        };
        assert_eq!(frame.command, Command::Connect);
    }

    /// Every frame (with its text flag) until the end, or the error.
    async fn drain(
        source: &mut WsSource<Pieces>,
    ) -> (
        Vec<(stompede_protocol::Frame, Option<bool>)>,
        Option<String>,
    ) {
        let mut decoder = Decoder::new(Limits::default());
        let mut frames = Vec::new();
        loop {
            match source.next(&mut decoder).await {
                Ok(Some(Inbound {
                    item: Decoded::Frame(frame),
                    text,
                })) => frames.push((frame, text)),
                Ok(Some(_)) => {}
                Ok(None) => return (frames, None),
                Err(e) => return (frames, Some(e.to_string())),
            }
        }
    }

    /// A text CONNECT in two fragments with a ping between them, a binary SEND with a body
    /// that holds a NUL, then a close frame.
    fn conversation() -> Vec<u8> {
        let mut wire = Vec::new();
        wire.extend(client_frame(false, TEXT, b"CONNECT\naccept-", [1, 2, 3, 4]));
        wire.extend(client_frame(true, PING, b"are you there", [9, 8, 7, 6]));
        wire.extend(client_frame(
            true,
            CONTINUATION,
            "version:1.2\nlogin:h\u{e9}\n\n\0".as_bytes(),
            [5, 5, 5, 5],
        ));
        wire.extend(client_frame(
            true,
            BINARY,
            b"SEND\ndestination:/topic/a\ncontent-length:3\n\n\x00\xff\x01\0",
            [0xaa, 0xbb, 0xcc, 0xdd],
        ));
        wire.extend(client_frame(
            true,
            CLOSE,
            &4001u16.to_be_bytes(),
            [3, 1, 4, 1],
        ));
        wire
    }

    #[tokio::test]
    async fn a_conversation_cut_at_every_byte_position_reads_the_same() {
        let wire = conversation();
        for cut in 0..=wire.len() {
            for cut2 in [cut, (cut + 7).min(wire.len())] {
                let pieces = vec![
                    wire[..cut].to_vec(),
                    wire[cut..cut2].to_vec(),
                    wire[cut2..].to_vec(),
                ];
                let mut source = source(pieces, 1 << 20);
                let (frames, error) = drain(&mut source).await;
                assert_eq!(error, None, "cut {cut}");
                assert_eq!(frames.len(), 2, "cut {cut}");
                assert_eq!(frames[0].0.command, Command::Connect);
                assert_eq!(frames[0].0.get("login"), Some("h\u{e9}"));
                assert_eq!(frames[0].1, Some(true));
                assert_eq!(frames[1].0.command, Command::Send);
                assert_eq!(&frames[1].0.body[..], b"\x00\xff\x01");
                assert_eq!(frames[1].1, Some(false));
                let mut pongs = BytesMut::new();
                source.shared.take_control(&mut pongs);
                assert_eq!(server_frames(&pongs), [(PONG, b"are you there".to_vec())]);
                assert_eq!(
                    source.shared.lock().close,
                    Some(4001),
                    "the client's code is echoed"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_frame_too_large_for_the_read_buffer_streams_through() {
        let body = vec![b'x'; 200_000];
        let mut send =
            format!("SEND\ndestination:/q\ncontent-length:{}\n\n", body.len()).into_bytes();
        send.extend_from_slice(&body);
        send.push(0);
        let wire = client_frame(true, BINARY, &send, [7, 7, 1, 2]);
        let pieces = wire.chunks(1000).map(<[u8]>::to_vec).collect();
        let mut source = source(pieces, 1 << 20);
        let (frames, error) = drain(&mut source).await;
        assert_eq!(error, None);
        assert_eq!(frames[0].0.body.len(), body.len());
        assert!(frames[0].0.body.iter().all(|b| *b == b'x'));
    }

    #[tokio::test]
    async fn a_waiting_source_keeps_no_share_of_what_it_read() {
        let send = b"SEND\ndestination:/q\ncontent-length:4\n\nbody\0";
        let heartbeat = client_frame(true, TEXT, b"\n", [1, 2, 3, 4]);
        let mut wire = client_frame(true, BINARY, send, [4, 3, 2, 1]);
        wire.extend_from_slice(&heartbeat);
        let mut source = source(vec![wire], 1 << 20);
        let (frames, error) = drain(&mut source).await;
        assert_eq!(error, None);
        let body = frames[0].0.body.clone();
        drop(frames);
        assert_eq!(&body[..], b"body");
        // The read buffer it was split from is let go: the body alone owns it now.
        assert!(body.is_unique());
    }

    #[tokio::test]
    async fn protocol_breaches_fail_with_their_close_code() {
        let connect = b"CONNECT\n\n\0";
        let mut unmasked = client_frame(true, TEXT, connect, [0; 4]);
        unmasked[1] &= 0x7f;
        unmasked.drain(2..6);
        let mut interleaved = client_frame(false, TEXT, b"CONN", [1; 4]);
        interleaved.extend(client_frame(true, TEXT, b"ECT\n\n\0", [1; 4]));
        let cases: Vec<(Vec<u8>, u16)> = vec![
            (unmasked, code::PROTOCOL),
            (
                client_frame(true, CONTINUATION, connect, [1; 4]),
                code::PROTOCOL,
            ),
            (interleaved, code::PROTOCOL),
            (
                client_frame(true, TEXT, b"SEND\n\n\xff\0", [1; 4]),
                code::INVALID_DATA,
            ),
            (
                client_frame(true, TEXT, b"SEND\n\n\xe2\x82", [1; 4]),
                code::INVALID_DATA,
            ),
            (
                client_frame(true, BINARY, &[b'x'; 101], [1; 4]),
                code::TOO_BIG,
            ),
            (
                client_frame(true, CLOSE, &1005u16.to_be_bytes(), [1; 4]),
                code::PROTOCOL,
            ),
        ];
        for (i, (wire, expected)) in cases.into_iter().enumerate() {
            let mut source = source(vec![wire], 100);
            let (_, error) = drain(&mut source).await;
            assert!(error.is_some(), "case {i}");
            assert_eq!(source.shared.lock().close, Some(expected), "case {i}");
        }
    }

    #[tokio::test]
    async fn nothing_of_a_failed_message_is_read_after_the_failure() {
        // Found by the fuzz target `ws`: a text message holding a whole SEND and then the
        // start of a character it never finishes fails; the SEND must not come out of the
        // next read, nor a decoding error of the bytes after it.
        for tail in [&b"\xe2\x82"[..], b"SENw\xe2"] {
            let mut payload = b"SEND\ndestination:/q\n\nab\0".to_vec();
            payload.extend_from_slice(tail);
            let wire = client_frame(true, TEXT, &payload, [1, 2, 3, 4]);
            let mut source = source(vec![wire], 1 << 20);
            let mut decoder = Decoder::new(Limits::default());
            let error = source.next(&mut decoder).await.unwrap_err();
            assert!(error.to_string().contains("inside a character"), "{error}");
            assert!(
                matches!(source.next(&mut decoder).await, Ok(None)),
                "read on after the failure"
            );
            assert_eq!(source.shared.lock().close, Some(code::INVALID_DATA));
        }
    }

    /// Parses unmasked server frames: (opcode, payload) each.
    fn server_frames(mut wire: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::new();
        while !wire.is_empty() {
            let (len, at) = match wire[1] {
                126 => (u16::from_be_bytes([wire[2], wire[3]]) as usize, 4),
                127 => (
                    u64::from_be_bytes(wire[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                n => (n as usize, 2),
            };
            assert_eq!(wire[0] & 0xf0, 0x80, "final, no extension bits");
            out.push((wire[0] & 0x0f, wire[at..at + len].to_vec()));
            wire = &wire[at + len..];
        }
        out
    }

    #[tokio::test]
    async fn frames_are_framed_whatever_the_size_hint_said_and_however_much_is_spliced() {
        let sink = WsSink {
            write: tokio::io::sink(),
            shared: Arc::new(Shared::default()),
            transport: "websocket",
        };
        let mut wire = BytesMut::new();
        let sizes = [0usize, 5, 125, 126, 300, 0xffff, 0x10000, 70_000, 300_000];
        let spliced = |size: usize, n: usize| if n % 2 == 1 { size * 2 / 3 } else { 0 };
        for (i, size) in sizes.iter().enumerate() {
            for hint in [0usize, 100, 1000, 100_000] {
                for n in 0..2 {
                    let tail = spliced(*size, n);
                    let start = sink.begin_frame(&mut wire, hint);
                    wire.extend(std::iter::repeat_n(i as u8, size - tail));
                    sink.end_frame(&mut wire, start, i % 2 == 0, tail);
                    // What the writer sends from the shared message, right after the buffer.
                    wire.extend(std::iter::repeat_n(i as u8 | 0x80, tail));
                }
            }
        }
        let frames = server_frames(&wire);
        assert_eq!(frames.len(), sizes.len() * 8);
        for (n, (opcode, payload)) in frames.iter().enumerate() {
            let i = n / 8;
            let head = sizes[i] - spliced(sizes[i], n);
            assert_eq!(*opcode, if i % 2 == 0 { TEXT } else { BINARY });
            assert_eq!(payload.len(), sizes[i]);
            assert!(payload[..head].iter().all(|b| *b == i as u8));
            assert!(payload[head..].iter().all(|b| *b == i as u8 | 0x80));
        }
    }

    #[tokio::test]
    async fn every_ping_is_answered_in_order_and_a_flood_only_by_its_latest() {
        let mut wire = Vec::new();
        for i in 0..3u8 {
            wire.extend(client_frame(true, PING, &[i; 5], [i, 1, 2, 3]));
        }
        let mut source = source(vec![wire], 1 << 20);
        drain(&mut source).await;
        let mut out = BytesMut::new();
        source.shared.take_control(&mut out);
        let expected: Vec<_> = (0..3u8).map(|i| (PONG, vec![i; 5])).collect();
        assert_eq!(server_frames(&out), expected);
        // Taken: nothing is owed any more, and nothing is held.
        let mut again = BytesMut::new();
        source.shared.take_control(&mut again);
        assert!(again.is_empty());
        assert_eq!(source.shared.lock().pongs.capacity(), 0);

        // More pings than the writer is allowed to owe: the bound holds, the latest is there.
        let mut wire = Vec::new();
        for i in 0..100u8 {
            wire.extend(client_frame(true, PING, &[i; 125], [0; 4]));
        }
        let mut source = super::tests::source(vec![wire], 1 << 20);
        drain(&mut source).await;
        assert!(source.shared.lock().pongs.len() <= MAX_PENDING_PONGS);
        let mut out = BytesMut::new();
        source.shared.take_control(&mut out);
        let pongs = server_frames(&out);
        assert_eq!(pongs.last(), Some(&(PONG, vec![99; 125])));
    }

    #[tokio::test(start_paused = true)]
    async fn lingering_ends_at_the_peers_close_frame_though_the_connection_stays_open() {
        // The server failed the connection in the middle of a fragmented message; the peer
        // goes on with it, pings, then answers the close, and keeps its socket open.
        let mut wire = vec![client_frame(false, TEXT, b"\xff broken", [1; 4])];
        let rest = client_frame(true, CONTINUATION, &[b'x'; 3000], [2; 4]);
        wire.extend(rest.chunks(400).map(<[u8]>::to_vec));
        wire.push(client_frame(true, PING, b"?", [3; 4]));
        wire.push(client_frame(true, CLOSE, &1002u16.to_be_bytes(), [4; 4]));
        let mut source = hanging(wire, 1 << 20);
        let mut decoder = Decoder::new(Limits::default());
        let error = source.next(&mut decoder).await.unwrap_err();
        assert!(error.to_string().contains("UTF-8"), "{error}");
        assert_eq!(source.shared.lock().close, Some(code::INVALID_DATA));
        tokio::time::timeout(Duration::from_secs(60), source.discard_input())
            .await
            .expect("the close frame ends the wait");
        // What came after the failure was not acted on: the ping goes unanswered.
        assert!(source.shared.lock().pongs.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn invalid_utf8_fails_the_message_before_the_rest_of_its_frame_arrives() {
        // Section 8.1 and Autobahn 6.4: fail fast, on the first bytes that cannot be UTF-8,
        // though the frame (and the message) would go on.
        let frame = client_frame(false, TEXT, "κόσμε\u{1}\u{80}".as_bytes(), [5; 4]);
        let valid = frame.len() - 2;
        let mut wire = frame[..valid].to_vec();
        wire.extend_from_slice(&[0xed ^ 5, 0xa0 ^ 5]);
        // The frame claims 4 bytes more than it holds so far: the rest never comes.
        let mut head = wire[..2].to_vec();
        head[1] += 4;
        wire.splice(..2, head);
        let mut source = hanging(vec![wire], 1 << 20);
        let failed = tokio::time::timeout(Duration::from_secs(60), source.next_message())
            .await
            .expect("failed without waiting for the rest");
        assert_eq!(failed.unwrap_err().kind(), io::ErrorKind::InvalidData);
        assert_eq!(source.shared.lock().close, Some(code::INVALID_DATA));
    }

    #[tokio::test]
    async fn messages_come_whole_from_their_fragments_with_control_frames_between() {
        let mut wire = Vec::new();
        wire.extend(client_frame(
            false,
            TEXT,
            "h\u{e9}".as_bytes(),
            [1, 2, 3, 4],
        ));
        wire.extend(client_frame(true, PING, b"p", [9; 4]));
        wire.extend(client_frame(false, CONTINUATION, b"", [5; 4]));
        wire.extend(client_frame(true, CONTINUATION, b"llo", [6; 4]));
        wire.extend(client_frame(true, BINARY, &[0, 0xff], [7; 4]));
        wire.extend(client_frame(true, TEXT, b"", [8; 4]));
        wire.extend(client_frame(true, CLOSE, &[], [0; 4]));
        for cut in 0..wire.len() {
            let pieces = vec![wire[..cut].to_vec(), wire[cut..].to_vec()];
            let mut source = source(pieces, 1 << 20);
            let mut messages = Vec::new();
            while let Some((text, payload)) = source.next_message().await.unwrap() {
                messages.push((text, payload.to_vec()));
            }
            assert_eq!(
                messages,
                [
                    (true, "h\u{e9}llo".as_bytes().to_vec()),
                    (false, vec![0, 0xff]),
                    (true, Vec::new()),
                ],
                "cut {cut}"
            );
            assert_eq!(source.shared.lock().close, Some(code::NORMAL));
        }
    }

    #[tokio::test]
    async fn a_keepalive_ping_is_asked_for_once_per_silence() {
        let mut source = source(
            vec![client_frame(true, TEXT, b"\n", [1; 4]), Vec::new()],
            1 << 20,
        );
        let mut out = BytesMut::new();
        source.ping();
        source.ping();
        source.shared.take_control(&mut out);
        assert_eq!(server_frames(&out), [(PING, Vec::new())]);
        out.clear();
        source.ping();
        source.shared.take_control(&mut out);
        assert!(out.is_empty(), "still the same silence");
        // Bytes arrive (a heart-beat): the next silence gets its own ping.
        let mut decoder = Decoder::new(Limits::default());
        source.next(&mut decoder).await.unwrap();
        source.ping();
        source.shared.take_control(&mut out);
        assert_eq!(server_frames(&out), [(PING, Vec::new())]);
    }
}
