//! The TLS listeners (`--stomps`, `--https`) of a real `stompede serve` process, with
//! self-signed certificates made here: STOMP over TLS and `wss://` round trips, the HTTPS API,
//! SockJS and dashboard, the same Origin check as plain WebSocket, certificate reloads on
//! SIGHUP (good and bad), clients that do not speak TLS, startup errors, and the command-line
//! client over `wss://`, `tls://` and `https://`.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use common::{connect_frame, WAIT};
use futures::{SinkExt, StreamExt};
use rustls_pki_types::{CertificateDer, ServerName};
use stompede::protocol::{encode, Command as Stomp, Decoded, Decoder, Frame, Limits, Version};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

const BIN: &str = env!("CARGO_BIN_EXE_stompede");

/// A self-signed certificate for `localhost` and `127.0.0.1`, and its key, in PEM.
struct Certificate {
    cert: String,
    key: String,
}

impl Certificate {
    fn new() -> Certificate {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        Certificate {
            cert: made.cert.pem(),
            key: made.signing_key.serialize_pem(),
        }
    }

    fn der(&self) -> CertificateDer<'static> {
        use rustls_pki_types::pem::PemObject;
        CertificateDer::from_pem_slice(self.cert.as_bytes()).unwrap()
    }
}

/// A `stompede serve` with every listener on (plain and TLS), users `ann` and `bob` (password
/// `secret`), its log lines readable; killed when dropped.
struct Served {
    child: Child,
    stomp: SocketAddr,
    stomps: SocketAddr,
    https: SocketAddr,
    logs: mpsc::Receiver<String>,
    cert_file: PathBuf,
    key_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    fn start(certificate: &Certificate, extra: &[&str]) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let cert_file = dir.path().join("cert.pem");
        let key_file = dir.path().join("key.pem");
        std::fs::write(&cert_file, &certificate.cert).unwrap();
        std::fs::write(&key_file, &certificate.key).unwrap();
        let config = dir.path().join("stompede.toml");
        std::fs::write(&config, "job-admins = [\"ann\"]\n").unwrap();
        let mut child = Command::new(BIN)
            .args(["serve", "--stomp", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .args(["--stomps", "127.0.0.1:0", "--https", "127.0.0.1:0"])
            .args(["--user", "ann:secret", "--user", "bob:secret"])
            .args(["--log", "info,stompede::transport=debug"])
            .arg("--tls-cert")
            .arg(&cert_file)
            .arg("--tls-key")
            .arg(&key_file)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--config")
            .arg(&config)
            .args(extra)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (lines, logs) = mpsc::channel();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let listening: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("no listening line ({e}): {line:?}"));
        let addr = |key: &str| listening[key].as_str().unwrap().parse().unwrap();
        let https: SocketAddr = addr("https");
        assert_eq!(listening["wss"], format!("wss://{https}/ws"));
        Served {
            stomp: addr("stomp"),
            stomps: addr("stomps"),
            https,
            child,
            logs,
            cert_file,
            key_file,
            _dir: dir,
        }
    }

    fn wss(&self) -> String {
        format!("wss://{}/ws", self.https)
    }

    fn base(&self) -> String {
        format!("https://{}", self.https)
    }

    /// Sends SIGHUP.
    fn hangup(&self) {
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
    }

    /// Waits for a log line holding `needle` (lines before it are passed over).
    fn log_line(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.logs.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(error) => panic!("no log line with {needle:?}: {error}"),
            }
        }
    }
}

