//! A page as the rules read it: its lines with their byte offsets, each line's cells (the
//! columns `pdftotext -layout` separates with runs of spaces), its sentences, and labelled
//! values (`Label : value`, a label cell and its value cell, or a label line and the value
//! on the next). Lines the document repeats on most pages (running headers and footers) are
//! blanked first, so that no rule reads them once per page.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

use super::super::super::document::{Document, Page, PageSource};

/// One line of a page.
#[derive(Debug, Clone, Copy)]
pub(super) struct Line<'a> {
    /// Its first byte in the page's text.
    pub start: usize,
    /// Its text, without the line end (empty for a blanked header or footer).
    pub text: &'a str,
    /// True for a running header or footer (blanked).
    pub boilerplate: bool,
}

impl<'a> Line<'a> {
    /// One past its last byte.
    pub(super) fn end(&self) -> usize {
        self.start + self.text.len()
    }

    /// True when it holds nothing but spaces.
    pub(super) fn is_blank(&self) -> bool {
        self.text.trim().is_empty()
    }

    /// Its leading spaces, in characters.
    pub(super) fn indent(&self) -> usize {
        self.text.chars().take_while(|c| c.is_whitespace()).count()
    }

    /// Its cells: the runs of text between gaps of two spaces or more (or a tab), each with
    /// its first byte in the page.
    pub(super) fn cells(&self) -> Vec<Cell<'a>> {
        let mut cells = Vec::new();
        let mut from = 0;
        for gap in GAP.find_iter(self.text) {
            push_cell(&mut cells, self.start, self.text, from..gap.start());
            from = gap.end();
        }
        push_cell(&mut cells, self.start, self.text, from..self.text.len());
        cells
    }
}

fn push_cell<'a>(cells: &mut Vec<Cell<'a>>, base: usize, text: &'a str, range: Range<usize>) {
    let raw = &text[range.clone()];
    let trimmed = raw.trim_start();
    let start = range.start + (raw.len() - trimmed.len());
    let trimmed = trimmed.trim_end();
    if !trimmed.is_empty() {
        cells.push(Cell {
            start: base + start,
            text: trimmed,
        });
    }
}

/// A column gap in layout text.
static GAP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[ \u{a0}]{2,}|\t").unwrap_or_else(|e| unreachable!("gap pattern: {e}"))
});

/// One cell of a line.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cell<'a> {
    /// Its first byte in the page's text.
    pub start: usize,
    /// Its text, trimmed.
    pub text: &'a str,
}

/// A list marker at the start of a line or cell: `-`, `•`, `1.`, `2.1`, `a)`, `ii.`.
static MARKER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:[-–—•*·▪►>]\s*|(?:\d{1,2}(?:\.\d{1,2})*|[a-h]|i{1,3}|iv|vi{0,3})[.)°]\s+|\d{1,2}\.\d{1,2}\s+)")
        .unwrap_or_else(|e| unreachable!("marker pattern: {e}"))
});

/// The length in bytes of the list marker `text` starts with (0 without one).
pub(super) fn marker_len(text: &str) -> usize {
    MARKER.find(text).map_or(0, |m| m.end())
}

/// A page with its running headers and footers blanked.
#[derive(Debug)]
pub(super) struct PageView<'a> {
    /// The page.
    pub page: &'a Page,
    /// Every line, in order.
    pub lines: Vec<Line<'a>>,
}

impl<'a> PageView<'a> {
    /// `page`'s lines, those in `boilerplate` blanked.
    pub(super) fn new(page: &'a Page, boilerplate: &HashSet<String>) -> PageView<'a> {
        let mut lines = Vec::new();
        let mut start = 0;
        for raw in page.text.split('\n') {
            let repeated = boilerplate.contains(&line_key(raw));
            let text = if repeated { "" } else { raw };
            lines.push(Line {
                start,
                text,
                boilerplate: repeated,
            });
            start += raw.len() + 1;
        }
        PageView { page, lines }
    }

    /// The text of bytes `range` of the page.
    pub(super) fn slice(&self, range: Range<usize>) -> &'a str {
        self.page.text.get(range).unwrap_or("")
    }

