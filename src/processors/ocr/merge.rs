//! The merge of an OCR job: the chunks' pages joined into `text.txt`, `pages.json` and
//! `searchable.pdf`, and the job's result.
//!
//! Streamed, one chunk's pages in memory at a time: every word of a page is kept with its box
//! as a JSON value, so holding a long document's pages all at once made the merge's memory
//! grow with the page count, outside any bound. Only each page's summary (its number, source,
//! confidence, length and warnings) stays until the end.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::params::Params;
use super::tools::{first_line, run_blocking};
use super::{io, searchable, Page, SALVAGED_PDF, SALVAGE_NOTE};
use crate::jobs::{JobError, JobInput};

/// Joins the chunks' pages into the job's files and result.
pub(super) fn merge(job: &JobInput, chunks: usize) -> Result<Value, JobError> {
    let p = Params::parse(&job.params)?;
    let parts = job.result_dir.join("parts");
    std::fs::create_dir_all(&job.result_dir).map_err(|e| io(&job.result_dir, e))?;
    let text_path = job.result_dir.join("text.txt");
    let pages_path = job.result_dir.join("pages.json");
    let mut text = p
        .outputs
        .text
        .then(|| Output::create(&text_path))
        .transpose()?;
    let mut pages_json = p
        .outputs
        .pages
        .then(|| Output::create(&pages_path))
        .transpose()?;
    if let Some(out) = &mut pages_json {
        out.write(b"[")?;
    }

    let mut summaries = Vec::new();
    let mut page_warnings: Vec<String> = Vec::new();
    let mut searchable_parts: Vec<PathBuf> = Vec::new();
    let mut seen_parts = HashSet::new();
    let mut readable = 0usize;
    for chunk in 0..chunks {
        let part = parts.join(format!("{chunk}.json"));
        let bytes = std::fs::read(&part).map_err(|e| io(&part, e))?;
        let chunk_pages: Vec<Page> = serde_json::from_slice(&bytes)
            .map_err(|e| JobError::retryable("io", format!("{}: {e}", part.display())))?;
        drop(bytes);
        for page in chunk_pages {
            let first = summaries.is_empty();
            if let Some(out) = &mut text {
                if !first {
                    out.write("\n\u{c}\n".as_bytes())?;
                }
                out.write(page.text.as_bytes())?;
            }
            if let Some(out) = &mut pages_json {
                if !first {
                    out.write(b",")?;
                }
                out.write_json(&page)?;
            }
            if page.source != "none" {
                readable += 1;
            }
            let pdf = searchable(&parts, page.page).with_extension("pdf");
            if pdf.exists() && seen_parts.insert(pdf.clone()) {
                searchable_parts.push(pdf);
            }
            summaries.push(json!({
                "page": page.page,
                "source": page.source,
                "confidence": page.confidence,
                "chars": page.text.chars().count(),
                "warnings": page.warnings,
            }));
            page_warnings.extend(page.warnings);
        }
    }
    if !summaries.is_empty() && readable == 0 {
        drop((text, pages_json));
        let _ = std::fs::remove_file(&text_path);
        let _ = std::fs::remove_file(&pages_path);
        let why = summaries[0]["warnings"][0]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        return Err(JobError::permanent(
            "unreadable",
            format!("no page could be read ({why})"),
        ));
    }

    let mut files = Map::new();
    if let Some(out) = text {
        out.finish()?;
        files.insert("text.txt".into(), json!(text_path.display().to_string()));
    }
    if let Some(mut out) = pages_json {
        out.write(b"]")?;
        out.finish()?;
        files.insert("pages.json".into(), json!(pages_path.display().to_string()));
    }
    let mut merge_warnings = Vec::new();
    let note = job.result_dir.join(SALVAGE_NOTE);
    if let Ok(bytes) = std::fs::read(&note) {
        if let Some(warning) = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v["warning"].as_str().map(str::to_owned))
        {
            merge_warnings.push(warning);
        }
    }
    if p.outputs.pdf {
        let path = job.result_dir.join("searchable.pdf");
        assemble_pdf(&searchable_parts, &path, &mut merge_warnings)?;
        if path.exists() {
            files.insert("searchable.pdf".into(), json!(path.display().to_string()));
        }
    }
    merge_warnings.extend(page_warnings);
    let result = json!({
        "pageCount": summaries.len(),
        "pages": summaries,
        "warnings": merge_warnings,
        "files": files,
    });
    let _ = std::fs::remove_dir_all(&parts);
    let _ = std::fs::remove_file(job.result_dir.join(SALVAGED_PDF));
    let _ = std::fs::remove_file(&note);
    Ok(result)
}

/// Joins the pages' searchable PDFs, in page order, into `path`.
fn assemble_pdf(
    parts: &[PathBuf],
    path: &Path,
    warnings: &mut Vec<String>,
) -> Result<(), JobError> {
    match parts {
        [] => warnings.push("no page could be put in searchable.pdf".to_owned()),
        [one] => {
            std::fs::copy(one, path).map_err(|e| io(path, e))?;
        }
        many => {
            let mut command = std::process::Command::new("pdfunite");
            command.args(many).arg(path);
            let output = run_blocking(command, Duration::from_secs(600))?;
            if !output.status.success() {
                return Err(JobError::retryable(
                    "io",
                    format!(
                        "searchable.pdf could not be assembled: {}",
                        first_line(&String::from_utf8_lossy(&output.stderr))
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// A result file written as the pages come.
struct Output<'a> {
    path: &'a Path,
    file: BufWriter<File>,
}

impl<'a> Output<'a> {
    fn create(path: &'a Path) -> Result<Output<'a>, JobError> {
        let file = File::create(path).map_err(|e| io(path, e))?;
        Ok(Output {
            path,
            file: BufWriter::with_capacity(64 * 1024, file),
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), JobError> {
        self.file.write_all(bytes).map_err(|e| io(self.path, e))
    }

    fn write_json<T: serde::Serialize>(&mut self, value: &T) -> Result<(), JobError> {
        serde_json::to_writer(&mut self.file, value).map_err(|e| io(self.path, e))
    }

    fn finish(mut self) -> Result<(), JobError> {
        self.file.flush().map_err(|e| io(self.path, e))
    }
}
