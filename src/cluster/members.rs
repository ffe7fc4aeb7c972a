//! Membership: who else is in the cluster, as this node hears it.
//!
//! Every node announces itself on [`SUBJECT`] once per heartbeat interval, and listens there
//! for the others. A member is one heard within the last [`MISSES`] of its own intervals
//! (each heartbeat says how often its sender beats, so nodes with different settings agree):
//! a node that misses that many is gone from the view. A node that shuts down says so with a
//! last heartbeat marked `leaving`, so the others drop it at once rather than after the misses.
//!
//! The view is what `/cluster`, `/health` and `/metrics` show; nothing routes by it (routing is
//! by interest, `interest.rs`), so a stale view costs an operator's accuracy, never a message.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::Shared;
use crate::clock::now_ms;

/// The subject heartbeats travel on. No destination key maps to it: every key's subject ends
/// with the token `_` (`subject.rs`), this one has two tokens and no `_`.
pub(super) const SUBJECT: &str = "stompede.members";

/// Heartbeats a member may miss before it is taken for gone.
pub const MISSES: u32 = 3;

/// One announcement (JSON on the wire, camelCase like every other name we send).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Heartbeat {
    /// The sender's node name.
    node: String,
    /// How often it beats, in ms.
    interval_ms: u64,
    /// When it sent this one (its clock, ms since the epoch).
    sent_at: u64,
    /// When it started (ms since the epoch): a restarted node under the same name shows as
    /// new.
    started_at: u64,
    /// Its last heartbeat: it is shutting down.
    #[serde(default)]
    leaving: bool,
}

/// What this node last heard from one member.
#[derive(Debug)]
struct Seen {
    heard: Instant,
    interval: Duration,
    /// Arrival time minus sending time, by the two nodes' clocks.
    transit_ms: i64,
    started_at: u64,
}

impl Seen {
    fn is_gone(&self, now: Instant) -> bool {
        now.duration_since(self.heard) > self.interval * MISSES
    }
}

/// The members heard. A std Mutex: map updates and reads only, never across an await.
#[derive(Debug, Default)]
pub(super) struct Members {
    by_node: Mutex<BTreeMap<String, Seen>>,
}

/// One member as `/cluster` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// Its node name.
    pub node: String,
    /// True for the node answering.
    #[serde(rename = "self")]
    pub this: bool,
    /// Time since its last heartbeat arrived, in ms (0 for this node): its lag as seen here.
    pub last_heartbeat_age_ms: u64,
    /// How often it beats, in ms.
    pub heartbeat_interval_ms: u64,
    /// Its last heartbeat's arrival time minus its sending time, by the two nodes' clocks (the
    /// transit time when the clocks agree; clock skew otherwise).
    pub transit_ms: i64,
    /// When it started (ms since the epoch, its clock).
    pub started_at: u64,
}

impl Members {
    /// The members heard within their misses, this node first.
    pub(super) fn view(&self, shared: &Shared) -> Vec<Member> {
        let now = Instant::now();
        let mut view = vec![Member {
            node: shared.node.clone(),
            this: true,
            last_heartbeat_age_ms: 0,
            heartbeat_interval_ms: shared.heartbeat.as_millis() as u64,
            transit_ms: 0,
            started_at: shared.started_at,
        }];
        let mut by_node = self.by_node.lock().unwrap_or_else(|e| e.into_inner());
        let before = by_node.len();
        by_node.retain(|_, seen| !seen.is_gone(now));
        let lost = before - by_node.len();
        view.extend(by_node.iter().map(|(node, seen)| Member {
            node: node.clone(),
            this: false,
            last_heartbeat_age_ms: now.duration_since(seen.heard).as_millis() as u64,
            heartbeat_interval_ms: seen.interval.as_millis() as u64,
            transit_ms: seen.transit_ms,
            started_at: seen.started_at,
        }));
        drop(by_node);
        if lost > 0 {
            shared
                .metrics
                .members_lost
                .fetch_add(lost as u64, Ordering::Relaxed);
        }
        view
    }

