//! A receipt page as lines, each with the amounts it holds: the unit every rule of the profile
//! reads. Amounts that are really dates, times or rates (`15.03.25`, `5,50 %`) are left out,
//! so that a rule taking "the last amount of the line" never takes one of those.

use std::ops::Range;

use super::super::super::document::Page;
use super::super::super::found::Found;
use super::super::super::normalise::{self, Amount, DateOrder};

/// One line of a page.
#[derive(Debug, Clone)]
pub(super) struct Line<'a> {
    /// The page it is on.
    pub page: &'a Page,
    /// Its position among the page's lines, from 0.
    pub index: usize,
    /// Byte offset of its first character in the page's text.
    pub start: usize,
    /// Its text, without the line end.
    pub text: &'a str,
    /// Its amounts, in order, with their byte spans in `text`.
    pub amounts: Vec<(Range<usize>, Amount)>,
}

impl<'a> Line<'a> {
    /// A value read from bytes `span` of this line, its confidence tempered by how the page
    /// was read.
    pub(super) fn found<T>(&self, value: T, confidence: f64, span: Range<usize>) -> Found<T> {
        Found::at(
            value,
            confidence * self.page.reliability(),
            self.page,
            self.start + span.start,
            self.start + span.end,
        )
    }

    /// The words before the line's first amount, trimmed: what the amounts are for.
    pub(super) fn label(&self) -> &'a str {
        let end = self
            .amounts
            .first()
            .map_or(self.text.len(), |(r, _)| r.start);
        self.text[..end].trim()
    }

    /// The last amount of the line, when nothing but a tax code or a currency follows it
    /// (`3,70 B`, `12.50 A`, `23,45 EUR`): the column a till prints line totals in.
    pub(super) fn closing_amount(&self) -> Option<&(Range<usize>, Amount)> {
        let last = self.amounts.last()?;
        let rest = self.text[last.0.end..].trim();
        let tail_ok = rest.is_empty()
            || (rest.chars().count() <= 2 && rest.chars().all(|c| c.is_alphanumeric() || c == '*'))
            || matches!(
                rest.to_lowercase().as_str(),
                "eur" | "€" | "£" | "$" | "ttc"
            );
        tail_ok.then_some(last)
    }

    /// True when the line has at least two letters: it can name something.
    pub(super) fn has_words(&self) -> bool {
        letters(self.text) >= 2
    }
}

/// How many letters `text` holds.
pub(super) fn letters(text: &str) -> usize {
    text.chars().filter(|c| c.is_alphabetic()).count()
}

/// The lines of `page`, amounts found with `order` for the dates they must not be taken for.
pub(super) fn lines(page: &Page, order: DateOrder) -> Vec<Line<'_>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (index, raw) in page.text.split('\n').enumerate() {
        let text = raw.trim_end_matches('\r');
        let taken: Vec<Range<usize>> = normalise::find_dates(text, order)
            .into_iter()
            .map(|(r, _)| r)
            .chain(normalise::find_times(text).into_iter().map(|(r, _)| r))
            .chain(
                normalise::find_percentages(text)
                    .into_iter()
                    .map(|(r, _)| r),
            )
            .collect();
        let amounts = normalise::find_amounts(&sign_after_mark(text))
            .into_iter()
            .filter(|(r, _)| !taken.iter().any(|t| t.start < r.end && r.start < t.end))
            .collect();
        out.push(Line {
            page,
            index,
            start,
            text,
            amounts,
        });
        start += raw.len() + 1;
    }
    out
}

