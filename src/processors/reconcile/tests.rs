//! The handler driven chunk by chunk, as the engine drives it, with a progress sink that
//! records every report: running counts, file positions, memory and partition files, and
//! chunks run again by a process that lost its memory.

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::jobs::handler::{ProgressReport, ProgressSink};

/// One recorded report: processed, step, file position.
type Report = (u64, String, Option<(u64, u64)>);

#[derive(Default)]
struct Recorder(Mutex<Vec<Report>>);

impl ProgressSink for Recorder {
    fn report(&self, r: ProgressReport<'_>) {
        if let Ok(mut reports) = self.0.lock() {
            reports.push((r.processed, r.step.to_owned(), r.file));
        }
    }
}

/// `n` keys: every 7th only in the back office, every 11th only at the partner, every 13th
/// with a different amount, every 17th twice in the back office; a malformed row on each side.
fn write_files(dir: &Path, n: u64) {
    let mut bo = String::from("id,amount,label\n");
    let mut partner = String::from("id;amount;label\n");
    for i in 0..n {
        let (amount, label) = (i * 7 % 1000, format!("\"row {i}, \"\"quoted\"\"\""));
        if i % 11 != 0 || i % 7 == 0 {
            bo.push_str(&format!("K{i},{amount}.50,{label}\n"));
            if i % 17 == 0 {
                bo.push_str(&format!("K{i},{amount}.50,{label}\n"));
            }
        }
        if i % 7 != 0 || i % 11 == 0 {
            let amount = if i % 13 == 0 { amount + 1 } else { amount };
            partner.push_str(&format!("K{i};{amount},50;{}\n", label.replace(',', ";")));
        }
    }
    bo.push_str("bad,row\n");
    partner.push_str("bad\n");
    std::fs::write(dir.join("bo.csv"), bo).unwrap();
    std::fs::write(dir.join("partner.csv"), partner).unwrap();
}

struct Job {
    input: JobInput,
    plan: Vec<ChunkPlan>,
    _dir: tempfile::TempDir,
}

fn new_job(handler: &Reconcile, chunk_size: u64) -> Job {
    let dir = tempfile::tempdir().unwrap();
    let input = JobInput::new(
        format!("job-{}", dir.path().display()),
        "ann",
        json!({
            "boFile": "bo.csv", "partnerFile": "partner.csv", "boKey": "id", "partnerKey": "id",
            "compare": ["amount"], "chunkSize": chunk_size,
        }),
        dir.path().join("result"),
    );
    handler.validate(&input.params).unwrap();
    let plan = handler.plan(&input).unwrap();
    Job {
        input,
        plan,
        _dir: dir,
    }
}

fn run_chunk(handler: &Reconcile, job: &Job, index: usize, recorder: &Arc<Recorder>) -> Value {
    let ctx = ChunkContext::new(
        job.input.clone(),
        index as u64,
        job.plan.len() as u64,
        job.plan[index].clone(),
        CancellationToken::new(),
        recorder.clone(),
    );
    let p = Params::parse(&job.input.params).unwrap();
    match index {
        0 => handler.read_files(&ctx, &p).unwrap(),
        _ => handler.match_partition(&ctx, &p).unwrap(),
    }
}

/// Every result file's contents, by name.
fn files(result: &Value) -> Vec<(String, String)> {
    result["files"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, path)| {
            let text = std::fs::read_to_string(path.as_str().unwrap()).unwrap();
            (name.clone(), text)
        })
        .collect()
}

fn counts_of(result: &Value) -> Counts {
    serde_json::from_value(result.clone()).unwrap()
}

/// The whole job in one process, chunk after chunk.
fn uninterrupted(import: &Path, budget: u64, chunk_size: u64) -> (Job, Vec<Value>, Value) {
    let handler = Reconcile::new(import, budget);
    let job = new_job(&handler, chunk_size);
    let recorder = Arc::new(Recorder::default());
    let chunks: Vec<Value> = (0..job.plan.len())
        .map(|i| run_chunk(&handler, &job, i, &recorder))
        .collect();
    let result = handler.merge(&job.input, chunks.clone()).unwrap();
    (job, chunks, result)
}

