//! Flow control with real sockets: publishers are paced by full subscribers, a subscriber that
//! stops reading is cut off after the grace, and nobody else loses or reorders anything.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{Tcp, TestServer, Ws, WAIT};
use stompede::protocol::{Command, Frame, Headers};
use tokio::net::TcpSocket;

const BODY: usize = 1024;

fn small_outboxes(config: &mut stompede::Config) {
    config.outbox_high_water_messages = 32;
    config.outbox_high_water_bytes = 64 * 1024;
    config.slow_consumer_grace_ms = 500;
}

/// Opens a TCP connection with a tiny receive buffer, so a client that does not read fills up
/// quickly.
async fn stuck_tcp(server: &TestServer) -> Tcp {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(server.stomp()).await.unwrap();
    let mut client = Tcp::open(server.stomp()).await;
    client.stream = stream;
    client
        .raw(b"CONNECT\naccept-version:1.2\nlogin:stuck\n\n\0")
        .await;
    assert_eq!(client.frame().await.command, Command::Connected);
    client.subscribe("s", "/topic/flow", "auto").await;
    client
}

/// `n` readers subscribed to `/topic/flow`, each checking `count` messages in order.
async fn spawn_readers(
    server: &TestServer,
    n: usize,
    count: usize,
) -> Vec<tokio::task::JoinHandle<usize>> {
    let mut readers = Vec::new();
    for i in 0..n {
        let mut reader = Tcp::connect(server.stomp(), &format!("r{i}")).await;
        reader.subscribe("s", "/topic/flow", "auto").await;
        readers.push(tokio::spawn(read_in_order(reader, count)));
    }
    readers
}

/// Subscribers cut off for not reading, so far.
fn slow_consumers(server: &TestServer) -> u64 {
    let metrics = server.server.broker().metrics();
    metrics.slow_consumers_disconnected.load(Ordering::Relaxed)
}

/// Reads `count` messages from `client`, checking that they are 0..count in order.
async fn read_in_order(mut client: Tcp, count: usize) -> usize {
    for expected in 0..count {
        let frame = client.frame().await;
        assert_eq!(frame.command, Command::Message);
        let seq: usize = frame.get("seq").unwrap().parse().unwrap();
        assert_eq!(seq, expected, "out of order or lost");
    }
    assert!(
        client
            .maybe_frame(Duration::from_millis(100))
            .await
            .is_none(),
        "duplicate"
    );
    count
}

async fn publish(publisher: &mut Tcp, count: usize) {
    let body = vec![b'x'; BODY];
    for seq in 0..count {
        publisher
            .send(
                Frame::new(Command::Send)
                    .header("destination", "/topic/flow")
                    .header("seq", seq.to_string())
                    .body(body.clone()),
            )
            .await;
    }
    publisher
        .send_receipted(
            Frame::new(Command::Begin).header("transaction", "end"),
            "done",
        )
        .await;
}

#[tokio::test]
async fn a_stuck_tcp_subscriber_is_cut_off_and_readers_get_everything() {
    let server = TestServer::with(small_outboxes).await;
    let count = 3000;
    let readers = spawn_readers(&server, 4, count).await;
    let mut stuck = stuck_tcp(&server).await;
    let mut publisher = Tcp::connect(server.stomp(), "pub").await;
    publish(&mut publisher, count).await;
    for reader in readers {
        assert_eq!(reader.await.unwrap(), count);
    }
    let metrics = server.server.broker().metrics();
    assert_eq!(
        metrics.slow_consumers_disconnected.load(Ordering::Relaxed),
        1
    );
    assert!(metrics.publishes_paced.load(Ordering::Relaxed) > 0);
    // The stuck client finds its connection closed once it drains what the kernel held.
    let frames = stuck.until_closed().await;
    assert!(
        frames.len() < count,
        "the stuck client cannot have received everything"
    );
}

