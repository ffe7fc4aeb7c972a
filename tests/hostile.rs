//! Hostile clients against a running server (issue #23). Each attack gets a clear ERROR or a
//! close, and all the while a well-behaved pair of clients (the witness) exchanges receipted,
//! persistent, individually acknowledged messages on a queue of its own: it must lose none.
//! The witness's delivery rate before and during each attack is printed (`--nocapture`);
//! tests never assert on wall-clock timings, so RELIABILITY.md records those figures.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{connect_frame, error_message, ServerProcess, Tcp, TestServer};
use stompede::protocol::{Command, Frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Receipted persistent messages from one connection to a consumer on another, acknowledged
/// one by one.
struct Witness {
    addr: SocketAddr,
    runtime: tokio::runtime::Runtime,
    queue: String,
    stop: Arc<AtomicBool>,
    delivered: Arc<AtomicU64>,
    /// Returns how many messages it sent, each receipted.
    producer: tokio::task::JoinHandle<u64>,
    /// Told that count once the producer has stopped: only then is it final.
    total: tokio::sync::oneshot::Sender<u64>,
    consumer: tokio::task::JoinHandle<BTreeSet<u64>>,
}

impl Witness {
    /// Starts the witness on a runtime of its own: a thread the attack's tasks cannot crowd,
    /// as a client on another machine would be.
    fn start(addr: SocketAddr, queue: &str) -> Witness {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("witness")
            .enable_all()
            .build()
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let delivered = Arc::new(AtomicU64::new(0));
        let (subscribed, ready) = tokio::sync::oneshot::channel::<()>();
        let (total, mut told) = tokio::sync::oneshot::channel::<u64>();
        let consumer = {
            let (delivered, queue) = (delivered.clone(), queue.to_owned());
            runtime.spawn(async move {
                let mut consumer = Tcp::connect(addr, "wendy").await;
                consumer.subscribe("w", &queue, "client-individual").await;
                let _ = subscribed.send(());
                let mut seen = BTreeSet::new();
                // The final count and when it came. Not the producer's count so far: while it
                // waits for its last RECEIPT, the MESSAGE may still be on its way here.
                let mut total = None;
                loop {
                    if total.is_none() {
                        total = told.try_recv().ok().map(|n| (n, Instant::now()));
                    }
                    if let Some((sent, since)) = total {
                        if seen.len() as u64 >= sent || since.elapsed() > common::WAIT {
                            return seen;
                        }
                    }
                    let frame = match tokio::time::timeout(
                        Duration::from_millis(50),
                        consumer.next_frame(),
                    )
                    .await
                    {
                        Err(_) => continue,
                        Ok(Some(frame)) => frame,
                        Ok(None) => panic!("the server closed the witness's consumer"),
                    };
                    assert_eq!(frame.command, Command::Message, "{frame:?}");
                    let n: u64 = std::str::from_utf8(&frame.body).unwrap().parse().unwrap();
                    consumer
                        .send(Frame::new(Command::Ack).header("id", frame.get("ack").unwrap()))
                        .await;
                    seen.insert(n);
                    delivered.store(seen.len() as u64, Ordering::Relaxed);
                }
            })
        };
        let producer = {
            let (stop, queue) = (stop.clone(), queue.to_owned());
            runtime.spawn(async move {
                // Not before the consumer listens: the rate before the attack counts deliveries.
                let _ = ready.await;
                let mut producer = Tcp::connect(addr, "wendy").await;
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    producer
                        .send_receipted(
                            Frame::new(Command::Send)
                                .header("destination", queue.as_str())
                                .header("persistent", "true")
                                .body(n.to_string()),
                            &n.to_string(),
                        )
                        .await;
                    n += 1;
                }
                n
            })
        };
        Witness {
            addr,
            queue: queue.to_owned(),
            runtime,
            stop,
            delivered,
            producer,
            total,
            consumer,
        }
    }

    fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Stops sending; every receipted message must have arrived, once.
    async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let sent = self.producer.await.unwrap();
        // Only now is the count final: the consumer waits for that many.
        let _ = self.total.send(sent);
        let seen = self.consumer.await.unwrap();
        // Dropping a runtime blocks, which an async test must not do.
        self.runtime.shutdown_background();
        let expected: BTreeSet<u64> = (0..sent).collect();
        if seen != expected {
            // Lost, or only late? A new consumer tells.
            let mut late = Tcp::connect(self.addr, "wendy").await;
            late.send(
                Frame::new(Command::Subscribe)
                    .header("id", "late")
                    .header("destination", self.queue.as_str()),
            )
            .await;
            let mut found = Vec::new();
            while let Some(frame) = late.maybe_frame(Duration::from_secs(5)).await {
                found.push(String::from_utf8_lossy(&frame.body).into_owned());
            }
            panic!(
                "the witness missed {:?}; a new consumer then found {found:?}",
                expected.difference(&seen).take(10).collect::<Vec<_>>()
            );
        }
        sent
    }
}