/// A TLS client configuration trusting exactly `trusted`.
fn client_config(trusted: &[&Certificate]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in trusted {
        roots.add(certificate.der()).unwrap();
    }
    Arc::new(
        rustls::ClientConfig::builder_with_provider(stompede::tls_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// A TLS connection to `addr` as `127.0.0.1`, and the certificate the server showed.
async fn tls_connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> (TlsStream<TcpStream>, CertificateDer<'static>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap();
    let shown = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    (tls, shown)
}

/// A STOMP 1.2 client over any byte stream (TLS here).
struct Client<S> {
    stream: S,
    buf: BytesMut,
    decoder: Decoder,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    /// CONNECTs as `login` and checks the answer.
    async fn connect(stream: S, login: &str) -> Client<S> {
        let mut client = Client {
            stream,
            buf: BytesMut::new(),
            decoder: Decoder::new(Limits::default()),
        };
        client.send(connect_frame(login)).await;
        let connected = client.frame().await;
        assert_eq!(connected.command, Stomp::Connected, "{connected:?}");
        client.decoder.set_version(Version::V1_2);
        client
    }

    async fn send(&mut self, frame: Frame) {
        let mut out = BytesMut::new();
        encode(&frame, Version::V1_2, &mut out);
        self.stream.write_all(&out).await.unwrap();
        self.stream.flush().await.unwrap();
    }

    /// The next frame (heart-beats skipped), or a panic after [`WAIT`].
    async fn frame(&mut self) -> Frame {
        let next = async {
            loop {
                match self.decoder.decode(&mut self.buf).unwrap() {
                    Some(Decoded::Frame(frame)) => return frame,
                    Some(Decoded::HeartBeat) => continue,
                    None => {}
                }
                let n = self.stream.read_buf(&mut self.buf).await.unwrap();
                assert!(n > 0, "the server closed the connection");
            }
        };
        tokio::time::timeout(WAIT, next)
            .await
            .expect("timed out waiting for a frame")
    }

    /// Sends `frame` with a receipt and waits for it.
    async fn receipted(&mut self, frame: Frame, receipt: &str) {
        self.send(frame.header("receipt", receipt)).await;
        let answer = self.frame().await;
        assert_eq!(answer.command, Stomp::Receipt, "{answer:?}");
        assert_eq!(answer.get("receipt-id"), Some(receipt));
    }

    async fn subscribe(&mut self, destination: &str) {
        let subscribe = Frame::new(Stomp::Subscribe)
            .header("id", "0")
            .header("destination", destination);
        self.receipted(subscribe, "subscribed").await;
    }

    async fn publish(&mut self, destination: &str, body: &str) {
        let send = Frame::new(Stomp::Send)
            .header("destination", destination)
            .body(body.as_bytes().to_vec());
        self.receipted(send, "sent").await;
    }

    /// The next MESSAGE's body.
    async fn message(&mut self) -> String {
        let frame = self.frame().await;
        assert_eq!(frame.command, Stomp::Message, "{frame:?}");
        String::from_utf8(frame.body.to_vec()).unwrap()
    }
}

/// A STOMP-over-TLS session on the `stomps` port as `login`, and the certificate it was shown.
async fn stomps_client(
    served: &Served,
    trusted: &[&Certificate],
    login: &str,
) -> (Client<TlsStream<TcpStream>>, CertificateDer<'static>) {
    let (tls, shown) = tls_connect(served.stomps, client_config(trusted)).await;
    (Client::connect(tls, login).await, shown)
}

type Wss =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A `wss://` connection to `url` (with `origin`, if any), not yet speaking STOMP.
async fn wss_open(
    url: &str,
    trusted: &[&Certificate],
    origin: Option<&str>,
) -> Result<Wss, tokio_tungstenite::tungstenite::Error> {
    let mut request = url.into_client_request().unwrap();
    if !url.contains("/sockjs/") {
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("v12.stomp"),
        );
    }
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("Origin", HeaderValue::from_str(origin).unwrap());
    }
    let connector = tokio_tungstenite::Connector::Rustls(client_config(trusted));
    tokio_tungstenite::connect_async_tls_with_config(request, None, false, Some(connector))
        .await
        .map(|(socket, _)| socket)
}

async fn wss_send(socket: &mut Wss, frame: Frame) {
    let mut out = BytesMut::new();
    encode(&frame, Version::V1_2, &mut out);
    socket
        .send(Message::text(String::from_utf8(out.to_vec()).unwrap()))
        .await
        .unwrap();
}

/// The next STOMP frame of a WebSocket carrying one frame per message.
async fn wss_frame(socket: &mut Wss) -> Frame {
    let next = async {
        loop {
            let bytes = match socket.next().await.unwrap().unwrap() {
                Message::Text(text) => text.as_bytes().to_vec(),
                Message::Binary(bytes) => bytes.to_vec(),
                _ => continue,
            };
            let mut buf = BytesMut::from(&bytes[..]);
            let mut decoder = Decoder::new(Limits::default());
            match decoder.decode(&mut buf).unwrap() {
                Some(Decoded::Frame(frame)) => return frame,
                _ => continue,
            }
        }
    };
    tokio::time::timeout(WAIT, next)
        .await
        .expect("timed out waiting for a WebSocket frame")
}

/// An HTTPS client trusting `trusted` only.
fn https_client(trusted: &Certificate) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(trusted.cert.as_bytes()).unwrap())
        .https_only(true)
        .build()
        .unwrap()
}

