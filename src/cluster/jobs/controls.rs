//! Controls from any node: a request to the node holding a job, on that node's subject
//! `stompede.jobctl.<node>`, answered by its engine; and the change of a job no node holds
//! (waiting in the work queue, or finished on a node that is gone), made under its lease,
//! taken for the moment of the change.

use std::time::Duration;

use async_nats::jetstream::kv;
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::oneshot;

use super::{job_key, lease_key, lease_value, token, ClusterJobs, LeaseValue};
use crate::clock::now_ms;
use crate::jobs::shared::{
    ControlAnswer, ControlRequest, ForwardError, IncomingControl, Unheld, UnheldChange,
};

const CONTROL_ROOT: &str = "stompede.jobctl";
/// How long a forwarded control waits for its answer: the holder applies it to its memory and
/// stores it, which takes milliseconds unless its store is in trouble.
const ANSWER_WAIT: Duration = Duration::from_secs(10);
/// How long a lease taken for a change lasts. Short: a node that pulls the job's run
/// message meanwhile waits for it to run out, and a node that dies mid-change holds the job
/// no longer than this.
const CHANGE_LEASE: Duration = Duration::from_secs(2);
/// Tries at taking a contended lease for a change before giving up.
const CHANGE_TRIES: usize = 3;
/// Largest control request served (an id, a user name and an action).
const MAX_REQUEST: usize = 4096;

fn control_subject(node: &str) -> String {
    format!("{CONTROL_ROOT}.{}", token(node))
}

impl ClusterJobs {
    /// Asks node `node` to apply `request` to a job it holds.
    pub(super) async fn ask(
        &self,
        node: &str,
        request: &ControlRequest,
    ) -> Result<ControlAnswer, ForwardError> {
        let payload =
            serde_json::to_vec(request).map_err(|e| ForwardError::Failed(e.to_string()))?;
        let asked = self
            .client
            .request(control_subject(node), Bytes::from(payload));
        let answer = match tokio::time::timeout(ANSWER_WAIT, asked).await {
            Err(_) => {
                return Err(ForwardError::Failed(format!(
                    "node {node} did not answer within {} s",
                    ANSWER_WAIT.as_secs()
                )))
            }
            Ok(Err(error)) if error.kind() == async_nats::RequestErrorKind::NoResponders => {
                return Err(ForwardError::NoNode(node.to_owned()))
            }
            Ok(Err(error)) => return Err(ForwardError::Failed(error.to_string())),
            Ok(Ok(answer)) => answer,
        };
        serde_json::from_slice(&answer.payload)
            .map_err(|e| ForwardError::Failed(format!("unreadable answer from {node}: {e}")))
    }

    /// The next control request sent to this node; None once the link stops. The subject is
    /// subscribed on the first call.
    pub(super) async fn next_request(&self) -> Option<IncomingControl> {
        let mut subscriber = self.controls.lock().await;
        loop {
            if subscriber.is_none() {
                match self.client.subscribe(control_subject(&self.node)).await {
                    Ok(subscribed) => *subscriber = Some(subscribed),
                    Err(error) => {
                        tracing::error!(%error, "cluster: job controls not subscribed; retrying");
                        tokio::select! {
                            _ = self.shutdown.cancelled() => return None,
                            _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        }
                    }
                }
            }
            let next = {
                let Some(subscribed) = subscriber.as_mut() else {
                    continue;
                };
                tokio::select! {
                    _ = self.shutdown.cancelled() => return None,
                    next = subscribed.next() => next,
                }
            };
            let Some(message) = next else {
                // The subscription ended (the client closed): subscribe again.
                *subscriber = None;
                continue;
            };
            let Some(reply_to) = message.reply.clone() else {
                continue;
            };
            if message.payload.len() > MAX_REQUEST {
                continue;
            }
            let Ok(request) = serde_json::from_slice::<ControlRequest>(&message.payload) else {
                tracing::debug!("cluster: unreadable job control request ignored");
                continue;
            };
            let (reply, answer) = oneshot::channel();
            let client = self.client.clone();
            tokio::spawn(async move {
                // Dropped unanswered (the engine stopped): the asker times out.
                let Ok(answer) = answer.await else { return };
                match serde_json::to_vec(&answer) {
                    Ok(body) => {
                        if let Err(error) = client.publish(reply_to, Bytes::from(body)).await {
                            tracing::warn!(%error, "cluster: job control answer not sent");
                        }
                    }
                    Err(error) => {
                        tracing::error!(%error, "cluster: job control answer not encoded")
                    }
                }
            });
            return Some(IncomingControl { request, reply });
        }
    }

    /// Changes job `id`'s record with `change` unless a node holds the job (see
    /// `SharedJobs::update_unheld`).
    pub(super) async fn change_unheld(
        &self,
        id: &str,
        change: UnheldChange,
    ) -> Result<Unheld, String> {
        let parts = self.parts().await?;
        let key = lease_key(id);
        let mut taken = None;
        for _ in 0..CHANGE_TRIES {
            let now = now_ms();
            let value = lease_value(&self.node, now + CHANGE_LEASE.as_millis() as u64)?;
            let attempt = match parts
                .kv
                .entry(key.clone())
                .await
                .map_err(|e| e.to_string())?
            {
                Some(entry) if entry.operation == kv::Operation::Put => {
                    let current: Option<LeaseValue> = serde_json::from_slice(&entry.value).ok();
                    if let Some(current) = current.filter(|c| c.expires > now) {
                        return Ok(Unheld::HeldBy(current.node));
                    }
                    parts.kv.update(&key, value, entry.revision).await.ok()
                }
                _ => parts.kv.create(&key, value).await.ok(),
            };
            if attempt.is_some() {
                taken = attempt;
                break;
            }
        }
        let Some(lease) = taken else {
            return Err(format!("the lease of job {id} is contended; try again"));
        };
        let changed = self.change_leased(parts, id, change).await;
        // Let go whatever happened: the next claim need not wait for it to run out.
        if let Err(error) = parts.kv.delete_expect_revision(&key, Some(lease)).await {
            tracing::debug!(job = %id, %error, "cluster: change lease not let go; it runs out");
        }
        changed
    }

    async fn change_leased(
        &self,
        parts: &super::Parts,
        id: &str,
        change: UnheldChange,
    ) -> Result<Unheld, String> {
        let Some(entry) = parts
            .kv
            .entry(job_key(id))
            .await
            .map_err(|e| e.to_string())?
            .filter(|entry| entry.operation == kv::Operation::Put)
        else {
            return Ok(Unheld::Gone);
        };
        let last_seq = self.last_seq(parts, id).await?;
        let (record, events) = match change(&entry.value, last_seq) {
            Ok(changed) => changed,
            Err(rejection) => return Ok(Unheld::Refused(rejection)),
        };
        // Under the lease no node writes the record; a node fenced off a moment ago may still
        // have, and then this change is refused rather than written over it.
        parts
            .kv
            .update(job_key(id), Bytes::from(record.clone()), entry.revision)
            .await
            .map_err(|e| format!("job {id} changed meanwhile: {e}"))?;
        self.log_events(events.iter().map(|(seq, body)| (id, *seq, body)))
            .await?;
        Ok(Unheld::Changed(record))
    }
}
