//! Clauses read sentence by sentence: whether a site visit is mandatory, whether variants
//! are allowed (for the consultation, or for the lots a sentence names), and the guarantees
//! asked or given. A sentence that names a visit or variants without saying yes or no leaves
//! the field `null`: silence is never read as `false`.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::super::super::found::{better, Found};
use super::super::super::normalise::find_percentages;
use super::text::{collapse, lot_numbers, PageView};

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| unreachable!("clause pattern {pattern}: {e}"))
}

/// What a sentence about a visit or about variants says.
struct Rule {
    /// The subject (`visite`, `variantes`).
    topic: &'static LazyLock<Regex>,
    /// It is not so (checked first: `n'est pas obligatoire` holds `obligatoire`).
    no: &'static LazyLock<Regex>,
    /// It is so.
    yes: &'static LazyLock<Regex>,
    /// The word that makes a bare `oui`/`non` answer after the label mean yes or no.
    strong_label: &'static LazyLock<Regex>,
}

static VISIT: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)\bvisites?\b|\bsite\s+(?:visits?|inspections?|meetings?)\b|\bvisits?\s+(?:to|of)\s+the\s+(?:site|premises)",
    )
});
static VISIT_NO: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)facultative|n['’]\s?est\s+pas\s+(?:obligatoire|exigée|imposée|prévue)|non\s+obligatoire|aucune\s+visite|pas\s+de\s+visite|optionnelle|conseillée|recommandée|\boptional\b|not\s+(?:mandatory|compulsory|required|obligatory)|\bno\s+(?:site\s+)?visits?\b|recommended|ne\s+(?:sera|seront)\s+pas\s+(?:organisée|exigée)|sans\s+visite",
    )
});
static VISIT_YES: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)obligatoire|exigée|imposée|impérative|\bmandatory\b|\bcompulsory\b|must\s+(?:attend|visit)|\brequired\b|\bobligatory\b|peine\s+d['’]\s?irrecevabilité|peine\s+de\s+rejet",
    )
});
static VISIT_STRONG: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(?i)obligatoire|mandatory|compulsory|required"));
static VARIANTS: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"(?i)\bvariantes?\b|\bvariants?\b|\balternative\s+(?:bids|offers|tenders|solutions)\b")
});
static VARIANTS_NO: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)ne\s+(?:sont|seront|est|sera)\s+pas\s+(?:autorisée|admise|acceptée|possible)|non\s+(?:autorisées?|admises?|acceptées?)|interdites?|pas\s+de\s+variantes?|aucune\s+(?:offre\s+)?variante|refusées?|(?:are|is|will)\s+not\s+(?:be\s+)?(?:permitted|allowed|accepted|considered)|\bno\s+(?:variants?|alternative)|not\s+(?:permitted|allowed|accepted)|shall\s+not\s+(?:be\s+)?(?:permitted|submit)|may\s+not|cannot\s+be\s+(?:submitted|accepted)|n['’]\s?(?:est|sont)\s+pas\s+(?:autorisée|admise)",
    )
});
static VARIANTS_YES: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)autorisées?|admises?|acceptées?|possibles?|(?:peuvent|pourront|peut)\s+(?:présenter|proposer|remettre)|\b(?:permitted|allowed|accepted|welcome)\b|may\s+(?:submit|offer|propose)|can\s+submit|exigées?|imposées?|obligatoires?",
    )
});
static VARIANTS_STRONG: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(?i)autoris|admis|accept|permitted|allowed"));
/// A bare answer right after the label: `Visite obligatoire : Oui`, `Variants: No`.
static ANSWER: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(?i)^[^.;:\n]{0,40}?(?:[:：]|\s{2,})\s*(?P<a>oui|non|yes|no)\b"));

static VISIT_RULE: Rule = Rule {
    topic: &VISIT,
    no: &VISIT_NO,
    yes: &VISIT_YES,
    strong_label: &VISIT_STRONG,
};
static VARIANTS_RULE: Rule = Rule {
    topic: &VARIANTS,
    no: &VARIANTS_NO,
    yes: &VARIANTS_YES,
    strong_label: &VARIANTS_STRONG,
};

/// Values for the whole consultation and for named lots.
type ByLot = (Option<Found<bool>>, Vec<(Found<u32>, Found<bool>)>);

/// Whether a site visit is mandatory.
pub(super) fn site_visit(view: &PageView<'_>) -> ByLot {
    apply(view, &VISIT_RULE)
}

/// Whether variants are allowed.
pub(super) fn variants(view: &PageView<'_>) -> ByLot {
    apply(view, &VARIANTS_RULE)
}

