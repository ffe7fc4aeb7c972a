//! The `receipt` profile: a till receipt, hotel bill or restaurant note read into its
//! merchant, date and time, total, currency, VAT lines, other taxes, items, means of payment
//! and change, every value with the span it was read from.
//!
//! Rules, not layouts: each line is read as a label and its amounts, labels are matched
//! against closed lists of French and English words ([`lexicon`]), and columns are told apart
//! by arithmetic (a VAT base is the amount its rate turns into another; a quantity is
//! believed when it times the unit price makes the line's total). The receipt's own sums
//! then vouch for the readings or cast doubt on them: items adding up to the total, VAT
//! lines adding up to it, the money handed over less the change.

mod header;
mod items;
mod lexicon;
mod lines;
mod ocr;
mod payment;
mod taxes;

use std::ops::Range;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::super::document::{Document, Page};
use super::super::found::{better, Found, Source};
use super::super::normalise::DateOrder;
use super::{Merger, Profile};
pub(crate) use lexicon::PaymentMethod;
use lines::{same, Line};

/// A receipt as the profile reads it; `null` (or an empty list) for what it does not show.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Receipt {
    /// Who issued it: the first line of its head that names someone.
    pub merchant: Option<Found<String>>,
    /// When, `YYYY-MM-DD`.
    pub date: Option<Found<String>>,
    /// At what time, `HH:MM`.
    pub time: Option<Found<String>>,
    /// What was paid, taxes included.
    pub total: Option<Found<f64>>,
    /// ISO 4217 code of the currency.
    pub currency: Option<Found<String>>,
    /// The VAT lines.
    pub vat: Vec<VatLine>,
    /// Taxes other than VAT (taxe de séjour, sales tax).
    pub other_taxes: Vec<OtherTax>,
    /// What was bought.
    pub items: Vec<Item>,
    /// How it was paid.
    pub payment_method: Option<Found<PaymentMethod>>,
    /// The change given back.
    pub change: Option<Found<f64>>,
}

/// One VAT line: a rate, the base it applies to, the VAT it makes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VatLine {
    /// The rate, in percent (`20`, `5.5`), when printed.
    pub rate: Option<Found<f64>>,
    /// The amount before VAT, when printed.
    pub base: Option<Found<f64>>,
    /// The VAT.
    pub amount: Found<f64>,
}

/// A tax other than VAT.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OtherTax {
    /// Its name as printed (`Taxe de séjour`, `Sales Tax`).
    pub label: Found<String>,
    /// Its rate in percent, when printed.
    pub rate: Option<Found<f64>>,
    /// The amount.
    pub amount: Found<f64>,
}

/// One item bought.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Item {
    /// Its name as printed.
    pub label: Found<String>,
    /// How many or how much, when printed.
    pub quantity: Option<Found<f64>>,
    /// The quantity's unit (`L`, `kg`, `g`, `cl`, `ml`, `gal`, `night`, `piece`); `null` for
    /// a count.
    pub unit: Option<Found<String>>,
    /// The price of one unit, when printed.
    pub unit_price: Option<Found<f64>>,
    /// The line's total.
    pub total: Found<f64>,
}

/// The receipt profile.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ReceiptProfile;

impl Profile for ReceiptProfile {
    fn name(&self) -> &'static str {
        "receipt"
    }

    fn extract(&self, document: &Document, pages: Range<usize>) -> Value {
        let read = document
            .pages
            .get(pages)
            .unwrap_or_default()
            .iter()
            .map(|page| read_page(page, page.page == 1))
            .fold(Receipt::default(), join);
        serde_json::to_value(read).unwrap_or(Value::Null)
    }

    fn merger(&self) -> Box<dyn Merger> {
        Box::new(Receipt::default())
    }
}

impl Merger for Receipt {
    fn absorb(&mut self, part: Value) {
        if let Ok(part) = serde_json::from_value::<Receipt>(part) {
            *self = join(std::mem::take(self), part);
        }
    }

    fn finish(self: Box<Self>) -> Value {
        serde_json::to_value(*self).unwrap_or(Value::Null)
    }
}

