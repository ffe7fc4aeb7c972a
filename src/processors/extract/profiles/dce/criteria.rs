//! Award criteria: the list under a heading such as `Critères d'attribution` or `Award
//! criteria`, each criterion with its weight (a percentage, or points made a percentage of
//! the main criteria's total) and its sub-criteria, told by their numbering (`2.1`, `a)`),
//! a different bullet or a deeper indentation than their parent. The list may run on to the
//! next page, so it is read from the whole document.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::super::super::found::{better, Found};
use super::text::{collapse, PageView};

/// One award criterion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Criterion {
    /// Its name.
    pub name: Found<String>,
    /// Its weight, in percent of the whole (points converted), when given.
    pub weight: Option<Found<f64>>,
    /// Its sub-criteria (whose own lists are empty).
    pub sub_criteria: Vec<Criterion>,
}

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| unreachable!("criteria pattern {pattern}: {e}"))
}

/// A heading that opens the list.
static HEADING: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)crit[eè]res?\s+(?:d['’]\s?attribution|de\s+jugement|de\s+choix|de\s+sélection\s+des\s+offres|d['’]\s?analyse|de\s+notation)|jugement\s+des\s+offres|(?:award|evaluation|tender\s+evaluation)\s+criteria|criteria\s+for\s+(?:the\s+)?award",
    )
});
/// A weight: `40 %`, `40 pour cent`, `40 points`, `40 pts`.
static WEIGHT: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)\b(?P<n>\d{1,3}(?:[.,]\d{1,2})?)\s?(?P<u>%|pour\s?cent\b|per\s?cent\b|percent\b|points?\b|pts\b\.?)",
    )
});
/// A list marker and what it says of the level: numbering `1.` / `2.1` / `a)` / bullets.
static MARKER: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"^(?:(?P<num>\d{1,2}(?:\.\d{1,2})*)[.)]?\s+|(?P<letter>[a-h]|i{1,3}|iv|vi?)[.)]\s+|(?P<bullet>[-–—•*·▪o])\s+)",
    )
});
/// A line that starts another section.
static SECTION: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"^(?:(?i:article|section|chapitre|part|annexe)\b|\d{1,2}(?:\.\d{1,2})*\.?\s+\p{Lu}\p{Lu}|\p{Lu}[\p{Lu}\s'’]{6,}$)",
    )
});
/// Words around a weight that are not the criterion's name.
static FILLER: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)\s*(?:[:(\-–—=,]|pondér(?:é|ée|ation)\s*(?:à|de)?|weight(?:ed|ing)?\s*(?:at|of)?|noté\s+sur|soit|à\s+hauteur\s+de|\bet\b|\band\b)\s*$",
    )
});

/// One item read from a line.
struct Item {
    level: u8,
    name: Found<String>,
    weight: Option<(Found<f64>, bool)>,
}

