//! French and English amounts, dates, times and percentages as documents write them, read
//! into one form: amounts as numbers with an ISO 4217 currency, dates as `YYYY-MM-DD`, times
//! as `HH:MM`, percentages as numbers. Each finder returns byte spans of the text it read, so
//! that a profile can say where a value came from.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

/// An amount of money.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Amount {
    /// The value, in the currency's units (cents rounded).
    pub value: f64,
    /// ISO 4217 code, when the text names the currency.
    pub currency: Option<&'static str>,
}

/// Currency marks and the ISO 4217 code each stands for.
const CURRENCIES: [(&str, &str); 14] = [
    ("€", "EUR"),
    ("EUR", "EUR"),
    ("euros", "EUR"),
    ("euro", "EUR"),
    ("£", "GBP"),
    ("GBP", "GBP"),
    ("$", "USD"),
    ("USD", "USD"),
    ("US$", "USD"),
    ("CHF", "CHF"),
    ("CAD", "CAD"),
    ("¥", "JPY"),
    ("JPY", "JPY"),
    ("MAD", "MAD"),
];

fn currency_code(mark: &str) -> Option<&'static str> {
    let mark = mark.trim();
    CURRENCIES
        .iter()
        .find(|(m, _)| m.eq_ignore_ascii_case(mark))
        .map(|(_, code)| *code)
}

/// A number as written in French or English: `1 234,56`, `1.234,56`, `1,234.56`, `1234.5`,
/// `12,5`. Spaces of any kind (no-break and narrow no-break included) group thousands.
/// Returns `None` for what is not a number.
pub(crate) fn parse_number(text: &str) -> Option<f64> {
    let (negative, text) = match text.trim().strip_prefix(['-', '−']) {
        Some(rest) => (true, rest.trim_start()),
        None => (false, text.trim()),
    };
    let digits: String = text
        .chars()
        .filter(|c| !matches!(c, ' ' | '\u{a0}' | '\u{202f}' | '\'' | '’'))
        .collect();
    if digits.is_empty()
        || !digits
            .chars()
            .all(|c| c.is_ascii_digit() || c == ',' || c == '.')
    {
        return None;
    }
    let last_comma = digits.rfind(',');
    let last_dot = digits.rfind('.');
    let decimal = match (last_comma, last_dot) {
        (Some(c), Some(d)) => Some(c.max(d)),
        (Some(at), None) | (None, Some(at)) => {
            let mark = digits.as_bytes()[at];
            let repeated = digits.bytes().filter(|b| *b == mark).count() > 1;
            let after = digits.len() - at - 1;
            // One mark followed by exactly three digits groups thousands ("1,234", "1.234");
            // otherwise it separates decimals ("12,5", "1234.56").
            (!repeated && after != 3).then_some(at)
        }
        (None, None) => None,
    };
    let mut plain = String::with_capacity(digits.len());
    for (i, c) in digits.char_indices() {
        match c {
            '0'..='9' => plain.push(c),
            _ if Some(i) == decimal => plain.push('.'),
            _ => {}
        }
    }
    let value: f64 = plain.parse().ok()?;
    Some(if negative { -value } else { value })
}

