//! What is left of the jobs retention removed, for a day (or the retention, if longer), so
//! that asking for one can say "expired" rather than "no such job", and to its owner only.
//!
//! A busy server removes a job a second or more, and keeps up to [`MAX_TOMBSTONES`] of these:
//! each is held as its key (16 bytes for an id the engine made), its owner's interned number
//! and its time, about 40 bytes with the map's overhead, rather than two strings.

use std::collections::HashMap;

use super::names::{Name, Names};
use super::table::JobKey;

/// Tombstones kept at most, so a burst of expiries cannot grow memory without bound.
pub(super) const MAX_TOMBSTONES: usize = 100_000;

/// A tombstone as the store keeps it (JSON).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct Gone {
    /// Who owned it (only they, and admins, learn that it expired).
    pub owner: String,
    /// When it was removed, ms since the epoch.
    pub at: u64,
}

/// A tombstone as memory keeps it.
#[derive(Debug, Clone, Copy)]
struct Tomb {
    owner: Name,
    at: u64,
}

/// The tombstones, by job.
#[derive(Debug, Default)]
pub(super) struct Tombstones {
    by_job: HashMap<JobKey, Tomb>,
    names: Names,
}

impl Tombstones {
    /// Records that job `id`, of `gone.owner`, was removed at `gone.at`.
    pub fn insert(&mut self, id: &str, gone: &Gone) {
        let tomb = Tomb {
            owner: self.names.intern(&gone.owner),
            at: gone.at,
        };
        self.by_job.insert(JobKey::of(id), tomb);
    }

    /// The owner of removed job `id`, while its tombstone is kept.
    pub fn owner(&self, id: &str) -> Option<&str> {
        self.by_job
            .get(&JobKey::of(id))
            .map(|tomb| self.names.get(tomb.owner))
    }

    /// Tombstones kept.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_job.len()
    }

    /// Forgets the tombstones from before `cutoff` and, past `max`, the oldest; gives back the
    /// ids forgotten (for the store).
    pub fn prune(&mut self, cutoff: u64, max: usize) -> Vec<String> {
        let mut forgotten = Vec::new();
        // The old ones go by a scan; only past the cap must the rest be sorted by age.
        self.by_job.retain(|key, tomb| {
            let keep = tomb.at >= cutoff;
            if !keep {
                forgotten.push(key.to_id());
            }
            keep
        });
        let excess = self.by_job.len().saturating_sub(max);
        if excess > 0 {
            let mut by_age: Vec<(u64, JobKey)> = self
                .by_job
                .iter()
                .map(|(key, tomb)| (tomb.at, key.clone()))
                .collect();
            by_age.select_nth_unstable(excess - 1);
            for (_, key) in by_age.into_iter().take(excess) {
                self.by_job.remove(&key);
                forgotten.push(key.to_id());
            }
        }
        forgotten
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tombstones_are_pruned_by_age_then_by_count_oldest_first() {
        let mut tombs = Tombstones::default();
        let ids: Vec<String> = (0..5).map(|_| crate::jobs::new_id().unwrap()).collect();
        for (i, id) in ids.iter().enumerate() {
            let gone = Gone {
                owner: format!("user{}", i % 2),
                at: 100 + i as u64,
            };
            tombs.insert(id, &gone);
        }
        assert_eq!(tombs.owner(&ids[3]), Some("user1"));
        assert_eq!(tombs.owner("no-such-job"), None);
        let mut forgotten = tombs.prune(101, 2);
        forgotten.sort();
        let mut expected = vec![ids[0].clone(), ids[1].clone(), ids[2].clone()];
        expected.sort();
        assert_eq!(forgotten, expected);
        assert_eq!(tombs.len(), 2);
        assert_eq!(tombs.owner(&ids[4]), Some("user0"));
        assert_eq!(std::mem::size_of::<Tomb>(), 16);
    }
}
