//! A run of body lines read into units: sentences (hard-wrapped lines joined again, across
//! page breaks too), list items and table rows, each with the section it stands in.
//!
//! Lines are told apart by their form alone: a numbered heading (`3.2.1 Conditions
//! d'exécution`, `ARTICLE 5 - PÉNALITÉS`, `Section 4: Delivery`) opens a section; a title
//! (a line in capitals, or a short line without a full stop between paragraphs) only ends
//! what came before; a line of cells (columns three spaces or more apart, a tab, or `|`)
//! is a table row, and a line aligned under one of its cells continues it; a bullet or an
//! item number opens a list item; any other line goes on with the paragraph. Paragraphs are
//! cut into sentences at a full stop, `!` or `?` followed by a capital, a digit or an
//! opening quote, unless the word before the stop is an abbreviation (`art.`, `n°.`,
//! `M.`, `e.g.`, `cf.`).

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::layout::Line;

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
pub(super) struct Part {
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
    fn push(&mut self, page: usize, start: usize, text: &str, separator: &str) {
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
    fn append(&mut self, other: &Joined, separator: &str) {
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
    fn slice(&self, range: Range<usize>) -> Joined {
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

/// What a unit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Kind {
    /// A sentence of a paragraph.
    Sentence,
    /// An item of a list (its bullet or number left out).
    ListItem,
    /// A row of a table, its cells joined by ` | `.
    TableRow,
}

/// A numbered heading.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Heading {
    /// `3.2.1`, `5` for `ARTICLE 5`, `II`.
    pub number: String,
    /// What follows the number (may be empty: `ARTICLE 5`).
    pub title: String,
    /// Where the heading's line is.
    pub part: Part,
}

/// A sentence, a list item or a table row.
#[derive(Debug, Clone)]
pub(super) struct Unit {
    /// Which of them.
    pub kind: Kind,
    /// Its text and where each piece of it was read.
    pub joined: Joined,
    /// The section it stands in (an index into [`Parse::sections`]).
    pub section: Option<usize>,
    /// For a list item, the sentence before the list that ends with a colon (an index into
    /// [`Parse::units`]): `Le titulaire doit :` introducing `- fournir un planning ;`.
    pub lead: Option<usize>,
    /// A table's first row whose cells are all short: the column titles.
    pub header: bool,
}

/// What a run of lines holds.
#[derive(Debug, Default)]
pub(super) struct Parse {
    /// Its units, in reading order.
    pub units: Vec<Unit>,
    /// The headings the units point at (the first may stand before the lines).
    pub sections: Vec<Heading>,
}

/// Words cells are not longer than in a table's row of column titles.
const HEADER_CELL_WORDS: usize = 3;
/// Most words of a heading's title, or of a title line.
const TITLE_WORDS: usize = 14;
/// Most words of an unnumbered title in ordinary case (`Garanties`, `Delivery terms`).
const PLAIN_TITLE_WORDS: usize = 8;
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

/// Words that end with a full stop without ending a sentence, lower case.
const ABBREVIATIONS: [&str; 41] = [
    "art", "arts", "cf", "n", "no", "nos", "nº", "n°", "p", "pp", "m", "mm", "mme", "mmes", "mlle",
    "mr", "mrs", "ms", "dr", "me", "pr", "st", "ste", "réf", "ref", "vol", "chap", "fig", "sect",
    "al", "env", "approx", "min", "tél", "tel", "ex", "vs", "inc", "ltd", "co", "corp",
];

/// How a line reads, by its form.
#[derive(Debug, Clone, PartialEq)]
enum Class {
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
struct Cell {
    /// Its column (in characters from the line's start): continuation lines align to it.
    column: usize,
    /// Its bytes in the line.
    start: usize,
    end: usize,
}

/// The cells of `raw`: runs of text three spaces or more, a tab or a `|` apart.
fn cells(raw: &str) -> Vec<Cell> {
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

fn words(text: &str) -> usize {
    text.split_whitespace().count()
}

fn starts_upper(text: &str) -> bool {
    text.chars().next().is_some_and(char::is_uppercase)
}

fn starts_lower(text: &str) -> bool {
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

/// How `line` reads; `previous` is the body line before it.
fn classify(line: &Line<'_>, previous: Option<&str>) -> Class {
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
    let after_colon = previous.is_some_and(|p| p.trim_end().ends_with(':'));
    let flat = collapse(text);
    if let Some((number, title)) = heading(&flat, after_colon) {
        return Class::Heading(number, title);
    }
    if let Some(m) = LIST_ITEM.find(text) {
        // The item starts at its first character after the bullet.
        return Class::Item(m.end() - 1);
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

/// True when the text before a full stop ends with an abbreviation.
fn is_abbreviation(before: &str) -> bool {
    let token = before
        .rsplit(|c: char| c.is_whitespace() || matches!(c, '(' | '\'' | '’'))
        .next()
        .unwrap_or("")
        .trim_start_matches(['"', '«', '\'', '’']);
    let mut chars = token.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        // An initial (`M. Dupont`, `J. Smith`), but not a unit after a number (`25 C.`).
        let before_token = before[..before.len() - token.len()].trim_end();
        let after_number = before_token
            .rsplit(char::is_whitespace)
            .next()
            .is_some_and(|w| w.chars().last().is_some_and(|c| c.is_ascii_digit()));
        return c.is_uppercase() && !after_number;
    }
    if token.contains('.') && token.chars().any(char::is_alphabetic) {
        // `e.g`, `i.e`, `c.-à-d`.
        return true;
    }
    let lower = token.to_lowercase();
    ABBREVIATIONS.contains(&lower.as_str())
}

/// Byte ranges of the sentences of `text`, without the spaces around them.
pub(super) fn sentences(text: &str) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if !matches!(c, '.' | '!' | '?' | '…') || i < start {
            continue;
        }
        let mut end = i + c.len_utf8();
        // Closing quotes and brackets stay with the sentence.
        for next in text[end..].chars() {
            if matches!(next, '"' | '»' | ')' | ']' | '’' | '\'') {
                end += next.len_utf8();
            } else {
                break;
            }
        }
        let rest = &text[end..];
        let after = rest.trim_start();
        if after.len() == rest.len() {
            continue;
        }
        let Some(next) = after.chars().next() else {
            continue;
        };
        if !(next.is_uppercase()
            || next.is_ascii_digit()
            || matches!(next, '«' | '"' | '(' | '[' | '-' | '•'))
        {
            continue;
        }
        if c == '.' && is_abbreviation(&text[start..i]) {
            continue;
        }
        ranges.push(start..end);
        start = end;
    }
    ranges.push(start..text.len());
    ranges
        .into_iter()
        .filter_map(|r| {
            let piece = &text[r.clone()];
            let lead = piece.len() - piece.trim_start().len();
            let trail = piece.len() - piece.trim_end().len();
            let trimmed = r.start + lead..r.end - trail;
            (trimmed.start < trimmed.end).then_some(trimmed)
        })
        .collect()
}

/// A paragraph being read.
#[derive(Debug)]
struct Paragraph {
    kind: Kind,
    joined: Joined,
    /// Columns before its first line's text: a list item's own lines are indented more.
    indent: usize,
    lead: Option<usize>,
}

/// A table row being read.
#[derive(Debug)]
struct Row {
    /// Each cell's column and text.
    cells: Vec<(usize, Joined)>,
    /// The first row of its table.
    first: bool,
}

fn indent(raw: &str) -> usize {
    raw.chars().take_while(|c| c.is_whitespace()).count()
}

/// Reads `lines` into units, starting in `section` (the heading in force before them).
pub(super) fn parse(lines: &[Line<'_>], section: Option<Heading>) -> Parse {
    let mut reader = Reader {
        out: Parse::default(),
        section: None,
        paragraph: None,
        row: None,
        intro: None,
        in_table: false,
    };
    if let Some(heading) = section {
        reader.out.sections.push(heading);
        reader.section = Some(0);
    }
    let mut previous: Option<&str> = None;
    let mut blank = false;
    for (i, line) in lines.iter().enumerate() {
        if line.is_blank() {
            blank = true;
            continue;
        }
        let class = classify(line, previous);
        previous = Some(line.raw);
        let is_heading = matches!(class, Class::Heading(..));
        if !is_heading && reader.continues_row(line) {
            blank = false;
            continue;
        }
        match class {
            Class::Rule => {}
            Class::Heading(number, title) => {
                reader.finish();
                let (start, end) = line.span();
                reader.out.sections.push(Heading {
                    number,
                    title,
                    part: Part {
                        page: line.page,
                        start,
                        end,
                    },
                });
                reader.section = Some(reader.out.sections.len() - 1);
                reader.intro = None;
                reader.in_table = false;
            }
            Class::Title => reader.title(),
            Class::Row(cells) => reader.row(line, &cells),
            Class::Pair(cells) if reader.row.is_some() || reader.in_table => {
                reader.row(line, &cells)
            }
            Class::Item(at) => {
                reader.finish();
                let text = line.text();
                let (start, _) = line.span();
                let mut joined = Joined::default();
                joined.push(line.page, start + at, &text[at..], " ");
                reader.paragraph = Some(Paragraph {
                    kind: Kind::ListItem,
                    joined,
                    indent: indent(line.raw),
                    lead: reader.intro,
                });
            }
            Class::Prose | Class::Pair(_) => {
                if reader.is_plain_title(line, blank, next_line(lines, i + 1)) {
                    reader.title();
                } else {
                    reader.prose(line, blank);
                }
            }
        }
        blank = false;
    }
    reader.finish();
    reader.out
}

/// The next non-blank line from `from` on, with its class.
fn next_line<'l, 'a>(lines: &'l [Line<'a>], from: usize) -> Option<(&'l Line<'a>, Class)> {
    let mut previous = lines.get(from.checked_sub(1)?).map(|l| l.raw);
    for line in lines.get(from..)? {
        if !line.is_blank() {
            return Some((line, classify(line, previous)));
        }
        previous = Some(line.raw);
    }
    None
}

/// The state of a [`parse`].
struct Reader {
    out: Parse,
    section: Option<usize>,
    paragraph: Option<Paragraph>,
    row: Option<Row>,
    /// The sentence ending with a colon that the list items read now follow.
    intro: Option<usize>,
    /// The last unit was a table row.
    in_table: bool,
}

impl Reader {
    fn push(&mut self, kind: Kind, joined: Joined, lead: Option<usize>, header: bool) {
        self.out.units.push(Unit {
            kind,
            joined,
            section: self.section,
            lead,
            header,
        });
    }

    /// Ends the paragraph or row being read.
    fn finish(&mut self) {
        self.finish_row();
        if let Some(paragraph) = self.paragraph.take() {
            self.in_table = false;
            let ranges = sentences(&paragraph.joined.text);
            let count = ranges.len();
            for (n, range) in ranges.into_iter().enumerate() {
                let joined = paragraph.joined.slice(range);
                let lead = if n == 0 { paragraph.lead } else { None };
                let ends_with_colon = joined.text.trim_end().ends_with(':');
                self.push(paragraph.kind, joined, lead, false);
                if paragraph.kind == Kind::Sentence && n + 1 == count {
                    self.intro = ends_with_colon.then(|| self.out.units.len() - 1);
                }
            }
        }
    }

    fn finish_row(&mut self) {
        if let Some(row) = self.row.take() {
            let header = row.first
                && row
                    .cells
                    .iter()
                    .all(|(_, c)| words(&c.text) <= HEADER_CELL_WORDS);
            let mut joined = Joined::default();
            for (_, cell) in &row.cells {
                joined.append(cell, " | ");
            }
            self.push(Kind::TableRow, joined, None, header);
            self.in_table = true;
        }
    }

    fn title(&mut self) {
        self.finish();
        self.intro = None;
        self.in_table = false;
    }

    fn row(&mut self, line: &Line<'_>, cells: &[Cell]) {
        let first = self.row.is_none() && !self.in_table;
        self.finish();
        self.intro = None;
        let cells = cells
            .iter()
            .map(|c| {
                let mut joined = Joined::default();
                joined.push(
                    line.page,
                    line.offset + c.start,
                    &line.raw[c.start..c.end],
                    " ",
                );
                (c.column, joined)
            })
            .collect();
        self.row = Some(Row { cells, first });
    }

    /// Adds `line` to the row being read when it stands under its cells (and not under the
    /// first, where a new row would start): a cell's text wrapped onto the next line.
    fn continues_row(&mut self, line: &Line<'_>) -> bool {
        let Some(row) = self.row.as_mut() else {
            return false;
        };
        let found = cells(line.raw);
        let first_column = row.cells.first().map_or(0, |c| c.0);
        let columns: Vec<usize> = row.cells.iter().map(|c| c.0).collect();
        let aligned = |column: usize| columns.iter().position(|c| c.abs_diff(column) <= 2);
        let Some(start) = found.first() else {
            return false;
        };
        if start.column <= first_column + 2 || found.iter().any(|c| aligned(c.column).is_none()) {
            return false;
        }
        for cell in &found {
            if let Some(at) = aligned(cell.column) {
                row.cells[at].1.push(
                    line.page,
                    line.offset + cell.start,
                    &line.raw[cell.start..cell.end],
                    " ",
                );
            }
        }
        true
    }

    /// True for a short line in ordinary case that titles what follows (`Garanties`): it
    /// starts a paragraph, ends without a stop, holds no obligation, and the next line
    /// starts another paragraph or a structure.
    fn is_plain_title(
        &self,
        line: &Line<'_>,
        blank: bool,
        next: Option<(&Line<'_>, Class)>,
    ) -> bool {
        let text = line.text();
        let at_start = blank
            || self.paragraph.as_ref().is_none_or(|p| {
                p.joined
                    .text
                    .trim_end()
                    .ends_with(['.', '!', '?', ';', ':'])
            });
        let next_starts = next.is_none_or(|(next, class)| {
            !matches!(class, Class::Prose | Class::Pair(_)) || starts_upper(next.text())
        });
        at_start
            && next_starts
            && starts_upper(text)
            && words(text) <= PLAIN_TITLE_WORDS
            && !text.ends_with(['.', ',', ';', ':', '!', '?', '-'])
            && super::obligation::find(text).is_none()
    }

    /// A line of prose: it goes on with the paragraph, or starts one.
    fn prose(&mut self, line: &Line<'_>, blank: bool) {
        let text = line.text();
        let (start, _) = line.span();
        let joins = match &self.paragraph {
            None => false,
            // Some layouts space every line: a blank line before a lower-case word is a
            // wrapped sentence, not a new paragraph.
            Some(_) if blank => starts_lower(text),
            // A line ending with a colon introduces what follows on its own lines: a
            // capital there starts another sentence.
            Some(p) if p.joined.text.trim_end().ends_with(':') && starts_upper(text) => false,
            Some(p) if p.kind == Kind::ListItem => {
                indent(line.raw) > p.indent
                    || !p
                        .joined
                        .text
                        .trim_end()
                        .ends_with(['.', ';', '!', '?', ':'])
            }
            Some(_) => true,
        };
        if joins && self.row.is_none() {
            if let Some(paragraph) = self.paragraph.as_mut() {
                // A word cut by a hyphen at the line's end keeps it (`sous-traitance`).
                let glued = paragraph.joined.text.ends_with('-') && starts_lower(text);
                let separator = if glued { "" } else { " " };
                paragraph.joined.push(line.page, start, text, separator);
                return;
            }
        }
        self.finish();
        let mut joined = Joined::default();
        joined.push(line.page, start, text, " ");
        self.paragraph = Some(Paragraph {
            kind: Kind::Sentence,
            joined,
            indent: indent(line.raw),
            lead: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<Line<'_>> {
        let mut offset = 0;
        text.split('\n')
            .map(|raw| {
                let line = Line {
                    page: 0,
                    raw,
                    offset,
                };
                offset += raw.len() + 1;
                line
            })
            .collect()
    }

    fn texts(parse: &Parse) -> Vec<String> {
        parse.units.iter().map(|u| u.joined.collapsed()).collect()
    }

    #[test]
    fn sentences_stop_at_full_stops_not_at_abbreviations() {
        let text = "Voir l'art. 5 du CCAP et le n° 3. Le titulaire, cf. annexe, doit livrer. \
                    M. Dupont signe, e.g. le 3.2.1 du CCTP. The supplier shall comply, i.e. fully. \
                    Keep it at 25 C. Then stop.";
        let found: Vec<&str> = sentences(text).into_iter().map(|r| &text[r]).collect();
        assert_eq!(
            found,
            vec![
                "Voir l'art. 5 du CCAP et le n° 3.",
                "Le titulaire, cf. annexe, doit livrer.",
                "M. Dupont signe, e.g. le 3.2.1 du CCTP.",
                "The supplier shall comply, i.e. fully.",
                "Keep it at 25 C.",
                "Then stop.",
            ]
        );
    }

    #[test]
    fn headings_open_sections_and_are_not_sentences() {
        let text = "3.2.1 Conditions d'exécution\nLe titulaire doit livrer\nle matériel.\n\
                    ARTICLE 5 - PÉNALITÉS\nUne pénalité est due.\nSection 4: Delivery\n\
                    Goods shall be delivered.\n30 jours après la commande.";
        let parse = parse(&lines(text), None);
        assert_eq!(
            texts(&parse),
            vec![
                "Le titulaire doit livrer le matériel.",
                "Une pénalité est due.",
                "Goods shall be delivered.",
                "30 jours après la commande.",
            ]
        );
        let numbers: Vec<(&str, &str)> = parse
            .units
            .iter()
            .filter_map(|u| u.section.map(|s| &parse.sections[s]))
            .map(|h| (h.number.as_str(), h.title.as_str()))
            .collect();
        assert_eq!(
            numbers,
            vec![
                ("3.2.1", "Conditions d'exécution"),
                ("5", "PÉNALITÉS"),
                ("4", "Delivery"),
                ("4", "Delivery"),
            ]
        );
    }

    #[test]
    fn list_items_and_their_lead() {
        let text = "Le titulaire doit :\n- fournir un planning ;\n- désigner un\n  responsable.\n\
                    Le reste suit.\n1) premier point ;\nLes pièces suivantes sont remises :\n\
                    Une autre phrase.";
        let parse = parse(&lines(text), None);
        assert_eq!(
            texts(&parse),
            vec![
                "Le titulaire doit :",
                "fournir un planning ;",
                "désigner un responsable.",
                "Le reste suit.",
                "premier point ;",
                "Les pièces suivantes sont remises :",
                "Une autre phrase.",
            ]
        );
        assert_eq!(parse.units[1].lead, Some(0));
        assert_eq!(parse.units[2].lead, Some(0));
        assert_eq!(parse.units[1].kind, Kind::ListItem);
        assert_eq!(parse.units[3].kind, Kind::Sentence);
        assert_eq!(
            parse.units[4].lead, None,
            "the list after a full stop has no lead"
        );
    }

    #[test]
    fn table_rows_are_units_and_wrapped_cells_join_them() {
        let text = "2.1 Exigences\nRéf.      Exigence                           Niveau\n\
                    EX-01     Le matériel doit être conforme     Obligatoire\n\
                    \x20         à la norme NF C 15-100.\n\
                    EX-02     Une notice est fournie.            Facultatif\n\
                    Après le tableau, une phrase.";
        let parse = parse(&lines(text), None);
        assert_eq!(
            texts(&parse),
            vec![
                "Réf. | Exigence | Niveau",
                "EX-01 | Le matériel doit être conforme à la norme NF C 15-100. | Obligatoire",
                "EX-02 | Une notice est fournie. | Facultatif",
                "Après le tableau, une phrase.",
            ]
        );
        assert!(parse.units[0].header);
        assert!(!parse.units[1].header);
        assert!(parse.units.iter().all(|u| u.section == Some(0)));
        let parts = parse.units[1].joined.all_parts();
        assert_eq!(parts.len(), 1);
        assert_eq!(
            &text[parts[0].start..parts[0].end].split_whitespace().next(),
            &Some("EX-01")
        );
    }

    #[test]
    fn titles_end_paragraphs_without_opening_sections() {
        let text = "1. Objet\nLe marché porte sur des travaux.\n\nGaranties\nLe titulaire doit garantir.\n\
                    CONDITIONS GÉNÉRALES\nUne phrase.";
        let parse = parse(&lines(text), None);
        assert_eq!(
            texts(&parse),
            vec![
                "Le marché porte sur des travaux.",
                "Le titulaire doit garantir.",
                "Une phrase.",
            ]
        );
        assert!(parse.units.iter().all(|u| u.section == Some(0)));
    }

    #[test]
    fn parts_follow_a_sentence_over_pages() {
        let page_one = "Le titulaire doit fournir";
        let page_two = "une attestation. Fin.";
        let lines = vec![
            Line {
                page: 3,
                raw: page_one,
                offset: 0,
            },
            Line {
                page: 4,
                raw: page_two,
                offset: 0,
            },
        ];
        let parse = parse(&lines, None);
        assert_eq!(
            texts(&parse)[0],
            "Le titulaire doit fournir une attestation."
        );
        let parts = parse.units[0].joined.all_parts();
        assert_eq!(
            parts,
            vec![
                Part {
                    page: 3,
                    start: 0,
                    end: page_one.len()
                },
                Part {
                    page: 4,
                    start: 0,
                    end: "une attestation.".len()
                },
            ]
        );
    }
}
