//! A `stompede serve` process with a small `reconcile-memory-budget` reconciles files several
//! times larger than it, two jobs at once, and its peak resident memory (`VmHWM` in
//! `/proc/<pid>/status`) stays within the budget plus a stated allowance above its idle size.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, Write};
use std::path::Path;

use serde_json::json;
use stompede::protocol::{Command, Frame};

/// The budget: 16 MiB.
const BUDGET: u64 = 16 << 20;

/// What the budget does not cover, and the server may take besides: the threads that run
/// the chunks (their stacks, their allocator heaps: a few hundred KiB each, and a new
/// `spawn_blocking` thread for a chunk that finds none idle), pages the allocator has not
/// given back yet, the job records, the events and the store's page cache growing with them.
/// Measured: 16.1 MiB above idle for the two jobs (debug build), about the budget itself, as
/// the reservations reach it; 8 MiB leaves room for another machine's allocator and threads.
const ALLOWANCE: u64 = 8 << 20;

/// Keys `0..n`: every 20th only in the back office, every 20th (+1) only at the partner,
/// every 20th (+2) with another status on each side, the rest equal. About 110 bytes a row.
fn generate(dir: &Path, n: u64) -> u64 {
    let mut bo = std::io::BufWriter::new(std::fs::File::create(dir.join("bo.csv")).unwrap());
    let mut partner =
        std::io::BufWriter::new(std::fs::File::create(dir.join("partner.csv")).unwrap());
    let header = "id,account,amount,currency,date,label,status,reference\n";
    bo.write_all(header.as_bytes()).unwrap();
    partner.write_all(header.as_bytes()).unwrap();
    for i in 0..n {
        let row = format!(
            "ID{i:09},FR76{:016},{}.{:02},EUR,2024-{:02}-{:02},Payment number {i},settled,REF{:010}\n",
            i * 7919 % 10_000_000_000_000_000,
            i * 31 % 1_000_000,
            i % 100,
            1 + i % 12,
            1 + i % 28,
            i * 104_729 % 10_000_000_000,
        );
        match i % 20 {
            0 => bo.write_all(row.as_bytes()).unwrap(),
            1 => partner.write_all(row.as_bytes()).unwrap(),
            2 => {
                bo.write_all(row.as_bytes()).unwrap();
                partner
                    .write_all(row.replace("settled", "pending").as_bytes())
                    .unwrap();
            }
            _ => {
                bo.write_all(row.as_bytes()).unwrap();
                partner.write_all(row.as_bytes()).unwrap();
            }
        }
    }
    bo.flush().unwrap();
    partner.flush().unwrap();
    std::fs::metadata(dir.join("bo.csv")).unwrap().len()
        + std::fs::metadata(dir.join("partner.csv")).unwrap().len()
}

/// A field of `/proc/<pid>/status`, in bytes.
fn status(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = text.lines().find(|l| l.starts_with(field)).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[tokio::test]
async fn two_reconcile_jobs_on_files_larger_than_the_budget_stay_within_it() {
    let data = tempfile::tempdir().unwrap();
    let import = data.path().join("import");
    std::fs::create_dir_all(&import).unwrap();
    let n = 200_000;
    let bytes = generate(&import, n);
    assert!(
        bytes > 2 * BUDGET,
        "the files ({bytes} bytes) are larger than the budget"
    );
    let config = data.path().join("stompede.toml");
    std::fs::write(&config, format!("reconcile-memory-budget = {BUDGET}\n")).unwrap();
    let config = config.display().to_string();
    let server = common::ServerProcess::start_with(data.path(), &["--config", &config]);
    let pid = server.pid();
    let mut ann = common::Tcp::connect(server.stomp, "ann").await;
    ann.subscribe("p", "/user/queue/progress", "auto").await;
    // Settled: connected, subscribed, its threads started.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let idle = status(pid, "VmRSS:");
    let params = json!({"boFile": "bo.csv", "partnerFile": "partner.csv", "boKey": "id", "partnerKey": "id"});
    for receipt in ["a", "b"] {
        ann.send(
            Frame::new(Command::Send)
                .header("destination", "/app/jobs")
                .header("job-type", "reconcile")
                .header("receipt", receipt)
                .body(params.to_string()),
        )
        .await;
    }
    let (results, steps) = ann.completed_jobs(2).await;
    let peak = status(pid, "VmHWM:");
    let above = peak.saturating_sub(idle);
    drop(server);
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "idle {:.1} MiB, peak {:.1} MiB: {:.1} MiB above idle for a budget of {:.0} MiB; steps {steps:?}",
        mib(idle),
        mib(peak),
        mib(above),
        mib(BUDGET)
    );
    assert!(
        above <= BUDGET + ALLOWANCE,
        "the server's peak was {:.1} MiB above its idle size, over the {:.0} MiB budget and the {:.0} MiB allowance",
        mib(above),
        mib(BUDGET),
        mib(ALLOWANCE)
    );
    let fifth = |r: u64| (0..n).filter(|i| i % 20 == r).count() as u64;
    for result in results {
        assert_eq!(result["totalBoRecords"], n - fifth(1), "{result}");
        assert_eq!(result["totalPartnerRecords"], n - fifth(0));
        assert_eq!(result["totalBoOnly"], fifth(0));
        assert_eq!(result["totalPartnerOnly"], fifth(1));
        assert_eq!(result["totalMismatches"], fifth(2));
        assert_eq!(result["totalMatches"], n - fifth(0) - fifth(1) - fifth(2));
        assert_eq!(result["duplicateBoKeys"], 0);
        // Every matched key once in matches.csv, a header row first.
        let matches = result["files"]["matches.csv"].as_str().unwrap();
        let lines = std::io::BufReader::new(std::fs::File::open(matches).unwrap())
            .lines()
            .count() as u64;
        assert_eq!(lines, 1 + n - fifth(0) - fifth(1) - fifth(2));
    }
}
