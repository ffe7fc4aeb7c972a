//! How long chunks take, by job type and outcome: Prometheus histograms for `/metrics`
//! (`stompede_job_chunk_duration_seconds`), so an operator sees a slow processor or a slow
//! disk before users do.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the buckets, in seconds: from a trivial chunk to a long OCR one.
pub const BUCKETS: [f64; 15] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// One histogram: a count per bucket (not cumulative), every observation's sum and count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Observations at most `BUCKETS[i]` and above the bucket before.
    pub buckets: [u64; BUCKETS.len()],
    /// Observations in all (the `+Inf` bucket).
    pub count: u64,
    /// Their sum, in seconds.
    pub sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if let Some(i) = BUCKETS.iter().position(|&bound| seconds <= bound) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum += seconds;
    }

    /// Observations at most each bound, as the exposition format counts them.
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        BUCKETS
            .iter()
            .zip(self.buckets.iter())
            .scan(0, |total, (&bound, &n)| {
                *total += n;
                Some((bound, *total))
            })
    }
}

/// Chunk durations by `(job type, outcome)`; bounded by the registered types times the few
/// outcomes.
#[derive(Debug, Default)]
pub(crate) struct ChunkTimes(Mutex<BTreeMap<(String, &'static str), Histogram>>);

impl ChunkTimes {
    /// Records a chunk of `job_type` that ended with `outcome` after `took`.
    pub(crate) fn record(&self, job_type: &str, outcome: &'static str, took: Duration) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.entry((job_type.to_owned(), outcome))
            .or_default()
            .observe(took.as_secs_f64());
    }

    /// Every histogram so far.
    pub(crate) fn snapshot(&self) -> Vec<((String, &'static str), Histogram)> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_their_bucket_and_add_up() {
        let times = ChunkTimes::default();
        times.record("ocr", "ok", Duration::from_millis(3));
        times.record("ocr", "ok", Duration::from_millis(700));
        times.record("ocr", "ok", Duration::from_secs(900));
        let snapshot = times.snapshot();
        let (key, histogram) = &snapshot[0];
        assert_eq!(key, &("ocr".to_owned(), "ok"));
        assert_eq!(histogram.count, 3);
        let cumulative: Vec<u64> = histogram.cumulative().map(|(_, n)| n).collect();
        assert_eq!(cumulative[0], 0, "nothing under 1 ms");
        assert_eq!(cumulative[1], 1, "3 ms is under 5 ms");
        assert_eq!(cumulative[8], 2, "700 ms is under 1 s");
        assert_eq!(*cumulative.last().unwrap_or(&0), 2, "900 s is only in +Inf");
        assert!((histogram.sum - 900.703).abs() < 1e-9);
    }
}
