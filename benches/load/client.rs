//! The messaging protocols spoken over a [`Conn`]: STOMP 1.2 (through the stompede codec), and
//! NATS's text protocol (PUB/SUB/MSG) for comparisons against nats-server.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::{Buf, Bytes};
use stompede::protocol::{
    names, write_body, write_command, write_content_length, write_header, Command, Decoded,
    Decoder, Escaping, Limits, Version,
};

use crate::conn::{find, Conn, ConnOptions, Target};

/// Which protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Proto {
    /// STOMP 1.2.
    Stomp,
    /// NATS core protocol (no queues with acks: fan-out and connections only).
    Nats,
}

/// Credentials and socket options for every connection of a run.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    pub proto: Proto,
    pub login: String,
    pub passcode: String,
    pub host: String,
    pub conn: ConnOptions,
}

/// How a subscription acknowledges.
#[derive(Clone, Copy, Debug)]
pub enum Ack {
    Auto,
    /// `ack:client-individual` with a prefetch window.
    ClientIndividual {
        prefetch: u32,
    },
}

/// Something the server sent.
pub enum Event {
    /// A message; `ack` is the STOMP 1.2 `ack` header, when present.
    Message { body: Bytes, ack: Option<Bytes> },
    /// A RECEIPT (STOMP) or PONG (NATS).
    Receipt(Bytes),
    /// An ERROR (STOMP) or -ERR (NATS): its message.
    Error(String),
    /// Anything else (CONNECTED, INFO, +OK, heart-beats).
    Other,
}

/// One client connection.
pub struct Client {
    pub conn: Conn,
    proto: Proto,
    decoder: Decoder,
}

const ESC: Escaping = Escaping::V12;

impl Client {
    /// Connects and logs in (STOMP CONNECT/CONNECTED, or NATS INFO/CONNECT/PING/PONG).
    pub async fn connect(
        target: &Target,
        options: &ClientOptions,
        timeout: Duration,
    ) -> Result<Client> {
        tokio::time::timeout(timeout, Self::connect_inner(target, options))
            .await
            .context("connect timed out")?
    }

    async fn connect_inner(target: &Target, options: &ClientOptions) -> Result<Client> {
        let mut conn_options = options.conn.clone();
        match options.proto {
            Proto::Stomp => {
                conn_options.subprotocol = Some("v12.stomp");
                conn_options.text = true;
            }
            Proto::Nats => {
                conn_options.subprotocol = None;
                conn_options.text = false;
            }
        }
        let conn = Conn::open(target, &conn_options).await?;
        let mut client = Client {
            conn,
            proto: options.proto,
            decoder: Decoder::new(Limits::default()),
        };
        match options.proto {
            Proto::Stomp => {
                client.conn.send(|b| {
                    write_command(b, Command::Connect);
                    let none = Escaping::None;
                    write_header(b, none, names::ACCEPT_VERSION, "1.2");
                    write_header(b, none, names::HOST, &options.host);
                    write_header(b, none, names::LOGIN, &options.login);
                    write_header(b, none, names::PASSCODE, &options.passcode);
                    write_header(b, none, names::HEART_BEAT, "0,0");
                    write_body(b, b"");
                });
                client.conn.flush().await?;
                loop {
                    match client.next_event_or_read().await? {
                        Some(Event::Other) if client.decoder.version() == Version::V1_2 => break,
                        Some(Event::Error(message)) => bail!("CONNECT refused: {message}"),
                        Some(_) => {}
                        None => bail!("connection closed before CONNECTED"),
                    }
                }
            }
            Proto::Nats => {
                // INFO arrives first; then CONNECT and a PING whose PONG confirms the login.
                let connect = serde_json::json!({
                    "verbose": false, "pedantic": false, "name": "stompede-load",
                    "user": options.login, "pass": options.passcode, "lang": "rust",
                    "version": "0", "protocol": 1,
                });
                client.conn.send(|b| {
                    b.extend_from_slice(format!("CONNECT {connect}\r\nPING\r\n").as_bytes());
                });
                client.conn.flush().await?;
                loop {
                    match client.next_event_or_read().await? {
                        Some(Event::Receipt(_)) => break,
                        Some(Event::Error(message)) => bail!("NATS CONNECT refused: {message}"),
                        Some(_) => {}
                        None => bail!("connection closed before PONG"),
                    }
                }
            }
        }
        Ok(client)
    }

