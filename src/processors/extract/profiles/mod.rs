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

    /// Joins the chunks' parts, in chunk order, into the profile's result, each value once.
    fn merge(&self, parts: Vec<Value>) -> Value;
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
