//! The `requirements` profile end to end: every document of the corpus extracted by a real
//! server, as a text file (pages separated by form feeds), as a PDF with a text layer and as
//! a DOCX and an ODT (tables as tables), scored against what the corpus says is there; spans checked against the pages the result
//! gives; and the chunk events of a job read page by page.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/corpus_requirements.rs"]
mod corpus;
#[path = "common/documents.rs"]
mod documents;
#[path = "common/extraction.rs"]
mod extraction;
#[path = "common/office.rs"]
mod office;

use serde_json::{json, Value};
use stompede::protocol::Frame;

use corpus::{corpus, Doc};
use documents::{pdf, PageText, PdfPage};
use extraction::{spanned, ExtractServer, Scores};

/// A page's lines set as a PDF page: each cell (text three spaces or more apart) placed at
/// its column, so that `pdftotext -layout` gives the table's columns back.
fn page_runs(text: &str) -> PageText {
    let mut runs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let y = 740 - 20 * i as u32;
        let mut cell = String::new();
        let mut cell_column = 0;
        let mut gap = 0;
        for (column, c) in line.chars().enumerate() {
            if c == ' ' {
                gap += 1;
                if gap >= 3 && !cell.trim().is_empty() {
                    runs.push((72 + 6 * cell_column as u32, y, cell.trim_end().to_owned()));
                    cell.clear();
                }
            } else {
                if cell.is_empty() {
                    cell_column = column;
                }
                for _ in 0..gap.min(2) {
                    if !cell.is_empty() {
                        cell.push(' ');
                    }
                }
                gap = 0;
                cell.push(c);
            }
        }
        if !cell.is_empty() {
            runs.push((72 + 6 * cell_column as u32, y, cell));
        }
    }
    runs
}

fn pdf_of(doc: &Doc) -> Vec<u8> {
    let pages: Vec<PdfPage> = doc
        .pages
        .iter()
        .map(|p| PdfPage::Text(page_runs(p)))
        .collect();
    pdf(&pages)
}

/// A line's cells: its runs of text three spaces or more apart, each with its column.
fn cells(line: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut gap = 0;
    for (column, c) in line.chars().enumerate() {
        if c == ' ' {
            gap += 1;
            continue;
        }
        match out.last_mut() {
            Some((_, cell)) if gap < 3 => {
                if gap > 0 {
                    cell.push(' ');
                }
                cell.push(c);
            }
            _ => out.push((column, c.to_string())),
        }
        gap = 0;
    }
    out
}

/// A page as a word processor holds it: a table (lines whose cells stand three spaces or
/// more apart, a wrapped cell's next lines aligned under it; or a Markdown table, its rule
/// dropped) as rows of cells joined by ` | `, which the office writer makes table rows, a
/// wrapped cell's text whole in its cell; every other line a paragraph.
fn office_page(text: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut row: Option<Vec<(usize, String)>> = None;
    let flush = |row: &mut Option<Vec<(usize, String)>>, out: &mut Vec<String>| {
        if let Some(cells) = row.take() {
            let texts: Vec<String> = cells.into_iter().map(|(_, c)| c).collect();
            out.push(texts.join(" | "));
        }
    };
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('|') {
            flush(&mut row, &mut out);
            if !trimmed.chars().all(|c| matches!(c, '|' | '-' | ':' | ' ')) {
                let cells: Vec<&str> = trimmed
                    .trim_matches('|')
                    .split('|')
                    .map(str::trim)
                    .collect();
                out.push(cells.join(" | "));
            }
            continue;
        }
        let found = cells(line);
        let continues = line.starts_with("   ") && !trimmed.is_empty();
        match &mut row {
            Some(open) if continues => {
                for (column, text) in found {
                    let at = open.iter().rposition(|(c, _)| *c <= column).unwrap_or(0);
                    open[at].1.push(' ');
                    open[at].1.push_str(&text);
                }
            }
            _ if found.len() >= 2 && !line.starts_with(' ') => {
                flush(&mut row, &mut out);
                row = Some(found);
            }
            _ => {
                flush(&mut row, &mut out);
                out.push(line.to_owned());
            }
        }
    }
    flush(&mut row, &mut out);
    out.join("\n")
}

fn text_of(doc: &Doc) -> Vec<u8> {
    doc.pages.join("\u{c}").into_bytes()
}

fn items(result: &Value) -> &Vec<Value> {
    result["requirements"]
        .as_array()
        .unwrap_or_else(|| panic!("no requirements in {result}"))
}

fn text(item: &Value) -> &str {
    item["text"]["value"].as_str().unwrap()
}

fn section_number(section: &Value) -> String {
    section["value"]["number"]
        .as_str()
        .unwrap_or("-")
        .to_owned()
}

