//! The `requirements` profile: every sentence, list item or table row that states an
//! obligation (French or English), with its section, page, category and a stable id.
//!
//! A chunk reads a window of body lines (running headers, footers and page numbers left
//! out: [`layout`]) from [`LOOKBACK`] pages before its first page to [`LOOKAHEAD`] pages
//! after its last, into units ([`sentences`]); the section in force where the window
//! starts comes from the last heading before it. It keeps the units that start on its
//! pages and state an obligation ([`obligation`]), so that a sentence broken by a page
//! break belongs to the chunk of the page where it starts and is read whole. Units are read
//! the same way whatever the chunking: line classes do not depend on what came before but
//! the line before, and a paragraph is cut at the same stops.
//!
//! A requirement's id is `REQ-` and the first 10 hex digits of the SHA-256 of its text
//! (its lead first, for a list item that takes its obligation from the sentence before the
//! list), lower case, spaces collapsed: the same sentence gets the same id in any run, and
//! a sentence found in several places is one requirement listing each occurrence.

mod category;
mod joined;
mod layout;
mod lines;
mod obligation;
mod sentences;

use std::collections::HashMap;
use std::ops::Range;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::super::document::Document;
use super::super::found::{Found, Source};
use super::{Merger, Profile};
use category::Category;
use joined::{Joined, Part};
use layout::{Layout, Line};
use obligation::{Marker, Modality};
use sentences::{Heading, Kind, Parse, Unit};

/// Pages read before a chunk's first: enough for a list's lead or a sentence that starts
/// there and runs on into the chunk, so that the chunk knows where its own units start.
/// (Each page more is read again by every chunk: with a page per chunk, a window of three
/// pages reads each page three times.)
const LOOKBACK: usize = 1;
/// Pages read after a chunk's last: a sentence that starts in the chunk ends within them.
const LOOKAHEAD: usize = 1;
/// Longer than this, a "sentence" is more likely lines read wrongly into one.
const LONG_SENTENCE: usize = 800;

/// The `requirements` profile.
#[derive(Debug, Default)]
pub(crate) struct Requirements;

/// A section, as its heading gives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SectionRef {
    /// `3.2.1`, or `5` for `ARTICLE 5`.
    pub number: String,
    /// The heading's title (empty when the heading is a number alone).
    pub title: String,
}

/// One place a requirement is written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Occurrence {
    /// The page it starts on.
    pub page: u32,
    /// The section it stands in (for a table row, the section of the table).
    pub section: Option<Found<SectionRef>>,
    /// Its span on the page it starts on (up to that page's end when it runs on).
    pub source: Source,
    /// Its span on each page it runs over, in order: one unless a page break cuts it.
    pub sources: Vec<Source>,
}

/// One requirement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Requirement {
    /// `REQ-` and 10 hex digits, from the text.
    pub id: String,
    /// The text, spaces collapsed, lines and pages joined (a table row's cells joined by
    /// ` | `); read at its first occurrence.
    pub text: Found<String>,
    /// Sentence, list item or table row.
    pub kind: Kind,
    /// Obligation or prohibition.
    pub modality: Modality,
    /// The words that make it one (`doit`, `shall`, `est tenu de`, `Obligatoire`).
    pub obligation: Found<String>,
    /// For a list item whose obligation is in the sentence before the list, that sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead: Option<Found<String>>,
    /// Technical, administrative, financial or legal, and the word that decided it.
    pub category: Found<Category>,
    /// The section of its first occurrence.
    pub section: Option<Found<SectionRef>>,
    /// The page of its first occurrence.
    pub page: u32,
    /// Every place it is written, in document order.
    pub occurrences: Vec<Occurrence>,
}

impl Profile for Requirements {
    fn name(&self) -> &'static str {
        "requirements"
    }

    fn extract(&self, document: &Document, pages: Range<usize>) -> Value {
        to_json(&extract(document, pages))
    }

    fn merger(&self) -> Box<dyn Merger> {
        Box::<Merged>::default()
    }
}

/// The requirements of the parts seen so far, each id once.
#[derive(Debug, Default)]
struct Merged {
    items: Vec<Requirement>,
    /// Where each id is in `items`.
    index: HashMap<String, usize>,
    /// Values of a part that do not read back as a requirement: kept as they are rather than
    /// dropped, after the requirements.
    others: Vec<Value>,
}

