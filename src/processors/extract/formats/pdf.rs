//! PDFs: their text layer page by page (`pdftotext -layout`, a table row by row), and which
//! pages have none, so that they go through OCR.

use std::path::Path;
use std::time::Duration;

use crate::jobs::JobError;
use crate::processors::ocr::tools::{self as ocr_tools, Tools};

use super::super::document::{Page, PageSource};

/// A page with fewer letters and digits than this is taken for a scan (OCR's own threshold).
const TEXT_LAYER_MIN_CHARS: usize = 8;
/// Longest `pdftotext` may take on a whole document.
const TIME_LIMIT: Duration = Duration::from_secs(600);
/// Most text read from a PDF.
const OUTPUT_LIMIT: u64 = 256 * 1024 * 1024;

/// A PDF's pages as its text layer gives them.
#[derive(Debug)]
pub(crate) struct TextLayer {
    /// Every page; a page without a text layer has its (few) characters as they are.
    pub pages: Vec<Page>,
    /// Numbers (from 1) of the pages that have no text layer.
    pub scanned: Vec<u32>,
}

/// Reads the text layer of the PDF at `path` (opened with `password` when given), through
/// the file `work` (pdftotext writes there: a pipe would fill).
pub(crate) fn read(
    tools: &Tools,
    path: &Path,
    password: Option<&str>,
    work: &Path,
) -> Result<TextLayer, JobError> {
    let count = ocr_tools::pdf_pages(tools, path, password)?;
    let mut command = std::process::Command::new(tools.poppler("pdftotext"));
    command.args(["-layout", "-enc", "UTF-8"]);
    if let Some(password) = password {
        command.args(["-upw", password]);
    }
    command.arg(path).arg(work);
    let output = ocr_tools::run_blocking(command, TIME_LIMIT)?;
    if !output.status.success() {
        return Err(JobError::permanent(
            "unreadable_pdf",
            format!(
                "the PDF's text could not be read: {}",
                ocr_tools::first_line(&String::from_utf8_lossy(&output.stderr))
            ),
        ));
    }
    let io = |e: std::io::Error| JobError::retryable("io", format!("{}: {e}", work.display()));
    let size = std::fs::metadata(work).map_err(io)?.len();
    if size > OUTPUT_LIMIT {
        let _ = std::fs::remove_file(work);
        return Err(JobError::permanent(
            "too_large",
            format!("the PDF holds more than {} MiB of text", OUTPUT_LIMIT >> 20),
        ));
    }
    let bytes = std::fs::read(work).map_err(io)?;
    let _ = std::fs::remove_file(work);
    let text = String::from_utf8_lossy(&bytes);
    let mut pages = Vec::new();
    let mut scanned = Vec::new();
    for (i, sheet) in text.split('\u{c}').take(count as usize).enumerate() {
        let number = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let tidy = ocr_tools::tidy_layer(sheet);
        if tidy.chars().filter(|c| c.is_alphanumeric()).count() < TEXT_LAYER_MIN_CHARS {
            scanned.push(number);
        }
        pages.push(Page::new(number, tidy, PageSource::TextLayer));
    }
    // pdftotext ends every page with a form feed; a page it printed nothing for still counts.
    while pages.len() < count as usize {
        let number = u32::try_from(pages.len() + 1).unwrap_or(u32::MAX);
        scanned.push(number);
        pages.push(Page::new(number, String::new(), PageSource::TextLayer));
    }
    Ok(TextLayer { pages, scanned })
}
