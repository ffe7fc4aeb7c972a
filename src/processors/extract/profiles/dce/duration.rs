//! The contract's duration: its initial period, its renewals, and the total with renewals,
//! as stated (`durée maximale de 4 ans`) or, when only the renewals are, worked out from
//! them at a lower confidence.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::super::super::found::{better, Found};
use super::text::PageView;

/// A length of time as the document gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Span {
    /// How many units.
    pub value: u32,
    /// `days`, `weeks`, `months` or `years`.
    pub unit: Unit,
}

/// A unit of [`Span`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Unit {
    /// Days.
    Days,
    /// Weeks.
    Weeks,
    /// Months.
    Months,
    /// Years.
    Years,
}

impl Span {
    /// In months, for months and years.
    fn months(self) -> Option<u32> {
        match self.unit {
            Unit::Months => Some(self.value),
            Unit::Years => self.value.checked_mul(12),
            Unit::Days | Unit::Weeks => None,
        }
    }
}

/// How often the contract can be renewed, and for how long each time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Renewals {
    /// How many renewals at most.
    pub count: u32,
    /// Each renewal's period, when said.
    pub period: Option<Span>,
}

/// The contract's duration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct Duration {
    /// The initial (firm) period.
    pub initial: Option<Found<Span>>,
    /// Its renewals or extensions.
    pub renewals: Option<Found<Renewals>>,
    /// The longest it can run, renewals included.
    pub total: Option<Found<Span>>,
}

impl Duration {
    /// Takes in `other`'s readings, the better of two for each.
    pub(super) fn absorb(&mut self, other: Duration) {
        self.initial = better(self.initial.take(), other.initial);
        self.renewals = better(self.renewals.take(), other.renewals);
        self.total = better(self.total.take(), other.total);
        self.work_out_total();
    }

    /// Without a stated total, the initial period plus every renewal (in months).
    fn work_out_total(&mut self) {
        if self.total.is_some() {
            return;
        }
        let (Some(initial), Some(renewals)) = (&self.initial, &self.renewals) else {
            return;
        };
        let Some(period) = renewals.value.period else {
            return;
        };
        let months = initial
            .value
            .months()
            .zip(period.months())
            .and_then(|(i, p)| {
                p.checked_mul(renewals.value.count)
                    .and_then(|r| r.checked_add(i))
            });
        if let Some(months) = months {
            let confidence = initial.confidence.min(renewals.confidence) * 0.8;
            self.total = Some(Found {
                value: Span {
                    value: months,
                    unit: Unit::Months,
                },
                confidence,
                source: renewals.source,
            });
        }
    }
}

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| unreachable!("duration pattern {pattern}: {e}"))
}

const COUNT: &str = r"\d{1,3}|une?|deux|trois|quatre|cinq|six|sept|huit|neuf|dix|onze|douze|dix-huit|vingt-quatre|trente-six|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|eighteen|twenty-four|thirty-six";

/// A length of time: `12 mois`, `douze (12) mois`, `2 ans`, `three years`, `90 days`.
static SPAN: LazyLock<Regex> = LazyLock::new(|| {
    regex(&format!(
        r"(?i)\b(?P<n>{COUNT})\s*(?:\(\s*(?P<n2>\d{{1,3}})\s*\)\s*)?(?P<u>jours?|semaines?|mois|ans?|années?|days?|weeks?|months?|years?)\b"
    ))
});
/// What names the initial period.
static INITIAL: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)durée\s+(?:initiale|ferme|du\s+marché|de\s+l['’]\s?accord[-\s]cadre|du\s+contrat|d['’]\s?exécution)|\bdurée\s*:|délai\s+(?:global\s+)?d['’]\s?exécution|période\s+initiale|conclu\s+pour|(?:initial|contract)\s+(?:term|period|duration)|duration\s+of\s+the\s+(?:contract|framework|agreement)|\bduration\s*:|(?:contract|agreement|framework)\s+(?:will|shall)\s+(?:run|last|be\s+let)\s+for|for\s+an\s+initial\s+period",
    )
});
/// What names the total with renewals.
static TOTAL: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)durée\s+(?:maximale|totale|globale)|maximum\s+(?:duration|term|period|contract\s+(?:length|period))|total\s+(?:duration|term|contract\s+period|period)|up\s+to\s+a\s+(?:maximum|total)\s+of|ne\s+(?:peut|pourra)\s+(?:pas\s+)?excéder|shall\s+not\s+exceed|cannot\s+exceed",
    )
});
/// Renewals: `reconductible 3 fois`, `renewable twice`, `two optional extensions`.
static RENEWAL: LazyLock<Regex> = LazyLock::new(|| {
    regex(&format!(
        r"(?i)(?:reconductible|reconduit|renouvelable)(?:\s+(?:tacitement|expressément))?\s+(?P<a>{COUNT})\s+fois|(?P<b>{COUNT})\s+(?:reconductions?|renouvellements?)|(?:renewable|extendable|extended)\s+(?:for\s+|by\s+)?(?:up\s+to\s+)?(?P<c>{COUNT}|once|twice)\b(?:\s+times)?|(?P<d>{COUNT})\s+(?:optional\s+|further\s+|additional\s+)*(?:extensions?|renewals?|extension\s+periods?)",
    ))
});

fn count(word: &str) -> Option<u32> {
    let word = word.to_lowercase();
    if let Ok(n) = word.parse() {
        return Some(n);
    }
    let n = match word.as_str() {
        "un" | "une" | "one" | "once" => 1,
        "deux" | "two" | "twice" => 2,
        "trois" | "three" => 3,
        "quatre" | "four" => 4,
        "cinq" | "five" => 5,
        "six" => 6,
        "sept" | "seven" => 7,
        "huit" | "eight" => 8,
        "neuf" | "nine" => 9,
        "dix" | "ten" => 10,
        "onze" | "eleven" => 11,
        "douze" | "twelve" => 12,
        "dix-huit" | "eighteen" => 18,
        "vingt-quatre" | "twenty-four" => 24,
        "trente-six" | "thirty-six" => 36,
        _ => return None,
    };
    Some(n)
}