/// Rounds to cents.
fn cents(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// A number with its thousands groups and decimals (`1 234 567,89`, `1,234.56`, `12.5`).
/// (Spaces as `\x20`: the patterns that use it ignore literal whitespace.)
const NUMBER: &str =
    r"\d{1,3}(?:[\x20\u{a0}\u{202f}.,’']\d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?";
/// Currency marks, longest first so that `US$` wins over `$`.
const MARK: &str = r"€|£|\$|¥|US\$|(?i:EUR|GBP|USD|CHF|CAD|JPY|MAD)\b|(?i:euros?)\b";

static AMOUNT: LazyLock<Regex> = LazyLock::new(|| {
    let pattern = format!(
        r"(?x)
        (?: (?P<before>{MARK}) [\ \u{{a0}}\u{{202f}}]? (?P<n1>-?(?:{NUMBER})) )
        |
        (?: (?P<n2>-?(?:{NUMBER})) (?: [\ \u{{a0}}\u{{202f}}]? (?P<after>{MARK}) )? )"
    );
    Regex::new(&pattern).unwrap_or_else(|e| unreachable!("amount pattern: {e}"))
});

/// Every amount in `text` with the bytes it spans: numbers with a currency mark before or
/// after them, and bare numbers with decimals (`12 500,00`). A bare integer (`12`, `2025`)
/// is not taken for an amount.
pub(crate) fn find_amounts(text: &str) -> Vec<(Range<usize>, Amount)> {
    let mut found = Vec::new();
    for caps in AMOUNT.captures_iter(text) {
        let Some(whole) = caps.get(0) else { continue };
        let (number, mark) = match (caps.name("n1"), caps.name("n2")) {
            (Some(n), _) => (n, caps.name("before")),
            (None, Some(n)) => (n, caps.name("after")),
            (None, None) => continue,
        };
        // A number glued to letters or digits is part of a word or a reference.
        let glued_before = text[..whole.start()]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '/' || c == '-');
        let glued_after = text[whole.end()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || c == '/' || c == '%');
        if glued_before || glued_after {
            continue;
        }
        let has_decimals = number
            .as_str()
            .rfind([',', '.'])
            .is_some_and(|at| matches!(number.as_str().len() - at - 1, 1 | 2));
        if mark.is_none() && !has_decimals {
            continue;
        }
        let Some(value) = parse_number(number.as_str()) else {
            continue;
        };
        let span = match mark {
            Some(_) => whole.start()..whole.end(),
            None => number.start()..number.end(),
        };
        let currency = mark.and_then(|m| currency_code(m.as_str()));
        found.push((
            span,
            Amount {
                value: cents(value),
                currency,
            },
        ));
    }
    found
}

/// A calendar date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Date {
    /// Year, four digits.
    pub year: u16,
    /// 1 to 12.
    pub month: u8,
    /// 1 to 31.
    pub day: u8,
}

impl Date {
    /// The date, when it exists (30 February does not).
    pub(crate) fn new(year: u16, month: u8, day: u8) -> Option<Date> {
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let days = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return None,
        };
        ((1..=days).contains(&day) && (1900..=2200).contains(&year)).then_some(Date {
            year,
            month,
            day,
        })
    }

    /// `YYYY-MM-DD`.
    pub(crate) fn iso(self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// Month names and abbreviations, French and English, with their numbers.
const MONTHS: [(&str, u8); 38] = [
    ("janvier", 1),
    ("janv", 1),
    ("january", 1),
    ("jan", 1),
    ("février", 2),
    ("fevrier", 2),
    ("févr", 2),
    ("february", 2),
    ("feb", 2),
    ("mars", 3),
    ("march", 3),
    ("mar", 3),
    ("avril", 4),
    ("april", 4),
    ("avr", 4),
    ("apr", 4),
    ("mai", 5),
    ("may", 5),
    ("juin", 6),
    ("june", 6),
    ("jun", 6),
    ("juillet", 7),
    ("juil", 7),
    ("july", 7),
    ("jul", 7),
    ("août", 8),
    ("aout", 8),
    ("august", 8),
    ("aug", 8),
    ("septembre", 9),
    ("september", 9),
    ("sept", 9),
    ("sep", 9),
    ("octobre", 10),
    ("october", 10),
    ("oct", 10),
    ("novembre", 11),
    ("november", 11),
];

fn month_number(name: &str) -> Option<u8> {
    let name = name.trim_end_matches('.').to_lowercase();
    match name.as_str() {
        "nov" => return Some(11),
        "décembre" | "decembre" | "december" | "déc" | "dec" => return Some(12),
        _ => {}
    }
    MONTHS.iter().find(|(m, _)| *m == name).map(|(_, n)| *n)
}

const MONTH_NAME: &str = r"(?i:janvier|janv\.?|january|jan\.?|février|fevrier|févr\.?|february|feb\.?|mars|march|mar\.?|avril|april|avr\.?|apr\.?|mai|may|juin|june|jun\.?|juillet|juil\.?|july|jul\.?|août|aout|august|aug\.?|septembre|september|sept\.?|sep\.?|octobre|october|oct\.?|novembre|november|nov\.?|décembre|decembre|december|déc\.?|dec\.?)";

static DATE: LazyLock<Regex> = LazyLock::new(|| {
    let pattern = format!(
        r"(?x)
        \b(?P<iy>\d{{4}})-(?P<im>\d{{1,2}})-(?P<id>\d{{1,2}})\b
        | \b(?P<nd>\d{{1,2}})[/.\-](?P<nm>\d{{1,2}})[/.\-](?P<ny>\d{{4}}|\d{{2}})\b
        | \b(?P<td>\d{{1,2}})(?:er|st|nd|rd|th)?\s+(?:of\s+)?(?P<tm>{MONTH_NAME})\s+(?P<ty>\d{{4}})\b
        | \b(?P<em>{MONTH_NAME})\s+(?P<ed>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<ey>\d{{4}})\b"
    );
    Regex::new(&pattern).unwrap_or_else(|e| unreachable!("date pattern: {e}"))
});

/// Whether numeric dates put the month first (`03/15/2025`) when both readings are possible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum DateOrder {
    /// Day first, as in French and British English.
    #[default]
    DayFirst,
    /// Month first, as in American English.
    MonthFirst,
}