    /// Records a heartbeat; returns true when it brought a member in (new, or back).
    fn heard(&self, beat: &Heartbeat) -> bool {
        let now = Instant::now();
        let mut by_node = self.by_node.lock().unwrap_or_else(|e| e.into_inner());
        if beat.leaving {
            by_node.remove(&beat.node);
            return false;
        }
        let seen = Seen {
            heard: now,
            // Never below 10 ms: a sender announcing 0 would be gone between two reads.
            interval: Duration::from_millis(beat.interval_ms.max(10)),
            transit_ms: now_ms() as i64 - beat.sent_at as i64,
            started_at: beat.started_at,
        };
        match by_node.insert(beat.node.clone(), seen) {
            Some(old) => old.is_gone(now) || old.started_at != beat.started_at,
            None => true,
        }
    }
}

/// Announces this node every interval while connected, and once more, `leaving`, at shutdown.
pub(super) async fn announce(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(shared.heartbeat);
    // A tick missed while NATS was away is not worth a burst of them after.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        // Skipped while disconnected: the client would buffer it, and a heartbeat delivered
        // late says the sender is alive at a time it was not heard.
        if shared.client.connection_state() == async_nats::connection::State::Connected {
            publish(&shared, false).await;
        }
    }
    // Best effort, bounded: a node stopping must not wait for NATS.
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        publish(&shared, true).await;
        let _ = shared.client.flush().await;
    })
    .await;
}

async fn publish(shared: &Shared, leaving: bool) {
    let beat = Heartbeat {
        node: shared.node.clone(),
        interval_ms: shared.heartbeat.as_millis() as u64,
        sent_at: now_ms(),
        started_at: shared.started_at,
        leaving,
    };
    let payload = match serde_json::to_vec(&beat) {
        Ok(payload) => payload,
        Err(error) => {
            tracing::error!(%error, "cluster: heartbeat not encoded");
            return;
        }
    };
    if let Err(error) = shared.client.publish(SUBJECT, payload.into()).await {
        tracing::debug!(%error, "cluster: heartbeat not sent");
    }
}

/// Listens for the other nodes' heartbeats until shutdown. The client restores the
/// subscription after a reconnection by itself.
pub(super) async fn listen(shared: Arc<Shared>) {
    let mut subscriber = loop {
        match shared.client.subscribe(SUBJECT).await {
            Ok(subscriber) => break subscriber,
            Err(error) => {
                tracing::warn!(%error, "cluster: membership subscription failed; retrying");
                tokio::select! {
                    _ = shared.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(shared.heartbeat) => {}
                }
            }
        }
    };
    loop {
        let message = tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            message = subscriber.next() => message,
        };
        let Some(message) = message else { break };
        let beat: Heartbeat = match serde_json::from_slice(&message.payload) {
            Ok(beat) => beat,
            Err(error) => {
                shared.metrics.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "cluster: heartbeat refused");
                continue;
            }
        };
        if beat.node == shared.node {
            // no_echo keeps this node's own away: another node took the same name.
            shared.metrics.own_skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        shared.metrics.heartbeats_in.fetch_add(1, Ordering::Relaxed);
        if beat.leaving {
            shared.metrics.members_left.fetch_add(1, Ordering::Relaxed);
            tracing::info!(member = %beat.node, "cluster: member left");
        }
        if shared.members.heard(&beat) {
            shared
                .metrics
                .members_joined
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(member = %beat.node, "cluster: member joined");
        }
    }
    let _ = subscriber.unsubscribe().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(node: &str, started_at: u64, leaving: bool) -> Heartbeat {
        Heartbeat {
            node: node.into(),
            interval_ms: 1_000,
            sent_at: now_ms(),
            started_at,
            leaving,
        }
    }

    #[test]
    fn a_member_joins_once_comes_back_after_a_restart_and_leaves_when_it_says_so() {
        let members = Members::default();
        assert!(members.heard(&beat("b", 1, false)));
        assert!(!members.heard(&beat("b", 1, false)), "already a member");
        assert!(members.heard(&beat("b", 2, false)), "restarted: new again");
        assert!(!members.heard(&beat("b", 2, true)));
        assert!(members.by_node.lock().unwrap().is_empty());
    }

    #[test]
    fn a_member_is_gone_after_missing_its_heartbeats() {
        let seen = Seen {
            heard: Instant::now(),
            interval: Duration::from_millis(100),
            transit_ms: 0,
            started_at: 0,
        };
        let now = seen.heard;
        assert!(!seen.is_gone(now + Duration::from_millis(300)));
        assert!(seen.is_gone(now + Duration::from_millis(301)));
    }
}
