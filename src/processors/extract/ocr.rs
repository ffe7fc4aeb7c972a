//! Scanned pages: the `ocr` child job's pages put in the document in place of the pages that
//! had no text.

use serde::Deserialize;

use crate::jobs::{ChildOutcome, JobError, JobStatus};

use super::document::{Document, Page, PageSource};

/// A page as the `ocr` job's `pages.json` gives it.
#[derive(Debug, Deserialize)]
struct Recognised {
    page: u32,
    text: String,
    confidence: Option<f64>,
    source: String,
    #[serde(default)]
    warnings: Vec<String>,
}

/// Puts what `child` (an `ocr` job) recognised into `document`; fails when it did not
/// complete.
pub(super) fn merge_into(document: &mut Document, child: &ChildOutcome) -> Result<(), JobError> {
    if child.status != JobStatus::Completed {
        let why = child
            .error
            .as_ref()
            .map_or_else(|| child.status.as_str().to_owned(), |e| e.message.clone());
        return Err(JobError::permanent(
            "ocr_failed",
            format!(
                "the OCR of the scanned pages (job {}) did not complete: {why}",
                child.id
            ),
        ));
    }
    let path = child.result_dir.join("pages.json");
    let bytes = std::fs::read(&path)
        .map_err(|e| JobError::retryable("io", format!("{}: {e}", path.display())))?;
    let pages: Vec<Recognised> = serde_json::from_slice(&bytes)
        .map_err(|e| JobError::retryable("io", format!("{}: {e}", path.display())))?;
    for page in pages {
        document.warnings.extend(page.warnings);
        let mut read = Page::new(page.page, page.text, PageSource::Ocr);
        if page.source == "textLayer" {
            read.source = PageSource::TextLayer;
        }
        read.confidence = page.confidence;
        match document.pages.iter_mut().find(|p| p.page == page.page) {
            Some(slot) => *slot = read,
            None => document.pages.push(read),
        }
    }
    document.pages.sort_by_key(|p| p.page);
    Ok(())
}
