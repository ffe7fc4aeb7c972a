//! Reconciliation throughput: two generated CSV files of N rows x 10 columns, reconciled by the
//! `reconcile` job type in process; compared with merely reading both files with the `csv`
//! crate. Prints wall time, rows/s, MB/s and the process's peak RSS.
//!
//! `cargo bench --bench reconcile -- [--rows N]`; with
//! `RUST_LOG=stompede::processors::reconcile=debug`, each chunk's time on stderr.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::json;
use stompede::jobs::JobStatus;
use stompede::processors::Reconcile;
use stompede::protocol::Headers;
use stompede::{BrokerBuilder, Config};

#[path = "../common/args.rs"]
mod args;
use args::number as arg;

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

/// 10 columns; 90% of keys on both sides (5% of those differing in one column), 5% one-sided
/// each way.
fn generate(dir: &std::path::Path, rows: usize) -> u64 {
    let mut bo = std::io::BufWriter::new(std::fs::File::create(dir.join("bo.csv")).unwrap());
    let mut partner =
        std::io::BufWriter::new(std::fs::File::create(dir.join("partner.csv")).unwrap());
    let header = "id,account,amount,currency,date,label,branch,status,reference,category\n";
    bo.write_all(header.as_bytes()).unwrap();
    partner.write_all(header.as_bytes()).unwrap();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..rows {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let row = format!(
            "ID{i:09},FR76{:016},{}.{:02},EUR,2024-{:02}-{:02},Payment {i},B{:03},settled,REF{:010},C{}\n",
            x % 10_000_000_000_000_000,
            x % 1_000_000,
            x % 100,
            1 + x % 12,
            1 + x % 28,
            x % 1000,
            x % 10_000_000_000,
            x % 20
        );
        match x % 20 {
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

fn main() {
    // `RUST_LOG=stompede::processors::reconcile=debug` shows each chunk's time.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let rows = arg("--rows", 1_000_000);
    let import = tempfile::tempdir().unwrap();
    let bytes = generate(import.path(), rows);
    let mb = bytes as f64 / 1e6;

    // Baseline: read both files with the csv crate, one thread each.
    let started = Instant::now();
    std::thread::scope(|s| {
        for name in ["bo.csv", "partner.csv"] {
            let path = import.path().join(name);
            s.spawn(move || {
                let mut reader = csv::Reader::from_path(path).unwrap();
                let mut record = csv::ByteRecord::new();
                let mut n = 0u64;
                while reader.read_byte_record(&mut record).unwrap() {
                    n += record.len() as u64;
                }
                n
            });
        }
    });
    let read_only = started.elapsed().as_secs_f64();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (wall, result) = runtime.block_on(async {
        let data = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: data.path().to_owned(),
            stomp: None,
            http: None,
            ..Config::default()
        };
        let server = BrokerBuilder::new(config)
            .job_type("reconcile", Reconcile::new(import.path(), 512 * 1024 * 1024))
            .start()
            .await
            .unwrap();
        let engine = server.jobs().unwrap().clone();
        let mut headers = Headers::new();
        headers.push("job-type", "reconcile");
        let params = json!({"boFile": "bo.csv", "partnerFile": "partner.csv", "boKey": "id", "partnerKey": "id"});
        let started = Instant::now();
        let job = engine.submit("bench", &headers, params.to_string().as_bytes()).await.unwrap();
        let result = loop {
            let state = engine.job(&job.id).unwrap();
            if state.status == JobStatus::Completed {
                break state.result.unwrap();
            }
            assert!(!state.status.is_finished(), "{:?}", state.error);
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let wall = started.elapsed().as_secs_f64();
        server.shutdown().await;
        (wall, result)
    });
    let total_rows = result["totalBoRecords"].as_u64().unwrap()
        + result["totalPartnerRecords"].as_u64().unwrap();
    println!(
        "| input | {rows} keys, {} + {} rows, {mb:.0} MB |",
        result["totalBoRecords"], result["totalPartnerRecords"]
    );
    println!("| reading both files with the csv crate (2 threads) | {read_only:.2} s |");
    println!(
        "| reconcile job, submit to JOB_COMPLETED | {wall:.2} s, {:.0} rows/s, {:.0} MB/s; reading alone is {:.0}% of it ({:.1}x) |",
        total_rows as f64 / wall,
        mb / wall,
        100.0 * read_only / wall,
        wall / read_only
    );
    println!("| peak RSS of the process | {:.0} MiB |", peak_rss_mib());
    println!(
        "| counts | matches {}, mismatches {}, bo only {}, partner only {} |",
        result["totalMatches"],
        result["totalMismatches"],
        result["totalBoOnly"],
        result["totalPartnerOnly"]
    );
    println!(
        "{{\"bench\":\"reconcile\",\"rows\":{rows},\"seconds\":{wall:.3},\"read_only_seconds\":{read_only:.3},\"peak_rss_mib\":{:.0}}}",
        peak_rss_mib()
    );
}
