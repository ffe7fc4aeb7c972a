//! Who buys what, under which reference and procedure, in which CPV classes: labelled fields
//! first (`Pouvoir adjudicateur :`, `Objet du marché :`, `Contracting authority:`), then
//! looser readings of prose at a lower confidence.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::super::super::found::{better, Found};
use super::text::{collapse, labelled, Labelled, PageView};

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| unreachable!("identity pattern {pattern}: {e}"))
}

/// Labels of the buyer, French and English.
static BUYER_LABEL: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)^(?:(?:nom|identification|désignation|coordonnées)(?:\s+et\s+adresse)?(?:\s+officiels?)?\s+de\s+l['’]\s?|nom\s+du\s+)?(?:pouvoir\s+adjudicateur|entité\s+adjudicatrice|acheteur(?:\s+public)?|organisme\s+acheteur|maître\s+d['’]\s?ouvrage|maîtrise\s+d['’]\s?ouvrage|personne\s+publique(?:\s+contractante)?|collectivité|contracting\s+(?:authority|entity)|(?:name\s+of\s+(?:the\s+)?)?buyer|purchaser|awarding\s+(?:authority|body)|procuring\s+entity)",
    )
});
/// Labels of the object.
static OBJECT_LABEL: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)^(?:objet(?:\s+(?:du\s+marché|de\s+la\s+consultation|de\s+l['’]\s?accord[-\s]cadre|du\s+contrat|de\s+l['’]\s?achat|des\s+prestations))?|intitulé(?:\s+(?:du\s+marché|de\s+la\s+consultation))?|subject(?:\s+(?:of\s+the\s+contract|matter))?|(?:contract|tender|project)\s+title|title\s+of\s+the\s+(?:contract|tender)|object\s+of\s+the\s+contract|description\s+of\s+the\s+(?:contract|requirement))",
    )
});
/// Labels of the reference.
static REFERENCE_LABEL: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)^(?:référence(?:\s+(?:de\s+la\s+consultation|du\s+marché|du\s+dossier|de\s+l['’]\s?avis))?|réf\.?(?:\s+de\s+la\s+consultation)?|(?:n°|numéro)\s+(?:de\s+(?:la\s+)?consultation|du\s+marché|de\s+marché|du\s+dossier)|(?:marché|consultation|dossier|procédure)\s+n°|(?:tender|contract|procurement|notice|our)\s+(?:reference|ref\.?|number|no\.?)|reference(?:\s+number)?|ref\.?)",
    )
});
/// A reference code: letters, digits and separators, one digit at least.
static CODE: LazyLock<Regex> = LazyLock::new(|| regex(r"[A-Za-z0-9]+(?:[/_.\-][A-Za-z0-9]+)*"));
/// A reference given inline: `Marché n° 2025-014`, `Consultation n°AO-25-07`.
static INLINE_REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)\b(?:marché|consultation|dossier|procédure|tender|contract)\s+(?:n°|no\.|number|ref\.?|reference)\s*:?\s*(?P<code>[A-Za-z0-9]+(?:[/_.\-][A-Za-z0-9]+)*)",
    )
});
/// A sentence that says what the contract is for.
static OBJECT_SENTENCE: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)\b(?:a\s+pour\s+objet|porte\s+sur|(?:this\s+)?(?:invitation\s+to\s+tender|contract|tender)\s+(?:is\s+for|relates\s+to|concerns))\s*:?\s*(?P<value>[^.;]{8,})",
    )
});

/// The buyer: a labelled name, cut before its address.
pub(super) fn buyer(view: &PageView<'_>) -> Option<Found<String>> {
    let mut best = None;
    for value in labelled(view, &BUYER_LABEL) {
        let cut = value
            .text
            .find([',', '(', ';'])
            .into_iter()
            .chain(value.text.find(" - "))
            .chain(value.text.find(" – "))
            .min()
            .unwrap_or(value.text.len());
        let name = value.text[..cut].trim_end();
        if name.chars().filter(|c| c.is_alphabetic()).count() < 3 {
            continue;
        }
        let confidence = if value.same_line { 0.9 } else { 0.8 };
        best = better(best, found(view, confidence, value.start, name));
    }
    best
}

