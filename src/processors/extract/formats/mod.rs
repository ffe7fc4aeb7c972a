//! The input formats extraction reads, decided from the content (never from the file name),
//! and reading each into a [`Document`].

pub(crate) mod office;
pub(crate) mod pdf;
pub(crate) mod text;

use std::path::Path;

use crate::jobs::JobError;
use crate::processors::ocr::tools::Tools;

use super::document::{Document, PageSource};

/// Most bytes of a plain text input.
const TEXT_LIMIT: u64 = 64 * 1024 * 1024;

/// An input format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// UTF-8, UTF-16 or Windows-1252 text.
    Text,
    /// PDF, with a text layer, scanned, or mixed page by page.
    Pdf,
    /// PNG, JPEG or TIFF: read by OCR.
    Image,
    /// Word's Office Open XML.
    Docx,
    /// OpenDocument text.
    Odt,
}

impl Format {
    /// The name the result gives.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Pdf => "pdf",
            Format::Image => "image",
            Format::Docx => "docx",
            Format::Odt => "odt",
        }
    }
}

/// The format of the file at `path`, which starts with `head`, or why it cannot be read.
pub(crate) fn identify(path: &Path, head: &[u8]) -> Result<Format, JobError> {
    match sniff(head) {
        Err(_) if head.starts_with(b"PK\x03\x04") => {
            let file = std::fs::File::open(path)
                .map_err(|e| JobError::retryable("io", format!("{}: {e}", path.display())))?;
            match office::detect(std::io::BufReader::new(file)) {
                Some(office::Office::Docx) => Ok(Format::Docx),
                Some(office::Office::Odt) => Ok(Format::Odt),
                None => sniff(head),
            }
        }
        sniffed => sniffed,
    }
}

/// The format of a file starting with `head`, or why it cannot be read (a ZIP archive is
/// refused here: [`identify`] looks inside it).
fn sniff(head: &[u8]) -> Result<Format, JobError> {
    let unsupported = |seems: &str| {
        JobError::permanent(
            "unsupported_format",
            format!(
                "the file is {seems}: extraction reads text, PDF, DOCX, ODT, PNG, JPEG and TIFF"
            ),
        )
    };
    // An empty file is an empty document, which completes with a warning.
    if head.is_empty() {
        return Ok(Format::Text);
    }
    if head.windows(5).take(1024).any(|w| w == b"%PDF-") {
        return Ok(Format::Pdf);
    }
    if head.starts_with(b"\x89PNG\r\n\x1a\n")
        || head.starts_with(&[0xFF, 0xD8, 0xFF])
        || head.starts_with(b"II*\0")
        || head.starts_with(b"MM\0*")
    {
        return Ok(Format::Image);
    }
    if head.starts_with(b"PK\x03\x04") {
        return Err(unsupported(
            "a ZIP archive that is not a DOCX or ODT document",
        ));
    }
    if text::looks_like_text(head) {
        return Ok(Format::Text);
    }
    Err(unsupported("binary"))
}

/// What reading an input gave.
#[derive(Debug)]
pub(crate) struct Read {
    /// The document as far as it could be read without OCR.
    pub document: Document,
    /// Pages (from 1) that must be recognised first; empty when none.
    pub needs_ocr: Vec<u32>,
}

/// Reads the file at `path` in `format`; `work` is a scratch file the reader may use.
pub(crate) fn read(
    format: Format,
    path: &Path,
    tools: &Tools,
    password: Option<&str>,
    work: &Path,
) -> Result<Read, JobError> {
    let io = |e: std::io::Error| JobError::retryable("io", format!("{}: {e}", path.display()));
    let mut document = Document {
        format: format.name().to_owned(),
        ..Document::default()
    };
    let needs_ocr = match format {
        Format::Text => {
            let size = std::fs::metadata(path).map_err(io)?.len();
            if size > TEXT_LIMIT {
                return Err(JobError::permanent(
                    "too_large",
                    format!("text inputs are read up to {} MiB", TEXT_LIMIT >> 20),
                ));
            }
            let (text, warning) = text::decode(&std::fs::read(path).map_err(io)?);
            document.warnings.extend(warning);
            document.pages = text::pages(&text, PageSource::Text);
            Vec::new()
        }
        Format::Pdf => {
            let layer = pdf::read(tools, path, password, work)?;
            document.pages = layer.pages;
            layer.scanned
        }
        Format::Image => vec![1],
        Format::Docx | Format::Odt => {
            let file = std::fs::File::open(path).map_err(io)?;
            let (kind, source) = match format {
                Format::Docx => (office::Office::Docx, PageSource::Docx),
                _ => (office::Office::Odt, PageSource::Odt),
            };
            let text = office::text(std::io::BufReader::new(file), kind)?;
            document.pages = text::pages(&text, source);
            Vec::new()
        }
    };
    Ok(Read {
        document,
        needs_ocr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_come_from_the_content() {
        assert_eq!(sniff(b"%PDF-1.7\n").ok(), Some(Format::Pdf));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n....").ok(), Some(Format::Image));
        assert_eq!(sniff("Règlement\n".as_bytes()).ok(), Some(Format::Text));
        let refused = sniff(b"\x00\x00\x01binary").err();
        assert_eq!(
            refused.map(|e| e.code),
            Some("unsupported_format".to_owned())
        );
    }
}
