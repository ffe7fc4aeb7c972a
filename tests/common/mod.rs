//! Shared test harness: a real broker on loopback (port 0) and raw STOMP clients over TCP and
//! WebSocket that speak through the real codec.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use stompede::protocol::{encode, Command, Decoded, Decoder, Frame, Limits, Version};
use stompede::{BrokerBuilder, Config, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// How long any test waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(10);

/// A config bound to free loopback ports, with a fresh data directory.
pub fn test_config() -> (Config, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().to_owned(),
        stomp: Some("127.0.0.1:0".parse().unwrap()),
        http: Some("127.0.0.1:0".parse().unwrap()),
        ..Config::default()
    };
    (config, dir)
}

/// A running broker and its data directory.
pub struct TestServer {
    pub server: Server,
    pub _dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::with(|_| {}).await
    }

    pub async fn with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let (mut config, dir) = test_config();
        adjust(&mut config);
        let server = BrokerBuilder::new(config).start().await.unwrap();
        TestServer { server, _dir: dir }
    }

    pub fn stomp(&self) -> SocketAddr {
        self.server.stomp_addr().unwrap()
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.server.http_addr().unwrap())
    }

    /// Stops the server and starts it again on the same data directory and configuration:
    /// what a restart brings back is what the store kept.
    #[allow(dead_code)] // Not every test binary restarts.
    pub async fn restart(self) -> TestServer {
        let config = self.server.config().clone();
        self.server.shutdown().await;
        let server = BrokerBuilder::new(config).start().await.unwrap();
        TestServer {
            server,
            _dir: self._dir,
        }
    }

    /// Messages the store kept, by queue (after a restart, which reads them back).
    #[allow(dead_code)]
    pub async fn stored_after_restart(self) -> (TestServer, Vec<(String, usize)>) {
        let server = self.restart().await;
        let stored = server
            .server
            .broker()
            .queue_stats()
            .into_iter()
            .filter(|q| q.depth > 0)
            .map(|q| (q.name, q.depth))
            .collect();
        (server, stored)
    }
}

/// A raw TCP STOMP client.
pub struct Tcp {
    pub stream: TcpStream,
    buf: BytesMut,
    decoder: Decoder,
    pub version: Version,
}

/// A STOMP 1.2 CONNECT as `login` (passcode `secret`).
pub fn connect_frame(login: &str) -> Frame {
    Frame::new(Command::Connect)
        .header("accept-version", "1.2")
        .header("host", "localhost")
        .header("login", login)
        .header("passcode", "secret")
}

impl Tcp {
    pub async fn open(addr: SocketAddr) -> Tcp {
        Tcp {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: BytesMut::new(),
            decoder: Decoder::new(Limits::default()),
            version: Version::V1_2,
        }
    }

    /// Opens and CONNECTs as `login` with STOMP 1.2; returns the client and the CONNECTED frame.
    pub async fn connect(addr: SocketAddr, login: &str) -> Tcp {
        let mut client = Tcp::open(addr).await;
        client.send(connect_frame(login)).await;
        let connected = client.frame().await;
        assert_eq!(connected.command, Command::Connected, "{connected:?}");
        client.decoder.set_version(Version::V1_2);
        client
    }

    pub async fn send(&mut self, frame: Frame) {
        let mut out = BytesMut::new();
        encode(&frame, self.version, &mut out);
        self.raw(&out).await;
    }

    pub async fn raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Opens and CONNECTs as `login`, or `None` when the server is not there (yet).
    pub async fn try_connect(addr: SocketAddr, login: &str) -> Option<Tcp> {
        let mut client = Tcp {
            stream: TcpStream::connect(addr).await.ok()?,
            buf: BytesMut::new(),
            decoder: Decoder::new(Limits::default()),
            version: Version::V1_2,
        };
        client.try_send(connect_frame(login)).await.then_some(())?;
        let connected = tokio::time::timeout(WAIT, client.next_frame())
            .await
            .ok()??;
        (connected.command == Command::Connected).then_some(())?;
        client.decoder.set_version(Version::V1_2);
        Some(client)
    }

    /// Sends `frame`; false when the connection is gone.
    pub async fn try_send(&mut self, frame: Frame) -> bool {
        let mut out = BytesMut::new();
        encode(&frame, self.version, &mut out);
        self.stream.write_all(&out).await.is_ok()
    }

    /// The next frame (heart-beats skipped), or a panic after [`WAIT`].
    pub async fn frame(&mut self) -> Frame {
        tokio::time::timeout(WAIT, self.next_frame())
            .await
            .expect("timed out waiting for a frame")
            .expect("connection closed while waiting for a frame")
    }

