//! Splitting a file's rows into buckets by key hash, held in memory while the job's memory
//! budget allows and written to partition files beyond it; and the in-process cache that
//! keeps one job's buckets between its chunks.

use std::fs::File;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::compare::Comparator;
use super::output::{Line, Output};
use super::read::{CsvFile, Decoded};
use super::rows::{bucket_of, hash_key, push_row};
use crate::jobs::model::JobError;

/// The two input files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The back-office file: file 1 of 2.
    BackOffice,
    /// The partner file: file 2 of 2.
    Partner,
}

impl Side {
    /// Both, in file order.
    pub const BOTH: [Side; 2] = [Side::BackOffice, Side::Partner];

    /// As result files and messages name it.
    pub fn name(self) -> &'static str {
        match self {
            Side::BackOffice => "back-office",
            Side::Partner => "partner",
        }
    }

    /// 0 or 1.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Its partition file for `bucket` in `dir`.
    pub fn part_file(self, dir: &Path, bucket: usize) -> PathBuf {
        dir.join(format!("{}-{bucket}.part", self.name()))
    }
}

fn io(path: &Path, error: impl std::fmt::Display) -> JobError {
    JobError::retryable("io", format!("{}: {error}", path.display()))
}

/// Where the rows of a side go while it is read.
pub struct Sink<'a> {
    /// Per bucket: the rows held in memory, or in file mode those not yet written.
    buffers: Vec<Vec<u8>>,
    /// File mode: one open partition file per bucket, and the bytes written to each.
    files: Vec<File>,
    lengths: Vec<u64>,
    flush_at: usize,
    /// Buckets whose rows are kept; rows of other buckets are dropped.
    need: Range<usize>,
    /// Further buckets kept while memory allows (for the chunks to come).
    extra: Range<usize>,
    /// Bytes held in memory by every sink of the job, against `limit`.
    held: &'a AtomicU64,
    limit: u64,
    /// Where to write partition files once memory runs out; `None`: drop `extra` instead.
    spill: Option<(PathBuf, Side)>,
}

impl<'a> Sink<'a> {
    /// Keeps every bucket in memory, and moves to partition files in `dir` if the bytes held
    /// by all sinks sharing `held` pass `limit`.
    pub fn memory(buckets: usize, held: &'a AtomicU64, limit: u64, dir: &Path, side: Side) -> Self {
        Sink {
            buffers: vec![Vec::new(); buckets],
            files: Vec::new(),
            lengths: Vec::new(),
            flush_at: 0,
            need: 0..buckets,
            extra: 0..0,
            held,
            limit,
            spill: Some((dir.to_owned(), side)),
        }
    }

    /// Writes every bucket to a partition file in `dir`.
    pub fn files(
        buckets: usize,
        held: &'a AtomicU64,
        budget: u64,
        dir: &Path,
        side: Side,
    ) -> Result<Self, JobError> {
        let mut sink = Sink::memory(buckets, held, 0, dir, side);
        sink.spill_to_files(budget)?;
        Ok(sink)
    }

    /// Keeps buckets `need`, and `extra` as long as all sinks sharing `held` stay under
    /// `limit`.
    pub fn select(
        buckets: usize,
        need: Range<usize>,
        extra: Range<usize>,
        held: &'a AtomicU64,
        limit: u64,
    ) -> Self {
        Sink {
            buffers: vec![Vec::new(); buckets],
            files: Vec::new(),
            lengths: Vec::new(),
            flush_at: 0,
            need,
            extra,
            held,
            limit,
            spill: None,
        }
    }

    fn in_files(&self) -> bool {
        !self.files.is_empty()
    }

    fn spill_to_files(&mut self, budget: u64) -> Result<(), JobError> {
        let Some((dir, side)) = self.spill.clone() else {
            return Ok(());
        };
        let buckets = self.buffers.len();
        // Buffers of both sides together stay within an eighth of the budget.
        self.flush_at =
            (budget / 8 / (2 * buckets as u64).max(1)).clamp(16 << 10, 1 << 20) as usize;
        let mut files = Vec::with_capacity(buckets);
        let mut lengths = Vec::with_capacity(buckets);
        let mut freed = 0u64;
        for (bucket, buffer) in self.buffers.iter_mut().enumerate() {
            let path = side.part_file(&dir, bucket);
            let mut file = File::create(&path).map_err(|e| io(&path, e))?;
            file.write_all(buffer).map_err(|e| io(&path, e))?;
            lengths.push(buffer.len() as u64);
            freed += buffer.len() as u64;
            *buffer = Vec::with_capacity(self.flush_at);
            files.push(file);
        }
        self.held.fetch_sub(freed, Ordering::Relaxed);
        self.files = files;
        self.lengths = lengths;
        Ok(())
    }

