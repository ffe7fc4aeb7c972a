//! The words receipts label their lines with, French and English, as closed lists: what a
//! total, a subtotal, change, a tax or a means of payment is called. Each list is matched
//! against a line's label (the words before its amounts), case and accents as tills print
//! them.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

fn pattern(text: &str) -> Regex {
    Regex::new(text).unwrap_or_else(|e| unreachable!("receipt lexicon {text:?}: {e}"))
}

/// Labels that start with "total" and yet are not what was paid: sums before tax, of the
/// taxes, of discounts, counts of articles.
static TOTAL_NOT_PAID: LazyLock<Regex> = LazyLock::new(|| {
    pattern(
        r"(?i)^\W*(?:sous[-\s]?total|sub[-\s]?total|total\s+(?:h\.?t\.?|hors\s+tax\w*|tva|t\.v\.a|vat|tax\w*|net|excl\w*|before|remises?|r[ée]ductions?|[ée]conomi\w*|savings?|discounts?|articles?|items?|qt[ée]s?|quantit\w*|points?|pi[èe]ces?|lignes?))\b",
    )
});

/// Sums before tax: a subtotal.
static SUBTOTAL: LazyLock<Regex> = LazyLock::new(|| {
    pattern(
        r"(?i)^\W*(?:sous[-\s]?total|sub[-\s]?total|total\s+(?:h\.?t\.?|hors\s+tax\w*|net|excl\w*|before\s+tax))\b",
    )
});

/// The labels of what was paid that leave no doubt, wherever they stand in the label
/// (`5 ARTICLES   MONTANT DU`).
static TOTAL_STRONG: LazyLock<Regex> = LazyLock::new(|| {
    pattern(
        r"(?i)\b(?:net\s+[àa]\s+payer|total\s+[àa]\s+payer|[àa]\s+payer|montant\s+(?:ttc|total|d[ûu]|[àa]\s+payer)|total\s+(?:ttc|t\.t\.c|due|to\s+pay|amount|g[ée]n[ée]ral|eur|euros?|gbp|usd)|grand\s+total|amount\s+(?:due|payable|to\s+pay)|balance\s+due)\b",
    )
});

/// A plain "Total".
static TOTAL_PLAIN: LazyLock<Regex> = LazyLock::new(|| pattern(r"(?i)^\W*total\b"));

/// How strongly `label` says "what was paid": 3 for `TOTAL TTC`, `Net à payer`, `Amount due`;
/// 2 for a plain `Total`; `None` for anything else, subtotals included.
pub(super) fn total_rank(label: &str) -> Option<u8> {
    if TOTAL_NOT_PAID.is_match(label) {
        None
    } else if TOTAL_STRONG.is_match(label) {
        Some(3)
    } else if TOTAL_PLAIN.is_match(label) {
        Some(2)
    } else {
        None
    }
}

/// True for a subtotal's label (`SOUS-TOTAL`, `Subtotal`, `Total HT`).
pub(super) fn is_subtotal(label: &str) -> bool {
    SUBTOTAL.is_match(label)
}

/// True for any label starting with "total" or a subtotal: the end of a receipt's items.
pub(super) fn ends_items(label: &str) -> bool {
    TOTAL_PLAIN.is_match(label) || TOTAL_STRONG.is_match(label) || TOTAL_NOT_PAID.is_match(label)
}

/// Change given back.
static CHANGE: LazyLock<Regex> = LazyLock::new(|| {
    pattern(
        r"(?i)^\W*(?:votre\s+|your\s+)?(?:rendu(?:\s+monnaie)?|monnaie(?:\s+rendue)?|[àa]\s+rendre|change(?:\s+due|\s+given)?)\b",
    )
});

/// True for the label of the change given back (`RENDU`, `Monnaie rendue`, `Change due`).
pub(super) fn is_change(label: &str) -> bool {
    CHANGE.is_match(label)
}

