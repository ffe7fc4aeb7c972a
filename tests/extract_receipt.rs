//! The `receipt` profile end to end: every receipt of the corpus through a real server's
//! `extract` job, as a UTF-8 text file, once as Windows-1252 bytes, and as a PDF with a text
//! layer (poppler's `pdftotext -layout` re-spaces its columns), as a DOCX whose columns are
//! table cells and an ODT whose columns stand at tab stops, and as scanned images that go
//! through an `ocr` child job. Each field is scored for
//! precision and recall over the corpus, and every value's span must point at the text the
//! value was read from.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/corpus_receipts.rs"]
mod corpus_receipts;
#[path = "common/documents.rs"]
mod documents;
#[path = "common/extraction.rs"]
mod extraction;
#[path = "common/office.rs"]
mod office;

use corpus_receipts::{receipts, Receipt};
use documents::{pdf, prose_page, rasterise, PdfPage};
use extraction::{spanned, ExtractServer, Scores};
use serde_json::Value;

/// Words joined by single spaces: a PDF's text layer re-spaces columns.
fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn money(value: f64) -> String {
    format!("{value:.2}")
}

fn figure(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"))
}

/// The value of a `Found` (or `None` for `null`), as a string.
fn text_of(found: &Value) -> Option<String> {
    match &found["value"] {
        Value::String(s) => Some(words(s)),
        Value::Number(n) => n.as_f64().map(money),
        _ => None,
    }
}

fn number_of(found: &Value) -> Option<f64> {
    found["value"].as_f64()
}

fn list(value: &Value) -> &[Value] {
    value.as_array().map_or(&[], Vec::as_slice)
}

/// Records one field in `scores`, printing it when it differs from what was expected, so that
/// a score under 1 says which receipt lost it.
fn field(
    scores: &mut Scores,
    name: &str,
    expected: impl IntoIterator<Item = String>,
    found: impl IntoIterator<Item = String>,
) {
    let expected: Vec<String> = expected.into_iter().collect();
    let found: Vec<String> = found.into_iter().collect();
    let (mut e, mut f) = (expected.clone(), found.clone());
    e.sort();
    f.sort();
    if e != f {
        println!("  {name}: expected {e:?}, found {f:?}");
    }
    scores.items(name, expected, found);
}

