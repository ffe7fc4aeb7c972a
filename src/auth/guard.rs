//! Failed logins, counted per user name and per address: after a few in a row, further
//! attempts for that name or from that address are refused for a while, doubling up to a
//! minute, so that guessing passwords (and making the server hash them) is slow.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed in a row before the wait starts.
const FREE_FAILURES: u32 = 5;
/// The longest wait.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// A record with no failure for this long is forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Records kept at most (the oldest go first), so a flood of names cannot grow memory.
const MAX_RECORDS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
    blocked_until: Option<Instant>,
}

/// The failed-login counts.
#[derive(Debug, Default)]
pub(super) struct Guard(Mutex<HashMap<String, Record>>);

impl Guard {
    fn keys(user: &str, address: &str) -> [String; 2] {
        [format!("user\u{0}{user}"), format!("addr\u{0}{address}")]
    }

    /// How long `user` from `address` must wait before another attempt, if at all.
    pub(super) fn wait(&self, user: &str, address: &str, now: Instant) -> Option<Duration> {
        let records = self.0.lock().unwrap_or_else(|e| e.into_inner());
        Self::keys(user, address)
            .iter()
            .filter_map(|key| records.get(key)?.blocked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max()
    }

    /// A failed attempt.
    pub(super) fn failed(&self, user: &str, address: &str, now: Instant) {
        let mut records = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if records.len() >= MAX_RECORDS {
            records.retain(|_, r| now.duration_since(r.last) < FORGET_AFTER);
            if records.len() >= MAX_RECORDS {
                if let Some(oldest) = records
                    .iter()
                    .min_by_key(|(_, r)| r.last)
                    .map(|(k, _)| k.clone())
                {
                    records.remove(&oldest);
                }
            }
        }
        for key in Self::keys(user, address) {
            let record = records.entry(key).or_insert(Record {
                failures: 0,
                last: now,
                blocked_until: None,
            });
            if now.duration_since(record.last) >= FORGET_AFTER {
                record.failures = 0;
            }
            record.failures += 1;
            record.last = now;
            if record.failures >= FREE_FAILURES {
                let doublings = (record.failures - FREE_FAILURES).min(6);
                let wait = Duration::from_secs(1 << doublings).min(MAX_WAIT);
                record.blocked_until = Some(now + wait);
            }
        }
    }

    /// A successful login: that name starts afresh (the address keeps its count, so that a
    /// guesser cannot reset it by logging in to an account of its own).
    pub(super) fn succeeded(&self, user: &str) {
        let mut records = self.0.lock().unwrap_or_else(|e| e.into_inner());
        records.remove(&format!("user\u{0}{user}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_in_a_row_make_the_next_attempts_wait_longer_and_longer() {
        let guard = Guard::default();
        let t0 = Instant::now();
        for _ in 0..4 {
            guard.failed("ann", "10.0.0.1", t0);
        }
        assert_eq!(guard.wait("ann", "10.0.0.1", t0), None, "four are free");
        guard.failed("ann", "10.0.0.1", t0);
        assert_eq!(
            guard.wait("ann", "10.0.0.1", t0),
            Some(Duration::from_secs(1))
        );
        // The name is blocked from any address, the address for any name.
        assert!(guard.wait("ann", "10.0.0.2", t0).is_some());
        assert!(guard.wait("bob", "10.0.0.1", t0).is_some());
        guard.failed("ann", "10.0.0.1", t0);
        assert_eq!(
            guard.wait("ann", "10.0.0.9", t0),
            Some(Duration::from_secs(2))
        );
        let later = t0 + Duration::from_secs(3);
        assert_eq!(guard.wait("ann", "10.0.0.9", later), None, "the wait ends");
        guard.succeeded("ann");
        assert_eq!(guard.wait("ann", "10.0.0.9", later), None);
        assert!(
            guard.wait("ann", "10.0.0.1", t0).is_some(),
            "the address keeps its count"
        );
    }
}
