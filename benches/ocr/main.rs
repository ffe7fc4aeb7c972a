//! OCR throughput: a dense scanned PDF (N pages at 300 dpi, made here) read by the `ocr` job
//! type in process, rasterising included, next to plain `tesseract` on the same pages already
//! rasterised, one after another, with its default threading and with `OMP_THREAD_LIMIT=1`.
//! Prints pages per minute and the character accuracy of each against the known text.
//!
//! `cargo bench --bench ocr -- [--pages N] [--degraded]` (default 20). With `--degraded`, the
//! scans are degraded as a tired scanner makes them (rotated by up to 2 degrees, blurred, noisy,
//! a JPEG of quality 50). Needs tesseract (fra, eng) and poppler-utils, as `scripts/test.sh`
//! installs them.
//!
//! `--memory [--jobs K] [--budget-mib M] [--runs R]` measures memory instead: a real
//! `stompede serve` process (the release binary; `STOMPEDE_BIN=path` for another) is given K
//! jobs on the scan at once over STOMP/TCP (default 2) with `ocr-memory-budget = M` (default the
//! server's), and the line says `FAIL` when the peak of the server with its tesseract and
//! poppler processes, above the server's idle size, passes the budget. That peak is sampled
//! every 10 ms: the server's resident size plus each running program's own peak so far.
#![allow(clippy::unwrap_used)]

use std::process::Command as Process;
use std::time::{Duration, Instant};

use serde_json::json;
use stompede::jobs::JobStatus;
use stompede::processors::Ocr;
use stompede::protocol::Headers;
use stompede::{BrokerBuilder, Config};

#[path = "../common/args.rs"]
mod args;
#[path = "../common/budgeted.rs"]
mod budgeted;
mod degrade;
#[path = "../../tests/common/documents.rs"]
mod documents;

use documents::{accuracy, pdf, prose_page, rasterise, scanned_pdf, PageText, PdfPage};

/// How far each degraded page is turned, in degrees, in turn.
const SKEWS: [f64; 5] = [1.5, -1.0, 2.0, -1.8, 0.7];

/// A dense page: 34 lines of prose, French and English, different on every page.
fn page_text(n: usize) -> String {
    const LINES: [&str; 6] = [
        "Le titulaire du marché assure le nettoyage quotidien des bureaux et des sanitaires,",
        "la vitrerie trimestrielle et l'entretien des sols selon le cahier des charges joint.",
        "Les prestations sont réglées par virement à trente jours sur présentation de facture.",
        "The contractor shall provide all labour, materials and equipment for the services,",
        "and shall keep a written record of every visit, signed by the site representative.",
        "Montant estimé du lot : 125 430,50 euros hors taxes, révisable chaque année.",
    ];
    (0..34)
        .map(|i| format!("{} {}", i + 1 + n * 100, LINES[(i + n) % LINES.len()]))
        .collect::<Vec<_>>()
        .join("\n")
}

fn tesseract_pass(images: &[std::path::PathBuf], threads: Option<&str>) -> (f64, String) {
    let started = Instant::now();
    let mut text = String::new();
    for image in images {
        let mut command = Process::new("tesseract");
        command
            .arg(image)
            .arg("-")
            .args(["-l", "fra+eng", "--dpi", "300"]);
        if let Some(limit) = threads {
            command.env("OMP_THREAD_LIMIT", limit);
        }
        let out = command.output().unwrap();
        assert!(out.status.success());
        text.push_str(&String::from_utf8_lossy(&out.stdout));
        text.push('\n');
    }
    (started.elapsed().as_secs_f64(), text)
}