#[tokio::test]
async fn a_stuck_websocket_subscriber_is_cut_off_and_readers_get_everything() {
    let server = TestServer::with(small_outboxes).await;
    let count = 3000;
    let readers = spawn_readers(&server, 3, count).await;
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket
        .connect(server.server.http_addr().unwrap())
        .await
        .unwrap();
    let mut stuck = Ws::open_on(stream, &server.ws_url(), "v12.stomp").await;
    stuck.text("CONNECT\naccept-version:1.2\n\n\0SUBSCRIBE\nid:0\ndestination:/topic/flow\nreceipt:s\n\n\0").await;
    stuck.frame().await;
    stuck.frame().await;
    // From here on the WebSocket client never reads.
    let mut publisher = Tcp::connect(server.stomp(), "pub").await;
    publish(&mut publisher, count).await;
    for reader in readers {
        assert_eq!(reader.await.unwrap(), count);
    }
    assert_eq!(slow_consumers(&server), 1);
    drop(stuck);
}

/// Connections whose receive buffer was bounded once paced, so far.
fn bounded(server: &TestServer) -> u64 {
    let metrics = server.server.broker().metrics();
    metrics.receive_buffers_bounded.load(Ordering::Relaxed)
}

#[tokio::test]
async fn a_paced_publisher_keeps_a_small_receive_buffer_over_tcp_and_websocket() {
    let server = TestServer::with(|c| {
        small_outboxes(c);
        c.slow_consumer_grace_ms = 300;
    })
    .await;
    let count = 500;
    // A subscriber that never reads paces whoever publishes to the topic.
    let _stuck = stuck_tcp(&server).await;
    let readers = spawn_readers(&server, 2, 2 * count).await;
    assert_eq!(bounded(&server), 0, "nobody has been paced yet");
    let mut tcp = Tcp::connect(server.stomp(), "tcp-pub").await;
    publish(&mut tcp, count).await;
    assert_eq!(bounded(&server), 1, "the paced TCP publisher, once");
    // The WebSocket publisher comes through the HTTP server's upgrade.
    let mut ws = Ws::connect(&server.ws_url()).await;
    let _second_stuck = stuck_tcp(&server).await;
    let body = "x".repeat(BODY);
    for seq in count..2 * count {
        ws.text(&format!(
            "SEND\ndestination:/topic/flow\nseq:{seq}\n\n{body}\0"
        ))
        .await;
    }
    ws.text("BEGIN\ntransaction:end\nreceipt:done\n\n\0").await;
    assert_eq!(ws.frame().await.0.command, Command::Receipt);
    for reader in readers {
        assert_eq!(reader.await.unwrap(), 2 * count);
    }
    assert_eq!(bounded(&server), 2, "and the paced WebSocket publisher");
    assert_eq!(slow_consumers(&server), 2);
}

#[tokio::test]
async fn an_unpaced_burst_to_many_subscribers_loses_nothing() {
    let server = TestServer::with(|c| {
        c.outbox_high_water_messages = 8;
        c.slow_consumer_grace_ms = 30_000;
    })
    .await;
    let count = 2000;
    let readers = spawn_readers(&server, 20, count).await;
    let mut publisher = Tcp::connect(server.stomp(), "pub").await;
    publish(&mut publisher, count).await;
    for reader in readers {
        assert_eq!(reader.await.unwrap(), count);
    }
    assert_eq!(slow_consumers(&server), 0);
}

