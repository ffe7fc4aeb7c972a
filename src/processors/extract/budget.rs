//! What an extraction holds in memory, reserved from the `extract-memory-budget` that every
//! `extract` job of the server shares, before it is built.
//!
//! An extraction's memory grows with its document, not with its page count as such: every
//! chunk reads the whole document for context, and the result carries every page's text
//! (the contract: spans index the pages as the result gives them). So a job reserves by the
//! size of its stored document (`document.json`), with costs measured on the bench's long
//! PDFs (BENCHMARKS.md, "Extraction"): reading the input at its start, and then, in one
//! reservation held from its first chunk to the end of its merge, the document in memory, a
//! chunk's part, and the merge's result with the copies the engine makes of it (the job's
//! record, the `JOB_COMPLETED` event). One reservation, taken whole, so that two jobs never
//! each hold a part while waiting for the rest. A reservation larger than the budget is
//! clamped to it: such a job runs alone.

use super::io;
use crate::jobs::{ChunkContext, JobError};
use crate::processors::memory::{MemoryBudget, Reservation, WAITING};

/// What reading the input into a document takes, per byte of the input file, before the
/// document's size is known (pdftotext's text, the pages, their JSON): at most 7 measured, on
/// a 3,000-page PDF (31 MiB above idle for a 4.3 MB file).
const INPUT_PER_BYTE: u64 = 8;
/// What reading the stored document again and storing it takes (planning, once OCR's pages
/// join it), per byte of it: its bytes, its pages, their JSON again.
const READ_PER_BYTE: u64 = 8;
/// What planning takes whatever the document: buffers, the thread it runs on.
const READ_BASE: u64 = 24 << 20;
/// What a job holds from its first chunk to the end of its merge, per byte of its stored
/// document: the document itself, a chunk's part, and at the merge the result as JSON values
/// (every page's text, every occurrence of every requirement: 4.3 MB of JSON for a 2.5 MB
/// document) with the engine's record of it, the event written from it and their serialised
/// forms. Measured (release build, `benches/extract`, one job, the server's peak above
/// idle): 101 MiB for a 0.8 MB document (1,000 pages), 204 MiB for 2.5 MB (3,000), 312 MiB
/// for 4.1 MB (5,000): 64 bytes a byte beyond a fixed part; 96 leaves room for documents
/// denser in values. A finished job's result leaves memory once stored (the engine reads it
/// back when asked), so what one job leaves for the next is the allocator's freed pages:
/// two 1,000-page jobs with a 128 MiB budget, one after the other, peaked 112-117 MiB above
/// idle (BENCHMARKS.md, "Held back to back").
const JOB_PER_BYTE: u64 = 96;
/// What a job holds whatever its size: the threads its chunks run on and their allocator
/// heaps, the profiles' working values, the store's buffers (39 MiB above idle measured for
/// a 100-page job).
const JOB_BASE: u64 = 48 << 20;

/// The memory an `extract` job reserves from.
#[derive(Debug, Clone)]
pub(super) struct Budget {
    memory: MemoryBudget,
}

impl Budget {
    pub(super) fn new(bytes: u64) -> Budget {
        Budget {
            // Smaller than any job: every job would run alone, over it (as with 1 MiB).
            memory: MemoryBudget::new(bytes.max(1 << 20)),
        }
    }

    /// For reading an input of `input` bytes into a document (planning).
    pub(super) fn for_input(
        &self,
        input: u64,
        release_idle: &dyn Fn(),
    ) -> Result<Reservation, JobError> {
        self.wait(
            READ_BASE + input.saturating_mul(INPUT_PER_BYTE),
            release_idle,
        )
    }

    /// For reading and storing again a document stored as `stored` bytes (planning).
    pub(super) fn for_document(
        &self,
        stored: u64,
        release_idle: &dyn Fn(),
    ) -> Result<Reservation, JobError> {
        self.wait(
            READ_BASE + stored.saturating_mul(READ_PER_BYTE),
            release_idle,
        )
    }

    /// What the job holds from its first chunk to the end of its merge, for a document stored
    /// as `stored` bytes.
    pub(super) fn job_cost(stored: u64) -> u64 {
        JOB_BASE + stored.saturating_mul(JOB_PER_BYTE)
    }

    /// `bytes` for a running chunk of `ctx`'s job, waiting for room while its progress says
    /// so; meanwhile documents kept for idle jobs are let go (by `release_idle`).
    pub(super) fn for_chunk(
        &self,
        ctx: &ChunkContext,
        bytes: u64,
        release_idle: &dyn Fn(),
    ) -> Result<Reservation, JobError> {
        self.memory.for_chunk(ctx, bytes, &mut || {
            ctx.report(0, ctx.plan.units, WAITING);
            release_idle();
        })
    }

    /// `bytes`, waiting for room as long as it takes (meanwhile documents kept for idle jobs
    /// are let go): for the steps the engine cannot cancel (planning, the merge), which hold
    /// nothing else while they wait.
    pub(super) fn wait(
        &self,
        bytes: u64,
        release_idle: &dyn Fn(),
    ) -> Result<Reservation, JobError> {
        // Never told to give up, so never `None`.
        self.memory
            .reserve(bytes, &|| false, &mut || release_idle())
            .ok_or_else(|| JobError::retryable("internal_error", "a memory reservation gave up"))
    }
}

/// The size of the file at `path`, for a reservation made before it is read.
pub(super) fn file_size(path: &std::path::Path) -> Result<u64, JobError> {
    Ok(std::fs::metadata(path).map_err(|e| io(path, e))?.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_reserves_by_its_document_and_no_more_than_the_budget() {
        let small = Budget::job_cost(10 << 10);
        let large = Budget::job_cost(10 << 20);
        assert!(small < large, "grows with the document");
        assert!(small >= JOB_BASE);
        let budget = Budget::new(64 << 20);
        let whole = budget
            .wait(large, &|| {})
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(whole.bytes(), 64 << 20, "clamped to the whole budget");
    }
}
