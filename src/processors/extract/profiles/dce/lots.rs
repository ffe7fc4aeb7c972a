//! Lots: `Lot 1 : title` lines (in lists or headings), rows of a table whose header has a
//! `Lot` column, and the estimated amount on the lot's line or on a `Montant estimé` line
//! under it, before or after tax. Tranches (ferme, optionnelle) are parts of one contract,
//! not lots: nothing here reads them.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::super::super::document::PageSource;
use super::super::super::found::{better, Found};
use super::super::super::normalise::find_amounts;
use super::text::{marker_len, PageView};

/// One lot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Lot {
    /// Its number.
    pub number: Found<u32>,
    /// Its title.
    pub title: Option<Found<String>>,
    /// Its estimated amount.
    pub estimated_amount: Option<Found<LotAmount>>,
    /// Whether a site visit is mandatory for this lot; `null` when not said for it.
    pub site_visit: Option<Found<bool>>,
    /// Whether variants are allowed for this lot; `null` when not said for it.
    pub variants: Option<Found<bool>>,
}

/// An estimated amount.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct LotAmount {
    /// In the currency's units.
    pub value: f64,
    /// ISO 4217 code, when given.
    pub currency: Option<String>,
    /// `excluded` (HT, excl. VAT), `included` (TTC, incl. VAT), or `null` when not said.
    pub tax: Option<String>,
}

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| unreachable!("lot pattern {pattern}: {e}"))
}

/// A lot's line: `Lot 1 : title`, `LOT N° 2 – title`, `Lot 3    title    amount`.
static LOT_LINE: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)^lot\s*(?:n[°ºo]\s*\.?\s*)?(?P<n>\d{1,3})\b(?P<sep>\s*[:\-–—.)]\s*|\s{2,}|\s+)(?P<rest>.*)$",
    )
});
/// A table header cell naming the lot column.
static LOT_HEADER: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(?i)^(?:n[°o]\s*(?:de\s*)?lot|lots?(?:\s*n[°o])?|lot\s+no\.?)$"));
/// A lots table's header as OCR gives it, its column gaps lost: the lot column's name first,
/// then words that name another column (`Lot No. Description Estimated value`).
static SPACED_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)^(?:n[°o]\s*(?:de\s*)?lot|lots?(?:\s*n[°o]\.?)?|lot\s+no\.?)\s+\D*\b(?:description|d[ée]signation|intitul[ée]|libell[ée]|objet|title|montant|value|valeur|estimat\w*|amount)\b",
    )
});
/// A row of such a table: the lot's number, then its title and amount.
static SPACED_ROW: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^\s*(?P<n>\d{1,3})\.?\s+(?P<rest>\S.*)$"));
static BARE_NUMBER: LazyLock<Regex> = LazyLock::new(|| regex(r"^(?P<n>\d{1,3})\.?$"));
static EXCLUDED: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)\bH\.?T\.?(?:\b|$)|hors\s+tax|hors\s+TVA|\bex(?:cl(?:uding|\.)?|\.)?\s+VAT\b|\bnet\s+of\s+VAT|\bexclusive\s+of\s+VAT|\bexcluding\s+VAT",
    )
});
static INCLUDED: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)\bT\.?T\.?C\.?(?:\b|$)|toutes\s+taxes|\binc(?:l(?:uding|\.)?|\.)?\s+VAT\b|\binclusive\s+of\s+VAT",
    )
});
/// A line that gives an amount for the lot above it.
static AMOUNT_LINE: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(?i)montant|estimat|valeur|value|budget"));
/// Where a title stops: a parenthesis, an amount's label.
static TITLE_END: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)\s*(?:\(|;|\s[-–—]\s|,\s*(?:montant|estim|valeur|value)|\s(?:montant|estimated|estimation)\b)",
    )
});

/// `excluded`, `included`, or neither, as `text` says.
fn tax_of(text: &str) -> Option<String> {
    if EXCLUDED.is_match(text) {
        Some("excluded".into())
    } else if INCLUDED.is_match(text) {
        Some("included".into())
    } else {
        None
    }
}

