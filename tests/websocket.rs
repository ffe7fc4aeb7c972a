//! WebSocket STOMP against a real broker: subprotocols, text and binary frames, framing
//! leniency for hand-typed frames, and errors.
#![allow(clippy::unwrap_used)]

mod common;

use common::{error_message, Tcp, TestServer, Ws};
use stompede::fuzzing::client_frame;
use stompede::protocol::{Command, Frame};

#[tokio::test]
async fn each_stomp_subprotocol_is_accepted_and_echoed() {
    let server = TestServer::start().await;
    for (offered, chosen, version) in [
        ("v12.stomp", Some("v12.stomp"), "1.2"),
        ("v11.stomp", Some("v11.stomp"), "1.1"),
        ("v10.stomp", Some("v10.stomp"), "1.0"),
        ("v10.stomp, v11.stomp, v12.stomp", Some("v12.stomp"), "1.2"),
        ("", None, "1.0"),
    ] {
        let mut ws = Ws::open(&server.ws_url(), offered).await;
        assert_eq!(ws.protocol.as_deref(), chosen, "offered {offered:?}");
        // No accept-version: the subprotocol decides (1.0 without one).
        ws.text("CONNECT\nhost:/\n\n\0").await;
        let (connected, _) = ws.frame().await;
        assert_eq!(connected.command, Command::Connected);
        assert_eq!(
            connected.get("version"),
            Some(version),
            "offered {offered:?}"
        );
    }
}

#[tokio::test]
async fn binary_bodies_round_trip_in_binary_frames_and_text_in_text() {
    let server = TestServer::start().await;
    let mut sub = Ws::connect(&server.ws_url()).await;
    sub.subscribe("0", "/topic/kinds").await;

    let mut publisher = Ws::connect(&server.ws_url()).await;
    let body: Vec<u8> = (0..=255u8).collect();
    let mut frame = format!(
        "SEND\ndestination:/topic/kinds\ncontent-length:{}\n\n",
        body.len()
    )
    .into_bytes();
    frame.extend_from_slice(&body);
    frame.push(0);
    publisher.binary(frame).await;
    publisher
        .text("SEND\ndestination:/topic/kinds\n\nhéllo\0")
        .await;

    let (binary, is_text) = sub.frame().await;
    assert!(!is_text, "binary SEND must arrive as a binary message");
    assert_eq!(&binary.body[..], &body[..]);
    let (text, is_text) = sub.frame().await;
    assert!(is_text);
    assert_eq!(&text.body[..], "héllo".as_bytes());

    // A TCP publisher's UTF-8 body arrives as text, a non-UTF-8 one as binary.
    let mut tcp = Tcp::connect(server.stomp(), "tcp").await;
    tcp.send(
        Frame::new(Command::Send)
            .header("destination", "/topic/kinds")
            .body(vec![0xff, 0xfe]),
    )
    .await;
    let (raw, is_text) = sub.frame().await;
    assert!(!is_text);
    assert_eq!(&raw.body[..], &[0xff, 0xfe]);
}

#[tokio::test]
async fn several_frames_per_message_and_one_frame_across_messages() {
    let server = TestServer::start().await;
    let mut ws = Ws::open(&server.ws_url(), "v12.stomp").await;
    ws.text("CONNECT\naccept-version:1.2\n\n\0SUBSCRIBE\nid:0\ndestination:/queue/ws\n\n\0")
        .await;
    assert_eq!(ws.frame().await.0.command, Command::Connected);
    ws.text("SEND\ndestination:/queue/ws\ncontent-length:5\n\nhel")
        .await;
    ws.text("lo\0SEND\ndestination:/queue/ws\n\nsecond\0").await;
    assert_eq!(&ws.frame().await.0.body[..], b"hello");
    assert_eq!(&ws.frame().await.0.body[..], b"second");
}

