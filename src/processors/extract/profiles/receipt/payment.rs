//! How a receipt was paid, how much was handed over, and the change given back.

use super::super::super::document::PageSource;
use super::super::super::found::Found;
use super::lexicon::{self, PaymentMethod};
use super::lines::Line;
use super::ocr;

/// The means of payment, and the amount tendered when its line gives one.
pub(super) struct Payment {
    /// The means, read where its name stands.
    pub method: Found<PaymentMethod>,
    /// What was handed over by that means (`ESPECES 50,00`, `CB 23,45`).
    pub tendered: Option<f64>,
}

/// The means of payment: the first line naming one with an amount (the till's payment
/// line), else the first mention (`Payé par carte`). Lines about change or VAT are not
/// payments whatever words they use.
pub(super) fn payment(lines: &[Line<'_>]) -> Option<Payment> {
    let mut mention: Option<Payment> = None;
    for line in lines {
        if lexicon::is_change(line.label()) || lexicon::mentions_vat(line.text) {
            continue;
        }
        let named = lexicon::payment(line.text).or_else(|| {
            // OCR splits names with a space it reads between two letters.
            (line.page.source == PageSource::Ocr)
                .then(|| ocr::split_payment(line.text))
                .flatten()
        });
        let Some((method, span)) = named else {
            continue;
        };
        if let Some((amount_span, amount)) = line.amounts.last() {
            if amount_span.start >= span.end {
                return Some(Payment {
                    method: line.found(method, 0.85, span),
                    tendered: Some(amount.value),
                });
            }
        }
        if mention.is_none() {
            mention = Some(Payment {
                method: line.found(method, 0.65, span),
                tendered: None,
            });
        }
    }
    mention
}

/// The change given back: the amount on the first line labelled `RENDU`, `Monnaie rendue`,
/// `Change due`...
pub(super) fn change(lines: &[Line<'_>]) -> Option<Found<f64>> {
    lines.iter().find_map(|line| {
        if !lexicon::is_change(line.label()) {
            return None;
        }
        let (span, amount) = line.amounts.last()?;
        Some(line.found(amount.value, 0.85, span.clone()))
    })
}

#[cfg(test)]
mod tests {
    use super::super::super::super::document::Page;
    use super::super::super::super::normalise::DateOrder;
    use super::super::lines::lines;
    use super::*;

    #[test]
    fn the_payment_line_and_the_change() {
        let page = Page::new(
            1,
            "CARTE FIDELITE N 1234\nTOTAL          23,55\nESPECES        50,00\nRENDU          26,45\n\
             Merci, à bientôt"
                .into(),
            PageSource::Text,
        );
        let ls = lines(&page, DateOrder::DayFirst);
        let paid = payment(&ls).unwrap_or_else(|| unreachable!("no payment"));
        assert_eq!(paid.method.value, PaymentMethod::Cash);
        assert_eq!(paid.tendered, Some(50.0));
        assert_eq!(change(&ls).map(|c| c.value), Some(26.45));
        let card = Page::new(
            1,
            "Paid by card\nChange due   £0.00".into(),
            PageSource::Text,
        );
        let ls = lines(&card, DateOrder::DayFirst);
        let paid = payment(&ls).unwrap_or_else(|| unreachable!("no payment"));
        assert_eq!(
            (paid.method.value, paid.tendered),
            (PaymentMethod::Card, None)
        );
        assert_eq!(change(&ls).map(|c| c.value), Some(0.0));
    }
}
