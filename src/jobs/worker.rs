//! Running one job: plan once, run the chunks not yet done, commit each with its event, then
//! merge. Pause takes effect at a chunk boundary; cancel interrupts the running chunk
//! cooperatively, and by dropping it after the grace.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::events::{self, kind, Event};
use super::handler::{ChunkContext, JobHandler, ProgressReport, ProgressSink};
use super::model::{JobError, JobStatus, Progress};
use super::JobEngine;
use crate::broker::queue::now_ms;
use crate::store::jobs::CommitError;

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
    if let Err(error) = begin(&engine, &id, attempt).await {
        engine.fail_or_retry(&id, attempt, error, started).await;
    } else {
        loop {
            match next_step(&engine, &id, attempt) {
                Next::Stop => break,
                Next::Merge => {
                    merge(&engine, &id, attempt, started).await;
                    break;
                }
                Next::Chunk {
                    index,
                    ctx,
                    handler,
                    cancel,
                } => {
                    let outcome = tokio::select! {
                        outcome = run_chunk(&engine, handler.as_ref(), *ctx, &cancel) => outcome,
                        // Shutdown: the job stays `processing` in the store and resumes from its
                        // last committed chunk when the server starts again.
                        _ = engine.inner.shutdown.cancelled() => break,
                    };
                    if cancel.is_cancelled() {
                        // Cancelled (or failed by deadline) while running: the controller has
                        // already recorded the outcome.
                        break;
                    }
                    match outcome {
                        Ok(result) => {
                            if !commit_chunk(&engine, &id, attempt, index, result, started).await {
                                break;
                            }
                        }
                        Err(error) => {
                            engine.fail_or_retry(&id, attempt, error, started).await;
                            break;
                        }
                    }
                }
            }
        }
    }
    engine.release(&id, &job_type, attempt);
}

