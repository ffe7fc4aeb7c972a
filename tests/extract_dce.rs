//! The `dce` profile end to end: every corpus document through a real server, as a text file
//! as a DOCX and an ODT, and as a PDF with a text layer (its columns kept, so that `pdftotext
//! -layout` gives them back as runs of spaces), scored field by field; a French and an English
//! document scanned at 300 dpi and read through an `ocr` child job, scored the same way; each value's span checked against the
//! page text; and a multi-page document in one-page chunks, each chunk's items in its
//! CHUNK_COMPLETED and the merged result holding each lot once.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/corpus_dce.rs"]
mod corpus_dce;
#[path = "common/documents.rs"]
mod documents;
#[path = "common/extraction.rs"]
mod extraction;
#[path = "common/office.rs"]
mod office;

use serde_json::{json, Value};
use stompede::protocol::{Command, Frame};

use corpus_dce::{corpus, Doc, Expected};
use documents::{pdf, scanned_pdf, PageText, PdfPage};
use extraction::{spanned, ExtractServer, Scores};

/// Helvetica's WinAnsi code for the few characters outside Latin-1 the corpus uses (the PDF
/// writer takes each character's code as the byte it writes).
fn winansi(c: char) -> char {
    match c {
        '€' => '\u{80}',
        '’' => '\u{92}',
        'œ' => '\u{9c}',
        '–' => '\u{96}',
        '—' => '\u{97}',
        other => other,
    }
}

/// A page as text runs: each run of text between gaps of two spaces or more is placed at
/// its column (7 points a character), so that the PDF's layout matches the text's.
fn layout_page(text: &str) -> PageText {
    let mut runs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let chars: Vec<char> = line.chars().map(winansi).collect();
        let mut col = 0;
        while col < chars.len() {
            if chars[col] == ' ' {
                col += 1;
                continue;
            }
            let start = col;
            while col < chars.len() && !(chars[col] == ' ' && chars.get(col + 1) == Some(&' ')) {
                col += 1;
            }
            let run: String = chars[start..col].iter().collect();
            runs.push((
                72 + 7 * start as u32,
                740 - 20 * i as u32,
                run.trim_end().to_owned(),
            ));
        }
    }
    runs
}

fn doc_pdf(doc: &Doc) -> Vec<u8> {
    let pages: Vec<PdfPage> = doc
        .pages
        .iter()
        .map(|p| PdfPage::Text(layout_page(p)))
        .collect();
    pdf(&pages)
}

fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn number(v: &Value) -> String {
    v.as_f64().map(|n| format!("{n}")).unwrap_or_default()
}

fn span_text(v: &Value) -> String {
    match (v["value"]["value"].as_u64(), v["value"]["unit"].as_str()) {
        (Some(n), Some(unit)) => format!("{n} {unit}"),
        _ => String::new(),
    }
}

fn str_of(v: &Value) -> Option<String> {
    v["value"].as_str().map(str::to_owned)
}

