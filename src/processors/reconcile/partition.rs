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
use super::rows::{bucket_of, hash_key, push_row, row_size, Blocks};
use crate::jobs::model::JobError;
use crate::processors::memory::Reservation;

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
    /// Per bucket: the rows held in memory (until they go to files).
    memory: Vec<Blocks>,
    /// File mode: per bucket the rows not yet written, its open partition file, and the bytes
    /// written to it.
    buffers: Vec<Vec<u8>>,
    files: Vec<File>,
    lengths: Vec<u64>,
    flush_at: usize,
    /// Per bucket: rows kept, and their bytes.
    rows: Vec<u64>,
    bytes: Vec<u64>,
    /// Per bucket: whether its rows are kept (else dropped, unless `extra`).
    need: Vec<bool>,
    /// Further buckets kept while memory allows (for the chunks to come).
    extra: Range<usize>,
    /// Bytes held in memory by every sink of the job, against `limit`: the blocks allocated,
    /// and `per_row` for each row (what matching the rows will take).
    held: &'a AtomicU64,
    limit: u64,
    per_row: u64,
    /// Where to write partition files once memory runs out; `None`: drop `extra` instead.
    spill: Option<(PathBuf, Side)>,
}

/// Bytes the buffers of a side's partition files take, per bucket, in a job of `budget` bytes
/// and `buckets` buckets: the buffers of both sides together stay within an eighth of it.
pub fn file_buffer(budget: u64, buckets: usize) -> usize {
    (budget / 8 / (2 * buckets as u64).max(1)).clamp(16 << 10, 1 << 20) as usize
}

impl<'a> Sink<'a> {
    /// Keeps every bucket in memory, and moves to partition files in `dir` if the bytes held
    /// by all sinks sharing `held` pass `limit`; each row counts `per_row` bytes more than
    /// its own.
    pub fn memory(
        buckets: usize,
        held: &'a AtomicU64,
        limit: u64,
        per_row: u64,
        dir: &Path,
        side: Side,
    ) -> Self {
        Sink {
            memory: vec![Blocks::default(); buckets],
            buffers: Vec::new(),
            files: Vec::new(),
            lengths: Vec::new(),
            flush_at: 0,
            rows: vec![0; buckets],
            bytes: vec![0; buckets],
            need: vec![true; buckets],
            extra: 0..0,
            held,
            limit,
            per_row,
            spill: Some((dir.to_owned(), side)),
        }
    }

    /// Writes every bucket to a partition file in `dir`, through buffers of `buffer` bytes.
    pub fn files(
        buckets: usize,
        held: &'a AtomicU64,
        buffer: usize,
        dir: &Path,
        side: Side,
    ) -> Result<Self, JobError> {
        let mut sink = Sink::memory(buckets, held, 0, 0, dir, side);
        sink.spill_to_files(buffer)?;
        Ok(sink)
    }

    /// Keeps buckets `need`, and `extra` as long as all sinks sharing `held` stay under
    /// `limit`.
    pub fn select(
        buckets: usize,
        need: &[usize],
        extra: Range<usize>,
        held: &'a AtomicU64,
        limit: u64,
    ) -> Self {
        let mut kept = vec![false; buckets];
        for b in need {
            if let Some(k) = kept.get_mut(*b) {
                *k = true;
            }
        }
        Sink {
            need: kept,
            extra,
            spill: None,
            ..Sink::memory(buckets, held, limit, 0, Path::new(""), Side::BackOffice)
        }
    }

    fn in_files(&self) -> bool {
        !self.files.is_empty()
    }

    /// Writes what memory holds to partition files, and the rest of the rows after it.
    fn spill_to_files(&mut self, buffer: usize) -> Result<(), JobError> {
        let Some((dir, side)) = self.spill.clone() else {
            return Ok(());
        };
        let buckets = self.memory.len();
        self.flush_at = buffer;
        let mut files = Vec::with_capacity(buckets);
        let mut lengths = Vec::with_capacity(buckets);
        let mut buffers = Vec::with_capacity(buckets);
        let mut freed = 0u64;
        for (bucket, blocks) in self.memory.iter_mut().enumerate() {
            let path = side.part_file(&dir, bucket);
            let mut file = File::create(&path).map_err(|e| io(&path, e))?;
            for block in blocks.blocks() {
                file.write_all(block).map_err(|e| io(&path, e))?;
            }
            lengths.push(blocks.len());
            freed += blocks.capacity();
            *blocks = Blocks::default();
            // Room for a row beyond the mark, so that the buffer never grows.
            buffers.push(Vec::with_capacity(buffer));
            files.push(file);
        }
        let rows: u64 = self.rows.iter().sum();
        self.held
            .fetch_sub(freed + rows * self.per_row, Ordering::Relaxed);
        self.files = files;
        self.lengths = lengths;
        self.buffers = buffers;
        Ok(())
    }

