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

use serde::{Deserialize, Serialize};

use super::joined::{Joined, Part};
use super::layout::Line;
use super::lines::{cells, classify, indent, starts_lower, starts_upper, words, Cell, Class};

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

/// Words that end with a full stop without ending a sentence, lower case.
const ABBREVIATIONS: [&str; 41] = [
    "art", "arts", "cf", "n", "no", "nos", "nº", "n°", "p", "pp", "m", "mm", "mme", "mmes", "mlle",
    "mr", "mrs", "ms", "dr", "me", "pr", "st", "ste", "réf", "ref", "vol", "chap", "fig", "sect",
    "al", "env", "approx", "min", "tél", "tel", "ex", "vs", "inc", "ltd", "co", "corp",
];

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

/// Words cells are not longer than in a table's row of column titles.
const HEADER_CELL_WORDS: usize = 3;
/// Most words of an unnumbered title in ordinary case (`Garanties`, `Delivery terms`).
const PLAIN_TITLE_WORDS: usize = 8;

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
                if reader.is_plain_title(line, blank, || next_line(lines, i + 1)) {
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
    let previous = lines.get(from.checked_sub(1)?).map(|l| l.raw);
    let line = lines.get(from..)?.iter().find(|l| !l.is_blank())?;
    Some((line, classify(line, previous)))
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
    fn is_plain_title<'l, 'a: 'l>(
        &self,
        line: &Line<'_>,
        blank: bool,
        next: impl FnOnce() -> Option<(&'l Line<'a>, Class)>,
    ) -> bool {
        let text = line.text();
        let at_start = blank
            || self.paragraph.as_ref().is_none_or(|p| {
                p.joined
                    .text
                    .trim_end()
                    .ends_with(['.', '!', '?', ';', ':'])
            });
        // The cheap tests first: most lines fail them, and the next line is read only then.
        at_start
            && starts_upper(text)
            && words(text) <= PLAIN_TITLE_WORDS
            && !text.ends_with(['.', ',', ';', ':', '!', '?', '-'])
            && super::obligation::find(text).is_none()
            && next().is_none_or(|(next, class)| {
                !matches!(class, Class::Prose | Class::Pair(_)) || starts_upper(next.text())
            })
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
        let text = "Le titulaire doit :\n- fournir un planning ;\n- élire un\n  responsable.\n\
                    Le reste suit.\n1) premier point ;\nLes pièces suivantes sont remises :\n\
                    Une autre phrase.";
        let parse = parse(&lines(text), None);
        assert_eq!(
            texts(&parse),
            vec![
                "Le titulaire doit :",
                "fournir un planning ;",
                "élire un responsable.",
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
