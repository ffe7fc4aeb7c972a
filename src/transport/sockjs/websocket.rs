//! SockJS over WebSocket: `{prefix}/{server}/{session}/websocket`, which carries SockJS frames
//! (`o`, `h`, `a[...]`, `c[...]`) in text messages and takes JSON-encoded messages, and the raw
//! `{prefix}/websocket`, one application message per WebSocket message with no SockJS framing.
//!
//! Each connection is a session of its own, in no registry: its lifetime is the WebSocket's
//! (two WebSockets may use the same session id). The WebSocket framing is the one
//! `transport::ws` uses for STOMP.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::connection::Connection;
use super::frames;
use super::session::{self, Attach, Outgoing};
use super::Endpoint;
use crate::transport::stream::Stream;
use crate::transport::ws::frame::{self, code, Fail};
use crate::transport::ws::upgrade::{accept_key, switching_protocols};

/// Which of the two WebSocket transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// SockJS frames inside WebSocket messages.
    SockJs,
    /// One message per WebSocket message.
    Raw,
}

/// Answers a WebSocket opening handshake and serves the connection once upgraded.
pub fn upgrade(
    endpoint: &Arc<Endpoint>,
    mut request: Request,
    framing: Framing,
    peer: String,
) -> Response {
    let accept = match accept_key(&request) {
        Ok(accept) => accept,
        Err(refusal) => return *refusal,
    };
    let Some(on_upgrade) = request
        .extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>()
    else {
        return (StatusCode::BAD_REQUEST, "Not a valid websocket request\n").into_response();
    };
    let endpoint = endpoint.clone();
    // On the server's tracker, as `ws::upgrade` runs its sessions: shutdown waits for it.
    endpoint.options.tracker.clone().spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => serve(endpoint, upgraded, framing, peer).await,
            Err(error) => tracing::debug!(%error, "SockJS WebSocket upgrade failed"),
        }
    });
    switching_protocols(&accept, None)
}

async fn serve(endpoint: Arc<Endpoint>, upgraded: Upgraded, framing: Framing, peer: String) {
    match upgraded.downcast::<TokioIo<Stream>>() {
        // Our own listener's connections (TCP or TLS): the halves, without hyper in between.
        Ok(parts) => {
            let (read, write) = parts.io.into_inner().into_split();
            drive(endpoint, read, write, parts.read_buf, framing, peer).await;
        }
        Err(upgraded) => {
            let (read, write) = tokio::io::split(TokioIo::new(upgraded));
            drive(endpoint, read, write, Bytes::new(), framing, peer).await;
        }
    }
}

