//! Transports: plain TCP, WebSocket (RFC 6455) framed here over a TCP stream, or a SockJS
//! streaming session (xhr-streaming or eventsource, receiving only: what it sends goes out as
//! `xhr_send` requests on a second connection).
//!
//! The WebSocket side is written by hand rather than through tokio-tungstenite's stream so that
//! a reader unframes every message of one `read` into one contiguous buffer (no allocation per
//! message) and a writer batches many masked frames into one `write`. Only the opening
//! handshake's key derivation comes from tungstenite.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use anyhow::{bail, Context, Result};
use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::handshake::{client::generate_key, derive_accept_key};

/// Where to connect.
#[derive(Clone, Debug)]
pub enum Target {
    /// A raw TCP byte stream.
    Tcp(SocketAddr),
    /// WebSocket at `path` on `addr`; `host` is the Host header.
    Ws {
        addr: SocketAddr,
        host: String,
        path: String,
    },
    /// A SockJS endpoint at `prefix` on `addr`, received over a streaming transport.
    SockJs {
        addr: SockAddrHost,
        prefix: String,
        streaming: Streaming,
    },
}

/// An address and the Host header that names it.
#[derive(Clone, Debug)]
pub struct SockAddrHost {
    pub addr: SocketAddr,
    pub host: String,
}

/// The SockJS streaming transports the load tool receives over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Streaming {
    /// `POST .../xhr_streaming`: frames as lines.
    XhrStreaming,
    /// `GET .../eventsource`: frames as `data:` events.
    EventSource,
}

impl Target {
    /// Parses `ws://host:port/path`.
    pub fn ws(url: &str) -> Result<Target> {
        let rest = url
            .strip_prefix("ws://")
            .with_context(|| format!("{url}: only ws:// URLs are supported"))?;
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let addr = resolve(host)?;
        Ok(Target::Ws {
            addr,
            host: host.to_owned(),
            path: path.to_owned(),
        })
    }

    /// Parses `host:port`.
    pub fn tcp(hostport: &str) -> Result<Target> {
        Ok(Target::Tcp(resolve(hostport)?))
    }

    /// The SockJS endpoint at `prefix` beside the WebSocket URL `ws` (same host and port).
    pub fn sockjs(ws: &str, prefix: &str, streaming: Streaming) -> Result<Target> {
        match Target::ws(ws)? {
            Target::Ws { addr, host, .. } => Ok(Target::SockJs {
                addr: SockAddrHost { addr, host },
                prefix: prefix.to_owned(),
                streaming,
            }),
            _ => bail!("{ws}: not a WebSocket URL"),
        }
    }

    /// The broker's address.
    pub fn addr(&self) -> SocketAddr {
        match self {
            Target::Tcp(addr) | Target::Ws { addr, .. } => *addr,
            Target::SockJs { addr, .. } => addr.addr,
        }
    }

    /// "ws", "tcp", "sockjs-xhr-streaming" or "sockjs-eventsource".
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Tcp(_) => "tcp",
            Target::Ws { .. } => "ws",
            Target::SockJs {
                streaming: Streaming::XhrStreaming,
                ..
            } => "sockjs-xhr-streaming",
            Target::SockJs {
                streaming: Streaming::EventSource,
                ..
            } => "sockjs-eventsource",
        }
    }
}

fn resolve(hostport: &str) -> Result<SocketAddr> {
    hostport
        .to_socket_addrs()
        .with_context(|| format!("resolving {hostport}"))?
        .next()
        .with_context(|| format!("{hostport} resolves to no address"))
}