/// Marks the job processing, plans it on its first start, publishes `JOB_STARTED`.
async fn begin(engine: &JobEngine, id: &str, attempt: u64) -> Result<(), JobError> {
    let handler = engine
        .job(id)
        .and_then(|job| engine.inner.types.get(&job.job_type).cloned())
        .ok_or_else(|| {
            JobError::permanent("unknown_type", "the job's type is no longer registered")
        })?;
    let input = engine.job(id).map(|job| engine.input(&job));
    let needs_plan = engine.job(id).is_some_and(|job| job.chunks.is_empty());
    let plan = match (needs_plan, &input) {
        (true, Some(input)) => {
            let plan = handler.plan(input)?;
            engine
                .inner
                .store
                .put_plan(id, &serde_json::to_vec(&plan).unwrap_or_default())
                .map_err(|e| JobError::retryable("store", e.to_string()))?;
            Some(plan)
        }
        _ => None,
    };
    let event = {
        let mut state = engine.lock();
        let Some(job) = state.jobs.get_mut(id) else {
            return Ok(());
        };
        if let Some(plan) = plan {
            if plan.is_empty() {
                return Err(JobError::permanent(
                    "empty_plan",
                    "the job has nothing to do",
                ));
            }
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
        let event = events::next(
            job,
            kind::STARTED,
            json!({ "attempt": job.attempts, "maxAttempts": job.max_attempts, "chunkCount": job.chunks.len() }),
        );
        let job = job.clone();
        engine
            .save(&job, Some(&event), Some(attempt))
            .map_err(|e| JobError::retryable("store", e.to_string()))?;
        event
    };
    engine.send(vec![event]).await;
    Ok(())
}

fn next_step(engine: &JobEngine, id: &str, attempt: u64) -> Next {
    let mut guard = engine.lock();
    let state = &mut *guard;
    let Some(running) = state.running.get(id).filter(|r| r.attempt == attempt) else {
        return Next::Stop;
    };
    let cancel = running.cancel.clone();
    let pause = running.pause;
    let Some(job) = state.jobs.get_mut(id) else {
        return Next::Stop;
    };
    if cancel.is_cancelled() || job.status != JobStatus::Processing {
        return Next::Stop;
    }
    if pause {
        job.status = JobStatus::Paused;
        let event = events::next(job, kind::PAUSED, json!({ "progress": job.progress }));
        let job = job.clone();
        state.running.remove(id);
        if let Err(error) = engine.save(&job, Some(&event), None) {
            tracing::error!(%error, "storing a paused job");
        }
        let engine = engine.clone();
        tokio::spawn(async move { engine.send(vec![event]).await });
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
    );
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

/// Commits a finished chunk; false when the worker must stop (fenced or store failure).
async fn commit_chunk(
    engine: &JobEngine,
    id: &str,
    attempt: u64,
    index: u64,
    result: Value,
    started: Instant,
) -> bool {
    let result_bytes = serde_json::to_vec(&result).unwrap_or_default();
    let outcome = {
        let mut state = engine.lock();
        let Some(job) = state.jobs.get_mut(id) else {
            return false;
        };
        let mut updated = job.clone();
        let units = updated.chunks.get(index as usize).map_or(0, |c| c.units);
        updated.chunks_done = index + 1;
        let progress = progress_of(&updated.progress, units, &updated, started);
        updated.progress = progress;
        let fields = json!({
            "chunkIndex": index,
            "chunkCount": updated.chunks.len(),
            "label": updated.chunks.get(index as usize).map(|c| c.label.clone()),
            "result": result,
        });
        let chunk_event = events::next(&mut updated, kind::CHUNK_COMPLETED, fields);
        let progress_event = progress_event(&mut updated, index);
        match engine.inner.store.commit_chunk(
            id,
            attempt,
            index,
            &result_bytes,
            &[
                (chunk_event.seq, &chunk_event.body[..]),
                (progress_event.seq, &progress_event.body[..]),
            ],
        ) {
            Ok(()) => {
                *job = updated;
                Ok(vec![chunk_event, progress_event])
            }
            Err(error) => Err(error),
        }
    };
    match outcome {
        Ok(events) => {
            engine.send(events).await;
            true
        }
        Err(CommitError::Fenced(_)) => false,
        Err(CommitError::Store(error)) => {
            let error = JobError::retryable("store", error.to_string());
            engine.fail_or_retry(id, attempt, error, started).await;
            false
        }
    }
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

fn progress_event(job: &mut super::model::Job, chunk_index: u64) -> Event {
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

async fn merge(engine: &JobEngine, id: &str, attempt: u64, started: Instant) {
    let Some(job) = engine.job(id) else { return };
    let Some(handler) = engine.inner.types.get(&job.job_type).cloned() else {
        return;
    };
    let stored = match engine.inner.store.chunk_results(id) {
        Ok(stored) => stored,
        Err(error) => {
            let error = JobError::retryable("store", error.to_string());
            engine.fail_or_retry(id, attempt, error, started).await;
            return;
        }
    };
    let mut results = vec![Value::Null; job.chunks.len()];
    for (index, bytes) in stored {
        if let Some(slot) = results.get_mut(index as usize) {
            *slot = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        }
    }
    let input = engine.input(&job);
    let merged = match handler.merge(&input, results) {
        Ok(merged) => merged,
        Err(error) => {
            engine.fail_or_retry(id, attempt, error, started).await;
            return;
        }
    };
    let event = {
        let mut state = engine.lock();
        if state.running.get(id).is_none_or(|r| r.attempt != attempt) {
            return;
        }
        let Some(job) = state.jobs.get_mut(id) else {
            return;
        };
        job.status = JobStatus::Completed;
        job.completed_at = Some(now_ms());
        job.run_ms += started.elapsed().as_millis() as u64;
        job.progress.percentage = 100.0;
        job.result = Some(merged.clone());
        let execution = job.run_ms;
        let event = events::next(
            job,
            kind::COMPLETED,
            json!({ "result": merged, "executionTimeMs": execution, "attempts": job.attempts }),
        );
        let job = job.clone();
        if let Err(error) = engine.save(&job, Some(&event), None) {
            tracing::error!(%error, "storing a completed job");
        }
        event
    };
    engine.send(vec![event]).await;
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
        let event = {
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
            let job = state.jobs.get(id).cloned();
            if let Some(job) = job {
                if let Err(error) = self.save(&job, Some(&event), None) {
                    tracing::error!(%error, "storing a failed attempt");
                }
            }
            event
        };
        self.send(vec![event]).await;
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
        let event = {
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
            let job = job.clone();
            if let Err(error) = self.engine.save(&job, Some(&event), None) {
                tracing::error!(%error, "logging a progress event");
            }
            event
        };
        if self.engine.inner.events.try_send(event).is_err() {
            // The channel is full: an in-chunk update can wait for the next one; chunk and
            // state events never go this way.
            tracing::debug!(job = %self.id, "in-chunk progress update skipped (publisher busy)");
        }
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
