//! Whether a sentence states an obligation, in French or in English, and by which words.
//!
//! Three kinds of phrases are looked for. A *prohibition* (`ne doit pas`, `shall not`,
//! `est interdit`) is an obligation not to do something: it is a requirement. A *waiver*
//! (`n'est pas tenu de`, `n'est pas obligatoire`, `is not required`, `need not`) says that
//! something is not required: it is not one, and a marker inside it does not count. Any other
//! *marker* (`doit`, `devra`, `est tenu de`, `il appartient au titulaire`, `obligatoirement`,
//! `shall`, `must`, `is required to`, ...) makes the sentence a requirement. Permissions and
//! advice (`peut`, `pourra`, `devrait`, `il est recommandé`, `may`, `should`, `can`) are not
//! markers, and neither is `may not` or `ne peut pas` (a permission denied reads as often as
//! a possibility as as a prohibition; the phrases that are unambiguous are kept).

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// What a requirement asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Modality {
    /// Something must be done.
    Obligation,
    /// Something must not be done.
    Prohibition,
}

/// The phrase that makes a sentence a requirement.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Marker {
    /// Bytes of the sentence it spans.
    pub range: Range<usize>,
    /// Obligation or prohibition.
    pub modality: Modality,
    /// How clearly it marks an obligation, from 0 to 1.
    pub strength: f64,
}

fn pattern(source: &str) -> Regex {
    Regex::new(source).unwrap_or_else(|e| unreachable!("obligation pattern {source}: {e}"))
}

/// An apostrophe, straight or typographic.
const APOS: &str = "['’]";

/// Unambiguous markers of an obligation.
static STRONG: LazyLock<Regex> = LazyLock::new(|| {
    pattern(&format!(
        r"(?xi)
        \b(?:doit|doivent|devra|devront)\b
        | \b(?:est|sont|sera|seront|reste|restent|demeure|demeurent)\s+tenue?s?\s+(?:de\b|d{APOS})
        | \bil\s+appartient\s+(?:au|aux|à)\b
        | \b(?:a|ont|aura|auront)\s+l{APOS}obligation\s+d
        | \bs{APOS}(?:engage|engagent|oblige|obligent)\s+à\b
        | \b(?:shall|must)\b
        | \b(?:is|are|will\s+be|shall\s+be)\s+(?:required|obliged|obligated)\s+to\b"
    ))
});

/// Markers that name the obligation rather than state it.
static PLAIN: LazyLock<Regex> = LazyLock::new(|| {
    pattern(
        r"(?xi)
        \bobligatoire(?:s|ment)?\b
        | \bimpérativement\b
        | \b(?:est|sont|sera|seront)\s+(?:exigée?s?|requise?s?|imposée?s?)\b
        | \bincombe(?:nt)?\s+(?:au|aux|à)\b
        | \b(?:mandatory|compulsory)\b
        | \b(?:is|are)\s+required\b",
    )
});

/// Phrases that often, not always, put an obligation on someone.
static WEAK: LazyLock<Regex> = LazyLock::new(|| {
    pattern(
        r"(?xi)
        \b(?:est|sont|seront|sera|reste|restent)\s+(?:entièrement\s+)?à\s+la\s+charge\s+d
        | \b(?:is|are)\s+(?:solely\s+|fully\s+)?responsible\s+for\b
        | \b(?:has|have)\s+to\b
        | \bundertakes?\s+to\b",
    )
});

/// Obligations not to.
static PROHIBITION: LazyLock<Regex> = LazyLock::new(|| {
    pattern(
        r"(?xi)
        \bne\s+(?:doit|doivent|devra|devront)\s+(?:pas|jamais|plus|en\s+aucun\s+cas|aucunement|nullement)\b
        | \bne\s+(?:peut|peuvent|pourra|pourront)\s+en\s+aucun\s+cas\b
        | \b(?:est|sont|sera|seront)\s+(?:strictement\s+|formellement\s+)?interdite?s?\b
        | \bil\s+est\s+(?:strictement\s+|formellement\s+)?interdit\b
        | \b(?:shall|must)\s+(?:not|never)\b
        | \b(?:is|are)\s+(?:strictly\s+)?(?:prohibited|forbidden|not\s+permitted|not\s+allowed)\b",
    )
});

