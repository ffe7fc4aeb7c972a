//! Reconciliation throughput and memory: two generated CSV files of N rows x 10 columns,
//! reconciled by the `reconcile` job type of a real `stompede serve` process (the release
//! binary, with its own allocator) that a STOMP client over TCP submits the job to; compared
//! with merely reading both files with the `csv` crate. Prints wall time, rows/s, MB/s and the
//! server's memory: its resident size when idle (`VmRSS` just before the submission), its peak
//! (`VmHWM` once the job completed) and the difference, which must stay within the server's
//! `reconcile-memory-budget`: the line says `FAIL` when it does not.
//!
//! `cargo bench --bench reconcile -- [--rows N] [--jobs K] [--runs R] [--budget-mib M]`:
//! `--jobs 2` submits two jobs on the same files at once (they share the one budget), `--runs`
//! starts a fresh server for each run. With `RUST_LOG=debug` in the environment the server
//! logs each chunk's time; `STOMPEDE_BIN=path` runs that binary instead of this build's.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use serde_json::json;

#[path = "../common/args.rs"]
mod args;
#[path = "../common/budgeted.rs"]
mod budgeted;
use args::number as arg;
use budgeted::{load_average, Run};

/// 10 columns; 90% of keys on both sides (5% of those differing in one column), 5% one-sided
/// each way.
fn generate(dir: &Path, rows: usize) -> u64 {
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

/// Starts a server, submits `jobs` reconcile jobs at once and waits for them all.
async fn run(import: &Path, budget: u64, jobs: usize) -> Run {
    let config = format!(
        "reconcile-memory-budget = {budget}\nimport-dir = {:?}\n",
        import.display().to_string()
    );
    let params = json!({"boFile": "bo.csv", "partnerFile": "partner.csv", "boKey": "id", "partnerKey": "id"});
    budgeted::run(&config, "reconcile", &params, jobs).await
}

fn main() {
    let rows = arg("--rows", 1_000_000);
    let jobs = arg("--jobs", 1).max(1);
    let runs = arg("--runs", 1).max(1);
    let budget_mib = arg("--budget-mib", 512) as u64;
    let budget = budget_mib << 20;
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
    println!("| reading both files with the csv crate (2 threads) | {read_only:.2} s |");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut failed = false;
    for n in 1..=runs {
        let load = load_average();
        let r = runtime.block_on(run(import.path(), budget, jobs));
        let result = &r.results[0];
        for other in &r.results[1..] {
            assert_eq!(
                other["totalMatches"], result["totalMatches"],
                "the same files"
            );
        }
        let total_rows = jobs as u64
            * (result["totalBoRecords"].as_u64().unwrap()
                + result["totalPartnerRecords"].as_u64().unwrap());
        let above = r.peak_mib - r.idle_mib;
        let over = above > budget_mib as f64;
        failed |= over;
        if n == 1 {
            println!(
                "| input | {rows} keys, {} + {} rows, {mb:.0} MB; {jobs} job(s) at once |",
                result["totalBoRecords"], result["totalPartnerRecords"]
            );
            println!(
                "| counts | matches {}, mismatches {}, bo only {}, partner only {} |",
                result["totalMatches"],
                result["totalMismatches"],
                result["totalBoOnly"],
                result["totalPartnerOnly"]
            );
        }
        println!(
            "| run {n}: reconcile, submit to JOB_COMPLETED | {:.2} s, {:.0} rows/s, {:.0} MB/s; reading alone is {:.0}% of it ({:.1}x); load {load} |",
            r.wall,
            total_rows as f64 / r.wall,
            jobs as f64 * mb / r.wall,
            100.0 * read_only / r.wall,
            r.wall / read_only
        );
        println!(
            "| run {n}: server RSS, budget {budget_mib} MiB | idle {:.0} MiB, peak (VmHWM) {:.0} MiB: {above:.0} MiB above idle, {}{} |",
            r.idle_mib,
            r.peak_mib,
            if over { "FAIL: over the budget" } else { "within the budget" },
            if r.waited { "; a job waited for memory" } else { "" }
        );
        println!(
            "{{\"bench\":\"reconcile\",\"rows\":{rows},\"jobs\":{jobs},\"run\":{n},\"seconds\":{:.3},\"read_only_seconds\":{read_only:.3},\"idle_rss_mib\":{:.0},\"peak_rss_mib\":{:.0},\"above_idle_mib\":{above:.0},\"budget_mib\":{budget_mib},\"within_budget\":{}}}",
            r.wall, r.idle_mib, r.peak_mib, !over
        );
    }
    if failed {
        println!("FAIL: the server's peak RSS passed its reconcile-memory-budget");
        std::process::exit(1);
    }
}
