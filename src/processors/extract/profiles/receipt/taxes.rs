//! VAT lines (rate, base, amount) and the other taxes a receipt adds (taxe de séjour, sales
//! tax). A VAT line is read by arithmetic rather than by column order: of its amounts, the
//! base is the one whose rate gives another, so that `HT TVA TTC`, `TTC HT TVA` and
//! `Net VAT Gross` tables all read the same.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

use super::lexicon;
use super::lines::{decimal, same, Line};
use super::{OtherTax, VatLine};

/// VAT rates in use in Europe, to tell a rate printed without `%` in a VAT table's rate
/// column from an amount.
const KNOWN_RATES: [f64; 16] = [
    0.0, 2.1, 5.0, 5.5, 6.0, 7.0, 8.5, 9.0, 10.0, 12.0, 13.0, 19.0, 19.6, 20.0, 21.0, 23.0,
];
/// Highest VAT or sales tax rate believed.
const MAX_RATE: f64 = 30.0;

/// A percentage with up to three decimals (`8.875%`, `5,50 %`); or a rate with decimals whose
/// `%` OCR read as `96` or `%6` (`5,5096`, `20,00 %6`): the sign's circles taken for digits.
static PERCENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?:^|[^\d.,])(?:(?P<n>\d{1,2}(?:[.,]\d{1,3})?)\s?%|(?P<o>\d{1,2}[.,]\d{1,2})\s?(?:96|%6)(?:\s|$))",
    )
    .unwrap_or_else(|e| unreachable!("rate pattern: {e}"))
});
/// A number standing alone, as a rate column prints it (`A  20  8,33  1,67`).
static BARE_NUMBER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|\s)(?P<n>\d{1,2}(?:[.,]\d{1,2})?)(?:\s|$)")
        .unwrap_or_else(|e| unreachable!("bare number pattern: {e}"))
});

/// The rate a line gives as a percentage, with its span (`%` included).
fn percent(text: &str) -> Option<(Range<usize>, f64)> {
    let caps = PERCENT.captures(text)?;
    let number = caps.name("n").or(caps.name("o"))?;
    let whole = caps.get(0)?;
    let value = decimal(number.as_str())?;
    let end = whole.start() + whole.as_str().trim_end().len();
    (value <= MAX_RATE).then_some((number.start()..end, value))
}