/// Scores one document's result against what it holds.
fn score(scores: &mut Scores, dce: &Value, e: &Expected) {
    let some = |s: Option<&str>| s.map(str::to_owned);
    scores.field("buyer", some(e.buyer), str_of(&dce["buyer"]));
    scores.field("object", some(e.object), str_of(&dce["object"]));
    scores.field("reference", some(e.reference), str_of(&dce["reference"]));
    scores.field(
        "procedure",
        some(e.procedure),
        dce["procedure"]["value"]["type"]
            .as_str()
            .map(str::to_owned),
    );
    let deadline = &dce["offersDeadline"]["value"];
    scores.field(
        "offersDeadline",
        some(e.deadline),
        deadline["date"]
            .as_str()
            .map(|d| match deadline["time"].as_str() {
                Some(t) => format!("{d} {t}"),
                None => d.to_owned(),
            }),
    );
    let initial = &dce["duration"]["initial"];
    scores.field(
        "duration.initial",
        some(e.initial),
        (!initial.is_null()).then(|| span_text(initial)),
    );
    let total = &dce["duration"]["total"];
    scores.field(
        "duration.total",
        some(e.total),
        (!total.is_null()).then(|| span_text(total)),
    );
    let lots = dce["lots"].as_array().cloned().unwrap_or_default();
    let found_lots = lots
        .iter()
        .filter(|l| !l["title"].is_null() || !l["estimatedAmount"].is_null())
        .map(|l| {
            format!(
                "{}|{}|{}|{}",
                l["number"]["value"],
                l["title"]["value"].as_str().unwrap_or(""),
                number(&l["estimatedAmount"]["value"]["value"]),
                l["estimatedAmount"]["value"]["tax"].as_str().unwrap_or("")
            )
        })
        .collect();
    scores.items(
        "lots",
        e.lots.iter().map(|s| s.to_string()).collect(),
        found_lots,
    );
    let by_lot = |field: &str| -> Vec<String> {
        lots.iter()
            .filter(|l| l[field]["value"].is_boolean())
            .map(|l| format!("{}:{}", l["number"]["value"], l[field]["value"]))
            .collect()
    };
    scores.items(
        "lots.siteVisit",
        e.lot_visits.iter().map(|s| s.to_string()).collect(),
        by_lot("siteVisit"),
    );
    scores.items(
        "lots.variants",
        e.lot_variants.iter().map(|s| s.to_string()).collect(),
        by_lot("variants"),
    );
    let mut criteria = Vec::new();
    for c in dce["awardCriteria"].as_array().cloned().unwrap_or_default() {
        let name = c["name"]["value"].as_str().unwrap_or("").to_owned();
        criteria.push(format!("{name}|{}", number(&c["weight"]["value"])));
        for s in c["subCriteria"].as_array().cloned().unwrap_or_default() {
            criteria.push(format!(
                "{name} > {}|{}",
                s["name"]["value"].as_str().unwrap_or(""),
                number(&s["weight"]["value"])
            ));
        }
    }
    scores.items(
        "awardCriteria",
        e.criteria.iter().map(|s| s.to_string()).collect(),
        criteria,
    );
    let cpv = dce["cpv"].as_array().cloned().unwrap_or_default();
    scores.items(
        "cpv",
        e.cpv.iter().map(|s| s.to_string()).collect(),
        cpv.iter().filter_map(str_of).collect(),
    );
    let flag = |v: &Value| v["value"].as_bool().map(|b| b.to_string());
    scores.field(
        "siteVisit",
        e.site_visit.map(|b| b.to_string()),
        flag(&dce["siteVisit"]),
    );
    scores.field(
        "variants",
        e.variants.map(|b| b.to_string()),
        flag(&dce["variants"]),
    );
    let guarantees = dce["guarantees"].as_array().cloned().unwrap_or_default();
    scores.items(
        "guarantees",
        e.guarantees.iter().map(|s| s.to_string()).collect(),
        guarantees
            .iter()
            .map(|g| {
                format!(
                    "{}|{}",
                    g["value"]["type"].as_str().unwrap_or(""),
                    number(&g["value"]["rate"])
                )
            })
            .collect(),
    );
}

/// Every `{value, confidence, source}` in `value`, with its path.
fn founds<'a>(path: String, value: &'a Value, out: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(map) if map.contains_key("source") && map.contains_key("confidence") => {
            out.push((path, value));
        }
        Value::Object(map) => {
            for (k, v) in map {
                founds(format!("{path}.{k}"), v, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                founds(format!("{path}[{i}]"), v, out);
            }
        }
        _ => {}
    }
}

