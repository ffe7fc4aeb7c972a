//! Durable topic subscriptions across nodes, kept in JetStream.
//!
//! One stream, `STOMPEDE_DURABLE_TOPICS`, listens on every topic subject
//! (`stompede.topic.>`, the subjects topic messages already travel on between nodes:
//! `subject.rs`) with interest retention: JetStream keeps a topic message only while some
//! consumer whose filter matches it has not acknowledged it, and does not keep one that no
//! consumer's filter matches. Each durable subscription is one durable pull consumer on it,
//! filtered on its destination's subject filter and delivering only what is published after
//! it was made. So the stream keeps, for every durable subscription in the cluster, each
//! matching topic message published on any node, while its owner is away and while it is
//! there, until that owner acknowledges it.
//!
//! - Publishing needs nothing new: the node's ordered link already publishes each topic
//!   message on its subject, and the stream takes it from there. A persistent one
//!   (`persistent:true`) is published asking for JetStream's PubAck, which its sender's
//!   RECEIPT waits for (`link.rs`), as it waits for sled's commit on one node.
//! - Subscribing makes (or finds, from any node) the consumer; its owner's node then takes
//!   its messages as it takes a queue's (`queues.rs`'s `pull`, leased, acknowledged by the
//!   client's ACK, given back on a NACK or when the session ends). The subscription is not in
//!   the node's topic index: it gets each message from here, never also live.
//! - Unsubscribing with `durable:true` deletes the consumer, and JetStream drops what it kept
//!   for it alone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use sha2::Digest;
use tokio::sync::{oneshot, OnceCell};

use super::{queues, subject, Shared};
use crate::broker::destination::Pattern;
use crate::broker::federation::Appended;
use crate::broker::queue::Queue;

/// The stream of the topic messages durable subscriptions keep.
pub const STREAM: &str = "STOMPEDE_DURABLE_TOPICS";

/// How long an open waits for the stream to exist (JetStream electing its leaders after a
/// start) before it is refused.
const STREAM_WAIT: Duration = Duration::from_secs(15);

/// How long one request to delete a consumer is waited for before it is sent again.
const DELETE_WAIT: Duration = Duration::from_secs(1);

/// What a node's durable subscriptions in JetStream share.
pub(super) struct Durables {
    pub(super) js: jetstream::Context,
    replicas: usize,
    ack_wait: Duration,
    /// Most messages the stream keeps for all durable subscriptions together.
    max_messages: usize,
    /// Most bytes the stream keeps for all durable subscriptions together.
    max_bytes: usize,
    stream: OnceCell<stream::Stream>,
    /// The destination of each durable subscription opened here, by queue name: what its
    /// consumer is made with when its owner's messages are pulled. A std Mutex: map updates
    /// only, never held across an await.
    opened: Mutex<HashMap<String, String>>,
}

impl Durables {
    /// The durable subscriptions of `client`'s JetStream, holding at most `max_messages`
    /// messages and `max_bytes` bytes for all of them together.
    pub(super) fn new(
        client: async_nats::Client,
        replicas: usize,
        ack_wait: Duration,
        max_messages: usize,
        max_bytes: usize,
    ) -> Durables {
        Durables {
            js: jetstream::new(client),
            replicas: replicas.max(1),
            ack_wait,
            max_messages: max_messages.max(1),
            max_bytes: max_bytes.max(1),
            stream: OnceCell::new(),
            opened: Mutex::new(HashMap::new()),
        }
    }

