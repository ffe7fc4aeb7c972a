//! The `reconcile` job type on generated files with known ground truth: every count and every
//! result file checked exactly, in one partition and in many, across encodings and formats,
//! with malformed rows, and across a SIGKILL in the middle of the job.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use stompede::jobs::JobStatus;
use stompede::processors::Reconcile;
use stompede::protocol::{Command, Frame, Headers};
use stompede::BrokerBuilder;

/// What the generated files must produce.
#[derive(Debug, Default)]
struct Truth {
    bo_rows: u64,
    partner_rows: u64,
    matches: u64,
    mismatches: BTreeSet<(String, String)>,
    mismatched_keys: u64,
    bo_only_lines: BTreeSet<u64>,
    partner_only_lines: BTreeSet<u64>,
    duplicate_bo_keys: u64,
    rejected: BTreeSet<(String, u64)>,
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn french(amount_cents: u64) -> String {
    let units = amount_cents / 100;
    let grouped = if units >= 1000 {
        format!("{} {:03}", units / 1000, units % 1000)
    } else {
        units.to_string()
    };
    format!("{grouped},{:02}", amount_cents % 100)
}

/// Writes `bo.csv` (UTF-8, `,`, ISO dates) and `partner.csv` (Windows-1252, `;`, French numbers
/// and dates) into `dir`, `n` keys, and returns the ground truth.
fn generate(dir: &Path, n: u64, seed: u64) -> Truth {
    let mut rng = Rng(seed | 1);
    let mut truth = Truth::default();
    let mut bo = String::from("id,amount,date,label\n");
    let mut partner: Vec<u8> = b"ref;montant;date;label\n".to_vec();
    let (mut bo_line, mut partner_line) = (1u64, 1u64);
    let mut push_partner = |text: &str, line: &mut u64| {
        let (bytes, _, _) = encoding_rs::WINDOWS_1252.encode(text);
        partner.extend_from_slice(&bytes);
        // A quoted label with a newline spans two lines.
        *line += 1 + text.matches('\n').count() as u64 - 1;
    };
    for i in 0..n {
        let key = format!("K{i:07}");
        let cents = rng.next() % 10_000_000;
        let (y, m, d) = (
            2020 + rng.next() % 5,
            1 + rng.next() % 12,
            1 + rng.next() % 28,
        );
        let label = match i % 7 {
            0 => "\"Société Générale, Paris\"".to_owned(),
            1 => "\"deux\nlignes\"".to_owned(),
            _ => format!("libellé {i}"),
        };
        let iso = format!("{y}-{m:02}-{d:02}");
        // A back-office row of this key; a quoted label with a newline spans two lines.
        let push_bo = |bo: &mut String, line: &mut u64| {
            bo.push_str(&format!(
                "{key},{}.{:02},{iso},{label}\n",
                cents / 100,
                cents % 100
            ));
            *line += 1 + label.matches('\n').count() as u64;
        };
        let fr_date = format!("{d:02}/{m:02}/{y}");
        match rng.next() % 20 {
            0 => {
                truth.bo_only_lines.insert(bo_line + 1);
                push_bo(&mut bo, &mut bo_line);
                truth.bo_rows += 1;
            }
            1 => {
                truth.partner_only_lines.insert(partner_line + 1);
                push_partner(
                    &format!("{key};{};{fr_date};{label}\n", french(cents)),
                    &mut partner_line,
                );
                truth.partner_rows += 1;
            }
            2 => {
                // The key twice in the back office: reported, never matched.
                truth.duplicate_bo_keys += 1;
                for _ in 0..2 {
                    push_bo(&mut bo, &mut bo_line);
                    truth.bo_rows += 1;
                }
                push_partner(
                    &format!("{key};{};{fr_date};{label}\n", french(cents)),
                    &mut partner_line,
                );
                truth.partner_rows += 1;
            }
            3 => {
                // A malformed row on each side: one field too many / too few.
                truth.rejected.insert(("back-office".into(), bo_line + 1));
                bo.push_str(&format!("{key},1,2,3,4\n"));
                bo_line += 1;
                truth.rejected.insert(("partner".into(), partner_line + 1));
                push_partner(&format!("{key};1\n"), &mut partner_line);
            }
            4 | 5 => {
                let column = if i % 2 == 0 { "amount" } else { "date" };
                let (p_amount, p_date) = if column == "amount" {
                    (french(cents + 1_000), fr_date.clone())
                } else {
                    (
                        french(cents),
                        format!("{:02}/{m:02}/{y}", if d == 1 { 2 } else { d - 1 }),
                    )
                };
                truth.mismatches.insert((key.clone(), column.to_owned()));
                truth.mismatched_keys += 1;
                push_bo(&mut bo, &mut bo_line);
                push_partner(
                    &format!("{key};{p_amount};{p_date};{label}\n"),
                    &mut partner_line,
                );
                truth.bo_rows += 1;
                truth.partner_rows += 1;
            }
            _ => {
                truth.matches += 1;
                push_bo(&mut bo, &mut bo_line);
                push_partner(
                    &format!("{key};{};{fr_date};{label}\n", french(cents)),
                    &mut partner_line,
                );
                truth.bo_rows += 1;
                truth.partner_rows += 1;
            }
        }
    }
    std::fs::write(dir.join("bo.csv"), format!("\u{feff}{bo}")).unwrap();
    std::fs::write(dir.join("partner.csv"), partner).unwrap();
    truth
}

fn params(chunk_size: u64) -> String {
    json!({
        "boFile": "bo.csv",
        "partnerFile": "partner.csv",
        "boKey": "id",
        "partnerKey": "ref",
        "compare": { "amount": "montant", "date": "date", "label": "label" },
        "numericTolerance": 0.001,
        "chunkSize": chunk_size,
    })
    .to_string()
}

fn lines(path: &str) -> Vec<String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(path)
        .unwrap();
    reader
        .records()
        .map(|r| r.unwrap().iter().collect::<Vec<_>>().join("\u{1}"))
        .collect()
}

