//! Which job runs next: priorities (higher first), then age (older first); delayed jobs wait
//! for their time; a global concurrency limit and per-type limits.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};

/// The pending jobs, indexed for the scheduler.
#[derive(Debug, Default)]
pub struct Schedule {
    /// Runnable now: (priority descending, id ascending = oldest first).
    ready: BTreeSet<(Reverse<i64>, String)>,
    /// Waiting for their time: (run_at, id).
    delayed: BTreeSet<(u64, String)>,
    /// Running jobs per type.
    running: HashMap<String, usize>,
    running_total: usize,
}

impl Schedule {
    /// Adds a pending job.
    pub fn add(&mut self, id: &str, priority: i64, run_at: u64, now: u64) {
        if run_at > now {
            self.delayed.insert((run_at, id.to_owned()));
        } else {
            self.ready.insert((Reverse(priority), id.to_owned()));
        }
    }

    /// Removes a job that is no longer pending.
    pub fn remove(&mut self, id: &str, priority: i64, run_at: u64) {
        self.ready.remove(&(Reverse(priority), id.to_owned()));
        self.delayed.remove(&(run_at, id.to_owned()));
    }

    /// Moves delayed jobs whose time has come to the ready set; `priority_of` looks their
    /// priority up. Returns when the next delayed job is due.
    pub fn promote(&mut self, now: u64, priority_of: impl Fn(&str) -> Option<i64>) -> Option<u64> {
        while let Some((run_at, _)) = self.delayed.first() {
            if *run_at > now {
                return Some(*run_at);
            }
            if let Some((_, id)) = self.delayed.pop_first() {
                if let Some(priority) = priority_of(&id) {
                    self.ready.insert((Reverse(priority), id));
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
        let pick = self.ready.iter().find_map(|(priority, id)| {
            let (job_type, limit) = type_of(id)?;
            let running = self.running.get(&job_type).copied().unwrap_or(0);
            (limit.is_none_or(|l| running < l)).then(|| (*priority, id.clone(), job_type))
        })?;
        let (priority, id, job_type) = pick;
        self.ready.remove(&(priority, id.clone()));
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
}
