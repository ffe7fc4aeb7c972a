//! Jobs across nodes, kept in JetStream: the engine's [`SharedJobs`] on a cluster member
//! started with `--cluster-jobs on`.
//!
//! - The key-value bucket `STOMPEDE_JOBS` (`cluster-replicas` copies) holds each job's record
//!   (`job.<id>`), its plan (`plan.<id>`), its chunk results (`chunk.<id>.<index>`: the
//!   checkpoint, each written with a create, so that one result per chunk is ever stored) and
//!   its lease (`lease.<id>`: the node running it and until when).
//! - The stream `STOMPEDE_JOB_RUNS` (work queue) holds one message per job to run; one durable
//!   pull consumer is shared by every node. A node with room pulls one, claims the job's lease
//!   with a compare-and-set on its revision, and holds the message (renewing it with the
//!   lease) until the job finishes there. A node that dies renews neither: JetStream hands the
//!   message to another node once the lease time has passed, and that node takes the expired
//!   lease over with the same compare-and-set, then runs the job from its checkpoint.
//! - The stream `STOMPEDE_JOB_EVENTS` keeps each job's last [`EVENT_LOG_LIMIT`] events
//!   (`stompede.jobevents.<id>`, each with its sequence number in a header), so that a node
//!   that takes a job over goes on from its last sequence number.
//!
//! Any node reads any job and controls it (`jobs/reads.rs`, `jobs/controls.rs`): a job's
//! record and events are read from the bucket and the log; a control goes to the node holding
//! its lease, over a request on that node's subject `stompede.jobctl.<node>`, or, when none
//! holds it, changes its record under the lease, taken for the moment of the change.
//!
//! Fencing: every write of a leased job first renews the lease with a compare-and-set on the
//! revision this node holds. A node whose lease was taken over fails it, drops the write (its
//! events unsent) and stops the job; a chunk already committed by another node fails the
//! create the same way. Lease times are wall-clock milliseconds: the nodes' clocks must agree
//! to well within a lease (NTP).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv, stream, AckKind};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::jobs::shared::{
    BoxFuture, Claim, ControlAnswer, ControlRequest, ForwardError, IncomingControl, SharedJobs,
    Stored, Unheld, UnheldChange,
};
use crate::store::jobs::{JobWrite, EVENT_LOG_LIMIT};

/// The bucket of job records, plans, chunk results and leases.
pub const BUCKET: &str = "STOMPEDE_JOBS";
/// The work queue of jobs to run.
pub const RUNS: &str = "STOMPEDE_JOB_RUNS";
/// The per-job event logs.
pub const EVENTS: &str = "STOMPEDE_JOB_EVENTS";

mod controls;
mod quota;
mod reads;

const RUN_SUBJECT: &str = "stompede.jobs.run";
const EVENT_ROOT: &str = "stompede.jobevents";
/// The header that carries an event's sequence number in the event log.
const SEQ_HEADER: &str = "Stompede-Seq";
/// The shared consumer of [`RUNS`].
pub(super) const RUNNERS: &str = "runners";

/// How long one pull for a job waits at the server.
const PULL_WAIT: Duration = Duration::from_secs(1);
/// How long past its expiry a pull is waited for before it is taken as lost.
const PULL_GRACE: Duration = Duration::from_secs(5);
/// How long start-up waits for the bucket and streams (JetStream electing its leaders).
const SETUP_WAIT: Duration = Duration::from_secs(15);
/// Key-value operations in flight at once for one batch of writes.
const IN_FLIGHT: usize = 64;
/// Most chunks a claim reads back (a demo job's limit is 10,000; larger plans are read to
/// here and the rest run again, which idempotent creates make harmless).
const MAX_CHUNKS: u64 = 1_000_000;

/// The bucket and streams, once set up.
struct Parts {
    kv: kv::Store,
    runs: consumer::PullConsumer,
    events: stream::Stream,
}

/// A lease this node holds, with the run message it renews along.
struct LeaseState {
    revision: u64,
    expires: u64,
    message: Option<jetstream::Message>,
}

struct Held {
    lease: tokio::sync::Mutex<LeaseState>,
    lost: CancellationToken,
    stop: CancellationToken,
}

