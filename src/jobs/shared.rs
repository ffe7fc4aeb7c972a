//! The job store shared by the nodes of a cluster: the seam between the engine and the
//! cluster's implementation (`cluster/jobs.rs`, in NATS JetStream).
//!
//! On a node on its own there is none: the engine's store is sled and nothing else. With one,
//! sled stays this node's working copy of the jobs it holds (the writer, the merge and the
//! replay read it as before), and the shared store is the truth the nodes agree on:
//!
//! - every change the writer commits is also written there ([`SharedJobs::write`]), fenced by
//!   the job's lease: a node that lost it hears so and drops the change, its events unsent;
//! - a submitted job is offered to every node ([`SharedJobs::offer`]) rather than run where it
//!   was submitted; a node with room takes one ([`SharedJobs::claim`]) under a lease, with its
//!   checkpoint (the chunk results stored so far) and its last event number;
//! - a job that finished leaves its node ([`SharedJobs::release`]), and a node shutting down
//!   cleanly hands the jobs it holds to the others ([`SharedJobs::stop_held`],
//!   [`SharedJobs::give_back`]);
//! - any node reads any job ([`SharedJobs::read`], [`SharedJobs::events_after`]), and its
//!   controls reach the node that holds it ([`SharedJobs::forward`], served from
//!   [`SharedJobs::next_control`]), or, when none does, change its stored record under the
//!   lease, taken for the moment of the change ([`SharedJobs::update_unheld`]);
//! - each user's unfinished jobs are counted for the whole cluster ([`SharedJobs::count_open`],
//!   [`SharedJobs::count_closed`]), so that the per-user limit holds across the nodes.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::service::Rejection;

use crate::store::jobs::JobWrite;

/// A boxed future, as the trait's methods return them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A job this node took from the shared queue, to run from its checkpoint.
#[derive(Debug)]
pub struct Claim {
    /// The job id.
    pub id: String,
    /// Its record as stored (JSON).
    pub record: Vec<u8>,
    /// Its chunk plan, once planned.
    pub plan: Option<Vec<u8>>,
    /// The results of its chunks committed so far, from chunk 0 on: the checkpoint.
    pub chunks: Vec<(u64, Vec<u8>)>,
    /// The sequence number of its last logged event (0 when none).
    pub last_seq: u64,
    /// Cancelled when this node loses the job's lease (another node took it over, or the
    /// lease ran out unrenewed): the node stops the job and forgets it.
    pub lost: CancellationToken,
    /// Cancelled when the lease ends, released or lost (after `lost`, when lost).
    pub ended: CancellationToken,
}

