//! Watching jobs: who may subscribe to `/topic/jobs/...`, the snapshot a new watcher gets,
//! and the `since-seq` replay from the event log.

use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::remote::RemoteView;
use super::JobEngine;
use crate::broker::app::{GuardRefusal, PrepareFuture, Prepared};
use crate::store::StoreError;

impl JobEngine {
    /// The published events of job `id` after `seq` (for `since-seq` replay), as JSON bodies,
    /// in order. Those stored but still queued for publication are left out: they are about to
    /// be delivered live. Call it holding the publication lock (the subscription guard does),
    /// or an event may be published between this read and the subscription.
    ///
    /// A log that cannot be read is an error, never an empty replay: the subscriber would
    /// take the silence for "nothing happened".
    pub(crate) fn events_after(&self, id: &str, seq: u64) -> Result<Vec<Value>, StoreError> {
        // Published ahead of its commit, and perhaps not applied yet: read before the log, so
        // that one announced (and struck off) meanwhile is in the log by then.
        let ahead = self.inner.writer.unannounced().published_ahead(id);
        let logged = self.inner.store.events_after(id, seq)?;
        // Read after the log: an event is queued before it is logged, so one logged by now and
        // not yet published is in this list.
        let pending = self.inner.writer.unannounced().pending(id);
        let mut events = Vec::with_capacity(logged.len() + ahead.len());
        let bodies = logged
            .iter()
            .map(|bytes| &bytes[..])
            .chain(ahead.iter().map(|(_, body)| &body[..]));
        for bytes in bodies {
            let event: Value = serde_json::from_slice(bytes)
                .map_err(|_| crate::store::CorruptRecord("job event"))?;
            let Some(at) = event.get("seq").and_then(Value::as_u64) else {
                continue;
            };
            if at > seq && !pending.contains(&at) {
                events.push((at, event));
            }
        }
        // In seq order, each once (an event published ahead may be in the log already).
        events.sort_by_key(|(at, _)| *at);
        events.dedup_by_key(|(at, _)| *at);
        Ok(events.into_iter().map(|(_, event)| event).collect())
    }
}

/// Why a subscription to `/topic/jobs/...` was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WatchRefused {
    /// `/topic/jobs` itself or a wildcard, by someone who is not an admin.
    #[error("only job admins may watch every job")]
    EveryJob,
    /// Another user's job, or none (the same answer: ids are not confirmed to strangers).
    #[error("no job {0} of yours")]
    NotYours(String),
    /// A `since-seq` that is not a number.
    #[error("since-seq must be a non-negative integer")]
    SinceSeq,
    /// The replay's log could not be read.
    #[error("the job's event log could not be read: {0}")]
    Unreadable(#[source] StoreError),
    /// The job, held by another node, could not be read from the cluster's store.
    #[error("the job could not be read from the cluster's store: {0}")]
    Remote(String),
    /// The snapshot could not be encoded.
    #[error("the job could not be encoded: {0}")]
    Unencodable(#[source] serde_json::Error),
}

/// Guards `/topic/jobs/...`: a job's topic is for its owner and the admins; every job's
/// (`/topic/jobs` itself, or any wildcard) for the admins. A new subscriber first gets the
/// job's current state (`snapshot:true`), or with `since-seq:N` the logged events after N.
impl crate::broker::app::SubscribeGuard for JobEngine {
    fn publication_lock(&self) -> Option<Arc<Mutex<()>>> {
        Some(self.inner.writer.unannounced().publication().clone())
    }

    /// On a cluster member, a job another node holds is read from the cluster's store (its
    /// record and, with `since-seq`, its logged events) before the SUBSCRIBE is decided.
    fn prepare(
        &self,
        _user: &str,
        destination: &str,
        headers: &stompede_protocol::Headers,
    ) -> Option<PrepareFuture> {
        let id = watched_job(destination)?;
        self.held_elsewhere(id)?;
        let since = match headers.get("since-seq") {
            // Refused by `check`, with no need to read anything.
            Some(since) => Some(since.trim().parse::<u64>().ok()?),
            None => None,
        };
        let engine = self.clone();
        let id = id.to_owned();
        Some(Box::pin(async move {
            Box::new(engine.remote_view(&id, since).await) as Prepared
        }))
    }

    fn check(
        &self,
        user: &str,
        destination: &str,
        headers: &stompede_protocol::Headers,
        prepared: Option<&Prepared>,
    ) -> Result<Vec<(stompede_protocol::Headers, bytes::Bytes)>, GuardRefusal> {
        let Some(id) = watched_job(destination) else {
            return if self.is_admin(user) {
                Ok(Vec::new())
            } else {
                Err(WatchRefused::EveryJob.into())
            };
        };
        let since = headers
            .get("since-seq")
            .map(|since| {
                since
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| WatchRefused::SinceSeq)
            })
            .transpose()?;
        if let Some(view) = prepared.and_then(|p| p.downcast_ref::<RemoteView>()) {
            return self.check_remote(user, id, since, view);
        }
        if !self.may_access(user, id) {
            return Err(WatchRefused::NotYours(id.to_owned()).into());
        }
        if let Some(since) = since {
            let events = self
                .events_after(id, since)
                .map_err(WatchRefused::Unreadable)?;
            return Ok(replay(id, events));
        }
        let Some(job) = self.job(id) else {
            return Err(WatchRefused::NotYours(id.to_owned()).into());
        };
        Ok(vec![snapshot(&job)?])
    }
}

