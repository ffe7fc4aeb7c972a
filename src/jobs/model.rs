//! The job model: what is stored for each job and sent to its watchers (JSON, camelCase, as
//! `protocol/docs/jobs.md` specifies).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Waiting to run (possibly delayed, possibly between attempts).
    Pending,
    /// Waiting for the child jobs it started (an `extract` job's OCR) to finish.
    Waiting,
    /// A worker is running its chunks.
    Processing,
    /// Stopped at a chunk boundary until resumed.
    Paused,
    /// Every chunk done and merged.
    Completed,
    /// Gave up: a permanent error, attempts exhausted, or its deadline passed.
    Failed,
    /// Stopped by its owner or an admin.
    Cancelled,
}

impl JobStatus {
    /// The status as the wire and the store spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Waiting => "waiting",
            JobStatus::Processing => "processing",
            JobStatus::Paused => "paused",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// True once the job will not run again without a retry.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

/// Progress as watchers see it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// Units done (rows, pages, bytes: the job type says).
    pub processed: u64,
    /// Units in all.
    pub total: u64,
    /// 0 to 100.
    pub percentage: f64,
    /// What the job is doing, in words.
    pub step: String,
    /// Chunks completed.
    pub chunks_completed: u64,
    /// Chunks planned.
    pub chunk_count: u64,
    /// Estimated time left.
    pub estimated_time_remaining_ms: Option<u64>,
    /// Time spent running so far (all attempts).
    pub elapsed_ms: u64,
    /// The input file being worked on (1-based), for job types that read several files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_file: Option<u64>,
    /// How many input files the job reads, when it reads several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_files: Option<u64>,
}

/// Why a job or chunk failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
#[error("{code}: {message}")]
pub struct JobError {
    /// A stable code (`invalid_input`, `timeout`, `expired`, ...).
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
    /// Whether trying again may help.
    #[serde(default)]
    pub retryable: bool,
}

impl JobError {
    /// An error that retrying may cure (a timeout, a transient failure).
    pub fn retryable(code: impl Into<String>, message: impl Into<String>) -> Self {
        JobError {
            code: code.into(),
            message: message.into(),
            retryable: true,
        }
    }

    /// What a chunk returns when it stopped early because the job is being paused
    /// ([`crate::jobs::ChunkContext::is_interrupted`]): the chunk runs again, from its start,
    /// when the job resumes, and is not counted as a failed attempt.
    pub fn interrupted() -> Self {
        JobError::retryable(
            "interrupted",
            "the chunk stopped early: the job is being paused",
        )
    }

    /// Whether this is [`JobError::interrupted`].
    pub fn is_interrupted(&self) -> bool {
        self.code == "interrupted"
    }

    /// An error that retrying cannot cure (bad input): the job fails at once.
    pub fn permanent(code: impl Into<String>, message: impl Into<String>) -> Self {
        JobError {
            code: code.into(),
            message: message.into(),
            retryable: false,
        }
    }
}

/// One planned chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChunkPlan {
    /// What it covers, for people ("rows 50,001 to 100,000").
    pub label: String,
    /// What the job type needs to run it.
    pub params: Value,
    /// Units it covers (for progress).
    pub units: u64,
}