fn check(result: &Value, truth: &Truth) {
    assert_eq!(result["totalBoRecords"], truth.bo_rows);
    assert_eq!(result["totalPartnerRecords"], truth.partner_rows);
    assert_eq!(result["totalMatches"], truth.matches);
    assert_eq!(result["totalMismatches"], truth.mismatched_keys);
    assert_eq!(result["totalBoOnly"], truth.bo_only_lines.len() as u64);
    assert_eq!(
        result["totalPartnerOnly"],
        truth.partner_only_lines.len() as u64
    );
    assert_eq!(result["duplicateBoKeys"], truth.duplicate_bo_keys);
    assert_eq!(result["duplicatePartnerKeys"], 0);
    assert_eq!(result["rejectedRows"], truth.rejected.len() as u64);
    let file = |name: &str| result["files"][name].as_str().unwrap().to_owned();
    assert_eq!(lines(&file("matches.csv")).len() as u64, truth.matches);
    let mismatches: BTreeSet<(String, String)> = lines(&file("mismatches.csv"))
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split('\u{1}').collect();
            (f[0].to_owned(), f[1].to_owned())
        })
        .collect();
    assert_eq!(mismatches, truth.mismatches);
    let first_numbers = |name: &str| -> BTreeSet<u64> {
        lines(&file(name))
            .iter()
            .map(|l| l.split('\u{1}').next().unwrap().parse().unwrap())
            .collect()
    };
    assert_eq!(first_numbers("bo_only.csv"), truth.bo_only_lines);
    assert_eq!(first_numbers("partner_only.csv"), truth.partner_only_lines);
    assert_eq!(
        lines(&file("duplicates.csv")).len() as u64,
        truth.duplicate_bo_keys * 3
    );
    let rejected: BTreeSet<(String, u64)> = lines(&file("rejected.csv"))
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split('\u{1}').collect();
            (f[0].to_owned(), f[1].parse().unwrap())
        })
        .collect();
    assert_eq!(rejected, truth.rejected);
    // Labels with accents came through Windows-1252 intact: they matched.
}