/// The first amount of `text` (starting at byte `base` of the page), with the tax `text`
/// names or else `default_tax`.
fn amount_in(
    view: &PageView<'_>,
    base: usize,
    text: &str,
    default_tax: Option<String>,
    confidence: f64,
) -> Option<Found<LotAmount>> {
    let (range, amount) = find_amounts(text)
        .into_iter()
        .find(|(_, a)| a.value >= 100.0)?;
    // The tax mark stands right after the amount (or at the end of the row).
    let tax = tax_of(&text[range.end..]).or(default_tax);
    Some(Found::at(
        LotAmount {
            value: amount.value,
            currency: amount.currency.map(str::to_owned),
            tax,
        },
        confidence * view.page.reliability(),
        view.page,
        base + range.start,
        base + range.end,
    ))
}

/// The lots on `view`'s page.
pub(super) fn read(view: &PageView<'_>) -> Vec<Lot> {
    let mut lots: Vec<Lot> = Vec::new();
    let reliability = view.page.reliability();
    // A table's header, while its rows last: the column the lot's number is in and the tax
    // its amount column names.
    let mut table: Option<(usize, Option<String>)> = None;
    // The same for a table whose column gaps OCR lost: the tax its header names.
    let mut spaced: Option<Option<String>> = None;
    let ocr = view.page.source == PageSource::Ocr;
    let mut last_lot: Option<usize> = None;
    for line in &view.lines {
        if line.is_blank() {
            table = None;
            // OCR sets blank lines between a table's rows: they do not end it.
            continue;
        }
        let cells = line.cells();
        if ocr && cells.len() == 1 && SPACED_HEADER.is_match(line.text.trim_start()) {
            spaced = Some(tax_of(line.text));
            last_lot = None;
            continue;
        }
        if let Some(tax) = &spaced {
            match spaced_row(view, line, tax.clone()) {
                Some(lot) => {
                    last_lot = Some(push(&mut lots, lot));
                    continue;
                }
                // The table ends at its first line that is no row.
                None => spaced = None,
            }
        }
        if let Some(column) = cells.iter().position(|c| LOT_HEADER.is_match(c.text)) {
            table = Some((column, tax_of(line.text)));
            last_lot = None;
            continue;
        }
        // A table row: a bare number in the lot column.
        if let Some((column, tax)) = &table {
            if let Some(n) = cells
                .get(*column)
                .and_then(|c| BARE_NUMBER.captures(c.text))
                .and_then(|caps| caps.name("n").map(|m| (m, caps)))
                .and_then(|(m, _)| m.as_str().parse::<u32>().ok().map(|n| (n, m)))
            {
                let (number, m) = n;
                let cell = cells[*column];
                let title = cells
                    .get(column + 1)
                    .filter(|c| find_amounts(c.text).is_empty());
                let after = cells.get(column + 1).map_or(line.end(), |c| c.start);
                let row_rest = view.slice(after..line.end());
                let lot = Lot {
                    number: Found::at(
                        number,
                        0.9 * reliability,
                        view.page,
                        cell.start + m.start(),
                        cell.start + m.end(),
                    ),
                    title: title.map(|c| {
                        Found::at(
                            c.text.to_owned(),
                            0.9 * reliability,
                            view.page,
                            c.start,
                            c.start + c.text.len(),
                        )
                    }),
                    estimated_amount: amount_in(view, after, row_rest, tax.clone(), 0.9),
                    site_visit: None,
                    variants: None,
                };
                last_lot = Some(push(&mut lots, lot));
                continue;
            }
        }
        // A lot's line.
        let text = line.text.trim_start();
        let skip = line.text.len() - text.len();
        let marker = marker_len(text);
        let body = &text[marker..];
        let body_start = line.start + skip + marker;
        if let Some(caps) = LOT_LINE.captures(body) {
            let (Some(n), Some(sep), Some(rest)) =
                (caps.name("n"), caps.name("sep"), caps.name("rest"))
            else {
                continue;
            };
            let Ok(number) = n.as_str().parse::<u32>() else {
                continue;
            };
            let rest_text = rest.as_str();
            let plain_space = sep.as_str().trim().is_empty() && !sep.as_str().contains("  ");
            // `Lot 2 sera attribué...` is prose; a title starts with a capital.
            if rest_text.trim().is_empty()
                || (plain_space && !rest_text.chars().next().is_some_and(char::is_uppercase))
            {
                continue;
            }
            let confidence = if plain_space { 0.75 } else { 0.9 };
            let rest_start = body_start + rest.start();
            let title_end = TITLE_END
                .find(rest_text)
                .map(|m| m.start())
                .into_iter()
                .chain(find_amounts(rest_text).first().map(|(r, _)| r.start))
                .chain(
                    super::text::Line {
                        start: 0,
                        text: rest_text,
                        boilerplate: false,
                    }
                    .cells()
                    .get(1)
                    .map(|c| c.start),
                )
                .min()
                .unwrap_or(rest_text.len());
            let title = rest_text[..title_end].trim_end_matches([' ', ':', ',', '.', '-', '–']);
            let lot = Lot {
                number: Found::at(
                    number,
                    confidence * reliability,
                    view.page,
                    body_start + n.start(),
                    body_start + n.end(),
                ),
                title: (title.chars().filter(|c| c.is_alphabetic()).count() >= 3).then(|| {
                    Found::at(
                        title.to_owned(),
                        confidence * reliability,
                        view.page,
                        rest_start,
                        rest_start + title.len(),
                    )
                }),
                estimated_amount: amount_in(view, rest_start, rest_text, None, confidence),
                site_visit: None,
                variants: None,
            };
            last_lot = Some(push(&mut lots, lot));
            continue;
        }
        // `Montant estimé : 45 000 € HT` under a lot's line.
        if let Some(at) = last_lot {
            if AMOUNT_LINE.is_match(line.text) && lots[at].estimated_amount.is_none() {
                let default = tax_of(line.text);
                lots[at].estimated_amount = amount_in(view, line.start, line.text, default, 0.8);
            } else {
                // Past the lot's own lines (a tranche, prose): its amount is not here.
                last_lot = None;
            }
        }
    }
    lots
}