    /// The stream, created by the first node that needs it (every node asks for the same
    /// configuration).
    async fn stream(&self) -> Result<&stream::Stream, String> {
        self.stream
            .get_or_try_init(|| async {
                let config = stream::Config {
                    name: STREAM.to_owned(),
                    subjects: vec![format!("{}.topic.>", subject::ROOT)],
                    retention: stream::RetentionPolicy::Interest,
                    storage: stream::StorageType::File,
                    num_replicas: self.replicas,
                    max_messages: i64::try_from(self.max_messages).unwrap_or(i64::MAX),
                    max_bytes: i64::try_from(self.max_bytes).unwrap_or(i64::MAX),
                    // Full: new messages are refused, those kept stay (as a full durable
                    // subscription's queue refuses on one node); the publisher is not.
                    discard: stream::DiscardPolicy::New,
                    ..Default::default()
                };
                let what = format!("stream {STREAM}");
                super::while_jetstream_starts(STREAM_WAIT, &what, || async {
                    self.js
                        .get_or_create_stream(config.clone())
                        .await
                        .map_err(|error| error.to_string())
                })
                .await
            })
            .await
    }

    /// The consumer of the durable subscription whose queue is `name`, on `destination`:
    /// found, or made. One found with another filter (the same id reopened on another
    /// destination) is replaced, with what it kept, as its messages are not the new one's.
    async fn consumer(
        &self,
        name: &str,
        destination: &str,
    ) -> Result<consumer::PullConsumer, String> {
        let filter = subject::filter_for(destination)
            .ok_or_else(|| format!("destination too long for a NATS subject: {destination}"))?;
        let stream = self.stream().await?;
        let durable = consumer_name(name);
        if let Ok(mut found) = stream
            .get_consumer::<consumer::pull::Config>(&durable)
            .await
        {
            let info = found.info().await.map_err(|e| e.to_string())?;
            if info.config.filter_subject == filter {
                return Ok(found);
            }
            stream
                .delete_consumer(&durable)
                .await
                .map_err(|e| format!("JetStream consumer for {name}: {e}"))?;
        }
        let config = consumer::pull::Config {
            // Only what is published from now on, as a new subscription on one node.
            deliver_policy: consumer::DeliverPolicy::New,
            ..queues::pull_config(&durable, filter, self.ack_wait)
        };
        stream
            .get_or_create_consumer(&durable, config)
            .await
            .map_err(|error| format!("JetStream consumer for {name}: {error}"))
    }

    /// Deletes the consumer of the durable subscription whose queue is `name` (none is fine).
    async fn remove(&self, name: &str) -> Result<(), String> {
        let stream = self.stream().await?;
        let durable = consumer_name(name);
        let what = format!("removal of the consumer for {name}");
        super::while_jetstream_starts(STREAM_WAIT, &what, || async {
            let deleted = tokio::time::timeout(DELETE_WAIT, stream.delete_consumer(&durable)).await;
            // A delete whose answer is late or lost (seen under load in a NATS cluster) is
            // sent again: one that already took effect then finds nothing, which is done.
            match deleted {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(error)) if error.to_string().contains("not found") => Ok(()),
                Ok(Err(error)) => Err(error.to_string()),
                Err(_) => Err("no answer".to_owned()),
            }
        })
        .await
    }

    /// The destination of the durable subscription `name` opened here, if it was.
    fn destination_of(&self, name: &str) -> Option<String> {
        self.opened
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }
}

/// What a persistent topic message's sender hears of JetStream's answer (`link.rs`): kept,
/// or kept by nobody, is done; refused because the stream is full is done too, counted and
/// logged, as a full durable subscription's queue does not refuse the publisher on one node.
pub(super) async fn answer(
    shared: &Shared,
    acked: Result<jetstream::publish::PublishAck, jetstream::context::PublishError>,
) -> Result<(), String> {
    let error = match acked {
        Ok(_) => return Ok(()),
        Err(error) => error,
    };
    if error.kind() == jetstream::context::PublishErrorKind::StreamNotFound {
        // Nobody answered the subject. No durable subscription was ever opened (the stream
        // is made by the first): nothing to keep. With the stream there, JetStream was not
        // reachable, and the message may not be kept.
        let Some(durables) = shared.durables.as_ref() else {
            return Ok(());
        };
        return match durables.js.get_stream(STREAM).await {
            Err(missing)
                if matches!(
                    missing.kind(),
                    jetstream::context::GetStreamErrorKind::JetStream(e)
                        if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
                ) =>
            {
                Ok(())
            }
            _ => Err(format!(
                "durable subscriptions' stream did not answer: {error}"
            )),
        };
    }
    let text = error.to_string();
    if text.contains("maximum messages") || text.contains("maximum bytes") {
        shared
            .metrics
            .durable_overflows
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(%text, "cluster: durable subscriptions are full; a topic message was not kept");
        return Ok(());
    }
    Err(format!("durable subscriptions' stream: {text}"))
}