/// How long the witness's rate is taken before an attack, and at least while it lasts: long
/// enough that a few slow group commits do not make the figure.
const RATE_WINDOW: Duration = Duration::from_secs(2);

/// Runs `attack` while the witness runs on `addr`; prints the witness's rate before and during
/// (a `witness-rate` line that `benches/hostile.sh` reads: tests do not judge timings).
async fn under_attack(addr: SocketAddr, name: &str, attack: impl std::future::Future<Output = ()>) {
    let witness = Witness::start(addr, &format!("/queue/witness-{name}"));
    while witness.delivered() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (from, started) = (witness.delivered(), Instant::now());
    tokio::time::sleep(RATE_WINDOW).await;
    let before = (witness.delivered() - from) as f64 / started.elapsed().as_secs_f64();
    let (from, attacked) = (witness.delivered(), Instant::now());
    attack.await;
    // An attack over in a moment is measured with its aftermath (the server closing the
    // attacker, freeing what it held) over a whole window.
    if let Some(rest) = RATE_WINDOW.checked_sub(attacked.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let during = (witness.delivered() - from) as f64 / attacked.elapsed().as_secs_f64();
    let sent = witness.finish().await;
    eprintln!(
        "witness-rate {name} before={before:.0} during={during:.0} ratio={:.3} sent={sent} lost=0",
        during / before.max(1.0)
    );
}

/// Fails if `queue` holds a message: what an attack tried to enqueue must not be there.
async fn nothing_was_enqueued_on(addr: SocketAddr, queue: &str) {
    let mut reader = Tcp::connect(addr, "reader").await;
    reader.subscribe("r", queue, "auto").await;
    let found = reader.maybe_frame(Duration::from_millis(500)).await;
    assert!(found.is_none(), "{queue} holds {found:?}");
}

/// Everything the server sends on `stream` until it closes it; fails if it never does.
async fn until_eof(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .expect("the server never closed the connection");
    out
}

/// The `message` header of the first ERROR in `bytes`.
fn first_error(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let error = text
        .split('\0')
        .find(|f| f.trim_start_matches('\n').starts_with("ERROR"))
        .unwrap_or_else(|| panic!("no ERROR frame in {text:?}"));
    error
        .lines()
        .find_map(|l| l.strip_prefix("message:"))
        .unwrap_or_else(|| panic!("ERROR without message: {error:?}"))
        .to_owned()
}

async fn connected(addr: SocketAddr, login: &str) -> TcpStream {
    let mut client = Tcp::connect(addr, login).await;
    // What the session sent after CONNECTED, if anything, is read by the attack itself.
    let _ = client.maybe_frame(Duration::from_millis(1)).await;
    client.stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_sent_a_byte_at_a_time_is_cut_off() {
    let server = TestServer::with(|c| c.connect_timeout_ms = 1_000).await;
    let addr = server.stomp();
    under_attack(addr, "slow-handshake", async {
        let (mut reader, mut writer) = TcpStream::connect(addr).await.unwrap().into_split();
        let trickle = tokio::spawn(async move {
            for byte in b"CONNECT\naccept-version:1.2\nlogin:slow\npasscode:x\nhost:h\n"
                .iter()
                .cycle()
                .take(600)
            {
                if writer.write_all(&[*byte]).await.is_err() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            false
        });
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), reader.read_to_end(&mut rest))
            .await
            .expect("the slow handshake was never cut off")
            .ok();
        trickle.abort();
        let text = String::from_utf8_lossy(&rest);
        assert!(!text.contains("CONNECTED"), "{text}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_trickled_in_is_cut_off_and_never_delivered() {
    let server = TestServer::with(|c| {
        c.frame_timeout_ms = 1_000;
        c.frame_min_rate = 500;
    })
    .await;
    let addr = server.stomp();
    under_attack(addr, "slow-frame", async {
        let (mut reader, mut writer) = connected(addr, "mallory").await.into_split();
        // 25 bytes a second, far below the 500 the frame would need to earn more time.
        let trickle = tokio::spawn(async move {
            let frame = b"SEND\ndestination:/queue/trickle\n\nnever finished ".iter();
            for byte in frame.cycle().take(2_000) {
                if writer.write_all(&[*byte]).await.is_err() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            false
        });
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(30), reader.read_to_end(&mut rest))
            .await
            .expect("the trickled frame was never cut off")
            .ok();
        trickle.abort();
        assert!(
            first_error(&rest).contains("frame too slow"),
            "{}",
            String::from_utf8_lossy(&rest)
        );
        nothing_was_enqueued_on(addr, "/queue/trickle").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_frame_on_a_slow_but_steady_link_is_not_cut_off() {
    let server = TestServer::with(|c| {
        c.frame_timeout_ms = 1_000;
        c.frame_min_rate = 500;
    })
    .await;
    let addr = server.stomp();
    let mut client = Tcp::connect(addr, "patient").await;
    // 6,000 bytes over 3 s (2,000 a second): three times the allowance alone, but each second
    // of it earns four more at the minimum rate.
    let mut frame = b"SEND\ndestination:/queue/slow-link\nreceipt:r\n\n".to_vec();
    frame.resize(6_000, b'x');
    frame.push(0);
    for piece in frame.chunks(200) {
        client.raw(piece).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reply = client.frame().await;
    assert_eq!(reply.command, Command::Receipt, "{reply:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_headers_are_refused() {
    let server = TestServer::start().await;
    let addr = server.stomp();
    under_attack(addr, "endless-headers", async {
        let mut attacker = connected(addr, "mallory").await;
        let mut headers = b"SEND\ndestination:/queue/x\n".to_vec();
        for i in 0..100_000 {
            headers.extend_from_slice(format!("h{i}:v\n").as_bytes());
        }
        // The server may close while this is still being written.
        let _ = attacker.write_all(&headers).await;
        let message = first_error(&until_eof(&mut attacker).await);
        assert!(message.contains("header"), "{message}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_content_length_with_no_body_is_refused_at_once() {
    let server = TestServer::start().await;
    let addr = server.stomp();
    under_attack(addr, "huge-content-length", async {
        let mut attacker = connected(addr, "mallory").await;
        attacker
            .write_all(b"SEND\ndestination:/queue/x\ncontent-length:100000000\n\n")
            .await
            .unwrap();
        let message = first_error(&until_eof(&mut attacker).await);
        assert!(message.contains("body"), "{message}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_after_an_error_are_not_acted_on() {
    let server = TestServer::start().await;
    let addr = server.stomp();
    under_attack(addr, "after-error", async {
        let mut attacker = connected(addr, "mallory").await;
        attacker
            .write_all(
                b"BOGUS\n\n\0SEND\ndestination:/queue/after\nreceipt:r\n\nsneaked in\0\
                  SUBSCRIBE\nid:1\ndestination:/queue/witness-after-error\n\n\0",
            )
            .await
            .unwrap();
        let received = until_eof(&mut attacker).await;
        let text = String::from_utf8_lossy(&received);
        assert!(text.starts_with("ERROR"), "{text}");
        assert!(!text.contains("RECEIPT"), "{text}");
        assert!(!text.contains("MESSAGE"), "{text}");
        nothing_was_enqueued_on(addr, "/queue/after").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_users_destinations_are_out_of_reach() {
    let server = TestServer::start().await;
    let addr = server.stomp();
    under_attack(addr, "other-users", async {
        let mut bob = Tcp::connect(addr, "bob").await;
        bob.subscribe("in", "/user/queue/inbox", "auto").await;
        // Reading bob's destination by its full name...
        let mut mallory = Tcp::connect(addr, "mallory").await;
        mallory
            .send(
                Frame::new(Command::Subscribe)
                    .header("id", "spy")
                    .header("destination", "/user/bob/queue/inbox"),
            )
            .await;
        let frames = mallory.until_closed().await;
        assert_eq!(frames[0].command, Command::Error, "{frames:?}");
        // ...or writing to it.
        let mut mallory = Tcp::connect(addr, "mallory").await;
        mallory
            .send(
                Frame::new(Command::Send)
                    .header("destination", "/user/bob/queue/inbox")
                    .body("spoof"),
            )
            .await;
        let frames = mallory.until_closed().await;
        assert!(
            error_message(&frames[0]).contains("may not send"),
            "{frames:?}"
        );
        // ...or reading the witness's acknowledgements by acking bob's messages.
        assert!(bob.maybe_frame(Duration::from_millis(300)).await.is_none());
    })
    .await;
}

/// Subscribes to a queue that holds a message (which may come before the SUBSCRIBE's
/// RECEIPT) and returns that message.
async fn first_message(client: &mut Tcp, queue: &str) -> Frame {
    let mut before_receipt = client
        .send_until_receipt(
            Frame::new(Command::Subscribe)
                .header("id", "b")
                .header("destination", queue)
                .header("ack", "client-individual"),
            "sub",
        )
        .await;
    match before_receipt.pop() {
        Some(frame) => frame,
        None => client.frame().await,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_sessions_message_cannot_be_acknowledged() {
    let server = TestServer::start().await;
    let addr = server.stomp();
    under_attack(addr, "foreign-ack", async {
        let mut sender = Tcp::connect(addr, "bob").await;
        sender
            .send_receipted(
                Frame::new(Command::Send)
                    .header("destination", "/queue/bobs")
                    .header("persistent", "true")
                    .body("for bob"),
                "s",
            )
            .await;
        let mut bob = Tcp::connect(addr, "bob").await;
        let message = first_message(&mut bob, "/queue/bobs").await;
        let ack = message.get("ack").unwrap().to_owned();
        let mut mallory = Tcp::connect(addr, "mallory").await;
        mallory
            .send(Frame::new(Command::Ack).header("id", ack.as_str()))
            .await;
        let frames = mallory.until_closed().await;
        assert!(
            error_message(&frames[0]).contains("unknown ack id"),
            "{frames:?}"
        );
        // Bob leaves without acknowledging: the message is still his queue's.
        drop(bob);
        let mut again = Tcp::connect(addr, "bob").await;
        let redelivered = first_message(&mut again, "/queue/bobs").await;
        assert_eq!(&redelivered.body[..], b"for bob");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_transaction_id_is_refused_and_its_work_discarded() {
    let server = TestServer::start().await;
    let addr = server.stomp();
    under_attack(addr, "reused-transaction", async {
        let mut mallory = Tcp::connect(addr, "mallory").await;
        mallory
            .raw(
                b"BEGIN\ntransaction:t1\n\n\0SEND\ndestination:/queue/tx\ntransaction:t1\n\nfirst\0\
                  BEGIN\ntransaction:t1\n\n\0COMMIT\ntransaction:t1\n\n\0",
            )
            .await;
        let frames = mallory.until_closed().await;
        assert!(
            error_message(&frames[0]).contains("already begun"),
            "{frames:?}"
        );
        nothing_was_enqueued_on(addr, "/queue/tx").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_subscriptions_on_one_session_stop_at_the_limit() {
    let server = TestServer::start().await;
    let addr = server.stomp();
    under_attack(addr, "subscriptions", async {
        let mut mallory = connected(addr, "mallory").await;
        let mut frames = Vec::new();
        for i in 0..10_000 {
            frames.extend_from_slice(
                format!("SUBSCRIBE\nid:{i}\ndestination:/topic/t{i}\n\n\0").as_bytes(),
            );
        }
        let _ = mallory.write_all(&frames).await;
        let message = first_error(&until_eof(&mut mallory).await);
        assert!(message.contains("too many subscriptions"), "{message}");
    })
    .await;
}

/// A WebSocket connection to the server's `/ws`, upgraded by hand.
async fn raw_websocket(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: v12.stomp\r\n\
              Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n\r\n",
        )
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await.unwrap());
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{head:?}");
    stream
}

/// The close code of the Close frame in the server's frames `bytes` (an ERROR in a text frame
/// may come first).
fn close_code(mut bytes: &[u8]) -> u16 {
    while bytes.len() >= 2 {
        let (opcode, length) = (bytes[0] & 0x0f, bytes[1] & 0x7f);
        let (header, length) = match length {
            126 => (4, usize::from(u16::from_be_bytes([bytes[2], bytes[3]]))),
            127 => panic!("a huge frame from the server"),
            n => (2, usize::from(n)),
        };
        if opcode == 0x8 {
            return u16::from_be_bytes([bytes[header], bytes[header + 1]]);
        }
        bytes = &bytes[header + length..];
    }
    panic!("no Close frame");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_frames_without_a_mask_or_with_oversize_control_are_closed_1002() {
    let server = TestServer::start().await;
    let http = server.server.http_addr().unwrap();
    under_attack(server.stomp(), "websocket-framing", async {
        // A client frame must be masked (RFC 6455 section 5.1).
        let mut unmasked = raw_websocket(http).await;
        let connect = b"CONNECT\naccept-version:1.2\nhost:h\n\n\0";
        let mut frame = vec![0x81, connect.len() as u8];
        frame.extend_from_slice(connect);
        unmasked.write_all(&frame).await.unwrap();
        assert_eq!(close_code(&until_eof(&mut unmasked).await), 1002);
        // A control frame carries at most 125 bytes (section 5.5).
        let mut oversize = raw_websocket(http).await;
        let mut ping = vec![0x89, 0x80 | 126, 0, 200, 1, 2, 3, 4];
        ping.extend(std::iter::repeat_n(0u8, 200));
        oversize.write_all(&ping).await.unwrap();
        assert_eq!(close_code(&until_eof(&mut oversize).await), 1002);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_frame_trickled_in_is_cut_off() {
    let server = TestServer::with(|c| {
        c.frame_timeout_ms = 1_000;
        c.frame_min_rate = 500;
    })
    .await;
    let http = server.server.http_addr().unwrap();
    under_attack(server.stomp(), "slow-websocket-frame", async {
        let socket = raw_websocket(http).await;
        let (mut reader, mut writer) = socket.into_split();
        // Masked with a zero key, so the payload reads as sent.
        let masked = |payload: &[u8]| {
            let mut frame = vec![0x81, 0x80 | payload.len() as u8, 0, 0, 0, 0];
            frame.extend_from_slice(payload);
            frame
        };
        writer
            .write_all(&masked(b"CONNECT\naccept-version:1.2\nhost:h\n\n\0"))
            .await
            .unwrap();
        let send = masked(b"SEND\ndestination:/queue/trickle\n\nnever finished, never sent\0");
        let trickle = tokio::spawn(async move {
            for byte in send {
                if writer.write_all(&[byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        });
        let rest = until_eof(&mut reader).await;
        trickle.abort();
        let text = String::from_utf8_lossy(&rest);
        assert!(text.contains("CONNECTED"), "{text}");
        assert!(text.contains("message:frame too slow"), "{text}");
    })
    .await;
}

/// Open descriptors of process `pid`.
fn descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_connections_from_one_address_are_served_or_refused_and_released() {
    // A server process of its own: the test holds one end of every connection, the server
    // the other, and each process has its own descriptor limit.
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path());
    let addr = server.stomp;
    let pid = server.pid();
    let idle = descriptors(pid);
    under_attack(addr, "connection-flood", async {
        let mut open = Vec::new();
        let (mut admitted, mut refused) = (0, 0);
        for batch in 0..100 {
            let attempts = (0..100).map(|i| async move {
                let mut client = Tcp::open(addr).await;
                client.send(connect_frame(&format!("flood{batch}-{i}"))).await;
                let answer = client.maybe_frame(Duration::from_secs(20)).await;
                (client, answer.map(|f| f.command))
            });
            for (client, answer) in futures::future::join_all(attempts).await {
                match answer {
                    Some(Command::Connected) => {
                        admitted += 1;
                        open.push(client);
                    }
                    // Refused (rate or session limits) with an ERROR, or closed.
                    Some(Command::Error) | None => refused += 1,
                    Some(other) => panic!("{other:?}"),
                }
            }
        }
        eprintln!(
            "connection-flood: {admitted} admitted, {refused} refused, server descriptors {idle} idle, {} with them open",
            descriptors(pid)
        );
        assert_eq!(admitted + refused, 10_000);
        assert!(admitted > 0);
        drop(open);
    })
    .await;
    // Every connection's descriptor is released once its client is gone.
    let deadline = Instant::now() + Duration::from_secs(30);
    while descriptors(pid) > idle + 16 {
        assert!(
            Instant::now() < deadline,
            "{} descriptors, {idle} when idle",
            descriptors(pid)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