/// A row of a lots table whose column gaps OCR lost (`1 Road resurfacing £2,400,000.00`): the
/// number, the title up to the first amount, the amount with the tax the header names.
fn spaced_row(
    view: &PageView<'_>,
    line: &super::text::Line<'_>,
    tax: Option<String>,
) -> Option<Lot> {
    let caps = SPACED_ROW.captures(line.text)?;
    let (n, rest) = (caps.name("n")?, caps.name("rest")?);
    let number = n.as_str().parse::<u32>().ok()?;
    let rest_text = rest.as_str();
    let rest_start = line.start + rest.start();
    let title_end = find_amounts(rest_text)
        .into_iter()
        .find(|(_, a)| a.value >= 100.0)
        .map_or(rest_text.len(), |(r, _)| r.start);
    let title = rest_text[..title_end].trim_end();
    if title.chars().filter(|c| c.is_alphabetic()).count() < 3 {
        return None;
    }
    let reliability = view.page.reliability();
    Some(Lot {
        number: Found::at(
            number,
            0.8 * reliability,
            view.page,
            line.start + n.start(),
            line.start + n.end(),
        ),
        title: Some(Found::at(
            title.to_owned(),
            0.8 * reliability,
            view.page,
            rest_start,
            rest_start + title.len(),
        )),
        estimated_amount: amount_in(view, rest_start, rest_text, tax, 0.8),
        site_visit: None,
        variants: None,
    })
}

/// Adds `lot`, or folds it into the one with its number; returns its index.
fn push(lots: &mut Vec<Lot>, lot: Lot) -> usize {
    match lots.iter().position(|l| l.number.value == lot.number.value) {
        Some(at) => {
            fold(&mut lots[at], lot);
            at
        }
        None => {
            lots.push(lot);
            lots.len() - 1
        }
    }
}

fn fold(kept: &mut Lot, other: Lot) {
    kept.number = better(Some(kept.number.clone()), Some(other.number))
        .unwrap_or_else(|| kept.number.clone());
    kept.title = better(kept.title.take(), other.title);
    kept.estimated_amount = better(kept.estimated_amount.take(), other.estimated_amount);
    kept.site_visit = better(kept.site_visit.take(), other.site_visit);
    kept.variants = better(kept.variants.take(), other.variants);
}

/// Takes in `other`'s lots, each number once, the better reading of each field.
pub(super) fn absorb(lots: &mut Vec<Lot>, other: Vec<Lot>) {
    for lot in other {
        push(lots, lot);
    }
}

/// Orders lots by number.
pub(super) fn sort(lots: &mut [Lot]) {
    lots.sort_by_key(|l| l.number.value);
}

