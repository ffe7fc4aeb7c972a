//! The items of a receipt: the lines between its head and its total that name something and
//! end with an amount, with the quantity, unit and unit price when the till prints them
//! (`2 x 1,85`, `42,35 L x 1,859 EUR/L`, `0,756 kg x 3,99 €/kg`, `2 @ $3.49`), on the item's
//! line or on the line after its name. A quantity is believed only when quantity times unit
//! price gives the line's total.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

use super::super::super::document::PageSource;
use super::lexicon;
use super::lines::{decimal, letters, same, Line};
use super::ocr;
use super::Item;

/// Quantity, optional unit, a multiplication sign, unit price, optional "per unit". The unit
/// may touch the sign (`42,35Lx1,859`: OCR loses the spaces around a small `x`); `Ib` is
/// `lb` as OCR reads it (Helvetica draws `l` and `I` alike).
static QUANTITY: LazyLock<Regex> = LazyLock::new(|| {
    let unit = r"(?:litres?|liters?|lt|l|kg|g|cl|ml|gal|lbs?|ibs?|oz|nuits?|nights?|pcs?|pce|pi[èe]ces?|u)";
    let pattern = format!(
        r"(?ix)
        (?P<q>\d{{1,4}}(?:[.,]\d{{1,3}})?) \s* (?:(?P<u>{unit})\.?)? \s* (?:x|×|\*|@) \s*
        (?:€|£|\$)? \s* (?P<p>\d{{1,5}}(?:[.,]\d{{1,3}})?)
        (?:\s*(?:€|£|\$|eur\b))? (?:\s*/\s*(?P<u2>{unit})\b)?"
    );
    Regex::new(&pattern).unwrap_or_else(|e| unreachable!("quantity pattern: {e}"))
});
/// A count before an item's name (`2 x MILK`, `3 * Café`, `1  Flat White`).
static LEADING_COUNT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*(?P<q>\d{1,3})(?:\s*[xX×*]\s+|\s+)\p{L}")
        .unwrap_or_else(|e| unreachable!("leading count pattern: {e}"))
});
/// A whole number standing alone, as a quantity column prints it.
static COUNT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|\s)(?P<q>\d{1,3})(?:\s|$)")
        .unwrap_or_else(|e| unreachable!("count pattern: {e}"))
});

/// A quantity and unit price as a line prints them.
#[derive(Debug, Clone)]
struct Quantity {
    /// The whole of it, in the line.
    span: Range<usize>,
    quantity: (Range<usize>, f64),
    unit: Option<(Range<usize>, String)>,
    price: Option<(Range<usize>, f64)>,
}

/// The unit's one name: `L` for litres, `kg`, `night`, `piece`...
fn unit_name(written: &str) -> String {
    let lower = written.to_lowercase();
    match lower.as_str() {
        "l" | "lt" | "litre" | "litres" | "liter" | "liters" => "L".to_owned(),
        "nuit" | "nuits" | "night" | "nights" => "night".to_owned(),
        "pc" | "pcs" | "pce" | "pièce" | "pièces" | "piece" | "pieces" | "u" => {
            "piece".to_owned()
        }
        "lbs" | "ib" | "ibs" => "lb".to_owned(),
        _ => lower,
    }
}

/// The quantity-times-price of `line`, if it has one standing apart from words.
fn quantity(text: &str) -> Option<Quantity> {
    QUANTITY.captures_iter(text).find_map(|caps| {
        let whole = caps.get(0)?;
        let q = caps.name("q")?;
        let p = caps.name("p")?;
        let glued_before = text[..q.start()]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '.' || c == ',');
        let glued_after = text[whole.end()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric());
        if glued_before || glued_after {
            return None;
        }
        let unit = caps
            .name("u")
            .or(caps.name("u2"))
            .map(|u| (u.start()..u.end(), unit_name(u.as_str())));
        Some(Quantity {
            span: whole.start()..whole.end(),
            quantity: (q.start()..q.end(), decimal(q.as_str())?),
            unit,
            price: Some((p.start()..p.end(), decimal(p.as_str())?)),
        })
    })
}

