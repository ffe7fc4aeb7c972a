//! Durable queues on a real sled store: persistent messages survive SIGKILL, receipted acks
//! are never undone, expiry, dead letters, limits, purge and durable topic subscriptions.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use common::{body_for, error_message, ServerProcess, Tcp, TestServer};
use stompede::protocol::{Command, Frame};

/// What the clients observed across crashes.
#[derive(Default)]
struct Ledger {
    receipted: HashSet<String>,
    ack_confirmed: HashSet<String>,
    delivered: HashMap<String, usize>,
}

impl Ledger {
    fn check_delivery(&mut self, frame: &Frame) -> (String, String) {
        let id = frame.get("x-id").unwrap().to_owned();
        assert_eq!(
            String::from_utf8(frame.body.to_vec()).unwrap(),
            body_for(&id),
            "corrupted"
        );
        assert!(
            !self.ack_confirmed.contains(&id),
            "{id} delivered again after its ACK was receipted"
        );
        *self.delivered.entry(id.clone()).or_default() += 1;
        (id, frame.get("ack").unwrap().to_owned())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_messages_survive_sigkill_and_receipted_acks_stay_done() {
    let dir = tempfile::tempdir().unwrap();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    println!("kill-point seed {seed}");
    let mut rng = seed | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let total = 10_000;
    let rounds = 4;
    let per_round = total / rounds;
    let mut ledger = Ledger::default();
    for round in 0..rounds {
        let server = ServerProcess::start(dir.path());
        let ids: Vec<String> = (0..per_round).map(|i| format!("r{round}m{i}")).collect();
        let kill_after = Duration::from_millis(300 + next() % 2500);
        let observed = run_round(server.stomp, ids, kill_after, &mut ledger).await;
        drop(server); // SIGKILL
        println!("round {round}: {observed}");
    }
    // Restart once more and drain everything.
    let server = ServerProcess::start(dir.path());
    let mut consumer = Tcp::connect(server.stomp, "drain").await;
    consumer
        .send(
            Frame::new(Command::Subscribe)
                .header("id", "d")
                .header("destination", "/queue/crash")
                .header("ack", "client-individual"),
        )
        .await;
    while let Some(frame) = consumer.maybe_frame(Duration::from_millis(1500)).await {
        let (_, ack) = ledger.check_delivery(&frame);
        consumer
            .send(Frame::new(Command::Ack).header("id", ack))
            .await;
    }
    consumer
        .send_receipted(
            Frame::new(Command::Begin).header("transaction", "t"),
            "sync",
        )
        .await;
    drop(server);
    let lost: Vec<_> = ledger
        .receipted
        .iter()
        .filter(|id| !ledger.delivered.contains_key(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} receipted messages never delivered: {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    assert!(
        ledger.receipted.len() > per_round / 4,
        "too few messages got through: {}",
        ledger.receipted.len()
    );
    assert!(!ledger.ack_confirmed.is_empty());
}

/// One round of traffic until the kill; updates the ledger; returns a summary.
async fn run_round(
    addr: SocketAddr,
    ids: Vec<String>,
    kill_after: Duration,
    ledger: &mut Ledger,
) -> String {
    let (receipted, deliveries, confirmed) = round_traffic(addr, ids, kill_after).await;
    for frame in &deliveries {
        ledger.check_delivery(frame);
    }
    let summary = format!(
        "{} receipted, {} delivered, {} acks confirmed",
        receipted.len(),
        deliveries.len(),
        confirmed.len()
    );
    ledger.receipted.extend(receipted);
    ledger.ack_confirmed.extend(confirmed);
    summary
}

async fn round_traffic(
    addr: SocketAddr,
    ids: Vec<String>,
    kill_after: Duration,
) -> (Vec<String>, Vec<Frame>, Vec<String>) {
    use std::sync::{Arc, Mutex};
    let receipted = Arc::new(Mutex::new(Vec::new()));
    let deliveries = Arc::new(Mutex::new(Vec::new()));
    let confirmed = Arc::new(Mutex::new(Vec::new()));
    let producer = Tcp::connect(addr, "producer").await;
    let mut consumer = Tcp::connect(addr, "consumer").await;
    consumer
        .send(
            Frame::new(Command::Subscribe)
                .header("id", "c")
                .header("destination", "/queue/crash")
                .header("ack", "client-individual")
                .header("prefetch-count", "50"),
        )
        .await;
    let produce = {
        let receipted = receipted.clone();
        async move {
            let (read, mut write) = producer.stream.into_split();
            let reader = tokio::spawn(async move {
                let mut client_read = read;
                let mut buf = bytes::BytesMut::new();
                let mut decoder = stompede::protocol::Decoder::new(Default::default());
                decoder.set_version(stompede::protocol::Version::V1_2);
                loop {
                    match decoder.decode(&mut buf) {
                        Ok(Some(stompede::protocol::Decoded::Frame(f))) => {
                            if f.command == Command::Receipt {
                                receipted
                                    .lock()
                                    .unwrap()
                                    .push(f.get("receipt-id").unwrap().to_owned());
                            }
                        }
                        Ok(Some(_)) => {}
                        Ok(None) => {
                            match tokio::io::AsyncReadExt::read_buf(&mut client_read, &mut buf)
                                .await
                            {
                                Ok(n) if n > 0 => {}
                                _ => return,
                            }
                        }
                        Err(_) => return,
                    }
                }
            });
            for id in &ids {
                let frame = Frame::new(Command::Send)
                    .header("destination", "/queue/crash")
                    .header("persistent", "true")
                    .header("x-id", id.as_str())
                    .header("receipt", id.as_str())
                    .body(body_for(id));
                let bytes = stompede::protocol::to_bytes(&frame, stompede::protocol::Version::V1_2);
                if tokio::io::AsyncWriteExt::write_all(&mut write, &bytes)
                    .await
                    .is_err()
                {
                    break;
                }
            }
            let _ = reader.await;
        }
    };
    let consume = {
        let deliveries = deliveries.clone();
        let confirmed = confirmed.clone();
        async move {
            let mut pending: HashMap<String, String> = HashMap::new();
            let mut n = 0;
            while let Some(frame) = consumer.next_frame().await {
                match frame.command {
                    Command::Message => {
                        n += 1;
                        let id = frame.get("x-id").unwrap().to_owned();
                        let receipt = format!("ack{n}");
                        pending.insert(receipt.clone(), id);
                        let ack = frame.get("ack").unwrap().to_owned();
                        deliveries.lock().unwrap().push(frame);
                        consumer
                            .send(
                                Frame::new(Command::Ack)
                                    .header("id", ack)
                                    .header("receipt", receipt),
                            )
                            .await;
                    }
                    Command::Receipt => {
                        if let Some(id) = pending.remove(frame.get("receipt-id").unwrap()) {
                            confirmed.lock().unwrap().push(id);
                        }
                    }
                    _ => break,
                }
            }
        }
    };
    let _ = tokio::time::timeout(kill_after, async { tokio::join!(produce, consume) }).await;
    let receipted = receipted.lock().unwrap().clone();
    let deliveries = deliveries.lock().unwrap().clone();
    let confirmed = confirmed.lock().unwrap().clone();
    (receipted, deliveries, confirmed)
}

fn send(destination: &str, body: &str) -> Frame {
    Frame::new(Command::Send)
        .header("destination", destination)
        .body(body.to_owned())
}

#[tokio::test]
async fn persistent_messages_and_durable_subscriptions_survive_a_clean_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = || stompede::Config {
        data_dir: dir.path().to_owned(),
        stomp: Some("127.0.0.1:0".parse().unwrap()),
        http: None,
        ..stompede::Config::default()
    };
    {
        let server = stompede::BrokerBuilder::new(config())
            .start()
            .await
            .unwrap();
        let addr = server.stomp_addr().unwrap();
        let mut sub = Tcp::connect(addr, "ann").await;
        sub.send_receipted(
            Frame::new(Command::Subscribe)
                .header("id", "news")
                .header("destination", "/topic/news/**")
                .header("durable", "true")
                .header("auto-delete", "false")
                .header("ack", "client-individual"),
            "s",
        )
        .await;
        sub.send(Frame::new(Command::Disconnect)).await;
        let mut p = Tcp::connect(addr, "p").await;
        p.send_receipted(
            send("/queue/keep", "stored").header("persistent", "true"),
            "1",
        )
        .await;
        p.send_receipted(send("/queue/keep", "memory only"), "2")
            .await;
        p.send_receipted(
            send("/topic/news/a", "while away").header("persistent", "true"),
            "3",
        )
        .await;
        server.shutdown().await;
    }
    let server = stompede::BrokerBuilder::new(config())
        .start()
        .await
        .unwrap();
    let addr = server.stomp_addr().unwrap();
    let mut c = Tcp::connect(addr, "c").await;
    c.send(
        Frame::new(Command::Subscribe)
            .header("id", "q")
            .header("destination", "/queue/keep"),
    )
    .await;
    let got = c.frame().await;
    assert_eq!(&got.body[..], b"stored");
    assert!(
        c.maybe_frame(Duration::from_millis(300)).await.is_none(),
        "non-persistent survived"
    );
    let mut ann = Tcp::connect(addr, "ann").await;
    ann.send(
        Frame::new(Command::Subscribe)
            .header("id", "news")
            .header("destination", "/topic/news/**")
            .header("durable", "true")
            .header("ack", "client-individual"),
    )
    .await;
    let away = ann.frame().await;
    assert_eq!(&away.body[..], b"while away");
    assert_eq!(away.get("destination"), Some("/topic/news/a"));
    assert_eq!(away.get("subscription"), Some("news"));
    ann.send_receipted(
        Frame::new(Command::Ack).header("id", away.get("ack").unwrap()),
        "a",
    )
    .await;
    ann.send_receipted(
        Frame::new(Command::Unsubscribe)
            .header("id", "news")
            .header("durable", "true"),
        "u",
    )
    .await;
    let mut p = Tcp::connect(addr, "p").await;
    p.send_receipted(send("/topic/news/b", "after unsubscribe"), "x")
        .await;
    assert!(server
        .broker()
        .queue_stats()
        .iter()
        .all(|q| !q.name.starts_with("durable:")));
    server.shutdown().await;
}

#[tokio::test]
async fn expired_messages_are_never_delivered() {
    let server = TestServer::with(|c| {
        c.queue_ttl_ms.insert("/queue/short/**".into(), 100);
    })
    .await;
    let mut p = Tcp::connect(server.stomp(), "p").await;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let past = now_ms - 1;
    p.send_receipted(
        send("/queue/exp", "old").header("expires", past.to_string()),
        "1",
    )
    .await;
    p.send_receipted(send("/queue/exp", "fresh"), "2").await;
    p.send_receipted(send("/queue/short/ttl", "default ttl"), "3")
        .await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    let mut c = Tcp::connect(server.stomp(), "c").await;
    c.send(
        Frame::new(Command::Subscribe)
            .header("id", "1")
            .header("destination", "/queue/exp"),
    )
    .await;
    c.send(
        Frame::new(Command::Subscribe)
            .header("id", "2")
            .header("destination", "/queue/short/ttl"),
    )
    .await;
    assert_eq!(&c.frame().await.body[..], b"fresh");
    assert!(c.maybe_frame(Duration::from_millis(300)).await.is_none());
    assert!(
        server
            .server
            .broker()
            .metrics()
            .messages_expired
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 2
    );
}

#[tokio::test]
async fn messages_nacked_too_often_move_to_the_dead_letter_queue() {
    let server = TestServer::with(|c| c.max_deliveries = 3).await;
    let mut p = Tcp::connect(server.stomp(), "p").await;
    p.send_receipted(
        send("/queue/poison", "bad").header("persistent", "true"),
        "1",
    )
    .await;
    let mut c = Tcp::connect(server.stomp(), "c").await;
    c.send(
        Frame::new(Command::Subscribe)
            .header("id", "s")
            .header("destination", "/queue/poison")
            .header("ack", "client-individual"),
    )
    .await;
    for attempt in 1..=3 {
        let m = c.frame().await;
        assert_eq!(&m.body[..], b"bad", "attempt {attempt}");
        c.send(Frame::new(Command::Nack).header("id", m.get("ack").unwrap()))
            .await;
    }
    assert!(c.maybe_frame(Duration::from_millis(300)).await.is_none());
    c.send(
        Frame::new(Command::Subscribe)
            .header("id", "d")
            .header("destination", "/queue/poison.dlq"),
    )
    .await;
    let dead = c.frame().await;
    assert_eq!(&dead.body[..], b"bad");
    assert_eq!(dead.get("x-dead-letter-reason"), Some("max-deliveries"));
    assert_eq!(dead.get("x-original-destination"), Some("/queue/poison"));
    assert_eq!(dead.get("x-delivery-count"), Some("3"));
    assert_eq!(dead.get("destination"), Some("/queue/poison.dlq"));
}

#[tokio::test]
async fn a_full_queue_refuses_with_an_error_and_keeps_what_it_has() {
    let server = TestServer::with(|c| c.max_queue_messages = 2).await;
    let mut p = Tcp::connect(server.stomp(), "p").await;
    p.send_receipted(send("/queue/small", "1").header("persistent", "true"), "1")
        .await;
    p.send_receipted(send("/queue/small", "2"), "2").await;
    p.send(send("/queue/small", "3").header("receipt", "3"))
        .await;
    let frames = p.until_closed().await;
    assert!(error_message(&frames[0]).contains("full"));
    assert_eq!(frames[0].get("receipt-id"), Some("3"));
    let mut c = Tcp::connect(server.stomp(), "c").await;
    c.send(
        Frame::new(Command::Subscribe)
            .header("id", "s")
            .header("destination", "/queue/small"),
    )
    .await;
    assert_eq!(&c.frame().await.body[..], b"1");
    assert_eq!(&c.frame().await.body[..], b"2");
}

#[tokio::test]
async fn purge_and_delete_remove_stored_messages() {
    let server = TestServer::start().await;
    let mut p = Tcp::connect(server.stomp(), "p").await;
    for i in 0..3 {
        p.send_receipted(
            send("/queue/purge", &i.to_string()).header("persistent", "true"),
            "r",
        )
        .await;
    }
    let broker = server.server.broker();
    assert_eq!(broker.queue_stats()[0].depth, 3);
    assert_eq!(broker.purge_queue("/queue/purge"), Some(3));
    assert_eq!(broker.queue_stats()[0].depth, 0);
    drop(p);
    let (server, stored) = server.stored_after_restart().await;
    assert!(stored.is_empty(), "purged yet stored: {stored:?}");
    let mut p = Tcp::connect(server.stomp(), "p").await;
    p.send_receipted(
        send("/queue/purge", "again").header("persistent", "true"),
        "r",
    )
    .await;
    let broker = server.server.broker();
    assert!(broker.delete_queue("/queue/purge"));
    assert!(broker.queue_stats().is_empty());
    assert_eq!(broker.purge_queue("/queue/none"), None);
    drop(p);
    let (_server, stored) = server.stored_after_restart().await;
    assert!(stored.is_empty(), "deleted yet stored: {stored:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_persistent_producers_never_take_a_queue_past_its_limit() {
    // Persistent messages are stored outside the queue's lock; the room they reserve meanwhile
    // must keep the limit exact.
    let server = TestServer::with(|c| c.max_queue_messages = 25).await;
    let addr = server.stomp();
    let producers: Vec<_> = (0..8)
        .map(|p| {
            tokio::spawn(async move {
                let mut client = Tcp::connect(addr, &format!("p{p}")).await;
                let mut receipted = 0;
                for i in 0..10 {
                    client
                        .send(
                            send("/queue/limited", &format!("{p}-{i}"))
                                .header("persistent", "true")
                                .header("receipt", format!("{p}-{i}")),
                        )
                        .await;
                    let reply = client.frame().await;
                    if reply.command == Command::Error {
                        assert!(error_message(&reply).contains("full"), "{reply:?}");
                        break;
                    }
                    assert_eq!(reply.command, Command::Receipt);
                    receipted += 1;
                }
                receipted
            })
        })
        .collect();
    let mut receipted = 0;
    for producer in producers {
        receipted += producer.await.unwrap();
    }
    assert_eq!(receipted, 25);
    assert_eq!(server.server.broker().queue_stats()[0].depth, 25);
    let (_server, stored) = server.stored_after_restart().await;
    assert_eq!(stored, [("/queue/limited".to_owned(), 25)]);
}

#[tokio::test]
async fn a_local_client_consuming_persistent_messages_acknowledges_them() {
    let server = TestServer::start().await;
    let local = server.server.local_client("app");
    let subscription = local.subscribe("/queue/local-persistent").unwrap();
    let mut p = Tcp::connect(server.stomp(), "p").await;
    for n in 0..3 {
        p.send_receipted(
            send("/queue/local-persistent", &format!("m{n}")).header("persistent", "true"),
            &n.to_string(),
        )
        .await;
    }
    for n in 0..3 {
        let message = tokio::time::timeout(common::WAIT, subscription.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&message.body[..], format!("m{n}").as_bytes());
    }
    // Taken by the in-process consumer means acknowledged: nothing is held back for a
    // redelivery, and the store forgot the messages.
    let stats = server
        .server
        .broker()
        .queue_stats()
        .into_iter()
        .find(|q| q.name == "/queue/local-persistent")
        .unwrap();
    assert_eq!((stats.depth, stats.unacked), (0, 0), "{stats:?}");
    drop((local, subscription, p));
    let (_server, stored) = server.stored_after_restart().await;
    assert!(stored.is_empty(), "still stored: {stored:?}");
}