    /// The page's sentences as byte ranges: cut after `.`, `;`, `!` or `?` before a space
    /// (not after an abbreviation), at blank lines, and at a line break when the next line
    /// starts a new item (a capital, a list marker) or the line ends a sentence. A label
    /// line ending with `:` runs on into the next line, which holds its value.
    pub(super) fn sentences(&self) -> Vec<Range<usize>> {
        let mut out = Vec::new();
        let mut current: Option<usize> = None;
        let mut last_end = 0;
        for (i, line) in self.lines.iter().enumerate() {
            if line.is_blank() {
                if let Some(start) = current.take() {
                    out.push(start..last_end);
                }
                continue;
            }
            let first = line.start + line.indent();
            let continues = current.is_some() && {
                let previous = self.lines[..i]
                    .iter()
                    .rev()
                    .find(|l| !l.is_blank())
                    .map_or("", |l| l.text.trim_end());
                let next = line.text.trim_start();
                let opens =
                    next.chars().next().is_some_and(char::is_uppercase) || marker_len(next) > 0;
                previous.ends_with(':')
                    || (!previous.ends_with(['.', ';', '!', '?']) && !opens && !has_gap(previous))
            };
            if !continues {
                if let Some(start) = current.take() {
                    out.push(start..last_end);
                }
                current = Some(first);
            }
            // Sentence ends inside the line.
            for stop in STOP.find_iter(line.text) {
                let at = line.start + stop.start() + 1;
                let before = &line.text[..stop.start()];
                if is_abbreviation(before) {
                    continue;
                }
                if let Some(start) = current.take() {
                    out.push(start..at);
                }
                let rest = line.start + stop.end();
                current = (rest < line.end()).then_some(rest);
            }
            last_end = line.end();
        }
        if let Some(start) = current {
            out.push(start..last_end);
        }
        out.retain(|r| r.end > r.start);
        out
    }
}

/// True when a line holds a column gap past its indentation (a table row or a label and
/// its value): such a line ends its sentence.
fn has_gap(line: &str) -> bool {
    GAP.is_match(line.trim())
}

static STOP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[.;!?]\s+").unwrap_or_else(|e| unreachable!("stop pattern: {e}"))
});

/// True when `before` (the text up to a full stop) ends with an abbreviation or an initial,
/// whose stop does not end the sentence.
fn is_abbreviation(before: &str) -> bool {
    let word: String = before
        .chars()
        .rev()
        .take_while(|c| c.is_alphanumeric() || *c == '°')
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let lower = word.to_lowercase();
    word.chars().count() == 1
        || [
            "n°", "no", "art", "réf", "ref", "excl", "incl", "inc", "approx", "env", "cf", "mme",
            "st", "ltd", "co", "vol", "p", "min", "max", "ex", "etc", "nos",
        ]
        .contains(&lower.as_str())
}