/// The VAT lines of a receipt; a line summing them (`TOTAL TVA 3,50`, a table's `Total` row)
/// is none of them.
pub(super) fn vat(lines: &[Line<'_>]) -> Vec<VatLine> {
    let mut found = Vec::new();
    let mut in_table = false;
    for line in lines {
        let label = line.label();
        if lexicon::is_vat_header(line.text) && line.amounts.is_empty() {
            in_table = true;
            continue;
        }
        if line.amounts.is_empty() {
            // A table ends at its first line of words without figures; blank lines and rules
            // (OCR puts them between rows) do not end it.
            if line.has_words() {
                in_table &= percent(line.text).is_some();
            }
            continue;
        }
        // A table's total row, or a line that sums the VAT, is no VAT line of its own.
        if lexicon::ends_items(label) {
            continue;
        }
        if !(lexicon::mentions_vat(line.text) || in_table) {
            continue;
        }
        if let Some(vat) = vat_line(line, in_table) {
            found.push(vat);
        }
    }
    found
}

/// One VAT line from `line`'s rate and amounts; `in_table` lets a rate go without its `%`.
fn vat_line(line: &Line<'_>, in_table: bool) -> Option<VatLine> {
    let mut amounts: Vec<(Range<usize>, f64)> = line
        .amounts
        .iter()
        .map(|(r, a)| (r.clone(), a.value))
        .collect();
    let mut rate = percent(line.text);
    if let Some((span, _)) = &rate {
        // A rate OCR wrote with `96` for its `%` was taken for an amount: it is none.
        amounts.retain(|(r, _)| r.end <= span.start || span.end <= r.start);
    }
    if rate.is_none() && in_table {
        // The rate column without `%`: a known rate standing before the amounts, or the
        // first of the amounts when it is one and more follow.
        let before = line.amounts.first().map_or(0, |(r, _)| r.start);
        rate = BARE_NUMBER
            .captures_iter(&line.text[..before])
            .filter_map(|c| c.name("n"))
            .filter_map(|n| Some((n.start()..n.end(), decimal(n.as_str())?)))
            .find(|(_, v)| KNOWN_RATES.contains(v));
        if rate.is_none() && amounts.len() >= 3 && KNOWN_RATES.contains(&amounts[0].1) {
            rate = Some(amounts.remove(0));
        }
    }
    let pair = |r: f64| {
        (0..amounts.len()).find_map(|i| {
            (0..amounts.len())
                .filter(|j| *j != i)
                .find(|j| {
                    let (base, tax) = (amounts[i].1, amounts[*j].1);
                    base > 0.0 && same(base * r / 100.0, tax, 2.0 + base * 0.002)
                })
                .map(|j| (i, j))
        })
    };
    let found = |(span, value): &(Range<usize>, f64), confidence| {
        line.found(*value, confidence, span.clone())
    };
    match rate {
        Some((rate_span, r)) => {
            let rate_found = Some(line.found(r, 0.9, rate_span));
            if let Some((b, v)) = pair(r) {
                let (base, tax) = (amounts[b].1, amounts[v].1);
                // A third amount equal to base + VAT confirms the reading.
                let gross = amounts.iter().any(|(_, a)| same(*a, base + tax, 1.0));
                let confidence = if gross { 0.95 } else { 0.85 };
                return Some(VatLine {
                    rate: rate_found,
                    base: Some(found(&amounts[b], confidence)),
                    amount: found(&amounts[v], confidence),
                });
            }
            // Gross and VAT: VAT = gross × rate / (100 + rate).
            let from_gross = (0..amounts.len()).find_map(|i| {
                (0..amounts.len())
                    .filter(|j| *j != i)
                    .find(|j| same(amounts[i].1 * r / (100.0 + r), amounts[*j].1, 2.0))
            });
            if let Some(v) = from_gross {
                return Some(VatLine {
                    rate: rate_found,
                    base: None,
                    amount: found(&amounts[v], 0.8),
                });
            }
            // A rate and one amount: "dont TVA 20 % 1,67".
            (amounts.len() == 1).then(|| VatLine {
                rate: rate_found,
                base: None,
                amount: found(&amounts[0], 0.7),
            })
        }
        None => {
            // No rate printed: a base and VAT whose ratio is a known rate, or a lone amount.
            let ratio = KNOWN_RATES
                .iter()
                .filter(|r| **r > 0.0)
                .find_map(|r| pair(*r));
            if let Some((b, v)) = ratio {
                return Some(VatLine {
                    rate: None,
                    base: Some(found(&amounts[b], 0.7)),
                    amount: found(&amounts[v], 0.7),
                });
            }
            (amounts.len() == 1 && lexicon::mentions_vat(line.label())).then(|| VatLine {
                rate: None,
                base: None,
                amount: found(&amounts[0], 0.6),
            })
        }
    }
}

/// The taxes other than VAT: each named line (taxe de séjour, sales tax, a lone "Tax") with
/// its last amount, and its rate when it gives one.
pub(super) fn other_taxes(lines: &[Line<'_>]) -> Vec<OtherTax> {
    let mut found = Vec::new();
    for line in lines {
        let Some(name) = lexicon::other_tax(line.text) else {
            continue;
        };
        if lexicon::ends_items(line.label()) {
            continue;
        }
        let Some((span, amount)) = line.amounts.last() else {
            continue;
        };
        if span.start < name.end {
            continue;
        }
        let rate = percent(line.text).map(|(span, r)| line.found(r, 0.9, span));
        let label = line.text[name.clone()].to_owned();
        found.push(OtherTax {
            label: line.found(label, 0.85, name),
            rate,
            amount: line.found(amount.value, 0.85, span.clone()),
        });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::super::super::super::document::{Page, PageSource};
    use super::super::super::super::normalise::DateOrder;
    use super::super::lines::lines;
    use super::*;

    fn read(text: &str) -> Vec<(Option<f64>, Option<f64>, f64)> {
        let page = Page::new(1, text.into(), PageSource::Text);
        vat(&lines(&page, DateOrder::DayFirst))
            .into_iter()
            .map(|v| {
                (
                    v.rate.map(|r| r.value),
                    v.base.map(|b| b.value),
                    v.amount.value,
                )
            })
            .collect()
    }

    #[test]
    fn vat_tables_in_any_column_order() {
        let table = "TVA   Taux      HT     TVA     TTC\n\
                     A     5,50%   18,96    1,04   20,00\n\
                     B    20,00%    8,33    1,67   10,00\n\
                     Total         27,29    2,71   30,00\n\
                     Merci de votre visite";
        assert_eq!(
            read(table),
            vec![
                (Some(5.5), Some(18.96), 1.04),
                (Some(20.0), Some(8.33), 1.67)
            ]
        );
        let gross_first = "Code  Taux   TTC     HT     TVA\n1     20    12,00   10,00   2,00";
        assert_eq!(read(gross_first), vec![(Some(20.0), Some(10.0), 2.0)]);
        let uk = "VAT Rate    Net     VAT    Gross\n\nA  20.0%  10.42   2.08   12.50";
        assert_eq!(read(uk), vec![(Some(20.0), Some(10.42), 2.08)]);
    }

    #[test]
    fn rates_whose_sign_ocr_read_as_digits() {
        let table = "TVA   Taux      HT     TVA\nA     5,50 96   18,96    1,04\nB     20,00%6    8,33    1,67";
        assert_eq!(
            read(table),
            vec![
                (Some(5.5), Some(18.96), 1.04),
                (Some(20.0), Some(8.33), 1.67)
            ]
        );
    }

    #[test]
    fn single_vat_lines() {
        assert_eq!(
            read("dont TVA 20 %     1,67"),
            vec![(Some(20.0), None, 1.67)]
        );
        assert_eq!(
            read("TVA 10 % sur 180,00 = 18,00"),
            vec![(Some(10.0), Some(180.0), 18.0)]
        );
        // Gross and VAT: the VAT is the one the rate gives from the gross.
        assert_eq!(
            read("VAT @ 20%   Gross £12.50   VAT £2.08"),
            vec![(Some(20.0), None, 2.08)]
        );
        assert_eq!(read("VAT @ 20%     £2.08"), vec![(Some(20.0), None, 2.08)]);
        assert!(read("TVA intracom FR12345678901\nTOTAL TVA   2,71").is_empty());
        // A line that is no VAT line keeps out even with a rate.
        assert!(read("REMISE 10 %    -1,00").is_empty());
    }

    #[test]
    fn other_taxes_by_name() {
        let page = Page::new(
            1,
            "Taxe de séjour 2 pers x 2 nuits x 1,65   6,60\nSales Tax 8.875%   3.55\nTotal tax  3.55"
                .into(),
            PageSource::Text,
        );
        let taxes: Vec<(String, Option<f64>, f64)> =
            other_taxes(&lines(&page, DateOrder::MonthFirst))
                .into_iter()
                .map(|t| (t.label.value, t.rate.map(|r| r.value), t.amount.value))
                .collect();
        assert_eq!(
            taxes,
            vec![
                ("Taxe de séjour".to_owned(), None, 6.6),
                ("Sales Tax".to_owned(), Some(8.875), 3.55),
            ]
        );
    }
}
