//! Chaos (issue #23): under steady load (a producer of receipted persistent messages, a consumer
//! acknowledging each, `demo` and `reconcile` jobs submitted all along) a real `stompede serve`
//! is SIGKILLed and restarted on the same data directory 10 times, at seeded random points.
//! Afterwards every receipted message has been delivered, every accepted job has completed, no
//! chunk that had finished ran again, and every job's result is the one an uninterrupted server
//! gives. Each restart must open the store (the server prints its listening line).
//!
//! `STOMPEDE_CHAOS_ROUNDS` (default 10) and `STOMPEDE_CHAOS_SEED` change the run.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{ServerProcess, Tcp};
use serde_json::{json, Value};
use stompede::protocol::{Command, Frame};
use tokio::sync::watch;

const QUEUE: &str = "/queue/chaos";
/// Rows on each side of the reconciliation.
const ROWS: u64 = 20_000;

/// What the clients saw, across every restart.
#[derive(Default)]
struct Ledger {
    /// Messages whose SEND was receipted.
    receipted: BTreeSet<u64>,
    /// Messages the consumer received (at least once).
    delivered: BTreeSet<u64>,
    /// Jobs whose submission was receipted: id and parameters' kind.
    jobs: Vec<(String, &'static str)>,
}

type Shared = Arc<Mutex<Ledger>>;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift64: the kill points, from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn write_inputs(import: &Path) {
    std::fs::create_dir_all(import).unwrap();
    let mut bo = String::from("id,amount,label\n");
    let mut partner = String::from("ref;montant;label\n");
    for i in 0..ROWS {
        bo.push_str(&format!("K{i:06},{}.{:02},libellé {i}\n", i * 3, i % 100));
        if i % 10 != 0 {
            let cents = if i % 7 == 0 { (i + 1) % 100 } else { i % 100 };
            partner.push_str(&format!("K{i:06};{},{cents:02};libellé {i}\n", i * 3));
        }
    }
    for j in 0..100 {
        partner.push_str(&format!("P{j:06};1,00;seulement chez le partenaire\n"));
    }
    std::fs::write(import.join("bo.csv"), bo).unwrap();
    std::fs::write(import.join("partner.csv"), partner).unwrap();
}

fn job_params(kind: &str) -> String {
    match kind {
        "reconcile" => json!({
            "boFile": "bo.csv",
            "partnerFile": "partner.csv",
            "boKey": "id",
            "partnerKey": "ref",
            "compare": { "amount": "montant", "label": "label" },
            "chunkSize": 2_000,
        }),
        _ => json!({ "chunks": 12, "mibPerChunk": 1, "chunkDelayMs": 40 }),
    }
    .to_string()
}

/// Sends receipted persistent messages, reconnecting to wherever the server is now.
async fn produce(addr: watch::Receiver<SocketAddr>, ledger: Shared, stop: Arc<AtomicBool>) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let now = *addr.borrow();
        let Some(mut client) = Tcp::try_connect(now, "producer").await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        while !stop.load(Ordering::Relaxed) {
            let id = n;
            n += 1;
            let sent = client
                .try_send(
                    Frame::new(Command::Send)
                        .header("destination", QUEUE)
                        .header("persistent", "true")
                        .header("receipt", id.to_string())
                        .body(id.to_string()),
                )
                .await;
            let reply = tokio::time::timeout(common::WAIT, client.next_frame()).await;
            match reply {
                Ok(Some(frame)) if sent && frame.command == Command::Receipt => {
                    ledger.lock().unwrap().receipted.insert(id);
                }
                // The server is gone: this message may or may not have been stored.
                _ => break,
            }
        }
    }
}