/// The word for value added tax, not a VAT number.
static VAT: LazyLock<Regex> = LazyLock::new(|| pattern(r"(?i)\b(?:tva|vat)\b|\bt\.v\.a\b"));
static VAT_ID: LazyLock<Regex> = LazyLock::new(|| {
    pattern(
        r"(?i)intra|n[°o]\.?\s*(?:de\s+)?tva|tva\s*n[°o]|vat\s*(?:no\b|number|reg|registration|id\b|#)|num[ée]ro\s+de\s+tva|\b[A-Z]{2}\s?\d{9,11}\b",
    )
});

/// Where `text` says "VAT" (`TVA`, `T.V.A.`, `VAT`), unless it gives a VAT number.
pub(super) fn mentions_vat(text: &str) -> bool {
    VAT.is_match(text) && !VAT_ID.is_match(text)
}

/// The header of a table of VAT rates: it names VAT and a column of rates or bases.
static VAT_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    pattern(r"(?i)\b(?:taux|rate|%|h\.?t\.?|base|net|code)\b|%|(?-i:[A-Z]HT\b|[a-z]HT\b)")
});
/// "TVA" or "VAT" in capitals at the end of a word: a column heading glued to the word
/// before it (`MontantTVA`, `MTTVA`), as OCR reads headings whose words stand close.
static GLUED_VAT: LazyLock<Regex> = LazyLock::new(|| pattern(r"(?-i:\w(?:TVA|VAT))\b"));

/// True for a line that heads a VAT table (`TVA  Taux  HT  TVA  TTC`, `VAT rate  Net  VAT`,
/// and the same with its words glued together, `Taux BaseHT MontantTVA`, `TXTVA MTHT`).
pub(super) fn is_vat_header(text: &str) -> bool {
    (mentions_vat(text) || (GLUED_VAT.is_match(text) && !VAT_ID.is_match(text)))
        && VAT_HEADER.is_match(text)
}

/// Taxes that are not VAT, by name.
static OTHER_TAX: LazyLock<Regex> = LazyLock::new(|| {
    pattern(
        r"(?i)\b(?:taxes?\s+de\s+s[ée]jour|taxe\s+s[ée]jour|tourist\s+tax|city\s+tax|occupancy\s+tax|lodging\s+tax|sales\s+tax|state\s+tax|county\s+tax|local\s+tax|[ée]co[-\s]?participation|[ée]co[-\s]?taxe|taxe\s+additionnelle)\b|^\W*taxe?s?\b",
    )
});

/// The name of a tax other than VAT in `text` (`Taxe de séjour`, `Sales tax`, a lone `Tax`),
/// with its byte span.
pub(super) fn other_tax(text: &str) -> Option<std::ops::Range<usize>> {
    if mentions_vat(text) {
        return None;
    }
    OTHER_TAX.find(text).map(|m| {
        let start = m.start()
            + (m.as_str().len()
                - m.as_str()
                    .trim_start_matches(|c: char| !c.is_alphanumeric())
                    .len());
        start..m.end()
    })
}

/// How a receipt was paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum PaymentMethod {
    /// A bank card (`CB`, `Carte bancaire`, `Visa`, `Card payment`, contactless).
    Card,
    /// Cash (`Espèces`, `Cash`).
    Cash,
    /// A cheque (`Chèque`, `Cheque`, `Check`).
    Cheque,
    /// A bank transfer (`Virement`, `Transfer`).
    Transfer,
    /// A meal or gift voucher (`Ticket restaurant`, `Chèque déjeuner`, `Gift card`).
    Voucher,
    /// Another named means (`PayPal`, `Lydia`).
    Other,
}