/// Phrases that say something is not required.
static WAIVER: LazyLock<Regex> = LazyLock::new(|| {
    pattern(&format!(
        r"(?xi)
        \bn{APOS}\s*(?:est|sont|sera|seront)\s+(?:pas|nullement|aucunement|plus)\s+
            (?:tenue?s?|obligatoires?|exigée?s?|requise?s?|imposée?s?|obligée?s?)
        | \bn{APOS}\s*(?:a|ont|aura|auront)\s+pas\s+(?:à\b|l{APOS}obligation)
        | \bn{APOS}\s*(?:appartient|incombe)\s+pas\b
        | \bne\s+(?:doit|doivent|devra|devront)\s+pas\s+(?:nécessairement|forcément|obligatoirement)\b
        | \bnon[\s-]+obligatoires?\b
        | \bsans\s+obligation\b
        | \b(?:is|are|will\s+be|shall\s+be)\s+not\s+(?:required|mandatory|obliged|obligated|compulsory)\b
        | \bneed\s+not\b
        | \b(?:does|do|will)\s+not\s+(?:have|need)\s+to\b
        | \bnot\s+(?:mandatory|compulsory)\b
        | \bno\s+obligation\b"
    ))
});

fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

/// The phrase that makes `text` a requirement: its first obligation marker outside a
/// prohibition or a waiver, else its first prohibition outside a waiver; `None` when it
/// states no obligation.
pub(crate) fn find(text: &str) -> Option<Marker> {
    let waivers: Vec<Range<usize>> = WAIVER.find_iter(text).map(|m| m.range()).collect();
    let prohibitions: Vec<Range<usize>> = PROHIBITION
        .find_iter(text)
        .map(|m| m.range())
        .filter(|p| !waivers.iter().any(|w| overlaps(p, w)))
        .collect();
    let mut best: Option<Marker> = None;
    for (regex, strength) in [(&*STRONG, 0.95), (&*PLAIN, 0.85), (&*WEAK, 0.7)] {
        for found in regex.find_iter(text) {
            let range = found.range();
            if waivers.iter().any(|w| overlaps(&range, w))
                || prohibitions.iter().any(|p| overlaps(&range, p))
            {
                continue;
            }
            // The strongest marker wins; among equals, the first.
            let better = best.as_ref().is_none_or(|b| {
                strength > b.strength || (strength == b.strength && range.start < b.range.start)
            });
            if better {
                best = Some(Marker {
                    range,
                    modality: Modality::Obligation,
                    strength,
                });
            }
        }
    }
    best.or_else(|| {
        prohibitions.first().map(|range| Marker {
            range: range.clone(),
            modality: Modality::Prohibition,
            strength: 0.95,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker(text: &str) -> Option<(&str, Modality)> {
        find(text).map(|m| (&text[m.range], m.modality))
    }

    #[test]
    fn french_and_english_obligations() {
        for (text, word) in [
            ("Le titulaire doit fournir une attestation.", "doit"),
            ("Les offres devront être remises avant midi.", "devront"),
            (
                "Le titulaire est tenu d'informer le maître d'ouvrage.",
                "est tenu d'",
            ),
            (
                "Il appartient au titulaire de vérifier les cotes.",
                "Il appartient au",
            ),
            (
                "Le port du casque est obligatoire sur le chantier.",
                "obligatoire",
            ),
            ("Les déchets sont obligatoirement triés.", "obligatoirement"),
            (
                "Le titulaire s'engage à respecter le planning.",
                "s'engage à",
            ),
            ("The Contractor shall deliver the goods.", "shall"),
            ("Tenderers must submit two copies.", "must"),
            (
                "The supplier is required to keep records.",
                "is required to",
            ),
        ] {
            assert_eq!(marker(text), Some((word, Modality::Obligation)), "{text}");
        }
    }

    #[test]
    fn prohibitions_are_requirements() {
        assert_eq!(
            marker("Le titulaire ne doit pas sous-traiter le lot 1."),
            Some(("ne doit pas", Modality::Prohibition))
        );
        assert_eq!(
            marker("The supplier shall not disclose the data."),
            Some(("shall not", Modality::Prohibition))
        );
        assert_eq!(
            marker("Il est interdit de fumer dans les locaux."),
            Some(("Il est interdit", Modality::Prohibition))
        );
    }

    #[test]
    fn waivers_permissions_and_advice_are_not() {
        for text in [
            "La visite du site n'est pas obligatoire.",
            "Le titulaire n'est pas tenu de fournir un échantillon.",
            "Les candidats ne sont pas tenus de répondre à tous les lots.",
            "A site visit is not required.",
            "Tenderers need not attend the meeting.",
            "Le titulaire peut proposer une variante.",
            "Le titulaire pourra présenter des options.",
            "Le titulaire devrait prévoir une marge.",
            "The supplier should provide a sample.",
            "Tenderers may submit a variant.",
            "Les documents ne doivent pas nécessairement être signés.",
        ] {
            assert_eq!(marker(text), None, "{text}");
        }
    }

    #[test]
    fn a_waiver_does_not_hide_another_obligation() {
        let text =
            "Le titulaire n'est pas tenu de fournir un échantillon mais doit fournir une fiche.";
        assert_eq!(marker(text), Some(("doit", Modality::Obligation)));
    }
}
