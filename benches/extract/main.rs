//! Extraction throughput and memory: a long PDF with a text layer (the pages of the tests'
//! `dce` and `requirements` corpora, over and over, set as the PDF writer of the tests sets
//! them) read by the `extract` job type of a real `stompede serve` process (the release binary,
//! with its own allocator) that a STOMP client over TCP submits the job to, with the `dce` and
//! `requirements` profiles, from submission to `JOB_COMPLETED`; next to `pdftotext -layout`
//! alone on the same file (the floor: reading the text layer). Prints pages per second and the
//! server's memory: its resident size when idle (`VmRSS` just before the submission), its peak
//! (`VmHWM` once the jobs completed) and the difference, which must stay within the server's
//! `extract-memory-budget`: the line says `FAIL` when it does not.
//!
//! `cargo bench --bench extract -- [--pages N] [--runs R] [--pages-per-chunk C] [--jobs K]
//! [--budget-mib M]` (defaults 1000, 1, 10, 1, and the server's default budget). `--jobs 2`
//! submits two jobs on the same file at once (they share the one budget); each run starts a
//! fresh server. `--budget-mib 0` writes no budget into the config (for a build that has no
//! such key) and checks against nothing. `STOMPEDE_BIN=path` runs that binary instead of
//! this build's. Needs poppler-utils, as `scripts/test.sh` installs them.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command as Process;
use std::time::Instant;

use serde_json::{json, Value};

#[path = "../common/args.rs"]
mod args;
#[path = "../common/budgeted.rs"]
mod budgeted;
#[path = "../../tests/common/corpus_dce.rs"]
mod corpus_dce;
#[path = "../../tests/common/corpus_requirements.rs"]
mod corpus_requirements;
#[path = "../../tests/common/documents.rs"]
mod documents;

use budgeted::{load_average, Run};
use documents::{pdf, PdfPage};

/// The server's default `extract-memory-budget`, in MiB (`Config::default()`).
const DEFAULT_BUDGET_MIB: usize = (stompede::Config::DEFAULT_EXTRACT_MEMORY_BUDGET >> 20) as usize;

/// Helvetica's WinAnsi code for the few characters outside Latin-1 the corpora use.
fn winansi(c: char) -> char {
    match c {
        '€' => '\u{80}',
        '’' => '\u{92}',
        'œ' => '\u{9c}',
        '–' => '\u{96}',
        '—' => '\u{97}',
        c if u32::from(c) > 0xFF => '?',
        other => other,
    }
}

/// Every corpus page, as the PDF writer takes it (at most 36 lines, columns kept).
fn corpus_pages() -> Vec<Vec<(u32, u32, String)>> {
    let texts = corpus_dce::corpus()
        .into_iter()
        .flat_map(|d| d.pages)
        .chain(
            corpus_requirements::corpus()
                .into_iter()
                .flat_map(|d| d.pages),
        );
    texts
        .map(|text| {
            text.lines()
                .take(36)
                .enumerate()
                .map(|(i, line)| {
                    let line: String = line.chars().map(winansi).collect();
                    let indent = line.len() - line.trim_start().len();
                    (
                        72 + 6 * indent as u32,
                        750 - 20 * i as u32,
                        line.trim().to_owned(),
                    )
                })
                .filter(|(_, _, l)| !l.is_empty())
                .collect()
        })
        .collect()
}