#[tokio::test]
async fn a_session_flooding_its_own_topic_does_not_deadlock() {
    let server = TestServer::with(|c| {
        c.outbox_high_water_messages = 4;
        c.slow_consumer_grace_ms = 30_000;
    })
    .await;
    let count = 2000;
    let mut client = Tcp::connect(server.stomp(), "self").await;
    client.subscribe("s", "/topic/flow", "auto").await;
    let (read, write) = client.stream.into_split();
    // One task reads the flooding connection while this one writes to it.
    let reader = tokio::spawn(async move {
        let mut stream = read;
        let mut buf = bytes::BytesMut::new();
        let mut decoder = stompede::protocol::Decoder::new(Default::default());
        decoder.set_version(stompede::protocol::Version::V1_2);
        let mut seen = 0;
        let mut receipt = false;
        while seen < count || !receipt {
            match decoder.decode(&mut buf).unwrap() {
                Some(stompede::protocol::Decoded::Frame(frame)) => match frame.command {
                    Command::Message => {
                        assert_eq!(frame.get("seq").unwrap(), seen.to_string());
                        seen += 1;
                    }
                    Command::Receipt => receipt = true,
                    other => panic!("unexpected {other}"),
                },
                Some(_) => {}
                None => {
                    let n = tokio::io::AsyncReadExt::read_buf(&mut stream, &mut buf)
                        .await
                        .unwrap();
                    assert!(n > 0, "closed after {seen}");
                }
            }
        }
        seen
    });
    let mut write = write;
    let body = vec![b'y'; BODY];
    for seq in 0..count {
        let frame = Frame::new(Command::Send)
            .header("destination", "/topic/flow")
            .header("seq", seq.to_string())
            .body(body.clone());
        tokio::io::AsyncWriteExt::write_all(
            &mut write,
            &stompede::protocol::to_bytes(&frame, stompede::protocol::Version::V1_2),
        )
        .await
        .unwrap();
    }
    tokio::io::AsyncWriteExt::write_all(&mut write, b"BEGIN\ntransaction:t\nreceipt:end\n\n\0")
        .await
        .unwrap();
    let seen = tokio::time::timeout(WAIT * 3, reader)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen, count);
}