/// The jobs of a cluster in JetStream (see the module's notes).
pub struct ClusterJobs {
    node: String,
    client: async_nats::Client,
    js: jetstream::Context,
    /// This node's control subject, once subscribed (`jobs/controls.rs`).
    controls: tokio::sync::Mutex<Option<async_nats::Subscriber>>,
    replicas: usize,
    lease: Duration,
    parts: OnceCell<Parts>,
    /// The leases held, by job id. A std Mutex: lookups only, never held across an await.
    held: Mutex<HashMap<String, Arc<Held>>>,
    /// The leases let go of by a clean shutdown, to be handed over ([`ClusterJobs::stop_held`]).
    handing_back: Mutex<Vec<(String, Arc<Held>)>>,
    /// Cancelled when a clean shutdown begins: no more jobs are claimed.
    draining: CancellationToken,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for ClusterJobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterJobs")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// A lease as stored.
#[derive(serde::Serialize, serde::Deserialize)]
struct LeaseValue {
    node: String,
    /// Until when (ms since the epoch) unless renewed.
    expires: u64,
}

/// A job id as one key or subject token: ids made by the engine are ULIDs (letters and
/// digits); any other id is written in hex, so that no id can reach another's keys.
fn token(id: &str) -> String {
    if !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        id.to_owned()
    } else {
        let hex: String = id.bytes().map(|b| format!("{b:02x}")).collect();
        format!("x-{hex}")
    }
}

fn job_key(id: &str) -> String {
    format!("job.{}", token(id))
}

fn plan_key(id: &str) -> String {
    format!("plan.{}", token(id))
}

fn chunk_key(id: &str, index: u64) -> String {
    format!("chunk.{}.{index}", token(id))
}

fn lease_key(id: &str) -> String {
    format!("lease.{}", token(id))
}

fn event_subject(id: &str) -> String {
    format!("{EVENT_ROOT}.{}", token(id))
}

impl ClusterJobs {
    /// The jobs of `client`'s JetStream for node `node`; leases last `lease` unrenewed.
    pub fn new(
        client: async_nats::Client,
        node: String,
        replicas: usize,
        lease: Duration,
        shutdown: CancellationToken,
    ) -> ClusterJobs {
        ClusterJobs {
            node,
            js: jetstream::new(client.clone()),
            client,
            controls: tokio::sync::Mutex::new(None),
            replicas: replicas.max(1),
            lease,
            parts: OnceCell::new(),
            held: Mutex::new(HashMap::new()),
            handing_back: Mutex::new(Vec::new()),
            draining: CancellationToken::new(),
            shutdown,
        }
    }

    /// Claims no more jobs and lets go of those held (see [`SharedJobs::stop_held`]).
    fn stop_held(&self) -> Vec<String> {
        self.draining.cancel();
        let held: Vec<(String, Arc<Held>)> = self.held().drain().collect();
        let ids = held.iter().map(|(id, _)| id.clone()).collect();
        for (id, held) in &held {
            tracing::info!(job = %id, node = %self.node, "cluster: job handed back (shutdown)");
            // As a lost lease: the engine stops the job here and forgets it, and the lease
            // is renewed no more.
            held.lost.cancel();
            held.stop.cancel();
        }
        self.handing_back
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(held);
        ids
    }

    /// Hands over what [`ClusterJobs::stop_held`] let go of (see [`SharedJobs::give_back`]).
    async fn give_back(&self) {
        let handing_back =
            std::mem::take(&mut *self.handing_back.lock().unwrap_or_else(|e| e.into_inner()));
        if handing_back.is_empty() {
            return;
        }
        let Ok(parts) = self.parts().await else {
            return;
        };
        for (id, held) in handing_back {
            let mut lease = held.lease.lock().await;
            self.give_up(parts, &id, lease.revision, lease.message.take())
                .await;
        }
    }

