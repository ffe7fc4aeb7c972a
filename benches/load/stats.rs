//! What a message body carries (publisher, sequence number, send time) and what receivers count:
//! a bitmap per publisher for losses, duplicates and reordering, and a latency histogram.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};
use hdrhistogram::Histogram;

/// The body starts with `PPPP SSSSSSSSSSSS TTTTTTTTTTTTTTTTTTTT ` (publisher, sequence number,
/// send time in ns since the UNIX epoch, all decimal) and is padded with `x`.
pub const STAMP_LEN: usize = 40;

/// Nanoseconds since the UNIX epoch.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A body template of `size` bytes.
pub fn body_template(size: usize) -> Result<Vec<u8>> {
    if size < STAMP_LEN {
        bail!(
            "--size must be at least {STAMP_LEN} bytes (the body carries a {STAMP_LEN}-byte stamp)"
        );
    }
    let mut body = vec![b'x'; size];
    body[STAMP_LEN - 1] = b' ';
    Ok(body)
}

fn put_digits(dst: &mut [u8], mut n: u64) {
    for b in dst.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Writes the stamp into a body made by [`body_template`].
pub fn stamp(body: &mut [u8], publisher: u32, seq: u64, ts: u64) {
    put_digits(&mut body[0..4], u64::from(publisher));
    body[4] = b' ';
    put_digits(&mut body[5..17], seq);
    body[17] = b' ';
    put_digits(&mut body[18..38], ts);
    body[38] = b' ';
}

fn digits(src: &[u8]) -> Option<u64> {
    src.iter().try_fold(0u64, |n, &b| {
        b.is_ascii_digit()
            .then(|| n.wrapping_mul(10).wrapping_add(u64::from(b - b'0')))
    })
}

/// Reads a stamp: (publisher, sequence number, send time).
pub fn read_stamp(body: &[u8]) -> Option<(u32, u64, u64)> {
    if body.len() < STAMP_LEN {
        return None;
    }
    Some((
        u32::try_from(digits(&body[0..4])?).ok()?,
        digits(&body[5..17])?,
        digits(&body[18..38])?,
    ))
}

/// What one receiver (or, merged, a set of competing receivers) got.
#[derive(Debug, Clone)]
pub struct Tracker {
    /// One bitmap per publisher, `per_publisher` bits each.
    seen: Vec<Vec<u64>>,
    last: Vec<Option<u64>>,
    per_publisher: u64,
    /// Messages received, duplicates included.
    pub received: u64,
    pub duplicates: u64,
    /// Messages that arrived after a later one from the same publisher.
    pub out_of_order: u64,
    /// Bodies without a valid stamp (or from an unknown publisher or sequence).
    pub invalid: u64,
}

impl Tracker {
    pub fn new(publishers: usize, per_publisher: u64) -> Tracker {
        let words = per_publisher.div_ceil(64) as usize;
        Tracker {
            seen: vec![vec![0; words]; publishers],
            last: vec![None; publishers],
            per_publisher,
            received: 0,
            duplicates: 0,
            out_of_order: 0,
            invalid: 0,
        }
    }

    /// Counts one body; returns its send time when it carried a valid stamp.
    #[inline]
    pub fn record(&mut self, body: &[u8]) -> Option<u64> {
        self.received += 1;
        let Some((publisher, seq, ts)) = read_stamp(body) else {
            self.invalid += 1;
            return None;
        };
        let publisher = publisher as usize;
        if publisher >= self.seen.len() || seq >= self.per_publisher {
            self.invalid += 1;
            return None;
        }
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        let slot = &mut self.seen[publisher][word];
        if *slot & (1 << bit) != 0 {
            self.duplicates += 1;
            return Some(ts);
        }
        *slot |= 1 << bit;
        let last = &mut self.last[publisher];
        match *last {
            Some(l) if seq < l => self.out_of_order += 1,
            _ => *last = Some(seq),
        }
        Some(ts)
    }

    /// Distinct messages received.
    pub fn distinct(&self) -> u64 {
        self.seen
            .iter()
            .flatten()
            .map(|w| u64::from(w.count_ones()))
            .sum()
    }

    /// Expected minus distinct.
    pub fn missing(&self) -> u64 {
        self.per_publisher * self.seen.len() as u64 - self.distinct()
    }

    /// Adds `other` (a competing receiver of the same messages): messages both got count as
    /// duplicates.
    pub fn merge(&mut self, other: &Tracker) {
        for (mine, theirs) in self.seen.iter_mut().zip(&other.seen) {
            for (a, b) in mine.iter_mut().zip(theirs) {
                self.duplicates += u64::from((*a & *b).count_ones());
                *a |= *b;
            }
        }
        self.received += other.received;
        self.duplicates += other.duplicates;
        self.out_of_order += other.out_of_order;
        self.invalid += other.invalid;
    }
}

/// Latencies in microseconds, 1 µs to 1 hour, 3 significant digits.
pub fn latency_histogram() -> Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 3_600_000_000, 3)?)
}

/// Records the latency of a message sent at `ts` (ns since the epoch) and received now.
#[inline]
pub fn record_latency(histogram: &mut Histogram<u64>, ts: u64, now: u64) {
    let us = (now.saturating_sub(ts) / 1_000).max(1);
    histogram.saturating_record(us);
}

/// Median of some numbers (the mean of the middle two for an even count).
pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}
