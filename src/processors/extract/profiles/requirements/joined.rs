//! Text joined from pieces of pages (lines, table cells), knowing where each of its bytes
//! was read, so that a sentence joined over a page break still points at both pages.

use std::ops::Range;

/// A piece of one page's text inside a [`Joined`] text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    /// Where it starts in the joined text.
    at: usize,
    /// Index of its page.
    page: usize,
    /// Where it starts in the page's text.
    start: usize,
    /// Its length in bytes (the same in both).
    len: usize,
}

/// A span of one page's text: the index of the page and bytes of its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Part {
    /// Index of the page in the document.
    pub page: usize,
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

/// Text joined from pieces of pages (lines, cells), knowing where each byte came from.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Joined {
    /// The pieces, a space (or a cell separator) between them.
    pub text: String,
    segments: Vec<Segment>,
}

impl Joined {
    /// Adds `text`, read at byte `start` of page `page`, after `separator`.
    pub(super) fn push(&mut self, page: usize, start: usize, text: &str, separator: &str) {
        if !self.text.is_empty() {
            self.text.push_str(separator);
        }
        self.segments.push(Segment {
            at: self.text.len(),
            page,
            start,
            len: text.len(),
        });
        self.text.push_str(text);
    }

    /// Adds every piece of `other` after `separator`.
    pub(super) fn append(&mut self, other: &Joined, separator: &str) {
        if other.text.is_empty() {
            return;
        }
        if !self.text.is_empty() {
            self.text.push_str(separator);
        }
        let shift = self.text.len();
        self.segments.extend(other.segments.iter().map(|s| Segment {
            at: s.at + shift,
            ..*s
        }));
        self.text.push_str(&other.text);
    }

    /// Bytes `range` of the text, with their origins.
    pub(super) fn slice(&self, range: Range<usize>) -> Joined {
        let segments = self
            .segments
            .iter()
            .filter_map(|s| {
                let from = s.at.max(range.start);
                let to = (s.at + s.len).min(range.end);
                (from < to).then(|| Segment {
                    at: from - range.start,
                    page: s.page,
                    start: s.start + (from - s.at),
                    len: to - from,
                })
            })
            .collect();
        Joined {
            text: self.text[range].to_owned(),
            segments,
        }
    }

    /// Where bytes `range` of the text were read: one span per page they run over, from the
    /// first byte read on that page to the last.
    pub(super) fn parts(&self, range: Range<usize>) -> Vec<Part> {
        let mut parts: Vec<Part> = Vec::new();
        for s in &self.segments {
            let from = s.at.max(range.start);
            let to = (s.at + s.len).min(range.end);
            if from >= to {
                continue;
            }
            let (start, end) = (s.start + (from - s.at), s.start + (to - s.at));
            match parts.last_mut() {
                Some(last) if last.page == s.page => last.end = last.end.max(end),
                _ => parts.push(Part {
                    page: s.page,
                    start,
                    end,
                }),
            }
        }
        parts
    }

    /// Where the whole text was read.
    pub(super) fn all_parts(&self) -> Vec<Part> {
        self.parts(0..self.text.len())
    }

    /// The text, every run of spaces one space.
    pub(super) fn collapsed(&self) -> String {
        collapse(&self.text)
    }
}

/// `text` with every run of white space one space, and none at the ends.
pub(super) fn collapse(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}
