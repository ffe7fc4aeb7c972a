//! What a receipt says about itself: who issued it, when, and in which currency.

use std::sync::LazyLock;

use regex::Regex;

use super::super::super::found::Found;
use super::super::super::normalise::{self, DateOrder};
use super::lexicon;
use super::lines::Line;

/// How many lines from the top of a page a merchant's name may stand: past the head of the
/// receipt, a line is an item or a total.
const MERCHANT_WITHIN: usize = 8;

/// The merchant: the first line, near the top, that names something other than the kind of
/// document, an address, a telephone or a company number. Returns it with its line index.
pub(super) fn merchant(lines: &[Line<'_>]) -> Option<(usize, Found<String>)> {
    for line in lines.iter().take(MERCHANT_WITHIN) {
        // A line with an amount is already an item or a total: the head had no name.
        if !line.amounts.is_empty() {
            return None;
        }
        if let Some(span) = lexicon::merchant_name(line.text) {
            let name = line.text[span.clone()].to_owned();
            // A name in capitals, as tills print it, is surer than a sentence.
            let capitals = name
                .chars()
                .filter(|c| c.is_alphabetic())
                .all(char::is_uppercase);
            let confidence = if capitals { 0.85 } else { 0.75 };
            return Some((line.index, line.found(name, confidence, span)));
        }
    }
    None
}

/// Numeric dates whose second number is over 12 (`03/15/2025`): a month-first writer.
static MONTH_FIRST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(?:0?[1-9]|1[0-2])[/.\-](?:1[3-9]|2\d|3[01])[/.\-](?:\d{4}|\d{2})\b")
        .unwrap_or_else(|e| unreachable!("month-first pattern: {e}"))
});
/// Numeric dates whose first number is over 12 (`15/03/2025`): a day-first writer.
static DAY_FIRST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(?:1[3-9]|2\d|3[01])[/.\-](?:0?[1-9]|1[0-2])[/.\-](?:\d{4}|\d{2})\b")
        .unwrap_or_else(|e| unreachable!("day-first pattern: {e}"))
});

/// The order numeric dates are written in on these pages, and whether the text itself showed
/// it: a date that only reads one way decides; else dollars mean month first.
pub(super) fn date_order(texts: &[&str], currency: Option<&str>) -> (DateOrder, bool) {
    if texts.iter().any(|t| MONTH_FIRST.is_match(t)) {
        (DateOrder::MonthFirst, true)
    } else if texts.iter().any(|t| DAY_FIRST.is_match(t)) {
        (DateOrder::DayFirst, true)
    } else if currency == Some("USD") {
        (DateOrder::MonthFirst, false)
    } else {
        (DateOrder::DayFirst, false)
    }
}

/// The date of the receipt: the best-ranked date (one labelled "date" or standing with a
/// time before a bare one, a bare one before a day of a stay; expiry dates never), the first
/// of equals, with its line's index. `sure_order` says whether numeric dates could be read
/// only one way.
pub(super) fn date(
    lines: &[Line<'_>],
    order: DateOrder,
    sure_order: bool,
) -> Option<(usize, Found<String>)> {
    let mut best: Option<(u8, usize, Found<String>)> = None;
    for line in lines {
        let Some(mut rank) = lexicon::date_rank(line.text) else {
            continue;
        };
        if rank == 2 && !normalise::find_times(line.text).is_empty() {
            rank = 3;
        }
        for (span, date) in normalise::find_dates(line.text, order) {
            let numeric = line.text[span.clone()].chars().all(|c| !c.is_alphabetic());
            let ambiguous = numeric && !sure_order && date.day <= 12 && date.day != date.month;
            let confidence = match (rank, ambiguous) {
                (_, true) => 0.7,
                (3, false) => 0.95,
                (2, false) => 0.85,
                _ => 0.6,
            };
            if best.as_ref().is_none_or(|(r, ..)| rank > *r) {
                best = Some((rank, line.index, line.found(date.iso(), confidence, span)));
            }
        }
    }
    best.map(|(_, index, found)| (index, found))
}

/// The time of the receipt: a time written with minutes (`14:32`, `14h32`), on the date's
/// line when it has one, else the first not in opening hours.
pub(super) fn time(lines: &[Line<'_>], date_line: Option<usize>) -> Option<Found<String>> {
    let mut first: Option<Found<String>> = None;
    for line in lines {
        if lexicon::is_opening_hours(line.text) {
            continue;
        }
        for (span, time) in normalise::find_times(line.text) {
            let written = &line.text[span.clone()];
            let with_minutes = written.contains(':')
                || written
                    .split(['h', 'H'])
                    .nth(1)
                    .is_some_and(|m| m.trim_start().starts_with(|c: char| c.is_ascii_digit()));
            if !with_minutes {
                continue;
            }
            if Some(line.index) == date_line {
                return Some(line.found(time.hhmm(), 0.9, span));
            }
            if first.is_none() {
                first = Some(line.found(time.hhmm(), 0.75, span));
            }
        }
    }
    first
}

/// Currency marks standing alone, as well as next to amounts.
static CURRENCY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"€|£|US\$|\$|\b(?:EUR|GBP|USD|CHF|CAD)\b|(?i:\beuros?\b)")
        .unwrap_or_else(|e| unreachable!("currency pattern: {e}"))
});

