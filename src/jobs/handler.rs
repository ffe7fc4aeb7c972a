//! The extension point: a job type is a [`JobHandler`] that plans chunks, runs one chunk, and
//! merges chunk results. The built-in types use exactly this trait; `examples/custom_job.rs`
//! adds one.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::model::{ChunkPlan, JobError};

/// What a handler sees of the job.
#[derive(Debug, Clone)]
pub struct JobInput {
    /// The job id.
    pub id: String,
    /// Who submitted it.
    pub owner: String,
    /// The submitted parameters.
    pub params: Value,
    /// A directory for the job's result files (created on demand by the handler).
    pub result_dir: PathBuf,
    /// The child jobs it started ([`JobHandler::children`]), once they all finished: what
    /// `plan` builds on.
    pub children: Vec<ChildOutcome>,
}

impl JobInput {
    /// A job's input without children (for tests of a handler outside the engine).
    pub fn new(
        id: impl Into<String>,
        owner: impl Into<String>,
        params: Value,
        result_dir: impl Into<PathBuf>,
    ) -> JobInput {
        JobInput {
            id: id.into(),
            owner: owner.into(),
            params,
            result_dir: result_dir.into(),
            children: Vec::new(),
        }
    }
}

/// A job that a job needs done before it can plan its own chunks.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildJob {
    /// Its job type.
    pub job_type: String,
    /// Its parameters.
    pub params: Value,
}

/// How a child job ended.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildOutcome {
    /// Its id.
    pub id: String,
    /// Its job type.
    pub job_type: String,
    /// Completed, failed or cancelled.
    pub status: super::model::JobStatus,
    /// Its result, when it completed.
    pub result: Option<Value>,
    /// Why it failed.
    pub error: Option<JobError>,
    /// Its result directory (files it wrote).
    pub result_dir: PathBuf,
}

/// One progress report from inside a chunk.
#[derive(Debug, Clone, Copy)]
pub struct ProgressReport<'a> {
    /// Units of this chunk done so far.
    pub processed: u64,
    /// Units of this chunk in all (0 when not known yet).
    pub total: u64,
    /// What is happening, in words ("reading back-office file").
    pub step: &'a str,
    /// Which input file is being read, as `(current, total)` with `current` from 1; `None`
    /// keeps the position last reported.
    pub file: Option<(u64, u64)>,
}

/// Receives progress from inside a chunk (the engine throttles what it publishes).
pub trait ProgressSink: Send + Sync {
    /// Records one report.
    fn report(&self, report: ProgressReport<'_>);
}

/// What a running chunk can use.
#[derive(Clone)]
pub struct ChunkContext {
    /// The job.
    pub job: JobInput,
    /// The chunk's index (from 0).
    pub index: u64,
    /// How many chunks the job has.
    pub count: u64,
    /// The chunk's plan.
    pub plan: ChunkPlan,
    cancel: CancellationToken,
    interrupt: CancellationToken,
    progress: Arc<dyn ProgressSink>,
}

impl std::fmt::Debug for ChunkContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkContext")
            .field("job", &self.job.id)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl ChunkContext {
    /// A context for one chunk run.
    pub fn new(
        job: JobInput,
        index: u64,
        count: u64,
        plan: ChunkPlan,
        cancel: CancellationToken,
        progress: Arc<dyn ProgressSink>,
    ) -> Self {
        ChunkContext {
            job,
            index,
            count,
            plan,
            cancel,
            interrupt: CancellationToken::new(),
            progress,
        }
    }

    /// The same context, told by `interrupt` when the job is being paused.
    pub fn with_interrupt(mut self, interrupt: CancellationToken) -> Self {
        self.interrupt = interrupt;
        self
    }

    /// True once the job is being paused. Pause takes effect when the chunk ends; a chunk
    /// that keeps its own checkpoints (so that running it again skips what it did) may
    /// instead stop at its next step and return [`JobError::interrupted`].
    pub fn is_interrupted(&self) -> bool {
        self.interrupt.is_cancelled()
    }

    /// Resolves when the job is being paused, for `select!`.
    pub async fn interrupted(&self) {
        self.interrupt.cancelled().await
    }

    /// True once the job was cancelled (or its chunk timed out): stop soon and return.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Resolves when the job is cancelled, for `select!`.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    /// Reports intermediate progress inside the chunk: `processed` of `total` units of this
    /// chunk are done; `step` says what is happening.
    pub fn report(&self, processed: u64, total: u64, step: &str) {
        self.progress.report(ProgressReport {
            processed,
            total,
            step,
            file: None,
        });
    }

    /// Like [`ChunkContext::report`], for job types that read several input files: watchers
    /// also see `currentFile` (from 1) of `totalFiles`.
    pub fn report_in_file(
        &self,
        processed: u64,
        total: u64,
        step: &str,
        current_file: u64,
        total_files: u64,
    ) {
        self.progress.report(ProgressReport {
            processed,
            total,
            step,
            file: Some((current_file, total_files)),
        });
    }
}

/// The future a chunk run returns: the chunk's result (stored as its checkpoint).
pub type ChunkFuture = Pin<Box<dyn Future<Output = Result<Value, JobError>> + Send>>;

/// A job type.
pub trait JobHandler: Send + Sync + 'static {
    /// Checks the parameters at submission; an error rejects the job (`JOB_REJECTED`).
    fn validate(&self, params: &Value) -> Result<(), JobError>;

