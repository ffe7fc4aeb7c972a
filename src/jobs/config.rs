//! The engine's settings.

use std::path::PathBuf;
use std::time::Duration;

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
    /// Where and how jobs' terminal events are POSTed.
    pub webhooks: super::webhooks::WebhookConfig,
    /// Where submissions and controls are recorded, with who asked and from where.
    pub audit: Option<crate::audit::Audit>,
    /// This node's name on a cluster member (`--node-name`): each job it starts names it, in
    /// its snapshot and its events (`node`). None on a node on its own.
    pub node: Option<String>,
    /// On a member that keeps its jobs in JetStream, jobs this node takes from the cluster's
    /// queue at once (0: it runs none).
    pub cluster_slots: usize,
}

impl Default for JobsConfig {
    fn default() -> Self {
        let concurrency = std::thread::available_parallelism().map_or(2, |n| n.get());
        JobsConfig {
            concurrency,
            cluster_slots: concurrency,
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
            webhooks: super::webhooks::WebhookConfig::default(),
            audit: None,
            node: None,
        }
    }
}