    /// The next frame, `None` on EOF.
    pub async fn next_frame(&mut self) -> Option<Frame> {
        loop {
            match self.decoder.decode(&mut self.buf).unwrap() {
                Some(Decoded::Frame(frame)) => return Some(frame),
                Some(Decoded::HeartBeat) => continue,
                None => {}
            }
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Waits for a frame for `wait`; `None` if none came (or EOF).
    pub async fn maybe_frame(&mut self, wait: Duration) -> Option<Frame> {
        tokio::time::timeout(wait, self.next_frame())
            .await
            .ok()
            .flatten()
    }

    /// Waits for the server to close the connection, returning the frames that came first.
    pub async fn until_closed(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        tokio::time::timeout(WAIT, async {
            while let Some(frame) = self.next_frame().await {
                frames.push(frame);
            }
        })
        .await
        .expect("server did not close the connection");
        frames
    }

    /// The next `n` frames.
    /// Waits for `jobs` jobs to complete (none may fail): their results, in the order they
    /// completed, and every progress step seen. A job waiting for memory sends nothing for a
    /// while: one timeout for the whole wait, none per frame.
    pub async fn completed_jobs(
        &mut self,
        jobs: usize,
    ) -> (Vec<serde_json::Value>, std::collections::BTreeSet<String>) {
        let mut results = Vec::new();
        let mut steps = std::collections::BTreeSet::new();
        let all = async {
            while results.len() < jobs {
                let frame = self
                    .next_frame()
                    .await
                    .expect("the server closed the connection");
                if frame.command != Command::Message {
                    continue;
                }
                let body: serde_json::Value = serde_json::from_slice(&frame.body).unwrap();
                assert!(
                    !matches!(body["event"].as_str(), Some("JOB_FAILED" | "JOB_CANCELLED")),
                    "{body}"
                );
                if let Some(step) = body["step"].as_str() {
                    steps.insert(step.to_owned());
                }
                if body["event"] == "JOB_COMPLETED" {
                    results.push(body["result"].clone());
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(900), all)
            .await
            .expect("the jobs did not finish");
        (results, steps)
    }

    pub async fn frames(&mut self, n: usize) -> Vec<Frame> {
        let mut frames = Vec::with_capacity(n);
        for _ in 0..n {
            frames.push(self.frame().await);
        }
        frames
    }

    /// Sends `frame` with a receipt; returns the other frames that arrived before the RECEIPT.
    pub async fn send_until_receipt(&mut self, frame: Frame, receipt: &str) -> Vec<Frame> {
        self.send(frame.header("receipt", receipt)).await;
        let mut before = Vec::new();
        loop {
            let reply = self.frame().await;
            if reply.command == Command::Receipt && reply.get("receipt-id") == Some(receipt) {
                return before;
            }
            before.push(reply);
        }
    }

    /// Sends `frame` with a receipt and waits for the RECEIPT.
    pub async fn send_receipted(&mut self, frame: Frame, receipt: &str) {
        self.send(frame.header("receipt", receipt)).await;
        let reply = self.frame().await;
        assert_eq!(reply.command, Command::Receipt, "{reply:?}");
        assert_eq!(reply.get("receipt-id"), Some(receipt));
    }

    pub async fn subscribe(&mut self, id: &str, destination: &str, ack: &str) {
        self.send_receipted(
            Frame::new(Command::Subscribe)
                .header("id", id)
                .header("destination", destination)
                .header("ack", ack),
            &format!("sub-{id}"),
        )
        .await;
    }
}

/// A raw WebSocket STOMP client.
pub struct Ws {
    pub socket: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
    pub protocol: Option<String>,
}

impl Ws {
    pub async fn open(url: &str, protocols: &str) -> Ws {
        let (socket, response) = tokio_tungstenite::connect_async(Self::request(url, protocols))
            .await
            .unwrap();
        Self::from_parts(socket, response)
    }

    /// Opens with STOMP 1.2 and connects (CONNECTED read).
    pub async fn connect(url: &str) -> Ws {
        let mut ws = Ws::open(url, "v12.stomp").await;
        ws.text("CONNECT\naccept-version:1.2\n\n\0").await;
        assert_eq!(ws.frame().await.0.command, Command::Connected);
        ws
    }

    /// Subscribes with a receipt and waits for it.
    pub async fn subscribe(&mut self, id: &str, destination: &str) {
        self.text(&format!(
            "SUBSCRIBE\nid:{id}\ndestination:{destination}\nreceipt:sub-{id}\n\n\0"
        ))
        .await;
        assert_eq!(self.frame().await.0.command, Command::Receipt);
    }

    /// Opens over a given TCP stream (e.g. one with a tiny receive buffer).
    pub async fn open_on(stream: TcpStream, url: &str, protocols: &str) -> Ws {
        let (socket, response) = tokio_tungstenite::client_async(
            Self::request(url, protocols),
            tokio_tungstenite::MaybeTlsStream::Plain(stream),
        )
        .await
        .unwrap();
        Self::from_parts(socket, response)
    }

    fn request(
        url: &str,
        protocols: &str,
    ) -> tokio_tungstenite::tungstenite::handshake::client::Request {
        let mut request = url.into_client_request().unwrap();
        if !protocols.is_empty() {
            request
                .headers_mut()
                .insert("Sec-WebSocket-Protocol", protocols.parse().unwrap());
        }
        request
    }

    fn from_parts(
        socket: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
        response: tokio_tungstenite::tungstenite::handshake::client::Response,
    ) -> Ws {
        let protocol = response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .map(|v| v.to_str().unwrap().to_owned());
        Ws { socket, protocol }
    }

    pub async fn text(&mut self, text: &str) {
        self.socket.send(Message::text(text)).await.unwrap();
    }

    pub async fn binary(&mut self, bytes: Vec<u8>) {
        self.socket.send(Message::binary(bytes)).await.unwrap();
    }

    /// The next non-heart-beat message, decoded as exactly one frame.
    pub async fn frame(&mut self) -> (Frame, bool) {
        tokio::time::timeout(WAIT, async {
            loop {
                let message = self.socket.next().await.expect("closed").unwrap();
                let (data, text): (Bytes, bool) = match message {
                    Message::Text(t) => (Bytes::copy_from_slice(t.as_bytes()), true),
                    Message::Binary(b) => (b, false),
                    Message::Close(_) => panic!("closed while waiting for a frame"),
                    _ => continue,
                };
                if data.iter().all(|b| *b == b'\n' || *b == b'\r') {
                    continue;
                }
                let mut buf = BytesMut::from(&data[..]);
                let mut decoder = Decoder::new(Limits::default());
                decoder.set_version(Version::V1_2);
                match decoder.decode(&mut buf).unwrap() {
                    Some(Decoded::Frame(frame)) => {
                        assert!(buf.is_empty(), "one frame per message");
                        return (frame, text);
                    }
                    other => panic!("no frame in message: {other:?}"),
                }
            }
        })
        .await
        .expect("timed out waiting for a frame")
    }

    /// Reads until the server closes; returns the frames seen.
    pub async fn until_closed(&mut self) -> Vec<Frame> {
        let mut frames = Vec::new();
        tokio::time::timeout(WAIT, async {
            while let Some(Ok(message)) = self.socket.next().await {
                let data = match message {
                    Message::Text(t) => Bytes::copy_from_slice(t.as_bytes()),
                    Message::Binary(b) => b,
                    Message::Close(_) => break,
                    _ => continue,
                };
                let mut buf = BytesMut::from(&data[..]);
                let mut decoder = Decoder::new(Limits::default());
                while let Ok(Some(item)) = decoder.decode(&mut buf) {
                    if let Decoded::Frame(frame) = item {
                        frames.push(frame);
                    }
                }
            }
        })
        .await
        .expect("server did not close the WebSocket");
        frames
    }
}

/// The body of test message `id`: long enough to notice truncation, derived from the id to
/// notice corruption.
pub fn body_for(id: &str) -> String {
    format!("{id}|{}", id.repeat(8))
}

/// The `message` header of an ERROR frame (panics if `frame` is not an ERROR).
pub fn error_message(frame: &Frame) -> &str {
    assert_eq!(
        frame.command,
        Command::Error,
        "expected ERROR, got {frame:?}"
    );
    frame.get("message").expect("ERROR without message header")
}

/// A `stompede serve` process on free loopback ports over `data_dir` (the binary registers the
/// `demo` and `reconcile` job types). Dropping it SIGKILLs it: no shutdown, no flush.
pub struct ServerProcess {
    child: std::process::Child,
    pub stomp: SocketAddr,
    /// The JSON line the binary prints once it listens.
    pub listening: serde_json::Value,
}

impl ServerProcess {
    pub fn start(data_dir: &std::path::Path) -> ServerProcess {
        Self::start_with(data_dir, &[])
    }

    /// Starts with extra `serve` flags.
    pub fn start_with(data_dir: &std::path::Path, flags: &[&str]) -> ServerProcess {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_stompede"))
            .args([
                "serve",
                "--stomp",
                "127.0.0.1:0",
                "--http",
                "off",
                "--log",
                "warn",
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .args(flags)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let listening: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("no listening line ({e}): {line:?}"));
        let stomp = listening["stomp"].as_str().unwrap().parse().unwrap();
        ServerProcess {
            child,
            stomp,
            listening,
        }
    }
}

impl ServerProcess {
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILLs the server and waits for it to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
