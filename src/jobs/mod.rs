//! The job engine: durable, chunked jobs submitted and watched over STOMP.
//!
//! ```text
//! SEND /app/jobs ─► service (validate, idempotency, limits) ─► writer: job + JOB_ACCEPTED
//!   ─► batch, group commit ─► JOB_ACCEPTED published ─► RECEIPT job-id
//!   ─► Schedule (priority, age, delay, limits) ─► worker
//!   ─► chunk i: handler.run_chunk ─► fence check (attempt) under the state lock
//!   ─► writer: result + events in one batch ─► group commit ─► MESSAGE on /topic/jobs/<id>
//!      and /user/<owner>/queue/progress
//! ```
//!
//! Every change to a job is made under the state lock and queued to the writer there, so the
//! store, the events and the memory agree on one order. The attempt id fences a worker: once
//! a job is cancelled, failed or retried, its old worker's commits are refused under the same
//! lock (the store is opened by one process at a time, so the lock is the whole story).
//!
//! The wire contract (headers, events, fields) is `protocol/docs/jobs.md`.

pub mod demo;
pub mod events;
pub mod handler;
pub mod model;
mod mount;
pub mod scheduler;
mod service;
mod worker;
mod writer;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::broker::Broker;
use crate::clock::now_ms;
use crate::store::jobs::{JobStore, JobWrite};
use crate::store::StoreError;
use events::{kind, Event};
use handler::{JobInput, JobTypes};
use model::{Job, JobError, JobStatus};
use scheduler::Schedule;
use writer::{Commit, Writer};

pub use service::Rejection;

/// Job engine settings.
#[derive(Debug, Clone)]
pub struct JobsConfig {
    /// Jobs running at once (default: the number of cores).
    pub concurrency: usize,
    /// Jobs a user may have waiting or running.
    pub max_queued_per_user: usize,
    /// Submissions per second per user (burst of one second's worth).
    pub submissions_per_second_per_user: u32,
    /// Least time between two in-chunk progress updates of one job.
    pub progress_interval: Duration,
    /// Time a cancelled chunk has to stop on its own before it is dropped.
    pub cancel_grace: Duration,
    /// A job unfinished this long after submission fails with `expired`.
    pub deadline: Duration,
    /// Finished jobs are removed this long after they end.
    pub retention: Duration,
    /// Completed jobs kept at most.
    pub keep_completed: usize,
    /// Failed and cancelled jobs kept at most.
    pub keep_failed: usize,
    /// First retry delay; doubles for each attempt (2 s, 4 s, 8 s), with jitter.
    pub retry_backoff: Duration,
    /// Users who may control and watch every job.
    pub admins: Vec<String>,
    /// Where jobs' result files go (`<dir>/<job id>/`).
    pub results_dir: PathBuf,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_queued_per_user: 10_000,
            submissions_per_second_per_user: 1_000,
            progress_interval: Duration::from_millis(500),
            cancel_grace: Duration::from_secs(5),
            deadline: Duration::from_secs(24 * 3600),
            retention: Duration::from_secs(24 * 3600),
            keep_completed: 1_000,
            keep_failed: 500,
            retry_backoff: Duration::from_secs(2),
            admins: Vec::new(),
            results_dir: PathBuf::from("./stompede-data/results"),
        }
    }
}

/// A running job's controls.
#[derive(Debug)]
struct Running {
    attempt: u64,
    cancel: CancellationToken,
    pause: bool,
    /// When the last in-chunk progress update went out (throttling is per job).
    last_report: Option<std::time::Instant>,
}

#[derive(Debug, Default)]
struct State {
    jobs: HashMap<String, Job>,
    running: HashMap<String, Running>,
    schedule: Schedule,
    next_attempt: u64,
    /// Unfinished jobs per owner (the per-user cap), kept as jobs open and finish.
    unfinished: HashMap<String, usize>,
    /// Job id by `owner NUL idempotency-key`, for the jobs that have a key.
    idempotency: HashMap<String, String>,
}

impl State {
    /// A job of `owner` became unfinished (submitted, retried).
    fn opened(&mut self, owner: &str) {
        *self.unfinished.entry(owner.to_owned()).or_default() += 1;
    }