/// The award criteria in `views` (every page of the document).
pub(super) fn read(views: &[PageView<'_>]) -> Vec<Criterion> {
    let mut items: Vec<Item> = Vec::new();
    // How many lines the list may still run; 0 when no list is open.
    let mut open = 0usize;
    // A blank line after criteria ends the list, unless only the page's end follows it.
    let mut pending_close;
    // The first main criterion's marker and indentation.
    let mut main: Option<(String, usize)> = None;
    for view in views {
        pending_close = false;
        // Blank lines under a running header are no break in the list.
        let mut page_started = false;
        for line in &view.lines {
            if line.boilerplate {
                continue;
            }
            if line.is_blank() {
                pending_close = page_started && !items.is_empty();
                continue;
            }
            page_started = true;
            if std::mem::take(&mut pending_close) {
                open = 0;
            }
            let text = line.text.trim_start();
            let indent = line.indent();
            let heading = HEADING.find(line.text);
            if heading.is_some() {
                open = 40;
                main = None;
            } else if open == 0 {
                continue;
            } else if SECTION.is_match(text) && !WEIGHT.is_match(text) && !items.is_empty() {
                open = 0;
                continue;
            }
            open = open.saturating_sub(1);
            let (marker_kind, marker_len) = marker(text);
            let body_start = line.start + indent + marker_len;
            let body = &text[marker_len..];
            // A heading line holds criteria only after its own words (`... sont : prix 60 %`).
            let from = heading.map_or(0, |m| {
                m.end().saturating_sub(indent + marker_len).min(body.len())
            });
            let weights: Vec<_> = WEIGHT.captures_iter(&body[from..]).collect();
            if weights.is_empty() {
                // A criterion without a weight: a short marked line, not a sentence.
                let words = body.split_whitespace().count();
                if heading.is_none()
                    && marker_len > 0
                    && (1..=8).contains(&words)
                    && !body.trim_end().ends_with(['.', ':'])
                {
                    let level = level(&marker_kind, indent, &mut main);
                    let name = body.trim_end();
                    items.push(Item {
                        level,
                        name: Found::at(
                            collapse(name),
                            0.7 * view.page.reliability(),
                            view.page,
                            body_start,
                            body_start + name.len(),
                        ),
                        weight: None,
                    });
                }
                continue;
            }
            let level = level(&marker_kind, indent, &mut main);
            let mut segment_start = from;
            for (k, caps) in weights.iter().enumerate() {
                let (Some(whole), Some(n), Some(unit)) =
                    (caps.get(0), caps.name("n"), caps.name("u"))
                else {
                    continue;
                };
                let (w_start, w_end) = (from + whole.start(), from + whole.end());
                let Some(value) = super::super::super::normalise::parse_number(n.as_str()) else {
                    continue;
                };
                let segment_from = segment_start;
                segment_start = w_end;
                let Some((offset, name)) = name_of(&body[segment_from..w_start]) else {
                    continue;
                };
                let name_start = body_start + segment_from + offset;
                let points = unit.as_str().to_lowercase().starts_with('p')
                    && !unit.as_str().to_lowercase().starts_with("pour")
                    && !unit.as_str().to_lowercase().starts_with("per");
                let confidence = 0.9 * view.page.reliability();
                // Several weights on one line are a list of main criteria (`prix 60 %, technique 40 %`).
                let level = if weights.len() > 1 && k > 0 {
                    items.last().map_or(level, |i| i.level)
                } else {
                    level
                };
                items.push(Item {
                    level,
                    name: Found::at(
                        collapse(name),
                        confidence,
                        view.page,
                        name_start,
                        name_start + name.len(),
                    ),
                    weight: Some((
                        Found::at(
                            value,
                            confidence,
                            view.page,
                            body_start + w_start,
                            body_start + w_end,
                        ),
                        points,
                    )),
                });
            }
        }
    }
    build(items)
}

/// The name in `segment` (the text before a weight): without the fillers around it.
fn name_of(segment: &str) -> Option<(usize, &str)> {
    let mut name = segment;
    for _ in 0..4 {
        let cut = FILLER.find(name).map_or(name.len(), |m| m.start());
        name = name[..cut].trim_end();
    }
    let lead = name.len()
        - name
            .trim_start_matches([' ', ',', ';', ':', '-', '–', ')', '.'])
            .len();
    let name = &name[lead..];
    let lead_marker = MARKER.find(name).map_or(0, |m| m.end());
    let name_trimmed = &name[lead_marker..];
    let letters = name_trimmed.chars().filter(|c| c.is_alphabetic()).count();
    (letters >= 3 && name_trimmed.split_whitespace().count() <= 14)
        .then_some((lead + lead_marker, name_trimmed))
}

/// The marker `text` starts with (`num:2.1`, `letter`, `bullet:-`, or empty) and its length.
fn marker(text: &str) -> (String, usize) {
    let Some(caps) = MARKER.captures(text) else {
        return (String::new(), 0);
    };
    let len = caps.get(0).map_or(0, |m| m.end());
    let kind = if let Some(n) = caps.name("num") {
        format!(
            "num:{}",
            n.as_str().split('.').filter(|p| !p.is_empty()).count()
        )
    } else if caps.name("letter").is_some() {
        "letter".to_owned()
    } else {
        format!("bullet:{}", caps.name("bullet").map_or("", |m| m.as_str()))
    };
    (kind, len)
}

/// 1 for a main criterion, 2 for a sub-criterion: the first item sets the main criteria's
/// marker and indentation; an item with another marker (`2.1` under `2.`, `-` under plain
/// lines) or indented deeper is a sub-criterion.
fn level(kind: &str, indent: usize, main: &mut Option<(String, usize)>) -> u8 {
    match main {
        None => {
            *main = Some((kind.to_owned(), indent));
            1
        }
        Some((main_kind, main_indent)) => {
            if indent > *main_indent + 1 || kind != main_kind {
                2
            } else {
                1
            }
        }
    }
}

/// Items as a tree, points made percentages of the main criteria's points.
fn build(items: Vec<Item>) -> Vec<Criterion> {
    let points_total: f64 = items
        .iter()
        .filter(|i| i.level == 1)
        .filter_map(|i| i.weight.as_ref().filter(|(_, p)| *p).map(|(w, _)| w.value))
        .sum();
    let mut out: Vec<Criterion> = Vec::new();
    for item in items {
        let weight = item.weight.map(|(w, points)| {
            if points && points_total > 0.0 {
                w.map(|v| (v / points_total * 10000.0).round() / 100.0)
            } else {
                w
            }
        });
        let criterion = Criterion {
            name: item.name,
            weight,
            sub_criteria: Vec::new(),
        };
        match (item.level, out.last_mut()) {
            (2, Some(parent)) => parent.sub_criteria.push(criterion),
            _ => out.push(criterion),
        }
    }
    out
}

/// The key two readings of one criterion share.
fn key(name: &str) -> String {
    name.to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect()
}

/// Takes in `other`'s criteria, each name once.
pub(super) fn absorb(criteria: &mut Vec<Criterion>, other: Vec<Criterion>) {
    for criterion in other {
        match criteria
            .iter_mut()
            .find(|c| key(&c.name.value) == key(&criterion.name.value))
        {
            Some(kept) => {
                kept.weight = better(kept.weight.take(), criterion.weight);
                absorb(&mut kept.sub_criteria, criterion.sub_criteria);
            }
            None => criteria.push(criterion),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::super::super::super::document::{Page, PageSource};
    use super::*;

    /// A criterion as the tests compare it: name, weight, sub-criteria.
    type Read = (String, Option<f64>, Vec<(String, Option<f64>)>);

    fn criteria_of(text: &str) -> Vec<Read> {
        let page = Page::new(1, text.to_owned(), PageSource::Text);
        let views = [PageView::new(&page, &HashSet::new())];
        read(&views)
            .into_iter()
            .map(|c| {
                (
                    c.name.value,
                    c.weight.map(|w| w.value),
                    c.sub_criteria
                        .into_iter()
                        .map(|s| (s.name.value, s.weight.map(|w| w.value)))
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn numbered_criteria_with_sub_criteria() {
        let found = criteria_of(
            "Article 6 - Critères de jugement des offres\n\
             1. Prix des prestations : 40 %\n\
             2. Valeur technique : 60 %\n\
             2.1 Méthodologie : 35 %\n\
             2.2 Moyens humains : 25 %\n\
             Article 7 - Paiement\n\
             1. Acompte : 30 %",
        );
        assert_eq!(
            found,
            vec![
                ("Prix des prestations".into(), Some(40.0), vec![]),
                (
                    "Valeur technique".into(),
                    Some(60.0),
                    vec![
                        ("Méthodologie".into(), Some(35.0)),
                        ("Moyens humains".into(), Some(25.0))
                    ]
                ),
            ]
        );
    }

    #[test]
    fn points_inline_and_bullets_under_a_plain_line() {
        let found = criteria_of("Award criteria: Price 30 points, Quality 70 points.");
        assert_eq!(
            found,
            vec![
                ("Price".into(), Some(30.0), vec![]),
                ("Quality".into(), Some(70.0), vec![])
            ]
        );
        let found = criteria_of(
            "Critères d'attribution\n\
             Valeur technique (60 %) appréciée selon :\n\
             - la méthodologie (40 %)\n\
             - le planning (20 %)\n\
             Prix (40 %)",
        );
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].2.len(), 2);
        assert_eq!(found[1].0, "Prix");
    }
}
