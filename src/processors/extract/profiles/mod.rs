//! The built-in extraction profiles. Each reads a chunk's pages of a [`Document`] into its
//! part of the chunk's result, and joins the parts of every chunk into the job's result.

use std::ops::Range;

use serde_json::Value;

use super::document::Document;

mod dce;
mod receipt;
mod requirements;

/// One kind of information to extract (`dce`, `requirements`, `receipt`).
pub(crate) trait Profile: Send + Sync + std::fmt::Debug {
    /// Its name in the `profiles` parameter and in the result.
    fn name(&self) -> &'static str;

    /// What pages `pages` (indices into `document.pages`) of `document` hold. The other
    /// pages are there for context (the section a page starts in, a sentence that runs on
    /// past the chunk's last page); what they hold belongs to other chunks.
    fn extract(&self, document: &Document, pages: Range<usize>) -> Value;

    /// A merge of the chunks' parts into the profile's result, taking them one at a time:
    /// a long document's parts together are too large to hold at once.
    fn merger(&self) -> Box<dyn Merger>;

    /// Joins the chunks' parts, in chunk order, into the profile's result, each value once
    /// (the profiles' tests; the job merges through [`Profile::merger`]).
    #[cfg(test)]
    fn merge(&self, parts: Vec<Value>) -> Value {
        let mut merger = self.merger();
        for part in parts {
            merger.absorb(part);
        }
        merger.finish()
    }
}

/// A profile's merge in progress: what the parts seen so far hold, each value once.
pub(crate) trait Merger: Send {
    /// Takes in the next chunk's part (in chunk order).
    fn absorb(&mut self, part: Value);

    /// The profile's result.
    fn finish(self: Box<Self>) -> Value;
}

/// Every built-in profile.
pub(crate) fn all() -> Vec<Box<dyn Profile>> {
    vec![
        Box::new(dce::Dce),
        Box::new(requirements::Requirements),
        Box::new(receipt::ReceiptProfile),
    ]
}

/// The names of the built-in profiles.
pub(crate) fn names() -> Vec<&'static str> {
    all().iter().map(|p| p.name()).collect()
}