/// Runs one WebSocket session until either side closes it.
async fn drive<R, W>(
    endpoint: Arc<Endpoint>,
    mut read: R,
    mut write: W,
    already_read: Bytes,
    framing: Framing,
    peer: String,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (session, from_client) =
        session::unregistered(&endpoint.timing, framing == Framing::SockJs);
    let Attach::Opened(id) = session.attach(false) else {
        return;
    };
    endpoint
        .service
        .open(Connection::new(session.clone(), from_client, peer));
    let mut input = Messages {
        buf: BytesMut::from(&already_read[..]),
        message: None,
        max: endpoint.options.max_message_bytes,
    };
    let mut out = BytesMut::new();
    if framing == Framing::SockJs {
        frame::put_server_frame(&mut out, frame::TEXT, frames::OPEN.as_bytes());
    }
    // Messages read but not yet taken by the application: reading waits while there are any,
    // so what a client sends faster than its application reads waits in the client.
    let mut to_application: Vec<String> = Vec::new();
    let mut closed_by_client = false;
    loop {
        if !out.is_empty() {
            // Raced against the session's end: a client that stops reading blocks the write
            // for good, and the session ends (its close frame untaken past the timeout).
            let written = tokio::select! {
                // The flush: over TLS a write may leave a record's tail in rustls.
                written = async {
                    write.write_all(&out).await?;
                    write.flush().await
                } => written.is_ok(),
                () = session.ended() => false,
            };
            if !written {
                out.clear();
                break;
            }
            out.clear();
        }
        tokio::select! {
            biased;
            outgoing = session.next(id, &endpoint.options.shutdown) => match outgoing {
                Outgoing::Messages(messages, bytes) => match framing {
                    Framing::SockJs => {
                        let frame = frames::messages(&messages, bytes);
                        frame::put_server_frame(&mut out, frame::TEXT, frame.as_bytes());
                    }
                    Framing::Raw => {
                        for message in &messages {
                            frame::put_server_frame(&mut out, frame::TEXT, message);
                        }
                    }
                },
                Outgoing::Heartbeat => {
                    if framing == Framing::SockJs {
                        frame::put_server_frame(&mut out, frame::TEXT, frames::HEARTBEAT.as_bytes());
                    }
                }
                Outgoing::Close(code, reason) => {
                    if framing == Framing::SockJs {
                        let frame = frames::close(code, &reason);
                        frame::put_server_frame(&mut out, frame::TEXT, frame.as_bytes());
                    }
                    put_close(&mut out, code, &reason);
                    break;
                }
                Outgoing::End => {
                    put_close(&mut out, 1001, "Going away");
                    break;
                }
            },
            permit = session.reserve(), if !to_application.is_empty() => match permit {
                Some(permit) => permit.send(std::mem::take(&mut to_application)),
                None => to_application.clear(),
            },
            read = input.fill(&mut read), if to_application.is_empty() => {
                if !matches!(read, Ok(1..)) {
                    closed_by_client = true;
                    break;
                }
                match input.take_events(framing, &mut to_application, &mut out) {
                    Ok(true) => {}
                    Ok(false) => {
                        closed_by_client = true;
                        break;
                    }
                    // Broken input ends the connection at once: sockjs-node drops the socket
                    // on broken JSON, and a WebSocket protocol breach gets its close code.
                    Err(Some(fail)) => {
                        put_close(&mut out, fail.code, fail.reason);
                        break;
                    }
                    Err(None) => break,
                }
            }
        }
    }
    // The last frames (a close) and the shutdown, within the session timeout: the client may
    // have stopped reading.
    let _ = tokio::time::timeout(endpoint.timing.timeout, async {
        if !out.is_empty() {
            write.write_all(&out).await?;
        }
        write.shutdown().await
    })
    .await;
    // The WebSocket is the session's only receiver: when it ends, so does the session.
    session.detach(id, true);
    session.terminate();
    if !closed_by_client {
        // Wait briefly for the client's close reply, so the close is not a reset.
        let mut scrap = [0u8; 1024];
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
            while let Ok(1..) = read.read(&mut scrap).await {}
        })
        .await;
    }
}

/// Appends a close frame with `code` and `reason` (cut to the 123 bytes a control frame has
/// room for, at a character boundary). A code no endpoint may send (1005, 1006, 1015, the
/// unassigned ones, anything outside 1000-4999: an application's SockJS code such as 2010
/// is fine in a `c[...]` frame, not in a WebSocket close) goes as 1000.
fn put_close(out: &mut BytesMut, code: u16, reason: &str) {
    let code = if frame::valid_close_code(code) {
        code
    } else {
        code::NORMAL
    };
    let mut cut = reason.len().min(123);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut payload = Vec::with_capacity(2 + cut);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..cut]);
    frame::put_server_frame(out, frame::CLOSE, &payload);
}

/// Client WebSocket frames, assembled into messages.
struct Messages {
    buf: BytesMut,
    /// A fragmented message being received.
    message: Option<Vec<u8>>,
    /// Largest message accepted.
    max: usize,
}

impl Messages {
    /// Reads more bytes; cancel-safe (the bytes land in `buf`).
    async fn fill<R: AsyncRead + Unpin>(&mut self, read: &mut R) -> std::io::Result<usize> {
        self.buf.reserve(8 * 1024);
        read.read_buf(&mut self.buf).await
    }

