//! A document as the profiles see it: pages of plain text, each saying how it was read. The
//! job keeps it as `document.json` in its result directory between planning and the chunks,
//! and its result gives the same text, so that every span indexes what the user is shown.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

use super::found::Source;

/// How a page's text was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum PageSource {
    /// A plain text file (a page is a form-feed separated page, or a section of it).
    Text,
    /// A PDF's text layer.
    TextLayer,
    /// Recognised from an image by the `ocr` job type.
    Ocr,
    /// A DOCX document.
    Docx,
    /// An ODT document.
    Odt,
}

/// One page of text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Page {
    /// From 1.
    pub page: u32,
    /// Its text, lines separated by `\n`.
    pub text: String,
    /// How it was read.
    pub source: PageSource,
    /// OCR's mean word confidence (0 to 100), for recognised pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
}

impl Page {
    /// A page read from `source`.
    pub(crate) fn new(page: u32, text: String, source: PageSource) -> Page {
        Page {
            page,
            text,
            source,
            confidence: None,
        }
    }

    /// The span of bytes `start..end` of this page's text, in code points. Offsets that fall
    /// inside a character or past the end are moved to the nearest boundary before them.
    pub(crate) fn span(&self, start: usize, end: usize) -> Source {
        let start = floor_boundary(&self.text, start);
        let end = floor_boundary(&self.text, end.max(start));
        let start_chars = self.text[..start].chars().count();
        Source {
            page: self.page,
            start: start_chars,
            end: start_chars + self.text[start..end].chars().count(),
        }
    }

    /// How much a value read from this page can be trusted, from 0 to 1, before the
    /// profile's own doubt: recognised text is as good as OCR was sure of it.
    pub(crate) fn reliability(&self) -> f64 {
        match (self.source, self.confidence) {
            (PageSource::Ocr, Some(c)) => (c / 100.0).clamp(0.3, 1.0),
            (PageSource::Ocr, None) => 0.7,
            _ => 1.0,
        }
    }
}

fn floor_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// A whole document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Document {
    /// Its pages, in order.
    pub pages: Vec<Page>,
    /// The format it was read from (`text`, `pdf`, `docx`, `odt`, `image`).
    pub format: String,
    /// What reading it noticed (an encoding guessed, pages without text).
    pub warnings: Vec<String>,
    /// What the profiles work out from the whole document, once per document.
    #[serde(skip)]
    pub derived: Derived,
}

/// Results the profiles derive from a whole document (its running headers and footers), kept
/// with it: every chunk reads the same document, and working them out again per chunk made a
/// job's time grow with the square of its pages. Not data: neither stored nor compared, and a
/// clone starts empty.
#[derive(Default)]
pub(crate) struct Derived(Mutex<HashMap<&'static str, Arc<dyn Any + Send + Sync>>>);

impl Derived {
    /// The result named `key`, made by `make` the first time it is asked for.
    pub(crate) fn get_or_make<T: Any + Send + Sync>(
        &self,
        key: &'static str,
        make: impl FnOnce() -> T,
    ) -> Arc<T> {
        if let Some(found) = self.lock().get(key).cloned() {
            if let Ok(found) = found.downcast::<T>() {
                return found;
            }
        }
        // Made outside the lock: two chunks may both make it, once each, rather than wait.
        let made = Arc::new(make());
        self.lock().insert(key, made.clone());
        made
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<&'static str, Arc<dyn Any + Send + Sync>>> {
        // Inserts are whole values: a panic elsewhere leaves the map valid.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Clone for Derived {
    fn clone(&self) -> Derived {
        Derived::default()
    }
}

impl PartialEq for Derived {
    fn eq(&self, _: &Derived) -> bool {
        true
    }
}

impl std::fmt::Debug for Derived {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&str> = self.lock().keys().copied().collect();
        f.debug_tuple("Derived").field(&keys).finish()
    }
}

impl Document {
    /// True when no page has a letter or a digit.
    pub(crate) fn is_empty(&self) -> bool {
        self.pages
            .iter()
            .all(|p| !p.text.chars().any(char::is_alphanumeric))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_count_code_points_not_bytes() {
        let page = Page::new(2, "Réf. : 2025-001 à 10 €".into(), PageSource::Text);
        let start = page.text.find("2025").unwrap_or_default();
        let source = page.span(start, start + 8);
        assert_eq!((source.page, source.start, source.end), (2, 7, 15));
        let euro = page.text.find('€').unwrap_or_default();
        assert_eq!(page.span(euro, euro + 3).end, page.text.chars().count());
        // A byte offset inside 'é' falls back to its start.
        assert_eq!(page.span(2, 2).start, 1);
    }
}