/// A consumer name for the durable subscription whose queue is `name`: JetStream names may
/// not hold `.`, `*`, `>` or spaces, which user names and ids may, so it is a digest.
fn consumer_name(name: &str) -> String {
    let digest = sha2::Sha256::digest(name.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("d-{hex}")
}

/// Opens the durable subscription whose queue is `name` on `destination`; answered once its
/// consumer exists (from then on the stream keeps what is published for it).
pub(super) fn open(shared: &Arc<Shared>, name: &str, destination: &str) -> Appended {
    let destination = destination.to_owned();
    on_durables(shared, name, "opened", move |durables, shared, name| {
        durables
            .opened
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.clone(), destination.clone());
        async move {
            let durables = shared.durables.as_ref().ok_or("no durable subscriptions")?;
            durables.consumer(&name, &destination).await.map(|_| ())
        }
    })
}

/// Removes the durable subscription whose queue is `name`, for every node.
pub(super) fn close(shared: &Arc<Shared>, name: &str) -> Appended {
    on_durables(shared, name, "removed", |durables, shared, name| {
        durables
            .opened
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&name);
        async move {
            let durables = shared.durables.as_ref().ok_or("no durable subscriptions")?;
            durables.remove(&name).await
        }
    })
}

/// Runs `change` on this node's durable subscriptions for the one whose queue is `name`: its
/// first part at once (the bookkeeping), the future it returns on the link's runtime, whose
/// outcome answers the caller (failures logged as "not `what`").
fn on_durables<F, Fut>(shared: &Arc<Shared>, name: &str, what: &'static str, change: F) -> Appended
where
    F: FnOnce(&Durables, Arc<Shared>, String) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    let (done, answer) = oneshot::channel();
    let Some(durables) = shared.durables.as_ref() else {
        let _ = done.send(Err(
            "this node keeps no durable subscriptions in JetStream".into()
        ));
        return answer;
    };
    let work = change(durables, shared.clone(), name.to_owned());
    let name = name.to_owned();
    shared.runtime.spawn(async move {
        let outcome = work.await;
        if let Err(error) = &outcome {
            tracing::error!(subscription = %name, %error, "cluster: durable subscription not {what}");
        }
        let _ = done.send(outcome);
    });
    answer
}

/// Takes the messages kept for the durable subscription whose queue is `queue` for its
/// owner's sessions here, while it has any (`queues::pull`).
pub(super) async fn consume(shared: Arc<Shared>, queue: Arc<Queue>) {
    let name = queue.name().to_owned();
    let (Some(durables), Some(destination)) = (
        shared.durables.as_ref(),
        shared
            .durables
            .as_ref()
            .and_then(|durables| durables.destination_of(&name)),
    ) else {
        // Not opened here (a subscription this node no longer keeps): nothing to take.
        queue.stop_consuming();
        return;
    };
    let keep = Pattern::compile(&destination);
    let (name, destination) = (&name, &destination);
    let open = move || async move {
        // Closed meanwhile: the consumer is not made again.
        if durables.destination_of(name).is_none() {
            return Err(format!("durable subscription {name} was removed"));
        }
        durables.consumer(name, destination).await
    };
    queues::pull(&shared, &queue, durables.ack_wait, open, keep.as_ref()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_names_are_valid_jetstream_names_and_differ_per_subscription() {
        let a = consumer_name("durable:ann:prices.eu");
        let b = consumer_name("durable:ann:prices eu");
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        assert_eq!(a.len(), 2 + 32);
    }
}
