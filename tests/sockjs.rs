//! SockJS protocol edges over raw HTTP, against a real broker on loopback: the static answers,
//! sending errors, one receiving request at a time, timeouts, JSONP callbacks, streaming
//! preludes and the response limit, and a polling client that stops polling.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::{TestServer, WAIT};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A response read off the wire: status, headers (lower-case names) and a body read as it
/// comes (chunked or content-length).
struct Answer {
    status: u16,
    headers: HashMap<String, String>,
    reader: BufReader<TcpStream>,
    chunked: bool,
    /// Body bytes still to read of a content-length body.
    left: usize,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The next piece of the body (one chunk of a chunked body, the whole of another);
    /// `None` at its end.
    async fn chunk(&mut self) -> Option<String> {
        if !self.chunked {
            if self.left == 0 {
                return None;
            }
            let mut body = vec![0; self.left];
            self.reader.read_exact(&mut body).await.unwrap();
            self.left = 0;
            return Some(String::from_utf8(body).unwrap());
        }
        let mut line = String::new();
        self.reader.read_line(&mut line).await.unwrap();
        let size = usize::from_str_radix(line.trim(), 16).unwrap();
        let mut chunk = vec![0; size + 2];
        self.reader.read_exact(&mut chunk).await.unwrap();
        chunk.truncate(size);
        (size > 0).then(|| String::from_utf8(chunk).unwrap())
    }

    /// The next chunk, within the test's patience.
    async fn next(&mut self) -> Option<String> {
        tokio::time::timeout(WAIT, self.chunk())
            .await
            .expect("a chunk in time")
    }

    /// The whole body.
    async fn body(mut self) -> String {
        let mut body = String::new();
        while let Some(chunk) = self.next().await {
            body.push_str(&chunk);
        }
        body
    }
}

/// Sends one request on a new connection and reads the response head.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    tokio::time::timeout(WAIT, reader.read_line(&mut status_line))
        .await
        .expect("a response in time")
        .unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap();
        headers.insert(name.to_ascii_lowercase(), value.trim().to_owned());
    }
    let chunked = headers
        .get("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"));
    let left = headers
        .get("content-length")
        .map_or(0, |v| v.parse().unwrap());
    Answer {
        status,
        headers,
        reader,
        chunked,
        left,
    }
}

/// Asserts each `(name, value)` header of `answer`.
fn expect_headers(answer: &Answer, expected: &[(&str, &str)]) {
    for (name, value) in expected {
        assert_eq!(answer.header(name), Some(*value), "{name}");
    }
}

async fn get(addr: SocketAddr, path: &str) -> Answer {
    request(addr, "GET", path, &[], b"").await
}

async fn post(addr: SocketAddr, path: &str, body: &str) -> Answer {
    request(addr, "POST", path, &[], body.as_bytes()).await
}

fn http(server: &TestServer) -> SocketAddr {
    server.server.http_addr().unwrap()
}

/// A fresh session URL.
fn session_url(name: &str) -> String {
    format!("/sockjs/000/{name}-{}", std::process::id())
}

/// A STOMP frame as one SockJS message, JSON-quoted in an array as sockjs-client sends it.
fn stomp_payload(frames: &[&str]) -> String {
    serde_json::to_string(frames).unwrap()
}

/// The messages of an `a[...]` frame (with its transport newline).
fn messages(frame: &str) -> Vec<String> {
    let array = frame.trim_end().strip_prefix('a').expect("an array frame");
    serde_json::from_str(array).unwrap()
}

const CONNECT: &str = "CONNECT\naccept-version:1.2\nhost:localhost\nlogin:ann\n\n\0";