    /// A job of `owner` finished (completed, failed, cancelled).
    fn closed(&mut self, owner: &str) {
        count_down(&mut self.unfinished, owner);
    }
}

/// A commit of `job`'s state (when given) with `events`, logged and then published.
fn change(job: Option<&Job>, events: Vec<Event>) -> Commit {
    let mut writes = Vec::with_capacity(events.len() + 1);
    if let Some(job) = job {
        match job.to_bytes() {
            Ok(record) => writes.push(JobWrite::Job {
                id: job.id.clone(),
                record,
            }),
            // Not expected (every field is plain JSON); the events still go out and the stored
            // record keeps the job's previous state.
            Err(error) => tracing::error!(job = %job.id, %error, "job record not encoded"),
        }
    }
    writes.extend(events.iter().map(|event| JobWrite::Event {
        id: event.job_id.clone(),
        seq: event.seq,
        body: event.body.clone(),
    }));
    Commit {
        writes,
        events,
        ..Commit::default()
    }
}

/// The idempotency map's key for `owner` and `key`.
fn idempotency_key(owner: &str, key: &str) -> String {
    format!("{owner}\u{0}{key}")
}

/// One unfinished job fewer for `owner`.
fn count_down(unfinished: &mut HashMap<String, usize>, owner: &str) {
    if let Some(n) = unfinished.get_mut(owner) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            unfinished.remove(owner);
        }
    }
}

struct Inner {
    store: JobStore,
    types: JobTypes,
    broker: Broker,
    config: JobsConfig,
    // A std Mutex: every critical section is in-memory bookkeeping plus queueing to the
    // writer (no await), so the order of state changes and of their stored events is one order.
    state: Mutex<State>,
    wake: Notify,
    writer: Writer,
    rates: crate::rate::RateLimits,
    shutdown: CancellationToken,
    /// Every task of the engine, so shutdown can wait for them.
    tracker: TaskTracker,
}

/// A handle to the job engine.
#[derive(Clone)]
pub struct JobEngine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for JobEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobEngine").finish_non_exhaustive()
    }
}

/// Figures about the jobs, for dashboards and `/topic/stats`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobStats {
    /// Jobs by status.
    pub by_status: HashMap<String, usize>,
    /// Jobs by type.
    pub by_type: HashMap<String, usize>,
    /// Completed / (completed + failed), 0 to 1.
    pub success_rate: f64,
    /// Mean processing time of completed jobs.
    pub average_processing_ms: u64,
    /// 95th percentile processing time of completed jobs.
    pub p95_processing_ms: u64,
    /// Jobs waiting.
    pub queue_length: usize,
    /// Jobs running.
    pub active: usize,
    /// Failed jobs.
    pub failed: usize,
}

/// A handle that does not keep the engine alive (for the broker's routes, which the engine
/// itself holds through the broker).
#[derive(Clone, Default)]
pub struct WeakJobEngine(std::sync::Weak<Inner>);

impl WeakJobEngine {
    /// The engine, while it runs.
    pub fn upgrade(&self) -> Option<JobEngine> {
        self.0.upgrade().map(|inner| JobEngine { inner })
    }
}

impl JobEngine {
    /// A handle that does not keep the engine alive.
    pub fn downgrade(&self) -> WeakJobEngine {
        WeakJobEngine(Arc::downgrade(&self.inner))
    }