/// Socket options.
#[derive(Clone, Debug, Default)]
pub struct ConnOptions {
    /// SO_RCVBUF, set before connecting (so it also bounds the advertised window).
    pub rcvbuf: Option<u32>,
    /// TCP_NOTSENT_LOWAT: unsent bytes the kernel may hold before writes wait, so that what a
    /// publisher stamps is about to leave rather than queued behind megabytes in its own
    /// send buffer.
    pub notsent_lowat: Option<u32>,
    /// WebSocket subprotocols offered (comma-separated), if any.
    pub subprotocol: Option<&'static str>,
    /// WebSocket messages sent as text (STOMP) rather than binary (NATS).
    pub text: bool,
    /// Local address to connect from (another loopback address gives another ~28,000
    /// ephemeral ports towards the same broker).
    pub source: Option<IpAddr>,
}

const MIN_READ: usize = 4 * 1024;
const MAX_READ: usize = 256 * 1024;

/// One connection. Incoming protocol bytes accumulate in [`Conn::inbound`]; outgoing messages are
/// queued with [`Conn::send`] and written by [`Conn::flush`].
pub struct Conn {
    stream: TcpStream,
    ws: bool,
    text: bool,
    /// WebSocket: bytes read but not yet unframed.
    raw: BytesMut,
    /// Protocol bytes (WebSocket payloads concatenated, or the TCP stream).
    pub inbound: BytesMut,
    out: BytesMut,
    scratch: BytesMut,
    mask_state: u32,
    read_size: usize,
    /// The peer closed (EOF or a WebSocket close frame).
    pub eof: bool,
    /// Bytes read from the socket, framing included.
    pub bytes_read: u64,
    /// Bytes written to the socket, framing included.
    pub bytes_written: u64,
    /// A SockJS session, when the target is one.
    sockjs: Option<Box<SockJsSession>>,
}

impl Conn {
    /// Connects, and performs the WebSocket opening handshake when the target is WebSocket.
    pub async fn open(target: &Target, options: &ConnOptions) -> Result<Conn> {
        let addr = target.addr();
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(size) = options.rcvbuf {
            socket.set_recv_buffer_size(size)?;
        }
        if let Some(ip) = options.source {
            // A bound port is unique per source address, whatever the destination (there is no
            // IP_BIND_ADDRESS_NO_PORT here): SO_REUSEADDR at least lets ports still in
            // TIME_WAIT from an earlier run be taken again.
            socket.set_reuseaddr(true)?;
            socket
                .bind(SocketAddr::new(ip, 0))
                .with_context(|| format!("binding to {ip}"))?;
        }
        let stream = socket
            .connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        if let Some(bytes) = options.notsent_lowat {
            socket2::SockRef::from(&stream).set_tcp_notsent_lowat(bytes)?;
        }
        let mut conn = Conn {
            stream,
            ws: matches!(target, Target::Ws { .. }),
            text: options.text,
            raw: BytesMut::new(),
            inbound: BytesMut::new(),
            out: BytesMut::new(),
            scratch: BytesMut::new(),
            mask_state: 0x9E37_79B9 ^ (addr.port() as u32),
            read_size: MIN_READ,
            eof: false,
            bytes_read: 0,
            bytes_written: 0,
            sockjs: None,
        };
        match target {
            Target::Ws { host, path, .. } => {
                conn.handshake(host, path, options.subprotocol).await?;
            }
            Target::SockJs {
                addr,
                prefix,
                streaming,
            } => {
                let session = SockJsSession::new(addr.clone(), prefix, *streaming);
                let request = session.receiving_request();
                conn.sockjs = Some(Box::new(session));
                conn.stream.write_all(request.as_bytes()).await?;
                // The session exists once its open frame came: only then may it be sent to.
                while !conn.sockjs.as_ref().is_some_and(|s| s.opened) {
                    if !conn.fill().await? {
                        bail!("SockJS: the receiving request ended before the open frame");
                    }
                }
            }
            Target::Tcp(_) => {}
        }
        Ok(conn)
    }