impl JobEngine {
    /// [`SubscribeGuard::check`](crate::broker::app::SubscribeGuard::check) for a job another
    /// node holds, from what `prepare` read: the same rule (its owner and the admins), the
    /// same snapshot or replay. Its live events come from its node through the cluster once
    /// the subscription is in place: one made between the read and then is missed, and its
    /// `seq` tells the gap (a `since-seq` subscription fills it).
    fn check_remote(
        &self,
        user: &str,
        id: &str,
        since: Option<u64>,
        view: &RemoteView,
    ) -> Result<Vec<(stompede_protocol::Headers, bytes::Bytes)>, GuardRefusal> {
        let job = match &view.job {
            Ok(Some(job)) if self.is_admin(user) || job.owner == user => job,
            Ok(_) => return Err(WatchRefused::NotYours(id.to_owned()).into()),
            Err(error) => return Err(WatchRefused::Remote(error.clone()).into()),
        };
        if since.is_some() {
            let events = view
                .events
                .as_ref()
                .map_err(|error| WatchRefused::Remote(error.clone()))?;
            return Ok(replay(id, events.clone()));
        }
        Ok(vec![snapshot(job)?])
    }
}

/// The job a destination under `/topic/jobs` names; None for `/topic/jobs` itself and
/// wildcards (every job's).
fn watched_job(destination: &str) -> Option<&str> {
    let rest = destination
        .strip_prefix("/topic/jobs")
        .unwrap_or_default()
        .trim_start_matches('/');
    let id = rest.split('/').next().unwrap_or_default();
    let wildcard = rest.split('/').any(|s| s == "*" || s == "**");
    (!id.is_empty() && !wildcard).then_some(id)
}

/// A `since-seq` replay of job `id`'s `events`, as messages marked `replay:true`.
fn replay(id: &str, events: Vec<Value>) -> Vec<(stompede_protocol::Headers, bytes::Bytes)> {
    events
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
        .collect()
}

/// The `snapshot:true` message of `job`.
fn snapshot(job: &super::Job) -> Result<(stompede_protocol::Headers, bytes::Bytes), WatchRefused> {
    let mut h = stompede_protocol::Headers::new();
    h.push("content-type", "application/json");
    h.push("job-id", job.id.as_str());
    h.push("job-type", job.job_type.as_str());
    h.push("snapshot", "true");
    h.push("seq", job.seq.to_string());
    let body = job.to_bytes().map_err(WatchRefused::Unencodable)?;
    Ok((h, body.into()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use stompede_protocol::Headers;

    use crate::broker::app::{AppRequest, SubscribeGuard};
    use crate::jobs::JobStatus;
    use crate::store::jobs::{JobStore, JobWrite};

    #[tokio::test]
    async fn a_replay_whose_log_cannot_be_read_is_refused_not_silent() {
        let dir = tempfile::tempdir().unwrap();
        let server = crate::jobs::demo_server(dir.path()).await;
        let engine = server.jobs().unwrap().clone();
        let mut headers = Headers::new();
        headers.push("job-type", "demo");
        let reply = engine
            .handle(AppRequest {
                user: "ann".into(),
                session: 1,
                address: "127.0.0.1".into(),
                destination: "/app/jobs".into(),
                headers,
                body: r#"{"chunks":1,"mibPerChunk":0}"#.into(),
                broker: server.broker().clone(),
            })
            .await
            .unwrap();
        let id = reply
            .receipt_headers
            .iter()
            .find(|(name, _)| name == "job-id")
            .map(|(_, value)| value.clone())
            .unwrap();
        for _ in 0..500 {
            if engine.job(&id).unwrap().status == JobStatus::Completed {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(engine.job(&id).unwrap().status, JobStatus::Completed);

        // A damaged entry in the job's event log, as a disk error would leave it.
        JobStore::open(server.broker().store().unwrap())
            .unwrap()
            .apply(&[JobWrite::Event {
                id: id.clone(),
                seq: 999,
                body: bytes::Bytes::from_static(b"{not json"),
            }])
            .unwrap();
        let mut replay = Headers::new();
        replay.push("since-seq", "0");
        let refused = engine
            .check("ann", &format!("/topic/jobs/{id}"), &replay, None)
            .unwrap_err()
            .to_string();
        assert!(refused.contains("event log could not be read"), "{refused}");
        // Without a replay, the snapshot still comes from memory.
        let snapshot = engine
            .check("ann", &format!("/topic/jobs/{id}"), &Headers::new(), None)
            .unwrap();
        assert_eq!(snapshot.len(), 1);
        server.shutdown().await;
    }
}