#[test]
fn chunks_carry_running_counts_that_end_at_the_totals() {
    let import = tempfile::tempdir().unwrap();
    write_files(import.path(), 3_000);
    let (job, chunks, result) = uninterrupted(import.path(), 512 << 20, 300);
    assert!(job.plan.len() > 3, "{} chunks", job.plan.len());
    let mut sum = Counts::default();
    for chunk in &chunks {
        sum += serde_json::from_value(chunk["counts"].clone()).unwrap();
        let running: Counts = serde_json::from_value(chunk["runningCounts"].clone()).unwrap();
        assert_eq!(running, sum, "{chunk}");
        assert!(chunk["mismatchSample"].as_array().unwrap().len() <= SAMPLE);
    }
    assert_eq!(sum, counts_of(&result));
    // The ground truth of `write_files`.
    let n = 3_000u64;
    let keys = |f: &dyn Fn(u64) -> bool| (0..n).filter(|i| f(*i)).count() as u64;
    let both = |i: u64| (i % 7 != 0 && i % 11 != 0) || i % 77 == 0;
    assert_eq!(
        sum.total_bo_only,
        keys(&|i| i % 7 == 0 && i % 11 != 0 && i % 17 != 0)
    );
    assert_eq!(sum.total_partner_only, keys(&|i| i % 11 == 0 && i % 7 != 0));
    assert_eq!(
        sum.duplicate_bo_keys,
        keys(&|i| i % 17 == 0 && (i % 11 != 0 || i % 7 == 0))
    );
    assert_eq!(
        sum.total_mismatches,
        keys(&|i| both(i) && i % 13 == 0 && i % 17 != 0)
    );
    assert_eq!(
        sum.total_matches,
        keys(&|i| both(i) && i % 13 != 0 && i % 17 != 0)
    );
    assert_eq!(sum.rejected_rows, 2);
    let mismatches = chunks.iter().filter(|c| {
        c["mismatchSample"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
    });
    let first = mismatches.clone().next().unwrap()["mismatchSample"][0].clone();
    assert_eq!(first["column"], "amount");
    assert_ne!(first["boValue"], first["partnerValue"]);
}

#[test]
fn a_chunk_run_again_gives_the_same_running_counts() {
    let import = tempfile::tempdir().unwrap();
    write_files(import.path(), 2_000);
    let handler = Reconcile::new(import.path(), 512 << 20);
    let job = new_job(&handler, 200);
    let recorder = Arc::new(Recorder::default());
    let mut chunks: Vec<Value> = (0..3)
        .map(|i| run_chunk(&handler, &job, i, &recorder))
        .collect();
    // A crash after chunk 2 wrote its files but before it was committed: it runs again, in
    // a process that has lost its memory.
    let restarted = Reconcile::new(import.path(), 512 << 20);
    assert_eq!(run_chunk(&restarted, &job, 2, &recorder), chunks[2]);
    chunks.extend((3..job.plan.len()).map(|i| run_chunk(&restarted, &job, i, &recorder)));
    let result = restarted.merge(&job.input, chunks).unwrap();
    let (_expected_job, _, expected) = uninterrupted(import.path(), 512 << 20, 200);
    assert_eq!(counts_of(&result), counts_of(&expected));
    assert_eq!(files(&result), files(&expected));
}

#[test]
fn progress_names_the_step_and_the_file() {
    let import = tempfile::tempdir().unwrap();
    write_files(import.path(), 40_000);
    let handler = Reconcile::new(import.path(), 512 << 20);
    let job = new_job(&handler, 10_000);
    let recorder = Arc::new(Recorder::default());
    let read = run_chunk(&handler, &job, 0, &recorder);
    let reading = recorder.0.lock().unwrap().clone();
    let units = job.plan[0].units;
    // Back-office rows first (file 1 of 2) until that file is read, then file 2 of 2.
    assert_eq!(
        reading[0],
        (0, "reading back-office file".into(), Some((1, 2)))
    );
    let last = reading.last().unwrap();
    assert_eq!((last.1.as_str(), last.2), ("files read", Some((2, 2))));
    let files: Vec<u64> = reading.iter().filter_map(|r| r.2.map(|f| f.0)).collect();
    assert!(files.windows(2).all(|w| w[0] <= w[1]), "{files:?}");
    for (processed, step, file) in &reading {
        assert!(*processed <= units);
        let expected = match file.map(|f| f.0) {
            Some(1) => "reading back-office file",
            _ => "reading partner file",
        };
        assert!(
            step == expected || step == "files read",
            "{step} at {file:?}"
        );
    }
    // The estimate from the first rows is close to the truth.
    let rows = read["counts"]["totalBoRecords"].as_u64().unwrap()
        + read["counts"]["totalPartnerRecords"].as_u64().unwrap();
    assert!(units.abs_diff(rows) < rows / 10, "{units} for {rows} rows");
    recorder.0.lock().unwrap().clear();
    run_chunk(&handler, &job, 1, &recorder);
    let matching = recorder.0.lock().unwrap().clone();
    assert!(!matching.is_empty());
    assert!(matching
        .iter()
        .all(|r| r.1 == "matching records" && r.2 == Some((2, 2))));
    assert_eq!(matching.last().unwrap().0, job.plan[1].units);
}

#[test]
fn over_budget_jobs_go_through_partition_files_and_survive_a_restart() {
    let import = tempfile::tempdir().unwrap();
    write_files(import.path(), 20_000);
    let (_expected_job, _, expected) = uninterrupted(import.path(), 512 << 20, 1_000_000);
    // 1 MiB: the rows (about 1.5 MB) do not fit.
    let handler = Reconcile::new(import.path(), 1 << 20);
    let job = new_job(&handler, 1_000_000);
    assert_eq!(job.plan[0].params["inMemory"], false);
    assert!(job.plan.len() > 2, "several partitions: {}", job.plan.len());
    let recorder = Arc::new(Recorder::default());
    let mut chunks = vec![run_chunk(&handler, &job, 0, &recorder)];
    assert_eq!(chunks[0]["inMemory"], false);
    let work = work_dir(&job.input);
    assert!(Side::Partner.part_file(&work, 0).exists());
    // Another process goes on from the partition files; one of them is damaged and is
    // rebuilt from the input file.
    let restarted = Reconcile::new(import.path(), 1 << 20);
    let damaged = Side::BackOffice.part_file(&work, 1);
    let length = std::fs::metadata(&damaged).unwrap().len();
    File::options()
        .write(true)
        .open(&damaged)
        .unwrap()
        .set_len(length / 2)
        .unwrap();
    chunks.extend((1..job.plan.len()).map(|i| run_chunk(&restarted, &job, i, &recorder)));
    let result = restarted.merge(&job.input, chunks).unwrap();
    // Exactly the files of an uninterrupted run cut the same way...
    let (_same_cut_job, _, same_cut) = uninterrupted(import.path(), 1 << 20, 1_000_000);
    assert_eq!(files(&result), files(&same_cut));
    // ...and the same rows as the run held in memory, in another order.
    assert_eq!(counts_of(&result), counts_of(&expected));
    let sorted = |result: &Value| -> Vec<(String, Vec<String>)> {
        files(result)
            .into_iter()
            .map(|(name, text)| {
                let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
                lines.sort();
                (name, lines)
            })
            .collect()
    };
    assert_eq!(sorted(&result), sorted(&expected));

    // Planned in memory, but the budget runs out while reading: the rest goes to files.
    let handler = Reconcile::new(import.path(), 1 << 20);
    let mut job = new_job(&handler, 1_000_000);
    job.plan[0].params["inMemory"] = json!(true);
    let mut chunks = vec![run_chunk(&handler, &job, 0, &recorder)];
    assert_eq!(chunks[0]["inMemory"], false);
    chunks.extend((1..job.plan.len()).map(|i| run_chunk(&handler, &job, i, &recorder)));
    let result = handler.merge(&job.input, chunks).unwrap();
    assert_eq!(files(&result), files(&same_cut));
}