/// Letters and digits only: what a span and a value must both hold, whatever the spacing.
fn letters(text: &str) -> String {
    text.chars().filter(|c| c.is_alphanumeric()).collect()
}

/// Scores one extraction of `doc` and prints what was missed or found in excess.
fn score(scores: &mut Scores, doc: &Doc, format: &str, result: &Value) {
    let found = items(result);
    let expected_texts: Vec<String> = doc.expected.iter().map(|e| e.text.to_owned()).collect();
    let found_texts: Vec<String> = found.iter().map(|i| text(i).to_owned()).collect();
    for e in &expected_texts {
        if !found_texts.contains(e) {
            println!("{} ({format}) missed: {e}", doc.name);
        }
    }
    for f in &found_texts {
        if !expected_texts.contains(f) {
            println!("{} ({format}) not expected: {f}", doc.name);
        }
    }
    scores.items("texts", expected_texts, found_texts);
    let expected_sections = doc
        .expected
        .iter()
        .flat_map(|e| e.sections.iter().map(move |s| format!("{} @ {s}", e.text)))
        .collect();
    let found_sections: Vec<String> = found
        .iter()
        .flat_map(|i| {
            i["occurrences"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |o| format!("{} @ {}", text(i), section_number(&o["section"])))
        })
        .collect();
    scores.items("sections", expected_sections, found_sections);
    let expected_categories = doc
        .expected
        .iter()
        .map(|e| format!("{} : {}", e.text, e.category))
        .collect();
    let found_categories: Vec<String> = found
        .iter()
        .map(|i| format!("{} : {}", text(i), i["category"]["value"].as_str().unwrap()))
        .collect();
    for item in found {
        let category = item["category"]["value"].as_str().unwrap();
        if let Some(e) = doc.expected.iter().find(|e| e.text == text(item)) {
            if e.category != category {
                println!(
                    "{} ({format}) category {category}, not {}: {}",
                    doc.name, e.category, e.text
                );
            }
        }
    }
    scores.items("categories", expected_categories, found_categories);
}

/// Every span of `result` points at what its value says.
fn check_spans(doc: &Doc, result: &Value) {
    for item in items(result) {
        let value = text(item);
        let occurrences = item["occurrences"].as_array().unwrap();
        assert_eq!(item["text"]["source"], occurrences[0]["source"], "{item}");
        assert_eq!(item["page"], occurrences[0]["page"], "{item}");
        for occurrence in occurrences {
            let sources = occurrence["sources"].as_array().unwrap();
            assert_eq!(occurrence["source"], sources[0]);
            let read: Vec<String> = sources.iter().map(|s| spanned(result, s)).collect();
            let read = read.join(" ");
            if item["kind"] == "tableRow" {
                // A wrapped cell's text comes after the row's other cells in the page.
                let mut a: Vec<&str> = value.split_whitespace().filter(|w| *w != "|").collect();
                let mut b: Vec<&str> = read.split_whitespace().filter(|w| *w != "|").collect();
                a.sort_unstable();
                b.sort_unstable();
                assert_eq!(a, b, "{}: row {value:?} spans {read:?}", doc.name);
            } else {
                assert_eq!(
                    letters(value),
                    letters(&read),
                    "{}: {value:?} spans {read:?}",
                    doc.name
                );
            }
        }
        let marker = spanned(result, &item["obligation"]["source"]);
        assert_eq!(
            marker.split_whitespace().collect::<Vec<_>>().join(" "),
            item["obligation"]["value"].as_str().unwrap()
        );
        let word = letters(&spanned(result, &item["category"]["source"]).to_lowercase());
        let around = letters(&format!(
            "{} {value}",
            item["lead"]["value"].as_str().unwrap_or("")
        ))
        .to_lowercase();
        assert!(
            around.contains(&word),
            "{}: category word {word:?} in {value:?}",
            doc.name
        );
        let id = item["id"].as_str().unwrap();
        assert!(id.starts_with("REQ-") && id.len() == 14, "{id}");
    }
}