#[tokio::test]
async fn a_hand_typed_frame_without_its_nul_is_accepted() {
    let server = TestServer::start().await;
    let mut ws = Ws::open(&server.ws_url(), "v12.stomp").await;
    // As typed into wscat: no final NUL at the end of each message.
    ws.text("CONNECT\naccept-version:1.2\n\n").await;
    assert_eq!(ws.frame().await.0.command, Command::Connected);
    ws.text("SUBSCRIBE\nid:0\ndestination:/topic/typed\nreceipt:r\n\n")
        .await;
    assert_eq!(ws.frame().await.0.command, Command::Receipt);
    ws.text("SEND\ndestination:/topic/typed\n\ntyped by hand")
        .await;
    let (message, _) = ws.frame().await;
    assert_eq!(&message.body[..], b"typed by hand");
}

#[tokio::test]
async fn the_leniency_can_be_switched_off() {
    let server = TestServer::with(|c| c.lenient_websocket_frames = false).await;
    let mut ws = Ws::open(&server.ws_url(), "v12.stomp").await;
    ws.text("CONNECT\naccept-version:1.2\n\n").await;
    ws.text("\0").await;
    assert_eq!(ws.frame().await.0.command, Command::Connected);
}

#[tokio::test]
async fn a_malformed_frame_ends_only_its_own_websocket() {
    let server = TestServer::with(|c| c.max_body_len = 100).await;
    let mut good = Ws::open(&server.ws_url(), "v12.stomp").await;
    good.text("CONNECT\naccept-version:1.2\n\n\0SUBSCRIBE\nid:0\ndestination:/topic/ok\n\n\0")
        .await;
    good.frame().await;
    let mut bad = Ws::open(&server.ws_url(), "v12.stomp").await;
    bad.text("CONNECT\naccept-version:1.2\n\n\0").await;
    bad.frame().await;
    bad.text(&format!(
        "SEND\ndestination:/topic/ok\n\n{}\0",
        "x".repeat(500)
    ))
    .await;
    let frames = bad.until_closed().await;
    assert!(error_message(&frames[0]).contains("larger than 100"));
    let mut publisher = Tcp::connect(server.stomp(), "p").await;
    publisher
        .send(
            Frame::new(Command::Send)
                .header("destination", "/topic/ok")
                .body("fine"),
        )
        .await;
    assert_eq!(&good.frame().await.0.body[..], b"fine");
}

#[tokio::test]
async fn silent_and_idle_http_connections_are_closed() {
    use tokio::io::AsyncWriteExt;
    let server = TestServer::with(|c| c.http_header_timeout_ms = 200).await;
    let addr = server.server.http_addr().unwrap();
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // Closed: the connection that never sent a byte, and the keep-alive one once answered.
    assert_eq!(until_eof(&mut silent).await, b"");
    let answered = String::from_utf8(until_eof(&mut idle).await).unwrap();
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    assert!(answered.ends_with("ok\n"), "{answered}");
    // A request sent in time is still served.
    let mut prompt = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    prompt.write_all(request).await.unwrap();
    assert!(until_eof(&mut prompt).await.ends_with(b"ok\n"));
}

#[tokio::test]
async fn metrics_and_health_are_served_on_the_http_port() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start().await;
    let mut client = Tcp::connect(server.stomp(), "m").await;
    client.raw(b"FROB\n\n\0").await;
    client.until_closed().await;
    let get = |path: &'static str| {
        let addr = server.server.http_addr().unwrap();
        async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).await.unwrap();
            response
        }
    };
    assert!(get("/health").await.ends_with("ok\n"));
    let metrics = get("/metrics").await;
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(
        metrics.contains("stompede_protocol_errors_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("stompede_slow_consumers_disconnected_total 0"));
    assert!(metrics.contains("stompede_outbox_memory_bytes "));
}

/// Sends a raw opening handshake with the given key; the response's head.
async fn handshake_with_key(server: &TestServer, key: Option<&str>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = server.server.http_addr().unwrap();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let key = key.map_or(String::new(), |k| format!("Sec-WebSocket-Key: {k}\r\n"));
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\n{key}\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let mut byte = [0u8; 1];
    while !response.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(common::WAIT, stream.read(&mut byte))
            .await
            .unwrap()
            .unwrap();
        if n == 0 {
            break;
        }
        response.push(byte[0]);
    }
    String::from_utf8(response).unwrap()
}

