//! The per-user limit of unfinished jobs across the cluster: each user's unfinished jobs are
//! one key of the bucket (`unfinished.<user>`: job id -> when it was counted, ms), changed
//! with a compare-and-set on its revision by whichever node submits, retries or finishes one.
//!
//! A set of ids rather than a number, so that counting a job twice (a retried write) or
//! closing it twice (a cancel and its worker's end) changes nothing. A node that dies between
//! finishing a job and closing it leaves the id behind: a user found at the limit has the
//! listed jobs checked, and those finished, or never stored a minute after they were counted,
//! are dropped.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::StreamExt;

use super::{job_key, token, ClusterJobs, Parts, IN_FLIGHT};
use crate::clock::now_ms;

/// Tries at a contended compare-and-set before giving up.
const TRIES: usize = 32;
/// How long a counted job may go unstored before it is taken for one that never was.
const UNSTORED_MS: u64 = 60_000;

type Unfinished = BTreeMap<String, u64>;

fn unfinished_key(user: &str) -> String {
    format!("unfinished.{}", token(user))
}

impl ClusterJobs {
    /// Counts job `id` among `user`'s unfinished jobs unless they have `max` already.
    pub(super) async fn count_open(
        &self,
        user: &str,
        id: &str,
        max: usize,
    ) -> Result<bool, String> {
        let parts = self.parts().await?;
        let mut last = String::new();
        for _ in 0..TRIES {
            let (mut unfinished, revision) = self.unfinished(parts, user).await?;
            if unfinished.contains_key(id) {
                return Ok(true);
            }
            if unfinished.len() >= max {
                self.drop_finished(parts, &mut unfinished).await?;
                if unfinished.len() >= max {
                    return Ok(false);
                }
            }
            unfinished.insert(id.to_owned(), now_ms());
            match self
                .put_unfinished(parts, user, &unfinished, revision)
                .await
            {
                Ok(()) => return Ok(true),
                Err(error) => last = error,
            }
        }
        Err(format!(
            "the unfinished jobs of {user} could not be counted: {last}"
        ))
    }

    /// Job `id` of `user` is no longer counted.
    pub(super) async fn count_closed(&self, user: &str, id: &str) -> Result<(), String> {
        let parts = self.parts().await?;
        let mut last = String::new();
        for _ in 0..TRIES {
            let (mut unfinished, revision) = self.unfinished(parts, user).await?;
            if unfinished.remove(id).is_none() {
                return Ok(());
            }
            match self
                .put_unfinished(parts, user, &unfinished, revision)
                .await
            {
                Ok(()) => return Ok(()),
                Err(error) => last = error,
            }
        }
        Err(format!(
            "the unfinished jobs of {user} could not be counted: {last}"
        ))
    }

    /// `user`'s unfinished jobs and the key's revision (None when it was never written).
    async fn unfinished(
        &self,
        parts: &Parts,
        user: &str,
    ) -> Result<(Unfinished, Option<u64>), String> {
        let entry = parts
            .kv
            .entry(unfinished_key(user))
            .await
            .map_err(|e| e.to_string())?;
        match entry {
            None => Ok((Unfinished::new(), None)),
            Some(entry) => {
                let unfinished = if entry.value.is_empty() {
                    Unfinished::new()
                } else {
                    serde_json::from_slice(&entry.value)
                        .map_err(|e| format!("unreadable count of {user}'s jobs: {e}"))?
                };
                Ok((unfinished, Some(entry.revision)))
            }
        }
    }

    /// Writes `user`'s unfinished jobs if the key is still at `revision`.
    async fn put_unfinished(
        &self,
        parts: &Parts,
        user: &str,
        unfinished: &Unfinished,
        revision: Option<u64>,
    ) -> Result<(), String> {
        let value = Bytes::from(serde_json::to_vec(unfinished).map_err(|e| e.to_string())?);
        let key = unfinished_key(user);
        match revision {
            Some(revision) => parts
                .kv
                .update(&key, value, revision)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            None => parts
                .kv
                .create(&key, value)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
        }
    }

    /// Drops from `unfinished` the jobs that finished, or were counted and never stored.
    async fn drop_finished(
        &self,
        parts: &Parts,
        unfinished: &mut Unfinished,
    ) -> Result<(), String> {
        let now = now_ms();
        let ids: Vec<(String, u64)> = unfinished
            .iter()
            .map(|(id, at)| (id.clone(), *at))
            .collect();
        let states: Vec<(String, u64, Result<Option<Bytes>, String>)> = futures::stream::iter(ids)
            .map(|(id, at)| async move {
                let record = parts.kv.get(job_key(&id)).await.map_err(|e| e.to_string());
                (id, at, record)
            })
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        for (id, at, record) in states {
            let gone = match record? {
                None => now.saturating_sub(at) > UNSTORED_MS,
                Some(record) => serde_json::from_slice::<serde_json::Value>(&record)
                    .ok()
                    .and_then(|job| {
                        job.get("status")
                            .and_then(|s| s.as_str())
                            .map(str::to_owned)
                    })
                    .is_some_and(|status| {
                        matches!(status.as_str(), "completed" | "failed" | "cancelled")
                    }),
            };
            if gone {
                unfinished.remove(&id);
            }
        }
        Ok(())
    }
}
