//! The soak's steady mixed load, each part a task that runs until told to stop: a topic fanned
//! out to TCP and WebSocket subscribers, receipted persistent messages on a durable queue with a
//! consumer acknowledging each, sessions that come and go in every way a real client leaves
//! (cleanly, abruptly, mid-frame, after an ERROR, holding unacknowledged messages), `demo` and
//! `reconcile` jobs, and HTTP health checks. What each part saw goes in [`Ledger`], so that the
//! run ends by checking that nothing was lost, not only that memory stayed flat.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::json;
use stompede::protocol::{Command, Frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{interval, sleep, timeout, MissedTickBehavior};

use crate::common::{Tcp, Ws};

/// The topic every subscriber watches.
pub const TOPIC: &str = "/topic/soak.ticks";
/// The durable queue of receipted persistent messages.
pub const QUEUE: &str = "/queue/soak.persistent";
/// Rows on each side of a soak reconciliation.
const RECONCILE_ROWS: u64 = 5_000;

/// What the load did and saw; shared by every task.
#[derive(Default)]
pub struct Ledger {
    pub topic_sent: AtomicU64,
    /// One counter per steady topic subscriber.
    pub topic_received: Vec<AtomicU64>,
    /// Persistent messages receipted: ids `0..queue_receipted`, one producer awaiting each.
    pub queue_receipted: AtomicU64,
    pub queue_delivered: Mutex<HashSet<u64>>,
    /// Sessions opened and left, by how they left (see [`churn`]).
    pub churned: [AtomicU64; 5],
    /// Churning sessions that did not behave as the server promises (a missing ERROR, say).
    pub churn_faults: AtomicU64,
    pub jobs_accepted: Mutex<HashSet<String>>,
    pub jobs_completed: Mutex<HashSet<String>>,
    pub jobs_failed: Mutex<Vec<String>>,
    pub health_ok: AtomicU64,
    pub health_failed: AtomicU64,
}

impl Ledger {
    pub fn new(subscribers: usize) -> Ledger {
        Ledger {
            topic_received: (0..subscribers).map(|_| AtomicU64::new(0)).collect(),
            ..Ledger::default()
        }
    }
}

pub type Shared = Arc<Ledger>;
pub type Stop = Arc<AtomicBool>;

fn stopped(stop: &Stop) -> bool {
    stop.load(Ordering::Relaxed)
}

/// Publishes `rate` small messages a second to [`TOPIC`], in bursts every 10 ms.
pub async fn topic_publisher(addr: SocketAddr, ledger: Shared, stop: Stop, rate: u64) {
    let mut client = Tcp::connect(addr, "soak-publisher").await;
    let per_tick = (rate / 100).max(1);
    let mut tick = interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut seq = 0u64;
    while !stopped(&stop) {
        tick.tick().await;
        for _ in 0..per_tick {
            client
                .send(
                    Frame::new(Command::Send)
                        .header("destination", TOPIC)
                        .body(format!("{seq:>200}")),
                )
                .await;
            seq += 1;
        }
        ledger.topic_sent.store(seq, Ordering::Relaxed);
    }
}

/// Told once a steady subscriber's SUBSCRIBE is receipted, so the publisher starts after.
pub type Ready = tokio::sync::mpsc::Sender<()>;

/// A steady subscriber over TCP: counts every MESSAGE until aborted.
pub async fn tcp_subscriber(addr: SocketAddr, ledger: Shared, index: usize, ready: Ready) {
    let mut client = Tcp::connect(addr, &format!("soak-tcp-{index}")).await;
    client.subscribe("s", TOPIC, "auto").await;
    let _ = ready.send(()).await;
    while let Some(frame) = client.next_frame().await {
        assert_eq!(frame.command, Command::Message, "{frame:?}");
        ledger.topic_received[index].fetch_add(1, Ordering::Relaxed);
    }
    panic!("the server closed steady subscriber {index}");
}

/// A steady subscriber over WebSocket: counts every MESSAGE until aborted.
pub async fn ws_subscriber(url: String, ledger: Shared, index: usize, ready: Ready) {
    let mut client = Ws::connect(&url).await;
    client.subscribe("s", TOPIC).await;
    let _ = ready.send(()).await;
    loop {
        // `frame` gives up after 10 s without one: the publisher never pauses that long.
        let (frame, _) = client.frame().await;
        assert_eq!(frame.command, Command::Message, "{frame:?}");
        ledger.topic_received[index].fetch_add(1, Ordering::Relaxed);
    }
}

/// Sends persistent messages to [`QUEUE`], each awaiting its RECEIPT, about 200 a second.
pub async fn queue_producer(addr: SocketAddr, ledger: Shared, stop: Stop) -> Result<()> {
    let mut client = Tcp::connect(addr, "soak-producer").await;
    let mut id = 0u64;
    while !stopped(&stop) {
        client
            .send(
                Frame::new(Command::Send)
                    .header("destination", QUEUE)
                    .header("persistent", "true")
                    .header("receipt", id.to_string())
                    .body(id.to_string()),
            )
            .await;
        let reply = client.frame().await;
        if reply.command != Command::Receipt {
            bail!("persistent SEND {id} answered with {reply:?}");
        }
        id += 1;
        ledger.queue_receipted.store(id, Ordering::Relaxed);
        sleep(Duration::from_millis(4)).await;
    }
    Ok(())
}

/// Receives [`QUEUE`]'s messages and acknowledges each, until aborted.
pub async fn queue_consumer(addr: SocketAddr, ledger: Shared) {
    let mut client = Tcp::connect(addr, "soak-consumer").await;
    let mut early = subscribe(&mut client, "q", QUEUE, "client-individual")
        .await
        .into_iter();
    loop {
        let frame = match early.next() {
            Some(frame) => frame,
            None => match client.next_frame().await {
                Some(frame) => frame,
                None => break,
            },
        };
        assert_eq!(frame.command, Command::Message, "{frame:?}");
        let id: u64 = std::str::from_utf8(&frame.body)
            .ok()
            .and_then(|body| body.parse().ok())
            .unwrap_or_else(|| panic!("unexpected body on {QUEUE}: {frame:?}"));
        ledger.queue_delivered.lock().expect("ledger").insert(id);
        let ack = frame.get("ack").expect("MESSAGE without ack header");
        client
            .send(Frame::new(Command::Ack).header("id", ack))
            .await;
    }
    panic!("the server closed the queue consumer");
}

/// A session every 100 ms, leaving in one of five ways in turn: 0 DISCONNECT with a receipt;
/// 1 takes a persistent message and vanishes without acknowledging it (the message must return
/// to the steady consumer); 2 dies in the middle of a frame; 3 sends a malformed frame and must
/// get an ERROR; 4 a WebSocket subscriber that drops its socket without a word.
pub async fn churn(addr: SocketAddr, ws_url: String, ledger: Shared, stop: Stop) {
    let mut n = 0u64;
    while !stopped(&stop) {
        let way = (n % 5) as usize;
        n += 1;
        let behaved = timeout(Duration::from_secs(10), leave(way, addr, &ws_url))
            .await
            .unwrap_or(false);
        ledger.churned[way].fetch_add(1, Ordering::Relaxed);
        if !behaved {
            ledger.churn_faults.fetch_add(1, Ordering::Relaxed);
        }
        sleep(Duration::from_millis(100)).await;
    }
}

/// One churning session; true when the server answered as it should.
async fn leave(way: usize, addr: SocketAddr, ws_url: &str) -> bool {
    match way {
        0 => {
            let mut client = Tcp::connect(addr, "soak-churn").await;
            subscribe(&mut client, "t", TOPIC, "auto").await;
            client.frames(3).await;
            client
                .send(Frame::new(Command::Disconnect).header("receipt", "bye"))
                .await;
            loop {
                match client.next_frame().await {
                    Some(frame) if frame.command == Command::Receipt => return true,
                    Some(_) => continue,
                    None => return false,
                }
            }
        }
        1 => {
            let mut client = Tcp::connect(addr, "soak-churn").await;
            subscribe(&mut client, "q", QUEUE, "client-individual").await;
            // A message may or may not come within the window; either way the socket goes.
            let _ = client.maybe_frame(Duration::from_millis(50)).await;
            true
        }
        2 => {
            let Ok(mut stream) = TcpStream::connect(addr).await else {
                return false;
            };
            let half = "CONNECT\naccept-version:1.2\nlogin:soak-churn\n\n\0\
                        SEND\ndestination:/topic/soak.void\ncontent-length:1000\n\nonly a few";
            stream.write_all(half.as_bytes()).await.is_ok()
        }
        3 => {
            let mut client = Tcp::connect(addr, "soak-churn").await;
            client.raw(b"NOT-A-COMMAND\nx:y\n\n\0").await;
            let frames = client.until_closed().await;
            frames.iter().any(|f| f.command == Command::Error)
        }
        _ => {
            let mut client = Ws::connect(ws_url).await;
            client
                .text(&format!(
                    "SUBSCRIBE\nid:t\ndestination:{TOPIC}\nreceipt:sub-t\n\n\0"
                ))
                .await;
            // The topic's messages may come before the RECEIPT, as STOMP allows.
            for _ in 0..100 {
                if client.frame().await.0.command == Command::Receipt {
                    return true;
                }
            }
            false
        }
    }
}

/// Subscribes and waits for the RECEIPT; returns the messages that came first, which STOMP
/// allows on a destination that already holds some.
async fn subscribe(client: &mut Tcp, id: &str, destination: &str, ack: &str) -> Vec<Frame> {
    client
        .send_until_receipt(
            Frame::new(Command::Subscribe)
                .header("id", id)
                .header("destination", destination)
                .header("ack", ack),
            &format!("sub-{id}"),
        )
        .await
}

/// Writes the reconciliation's two input files into `import`.
pub fn write_reconcile_inputs(import: &Path) -> Result<()> {
    std::fs::create_dir_all(import).context("creating the import directory")?;
    let mut bo = String::from("id,amount\n");
    let mut partner = String::from("ref;montant\n");
    for i in 0..RECONCILE_ROWS {
        bo.push_str(&format!("K{i:06},{}.{:02}\n", i * 3, i % 100));
        if i % 10 != 0 {
            partner.push_str(&format!("K{i:06};{},{:02}\n", i * 3, (i + i % 7) % 100));
        }
    }
    std::fs::write(import.join("bo.csv"), bo)?;
    std::fs::write(import.join("partner.csv"), partner)?;
    Ok(())
}

/// Submits a `demo` job every two seconds and a `reconcile` every tenth time, and follows
/// them all on the owner's `/user/queue/progress`.
pub async fn jobs(addr: SocketAddr, ledger: Shared, stop: Stop) -> Result<()> {
    let mut client = Tcp::connect(addr, "soak-jobs").await;
    client.subscribe("p", "/user/queue/progress", "auto").await;
    let mut n = 0u64;
    let mut tick = interval(Duration::from_secs(2));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut check = interval(Duration::from_millis(500));
    check.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut submitted_at = tokio::time::Instant::now();
    let mut awaiting: Option<String> = None;
    loop {
        tokio::select! {
            _ = tick.tick(), if awaiting.is_none() && !stopped(&stop) => {
                let (kind, params) = if n % 10 == 9 {
                    ("reconcile", json!({
                        "boFile": "bo.csv", "partnerFile": "partner.csv",
                        "boKey": "id", "partnerKey": "ref",
                        "compare": { "amount": "montant" }, "chunkSize": 1_000,
                    }))
                } else {
                    ("demo", json!({ "chunks": 4, "mibPerChunk": 1, "chunkDelayMs": 50 }))
                };
                let receipt = format!("j{n}");
                n += 1;
                client.send(
                    Frame::new(Command::Send)
                        .header("destination", "/app/jobs")
                        .header("job-type", kind)
                        .header("receipt", receipt.as_str())
                        .body(params.to_string()),
                ).await;
                awaiting = Some(receipt);
                submitted_at = tokio::time::Instant::now();
            }
            frame = client.next_frame() => {
                let frame = frame.context("the server closed the jobs client")?;
                match frame.command {
                    Command::Receipt => {
                        if awaiting.as_deref() != frame.get("receipt-id") {
                            bail!("unexpected RECEIPT {frame:?}");
                        }
                        awaiting = None;
                        let id = frame.get("job-id").context("job RECEIPT without job-id")?;
                        ledger.jobs_accepted.lock().expect("ledger").insert(id.to_owned());
                    }
                    Command::Message => {
                        let id = frame.get("job-id").unwrap_or_default().to_owned();
                        match frame.get("event") {
                            Some("JOB_COMPLETED") => {
                                ledger.jobs_completed.lock().expect("ledger").insert(id);
                            }
                            Some("JOB_FAILED" | "JOB_CANCELLED") => {
                                ledger.jobs_failed.lock().expect("ledger").push(id);
                            }
                            _ => {}
                        }
                    }
                    _ => bail!("the jobs client got {frame:?}"),
                }
            }
            _ = check.tick() => {
                if awaiting.is_some() && submitted_at.elapsed() > Duration::from_secs(30) {
                    bail!("a job submission went unanswered for 30 s");
                }
                if stopped(&stop) && awaiting.is_none() && unfinished(&ledger) == 0 {
                    return Ok(());
                }
            }
        }
    }
}

/// Jobs accepted that have not completed nor failed yet.
pub fn unfinished(ledger: &Ledger) -> usize {
    let accepted = ledger.jobs_accepted.lock().expect("ledger");
    let completed = ledger.jobs_completed.lock().expect("ledger");
    let failed = ledger.jobs_failed.lock().expect("ledger");
    accepted
        .iter()
        .filter(|id| !completed.contains(*id) && !failed.contains(*id))
        .count()
}

/// `GET /health` on the HTTP listener every second.
pub async fn health(http: SocketAddr, ledger: Shared, stop: Stop) {
    while !stopped(&stop) {
        let ok = timeout(Duration::from_secs(5), get_ok(http, "/health"))
            .await
            .unwrap_or(false);
        let counter = if ok {
            &ledger.health_ok
        } else {
            &ledger.health_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        sleep(Duration::from_secs(1)).await;
    }
}

/// One HTTP/1.1 request on a fresh connection; true on a 200.
async fn get_ok(http: SocketAddr, path: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(http).await else {
        return false;
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut response = Vec::with_capacity(512);
    // Bounded: a health answer is a few hundred bytes.
    let _ = (&mut stream)
        .take(64 * 1024)
        .read_to_end(&mut response)
        .await;
    response.starts_with(b"HTTP/1.1 200")
}