fn main() {
    let pages = args::number("--pages", 20);
    let work = tempfile::tempdir().unwrap();
    let import = work.path().join("import");
    std::fs::create_dir_all(&import).unwrap();
    let texts: Vec<String> = (0..pages).map(page_text).collect();
    let layout: Vec<PageText> = texts.iter().map(|t| prose_page(t)).collect();
    let degraded = args::flag("--degraded");
    eprintln!(
        "making a {pages}-page {}scanned PDF at 300 dpi...",
        if degraded { "degraded " } else { "" }
    );
    // The same pages as image files, for plain tesseract (its rasterising is not counted).
    let (scan, images) = if degraded {
        let source = work.path().join("source.pdf");
        let text: Vec<PdfPage> = layout.iter().cloned().map(PdfPage::Text).collect();
        std::fs::write(&source, pdf(&text)).unwrap();
        let mut scans = Vec::new();
        let mut images = Vec::new();
        for n in 1..=pages {
            let clean = degrade::rasterise(work.path(), &source, n);
            let page = degrade::degrade(&clean, SKEWS[n % SKEWS.len()], n as u64);
            let jpeg = degrade::jpeg(&page, 50);
            let path = work.path().join(format!("page-{n}.jpg"));
            std::fs::write(&path, &jpeg).unwrap();
            images.push(path);
            scans.push(PdfPage::Scan {
                jpeg,
                width: u32::try_from(page.width).unwrap(),
                height: u32::try_from(page.height).unwrap(),
            });
        }
        (pdf(&scans), images)
    } else {
        let scan = scanned_pdf(work.path(), &layout);
        let images = (1..=pages)
            .map(|n| {
                let path = work.path().join(format!("page-{n}.png"));
                std::fs::write(&path, rasterise(work.path(), &scan, n, "png")).unwrap();
                path
            })
            .collect();
        (scan, images)
    };
    std::fs::write(import.join("scan.pdf"), &scan).unwrap();
    let expected = texts.join("\n");
    if args::flag("--memory") {
        memory(&import, pages, &expected);
        return;
    }

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (stompede_s, stompede_text) = runtime.block_on(async {
        let config = Config {
            data_dir: work.path().join("data"),
            stomp: None,
            http: None,
            ..Config::default()
        };
        let server = BrokerBuilder::new(config)
            .job_type("ocr", Ocr::new(&import, "tesseract").await)
            .start()
            .await
            .unwrap();
        let engine = server.jobs().unwrap().clone();
        let mut headers = Headers::new();
        headers.push("job-type", "ocr");
        let started = Instant::now();
        let job = engine
            .submit(
                "bench",
                &headers,
                json!({"file": "scan.pdf"}).to_string().as_bytes(),
            )
            .await
            .unwrap();
        let result = loop {
            let state = engine.job(&job.id).unwrap();
            match state.status {
                JobStatus::Completed => break state.result.unwrap(),
                JobStatus::Failed => panic!("{:?}", state.error),
                _ => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        };
        let seconds = started.elapsed().as_secs_f64();
        let text = std::fs::read_to_string(result["files"]["text.txt"].as_str().unwrap()).unwrap();
        server.shutdown().await;
        (seconds, text.replace('\u{c}', "\n"))
    });
    let (default_s, default_text) = tesseract_pass(&images, None);
    let (single_s, single_text) = tesseract_pass(&images, Some("1"));

    let per_minute = |s: f64| pages as f64 / s * 60.0;
    println!("| reader | seconds | pages/min | character accuracy |");
    println!("| --- | --- | --- | --- |");
    for (name, seconds, text) in [
        (
            "stompede `ocr` job (rasterising included)",
            stompede_s,
            &stompede_text,
        ),
        ("tesseract, default threading", default_s, &default_text),
        ("tesseract, OMP_THREAD_LIMIT=1", single_s, &single_text),
    ] {
        println!(
            "| {name} | {seconds:.1} | {:.1} | {:.2}% |",
            per_minute(seconds),
            accuracy(&expected, text) * 100.0
        );
    }
    println!(
        "{{\"bench\":\"ocr\",\"degraded\":{degraded},\"pages\":{pages},\"stompede_ppm\":{:.1},\"tesseract_default_ppm\":{:.1},\"tesseract_single_ppm\":{:.1},\"ratio_to_single\":{:.2}}}",
        per_minute(stompede_s),
        per_minute(default_s),
        per_minute(single_s),
        single_s / stompede_s
    );
}

/// The server's default `ocr-memory-budget`, in MiB (`Config::default()`).
const DEFAULT_BUDGET_MIB: usize = (Config::DEFAULT_OCR_MEMORY_BUDGET >> 20) as usize;

/// `--memory`: K jobs at once on the scan in `import`, on a real server with a budget; exits 1
/// when a run's peak (server and programs) above idle passes the budget.
fn memory(import: &std::path::Path, pages: usize, expected: &str) {
    let jobs = args::number("--jobs", 2).max(1);
    let runs = args::number("--runs", 1).max(1);
    let budget_mib = args::number("--budget-mib", DEFAULT_BUDGET_MIB) as u64;
    let config = format!(
        "import-dir = {:?}\nocr-memory-budget = {}\njob-concurrency = {}\n",
        import.display().to_string(),
        budget_mib << 20,
        jobs.max(2)
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut failed = false;
    for n in 1..=runs {
        let load = budgeted::load_average();
        let r = runtime.block_on(budgeted::run(
            &config,
            "ocr",
            &json!({"file": "scan.pdf"}),
            jobs,
        ));
        let mut worst: f64 = 100.0;
        for result in &r.results {
            let text =
                std::fs::read_to_string(result["files"]["text.txt"].as_str().unwrap()).unwrap();
            worst = worst.min(accuracy(expected, &text.replace('\u{c}', "\n")) * 100.0);
        }
        let server = r.peak_mib - r.idle_mib;
        let tree = r.tree_peak_mib - r.idle_mib;
        let over = tree > budget_mib as f64;
        failed |= over;
        println!(
            "| run {n}: {jobs} ocr job(s) of {pages} pages at once, budget {budget_mib} MiB | {:.1} s, {:.1} pages/min, accuracy {worst:.2}% at worst; idle {:.0} MiB; server alone {server:.0} MiB above idle; with its programs {tree:.0} MiB above idle{}{}; load {load} |",
            r.wall,
            (jobs * pages) as f64 / r.wall * 60.0,
            r.idle_mib,
            if over { ", FAIL: over the budget" } else { ", within the budget" },
            if r.waited { "; a page waited for memory" } else { "" },
        );
        println!(
            "{}",
            json!({
                "bench": "ocr-memory",
                "pages": pages,
                "jobs": jobs,
                "run": n,
                "seconds": (r.wall * 1000.0).round() / 1000.0,
                "idle_rss_mib": r.idle_mib.round(),
                "server_above_idle_mib": server.round(),
                "tree_above_idle_mib": tree.round(),
                "budget_mib": budget_mib,
                "within_budget": !over,
                "waited": r.waited,
                "load": load,
            })
        );
    }
    if failed {
        println!("FAIL: the peak of the server and its OCR programs passed its ocr-memory-budget");
        std::process::exit(1);
    }
}
