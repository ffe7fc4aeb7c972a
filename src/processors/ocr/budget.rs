//! What recognising a page takes, reserved from the `ocr-memory-budget` that every `ocr` job
//! of the server shares, before the page is rasterised.
//!
//! An OCR job's memory is mostly not the server's: each page is rasterised by `pdftoppm` and
//! recognised by a `tesseract` process, which holds the page's pixels several times over (the
//! grey image, its binarised copy, the layout analysis) beside its language models. The
//! server's own part, a page's words as it parses tesseract's TSV and a chunk's pages until its
//! part file is written, is small beside that. So a page reserves by its pixels, from the
//! moment it is to be rasterised until its words are parsed, and the budget bounds the
//! resident memory of the server and its OCR processes together: with the default pool (a page
//! per core) and a budget smaller than the pages it would run at once, pages wait for room
//! instead (`waiting for memory`). A page read from its text layer reserves nothing: it is
//! never rasterised.

use crate::jobs::{ChunkContext, JobError};
use crate::processors::memory::{MemoryBudget, Reservation};

/// A page's area in square inches when its size is not known: A4 (8.27 x 11.69 inches),
/// a little larger than US Letter. PDF pages are rasterised at the job's `dpi`; a larger
/// page than this takes more than it reserved, in proportion.
const PAGE_SQUARE_INCHES: f64 = 96.7;

/// What a page takes whatever its size: tesseract's program and its language models
/// (`fra+eng`), pdftoppm's, and the server's buffers for the page's output (see
/// [`PER_PIXEL`] for what was measured).
const PAGE_BASE: u64 = 48 << 20;

/// What a page takes per pixel of its grey image: tesseract holds it several times over
/// while it analyses the layout and recognises the lines. Measured (BENCHMARKS.md, "OCR",
/// release build, the `ocr` bench's dense pages, 8.7 million pixels at 300 dpi): about 85 MiB
/// a page for the server and the page's programs together; the 106 MiB reserved leave room
/// for denser pages and a third language.
const PER_PIXEL: u64 = 7;

/// The memory every `ocr` job reserves from.
#[derive(Debug, Clone)]
pub(super) struct Budget {
    memory: MemoryBudget,
}

impl Budget {
    /// A budget of `bytes` (at least 1 MiB: below that every page would run alone, over it).
    pub(super) fn new(bytes: u64) -> Budget {
        Budget {
            memory: MemoryBudget::new(bytes.max(1 << 20)),
        }
    }

    /// What recognising one page of a known size takes at `dpi`.
    pub(super) fn page_cost(dpi: u32) -> u64 {
        let dpi = f64::from(dpi);
        let pixels = (PAGE_SQUARE_INCHES * dpi * dpi) as u64;
        PAGE_BASE + pixels.saturating_mul(PER_PIXEL)
    }

    /// The memory for recognising one page at `dpi`, for a chunk of `ctx`'s job that has read
    /// `processed` of its pages: at once if there is room, else after a wait that the job's
    /// progress shows. A page larger than the whole budget takes the whole budget and runs
    /// alone. An error when the job is cancelled meanwhile.
    pub(super) async fn for_page(
        &self,
        ctx: &ChunkContext,
        dpi: u32,
        processed: u64,
    ) -> Result<Reservation, JobError> {
        self.memory
            .for_chunk_async(ctx, Self::page_cost(dpi), processed)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_reserves_by_its_pixels() {
        let at_150 = Budget::page_cost(150);
        let at_300 = Budget::page_cost(300);
        assert!(at_150 > PAGE_BASE && at_300 > at_150);
        // Four times the pixels: four times the part that grows with them.
        assert_eq!(
            (at_300 - PAGE_BASE) / 4 / PER_PIXEL,
            (at_150 - PAGE_BASE) / PER_PIXEL
        );
        // A dense A4 page at 300 dpi: about 106 MiB.
        assert!((100 << 20..112 << 20).contains(&at_300), "{at_300}");
    }
}