/// Runs a job; returns its result and the data directory holding its files.
async fn run(import: &Path, chunk_size: u64) -> (Value, tempfile::TempDir) {
    let (mut config, dir) = common::test_config();
    config.job_progress_interval_ms = 0;
    let server = BrokerBuilder::new(config)
        .job_type("reconcile", Reconcile::new(import, 512 * 1024 * 1024))
        .start()
        .await
        .unwrap();
    let engine = server.jobs().unwrap().clone();
    let mut headers = Headers::new();
    headers.push("job-type", "reconcile");
    let job = engine
        .submit("ann", &headers, params(chunk_size).as_bytes())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let state = engine.job(&job.id).unwrap();
        match state.status {
            JobStatus::Completed => return (state.result.unwrap(), dir),
            JobStatus::Failed => panic!("job failed: {:?}", state.error),
            _ => {}
        }
        assert!(tokio::time::Instant::now() < deadline, "job did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn every_count_and_file_is_exact_in_one_partition() {
    let import = tempfile::tempdir().unwrap();
    let truth = generate(import.path(), 2_000, 7);
    let (result, _files) = run(import.path(), 1_000_000).await;
    check(&result, &truth);
}

#[tokio::test]
async fn partitioned_runs_give_the_same_result() {
    let import = tempfile::tempdir().unwrap();
    let truth = generate(import.path(), 3_000, 11);
    // ~100 rows per chunk: a few dozen partitions.
    let (result, _files) = run(import.path(), 10).await;
    assert!(result["files"].is_object());
    check(&result, &truth);
}

/// The nine counts of a result, a chunk's `counts` or its `runningCounts`.
fn counts(value: &Value) -> Vec<u64> {
    [
        "totalBoRecords",
        "totalPartnerRecords",
        "totalMatches",
        "totalMismatches",
        "totalBoOnly",
        "totalPartnerOnly",
        "duplicateBoKeys",
        "duplicatePartnerKeys",
        "rejectedRows",
    ]
    .iter()
    .map(|name| {
        value[name]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} in {value}"))
    })
    .collect()
}