    /// Takes apart every complete frame in `buf`: messages to `messages` (decoded from JSON
    /// for the SockJS framing), pings answered into `out`. `Ok(false)` when the client sent a
    /// close frame (answered into `out`); `Err` when the connection must end, with the close
    /// frame to send if any.
    fn take_events(
        &mut self,
        framing: Framing,
        messages: &mut Vec<String>,
        out: &mut BytesMut,
    ) -> Result<bool, Option<Fail>> {
        loop {
            let Some(head) = frame::parse_head(&self.buf).map_err(Some)? else {
                return Ok(true);
            };
            let so_far = self.message.as_ref().map_or(0, Vec::len) as u64;
            if head.len.saturating_add(so_far) > self.max as u64 {
                return Err(Some(Fail {
                    code: code::TOO_BIG,
                    reason: "message larger than the limit",
                }));
            }
            let total = head.head_len + head.len as usize;
            if self.buf.len() < total {
                self.buf.reserve(total - self.buf.len());
                return Ok(true);
            }
            let mut payload = self.buf.split_to(total).split_off(head.head_len);
            frame::apply_mask(&mut payload, head.mask, 0);
            let complete = match head.opcode {
                frame::PING => {
                    frame::put_server_frame(out, frame::PONG, &payload);
                    continue;
                }
                frame::PONG => continue,
                frame::CLOSE => {
                    // Checked as `transport::ws` checks it (one door): a one-byte body or a
                    // code no peer may send is a protocol error, answered 1002.
                    let code = crate::transport::ws::close_reply(&payload).map_err(Some)?;
                    put_close(out, code, "");
                    return Ok(false);
                }
                frame::CONTINUATION => {
                    let Some(message) = self.message.as_mut() else {
                        return Err(Some(Fail::protocol("continuation frame outside a message")));
                    };
                    message.extend_from_slice(&payload);
                    if !head.fin {
                        continue;
                    }
                    self.message.take().unwrap_or_default()
                }
                _ => {
                    if self.message.is_some() {
                        return Err(Some(Fail::protocol(
                            "new message before the last one ended",
                        )));
                    }
                    if !head.fin {
                        self.message = Some(payload.to_vec());
                        continue;
                    }
                    payload.to_vec()
                }
            };
            let Ok(text) = String::from_utf8(complete) else {
                return Err(Some(Fail {
                    code: code::INVALID_DATA,
                    reason: "message is not UTF-8",
                }));
            };
            match framing {
                Framing::Raw => messages.push(text),
                Framing::SockJs => match frames::parse_websocket(&text) {
                    Ok(decoded) => messages.extend(decoded),
                    Err(_) => return Err(None),
                },
            }
        }
    }
}