    async fn handshake(&mut self, host: &str, path: &str, protocol: Option<&str>) -> Result<()> {
        let key = generate_key();
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        );
        if let Some(protocol) = protocol {
            request.push_str(&format!("Sec-WebSocket-Protocol: {protocol}\r\n"));
        }
        request.push_str("\r\n");
        self.stream.write_all(request.as_bytes()).await?;
        let end = loop {
            if let Some(i) = find(&self.raw, b"\r\n\r\n") {
                break i + 4;
            }
            if self.raw.len() > 16 * 1024 {
                bail!("WebSocket handshake: response head too long");
            }
            self.raw.reserve(MIN_READ);
            if self.stream.read_buf(&mut self.raw).await? == 0 {
                bail!("WebSocket handshake: connection closed");
            }
        };
        let head = self.raw.split_to(end);
        let head = String::from_utf8_lossy(&head);
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap_or_default();
        if status.split(' ').nth(1) != Some("101") {
            bail!("WebSocket handshake refused: {status}");
        }
        let expected = derive_accept_key(key.as_bytes());
        let accepted = lines
            .filter_map(|l| l.split_once(':'))
            .any(|(name, value)| {
                name.trim().eq_ignore_ascii_case("sec-websocket-accept") && value.trim() == expected
            });
        if !accepted {
            bail!("WebSocket handshake: missing or wrong Sec-WebSocket-Accept");
        }
        // Whatever followed the head is already WebSocket frames.
        self.unframe()?;
        Ok(())
    }

    /// Reads once (waiting for data); returns false at end of stream. Cancel-safe.
    pub async fn fill(&mut self) -> Result<bool> {
        if self.eof {
            return Ok(false);
        }
        let buf = if self.ws || self.sockjs.is_some() {
            &mut self.raw
        } else {
            &mut self.inbound
        };
        buf.reserve(self.read_size);
        let room = buf.capacity() - buf.len();
        let n = self.stream.read_buf(buf).await?;
        self.bytes_read += n as u64;
        if n == 0 {
            self.eof = true;
            return Ok(false);
        }
        if n == room && self.read_size < MAX_READ {
            self.read_size *= 2;
        }
        if self.ws {
            self.unframe()?;
        }
        if let Some(session) = self.sockjs.as_mut() {
            session.take_frames(&mut self.raw, &mut self.inbound, &mut self.eof)?;
            if std::mem::take(&mut session.reopen) {
                // The response reached the server's limit: the next one, on the same connection.
                let request = session.receiving_request();
                self.stream.write_all(request.as_bytes()).await?;
            }
        }
        Ok(true)
    }

    /// Moves complete WebSocket data frames from `raw` to `inbound`; answers pings.
    fn unframe(&mut self) -> Result<()> {
        loop {
            let raw = &self.raw[..];
            if raw.len() < 2 {
                return Ok(());
            }
            let opcode = raw[0] & 0x0f;
            let masked = raw[1] & 0x80 != 0;
            let (len, mut head) = match raw[1] & 0x7f {
                126 if raw.len() >= 4 => (u16::from_be_bytes([raw[2], raw[3]]) as usize, 4),
                127 if raw.len() >= 10 => {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&raw[2..10]);
                    (usize::try_from(u64::from_be_bytes(b))?, 10)
                }
                126 | 127 => return Ok(()),
                n => (n as usize, 2),
            };
            let mut mask = None;
            if masked {
                if raw.len() < head + 4 {
                    return Ok(());
                }
                mask = Some([raw[head], raw[head + 1], raw[head + 2], raw[head + 3]]);
                head += 4;
            }
            if raw.len() < head + len {
                self.raw.reserve(head + len - raw.len());
                return Ok(());
            }
            let payload = &raw[head..head + len];
            match opcode {
                0..=2 => {
                    let start = self.inbound.len();
                    self.inbound.extend_from_slice(payload);
                    if let Some(mask) = mask {
                        apply_mask(&mut self.inbound[start..], mask);
                    }
                }
                8 => {
                    self.eof = true;
                    self.raw.clear();
                    return Ok(());
                }
                9 => {
                    let mut body = payload.to_vec();
                    if let Some(mask) = mask {
                        apply_mask(&mut body, mask);
                    }
                    self.write_frame(0xA, &body);
                }
                10 => {}
                other => bail!("WebSocket: unexpected opcode {other}"),
            }
            self.raw.advance(head + len);
        }
    }

    /// Queues one protocol message: written by `write` into a buffer, framed as one WebSocket
    /// message when on WebSocket.
    pub fn send(&mut self, write: impl FnOnce(&mut BytesMut)) {
        if let Some(session) = self.sockjs.as_mut() {
            let mut scratch = BytesMut::new();
            write(&mut scratch);
            session
                .outgoing
                .push(String::from_utf8_lossy(&scratch).into_owned());
            return;
        }
        if !self.ws {
            write(&mut self.out);
            return;
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        write(&mut scratch);
        self.write_frame(if self.text { 0x1 } else { 0x2 }, &scratch);
        self.scratch = scratch;
    }

    fn write_frame(&mut self, opcode: u8, payload: &[u8]) {
        // xorshift32: a client must mask; the key need not be strong for a load generator.
        let mut x = self.mask_state;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.mask_state = x;
        let mask = x.to_be_bytes();
        let out = &mut self.out;
        out.reserve(payload.len() + 14);
        out.put_u8(0x80 | opcode);
        match payload.len() {
            n if n < 126 => out.put_u8(0x80 | n as u8),
            n if n <= u16::MAX as usize => {
                out.put_u8(0x80 | 126);
                out.put_u16(n as u16);
            }
            n => {
                out.put_u8(0x80 | 127);
                out.put_u64(n as u64);
            }
        }
        out.extend_from_slice(&mask);
        let start = out.len();
        out.extend_from_slice(payload);
        apply_mask(&mut out[start..], mask);
    }

    /// Bytes queued and not yet written.
    /// The local port (to find this connection in the kernel's tables).
    pub fn local_port(&self) -> Option<u16> {
        self.stream.local_addr().ok().map(|a| a.port())
    }

    pub fn pending(&self) -> usize {
        self.out.len()
            + self
                .sockjs
                .as_ref()
                .map_or(0, |s| s.outgoing.iter().map(String::len).sum())
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<()> {
        if let Some(session) = self.sockjs.as_mut() {
            self.bytes_written += session.send().await?;
        }
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.bytes_written += self.out.len() as u64;
            self.out.clear();
        }
        Ok(())
    }
}

