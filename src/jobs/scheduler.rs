//! Which job runs next: priorities (higher first), then age (older first); delayed jobs wait
//! for their time; a global concurrency limit and per-type limits.
//!
//! Age is the order in which jobs were added, not their ids: ids are random past their
//! millisecond (so that nobody can guess another job's id), and jobs submitted in the same
//! millisecond still run first come, first served.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};

use super::table::JobKey;

/// The pending jobs, indexed for the scheduler. Ids are held as [`JobKey`]s (24 bytes, no
/// allocation, for the engine's ULIDs) rather than `String`s (24 bytes and a 32-byte
/// allocation each): every waiting job has its id here twice.
#[derive(Debug, Default)]
pub struct Schedule {
    /// Runnable now: (priority descending, arrival ascending = oldest first, id).
    ready: BTreeSet<(Reverse<i64>, u64, JobKey)>,
    /// When each pending job was added (its arrival number).
    arrival: HashMap<JobKey, u64>,
    next_arrival: u64,
    /// Waiting for their time: (run_at, id).
    delayed: BTreeSet<(u64, JobKey)>,
    /// Running jobs per type.
    running: HashMap<String, usize>,
    running_total: usize,
}

impl Schedule {
    /// Adds a pending job.
    pub fn add(&mut self, id: &str, priority: i64, run_at: u64, now: u64) {
        let key = JobKey::of(id);
        let arrival = *self.arrival.entry(key.clone()).or_insert_with(|| {
            self.next_arrival += 1;
            self.next_arrival
        });
        if run_at > now {
            self.delayed.insert((run_at, key));
        } else {
            self.ready.insert((Reverse(priority), arrival, key));
        }
    }

    /// Removes a job that is no longer pending.
    pub fn remove(&mut self, id: &str, priority: i64, run_at: u64) {
        let key = JobKey::of(id);
        if let Some(arrival) = self.arrival.remove(&key) {
            let entry = (Reverse(priority), arrival, key);
            self.ready.remove(&entry);
            let (_, _, key) = entry;
            self.delayed.remove(&(run_at, key));
        } else {
            self.delayed.remove(&(run_at, key));
        }
    }

    /// Moves delayed jobs whose time has come to the ready set; `priority_of` looks their
    /// priority up. Returns when the next delayed job is due.
    pub fn promote(&mut self, now: u64, priority_of: impl Fn(&str) -> Option<i64>) -> Option<u64> {
        while let Some((run_at, _)) = self.delayed.first() {
            if *run_at > now {
                return Some(*run_at);
            }
            if let Some((_, key)) = self.delayed.pop_first() {
                match (priority_of(&key.to_id()), self.arrival.get(&key)) {
                    (Some(priority), Some(&arrival)) => {
                        self.ready.insert((Reverse(priority), arrival, key));
                    }
                    _ => {
                        self.arrival.remove(&key);
                    }
                }
            }
        }
        None
    }

    /// Takes the best ready job whose type has room, marking it running.
    pub fn take(
        &mut self,
        max_total: usize,
        type_of: impl Fn(&str) -> Option<(String, Option<usize>)>,
    ) -> Option<String> {
        if self.running_total >= max_total {
            return None;
        }
        let pick = self.ready.iter().find_map(|entry| {
            let id = entry.2.to_id();
            let (job_type, limit) = type_of(&id)?;
            let running = self.running.get(&job_type).copied().unwrap_or(0);
            (limit.is_none_or(|l| running < l)).then(|| (entry.clone(), id, job_type))
        })?;
        let (entry, id, job_type) = pick;
        self.ready.remove(&entry);
        self.arrival.remove(&entry.2);
        *self.running.entry(job_type).or_default() += 1;
        self.running_total += 1;
        Some(id)
    }

    /// A running job of `job_type` stopped.
    pub fn finished(&mut self, job_type: &str) {
        if let Some(n) = self.running.get_mut(job_type) {
            *n = n.saturating_sub(1);
        }
        self.running_total = self.running_total.saturating_sub(1);
    }

    /// Jobs waiting (ready or delayed).
    pub fn waiting(&self) -> usize {
        self.ready.len() + self.delayed.len()
    }

    /// Jobs running.
    pub fn running(&self) -> usize {
        self.running_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_then_age_then_limits() {
        let mut s = Schedule::default();
        s.add("01A", 0, 0, 10);
        s.add("01B", 10, 0, 10);
        s.add("01C", 10, 0, 10);
        s.add("01D", 5, 50, 10);
        let types = |id: &str| Some((if id == "01C" { "ocr" } else { "demo" }.to_owned(), Some(1)));
        assert_eq!(s.take(4, types).as_deref(), Some("01B"));
        // "demo" is at its limit of 1: the next demo job waits, the ocr one runs.
        assert_eq!(s.take(4, types).as_deref(), Some("01C"));
        assert_eq!(s.take(4, types), None);
        s.finished("demo");
        assert_eq!(s.take(4, types).as_deref(), Some("01A"));
        assert_eq!(s.promote(20, |_| Some(5)), Some(50));
        assert_eq!(s.promote(60, |_| Some(5)), None);
        s.finished("demo");
        assert_eq!(s.take(4, types).as_deref(), Some("01D"));
    }

    #[test]
    fn equal_priorities_run_in_arrival_order_whatever_their_ids() {
        let mut s = Schedule::default();
        for id in ["01Z", "01A", "01M"] {
            s.add(id, 0, 0, 10);
        }
        s.add("01B", 0, 0, 10);
        s.remove("01B", 0, 0);
        let types = |_: &str| Some(("demo".to_owned(), None));
        let order: Vec<_> = std::iter::from_fn(|| s.take(10, types)).collect();
        assert_eq!(order, ["01Z", "01A", "01M"]);
        assert_eq!(s.waiting(), 0);
    }
}