/// A line as compared across pages: lower case, digits as `#`, spaces collapsed, so that
/// `Page 2/5` and `Page 3/5` are one line.
fn line_key(line: &str) -> String {
    line.split_whitespace()
        .map(|w| {
            w.chars()
                .map(|c| if c.is_ascii_digit() { '#' } else { c })
                .flat_map(char::to_lowercase)
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The lines (as [`line_key`]s) that `document` repeats on at least half of its pages, two
/// at least: its running headers and footers.
pub(super) fn boilerplate(document: &Document) -> HashSet<String> {
    let pages = document.pages.len();
    if pages < 2 {
        return HashSet::new();
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    for page in &document.pages {
        let keys: HashSet<String> = page
            .text
            .lines()
            .map(line_key)
            .filter(|k| k.chars().filter(|c| c.is_alphanumeric()).count() >= 3)
            .collect();
        for key in keys {
            *seen.entry(key).or_default() += 1;
        }
    }
    let needed = pages.div_ceil(2).max(2);
    seen.into_iter()
        .filter(|(_, n)| *n >= needed)
        .map(|(k, _)| k)
        .collect()
}

/// An OCR page as the rules read it. OCR sets blank lines where the print had none: between
/// the lines of one sentence, between a list's items, after a line ending with a colon; and a
/// blank line ends a sentence, a list or a labelled value for the rules. Such a blank line is
/// dropped where the line before runs on: it ends no sentence and the next line starts in
/// lower case, or it is a list item, or it ends with a colon. The text keeps its length (the
/// break before the blank line becomes a space at the end of the line before), so that spans
/// still index the page's text. `None` for a page not read by OCR, or with nothing to mend.
pub(super) fn rejoined(page: &Page) -> Option<Page> {
    if page.source != PageSource::Ocr {
        return None;
    }
    let mut lines = Vec::new();
    let mut start = 0;
    for line in page.text.split('\n') {
        lines.push((start, line));
        start += line.len() + 1;
    }
    let mut joins = Vec::new();
    for i in 1..lines.len().saturating_sub(1) {
        let ((at, before), (_, blank), (_, next)) = (lines[i - 1], lines[i], lines[i + 1]);
        if !blank.trim().is_empty() || before.trim().is_empty() || next.trim().is_empty() {
            continue;
        }
        let before = before.trim();
        let runs_on = !before.ends_with(['.', ';', '!', '?', ':'])
            && next.trim_start().starts_with(char::is_lowercase);
        let list = marker_len(before) > 0 || before.ends_with(':');
        if runs_on || list {
            joins.push(at + lines[i - 1].1.len());
        }
    }
    if joins.is_empty() {
        return None;
    }
    let mut bytes = page.text.clone().into_bytes();
    for at in joins {
        bytes[at] = b' ';
    }
    // Only a line feed was replaced by a space: still UTF-8.
    let text = String::from_utf8(bytes).ok()?;
    Some(Page {
        text,
        ..page.clone()
    })
}

/// A value read after a label.
#[derive(Debug, Clone, Copy)]
pub(super) struct Labelled<'a> {
    /// The value's first byte in the page.
    pub start: usize,
    /// The value, trimmed.
    pub text: &'a str,
    /// True when the value stands on the label's own line (after `:` or in the next cell),
    /// false when it was taken from the next line.
    pub same_line: bool,
    /// Index of the line the value is on.
    pub line: usize,
}

static SEPARATOR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*(?:\(s\))?\s*(?:[:：]|[-–—]\s|=)\s*")
        .unwrap_or_else(|e| unreachable!("separator pattern: {e}"))
});

/// Every value `label` (a pattern anchored at `^`, matched after any list marker at the
/// start of a cell) introduces on `view`'s page: `Label : value`, `Label    value` (the
/// next cell), or `Label :` with the value on the next non-blank line. A label followed by
/// anything else is prose, not a label.
pub(super) fn labelled<'a>(view: &PageView<'a>, label: &Regex) -> Vec<Labelled<'a>> {
    let mut out = Vec::new();
    for (i, line) in view.lines.iter().enumerate() {
        let cells = line.cells();
        for (c, cell) in cells.iter().enumerate() {
            let skip = marker_len(cell.text);
            let body = &cell.text[skip..];
            let Some(m) = label.find(body) else { continue };
            let rest = &body[m.end()..];
            let rest_start = cell.start + skip + m.end();
            let value = match SEPARATOR.find(rest) {
                Some(sep) => {
                    let v = rest[sep.end()..].trim_end();
                    (!v.is_empty()).then_some((rest_start + sep.end(), v))
                }
                None if rest.trim().is_empty() => None,
                None => continue,
            };
            if let Some((start, text)) = value {
                out.push(Labelled {
                    start,
                    text,
                    same_line: true,
                    line: i,
                });
            } else if let Some(next) = cells.get(c + 1) {
                out.push(Labelled {
                    start: next.start,
                    text: next.text,
                    same_line: true,
                    line: i,
                });
            } else if let Some((j, next)) = view
                .lines
                .iter()
                .enumerate()
                .skip(i + 1)
                .take(2)
                .find(|(_, l)| !l.is_blank())
            {
                if let Some(first) = next.cells().first() {
                    out.push(Labelled {
                        start: first.start,
                        text: first.text,
                        same_line: false,
                        line: j,
                    });
                }
            }
        }
    }
    out
}

/// Lot numbers a sentence refers to, each with the bytes of the reference that names it:
/// `lot 2`, `lots 1 et 3`, `lots n° 1 à 3`, `Lots 1, 2 and 4`.
pub(super) fn lot_numbers(text: &str) -> Vec<(Range<usize>, u32)> {
    let mut numbers: Vec<(Range<usize>, u32)> = Vec::new();
    for caps in LOT_REFS.captures_iter(text) {
        let (Some(whole), Some(list)) = (caps.get(0), caps.name("list")) else {
            continue;
        };
        let values: Vec<u32> = NUMBER
            .find_iter(list.as_str())
            .filter_map(|m| m.as_str().parse().ok())
            .collect();
        let range = RANGE_WORD.is_match(list.as_str()) && values.len() == 2;
        let expanded: Vec<u32> = match (range, values.as_slice()) {
            (true, [from, to]) if from < to && to - from <= 50 => (*from..=*to).collect(),
            _ => values,
        };
        for n in expanded {
            if !numbers.iter().any(|(_, m)| *m == n) {
                numbers.push((whole.range(), n));
            }
        }
    }
    numbers.sort_by_key(|(_, n)| *n);
    numbers
}

static LOT_REFS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\blots?\s*(?:n[°os]*\.?\s*)?(?P<list>\d{1,3}(?:\s*(?:,|et|and|&|à|to|-)\s*(?:n[°o]\s*)?\d{1,3})*)\b",
    )
    .unwrap_or_else(|e| unreachable!("lot references pattern: {e}"))
});
static NUMBER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\d+").unwrap_or_else(|e| unreachable!("number pattern: {e}")));
static RANGE_WORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\d\s*(?:à|to|-)\s*\d").unwrap_or_else(|e| unreachable!("range pattern: {e}"))
});

