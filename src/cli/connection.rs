//! A small STOMP 1.2 client for the command line: over WebSocket (`ws://`, the default, or
//! `wss://`) or TCP (`tcp://`, or `tls://` for STOMP over TLS), with the same codec the server
//! uses.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::BytesMut;
use futures::{SinkExt, StreamExt};
use stompede::protocol::{encode, Command, Decoded, Decoder, Frame, Limits, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long the server has to answer a CONNECT or a receipted frame.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

enum Link {
    Ws(Box<WebSocketStream<MaybeTlsStream<TcpStream>>>),
    /// `tcp://` (plain) or `tls://` (rustls).
    Tcp(Box<MaybeTlsStream<TcpStream>>),
}

/// The TLS client settings for `wss://`, `tls://` and `https://`: rustls on ring, trusting the
/// Mozilla roots and, with `--ca-file`, the certificates of that PEM file (a private CA, or a
/// self-signed server certificate).
pub fn tls_config(ca_file: Option<&Path>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        for cert in ca_certificates(path)? {
            roots
                .add(cert)
                .with_context(|| format!("--ca-file {}: not a CA certificate", path.display()))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(stompede::tls_provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The certificates of a PEM file (at least one).
pub fn ca_certificates(
    path: &Path,
) -> anyhow::Result<Vec<rustls_pki_types::CertificateDer<'static>>> {
    use rustls_pki_types::pem::PemObject;
    let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("--ca-file {}", path.display()))?;
    if certs.is_empty() {
        bail!("--ca-file {}: no CERTIFICATE in it", path.display());
    }
    Ok(certs)
}

/// A connected STOMP session.
pub struct Connection {
    link: Link,
    decoder: Decoder,
    buf: BytesMut,
    receipts: u64,
}

/// Who connects.
#[derive(Debug, Clone, Default)]
pub struct Login {
    /// The user name (none in open mode: the server names the session).
    pub user: Option<String>,
    /// The password.
    pub password: Option<String>,
}

impl Connection {
    /// Connects to `url` (`ws://HOST:PORT/ws`, `wss://HOST:PORT/ws`, `tcp://HOST:PORT` or
    /// `tls://HOST:PORT`) and logs in; TLS trusts the Mozilla roots and `ca_file`'s
    /// certificates.
    pub async fn open(
        url: &str,
        login: &Login,
        ca_file: Option<&Path>,
    ) -> anyhow::Result<Connection> {
        let reach = || format!("cannot reach {url}");
        let link = if let Some((tls, addr)) = url
            .strip_prefix("tcp://")
            .map(|addr| (false, addr))
            .or_else(|| url.strip_prefix("tls://").map(|addr| (true, addr)))
        {
            let addr = addr.trim_end_matches('/');
            let stream = TcpStream::connect(addr).await.with_context(reach)?;
            stream.set_nodelay(true)?;
            if tls {
                let host = match addr.rsplit_once(':') {
                    Some((host, _)) => host.trim_start_matches('[').trim_end_matches(']'),
                    None => addr,
                };
                let name = rustls_pki_types::ServerName::try_from(host.to_owned())
                    .with_context(|| format!("bad host in {url}"))?;
                let connector = tokio_rustls::TlsConnector::from(tls_config(ca_file)?);
                let stream = connector.connect(name, stream).await.with_context(reach)?;
                Link::Tcp(Box::new(MaybeTlsStream::Rustls(stream)))
            } else {
                Link::Tcp(Box::new(MaybeTlsStream::Plain(stream)))
            }
        } else if url.starts_with("ws://") || url.starts_with("wss://") {
            let mut request = url
                .into_client_request()
                .with_context(|| format!("bad URL {url}"))?;
            request.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                HeaderValue::from_static("v12.stomp"),
            );
            let connector = tokio_tungstenite::Connector::Rustls(tls_config(ca_file)?);
            let (socket, _) = tokio_tungstenite::connect_async_tls_with_config(
                request,
                None,
                false,
                Some(connector),
            )
            .await
            .with_context(reach)?;
            Link::Ws(Box::new(socket))
        } else {
            bail!("--url must start with ws://, wss://, tcp:// or tls://, not {url:?}");
        };
        let mut connection = Connection {
            link,
            decoder: Decoder::new(Limits::default()),
            buf: BytesMut::new(),
            receipts: 0,
        };
        let mut connect = Frame::new(Command::Connect)
            .header("accept-version", "1.2")
            .header("host", "stompede")
            // The CLI reads as it goes; no heart-beats to keep.
            .header("heart-beat", "0,0");
        if let Some(user) = &login.user {
            connect = connect.header("login", user);
        }
        if let Some(password) = &login.password {
            connect = connect.header("passcode", password);
        }
        connection.send(&connect).await?;
        let answer = tokio::time::timeout(ANSWER_TIMEOUT, connection.next())
            .await
            .context("the server did not answer the CONNECT")??;
        match answer.command {
            Command::Connected => {
                connection.decoder.set_version(Version::V1_2);
                Ok(connection)
            }
            _ => bail!("{}", refusal(&answer)),
        }
    }

    /// Sends a frame.
    pub async fn send(&mut self, frame: &Frame) -> anyhow::Result<()> {
        let mut out = BytesMut::new();
        encode(frame, Version::V1_2, &mut out);
        match &mut self.link {
            Link::Tcp(stream) => {
                stream.write_all(&out).await?;
                // Over TLS, what rustls kept of the last record.
                stream.flush().await?;
            }
            Link::Ws(socket) => socket.send(Message::binary(out.freeze())).await?,
        }
        Ok(())
    }

    /// Sends `frame` with a fresh receipt; returns the receipt id to wait for.
    pub async fn send_receipted(&mut self, frame: Frame) -> anyhow::Result<String> {
        self.receipts += 1;
        let id = format!("cli-{}", self.receipts);
        self.send(&frame.header("receipt", &id)).await?;
        Ok(id)
    }

    /// The next frame from the server (heart-beats skipped); an error when it closes.
    pub async fn next(&mut self) -> anyhow::Result<Frame> {
        loop {
            match self.decoder.decode(&mut self.buf)? {
                Some(Decoded::Frame(frame)) => return Ok(frame),
                Some(Decoded::HeartBeat) => continue,
                None => {}
            }
            match &mut self.link {
                Link::Tcp(stream) => {
                    if stream.read_buf(&mut self.buf).await? == 0 {
                        bail!("the server closed the connection");
                    }
                }
                Link::Ws(socket) => match socket.next().await {
                    Some(Ok(Message::Binary(bytes))) => self.buf.extend_from_slice(&bytes),
                    Some(Ok(Message::Text(text))) => self.buf.extend_from_slice(text.as_bytes()),
                    Some(Ok(Message::Close(_))) | None => {
                        bail!("the server closed the connection")
                    }
                    Some(Ok(_)) => {}
                    Some(Err(error)) => return Err(error.into()),
                },
            }
        }
    }

    /// Subscribes to `destination` with `extra` headers, and waits until the server has it.
    pub async fn subscribe(
        &mut self,
        id: &str,
        destination: &str,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Vec<Frame>> {
        let mut frame = Frame::new(Command::Subscribe)
            .header("id", id)
            .header("destination", destination)
            .header("ack", "auto");
        for (name, value) in extra {
            frame = frame.header(name, value);
        }
        let receipt = self.send_receipted(frame).await?;
        self.until_receipt(&receipt).await
    }

    /// Reads until the RECEIPT `receipt`; returns the frames that came first. An ERROR fails.
    pub async fn until_receipt(&mut self, receipt: &str) -> anyhow::Result<Vec<Frame>> {
        let mut before = Vec::new();
        let wait = async {
            loop {
                let frame = self.next().await?;
                match frame.command {
                    Command::Receipt if frame.get("receipt-id") == Some(receipt) => {
                        return Ok(before);
                    }
                    Command::Error => bail!("{}", refusal(&frame)),
                    _ => before.push(frame),
                }
            }
        };
        tokio::time::timeout(ANSWER_TIMEOUT, wait)
            .await
            .context("the server did not answer in time")?
    }

    /// Says goodbye.
    pub async fn close(mut self) {
        let _ = self.send(&Frame::new(Command::Disconnect)).await;
        if let Link::Ws(socket) = &mut self.link {
            let _ = SinkExt::close(socket.as_mut()).await;
        }
    }
}

/// An ERROR frame (or another unexpected answer) in one line.
pub fn refusal(frame: &Frame) -> String {
    let message = frame.get("message").unwrap_or("no message");
    let detail = String::from_utf8_lossy(&frame.body);
    let detail = detail.trim();
    if detail.is_empty() || detail == message {
        format!("the server refused: {message}")
    } else {
        format!("the server refused: {message} ({detail})")
    }
}
