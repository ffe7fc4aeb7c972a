//! Transports: plain TCP, or WebSocket (RFC 6455) framed here over a TCP stream.
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

    /// The broker's address.
    pub fn addr(&self) -> SocketAddr {
        match self {
            Target::Tcp(addr) | Target::Ws { addr, .. } => *addr,
        }
    }

    /// "ws" or "tcp".
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Tcp(_) => "tcp",
            Target::Ws { .. } => "ws",
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
}

impl Conn {
    /// Connects, and performs the WebSocket opening handshake when the target is WebSocket.
    pub async fn open(target: &Target, options: &ConnOptions) -> Result<Conn> {
        let addr = match target {
            Target::Tcp(addr) | Target::Ws { addr, .. } => *addr,
        };
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
        };
        if let Target::Ws { host, path, .. } = target {
            conn.handshake(host, path, options.subprotocol).await?;
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
        let buf = if self.ws {
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
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> Result<()> {
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
    haystack.windows(needle.len()).position(|w| w == needle)
}