fn apply_mask(buf: &mut [u8], mask: [u8; 4]) {
    let word = u32::from_ne_bytes(mask);
    let mut chunks = buf.chunks_exact_mut(4);
    for chunk in &mut chunks {
        let mut b = [0u8; 4];
        b.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u32::from_ne_bytes(b) ^ word).to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i];
    }
}

/// Position of `needle` in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// Where the receiving response of a SockJS session is.
#[derive(Clone, Copy, Debug)]
enum Http {
    /// Waiting for the response head.
    Head,
    /// Waiting for a chunk-size line.
    ChunkSize,
    /// Inside a chunk: bytes left.
    ChunkData(usize),
    /// After a chunk: its CRLF, bytes left.
    ChunkEnd(usize),
}

/// One SockJS session of the load tool: a streaming response that carries its frames, and
/// `xhr_send` requests for what it sends.
pub struct SockJsSession {
    addr: SockAddrHost,
    /// `{prefix}/{server}/{session}`.
    path: String,
    streaming: Streaming,
    http: Http,
    /// Response body bytes not yet taken apart into frames.
    body: BytesMut,
    /// Bytes of `body` already searched for the end of a frame (a frame can be large, and
    /// arrive over many reads: each read must not search it all again).
    scanned: usize,
    /// The open frame came.
    opened: bool,
    /// The response ended (its limit): a new receiving request is due.
    reopen: bool,
    /// STOMP frames to send, one SockJS message each.
    outgoing: Vec<String>,
    /// The keep-alive connection `xhr_send` requests go on.
    sender: Option<TcpStream>,
}

