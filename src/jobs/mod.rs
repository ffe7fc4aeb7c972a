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

mod auto_extract;
mod children;
mod claims;
mod config;
mod demo;
mod dispatch;
pub(crate) mod events;
mod finished;
pub(crate) mod handler;
mod maintenance;
pub(crate) mod model;
mod mount;
mod names;
mod noop;
mod recovery;
mod remote;
mod scheduler;
mod service;
mod settle;
pub mod shared;
mod stats;
mod table;
pub(crate) mod timing;
mod tombstones;
mod watch;
mod webhooks;
mod worker;
mod writer;

/// A server with the `demo` job type on a data directory in `dir`, and no listeners: for the
/// engine's own tests, which drive it through its service.
#[cfg(test)]
async fn demo_server(dir: &std::path::Path) -> crate::Server {
    demo_server_with(dir, |_| {}).await
}

/// [`demo_server`] with its config changed by `configure` first.
#[cfg(test)]
async fn demo_server_with(
    dir: &std::path::Path,
    configure: impl FnOnce(&mut crate::Config),
) -> crate::Server {
    let mut config = crate::Config {
        data_dir: dir.to_owned(),
        stomp: None,
        http: None,
        ..crate::Config::default()
    };
    configure(&mut config);
    crate::BrokerBuilder::new(config)
        .job_type("demo", Demo::default())
        .start()
        .await
        .expect("the server starts")
}

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::broker::Broker;
use crate::store::jobs::{JobStore, JobWrite};
use crate::store::StoreError;
use events::Event;
use handler::JobTypes;

use scheduler::Schedule;
use table::JobTable;
use writer::{Commit, Writer};

pub use config::JobsConfig;
pub use demo::Demo;
pub use handler::{
    ChildJob, ChildOutcome, ChunkContext, ChunkFuture, ChunkResults, JobHandler, JobInput,
    ProgressReport, ProgressSink,
};
pub(crate) use model::new_id;
pub use model::{ChunkPlan, Job, JobError, JobStatus, Progress, Webhook, WebhookStatus};
pub use noop::Noop;
pub use service::Rejection;
pub use stats::JobStats;
pub use webhooks::{signature as webhook_signature, WebhookConfig};

/// A running job's controls.
#[derive(Debug)]
struct Running {
    attempt: u64,
    cancel: CancellationToken,
    pause: bool,
    /// Fired with `pause`: a chunk that keeps its own checkpoints stops between steps.
    interrupt: CancellationToken,
    /// When the last in-chunk progress update went out (throttling is per job).
    last_report: Option<std::time::Instant>,
}

#[derive(Debug, Default)]
struct State {
    /// Every job: whole, or (waiting and finished ones) only what the scheduler, the
    /// listings and the kept counts need (`table.rs`).
    jobs: JobTable,
    running: HashMap<String, Running>,
    schedule: Schedule,
    next_attempt: u64,
    /// Unfinished jobs per owner (the per-user cap), kept as jobs open and finish.
    unfinished: HashMap<String, usize>,
    /// Job id by `owner NUL idempotency-key`, for the jobs that have a key.
    idempotency: HashMap<String, String>,
    /// Jobs removed by retention, for a day (or the retention, if longer) after
    /// (`maintenance.rs`).
    gone: tombstones::Tombstones,
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
    /// Webhooks to deliver, by due time (ms since the epoch) and job id (`webhooks.rs`).
    webhooks: Mutex<BTreeSet<(u64, String)>>,
    webhook_wake: Notify,
    /// How long chunks take, for `/metrics`.
    chunk_times: timing::ChunkTimes,
    /// The job store shared by the nodes of a cluster (`shared.rs`), when this node keeps its
    /// jobs there; None on a node on its own.
    shared: Option<Arc<dyn shared::SharedJobs>>,
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

/// A handle that does not keep the engine alive (for the broker's routes, which the engine
/// itself holds through the broker).
#[derive(Clone, Default)]
pub(crate) struct WeakJobEngine(std::sync::Weak<Inner>);

impl WeakJobEngine {
    /// The engine, while it runs.
    pub(crate) fn upgrade(&self) -> Option<JobEngine> {
        self.0.upgrade().map(|inner| JobEngine { inner })
    }
}

impl JobEngine {
    /// A handle that does not keep the engine alive.
    pub(crate) fn downgrade(&self) -> WeakJobEngine {
        WeakJobEngine(Arc::downgrade(&self.inner))
    }