#[tokio::test]
async fn the_handshake_checks_the_key_and_answers_it() {
    let server = TestServer::start().await;
    // The example of RFC 6455 section 1.3.
    let ok = handshake_with_key(&server, Some("dGhlIHNhbXBsZSBub25jZQ==")).await;
    assert!(ok.starts_with("HTTP/1.1 101"), "{ok}");
    assert!(
        ok.to_ascii_lowercase()
            .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{ok}"
    );
    // Section 4.2.1: the key is 16 bytes in base64; anything else is refused with a 400.
    // Two keys (the second header line rides in the first's value) are refused too.
    let twice = "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==";
    for bad in [
        None,
        Some("not a key"),
        Some("c2hvcnQ="),
        Some(""),
        Some(twice),
    ] {
        let response = handshake_with_key(&server, bad).await;
        assert!(response.starts_with("HTTP/1.1 400"), "{bad:?}: {response}");
    }
    // Only the valid handshake counts as an accepted connection.
    let accepted = server
        .server
        .broker()
        .metrics()
        .connections_accepted
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(accepted, 1);
}

/// A raw WebSocket client: the handshake done, the response's head read.
async fn raw_ws(server: &TestServer) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = server.server.http_addr().unwrap();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    stream
}

/// A final, masked client frame.
fn masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
    client_frame(true, opcode, payload, [0x11, 0x22, 0x33, 0x44])
}