/// The reader as the fuzz targets drive it (feature `fuzzing`).
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzzing {
    use bytes::BytesMut;

    use super::{Framing, Messages};

    /// What the reader made of a stream.
    #[derive(Debug, PartialEq, Eq)]
    pub struct SockJsRead {
        /// The application messages, in order.
        pub messages: Vec<String>,
        /// The frames written back (pongs, a close), encoded.
        pub out: Vec<u8>,
        /// `Some(true)` when the client closed, `Some(false)` when the connection failed,
        /// `None` when the input ended first.
        pub closed: Option<bool>,
        /// The close code of a failure that has one.
        pub fail: Option<u16>,
        /// The most bytes the reader held at once.
        pub most_buffered: usize,
    }

    /// Feeds `pieces` to the reader one read at a time, taking events after each read as the
    /// connection's task does; `sockjs` for SockJS framing (JSON arrays in text messages),
    /// otherwise one application message per WebSocket message.
    pub fn sockjs_messages(pieces: &[Vec<u8>], max_message: usize, sockjs: bool) -> SockJsRead {
        let framing = if sockjs {
            Framing::SockJs
        } else {
            Framing::Raw
        };
        let mut input = Messages {
            buf: BytesMut::new(),
            message: None,
            max: max_message,
        };
        let mut read = SockJsRead {
            messages: Vec::new(),
            out: Vec::new(),
            closed: None,
            fail: None,
            most_buffered: 0,
        };
        let mut out = BytesMut::new();
        for piece in pieces.iter().filter(|p| !p.is_empty()) {
            input.buf.extend_from_slice(piece);
            let result = input.take_events(framing, &mut read.messages, &mut out);
            read.most_buffered = read
                .most_buffered
                .max(input.buf.len() + input.message.as_ref().map_or(0, Vec::len));
            match result {
                Ok(true) => {}
                Ok(false) => {
                    read.closed = Some(true);
                    break;
                }
                Err(fail) => {
                    read.closed = Some(false);
                    read.fail = fail.map(|f| f.code);
                    break;
                }
            }
        }
        read.out = out.to_vec();
        read
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::transport::ws::frame::client_frame;

    fn messages(wire: &[u8], framing: Framing) -> (Result<bool, Option<Fail>>, Vec<String>) {
        let mut input = Messages {
            buf: BytesMut::from(wire),
            message: None,
            max: 100,
        };
        let mut got = Vec::new();
        let mut out = BytesMut::new();
        (input.take_events(framing, &mut got, &mut out), got)
    }

    #[test]
    fn sockjs_messages_are_json_and_fragments_join() {
        let mut wire = client_frame(false, frame::TEXT, b"[\"a\",", [1, 2, 3, 4]);
        wire.extend(client_frame(
            true,
            frame::CONTINUATION,
            b"\"b\"]",
            [4, 3, 2, 1],
        ));
        wire.extend(client_frame(true, frame::TEXT, b"", [1, 1, 1, 1]));
        wire.extend(client_frame(true, frame::TEXT, b"\"c\"", [1, 1, 1, 1]));
        let (result, got) = messages(&wire, Framing::SockJs);
        assert!(matches!(result, Ok(true)));
        assert_eq!(got, ["a", "b", "c"]);
        let (result, got) = messages(&wire, Framing::Raw);
        assert!(matches!(result, Ok(true)));
        assert_eq!(got, ["[\"a\",\"b\"]", "", "\"c\""]);
    }

    #[test]
    fn broken_json_and_oversized_messages_end_the_connection() {
        let wire = client_frame(true, frame::TEXT, b"[\"a", [1, 2, 3, 4]);
        assert!(matches!(messages(&wire, Framing::SockJs).0, Err(None)));
        let wire = client_frame(true, frame::TEXT, &[b'x'; 101], [1, 2, 3, 4]);
        assert!(matches!(
            messages(&wire, Framing::Raw).0,
            Err(Some(Fail {
                code: code::TOO_BIG,
                ..
            }))
        ));
    }

    /// The close frame in `out`: its code and reason.
    fn close_of(out: &[u8]) -> (u16, Vec<u8>) {
        // A server frame: FIN and the opcode, then a short length, no mask.
        assert_eq!(out[0], 0x80 | frame::CLOSE);
        assert_eq!(usize::from(out[1]), out.len() - 2);
        let payload = &out[2..];
        (
            u16::from_be_bytes([payload[0], payload[1]]),
            payload[2..].to_vec(),
        )
    }

    #[test]
    fn close_codes_on_the_wire_are_ones_a_peer_may_send() {
        for (code, sent) in [
            (3000, 3000),
            (1013, 1013),
            (2010, 1000),
            (1005, 1000),
            (1006, 1000),
            (1015, 1000),
            (999, 1000),
            (5000, 1000),
        ] {
            let mut out = BytesMut::new();
            put_close(&mut out, code, "bye");
            assert_eq!(close_of(&out), (sent, b"bye".to_vec()), "{code}");
        }
    }

    #[test]
    fn a_client_close_is_echoed_only_when_valid() {
        let run = |body: &[u8]| {
            let mut input = Messages {
                buf: BytesMut::from(&client_frame(true, frame::CLOSE, body, [1, 2, 3, 4])[..]),
                message: None,
                max: 100,
            };
            let mut out = BytesMut::new();
            let result = input.take_events(Framing::SockJs, &mut Vec::new(), &mut out);
            (result, out)
        };
        let (result, out) = run(&3001u16.to_be_bytes());
        assert!(matches!(result, Ok(false)));
        assert_eq!(close_of(&out).0, 3001);
        let (result, out) = run(b"");
        assert!(matches!(result, Ok(false)));
        assert_eq!(close_of(&out).0, 1000);
        for bad in [&[3u8][..], &1005u16.to_be_bytes(), &1u16.to_be_bytes()] {
            let (result, _) = run(bad);
            assert!(
                matches!(result, Err(Some(Fail { code: 1002, .. }))),
                "{bad:?}"
            );
        }
    }

    /// Sends until its sends wait (its client reads nothing), then lets go of the session
    /// without closing it, as `session::run` does with a writer that never finishes.
    struct Stuck;

    impl super::super::Service for Stuck {
        fn open(&self, connection: Connection) {
            tokio::spawn(async move {
                let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
                    while connection.send(["x".repeat(1024)]).await.is_ok() {}
                })
                .await;
                drop(connection);
            });
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_websocket_whose_client_stops_reading_ends() {
        let endpoint = Arc::new(super::super::Endpoint::new(
            Arc::new(Stuck),
            super::super::Options {
                max_pending_bytes: 8 * 1024,
                ..Default::default()
            },
        ));
        // Both pipes small and never read or written by the client.
        let (read, _client_write) = tokio::io::duplex(1024);
        let (write, _client_read) = tokio::io::duplex(1024);
        let driven = drive(
            endpoint,
            read,
            write,
            Bytes::new(),
            Framing::Raw,
            "test".into(),
        );
        tokio::time::timeout(std::time::Duration::from_secs(60), driven)
            .await
            .expect("the WebSocket session ends");
    }
}
