//! Figures about the jobs, for dashboards and `/topic/stats`.

use std::collections::HashMap;

use super::model::JobStatus;
use super::JobEngine;

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

impl JobEngine {
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
        for job in state.jobs.waiting() {
            *stats.by_status.entry("pending".to_owned()).or_default() += 1;
            *stats.by_type.entry(job.job_type.to_owned()).or_default() += 1;
        }
        for job in state.jobs.finished() {
            *stats
                .by_status
                .entry(job.status.as_str().to_owned())
                .or_default() += 1;
            *stats.by_type.entry(job.job_type.to_owned()).or_default() += 1;
            match job.status {
                JobStatus::Completed => {
                    completed += 1;
                    if let Some(start) = job.started_at {
                        times.push(job.completed_at.saturating_sub(start));
                    }
                }
                JobStatus::Failed => failed += 1,
                _ => {}
            }
        }
        for job in state.jobs.whole() {
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

    /// Publishes the engine's figures on `/topic/stats`, when anyone watches.
    pub(super) async fn publish_stats(&self) {
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
}
