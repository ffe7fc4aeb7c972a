//! Flow control's wait: what a publication leaves its publisher to wait for.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::metrics::Metrics;
use super::outbox::Outbox;
use super::queue::Queue;
use super::Broker;

/// What a publication left its publisher to wait for (flow control): subscribers whose
/// outboxes it filled, or a queue above its high-water mark. Dropping it skips the wait.
#[derive(Debug)]
#[must_use = "a publisher that does not wait is not paced"]
pub struct Backpressure(Option<(Broker, Pending)>);

/// What there is to wait for.
#[derive(Debug)]
pub(super) enum Pending {
    Outboxes {
        destination: String,
        full: Vec<Arc<Outbox>>,
        /// The cluster link's outbound queue is above its mark too.
        cluster: bool,
    },
    Queue(Arc<Queue>),
    /// Only the cluster link's outbound queue is above its mark.
    Cluster,
    /// This session has too many appends to the cluster's queues unanswered.
    Appends,
    /// An append to the cluster's queues made outside a session: waited for at once.
    Append(super::federation::Appended),
}

impl Backpressure {
    /// `pending`, waited for through `broker` (which is only held when there is a wait: the
    /// common case costs nothing).
    pub(super) fn new(broker: &Broker, pending: Option<Pending>) -> Backpressure {
        Backpressure(pending.map(|pending| (broker.clone(), pending)))
    }

    /// Whether there is anything to wait for: the publisher is being paced.
    pub fn is_pending(&self) -> bool {
        self.0.is_some()
    }

    /// Waits until the full outboxes have room (a subscriber still full after the
    /// slow-consumer grace is cut off) or the queue is below its mark, at most the grace.
    pub async fn wait(self) {
        if let Err(error) = self.outcome().await {
            tracing::warn!(%error, "a queue message was not stored by the cluster");
        }
    }

    /// [`Backpressure::wait`], then what became of an append to the cluster's queues made
    /// outside a session (the cluster's refusal, as the publisher must hear it).
    pub(crate) async fn outcome(self) -> Result<(), String> {
        let Some((broker, pending)) = self.0 else {
            return Ok(());
        };
        let inner = &broker.inner;
        let started = Instant::now();
        match pending {
            Pending::Outboxes {
                destination,
                full,
                cluster,
            } => {
                Metrics::incr(&inner.metrics.publishes_paced);
                for outbox in full {
                    if outbox.room_or_cut_off().await {
                        Metrics::incr(&inner.metrics.slow_consumers_disconnected);
                        tracing::warn!(
                            destination,
                            "slow consumer cut off: its outbox stayed full past the grace"
                        );
                    }
                }
                if cluster {
                    broker.cluster_room().await;
                }
            }
            Pending::Cluster => {
                Metrics::incr(&inner.metrics.publishes_paced);
                broker.cluster_room().await;
            }
            Pending::Queue(queue) => {
                Metrics::incr(&inner.metrics.publishes_paced);
                let grace = inner.outbox_limits.slow_consumer_grace;
                let _ = tokio::time::timeout(grace, queue.room()).await;
            }
            Pending::Appends => {
                Metrics::incr(&inner.metrics.publishes_paced);
                super::federation::pace_own_appends().await;
            }
            Pending::Append(appended) => {
                let answer = appended
                    .await
                    .unwrap_or_else(|_| Err("the cluster link stopped".to_owned()));
                record(inner, started);
                return answer;
            }
        }
        record(inner, started);
        Ok(())
    }
}

fn record(inner: &super::Inner, started: Instant) {
    inner
        .metrics
        .publish_wait_micros
        .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
}