    /// Drops this node's lease of job `id` (at `revision`), then gives its run message back
    /// for another node to take at once. The lease first: a node that took the message while
    /// the lease still stood would put it back until the lease ran out.
    async fn give_up(
        &self,
        parts: &Parts,
        id: &str,
        revision: u64,
        message: Option<jetstream::Message>,
    ) {
        if let Err(error) = parts
            .kv
            .delete_expect_revision(lease_key(id), Some(revision))
            .await
        {
            // Renewed or taken over meanwhile: whoever holds it now keeps it, and an
            // unrenewed lease runs out as after a crash.
            tracing::debug!(job = %id, %error, "cluster: lease not dropped");
        }
        if let Some(message) = message {
            let _ = message.ack_with(AckKind::Nak(None)).await;
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Held>>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The bucket and streams, set up by the first node that needs them (every node asks for
    /// the same configuration).
    async fn parts(&self) -> Result<&Parts, String> {
        self.parts
            .get_or_try_init(|| async {
                super::while_jetstream_starts(SETUP_WAIT, "job store", || self.set_up()).await
            })
            .await
    }

    async fn set_up(&self) -> Result<Parts, String> {
        // The bucket's stream made as the client's `create_key_value` makes it: that call
        // first reads the account's limits, whose answer from nats-server 2.9 the client
        // cannot parse.
        self.js
            .get_or_create_stream(stream::Config {
                name: format!("KV_{BUCKET}"),
                subjects: vec![format!("$KV.{BUCKET}.>")],
                max_messages_per_subject: 1,
                storage: stream::StorageType::File,
                allow_rollup: true,
                deny_delete: true,
                allow_direct: true,
                discard: stream::DiscardPolicy::New,
                num_replicas: self.replicas,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        let kv = self
            .js
            .get_key_value(BUCKET)
            .await
            .map_err(|e| e.to_string())?;
        let runs = self
            .js
            .get_or_create_stream(stream::Config {
                name: RUNS.to_owned(),
                subjects: vec![RUN_SUBJECT.to_owned()],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                num_replicas: self.replicas,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        let runs = runs
            .get_or_create_consumer(
                RUNNERS,
                consumer::pull::Config {
                    durable_name: Some(RUNNERS.to_owned()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    // A node that stops renewing (it died) gives the job back after its lease.
                    ack_wait: self.lease,
                    max_deliver: -1,
                    max_ack_pending: 100_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        let events = self
            .js
            .get_or_create_stream(stream::Config {
                name: EVENTS.to_owned(),
                subjects: vec![format!("{EVENT_ROOT}.>")],
                max_messages_per_subject: EVENT_LOG_LIMIT as i64,
                storage: stream::StorageType::File,
                num_replicas: self.replicas,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        // A bucket just made in a NATS cluster reaches the other servers a moment later: one
        // read through this node's server proves it is usable from here.
        kv.get("probe").await.map_err(|e| e.to_string())?;
        Ok(Parts { kv, runs, events })
    }

    /// Renews the lease `held` of job `id`; Ok(false) when another node holds it now.
    async fn renew(&self, parts: &Parts, id: &str, held: &Held) -> Result<bool, String> {
        let mut lease = held.lease.lock().await;
        let expires = now_ms() + self.lease.as_millis() as u64;
        let value = lease_value(&self.node, expires)?;
        match parts.kv.update(lease_key(id), value, lease.revision).await {
            Ok(revision) => {
                lease.revision = revision;
                lease.expires = expires;
                if let Some(message) = &lease.message {
                    // The run message stays with this node as long as the lease.
                    if let Err(error) = message.ack_with(AckKind::Progress).await {
                        tracing::debug!(job = %id, %error, "cluster: run message not renewed");
                    }
                }
                Ok(true)
            }
            Err(error) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(false),
            Err(error) => {
                // Unreachable: past its own expiry another node may take the job over, so
                // this node stops first.
                if now_ms() >= lease.expires {
                    Ok(false)
                } else {
                    Err(format!("lease of job {id}: {error}"))
                }
            }
        }
    }

    /// This node lost job `id`: it stops the job.
    fn lose(&self, id: &str) {
        if let Some(held) = self.held().remove(id) {
            tracing::warn!(job = %id, node = %self.node, "cluster: job lease lost; the job stops here");
            // Lost first: whoever waits for the end of the lease then sees why it ended.
            held.lost.cancel();
            held.stop.cancel();
        }
    }

    /// Renews job `id`'s lease every third of its time until it is released or lost.
    async fn keep(self: Arc<Self>, id: String, held: Arc<Held>) {
        let every = self.lease / 3;
        loop {
            tokio::select! {
                _ = held.stop.cancelled() => return,
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let Ok(parts) = self.parts().await else {
                continue;
            };
            match self.renew(parts, &id, &held).await {
                Ok(true) => {}
                Ok(false) => {
                    self.lose(&id);
                    return;
                }
                Err(error) => tracing::warn!(%error, "cluster: lease not renewed; retrying"),
            }
        }
    }

    /// Takes the job of run message `message` if its lease is free or expired.
    async fn take(self: &Arc<Self>, parts: &Parts, message: jetstream::Message) -> Option<Claim> {
        let Ok(id) = String::from_utf8(message.payload.to_vec()) else {
            let _ = message.ack_with(AckKind::Term).await;
            return None;
        };
        let key = lease_key(&id);
        let now = now_ms();
        let expires = now + self.lease.as_millis() as u64;
        let value = lease_value(&self.node, expires).ok()?;
        let retry_soon = AckKind::Nak(Some(Duration::from_millis(500)));
        let revision = match parts.kv.entry(key.clone()).await {
            Ok(Some(entry)) if entry.operation == kv::Operation::Put => {
                let current: Option<LeaseValue> = serde_json::from_slice(&entry.value).ok();
                if let Some(current) = current.filter(|c| c.expires > now) {
                    // Its holder renews it: the message came back early (a NAK, a restart of
                    // the consumer). Back once the lease would have run out.
                    let wait = Duration::from_millis(current.expires - now + 100);
                    let _ = message.ack_with(AckKind::Nak(Some(wait))).await;
                    return None;
                }
                match parts.kv.update(&key, value, entry.revision).await {
                    Ok(revision) => revision,
                    Err(_) => {
                        let _ = message.ack_with(retry_soon).await;
                        return None;
                    }
                }
            }
            Ok(_) => match parts.kv.create(&key, value).await {
                Ok(revision) => revision,
                Err(_) => {
                    let _ = message.ack_with(retry_soon).await;
                    return None;
                }
            },
            Err(error) => {
                tracing::debug!(job = %id, %error, "cluster: lease not read");
                let _ = message.ack_with(retry_soon).await;
                return None;
            }
        };
        if self.draining.is_cancelled() {
            // Claimed while a clean shutdown began: handed over at once.
            self.give_up(parts, &id, revision, Some(message)).await;
            return None;
        }
        match self.read_job(parts, &id).await {
            Ok(Some((record, plan, chunks, last_seq))) => {
                let held = Arc::new(Held {
                    lease: tokio::sync::Mutex::new(LeaseState {
                        revision,
                        expires,
                        message: Some(message),
                    }),
                    lost: CancellationToken::new(),
                    stop: CancellationToken::new(),
                });
                self.held().insert(id.clone(), held.clone());
                tokio::spawn(self.clone().keep(id.clone(), held.clone()));
                tracing::info!(job = %id, node = %self.node, checkpoint = chunks.len(), "cluster: job claimed");
                Some(Claim {
                    id,
                    record,
                    plan,
                    chunks,
                    last_seq,
                    lost: held.lost.clone(),
                    ended: held.stop.clone(),
                })
            }
            Ok(None) => {
                // Gone or finished: nothing to run.
                let _ = message.double_ack().await;
                let _ = parts.kv.delete_expect_revision(&key, Some(revision)).await;
                None
            }
            Err(error) => {
                tracing::warn!(job = %id, %error, "cluster: job not read back; retrying");
                let _ = parts.kv.delete_expect_revision(&key, Some(revision)).await;
                let _ = message.ack_with(retry_soon).await;
                None
            }
        }
    }

    /// Job `id`'s record, plan, checkpoint and last event number; None when it is gone or
    /// finished.
    #[allow(clippy::type_complexity)]
    async fn read_job(
        &self,
        parts: &Parts,
        id: &str,
    ) -> Result<Option<(Vec<u8>, Option<Vec<u8>>, Vec<(u64, Vec<u8>)>, u64)>, String> {
        let Some(record) = parts.kv.get(job_key(id)).await.map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let status: Option<String> = serde_json::from_slice::<serde_json::Value>(&record)
            .ok()
            .and_then(|v| v.get("status").and_then(|s| s.as_str()).map(str::to_owned));
        if matches!(
            status.as_deref(),
            Some("completed" | "failed" | "cancelled")
        ) {
            return Ok(None);
        }
        let plan = parts
            .kv
            .get(plan_key(id))
            .await
            .map_err(|e| e.to_string())?;
        let planned = plan
            .as_ref()
            .and_then(|p| serde_json::from_slice::<Vec<serde_json::Value>>(p).ok())
            .map_or(0, |p| p.len() as u64)
            .min(MAX_CHUNKS);
        // Chunks run in order: the checkpoint is the results from chunk 0 up to the first
        // missing one, read a window at a time.
        let mut chunks = Vec::new();
        let mut next = 0;
        'windows: while next < planned {
            let end = (next + IN_FLIGHT as u64).min(planned);
            let window: Vec<Option<Bytes>> = futures::stream::iter(next..end)
                .map(|index| parts.kv.get(chunk_key(id, index)))
                .buffered(IN_FLIGHT)
                .try_collect()
                .await
                .map_err(|e| e.to_string())?;
            for (offset, result) in window.into_iter().enumerate() {
                match result {
                    Some(result) => chunks.push((next + offset as u64, result.to_vec())),
                    None => break 'windows,
                }
            }
            next = end;
        }
        let last_seq = self.last_seq(parts, id).await?;
        Ok(Some((
            record.to_vec(),
            plan.map(|p| p.to_vec()),
            chunks,
            last_seq,
        )))
    }

    async fn last_seq(&self, parts: &Parts, id: &str) -> Result<u64, String> {
        match parts
            .events
            .get_last_raw_message_by_subject(&event_subject(id))
            .await
        {
            Ok(message) => Ok(header_seq(&message.headers)),
            Err(error) if error.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(0),
            Err(error) => Err(error.to_string()),
        }
    }

    async fn write_all(&self, writes: Vec<JobWrite>) -> Result<HashSet<String>, String> {
        let parts = self.parts().await?;
        let mut fenced = HashSet::new();
        // First the leases this node holds for the jobs written: a lease taken over fences
        // off every write of its job.
        let mut leased: Vec<(String, Arc<Held>)> = Vec::new();
        {
            let held = self.held();
            let mut seen = HashSet::new();
            for write in &writes {
                let id = match write {
                    JobWrite::Job { id, .. }
                    | JobWrite::Plan { id, .. }
                    | JobWrite::Chunk { id, .. }
                    | JobWrite::Event { id, .. } => id,
                    _ => continue,
                };
                if seen.insert(id.clone()) {
                    if let Some(lease) = held.get(id) {
                        leased.push((id.clone(), lease.clone()));
                    }
                }
            }
        }
        let renewed: Vec<(String, Arc<Held>, Result<bool, String>)> = futures::stream::iter(leased)
            .map(|(id, held)| async move {
                let renewed = self.renew(parts, &id, &held).await;
                (id, held, renewed)
            })
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        let mut leases = Vec::new();
        for (id, held, renewed) in renewed {
            if renewed? {
                leases.push((id, held));
            } else {
                self.lose(&id);
                fenced.insert(id);
            }
        }
        self.fence_expired(&leases, &mut fenced).await;
        // Then the records: the last of each job's record and plan, and every chunk result.
        let mut records: HashMap<String, Bytes> = HashMap::new();
        let mut chunks = Vec::new();
        for write in &writes {
            match write {
                JobWrite::Job { id, record } if !fenced.contains(id) => {
                    records.insert(job_key(id), Bytes::from(record.clone()));
                }
                JobWrite::Plan { id, plan } if !fenced.contains(id) => {
                    records.insert(plan_key(id), Bytes::from(plan.clone()));
                }
                JobWrite::Chunk { id, index, result } if !fenced.contains(id) => {
                    chunks.push((id.clone(), *index, Bytes::from(result.clone())));
                }
                _ => {}
            }
        }
        let puts: Vec<Result<u64, String>> =
            futures::stream::iter(records)
                .map(|(key, value)| async move {
                    parts.kv.put(key, value).await.map_err(|e| e.to_string())
                })
                .buffer_unordered(IN_FLIGHT)
                .collect()
                .await;
        for put in puts {
            put?;
        }
        let created: Vec<(String, Result<bool, String>)> = futures::stream::iter(chunks)
            .map(|(id, index, result)| async move {
                let key = chunk_key(&id, index);
                let created = match parts.kv.create(&key, result).await {
                    Ok(_) => Ok(true),
                    // Only the first result of a chunk counts: whoever finds one stored drops
                    // its own and stops, even when the stored one is its own from an attempt
                    // whose answer was lost (the job then moves on from the checkpoint after
                    // its lease, which holds that result).
                    Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => Ok(false),
                    Err(error) => Err(error.to_string()),
                };
                (id, created)
            })
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        for (id, created) in created {
            if !created? {
                tracing::warn!(job = %id, "cluster: a chunk was committed by another node; this node's result is dropped");
                self.lose(&id);
                fenced.insert(id);
            }
        }
        self.fence_expired(&leases, &mut fenced).await;
        // Then the events, in order, for replay from any node.
        let events = writes.iter().filter_map(|write| match write {
            JobWrite::Event { id, seq, body } if !fenced.contains(id) => {
                Some((id.as_str(), *seq, body))
            }
            _ => None,
        });
        self.log_events(events).await?;
        // Last, removals (retention): everything of the job.
        for write in &writes {
            if let JobWrite::Remove { id } = write {
                self.remove(parts, id).await?;
            }
        }
        Ok(fenced)
    }

    /// Logs `events` (job id, sequence number, body) in the event stream, in order.
    async fn log_events<'a>(
        &self,
        events: impl Iterator<Item = (&'a str, u64, &'a Bytes)>,
    ) -> Result<(), String> {
        let mut acks = Vec::new();
        for (id, seq, body) in events {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(SEQ_HEADER, seq.to_string().as_str());
            // A batch written again after a failure publishes its events again: JetStream
            // keeps one of each (its duplicate window is two minutes).
            headers.insert("Nats-Msg-Id", format!("{}.{seq}", token(id)).as_str());
            let ack = self
                .js
                .publish_with_headers(event_subject(id), headers, body.clone())
                .await
                .map_err(|e| e.to_string())?;
            acks.push(ack);
        }
        for ack in acks {
            ack.await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Fences off the jobs of `leases` whose lease ran out meanwhile: this process may have
    /// been stopped (a pause, a SIGSTOP) past its lease, and another node may hold it now
    /// though no compare-and-set has told this one yet.
    async fn fence_expired(&self, leases: &[(String, Arc<Held>)], fenced: &mut HashSet<String>) {
        for (id, held) in leases {
            if fenced.contains(id) {
                continue;
            }
            let expires = held.lease.lock().await.expires;
            if now_ms() >= expires {
                self.lose(id);
                fenced.insert(id.clone());
            }
        }
    }

    async fn remove(&self, parts: &Parts, id: &str) -> Result<(), String> {
        let planned = parts
            .kv
            .get(plan_key(id))
            .await
            .map_err(|e| e.to_string())?
            .and_then(|p| serde_json::from_slice::<Vec<serde_json::Value>>(&p).ok())
            .map_or(0, |p| p.len() as u64)
            .min(MAX_CHUNKS);
        let keys = [job_key(id), plan_key(id), lease_key(id)]
            .into_iter()
            .chain((0..planned).map(|index| chunk_key(id, index)));
        let purged: Vec<Result<(), String>> = futures::stream::iter(keys)
            .map(|key| async move { parts.kv.purge(key).await.map_err(|e| e.to_string()) })
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        for purge in purged {
            purge?;
        }
        parts
            .events
            .purge()
            .filter(event_subject(id))
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    async fn next_claim(self: &Arc<Self>) -> Option<Claim> {
        loop {
            if self.shutdown.is_cancelled() || self.draining.is_cancelled() {
                return None;
            }
            let parts = match self.parts().await {
                Ok(parts) => parts,
                Err(error) => {
                    tracing::error!(%error, "cluster: jobs cannot be taken: JetStream not reachable");
                    tokio::select! {
                        _ = self.shutdown.cancelled() => return None,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            let batch = parts
                .runs
                .batch()
                .max_messages(1)
                .expires(PULL_WAIT)
                .messages()
                .await;
            let mut batch = match batch {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::debug!(%error, "cluster: job pull failed");
                    tokio::select! {
                        _ = self.shutdown.cancelled() => return None,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                    }
                }
            };
            let deadline = tokio::time::Instant::now() + PULL_WAIT + PULL_GRACE;
            let message = tokio::select! {
                _ = self.shutdown.cancelled() => return None,
                _ = self.draining.cancelled() => return None,
                next = tokio::time::timeout_at(deadline, batch.next()) => next,
            };
            if let Ok(Some(Ok(message))) = message {
                if let Some(claim) = self.take(parts, message).await {
                    return Some(claim);
                }
            }
        }
    }
}

/// The sequence number an event carries in the log.
fn header_seq(headers: &async_nats::HeaderMap) -> u64 {
    headers
        .get(SEQ_HEADER)
        .and_then(|v| v.as_str().parse().ok())
        .unwrap_or(0)
}

fn lease_value(node: &str, expires: u64) -> Result<Bytes, String> {
    serde_json::to_vec(&LeaseValue {
        node: node.to_owned(),
        expires,
    })
    .map(Bytes::from)
    .map_err(|e| e.to_string())
}

/// The engine's door to the cluster's jobs.
#[derive(Debug, Clone)]
pub struct SharedJobsLink(pub(super) Arc<ClusterJobs>);

impl SharedJobs for SharedJobsLink {
    fn write(&self, writes: Vec<JobWrite>) -> BoxFuture<'_, Result<HashSet<String>, String>> {
        Box::pin(self.0.write_all(writes))
    }

    fn stop_held(&self) -> Vec<String> {
        self.0.stop_held()
    }

    fn give_back(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.0.give_back())
    }

    fn offer(&self, id: String) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.0.parts().await?;
            // A stream just made reaches the other NATS servers a moment later ("no stream
            // found"): asked again for a while, as the set-up waits for JetStream.
            let deadline = tokio::time::Instant::now() + SETUP_WAIT;
            let mut delay = Duration::from_millis(50);
            loop {
                let offered = async {
                    self.0
                        .js
                        .publish(RUN_SUBJECT, Bytes::from(id.clone()))
                        .await
                        .map_err(|e| e.to_string())?
                        .await
                        .map_err(|e| e.to_string())
                };
                match offered.await {
                    Ok(_) => return Ok(()),
                    Err(error) if tokio::time::Instant::now() + delay < deadline => {
                        tracing::debug!(job = %id, %error, "cluster: job not offered yet; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(1));
                    }
                    Err(error) => return Err(error),
                }
            }
        })
    }

    fn claim(&self) -> BoxFuture<'_, Option<Claim>> {
        Box::pin(self.0.next_claim())
    }

    fn read(&self, id: String) -> BoxFuture<'_, Result<Option<Stored>, String>> {
        Box::pin(async move { self.0.read_stored(&id).await })
    }

    fn events_after(&self, id: String, seq: u64) -> BoxFuture<'_, Result<Vec<Bytes>, String>> {
        Box::pin(async move { self.0.logged_after(&id, seq).await })
    }

    fn forward(
        &self,
        node: String,
        request: ControlRequest,
    ) -> BoxFuture<'_, Result<ControlAnswer, ForwardError>> {
        Box::pin(async move { self.0.ask(&node, &request).await })
    }

    fn next_control(&self) -> BoxFuture<'_, Option<IncomingControl>> {
        Box::pin(self.0.next_request())
    }

    fn update_unheld(
        &self,
        id: String,
        change: UnheldChange,
    ) -> BoxFuture<'_, Result<Unheld, String>> {
        Box::pin(async move { self.0.change_unheld(&id, change).await })
    }

    fn count_open(
        &self,
        user: String,
        id: String,
        max: usize,
    ) -> BoxFuture<'_, Result<bool, String>> {
        Box::pin(async move { self.0.count_open(&user, &id, max).await })
    }

    fn count_closed(&self, user: String, id: String) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move { self.0.count_closed(&user, &id).await })
    }

    fn release(&self, id: String) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let Some(held) = self.0.held().remove(&id) else {
                return;
            };
            held.stop.cancel();
            let lease = held.lease.lock().await;
            if let Some(message) = &lease.message {
                if let Err(error) = message.double_ack().await {
                    tracing::warn!(job = %id, %error, "cluster: run message not acknowledged");
                }
            }
            if let Ok(parts) = self.0.parts().await {
                let _ = parts
                    .kv
                    .delete_expect_revision(lease_key(&id), Some(lease.revision))
                    .await;
            }
        })
    }
}