#[tokio::test]
async fn info_and_the_iframe_page_are_what_clients_expect() {
    let server = TestServer::start().await;
    let addr = http(&server);

    let info = request(
        addr,
        "GET",
        "/sockjs/info",
        &[("origin", "http://page.test")],
        b"",
    )
    .await;
    assert_eq!(info.status, 200);
    expect_headers(
        &info,
        &[
            ("content-type", "application/json; charset=UTF-8"),
            ("access-control-allow-origin", "http://page.test"),
            ("access-control-allow-credentials", "true"),
            (
                "cache-control",
                "no-store, no-cache, no-transform, must-revalidate, max-age=0",
            ),
        ],
    );
    assert!(info.header("set-cookie").is_none());
    let body: serde_json::Value = serde_json::from_str(&info.body().await).unwrap();
    assert_eq!(body["websocket"], true);
    assert_eq!(body["cookie_needed"], false);
    assert_eq!(body["origins"], serde_json::json!(["*:*"]));
    assert!(body["entropy"].is_u64());

    let preflight = request(
        addr,
        "OPTIONS",
        "/sockjs/info",
        &[("origin", "null"), ("access-control-request-method", "GET")],
        b"",
    )
    .await;
    assert_eq!(preflight.status, 204);
    expect_headers(
        &preflight,
        &[
            ("access-control-allow-origin", "null"),
            ("access-control-allow-methods", "OPTIONS, GET"),
            ("access-control-max-age", "31536000"),
        ],
    );
    assert!(preflight.header("expires").is_some());

    let page = get(addr, "/sockjs/iframe.html").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=UTF-8")
    );
    assert_eq!(
        page.header("cache-control"),
        Some("public, max-age=31536000")
    );
    assert!(page.header("last-modified").is_none());
    let etag = page.header("etag").unwrap().to_owned();
    assert!(page.body().await.contains("SockJS.bootstrap_iframe();"));
    let versioned = get(addr, "/sockjs/iframe-1.6.1.html").await;
    assert_eq!(versioned.header("etag"), Some(etag.as_str()));
    let cached = request(
        addr,
        "GET",
        "/sockjs/iframe.html",
        &[("if-none-match", &etag)],
        b"",
    )
    .await;
    assert_eq!(cached.status, 304);
    assert!(cached.header("content-type").is_none());
    for missing in [
        "/sockjs/IFRAME.HTML",
        "/sockjs/iframe.htm",
        "/sockjs/a/a",
        "/sockjs/a./b/xhr",
    ] {
        assert_eq!(get(addr, missing).await.status, 404, "{missing}");
    }
    assert_eq!(
        get(addr, "/sockjs").await.body().await,
        "Welcome to SockJS!\n"
    );
    server.server.shutdown().await;
}

