//! An item's name as OCR gave it, mended of the slips OCR makes in a till's print: a letter
//! split from the rest of its word (`J AMBON`, `Orange J uice`), two words run together
//! (`CarburantSP95`), a one read as a letter before a unit (`IL` for `1L`, `5OCL` for
//! `50CL`). The value is mended; its span still shows what was printed. And a means of
//! payment whose name OCR split (`VIS À` for `VISA`).

use std::ops::Range;

use super::lexicon::{self, PaymentMethod};

/// `name`, as read from an OCR page, mended.
pub(super) fn label(name: &str) -> String {
    // A quantity in a name comes after the product's first word (`LAIT 1L`, never `1L LAIT`):
    // a first word is left as it is (`IL ETAIT...`).
    let words: Vec<String> = name
        .split_whitespace()
        .flat_map(split_run_together)
        .enumerate()
        .map(|(i, w)| if i == 0 { w } else { ones_before_a_unit(&w) })
        .collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        match words.get(i + 1) {
            Some(next) if split_letter(word, next) => {
                out.push(format!("{word}{next}"));
                i += 2;
            }
            _ => {
                out.push(word.clone());
                i += 1;
            }
        }
    }
    out.join(" ")
}

/// True when `letter` is a capital OCR split from the start of `next`: a `J` (no word in
/// French or English, and the letter OCR most often parts from the rest of its word), or a
/// capital other than the one-letter words `A` and `I` before lower-case letters (a word
/// does not go on in lower case after a capital standing alone).
fn split_letter(letter: &str, next: &str) -> bool {
    let mut chars = letter.chars();
    let (Some(c), None) = (chars.next(), chars.next()) else {
        return false;
    };
    let Some(first) = next.chars().next() else {
        return false;
    };
    if !c.is_uppercase() || !first.is_alphabetic() {
        return false;
    }
    c == 'J' || (!matches!(c, 'A' | 'I' | 'À' | 'Y' | 'O') && next.chars().all(char::is_lowercase))
}

/// A word that runs on from lower-case letters into capitals (`CarburantSP95`), split there:
/// a name in mixed case starts its words with a capital, and OCR loses narrow spaces. Short
/// lower-case runs are left alone (`McDonald`, `iPhone`, `PayPal`).
fn split_run_together(word: &str) -> Vec<String> {
    let chars: Vec<char> = word.chars().collect();
    let mut out = Vec::new();
    let mut start = 0;
    let mut lower_run = 0;
    for i in 0..chars.len() {
        let c = chars[i];
        if c.is_uppercase() && lower_run >= 3 && i > start {
            out.push(chars[start..i].iter().collect());
            start = i;
        }
        lower_run = if c.is_lowercase() { lower_run + 1 } else { 0 };
    }
    out.push(chars[start..].iter().collect());
    out
}

/// Units a quantity in a name is given in.
const UNITS: [&str; 9] = ["L", "CL", "ML", "G", "KG", "PT", "PK", "X", "GAL"];

/// A quantity before a unit with ones read as `I` or `l` and noughts as `O` (`IL`, `5OCL`),
/// given back its digits; any other word as it is.
fn ones_before_a_unit(word: &str) -> String {
    let Some(split) = word.find(|c: char| c.is_alphabetic() && !matches!(c, 'I' | 'l' | 'O'))
    else {
        return word.to_owned();
    };
    let (number, unit) = word.split_at(split);
    let digits = number.chars().filter(char::is_ascii_digit).count();
    let misread = number
        .chars()
        .filter(|c| matches!(c, 'I' | 'l' | 'O'))
        .count();
    let numeric = number
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, 'I' | 'l' | 'O' | ',' | '.'));
    let first_is_digit = number.chars().next().is_some_and(|c| c.is_ascii_digit());
    // A lone `I` or `l` before a unit is a one (`IL`); a longer number needs a real digit
    // first, so that words such as `OL` or `lL` stay words.
    let believed = numeric
        && misread > 0
        && (first_is_digit || (digits == 0 && matches!(number, "I" | "l")))
        && UNITS.contains(&unit.to_uppercase().as_str());
    if !believed {
        return word.to_owned();
    }
    let fixed: String = number
        .chars()
        .map(|c| match c {
            'I' | 'l' => '1',
            'O' => '0',
            other => other,
        })
        .collect();
    format!("{fixed}{unit}")
}