/// The spans in `text` with their byte ranges.
fn spans(text: &str) -> Vec<(std::ops::Range<usize>, Span)> {
    SPAN.captures_iter(text)
        .filter_map(|caps| {
            let whole = caps.get(0)?;
            let n = caps
                .name("n2")
                .and_then(|m| m.as_str().parse().ok())
                .or_else(|| count(caps.name("n")?.as_str()))?;
            let unit = caps.name("u")?.as_str().to_lowercase();
            let unit = match unit.chars().next()? {
                'j' | 'd' => Unit::Days,
                's' | 'w' => Unit::Weeks,
                'm' => Unit::Months,
                _ => Unit::Years,
            };
            Some((whole.range(), Span { value: n, unit }))
        })
        .collect()
}

/// The duration as `view`'s page states it.
pub(super) fn read(view: &PageView<'_>) -> Duration {
    let mut duration = Duration::default();
    let reliability = view.page.reliability();
    for sentence in view.sentences() {
        let text = view.slice(sentence.clone());
        let spans = spans(text);
        let first_after = |at: usize, before: usize| {
            spans
                .iter()
                .find(|(r, _)| r.start >= at && r.start < before)
                .cloned()
        };
        let renewal = RENEWAL.captures(text);
        let renewal_at = renewal
            .as_ref()
            .and_then(|c| c.get(0))
            .map_or(text.len(), |m| m.start());
        let total_at = TOTAL.find(text).map(|m| (m.start(), m.end()));
        let found = |range: std::ops::Range<usize>, confidence: f64| {
            (
                sentence.start + range.start,
                sentence.start + range.end,
                confidence * reliability,
            )
        };
        if let Some(m) = INITIAL.find(text) {
            let limit = renewal_at.min(total_at.map_or(text.len(), |t| t.0).max(m.end()));
            if let Some((range, span)) = first_after(m.end(), limit) {
                let (start, end, c) = found(range, 0.9);
                duration.initial = better(
                    duration.initial,
                    Some(Found::at(span, c, view.page, start, end)),
                );
            }
        }
        if let Some((_, end)) = total_at {
            if let Some((range, span)) = first_after(end, text.len()) {
                let (start, end, c) = found(range, 0.9);
                duration.total = better(
                    duration.total,
                    Some(Found::at(span, c, view.page, start, end)),
                );
            }
        }
        if let Some(caps) = renewal {
            let n = ["a", "b", "c", "d"]
                .iter()
                .find_map(|g| caps.name(g))
                .and_then(|m| count(m.as_str()));
            if let (Some(n), Some(whole)) = (n, caps.get(0)) {
                // The period: the first span after the count (`par période de 12 mois`,
                // `of 12 months each`) before any total.
                let limit = total_at.map_or(text.len(), |t| t.0).max(whole.end());
                let period = first_after(whole.end(), limit)
                    .filter(|(r, _)| r.start - whole.end() <= 40)
                    .or_else(|| {
                        // `two further periods of 12 months`: the count comes before.
                        spans
                            .iter()
                            .find(|(r, _)| {
                                r.start >= whole.start()
                                    && r.end <= whole.end() + 40
                                    && r.start < limit
                            })
                            .cloned()
                    });
                let end = period
                    .as_ref()
                    .map_or(whole.end(), |(r, _)| r.end.max(whole.end()));
                let (start, end, c) = found(whole.start()..end, 0.85);
                duration.renewals = better(
                    duration.renewals,
                    Some(Found::at(
                        Renewals {
                            count: n,
                            period: period.map(|(_, s)| s),
                        },
                        c,
                        view.page,
                        start,
                        end,
                    )),
                );
            }
        }
    }
    duration.work_out_total();
    duration
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::super::super::super::document::{Page, PageSource};
    use super::*;

    fn read_text(text: &str) -> Duration {
        let page = Page::new(1, text.to_owned(), PageSource::Text);
        read(&PageView::new(&page, &HashSet::new()))
    }

    #[test]
    fn initial_renewals_and_stated_total() {
        let d = read_text(
            "Le marché est conclu pour une durée initiale de douze (12) mois, reconductible 3 fois \
             par période de 12 mois, soit une durée maximale de 4 ans.",
        );
        assert_eq!(
            d.initial.map(|f| f.value),
            Some(Span {
                value: 12,
                unit: Unit::Months
            })
        );
        assert_eq!(d.renewals.map(|f| f.value.count), Some(3));
        let total = d.total.unwrap_or_else(|| unreachable!("a total is stated"));
        assert_eq!(
            total.value,
            Span {
                value: 4,
                unit: Unit::Years
            }
        );
        assert!(total.confidence >= 0.9);
    }

    #[test]
    fn a_total_worked_out_from_renewals_and_offer_validity_is_no_duration() {
        let d = read_text(
            "The contract will run for an initial period of 2 years, renewable for up to two further periods of 12 months.",
        );
        assert_eq!(
            d.initial.map(|f| f.value),
            Some(Span {
                value: 2,
                unit: Unit::Years
            })
        );
        let total = d.total.unwrap_or_else(|| unreachable!("worked out"));
        assert_eq!(
            total.value,
            Span {
                value: 48,
                unit: Unit::Months
            }
        );
        assert!(total.confidence < 0.9);
        let none =
            read_text("Délai de validité des offres : 120 jours. Délai de paiement : 30 jours.");
        assert_eq!(none, Duration::default());
    }
}
