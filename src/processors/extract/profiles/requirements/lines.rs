//! How a body line reads, by its form alone: a numbered heading, a title, a table row, a
//! list item, or prose. Only the line itself and the line before it count, so that a line
//! reads the same whatever run of lines it is read in.

use std::sync::LazyLock;

use regex::Regex;

use super::joined::collapse;
use super::layout::Line;

/// Most words of a heading's title, or of a title line.
const TITLE_WORDS: usize = 14;
/// Longest first cell of a two-cell table row (a reference such as `EX-01`, a short label).
const TWO_CELL_LABEL: usize = 24;

fn pattern(source: &str) -> Regex {
    Regex::new(source).unwrap_or_else(|e| unreachable!("layout pattern {source}: {e}"))
}

/// `ARTICLE 5 - PÉNALITÉS`, `Section 4: Delivery`, `Chapitre II`, `Annexe 1 – Bordereau`.
static KEYWORD_HEADING: LazyLock<Regex> = LazyLock::new(|| {
    pattern(
        r"^(?i:article|art\.|chapitre|chapter|section|partie|part|titre|annexe|annex|appendix|clause)\s+(?P<n>\d{1,3}(?:\.\d{1,3}){0,4}|[IVXLC]{1,6}|[A-Z])\b\.?\s*(?:[-–—:.)]\s*)?(?P<t>.*)$",
    )
});
/// `3.2.1 Conditions d'exécution`, `4. Délais`, `2 - Objet`.
static NUMBER_HEADING: LazyLock<Regex> =
    LazyLock::new(|| pattern(r"^(?P<n>\d{1,2}(?:\.\d{1,2}){0,5})\.?\s+(?:[-–—:]\s*)?(?P<t>\S.*)$"));
/// `II. OBJET DU MARCHÉ`, `IV - Prix`.
static ROMAN_HEADING: LazyLock<Regex> =
    LazyLock::new(|| pattern(r"^(?P<n>[IVX]{1,5})\s*[.)\-–—]\s+(?P<t>\S.*)$"));
/// A bullet or an item number, then the item.
static LIST_ITEM: LazyLock<Regex> = LazyLock::new(|| {
    pattern(
        r"^(?:[-–—•·*▪►■□➢➤✓o]|\d{1,2}[.)]|[a-z][.)]|\((?:\d{1,2}|[a-z])\)|[ivx]{1,4}[.)])\s+\S",
    )
});

/// How a line reads, by its form.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Class {
    /// A drawn table's rule (`|---|---|`, `+====+`).
    Rule,
    /// A numbered heading: number and title.
    Heading(String, String),
    /// A title line in capitals.
    Title,
    /// A table row: its cells.
    Row(Vec<Cell>),
    /// Two cells, the first long: a row inside a table, else prose with a wide gap.
    Pair(Vec<Cell>),
    /// A list item: the byte of the line's text where the item (after its bullet) starts.
    Item(usize),
    /// Anything else.
    Prose,
}

/// A cell of a table row, in a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Cell {
    /// Its column (in characters from the line's start): continuation lines align to it.
    pub column: usize,
    /// Its first byte in the line.
    pub start: usize,
    /// One past its last byte.
    pub end: usize,
}

/// The cells of `raw`: runs of text three spaces or more, a tab or a `|` apart.
pub(super) fn cells(raw: &str) -> Vec<Cell> {
    let mut cells = Vec::new();
    let mut open: Option<(usize, usize)> = None;
    let mut end = 0;
    let mut gap = 0;
    let mut close = |open: &mut Option<(usize, usize)>, end: usize| {
        if let Some((column, start)) = open.take() {
            cells.push(Cell { column, start, end });
        }
    };
    for (column, (i, c)) in raw.char_indices().enumerate() {
        if c == '|' || c == '\t' {
            close(&mut open, end);
            gap = 0;
        } else if c.is_whitespace() {
            gap += 1;
            if gap >= 3 {
                close(&mut open, end);
            }
        } else {
            if open.is_none() {
                open = Some((column, i));
            }
            gap = 0;
            end = i + c.len_utf8();
        }
    }
    close(&mut open, end);
    cells
}

pub(super) fn words(text: &str) -> usize {
    text.split_whitespace().count()
}

pub(super) fn starts_upper(text: &str) -> bool {
    text.chars().next().is_some_and(char::is_uppercase)
}