    /// Queues a subscription; with `receipt`, the server confirms it (STOMP RECEIPT, NATS PONG).
    pub fn subscribe(&mut self, destination: &str, id: &str, ack: Ack, receipt: Option<&str>) {
        match self.proto {
            Proto::Stomp => self.conn.send(|b| {
                write_command(b, Command::Subscribe);
                write_header(b, ESC, names::DESTINATION, destination);
                write_header(b, ESC, names::ID, id);
                match ack {
                    Ack::Auto => write_header(b, ESC, names::ACK, "auto"),
                    Ack::ClientIndividual { prefetch } => {
                        write_header(b, ESC, names::ACK, "client-individual");
                        let prefetch = prefetch.to_string();
                        // RabbitMQ and stompede read prefetch-count; ActiveMQ its own name.
                        write_header(b, ESC, "prefetch-count", &prefetch);
                        write_header(b, ESC, "activemq.prefetchSize", &prefetch);
                    }
                }
                if let Some(receipt) = receipt {
                    write_header(b, ESC, names::RECEIPT, receipt);
                }
                write_body(b, b"");
            }),
            Proto::Nats => {
                let subject = nats_subject(destination);
                self.conn.send(|b| {
                    b.extend_from_slice(format!("SUB {subject} {id}\r\n").as_bytes());
                    if receipt.is_some() {
                        b.extend_from_slice(b"PING\r\n");
                    }
                });
            }
        }
    }

    /// Queues a message. With `receipt`, the server confirms that it (and all before it) was
    /// handled.
    pub fn publish(
        &mut self,
        destination: &str,
        body: &[u8],
        headers: &[(&str, &str)],
        receipt: Option<&str>,
    ) {
        match self.proto {
            Proto::Stomp => self.conn.send(|b| {
                b.reserve(body.len() + destination.len() + 64);
                write_command(b, Command::Send);
                write_header(b, ESC, names::DESTINATION, destination);
                for (name, value) in headers {
                    write_header(b, ESC, name, value);
                }
                if let Some(receipt) = receipt {
                    write_header(b, ESC, names::RECEIPT, receipt);
                }
                write_content_length(b, body.len());
                write_body(b, body);
            }),
            Proto::Nats => {
                let subject = nats_subject(destination);
                self.conn.send(|b| {
                    b.extend_from_slice(b"PUB ");
                    b.extend_from_slice(subject.as_bytes());
                    b.extend_from_slice(b" ");
                    stompede::protocol::write_decimal(b, body.len());
                    b.extend_from_slice(b"\r\n");
                    b.extend_from_slice(body);
                    b.extend_from_slice(b"\r\n");
                    if receipt.is_some() {
                        b.extend_from_slice(b"PING\r\n");
                    }
                });
            }
        }
    }

    /// Queues a STOMP 1.2 ACK of the message whose `ack` header was `id`.
    pub fn ack(&mut self, id: &[u8]) {
        self.conn.send(|b| {
            b.extend_from_slice(b"ACK\nid:");
            b.extend_from_slice(id);
            b.extend_from_slice(b"\n\n\0");
        });
    }

    /// Queues a keep-alive: a STOMP heart-beat EOL (accepted between frames whatever was
    /// negotiated; RabbitMQ's Web-STOMP closes a WebSocket that sent nothing for 60 s), or a
    /// NATS PING.
    pub fn keepalive(&mut self) {
        match self.proto {
            Proto::Stomp => self.conn.send(|b| b.extend_from_slice(b"\n")),
            Proto::Nats => self.conn.send(|b| b.extend_from_slice(b"PING\r\n")),
        }
    }

    /// Queues a STOMP DISCONNECT (NATS: nothing).
    pub fn disconnect(&mut self) {
        if self.proto == Proto::Stomp {
            self.conn.send(|b| {
                write_command(b, Command::Disconnect);
                write_body(b, b"");
            });
        }
    }

    /// The next STOMP frame, reading as needed (heart-beats skipped); `None` at end of stream.
    /// For callers that need a frame's headers (a RECEIPT's `job-id`, a MESSAGE's `event`).
    pub async fn next_frame(&mut self) -> Result<Option<stompede::protocol::Frame>> {
        if self.proto != Proto::Stomp {
            bail!("frames are STOMP's");
        }
        loop {
            let decoded = self
                .decoder
                .decode(&mut self.conn.inbound)
                .map_err(|e| anyhow::anyhow!("STOMP decode: {e}"))?;
            match decoded {
                Some(Decoded::Frame(frame)) => return Ok(Some(frame)),
                Some(Decoded::HeartBeat) => continue,
                None => {}
            }
            self.conn.flush().await?;
            if !self.conn.fill().await? {
                return Ok(None);
            }
        }
    }

    /// Queues a STOMP UNSUBSCRIBE of subscription `id`.
    pub fn unsubscribe(&mut self, id: &str) {
        self.conn.send(|b| {
            write_command(b, Command::Unsubscribe);
            write_header(b, ESC, names::ID, id);
            write_body(b, b"");
        });
    }