/// Checks that each value's span holds what was read: the text itself for names and codes,
/// the figures for numbers, dates and amounts.
fn check_spans(name: &str, result: &Value) {
    let mut all = Vec::new();
    founds("dce".into(), &result["dce"], &mut all);
    assert!(!all.is_empty(), "{name}: nothing found");
    for (path, found) in all {
        let confidence = found["confidence"].as_f64().unwrap();
        assert!(
            (0.0..=1.0).contains(&confidence),
            "{name} {path}: {confidence}"
        );
        let text = collapse(&spanned(result, &found["source"]));
        let digits: String = text.chars().filter(char::is_ascii_digit).collect();
        let value = &found["value"];
        let ok = match value {
            Value::String(s) => text.contains(&collapse(s)),
            Value::Number(n) => {
                digits.contains(&n.as_u64().map(|n| n.to_string()).unwrap_or_default())
            }
            Value::Bool(_) => !text.is_empty(),
            Value::Object(map) if map.contains_key("date") => {
                let date = value["date"].as_str().unwrap();
                let day = date[8..].trim_start_matches('0');
                text.contains(day) && (text.contains(&date[..4]) || text.contains(&date[2..4]))
            }
            Value::Object(map) if map.contains_key("label") => text
                .to_lowercase()
                .contains(&collapse(map["label"].as_str().unwrap()).to_lowercase()),
            Value::Object(map) if map.contains_key("unit") || map.contains_key("count") => {
                !text.is_empty()
            }
            Value::Object(map) if map.contains_key("value") => {
                let whole = map["value"].as_f64().unwrap().trunc() as u64;
                digits.contains(&whole.to_string())
            }
            _ => false,
        };
        assert!(ok, "{name} {path}: {value} is not in its span {text:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_corpus_is_read_with_precision_and_recall_of_at_least_0_9_from_text_and_pdf() {
    let s = ExtractServer::start().await;
    let mut text_scores = Scores::default();
    let mut pdf_scores = Scores::default();
    for doc in corpus() {
        let txt = format!("{}.txt", doc.name);
        s.put(&txt, doc.pages.join("\u{c}").as_bytes());
        let result = s.extract(&txt, &["dce"]).await;
        check_spans(&txt, &result);
        score(&mut text_scores, &result["dce"], &doc.expected);

        let file = format!("{}.pdf", doc.name);
        s.put(&file, &doc_pdf(&doc));
        let result = s.extract(&file, &["dce"]).await;
        assert_eq!(result["pageCount"], doc.pages.len(), "{file}");
        check_spans(&file, &result);
        score(&mut pdf_scores, &result["dce"], &doc.expected);
    }
    println!("text files:");
    text_scores.assert_at_least(0.9);
    println!("PDFs with a text layer:");
    pdf_scores.assert_at_least(0.9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_page_chunks_carry_their_pages_items_and_the_merge_keeps_each_lot_once() {
    let s = ExtractServer::start().await;
    let doc = corpus()
        .into_iter()
        .find(|d| d.name == "rc-negociee")
        .unwrap();
    s.put("rc.txt", doc.pages.join("\u{c}").as_bytes());
    let mut ann = common::Tcp::connect(s.server.stomp_addr().unwrap(), "ann").await;
    ann.subscribe("p", "/user/queue/progress", "auto").await;
    ann.send(
        Frame::new(Command::Send)
            .header("destination", "/app/jobs")
            .header("job-type", "extract")
            .body(json!({"file": "rc.txt", "profiles": ["dce"], "pagesPerChunk": 1}).to_string()),
    )
    .await;
    let mut chunks = Vec::new();
    let result = loop {
        let frame = ann.frame().await;
        let event: Value = serde_json::from_slice(&frame.body).unwrap();
        assert_ne!(event["event"], "JOB_FAILED", "{event}");
        if event["event"] == "CHUNK_COMPLETED" {
            chunks.push(event["result"].clone());
        }
        if event["event"] == "JOB_COMPLETED" {
            break event["result"].clone();
        }
    };
    assert_eq!(chunks.len(), 3, "three pages, one a chunk");
    let lot_numbers = |dce: &Value| -> Vec<u64> {
        dce["lots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["number"]["value"].as_u64().unwrap())
            .collect()
    };
    // Each chunk carries what its page holds, read there.
    let by_page: Vec<(u64, &Value)> = chunks
        .iter()
        .map(|c| (c["pages"][0].as_u64().unwrap(), &c["dce"]))
        .collect();
    for (page, dce) in &by_page {
        let mut all = Vec::new();
        founds("dce".into(), dce, &mut all);
        for (path, found) in all {
            assert_eq!(found["source"]["page"].as_u64(), Some(*page), "{path}");
        }
        match page {
            1 => {
                assert_eq!(lot_numbers(dce), [1]);
                assert_eq!(dce["buyer"]["value"], "Centre Hospitalier de Vannes");
                assert_eq!(dce["procedure"]["value"]["type"], "negotiated");
            }
            2 => {
                assert_eq!(lot_numbers(dce), [2, 3]);
                assert_eq!(dce["offersDeadline"]["value"]["date"], "2025-06-05");
                assert_eq!(dce["buyer"], Value::Null);
                // The criteria list starts here and runs on: its first item is this page's.
                assert_eq!(dce["awardCriteria"].as_array().unwrap().len(), 1);
            }
            _ => {
                // The clause names lot 2 again: it comes with this page's chunk.
                assert_eq!(lot_numbers(dce), [2]);
                assert_eq!(dce["lots"][0]["siteVisit"]["value"], true);
                assert_eq!(dce["awardCriteria"].as_array().unwrap().len(), 2);
            }
        }
    }
    // Merged: lot 2 once, with its title from page 2 and its visit from page 3.
    let dce = &result["dce"];
    assert_eq!(lot_numbers(dce), [1, 2, 3]);
    let lot2 = &dce["lots"][1];
    assert_eq!(
        lot2["title"]["value"],
        "Climatisation des blocs opératoires"
    );
    assert_eq!(lot2["title"]["source"]["page"], 2);
    assert_eq!(lot2["siteVisit"]["value"], true);
    assert_eq!(lot2["siteVisit"]["source"]["page"], 3);
    assert_eq!(dce["awardCriteria"].as_array().unwrap().len(), 3);
    assert_eq!(dce["variants"]["value"], true);
    assert_eq!(dce["siteVisit"], Value::Null, "said for lot 2 only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_corpus_reads_as_well_from_docx_and_odt() {
    let s = ExtractServer::start().await;
    for (format, make) in [
        ("docx", office::docx as fn(&[&str]) -> Vec<u8>),
        ("odt", office::odt),
    ] {
        let mut scores = Scores::default();
        for doc in corpus() {
            let pages: Vec<&str> = doc.pages.iter().map(String::as_str).collect();
            let file = format!("{}.{format}", doc.name);
            s.put(&file, &make(&pages));
            let result = s.extract(&file, &["dce"]).await;
            assert_eq!(result["format"], format);
            assert_eq!(result["pageCount"], doc.pages.len(), "{file}");
            check_spans(&file, &result);
            score(&mut scores, &result["dce"], &doc.expected);
        }
        println!("{format}:");
        scores.assert_at_least(0.9);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scanned_documents_read_through_ocr_score_at_least_0_9() {
    let s = ExtractServer::start().await;
    let work = tempfile::tempdir().unwrap();
    let mut scores = Scores::default();
    // Seven pages in all (OCR takes a second or two a page): a French RC over three pages
    // (its criteria list running on to the next page), a French acte d'engagement, an English
    // ITT with a lots table and one over two pages with bulleted sub-criteria.
    let scanned = ["rc-negociee", "acte-engagement", "itt-flexible", "itt-open"];
    for doc in corpus().into_iter().filter(|d| scanned.contains(&d.name)) {
        let pages: Vec<PageText> = doc.pages.iter().map(|p| layout_page(p)).collect();
        let file = format!("{}-scan.pdf", doc.name);
        s.put(&file, &scanned_pdf(work.path(), &pages));
        let result = s.extract(&file, &["dce"]).await;
        assert_eq!(result["pageCount"], doc.pages.len(), "{file}");
        for page in result["pages"].as_array().unwrap() {
            assert_eq!(page["source"], "ocr", "{file}");
            // What OCR gave, to read with --nocapture when a field is lost.
            println!("{}", page["text"].as_str().unwrap_or_default());
        }
        println!("{file}: {}", result["dce"]);
        check_spans(&file, &result);
        score(&mut scores, &result["dce"], &doc.expected);
    }
    println!("scanned PDFs (OCR):");
    scores.assert_at_least(0.9);
}