/// Two readings joined: the better reading of each value, each list's entries once.
fn join(a: Receipt, b: Receipt) -> Receipt {
    fn once<T>(mut a: Vec<T>, b: Vec<T>, at: impl Fn(&T) -> Source) -> Vec<T> {
        for entry in b {
            if !a.iter().any(|e| at(e) == at(&entry)) {
                a.push(entry);
            }
        }
        a
    }
    Receipt {
        merchant: better(a.merchant, b.merchant),
        date: better(a.date, b.date),
        time: better(a.time, b.time),
        total: better(a.total, b.total),
        currency: better(a.currency, b.currency),
        vat: once(a.vat, b.vat, |v| v.amount.source),
        other_taxes: once(a.other_taxes, b.other_taxes, |t| t.amount.source),
        items: once(a.items, b.items, |i| i.total.source),
        payment_method: better(a.payment_method, b.payment_method),
        change: better(a.change, b.change),
    }
}

/// A page read as a receipt. Only the document's first page is sure to start with the
/// merchant's name; on another, a name at the top is less believed.
fn read_page(page: &Page, first: bool) -> Receipt {
    // A table's rules read as the gaps between its columns; the text keeps its length, so
    // that every span still indexes the page as the result gives it.
    let unruled;
    let page = match lines::unruled(&page.text) {
        Some(text) => {
            unruled = Page {
                text,
                ..page.clone()
            };
            &unruled
        }
        None => page,
    };
    let guess = lines::lines(page, DateOrder::DayFirst);
    let code = header::currency(&guess, None).map(|c| c.value);
    let (order, sure_order) = header::date_order(&[page.text.as_str()], code.as_deref());
    let lines = match order {
        DateOrder::DayFirst => guess,
        DateOrder::MonthFirst => lines::lines(page, order),
    };
    let total = total(&lines);
    let subtotal = lines.iter().find_map(|l| {
        lexicon::is_subtotal(l.label())
            .then(|| l.closing_amount().map(|(_, a)| a.value))
            .flatten()
    });
    let merchant = header::merchant(&lines);
    let from = merchant.as_ref().map_or(0, |(index, _)| index + 1);
    let date = header::date(&lines, order, sure_order);
    let date_line = date.as_ref().map(|(index, _)| *index);
    let paid = payment::payment(&lines);
    let mut receipt = Receipt {
        merchant: merchant.map(|(_, mut m)| {
            if !first {
                m.confidence *= 0.6;
            }
            m
        }),
        date: date.map(|(_, d)| d),
        time: header::time(&lines, date_line),
        currency: header::currency(&lines, total.as_ref().map(|(index, _)| *index)),
        total: total.map(|(_, t)| t),
        vat: taxes::vat(&lines),
        other_taxes: taxes::other_taxes(&lines),
        items: items::items(&lines, from),
        payment_method: paid.as_ref().map(|p| p.method.clone()),
        change: payment::change(&lines),
    };
    check(&mut receipt, subtotal, paid.and_then(|p| p.tendered));
    receipt
}