    fn push(
        &mut self,
        bucket: usize,
        row: &Decoded,
        hash: u64,
        key: &[u8],
        buffer: usize,
    ) -> Result<(), JobError> {
        let keep = self.need.get(bucket).copied().unwrap_or(false) || self.extra.contains(&bucket);
        if !keep || bucket >= self.memory.len() {
            return Ok(());
        }
        self.rows[bucket] += 1;
        self.bytes[bucket] += row_size(key, &row.ends, &row.data) as u64;
        if self.in_files() {
            let size = row_size(key, &row.ends, &row.data);
            if self.buffers[bucket].len() + size > self.flush_at {
                self.flush(bucket)?;
            }
            if size > self.flush_at {
                // A row larger than the buffer goes straight to the file.
                let mut one = Vec::with_capacity(size);
                push_row(&mut one, row.line, hash, key, &row.ends, &row.data);
                return self.write(bucket, &one);
            }
            push_row(
                &mut self.buffers[bucket],
                row.line,
                hash,
                key,
                &row.ends,
                &row.data,
            );
            return Ok(());
        }
        let added =
            self.memory[bucket].push_row(row.line, hash, key, &row.ends, &row.data) + self.per_row;
        let held = self.held.fetch_add(added, Ordering::Relaxed) + added;
        if held > self.limit {
            if self.spill.is_some() {
                self.spill_to_files(buffer)?;
            } else if !self.extra.is_empty() {
                // No room for what later chunks need: they will read it again.
                let mut freed = 0;
                for b in self.extra.clone() {
                    if let Some(blocks) = self.memory.get_mut(b) {
                        freed += blocks.capacity();
                        *blocks = Blocks::default();
                    }
                }
                self.held.fetch_sub(freed, Ordering::Relaxed);
                self.extra = 0..0;
            }
        }
        Ok(())
    }

    fn write(&mut self, bucket: usize, bytes: &[u8]) -> Result<(), JobError> {
        let Some(file) = self.files.get_mut(bucket) else {
            return Ok(());
        };
        file.write_all(bytes)
            .map_err(|e| JobError::retryable("io", format!("partition file: {e}")))?;
        if let Some(length) = self.lengths.get_mut(bucket) {
            *length += bytes.len() as u64;
        }
        Ok(())
    }

    fn flush(&mut self, bucket: usize) -> Result<(), JobError> {
        let Some(mut buffer) = self.buffers.get_mut(bucket).map(std::mem::take) else {
            return Ok(());
        };
        let written = self.write(bucket, &buffer);
        buffer.clear();
        self.buffers[bucket] = buffer;
        written
    }

    /// Per bucket: the rows kept, and their bytes.
    pub fn counts(&self) -> (Vec<u64>, Vec<u64>) {
        (self.rows.clone(), self.bytes.clone())
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
            .memory
            .into_iter()
            .enumerate()
            .map(|(b, blocks)| {
                (self.need.get(b).copied().unwrap_or(false) || self.extra.contains(&b))
                    .then_some(blocks)
            })
            .collect();
        Ok(Split::Memory(kept))
    }
}

/// Writes buckets held in memory to `side`'s partition files in `dir`, synced; their lengths.
pub fn write_files(
    dir: &Path,
    side: Side,
    buckets: &mut [Option<Blocks>],
) -> Result<Vec<u64>, JobError> {
    let mut lengths = Vec::with_capacity(buckets.len());
    for (bucket, blocks) in buckets.iter_mut().enumerate() {
        let blocks = blocks.take().unwrap_or_default();
        let path = side.part_file(dir, bucket);
        let mut file = File::create(&path).map_err(|e| io(&path, e))?;
        for block in blocks.blocks() {
            file.write_all(block).map_err(|e| io(&path, e))?;
        }
        file.sync_data().map_err(|e| io(&path, e))?;
        lengths.push(blocks.len());
    }
    Ok(lengths)
}

