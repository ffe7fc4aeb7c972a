//! The `extract` job type whatever the profile: inputs of every format (text, DOCX, ODT, a
//! scanned image through an `ocr` child job), the empty document, refused parameters, and
//! hostile archives (a corrupt DOCX, a zip bomb) refused with a reason in bounded memory.
//! Real server, real poppler and tesseract (scripts/test.sh installs them).
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/documents.rs"]
mod documents;
#[path = "common/extraction.rs"]
mod extraction;
#[path = "common/office.rs"]
mod office;

use serde_json::{json, Value};
use stompede::jobs::JobStatus;
use stompede::protocol::{Command, Frame, Headers};

use documents::{pdf, prose_page, rasterise, PdfPage};
use extraction::{spanned, ExtractServer};

const OBLIGATION: &str =
    "Le titulaire doit fournir une attestation d'assurance avant le démarrage.";

/// The requirement texts of a result.
fn requirement_texts(result: &Value) -> Vec<String> {
    result["requirements"]
        .as_array()
        .unwrap_or_else(|| panic!("no requirements list in {result}"))
        .iter()
        .map(|r| r["text"]["value"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn page_texts(result: &Value) -> Vec<String> {
    result["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["text"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_document_completes_with_a_warning_and_nothing_extracted() {
    let s = ExtractServer::start().await;
    s.put("empty.txt", b"");
    s.put("blank.txt", b"\n\n   \n");
    for file in ["empty.txt", "blank.txt"] {
        let result = s.extract(file, &["requirements"]).await;
        assert_eq!(requirement_texts(&result), Vec::<String>::new());
        let warnings = result["warnings"].to_string();
        assert!(warnings.contains("no text"), "{file}: {warnings}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_are_refused_at_submission() {
    let s = ExtractServer::start().await;
    for (params, expected) in [
        (json!({"file": "a.txt"}), "profiles is required"),
        (
            json!({"file": "a.txt", "profiles": ["horoscope"]}),
            "unknown profile",
        ),
        (
            json!({"file": "../etc/passwd", "profiles": ["requirements"]}),
            "relative to the import directory",
        ),
        (
            json!({"file": "a.txt", "profiles": "requirements", "pagesPerChunk": 0}),
            "pagesPerChunk",
        ),
    ] {
        let mut headers = Headers::new();
        headers.push("job-type", "extract");
        let refused = s
            .engine()
            .submit("ann", &headers, params.to_string().as_bytes())
            .await
            .err()
            .unwrap_or_else(|| panic!("{params} was accepted"));
        assert_eq!(refused.code, "invalid_parameter");
        assert!(refused.reason.contains(expected), "{}", refused.reason);
    }
    // A file that is not there fails the job with a reason.
    let (code, _) = s
        .refused(&json!({"file": "missing.txt", "profiles": ["requirements"]}))
        .await;
    assert_eq!(code, "file_not_found");
    s.put("binary.bin", &[0u8, 1, 2, 3, 0, 0, 255]);
    let (code, message) = s
        .refused(&json!({"file": "binary.bin", "profiles": ["requirements"]}))
        .await;
    assert_eq!(code, "unsupported_format", "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docx_and_odt_pages_come_from_their_page_breaks() {
    let s = ExtractServer::start().await;
    let pages = [
        "ARTICLE 1 - OBJET\nLe marché porte sur l'entretien des espaces verts.",
        &format!("ARTICLE 2 - ASSURANCES\n{OBLIGATION}\nLot | Désignation\n1 | Tonte"),
    ];
    s.put("cctp.docx", &office::docx(&pages));
    s.put("cctp.odt", &office::odt(&pages));
    for (file, format) in [("cctp.docx", "docx"), ("cctp.odt", "odt")] {
        let result = s.extract(file, &["requirements"]).await;
        assert_eq!(result["format"], format);
        assert_eq!(result["pageCount"], 2, "{file}: {:?}", page_texts(&result));
        let texts = page_texts(&result);
        assert!(texts[0].contains("espaces verts"), "{file}: {texts:?}");
        assert!(
            texts[1].contains("1 | Tonte"),
            "{file}: table row kept: {texts:?}"
        );
        let found = &result["requirements"][0];
        assert_eq!(found["text"]["value"], OBLIGATION, "{file}: {result}");
        assert_eq!(found["text"]["source"]["page"], 2);
        assert_eq!(spanned(&result, &found["text"]["source"]), OBLIGATION);
        let stored: Value = serde_json::from_slice(
            &std::fs::read(result["files"]["extraction.json"].as_str().unwrap()).unwrap(),
        )
        .unwrap();
        assert_eq!(stored["requirements"], result["requirements"]);
    }
}

/// The process's peak resident memory, in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_docx_and_a_zip_bomb_are_refused_with_a_reason_in_bounded_memory() {
    let s = ExtractServer::start().await;
    let mut corrupt = office::docx(&["Le titulaire doit livrer."]);
    corrupt.truncate(corrupt.len() / 2);
    s.put("corrupt.docx", &corrupt);
    let (code, message) = s
        .refused(&json!({"file": "corrupt.docx", "profiles": ["requirements"]}))
        .await;
    // A truncated archive has lost its directory: it is no DOCX any more.
    assert!(
        ["unreadable_document", "unsupported_format"].contains(&code.as_str()),
        "{code}: {message}"
    );

    // 1 GiB of one letter inside <w:t>: about 1 MiB deflated.
    let bomb = {
        use std::io::Write;
        let mut out = std::io::Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut out);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .compression_level(Some(9))
            .large_file(true);
        zip.start_file("word/document.xml", options).unwrap();
        zip.write_all(b"<w:document xmlns:w=\"w\"><w:body><w:p><w:r><w:t>")
            .unwrap();
        let block = vec![b'a'; 1 << 20];
        for _ in 0..1024 {
            zip.write_all(&block).unwrap();
        }
        zip.finish().unwrap();
        out.into_inner()
    };
    assert!(bomb.len() < 8 << 20, "{} bytes", bomb.len());
    s.put("bomb.docx", &bomb);
    drop(bomb);
    let before = peak_rss_kib();
    let (code, message) = s
        .refused(&json!({"file": "bomb.docx", "profiles": ["requirements"]}))
        .await;
    assert_eq!(code, "too_large", "{message}");
    assert!(message.contains("zip bomb"), "{message}");
    let grown_mib = (peak_rss_kib() - before) / 1024;
    // The reader stops at its 64 MiB bound: far from the 1 GiB the archive claims.
    assert!(grown_mib < 256, "peak memory grew {grown_mib} MiB");
    // The server goes on serving.
    s.put("ok.txt", OBLIGATION.as_bytes());
    let result = s.extract("ok.txt", &["requirements"]).await;
    assert_eq!(requirement_texts(&result), [OBLIGATION]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scanned_image_goes_through_an_ocr_child_whose_events_reach_the_parent() {
    let s = ExtractServer::start().await;
    let work = tempfile::tempdir().unwrap();
    let text = format!("ARTICLE 4 - ASSURANCES\n{OBLIGATION}");
    let source = pdf(&[PdfPage::Text(prose_page(&text))]);
    s.put("scan.png", &rasterise(work.path(), &source, 1, "png"));

    let mut ann = common::Tcp::connect(s.server.stomp_addr().unwrap(), "ann").await;
    // Delayed, so that its topic is watched before anything happens.
    ann.send(
        Frame::new(Command::Send)
            .header("destination", "/app/jobs")
            .header("job-type", "extract")
            .header("delay", "300")
            .header("receipt", "r1")
            .body(json!({"file": "scan.png", "profiles": ["requirements"]}).to_string()),
    )
    .await;
    let receipt = ann.frame().await;
    assert_eq!(receipt.command, Command::Receipt, "{receipt:?}");
    let id = receipt.get("job-id").unwrap().to_owned();
    // Its snapshot comes first, then the events.
    ann.send(
        Frame::new(Command::Subscribe)
            .header("id", "t")
            .header("destination", format!("/topic/jobs/{id}")),
    )
    .await;
    let mut child = None;
    let mut child_events = Vec::new();
    let result = loop {
        let frame = ann.frame().await;
        if frame.headers.get("snapshot") == Some("true") {
            continue;
        }
        let event: Value = serde_json::from_slice(&frame.body).unwrap();
        if event["jobId"] != id.as_str() {
            assert_eq!(event["parentJobId"], id.as_str(), "{event}");
            assert_eq!(frame.headers.get("parent-job-id"), Some(id.as_str()));
            child_events.push(event["event"].as_str().unwrap().to_owned());
            continue;
        }
        match event["event"].as_str().unwrap() {
            "JOB_WAITING" => {
                assert_eq!(event["status"], "waiting");
                assert_eq!(event["children"][0]["jobType"], "ocr");
                child = Some(event["children"][0]["jobId"].as_str().unwrap().to_owned());
            }
            "JOB_FAILED" => panic!("{event}"),
            "JOB_COMPLETED" => break event["result"].clone(),
            _ => {}
        }
    };
    let child = child.expect("JOB_WAITING names the OCR child");
    for expected in ["JOB_STARTED", "CHUNK_COMPLETED", "JOB_COMPLETED"] {
        assert!(
            child_events.iter().any(|e| e == expected),
            "{expected} of the child not seen on the parent's topic: {child_events:?}"
        );
    }
    let ocr = s.engine().job(&child).unwrap();
    assert_eq!(ocr.status, JobStatus::Completed);
    assert_eq!(ocr.parent.as_deref(), Some(id.as_str()));
    assert_eq!(result["format"], "image");
    assert_eq!(result["pages"][0]["source"], "ocr");
    assert!(result["pages"][0]["confidence"].as_f64().unwrap() > 70.0);
    let found = requirement_texts(&result);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        documents::accuracy(OBLIGATION, &found[0]) > 0.95,
        "{found:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_waiting_parent_cancels_its_ocr_child() {
    let s = ExtractServer::start().await;
    let work = tempfile::tempdir().unwrap();
    let pages: Vec<_> = (1..=6)
        .map(|n| prose_page(&format!("Page {n}\n{OBLIGATION}")))
        .collect();
    s.put("scan.pdf", &documents::scanned_pdf(work.path(), &pages));
    let id = s
        .submit(
            "extract",
            &json!({"file": "scan.pdf", "profiles": ["requirements"]}),
        )
        .await;
    let deadline = tokio::time::Instant::now() + common::WAIT;
    let child = loop {
        let job = s.engine().job(&id).unwrap();
        if job.status == JobStatus::Waiting {
            break job.children[0].clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "{job:?}");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    };
    s.engine().control("ann", &id, "cancel").await.unwrap();
    let parent = s.finished(&id).await;
    assert_eq!(parent.status, JobStatus::Cancelled);
    let ocr = s.finished(&child).await;
    assert_eq!(ocr.status, JobStatus::Cancelled);
}

/// Uploads `body` over STOMP as `name` with `auto-extract:profiles`; the RECEIPT's headers,
/// or the refusal's body.
async fn upload(
    ann: &mut common::Tcp,
    name: &str,
    profiles: &str,
    body: &str,
) -> Result<Frame, Value> {
    ann.send(
        Frame::new(Command::Send)
            .header("destination", "/app/uploads")
            .header("filename", name)
            .header("auto-extract", profiles)
            .header("receipt", "up")
            .body(body.to_owned()),
    )
    .await;
    let frame = ann.frame().await;
    match frame.command {
        Command::Receipt => Ok(frame),
        _ => Err(serde_json::from_slice(&frame.body).unwrap()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_with_auto_extract_runs_once_per_content_and_profiles() {
    let s = ExtractServer::start().await;
    let addr = s.server.stomp_addr().unwrap();
    let mut ann = common::Tcp::connect(addr, "ann").await;
    ann.subscribe("errors", "/user/queue/errors", "auto").await;
    let text = format!("ARTICLE 2 - ASSURANCES\n{OBLIGATION}\n");

    let first = upload(&mut ann, "cctp.txt", "requirements", &text)
        .await
        .unwrap();
    assert_eq!(first.get("job-reused"), Some("false"));
    let id = first.get("job-id").unwrap().to_owned();
    let job = s.finished(&id).await;
    assert_eq!(job.status, JobStatus::Completed, "{:?}", job.error);
    assert_eq!(job.params["upload"], first.get("upload-id").unwrap());
    assert_eq!(
        requirement_texts(job.result.as_ref().unwrap()),
        [OBLIGATION]
    );

    // The same content under another name: the earlier job, not a new run.
    let again = upload(&mut ann, "copie.txt", " requirements ", &text)
        .await
        .unwrap();
    assert_eq!(again.get("job-reused"), Some("true"));
    assert_eq!(again.get("job-id"), Some(id.as_str()));
    // Other profiles, or another user, extract again.
    let more = upload(&mut ann, "cctp.txt", "requirements,dce", &text)
        .await
        .unwrap();
    assert_eq!(more.get("job-reused"), Some("false"));
    assert_ne!(more.get("job-id"), Some(id.as_str()));
    let mut bob = common::Tcp::connect(addr, "bob").await;
    let bobs = upload(&mut bob, "cctp.txt", "requirements", &text)
        .await
        .unwrap();
    assert_eq!(bobs.get("job-reused"), Some("false"));

    // A refused extraction refuses the upload, and keeps nothing.
    let uploads_before = std::fs::read_dir(s.server.config().uploads_dir())
        .unwrap()
        .count();
    let refused = upload(&mut ann, "x.txt", "horoscope", &text)
        .await
        .unwrap_err();
    assert_eq!(refused["event"], "UPLOAD_REJECTED");
    assert_eq!(refused["code"], "invalid_parameter");
    assert!(
        refused["reason"]
            .as_str()
            .unwrap()
            .contains("unknown profile"),
        "{refused}"
    );
    let uploads_after = std::fs::read_dir(s.server.config().uploads_dir())
        .unwrap()
        .count();
    assert_eq!(uploads_after, uploads_before);

    // Over HTTP: the same rules, the job in the answer.
    let url = format!(
        "http://{}/api/uploads?autoExtract=requirements",
        s.server.http_addr().unwrap()
    );
    let answer = reqwest::Client::new()
        .post(&url)
        .basic_auth("ann", Some("any"))
        .header("content-disposition", "attachment; filename=\"cctp.txt\"")
        .body(text.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 201);
    let answer: Value = serde_json::from_slice(&answer.bytes().await.unwrap()).unwrap();
    assert_eq!(answer["job"]["id"], id.as_str(), "{answer}");
    assert_eq!(answer["job"]["reused"], true);
    assert_eq!(answer["job"]["links"]["self"], format!("/api/jobs/{id}"));
}
