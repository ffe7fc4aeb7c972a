//! What every profile returns for one value: the value, how sure the extractor is, and where
//! in the document it stands, so that a page can highlight it.

use serde::{Deserialize, Serialize};

use super::document::Page;

/// Where a value was read: a span of one page's text, in Unicode code points (the unit of
/// `Array.from(text)` in JavaScript and of `str` indexing in Python), as the job's result
/// gives that page's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct Source {
    /// The page, from 1.
    pub page: u32,
    /// First code point of the span.
    pub start: usize,
    /// One past its last code point.
    pub end: usize,
}

/// One extracted value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Found<T> {
    /// The value, normalised (dates ISO 8601, amounts as numbers).
    pub value: T,
    /// How sure the extractor is, from 0 to 1.
    pub confidence: f64,
    /// Where it was read.
    pub source: Source,
}

impl<T> Found<T> {
    /// `value` read from bytes `start..end` of `page`'s text.
    pub(crate) fn at(value: T, confidence: f64, page: &Page, start: usize, end: usize) -> Self {
        Found {
            value,
            confidence: confidence.clamp(0.0, 1.0),
            source: page.span(start, end),
        }
    }

    /// The same place and confidence, another value.
    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> Found<U> {
        Found {
            value: f(self.value),
            confidence: self.confidence,
            source: self.source,
        }
    }
}

/// Of two readings of one field, the one to keep: the more confident, then the earlier.
pub(crate) fn better<T>(a: Option<Found<T>>, b: Option<Found<T>>) -> Option<Found<T>> {
    match (a, b) {
        (Some(a), Some(b)) => {
            let b_wins = b.confidence > a.confidence
                || (b.confidence == a.confidence
                    && (b.source.page, b.source.start) < (a.source.page, a.source.start));
            Some(if b_wins { b } else { a })
        }
        (a, None) => a,
        (None, b) => b,
    }
}