/// A job store shared by the nodes of a cluster (see the module's notes).
pub trait SharedJobs: Send + Sync + std::fmt::Debug + 'static {
    /// Writes `writes` in order; returns the ids of the jobs whose writes were refused
    /// because this node no longer holds their lease (or another node committed their chunk
    /// first): their events must not go out. An error means nothing is known to be written
    /// (the caller writes again).
    fn write(&self, writes: Vec<JobWrite>) -> BoxFuture<'_, Result<HashSet<String>, String>>;

    /// Offers job `id` (its record written) to whichever node has room.
    fn offer(&self, id: String) -> BoxFuture<'_, Result<(), String>>;

    /// Waits for the next job this node is to run, leased to it; None when the link stops.
    fn claim(&self) -> BoxFuture<'_, Option<Claim>>;

    /// Job `id` left this node (finished): its lease and its place in the queue go.
    fn release(&self, id: String) -> BoxFuture<'_, ()>;

    /// A clean shutdown begins: this node claims no more jobs, and lets go of every job it
    /// holds, whose ids it returns (the engine stops them as it stops a job whose lease was
    /// lost). Once their last writes are stored, [`SharedJobs::give_back`] hands them over.
    fn stop_held(&self) -> Vec<String>;

    /// Hands the jobs [`SharedJobs::stop_held`] let go of to the other nodes: their leases
    /// are dropped and their places in the queue given back, so that another node takes each
    /// over from its checkpoint now, not once its lease has run out.
    fn give_back(&self) -> BoxFuture<'_, ()>;

    /// Job `id` as stored, with the node holding it; None when the store has no such job.
    fn read(&self, id: String) -> BoxFuture<'_, Result<Option<Stored>, String>>;

    /// The logged events of job `id` after sequence number `seq`, in order (JSON bodies).
    fn events_after(
        &self,
        id: String,
        seq: u64,
    ) -> BoxFuture<'_, Result<Vec<bytes::Bytes>, String>>;

    /// Asks node `node` to apply `request` to a job it holds.
    fn forward(
        &self,
        node: String,
        request: ControlRequest,
    ) -> BoxFuture<'_, Result<ControlAnswer, ForwardError>>;

    /// Waits for the next control request other nodes sent this node; None when the link
    /// stops.
    fn next_control(&self) -> BoxFuture<'_, Option<IncomingControl>>;

    /// Changes job `id`'s stored record with `change` if no node holds the job: its lease is
    /// taken for the moment of the change (so no node claims the job meanwhile), the record
    /// written with a compare-and-set and the events logged, then the lease let go.
    fn update_unheld(
        &self,
        id: String,
        change: UnheldChange,
    ) -> BoxFuture<'_, Result<Unheld, String>>;

    /// Counts job `id` among `user`'s unfinished jobs unless they have `max` already:
    /// Ok(false) then. Counting a job counted already changes nothing.
    fn count_open(
        &self,
        user: String,
        id: String,
        max: usize,
    ) -> BoxFuture<'_, Result<bool, String>>;

    /// Job `id` of `user` finished (or was never stored): no longer counted.
    fn count_closed(&self, user: String, id: String) -> BoxFuture<'_, Result<(), String>>;
}

/// A job as stored in the shared store, read by any node.
#[derive(Debug)]
pub struct Stored {
    /// Its record (JSON), as its node last wrote it.
    pub record: Vec<u8>,
    /// The node holding its lease (running it, or keeping it paused), if the lease is live.
    pub holder: Option<String>,
}

/// A control action asked of the node holding a job.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ControlRequest {
    /// The job id.
    pub id: String,
    /// Who asks (the holder applies its own access rule to them).
    pub user: String,
    /// `cancel`, `pause`, `resume`, `retry` or `delete`.
    pub action: String,
}

/// The holder's answer to a [`ControlRequest`].
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ControlAnswer {
    /// Done: the job's record after the action (JSON; empty after a delete).
    Done(Vec<u8>),
    /// Refused, as a single node refuses it.
    Refused {
        /// The rejection's code.
        code: String,
        /// The rejection's reason.
        reason: String,
    },
    /// The node does not hold the job (any more): the asker looks for it again.
    NotHere,
}

/// A control request that reached this node, with where its answer goes.
#[derive(Debug)]
pub struct IncomingControl {
    /// What is asked.
    pub request: ControlRequest,
    /// Where the answer goes (dropped unanswered: the asker hears nothing and times out).
    pub reply: oneshot::Sender<ControlAnswer>,
}

/// Why a forwarded control got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// No node of that name listens (it stopped, or died).
    #[error("node {0} does not answer")]
    NoNode(String),
    /// The request or its answer was lost.
    #[error("{0}")]
    Failed(String),
}

/// A change of an unheld job: given its stored record and the sequence number of its last
/// logged event, the new record and its events (sequence number and JSON body), or a refusal.
pub type UnheldChange =
    Box<dyn FnOnce(&[u8], u64) -> Result<(Vec<u8>, Vec<(u64, bytes::Bytes)>), Rejection> + Send>;

/// The outcome of [`SharedJobs::update_unheld`].
#[derive(Debug)]
pub enum Unheld {
    /// Changed: the record now stored.
    Changed(Vec<u8>),
    /// A node holds the job now: ask it.
    HeldBy(String),
    /// No such job in the store.
    Gone,
    /// The change refused it (as a single node would).
    Refused(Rejection),
}
