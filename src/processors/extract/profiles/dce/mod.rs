//! The `dce` profile: what a French public procurement file (règlement de consultation, CCAP,
//! CCTP, acte d'engagement) or an English invitation to tender says about the contract to
//! win: buyer, object, reference, procedure, the offers deadline, duration, lots, award
//! criteria, CPV codes, site visit, variants and guarantees.
//!
//! Rules read labels (`Date limite de réception des offres :`), closed lists (procedure
//! types, guarantee types) and sentences; each value carries the rule's certainty, lower for
//! a value guessed from loose context. A field the document does not speak of is `null`
//! (never a guessed `false`). Each chunk gives what its pages hold; the merge keeps each
//! scalar's better reading and each lot, criterion, CPV code and guarantee once.

mod clauses;
mod criteria;
mod deadline;
mod duration;
mod identity;
mod lots;
mod text;

use std::ops::Range;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use std::borrow::Cow;

use super::super::document::{Document, Page};
use super::super::found::{better, Found};
use super::{Merger, Profile};
use text::PageView;

pub(crate) use clauses::Guarantee;
pub(crate) use criteria::Criterion;
pub(crate) use deadline::Deadline;
pub(crate) use duration::Duration;
pub(crate) use identity::Procedure;
pub(crate) use lots::Lot;

/// The `dce` profile.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Dce;

/// What the profile found in some pages (a chunk's part) or in the whole document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub(crate) struct DceResult {
    /// The contracting authority.
    pub buyer: Option<Found<String>>,
    /// What the contract is for.
    pub object: Option<Found<String>>,
    /// The consultation's or contract's reference.
    pub reference: Option<Found<String>>,
    /// The award procedure, from a closed list.
    pub procedure: Option<Found<Procedure>>,
    /// When offers are due (not questions, samples or visits).
    pub offers_deadline: Option<Found<Deadline>>,
    /// The contract's duration.
    pub duration: Duration,
    /// The lots, each once, by number.
    pub lots: Vec<Lot>,
    /// Award criteria, in the document's order.
    pub award_criteria: Vec<Criterion>,
    /// CPV codes (`90911200-8`), each once.
    pub cpv: Vec<Found<String>>,
    /// Whether a site visit is mandatory for the whole consultation; `null` when not said.
    pub site_visit: Option<Found<bool>>,
    /// Whether variants are allowed for the whole consultation; `null` when not said.
    pub variants: Option<Found<bool>>,
    /// Guarantees asked or given, one per type.
    pub guarantees: Vec<Found<Guarantee>>,
}

impl DceResult {
    /// Takes in `other`'s readings: the better of two for each scalar, each list item once.
    pub(crate) fn absorb(&mut self, other: DceResult) {
        self.buyer = better(self.buyer.take(), other.buyer);
        self.object = better(self.object.take(), other.object);
        self.reference = better(self.reference.take(), other.reference);
        self.procedure = better(self.procedure.take(), other.procedure);
        self.offers_deadline = better(self.offers_deadline.take(), other.offers_deadline);
        self.duration.absorb(other.duration);
        lots::absorb(&mut self.lots, other.lots);
        criteria::absorb(&mut self.award_criteria, other.award_criteria);
        for code in other.cpv {
            match self.cpv.iter_mut().find(|c| c.value == code.value) {
                Some(kept) if code.confidence > kept.confidence => *kept = code,
                Some(_) => {}
                None => self.cpv.push(code),
            }
        }
        self.site_visit = better(self.site_visit.take(), other.site_visit);
        self.variants = better(self.variants.take(), other.variants);
        clauses::absorb(&mut self.guarantees, other.guarantees);
    }

    /// Keeps only what was read on pages `pages` (numbers from 1, inclusive).
    fn within(&mut self, pages: &Range<u32>) {
        self.award_criteria
            .retain(|c| pages.contains(&c.name.source.page));
    }
}

impl Profile for Dce {
    fn name(&self) -> &'static str {
        "dce"
    }

    fn extract(&self, document: &Document, pages: Range<usize>) -> Value {
        let result = read(document, pages);
        serde_json::to_value(result).unwrap_or(Value::Null)
    }

    fn merger(&self) -> Box<dyn Merger> {
        Box::new(DceResult::default())
    }
}

impl Merger for DceResult {
    fn absorb(&mut self, part: Value) {
        if let Ok(part) = serde_json::from_value::<DceResult>(part) {
            DceResult::absorb(self, part);
        }
    }

    fn finish(mut self: Box<Self>) -> Value {
        lots::sort(&mut self.lots);
        serde_json::to_value(*self).unwrap_or(Value::Null)
    }
}

/// A page as the rules read it: an OCR page with the blank lines OCR added inside sentences
/// and lists dropped; other pages as they are.
fn as_read(page: &Page) -> Cow<'_, Page> {
    text::rejoined(page).map_or(Cow::Borrowed(page), Cow::Owned)
}

/// What pages `pages` (indices) of `document` hold.
pub(crate) fn read(document: &Document, pages: Range<usize>) -> DceResult {
    let boilerplate = document
        .derived
        .get_or_make("dce.boilerplate", || text::boilerplate(document));
    let mut result = DceResult::default();
    let Some(chosen) = document.pages.get(pages.clone()) else {
        return result;
    };
    let chosen: Vec<Cow<'_, Page>> = chosen.iter().map(as_read).collect();
    for page in &chosen {
        let view = PageView::new(page, &boilerplate);
        let mut part = DceResult {
            buyer: identity::buyer(&view),
            object: identity::object(&view),
            reference: identity::reference(&view),
            procedure: identity::procedure(&view),
            offers_deadline: deadline::offers(&view),
            duration: duration::read(&view),
            lots: lots::read(&view),
            cpv: identity::cpv(&view),
            guarantees: clauses::guarantees(&view),
            ..DceResult::default()
        };
        let (visit, visit_by_lot) = clauses::site_visit(&view);
        let (variants, variants_by_lot) = clauses::variants(&view);
        part.site_visit = visit;
        part.variants = variants;
        lots::attach(&mut part.lots, visit_by_lot, |lot| &mut lot.site_visit);
        lots::attach(&mut part.lots, variants_by_lot, |lot| &mut lot.variants);
        result.absorb(part);
    }
    // Criteria lists run on across pages: they are read from the whole document, once, and
    // each chunk keeps those whose name stands on its pages.
    let criteria = document.derived.get_or_make("dce.criteria", || {
        let pages_read: Vec<Cow<'_, Page>> = document.pages.iter().map(as_read).collect();
        let views: Vec<PageView<'_>> = pages_read
            .iter()
            .map(|p| PageView::new(p, &boilerplate))
            .collect();
        criteria::read(&views)
    });
    result.award_criteria = criteria.as_ref().clone();
    let first = chosen.first().map_or(0, |p| p.page);
    let last = chosen.last().map_or(0, |p| p.page);
    result.within(&(first..last + 1));
    lots::sort(&mut result.lots);
    result
}