/// True when `q` times its price makes `total`, a till's rounding allowed.
fn agrees(q: &Quantity, total: f64) -> bool {
    q.price
        .as_ref()
        .is_some_and(|(_, p)| same(q.quantity.1 * p, total, 1.0))
}

/// The items of a receipt in `lines`, from line `from` (past the merchant) to the first total.
pub(super) fn items(lines: &[Line<'_>], from: usize) -> Vec<Item> {
    let mut found: Vec<Item> = Vec::new();
    // A line with a name and no amount, whose amounts may come on the next line.
    let mut pending: Option<&Line<'_>> = None;
    for line in lines.iter().skip(from) {
        // Blank lines (OCR puts them between rows) part no name from its figures.
        if !line.text.chars().any(char::is_alphanumeric) {
            continue;
        }
        let label = line.label();
        if lexicon::ends_items(label) || lexicon::is_change(label) {
            break;
        }
        let waiting = pending.take();
        // Before the total, a line taking money off is a discount, whatever it is called
        // ("REMISE FIDELITE", "Clubcard Price Saving"): the items add up to the total with it.
        let discount = line.closing_amount().is_some_and(|(_, a)| a.value < 0.0);
        if lexicon::mentions_vat(line.text)
            || lexicon::other_tax(line.text).is_some()
            || lexicon::payment(line.text).is_some()
            || (lexicon::not_item(line.text) && !discount)
        {
            continue;
        }
        let quantity = quantity(line.text);
        let closing = line
            .closing_amount()
            .filter(|(r, _)| quantity.as_ref().is_none_or(|q| r.start >= q.span.end));
        let Some((total_span, total)) = closing.map(|(r, a)| (r.clone(), a.value)) else {
            // A quantity line without a total belongs to the item above it.
            if let (Some(q), Some(item)) = (&quantity, found.last_mut()) {
                let fits = item.quantity.is_none() && agrees(q, item.total.value);
                if fits && letters(&line.text[..q.span.start]) == 0 {
                    set_quantity(item, line, q.clone(), 0.85);
                    continue;
                }
            }
            if line.amounts.is_empty() && line.has_words() && quantity.is_none() {
                pending = Some(line);
            }
            continue;
        };
        let explicit = quantity.clone().filter(|q| agrees(q, total));
        let column = match explicit {
            Some(_) => None,
            None => column_quantity(line, &total_span, total),
        };
        // The name stops at the first figure that is not part of it, and starts past a
        // quantity printed before it ("2 Menu du jour").
        let mut name_end = quantity
            .as_ref()
            .map_or(usize::MAX, |q| q.span.start)
            .min(line.amounts.first().map_or(usize::MAX, |(r, _)| r.start))
            .min(total_span.start);
        let mut name_start = 0;
        if let Some(c) = &column {
            let at = c.quantity.0.clone();
            if letters(&line.text[..at.start]) > 0 {
                name_end = name_end.min(at.start);
            } else {
                name_start = at.end;
            }
        }
        let (name_line, name_span) = match name_at(line.text, name_start, name_end) {
            Some(span) => (line, span),
            None => match waiting.and_then(|w| name_at(w.text, 0, w.text.len()).map(|s| (w, s))) {
                Some(named) => named,
                None => continue,
            },
        };
        let mut count = LEADING_COUNT
            .captures(name_line.text)
            .and_then(|c| c.name("q"));
        let mut name_span = name_span;
        if let Some(c) = count {
            // "2 x MILK": the name starts after the count.
            let rest = &name_line.text[c.end()..name_span.end];
            let spaced = rest.trim_start();
            let name = spaced
                .strip_prefix(['x', 'X', '×', '*'])
                .filter(|r| r.starts_with(char::is_whitespace))
                .map_or(spaced, str::trim_start);
            let skip = rest.len() - name.len();
            if c.end() + skip < name_span.end {
                name_span = c.end() + skip..name_span.end;
            } else {
                count = None;
            }
        }
        let name = match name_line.page.source {
            PageSource::Ocr => ocr::label(&name_line.text[name_span.clone()]),
            _ => name_line.text[name_span.clone()].to_owned(),
        };
        let mut item = Item {
            label: name_line.found(name, 0.75, name_span),
            quantity: None,
            unit: None,
            unit_price: None,
            total: line.found(total, 0.75, total_span.clone()),
        };
        if let Some(q) = explicit {
            set_quantity(&mut item, line, q, 0.9);
        } else if let Some(q) = column {
            set_quantity(&mut item, line, q, 0.85);
        } else if let Some(c) = count.filter(|_| std::ptr::eq(name_line, line)) {
            if let Some(value) = decimal(c.as_str()) {
                item.quantity = Some(line.found(value, 0.7, c.start()..c.end()));
            }
        }
        found.push(item);
    }
    found
}

/// The span of an item's name in bytes `start..end` of `text`: trimmed of spaces and of the
/// punctuation that joins it to its amounts; `None` when it holds no word.
fn name_at(text: &str, start: usize, end: usize) -> Option<Range<usize>> {
    let end = end.min(text.len());
    let start = start.min(end);
    let head = &text[start..end];
    let trimmed_end = head.trim_end_matches(|c: char| {
        c.is_whitespace() || matches!(c, ':' | '=' | '.' | '-' | '@' | '*')
    });
    let lead = trimmed_end.len() - trimmed_end.trim_start().len();
    let span = start + lead..start + trimmed_end.len();
    (letters(&text[span.clone()]) >= 2).then_some(span)
}

/// A quantity in its own column: a whole number standing alone before the unit price, the
/// unit price before the total, and the one times the other making the total.
fn column_quantity(line: &Line<'_>, total_span: &Range<usize>, total: f64) -> Option<Quantity> {
    let (price_span, price) = line
        .amounts
        .iter()
        .rev()
        .find(|(r, _)| r.end <= total_span.start)
        .map(|(r, a)| (r.clone(), a.value))?;
    COUNT
        .captures_iter(&line.text[..price_span.start])
        .filter_map(|c| c.name("q"))
        .filter_map(|q| Some((q.start()..q.end(), decimal(q.as_str())?)))
        .find(|(_, q)| *q >= 1.0 && same(q * price, total, 1.0))
        .map(|(span, q)| Quantity {
            span: span.start..price_span.end,
            quantity: (span, q),
            unit: None,
            price: Some((price_span, price)),
        })
}

fn set_quantity(item: &mut Item, line: &Line<'_>, q: Quantity, confidence: f64) {
    item.quantity = Some(line.found(q.quantity.1, confidence, q.quantity.0));
    item.unit = q.unit.map(|(span, u)| line.found(u, confidence, span));
    item.unit_price = q.price.map(|(span, p)| line.found(p, confidence, span));
    item.label.confidence = item.label.confidence.max(confidence);
    item.total.confidence = item.total.confidence.max(confidence);
}

#[cfg(test)]
mod tests {
    use super::super::super::super::document::Page;
    use super::super::super::super::normalise::DateOrder;
    use super::super::lines::lines;
    use super::*;

    type Row = (String, Option<f64>, Option<String>, Option<f64>, f64);

    fn read(text: &str) -> Vec<Row> {
        let page = Page::new(1, text.into(), PageSource::Text);
        items(&lines(&page, DateOrder::DayFirst), 0)
            .into_iter()
            .map(|i| {
                (
                    i.label.value,
                    i.quantity.map(|q| q.value),
                    i.unit.map(|u| u.value),
                    i.unit_price.map(|p| p.value),
                    i.total.value,
                )
            })
            .collect()
    }

    fn row(label: &str, q: Option<f64>, unit: Option<&str>, price: Option<f64>, total: f64) -> Row {
        (label.to_owned(), q, unit.map(str::to_owned), price, total)
    }

    #[test]
    fn litres_of_fuel() {
        assert_eq!(
            read("Carburant SP95 42,35 L x 1,859   78,73"),
            vec![row(
                "Carburant SP95",
                Some(42.35),
                Some("L"),
                Some(1.859),
                78.73
            )]
        );
        assert_eq!(
            read("Pompe 4  GAZOLE\n   38,12 L  x  1,729 EUR/L      65,91 EUR"),
            vec![row(
                "Pompe 4  GAZOLE",
                Some(38.12),
                Some("L"),
                Some(1.729),
                65.91
            )]
        );
        assert_eq!(
            read("TOMATES GRAPPE\n0,756 kg x 3,99 EUR/kg       3,02"),
            vec![row(
                "TOMATES GRAPPE",
                Some(0.756),
                Some("kg"),
                Some(3.99),
                3.02
            )]
        );
    }

    #[test]
    fn units_touching_the_sign_and_read_by_ocr() {
        assert_eq!(
            read("CarburantSP95 42,35Lx1,859EUR/L 78,73"),
            vec![row(
                "CarburantSP95",
                Some(42.35),
                Some("L"),
                Some(1.859),
                78.73
            )]
        );
        assert_eq!(
            read("ORGANIC APPLES 2.5 Ib @ 1.99/lb 4.98"),
            vec![row(
                "ORGANIC APPLES",
                Some(2.5),
                Some("lb"),
                Some(1.99),
                4.98
            )]
        );
    }

    #[test]
    fn quantities_on_the_line_after_or_in_a_column() {
        let text = "COCA COLA 1,5L\n   2 x 1,85            3,70 B\nBAGUETTE         1,10 A\n\
                    2 Menu du jour     15,50   31,00\nEAU 6X1,5L           1,74\n\
                    2 x MILK 1L          2.50\nSOUS-TOTAL    40,05\nPAIN   9,99";
        assert_eq!(
            read(text),
            vec![
                row("COCA COLA 1,5L", Some(2.0), None, Some(1.85), 3.7),
                row("BAGUETTE", None, None, None, 1.1),
                row("Menu du jour", Some(2.0), None, Some(15.5), 31.0),
                row("EAU 6X1,5L", None, None, None, 1.74),
                row("MILK 1L", Some(2.0), None, None, 2.5),
            ]
        );
        // A quantity line under an item that already has its total.
        assert_eq!(
            read("CAFE EXPRESSO        4,00\n  2 @ 2,00"),
            vec![row("CAFE EXPRESSO", Some(2.0), None, Some(2.0), 4.0)]
        );
        // A blank line between a name and its figures, as OCR gives them.
        assert_eq!(
            read("COCA COLA 1,5L\n\n2x 1,85 3,70 B"),
            vec![row("COCA COLA 1,5L", Some(2.0), None, Some(1.85), 3.7)]
        );
        // Discounts are items, loyalty words and all.
        assert_eq!(
            read("POULET ROTI      7,50 €\nREMISE FIDELITE     -0,75 €\nPoints fidélité : 12,00"),
            vec![
                row("POULET ROTI", None, None, None, 7.5),
                row("REMISE FIDELITE", None, None, None, -0.75),
            ]
        );
        // A sign between the name and its unit price is no part of the name.
        assert_eq!(
            read("2 House Wine Glass      @ 12.00       24.00"),
            vec![row("House Wine Glass", Some(2.0), None, Some(12.0), 24.0)]
        );
        // Times that do not make the total are not believed.
        assert_eq!(
            read("JUS 2 x 1,50     4,00"),
            vec![row("JUS", None, None, None, 4.0)]
        );
    }
}
