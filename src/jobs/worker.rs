//! Running one job: plan once, run the chunks not yet done, commit each with its event, then
//! merge. Pause takes effect at a chunk boundary, or earlier for a chunk that stops when told
//! (`ChunkContext::is_interrupted`) and runs again on resume; cancel interrupts the running
//! chunk cooperatively, and by dropping it after the grace.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::events::{self, kind, Event};
use super::handler::{ChunkContext, ChunkResults, JobHandler, ProgressReport, ProgressSink};
use super::model::{JobError, JobStatus, Progress};
use super::JobEngine;
use crate::clock::now_ms;
use crate::store::jobs::JobWrite;
use crate::store::Health;

/// What to do next.
enum Next {
    Chunk {
        index: u64,
        ctx: Box<ChunkContext>,
        handler: Arc<dyn JobHandler>,
        cancel: CancellationToken,
    },
    Merge,
    Stop,
}

/// Runs job `id` under fence `attempt` until it completes, fails, pauses or is cancelled.
pub(super) async fn run(engine: JobEngine, id: String, attempt: u64) {
    let job_type = match engine.job(&id) {
        Some(job) => job.job_type,
        None => return,
    };
    let started = Instant::now();
    // The results of the chunks this attempt ran, by index, for job types with small results:
    // the merge takes them from here rather than waiting for their commit and reading them back
    // from the store.
    let mut ran: Vec<(u64, Value)> = Vec::new();
    match begin(&engine, &id, attempt).await {
        Err(error) => engine.fail_or_retry(&id, attempt, error, started).await,
        // Waiting for its children, or fenced off: nothing more to do here.
        Ok(false) => {}
        Ok(true) => loop {
            match next_step(&engine, &id, attempt) {
                Next::Stop => break,
                Next::Merge => {
                    merge(&engine, &id, attempt, started, std::mem::take(&mut ran)).await;
                    break;
                }
                Next::Chunk {
                    index,
                    ctx,
                    handler,
                    cancel,
                } => {
                    let chunk_started = Instant::now();
                    let outcome = tokio::select! {
                        outcome = run_chunk(&engine, handler.as_ref(), *ctx, &cancel) => outcome,
                        // Shutdown: the job stays `processing` in the store and resumes from its
                        // last committed chunk when the server starts again.
                        _ = engine.inner.shutdown.cancelled() => break,
                    };
                    let verdict = match &outcome {
                        Ok(_) => "ok",
                        Err(error) if error.code == "timeout" => "timeout",
                        Err(_) if cancel.is_cancelled() => "cancelled",
                        Err(_) => "error",
                    };
                    engine
                        .inner
                        .chunk_times
                        .record(&job_type, verdict, chunk_started.elapsed());
                    if cancel.is_cancelled() {
                        // Cancelled (or failed by deadline) while running: the controller has
                        // already recorded the outcome.
                        break;
                    }
                    match outcome {
                        Ok(result) => {
                            // Kept only for types whose results are small (see
                            // `light_plan_and_merge`); the others' are read back at the merge.
                            let kept = handler.light_plan_and_merge().then(|| result.clone());
                            if !commit_chunk(&engine, &id, attempt, index, result, started).await {
                                break;
                            }
                            ran.extend(kept.map(|result| (index, result)));
                        }
                        // Stopped early for a pause: the next step pauses the job, and the
                        // chunk runs again when it resumes.
                        Err(error) if error.is_interrupted() && engine.pausing(&id, attempt) => {}
                        Err(error) => {
                            engine.fail_or_retry(&id, attempt, error, started).await;
                            break;
                        }
                    }
                }
            }
        },
    }
    engine.release(&id, &job_type, attempt);
}