    fn push(
        &mut self,
        bucket: usize,
        row: &Decoded,
        hash: u64,
        key: &[u8],
        budget: u64,
    ) -> Result<(), JobError> {
        let keep = self.need.contains(&bucket) || self.extra.contains(&bucket);
        if !keep {
            return Ok(());
        }
        let in_files = self.in_files();
        let Some(buffer) = self.buffers.get_mut(bucket) else {
            return Ok(());
        };
        let before = buffer.len();
        push_row(buffer, row.line, hash, key, &row.ends, &row.data);
        if in_files {
            if buffer.len() >= self.flush_at {
                self.flush(bucket)?;
            }
            return Ok(());
        }
        let added = (buffer.len() - before) as u64;
        let held = self.held.fetch_add(added, Ordering::Relaxed) + added;
        if held > self.limit {
            if self.spill.is_some() {
                self.spill_to_files(budget)?;
            } else if !self.extra.is_empty() {
                // No room for what later chunks need: they will read it again.
                let mut freed = 0;
                for b in self.extra.clone() {
                    if let Some(buffer) = self.buffers.get_mut(b) {
                        freed += buffer.len() as u64;
                        *buffer = Vec::new();
                    }
                }
                self.held.fetch_sub(freed, Ordering::Relaxed);
                self.extra = 0..0;
            }
        }
        Ok(())
    }

    fn flush(&mut self, bucket: usize) -> Result<(), JobError> {
        let (Some(buffer), Some(file)) = (self.buffers.get_mut(bucket), self.files.get_mut(bucket))
        else {
            return Ok(());
        };
        file.write_all(buffer)
            .map_err(|e| JobError::retryable("io", format!("partition file: {e}")))?;
        if let Some(length) = self.lengths.get_mut(bucket) {
            *length += buffer.len() as u64;
        }
        buffer.clear();
        Ok(())
    }

    /// Ends the side: in memory, the kept buckets (`None` for those not kept); in files, the
    /// files written out and synced, and their lengths.
    pub fn finish(mut self) -> Result<Split, JobError> {
        if self.in_files() {
            for bucket in 0..self.files.len() {
                self.flush(bucket)?;
            }
            for file in &self.files {
                file.sync_data()
                    .map_err(|e| JobError::retryable("io", format!("partition file: {e}")))?;
            }
            return Ok(Split::Files(self.lengths));
        }
        let kept = self
            .buffers
            .into_iter()
            .enumerate()
            .map(|(b, buffer)| {
                (self.need.contains(&b) || self.extra.contains(&b)).then_some(buffer)
            })
            .collect();
        Ok(Split::Memory(kept))
    }
}

/// Where a side's rows ended up.
#[derive(Debug)]
pub enum Split {
    /// Per bucket, the rows (`None`: not kept).
    Memory(Vec<Option<Vec<u8>>>),
    /// Per bucket, the length of its partition file.
    Files(Vec<u64>),
}

/// What reading a side found.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    /// Rows read (rejected rows excepted).
    pub rows: u64,
    /// Rows rejected.
    pub rejected: u64,
}

/// Rows read between two calls of the `tick` of [`split`].
pub const TICK: u64 = 16 * 1024;

/// Reads every row of `csv`, normalises its key, and hands it to `sink` under its bucket.
/// Rejected rows go to `rejected` (when given) as `side,line,reason`. `tick` is called every
/// [`TICK`] rows with the rows read so far, and stops the reading when it returns false.
#[allow(clippy::too_many_arguments)]
pub fn split(
    csv: &mut CsvFile,
    side: Side,
    key_columns: &[usize],
    comparator: &Comparator,
    sink: &mut Sink<'_>,
    budget: u64,
    mut rejected: Option<&mut Output>,
    tick: &mut dyn FnMut(u64) -> bool,
) -> Result<Tally, JobError> {
    let buckets = sink.buffers.len();
    let mut row = Decoded::default();
    let mut key = Vec::new();
    let mut read = Tally::default();
    while let Some(item) = csv.next_into(&mut row) {
        match item? {
            Ok(()) => {
                key.clear();
                for (n, column) in key_columns.iter().enumerate() {
                    if n > 0 {
                        key.push(0x1f);
                    }
                    comparator.key_into(row.field(*column), &mut key);
                }
                let hash = hash_key(&key);
                sink.push(bucket_of(hash, buckets), &row, hash, &key, budget)?;
                read.rows += 1;
                if read.rows % TICK == 0 && !tick(read.rows) {
                    return Err(JobError::permanent("cancelled", "the job was cancelled"));
                }
            }
            Err(bad) => {
                read.rejected += 1;
                if let Some(out) = rejected.as_deref_mut() {
                    Line::new(&mut out.buf)
                        .field(side.name().as_bytes())
                        .number(bad.line)
                        .field(bad.reason.as_bytes())
                        .end();
                    out.commit()
                        .map_err(|e| JobError::retryable("io", format!("rejected rows: {e}")))?;
                }
            }
        }
    }
    Ok(read)
}

