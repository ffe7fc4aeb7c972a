//! The node's one NATS connection: how it is opened (servers, credentials, TLS), what its
//! events do to the cluster's counters, and the outbound pump that publishes, in order, what
//! the broker forwards.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{ClusterError, ClusterMetrics, ClusterSettings, Shared};

/// One message on its way to NATS.
pub(super) struct Outbound {
    pub subject: String,
    pub payload: Bytes,
    /// Answered once the durable subscriptions' stream holds the message (a persistent topic
    /// message: `durables.rs`).
    pub kept: Option<Kept>,
}

/// Where the answer for a message the durable subscriptions keep goes.
pub(super) type Kept = tokio::sync::oneshot::Sender<Result<(), String>>;

/// Opens the connection. It reconnects by itself, forever, with the client's backoff; the
/// first connection is waited for up to `settings.connect_timeout`, and a node whose NATS is
/// not there yet starts anyway, not ready (`/ready`) until it is.
pub(super) async fn connect(
    settings: &ClusterSettings,
    metrics: Arc<ClusterMetrics>,
) -> Result<async_nats::Client, ClusterError> {
    let servers = settings
        .servers
        .iter()
        .map(|url| {
            url.parse::<async_nats::ServerAddr>()
                .map_err(|e| ClusterError::Address(format!("{url}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if servers.is_empty() {
        return Err(ClusterError::Address("no NATS server given".into()));
    }
    let mut options = async_nats::ConnectOptions::new();
    if let Some(path) = &settings.credentials_file {
        options = options
            .credentials_file(path)
            .await
            .map_err(|e| ClusterError::Credentials(format!("{}: {e}", path.display())))?;
    }
    if let (Some(user), Some(password)) = (&settings.user, &settings.password) {
        options = options.user_and_password(user.clone(), password.clone());
    }
    if let Some(token) = &settings.token {
        options = options.token(token.clone());
    }
    if let Some(ca) = &settings.ca_file {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    let (connected_tx, mut connected) = tokio::sync::watch::channel(false);
    let events = metrics.clone();
    let options = options
        .name(format!("stompede {}", settings.node))
        // A node's own publications are delivered locally already: the server sends none of
        // them back.
        .no_echo()
        .subscription_capacity(settings.subscription_capacity)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .reconnect_delay_callback(|attempt| {
            // Quick at first (a NATS restart is back within a second or two), at most 2 s.
            Duration::from_millis((100 * attempt as u64).clamp(100, 2_000))
        })
        .event_callback(move |event| {
            let events = events.clone();
            let connected_tx = connected_tx.clone();
            async move {
                match event {
                    async_nats::Event::Connected => {
                        events.connects.fetch_add(1, Ordering::Relaxed);
                        let _ = connected_tx.send(true);
                        tracing::info!("cluster: connected to NATS");
                    }
                    async_nats::Event::Disconnected => {
                        events.disconnects.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!("cluster: NATS connection lost; reconnecting");
                    }
                    async_nats::Event::SlowConsumer(sid) => {
                        // One message dropped by the client's bounded subscription channel
                        // (a lower bound: the event channel itself may drop under a storm).
                        events.dropped_inbound.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(sid, "cluster: slow consumer, message dropped");
                    }
                    other => tracing::warn!(event = %other, "cluster: NATS event"),
                }
            }
        });
    let client = options
        .connect(servers)
        .await
        .map_err(|e| ClusterError::Connect(e.to_string()))?;
    if tokio::time::timeout(settings.connect_timeout, connected.wait_for(|c| *c))
        .await
        .is_err()
    {
        tracing::warn!(
            servers = %settings.servers.join(","),
            "cluster: NATS not reachable yet; serving local sessions, not ready until it is"
        );
    }
    Ok(client)
}

/// Publishes what the broker forwards, in the order forwarded (one task, one connection: NATS
/// keeps a connection's order to each subscriber). While NATS is away the client's own bounded
/// command channel fills, this pump waits, and the bounded queue before it drops what it
/// cannot hold (counted): core NATS is at-most-once.
pub(super) async fn pump(shared: Arc<Shared>, mut queue: mpsc::Receiver<Outbound>) {
    loop {
        let outbound = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            outbound = queue.recv() => outbound,
        };
        let Some(Outbound {
            subject,
            payload,
            kept,
        }) = outbound
        else {
            return;
        };
        let left = shared
            .queued
            .fetch_sub(1, Ordering::AcqRel)
            .saturating_sub(1);
        if left < shared.mark() {
            shared.room.notify_waiters();
        }
        if let (Some(kept), Some(durables)) = (kept, shared.durables.as_ref()) {
            // The same publication, asking JetStream to answer: live subscribers on other
            // nodes get it as they get any, and the stream keeps it for durable ones.
            let published = tokio::select! {
                _ = shared.shutdown.cancelled() => return,
                published = durables.js.publish(subject, payload) => published,
            };
            match published {
                Ok(ack) => {
                    shared.metrics.messages_out.fetch_add(1, Ordering::Relaxed);
                    // Awaited apart, as queue appends are: the next message goes out at once.
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        let answer = super::durables::answer(&shared, ack.await).await;
                        let _ = kept.send(answer);
                    });
                }
                Err(error) => {
                    shared
                        .metrics
                        .dropped_outbound
                        .fetch_add(1, Ordering::Relaxed);
                    let _ = kept.send(Err(format!("cluster publish failed: {error}")));
                }
            }
            continue;
        }
        let published = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            published = shared.client.publish(subject, payload) => published,
        };
        match published {
            Ok(()) => {
                shared.metrics.messages_out.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                shared
                    .metrics
                    .dropped_outbound
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "cluster: publish failed, message not sent to other nodes");
            }
        }
    }
}