/// The object: a labelled value (with its continuation lines), or a sentence saying what
/// the consultation is for.
pub(super) fn object(view: &PageView<'_>) -> Option<Found<String>> {
    let mut best = None;
    for value in labelled(view, &OBJECT_LABEL) {
        let (_, text) = continued(view, value);
        let text = text.trim_end_matches(['.', ' ']);
        if text.chars().filter(|c| c.is_alphabetic()).count() < 4 {
            continue;
        }
        let confidence = if value.same_line { 0.9 } else { 0.8 };
        best = better(
            best,
            Some(Found::at(
                collapse(text),
                confidence * view.page.reliability(),
                view.page,
                value.start,
                value.start + text.len(),
            )),
        );
    }
    if best.is_some() {
        return best;
    }
    for sentence in view.sentences() {
        let text = view.slice(sentence.clone());
        if let Some(caps) = OBJECT_SENTENCE.captures(text) {
            if let Some(m) = caps.name("value") {
                let value = m.as_str().trim_end_matches(['.', ' ', '\n']);
                let start = sentence.start + m.start();
                best = better(
                    best,
                    Some(Found::at(
                        collapse(value),
                        0.6 * view.page.reliability(),
                        view.page,
                        start,
                        start + value.len(),
                    )),
                );
            }
        }
    }
    best
}

/// A labelled value and the lines that carry it on (lines that start in lower case while
/// the value has not ended with a full stop); returns its end byte and its text.
fn continued<'a>(view: &PageView<'a>, value: Labelled<'a>) -> (usize, &'a str) {
    let mut end = value.start + value.text.len();
    for line in view.lines.iter().skip(value.line + 1).take(3) {
        let next = line.text.trim();
        let current = view.slice(value.start..end);
        let lower = next.chars().next().is_some_and(char::is_lowercase);
        if !lower || current.ends_with('.') || line.cells().len() > 1 {
            break;
        }
        end = line.start + line.text.trim_end().len();
    }
    (end, view.slice(value.start..end))
}

/// The reference: a labelled code, or one given inline (`Marché n° 2025-014`).
pub(super) fn reference(view: &PageView<'_>) -> Option<Found<String>> {
    let mut best = None;
    for value in labelled(view, &REFERENCE_LABEL) {
        let Some(code) = CODE
            .find_iter(value.text)
            .find(|m| m.as_str().chars().any(|c| c.is_ascii_digit()))
        else {
            continue;
        };
        let confidence = if value.same_line { 0.9 } else { 0.8 };
        best = better(
            best,
            found(view, confidence, value.start + code.start(), code.as_str()),
        );
    }
    if best.is_some() {
        return best;
    }
    // Running headers name the reference on every page; they are read here too (with less
    // confidence), so this looks at the page's raw lines.
    for caps in INLINE_REFERENCE.captures_iter(&view.page.text) {
        let Some(code) = caps.name("code") else {
            continue;
        };
        if !code.as_str().chars().any(|c| c.is_ascii_digit()) {
            continue;
        }
        best = better(best, found(view, 0.65, code.start(), code.as_str()));
    }
    best
}

fn found(view: &PageView<'_>, confidence: f64, start: usize, text: &str) -> Option<Found<String>> {
    Some(Found::at(
        text.to_owned(),
        confidence * view.page.reliability(),
        view.page,
        start,
        start + text.len(),
    ))
}

/// An award procedure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Procedure {
    /// From the closed list: `mapa`, `openTender`, `restrictedTender`, `negotiated`,
    /// `competitiveNegotiation`, `competitiveDialogue`, `innovationPartnership`,
    /// `competitiveFlexible`, `openProcedure`, `restrictedProcedure`.
    #[serde(rename = "type")]
    pub kind: String,
    /// As the document writes it.
    pub label: String,
}

