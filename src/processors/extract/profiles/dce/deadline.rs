//! The deadline for offers, told from the other deadlines of a consultation (questions,
//! samples, visits, applications, the offers' validity, their opening) by what the sentence
//! speaks of before the date: the first topic named between the sentence's start (or the
//! previous date in it) and the date decides.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::super::super::found::{better, Found};
use super::super::super::normalise::{find_dates, find_times, DateOrder, Time};
use super::text::PageView;

/// When offers are due.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Deadline {
    /// `YYYY-MM-DD`.
    pub date: String,
    /// Local time, `HH:MM`, when given.
    pub time: Option<String>,
}

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| unreachable!("deadline pattern {pattern}: {e}"))
}

/// What a deadline can be for; at one position the first alternative wins, so that
/// "candidatures et offres" is about offers.
static TOPIC: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?xi)
        (?P<offers>\bcandidatures\s+et\s+(?:des\s+|les\s+)?offres\b|\boffres?\b|\bplis\b|\bsoumissions?\b|\btenders?\b|\bbids?\b|\boffers?\b|\bproposals?\b|\bresponses?\b)
        | (?P<other>\bquestions?\b|\brenseignements\b|\bdemandes?\s+de\s+(?:renseignements|précisions)|\bclarifications?\b|\benquiries\b|\bqueries\b
          |\bvisites?\b|\bvisits?\b|\béchantillons?\b|\bsamples?\b|\bmaquettes?\b
          |\bcandidatures?\b|\bapplications?\b|\brequests?\s+to\s+participate\b|\bexpressions?\s+of\s+interest\b|\bselection\s+questionnaire\b
          |\bvalidité\b|\bvalidity\b|\bouverture\b|\bopening\b)",
    )
});
/// Words that make a date a limit.
static LIMIT: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)limite|avant|au\s+plus\s+tard|remis|dépos|dépôt|récept|parven|transmi|deadline|closing|no\s+later|before|by\b|submi|return|due\b|receiv|receipt",
    )
});
/// A label that names the deadline outright.
static LABEL: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)(?:date|heure)s?\s+(?:et\s+heure\s+)?limites?|deadline|closing\s+date|time\s+limit|au\s+plus\s+tard",
    )
});
/// `12 heures`, `12 heures 30`: times in words that [`find_times`] leaves.
static HOURS: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(?i)\b(?P<h>\d{1,2})\s?heures?(?:\s?(?P<m>\d{2})\b)?"));

/// The offers deadline on `view`'s page, the surest reading.
pub(super) fn offers(view: &PageView<'_>) -> Option<Found<Deadline>> {
    let mut best = None;
    for sentence in view.sentences() {
        let text = view.slice(sentence.clone());
        let dates = find_dates(text, DateOrder::DayFirst);
        let times = times(text);
        let mut from = 0;
        for (range, date) in &dates {
            let next_date = dates
                .iter()
                .map(|(r, _)| r.start)
                .find(|s| *s > range.start)
                .unwrap_or(text.len());
            // The time that goes with this date: right after it, or right before it.
            let after = times.iter().find(|(r, _)| {
                r.start >= range.end && r.start < next_date && r.start - range.end <= 40
            });
            let context_start = from.min(range.start);
            let context = &text[context_start..range.start];
            from = after.map_or(range.end, |(r, _)| r.end);
            let Some(topic) = TOPIC.captures(context) else {
                continue;
            };
            if topic.name("offers").is_none() || !LIMIT.is_match(context) {
                continue;
            }
            let before = times.iter().rev().find(|(r, _)| {
                r.end <= range.start && r.start >= context_start && range.start - r.end <= 40
            });
            let (span, time) = match (after, before) {
                (Some((r, t)), _) => (range.start..r.end, Some(*t)),
                (None, Some((r, t))) => (r.start..range.end, Some(*t)),
                (None, None) => (range.clone(), None),
            };
            let confidence = if LABEL.is_match(context) { 0.95 } else { 0.8 };
            best = better(
                best,
                Some(Found::at(
                    Deadline {
                        date: date.iso(),
                        time: time.map(Time::hhmm),
                    },
                    confidence * view.page.reliability(),
                    view.page,
                    sentence.start + span.start,
                    sentence.start + span.end,
                )),
            );
        }
    }
    best
}

/// Times in `text`, figures and words, in order.
fn times(text: &str) -> Vec<(std::ops::Range<usize>, Time)> {
    let mut all = find_times(text);
    for caps in HOURS.captures_iter(text) {
        let (Some(whole), Some(h)) = (caps.get(0), caps.name("h")) else {
            continue;
        };
        let hour: u8 = h.as_str().parse().unwrap_or(99);
        let minute: u8 = caps
            .name("m")
            .and_then(|m| m.as_str().parse().ok())
            .unwrap_or(0);
        if hour < 24 && minute < 60 && !all.iter().any(|(r, _)| r.start == whole.start()) {
            all.push((whole.start()..whole.end(), Time { hour, minute }));
        }
    }
    all.sort_by_key(|(r, _)| r.start);
    all
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::super::super::super::document::{Page, PageSource};
    use super::*;

    fn deadline(text: &str) -> Option<(String, Option<String>, f64)> {
        let page = Page::new(1, text.to_owned(), PageSource::Text);
        offers(&PageView::new(&page, &HashSet::new()))
            .map(|f| (f.value.date, f.value.time, f.confidence))
    }

    #[test]
    fn the_offers_deadline_not_the_questions_one() {
        let text = "Date limite de réception des questions : 1er mars 2025 à 17h00\n\
                    Date limite de réception des offres : 15 mars 2025 à 12h00\n\
                    Ouverture des plis : 16 mars 2025";
        let (date, time, confidence) = deadline(text).unwrap_or_default();
        assert_eq!(
            (date.as_str(), time.as_deref()),
            ("2025-03-15", Some("12:00"))
        );
        assert!(confidence > 0.9);
        // Questions asked before the offers' deadline: the date is the questions'.
        assert_eq!(
            deadline("Les questions doivent parvenir au plus tard 10 jours avant la date limite de réception des offres, soit le 5 mars 2025."),
            None
        );
        assert_eq!(
            deadline("Site visits must be booked before 3 March 2025."),
            None
        );
        assert_eq!(
            deadline("Délai de validité des offres : 120 jours à compter du 15/03/2025."),
            None
        );
    }

    #[test]
    fn a_row_with_two_deadlines_and_times_in_words() {
        let text =
            "Questions avant le 01/03/2025     Remise des offres avant le 14/03/2025 à 16 heures";
        let (date, time, _) = deadline(text).unwrap_or_default();
        assert_eq!(
            (date.as_str(), time.as_deref()),
            ("2025-03-14", Some("16:00"))
        );
        let (date, time, confidence) =
            deadline("Tenders must be received no later than 12:00 noon on 14 April 2025.")
                .unwrap_or_default();
        assert_eq!(
            (date.as_str(), time.as_deref()),
            ("2025-04-14", Some("12:00"))
        );
        assert!(confidence < 0.9);
        assert_eq!(
            deadline("Les candidatures et offres devront être remises avant le 2 juin 2025.")
                .map(|d| d.0),
            Some("2025-06-02".to_owned())
        );
    }
}
