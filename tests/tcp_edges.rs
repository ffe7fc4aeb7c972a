//! Raw frames over TCP against a real broker: framing edge cases, errors and timeouts.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{connect_frame, error_message, Tcp, TestServer};
use stompede::protocol::{Command, Frame};

#[tokio::test]
async fn a_frame_split_into_single_bytes_is_understood() {
    let server = TestServer::start().await;
    let mut sub = Tcp::connect(server.stomp(), "sub").await;
    sub.subscribe("s", "/topic/split", "auto").await;
    let mut publisher = Tcp::connect(server.stomp(), "pub").await;
    let wire = b"SEND\ndestination:/topic/split\nreceipt:r\n\nsplit body\0";
    for byte in wire {
        publisher.raw(&[*byte]).await;
        tokio::task::yield_now().await;
    }
    assert_eq!(publisher.frame().await.command, Command::Receipt);
    let message = sub.frame().await;
    assert_eq!(&message.body[..], b"split body");
}

#[tokio::test]
async fn several_frames_in_one_write_with_heartbeats_between() {
    let server = TestServer::start().await;
    let mut client = Tcp::connect(server.stomp(), "me").await;
    client
        .raw(b"SUBSCRIBE\nid:1\ndestination:/queue/many\n\n\0\n\r\nSEND\ndestination:/queue/many\n\none\0\nSEND\ndestination:/queue/many\n\ntwo\0SEND\ndestination:/queue/many\nreceipt:done\n\nthree\0")
        .await;
    let mut bodies = Vec::new();
    let mut receipt = false;
    while bodies.len() < 3 || !receipt {
        let frame = client.frame().await;
        match frame.command {
            Command::Message => bodies.push(String::from_utf8(frame.body.to_vec()).unwrap()),
            Command::Receipt => receipt = true,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(bodies, ["one", "two", "three"]);
}

#[tokio::test]
async fn content_length_bodies_carry_nul_bytes() {
    let server = TestServer::start().await;
    let mut sub = Tcp::connect(server.stomp(), "sub").await;
    sub.subscribe("s", "/topic/bin", "auto").await;
    let mut publisher = Tcp::connect(server.stomp(), "pub").await;
    let body: Vec<u8> = (0..=255u8).collect();
    publisher
        .send_receipted(
            Frame::new(Command::Send)
                .header("destination", "/topic/bin")
                .header("content-type", "application/octet-stream")
                .body(body.clone()),
            "r",
        )
        .await;
    let message = sub.frame().await;
    assert_eq!(&message.body[..], &body[..]);
    assert_eq!(message.get("content-length"), Some("256"));
    assert_eq!(
        message.get("content-type"),
        Some("application/octet-stream")
    );
}

#[tokio::test]
async fn header_escaping_follows_each_version() {
    let server = TestServer::start().await;
    // 1.2 subscriber: sees the value unescaped then escaped again on the wire.
    let mut sub = Tcp::connect(server.stomp(), "sub").await;
    sub.subscribe("s", "/topic/esc", "auto").await;
    let mut publisher = Tcp::connect(server.stomp(), "pub").await;
    publisher
        .raw(b"SEND\ndestination:/topic/esc\nx-note:a\\cb\\nc\\\\d\\re\nreceipt:r\n\n\0")
        .await;
    assert_eq!(publisher.frame().await.command, Command::Receipt);
    let message = sub.frame().await;
    assert_eq!(message.get("x-note"), Some("a:b\nc\\d\re"));

    // A 1.0 session does no unescaping: the backslashes are data.
    let mut old = Tcp::open(server.stomp()).await;
    old.raw(b"CONNECT\nlogin:old\n\n\0").await;
    let connected = old.frame().await;
    assert_eq!(connected.get("version"), Some("1.0"));
    old.raw(b"SEND\ndestination:/topic/esc\nx-note:a\\cb\nreceipt:r\n\n\0")
        .await;
    assert_eq!(old.frame().await.command, Command::Receipt);
    let message = sub.frame().await;
    assert_eq!(message.get("x-note"), Some("a\\cb"));

    // An undefined escape in 1.2 is an error.
    publisher
        .raw(b"SEND\ndestination:/topic/esc\nx-note:\\t\n\n\0")
        .await;
    let frames = publisher.until_closed().await;
    assert!(error_message(&frames[0]).contains("escape"), "{frames:?}");
}

#[tokio::test]
async fn an_unknown_command_gets_an_error_and_others_keep_working() {
    let server = TestServer::start().await;
    let mut bystander = Tcp::connect(server.stomp(), "ok").await;
    bystander.subscribe("s", "/queue/still", "auto").await;
    let mut bad = Tcp::connect(server.stomp(), "bad").await;
    bad.raw(b"FROB\n\n\0").await;
    let frames = bad.until_closed().await;
    assert!(error_message(&frames[0]).contains("unknown command"));
    bystander
        .send(
            Frame::new(Command::Send)
                .header("destination", "/queue/still")
                .body("alive"),
        )
        .await;
    assert_eq!(&bystander.frame().await.body[..], b"alive");
}

#[tokio::test]
async fn an_oversize_body_is_refused_before_it_is_buffered() {
    let server = TestServer::with(|c| c.max_body_len = 1024).await;
    let mut client = Tcp::connect(server.stomp(), "big").await;
    // Declares 1 GiB; the server must answer without waiting for it.
    client
        .raw(b"SEND\ndestination:/queue/big\nreceipt:r9\ncontent-length:1073741824\n\n")
        .await;
    let frames = client.until_closed().await;
    assert!(
        error_message(&frames[0]).contains("larger than 1024"),
        "{frames:?}"
    );
    // Without content-length, the scan for NUL stops at the limit too.
    let mut client = Tcp::connect(server.stomp(), "big").await;
    client.raw(b"SEND\ndestination:/queue/big\n\n").await;
    client.raw(&[b'x'; 4096]).await;
    let frames = client.until_closed().await;
    assert!(error_message(&frames[0]).contains("larger than 1024"));
}

#[tokio::test]
async fn errors_carry_the_receipt_id_of_the_failing_frame() {
    let server = TestServer::start().await;
    let mut client = Tcp::connect(server.stomp(), "me").await;
    client
        .raw(b"SEND\ndestination:/nowhere/x\nreceipt:77\n\n\0")
        .await;
    let frames = client.until_closed().await;
    assert!(error_message(&frames[0]).contains("unsupported destination"));
    assert_eq!(frames[0].get("receipt-id"), Some("77"));
}

#[tokio::test]
async fn a_client_that_stops_heartbeating_is_disconnected_and_its_messages_return() {
    let server = TestServer::with(|c| {
        c.heartbeat_receive_ms = 100;
        c.heartbeat_tolerance = 2.0;
    })
    .await;
    let mut silent = Tcp::open(server.stomp()).await;
    silent
        .raw(b"CONNECT\naccept-version:1.2\nheart-beat:100,0\nlogin:quiet\n\n\0")
        .await;
    let connected = silent.frame().await;
    assert_eq!(connected.get("heart-beat"), Some("0,100"));
    silent
        .raw(b"SUBSCRIBE\nid:1\ndestination:/queue/hb\nack:client\n\n\0")
        .await;
    let mut producer = Tcp::connect(server.stomp(), "p").await;
    producer
        .send_receipted(
            Frame::new(Command::Send)
                .header("destination", "/queue/hb")
                .body("held"),
            "r",
        )
        .await;
    let held = silent.frame().await;
    assert_eq!(&held.body[..], b"held");
    // Now say nothing: the server must give up after about 200 ms.
    let frames = silent.until_closed().await;
    assert!(error_message(&frames[0]).contains("heart-beat"));
    // The unacknowledged message goes back to the queue, marked redelivered.
    producer
        .send(
            Frame::new(Command::Subscribe)
                .header("id", "again")
                .header("destination", "/queue/hb"),
        )
        .await;
    let again = producer.frame().await;
    assert_eq!(&again.body[..], b"held");
    assert_eq!(again.get("redelivered"), Some("true"));
}

#[tokio::test]
async fn a_client_that_heartbeats_stays_connected() {
    let server = TestServer::with(|c| {
        c.heartbeat_receive_ms = 100;
        c.heartbeat_send_ms = 100;
    })
    .await;
    let mut client = Tcp::open(server.stomp()).await;
    client
        .raw(b"CONNECT\naccept-version:1.2\nheart-beat:100,100\n\n\0")
        .await;
    assert_eq!(client.frame().await.get("heart-beat"), Some("100,100"));
    let mut beats_seen = 0;
    for _ in 0..8 {
        client.raw(b"\n").await;
        let mut byte = [0u8; 1];
        if let Ok(Ok(1)) = tokio::time::timeout(
            Duration::from_millis(300),
            tokio::io::AsyncReadExt::read(&mut client.stream, &mut byte),
        )
        .await
        {
            assert_eq!(byte[0], b'\n');
            beats_seen += 1;
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    assert!(beats_seen >= 3, "server heart-beats seen: {beats_seen}");
    client
        .send_receipted(
            Frame::new(Command::Begin).header("transaction", "t"),
            "still-here",
        )
        .await;
}

#[tokio::test]
async fn connect_must_come_first_and_only_once() {
    let server = TestServer::start().await;
    let mut client = Tcp::open(server.stomp()).await;
    client.raw(b"SEND\ndestination:/queue/x\n\n\0").await;
    let frames = client.until_closed().await;
    assert!(error_message(&frames[0]).contains("expected CONNECT"));

    let mut client = Tcp::connect(server.stomp(), "twice").await;
    client.raw(b"CONNECT\naccept-version:1.2\n\n\0").await;
    let frames = client.until_closed().await;
    assert!(error_message(&frames[0]).contains("already connected"));
}

#[tokio::test]
async fn version_negotiation_picks_the_highest_common_version() {
    let server = TestServer::start().await;
    for (accept, expected) in [("1.0,1.1", "1.1"), ("1.2,1.1", "1.2"), ("1.0", "1.0")] {
        let mut client = Tcp::open(server.stomp()).await;
        client
            .raw(format!("CONNECT\naccept-version:{accept}\nhost:10.0.0.1\n\n\0").as_bytes())
            .await;
        let connected = client.frame().await;
        assert_eq!(connected.get("version"), Some(expected));
        assert!(connected.get("session").is_some());
        assert!(connected.get("server").unwrap().starts_with("stompede/"));
    }
    let mut client = Tcp::open(server.stomp()).await;
    client.raw(b"CONNECT\naccept-version:2.0\n\n\0").await;
    let frames = client.until_closed().await;
    assert!(error_message(&frames[0]).contains("version"));
    assert_eq!(frames[0].get("version"), Some("1.0,1.1,1.2"));
}

#[tokio::test]
async fn users_are_authenticated() {
    let server = TestServer::with(|c| {
        c.users.insert("ann".into(), "secret".into());
    })
    .await;
    let mut ok = Tcp::connect(server.stomp(), "ann").await;
    ok.send_receipted(Frame::new(Command::Begin).header("transaction", "t"), "r")
        .await;
    let mut wrong = Tcp::open(server.stomp()).await;
    wrong
        .raw(b"CONNECT\naccept-version:1.2\nlogin:ann\npasscode:nope\n\n\0")
        .await;
    let frames = wrong.until_closed().await;
    assert!(error_message(&frames[0]).contains("authentication failed"));
    let mut nobody = Tcp::open(server.stomp()).await;
    nobody.raw(b"CONNECT\naccept-version:1.2\n\n\0").await;
    let frames = nobody.until_closed().await;
    assert!(error_message(&frames[0]).contains("authentication failed"));
}

#[tokio::test]
async fn disconnect_with_receipt_comes_after_earlier_work() {
    let server = TestServer::start().await;
    let mut client = Tcp::connect(server.stomp(), "me").await;
    client.subscribe("s", "/topic/bye", "auto").await;
    client
        .raw(b"SEND\ndestination:/topic/bye\n\nlast\0DISCONNECT\nreceipt:bye\n\n\0")
        .await;
    let frames = client.until_closed().await;
    assert_eq!(frames.len(), 2, "{frames:?}");
    assert_eq!(&frames[0].body[..], b"last");
    assert_eq!(frames[1].command, Command::Receipt);
    assert_eq!(frames[1].get("receipt-id"), Some("bye"));
}

#[tokio::test]
async fn shutdown_tells_connected_clients() {
    let server = TestServer::start().await;
    let mut client = Tcp::connect(server.stomp(), "me").await;
    let TestServer { server, _dir } = server;
    let shutdown = tokio::spawn(server.shutdown());
    let frames = client.until_closed().await;
    assert_eq!(error_message(&frames[0]), "server shutting down");
    shutdown.await.unwrap();
}

#[tokio::test]
async fn limits_on_subscriptions_are_enforced() {
    let server = TestServer::with(|c| c.max_subscriptions_per_session = 2).await;
    let mut client = Tcp::connect(server.stomp(), "me").await;
    client.subscribe("1", "/topic/a", "auto").await;
    client.subscribe("2", "/topic/b", "auto").await;
    client
        .raw(b"SUBSCRIBE\nid:3\ndestination:/topic/c\n\n\0")
        .await;
    let frames = client.until_closed().await;
    assert!(error_message(&frames[0]).contains("too many subscriptions"));
}

#[tokio::test]
async fn sessions_per_user_are_capped_and_counted_down_on_close() {
    let server = TestServer::with(|c| c.max_sessions_per_user = 2).await;
    let first = Tcp::connect(server.stomp(), "ann").await;
    let _second = Tcp::connect(server.stomp(), "ann").await;
    // Another user is not affected by ann's count.
    let _bob = Tcp::connect(server.stomp(), "bob").await;

    let mut third = Tcp::open(server.stomp()).await;
    third.send(connect_frame("ann")).await;
    let refused = third.frame().await;
    assert_eq!(refused.command, Command::Error, "{refused:?}");
    assert!(
        error_message(&refused).contains("session"),
        "{}",
        error_message(&refused)
    );

    drop(first);
    // Once the broker has seen the first one go, ann may connect again.
    let mut admitted = false;
    for _ in 0..100 {
        let mut again = Tcp::open(server.stomp()).await;
        again.send(connect_frame("ann")).await;
        if again.frame().await.command == Command::Connected {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(admitted, "a closed session still counted against its user");
}