#[tokio::test]
async fn stomp_over_tls_is_the_same_broker_as_plain_stomp() {
    let certificate = Certificate::new();
    let served = Served::start(&certificate, &[]);
    let (mut subscriber, shown) = stomps_client(&served, &[&certificate], "ann").await;
    assert_eq!(shown, certificate.der());
    subscriber.subscribe("/topic/tls").await;
    let (mut publisher, _) = stomps_client(&served, &[&certificate], "bob").await;
    publisher.publish("/topic/tls", "over TLS").await;
    assert_eq!(subscriber.message().await, "over TLS");
    // A plain TCP publisher reaches the TLS subscriber: one broker behind both listeners.
    let plain = TcpStream::connect(served.stomp).await.unwrap();
    let mut plain = Client::connect(plain, "bob").await;
    plain.publish("/topic/tls", "from plain TCP").await;
    assert_eq!(subscriber.message().await, "from plain TCP");
    // A large body crosses several TLS records both ways.
    let large = "x".repeat(200_000);
    publisher.publish("/topic/tls", &large).await;
    assert_eq!(subscriber.message().await, large);
    // The session list says which transport each session came by.
    let sessions: serde_json::Value = https_client(&certificate)
        .get(format!("{}/api/sessions", served.base()))
        .basic_auth("ann", Some("secret"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .map(|text| serde_json::from_str(&text).unwrap())
        .unwrap();
    let transports: Vec<&str> = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["transport"].as_str())
        .collect();
    assert!(transports.contains(&"tcp+tls"), "{sessions}");
    assert!(transports.contains(&"tcp"), "{sessions}");
}

#[tokio::test]
async fn secure_websocket_carries_stomp_with_the_same_origin_check() {
    let certificate = Certificate::new();
    let served = Served::start(&certificate, &[]);
    let mut socket = wss_open(&served.wss(), &[&certificate], None)
        .await
        .unwrap();
    wss_send(&mut socket, connect_frame("ann")).await;
    assert_eq!(wss_frame(&mut socket).await.command, Stomp::Connected);
    let subscribe = Frame::new(Stomp::Subscribe)
        .header("id", "0")
        .header("destination", "/topic/wss")
        .header("receipt", "r");
    wss_send(&mut socket, subscribe).await;
    assert_eq!(wss_frame(&mut socket).await.command, Stomp::Receipt);
    // Published over STOMP-over-TLS, delivered over wss://.
    let (mut publisher, _) = stomps_client(&served, &[&certificate], "bob").await;
    publisher.publish("/topic/wss", "to the browser").await;
    let message = wss_frame(&mut socket).await;
    assert_eq!(message.command, Stomp::Message);
    assert_eq!(&message.body[..], b"to the browser");
    // The server's own https pages may open a session; another site's may not.
    let own = format!("https://{}", served.https);
    let mut page = wss_open(&served.wss(), &[&certificate], Some(&own))
        .await
        .unwrap();
    wss_send(&mut page, connect_frame("bob")).await;
    assert_eq!(wss_frame(&mut page).await.command, Stomp::Connected);
    let refused = wss_open(&served.wss(), &[&certificate], Some("https://evil.example")).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("expected 403, got {other:?}"),
    }
    // SockJS's raw WebSocket transport, over TLS too.
    let raw = format!("wss://{}/sockjs/websocket", served.https);
    let mut sockjs = wss_open(&raw, &[&certificate], None).await.unwrap();
    wss_send(&mut sockjs, connect_frame("ann")).await;
    assert_eq!(wss_frame(&mut sockjs).await.command, Stomp::Connected);
}