#[tokio::test]
async fn the_in_process_publisher_waits_for_a_full_subscriber() {
    let server = TestServer::with(|c| {
        c.outbox_high_water_messages = 8;
        c.slow_consumer_grace_ms = 60_000;
    })
    .await;
    let local = server.server.local_client("system");
    let subscription = local.subscribe("/topic/local").unwrap();
    let sent = Arc::new(AtomicUsize::new(0));
    let publisher = {
        let sent = sent.clone();
        let local = local.clone();
        tokio::spawn(async move {
            for i in 0..50 {
                local
                    .send("/topic/local", Headers::new(), i.to_string())
                    .await
                    .unwrap();
                sent.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    // Nobody reads: the publisher must stop at the high-water mark.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before_reading = sent.load(Ordering::SeqCst);
    assert!(
        before_reading < 10,
        "publisher ran ahead: {before_reading} sent"
    );
    for i in 0..50 {
        let message = subscription.next().await.unwrap();
        assert_eq!(&message.body[..], i.to_string().as_bytes());
    }
    publisher.await.unwrap();
    assert_eq!(sent.load(Ordering::SeqCst), 50);
}

#[tokio::test]
async fn queue_producers_are_paced_instead_of_refused() {
    let server = TestServer::with(|c| {
        c.queue_high_water_messages = 50;
        c.max_queue_messages = 100;
        c.slow_consumer_grace_ms = 30_000;
    })
    .await;
    // A consumer that holds one message and acknowledges nothing: subscribed, and slow.
    let mut slow = Tcp::connect(server.stomp(), "slow").await;
    slow.send(
        Frame::new(Command::Subscribe)
            .header("id", "s")
            .header("destination", "/queue/paced")
            .header("ack", "client-individual")
            .header("prefetch-count", "1"),
    )
    .await;
    let mut producer = Tcp::connect(server.stomp(), "p").await;
    let count = 1000;
    for seq in 0..count {
        let frame = Frame::new(Command::Send)
            .header("destination", "/queue/paced")
            .header("seq", seq.to_string())
            .body("x");
        producer.send(frame).await;
    }
    let end = Frame::new(Command::Begin).header("transaction", "t");
    producer.send(end.header("receipt", "done")).await;
    // The consumer does not keep up: the producer is held at the mark, far below the limit.
    let held = producer.maybe_frame(Duration::from_millis(300)).await;
    assert!(held.is_none(), "{held:?}");
    let depth = server.server.broker().queue_stats()[0].depth;
    assert!((50..=51).contains(&depth), "depth {depth}");
    assert_eq!(slow.frame().await.get("seq"), Some("0"));
    // A consumer that keeps up arrives: everything flows, in order, nothing refused.
    let mut consumer = Tcp::connect(server.stomp(), "c").await;
    let subscribe = Frame::new(Command::Subscribe)
        .header("id", "s")
        .header("destination", "/queue/paced");
    consumer.send(subscribe).await;
    for expected in 1..count {
        let frame = consumer.frame().await;
        assert_eq!(frame.get("seq").unwrap(), expected.to_string());
    }
    let receipt = producer.frame().await;
    assert_eq!(receipt.command, Command::Receipt, "{receipt:?}");
    let paced = server
        .server
        .broker()
        .metrics()
        .publishes_paced
        .load(Ordering::Relaxed);
    assert!(paced > 0);
}

#[tokio::test]
async fn a_global_cap_on_outbox_memory_paces_publishers_without_cutting_anyone_off() {
    let server = TestServer::with(|c| {
        // Each outbox alone could hold 8 MiB; all of them together only 32 KiB.
        c.outbox_memory_cap = 32 * 1024;
        c.slow_consumer_grace_ms = 30_000;
    })
    .await;
    let count = 2000;
    let readers = spawn_readers(&server, 3, count).await;
    let mut publisher = Tcp::connect(server.stomp(), "pub").await;
    let watch = {
        let broker = server.server.broker().clone();
        tokio::spawn(async move {
            let mut peak = 0;
            for _ in 0..2000 {
                peak = peak.max(broker.outbox_memory());
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            peak
        })
    };
    publish(&mut publisher, count).await;
    for reader in readers {
        assert_eq!(reader.await.unwrap(), count);
    }
    let metrics = server.server.broker().metrics();
    assert!(metrics.publishes_paced.load(Ordering::Relaxed) > 0);
    assert_eq!(
        metrics.slow_consumers_disconnected.load(Ordering::Relaxed),
        0
    );
    let peak = watch.await.unwrap();
    // The cap is checked after each push: one message per subscriber may go past it.
    assert!(
        peak <= 32 * 1024 + 3 * 2 * 1024,
        "outboxes held {peak} bytes"
    );
    assert_eq!(
        server.server.broker().outbox_memory(),
        0,
        "accounting drifted"
    );
}

#[tokio::test]
async fn a_client_that_sends_receipted_frames_faster_than_it_reads_is_paced_not_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    // A client acking (or sending) with receipts on the thread that also reads, as stomp.py
    // does, stops reading while its writes block. Its RECEIPTs pile up in its outbox: the
    // session must stop reading too (pacing) instead of cutting the client off at the hard
    // cap. A small receive buffer on the client makes the pile-up certain.
    const FRAMES: usize = 20_000;
    let server = TestServer::start().await;
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(server.stomp()).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        write
            .write_all(b"CONNECT\naccept-version:1.2\nhost:x\n\n\0")
            .await
            .unwrap();
        let mut batch = Vec::new();
        for n in 0..FRAMES {
            batch.extend_from_slice(
                format!("SEND\ndestination:/topic/nobody\nreceipt:{n}\n\nx\0").as_bytes(),
            );
        }
        write.write_all(&batch).await.is_ok()
    });
    // Not reading for a while: the outbox fills far past its hard cap's worth of RECEIPTs.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut received = Vec::new();
    let mut chunk = vec![0; 64 * 1024];
    let mut receipts = 0;
    while receipts < FRAMES {
        let n = tokio::time::timeout(WAIT, read.read(&mut chunk))
            .await
            .expect("the server went silent")
            .unwrap();
        assert!(n > 0, "closed after {receipts} receipts");
        received.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&received);
        assert!(
            !text.contains("ERROR"),
            "cut off: {}",
            &text[text.len().saturating_sub(400)..]
        );
        receipts = text.matches("RECEIPT\n").count();
    }
    assert!(
        writer.await.unwrap(),
        "the client's frames were not all taken"
    );
    assert_eq!(receipts, FRAMES);
}