fn code(mark: &str) -> Option<&'static str> {
    Some(match mark.to_lowercase().as_str() {
        "€" | "eur" | "euro" | "euros" => "EUR",
        "£" | "gbp" => "GBP",
        "$" | "us$" | "usd" => "USD",
        "chf" => "CHF",
        "cad" => "CAD",
        _ => return None,
    })
}

/// The currency: the one whose marks (`€`, `EUR`, `£`, `$`) the pages use most, read where
/// it stands on the total's line when it does, else where it first appears.
pub(super) fn currency(lines: &[Line<'_>], total_line: Option<usize>) -> Option<Found<String>> {
    let mut seen: Vec<(&'static str, usize, &Line<'_>, std::ops::Range<usize>)> = Vec::new();
    for line in lines {
        for mark in CURRENCY.find_iter(line.text) {
            let Some(code) = code(mark.as_str()) else {
                continue;
            };
            match seen.iter_mut().find(|(c, ..)| *c == code) {
                Some(entry) => {
                    entry.1 += 1;
                    if Some(line.index) == total_line && Some(entry.2.index) != total_line {
                        entry.2 = line;
                        entry.3 = mark.start()..mark.end();
                    }
                }
                None => seen.push((code, 1, line, mark.start()..mark.end())),
            }
        }
    }
    let total: usize = seen.iter().map(|(_, n, ..)| n).sum();
    let (code, count, line, span) = seen
        .into_iter()
        .reduce(|a, b| if b.1 > a.1 { b } else { a })?;
    // Marks of one currency only, more than once, leave little doubt.
    let confidence = match (count == total, count) {
        (true, 2..) => 0.95,
        (true, _) => 0.85,
        (false, _) => 0.6,
    };
    Some(line.found(code.to_owned(), confidence, span))
}

#[cfg(test)]
mod tests {
    use super::super::super::super::document::{Page, PageSource};
    use super::super::lines::lines;
    use super::*;

    fn page(text: &str) -> Page {
        Page::new(1, text.into(), PageSource::Text)
    }

    #[test]
    fn the_merchant_is_the_first_line_that_names_one() {
        let p = page(
            "   TICKET DE CAISSE\n\n  SUPER U  \n 12 av. Jean Jaurès\n 69007 LYON\nPAIN  1,10",
        );
        let (index, found) = merchant(&lines(&p, DateOrder::DayFirst)).unwrap_or_else(|| {
            unreachable!("no merchant");
        });
        assert_eq!((index, found.value.as_str()), (2, "SUPER U"));
        assert_eq!((found.source.start, found.source.end), (23, 30));
        let items_first = page("PAIN   1,10\nSUPER U");
        assert!(merchant(&lines(&items_first, DateOrder::DayFirst)).is_none());
    }

    #[test]
    fn month_first_us_dates() {
        let us = ["Date: 03/04/2025 5:12 PM", "TOTAL $12.50"];
        assert_eq!(date_order(&us, Some("USD")), (DateOrder::MonthFirst, false));
        let p = page(&us.join("\n"));
        let found = date(
            &lines(&p, DateOrder::MonthFirst),
            DateOrder::MonthFirst,
            false,
        );
        assert_eq!(found.map(|(_, f)| f.value), Some("2025-03-04".to_owned()));
        // A date that reads one way only settles the order, whatever the currency.
        assert_eq!(
            date_order(&["12/25/2024"], Some("EUR")),
            (DateOrder::MonthFirst, true)
        );
        assert_eq!(
            date_order(&["25/12/2024"], Some("USD")),
            (DateOrder::DayFirst, true)
        );
    }

    #[test]
    fn the_bills_date_before_the_stays() {
        let p = page("Arrivée : 12/03/2025\nDépart : 14/03/2025\nDate : 14/03/2025\nValable jusqu'au 20/03/2025");
        let found = date(&lines(&p, DateOrder::DayFirst), DateOrder::DayFirst, true);
        let (_, found) = found.unwrap_or_else(|| unreachable!("no date"));
        assert_eq!(
            (found.value.as_str(), found.source.start),
            ("2025-03-14", 48)
        );
    }

    #[test]
    fn times_with_minutes_outside_opening_hours() {
        let p = page("Ouvert 8h30-20h00\nCaisse 2\n15/03/2025  14:32:05");
        let ls = lines(&p, DateOrder::DayFirst);
        let found = time(&ls, Some(2)).map(|f| f.value);
        assert_eq!(found, Some("14:32".to_owned()));
    }

    #[test]
    fn currency_symbols() {
        for (text, expected) in [
            ("TOTAL   £12.50\nCard   £12.50", "GBP"),
            ("TOTAL TTC  23,45 €", "EUR"),
            ("Montant EUR\nTOTAL  23,45", "EUR"),
            ("Total $44.67", "USD"),
        ] {
            let p = page(text);
            let found = currency(&lines(&p, DateOrder::DayFirst), None).map(|f| f.value);
            assert_eq!(found.as_deref(), Some(expected), "{text}");
        }
        assert!(currency(&lines(&page("TOTAL 12,00"), DateOrder::DayFirst), None).is_none());
    }
}