/// A job's buckets kept in memory between its chunks. One job at a time: a job whose chunk 0
/// finds the cache in use by another job writes partition files instead; a job whose buckets
/// are not here (after a restart, or evicted) reads them again.
#[derive(Debug, Default)]
pub struct Cache {
    // A std Mutex: held only to move buckets in or out, never across I/O or an await.
    slot: Mutex<Option<Held>>,
}

#[derive(Debug)]
struct Held {
    job: String,
    sides: [Vec<Option<Vec<u8>>>; 2],
    touched: Instant,
}

/// A job whose buckets were not touched for this long (paused, or cancelled between chunks)
/// gives way to another job.
const IDLE: Duration = Duration::from_secs(60);

impl Cache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Held>> {
        self.slot
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reserves the cache for `job` if it is free, already `job`'s, or idle; true if so.
    pub fn claim(&self, job: &str) -> bool {
        let mut slot = self.lock();
        let free = match &*slot {
            None => true,
            Some(held) => held.job == job || held.touched.elapsed() > IDLE,
        };
        if free && slot.as_ref().is_none_or(|h| h.job != job) {
            *slot = Some(Held {
                job: job.to_owned(),
                sides: [Vec::new(), Vec::new()],
                touched: Instant::now(),
            });
        }
        free
    }

    /// Keeps `buckets` of `side` for `job`, if the cache is still `job`'s.
    pub fn put(&self, job: &str, side: Side, buckets: Vec<Option<Vec<u8>>>) {
        let mut slot = self.lock();
        if let Some(held) = slot.as_mut().filter(|h| h.job == job) {
            let kept = &mut held.sides[side.index()];
            if kept.len() < buckets.len() {
                kept.resize(buckets.len(), None);
            }
            for (b, bucket) in buckets.into_iter().enumerate() {
                if bucket.is_some() {
                    kept[b] = bucket;
                }
            }
            held.touched = Instant::now();
        }
    }

    /// Takes `job`'s rows of `bucket` of `side` out of the cache.
    pub fn take(&self, job: &str, side: Side, bucket: usize) -> Option<Vec<u8>> {
        let mut slot = self.lock();
        let held = slot.as_mut().filter(|h| h.job == job)?;
        held.touched = Instant::now();
        held.sides[side.index()].get_mut(bucket)?.take()
    }

    /// Frees what `job` holds.
    pub fn release(&self, job: &str) {
        let mut slot = self.lock();
        if slot.as_ref().is_some_and(|h| h.job == job) {
            *slot = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_serves_one_job_at_a_time() {
        let cache = Cache::default();
        assert!(cache.claim("a"));
        assert!(!cache.claim("b"), "a is using it");
        cache.put("a", Side::Partner, vec![None, Some(vec![1, 2])]);
        cache.put("b", Side::Partner, vec![Some(vec![3])]);
        assert_eq!(cache.take("b", Side::Partner, 0), None);
        assert_eq!(cache.take("a", Side::Partner, 1), Some(vec![1, 2]));
        assert_eq!(cache.take("a", Side::Partner, 1), None, "taken once");
        assert!(cache.claim("a"), "still a's");
        cache.release("a");
        assert!(cache.claim("b"));
    }

    #[test]
    fn a_sink_moves_to_files_when_memory_runs_out() {
        let dir = tempfile::tempdir().unwrap();
        let held = AtomicU64::new(0);
        let mut sink = Sink::memory(4, &held, 2_000, dir.path(), Side::BackOffice);
        let row = Decoded {
            line: 2,
            data: b"0123456789".to_vec(),
            ends: vec![4, 10],
        };
        for i in 0..100u64 {
            sink.push((i % 4) as usize, &row, i, b"k", 1 << 20).unwrap();
        }
        let Split::Files(lengths) = sink.finish().unwrap() else {
            panic!("still in memory");
        };
        let row_size = 24 + 8 + 1 + 10;
        assert_eq!(lengths, [25 * row_size; 4]);
        for (b, length) in lengths.iter().enumerate() {
            let path = Side::BackOffice.part_file(dir.path(), b);
            assert_eq!(std::fs::metadata(path).unwrap().len(), *length);
        }
        assert_eq!(held.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_selective_sink_drops_extras_first() {
        let held = AtomicU64::new(0);
        let mut sink = Sink::select(4, 0..1, 1..4, &held, 500);
        let row = Decoded {
            line: 2,
            data: b"0123456789".to_vec(),
            ends: vec![4, 10],
        };
        for i in 0..40u64 {
            sink.push((i % 4) as usize, &row, i, b"k", 1 << 20).unwrap();
        }
        let Split::Memory(kept) = sink.finish().unwrap() else {
            panic!("files");
        };
        assert_eq!(kept[0].as_ref().map(Vec::len), Some(10 * 43));
        assert!(kept[1..].iter().all(Option::is_none));
    }
}