/// A letter as OCR's French model may read a capital standing alone (`À` for `A`), plain.
fn plain(c: char) -> char {
    match c {
        'À' | 'Á' | 'Â' => 'A',
        'à' | 'á' | 'â' => 'a',
        'É' | 'È' | 'Ê' => 'E',
        other => other,
    }
}

/// The means of payment `text` names where OCR split its name with a space (`VIS À` for
/// `VISA`, `CAR TE` for `CARTE`): each space between two letters is taken out in turn, and a
/// name found across it, in its letters without accents, is believed. The span covers the
/// split name as printed.
pub(super) fn split_payment(text: &str) -> Option<(PaymentMethod, Range<usize>)> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for k in 1..chars.len().saturating_sub(1) {
        let (at, c) = chars[k];
        if c != ' ' || !chars[k - 1].1.is_alphabetic() || !chars[k + 1].1.is_alphabetic() {
            continue;
        }
        // The line without that space, each byte's origin in `text` kept.
        let mut joined = String::with_capacity(text.len());
        let mut origin = Vec::with_capacity(text.len() + 1);
        for &(i, c) in chars.iter().filter(|(i, _)| *i != at) {
            let c = plain(c);
            for _ in 0..c.len_utf8() {
                origin.push(i);
            }
            joined.push(c);
        }
        origin.push(text.len());
        let Some((method, span)) = lexicon::payment(&joined) else {
            continue;
        };
        let (start, end) = (origin[span.start], origin[span.end]);
        // The name must be the one the space split.
        if start < at && at < end {
            let end = text[..end].trim_end().len();
            return Some((method, start..end));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_split_from_their_words_are_joined() {
        assert_eq!(label("SANDWICH J AMBON BEURRE"), "SANDWICH JAMBON BEURRE");
        assert_eq!(label("2 x Orange J uice 1L"), "2 x Orange Juice 1L");
        // One-letter words and codes stay apart.
        assert_eq!(label("VITAMINE C 1000"), "VITAMINE C 1000");
        assert_eq!(label("PAIN A L'ANCIENNE"), "PAIN A L'ANCIENNE");
        assert_eq!(label("Tea for one"), "Tea for one");
    }

    #[test]
    fn words_run_together_are_split() {
        assert_eq!(label("CarburantSP95"), "Carburant SP95");
        assert_eq!(label("McDonald iPhone PayPal"), "McDonald iPhone PayPal");
        assert_eq!(label("BEURRE DOUX 250G"), "BEURRE DOUX 250G");
    }

    #[test]
    fn payment_names_ocr_split() {
        let text = "VIS À FFFEEEEERERET 234 $32.05";
        let read = split_payment(text).map(|(m, span)| (m, &text[span]));
        assert_eq!(read, Some((PaymentMethod::Card, "VIS À")));
        assert_eq!(
            split_payment("CHEQUE 22,98"),
            None,
            "no split: nothing to mend"
        );
        assert_eq!(split_payment("MERCI DE VOTRE VISITE"), None);
    }

    #[test]
    fn ones_and_noughts_before_a_unit() {
        assert_eq!(label("LAIT DEMI-ECREME IL"), "LAIT DEMI-ECREME 1L");
        assert_eq!(label("EAU PLATE 5OCL"), "EAU PLATE 50CL");
        assert_eq!(label("COCA COLA 1,5L"), "COCA COLA 1,5L");
        // Words stay words.
        assert_eq!(label("IL ETAIT UNE FOIS"), "IL ETAIT UNE FOIS");
        assert_eq!(label("OLIVES lLOT"), "OLIVES lLOT");
    }
}
