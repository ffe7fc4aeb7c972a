//! The kill loop: what a RECEIPT promised survives SIGKILL, round after round on one store.
//!
//! Each round, on a fresh queue of a server started from a store that has already been through
//! the previous rounds' kills: a producer pipelines persistent SENDs, each with a receipt, while
//! a consumer (`client-individual`, no `prefetch-count`, so everything is dispatched at once)
//! ACKs every MESSAGE with a receipt. Once a random share (20–80%) of the SEND receipts is in,
//! the server is SIGKILLed, restarted on the same data directory, and the queue drained.
//!
//! Two promises are checked: a message whose SEND was receipted is delivered, before or after
//! the kill; a message whose ACK was receipted is never delivered again, in this round or in
//! any later one (a last restart re-reads every round's queue, which must all be empty).
//!
//! `STOMPEDE_KILL_ROUNDS` sets the number of rounds (default 8); `STOMPEDE_KILL_SEED` replays a
//! run's kill points.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use common::{body_for, ServerProcess, Tcp, WAIT};
use stompede::protocol::{to_bytes, Command, Decoded, Decoder, Frame, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// SENDs a round's producer pipelines.
const MESSAGES_PER_ROUND: usize = 5_000;
/// How long the drain waits for one more MESSAGE: everything restored is dispatched at once,
/// so silence this long means the queue is empty.
const DRAIN_SILENCE: Duration = Duration::from_secs(3);

/// What the clients saw, over every round.
#[derive(Default)]
struct Ledger {
    /// SENDs whose RECEIPT came back.
    receipted: HashSet<String>,
    /// Messages whose ACK was receipted: acknowledged for good.
    acked: HashSet<String>,
    /// Every delivery, by message.
    delivered: HashMap<String, usize>,
    /// Deliveries marked `redelivered:true`.
    redelivered: usize,
}

impl Ledger {
    /// Records a delivery; returns the message's id and its `ack` header.
    fn delivery(&mut self, frame: &Frame) -> (String, String) {
        let id = frame.get("x-id").expect("MESSAGE without x-id").to_owned();
        assert_eq!(
            String::from_utf8_lossy(&frame.body),
            body_for(&id),
            "{id}: body corrupted"
        );
        assert!(
            !self.acked.contains(&id),
            "{id} delivered again after its ACK was receipted"
        );
        if frame.get("redelivered") == Some("true") {
            self.redelivered += 1;
        }
        *self.delivered.entry(id.clone()).or_default() += 1;
        let ack = frame.get("ack").expect("MESSAGE without ack").to_owned();
        (id, ack)
    }

    fn lost(&self) -> Vec<&String> {
        let mut lost: Vec<_> = self
            .receipted
            .iter()
            .filter(|id| !self.delivered.contains_key(*id))
            .collect();
        lost.sort();
        lost
    }
}

/// A small deterministic generator for the kill points (xorshift).
struct KillPoints(u64);

impl KillPoints {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A share of the round's SENDs, 20% to 80%.
    fn receipts_before_kill(&mut self) -> usize {
        MESSAGES_PER_ROUND * (20 + (self.next() % 61) as usize) / 100
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipted_messages_and_acks_survive_repeated_sigkills() {
    let rounds: usize = std::env::var("STOMPEDE_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let seed = std::env::var("STOMPEDE_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos() as u64
        });
    println!("STOMPEDE_KILL_SEED={seed}");
    let mut kill_points = KillPoints(seed | 1);
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::default();
    let mut server = ServerProcess::start(dir.path());
    for round in 0..rounds {
        let queue = format!("/queue/kill-{round}");
        let kill_at = kill_points.receipts_before_kill();
        let pace = 1 + (kill_points.next() % 8) as usize;
        let (seen, confirmed) = traffic_until_kill(&mut server, &queue, round, kill_at, pace).await;
        // The server is dead: what the clients saw is final.
        ledger.receipted.extend(seen.receipted);
        for frame in &seen.deliveries {
            ledger.delivery(frame);
        }
        ledger.acked.extend(confirmed);
        server = ServerProcess::start(dir.path());
        // Half the drains leave their ACKs unconfirmed: the next starts then restore what
        // they may not have removed, as a store that is in use holds more than one queue.
        let confirm = round % 2 == 0;
        let drained = drain(server.stomp, &queue, confirm, &mut ledger).await;
        let lost = ledger.lost();
        println!(
            "round {round}: killed after {kill_at} receipts; {} receipted, {} delivered before the kill, {} drained after",
            ledger.receipted.len(),
            seen.deliveries.len(),
            drained
        );
        assert!(
            lost.is_empty(),
            "round {round}: {} receipted messages never delivered, e.g. {:?} (seed {seed})",
            lost.len(),
            &lost[..lost.len().min(10)]
        );
    }
    // After one more kill and restart, what came back of every round's queue may only be
    // messages whose ACK was not confirmed (`Ledger::delivery` checks it); the queues whose
    // drain confirmed its ACKs come back empty.
    drop(server);
    let server = ServerProcess::start(dir.path());
    for round in 0..rounds {
        let queue = format!("/queue/kill-{round}");
        let came_back = drain(server.stomp, &queue, true, &mut ledger).await;
        if round % 2 == 0 {
            assert_eq!(
                came_back, 0,
                "{queue}: acknowledged messages came back (seed {seed})"
            );
        }
    }
    let total_delivered: usize = ledger.delivered.values().sum();
    println!(
        "{rounds} rounds: {} receipted, 0 lost, {} deliveries, {} redelivered",
        ledger.receipted.len(),
        total_delivered,
        ledger.redelivered
    );
    assert!(
        ledger.receipted.len() >= rounds * MESSAGES_PER_ROUND / 5,
        "too few messages got through"
    );
}

/// What the first clients of a round saw before the server died.
#[derive(Default)]
struct Seen {
    receipted: Vec<String>,
    deliveries: Vec<Frame>,
}

/// Runs the producer and the consumer on `queue` until `kill_at` SEND receipts are in, then
/// SIGKILLs the server. Returns what was seen, and the ids whose ACK was receipted.
async fn traffic_until_kill(
    server: &mut ServerProcess,
    queue: &str,
    round: usize,
    kill_at: usize,
    pace: usize,
) -> (Seen, Vec<String>) {
    let addr = server.stomp;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let confirmed = Arc::new(Mutex::new(Vec::new()));
    let receipts = Arc::new(AtomicUsize::new(0));
    let mut consumer = Tcp::connect(addr, "consumer").await;
    consumer.subscribe("c", queue, "client-individual").await;
    let consume = tokio::spawn(consume(consumer, pace, seen.clone(), confirmed.clone()));
    let produce = tokio::spawn(produce(
        addr,
        queue.to_owned(),
        round,
        seen.clone(),
        receipts.clone(),
    ));
    tokio::time::timeout(Duration::from_secs(120), async {
        while receipts.load(Ordering::Acquire) < kill_at && !produce.is_finished() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the SEND receipts stopped coming");
    server.kill();
    // Both clients see their connection end.
    tokio::time::timeout(WAIT, async {
        let _ = produce.await;
        let _ = consume.await;
    })
    .await
    .expect("clients did not notice the kill");
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let confirmed = std::mem::take(&mut *confirmed.lock().unwrap());
    (seen, confirmed)
}

/// Pipelines the round's SENDs, each with a receipt, without waiting for any.
async fn produce(
    addr: SocketAddr,
    queue: String,
    round: usize,
    seen: Arc<Mutex<Seen>>,
    receipts: Arc<AtomicUsize>,
) {
    let producer = Tcp::connect(addr, "producer").await;
    let (mut read, mut write) = producer.stream.into_split();
    let reader = tokio::spawn(async move {
        let mut buf = BytesMut::new();
        let mut decoder = Decoder::new(Default::default());
        decoder.set_version(Version::V1_2);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(Decoded::Frame(frame))) if frame.command == Command::Receipt => {
                    let id = frame.get("receipt-id").unwrap().to_owned();
                    seen.lock().unwrap().receipted.push(id);
                    receipts.fetch_add(1, Ordering::Release);
                }
                Ok(Some(Decoded::Frame(frame))) => panic!("producer got {frame:?}"),
                Ok(Some(Decoded::HeartBeat)) => {}
                Ok(None) => match read.read_buf(&mut buf).await {
                    Ok(n) if n > 0 => {}
                    _ => return,
                },
                Err(error) => panic!("producer could not decode: {error}"),
            }
        }
    });
    for n in 0..MESSAGES_PER_ROUND {
        let id = format!("r{round}m{n}");
        let frame = Frame::new(Command::Send)
            .header("destination", queue.as_str())
            .header("persistent", "true")
            .header("x-id", id.as_str())
            .header("receipt", id.as_str())
            .body(body_for(&id));
        if write
            .write_all(&to_bytes(&frame, Version::V1_2))
            .await
            .is_err()
        {
            break;
        }
    }
    let _ = reader.await;
}

/// ACKs every MESSAGE with a receipt; notes the ACKs confirmed.
async fn consume(
    mut consumer: Tcp,
    pace: usize,
    seen: Arc<Mutex<Seen>>,
    confirmed: Arc<Mutex<Vec<String>>>,
) {
    let mut pending: HashMap<String, String> = HashMap::new();
    let mut n = 0;
    while let Some(frame) = consumer.next_frame().await {
        match frame.command {
            Command::Message => {
                n += 1;
                let id = frame.get("x-id").unwrap().to_owned();
                let ack = frame.get("ack").unwrap().to_owned();
                let receipt = format!("ack{n}");
                pending.insert(receipt.clone(), id);
                seen.lock().unwrap().deliveries.push(frame);
                let frame = Frame::new(Command::Ack)
                    .header("id", ack)
                    .header("receipt", receipt);
                if consumer
                    .stream
                    .write_all(&to_bytes(&frame, Version::V1_2))
                    .await
                    .is_err()
                {
                    // The server was killed.
                    break;
                }
                // Slower than the producer, as a consumer doing work is: a backlog of
                // dispatched, unread messages builds up in its socket when the kill comes.
                if n % pace == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            Command::Receipt => {
                if let Some(id) = pending.remove(frame.get("receipt-id").unwrap()) {
                    confirmed.lock().unwrap().push(id);
                }
            }
            _ => panic!("consumer got {frame:?}"),
        }
    }
}

/// Consumes `queue` until it stays silent, ACKing each MESSAGE; with `confirm`, then makes the
/// ACKs durable (a receipted frame after them), else leaves them to the store's own pace, as a
/// client that does not ask for receipts does. Returns how many messages came.
async fn drain(addr: SocketAddr, queue: &str, confirm: bool, ledger: &mut Ledger) -> usize {
    let mut consumer = Tcp::connect(addr, "drain").await;
    // No receipt on the SUBSCRIBE: restored messages may come before it.
    consumer
        .send(
            Frame::new(Command::Subscribe)
                .header("id", "d")
                .header("destination", queue)
                .header("ack", "client-individual"),
        )
        .await;
    let mut drained = Vec::new();
    while let Some(frame) = consumer.maybe_frame(DRAIN_SILENCE).await {
        assert_eq!(frame.command, Command::Message, "{frame:?}");
        let (id, ack) = ledger.delivery(&frame);
        consumer
            .send(Frame::new(Command::Ack).header("id", ack))
            .await;
        drained.push(id);
    }
    let count = drained.len();
    if confirm {
        // A RECEIPT covers this session's earlier writes: every ACK above is durable after it.
        consumer
            .send_receipted(
                Frame::new(Command::Begin).header("transaction", "t"),
                "sync",
            )
            .await;
        ledger.acked.extend(drained);
    }
    count
}
