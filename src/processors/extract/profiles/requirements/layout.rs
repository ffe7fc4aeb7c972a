//! A page's body: its lines without the running headers and footers and page numbers that
//! repeat at the top and bottom of most pages, so that a sentence broken by a page break
//! reads on from the last body line of one page to the first of the next.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use regex::Regex;

use super::super::super::document::Document;

/// How many non-blank lines at each edge of a page may be a header or a footer.
const EDGE_LINES: usize = 3;

/// A page number on a line of its own: `Page 3/12`, `page 3 sur 12`, `- 3 -`, `3 / 12`, `3`.
static PAGE_NUMBER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^(?:page|p\.|pg\.?)?\s*[-–—]?\s*\d{1,4}\s*(?:(?:/|sur|of|de)\s*\d{1,4})?\s*[-–—]?$",
    )
    .unwrap_or_else(|e| unreachable!("page number pattern: {e}"))
});

/// One line of a page's body.
#[derive(Debug, Clone, Copy)]
pub(super) struct Line<'a> {
    /// Index of its page in the document.
    pub page: usize,
    /// The line as the page has it, leading spaces included (they place table cells).
    pub raw: &'a str,
    /// Byte offset of `raw` in the page's text.
    pub offset: usize,
}

impl<'a> Line<'a> {
    /// The line without its leading and trailing spaces.
    pub(super) fn text(&self) -> &'a str {
        self.raw.trim()
    }

    /// True for a line with nothing but spaces.
    pub(super) fn is_blank(&self) -> bool {
        self.raw.trim().is_empty()
    }

    /// Bytes of the page's text that [`Line::text`] spans.
    pub(super) fn span(&self) -> (usize, usize) {
        let lead = self.raw.len() - self.raw.trim_start().len();
        let start = self.offset + lead;
        (start, start + self.raw.trim().len())
    }
}

/// What repeats at the edges of a document's pages.
#[derive(Debug, Default)]
pub(super) struct Layout {
    /// Keys ([`key`]) of lines found at the edges of most pages.
    running: HashSet<String>,
}

/// A line as headers and footers are compared: lower case, spaces collapsed, digits as `#`
/// (so that `Page 3/12` and `Page 4/12` are one line). A line that starts with a number
/// keeps its digits: `1. Lot 1` and `2. Lot 2` are headings, not one running line.
fn key(line: &str) -> String {
    let numbered = line.trim_start().starts_with(|c: char| c.is_ascii_digit());
    let mut out = String::with_capacity(line.len());
    for word in line.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().map(|c| {
            if c.is_ascii_digit() && !numbered {
                '#'
            } else {
                c.to_lowercase().next().unwrap_or(c)
            }
        }));
    }
    out
}

/// The non-blank lines at the top and at the bottom of `text` (at most [`EDGE_LINES`] each).
fn edges(text: &str) -> impl Iterator<Item = &str> {
    let top = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(EDGE_LINES);
    let bottom = text
        .lines()
        .rev()
        .filter(|l| !l.trim().is_empty())
        .take(EDGE_LINES);
    top.chain(bottom)
}

impl Layout {
    /// Finds the running headers and footers of `document`: a line (digits aside) at the
    /// edges of a strict majority of its pages, and of at least two. One pass over the
    /// pages' edges, so linear in the number of pages.
    pub(super) fn of(document: &Document) -> Layout {
        let mut counts: HashMap<String, usize> = HashMap::new();
        let mut seen: Vec<String> = Vec::with_capacity(2 * EDGE_LINES);
        for page in &document.pages {
            seen.clear();
            for line in edges(&page.text) {
                let k = key(line);
                if !seen.contains(&k) {
                    seen.push(k);
                }
            }
            for k in seen.drain(..) {
                *counts.entry(k).or_default() += 1;
            }
        }
        let pages = document.pages.len();
        let running = counts
            .into_iter()
            .filter(|(_, n)| *n >= 2 && 2 * *n > pages)
            .map(|(k, _)| k)
            .collect();
        Layout { running }
    }

    /// True when `line` is a header, a footer or a page number (at a page's edge).
    fn is_furniture(&self, line: &str) -> bool {
        let line = line.trim();
        PAGE_NUMBER.is_match(line) || self.running.contains(&key(line))
    }

    /// The body of page `index` of `document`: its lines but the headers, footers and page
    /// numbers that run from its top or bottom edge, and but the blank lines at its edges
    /// (a page break is not a paragraph break).
    pub(super) fn body<'a>(&self, document: &'a Document, index: usize) -> Vec<Line<'a>> {
        let Some(page) = document.pages.get(index) else {
            return Vec::new();
        };
        let mut lines: Vec<Line<'a>> = Vec::new();
        let mut offset = 0;
        for raw in page.text.split('\n') {
            lines.push(Line {
                page: index,
                raw,
                offset,
            });
            offset += raw.len() + 1;
        }
        // From the top: skip blanks and furniture, up to EDGE_LINES furniture lines.
        let mut first = 0;
        let mut skipped = 0;
        while first < lines.len() {
            let line = &lines[first];
            if line.is_blank() {
                first += 1;
            } else if skipped < EDGE_LINES && self.is_furniture(line.raw) {
                skipped += 1;
                first += 1;
            } else {
                break;
            }
        }
        let mut last = lines.len();
        let mut skipped = 0;
        while last > first {
            let line = &lines[last - 1];
            if line.is_blank() {
                last -= 1;
            } else if skipped < EDGE_LINES && self.is_furniture(line.raw) {
                skipped += 1;
                last -= 1;
            } else {
                break;
            }
        }
        lines.truncate(last);
        lines.drain(..first);
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::super::document::{Page, PageSource};
    use super::*;

    fn document(pages: &[&str]) -> Document {
        Document {
            pages: pages
                .iter()
                .enumerate()
                .map(|(i, t)| Page::new(i as u32 + 1, (*t).to_owned(), PageSource::Text))
                .collect(),
            format: "text".into(),
            warnings: Vec::new(),
            derived: Default::default(),
        }
    }

    #[test]
    fn running_lines_and_page_numbers_are_not_body() {
        let doc = document(&[
            "CCTP - Lot 2\n\nLe titulaire doit livrer\n\nVersion 3 - Page 1/3",
            "CCTP - Lot 2\nle matériel.\nUne phrase.\n\nVersion 3 - Page 2/3",
            "CCTP - Lot 2\nFin.\n- 3 -",
        ]);
        let layout = Layout::of(&doc);
        let texts: Vec<Vec<&str>> = (0..3)
            .map(|i| layout.body(&doc, i).iter().map(|l| l.text()).collect())
            .collect();
        assert_eq!(texts[0], vec!["Le titulaire doit livrer"]);
        assert_eq!(texts[1], vec!["le matériel.", "Une phrase."]);
        assert_eq!(texts[2], vec!["Fin."]);
        let line = layout.body(&doc, 1)[0];
        let (start, end) = line.span();
        assert_eq!(&doc.pages[1].text[start..end], "le matériel.");
    }

    #[test]
    fn a_line_on_a_minority_of_pages_stays() {
        let doc = document(&[
            "Titre\nA.",
            "Titre\nB.",
            "Autre\nC.",
            "Autre 2\nD.",
            "X\nE.",
        ]);
        let layout = Layout::of(&doc);
        assert_eq!(layout.body(&doc, 0).len(), 2);
    }
}