/// Marks the job processing, plans it on its first start, publishes `JOB_STARTED`; true when
/// its chunks are to run now. On its first start a job may first start child jobs instead
/// (`children.rs`): it then waits for them, and false is returned.
async fn begin(engine: &JobEngine, id: &str, attempt: u64) -> Result<bool, JobError> {
    let Some(job) = engine.job(id) else {
        return Ok(false);
    };
    let handler = engine
        .inner
        .types
        .get(&job.job_type)
        .cloned()
        .ok_or_else(|| {
            JobError::permanent("unknown_type", "the job's type is no longer registered")
        })?;
    // Planned outside the lock: a plan may read the job's input files.
    let plan = if job.chunks.is_empty() {
        let mut input = engine.input(&job);
        let light = handler.light_plan_and_merge();
        if job.children.is_empty() {
            let wanted = if light {
                handler.children(&input)?
            } else {
                let asked = handler.clone();
                let probe = input.clone();
                off_thread(move || asked.children(&probe)).await?
            };
            if !wanted.is_empty() {
                let prepared = engine.prepare_children(wanted)?;
                engine.adopt(id, attempt, prepared);
                return Ok(false);
            }
        } else {
            match engine.child_outcomes(id) {
                Some(outcomes) => input.children = outcomes,
                // Started before its last child finished (it cannot normally be): it waits on.
                None => {
                    engine.adopt(id, attempt, Vec::new());
                    return Ok(false);
                }
            }
        }
        if light {
            Some(handler.plan(&input)?)
        } else {
            Some(off_thread(move || handler.plan(&input)).await?)
        }
    } else {
        None
    };
    let mut guard = engine.lock();
    let state = &mut *guard;
    if state.running.get(id).is_none_or(|r| r.attempt != attempt) {
        return Ok(false);
    }
    let Some(job) = state.jobs.get_mut(id) else {
        return Ok(false);
    };
    let mut planned = None;
    if let Some(plan) = plan {
        if plan.is_empty() {
            return Err(JobError::permanent(
                "empty_plan",
                "the job has nothing to do",
            ));
        }
        planned = Some(JobWrite::Plan {
            id: id.to_owned(),
            plan: serde_json::to_vec(&plan).map_err(|e| {
                JobError::permanent(
                    "internal_error",
                    format!("the plan could not be stored: {e}"),
                )
            })?,
        });
        job.progress.chunk_count = plan.len() as u64;
        job.progress.total = plan.iter().map(|c| c.units).sum();
        job.chunks = Arc::new(plan);
    }
    if job.attempts == 0 || job.error.is_some() {
        job.attempts += 1;
        job.error = None;
    }
    job.status = JobStatus::Processing;
    job.started_at.get_or_insert(now_ms());
    // Named before JOB_STARTED is built, so the event that reports the start names the node.
    if let Some(node) = &engine.inner.config.node {
        if job.node.as_ref() != Some(node) {
            job.node = Some(node.clone());
        }
    }
    let event = events::next(
        job,
        kind::STARTED,
        json!({ "attempt": job.attempts, "maxAttempts": job.max_attempts, "chunkCount": job.chunks.len() }),
    );
    let mut commit = super::change(Some(job), vec![event]);
    commit.writes.extend(planned);
    engine.inner.writer.queue(commit);
    Ok(true)
}

fn next_step(engine: &JobEngine, id: &str, attempt: u64) -> Next {
    let mut guard = engine.lock();
    let state = &mut *guard;
    let Some(running) = state.running.get(id).filter(|r| r.attempt == attempt) else {
        return Next::Stop;
    };
    let cancel = running.cancel.clone();
    let pause = running.pause;
    let interrupt = running.interrupt.clone();
    let Some(job) = state.jobs.get_mut(id) else {
        return Next::Stop;
    };
    if cancel.is_cancelled() || job.status != JobStatus::Processing {
        return Next::Stop;
    }
    if pause {
        job.status = JobStatus::Paused;
        let event = events::next(job, kind::PAUSED, json!({ "progress": job.progress }));
        engine.save(job, vec![event]);
        state.running.remove(id);
        return Next::Stop;
    }
    let index = job.chunks_done;
    if index >= job.chunks.len() as u64 {
        return Next::Merge;
    }
    let Some(handler) = engine.inner.types.get(&job.job_type).cloned() else {
        return Next::Stop;
    };
    let plan = job.chunks[index as usize].clone();
    let sink = Arc::new(ChunkProgress {
        engine: engine.clone(),
        id: id.to_owned(),
        attempt,
        base: job.progress.processed,
    });
    let ctx = ChunkContext::new(
        engine.input(job),
        index,
        job.chunks.len() as u64,
        plan,
        cancel.clone(),
        sink,
    )
    .with_interrupt(interrupt);
    Next::Chunk {
        index,
        ctx: Box::new(ctx),
        handler,
        cancel,
    }
}