fn apply(view: &PageView<'_>, rule: &Rule) -> ByLot {
    let mut whole = None;
    let mut by_lot: Vec<(Found<u32>, Found<bool>)> = Vec::new();
    let reliability = view.page.reliability();
    for sentence in view.sentences() {
        let text = view.slice(sentence.clone());
        let Some(topic) = rule.topic.find(text) else {
            continue;
        };
        let from_topic = &text[topic.start()..];
        let answer = ANSWER.captures(from_topic).and_then(|caps| {
            let a = caps.name("a")?;
            let yes = matches!(a.as_str().to_lowercase().as_str(), "oui" | "yes");
            let label = &from_topic[..a.start()];
            // `Visite des lieux : oui` says there is a visit, not that it is mandatory.
            let (value, confidence) = if rule.strong_label.is_match(label) || !yes {
                (yes, 0.9)
            } else {
                (yes, 0.6)
            };
            let at = topic.start() + a.end();
            Some((value, confidence, at))
        });
        let said = answer.or_else(|| {
            if let Some(m) = rule.no.find(text) {
                Some((false, 0.85, m.end()))
            } else {
                rule.yes.find(text).map(|m| (true, 0.85, m.end()))
            }
        });
        let Some((value, confidence, end)) = said else {
            continue;
        };
        let span: Range<usize> = topic.start().min(end)..topic.end().max(end);
        let found = Found::at(
            value,
            confidence * reliability,
            view.page,
            sentence.start + span.start,
            sentence.start + span.end,
        );
        let lots = lot_numbers(text);
        if lots.is_empty() {
            whole = better(whole, Some(found));
            continue;
        }
        for (range, n) in lots {
            let number = Found::at(
                n,
                confidence * reliability,
                view.page,
                sentence.start + range.start,
                sentence.start + range.end,
            );
            match by_lot.iter_mut().find(|(m, _)| m.value == n) {
                Some((_, kept)) => {
                    if found.confidence > kept.confidence {
                        *kept = found.clone();
                    }
                }
                None => by_lot.push((number, found.clone())),
            }
        }
    }
    (whole, by_lot)
}

/// A guarantee.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Guarantee {
    /// From the closed list: `retention`, `firstDemandGuarantee`, `jointSurety`, `advance`,
    /// `perfectCompletion`, `decennial`, `performanceBond`, `parentCompanyGuarantee`, `other`.
    #[serde(rename = "type")]
    pub kind: String,
    /// As the document writes it.
    pub label: String,
    /// Its rate in percent, when the sentence gives one.
    pub rate: Option<f64>,
}

/// Guarantee names and their types; at one position the first listed wins.
static GUARANTEE: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?xi)
        (?P<retention>retenue\s+de\s+garantie|\bretention\s+(?:money|sum))
        | (?P<retentionOf>\bretention)\s+of\s+\d
        | (?P<firstDemandGuarantee>garantie\s+à\s+première\s+demande|\b(?:first|on)[\s-]demand\s+(?:bank\s+)?guarantee)
        | (?P<jointSurety>caution\s+personnelle\s+et\s+solidaire)
        | (?P<advance>\bavance\s+(?:forfaitaire|de\s+\d+|est\s+(?:accordée|versée|prévue)|sera\s+(?:accordée|versée))|\badvance\s+payments?(?:\s+(?:guarantee|bond))?)
        | (?P<perfectCompletion>(?:garantie\s+de\s+)?parfait\s+achèvement)
        | (?P<decennial>(?:garantie|responsabilité|assurance)\s+décennale)
        | (?P<performanceBond>\bperformance\s+(?:bond|security|guarantee))
        | (?P<parentCompanyGuarantee>\bparent\s+company\s+guarantee)
        | (?P<other>garantie\s+de\s+(?:bonne\s+exécution|soumission|bonne\s+fin)|\bbid\s+bond|\btender\s+(?:bond|guarantee|security))",
    )
});
const GUARANTEE_TYPES: [&str; 10] = [
    "retention",
    "retentionOf",
    "firstDemandGuarantee",
    "jointSurety",
    "advance",
    "perfectCompletion",
    "decennial",
    "performanceBond",
    "parentCompanyGuarantee",
    "other",
];
/// A negation just before a guarantee's name (`pas de`, `aucune`, `no`).
static NOT_BEFORE: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"(?i)(?:\bpas\b|\baucune?\b|\bsans\b|\bno\b|\bnot\b|\bnor\b|\bnone\b)[^.;,]{0,30}$")
});
/// A negation just after it (`n'est pas exigée`, `is not required`).
static NOT_AFTER: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)^\s*(?:\S+\s+){0,2}?(?:n['’]\s?(?:est|sera)\s+pas|ne\s+(?:sera|est)\s+pas|is\s+not|will\s+not|are\s+not|shall\s+not)",
    )
});