/// `text` with each `|` that stands between spaces, tabs or a line's ends read as a space:
/// the rule between a table row's cells (a DOCX or ODT table comes out as `cell | cell`, a
/// text export may draw `| cell | cell |`) is the gap between two columns, as a till's
/// spaces are. Every other byte stays where it was, so that spans index the page's text.
/// `None` when there is no such rule.
pub(super) fn unruled(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let gap = |at: Option<&u8>| at.is_none_or(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    let rules: Vec<usize> = (0..bytes.len())
        .filter(|&i| {
            bytes[i] == b'|'
                && gap(i.checked_sub(1).and_then(|j| bytes.get(j)))
                && gap(bytes.get(i + 1))
        })
        .collect();
    if rules.is_empty() {
        return None;
    }
    let mut out = bytes.to_vec();
    for i in rules {
        out[i] = b' ';
    }
    // Only ASCII bytes were replaced by ASCII bytes: still UTF-8.
    String::from_utf8(out).ok()
}

/// A quantity, unit price or rate as written next to a multiplication sign or a `%`: one
/// separator is a decimal mark whatever follows it (`1,859` €/L, `0,756` kg, `8.875` %), where
/// [`normalise::parse_number`] would read `1,859` as a thousand and more.
pub(super) fn decimal(text: &str) -> Option<f64> {
    let marks = text.matches([',', '.']).count();
    if marks == 1 {
        text.trim().replace(',', ".").parse().ok()
    } else {
        normalise::parse_number(text)
    }
}

/// `text` with a minus sign written before a currency mark (`-£0.35`, `-$1.00`, `-€2`) moved
/// after it (`£-0.35`), where the amount finder reads it. Every other byte stays where it
/// was, and the amount's span still covers the same bytes, sign included.
fn sign_after_mark(text: &str) -> std::borrow::Cow<'_, str> {
    if !["-£", "-$", "-€"].iter().any(|m| text.contains(m)) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('-', Some(&mark)) if matches!(mark, '£' | '$' | '€') => {
                out.push(mark);
                out.push('-');
                chars.next();
            }
            _ => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Two amounts equal to the cent, give or take `slack` cents (a till rounds each line).
pub(super) fn same(a: f64, b: f64, slack: f64) -> bool {
    (a - b).abs() <= 0.005 + slack * 0.01
}

#[cfg(test)]
mod tests {
    use super::super::super::super::document::PageSource;
    use super::*;

    #[test]
    fn decimals_beside_a_sign() {
        assert_eq!(decimal("1,859"), Some(1.859));
        assert_eq!(decimal("0,756"), Some(0.756));
        assert_eq!(decimal("8.875"), Some(8.875));
        assert_eq!(decimal("2"), Some(2.0));
        assert_eq!(decimal("1.234,50"), Some(1234.5));
    }

    #[test]
    fn table_rules_read_as_column_gaps() {
        let text = "Chambre | 2 nuits x 95,00 | 190,00\n| A | 5,50% |\nEAU|SOURCE 1,20";
        let read = unruled(text).unwrap_or_default();
        assert_eq!(
            read,
            "Chambre   2 nuits x 95,00   190,00\n  A   5,50%  \nEAU|SOURCE 1,20"
        );
        assert_eq!(read.len(), text.len());
        assert!(unruled("BAGUETTE   1,10").is_none());
    }

    #[test]
    fn dates_times_and_rates_are_not_amounts() {
        let page = Page::new(
            1,
            "15.03.25 14:32\nA  5,50 %   18,96   1,04\nBAGUETTE     1,10 A".into(),
            PageSource::Text,
        );
        let lines = lines(&page, DateOrder::DayFirst);
        assert!(lines[0].amounts.is_empty());
        let values: Vec<f64> = lines[1].amounts.iter().map(|(_, a)| a.value).collect();
        assert_eq!(values, vec![18.96, 1.04]);
        assert_eq!(lines[2].label(), "BAGUETTE");
        assert_eq!(lines[2].closing_amount().map(|(_, a)| a.value), Some(1.1));
        assert_eq!(
            lines[2].start,
            page.text.find("BAGUETTE").unwrap_or_default()
        );
        let saving = Page::new(1, "Clubcard Price Saving   -£0.35".into(), PageSource::Text);
        let saving = super::lines(&saving, DateOrder::DayFirst);
        let read = saving[0]
            .closing_amount()
            .map(|(span, amount)| (amount.value, &saving[0].text[span.clone()]));
        assert_eq!(read, Some((-0.35, "-£0.35")));
    }
}