impl Merger for Merged {
    fn absorb(&mut self, part: Value) {
        let Value::Array(values) = part else { return };
        for value in values {
            // A part is this profile's own output; one that does not read back is kept as it
            // is rather than dropped.
            match Requirement::deserialize(&value) {
                Ok(item) => self.add(item),
                Err(_) => self.others.push(value),
            }
        }
    }

    fn finish(self: Box<Self>) -> Value {
        let mut merged = to_json(&self.items);
        if let Value::Array(list) = &mut merged {
            list.extend(self.others);
        }
        merged
    }
}

impl Merged {
    /// Joins a requirement of an id seen before into the first, with every occurrence once,
    /// in order.
    fn add(&mut self, item: Requirement) {
        match self.index.get(&item.id) {
            Some(&at) => {
                let kept = &mut self.items[at];
                for occurrence in item.occurrences {
                    if !kept
                        .occurrences
                        .iter()
                        .any(|o| o.source == occurrence.source)
                    {
                        kept.occurrences.push(occurrence);
                    }
                }
                kept.occurrences
                    .sort_by_key(|o| (o.source.page, o.source.start));
            }
            None => {
                self.index.insert(item.id.clone(), self.items.len());
                self.items.push(item);
            }
        }
    }
}

fn to_json(items: &[Requirement]) -> Value {
    serde_json::to_value(items).unwrap_or_else(|e| Value::String(format!("unserialisable: {e}")))
}

/// The id of a requirement of `text`.
pub(crate) fn requirement_id(text: &str) -> String {
    let normal = joined::collapse(text).to_lowercase();
    let digest = Sha256::digest(normal.as_bytes());
    let hex: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    format!("REQ-{hex}")
}

/// Joins requirements of one id into the first, with every occurrence once, in order.
fn deduplicate(items: Vec<Requirement>) -> Vec<Requirement> {
    let mut merged = Merged::default();
    for item in items {
        merged.add(item);
    }
    merged.items
}

/// The last heading on the pages before `before`: the section in force where a window
/// starting there opens. Reads back line by line until one is found, classifying only the
/// lines that may be one (as [`sentences::parse`] would, with the line before for context).
fn section_before(document: &Document, layout: &Layout, before: usize) -> Option<Heading> {
    for index in (0..before).rev() {
        let body = layout.body(document, index);
        for (i, line) in body.iter().enumerate().rev() {
            if line.is_blank() || !lines::may_be_heading(line.text()) {
                continue;
            }
            let previous = match body[..i].iter().rev().find(|l| !l.is_blank()) {
                Some(l) => Some(l.raw),
                None => (0..index)
                    .rev()
                    .find_map(|p| layout.body(document, p).last().map(|l| l.raw)),
            };
            if let lines::Class::Heading(number, title) = lines::classify(line, previous) {
                let (start, end) = line.span();
                return Some(Heading {
                    number,
                    title,
                    part: Part {
                        page: index,
                        start,
                        end,
                    },
                });
            }
        }
    }
    None
}

/// The requirements that start on `pages` of `document`.
fn extract(document: &Document, pages: Range<usize>) -> Vec<Requirement> {
    if pages.is_empty() || pages.start >= document.pages.len() {
        return Vec::new();
    }
    let layout = document
        .derived
        .get_or_make("requirements.layout", || Layout::of(document));
    let from = pages.start.saturating_sub(LOOKBACK);
    let to = (pages.end + LOOKAHEAD).min(document.pages.len());
    let section = section_before(document, &layout, from);
    let lines: Vec<Line<'_>> = (from..to).flat_map(|i| layout.body(document, i)).collect();
    let parse = sentences::parse(&lines, section);
    let markers: Vec<Option<Marker>> = parse.units.iter().map(own_marker).collect();
    // A list's lead that lends its obligation to an item is read with the item, not alone.
    let mut lent = vec![false; parse.units.len()];
    for (unit, marker) in parse.units.iter().zip(&markers) {
        if let (None, Some(lead)) = (marker, unit.lead) {
            if markers.get(lead).is_some_and(Option::is_some) {
                lent[lead] = true;
            }
        }
    }
    let mut items = Vec::new();
    for (i, unit) in parse.units.iter().enumerate() {
        let Some(first) = unit.joined.all_parts().first().copied() else {
            continue;
        };
        if !pages.contains(&first.page) || lent[i] || unit.header {
            continue;
        }
        let found = match (&markers[i], unit.lead) {
            (Some(marker), _) => Some((marker, &unit.joined, None)),
            (None, Some(lead)) => markers[lead]
                .as_ref()
                .map(|m| (m, &parse.units[lead].joined, Some(&parse.units[lead]))),
            (None, None) => None,
        };
        if let Some((marker, marked, lead)) = found {
            if let Some(item) = requirement(document, &parse, unit, marker, marked, lead) {
                items.push(item);
            }
        }
    }
    deduplicate(items)
}