/// What was paid: the amount of the line whose label says so most strongly (`TOTAL TTC`,
/// `Net à payer` before a plain `TOTAL`), the first of equals; with its line's index.
fn total(lines: &[Line<'_>]) -> Option<(usize, Found<f64>)> {
    let mut best: Option<(u8, usize, Found<f64>)> = None;
    for line in lines {
        let Some(rank) = lexicon::total_rank(line.label()) else {
            continue;
        };
        let Some((span, amount)) = line.closing_amount().or(line.amounts.last()) else {
            continue;
        };
        if best.as_ref().is_none_or(|(r, ..)| rank > *r) {
            let confidence = if rank >= 3 { 0.85 } else { 0.75 };
            best = Some((
                rank,
                line.index,
                line.found(amount.value, confidence, span.clone()),
            ));
        }
    }
    best.map(|(_, index, found)| (index, found))
}

/// A check passed halves the doubt; a check failed takes a quarter of the confidence.
fn vouch<T>(found: &mut Found<T>, passed: bool) {
    found.confidence = if passed {
        found.confidence + (1.0 - found.confidence) / 2.0
    } else {
        found.confidence * 0.75
    };
}

/// The receipt's own sums, checked: each reading they confirm is surer, each they contradict
/// less sure.
fn check(receipt: &mut Receipt, subtotal: Option<f64>, tendered: Option<f64>) {
    let Some(total) = receipt.total.as_ref().map(|t| t.value) else {
        return;
    };
    let mut total_votes: Vec<bool> = Vec::new();
    let taxes: f64 = receipt.other_taxes.iter().map(|t| t.amount.value).sum();
    if !receipt.items.is_empty() {
        let n = receipt.items.len() as f64;
        let sum: f64 = receipt.items.iter().map(|i| i.total.value).sum();
        // Items make the total, or the total less taxes added on top of them (sales tax,
        // taxe de séjour), or the subtotal.
        let adds_up = same(sum, total, n)
            || same(sum + taxes, total, n)
            || subtotal.is_some_and(|s| same(sum, s, n));
        for item in &mut receipt.items {
            vouch(&mut item.total, adds_up);
            vouch(&mut item.label, adds_up);
        }
        total_votes.push(adds_up);
    }
    if let Some(sub) = subtotal {
        if !receipt.other_taxes.is_empty() {
            // A subtotal before sales tax, or a total before VAT ("Total HT").
            let vat: f64 = receipt.vat.iter().map(|v| v.amount.value).sum();
            let adds_up = same(sub + taxes, total, 1.0) || same(sub + vat + taxes, total, 1.0);
            for tax in &mut receipt.other_taxes {
                vouch(&mut tax.amount, adds_up);
            }
            total_votes.push(adds_up);
        }
    }
    if !receipt.vat.is_empty() {
        let n = receipt.vat.len() as f64;
        // With every base printed, bases and VAT make the total (of what VAT applies to).
        let gross: Option<f64> = receipt
            .vat
            .iter()
            .map(|v| v.base.as_ref().map(|b| b.value + v.amount.value))
            .sum();
        let adds_up = match gross {
            Some(gross) => Some(same(gross, total, 2.0 * n) || same(gross + taxes, total, 2.0 * n)),
            None => match receipt.vat.as_slice() {
                [VatLine {
                    rate: Some(rate),
                    amount,
                    ..
                }] => {
                    // Of the total, or of the total less taxes VAT does not apply to.
                    let of = |gross: f64| gross * rate.value / (100.0 + rate.value);
                    Some(
                        same(of(total), amount.value, 2.0)
                            || same(of(total - taxes), amount.value, 2.0),
                    )
                }
                _ => None,
            },
        };
        if let Some(adds_up) = adds_up {
            for line in &mut receipt.vat {
                vouch(&mut line.amount, adds_up);
                if let Some(base) = &mut line.base {
                    vouch(base, adds_up);
                }
            }
            total_votes.push(adds_up);
        }
    }
    if let Some(tendered) = tendered {
        let adds_up = match &receipt.change {
            Some(change) => same(tendered - change.value, total, 1.0),
            None => same(tendered, total, 1.0),
        };
        if let Some(change) = &mut receipt.change {
            vouch(change, adds_up);
        }
        if let Some(method) = &mut receipt.payment_method {
            vouch(method, adds_up);
        }
        total_votes.push(adds_up);
    }
    if let Some(found) = &mut receipt.total {
        // One confirmation is enough to trust the total; it is doubted only when nothing
        // confirms it and something contradicts it.
        if total_votes.iter().any(|v| *v) {
            vouch(found, true);
        } else if !total_votes.is_empty() {
            vouch(found, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::document::PageSource;
    use super::*;

    fn read(text: &str) -> Receipt {
        let document = Document {
            pages: vec![Page::new(1, text.into(), PageSource::Text)],
            format: "text".into(),
            warnings: Vec::new(),
            derived: Default::default(),
        };
        let part = ReceiptProfile.extract(&document, 0..1);
        let merged = ReceiptProfile.merge(vec![part]);
        serde_json::from_value(merged).unwrap_or_default()
    }

    #[test]
    fn chunks_merge_into_one_receipt() {
        let document = Document {
            pages: vec![
                Page::new(
                    1,
                    "CAFE DU PORT\n15/03/2025 14:32\nCAFE   2,00\nTHE    3,00".into(),
                    PageSource::Text,
                ),
                Page::new(
                    2,
                    "TOTAL  5,00 EUR\nCB     5,00 EUR".into(),
                    PageSource::Text,
                ),
            ],
            format: "text".into(),
            warnings: Vec::new(),
            derived: Default::default(),
        };
        let first = ReceiptProfile.extract(&document, 0..1);
        let second = ReceiptProfile.extract(&document, 1..2);
        // A chunk's part given twice (a retried chunk) still counts its items once.
        let merged = ReceiptProfile.merge(vec![first.clone(), second, first]);
        let receipt: Receipt = serde_json::from_value(merged).unwrap_or_default();
        assert_eq!(
            receipt.merchant.map(|m| m.value).as_deref(),
            Some("CAFE DU PORT")
        );
        assert_eq!(
            receipt.total.map(|t| (t.value, t.source.page)),
            Some((5.0, 2))
        );
        assert_eq!(receipt.currency.map(|c| c.value).as_deref(), Some("EUR"));
        assert_eq!(receipt.items.len(), 2);
        assert_eq!(
            receipt.payment_method.map(|p| p.value),
            Some(PaymentMethod::Card)
        );
        // Nothing to read gives nulls and empty lists, not an error.
        let empty = ReceiptProfile.merge(vec![Value::Null]);
        assert_eq!(empty["merchant"], Value::Null);
        assert_eq!(empty["items"], serde_json::json!([]));
    }

    #[test]
    fn total_not_subtotal_nor_tendered() {
        let receipt = read(
            "SUPER U\nPAIN          1,10\nLAIT          0,95\nSOUS-TOTAL    2,05\nREMISE       -0,05\n\
             TOTAL         2,00\nESPECES      10,00\nRENDU         8,00",
        );
        let total = receipt.total.unwrap_or_else(|| unreachable!("no total"));
        assert_eq!(total.value, 2.0);
        assert_eq!(receipt.change.map(|c| c.value), Some(8.0));
        assert_eq!(
            receipt.payment_method.map(|p| p.value),
            Some(PaymentMethod::Cash)
        );
        // Items, payment and change all agree: the total is trusted beyond its label.
        assert!(total.confidence > 0.85, "{}", total.confidence);
    }

    #[test]
    fn sums_that_fail_lower_confidence() {
        let agreeing = read("CAFE X\nCAFE   2,00\nTHE    3,00\nTOTAL  5,00");
        let failing = read("CAFE X\nCAFE   2,00\nTHE    3,00\nTOTAL  9,00");
        let conf = |r: &Receipt| r.items.first().map_or(0.0, |i| i.total.confidence);
        assert!(conf(&agreeing) > 0.75 && conf(&failing) < 0.75);
        let total = |r: &Receipt| r.total.as_ref().map_or(0.0, |t| t.confidence);
        assert!(total(&agreeing) > total(&failing));
    }

    #[test]
    fn us_sales_tax_on_top_of_the_subtotal() {
        let receipt = read(
            "JOE'S DELI\n123 Main St\nSpringfield, IL 62704\n03/04/2025  12:41 PM\n\
             Turkey Sandwich     8.50\nSoda\n  2 @ 1.75          3.50\nSubtotal           12.00\n\
             Sales Tax 8.25%     0.99\nTotal             $12.99\nVISA              $12.99",
        );
        assert_eq!(receipt.date.map(|d| d.value).as_deref(), Some("2025-03-04"));
        assert_eq!(receipt.currency.map(|c| c.value).as_deref(), Some("USD"));
        assert_eq!(receipt.time.map(|t| t.value).as_deref(), Some("12:41"));
        assert_eq!(receipt.other_taxes.len(), 1);
        assert_eq!(receipt.items.len(), 2);
        assert_eq!(
            receipt.items[1].quantity.as_ref().map(|q| q.value),
            Some(2.0)
        );
        assert_eq!(
            receipt.payment_method.map(|p| p.value),
            Some(PaymentMethod::Card)
        );
    }
}