/// A job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// Sortable id (ULID).
    pub id: String,
    /// The job type.
    #[serde(rename = "type")]
    pub job_type: String,
    /// Who submitted it.
    pub owner: String,
    /// Where it is.
    pub status: JobStatus,
    /// Higher runs first.
    pub priority: i64,
    /// The submitted parameters.
    pub params: Value,
    /// Attempts started so far.
    pub attempts: u32,
    /// Attempts allowed, the first included.
    pub max_attempts: u32,
    /// Not before this time (ms since the epoch).
    pub run_at: u64,
    /// Submission time (ms since the epoch).
    pub created_at: u64,
    /// First start (ms since the epoch).
    pub started_at: Option<u64>,
    /// End (ms since the epoch).
    pub completed_at: Option<u64>,
    /// Progress.
    pub progress: Progress,
    /// The last error.
    pub error: Option<JobError>,
    /// The merged result, once completed.
    pub result: Option<Value>,
    /// The plan, made when the job first starts. Stored once, apart from the job record, so
    /// that a chunk's commit writes a small record however many chunks there are.
    #[serde(skip)]
    pub chunks: std::sync::Arc<Vec<ChunkPlan>>,
    /// Chunks done, which are always the first ones: chunks run in order, so the checkpoint
    /// is this count (with each done chunk's result stored under its index).
    pub chunks_done: u64,
    /// The client's idempotency key, if any.
    pub idempotency_key: Option<String>,
    /// The client's correlation id, echoed in events.
    pub correlation_id: Option<String>,
    /// The last event sequence number used.
    pub seq: u64,
    /// Time spent running before the current attempt, in ms.
    pub run_ms: u64,
    /// The job that started this one as its child, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// The child jobs this one started and waits for (`children.rs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<String>,
    /// Where its terminal event is POSTed, and how that went (`webhooks.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<Webhook>,
    /// On a cluster member, the node that runs (or last ran) it: set as each attempt starts,
    /// so that an operator can tell where a job's work and logs are. Absent before its first
    /// start and on a node that is not in a cluster (there is only one place it can run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// A job's callback: its terminal event is POSTed to `url`, signed, retried with backoff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    /// Where to POST.
    pub url: String,
    /// Where delivery stands.
    pub status: WebhookStatus,
    /// Deliveries tried for the current terminal event.
    pub attempts: u32,
    /// The HTTP status of the last attempt, when it got an answer.
    pub last_status: Option<u16>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When the next attempt is due (ms since the epoch), after a failed one.
    pub next_attempt_at: Option<u64>,
    /// When it was delivered (ms since the epoch).
    pub delivered_at: Option<u64>,
}

impl Webhook {
    /// A callback to `url`, nothing delivered yet.
    pub fn new(url: String) -> Webhook {
        Webhook {
            url,
            status: WebhookStatus::Pending,
            attempts: 0,
            last_status: None,
            last_error: None,
            next_attempt_at: None,
            delivered_at: None,
        }
    }
}

/// Where a webhook's delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookStatus {
    /// To deliver once the job finishes (again, after a retry), or being retried.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Every attempt failed.
    Failed,
}

impl Job {
    /// The job as stored.
    pub fn to_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// Puts a failed or cancelled job back to pending, as a retry does: due `now`, its
    /// attempts counted afresh, its error forgotten, and its next terminal event delivered to
    /// its webhook afresh. What becomes of its children is the caller's to decide.
    pub(crate) fn reset_for_retry(&mut self, now: u64) {
        self.status = JobStatus::Pending;
        self.attempts = 0;
        self.error = None;
        self.completed_at = None;
        self.run_at = now;
        self.created_at = now;
        if let Some(webhook) = &mut self.webhook {
            *webhook = Webhook::new(std::mem::take(&mut webhook.url));
        }
    }
}

/// Parses a priority: an integer or `low`, `normal`, `high`, `critical`.
pub fn parse_priority(value: &str) -> Option<i64> {
    match value.trim() {
        "low" => Some(-10),
        "normal" => Some(0),
        "high" => Some(10),
        "critical" => Some(20),
        other => other.parse().ok(),
    }
}

/// A new id: a ULID (48-bit millisecond time, then 80 random bits from the operating
/// system), in Crockford's base 32. Ids sort by their millisecond; within one they are random,
/// so that no job's id can be guessed from another's (the job topics are guarded by owner,
/// and an id is what a watcher names). Run order does not depend on them (see `scheduler.rs`).
pub fn new_id() -> Result<String, getrandom::Error> {
    let mut random = [0u8; 16];
    getrandom::fill(&mut random[6..])?;
    let ms = crate::clock::now_ms() as u128 & ((1 << 48) - 1);
    let value = (ms << 80) | u128::from_be_bytes(random);
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    Ok((0..26)
        .rev()
        .map(|i| ALPHABET[((value >> (i * 5)) & 31) as usize] as char)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_and_cannot_be_guessed_from_each_other() {
        let a = new_id().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_id().unwrap();
        assert_eq!(a.len(), 26);
        assert!(a < b, "{a} {b}");
        // The 16 characters after the time (80 bits) differ between ids of one millisecond.
        let same_ms: std::collections::HashSet<String> = (0..1000)
            .map(|_| new_id().unwrap()[10..].to_owned())
            .collect();
        assert_eq!(same_ms.len(), 1000);
    }

    #[test]
    fn priorities() {
        assert_eq!(parse_priority("high"), Some(10));
        assert_eq!(parse_priority("-3"), Some(-3));
        assert_eq!(parse_priority("urgent"), None);
    }
}