    /// Starts the engine on `store`: recovers stored jobs (a job that was running when the
    /// process died resumes from its last completed chunk), then runs the scheduler, the
    /// event publisher and the maintenance loop until `shutdown`.
    pub fn start(
        store: JobStore,
        types: JobTypes,
        broker: Broker,
        config: JobsConfig,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) -> Result<JobEngine, StoreError> {
        let (writer, queue) = Writer::new();
        let rates = crate::rate::RateLimits::new(config.submissions_per_second_per_user);
        let engine = JobEngine {
            inner: Arc::new(Inner {
                store,
                types,
                broker: broker.clone(),
                config,
                state: Mutex::new(State::default()),
                wake: Notify::new(),
                writer,
                rates,
                shutdown: shutdown.clone(),
                tracker: tracker.clone(),
            }),
        };
        engine.recover()?;
        tracker.spawn(writer::run(
            queue,
            engine.inner.store.clone(),
            broker,
            engine.inner.writer.unannounced().clone(),
            shutdown,
        ));
        tracker.spawn(engine.clone().schedule_loop());
        tracker.spawn(engine.clone().maintenance_loop());
        Ok(engine)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The registered job types.
    pub fn types(&self) -> &JobTypes {
        &self.inner.types
    }

    /// A job's current state.
    pub fn job(&self, id: &str) -> Option<Job> {
        self.lock().jobs.get(id).cloned()
    }

    /// Whether `user` may see and control job `id`.
    pub fn may_access(&self, user: &str, id: &str) -> bool {
        self.is_admin(user)
            || self
                .lock()
                .jobs
                .get(id)
                .is_some_and(|job| job.owner == user)
    }

    /// Whether `user` is a jobs admin.
    pub fn is_admin(&self, user: &str) -> bool {
        self.inner.config.admins.iter().any(|a| a == user)
    }

    fn input(&self, job: &Job) -> JobInput {
        JobInput {
            id: job.id.clone(),
            owner: job.owner.clone(),
            params: job.params.clone(),
            result_dir: self.inner.config.results_dir.join(&job.id),
        }
    }

    /// Queues `job`'s new state with `events`: logged with it, published once committed.
    /// Call under the state lock (the writer keeps the order of its queue).
    fn save(&self, job: &Job, events: Vec<Event>) {
        self.inner.writer.queue(change(Some(job), events));
    }

    /// Waits until every change queued before the call is committed.
    async fn written(&self) -> Result<(), String> {
        let (done, committed) = tokio::sync::oneshot::channel();
        self.inner.writer.queue(Commit {
            done: Some(done),
            ..Commit::default()
        });
        committed
            .await
            .unwrap_or_else(|_| Err("the job engine stopped".into()))
    }

    fn recover(&self) -> Result<(), StoreError> {
        // Run before the writer starts: its queue holds what this writes.
        let now = now_ms();
        let mut state = self.lock();
        let mut resumed = 0;
        for bytes in self.inner.store.jobs()? {
            let mut job: Job = match serde_json::from_slice(&bytes) {
                Ok(job) => job,
                Err(error) => {
                    tracing::error!(%error, "unreadable job record skipped");
                    continue;
                }
            };
            if !job.status.is_finished() {
                if let Some(plan) = self.inner.store.plan(&job.id)? {
                    match serde_json::from_slice(&plan) {
                        Ok(plan) => job.chunks = Arc::new(plan),
                        Err(error) => {
                            tracing::error!(job = %job.id, %error, "unreadable plan: the job will be planned again")
                        }
                    }
                }
            }
            if !job.status.is_finished() && !job.chunks.is_empty() {
                // Chunk commits do not rewrite the job record: the checkpoint is the stored
                // chunk results, and the last sequence number is in the event log.
                job.chunks_done = self.inner.store.chunk_count(&job.id)?;
                job.seq = job.seq.max(self.inner.store.last_seq(&job.id)?);
                let done = job.chunks_done as usize;
                job.progress.processed = job.chunks.iter().take(done).map(|c| c.units).sum();
                job.progress.chunks_completed = job.chunks_done;
                if job.progress.total > 0 {
                    job.progress.percentage = (job.progress.processed as f64 * 1000.0
                        / job.progress.total as f64)
                        .round()
                        / 10.0;
                }
            }
            if job.status == JobStatus::Processing {
                // Its worker died with the process: resume from the checkpoint.
                job.status = JobStatus::Pending;
                resumed += 1;
                self.save(&job, Vec::new());
            }
            if let Some(key) = &job.idempotency_key {
                state
                    .idempotency
                    .insert(idempotency_key(&job.owner, key), job.id.clone());
            }
            if job.status == JobStatus::Pending {
                state.schedule.add(&job.id, job.priority, job.run_at, now);
            }
            if !job.status.is_finished() {
                state.opened(&job.owner);
            }
            state.jobs.insert(job.id.clone(), job);
        }
        if !state.jobs.is_empty() {
            tracing::info!(jobs = state.jobs.len(), resumed, "jobs recovered");
        }
        Ok(())
    }

    /// Starts every job the schedule allows; returns when the next delayed job is due.
    fn dispatch(&self) -> Option<u64> {
        let now = now_ms();
        let mut started = Vec::new();
        let next_due = {
            let mut guard = self.lock();
            let state = &mut *guard;
            let jobs = &state.jobs;
            let next_due = state
                .schedule
                .promote(now, |id| jobs.get(id).map(|j| j.priority));
            loop {
                let jobs = &state.jobs;
                let types = &self.inner.types;
                let Some(id) = state.schedule.take(self.inner.config.concurrency, |id| {
                    let job = jobs.get(id)?;
                    let limit = types.get(&job.job_type).and_then(|h| h.concurrency());
                    Some((job.job_type.clone(), limit))
                }) else {
                    break;
                };
                state.next_attempt += 1;
                let attempt = now * 1_000 + state.next_attempt % 1_000;
                state.running.insert(
                    id.clone(),
                    Running {
                        attempt,
                        cancel: CancellationToken::new(),
                        pause: false,
                        last_report: None,
                    },
                );
                started.push((id, attempt));
            }
            next_due
        };
        for (id, attempt) in started {
            self.inner
                .tracker
                .spawn(worker::run(self.clone(), id, attempt));
        }
        next_due
    }

    async fn schedule_loop(self) {
        loop {
            let notified = self.inner.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let next_due = self.dispatch();
            let sleep = match next_due {
                Some(at) => Duration::from_millis(at.saturating_sub(now_ms()).max(1)),
                None => Duration::from_secs(3600),
            };
            tokio::select! {
                _ = self.inner.shutdown.cancelled() => return,
                _ = notified => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// A worker stopped running `id` (whatever the outcome).
    fn release(&self, id: &str, job_type: &str, attempt: u64) {
        let mut state = self.lock();
        if state.running.get(id).is_some_and(|r| r.attempt == attempt) {
            state.running.remove(id);
        }
        state.schedule.finished(job_type);
        drop(state);
        self.inner.wake.notify_one();
    }

    /// Figures over every job.
    pub fn stats(&self) -> JobStats {
        let state = self.lock();
        let mut stats = JobStats {
            queue_length: state.schedule.waiting(),
            active: state.schedule.running(),
            ..JobStats::default()
        };
        let mut times = Vec::new();
        let (mut completed, mut failed) = (0usize, 0usize);
        for job in state.jobs.values() {
            *stats
                .by_status
                .entry(job.status.as_str().to_owned())
                .or_default() += 1;
            *stats.by_type.entry(job.job_type.clone()).or_default() += 1;
            match job.status {
                JobStatus::Completed => {
                    completed += 1;
                    if let (Some(start), Some(end)) = (job.started_at, job.completed_at) {
                        times.push(end.saturating_sub(start));
                    }
                }
                JobStatus::Failed => failed += 1,
                _ => {}
            }
        }
        stats.failed = failed;
        if completed + failed > 0 {
            stats.success_rate = completed as f64 / (completed + failed) as f64;
        }
        if !times.is_empty() {
            times.sort_unstable();
            stats.average_processing_ms = times.iter().sum::<u64>() / times.len() as u64;
            stats.p95_processing_ms = times[(times.len() * 95 / 100).min(times.len() - 1)];
        }
        stats
    }

    /// Every second: fails jobs past their deadline, publishes `/topic/stats` when someone
    /// listens; every minute: removes finished jobs past retention or beyond the kept counts.
    async fn maintenance_loop(self) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut ticks: u64 = 0;
        loop {
            tokio::select! {
                _ = self.inner.shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            ticks += 1;
            self.expire_overdue().await;
            self.publish_stats().await;
            // Retention is checked at a quarter of its period (between 1 s and 1 min).
            let every = (self.inner.config.retention.as_secs() / 4).clamp(1, 60);
            if ticks % every == 0 {
                self.apply_retention().await;
            }
        }
    }

    /// Publishes the engine's figures on `/topic/stats`, when anyone watches.
    async fn publish_stats(&self) {
        if !self.inner.broker.has_subscribers("/topic/stats") {
            return;
        }
        let body = match serde_json::to_vec(&self.stats()) {
            Ok(body) => body,
            Err(error) => {
                tracing::warn!(%error, "statistics could not be encoded");
                return;
            }
        };
        let mut headers = stompede_protocol::Headers::new();
        headers.push("content-type", "application/json");
        let message = self
            .inner
            .broker
            .message("/topic/stats".into(), &headers, body.into(), true);
        if let Err(error) = self.inner.broker.publish_as_server(message).await {
            tracing::warn!(%error, "statistics not published");
        }
    }

    async fn expire_overdue(&self) {
        let cutoff = now_ms().saturating_sub(self.inner.config.deadline.as_millis() as u64);
        let overdue: Vec<String> = self
            .lock()
            .jobs
            .values()
            .filter(|j| !j.status.is_finished() && j.created_at < cutoff)
            .map(|j| j.id.clone())
            .collect();
        for id in overdue {
            let error =
                JobError::permanent("expired", "the job did not finish before its deadline");
            self.finish_failed(&id, error).await;
        }
    }

    /// Fails a job that is not running normally any more (deadline): stops its worker if any.
    async fn finish_failed(&self, id: &str, error: JobError) {
        {
            let mut state = self.lock();
            let Some(job) = state.jobs.get(id).cloned() else {
                return;
            };
            if job.status.is_finished() {
                return;
            }
            if let Some(running) = state.running.remove(id) {
                running.cancel.cancel();
            }
            state.schedule.remove(id, job.priority, job.run_at);
            state.closed(&job.owner);
            let Some(job) = state.jobs.get_mut(id) else {
                return;
            };
            job.status = JobStatus::Failed;
            job.completed_at = Some(now_ms());
            job.error = Some(error.clone());
            let event = events::next(
                job,
                kind::FAILED,
                json!({ "code": error.code, "message": error.message, "attempts": job.attempts }),
            );
            // Its worker was removed from `running` above: it cannot commit any more.
            self.save(job, vec![event]);
        }
    }

    async fn apply_retention(&self) {
        let cutoff = now_ms().saturating_sub(self.inner.config.retention.as_millis() as u64);
        let mut finished: Vec<(u64, String, JobStatus, Option<String>)> = self
            .lock()
            .jobs
            .values()
            .filter(|j| j.status.is_finished())
            .map(|j| {
                (
                    j.completed_at.unwrap_or(0),
                    j.id.clone(),
                    j.status,
                    j.idempotency_key
                        .as_ref()
                        .map(|k| idempotency_key(&j.owner, k)),
                )
            })
            .collect();
        finished.sort_by_key(|f| std::cmp::Reverse(f.0));
        let (mut kept_completed, mut kept_failed) = (0, 0);
        let mut expired_dirs = Vec::new();
        for (ended, id, status, key) in finished {
            let kept = if status == JobStatus::Completed {
                &mut kept_completed
            } else {
                &mut kept_failed
            };
            let limit = if status == JobStatus::Completed {
                self.inner.config.keep_completed
            } else {
                self.inner.config.keep_failed
            };
            *kept += 1;
            if ended >= cutoff && *kept <= limit {
                continue;
            }
            {
                let mut state = self.lock();
                // It may have been retried since the list was made.
                if !state.jobs.get(&id).is_some_and(|j| j.status.is_finished()) {
                    continue;
                }
                state.jobs.remove(&id);
                if let Some(key) = key {
                    if state.idempotency.get(&key) == Some(&id) {
                        state.idempotency.remove(&key);
                    }
                }
                self.inner.writer.queue(Commit {
                    writes: vec![JobWrite::Remove { id: id.clone() }],
                    ..Commit::default()
                });
            }
            expired_dirs.push((self.inner.config.results_dir.join(&id), id));
        }
        // Result trees can be large: removed on the blocking pool, not on a session thread.
        let removed = tokio::task::spawn_blocking(move || {
            for (dir, id) in expired_dirs {
                match std::fs::remove_dir_all(&dir) {
                    Ok(()) => {}
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                    Err(error) => tracing::warn!(job = %id, %error, "removing result files"),
                }
            }
        })
        .await;
        if let Err(error) = removed {
            tracing::warn!(%error, "removing expired result files failed");
        }
    }

    /// The published events of job `id` after `seq` (for `since-seq` replay), as JSON bodies,
    /// in order. Those stored but still queued for publication are left out: they are about to
    /// be delivered live. Call it holding the publication lock (the subscription guard does),
    /// or an event may be published between this read and the subscription.
    ///
    /// A log that cannot be read is an error, never an empty replay: the subscriber would
    /// take the silence for "nothing happened".
    pub fn events_after(&self, id: &str, seq: u64) -> Result<Vec<Value>, StoreError> {
        let logged = self.inner.store.events_after(id, seq)?;
        // Read after the log: an event is queued before it is logged, so one logged by now and
        // not yet published is in this list.
        let pending = self.inner.writer.unannounced().pending(id);
        // The log comes in seq order.
        let mut events = Vec::with_capacity(logged.len());
        for bytes in &logged {
            let event: Value = serde_json::from_slice(bytes)
                .map_err(|_| crate::store::CorruptRecord("job event"))?;
            let seq = event.get("seq").and_then(Value::as_u64);
            if seq.is_some_and(|seq| !pending.contains(&seq)) {
                events.push(event);
            }
        }
        Ok(events)
    }
}

/// Guards `/topic/jobs/...`: a job's topic is for its owner and the admins; every job's
/// (`/topic/jobs` itself, or any wildcard) for the admins. A new subscriber first gets the
/// job's current state (`snapshot:true`), or with `since-seq:N` the logged events after N.
impl crate::broker::app::SubscribeGuard for JobEngine {
    fn publication_lock(&self) -> Option<Arc<Mutex<()>>> {
        Some(self.inner.writer.unannounced().publication().clone())
    }

    fn check(
        &self,
        user: &str,
        destination: &str,
        headers: &stompede_protocol::Headers,
    ) -> Result<Vec<(stompede_protocol::Headers, bytes::Bytes)>, String> {
        let rest = destination
            .strip_prefix("/topic/jobs")
            .unwrap_or_default()
            .trim_start_matches('/');
        let id = rest.split('/').next().unwrap_or_default();
        let wildcard = rest.split('/').any(|s| s == "*" || s == "**");
        if id.is_empty() || wildcard {
            return if self.is_admin(user) {
                Ok(Vec::new())
            } else {
                Err("only job admins may watch every job".into())
            };
        }
        if !self.may_access(user, id) {
            return Err(format!("no job {id} of yours"));
        }
        if let Some(since) = headers.get("since-seq") {
            let since: u64 = since
                .trim()
                .parse()
                .map_err(|_| "since-seq must be a non-negative integer".to_owned())?;
            let events = self
                .events_after(id, since)
                .map_err(|error| format!("the job's event log could not be read: {error}"))?;
            return Ok(events
                .into_iter()
                .map(|body| {
                    let mut h = stompede_protocol::Headers::new();
                    h.push("content-type", "application/json");
                    h.push("job-id", id);
                    if let Some(t) = body.get("jobType").and_then(Value::as_str) {
                        h.push("job-type", t);
                    }
                    if let Some(e) = body.get("event").and_then(Value::as_str) {
                        h.push("event", e);
                    }
                    if let Some(s) = body.get("seq").and_then(Value::as_u64) {
                        h.push("seq", s.to_string());
                    }
                    h.push("replay", "true");
                    (h, body.to_string().into())
                })
                .collect());
        }
        let Some(job) = self.job(id) else {
            return Err(format!("no job {id} of yours"));
        };
        let mut h = stompede_protocol::Headers::new();
        h.push("content-type", "application/json");
        h.push("job-id", job.id.as_str());
        h.push("job-type", job.job_type.as_str());
        h.push("snapshot", "true");
        h.push("seq", job.seq.to_string());
        let body = job
            .to_bytes()
            .map_err(|e| format!("the job could not be encoded: {e}"))?;
        Ok(vec![(h, body.into())])
    }
}
