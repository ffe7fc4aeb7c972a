//! A `stompede serve` process with a small `extract-memory-budget` extracts two long documents
//! at once, whose jobs together would take more than the budget: one waits for room
//! (`waiting for memory`), the server's peak resident memory (`VmHWM` in `/proc/<pid>/status`)
//! stays within the budget plus a stated allowance above its idle size, and both results are
//! the same, what one copy of the repeated corpus holds, with every place of every copy.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/corpus_requirements.rs"]
mod corpus_requirements;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{json, Value};
use stompede::protocol::{Command, Frame};

/// The budget: 128 MiB. A job reserves 48 MiB and 96 bytes per byte of its document as
/// stored (`src/processors/extract/budget.rs`): about 100 MiB for the document below, so
/// one fits and two do not.
const BUDGET: u64 = 128 << 20;

/// The document: the requirements corpus repeated to at least this many bytes of text.
const DOCUMENT_BYTES: usize = 560 << 10;

/// What the budget does not cover and the server may take besides: pages the allocator has
/// not given back yet (freed by one thread, kept for it, while the other job's merge takes
/// fresh ones), the events on their way to the client, and the store's page cache growing
/// with the records. A finished job's result no longer stays in memory (it is read back from
/// the store when asked for).
const ALLOWANCE: u64 = 24 << 20;

/// A field of `/proc/<pid>/status`, in bytes.
fn status(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = text.lines().find(|l| l.starts_with(field)).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Every page of the requirements corpus, as form-feed separated pages, over and over until
/// the text has `bytes` bytes; the number of copies and of pages.
fn long_document(bytes: usize) -> (String, usize, usize) {
    let pages: Vec<String> = corpus_requirements::corpus()
        .into_iter()
        .flat_map(|d| d.pages)
        .collect();
    let once: usize = pages.iter().map(|p| p.len() + 1).sum();
    let copies = bytes.div_ceil(once).max(1);
    let all: Vec<&str> = (0..copies)
        .flat_map(|_| pages.iter().map(String::as_str))
        .collect();
    (all.join("\u{c}"), copies, all.len())
}

/// Submits an extraction of `file` and returns its receipt id.
async fn submit(client: &mut common::Tcp, file: &str, receipt: &str) {
    let params = json!({"file": file, "profiles": ["requirements"], "pagesPerChunk": 10});
    client
        .send(
            Frame::new(Command::Send)
                .header("destination", "/app/jobs")
                .header("job-type", "extract")
                .header("receipt", receipt)
                .body(params.to_string()),
        )
        .await;
}

/// Each requirement's text and how many places it is written in.
fn occurrences(result: &Value) -> BTreeMap<String, usize> {
    result["requirements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["text"]["value"].as_str().unwrap().to_owned(),
                r["occurrences"].as_array().unwrap().len(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_long_extractions_larger_than_the_budget_wait_for_room_and_stay_within_it() {
    let data = tempfile::tempdir().unwrap();
    let import = data.path().join("import");
    std::fs::create_dir_all(&import).unwrap();
    let (text, copies, pages) = long_document(DOCUMENT_BYTES);
    std::fs::write(import.join("long.txt"), &text).unwrap();
    let (once, _, _) = long_document(1);
    std::fs::write(import.join("once.txt"), &once).unwrap();
    let config = data.path().join("stompede.toml");
    // Both jobs run at once whatever the machine's cores: only memory holds one back.
    std::fs::write(
        &config,
        format!("extract-memory-budget = {BUDGET}\njob-concurrency = 4\n"),
    )
    .unwrap();
    let config = config.display().to_string();
    let server = common::ServerProcess::start_with(data.path(), &["--config", &config]);
    let pid = server.pid();
    let mut ann = common::Tcp::connect(server.stomp, "ann").await;
    ann.subscribe("p", "/user/queue/progress", "auto").await;
    // Settled: connected, subscribed, its threads started.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = status(pid, "VmRSS:");

    submit(&mut ann, "long.txt", "a").await;
    submit(&mut ann, "long.txt", "b").await;
    let (results, steps) = ann.completed_jobs(2).await;
    let peak = status(pid, "VmHWM:");
    let above = peak.saturating_sub(idle);

    // The corpus once, alone: what each copy holds.
    submit(&mut ann, "once.txt", "c").await;
    let (single, _) = ann.completed_jobs(1).await;
    drop(server);

    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "{} bytes, {copies} copies, {pages} pages: idle {:.1} MiB, peak {:.1} MiB: {:.1} MiB above idle for a budget of {:.0} MiB; steps {steps:?}",
        text.len(),
        mib(idle),
        mib(peak),
        mib(above),
        mib(BUDGET)
    );
    assert!(
        steps.contains("waiting for memory"),
        "both jobs had their memory at once: {steps:?}"
    );
    assert!(
        above <= BUDGET + ALLOWANCE,
        "the server's peak was {:.1} MiB above its idle size, over the {:.0} MiB budget and the {:.0} MiB allowance",
        mib(above),
        mib(BUDGET),
        mib(ALLOWANCE)
    );

    // The same result for both, the one that waited included (but for their files' paths),
    // and as written to its file.
    let without_files = |result: &Value| {
        let mut result = result.clone();
        result.as_object_mut().unwrap().remove("files");
        result
    };
    assert!(
        without_files(&results[0]) == without_files(&results[1]),
        "the two jobs' results differ"
    );
    let result = &results[0];
    assert_eq!(result["pageCount"], pages);
    let mut stored: Value = serde_json::from_slice(
        &std::fs::read(result["files"]["extraction.json"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    stored.as_object_mut().unwrap().remove("files");
    assert!(
        stored == without_files(result),
        "extraction.json is not the result"
    );

    // Every requirement of one copy, once, with the places of every copy.
    let long = occurrences(result);
    let one = occurrences(&single[0]);
    assert!(one.len() > 20, "requirements of one copy: {one:?}");
    assert_eq!(
        long.keys().collect::<BTreeSet<_>>(),
        one.keys().collect::<BTreeSet<_>>(),
        "the requirements found"
    );
    for (text, n) in &one {
        assert_eq!(long[text], copies * n, "places of {text:?}");
    }
}
