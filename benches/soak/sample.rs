//! What the soak watches on the server, read from /proc and its data directory, and the
//! verdict drawn from a run's samples.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::broker::{cpu_seconds, peak_rss_kib, rss_kib};

/// One reading of the server.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    pub at_s: f64,
    pub rss_kib: u64,
    pub peak_rss_kib: u64,
    pub fds: usize,
    pub threads: u64,
    pub data_kib: u64,
    pub cpu_s: f64,
    pub topic_received: u64,
    pub queue_delivered: u64,
    pub jobs_completed: usize,
    pub sessions_churned: u64,
}

/// The server's own counters at `at_s`; the load's are filled in by the caller.
pub fn read(pid: u32, data_dir: &Path, at_s: f64, ticks: f64) -> Result<Sample> {
    let pid_s = pid.to_string();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .context("reading the server's descriptors")?
        .count();
    let threads = std::fs::read_to_string(format!("/proc/{pid}/status"))?
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .context("Threads not in /proc status")?;
    Ok(Sample {
        at_s,
        rss_kib: rss_kib(&pid_s)?,
        peak_rss_kib: peak_rss_kib(&pid_s)?,
        fds,
        threads,
        data_kib: dir_bytes(data_dir, 0) / 1024,
        cpu_s: cpu_seconds(&pid_s, ticks)?,
        topic_received: 0,
        queue_delivered: 0,
        jobs_completed: 0,
        sessions_churned: 0,
    })
}

/// Bytes of regular files under `dir` (symbolic links not followed; depth bounded).
fn dir_bytes(dir: &Path, depth: usize) -> u64 {
    if depth > 16 {
        return 0;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => dir_bytes(&entry.path(), depth + 1),
            Ok(kind) if kind.is_file() => entry.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// How the server's resources moved once warmed up.
#[derive(Debug, Serialize)]
pub struct Verdict {
    /// Mean RSS over the first and the last third of the samples after the warm-up.
    pub rss_early_kib: u64,
    pub rss_late_kib: u64,
    pub rss_growth_pct: f64,
    /// Least-squares slope of RSS over the samples after the warm-up.
    pub rss_slope_kib_per_min: f64,
    pub fds_min: usize,
    pub fds_max: usize,
    pub fds_first: usize,
    pub fds_last: usize,
    pub threads_max: u64,
    pub flat: bool,
}

/// Flat means: the last third's mean RSS within `max_growth_pct` of the first third's, and
/// the descriptors at the end no more than `fd_slack` above those at the start of the window
/// (sessions in flight at the moment of a sample account for a few).
pub fn verdict(after_warmup: &[Sample], max_growth_pct: f64, fd_slack: usize) -> Option<Verdict> {
    if after_warmup.len() < 3 {
        return None;
    }
    let third = after_warmup.len() / 3;
    let mean = |s: &[Sample]| s.iter().map(|x| x.rss_kib).sum::<u64>() / s.len() as u64;
    let early = mean(&after_warmup[..third]);
    let late = mean(&after_warmup[after_warmup.len() - third..]);
    let growth = (late as f64 - early as f64) / early as f64 * 100.0;
    let n = after_warmup.len() as f64;
    let mean_t = after_warmup.iter().map(|s| s.at_s).sum::<f64>() / n;
    let mean_r = after_warmup.iter().map(|s| s.rss_kib as f64).sum::<f64>() / n;
    let (mut cov, mut var) = (0.0, 0.0);
    for s in after_warmup {
        cov += (s.at_s - mean_t) * (s.rss_kib as f64 - mean_r);
        var += (s.at_s - mean_t).powi(2);
    }
    let slope = if var > 0.0 { cov / var * 60.0 } else { 0.0 };
    let fds_first = after_warmup[0].fds;
    let fds_last = after_warmup[after_warmup.len() - 1].fds;
    Some(Verdict {
        rss_early_kib: early,
        rss_late_kib: late,
        rss_growth_pct: growth,
        rss_slope_kib_per_min: slope,
        fds_min: after_warmup.iter().map(|s| s.fds).min().unwrap_or(0),
        fds_max: after_warmup.iter().map(|s| s.fds).max().unwrap_or(0),
        fds_first,
        fds_last,
        threads_max: after_warmup.iter().map(|s| s.threads).max().unwrap_or(0),
        flat: growth <= max_growth_pct && fds_last <= fds_first + fd_slack,
    })
}