/// Means of payment by name, vouchers first: "chèque déjeuner" is no cheque and
/// "carte cadeau" no bank card.
static PAYMENTS: LazyLock<Vec<(PaymentMethod, Regex)>> = LazyLock::new(|| {
    vec![
        (
            PaymentMethod::Voucher,
            pattern(
                r"(?i)\b(?:tickets?[-\s]restau\w*|titres?[-\s]restau\w*|ch[èe]ques?[-\s]d[ée]jeuner|ch[èe]ques?[-\s]vacances|bons?\s+d'achat|vouchers?|gift\s*cards?|cartes?\s+cadeaux?|meal\s+vouchers?)\b",
            ),
        ),
        (
            PaymentMethod::Card,
            pattern(
                r"(?i)\b(?:cb|carte\s+bancaire|carte\s+bleue|cartes?|cards?|visa|mastercard|master\s*card|maestro|amex|american\s+express|contactless|sans\s+contact|debit|credit\s+card|apple\s*pay|google\s*pay)\b",
            ),
        ),
        (
            PaymentMethod::Cash,
            pattern(r"(?i)\b(?:esp[èe]ces|cash|num[ée]raire)\b"),
        ),
        (
            PaymentMethod::Cheque,
            pattern(r"(?i)\b(?:ch[èe]ques?|cheques?|check)\b"),
        ),
        (
            PaymentMethod::Transfer,
            pattern(r"(?i)\b(?:virement|bank\s+transfer|wire\s+transfer|transfer)\b"),
        ),
        (
            PaymentMethod::Other,
            pattern(r"(?i)\b(?:paypal|lydia|wero|bitcoin)\b"),
        ),
    ]
});

/// Cards and words that name no payment: loyalty cards, "à la carte", cash-back offers.
static NOT_PAYMENT: LazyLock<Regex> = LazyLock::new(|| {
    pattern(
        r"(?i)fid[ée]lit|loyalty|fidelity|\bclub\b|[àa]\s+la\s+carte|cash\s*back|\bpoints?\b|carte\s+n°|member|\bcheck\s*(?:#|no\b|n°)",
    )
});

/// Words that announce a means of payment (`Paiement CB`, `Réglé par carte`, `Paid by card`).
static PAYMENT_CUE: LazyLock<Regex> = LazyLock::new(|| {
    pattern(
        r"(?i)\b(?:paiements?|payments?|pay[ée]e?|paid|r[ée]gl[ée]e?|r[èe]glements?|mode|moyen|tender\w*|par|by|en|with)\b",
    )
});

/// The means of payment a line names, with the byte span of its name: the name starts the
/// line, or words announcing a payment come before it, so that a product called
/// "... VISA" or "CARTE POSTALE ..." further on a line is no payment.
pub(super) fn payment(text: &str) -> Option<(PaymentMethod, std::ops::Range<usize>)> {
    if NOT_PAYMENT.is_match(text) {
        return None;
    }
    let (method, span) = PAYMENTS
        .iter()
        .filter_map(|(method, re)| re.find(text).map(|m| (*method, m.start()..m.end())))
        .min_by_key(|(_, span)| span.start)?;
    let before = &text[..span.start];
    (super::lines::letters(before) == 0 || PAYMENT_CUE.is_match(before)).then_some((method, span))
}

/// Lines that carry an amount and yet are no item: counts, loyalty, savings, a price's
/// detail, taxes "included".
static NOT_ITEM: LazyLock<Regex> = LazyLock::new(|| {
    pattern(
        r"(?i)\b(?:nb\s+art\w*|nombre\s+d'articles?|articles?|items?\s+sold|fid[ée]lit\w*|loyalty|points?|cagnott\w*|[ée]conomi\w*|savings?|you\s+saved|prix\s+(?:unitaire|au\s+litre|/)|unit\s+price|price\s+per|dont|incl\w*|pay[ée]|paid|tendered|re[çc]u|received|solde|balance)\b",
    )
});

/// True for a line with an amount that is no item (`Nombre d'articles 5`, `Dont TVA`).
pub(super) fn not_item(text: &str) -> bool {
    NOT_ITEM.is_match(text)
}