    /// Jobs to run before this one is planned (an `extract` job's OCR of scanned pages).
    /// Asked when the job first starts: when it names any, they are submitted as the job's
    /// children (same owner and priority; their events also go to this job's topic), the job
    /// waits (`waiting`) without holding a worker, and once every child has finished it
    /// starts again and `plan` finds their outcomes in [`JobInput::children`]. Not asked
    /// again while the job has children. Default: none.
    fn children(&self, _job: &JobInput) -> Result<Vec<ChildJob>, JobError> {
        Ok(Vec::new())
    }

    /// Splits the job into chunks when it first starts. Called once per job: the plan is
    /// stored with the job, so a restarted job keeps its chunks.
    fn plan(&self, job: &JobInput) -> Result<Vec<ChunkPlan>, JobError>;

    /// Runs one chunk. CPU-heavy work belongs in `spawn_blocking`; check
    /// [`ChunkContext::is_cancelled`] between steps.
    fn run_chunk(&self, ctx: ChunkContext) -> ChunkFuture;

    /// Combines the chunk results, in chunk order, into the job's result.
    fn merge(&self, job: &JobInput, chunks: Vec<Value>) -> Result<Value, JobError>;

    /// Combines the chunk results into the job's result, taking them one at a time, in
    /// chunk order: for job types whose chunk results together are too large to hold at
    /// once (read back from the store one by one). By default, gathers them all and calls
    /// [`JobHandler::merge`].
    fn merge_each(&self, job: &JobInput, chunks: ChunkResults) -> Result<Value, JobError> {
        let chunks = chunks.collect::<Result<Vec<Value>, JobError>>()?;
        self.merge(job, chunks)
    }

    /// Longest time one chunk may run before it is cancelled and retried (default 300 s).
    fn chunk_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(300)
    }

    /// How many jobs of this type may run at once (default: no limit of its own).
    fn concurrency(&self) -> Option<usize> {
        None
    }

    /// True when [`JobHandler::plan`] and [`JobHandler::merge`] are quick in-memory steps (no
    /// file reads, no large results) that may run on the worker's own task. By default they
    /// run on the blocking pool, which costs two thread hand-offs per job: most of the time of
    /// a job whose chunks are trivial.
    fn light_plan_and_merge(&self) -> bool {
        false
    }
}

/// A job's chunk results, in chunk order, one per planned chunk (`null` for a chunk whose
/// result is missing), handed over one at a time: from memory when the attempt ran every
/// chunk, otherwise read from the store as they are asked for. A store error is an item
/// (a retryable `store` error): the merge stops there and the job is retried.
pub struct ChunkResults {
    count: u64,
    next: u64,
    source: Source,
    /// An item read ahead of its turn: the chunk after a missing one.
    ahead: Option<(u64, Value)>,
}

/// A chunk's index and its result's JSON bytes, as the store gives them; a store error as text.
type StoredResult = Result<(u64, Vec<u8>), String>;