impl SockJsSession {
    fn new(addr: SockAddrHost, prefix: &str, streaming: Streaming) -> SockJsSession {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = format!(
            "{}/000/load-{}-{n}",
            prefix.trim_end_matches('/'),
            std::process::id()
        );
        SockJsSession {
            addr,
            path,
            streaming,
            http: Http::Head,
            body: BytesMut::new(),
            scanned: 0,
            opened: false,
            reopen: false,
            outgoing: Vec::new(),
            sender: None,
        }
    }

    fn receiving_request(&self) -> String {
        let host = &self.addr.host;
        match self.streaming {
            Streaming::XhrStreaming => format!(
                "POST {}/xhr_streaming HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n",
                self.path
            ),
            Streaming::EventSource => format!(
                "GET {}/eventsource HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n",
                self.path
            ),
        }
    }

    /// Takes the HTTP framing (head, chunks) off `raw`, then the SockJS framing off the body:
    /// each message of an `a[...]` frame goes to `inbound`; a close frame sets `eof`.
    fn take_frames(
        &mut self,
        raw: &mut BytesMut,
        inbound: &mut BytesMut,
        eof: &mut bool,
    ) -> Result<()> {
        loop {
            match self.http {
                Http::Head => {
                    let Some(end) = find(raw, b"\r\n\r\n") else {
                        break;
                    };
                    let head = raw.split_to(end + 4);
                    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
                    if head.split(' ').nth(1) != Some("200")
                        || !head.contains("transfer-encoding: chunked")
                    {
                        bail!("SockJS: unexpected response head: {head}");
                    }
                    self.http = Http::ChunkSize;
                }
                Http::ChunkSize => {
                    let Some(end) = find(raw, b"\r\n") else { break };
                    let line = raw.split_to(end + 2);
                    let size = std::str::from_utf8(&line[..end])?.trim();
                    let size = usize::from_str_radix(size, 16)?;
                    if size == 0 {
                        // The last chunk, then the empty trailer line.
                        self.http = Http::ChunkEnd(2);
                        self.reopen = true;
                    } else {
                        self.http = Http::ChunkData(size);
                    }
                }
                Http::ChunkData(left) => {
                    if raw.is_empty() {
                        break;
                    }
                    let take = left.min(raw.len());
                    self.body.extend_from_slice(&raw.split_to(take));
                    self.http = if take == left {
                        Http::ChunkEnd(2)
                    } else {
                        Http::ChunkData(left - take)
                    };
                }
                Http::ChunkEnd(left) => {
                    if raw.is_empty() {
                        break;
                    }
                    let take = left.min(raw.len());
                    raw.advance(take);
                    self.http = match (left - take, self.reopen) {
                        (0, true) => Http::Head,
                        (0, false) => Http::ChunkSize,
                        (n, _) => Http::ChunkEnd(n),
                    };
                }
            }
        }
        self.take_sockjs_frames(inbound, eof)
    }

    fn take_sockjs_frames(&mut self, inbound: &mut BytesMut, eof: &mut bool) -> Result<()> {
        loop {
            let frame = match self.streaming {
                Streaming::XhrStreaming => {
                    let Some(offset) = memchr::memchr(b'\n', &self.body[self.scanned..]) else {
                        self.scanned = self.body.len();
                        return Ok(());
                    };
                    let end = self.scanned + offset;
                    self.scanned = 0;
                    self.body.split_to(end + 1).freeze().slice(..end)
                }
                Streaming::EventSource => {
                    if self.body.starts_with(b"\r\n") {
                        self.body.advance(2);
                        continue;
                    }
                    let from = self.scanned.saturating_sub(3);
                    let Some(offset) = find(&self.body[from..], b"\r\n\r\n") else {
                        self.scanned = self.body.len();
                        return Ok(());
                    };
                    let end = from + offset;
                    self.scanned = 0;
                    let event = self.body.split_to(end + 4).freeze();
                    let start = if event.starts_with(b"data: ") { 6 } else { 0 };
                    event.slice(start..end)
                }
            };
            match frame.first() {
                Some(b'o') => self.opened = true,
                Some(b'a') => unquote_array(&frame[1..], inbound)?,
                Some(b'c') => *eof = true,
                // Heart-beats, and the xhr-streaming prelude (a line of h).
                _ => {}
            }
        }
    }

