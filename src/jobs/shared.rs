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
//! - a job that finished leaves its node ([`SharedJobs::release`]).

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;

use tokio_util::sync::CancellationToken;

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
}