/// Where a side's rows ended up.
#[derive(Debug)]
pub enum Split {
    /// Per bucket, the rows (`None`: not kept).
    Memory(Vec<Option<Blocks>>),
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
    buffer: usize,
    mut rejected: Option<&mut Output>,
    tick: &mut dyn FnMut(u64) -> bool,
) -> Result<Tally, JobError> {
    let buckets = sink.memory.len();
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
                sink.push(bucket_of(hash, buckets), &row, hash, &key, buffer)?;
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

/// A job's buckets kept in memory between its chunks, with the memory reserved for them (and
/// for matching them). One job at a time: a job whose chunk 0 finds the cache in use by
/// another job writes partition files instead; a job whose buckets are not here (after a
/// restart, or evicted) reads them again.
#[derive(Debug, Default)]
pub struct Cache {
    // A std Mutex: held only to move buckets in or out, never across I/O or an await.
    slot: Mutex<Option<Held>>,
}

#[derive(Debug)]
struct Held {
    job: String,
    sides: [Vec<Option<Blocks>>; 2],
    reservation: Option<Reservation>,
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
                reservation: None,
                touched: Instant::now(),
            });
        }
        free
    }

    /// Keeps `buckets` of `side` for `job`, and the memory reserved for them, if the cache is
    /// still `job`'s (else they are dropped, and the memory given back).
    pub fn put(
        &self,
        job: &str,
        side: Side,
        buckets: Vec<Option<Blocks>>,
        reservation: Option<Reservation>,
    ) {
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
            if let Some(reservation) = reservation {
                match &mut held.reservation {
                    Some(mine) => mine.merge(reservation),
                    None => held.reservation = Some(reservation),
                }
            }
            held.touched = Instant::now();
        }
    }

    /// Keeps memory reserved for `job`'s later chunks, if the cache is still `job`'s.
    pub fn keep(&self, job: &str, reservation: Reservation) {
        self.put(job, Side::BackOffice, Vec::new(), Some(reservation));
    }

    /// The bytes of `job`'s rows of `bucket` of `side`, if the cache holds them.
    pub fn capacity(&self, job: &str, side: Side, bucket: usize) -> Option<u64> {
        let slot = self.lock();
        let held = slot.as_ref().filter(|h| h.job == job)?;
        held.sides[side.index()]
            .get(bucket)?
            .as_ref()
            .map(Blocks::capacity)
    }

    /// Takes `job`'s rows of `bucket` of `side` out of the cache.
    pub fn take(&self, job: &str, side: Side, bucket: usize) -> Option<Blocks> {
        let mut slot = self.lock();
        let held = slot.as_mut().filter(|h| h.job == job)?;
        held.touched = Instant::now();
        held.sides[side.index()].get_mut(bucket)?.take()
    }

    /// Up to `bytes` of the memory reserved for `job`'s buckets, for a chunk that took them.
    pub fn reservation(&self, job: &str, bytes: u64) -> Option<Reservation> {
        let mut slot = self.lock();
        let held = slot.as_mut().filter(|h| h.job == job)?;
        held.touched = Instant::now();
        Some(held.reservation.as_mut()?.split(bytes))
    }

    /// Frees what `job` holds.
    pub fn release(&self, job: &str) {
        let mut slot = self.lock();
        if slot.as_ref().is_some_and(|h| h.job == job) {
            *slot = None;
        }
    }

    /// Frees what a job holds that has not touched it for a while.
    pub fn release_idle(&self) {
        let mut slot = self.lock();
        if slot.as_ref().is_some_and(|h| h.touched.elapsed() > IDLE) {
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
        let budget =
            crate::processors::memory::MemoryBudget::with_return_delay(100, Duration::ZERO);
        let bucket = Blocks::from_vec(vec![1, 2]);
        cache.put(
            "a",
            Side::Partner,
            vec![None, Some(bucket)],
            budget.try_reserve(60),
        );
        cache.put(
            "b",
            Side::Partner,
            vec![Some(Blocks::from_vec(vec![3]))],
            budget.try_reserve(10),
        );
        assert_eq!(budget.available(), 40, "b's memory came back at once");
        assert!(cache.take("b", Side::Partner, 0).is_none());
        let taken = cache.take("a", Side::Partner, 1).unwrap();
        assert_eq!(taken.blocks(), [vec![1, 2]]);
        assert!(cache.take("a", Side::Partner, 1).is_none(), "taken once");
        let part = cache.reservation("a", 50).unwrap();
        assert_eq!((part.bytes(), budget.available()), (50, 40));
        drop(part);
        assert!(cache.claim("a"), "still a's");
        cache.release("a");
        assert_eq!(budget.available(), 100);
        assert!(cache.claim("b"));
    }

    #[test]
    fn a_sink_moves_to_files_when_memory_runs_out() {
        let dir = tempfile::tempdir().unwrap();
        let held = AtomicU64::new(0);
        let mut sink = Sink::memory(4, &held, 2_000, 0, dir.path(), Side::BackOffice);
        let row = Decoded {
            line: 2,
            data: b"0123456789".to_vec(),
            ends: vec![4, 10],
        };
        for i in 0..100u64 {
            sink.push((i % 4) as usize, &row, i, b"k", 100).unwrap();
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
        let mut sink = Sink::select(4, &[0], 1..4, &held, (64 << 10) * 3);
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
        assert_eq!(kept[0].as_ref().map(Blocks::len), Some(10 * 43));
        assert!(kept[1..].iter().all(Option::is_none));
    }
}