pub(super) fn starts_lower(text: &str) -> bool {
    text.chars().next().is_some_and(char::is_lowercase)
}

/// True when `title` reads as a heading's title: a capital first, short, no closing stop.
fn is_title(title: &str, may_be_empty: bool) -> bool {
    if title.is_empty() {
        return may_be_empty;
    }
    starts_upper(title)
        && words(title) <= TITLE_WORDS
        && title.len() <= 160
        && !title.ends_with(['.', ',', ';'])
        && title.chars().filter(|c| c.is_alphabetic()).count() >= 2
}

/// A numbered heading's number and title, when `text` (spaces collapsed) is one. After a
/// line ending with a colon, a bare number opens a list item, not a section.
fn heading(text: &str, after_colon: bool) -> Option<(String, String)> {
    let found = |caps: regex::Captures<'_>, empty: bool| {
        let number = caps.name("n")?.as_str().trim_end_matches('.').to_owned();
        let title = caps.name("t").map_or("", |t| t.as_str().trim());
        is_title(title, empty).then(|| (number, title.to_owned()))
    };
    if let Some(caps) = KEYWORD_HEADING.captures(text) {
        return found(caps, true);
    }
    if after_colon {
        return None;
    }
    if let Some(caps) = NUMBER_HEADING.captures(text) {
        return found(caps, false);
    }
    ROMAN_HEADING
        .captures(text)
        .and_then(|caps| found(caps, false))
}

/// A line in capitals: a title that ends what came before but opens no section.
fn is_capitals(text: &str) -> bool {
    let letters = text.chars().filter(|c| c.is_alphabetic()).count();
    let upper = text.chars().filter(|c| c.is_uppercase()).count();
    letters >= 4 && upper * 10 >= letters * 9 && words(text) <= TITLE_WORDS && !text.ends_with('.')
}

/// Words that open a heading with its number.
const HEADING_WORDS: [&str; 12] = [
    "article", "art.", "chapitre", "chapter", "section", "partie", "part", "titre", "annexe",
    "annex", "appendix", "clause",
];

/// False for most lines that cannot be a heading, cheaply: a heading starts with a number, a
/// Roman numeral or one of [`HEADING_WORDS`]. Lets the search for the section in force read
/// back over pages without classifying every line.
pub(super) fn may_be_heading(text: &str) -> bool {
    let Some(first) = text.chars().next() else {
        return false;
    };
    if first.is_ascii_digit() || matches!(first, 'I' | 'V' | 'X') {
        return true;
    }
    let word: String = text
        .chars()
        .take_while(|c| c.is_alphabetic() || *c == '.')
        .take(10)
        .flat_map(char::to_lowercase)
        .collect();
    HEADING_WORDS.contains(&word.as_str())
}

/// How `line` reads; `previous` is the body line before it.
pub(super) fn classify(line: &Line<'_>, previous: Option<&str>) -> Class {
    let text = line.text();
    let found = cells(line.raw);
    if !found.is_empty()
        && found.iter().all(|c| {
            line.raw[c.start..c.end]
                .chars()
                .all(|ch| matches!(ch, '-' | '=' | '+' | ':' | '_'))
        })
        && (text.starts_with(['|', '+']) || text.len() >= 3)
    {
        return Class::Rule;
    }
    if found.len() >= 3 {
        return Class::Row(found);
    }
    if may_be_heading(text) {
        let after_colon = previous.is_some_and(|p| p.trim_end().ends_with(':'));
        if let Some((number, title)) = heading(&collapse(text), after_colon) {
            return Class::Heading(number, title);
        }
    }
    if let Some(m) = LIST_ITEM.find(text) {
        // The item starts at its first character after the bullet (the pattern's last,
        // which may take more than one byte).
        let at = text[..m.end()]
            .char_indices()
            .next_back()
            .map_or(m.end(), |(i, _)| i);
        return Class::Item(at);
    }
    if found.len() == 2 {
        let label = &line.raw[found[0].start..found[0].end];
        return match label.len() <= TWO_CELL_LABEL {
            true => Class::Row(found),
            false => Class::Pair(found),
        };
    }
    if is_capitals(text) {
        return Class::Title;
    }
    Class::Prose
}

/// Columns of white space before the line's text.
pub(super) fn indent(raw: &str) -> usize {
    raw.chars().take_while(|c| c.is_whitespace()).count()
}
