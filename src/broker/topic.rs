//! The index of topic (and user destination) subscriptions.
//!
//! Exact names map to a shared, copy-on-write list of subscribers, so a publish takes one
//! read lock and walks a slice; wildcard patterns are few and checked one by one.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use bytestring::ByteString;

use super::destination::Pattern;
use super::outbox::Outbox;
use super::queue::Queue;

/// A topic subscription.
#[derive(Debug)]
pub struct Subscriber {
    /// Unique among all subscriptions of the broker.
    pub key: u64,
    /// Where matching messages go.
    pub target: Target,
}

/// Where a topic subscription's messages go.
#[derive(Debug)]
pub enum Target {
    /// Straight to a session.
    Session {
        /// The subscription id.
        subscription: ByteString,
        /// The session's outbox.
        outbox: Arc<Outbox>,
        /// The subscription asked for client acks: MESSAGEs carry an `ack` header (topic
        /// messages are not tracked; the ACK is accepted and has no effect).
        ack: bool,
    },
    /// Into a durable subscription's queue, which keeps them while its owner is away.
    Queue(Arc<Queue>),
}

#[derive(Debug, Default)]
struct Index {
    exact: HashMap<Box<str>, Arc<[Arc<Subscriber>]>>,
    patterns: Vec<(Box<str>, Pattern, Arc<Subscriber>)>,
}

/// Topic subscriptions by destination.
#[derive(Debug, Default)]
pub struct TopicIndex {
    // A std RwLock: publishers only read, and nothing awaits under it.
    index: RwLock<Index>,
}

impl TopicIndex {
    /// Adds a subscription to `destination` (a name or a pattern).
    pub fn insert(&self, destination: &str, subscriber: Arc<Subscriber>) {
        let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
        match Pattern::compile(destination) {
            Some(pattern) => index
                .patterns
                .push((destination.into(), pattern, subscriber)),
            None => {
                let entry = index.exact.entry(destination.into()).or_default();
                let mut list: Vec<Arc<Subscriber>> = entry.iter().cloned().collect();
                list.push(subscriber);
                *entry = list.into();
            }
        }
    }

    /// Removes the subscription with `key` from `destination`; false when it was not there
    /// (so that a cluster's interest count only goes down for what went up).
    pub fn remove(&self, destination: &str, key: u64) -> bool {
        let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
        let mut removed = false;
        if let Some(entry) = index.exact.get_mut(destination) {
            let list: Vec<Arc<Subscriber>> =
                entry.iter().filter(|s| s.key != key).cloned().collect();
            removed = list.len() < entry.len();
            if list.is_empty() {
                index.exact.remove(destination);
            } else {
                *entry = list.into();
            }
        }
        let before = index.patterns.len();
        index
            .patterns
            .retain(|(name, _, s)| !(s.key == key && &**name == destination));
        removed || index.patterns.len() < before
    }

    /// Every registered key (names and patterns), once per subscription: what a cluster link
    /// attached after start-up must watch.
    pub fn keys(&self) -> Vec<String> {
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        let exact = index
            .exact
            .iter()
            .flat_map(|(name, list)| list.iter().map(move |_| name.to_string()));
        let patterns = index.patterns.iter().map(|(name, _, _)| name.to_string());
        exact.chain(patterns).collect()
    }

    /// Calls `deliver` for every subscription registered under `registered` (a name or a
    /// pattern, exactly as subscribed) that `destination` matches.
    pub fn for_each_match_under(
        &self,
        registered: &str,
        destination: &str,
        mut deliver: impl FnMut(&Arc<Subscriber>),
    ) {
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        if registered == destination {
            if let Some(list) = index.exact.get(destination) {
                list.iter().for_each(&mut deliver);
            }
            return;
        }
        for (name, pattern, subscriber) in &index.patterns {
            if &**name == registered && pattern.matches(destination) {
                deliver(subscriber);
            }
        }
    }

    /// Calls `deliver` for every subscription matching `destination`.
    pub fn for_each_match(&self, destination: &str, mut deliver: impl FnMut(&Arc<Subscriber>)) {
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        if let Some(list) = index.exact.get(destination) {
            list.iter().for_each(&mut deliver);
        }
        for (_, pattern, subscriber) in &index.patterns {
            if pattern.matches(destination) {
                deliver(subscriber);
            }
        }
    }
}