/// Receives and acknowledges, reconnecting to wherever the server is now.
async fn consume(addr: watch::Receiver<SocketAddr>, ledger: Shared, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let now = *addr.borrow();
        let Some(mut client) = Tcp::try_connect(now, "consumer").await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let subscribed = client
            .try_send(
                Frame::new(Command::Subscribe)
                    .header("id", "c")
                    .header("destination", QUEUE)
                    .header("ack", "client-individual"),
            )
            .await;
        if !subscribed {
            continue;
        }
        while !stop.load(Ordering::Relaxed) {
            let frame =
                match tokio::time::timeout(Duration::from_millis(200), client.next_frame()).await {
                    Err(_) => continue,
                    Ok(None) => break,
                    Ok(Some(frame)) => frame,
                };
            assert_eq!(frame.command, Command::Message, "{frame:?}");
            let id: u64 = std::str::from_utf8(&frame.body).unwrap().parse().unwrap();
            ledger.lock().unwrap().delivered.insert(id);
            let ack = Frame::new(Command::Ack).header("id", frame.get("ack").unwrap());
            if !client.try_send(ack).await {
                break;
            }
        }
    }
}

/// Submits `demo` and `reconcile` jobs in turn, reconnecting to wherever the server is now.
async fn submit(addr: watch::Receiver<SocketAddr>, ledger: Shared, stop: Arc<AtomicBool>) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let now = *addr.borrow();
        let Some(mut client) = Tcp::try_connect(now, "ann").await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        while !stop.load(Ordering::Relaxed) {
            let kind = if n % 3 == 2 { "reconcile" } else { "demo" };
            n += 1;
            let sent = client
                .try_send(
                    Frame::new(Command::Send)
                        .header("destination", "/app/jobs")
                        .header("job-type", kind)
                        .header("receipt", format!("j{n}"))
                        .body(job_params(kind)),
                )
                .await;
            let reply = tokio::time::timeout(common::WAIT, client.next_frame()).await;
            match reply {
                Ok(Some(frame)) if sent && frame.command == Command::Receipt => {
                    let id = frame.get("job-id").unwrap().to_owned();
                    ledger.lock().unwrap().jobs.push((id, kind));
                }
                _ => break,
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// A job's whole event log: its chunks' completions by index, and its final event.
async fn replay(client: &mut Tcp, id: &str) -> (BTreeMap<u64, usize>, Value) {
    client
        .send(
            Frame::new(Command::Subscribe)
                .header("id", id)
                .header("destination", format!("/topic/jobs/{id}"))
                .header("since-seq", "0"),
        )
        .await;
    let mut completions: BTreeMap<u64, usize> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let frame = tokio::time::timeout_at(deadline, client.next_frame())
            .await
            .unwrap_or_else(|_| panic!("job {id} did not finish"))
            .unwrap();
        let event: Value = serde_json::from_slice(&frame.body).unwrap();
        match event["event"].as_str().unwrap() {
            "CHUNK_COMPLETED" => {
                *completions
                    .entry(event["chunkIndex"].as_u64().unwrap())
                    .or_default() += 1;
            }
            "JOB_COMPLETED" => {
                client
                    .send(Frame::new(Command::Unsubscribe).header("id", id))
                    .await;
                return (completions, event["result"].clone());
            }
            "JOB_FAILED" | "JOB_CANCELLED" => panic!("job {id}: {event}"),
            _ => {}
        }
    }
}

/// A result as it compares between runs: the result files by their contents, not their paths.
fn comparable(result: &Value) -> Value {
    let mut result = result.clone();
    if let Some(files) = result.get_mut("files").and_then(Value::as_object_mut) {
        for path in files.values_mut() {
            let bytes = std::fs::read(path.as_str().unwrap()).unwrap();
            *path = json!(format!("{} bytes, sha256 {}", bytes.len(), sha256(&bytes)));
        }
    }
    if let Some(fields) = result.as_object_mut() {
        fields.retain(|key, _| !key.ends_with("Ms") && !key.contains("uration"));
    }
    result
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(bytes))
}