/// Scores what was extracted from `expected`'s document.
fn score(scores: &mut Scores, expected: &Receipt, receipt: &Value) {
    field(
        scores,
        "merchant",
        Some(words(expected.merchant)),
        text_of(&receipt["merchant"]),
    );
    field(
        scores,
        "date",
        Some(expected.date.to_owned()),
        text_of(&receipt["date"]),
    );
    field(
        scores,
        "time",
        expected.time.map(str::to_owned),
        text_of(&receipt["time"]),
    );
    field(
        scores,
        "total",
        Some(money(expected.total)),
        text_of(&receipt["total"]),
    );
    field(
        scores,
        "currency",
        Some(expected.currency.to_owned()),
        text_of(&receipt["currency"]),
    );
    field(
        scores,
        "paymentMethod",
        Some(expected.payment.to_owned()),
        text_of(&receipt["paymentMethod"]),
    );
    field(
        scores,
        "change",
        expected.change.map(money),
        text_of(&receipt["change"]),
    );
    field(
        scores,
        "vat",
        expected
            .vat
            .iter()
            .map(|v| format!("{}|{}|{}", figure(v.rate), figure(v.base), money(v.amount)))
            .collect::<Vec<_>>(),
        list(&receipt["vat"])
            .iter()
            .map(|v| {
                format!(
                    "{}|{}|{}",
                    figure(number_of(&v["rate"])),
                    figure(number_of(&v["base"])),
                    text_of(&v["amount"]).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>(),
    );
    field(
        scores,
        "otherTaxes",
        expected
            .other_taxes
            .iter()
            .map(|(label, amount)| format!("{}|{}", words(label), money(*amount)))
            .collect::<Vec<_>>(),
        list(&receipt["otherTaxes"])
            .iter()
            .map(|t| {
                format!(
                    "{}|{}",
                    text_of(&t["label"]).unwrap_or_default(),
                    text_of(&t["amount"]).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>(),
    );
    field(
        scores,
        "items",
        expected
            .items
            .iter()
            .map(|i| {
                format!(
                    "{}|{}|{}|{}|{}",
                    words(i.label),
                    figure(i.quantity),
                    i.unit.unwrap_or("-"),
                    figure(i.unit_price),
                    money(i.total)
                )
            })
            .collect::<Vec<_>>(),
        list(&receipt["items"])
            .iter()
            .map(|i| {
                format!(
                    "{}|{}|{}|{}|{}",
                    text_of(&i["label"]).unwrap_or_default(),
                    figure(number_of(&i["quantity"])),
                    i["unit"]["value"].as_str().unwrap_or("-"),
                    figure(number_of(&i["unitPrice"])),
                    text_of(&i["total"]).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>(),
    );
}

/// A figure as a span shows it (`17,30 EUR`, `£1.14`, `5,50%`, `1,859`), read back.
fn read_back(shown: &str) -> Option<f64> {
    let digits: String = shown
        .chars()
        .filter(|c| c.is_ascii_digit() || matches!(c, ',' | '.' | '-'))
        .collect();
    let separators = digits.matches([',', '.']).count();
    if separators <= 1 {
        digits.replace(',', ".").parse().ok()
    } else {
        // Thousands and decimals: the last mark is the decimal one.
        let at = digits.rfind([',', '.'])?;
        let whole: String = digits[..at].chars().filter(char::is_ascii_digit).collect();
        format!("{whole}.{}", &digits[at + 1..]).parse().ok()
    }
}

/// True when `source` is on a page OCR read.
fn from_ocr(result: &Value, source: &Value) -> bool {
    result["pages"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["page"] == source["page"] && p["source"] == "ocr")
}

/// True when `value` is `shown` mended of OCR's slips: the same letters and digits once
/// spaces are left out and `I`/`l` read as `1`, `O` as `0`.
fn mended(shown: &str, value: &str) -> bool {
    let fold = |text: &str| -> String {
        text.chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| match c {
                'I' | 'l' => '1',
                'O' => '0',
                other => other,
            })
            .collect()
    };
    fold(shown) == fold(value)
}

/// Checks that every value of `receipt` has a confidence and a span that shows it; returns
/// how many values were checked.
fn check_spans(result: &Value, key: &str, value: &Value) -> usize {
    match value {
        Value::Object(map) if map.contains_key("source") && map.contains_key("confidence") => {
            let confidence = map["confidence"].as_f64().unwrap();
            assert!(
                (0.0..=1.0).contains(&confidence),
                "{key}: confidence {confidence}"
            );
            let shown = spanned(result, &map["source"]);
            match &map["value"] {
                Value::Number(n) => {
                    let expected = n.as_f64().unwrap();
                    let read = read_back(&shown);
                    assert!(
                        read.is_some_and(|r| (r - expected).abs() < 1e-6),
                        "{key}: {expected} read from {shown:?}"
                    );
                }
                Value::String(s) => {
                    let ok = match key {
                        "merchant" | "label" => {
                            shown == *s || (from_ocr(result, &map["source"]) && mended(&shown, s))
                        }
                        "date" => shown.contains("2025"),
                        "time" => shown.contains(&s[3..]),
                        "currency" => matches!(
                            (s.as_str(), shown.as_str()),
                            ("EUR", "€" | "EUR") | ("GBP", "£") | ("USD", "$")
                        ),
                        "unit" => {
                            shown.to_lowercase().starts_with(&s[..1].to_lowercase())
                                || (from_ocr(result, &map["source"]) && mended(&shown, s))
                        }
                        "paymentMethod" => shown.chars().all(|c| c.is_alphabetic() || c == ' '),
                        _ => panic!("{key}: unexpected text value {s:?}"),
                    };
                    assert!(ok, "{key}: {s:?} read from {shown:?}");
                }
                other => panic!("{key}: unexpected value {other}"),
            }
            1
        }
        Value::Object(map) => map.iter().map(|(k, v)| check_spans(result, k, v)).sum(),
        Value::Array(items) => items.iter().map(|v| check_spans(result, key, v)).sum(),
        _ => 0,
    }
}

/// Extracts `file`, scores it against `expected` and checks its spans.
async fn run(server: &ExtractServer, scores: &mut Scores, file: &str, expected: &Receipt) -> Value {
    println!("{file}");
    let result = server.extract(file, &["receipt"]).await;
    let receipt = &result["receipt"];
    score(scores, expected, receipt);
    let checked = check_spans(&result, "receipt", receipt);
    assert!(checked >= 6, "{file}: only {checked} values");
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_as_text_files() {
    let server = ExtractServer::start().await;
    let mut scores = Scores::default();
    let corpus = receipts();
    assert!(corpus.len() >= 8);
    for receipt in &corpus {
        let file = format!("{}.txt", receipt.name);
        server.put(&file, receipt.text.as_bytes());
        let _ = run(&server, &mut scores, &file, receipt).await;
    }
    // Windows-1252 bytes (é as 0xE9, € as 0x80), as an old till's export gives them.
    let restaurant = corpus.iter().find(|r| r.name == "restaurant").unwrap();
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(restaurant.text);
    assert!(!unmappable && bytes.contains(&0x80) && bytes.contains(&0xE9));
    server.put("restaurant-1252.txt", &bytes);
    let result = run(&server, &mut scores, "restaurant-1252.txt", restaurant).await;
    assert!(
        result["warnings"].to_string().contains("Windows-1252"),
        "{}",
        result["warnings"]
    );
    assert_eq!(result["receipt"]["items"][2]["label"]["value"], "Café");
    println!("text files:");
    scores.assert_at_least(0.9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_as_pdfs_with_a_text_layer() {
    let server = ExtractServer::start().await;
    let mut scores = Scores::default();
    for receipt in &receipts() {
        // The test PDF writer sets each character as its byte: € is 0x80 in WinAnsi.
        let text = receipt.text.replace('€', "\u{80}");
        let file = format!("{}.pdf", receipt.name);
        server.put(&file, &pdf(&[PdfPage::Text(prose_page(&text))]));
        let _ = run(&server, &mut scores, &file, receipt).await;
    }
    println!("PDFs:");
    scores.assert_at_least(0.9);
}

/// A receipt line's columns: its runs of text two spaces or more apart.
fn columns(line: &str) -> Vec<&str> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

/// A receipt as a word processor holds it: lines of one column as paragraphs (a centred
/// heading has no leading spaces), lines of several columns joined by `separator` (` | `
/// makes them table rows in the test writer, a tab sets them at tab stops).
fn office_page(receipt: &Receipt, separator: &str) -> String {
    receipt
        .lines()
        .iter()
        .map(|line| columns(line).join(separator))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_as_docx_tables_and_odt_tab_stops() {
    let server = ExtractServer::start().await;
    for (format, separator, make) in [
        ("docx", " | ", office::docx as fn(&[&str]) -> Vec<u8>),
        ("odt", "\t", office::odt),
    ] {
        let mut scores = Scores::default();
        for receipt in &receipts() {
            let file = format!("{}.{format}", receipt.name);
            server.put(&file, &make(&[&office_page(receipt, separator)]));
            let result = run(&server, &mut scores, &file, receipt).await;
            assert_eq!(result["format"], format);
        }
        println!("{format}:");
        scores.assert_at_least(0.9);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_as_scanned_images_through_ocr() {
    let server = ExtractServer::start().await;
    let work = tempfile::tempdir().unwrap();
    let mut scores = Scores::default();
    for receipt in &receipts() {
        let text = receipt.text.replace('€', "\u{80}");
        let source = pdf(&[PdfPage::Text(prose_page(&text))]);
        let file = format!("{}.png", receipt.name);
        server.put(&file, &rasterise(work.path(), &source, 1, "png"));
        println!("{file}");
        let result = server.extract(&file, &["receipt"]).await;
        assert_eq!(result["pages"][0]["source"], "ocr", "{file}");
        // What OCR gave, to read with --nocapture when a field is lost.
        println!(
            "{}",
            result["pages"][0]["text"].as_str().unwrap_or_default()
        );
        let receipt_found = &result["receipt"];
        score(&mut scores, receipt, receipt_found);
        check_spans(&result, "receipt", receipt_found);
    }
    println!("scanned images (OCR):");
    scores.assert_at_least(0.9);
}