/// Lines at the head of a receipt that name no merchant: the kind of document, greetings.
static NOT_MERCHANT_WORDS: LazyLock<Regex> = LazyLock::new(|| {
    pattern(
        r"(?i)^\W*(?:ticket(?:\s+de\s+caisse)?|re[çc]u|receipt|sales\s+receipt|facture|invoice|note|addition|duplicata|copie|copy|customer\s+copy|bienvenue|welcome|merci\b.*|thank\s+you\b.*|bonjour|hello|tax\s+invoice|original)\W*(?:n[°o]\.?\s*\S*|#\s*\S*|\d*)\W*$",
    )
});
/// Address, telephone, company identifiers, web and mail addresses.
static CONTACT: LazyLock<Regex> = LazyLock::new(|| {
    pattern(
        r"(?ix)
        ^\W*\d{1,4}\s*(?:bis|ter|[a-z])?,?\s+(?:rue|r\.|avenue|av\.?|bd|boulevard|place|pl\.|chemin|route|rte|all[ée]e|impasse|quai|cours|square|road|rd\.?|street|st\.?|lane|ln\.?|drive|dr\.?|way|high\s+street|broadway|main)\b
        | ^\W*\d{1,4}[a-z]?,?\s+(?:[\p{L}'-]+\s+){1,4}(?:street|st|road|rd|avenue|ave|lane|ln|drive|dr|way|square|sq|boulevard|blvd|place|parkway|court|ct)\b
        | ^\W*(?:rue|avenue|boulevard|place|chemin|route|all[ée]e|impasse|quai|cours|centre\s+commercial|zone|za|zac|zi|c\.?c\.?)\b
        | \b\d{5}\s+[\p{L}]
        | \b(?:F-)?\d{2}\s\d{3}\s+[\p{L}]
        | (?-i:\b[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}\b)
        | (?-i:,\s*[A-Z]{2}\s+\d{5}(?:-\d{4})?\b)
        | \b(?:t[ée]l|tel|phone|fax|t[ée]l[ée]phone)\b | \+\d{2} | \b0\d(?:[\s.]?\d{2}){4}\b | \(\d{3}\)\s*\d{3}-\d{4} | \b\d{3}[-.]\d{3}[-.]\d{4}\b
        | \b(?:siret|siren|rcs|naf|ape|tva|vat|ein|company\s+no|reg\.?\s+no|capital)\b
        | www\.|https?:|@|\.(?:com|fr|co\.uk|net|org)\b
        | \b(?:caisse|ticket|op[ée]rat\w*|cashier|vendeur|serveur|server|table|couverts?|covers|guests?|store|magasin|terminal|trans\w*)\s*[:\#n°]",
    )
});
/// Greetings before a merchant's name, dropped from it.
static GREETING: LazyLock<Regex> =
    LazyLock::new(|| pattern(r"(?i)^\W*(?:bienvenue\s+(?:chez|à|a|au|aux)|welcome\s+to)\s+"));

/// The name of a merchant in `text`, as the byte span of the name: `None` for a line that
/// names something else (an address, a telephone, a SIRET, the word TICKET).
pub(super) fn merchant_name(text: &str) -> Option<std::ops::Range<usize>> {
    let trimmed = text.trim();
    if super::lines::letters(trimmed) < 2
        || NOT_MERCHANT_WORDS.is_match(trimmed)
        || CONTACT.is_match(trimmed)
    {
        return None;
    }
    // Stars, dashes and quotes around a name are decoration ("*** CAFE DU PORT ***"); the
    // punctuation inside it is not ("E.LECLERC", "MARIO'S").
    let decoration = |c: char| !c.is_alphanumeric();
    let start = text.len() - text.trim_start_matches(decoration).len();
    let skip = GREETING.find(&text[start..]).map_or(0, |m| m.end());
    let end = text
        .trim_end_matches(|c: char| decoration(c) && c != ')')
        .len();
    (start + skip < end).then_some(start + skip..end)
}

/// Dates that are not when a receipt was made: expiry, validity, "best before".
static NOT_RECEIPT_DATE: LazyLock<Regex> = LazyLock::new(|| {
    pattern(
        r"(?i)\b(?:exp\w*|valid\w*|valable|jusqu\w*|[ée]ch[ée]ance|dlc|dluo|best\s+before|[àa]\s+consommer|use\s+by|n[ée]e?\s+le|birth)\b",
    )
});
/// Dates of a stay rather than of the bill.
static STAY_DATE: LazyLock<Regex> = LazyLock::new(|| {
    pattern(
        r"(?i)\b(?:arriv\w*|d[ée]part\w*|departure|check[-\s]?in|check[-\s]?out|s[ée]jour\s+du|from|to|au|du)\b",
    )
});
/// A date's own label.
static DATE_LABEL: LazyLock<Regex> =
    LazyLock::new(|| pattern(r"(?i)\b(?:date|le|émis|issued|dated)\b"));

/// How much a date on a line with `text` is the receipt's date: `None` for an expiry date,
/// 1 for a date of a stay, 3 for one labelled "date", 2 otherwise.
pub(super) fn date_rank(text: &str) -> Option<u8> {
    if NOT_RECEIPT_DATE.is_match(text) {
        None
    } else if STAY_DATE.is_match(text) {
        Some(1)
    } else if DATE_LABEL.is_match(text) {
        Some(3)
    } else {
        Some(2)
    }
}

/// Opening hours, whose times are not when the receipt was made.
static HOURS: LazyLock<Regex> = LazyLock::new(|| {
    pattern(r"(?i)\b(?:ouvert\w*|horaires?|open\w*|hours|du\s+lun\w*|mon\s*-\s*\w+)\b")
});

/// True for a line that gives opening hours.
pub(super) fn is_opening_hours(text: &str) -> bool {
    HOURS.is_match(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_and_what_is_not_one() {
        assert_eq!(total_rank("TOTAL TTC"), Some(3));
        assert_eq!(total_rank("Net à payer"), Some(3));
        assert_eq!(total_rank("Amount due"), Some(3));
        assert_eq!(total_rank("TOTAL"), Some(2));
        assert_eq!(total_rank("5 ARTICLES       MONTANT DU"), Some(3));
        assert_eq!(total_rank("5 ARTICLES"), None);
        assert_eq!(total_rank("SOUS-TOTAL"), None);
        assert_eq!(total_rank("Sous total"), None);
        assert_eq!(total_rank("Subtotal"), None);
        assert_eq!(total_rank("Total HT"), None);
        assert_eq!(total_rank("TOTAL TVA"), None);
        assert_eq!(total_rank("Total articles"), None);
        assert_eq!(total_rank("STATION TOTALENERGIES"), None);
        assert!(is_subtotal("SOUS-TOTAL") && is_subtotal("Sub-total") && is_subtotal("Total HT"));
        assert!(!is_subtotal("TOTAL TTC"));
    }

    #[test]
    fn payment_words() {
        let method = |t: &str| payment(t).map(|(m, _)| m);
        assert_eq!(method("CB"), Some(PaymentMethod::Card));
        assert_eq!(
            method("Paiement CB sans contact"),
            Some(PaymentMethod::Card)
        );
        assert_eq!(method("Card payment"), Some(PaymentMethod::Card));
        assert_eq!(method("VISA DEBIT"), Some(PaymentMethod::Card));
        assert_eq!(method("ESPECES"), Some(PaymentMethod::Cash));
        assert_eq!(method("Espèces"), Some(PaymentMethod::Cash));
        assert_eq!(method("Cash"), Some(PaymentMethod::Cash));
        assert_eq!(method("Chèque"), Some(PaymentMethod::Cheque));
        assert_eq!(method("Chèque déjeuner"), Some(PaymentMethod::Voucher));
        assert_eq!(method("TICKET RESTAURANT"), Some(PaymentMethod::Voucher));
        assert_eq!(method("Carte cadeau"), Some(PaymentMethod::Voucher));
        assert_eq!(method("Virement"), Some(PaymentMethod::Transfer));
        assert_eq!(method("PayPal"), Some(PaymentMethod::Other));
        assert_eq!(method("CARTE FIDELITE"), None);
        assert_eq!(method("Menu à la carte"), None);
        assert_eq!(method("CASHIER: John"), None);
        assert_eq!(method("LESSIVE LIQUIDE 2L"), None);
        assert_eq!(method("Check #4471"), None);
        assert_eq!(method("SAC CABAS VISA 1,00"), None);
        assert_eq!(
            method("Réglé par carte bancaire"),
            Some(PaymentMethod::Card)
        );
        assert_eq!(method("Paid by cheque"), Some(PaymentMethod::Cheque));
        let (_, span) = payment("Paiement CB 23,45").unwrap_or((PaymentMethod::Other, 0..0));
        assert_eq!(span, 9..11);
    }

    #[test]
    fn change_and_taxes() {
        assert!(is_change("RENDU") && is_change("Rendu monnaie") && is_change("Change due"));
        assert!(is_change("Monnaie rendue") && is_change("A RENDRE"));
        assert!(!is_change("Exchange rate") && !is_change("ESPECES"));
        assert!(
            mentions_vat("TVA 20%") && mentions_vat("dont T.V.A.") && mentions_vat("VAT @ 20%")
        );
        assert!(
            !mentions_vat("TVA intracom FR12345678901") && !mentions_vat("VAT No. GB123456789")
        );
        assert!(is_vat_header("TVA   Taux      HT     TVA     TTC"));
        // Headings glued together, as OCR reads them.
        assert!(is_vat_header("Taux BaseHT MontantTVA"));
        assert!(is_vat_header("TXTVA MTHT MTTVA MTTTC"));
        assert!(!is_vat_header("CRAVATE EN SOIE"));
        let tax = |t: &'static str| other_tax(t).map(|r| &t[r]);
        assert_eq!(tax("Taxe de séjour 2 x 1,65"), Some("Taxe de séjour"));
        assert_eq!(tax("Sales Tax 8.875%"), Some("Sales Tax"));
        assert_eq!(tax("TAX   3.12"), Some("TAX"));
        assert_eq!(tax("TVA 20%"), None);
        assert_eq!(tax("Taxi ride"), None);
    }

    #[test]
    fn merchant_lines() {
        let name = |t: &'static str| merchant_name(t).map(|r| &t[r]);
        assert_eq!(name("      CARREFOUR MARKET   "), Some("CARREFOUR MARKET"));
        assert_eq!(name("Bienvenue chez Leclerc"), Some("Leclerc"));
        assert_eq!(name("TICKET DE CAISSE"), None);
        assert_eq!(name("Ticket n° 004512"), None);
        assert_eq!(name("12 rue de la Paix"), None);
        assert_eq!(name("75002 PARIS"), None);
        assert_eq!(name("Tél : 01 23 45 67 89"), None);
        assert_eq!(name("SIRET 123 456 789 00012"), None);
        assert_eq!(name("221B Baker Street"), None);
        assert_eq!(name("London NW1 6XE"), None);
        assert_eq!(name("Springfield, IL 62704"), None);
        assert_eq!(name("********"), None);
        assert_eq!(name("  *** CAFE DU PORT ***"), Some("CAFE DU PORT"));
        assert_eq!(name("MARIO'S TRATTORIA."), Some("MARIO'S TRATTORIA"));
        assert_eq!(name("CAFE DE LA GARE (SNC)"), Some("CAFE DE LA GARE (SNC)"));
    }

    #[test]
    fn dates_that_are_not_the_receipts() {
        assert_eq!(date_rank("Date : 15/03/2025"), Some(3));
        assert_eq!(date_rank("15/03/2025 14:32"), Some(2));
        assert_eq!(date_rank("Arrivée 12/03/2025"), Some(1));
        assert_eq!(date_rank("Valable jusqu'au 15/04/2025"), None);
        assert!(is_opening_hours("Ouvert du lundi au samedi 8h30-20h00"));
    }
}