#[tokio::test]
async fn sends_are_refused_as_the_protocol_says_and_carry_stomp_frames() {
    let server = TestServer::start().await;
    let addr = http(&server);
    let url = session_url("send");

    let unknown = post(addr, &format!("{url}/xhr_send"), r#"["x"]"#).await;
    assert_eq!(unknown.status, 404, "no such session yet");
    let open = post(addr, &format!("{url}/xhr"), "").await;
    assert_eq!(open.status, 200);
    assert_eq!(
        open.header("content-type"),
        Some("application/javascript; charset=UTF-8")
    );
    assert_eq!(open.body().await, "o\n");

    let broken = post(addr, &format!("{url}/xhr_send"), r#"["x"#).await;
    assert_eq!(broken.status, 500);
    assert_eq!(broken.body().await, "Broken JSON encoding.");
    let empty = post(addr, &format!("{url}/xhr_send"), "").await;
    assert_eq!(empty.status, 500);
    assert_eq!(empty.body().await, "Payload expected.");
    let not_array = post(addr, &format!("{url}/xhr_send"), r#"{"a":1}"#).await;
    assert_eq!(not_array.body().await, "Payload expected.");

    // A STOMP handshake through the session: CONNECT in, CONNECTED out.
    let sent = post(addr, &format!("{url}/xhr_send"), &stomp_payload(&[CONNECT])).await;
    assert_eq!(sent.status, 204);
    assert_eq!(
        sent.header("content-type"),
        Some("text/plain; charset=UTF-8")
    );
    let reply = post(addr, &format!("{url}/xhr"), "").await.body().await;
    let frames = messages(&reply);
    assert!(frames[0].starts_with("CONNECTED\n"), "{frames:?}");
    assert!(frames[0].contains("user-name:ann"), "{frames:?}");
    assert!(frames[0].ends_with('\0'));
    server.server.shutdown().await;
}

#[tokio::test]
async fn a_second_receiving_request_is_told_another_connection_is_open() {
    let server = TestServer::start().await;
    let addr = http(&server);
    let url = session_url("second");

    let mut first = post(addr, &format!("{url}/xhr_streaming"), "").await;
    assert_eq!(
        first.next().await.unwrap(),
        format!("{}\n", "h".repeat(2048))
    );
    assert_eq!(first.next().await.unwrap(), "o\n");
    let second = post(addr, &format!("{url}/xhr"), "").await;
    assert_eq!(
        second.body().await,
        "c[2010,\"Another connection still open\"]\n"
    );
    // The first request still receives.
    post(addr, &format!("{url}/xhr_send"), &stomp_payload(&[CONNECT])).await;
    let connected = first.next().await.unwrap();
    assert!(messages(&connected)[0].starts_with("CONNECTED\n"));
    server.server.shutdown().await;
}

#[tokio::test]
async fn a_session_nobody_receives_for_times_out_and_its_stomp_session_ends() {
    let server = TestServer::with(|config| config.sockjs_session_timeout_ms = 200).await;
    let addr = http(&server);
    let url = session_url("timeout");

    assert_eq!(
        post(addr, &format!("{url}/xhr"), "").await.body().await,
        "o\n"
    );
    let sent = post(addr, &format!("{url}/xhr_send"), &stomp_payload(&[CONNECT])).await;
    assert_eq!(sent.status, 204);
    let reply = post(addr, &format!("{url}/xhr"), "").await.body().await;
    assert!(messages(&reply)[0].starts_with("CONNECTED\n"));
    assert_eq!(server.server.broker().session_count(), 1);
    // Nobody polls: the session times out, its id is unknown again, and the STOMP session it
    // carried is gone.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let probe = post(addr, &format!("{url}/xhr_send"), "[]").await;
        if probe.status == 404 && server.server.broker().session_count() == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the session lives on"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.server.shutdown().await;
}

#[tokio::test]
async fn jsonp_and_htmlfile_callbacks_are_names_only() {
    let server = TestServer::start().await;
    let addr = http(&server);
    let url = session_url("jsonp");

    for transport in ["jsonp", "htmlfile"] {
        let none = get(addr, &format!("/sockjs/a/a/{transport}")).await;
        assert_eq!(none.status, 500);
        assert_eq!(none.body().await, "\"callback\" parameter required");
        for bad in ["%20", "*", "abc(", "abc%28", "a+b", "x;alert(1)"] {
            let refused = get(addr, &format!("/sockjs/a/a/{transport}?c={bad}")).await;
            assert_eq!(refused.status, 500, "{bad}");
            assert_eq!(refused.body().await, "invalid \"callback\" parameter");
        }
    }
    let open = get(addr, &format!("{url}/jsonp?c=%63allback")).await;
    assert_eq!(open.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(open.body().await, "/**/callback(\"o\");\r\n");
    let sent = request(
        addr,
        "POST",
        &format!("{url}/jsonp_send"),
        &[("content-type", "application/x-www-form-urlencoded")],
        b"d=%5B%22x%22%5D",
    )
    .await;
    assert_eq!(sent.status, 200);
    assert_eq!(sent.body().await, "ok");
    server.server.shutdown().await;
}

#[tokio::test]
async fn streaming_responses_start_with_their_prelude_and_end_at_the_limit() {
    let server = TestServer::with(|config| config.sockjs_response_limit = 4096).await;
    let addr = http(&server);

    let url = session_url("eventsource");
    let mut events = get(addr, &format!("{url}/eventsource")).await;
    assert_eq!(events.header("content-type"), Some("text/event-stream"));
    assert_eq!(events.next().await.unwrap(), "\r\n");
    assert_eq!(events.next().await.unwrap(), "data: o\r\n\r\n");
    drop(events);

    let url = session_url("htmlfile");
    let mut page = get(addr, &format!("{url}/htmlfile?c=cb")).await;
    let prelude = page.next().await.unwrap();
    assert!(prelude.contains("var c = parent.cb;") && prelude.len() > 1024);
    assert_eq!(
        page.next().await.unwrap(),
        "<script>\np(\"o\");\n</script>\r\n"
    );
    drop(page);

    let url = session_url("limit");
    let mut stream = post(addr, &format!("{url}/xhr_streaming"), "").await;
    assert_eq!(stream.next().await.unwrap().len(), 2049);
    assert_eq!(stream.next().await.unwrap(), "o\n");
    let subscribe = "SUBSCRIBE\nid:1\ndestination:/topic/limit\nreceipt:r1\n\n\0";
    post(
        addr,
        &format!("{url}/xhr_send"),
        &stomp_payload(&[CONNECT, subscribe]),
    )
    .await;
    let mut got = Vec::new();
    while got.len() < 2 {
        got.extend(messages(&stream.next().await.unwrap()));
    }
    assert!(got[1].starts_with("RECEIPT\n"), "{got:?}");
    // A message larger than what is left of the limit: it is sent, then the response ends.
    let body = "x".repeat(5000);
    let send = format!("SEND\ndestination:/topic/limit\n\n{body}\0");
    post(addr, &format!("{url}/xhr_send"), &stomp_payload(&[&send])).await;
    let message = messages(&stream.next().await.unwrap());
    assert!(message[0].starts_with("MESSAGE\n") && message[0].contains(&body));
    assert_eq!(
        stream.next().await,
        None,
        "the response ends past its limit"
    );
    // The session lives on: the next streaming request receives what follows.
    let mut next = post(addr, &format!("{url}/xhr_streaming"), "").await;
    assert_eq!(
        next.next().await.unwrap().len(),
        2049,
        "the prelude, no open frame"
    );
    let send = "SEND\ndestination:/topic/limit\n\nagain\0";
    post(addr, &format!("{url}/xhr_send"), &stomp_payload(&[send])).await;
    let message = messages(&next.next().await.unwrap());
    assert!(message[0].ends_with("again\0"), "{message:?}");
    server.server.shutdown().await;
}

#[tokio::test]
async fn a_polling_client_that_stops_polling_is_cut_off_not_buffered_for() {
    let server = TestServer::with(|config| {
        config.sockjs_session_timeout_ms = 60_000;
        config.slow_consumer_grace_ms = 300;
    })
    .await;
    let addr = http(&server);
    let url = session_url("stalled");

    assert_eq!(
        post(addr, &format!("{url}/xhr"), "").await.body().await,
        "o\n"
    );
    let subscribe = "SUBSCRIBE\nid:1\ndestination:/topic/flood\nreceipt:r1\n\n\0";
    post(
        addr,
        &format!("{url}/xhr_send"),
        &stomp_payload(&[CONNECT, subscribe]),
    )
    .await;
    let mut got = Vec::new();
    while got.len() < 2 {
        got.extend(messages(
            &post(addr, &format!("{url}/xhr"), "").await.body().await,
        ));
    }
    assert!(got[1].starts_with("RECEIPT\n"));

    // The client stops polling; a publisher floods the topic: 8 MiB in 1 KiB messages.
    let mut publisher = common::Tcp::connect(server.stomp(), "pub").await;
    let body = "y".repeat(1024);
    for _ in 0..8 * 1024 {
        publisher
            .send(
                stompede::protocol::Frame::new(stompede::protocol::Command::Send)
                    .header("destination", "/topic/flood")
                    .body(bytes::Bytes::from(body.clone())),
            )
            .await;
    }
    publisher
        .send_receipted(
            stompede::protocol::Frame::new(stompede::protocol::Command::Send)
                .header("destination", "/topic/other"),
            "done",
        )
        .await;
    // The publisher got through: the stalled subscriber was cut, not buffered for. What the
    // session holds for its client is bounded, and ends with the ERROR that says why.
    let mut held = Vec::new();
    'polls: loop {
        // A poll of a closed session carries what was left; the next one the close frame.
        let body = post(addr, &format!("{url}/xhr"), "").await.body().await;
        for frame in body.lines() {
            if frame.starts_with('c') {
                break 'polls;
            }
            held.extend(messages(frame));
        }
    }
    let error = held.last().unwrap();
    assert!(
        error.starts_with("ERROR\n") && error.contains("slow consumer"),
        "{error}"
    );
    let bytes: usize = held.iter().map(String::len).sum();
    assert!(
        bytes < 4 * 1024 * 1024,
        "{bytes} bytes held for a client that stopped"
    );
    server.server.shutdown().await;
}

/// Opens `POST {url}/xhr_streaming` on a socket with a small receive buffer and reads until
/// `until` has come; the caller may then stop reading it.
async fn unread_stream(addr: SocketAddr, url: &str, until: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let head =
        format!("POST {url}/xhr_streaming HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 0\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    tokio::time::timeout(WAIT, async {
        while !String::from_utf8_lossy(&seen).contains(until) {
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "the stream ended early");
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("the stream in time");
    stream
}

#[tokio::test]
async fn a_streaming_client_that_stops_reading_is_cut_and_its_session_released() {
    let server = TestServer::with(|config| {
        config.sockjs_session_timeout_ms = 300;
        // One response for everything: the client never has to open another.
        config.sockjs_response_limit = 1 << 30;
        config.slow_consumer_grace_ms = 300;
        config.shutdown_timeout_ms = 300;
    })
    .await;
    let addr = http(&server);
    let url = session_url("unread");

    let send = tokio::spawn({
        let url = url.clone();
        async move {
            // Once the stream is open: CONNECT and SUBSCRIBE, receipted.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let subscribe = "SUBSCRIBE\nid:1\ndestination:/topic/unread\nreceipt:r1\n\n\0";
            post(
                addr,
                &format!("{url}/xhr_send"),
                &stomp_payload(&[CONNECT, subscribe]),
            )
            .await
            .status
        }
    });
    // Read up to the RECEIPT, then never again (the socket stays open).
    let stream = unread_stream(addr, &url, "RECEIPT").await;
    assert_eq!(send.await.unwrap(), 204);

    let mut publisher = common::Tcp::connect(server.stomp(), "pub").await;
    let body = "z".repeat(1024);
    for _ in 0..8 * 1024 {
        publisher
            .send(
                stompede::protocol::Frame::new(stompede::protocol::Command::Send)
                    .header("destination", "/topic/unread")
                    .body(bytes::Bytes::from(body.clone())),
            )
            .await;
    }
    publisher
        .send_receipted(
            stompede::protocol::Frame::new(stompede::protocol::Command::Send)
                .header("destination", "/topic/other"),
            "done",
        )
        .await;
    drop(publisher);
    // The subscriber was cut; its SockJS session must end too (its id unknown again, every
    // session gone), though its client still holds the socket and never reads it.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let probe = post(addr, &format!("{url}/xhr_send"), "[]").await;
        if probe.status == 404 && server.server.broker().session_count() == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the session lives on ({}, {} sessions)",
            probe.status,
            server.server.broker().session_count()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(stream);
    server.server.shutdown().await;
}

#[tokio::test]
async fn a_batch_larger_than_one_message_is_taken_when_each_message_fits() {
    let server = TestServer::with(|config| {
        // Frames of about 20 KiB at most, so a message of at most about 100 KiB.
        config.max_headers = 16;
        config.max_header_line_len = 1024;
        config.max_body_len = 4096;
        config.outbox_high_water_bytes = 64 * 1024;
    })
    .await;
    let addr = http(&server);
    let url = session_url("batch");

    assert_eq!(
        post(addr, &format!("{url}/xhr"), "").await.body().await,
        "o\n"
    );
    let subscribe = "SUBSCRIBE\nid:1\ndestination:/topic/batch\nreceipt:r1\n\n\0";
    let sent = post(
        addr,
        &format!("{url}/xhr_send"),
        &stomp_payload(&[CONNECT, subscribe]),
    )
    .await;
    assert_eq!(sent.status, 204);
    let mut got = Vec::new();
    while got.len() < 2 {
        got.extend(messages(
            &post(addr, &format!("{url}/xhr"), "").await.body().await,
        ));
    }
    // 60 frames of 3,000 bytes in one request, as sockjs-client joins what it queued: more
    // than one message may hold, each one within the frame limit.
    let body = "b".repeat(3000);
    let sends: Vec<String> = (0..60)
        .map(|i| format!("SEND\ndestination:/topic/batch\nn:{i}\n\n{body}\0"))
        .collect();
    let sends: Vec<&str> = sends.iter().map(String::as_str).collect();
    let payload = stomp_payload(&sends);
    assert!(payload.len() > 150 * 1024);
    let sent = post(addr, &format!("{url}/xhr_send"), &payload).await;
    assert_eq!(sent.status, 204);
    let mut received = Vec::new();
    while received.len() < 60 {
        received.extend(
            messages(&post(addr, &format!("{url}/xhr"), "").await.body().await)
                .into_iter()
                .filter(|m| m.starts_with("MESSAGE\n")),
        );
    }
    for (i, message) in received.iter().enumerate() {
        assert!(message.contains(&format!("\nn:{i}\n")), "{i}");
    }
    // One message larger than a frame may be is still refused.
    let huge = stomp_payload(&[&"x".repeat(200 * 1024)]);
    let refused = post(addr, &format!("{url}/xhr_send"), &huge).await;
    assert_eq!(refused.status, 413);
    server.server.shutdown().await;
}

#[tokio::test]
async fn sessions_past_the_maximum_are_refused_with_503() {
    let server = TestServer::with(|config| config.sockjs_max_sessions = 2).await;
    let addr = http(&server);

    let first = session_url("max-a");
    for url in [&first, &session_url("max-b")] {
        assert_eq!(
            post(addr, &format!("{url}/xhr"), "").await.body().await,
            "o\n"
        );
    }
    let refused = post(addr, &format!("{}/xhr", session_url("max-c")), "").await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.body().await, "Too many sessions.");
    // The sessions that exist go on.
    let sent = post(
        addr,
        &format!("{first}/xhr_send"),
        &stomp_payload(&[CONNECT]),
    )
    .await;
    assert_eq!(sent.status, 204);
    let reply = post(addr, &format!("{first}/xhr"), "").await.body().await;
    assert!(messages(&reply)[0].starts_with("CONNECTED\n"));
    server.server.shutdown().await;
}

#[tokio::test]
async fn a_send_body_that_breaks_off_is_a_bad_request_not_too_large() {
    let server = TestServer::start().await;
    let addr = http(&server);
    let url = session_url("broken-body");
    assert_eq!(
        post(addr, &format!("{url}/xhr"), "").await.body().await,
        "o\n"
    );
    // A chunked body whose chunk size is not hexadecimal: the body cannot be read.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {url}/xhr_send HTTP/1.1\r\nhost: {addr}\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    server.server.shutdown().await;
}
