//! Interest-based routing: the NATS subscriptions of one node, one per key or pattern its own
//! subscriptions watch, counted, and the task that feeds each one's messages to the broker.
//!
//! A node subscribes to a subject filter only while one of its sessions (or durable
//! subscriptions) watches the key, so other nodes' messages cross the network only to nodes
//! that want them. Each NATS subscription feeds only the local subscriptions registered under
//! its own key (`Broker::deliver_remote`): a message that two of this node's interests match
//! (`/topic/a` and `/topic/*`) arrives twice from NATS and reaches each subscription once.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::envelope;
use super::subject::filter_for;
use super::Shared;
use crate::broker::federation::Interest;

/// One watched key.
struct Entry {
    /// Local subscriptions watching it.
    watchers: usize,
    /// Turns true once the NATS subscription is registered (subscribed and flushed), or has
    /// failed: whoever waits then goes on.
    registered: watch::Receiver<bool>,
    /// Ends its reader (and so its NATS subscription, dropped with the reader).
    stop: CancellationToken,
}

/// The watched keys. A std Mutex: map updates only; the NATS work happens in the spawned
/// reader, never under the lock.
#[derive(Default)]
pub(super) struct Interests {
    by_key: Mutex<HashMap<String, Entry>>,
}

impl Interests {
    /// How many keys are watched (one NATS subscription each).
    pub(super) fn len(&self) -> usize {
        self.by_key.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// One more watcher of `key`; the first opens its NATS subscription.
    pub(super) fn watch(&self, shared: &Arc<Shared>, key: &str) -> Interest {
        let mut by_key = self.by_key.lock().unwrap_or_else(|e| e.into_inner());
        let registered = match by_key.get_mut(key) {
            Some(entry) => {
                entry.watchers += 1;
                entry.registered.clone()
            }
            None => {
                let (done, registered) = watch::channel(false);
                let stop = shared.shutdown.child_token();
                shared
                    .runtime
                    .spawn(read(shared.clone(), key.to_owned(), done, stop.clone()));
                by_key.insert(
                    key.to_owned(),
                    Entry {
                        watchers: 1,
                        registered: registered.clone(),
                        stop,
                    },
                );
                registered
            }
        };
        drop(by_key);
        if *registered.borrow() {
            return Interest::known();
        }
        let timeout = shared.interest_timeout;
        let metrics = shared.clone();
        let key = key.to_owned();
        Interest::pending(Box::pin(async move {
            let mut registered = registered;
            let waited = tokio::time::timeout(timeout, registered.wait_for(|done| *done)).await;
            if waited.is_err() {
                metrics
                    .metrics
                    .interest_timeouts
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    key,
                    "cluster: interest not registered with NATS in time; the RECEIPT goes out \
                     and messages from other nodes reach the subscription once it is"
                );
            }
        }))
    }

    /// One watcher fewer of `key`; the last one's going closes its NATS subscription.
    pub(super) fn unwatch(&self, key: &str) {
        let mut by_key = self.by_key.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = by_key.get_mut(key) {
            entry.watchers = entry.watchers.saturating_sub(1);
            if entry.watchers == 0 {
                if let Some(entry) = by_key.remove(key) {
                    entry.stop.cancel();
                }
            }
        }
    }
}

/// The subject of the registration round trip: nobody subscribes to it (every interest filter
/// starts `stompede.topic.` or `stompede.user.`), so the server answers at once.
const PROBE: &str = "stompede.probe";

/// Waits until the NATS server has processed everything this connection sent so far, the
/// subscription just made included. The client's `flush` only empties its write buffer, which
/// proves nothing about the server, so this makes a request on [`PROBE`]: the server handles a
/// connection's operations in order and answers "no responders" (NATS 2.2 and later) once it
/// has reached the request, and so the subscription before it.
async fn round_trip(shared: &Shared, key: &str) {
    match shared.client.request(PROBE, bytes::Bytes::new()).await {
        Ok(_) => {}
        Err(error) if error.kind() == async_nats::RequestErrorKind::NoResponders => {}
        Err(error) => tracing::warn!(key, %error, "cluster: registration round trip failed"),
    }
}

/// Subscribes to `key`'s subject filter, makes a round trip to the server (which then has the
/// subscription), says so, then feeds each message to the broker until stopped.
async fn read(
    shared: Arc<Shared>,
    key: String,
    registered: watch::Sender<bool>,
    stop: CancellationToken,
) {
    let Some(filter) = filter_for(&key) else {
        shared.metrics.unroutable.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            key,
            "cluster: key too long for a NATS subject; watched locally only"
        );
        let _ = registered.send(true);
        return;
    };
    let subscribed = tokio::select! {
        _ = stop.cancelled() => return,
        subscribed = shared.client.subscribe(filter.clone()) => subscribed,
    };
    let mut subscriber = match subscribed {
        Ok(subscriber) => subscriber,
        Err(error) => {
            tracing::error!(key, %error, "cluster: NATS subscription failed");
            let _ = registered.send(true);
            return;
        }
    };
    tokio::select! {
        _ = stop.cancelled() => return,
        () = round_trip(&shared, &key) => {}
    }
    let _ = registered.send(true);
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => break,
            message = subscriber.next() => message,
        };
        let Some(message) = message else { break };
        let envelope = match envelope::decode(&message.payload) {
            Ok(envelope) => envelope,
            Err(error) => {
                shared.metrics.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(subject = %message.subject, %error, "cluster: message refused");
                continue;
            }
        };
        if envelope.origin == shared.node {
            // The connection is no_echo: only another node under the same name sends these.
            shared.metrics.own_skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let Some(broker) = shared.broker.upgrade() else {
            break;
        };
        shared.metrics.messages_in.fetch_add(1, Ordering::Relaxed);
        let routed = broker.message(
            envelope.destination.into(),
            &envelope.headers,
            envelope.body,
            envelope.text,
        );
        // The wait is flow control: while a local subscriber's outbox is full this reader
        // stops taking from its bounded NATS channel, which then drops (NATS's slow-consumer
        // rule, counted) rather than buffering without bound.
        let wait = broker.deliver_remote(&key, &envelope.key, routed);
        drop(broker);
        tokio::select! {
            _ = stop.cancelled() => break,
            () = wait.wait() => {}
        }
    }
    // Dropping the subscriber unsubscribes it.
    let _ = subscriber.unsubscribe().await;
}