/// The guarantees `view`'s page names, one per type.
pub(super) fn guarantees(view: &PageView<'_>) -> Vec<Found<Guarantee>> {
    let mut out = Vec::new();
    for sentence in view.sentences() {
        let text = view.slice(sentence.clone());
        for caps in GUARANTEE.captures_iter(text) {
            let Some((kind, m)) = GUARANTEE_TYPES
                .iter()
                .find_map(|t| caps.name(t).map(|m| (*t, m)))
            else {
                continue;
            };
            // `Retention of 5%`: the name alone, its rate read after it.
            let kind = if kind == "retentionOf" {
                "retention"
            } else {
                kind
            };
            let mut from = m.start().saturating_sub(40);
            for _ in 0..4 {
                if text.is_char_boundary(from) {
                    break;
                }
                from += 1;
            }
            let before = text.get(from..m.start()).unwrap_or("");
            if NOT_BEFORE.is_match(before) || NOT_AFTER.is_match(&text[m.end()..]) {
                continue;
            }
            // Its rate: a percentage right after the name, or right before it.
            let percentages = find_percentages(text);
            let rate = percentages
                .iter()
                .find(|(r, _)| r.start >= m.end() && r.start - m.end() <= 60)
                .or_else(|| {
                    percentages
                        .iter()
                        .rev()
                        .find(|(r, _)| r.end <= m.start() && m.start() - r.end <= 30)
                });
            let span = match rate {
                Some((r, _)) => m.start().min(r.start)..m.end().max(r.end),
                None => m.range(),
            };
            let found = Found::at(
                Guarantee {
                    kind: kind.to_owned(),
                    label: collapse(m.as_str()),
                    rate: rate.map(|(_, p)| *p),
                },
                0.85 * view.page.reliability(),
                view.page,
                sentence.start + span.start,
                sentence.start + span.end,
            );
            absorb(&mut out, vec![found]);
        }
    }
    out
}

/// Takes in `other`'s guarantees, one per type (and per label for `other`).
pub(super) fn absorb(guarantees: &mut Vec<Found<Guarantee>>, other: Vec<Found<Guarantee>>) {
    for g in other {
        let same = |kept: &Found<Guarantee>| {
            kept.value.kind == g.value.kind
                && (g.value.kind != "other"
                    || kept.value.label.to_lowercase() == g.value.label.to_lowercase())
        };
        match guarantees.iter_mut().find(|k| same(k)) {
            Some(kept) => {
                // A reading with a rate says more than one without.
                let more = g.value.rate.is_some() && kept.value.rate.is_none();
                if more
                    || (g.confidence > kept.confidence
                        && g.value.rate.is_some() == kept.value.rate.is_some())
                {
                    *kept = g;
                }
            }
            None => guarantees.push(g),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::super::super::super::document::{Page, PageSource};
    use super::*;

    fn page(text: &str) -> Page {
        Page::new(1, text.to_owned(), PageSource::Text)
    }

    #[test]
    fn a_visit_is_null_unless_the_document_says() {
        let p = page("Une visite des lieux est organisée le 3 mars 2025.");
        let (whole, lots) = site_visit(&PageView::new(&p, &HashSet::new()));
        assert!(whole.is_none() && lots.is_empty());
        let p = page("La visite des lieux n'est pas obligatoire.");
        let (whole, _) = site_visit(&PageView::new(&p, &HashSet::new()));
        assert_eq!(whole.map(|f| f.value), Some(false));
        let p = page("Visite obligatoire :    Oui");
        let (whole, _) = site_visit(&PageView::new(&p, &HashSet::new()));
        assert_eq!(whole.map(|f| f.value), Some(true));
    }

    #[test]
    fn per_lot_variants_and_visits() {
        let p = page(
            "Les variantes sont autorisées pour les lots 1 et 3.\n\
             Les variantes ne sont pas autorisées pour le lot 2.\n\
             A site visit is mandatory for Lot 3.",
        );
        let view = PageView::new(&p, &HashSet::new());
        let (whole, lots) = variants(&view);
        assert!(whole.is_none());
        let by: Vec<(u32, bool)> = lots.iter().map(|(n, v)| (n.value, v.value)).collect();
        assert_eq!(by, vec![(1, true), (3, true), (2, false)]);
        let (whole, lots) = site_visit(&view);
        assert!(whole.is_none());
        assert_eq!(lots.len(), 1);
        assert_eq!((lots[0].0.value, lots[0].1.value), (3, true));
    }

    #[test]
    fn guarantees_typed_with_their_rate_and_negations_skipped() {
        let p = page(
            "Une retenue de garantie de 5 % est appliquée ; elle peut être remplacée par une \
             garantie à première demande ou une caution personnelle et solidaire.\n\
             Il n'est pas prévu d'avance forfaitaire. No parent company guarantee is required.\n\
             A performance bond of 10% of the contract value is required.",
        );
        let found = guarantees(&PageView::new(&p, &HashSet::new()));
        let kinds: Vec<(String, Option<f64>)> = found
            .into_iter()
            .map(|g| (g.value.kind, g.value.rate))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("retention".into(), Some(5.0)),
                ("firstDemandGuarantee".into(), None),
                ("jointSurety".into(), None),
                ("performanceBond".into(), Some(10.0)),
            ]
        );
    }
}