/// The requirements cut by a page break are read whole, once, from the page they start on.
fn check_broken(doc: &Doc, result: &Value) {
    for broken in &doc.broken {
        let found: Vec<&Value> = items(result)
            .iter()
            .filter(|i| text(i) == *broken)
            .collect();
        assert_eq!(found.len(), 1, "{}: {broken}", doc.name);
        let sources = found[0]["occurrences"][0]["sources"].as_array().unwrap();
        assert_eq!(sources.len(), 2, "{}: {broken} over two pages", doc.name);
        let pages: Vec<u64> = sources
            .iter()
            .map(|s| s["page"].as_u64().unwrap())
            .collect();
        assert_eq!(pages[1], pages[0] + 1);
        assert_eq!(found[0]["page"], pages[0]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_corpus_as_text_and_as_pdf_scores_at_least_0_9() {
    let s = ExtractServer::start().await;
    let mut scores = Scores::default();
    for doc in corpus() {
        for (format, bytes) in [("txt", text_of(&doc)), ("pdf", pdf_of(&doc))] {
            let name = format!("{}.{format}", doc.name);
            s.put(&name, &bytes);
            let result = s.extract(&name, &["requirements"]).await;
            assert_eq!(result["pageCount"], doc.pages.len(), "{name}");
            score(&mut scores, &doc, format, &result);
            check_spans(&doc, &result);
            check_broken(&doc, &result);
            // A repeated sentence is one requirement.
            let mut ids: Vec<&str> = items(&result)
                .iter()
                .map(|i| i["id"].as_str().unwrap())
                .collect();
            let count = ids.len();
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(ids.len(), count, "{name}: an id twice");
        }
    }
    scores.assert_at_least(0.9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_corpus_as_docx_and_odt_scores_at_least_0_9() {
    let s = ExtractServer::start().await;
    for (format, make) in [
        ("docx", office::docx as fn(&[&str]) -> Vec<u8>),
        ("odt", office::odt),
    ] {
        let mut scores = Scores::default();
        for doc in corpus() {
            let pages: Vec<String> = doc.pages.iter().map(|p| office_page(p)).collect();
            let pages: Vec<&str> = pages.iter().map(String::as_str).collect();
            let name = format!("{}.{format}", doc.name);
            s.put(&name, &make(&pages));
            let result = s.extract(&name, &["requirements"]).await;
            assert_eq!(result["format"], format);
            assert_eq!(result["pageCount"], doc.pages.len(), "{name}");
            score(&mut scores, &doc, format, &result);
            check_spans(&doc, &result);
            check_broken(&doc, &result);
        }
        println!("{format}:");
        scores.assert_at_least(0.9);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_chunk_carries_the_requirements_that_start_on_its_page() {
    let s = ExtractServer::start().await;
    let doc = corpus().into_iter().next().unwrap();
    s.put("cctp.pdf", &pdf_of(&doc));
    let mut ann = common::Tcp::connect(s.server.stomp_addr().unwrap(), "ann").await;
    ann.subscribe("p", "/user/queue/progress", "auto").await;
    let id = s
        .submit(
            "extract",
            &json!({"file": "cctp.pdf", "profiles": ["requirements"], "pagesPerChunk": 1}),
        )
        .await;
    let mut chunks: Vec<Value> = Vec::new();
    let result = loop {
        let frame: Frame = ann.frame().await;
        let event: Value = serde_json::from_slice(&frame.body).unwrap();
        if event["jobId"] != id.as_str() {
            continue;
        }
        assert_ne!(event["event"], "JOB_FAILED", "{event}");
        if event["event"] == "CHUNK_COMPLETED" {
            chunks.push(event["result"].clone());
        }
        if event["event"] == "JOB_COMPLETED" {
            break event["result"].clone();
        }
    };
    assert_eq!(chunks.len(), doc.pages.len(), "a chunk per page");
    let mut seen: Vec<(String, String)> = Vec::new();
    for chunk in &chunks {
        let page = chunk["pages"][0].as_u64().unwrap();
        for item in chunk["requirements"].as_array().unwrap() {
            // Each occurrence a chunk gives starts on its page.
            for occurrence in item["occurrences"].as_array().unwrap() {
                assert_eq!(occurrence["page"], page, "{item}");
            }
            seen.push((
                item["id"].as_str().unwrap().to_owned(),
                text(item).to_owned(),
            ));
        }
    }
    // A sentence over a page break comes once, whole, with the page it starts on.
    for broken in &doc.broken {
        let times = seen.iter().filter(|(_, t)| t == broken).count();
        assert_eq!(times, 1, "{broken}");
    }
    // The result joins the chunks: each id once, the repeated sentence with both places.
    let merged = items(&result);
    let mut ids: Vec<String> = seen.iter().map(|(id, _)| id.clone()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut merged_ids: Vec<String> = merged
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    merged_ids.sort_unstable();
    assert_eq!(merged_ids, ids);
    assert!(
        seen.len() > ids.len(),
        "the repeated sentence is in two chunks"
    );
    let repeated = doc.expected.iter().find(|e| e.sections.len() > 1).unwrap();
    let item = merged.iter().find(|i| text(i) == repeated.text).unwrap();
    let places: Vec<String> = item["occurrences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| section_number(&o["section"]))
        .collect();
    assert_eq!(places, repeated.sections);
    // Read whole in one chunk, the same requirements as page by page.
    let whole = s.extract("cctp.pdf", &["requirements"]).await;
    assert_eq!(items(&whole), merged);
}