/// The obligation `unit` states itself, if any: not in a question, not in two words.
fn own_marker(unit: &Unit) -> Option<Marker> {
    let text = unit.joined.text.trim_end();
    if text.ends_with('?') || text.split_whitespace().count() < 3 {
        return None;
    }
    obligation::find(&unit.joined.text)
}

/// `joined`'s bytes `range` as a value read from the page they start on.
fn found_at<T>(
    document: &Document,
    joined: &Joined,
    range: Range<usize>,
    value: T,
    confidence: f64,
) -> Option<Found<T>> {
    let part = joined.parts(range).into_iter().next()?;
    let page = document.pages.get(part.page)?;
    Some(Found::at(value, confidence, page, part.start, part.end))
}

fn source(document: &Document, part: Part) -> Option<Source> {
    document
        .pages
        .get(part.page)
        .map(|p| p.span(part.start, part.end))
}

/// The requirement `unit` states, its obligation `marker` found in `marked` (the unit's own
/// text, or its lead's).
fn requirement(
    document: &Document,
    parse: &Parse,
    unit: &Unit,
    marker: &Marker,
    marked: &Joined,
    lead: Option<&Unit>,
) -> Option<Requirement> {
    let parts = unit.joined.all_parts();
    let first = *parts.first()?;
    let page = document.pages.get(first.page)?;
    let text = unit.joined.collapsed();
    let lead_text = lead.map(|l| l.joined.collapsed());
    let id = requirement_id(&match &lead_text {
        Some(lead) => format!("{lead} {text}"),
        None => text.clone(),
    });
    let mut confidence = marker.strength * page.reliability();
    if lead.is_some() {
        confidence *= 0.9;
    }
    if text.len() > LONG_SENTENCE {
        confidence *= 0.7;
    }
    let obligation = found_at(
        document,
        marked,
        marker.range.clone(),
        joined::collapse(&marked.text[marker.range.clone()]),
        marker.strength,
    )?;
    let title = unit
        .section
        .and_then(|s| parse.sections.get(s))
        .map(|h| h.title.as_str());
    // The words of the item itself, else of its lead.
    let (category, sure, word) = match (category::categorise(&unit.joined.text, title), lead) {
        ((_, _, None), Some(l)) => {
            let (c, s, w) = category::categorise(&l.joined.text, title);
            (c, s, w.map(|w| (&l.joined, w)))
        }
        ((c, s, w), _) => (c, s, w.map(|w| (&unit.joined, w))),
    };
    let category = match word {
        Some((joined, range)) => found_at(document, joined, range, category, sure)?,
        None => Found::at(category, sure, page, first.start, first.end),
    };
    let section = unit
        .section
        .and_then(|s| parse.sections.get(s))
        .and_then(|h| {
            let heading_page = document.pages.get(h.part.page)?;
            Some(Found::at(
                SectionRef {
                    number: h.number.clone(),
                    title: h.title.clone(),
                },
                0.9,
                heading_page,
                h.part.start,
                h.part.end,
            ))
        });
    let sources: Vec<Source> = parts.iter().filter_map(|p| source(document, *p)).collect();
    let text = Found::at(text, confidence, page, first.start, first.end);
    let lead = match (lead, lead_text) {
        (Some(l), Some(value)) => found_at(
            document,
            &l.joined,
            0..l.joined.text.len(),
            value,
            confidence,
        ),
        _ => None,
    };
    Some(Requirement {
        id,
        kind: unit.kind,
        modality: marker.modality,
        obligation,
        lead,
        category,
        section: section.clone(),
        page: page.page,
        occurrences: vec![Occurrence {
            page: page.page,
            section,
            source: text.source,
            sources,
        }],
        text,
    })
}

#[cfg(test)]
mod tests;