#[tokio::test]
async fn the_api_the_dashboard_and_sockjs_answer_over_https() {
    let certificate = Certificate::new();
    let served = Served::start(&certificate, &[]);
    let client = https_client(&certificate);
    let get = |path: &str| client.get(format!("{}{path}", served.base()));
    let health = get("/health").send().await.unwrap();
    assert_eq!(health.status(), 200);
    let unauthenticated = get("/api/jobs").send().await.unwrap();
    assert_eq!(unauthenticated.status(), 401);
    let jobs = get("/api/jobs")
        .basic_auth("ann", Some("secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(jobs.status(), 200);
    let jobs: serde_json::Value = serde_json::from_str(&jobs.text().await.unwrap()).unwrap();
    assert!(jobs.is_object() || jobs.is_array(), "{jobs}");
    let dashboard = get("/").send().await.unwrap();
    assert_eq!(dashboard.status(), 200);
    assert!(dashboard.text().await.unwrap().contains("<html"));
    let info = get("/sockjs/info")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["websocket"], true);
    // Keep-alive: several requests on one TLS connection, then a POST with a body.
    for _ in 0..3 {
        assert_eq!(get("/health").send().await.unwrap().status(), 200);
    }
    let token = client
        .post(format!("{}/api/tokens", served.base()))
        .basic_auth("ann", Some("secret"))
        .send()
        .await
        .unwrap();
    assert!(token.status().is_success(), "{}", token.status());
}

#[tokio::test]
async fn sighup_serves_the_new_certificate_to_new_connections_and_keeps_sessions() {
    let old = Certificate::new();
    let new = Certificate::new();
    let served = Served::start(&old, &[]);
    let both = [&old, &new];
    let (mut before, shown) = stomps_client(&served, &both, "ann").await;
    assert_eq!(shown, old.der());
    before.subscribe("/topic/reload").await;
    let mut socket = wss_open(&served.wss(), &both, None).await.unwrap();
    wss_send(&mut socket, connect_frame("bob")).await;
    assert_eq!(wss_frame(&mut socket).await.command, Stomp::Connected);

    std::fs::write(&served.cert_file, &new.cert).unwrap();
    std::fs::write(&served.key_file, &new.key).unwrap();
    served.hangup();
    served.log_line("TLS certificate reloaded");

    let (mut after, shown) = stomps_client(&served, &both, "bob").await;
    assert_eq!(
        shown,
        new.der(),
        "a new connection gets the new certificate"
    );
    let (_, shown) = tls_connect(served.https, client_config(&both)).await;
    assert_eq!(shown, new.der(), "so does a new HTTPS connection");
    // A client that trusts only the old certificate can no longer connect...
    let tcp = TcpStream::connect(served.stomps).await.unwrap();
    let refused = tokio_rustls::TlsConnector::from(client_config(&[&old]))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await;
    assert!(refused.is_err());
    // ...but the sessions opened before the reload go on, both ways.
    after.publish("/topic/reload", "after the reload").await;
    assert_eq!(before.message().await, "after the reload");
    let send = Frame::new(Stomp::Send)
        .header("destination", "/topic/reload")
        .body(&b"from before"[..]);
    before.send(send).await;
    assert_eq!(before.message().await, "from before");
    let subscribe = Frame::new(Stomp::Subscribe)
        .header("id", "0")
        .header("destination", "/topic/reload")
        .header("receipt", "r");
    wss_send(&mut socket, subscribe).await;
    assert_eq!(wss_frame(&mut socket).await.command, Stomp::Receipt);
    after.publish("/topic/reload", "to the old websocket").await;
    assert_eq!(
        &wss_frame(&mut socket).await.body[..],
        b"to the old websocket"
    );
}

#[tokio::test]
async fn a_bad_certificate_on_reload_keeps_the_old_one_in_service() {
    let certificate = Certificate::new();
    let served = Served::start(&certificate, &[]);
    let (mut before, _) = stomps_client(&served, &[&certificate], "ann").await;
    before.subscribe("/topic/kept").await;
    std::fs::write(
        &served.cert_file,
        "-----BEGIN CERTIFICATE-----\nnot base64!\n",
    )
    .unwrap();
    served.hangup();
    let line = served.log_line("TLS certificate not reloaded");
    assert!(line.contains("cert.pem"), "{line}");
    // A key that belongs to another certificate is refused too.
    let other = Certificate::new();
    std::fs::write(&served.cert_file, &certificate.cert).unwrap();
    std::fs::write(&served.key_file, &other.key).unwrap();
    served.hangup();
    let line = served.log_line("TLS certificate not reloaded");
    assert!(line.contains("does not go with"), "{line}");
    let (mut after, shown) = stomps_client(&served, &[&certificate], "bob").await;
    assert_eq!(shown, certificate.der());
    after.publish("/topic/kept", "still served").await;
    assert_eq!(before.message().await, "still served");
    let health = https_client(&certificate)
        .get(format!("{}/health", served.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

/// Reads until the server closes the connection (or resets it).
async fn until_closed(stream: &mut TcpStream) {
    let mut scrap = [0u8; 1024];
    let closed = tokio::time::timeout(WAIT, async {
        while let Ok(1..) = stream.read(&mut scrap).await {}
    })
    .await;
    assert!(closed.is_ok(), "the server kept the connection open");
}

#[tokio::test]
async fn clients_that_do_not_speak_tls_are_cut_off_and_harm_nobody() {
    let certificate = Certificate::new();
    let served = Served::start(&certificate, &["--tls-handshake-timeout-ms", "300"]);
    let (mut subscriber, _) = stomps_client(&served, &[&certificate], "ann").await;
    subscriber.subscribe("/topic/calm").await;
    // Plain STOMP on the TLS port.
    let mut plain = TcpStream::connect(served.stomps).await.unwrap();
    plain
        .write_all(b"CONNECT\naccept-version:1.2\nlogin:ann\npasscode:secret\n\n\0")
        .await
        .unwrap();
    until_closed(&mut plain).await;
    // Plain HTTP on the HTTPS port.
    let mut http = TcpStream::connect(served.https).await.unwrap();
    http.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    until_closed(&mut http).await;
    // A client that connects and never starts its handshake is let go after the timeout.
    let mut silent = TcpStream::connect(served.stomps).await.unwrap();
    until_closed(&mut silent).await;
    served.log_line("TLS handshake failed");
    // Meanwhile the TLS session went on.
    let (mut publisher, _) = stomps_client(&served, &[&certificate], "bob").await;
    publisher.publish("/topic/calm", "unharmed").await;
    assert_eq!(subscriber.message().await, "unharmed");
    // Each failure was counted.
    let metrics = https_client(&certificate)
        .get(format!("{}/metrics", served.base()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let failed: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("stompede_tls_handshakes_failed_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(failed, 3, "{metrics}");
}

/// `stompede serve` with a TLS listener and `cert`/`key`: its exit status and standard error.
fn start_failure(cert: &Path, key: &Path) -> (std::process::ExitStatus, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args([
            "serve",
            "--stomp",
            "off",
            "--http",
            "off",
            "--https",
            "127.0.0.1:0",
        ])
        .arg("--tls-cert")
        .arg(cert)
        .arg("--tls-key")
        .arg(key)
        .arg("--data-dir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_missing_unreadable_or_mismatched_certificate_stops_the_start_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let one = Certificate::new();
    let other = Certificate::new();
    let cert = dir.path().join("one.crt");
    let key = dir.path().join("one.key");
    let other_key = dir.path().join("other.key");
    std::fs::write(&cert, &one.cert).unwrap();
    std::fs::write(&key, &one.key).unwrap();
    std::fs::write(&other_key, &other.key).unwrap();

    let (status, stderr) = start_failure(&dir.path().join("absent.crt"), &key);
    assert!(!status.success());
    assert!(stderr.contains("absent.crt"), "{stderr}");
    let (status, stderr) = start_failure(&cert, &dir.path().join("absent.key"));
    assert!(!status.success());
    assert!(stderr.contains("absent.key"), "{stderr}");
    let (status, stderr) = start_failure(&key, &key);
    assert!(!status.success());
    assert!(
        stderr.contains("one.key") && stderr.contains("CERTIFICATE"),
        "{stderr}"
    );
    let (status, stderr) = start_failure(&cert, &cert);
    assert!(!status.success());
    assert!(
        stderr.contains("one.crt") && stderr.contains("PRIVATE KEY"),
        "{stderr}"
    );
    let (status, stderr) = start_failure(&cert, &other_key);
    assert!(!status.success());
    assert!(
        stderr.contains("other.key") && stderr.contains("does not go with"),
        "{stderr}"
    );
    // A TLS listener without its files is a configuration error.
    let out = Command::new(BIN)
        .args([
            "serve",
            "--stomp",
            "off",
            "--http",
            "off",
            "--stomps",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env_remove("STOMPEDE_TLS_CERT")
        .env_remove("STOMPEDE_TLS_KEY")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("tls-cert"), "{stderr}");
}

/// The command-line client as `ann`, trusting `ca_file` when given.
fn cli(ca_file: Option<&Path>, args: &[&str]) -> std::process::Output {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env("STOMPEDE_USER", "ann")
        .env("STOMPEDE_PASSWORD", "secret")
        .env_remove("STOMPEDE_URL")
        .env_remove("STOMPEDE_HTTP_URL")
        .env_remove("STOMPEDE_CA_FILE")
        .stdin(Stdio::null());
    if let Some(path) = ca_file {
        command.arg("--ca-file").arg(path);
    }
    command.output().unwrap()
}

#[tokio::test]
async fn the_command_line_client_speaks_wss_tls_and_https_with_a_private_ca() {
    let certificate = Certificate::new();
    let served = Served::start(&certificate, &[]);
    let ca = Some(served.cert_file.as_path());
    let (mut subscriber, _) = stomps_client(&served, &[&certificate], "bob").await;
    subscriber.subscribe("/topic/cli").await;

    let wss = served.wss();
    let sent = cli(ca, &["send", "--url", &wss, "/topic/cli", "over wss"]);
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    assert_eq!(subscriber.message().await, "over wss");
    let tls = format!("tls://127.0.0.1:{}", served.stomps.port());
    let sent = cli(ca, &["send", "--url", &tls, "/topic/cli", "over tls"]);
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    assert_eq!(subscriber.message().await, "over tls");
    // The HTTP API comes from a wss:// URL as https://.
    let listed = cli(ca, &["jobs", "list", "--url", &wss, "--json"]);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );

    // Without the CA the certificate is not trusted, and the client says so.
    let refused = cli(None, &["send", "--url", &wss, "/topic/cli", "refused"]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("certificate"), "{stderr}");
}