/// Sets `field` of each lot in `by_lot` (a lot named only there is added, its number read
/// where the clause names it).
pub(super) fn attach(
    lots: &mut Vec<Lot>,
    by_lot: Vec<(Found<u32>, Found<bool>)>,
    field: fn(&mut Lot) -> &mut Option<Found<bool>>,
) {
    for (number, value) in by_lot {
        let at = match lots.iter().position(|l| l.number.value == number.value) {
            Some(at) => at,
            None => {
                lots.push(Lot {
                    number: Found {
                        confidence: number.confidence * 0.8,
                        ..number
                    },
                    title: None,
                    estimated_amount: None,
                    site_visit: None,
                    variants: None,
                });
                lots.len() - 1
            }
        };
        let slot = field(&mut lots[at]);
        *slot = better(slot.take(), Some(value));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::super::super::super::document::{Page, PageSource};
    use super::*;

    /// A lot as the tests compare it: number, title, amount, tax.
    type Read = (u32, Option<String>, Option<f64>, Option<String>);

    fn lots_of(text: &str) -> Vec<Read> {
        let page = Page::new(1, text.to_owned(), PageSource::Text);
        read(&PageView::new(&page, &HashSet::new()))
            .into_iter()
            .map(|l| {
                (
                    l.number.value,
                    l.title.map(|t| t.value),
                    l.estimated_amount.as_ref().map(|a| a.value.value),
                    l.estimated_amount.and_then(|a| a.value.tax),
                )
            })
            .collect()
    }

    #[test]
    fn a_table_whose_gaps_ocr_lost() {
        let text =
            "Lot No. Description Estimated value (excl. VAT)\n1 Road resurfacing £2,400,000.00\n\n\
                    2 Drainage works £650,000.00\n\nEvaluation criteria\n1 Quality 60 points";
        let page = Page::new(1, text.to_owned(), PageSource::Ocr);
        let read: Vec<Read> = read(&PageView::new(&page, &HashSet::new()))
            .into_iter()
            .map(|l| {
                (
                    l.number.value,
                    l.title.map(|t| t.value),
                    l.estimated_amount.as_ref().map(|a| a.value.value),
                    l.estimated_amount.and_then(|a| a.value.tax),
                )
            })
            .collect();
        let excluded = Some("excluded".to_owned());
        assert_eq!(
            read,
            vec![
                (
                    1,
                    Some("Road resurfacing".into()),
                    Some(2_400_000.0),
                    excluded.clone()
                ),
                (2, Some("Drainage works".into()), Some(650_000.0), excluded),
            ]
        );
    }

    #[test]
    fn a_table_of_lots_with_the_tax_in_its_header() {
        let lots = lots_of(
            "N° lot   Désignation                 Montant estimé HT\n\
             1        Nettoyage des locaux        12 500,00 €\n\
             2        Vitrerie                    8 430,50 €\n",
        );
        assert_eq!(
            lots,
            vec![
                (
                    1,
                    Some("Nettoyage des locaux".into()),
                    Some(12500.0),
                    Some("excluded".into())
                ),
                (
                    2,
                    Some("Vitrerie".into()),
                    Some(8430.5),
                    Some("excluded".into())
                ),
            ]
        );
    }

    #[test]
    fn tranches_are_not_lots_and_prose_is_no_title() {
        let lots = lots_of(
            "Tranche ferme : gros œuvre, 120 000 € HT\n\
             Tranche optionnelle 1 : second œuvre\n\
             Le lot 2 sera attribué séparément.\n\
             Lot 3 sera notifié plus tard.",
        );
        assert!(lots.is_empty(), "{lots:?}");
    }

    #[test]
    fn lot_lines_and_an_amount_line_under_them() {
        let lots = lots_of(
            "- Lot n° 1 : Espaces verts (montant estimé : 45 000 € TTC)\n\
             - Lot n° 2 – Voirie\n\
               Montant estimatif : 30 000,00 euros HT\n\
             Lot 3: Signalisation, estimated value EUR 1,234.56",
        );
        assert_eq!(
            lots,
            vec![
                (
                    1,
                    Some("Espaces verts".into()),
                    Some(45000.0),
                    Some("included".into())
                ),
                (
                    2,
                    Some("Voirie".into()),
                    Some(30000.0),
                    Some("excluded".into())
                ),
                (3, Some("Signalisation".into()), Some(1234.56), None),
            ]
        );
    }
}