#[tokio::test]
async fn over_budget_events_carry_running_counts_and_the_file_position() {
    let import = tempfile::tempdir().unwrap();
    let truth = generate(import.path(), 20_000, 31);
    let (mut config, _dir) = common::test_config();
    config.job_progress_interval_ms = 0;
    // 1 MiB: the rows do not fit, they go through partition files.
    let server = BrokerBuilder::new(config)
        .job_type("reconcile", Reconcile::new(import.path(), 1 << 20))
        .start()
        .await
        .unwrap();
    let mut ann = common::Tcp::connect(server.stomp_addr().unwrap(), "ann").await;
    ann.subscribe("p", "/user/queue/progress", "auto").await;
    ann.send(
        Frame::new(Command::Send)
            .header("destination", "/app/jobs")
            .header("job-type", "reconcile")
            .body(params(1_000_000)),
    )
    .await;
    let mut events = Vec::new();
    loop {
        let frame = ann.frame().await;
        let event: Value = serde_json::from_slice(&frame.body).unwrap();
        let kind = event["event"].as_str().unwrap().to_owned();
        events.push(event);
        assert_ne!(kind, "JOB_FAILED", "{:?}", events.last());
        if kind == "JOB_COMPLETED" {
            break;
        }
    }
    let result = events.last().unwrap()["result"].clone();
    check(&result, &truth);

    let of = |kind: &'static str| events.iter().filter(move |e| e["event"] == kind);
    let chunk_count = of("JOB_STARTED").next().unwrap()["chunkCount"]
        .as_u64()
        .unwrap();
    assert!(chunk_count > 3, "partitioned: {chunk_count} chunks");
    let chunks: Vec<&Value> = of("CHUNK_COMPLETED").collect();
    assert_eq!(chunks.len() as u64, chunk_count);
    assert_eq!(chunks[0]["result"]["inMemory"], false);
    let mut sum = vec![0; 9];
    let mut samples = 0;
    for (i, chunk) in chunks.iter().enumerate() {
        assert_eq!(chunk["chunkIndex"], i as u64);
        for (total, n) in sum.iter_mut().zip(counts(&chunk["result"]["counts"])) {
            *total += n;
        }
        assert_eq!(counts(&chunk["result"]["runningCounts"]), sum, "chunk {i}");
        let sample = chunk["result"]["mismatchSample"].as_array().unwrap();
        assert!(sample.len() <= 10);
        for m in sample {
            assert!(truth.mismatches.contains(&(
                m["key"].as_str().unwrap().to_owned(),
                m["column"].as_str().unwrap().to_owned()
            )));
        }
        samples += sample.len();
    }
    assert!(samples > 0);
    assert_eq!(sum, counts(&result));

    // Rows are counted when read and when matched: the total is twice the rows of both files
    // (estimated from their first rows, exact here: the files are small).
    let rows = truth.bo_rows + truth.partner_rows + truth.rejected.len() as u64;
    let progress: Vec<&Value> = of("PROGRESS_UPDATE").collect();
    let mut file = 0;
    for p in &progress {
        let total = p["total"].as_u64().unwrap();
        assert!(
            total.abs_diff(2 * rows) <= rows / 5,
            "{total} for {rows} rows"
        );
        assert!(p["processed"].as_u64().unwrap() <= total);
        assert_eq!(p["totalFiles"], 2, "{p}");
        let current = p["currentFile"].as_u64().unwrap();
        assert!(current >= file, "the file position never goes back");
        file = current;
    }
    let steps: Vec<(&str, u64)> = progress
        .iter()
        .map(|p| {
            (
                p["step"].as_str().unwrap(),
                p["currentFile"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(steps[0], ("reading back-office file", 1));
    assert!(steps.contains(&("matching records", 2)), "{steps:?}");
    assert_eq!(progress.last().unwrap()["percentage"], 100.0);
}

#[tokio::test]
async fn bad_inputs_fail_with_a_reason() {
    let import = tempfile::tempdir().unwrap();
    std::fs::write(import.path().join("empty.csv"), "").unwrap();
    std::fs::write(import.path().join("ok.csv"), "id,amount\n1,2\n").unwrap();
    let (config, _dir) = common::test_config();
    let server = BrokerBuilder::new(config)
        .job_type("reconcile", Reconcile::new(import.path(), 64 << 20))
        .start()
        .await
        .unwrap();
    let engine = server.jobs().unwrap();
    let mut headers = Headers::new();
    headers.push("job-type", "reconcile");
    let submit = |bo: &str, key: &str| {
        json!({"boFile": bo, "partnerFile": "ok.csv", "boKey": key, "partnerKey": "id"}).to_string()
    };
    // Refused at submission: escaping the import directory, a missing file.
    for (bo, reason) in [
        ("../etc/passwd", "relative"),
        ("missing.csv", "missing.csv"),
    ] {
        let error = engine
            .submit("ann", &headers, submit(bo, "id").as_bytes())
            .await
            .unwrap_err();
        assert!(error.reason.contains(reason), "{error}");
    }
    // Failed at once when run: an empty file, a missing key column.
    for (bo, key, code) in [
        ("empty.csv", "id", "empty_file"),
        ("ok.csv", "nope", "missing_column"),
    ] {
        let job = engine
            .submit("ann", &headers, submit(bo, key).as_bytes())
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let state = loop {
            let state = engine.job(&job.id).unwrap();
            if state.status.is_finished() {
                break state;
            }
            assert!(tokio::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(state.status, JobStatus::Failed);
        assert_eq!(state.error.unwrap().code, code);
        assert_eq!(state.attempts, 1, "a permanent error is not retried");
    }
}

#[tokio::test]
async fn sigkill_mid_reconciliation_resumes_and_the_files_are_exact() {
    let data = tempfile::tempdir().unwrap();
    let import = data.path().join("import");
    std::fs::create_dir_all(&import).unwrap();
    let truth = generate(&import, 20_000, 23);
    let server = common::ServerProcess::start(data.path());
    let addr = server.stomp;
    let mut ann = common::Tcp::connect(addr, "ann").await;
    ann.subscribe("p", "/user/queue/progress", "auto").await;
    ann.send(
        Frame::new(Command::Send)
            .header("destination", "/app/jobs")
            .header("job-type", "reconcile")
            .header("receipt", "r")
            .body(params(5)),
    )
    .await;
    let mut job_id = None;
    let mut chunks = 0;
    while chunks < 4 {
        let frame = ann.frame().await;
        if frame.command == Command::Receipt {
            job_id = frame.get("job-id").map(str::to_owned);
        } else if frame.get("event") == Some("CHUNK_COMPLETED") {
            chunks += 1;
        } else if frame.get("event") == Some("JOB_COMPLETED") {
            panic!("the job finished before the kill; make it longer");
        }
    }
    drop(server); // SIGKILL
    let job_id = job_id.unwrap();
    let server = common::ServerProcess::start(data.path());
    let addr = server.stomp;
    let mut page = common::Tcp::connect(addr, "ann").await;
    page.send(
        Frame::new(Command::Subscribe)
            .header("id", "j")
            .header("destination", format!("/topic/jobs/{job_id}"))
            .header("since-seq", "0"),
    )
    .await;
    let result = loop {
        let frame = page.frame().await;
        let body: Value = serde_json::from_slice(&frame.body).unwrap();
        if body["event"] == "JOB_COMPLETED" {
            break body["result"].clone();
        }
        assert_ne!(body["event"], "JOB_FAILED", "{body}");
    };
    drop(server);
    check(&result, &truth);
}