/// The results (and chunk counts) an uninterrupted server gives for each kind of job.
async fn reference_results() -> BTreeMap<&'static str, (Value, usize)> {
    let data = tempfile::tempdir().unwrap();
    write_inputs(&data.path().join("import"));
    let server = ServerProcess::start(data.path());
    let mut client = Tcp::connect(server.stomp, "ann").await;
    let mut results = BTreeMap::new();
    for kind in ["demo", "reconcile"] {
        client
            .send(
                Frame::new(Command::Send)
                    .header("destination", "/app/jobs")
                    .header("job-type", kind)
                    .header("receipt", kind)
                    .body(job_params(kind)),
            )
            .await;
        let receipt = client.frame().await;
        let id = receipt.get("job-id").unwrap().to_owned();
        let (completions, result) = replay(&mut client, &id).await;
        results.insert(kind, (comparable(&result), completions.len()));
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_kills_under_load_lose_nothing_and_redo_no_finished_chunk() {
    let rounds = env_number("STOMPEDE_CHAOS_ROUNDS", 10);
    let seed = env_number("STOMPEDE_CHAOS_SEED", 0x0005_eedc_4a05);
    let data = tempfile::tempdir().unwrap();
    write_inputs(&data.path().join("import"));
    let mut server = ServerProcess::start(data.path());
    let (addr_tx, addr) = watch::channel(server.stomp);
    let ledger: Shared = Arc::default();
    let stop_producing = Arc::new(AtomicBool::new(false));
    let stop_consuming = Arc::new(AtomicBool::new(false));
    let producer = tokio::spawn(produce(
        addr.clone(),
        ledger.clone(),
        stop_producing.clone(),
    ));
    let submitter = tokio::spawn(submit(addr.clone(), ledger.clone(), stop_producing.clone()));
    let consumer = tokio::spawn(consume(
        addr.clone(),
        ledger.clone(),
        stop_consuming.clone(),
    ));

    let mut rng = Rng(seed | 1);
    for round in 0..rounds {
        let wait = 300 + rng.next() % 1_500;
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let before = ledger.lock().unwrap().receipted.len();
        drop(server); // SIGKILL, mid-whatever the load was doing
        server = ServerProcess::start(data.path());
        addr_tx.send(server.stomp).unwrap();
        eprintln!("round {round}: killed after {wait} ms, {before} messages receipted so far");
    }
    // Let the load run a little on the last server, then stop sending.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop_producing.store(true, Ordering::Relaxed);
    producer.await.unwrap();
    submitter.await.unwrap();

    // Every receipted message arrives.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let missing: Vec<u64> = {
            let ledger = ledger.lock().unwrap();
            ledger
                .receipted
                .difference(&ledger.delivered)
                .copied()
                .collect()
        };
        if missing.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "receipted but never delivered: {:?}",
            &missing[..missing.len().min(20)]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop_consuming.store(true, Ordering::Relaxed);
    consumer.await.unwrap();

    // Every accepted job completes, each chunk completed once, with the uninterrupted result.
    let reference = reference_results().await;
    let (receipted, jobs) = {
        let ledger = ledger.lock().unwrap();
        (ledger.receipted.len(), ledger.jobs.clone())
    };
    let mut client = Tcp::connect(server.stomp, "ann").await;
    for (id, kind) in &jobs {
        let (completions, result) = replay(&mut client, id).await;
        let (expected, chunks) = &reference[kind];
        assert_eq!(
            completions.len(),
            *chunks,
            "job {id} ({kind}): {completions:?}"
        );
        assert!(
            completions.values().all(|n| *n == 1),
            "job {id} ({kind}) finished a chunk twice: {completions:?}"
        );
        assert_eq!(&comparable(&result), expected, "job {id} ({kind})");
    }
    eprintln!(
        "{rounds} kills (seed {seed}): {receipted} receipted messages all delivered, {} jobs all completed with the uninterrupted results",
        jobs.len()
    );
    assert!(receipted > 0 && !jobs.is_empty());
}
