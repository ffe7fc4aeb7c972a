//! The `ocr` job type on documents the tests make themselves: text set in a PDF with a text
//! layer, the same pages rasterised by poppler into a 300 dpi scanned PDF and into images, and
//! bad inputs. Real tesseract and poppler (scripts/test.sh installs them).
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/documents.rs"]
mod documents;

use std::process::Command as Process;
use std::time::Duration;

use serde_json::{json, Value};
use stompede::jobs::{JobEngine, JobStatus};
use stompede::processors::Ocr;
use stompede::protocol::{Command, Frame, Headers};
use stompede::{BrokerBuilder, Server};

use documents::{accuracy, pdf, prose_page, rasterise, scanned_pdf, words, PageText, PdfPage};

/// Prose in French and English, accents included.
const PROSE: &str = "Le marché public porte sur le nettoyage des locaux de la mairie.\n\
    Les offres sont à déposer avant le 15 mars à midi, délai de rigueur.\n\
    The quick brown fox jumps over the lazy dog near the river bank.\n\
    Société Générale, 29 boulevard Haussmann, 75009 Paris.";
/// A table: each row must come out on one line, cells in order.
const TABLE: [[&str; 3]; 5] = [
    ["Lot", "Désignation", "Montant HT"],
    ["1", "Nettoyage des locaux", "12 500,00"],
    ["2", "Maintenance électrique", "8 430,50"],
    ["3", "Espaces verts", "4 210,00"],
    ["4", "Sécurité incendie", "15 000,00"],
];

fn require_tools() {
    for tool in ["tesseract", "pdftoppm", "pdftotext", "pdfinfo", "qpdf"] {
        let found = Process::new(tool).arg("-v").output().is_ok();
        assert!(
            found,
            "{tool} is missing: run scripts/test.sh, which installs tesseract-ocr, \
             tesseract-ocr-fra, tesseract-ocr-eng, poppler-utils and qpdf"
        );
    }
}

fn table_page() -> PageText {
    let mut runs = Vec::new();
    for (i, row) in TABLE.iter().enumerate() {
        for (x, cell) in [72, 150, 400].into_iter().zip(row) {
            runs.push((x, 700 - 24 * i as u32, (*cell).to_owned()));
        }
    }
    runs
}

struct OcrServer {
    server: Server,
    import: tempfile::TempDir,
    _dir: tempfile::TempDir,
}

impl OcrServer {
    async fn start() -> OcrServer {
        Self::with_tesseract("tesseract").await
    }

    async fn with_tesseract(tesseract: &str) -> OcrServer {
        require_tools();
        let import = tempfile::tempdir().unwrap();
        let (mut config, dir) = common::test_config();
        config.job_progress_interval_ms = 0;
        config.import_dir = Some(import.path().to_owned());
        let server = BrokerBuilder::new(config)
            .job_type("ocr", Ocr::new(import.path(), tesseract).await)
            .start()
            .await
            .unwrap();
        OcrServer {
            server,
            import,
            _dir: dir,
        }
    }

    fn engine(&self) -> &JobEngine {
        self.server.jobs().unwrap()
    }