/// Whitespace collapsed to single spaces.
pub(super) fn collapse(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::super::super::super::document::PageSource;
    use super::*;

    fn page(text: &str) -> Page {
        Page::new(1, text.to_owned(), PageSource::Text)
    }

    #[test]
    fn blank_lines_ocr_set_inside_a_sentence_or_a_list_are_dropped() {
        let text = "Quality 60%, assessed through:\n\n- Methodology 30%\n\n- Social value 10%\n\n\
                    Price 40%\n\n6. Contract period\nThe contract runs for 3 years, renewable for\n\n\
                    up to two further periods.\n\nPage 2/2";
        let page = Page::new(1, text.into(), PageSource::Ocr);
        let mended = rejoined(&page).map(|p| p.text).unwrap_or_default();
        assert_eq!(mended.len(), text.len());
        assert_eq!(
            mended,
            "Quality 60%, assessed through: \n- Methodology 30% \n- Social value 10% \n\
             Price 40%\n\n6. Contract period\nThe contract runs for 3 years, renewable for \n\
             up to two further periods.\n\nPage 2/2"
        );
        assert!(rejoined(&Page::new(1, text.into(), PageSource::Text)).is_none());
    }

    #[test]
    fn cells_split_at_column_gaps() {
        let p = page("  Lot 1    Nettoyage des locaux     12 500,00 € HT");
        let view = PageView::new(&p, &HashSet::new());
        let cells: Vec<&str> = view.lines[0].cells().iter().map(|c| c.text).collect();
        assert_eq!(
            cells,
            vec!["Lot 1", "Nettoyage des locaux", "12 500,00 € HT"]
        );
        let second = view.lines[0].cells()[1];
        assert_eq!(&p.text[second.start..second.start + 9], "Nettoyage");
    }

    #[test]
    fn sentences_join_a_label_with_its_value_line() {
        let p = page(
            "Date limite de réception des offres :\n15 mars 2025 à 12h00\nQuestions : avant le 1er mars. Visite : non",
        );
        let view = PageView::new(&p, &HashSet::new());
        let texts: Vec<&str> = view.sentences().into_iter().map(|r| &p.text[r]).collect();
        assert_eq!(
            texts,
            vec![
                "Date limite de réception des offres :\n15 mars 2025 à 12h00",
                "Questions : avant le 1er mars.",
                "Visite : non"
            ]
        );
    }

    #[test]
    fn repeated_headers_are_boilerplate() {
        let document = Document {
            pages: vec![
                page("Ville de Lyon - RC - Page 1/2\nObjet : nettoyage"),
                page("Ville de Lyon - RC - Page 2/2\nLot 1 : vitres"),
            ],
            ..Document::default()
        };
        let lines = boilerplate(&document);
        assert!(lines.contains(&line_key("Ville de Lyon - RC - Page 1/2")));
        assert_eq!(lines.len(), 1);
    }

    #[test]
    fn labels_take_their_value_from_the_line_the_cell_or_the_next_line() {
        let label = Regex::new(r"(?i)^objet").unwrap_or_else(|e| unreachable!("{e}"));
        for text in [
            "Objet : Nettoyage",
            "Objet     Nettoyage",
            "Objet :\n\nNettoyage",
            "1. Objet - Nettoyage",
        ] {
            let p = page(text);
            let view = PageView::new(&p, &HashSet::new());
            let found = labelled(&view, &label);
            assert_eq!(found.len(), 1, "{text}");
            assert_eq!(found[0].text, "Nettoyage", "{text}");
        }
        let p = page("Objectifs : aucun\nL'objet du marché est simple");
        assert!(labelled(&PageView::new(&p, &HashSet::new()), &label).is_empty());
    }

    #[test]
    fn lot_references() {
        let numbers =
            |text: &str| -> Vec<u32> { lot_numbers(text).into_iter().map(|(_, n)| n).collect() };
        assert_eq!(numbers("pour les lots 1 et 3"), vec![1, 3]);
        assert_eq!(numbers("lots n° 2 à 4"), vec![2, 3, 4]);
        assert_eq!(numbers("Lot 5 only; lots 1, 2 and 7"), vec![1, 2, 5, 7]);
        assert!(numbers("allotissement").is_empty());
        let text = "visite pour le lot 2";
        let (range, _) = &lot_numbers(text)[0];
        assert_eq!(&text[range.clone()], "lot 2");
    }
}