/// Every date in `text` with the bytes it spans: `2025-03-15`, `15/03/2025`, `15.03.25`,
/// `15 mars 2025`, `1er avril 2025`, `15th March 2025`, `March 15, 2025`. A numeric date
/// whose first number exceeds 12 is read day first whatever `order` says.
pub(crate) fn find_dates(text: &str, order: DateOrder) -> Vec<(Range<usize>, Date)> {
    let number = |caps: &regex::Captures<'_>, name: &str| -> Option<u32> {
        caps.name(name).and_then(|m| m.as_str().parse().ok())
    };
    let year = |y: u32| -> Option<u16> {
        let y = if y < 100 { 2000 + y } else { y };
        u16::try_from(y).ok()
    };
    let mut found = Vec::new();
    for caps in DATE.captures_iter(text) {
        let Some(whole) = caps.get(0) else { continue };
        let date = if let Some(y) = number(&caps, "iy") {
            small(number(&caps, "im"))
                .zip(small(number(&caps, "id")))
                .and_then(|(m, d)| Date::new(year(y)?, m, d))
        } else if let Some(y) = number(&caps, "ny") {
            let (a, b) = (small(number(&caps, "nd")), small(number(&caps, "nm")));
            a.zip(b).and_then(|(a, b)| {
                let (day, month) = match order {
                    DateOrder::MonthFirst if a <= 12 => (b, a),
                    _ => (a, b),
                };
                Date::new(year(y)?, month, day)
            })
        } else if let Some(y) = number(&caps, "ty") {
            let month = caps.name("tm").and_then(|m| month_number(m.as_str()));
            month
                .zip(small(number(&caps, "td")))
                .and_then(|(m, d)| Date::new(year(y)?, m, d))
        } else if let Some(y) = number(&caps, "ey") {
            let month = caps.name("em").and_then(|m| month_number(m.as_str()));
            month
                .zip(small(number(&caps, "ed")))
                .and_then(|(m, d)| Date::new(year(y)?, m, d))
        } else {
            None
        };
        if let Some(date) = date {
            found.push((whole.start()..whole.end(), date));
        }
    }
    found
}

fn small(n: Option<u32>) -> Option<u8> {
    n.and_then(|n| u8::try_from(n).ok())
}

/// A time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Time {
    /// 0 to 23.
    pub hour: u8,
    /// 0 to 59.
    pub minute: u8,
}

impl Time {
    /// `HH:MM`.
    pub(crate) fn hhmm(self) -> String {
        format!("{:02}:{:02}", self.hour, self.minute)
    }
}

static TIME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?xi)
        \b(?P<h>\d{1,2})\s?(?:h|H|:)\s?(?P<m>\d{2})?(?:\s?(?P<ampm>am|pm|a\.m\.|p\.m\.))?(?:\b|\s|$)
        | \b(?P<h2>\d{1,2})\s?(?P<ampm2>am|pm|a\.m\.|p\.m\.)
        | \b(?P<noon>midi|noon|minuit|midnight)\b",
    )
    .unwrap_or_else(|e| unreachable!("time pattern: {e}"))
});

/// Every time of day in `text` with the bytes it spans: `12h00`, `12 h`, `17h30`, `12:00`,
/// `5 pm`, `5:30 p.m.`, `midi`, `noon`.
pub(crate) fn find_times(text: &str) -> Vec<(Range<usize>, Time)> {
    let mut found = Vec::new();
    for caps in TIME.captures_iter(text) {
        let Some(whole) = caps.get(0) else { continue };
        let time = if let Some(word) = caps.name("noon") {
            let hour = match word.as_str().to_lowercase().as_str() {
                "midi" | "noon" => 12,
                _ => 0,
            };
            Some((hour, 0))
        } else {
            let hour = caps.name("h").or(caps.name("h2"));
            let minute = caps.name("m").map_or(Some(0), |m| m.as_str().parse().ok());
            let ampm = caps
                .name("ampm")
                .or(caps.name("ampm2"))
                .map(|m| m.as_str().to_lowercase().starts_with('p'));
            hour.and_then(|h| h.as_str().parse::<u8>().ok())
                .zip(minute)
                .map(|(h, m)| match ampm {
                    Some(true) if h < 12 => (h + 12, m),
                    Some(false) if h == 12 => (0, m),
                    _ => (h, m),
                })
        };
        if let Some((hour, minute)) = time.filter(|(h, m)| *h < 24 && *m < 60) {
            let end = whole.as_str().trim_end().len() + whole.start();
            found.push((whole.start()..end, Time { hour, minute }));
        }
    }
    found
}

static PERCENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?P<n>\d{1,3}(?:[.,]\d{1,2})?)\s?(?:%|pour\s?cent\b|percent\b|per\s?cent\b)")
        .unwrap_or_else(|e| unreachable!("percent pattern: {e}"))
});

/// Every percentage in `text` with the bytes it spans: `40 %`, `12,5%`, `40 percent`.
pub(crate) fn find_percentages(text: &str) -> Vec<(Range<usize>, f64)> {
    PERCENT
        .captures_iter(text)
        .filter_map(|caps| {
            let whole = caps.get(0)?;
            let value = parse_number(caps.name("n")?.as_str())?;
            Some((whole.start()..whole.end(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_both_languages() {
        for (text, value) in [
            ("1 234,56", 1234.56),
            ("1\u{a0}234,56", 1234.56),
            ("1\u{202f}234\u{202f}567,8", 1_234_567.8),
            ("1.234,56", 1234.56),
            ("1,234.56", 1234.56),
            ("1,234", 1234.0),
            ("12,5", 12.5),
            ("1234.5", 1234.5),
            ("-3,20", -3.2),
            ("1’234.50", 1234.5),
        ] {
            assert_eq!(parse_number(text), Some(value), "{text}");
        }
        assert_eq!(parse_number("12a"), None);
        assert_eq!(parse_number(""), None);
    }

    #[test]
    fn amounts_with_their_currency_and_span() {
        let text = "Total : 1 234,56 € ; prix EUR 1,234.56 ou £1,234.56 et 12 500,00 HT, lot 3.";
        let found = find_amounts(text);
        let values: Vec<(f64, Option<&str>, &str)> = found
            .iter()
            .map(|(r, a)| (a.value, a.currency, &text[r.clone()]))
            .collect();
        assert_eq!(
            values,
            vec![
                (1234.56, Some("EUR"), "1 234,56 €"),
                (1234.56, Some("EUR"), "EUR 1,234.56"),
                (1234.56, Some("GBP"), "£1,234.56"),
                (12500.0, None, "12 500,00"),
            ]
        );
        assert!(find_amounts("ref 2025-001, 12 pages").is_empty());
        let euros = find_amounts("montant de 45 000 euros");
        assert_eq!(euros.len(), 1);
        assert_eq!(euros[0].1.value, 45_000.0);
    }

    #[test]
    fn dates_in_both_languages() {
        let text = "le 15 mars 2025, le 1er avril 2025, 15/03/2025, 2025-03-15, \
                    March 15, 2025, 15th March 2025, 15.03.25, 31/02/2025";
        let dates: Vec<String> = find_dates(text, DateOrder::DayFirst)
            .into_iter()
            .map(|(_, d)| d.iso())
            .collect();
        assert_eq!(
            dates,
            vec![
                "2025-03-15",
                "2025-04-01",
                "2025-03-15",
                "2025-03-15",
                "2025-03-15",
                "2025-03-15",
                "2025-03-15",
            ]
        );
        let us = find_dates("03/15/2025 and 04/05/2025", DateOrder::MonthFirst);
        assert_eq!(us[0].1.iso(), "2025-03-15");
        assert_eq!(us[1].1.iso(), "2025-04-05");
    }

    #[test]
    fn times_and_percentages() {
        let times: Vec<String> = find_times("à 12h00, 17 h 30, 9:05, 5 pm, midi, noon")
            .into_iter()
            .map(|(_, t)| t.hhmm())
            .collect();
        assert_eq!(
            times,
            vec!["12:00", "17:30", "09:05", "17:00", "12:00", "12:00"]
        );
        let percents: Vec<f64> = find_percentages("prix 60 %, valeur technique 40%, 12,5 percent")
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        assert_eq!(percents, vec![60.0, 40.0, 12.5]);
    }
}