    fn put(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.import.path().join(name), bytes).unwrap();
    }

    /// Submits an OCR job; returns its id.
    async fn submit(&self, params: Value) -> String {
        let mut headers = Headers::new();
        headers.push("job-type", "ocr");
        let job = self
            .engine()
            .submit("ann", &headers, params.to_string().as_bytes())
            .await
            .unwrap();
        job.id
    }

    /// Waits for the job to end; returns its final state.
    async fn finished(&self, id: &str) -> stompede::jobs::Job {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let job = self.engine().job(id).unwrap();
            if job.status.is_finished() {
                return job;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "OCR job did not finish"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn completed(&self, params: Value) -> Value {
        let id = self.submit(params).await;
        let job = self.finished(&id).await;
        assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
        job.result.unwrap()
    }

    async fn failed(&self, params: Value) -> String {
        let id = self.submit(params).await;
        let job = self.finished(&id).await;
        assert_eq!(job.status, JobStatus::Failed, "{:?}", job.result);
        job.error.unwrap().code
    }
}

fn file(result: &Value, name: &str) -> String {
    std::fs::read_to_string(result["files"][name].as_str().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scanned_pdf_is_read_page_by_page_in_chunks_with_its_events() {
    let s = OcrServer::start().await;
    let work = tempfile::tempdir().unwrap();
    let pages = [
        prose_page(PROSE),
        table_page(),
        prose_page("Page trois : fin du document.\nThird page, the end."),
    ];
    s.put("scan.pdf", &scanned_pdf(work.path(), &pages));
    let mut ann = common::Tcp::connect(s.server.stomp_addr().unwrap(), "ann").await;
    ann.subscribe("p", "/user/queue/progress", "auto").await;
    ann.send(
        Frame::new(Command::Send)
            .header("destination", "/app/jobs")
            .header("job-type", "ocr")
            .body(json!({"file": "scan.pdf", "pagesPerChunk": 2}).to_string()),
    )
    .await;
    let mut events = Vec::new();
    let result = loop {
        let frame = ann.frame().await;
        let event: Value = serde_json::from_slice(&frame.body).unwrap();
        assert_ne!(event["event"], "JOB_FAILED", "{event}");
        events.push(event.clone());
        if event["event"] == "JOB_COMPLETED" {
            break event["result"].clone();
        }
    };
    let chunks: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "CHUNK_COMPLETED")
        .collect();
    assert_eq!(chunks.len(), 2, "3 pages, 2 per chunk");
    let pages_in = |chunk: &Value| -> Vec<u64> {
        chunk["result"]["pages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["page"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(pages_in(chunks[0]), [1, 2]);
    assert_eq!(pages_in(chunks[1]), [3]);
    let first = &chunks[0]["result"]["pages"][0];
    assert_eq!(first["source"], "ocr");
    assert!(
        first["confidence"].as_f64().is_some_and(|c| c > 80.0),
        "{first}"
    );
    let prose = accuracy(PROSE, first["text"].as_str().unwrap());
    assert!(prose >= 0.99, "prose accuracy {prose}: {}", first["text"]);

    assert_eq!(result["pageCount"], 3);
    let text = file(&result, "text.txt");
    assert_eq!(
        text.matches('\u{c}').count(),
        2,
        "a form feed between pages"
    );
    // The table's rows stay together, cells in order.
    let table_text = text.split('\u{c}').nth(1).unwrap();
    for row in TABLE {
        let line = table_text
            .lines()
            .find(|l| l.contains(row[1]))
            .unwrap_or_else(|| panic!("no line with {:?} in {table_text:?}", row[1]));
        assert_eq!(words(line), row.join(" "), "row kept together");
    }
    let pages_json: Value = serde_json::from_str(&file(&result, "pages.json")).unwrap();
    let words_of_page_1 = pages_json[0]["words"].as_array().unwrap();
    assert!(words_of_page_1.len() > 30);
    assert_eq!(words_of_page_1[0]["text"], "Le");
    assert_eq!(words_of_page_1[0]["bbox"].as_array().unwrap().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_layers_are_read_directly_and_mixed_pdfs_page_by_page() {
    let s = OcrServer::start().await;
    let work = tempfile::tempdir().unwrap();
    let layered = pdf(&[PdfPage::Text(prose_page(PROSE))]);
    s.put("layer.pdf", &layered);
    let result = s.completed(json!({"file": "layer.pdf"})).await;
    assert_eq!(result["pages"][0]["source"], "textLayer");
    assert_eq!(result["pages"][0]["confidence"], Value::Null);
    assert_eq!(words(&file(&result, "text.txt")), words(PROSE));

    // Page 1 with a text layer, page 2 a scan.
    let scan = rasterise(work.path(), &pdf(&[PdfPage::Text(table_page())]), 1, "jpeg");
    let mixed = pdf(&[
        PdfPage::Text(prose_page(PROSE)),
        PdfPage::Scan {
            jpeg: scan,
            width: 2550,
            height: 3300,
        },
    ]);
    s.put("mixed.pdf", &mixed);
    let result = s
        .completed(json!({"file": "mixed.pdf", "pagesPerChunk": 1, "outputs": ["text", "pdf"]}))
        .await;
    let sources: Vec<&str> = result["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["textLayer", "ocr"]);
    let text = file(&result, "text.txt");
    assert!(text.contains("Nettoyage des locaux"), "{text}");
    assert!(result["files"].get("pages.json").is_none(), "not asked for");
    // The searchable PDF: page 1 as it was, page 2 the scan with an invisible text layer.
    let searchable = result["files"]["searchable.pdf"].as_str().unwrap();
    let layer = Process::new("pdftotext")
        .args(["-layout", searchable, "-"])
        .output()
        .unwrap();
    let layer = String::from_utf8_lossy(&layer.stdout);
    assert!(layer.contains("Le marché public"), "{layer}");
    assert!(layer.contains("Nettoyage des locaux"), "{layer}");
    let info = Process::new("pdfinfo").arg(searchable).output().unwrap();
    assert!(String::from_utf8_lossy(&info.stdout).contains("Pages:           2"));
    // A page selection.
    let result = s
        .completed(json!({"file": "mixed.pdf", "pages": "2"}))
        .await;
    assert_eq!(result["pageCount"], 1);
    assert_eq!(result["pages"][0]["page"], 2);

    // A picture of each page, to read the text beside (its owner only; pages from 1).
    let id = s.submit(json!({"file": "mixed.pdf"})).await;
    s.finished(&id).await;
    let base = format!(
        "http://{}/api/jobs/{id}/pages",
        s.server.http_addr().unwrap()
    );
    let get = |user: &str, page: &str| {
        let out = Process::new("curl")
            .args([
                "-sS",
                "-u",
                &format!("{user}:x"),
                "-w",
                "\n%{http_code} %{content_type}",
            ])
            .arg(format!("{base}/{page}"))
            .output()
            .unwrap();
        out.stdout
    };
    let picture = get("ann", "2");
    assert!(
        picture.starts_with(b"\x89PNG\r\n\x1a\n"),
        "a PNG: {}",
        String::from_utf8_lossy(&picture[..picture.len().min(300)])
    );
    assert!(String::from_utf8_lossy(&picture).ends_with("200 image/png"));
    for (user, page, status) in [
        ("ann", "3", "404"),
        ("ann", "0", "400"),
        ("bob", "1", "404"),
    ] {
        let answer = String::from_utf8_lossy(&get(user, page)).into_owned();
        assert!(
            answer.contains(&format!("\n{status} application/problem+json")),
            "{answer}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_recognised_and_one_without_a_resolution_says_so() {
    let s = OcrServer::start().await;
    let work = tempfile::tempdir().unwrap();
    let source = pdf(&[PdfPage::Text(prose_page(PROSE))]);
    s.put("page.png", &rasterise(work.path(), &source, 1, "png"));
    let result = s.completed(json!({"file": "page.png"})).await;
    assert_eq!(result["pages"][0]["source"], "ocr");
    assert_eq!(result["warnings"], json!([]));
    let png = accuracy(PROSE, &file(&result, "text.txt"));
    assert!(png >= 0.99, "png accuracy {png}");

    // A JPEG whose JFIF header states no density (unit 0, 1:1): 300 dpi assumed, and said.
    let mut jpeg = rasterise(work.path(), &source, 1, "jpeg");
    assert_eq!(&jpeg[6..11], b"JFIF\0");
    jpeg[13] = 0;
    jpeg[14..18].copy_from_slice(&[0, 1, 0, 1]);
    // Named .pdf: the content decides.
    s.put("photo.pdf", &jpeg);
    let result = s.completed(json!({"file": "photo.pdf"})).await;
    let warnings = result["pages"][0]["warnings"].to_string();
    assert!(warnings.contains("300 dpi assumed"), "{warnings}");
    let jpg = accuracy(PROSE, &file(&result, "text.txt"));
    assert!(jpg >= 0.98, "jpeg accuracy {jpg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_fail_with_a_reason() {
    let s = OcrServer::start().await;
    s.put("empty.pdf", b"");
    assert_eq!(s.failed(json!({"file": "empty.pdf"})).await, "empty_file");
    s.put(
        "drawing.png",
        b"<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\"></svg>",
    );
    assert_eq!(
        s.failed(json!({"file": "drawing.png"})).await,
        "unsupported_format"
    );
    s.put("notes.pdf", b"just some text, not a PDF at all");
    assert_eq!(
        s.failed(json!({"file": "notes.pdf"})).await,
        "unsupported_format"
    );
    // A PDF cut short before its first page object: nothing to read.
    let whole = pdf(&[PdfPage::Text(prose_page(PROSE))]);
    s.put("cut.pdf", &whole[..40]);
    assert_eq!(s.failed(json!({"file": "cut.pdf"})).await, "unreadable_pdf");
    // A PNG cut in the middle of its image data.
    let work = tempfile::tempdir().unwrap();
    let png = rasterise(work.path(), &whole, 1, "png");
    s.put("cut.png", &png[..png.len() / 3]);
    let id = s.submit(json!({"file": "cut.png"})).await;
    let job = s.finished(&id).await;
    match job.status {
        // Tesseract may recover the top of a truncated image, saying what it lost...
        JobStatus::Completed => {}
        // ...or give up on it, and the job says why.
        JobStatus::Failed => assert_eq!(job.error.unwrap().code, "unreadable"),
        other => panic!("{other:?}"),
    }
    // Refused at submission: the file's path, the language, the output.
    let refused = |params: Value| {
        let engine = s.engine().clone();
        async move {
            let mut headers = Headers::new();
            headers.push("job-type", "ocr");
            engine
                .submit("ann", &headers, params.to_string().as_bytes())
                .await
                .unwrap_err()
        }
    };
    let r = refused(json!({"file": "../etc/passwd"})).await;
    assert_eq!(r.code, "invalid_parameter");
    let r = refused(json!({"file": "a.pdf", "languages": "klingon"})).await;
    assert!(r.reason.contains("not installed"), "{}", r.reason);
    let r = refused(json!({"file": "a.pdf", "outputs": ["docx"]})).await;
    assert!(r.reason.contains("outputs may hold"), "{}", r.reason);
}

#[tokio::test]
async fn without_tesseract_ocr_is_refused_at_once_naming_what_to_install() {
    let s = OcrServer::with_tesseract("/nonexistent/tesseract").await;
    let mut headers = Headers::new();
    headers.push("job-type", "ocr");
    let refusal = s
        .engine()
        .submit("ann", &headers, br#"{"file":"scan.pdf"}"#)
        .await
        .unwrap_err();
    assert_eq!(refusal.code, "unavailable");
    assert!(
        refusal.reason.contains("tesseract-ocr"),
        "{}",
        refusal.reason
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_job_stops_between_pages() {
    let s = OcrServer::start().await;
    let work = tempfile::tempdir().unwrap();
    let pages: Vec<PageText> = (0..6).map(|_| prose_page(PROSE)).collect();
    s.put("long.pdf", &scanned_pdf(work.path(), &pages));
    let id = s
        .submit(json!({"file": "long.pdf", "pagesPerChunk": 1}))
        .await;
    // Once the first page is in, cancel.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while s.engine().job(&id).unwrap().progress.chunks_completed < 1 {
        assert!(tokio::time::Instant::now() < deadline, "no page was read");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    s.engine().control("ann", &id, "cancel").await.unwrap();
    let job = s.finished(&id).await;
    assert_eq!(job.status, JobStatus::Cancelled);
    assert!(
        job.progress.chunks_completed < 6,
        "every page was read: {:?}",
        job.progress
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_protected_pdfs_need_their_password() {
    let s = OcrServer::start().await;
    let work = tempfile::tempdir().unwrap();
    let plain = work.path().join("plain.pdf");
    std::fs::write(&plain, pdf(&[PdfPage::Text(prose_page(PROSE))])).unwrap();
    let encrypt = |user: &str, name: &str| {
        let status = Process::new("qpdf")
            .args([
                "--encrypt",
                user,
                "owner-secret",
                "256",
                "--modify=none",
                "--",
            ])
            .arg(&plain)
            .arg(s.import.path().join(name))
            .status()
            .unwrap();
        assert!(status.success());
    };
    encrypt("open sesame", "locked.pdf");
    assert_eq!(
        s.failed(json!({"file": "locked.pdf"})).await,
        "password_required"
    );
    assert_eq!(
        s.failed(json!({"file": "locked.pdf", "password": "wrong"}))
            .await,
        "wrong_password"
    );
    let result = s
        .completed(json!({"file": "locked.pdf", "password": "open sesame"}))
        .await;
    assert_eq!(words(&file(&result, "text.txt")), words(PROSE));
    // Restricted by an owner password only: anyone may read it.
    encrypt("", "restricted.pdf");
    let result = s.completed(json!({"file": "restricted.pdf"})).await;
    assert_eq!(result["pages"][0]["source"], "textLayer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_job_resumes_at_the_first_page_not_committed() {
    require_tools();
    let data = tempfile::tempdir().unwrap();
    let import = data.path().join("import");
    std::fs::create_dir_all(&import).unwrap();
    let work = tempfile::tempdir().unwrap();
    let pages: Vec<PageText> = (1..=6)
        .map(|n| prose_page(&format!("Page numéro {n} du dossier.\n{PROSE}")))
        .collect();
    std::fs::write(import.join("dossier.pdf"), scanned_pdf(work.path(), &pages)).unwrap();
    let server = common::ServerProcess::start(data.path());
    let mut ann = common::Tcp::connect(server.stomp, "ann").await;
    ann.subscribe("p", "/user/queue/progress", "auto").await;
    ann.send(
        Frame::new(Command::Send)
            .header("destination", "/app/jobs")
            .header("job-type", "ocr")
            .header("receipt", "r")
            .body(json!({"file": "dossier.pdf", "pagesPerChunk": 1}).to_string()),
    )
    .await;
    let mut job_id = None;
    let mut before = Vec::new();
    while before.len() < 2 {
        let frame = ann.frame().await;
        if frame.command == Command::Receipt {
            job_id = frame.get("job-id").map(str::to_owned);
            continue;
        }
        let event: Value = serde_json::from_slice(&frame.body).unwrap();
        assert_ne!(event["event"], "JOB_COMPLETED", "finished before the kill");
        if event["event"] == "CHUNK_COMPLETED" {
            before.push(event["chunkIndex"].as_u64().unwrap());
        }
    }
    drop(server); // SIGKILL
    let job_id = job_id.unwrap();
    let server = common::ServerProcess::start(data.path());
    let mut page = common::Tcp::connect(server.stomp, "ann").await;
    page.send(
        Frame::new(Command::Subscribe)
            .header("id", "j")
            .header("destination", format!("/topic/jobs/{job_id}"))
            .header("since-seq", "0"),
    )
    .await;
    let mut completions: Vec<u64> = Vec::new();
    let result = loop {
        let frame = page.frame().await;
        let event: Value = serde_json::from_slice(&frame.body).unwrap();
        assert_ne!(event["event"], "JOB_FAILED", "{event}");
        if event["event"] == "CHUNK_COMPLETED" {
            completions.push(event["chunkIndex"].as_u64().unwrap());
        }
        if event["event"] == "JOB_COMPLETED" {
            break event["result"].clone();
        }
    };
    // Every page once: those committed before the kill were not recognised again.
    completions.sort_unstable();
    assert_eq!(completions, [0, 1, 2, 3, 4, 5], "{before:?}");
    assert_eq!(result["pageCount"], 6);
    let text = file(&result, "text.txt");
    for n in 1..=6 {
        assert!(
            text.contains(&format!("Page numéro {n} du dossier")),
            "page {n}: {text}"
        );
    }
}

/// A short scanned page, quick to recognise, that says which it is.
fn numbered_page(n: usize) -> PageText {
    prose_page(&format!(
        "Page numéro {n} du dossier.\nThe supplier shall deliver page {n}."
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_pdf_keeps_its_readable_pages_and_names_the_lost_ones() {
    let s = OcrServer::start().await;
    let work = tempfile::tempdir().unwrap();
    let pages: Vec<PageText> = (1..=4).map(numbered_page).collect();
    let whole = scanned_pdf(work.path(), &pages);
    // Cut in the middle of page 3's image (object 11: the writer puts each page's object,
    // contents and image in turn, after the catalog and the page tree).
    let image = whole.windows(9).position(|w| w == b"\n11 0 obj").unwrap();
    s.put("cut.pdf", &whole[..image + 5_000]);
    let result = s.completed(json!({"file": "cut.pdf"})).await;
    assert_eq!(result["pageCount"], 4, "{result}");
    let sources: Vec<&str> = result["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources, ["ocr", "ocr", "none", "none"], "{result}");
    let warnings = result["warnings"].to_string();
    assert!(
        warnings.contains("2 of its 4 pages could be saved; lost: 3-4"),
        "{warnings}"
    );
    assert!(warnings.contains("page 3 could not be read"), "{warnings}");
    let text = file(&result, "text.txt");
    for n in 1..=2 {
        assert!(
            text.contains(&format!("Page numéro {n} du dossier")),
            "{text}"
        );
    }
    // The salvage's working copy is gone with the job's other scratch files.
    let dir = std::path::Path::new(result["files"]["text.txt"].as_str().unwrap())
        .parent()
        .unwrap();
    assert!(!dir.join("salvaged.pdf").exists());
    // Cut before any page is whole: nothing to save, and the job says why.
    let stub = &whole[..whole.windows(8).position(|w| w == b"\n5 0 obj").unwrap() + 100];
    s.put("stub.pdf", stub);
    assert_eq!(
        s.failed(json!({"file": "stub.pdf"})).await,
        "unreadable_pdf"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_stops_between_pages_and_no_page_is_recognised_twice() {
    // Real tesseract, through a script that notes each page it is given.
    let tools = tempfile::tempdir().unwrap();
    let log = tools.path().join("pages.log");
    let wrapper = tools.path().join("tesseract");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ncase \"$1\" in --*) ;; *) echo \"$1\" >> {} ;; esac\nexec tesseract \"$@\"\n",
            log.display()
        ),
    )
    .unwrap();
    Process::new("chmod")
        .arg("755")
        .arg(&wrapper)
        .status()
        .unwrap();
    let s = OcrServer::with_tesseract(wrapper.to_str().unwrap()).await;
    let work = tempfile::tempdir().unwrap();
    let pages: Vec<PageText> = (1..=8).map(numbered_page).collect();
    s.put("eight.pdf", &scanned_pdf(work.path(), &pages));
    // All eight pages in one chunk: a pause that waited for the chunk's end would come
    // after the last page.
    let id = s
        .submit(json!({"file": "eight.pdf", "pagesPerChunk": 8}))
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !s.engine().job(&id).unwrap().progress.step.contains("read") {
        assert!(tokio::time::Instant::now() < deadline, "no page was read");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    s.engine().control("ann", &id, "pause").await.unwrap();
    let paused = loop {
        let job = s.engine().job(&id).unwrap();
        if job.status == JobStatus::Paused {
            break job;
        }
        assert!(tokio::time::Instant::now() < deadline, "{:?}", job.status);
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(paused.progress.chunks_completed, 0);
    let before = std::fs::read_to_string(&log).unwrap();
    assert!(
        before.lines().count() < 8,
        "the pause waited for every page: {before}"
    );
    s.engine().control("ann", &id, "resume").await.unwrap();
    let job = s.finished(&id).await;
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    let result = job.result.unwrap();
    let text = file(&result, "text.txt");
    for n in 1..=8 {
        assert!(
            text.contains(&format!("Page numéro {n} du dossier")),
            "{text}"
        );
    }
    // Each page went through tesseract once: those read before the pause were kept.
    let mut seen: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| {
            std::path::Path::new(l)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    seen.sort();
    let mut expected: Vec<String> = (1..=8).map(|n| format!("page-{n}.pgm")).collect();
    expected.sort();
    assert_eq!(seen, expected, "before the pause: {before}");
}