/// Procedure names and their type; at one position the first listed wins.
static PROCEDURE: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?xi)
        (?P<mapa>(?:marché\s+(?:public\s+)?(?:passé\s+)?(?:à|en|selon\s+(?:une|la))\s+)?procédure\s+adaptée|\bMAPA\b)
        | (?P<openTender>appel\s+d['’]\s?offres?\s+ouvert)
        | (?P<restrictedTender>appel\s+d['’]\s?offres?\s+restreint)
        | (?P<competitiveNegotiation>procédure\s+concurrentielle\s+avec\s+négociation|competitive\s+procedure\s+with\s+negotiation)
        | (?P<negotiated>procédure\s+négociée(?:\s+(?:avec|sans)\s+(?:publicité|mise\s+en\s+concurrence)[^.;,]*)?|negotiated\s+procedure(?:\s+(?:with|without)\s+(?:prior\s+)?(?:publication|call\s+for\s+competition))?)
        | (?P<competitiveDialogue>dialogue\s+compétitif|competitive\s+dialogue)
        | (?P<innovationPartnership>partenariat\s+d['’]\s?innovation|innovation\s+partnership)
        | (?P<competitiveFlexible>competitive\s+flexible\s+procedure)
        | (?P<openProcedure>\bopen\s+procedure|procédure\s+ouverte)
        | (?P<restrictedProcedure>\brestricted\s+procedure|procédure\s+restreinte)",
    )
});
const PROCEDURE_TYPES: [&str; 10] = [
    "mapa",
    "openTender",
    "restrictedTender",
    "competitiveNegotiation",
    "negotiated",
    "competitiveDialogue",
    "innovationPartnership",
    "competitiveFlexible",
    "openProcedure",
    "restrictedProcedure",
];
/// A line that labels the procedure.
static PROCEDURE_LABEL: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)^\s*(?:[-–•*]\s*)?(?:(?:type|mode|forme)\s+de\s+(?:la\s+)?(?:procédure|passation)|procédure(?:\s+de\s+passation)?|mode\s+de\s+passation|(?:type\s+of\s+)?procedure(?:\s+type)?|award\s+procedure)\s*(?:[:：]|[-–]\s|\s{2,})",
    )
});
/// A procedure named as what might follow (another procedure after a failed one), not the
/// one this consultation follows.
static HYPOTHETICAL: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)infructu|unsuccessful|pourra\s+(?:être\s+)?(?:engag|lanc|recour|pass)|le\s+cas\s+échéant|may\s+(?:be\s+)?(?:use|launch|revert)",
    )
});

/// The procedure: named on a labelled line (high confidence) or in a sentence.
pub(super) fn procedure(view: &PageView<'_>) -> Option<Found<Procedure>> {
    let mut best = None;
    for sentence in view.sentences() {
        let text = view.slice(sentence.clone());
        if HYPOTHETICAL.is_match(text) {
            continue;
        }
        let labelled = PROCEDURE_LABEL.is_match(text);
        for caps in PROCEDURE.captures_iter(text) {
            let Some((kind, m)) = PROCEDURE_TYPES
                .iter()
                .find_map(|t| caps.name(t).map(|m| (*t, m)))
            else {
                continue;
            };
            let confidence = if labelled { 0.95 } else { 0.75 };
            let label = collapse(m.as_str().trim_end());
            best = better(
                best,
                Some(Found::at(
                    Procedure {
                        kind: kind.to_owned(),
                        label,
                    },
                    confidence * view.page.reliability(),
                    view.page,
                    sentence.start + m.start(),
                    sentence.start + m.start() + m.as_str().trim_end().len(),
                )),
            );
        }
    }
    best
}

/// A CPV code: eight digits and, often, a check digit.
static CPV_CODE: LazyLock<Regex> =
    LazyLock::new(|| regex(r"\b(?P<code>\d{8})(?:\s?-\s?(?P<check>\d))?\b"));
static CPV_WORD: LazyLock<Regex> = LazyLock::new(|| regex(r"(?i)\bCPV\b|vocabulaire\s+commun"));

/// CPV divisions (the first two digits), so that a date or a phone number is not taken
/// for a code.
const CPV_DIVISIONS: [&str; 45] = [
    "03", "09", "14", "15", "16", "18", "19", "22", "24", "30", "31", "32", "33", "34", "35", "37",
    "38", "39", "41", "42", "43", "44", "45", "48", "50", "51", "55", "60", "63", "64", "65", "66",
    "70", "71", "72", "73", "75", "76", "77", "79", "80", "85", "90", "92", "98",
];

