//! A `stompede serve` process with a small `ocr-memory-budget` reads two scanned PDFs at once,
//! whose pages together would take more than the budget: pages wait for room (`waiting for
//! memory`), the peak resident memory of the server and the tesseract and poppler processes it
//! runs stays within the budget plus a stated allowance above the server's idle size, and both
//! jobs read their pages right. Real tesseract and poppler (scripts/test.sh installs them).
#![allow(clippy::unwrap_used)]

// The memory benches' server, client and `/proc` readings; the test uses part of them.
#[allow(dead_code)]
#[path = "../benches/common/budgeted.rs"]
mod budgeted;
#[path = "common/documents.rs"]
mod documents;

use serde_json::json;

use documents::{accuracy, prose_page, scanned_pdf, PageText};

/// The budget: 128 MiB. A page at 300 dpi reserves about 106 MiB
/// (`src/processors/ocr/budget.rs`): one page fits, two do not, so the two jobs' pages take
/// turns.
const BUDGET_MIB: u64 = 128;

/// What the budget does not cover and the server may take besides: its own pages for the
/// jobs' events, records and part files (a few MiB), pages the allocator has not given back
/// yet, and the sampling's upper bound (each program counted at its own peak).
const ALLOWANCE_MIB: f64 = 24.0;

/// A dense page of prose, different on each page.
fn page(n: usize) -> PageText {
    let lines = [
        "Le titulaire du marché assure le nettoyage quotidien des bureaux et des sanitaires.",
        "The contractor shall provide all labour, materials and equipment for the services.",
        "Les prestations sont réglées par virement à trente jours sur présentation de facture.",
    ];
    let text: Vec<String> = (0..24)
        .map(|i| format!("{} {}", n * 100 + i, lines[(i + n) % lines.len()]))
        .collect();
    prose_page(&text.join("\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_scans_larger_than_the_budget_take_turns_and_stay_within_it() {
    for tool in ["tesseract", "pdftoppm", "pdftotext", "pdfinfo"] {
        assert!(
            std::process::Command::new("which")
                .arg(tool)
                .output()
                .is_ok_and(|o| o.status.success()),
            "{tool} is missing: run scripts/test.sh, which installs tesseract-ocr and poppler-utils"
        );
    }
    let work = tempfile::tempdir().unwrap();
    let import = work.path().join("import");
    std::fs::create_dir_all(&import).unwrap();
    let pages: Vec<PageText> = (1..=2).map(page).collect();
    std::fs::write(import.join("scan.pdf"), scanned_pdf(work.path(), &pages)).unwrap();
    let expected: Vec<String> = pages
        .iter()
        .map(|p| {
            p.iter()
                .map(|(_, _, line)| line.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    let expected = expected.join("\n");

    // Both jobs run at once whatever the machine's cores: only memory holds a page back.
    let config = format!(
        "import-dir = {:?}\nocr-memory-budget = {}\njob-concurrency = 4\n",
        import.display().to_string(),
        BUDGET_MIB << 20
    );
    let run = budgeted::run(&config, "ocr", &json!({"file": "scan.pdf"}), 2).await;

    let above = run.tree_peak_mib - run.idle_mib;
    println!(
        "idle {:.1} MiB; server alone peaked {:.1} MiB above idle; with its programs {above:.1} MiB above idle, for a budget of {BUDGET_MIB} MiB; waited: {}",
        run.idle_mib,
        run.peak_mib - run.idle_mib,
        run.waited
    );
    assert!(run.waited, "both jobs' pages had their memory at once");
    assert!(
        above <= BUDGET_MIB as f64 + ALLOWANCE_MIB,
        "the server and its programs peaked {above:.1} MiB above its idle size, over the {BUDGET_MIB} MiB budget and the {ALLOWANCE_MIB} MiB allowance"
    );
    for result in &run.results {
        assert_eq!(result["pageCount"], 2, "{result}");
        let text = std::fs::read_to_string(result["files"]["text.txt"].as_str().unwrap()).unwrap();
        let score = accuracy(&expected, &text.replace('\u{c}', "\n"));
        assert!(score > 0.97, "accuracy {score}: {text}");
    }
}