    /// Sends what is queued as one `xhr_send`; returns the bytes written.
    async fn send(&mut self) -> Result<u64> {
        if self.outgoing.is_empty() {
            return Ok(0);
        }
        let body = serde_json::to_string(&std::mem::take(&mut self.outgoing))?;
        let request = format!(
            "POST {}/xhr_send HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            self.path,
            self.addr.host,
            body.len()
        );
        if self.sender.is_none() {
            let stream = TcpStream::connect(self.addr.addr).await?;
            stream.set_nodelay(true)?;
            self.sender = Some(stream);
        }
        let Some(sender) = self.sender.as_mut() else {
            bail!("SockJS: no sending connection")
        };
        sender.write_all(request.as_bytes()).await?;
        let mut head = BytesMut::new();
        let end = loop {
            if let Some(end) = find(&head, b"\r\n\r\n") {
                break end;
            }
            head.reserve(1024);
            if sender.read_buf(&mut head).await? == 0 {
                bail!("SockJS: xhr_send connection closed");
            }
        };
        let status = String::from_utf8_lossy(&head[..end]);
        if status.split(' ').nth(1) != Some("204") {
            bail!("SockJS: xhr_send answered {status}");
        }
        Ok(request.len() as u64)
    }
}

/// Appends the strings of the JSON array `array` (SockJS messages), unescaped, to `inbound`:
/// by hand rather than through serde, one pass and no allocation per message, so that the
/// tool's own cost stays small beside the broker's (every STOMP frame holds escapes: its
/// newlines and its NUL).
fn unquote_array(array: &[u8], inbound: &mut BytesMut) -> Result<()> {
    let mut at = match array.first() {
        Some(b'[') => 1,
        _ => bail!("SockJS: not an array frame"),
    };
    let mut in_string = false;
    while let Some(&b) = array.get(at) {
        if in_string && b != b'"' && b != b'\\' {
            // A run of plain bytes, copied at once.
            let run = memchr::memchr2(b'"', b'\\', &array[at..]).unwrap_or(array.len() - at);
            inbound.extend_from_slice(&array[at..at + run]);
            at += run;
            continue;
        }
        at += 1;
        if !in_string {
            match b {
                b'"' => in_string = true,
                b',' | b' ' => {}
                b']' => return Ok(()),
                other => bail!("SockJS: unexpected byte {other} in an array frame"),
            }
            continue;
        }
        match b {
            b'"' => in_string = false,
            b'\\' => {
                let Some(&escape) = array.get(at) else {
                    bail!("SockJS: cut escape")
                };
                at += 1;
                match escape {
                    b'n' => inbound.put_u8(b'\n'),
                    b'r' => inbound.put_u8(b'\r'),
                    b't' => inbound.put_u8(b'\t'),
                    b'b' => inbound.put_u8(8),
                    b'f' => inbound.put_u8(12),
                    b'u' => {
                        let hex = array.get(at..at + 4).context("SockJS: cut \\u escape")?;
                        at += 4;
                        let unit = u16::from_str_radix(std::str::from_utf8(hex)?, 16)?;
                        let c = char::from_u32(u32::from(unit)).unwrap_or('\u{fffd}');
                        let mut utf8 = [0u8; 4];
                        inbound.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                    }
                    other => inbound.put_u8(other),
                }
            }
            other => inbound.put_u8(other),
        }
    }
    bail!("SockJS: array frame not closed")
}