enum Source {
    Memory(std::vec::IntoIter<Value>),
    Stored(Box<dyn Iterator<Item = StoredResult> + Send>),
}

impl ChunkResults {
    /// Results held in memory, one per chunk, in chunk order.
    pub fn from_vec(results: Vec<Value>) -> ChunkResults {
        ChunkResults {
            count: results.len() as u64,
            next: 0,
            source: Source::Memory(results.into_iter()),
            ahead: None,
        }
    }

    /// `count` chunks' results, read from `stored` (chunk index and JSON bytes, in index
    /// order) as they are asked for.
    pub(crate) fn stored(
        count: u64,
        stored: impl Iterator<Item = StoredResult> + Send + 'static,
    ) -> ChunkResults {
        ChunkResults {
            count,
            next: 0,
            source: Source::Stored(Box::new(stored)),
            ahead: None,
        }
    }

    /// How many chunks the job has (and so how many items this gives). (Not `count`, which
    /// would be `Iterator::count`, reading them all.)
    pub fn planned(&self) -> u64 {
        self.count
    }
}

impl Iterator for ChunkResults {
    type Item = Result<Value, JobError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.count {
            return None;
        }
        let index = self.next;
        self.next += 1;
        let stored = match &mut self.source {
            Source::Memory(values) => return Some(Ok(values.next().unwrap_or(Value::Null))),
            Source::Stored(stored) => stored,
        };
        if self.ahead.is_none() {
            // Skips results beyond this index's turn that are not this index's: none are
            // expected, since keys sort by index, but a stray one must not stop the merge.
            loop {
                match stored.next() {
                    None => break,
                    Some(Err(reason)) => return Some(Err(JobError::retryable("store", reason))),
                    Some(Ok((at, _))) if at < index => continue,
                    Some(Ok((at, bytes))) => {
                        // A result that does not parse counts as missing, as it always has.
                        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                        self.ahead = Some((at, value));
                        break;
                    }
                }
            }
        }
        match self.ahead.take() {
            Some((at, value)) if at == index => Some(Ok(value)),
            later => {
                self.ahead = later;
                Some(Ok(Value::Null))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::try_from(self.count - self.next).unwrap_or(usize::MAX);
        (left, Some(left))
    }
}

impl std::fmt::Debug for ChunkResults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkResults")
            .field("count", &self.count)
            .field("next", &self.next)
            .finish()
    }
}

/// The registered job types.
#[derive(Clone, Default)]
pub struct JobTypes {
    types: HashMap<String, Arc<dyn JobHandler>>,
}

impl std::fmt::Debug for JobTypes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.types.keys()).finish()
    }
}

impl JobTypes {
    /// Registers `handler` as job type `name`.
    pub fn insert(&mut self, name: impl Into<String>, handler: Arc<dyn JobHandler>) {
        self.types.insert(name.into(), handler);
    }

    /// The handler of `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn JobHandler>> {
        self.types.get(name)
    }

    /// The registered names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.types.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stored_chunk_results_come_in_order_with_the_missing_ones_null() {
        let stored = vec![
            Ok((0, b"{\"a\":0}".to_vec())),
            // 1 is missing, 2 does not parse, 4 is beyond the plan.
            Ok((2, b"{not json".to_vec())),
            Ok((3, b"3".to_vec())),
            Ok((4, b"4".to_vec())),
        ];
        let results: Vec<Value> = ChunkResults::stored(4, stored.into_iter())
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            results,
            vec![json!({"a": 0}), Value::Null, Value::Null, json!(3)]
        );
        let failing = vec![Ok((0, b"0".to_vec())), Err("disk gone".to_owned())];
        let mut results = ChunkResults::stored(3, failing.into_iter());
        assert_eq!(results.next().unwrap().unwrap(), json!(0));
        let error = results.next().unwrap().unwrap_err();
        assert_eq!((error.code.as_str(), error.retryable), ("store", true));
        let held = ChunkResults::from_vec(vec![json!(1)]);
        assert_eq!(held.planned(), 1);
        assert_eq!(held.collect::<Result<Vec<_>, _>>().unwrap(), vec![json!(1)]);
    }
}
