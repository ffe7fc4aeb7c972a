//! Extraction throughput: a long PDF with a text layer (the pages of the tests' `dce` and
//! `requirements` corpora, over and over, set as the PDF writer of the tests sets them) read by
//! the `extract` job type in process with the `dce` and `requirements` profiles, from
//! submission to the job's end; next to `pdftotext -layout` alone on the same file (the floor:
//! reading the text layer). Prints pages per second, median of the runs.
//!
//! `cargo bench --bench extract -- [--pages N] [--runs R] [--pages-per-chunk C]`
//! (defaults 1000, 3, 10). Needs poppler-utils, as `scripts/test.sh` installs them.
#![allow(clippy::unwrap_used)]

use std::process::Command as Process;
use std::time::{Duration, Instant};

use serde_json::json;
use stompede::jobs::JobStatus;
use stompede::processors::Extract;
use stompede::protocol::Headers;
use stompede::{BrokerBuilder, Config};

#[path = "../common/args.rs"]
mod args;
#[path = "../../tests/common/corpus_dce.rs"]
mod corpus_dce;
#[path = "../../tests/common/corpus_requirements.rs"]
mod corpus_requirements;
#[path = "../../tests/common/documents.rs"]
mod documents;

use documents::{pdf, PdfPage};

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

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

fn main() {
    let pages = args::number("--pages", 1000);
    let runs = args::number("--runs", 3);
    let per_chunk = args::number("--pages-per-chunk", 10);
    let work = tempfile::tempdir().unwrap();
    let corpus = corpus_pages();
    let doc: Vec<PdfPage> = (0..pages)
        .map(|i| PdfPage::Text(corpus[i % corpus.len()].clone()))
        .collect();
    let file = work.path().join("tender.pdf");
    std::fs::write(&file, pdf(&doc)).unwrap();
    println!(
        "{pages} pages of text-layer PDF ({} KiB), {runs} runs, {per_chunk} pages per chunk",
        std::fs::metadata(&file).unwrap().len() / 1024
    );

    let mut floor = Vec::new();
    for _ in 0..runs {
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

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let extracted = runtime.block_on(async {
        let data = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: data.path().to_owned(),
            stomp: None,
            http: None,
            import_dir: Some(work.path().to_owned()),
            ..Config::default()
        };
        let server = BrokerBuilder::new(config)
            .job_type("extract", Extract::new(work.path()))
            .start()
            .await
            .unwrap();
        let engine = server.jobs().unwrap();
        let mut rates = Vec::new();
        let mut found = (0, 0);
        for _ in 0..runs {
            let mut headers = Headers::new();
            headers.push("job-type", "extract");
            let params = json!({
                "file": "tender.pdf",
                "profiles": ["dce", "requirements"],
                "pagesPerChunk": per_chunk,
            });
            let started = Instant::now();
            let id = engine
                .submit("bench", &headers, params.to_string().as_bytes())
                .await
                .unwrap()
                .id;
            let job = loop {
                let job = engine.job(&id).unwrap();
                if job.status.is_finished() {
                    break job;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            };
            let elapsed = started.elapsed().as_secs_f64();
            assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
            let result = job.result.unwrap();
            assert_eq!(result["pageCount"], pages);
            found = (
                result["requirements"].as_array().map_or(0, Vec::len),
                result["dce"]["lots"].as_array().map_or(0, Vec::len),
            );
            rates.push(pages as f64 / elapsed);
        }
        server.shutdown().await;
        (rates, found)
    });
    let (rates, (requirements, lots)) = extracted;
    println!(
        "{}",
        json!({
            "pages": pages,
            "extract_pages_per_s": median(rates.clone()).round(),
            "runs": rates.iter().map(|r| r.round()).collect::<Vec<_>>(),
            "pdftotext_pages_per_s": median(floor).round(),
            "requirements_found": requirements,
            "lots_found": lots,
        })
    );
}