/// Everything the server sends until it closes the connection.
async fn until_eof(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    tokio::time::timeout(common::WAIT, stream.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
}

#[tokio::test]
async fn a_close_frame_is_answered_with_a_close_frame_even_before_connect() {
    use tokio::io::AsyncWriteExt;
    let server = TestServer::start().await;
    // Section 5.5.1: a close received must be answered with a close (its code echoed).
    let mut stream = raw_ws(&server).await;
    stream
        .write_all(&masked(0x8, &4001u16.to_be_bytes()))
        .await
        .unwrap();
    let out = until_eof(&mut stream).await;
    assert!(
        out.ends_with(&[0x88, 0x02, 0x0f, 0xa1]),
        "before CONNECT: {out:?}"
    );

    let mut stream = raw_ws(&server).await;
    stream
        .write_all(&masked(0x1, b"CONNECT\naccept-version:1.2\n\n\0"))
        .await
        .unwrap();
    stream.write_all(&masked(0x8, &[])).await.unwrap();
    let out = until_eof(&mut stream).await;
    assert!(
        out.ends_with(&[0x88, 0x02, 0x03, 0xe8]),
        "after CONNECT: {out:?}"
    );
}

/// Bodies around the size at which the writer stops copying a message into each subscriber's
/// buffer and writes it from the shared message instead, and around WebSocket's length classes.
const SIZES: [usize; 12] = [
    0, 1, 2_000, 2_047, 2_048, 2_049, 9_000, 65_535, 65_536, 70_000, 1_000_000, 3,
];

fn sized_body(n: usize, size: usize) -> Vec<u8> {
    // Every third one is not UTF-8, so it travels as a binary WebSocket message.
    let base = if n % 3 == 2 { 0x80 } else { b'a' };
    (0..size).map(|i| base + ((i + n) % 26) as u8).collect()
}

#[tokio::test]
async fn small_and_large_messages_interleaved_arrive_intact_over_websocket_and_tcp() {
    let server = TestServer::start().await;
    let mut ws = Ws::connect(&server.ws_url()).await;
    ws.subscribe("w", "/topic/sizes").await;
    let mut tcp = Tcp::connect(server.stomp(), "tcp").await;
    tcp.subscribe("t", "/topic/sizes", "auto").await;

    // Sent back to back, so each subscriber's writer takes several in one batch.
    let mut publisher = Tcp::connect(server.stomp(), "publisher").await;
    for (n, size) in SIZES.iter().enumerate() {
        publisher
            .send(
                Frame::new(Command::Send)
                    .header("destination", "/topic/sizes")
                    .header("x-n", n.to_string())
                    .body(sized_body(n, *size)),
            )
            .await;
    }
    for (n, size) in SIZES.iter().enumerate() {
        let (frame, text) = ws.frame().await;
        assert_eq!(frame.get("x-n"), Some(n.to_string().as_str()));
        assert_eq!(frame.get("subscription"), Some("w"));
        assert_eq!(text, n % 3 != 2, "message {n}: text or binary");
        assert!(
            frame.body[..] == sized_body(n, *size)[..],
            "message {n} ({size} bytes) over WebSocket"
        );
        let frame = tcp.frame().await;
        assert_eq!(frame.get("x-n"), Some(n.to_string().as_str()));
        assert_eq!(frame.get("subscription"), Some("t"));
        assert!(
            frame.body[..] == sized_body(n, *size)[..],
            "message {n} ({size} bytes) over TCP"
        );
    }
}

/// The status line of a WebSocket upgrade sent with `origin` (if any).
async fn upgrade_status(server: &TestServer, origin: Option<&str>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = server.server.http_addr().unwrap();
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let origin = origin.map_or(String::new(), |o| format!("Origin: {o}\r\n"));
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Protocol: v12.stomp\r\n{origin}\r\n"
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 256];
    let n = socket.read(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
    answer.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_page_on_another_site_cannot_open_a_session() {
    let server =
        TestServer::with(|c| c.allowed_origins = vec!["https://app.example.com".into()]).await;
    let own = format!("http://{}", server.server.http_addr().unwrap());
    for allowed in [
        None,
        Some(own.as_str()),
        Some("http://localhost:3000"),
        Some("https://app.example.com"),
    ] {
        let status = upgrade_status(&server, allowed).await;
        assert!(status.contains(" 101 "), "{allowed:?}: {status}");
    }
    for refused in ["https://evil.example", "null"] {
        let status = upgrade_status(&server, Some(refused)).await;
        assert!(status.contains(" 403 "), "{refused}: {status}");
    }
}

/// Reads one unmasked server frame: (opcode, payload); `None` at the end of the stream.
async fn server_frame<R: tokio::io::AsyncRead + Unpin>(stream: &mut R) -> Option<(u8, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    let mut head = [0u8; 2];
    let read = tokio::time::timeout(common::WAIT, stream.read_exact(&mut head))
        .await
        .expect("a frame in time");
    if read.is_err() {
        return None;
    }
    assert_eq!(head[0] & 0x70, 0, "no extension bits");
    assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
    let len = match head[1] & 0x7f {
        126 => {
            let mut ext = [0u8; 2];
            stream.read_exact(&mut ext).await.unwrap();
            usize::from(u16::from_be_bytes(ext))
        }
        127 => {
            let mut ext = [0u8; 8];
            stream.read_exact(&mut ext).await.unwrap();
            u64::from_be_bytes(ext) as usize
        }
        n => usize::from(n),
    };
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await.unwrap();
    Some((head[0] & 0x0f, payload))
}

#[tokio::test]
async fn a_ping_before_connect_is_answered_at_once() {
    use tokio::io::AsyncWriteExt;
    let server = TestServer::start().await;
    let mut stream = raw_ws(&server).await;
    // RFC 6455 section 5.5.2: a pong "as soon as is practical", whatever the STOMP session
    // is waiting for (here its CONNECT).
    stream.write_all(&masked(0x9, b"early?")).await.unwrap();
    assert_eq!(
        server_frame(&mut stream).await,
        Some((0xA, b"early?".to_vec()))
    );
    stream.write_all(&masked(0x9, b"")).await.unwrap();
    assert_eq!(server_frame(&mut stream).await, Some((0xA, Vec::new())));
    // And the session goes on as usual.
    stream
        .write_all(&masked(0x1, b"CONNECT\naccept-version:1.2\n\n\0"))
        .await
        .unwrap();
    let (opcode, connected) = server_frame(&mut stream).await.unwrap();
    assert_eq!(opcode, 0x1);
    assert!(connected.starts_with(b"CONNECTED\n"));
    stream.write_all(&masked(0x9, b"later")).await.unwrap();
    assert_eq!(
        server_frame(&mut stream).await,
        Some((0xA, b"later".to_vec()))
    );
}

#[tokio::test]
async fn a_client_still_sending_after_its_bad_frame_reads_the_error_and_the_close_intact() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start().await;
    let body = "x".repeat(4096);
    let flood = masked(
        0x1,
        format!("SEND\ndestination:/topic/flood\n\n{body}\0").as_bytes(),
    );
    for attempt in 0..5 {
        let mut stream = raw_ws(&server).await;
        stream
            .write_all(&masked(0x1, b"CONNECT\naccept-version:1.2\n\n\0"))
            .await
            .unwrap();
        let (_, connected) = server_frame(&mut stream).await.unwrap();
        assert!(connected.starts_with(b"CONNECTED\n"));
        let (mut read, mut write) = stream.into_split();
        write
            .write_all(&masked(0x1, b"SEND\n\nno destination\0"))
            .await
            .unwrap();
        // Keep sending, as a busy client does, until the server's close frame is read; then
        // answer it (section 5.5.1) and send nothing more.
        let (closed_tx, mut closed_rx) = tokio::sync::watch::channel(false);
        let flood = flood.clone();
        let flooder = tokio::spawn(async move {
            while !*closed_rx.borrow_and_update() {
                if write.write_all(&flood).await.is_err() {
                    return;
                }
            }
            let _ = write.write_all(&masked(0x8, &1000u16.to_be_bytes())).await;
            // The write half stays open: the server, not the client, closes the connection.
            let _ = closed_rx.changed().await;
        });
        let mut frames = Vec::new();
        while let Some(frame) = server_frame(&mut read).await {
            let close = frame.0 == 0x8;
            frames.push(frame);
            if close {
                closed_tx.send_replace(true);
                break;
            }
        }
        // Then the server closes its end: an orderly end of stream, not a reset.
        let mut rest = Vec::new();
        let end = tokio::time::timeout(common::WAIT, read.read_to_end(&mut rest))
            .await
            .expect("the server closes once its close frame is answered");
        assert!(end.is_ok(), "attempt {attempt}: {end:?}");
        assert!(rest.is_empty());
        drop(closed_tx);
        flooder.await.unwrap();

        let (last, before) = frames.split_last().expect("frames before the end");
        assert_eq!(last.0, 0x8, "attempt {attempt}: the close frame came");
        let error = before
            .iter()
            .find(|(_, payload)| payload.starts_with(b"ERROR\n"))
            .unwrap_or_else(|| panic!("attempt {attempt}: no ERROR frame: {frames:?}"));
        let error = String::from_utf8_lossy(&error.1);
        assert!(error.contains("no destination"), "{error}");
    }
}

#[tokio::test]
async fn a_websocket_peer_that_answers_nothing_is_released_and_one_that_answers_stays() {
    use std::sync::atomic::Ordering;
    use tokio::io::AsyncWriteExt;
    // No STOMP heart-beats anywhere: only the WebSocket pings can tell.
    let server = TestServer::with(|c| {
        c.ws_ping_interval_ms = 100;
        c.ws_pong_timeout_ms = 1_000;
        c.heartbeat_send_ms = 0;
        c.heartbeat_receive_ms = 0;
    })
    .await;
    let broker = server.server.broker();
    // A client whose library answers pings (tungstenite, while it reads).
    let mut alive = Ws::connect(&server.ws_url()).await;
    alive.subscribe("0", "/topic/alive").await;
    let reader = tokio::spawn(async move { alive.frame().await });
    // A peer that never reads nor answers: a half-open connection, as far as it can tell.
    let mut dead = raw_ws(&server).await;
    dead.write_all(&masked(0x1, b"CONNECT\naccept-version:1.2\n\n\0"))
        .await
        .unwrap();
    let metrics = broker.metrics();
    tokio::time::timeout(common::WAIT, async {
        while metrics.ping_timeouts.load(Ordering::Relaxed) == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the silent peer is released");
    assert_eq!(metrics.ping_timeouts.load(Ordering::Relaxed), 1);
    assert_eq!(metrics.sessions_opened.load(Ordering::Relaxed), 2);
    assert_eq!(broker.session_count(), 1, "the answering client stays");
    // It still receives.
    let mut publisher = Tcp::connect(server.stomp(), "p").await;
    publisher
        .send(
            Frame::new(Command::Send)
                .header("destination", "/topic/alive")
                .body("still here"),
        )
        .await;
    let (message, _) = reader.await.unwrap();
    assert_eq!(&message.body[..], b"still here");
    assert_eq!(metrics.ping_timeouts.load(Ordering::Relaxed), 1);
    drop(dead);
}