    /// The next event already buffered, without reading.
    pub fn next_event(&mut self) -> Result<Option<Event>> {
        match self.proto {
            Proto::Stomp => self.next_stomp(),
            Proto::Nats => self.next_nats(),
        }
    }

    fn next_stomp(&mut self) -> Result<Option<Event>> {
        let decoded = self
            .decoder
            .decode(&mut self.conn.inbound)
            .map_err(|e| anyhow::anyhow!("STOMP decode: {e}"))?;
        let Some(decoded) = decoded else {
            return Ok(None);
        };
        let frame = match decoded {
            Decoded::HeartBeat => return Ok(Some(Event::Other)),
            Decoded::Frame(frame) => frame,
        };
        Ok(Some(match frame.command {
            Command::Message => Event::Message {
                ack: frame
                    .headers
                    .get_shared(names::ACK)
                    .map(bytestring::ByteString::into_bytes),
                body: frame.body,
            },
            Command::Receipt => Event::Receipt(
                frame
                    .headers
                    .get_shared(names::RECEIPT_ID)
                    .map(bytestring::ByteString::into_bytes)
                    .unwrap_or_default(),
            ),
            Command::Error => Event::Error(format!(
                "{} {}",
                frame.get(names::MESSAGE).unwrap_or("ERROR"),
                String::from_utf8_lossy(&frame.body).trim()
            )),
            Command::Connected => {
                let version = frame
                    .get(names::VERSION)
                    .and_then(Version::parse)
                    .unwrap_or(Version::V1_0);
                if version != Version::V1_2 {
                    bail!("the server speaks STOMP {version:?}; this tool needs 1.2");
                }
                self.decoder.set_version(version);
                Event::Other
            }
            _ => Event::Other,
        }))
    }

    fn next_nats(&mut self) -> Result<Option<Event>> {
        let buf = &self.conn.inbound;
        let Some(eol) = find(buf, b"\r\n") else {
            if buf.len() > 64 * 1024 {
                bail!("NATS: protocol line too long");
            }
            return Ok(None);
        };
        let line = &buf[..eol];
        if line.starts_with(b"MSG ") {
            // MSG <subject> <sid> [reply-to] <#bytes>
            let len_start = line.iter().rposition(|&c| c == b' ').unwrap_or(0) + 1;
            let len: usize = std::str::from_utf8(&line[len_start..])?
                .parse()
                .context("NATS MSG size")?;
            if buf.len() < eol + 2 + len + 2 {
                self.conn.inbound.reserve(eol + 2 + len + 2 - buf.len());
                return Ok(None);
            }
            self.conn.inbound.advance(eol + 2);
            let body = self.conn.inbound.split_to(len).freeze();
            self.conn.inbound.advance(2);
            return Ok(Some(Event::Message { body, ack: None }));
        }
        let event = if line == b"PING" {
            self.conn.send(|b| b.extend_from_slice(b"PONG\r\n"));
            Event::Other
        } else if line == b"PONG" {
            Event::Receipt(Bytes::new())
        } else if line.starts_with(b"-ERR") {
            Event::Error(String::from_utf8_lossy(line).into_owned())
        } else {
            Event::Other
        };
        self.conn.inbound.advance(eol + 2);
        Ok(Some(event))
    }

    /// The next event, reading as needed; `None` at end of stream. Flushes queued replies
    /// (pongs) before waiting.
    pub async fn next_event_or_read(&mut self) -> Result<Option<Event>> {
        loop {
            if let Some(event) = self.next_event()? {
                return Ok(Some(event));
            }
            self.conn.flush().await?;
            if !self.conn.fill().await? {
                return Ok(None);
            }
        }
    }

    /// Reads until the receipt `id` (STOMP) or the next PONG (NATS). Messages that arrive
    /// meanwhile are handed to `on_message`.
    pub async fn wait_receipt(
        &mut self,
        id: &str,
        mut on_message: impl FnMut(Bytes),
    ) -> Result<()> {
        loop {
            match self.next_event_or_read().await? {
                Some(Event::Receipt(got)) if self.proto == Proto::Nats || got == id.as_bytes() => {
                    return Ok(())
                }
                Some(Event::Error(message)) => bail!("server error: {message}"),
                Some(Event::Message { body, .. }) => on_message(body),
                Some(_) => {}
                None => bail!("connection closed while waiting for receipt {id}"),
            }
        }
    }
}

/// `/topic/a-b` becomes the NATS subject `topic.a-b`.
pub fn nats_subject(destination: &str) -> String {
    destination.trim_start_matches('/').replace('/', ".")
}