/// CPV codes on lines that name the CPV, and on the lines of the list such a line opens.
pub(super) fn cpv(view: &PageView<'_>) -> Vec<Found<String>> {
    let mut out: Vec<Found<String>> = Vec::new();
    let mut open = 0usize;
    for line in &view.lines {
        if CPV_WORD.is_match(line.text) {
            open = 6;
        } else if line.is_blank() || open == 0 {
            open = 0;
            continue;
        }
        open = open.saturating_sub(1);
        let mut any = false;
        for caps in CPV_CODE.captures_iter(line.text) {
            let (Some(code), whole) = (caps.name("code"), caps.get(0)) else {
                continue;
            };
            if !CPV_DIVISIONS.contains(&&code.as_str()[..2]) {
                continue;
            }
            any = true;
            let value = match caps.name("check") {
                Some(check) => format!("{}-{}", code.as_str(), check.as_str()),
                None => code.as_str().to_owned(),
            };
            let Some(whole) = whole else { continue };
            if out.iter().any(|f| f.value == value) {
                continue;
            }
            let confidence = if CPV_WORD.is_match(line.text) {
                0.95
            } else {
                0.85
            };
            out.push(Found::at(
                value,
                confidence * view.page.reliability(),
                view.page,
                line.start + whole.start(),
                line.start + whole.end(),
            ));
        }
        // A list of codes goes on while its lines hold codes.
        if !any && !CPV_WORD.is_match(line.text) {
            open = 0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::super::super::super::document::{Page, PageSource};
    use super::*;

    fn view_of(page: &Page) -> PageView<'_> {
        PageView::new(page, &HashSet::new())
    }

    #[test]
    fn the_procedure_is_the_one_followed_not_the_fallback() {
        let page = Page::new(
            1,
            "Procédure : marché à procédure adaptée (MAPA).\n\
             En cas d'appel d'offres infructueux, une procédure négociée pourra être engagée."
                .into(),
            PageSource::Text,
        );
        let found = procedure(&view_of(&page));
        assert_eq!(found.as_ref().map(|f| f.value.kind.as_str()), Some("mapa"));
        assert!(found.is_some_and(|f| f.confidence > 0.9));
        let page = Page::new(
            1,
            "This tender follows the open procedure.".into(),
            PageSource::Text,
        );
        let found = procedure(&view_of(&page));
        assert_eq!(
            found.map(|f| f.value.kind),
            Some("openProcedure".to_owned())
        );
    }

    #[test]
    fn the_buyer_is_cut_before_its_address_and_its_representative_is_not_it() {
        let page = Page::new(
            1,
            "Représentant du pouvoir adjudicateur : M. le Maire\n\
             Pouvoir adjudicateur : Ville de Montreuil, 1 place Jean Jaurès"
                .into(),
            PageSource::Text,
        );
        assert_eq!(
            buyer(&view_of(&page)).map(|f| f.value),
            Some("Ville de Montreuil".to_owned())
        );
    }

    #[test]
    fn cpv_codes_only_where_the_cpv_is_named() {
        let page = Page::new(
            1,
            "Codes CPV :\n  90911200-8   Nettoyage\n  77310000 Espaces verts\n\nTél. 01234567 ; 20250315"
                .into(),
            PageSource::Text,
        );
        let codes: Vec<String> = cpv(&view_of(&page)).into_iter().map(|f| f.value).collect();
        assert_eq!(codes, vec!["90911200-8", "77310000"]);
    }

    #[test]
    fn references_labelled_or_inline() {
        let page = Page::new(1, "Référence : AO-2025-014".into(), PageSource::Text);
        assert_eq!(
            reference(&view_of(&page)).map(|f| f.value),
            Some("AO-2025-014".to_owned())
        );
        let page = Page::new(1, "RC - Marché n° 25/117 - page 1".into(), PageSource::Text);
        let found = reference(&view_of(&page));
        assert_eq!(found.as_ref().map(|f| f.value.as_str()), Some("25/117"));
        assert!(found.is_some_and(|f| f.confidence < 0.7));
    }
}