    /// Starts the engine on `store`: recovers stored jobs (a job that was running when the
    /// process died resumes from its last completed chunk), then runs the scheduler, the
    /// event publisher and the maintenance loop until `shutdown`. With `shared`, the jobs are
    /// the cluster's (`cluster.rs`): the local store only holds those this node runs.
    pub(crate) fn start(
        store: JobStore,
        types: JobTypes,
        broker: Broker,
        config: JobsConfig,
        shared: Option<Arc<dyn shared::SharedJobs>>,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) -> Result<JobEngine, StoreError> {
        let (writer, queue) = Writer::new();
        let rates = crate::rate::RateLimits::new(config.submissions_per_second_per_user);
        let engine = JobEngine {
            inner: Arc::new(Inner {
                store: store.clone(),
                types,
                broker: broker.clone(),
                config,
                state: Mutex::new(State {
                    jobs: JobTable::new(store),
                    ..State::default()
                }),
                wake: Notify::new(),
                writer,
                rates,
                shutdown: shutdown.clone(),
                tracker: tracker.clone(),
                webhooks: Mutex::new(BTreeSet::new()),
                webhook_wake: Notify::new(),
                chunk_times: timing::ChunkTimes::default(),
                shared: shared.clone(),
            }),
        };
        if shared.is_some() {
            // The cluster's jobs are in the shared store; what this node held when it stopped
            // went to other nodes once its leases ran out, or comes back to any node that way.
            engine.inner.store.clear_jobs()?;
        } else {
            engine.recover()?;
        }
        tracker.spawn(writer::run(
            queue,
            engine.inner.store.clone(),
            shared.clone(),
            broker,
            engine.inner.writer.unannounced().clone(),
            engine.inner.writer.unapplied().clone(),
            shutdown,
        ));
        tracker.spawn(engine.clone().schedule_loop());
        tracker.spawn(engine.clone().maintenance_loop());
        tracker.spawn(engine.clone().settle_loop());
        tracker.spawn(webhooks::run(engine.clone()));
        if let Some(shared) = shared {
            tracker.spawn(engine.clone().claim_loop(shared.clone()));
            tracker.spawn(engine.clone().control_loop(shared));
        }
        Ok(engine)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Chunk durations by job type and outcome.
    pub(crate) fn chunk_times(&self) -> Vec<((String, &'static str), timing::Histogram)> {
        self.inner.chunk_times.snapshot()
    }

    /// The owner of job `id` when retention removed it (for a day, or the retention if longer,
    /// after), so that asking for it can say "expired" rather than "no such job".
    pub fn expired_owner(&self, id: &str) -> Option<String> {
        self.lock().gone.owner(id).map(str::to_owned)
    }

    /// A job's current state. A job held compactly (waiting, or finished: `table.rs`) is read
    /// from the store outside the state lock, so that reading a large result does not hold up
    /// the engine (one changed meanwhile is given as last stored).
    pub fn job(&self, id: &str) -> Option<Job> {
        let lookup = self.lock().jobs.lookup(id)?;
        match lookup {
            table::Lookup::Whole(job) => Some(*job),
            table::Lookup::Stored(store) => match table::load(&store, id) {
                Ok(job) => job,
                Err(error) => {
                    tracing::error!(job = %id, %error, "job not read back");
                    None
                }
            },
        }
    }

    /// Every job, or `owner`'s, in id order (the order they were submitted in).
    pub fn jobs(&self, owner: Option<&str>) -> Vec<Job> {
        self.jobs_of(owner, None)
    }

    /// Every job of `owner` (all owners when `None`) and of `job_type` (any when `None`), in
    /// id order. Waiting and finished jobs are read back from the store outside the state
    /// lock, so a long listing does not hold up the engine (one changed meanwhile is listed as
    /// last stored).
    pub(crate) fn jobs_of(&self, owner: Option<&str>, job_type: Option<&str>) -> Vec<Job> {
        let (mut jobs, compact, store) = {
            let state = self.lock();
            let jobs: Vec<Job> = state
                .jobs
                .whole()
                .filter(|job| owner.is_none_or(|o| job.owner == o))
                .filter(|job| job_type.is_none_or(|t| job.job_type == t))
                .cloned()
                .collect();
            let compact = state.jobs.compact_ids(owner, job_type);
            (jobs, compact, state.jobs.store().cloned())
        };
        if let Some(store) = store {
            for id in compact {
                match table::load(&store, &id) {
                    Ok(Some(job)) => jobs.push(job),
                    Ok(None) => {}
                    Err(error) => tracing::error!(job = %id, %error, "job not read back"),
                }
            }
        }
        jobs.sort_by(|a, b| a.id.cmp(&b.id));
        jobs
    }

    /// The newest job of `owner` and `job_type` that `wanted` accepts. Jobs held compactly
    /// are read back from the store one at a time, newest first, outside the state lock, until
    /// one is accepted: a finished job's record holds its result, and reading every one of
    /// them to keep one would take the memory the table no longer does.
    pub(crate) fn newest_job(
        &self,
        owner: &str,
        job_type: &str,
        wanted: impl Fn(&Job) -> bool,
    ) -> Option<Job> {
        let (mut best, mut compact, store) = {
            let state = self.lock();
            let best = state
                .jobs
                .whole()
                .filter(|job| job.owner == owner && job.job_type == job_type)
                .filter(|job| wanted(job))
                .max_by(|a, b| a.id.cmp(&b.id))
                .cloned();
            let compact = state.jobs.compact_ids(Some(owner), Some(job_type));
            (best, compact, state.jobs.store().cloned())
        };
        let store = store?;
        compact.sort_unstable_by(|a, b| b.cmp(a));
        for id in compact {
            if best.as_ref().is_some_and(|best| best.id > id) {
                break;
            }
            match table::load(&store, &id) {
                Ok(Some(job)) if wanted(&job) => {
                    best = Some(job);
                    break;
                }
                Ok(_) => {}
                Err(error) => tracing::error!(job = %id, %error, "job not read back"),
            }
        }
        best
    }

    /// Whether `user` may see and control job `id` (its owner, or an admin).
    pub fn may_access(&self, user: &str, id: &str) -> bool {
        self.is_admin(user) || self.lock().jobs.owner(id) == Some(user)
    }

    /// Keeps only job `id`'s index entry in memory if it is waiting (pending, not running)
    /// or finished, and its latest record is applied to the store (`table.rs`). Call under
    /// the state lock.
    fn compact(&self, state: &mut State, id: &str) {
        if state.running.contains_key(id) || !self.inner.writer.applied(id) {
            return;
        }
        if state.jobs.status(id).is_some_and(JobStatus::is_finished) {
            state.jobs.compact_finished(id);
        } else {
            state.jobs.compact(id);
        }
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
            children: Vec::new(),
        }
    }

    /// Queues `job`'s new state with `events`: logged with it, published once committed.
    /// Call under the state lock (the writer keeps the order of its queue). A finished job
    /// leaves memory for its stored record once that is applied (`settle.rs`).
    fn save(&self, job: &Job, events: Vec<Event>) {
        let commit = change(Some(job), events);
        if job.status.is_finished() {
            self.inner.writer.queue_watched(&job.id, commit);
        } else {
            self.inner.writer.queue(commit);
        }
        self.queue_webhook(job);
    }

    /// Waits until every change queued before the call is committed.
    async fn written(&self) -> Result<(), writer::EngineStopped> {
        let (done, committed) = tokio::sync::oneshot::channel();
        self.inner.writer.queue(Commit {
            done: Some(done),
            ..Commit::default()
        });
        committed.await.unwrap_or(Err(writer::EngineStopped))
    }
}