async fn run_chunk(
    engine: &JobEngine,
    handler: &dyn JobHandler,
    ctx: ChunkContext,
    cancel: &CancellationToken,
) -> Result<Value, JobError> {
    let timeout = handler.chunk_timeout();
    let grace = engine.inner.config.cancel_grace;
    let chunk = handler.run_chunk(ctx);
    tokio::select! {
        result = tokio::time::timeout(timeout, chunk) => match result {
            Ok(result) => result,
            Err(_) => Err(JobError::retryable("timeout", format!("chunk did not finish within {} s", timeout.as_secs()))),
        },
        // Cooperative first; after the grace the chunk's future is dropped.
        _ = async { cancel.cancelled().await; tokio::time::sleep(grace).await } => {
            Err(JobError::permanent("cancelled", "the job was cancelled"))
        }
    }
}

/// Holds a finished chunk while the store cannot write (a full or read-only disk), until it
/// can again: the job's state then never runs ahead of the disk by more than the chunks
/// running when the fault came, and a job is never complete in memory only. Polled, with a
/// pause that grows to a second; shutdown ends the wait.
async fn until_store_writable(engine: &JobEngine) {
    let mut pause = Duration::from_millis(50);
    while engine.inner.store.store().health() != Health::Available
        && !engine.inner.shutdown.is_cancelled()
    {
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// Queues a finished chunk's commit; false when the worker must stop (its attempt was
/// fenced off: the job was cancelled, failed or retried meanwhile).
async fn commit_chunk(
    engine: &JobEngine,
    id: &str,
    attempt: u64,
    index: u64,
    result: Value,
    started: Instant,
) -> bool {
    until_store_writable(engine).await;
    // The only wait of a chunk commit: for room in the writer's queue, not for the disk.
    let permit = engine.inner.writer.room().await;
    let Some(progress) = queue_chunk(engine, id, attempt, index, result, permit, started) else {
        return false;
    };
    // The chunk's PROGRESS_UPDATE goes out now, ahead of the chunk's commit, if every earlier
    // event of the job is out (otherwise in order, after the commit: events never overtake
    // one another). Progress is what a watcher shows while the job runs and need not wait for
    // the disk, whose flush and fsync were nearly all of the time from a chunk's end to a
    // watcher (BENCHMARKS.md, "Progress ahead of the fsync"). CHUNK_COMPLETED, which carries
    // the result and says the chunk is done for good, still waits for the commit. Should the
    // process die before the commit, the update is lost with its chunk, which runs again; the
    // restart logs a PROGRESS_UPDATE of the checkpoint under the lost update's seq
    // (`recovery.rs`), so the log keeps no gap. At most one event per job is ever out ahead
    // of the disk: the next may go ahead only once everything before it is announced, so
    // committed.
    if let Some(event) = progress {
        for wait in engine
            .inner
            .writer
            .publish_ahead(&engine.inner.broker, &event)
        {
            wait.wait().await;
        }
    }
    true
}

/// Queues a finished chunk's commit under the state lock; `None` when the attempt was fenced
/// off, else the chunk's PROGRESS_UPDATE if one is due (queued with the commit, before its
/// CHUNK_COMPLETED).
fn queue_chunk(
    engine: &JobEngine,
    id: &str,
    attempt: u64,
    index: u64,
    result: Value,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    started: Instant,
) -> Option<Option<Event>> {
    // Encoded before the state lock is taken.
    let result_bytes = result.to_string().into_bytes();
    let interval = engine.inner.config.progress_interval;
    let mut guard = engine.lock();
    let state = &mut *guard;
    let running = state.running.get_mut(id).filter(|r| r.attempt == attempt)?;
    let job = state.jobs.get_mut(id)?;
    // Progress is throttled like in-chunk updates (fast chunks would otherwise double the
    // events); the last chunk's always goes out.
    let last = index + 1 >= job.chunks.len() as u64;
    let progress_due = last || running.last_report.is_none_or(|t| t.elapsed() >= interval);
    if progress_due {
        running.last_report = Some(Instant::now());
    }
    let plan = job.chunks.get(index as usize);
    let units = plan.map_or(0, |c| c.units);
    let label = plan.map(|c| c.label.clone());
    job.chunks_done = index + 1;
    job.progress = progress_of(&job.progress, units, job, started);
    let fields = json!({
        "chunkIndex": index,
        "chunkCount": job.chunks.len(),
        "label": label,
        "result": result,
    });
    // The progress first: it may be published ahead of the commit, and never after the
    // chunk's CHUNK_COMPLETED, which waits for it.
    let progress = progress_due.then(|| progress_event(job, index));
    let mut published = Vec::with_capacity(2);
    published.extend(progress.clone());
    published.push(events::next(job, kind::CHUNK_COMPLETED, fields));
    let mut commit = super::change(None, published);
    commit.writes.insert(
        0,
        JobWrite::Chunk {
            id: id.to_owned(),
            index,
            result: result_bytes,
        },
    );
    commit.permit = permit;
    engine.inner.writer.queue(commit);
    Some(progress)
}

fn progress_of(
    previous: &Progress,
    units: u64,
    job: &super::model::Job,
    started: Instant,
) -> Progress {
    let processed =
        (previous.processed + units).min(previous.total.max(previous.processed + units));
    let total = previous.total.max(processed);
    let elapsed = job.run_ms + started.elapsed().as_millis() as u64;
    let remaining = total.saturating_sub(processed);
    Progress {
        processed,
        total,
        percentage: if total == 0 {
            0.0
        } else {
            (processed as f64 * 100.0 / total as f64 * 10.0).round() / 10.0
        },
        step: previous.step.clone(),
        chunks_completed: job.chunks_done,
        chunk_count: job.chunks.len() as u64,
        estimated_time_remaining_ms: (processed > 0).then(|| elapsed * remaining / processed),
        elapsed_ms: elapsed,
        current_file: previous.current_file,
        total_files: previous.total_files,
    }
}

pub(super) fn progress_event(job: &mut super::model::Job, chunk_index: u64) -> Event {
    let progress = job.progress.clone();
    let mut fields = json!({
        "percentage": progress.percentage,
        "processed": progress.processed,
        "total": progress.total,
        "step": progress.step,
        "chunkIndex": chunk_index,
        "chunkCount": progress.chunk_count,
        "chunksCompleted": progress.chunks_completed,
        "estimatedTimeRemainingMs": progress.estimated_time_remaining_ms,
        "elapsedMs": progress.elapsed_ms,
    });
    if let (Some(current), Some(total)) = (progress.current_file, progress.total_files) {
        fields["currentFile"] = json!(current);
        fields["totalFiles"] = json!(total);
    }
    events::next(job, kind::PROGRESS, fields)
}

/// Merges the chunk results into the job's result and completes the job. `ran` holds the
/// results of the chunks this attempt ran: when that is every chunk, the merge needs nothing
/// from the store. Their commits may still be queued, but the completion is queued after them
/// and the writer keeps that order, so the job is never stored (nor announced) as completed
/// without its chunk results.
async fn merge(
    engine: &JobEngine,
    id: &str,
    attempt: u64,
    started: Instant,
    ran: Vec<(u64, Value)>,
) {
    let Some(job) = engine.job(id) else { return };
    let Some(handler) = engine.inner.types.get(&job.job_type).cloned() else {
        return;
    };
    let count = job.chunks.len() as u64;
    let results = if ran.len() as u64 == count {
        let mut results = vec![Value::Null; job.chunks.len()];
        for (index, result) in ran {
            if let Some(slot) = results.get_mut(index as usize) {
                *slot = result;
            }
        }
        ChunkResults::from_vec(results)
    } else {
        // Some chunks ran in an earlier attempt (or process): their results are in the store,
        // once the commits still queued are written. They are read as the merge asks for
        // them, so that a type whose merge folds them one at a time never holds them all.
        let stored = match engine.written().await {
            Ok(()) => {
                let store = &engine.inner.store;
                store
                    .chunk_count(id)
                    .and_then(|stored| Ok((stored, store.chunk_results_each(id)?)))
                    .map_err(|e| e.to_string())
            }
            Err(stopped) => Err(stopped.to_string()),
        };
        let (stored, each) = match stored {
            Ok(stored) => stored,
            Err(reason) => {
                let error = JobError::retryable("store", reason);
                engine.fail_or_retry(id, attempt, error, started).await;
                return;
            }
        };
        if stored != count {
            // Commits are applied in order, so this means the store lost records.
            tracing::error!(job = %id, stored, planned = count, "chunk results missing at merge");
        }
        ChunkResults::stored(count, each.map(|entry| entry.map_err(|e| e.to_string())))
    };
    let input = engine.input(&job);
    let merged = if handler.light_plan_and_merge() {
        handler.merge_each(&input, results)
    } else {
        off_thread(move || handler.merge_each(&input, results)).await
    };
    let merged = match merged {
        Ok(merged) => merged,
        Err(error) => {
            engine.fail_or_retry(id, attempt, error, started).await;
            return;
        }
    };
    {
        let mut state = engine.lock();
        if state.running.get(id).is_none_or(|r| r.attempt != attempt) {
            return;
        }
        let Some(job) = state.jobs.get_mut(id) else {
            return;
        };
        job.status = JobStatus::Completed;
        job.completed_at = Some(now_ms());
        let owner = job.owner.clone();
        job.run_ms += started.elapsed().as_millis() as u64;
        job.progress.percentage = 100.0;
        let execution = job.run_ms;
        let fields = json!({ "executionTimeMs": execution, "attempts": job.attempts });
        // The event is written from the result itself, not from a copy of it.
        let event = events::next_with(job, kind::COMPLETED, fields, &[("result", &merged)]);
        job.result = Some(merged);
        engine.save(job, vec![event]);
        state.closed(&owner);
        engine.child_finished(&mut state, id);
    }
}

impl JobEngine {
    /// An attempt failed: retry after a backoff if the error allows and attempts remain,
    /// otherwise fail the job with the error.
    pub(super) async fn fail_or_retry(
        &self,
        id: &str,
        attempt: u64,
        error: JobError,
        started: Instant,
    ) {
        {
            let mut state = self.lock();
            if state.running.get(id).is_none_or(|r| r.attempt != attempt) {
                return;
            }
            state.running.remove(id);
            let now = now_ms();
            let backoff = self.inner.config.retry_backoff;
            let Some(job) = state.jobs.get_mut(id) else {
                return;
            };
            job.run_ms += started.elapsed().as_millis() as u64;
            job.error = Some(error.clone());
            let event = if error.retryable && job.attempts < job.max_attempts {
                let delay = backoff_delay(backoff, job.attempts, now);
                job.status = JobStatus::Pending;
                job.run_at = now + delay;
                let event = events::next(
                    job,
                    kind::RETRY_SCHEDULED,
                    json!({
                        "attempt": job.attempts,
                        "maxAttempts": job.max_attempts,
                        "nextAttemptAt": job.run_at,
                        "error": error,
                    }),
                );
                let (id, priority, run_at) = (job.id.clone(), job.priority, job.run_at);
                state.schedule.add(&id, priority, run_at, now);
                event
            } else {
                job.status = JobStatus::Failed;
                job.completed_at = Some(now);
                events::next(
                    job,
                    kind::FAILED,
                    json!({ "code": error.code, "message": error.message, "attempts": job.attempts }),
                )
            };
            let finished = state.jobs.get(id).and_then(|job| {
                self.save(&job, vec![event]);
                job.status.is_finished().then(|| job.owner.clone())
            });
            if let Some(owner) = finished {
                state.closed(&owner);
                self.cancel_children(&mut state, id, "system");
                self.child_finished(&mut state, id);
            }
        }
        self.inner.wake.notify_one();
    }
}

/// Backoff before attempt `attempts + 1`: `base * 2^(attempts-1)`, plus up to 20% jitter.
fn backoff_delay(base: Duration, attempts: u32, now: u64) -> u64 {
    let base = base.as_millis() as u64;
    let exp = base.saturating_mul(1u64 << attempts.saturating_sub(1).min(16));
    let jitter = if exp >= 5 { now % (exp / 5) } else { 0 };
    exp + jitter
}

/// In-chunk progress reports, throttled per job.
struct ChunkProgress {
    engine: JobEngine,
    id: String,
    attempt: u64,
    base: u64,
}

impl ProgressSink for ChunkProgress {
    fn report(&self, report: ProgressReport<'_>) {
        {
            let mut state = self.engine.lock();
            let interval = self.engine.inner.config.progress_interval;
            let state = &mut *state;
            let Some(running) = state
                .running
                .get_mut(&self.id)
                .filter(|r| r.attempt == self.attempt)
            else {
                return;
            };
            let Some(job) = state.jobs.get_mut(&self.id) else {
                return;
            };
            // The step and the file position are kept even when the event is throttled, so
            // the next chunk-end update shows them; a move to another file is always shown.
            let file_changed = report.file.is_some_and(|(current, total)| {
                job.progress.current_file != Some(current)
                    || job.progress.total_files != Some(total)
            });
            if job.progress.step != report.step {
                job.progress.step = report.step.to_owned();
            }
            if let Some((current, total)) = report.file {
                job.progress.current_file = Some(current);
                job.progress.total_files = Some(total);
            }
            if !file_changed && running.last_report.is_some_and(|t| t.elapsed() < interval) {
                return;
            }
            // An in-chunk update can wait for the next one when the writer is busy; chunk and
            // state events never skip.
            let Some(permit) = self.engine.inner.writer.try_room() else {
                return;
            };
            running.last_report = Some(Instant::now());
            let done = self.base + report.processed;
            let shown = done.min(job.progress.total.max(done));
            let mut snapshot = job.clone();
            snapshot.progress.processed = shown;
            if snapshot.progress.total > 0 {
                snapshot.progress.percentage =
                    (shown as f64 * 1000.0 / snapshot.progress.total as f64).round() / 10.0;
            }
            let index = job.chunks_done;
            let event = progress_event(&mut snapshot, index);
            job.seq = snapshot.seq;
            // Only the event is logged: a restart takes the sequence number from the log.
            let mut commit = super::change(None, vec![event]);
            commit.permit = Some(permit);
            self.engine.inner.writer.queue(commit);
        }
    }
}

/// Runs a handler's synchronous step (plan, merge) on the blocking pool: it may read input
/// files or concatenate result files, which would stall every session sharing this thread.
async fn off_thread<T: Send + 'static>(
    step: impl FnOnce() -> Result<T, JobError> + Send + 'static,
) -> Result<T, JobError> {
    match tokio::task::spawn_blocking(step).await {
        Ok(outcome) => outcome,
        Err(error) => Err(JobError::permanent(
            "handler_failed",
            format!("the job type's handler failed: {error}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_bounded_jitter() {
        let base = Duration::from_secs(2);
        for (attempts, expected) in [(1, 2_000), (2, 4_000), (3, 8_000)] {
            let delay = backoff_delay(base, attempts, 123_456_789);
            assert!(
                delay >= expected && delay < expected + expected / 5,
                "{delay}"
            );
        }
    }
}