/// The first 16 hex digits of the SHA-256 of a result without its file paths: the same
/// digest, the same extraction.
fn digest(result: &Value) -> String {
    use sha2::{Digest, Sha256};
    let mut result = result.clone();
    if let Some(map) = result.as_object_mut() {
        map.remove("files");
    }
    let hash = Sha256::digest(serde_json::to_vec(&result).unwrap());
    hash.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// Starts a server, submits `jobs` extraction jobs at once and waits for them all.
async fn run(import: &Path, budget: u64, jobs: usize, per_chunk: usize) -> Run {
    let mut config = format!("import-dir = {:?}\n", import.display().to_string());
    if budget > 0 {
        config.push_str(&format!("extract-memory-budget = {budget}\n"));
    }
    let params = json!({
        "file": "tender.pdf",
        "profiles": ["dce", "requirements"],
        "pagesPerChunk": per_chunk,
    });
    budgeted::run(&config, "extract", &params, jobs).await
}

fn main() {
    let pages = args::number("--pages", 1000);
    let runs = args::number("--runs", 1).max(1);
    let per_chunk = args::number("--pages-per-chunk", 10);
    let jobs = args::number("--jobs", 1).max(1);
    let budget_mib = args::number("--budget-mib", DEFAULT_BUDGET_MIB) as u64;
    let budget = budget_mib << 20;
    let work = tempfile::tempdir().unwrap();
    let corpus = corpus_pages();
    let doc: Vec<PdfPage> = (0..pages)
        .map(|i| PdfPage::Text(corpus[i % corpus.len()].clone()))
        .collect();
    let file = work.path().join("tender.pdf");
    std::fs::write(&file, pdf(&doc)).unwrap();
    drop(doc);
    println!(
        "| input | {pages} pages of text-layer PDF ({} KiB), {per_chunk} pages a chunk, {jobs} job(s) at once |",
        std::fs::metadata(&file).unwrap().len() / 1024
    );

    let mut floor = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let out = Process::new("pdftotext")
            .args(["-layout", "-enc", "UTF-8"])
            .arg(&file)
            .arg(work.path().join("floor.txt"))
            .output()
            .unwrap();
        assert!(out.status.success());
        floor.push(pages as f64 / started.elapsed().as_secs_f64());
    }
    let floor = median(floor);
    println!("| `pdftotext -layout` alone (median of 3) | {floor:.0} pages/s |");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut failed = false;
    for n in 1..=runs {
        let load = load_average();
        let r = runtime.block_on(run(work.path(), budget, jobs, per_chunk));
        let result = &r.results[0];
        assert_eq!(result["pageCount"], pages);
        let digest = digest(result);
        for other in &r.results[1..] {
            assert_eq!(self::digest(other), digest, "the same file");
        }
        let requirements = result["requirements"].as_array().map_or(0, Vec::len);
        let lots = result["dce"]["lots"].as_array().map_or(0, Vec::len);
        let above = r.peak_mib - r.idle_mib;
        let over = budget_mib > 0 && above > budget_mib as f64;
        failed |= over;
        let rate = (jobs * pages) as f64 / r.wall;
        println!(
            "| run {n}: extract, submit to JOB_COMPLETED | {:.2} s, {rate:.0} pages/s; {requirements} requirements, {lots} lots, result {digest}; load {load} |",
            r.wall
        );
        println!(
            "| run {n}: server RSS, budget {} | idle {:.0} MiB, peak (VmHWM) {:.0} MiB: {above:.0} MiB above idle, {:.1} KiB a page{}{} |",
            if budget_mib > 0 { format!("{budget_mib} MiB") } else { "none set".to_owned() },
            r.idle_mib,
            r.peak_mib,
            above * 1024.0 / (jobs * pages) as f64,
            if budget_mib == 0 {
                ""
            } else if over {
                ", FAIL: over the budget"
            } else {
                ", within the budget"
            },
            if r.waited { "; a job waited for memory" } else { "" }
        );
        println!(
            "{}",
            json!({
                "bench": "extract",
                "pages": pages,
                "jobs": jobs,
                "run": n,
                "seconds": (r.wall * 1000.0).round() / 1000.0,
                "extract_pages_per_s": rate.round(),
                "pdftotext_pages_per_s": floor.round(),
                "requirements_found": requirements,
                "lots_found": lots,
                "result_sha256": digest,
                "idle_rss_mib": r.idle_mib.round(),
                "peak_rss_mib": r.peak_mib.round(),
                "above_idle_mib": above.round(),
                "budget_mib": budget_mib,
                "within_budget": !over,
                "load": load,
            })
        );
    }
    if failed {
        println!("FAIL: the server's peak RSS passed its extract-memory-budget");
        std::process::exit(1);
    }
}
