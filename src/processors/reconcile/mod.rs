//! The `reconcile` job type: a back-office CSV file against a partner file, matched by key.
//!
//! Chunk 0 reads both files at once (one core each), rejects malformed rows with their line
//! numbers, and splits the rows by key hash into `partitions × shares` buckets: held in memory
//! when the estimated size fits the job's memory budget, written to partition files otherwise
//! (or from the moment the budget runs out). Chunks 1..=P each match one partition, its
//! `shares` buckets on as many threads, and write their share of the result files; the merge
//! concatenates the shares in order.
//!
//! Memory comes from one [`MemoryBudget`] that every `reconcile` job of the server shares:
//! chunk 0 reserves what keeping the rows (and matching them later) will take before it keeps
//! them, or what the partition files' buffers take; each matching share reserves its rows and
//! its key table before it reads them. A reservation that cannot be had waits for room (the
//! job's progress says `waiting for memory`), except that keeping rows in memory is only tried:
//! without room a job uses partition files.
//!
//! Every chunk writes its outputs, and the running counts, into a directory of its own that
//! replaces any earlier run of the same chunk, so after a crash the result files come out
//! exactly as if there had been none. Buckets that were only in memory when the process died
//! are read again from the input files by the chunk that needs them.

mod compare;
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzzing;
mod matching;
mod output;
mod params;
mod partition;
mod read;
mod rows;

use std::fs::{self, File};
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

use super::input::{ImportDir, Input};
use super::memory::{MemoryBudget, Reservation, WAITING};
use crate::jobs::handler::{ChunkContext, ChunkFuture, JobHandler, JobInput};
use crate::jobs::model::{ChunkPlan, JobError};
use compare::Comparator;
use matching::{Column, Counts, Matched, SAMPLE};
use output::{Line, Output, FILES};
use params::Params;
use partition::{Cache, Side, Sink, Split};
use read::CsvFile;
use rows::{Blocks, Rows};

/// Most buckets per side (open partition files per side while splitting).
const MAX_BUCKETS: u64 = 256;
/// Bytes a row costs in memory beyond its text: the row header, 4 per field, the key.
const ROW_OVERHEAD: u64 = 24 + 16;
/// Bytes a row costs while its bucket is matched, about: its start, its share of the key
/// table, its key's entry, its entry number, its place among duplicates
/// ([`matching::cost`] is the exact bound, once the rows are counted).
const MATCH_OVERHEAD: u64 = 56;

/// The `reconcile` job type.
#[derive(Debug, Clone)]
pub struct Reconcile {
    import_dir: ImportDir,
    memory: MemoryBudget,
    cache: Arc<Cache>,
}

impl Reconcile {
    /// Files are read from `import_dir`; the jobs together hold at most about `memory_budget`
    /// bytes (at least 1 MiB).
    pub fn new(import_dir: impl Into<PathBuf>, memory_budget: u64) -> Self {
        Reconcile {
            import_dir: ImportDir::new(import_dir),
            memory: MemoryBudget::new(memory_budget.max(1024 * 1024)),
            cache: Arc::default(),
        }
    }

    /// Upload ids (`boUpload`, `partnerUpload`) are looked up in `dir`, as the HTTP API stores
    /// them.
    pub fn with_uploads(mut self, dir: impl Into<PathBuf>) -> Reconcile {
        self.import_dir = self.import_dir.with_uploads(dir);
        self
    }

    fn file(&self, input: &Input, owner: &str) -> Result<PathBuf, JobError> {
        self.import_dir.open(input, owner)
    }

    /// The input file of `side`, with its delimiter.
    fn input(&self, p: &Params, side: Side, owner: &str) -> Result<(PathBuf, u8), JobError> {
        let path = self.file(
            match side {
                Side::BackOffice => &p.bo_file,
                Side::Partner => &p.partner_file,
            },
            owner,
        )?;
        let delimiter = match p.delimiter {
            Some(d) => d,
            None => read::detect_delimiter(&path)?,
        };
        Ok((path, delimiter))
    }

    /// Opens the input file of `side` and finds its key columns.
    fn open(&self, p: &Params, side: Side, owner: &str) -> Result<(CsvFile, Vec<usize>), JobError> {
        let (path, delimiter) = self.input(p, side, owner)?;
        let csv = CsvFile::open(&path, delimiter, p.has_header, p.encoding)?;
        let key = match side {
            Side::BackOffice => &p.bo_key,
            Side::Partner => &p.partner_key,
        };
        let columns = column_indexes(&csv.headers, key, side)?;
        Ok((csv, columns))
    }

    /// The whole budget.
    fn budget(&self) -> u64 {
        self.memory.capacity()
    }

    /// Bytes of row data a job may plan to hold in memory between its chunks.
    fn memory_limit(&self) -> u64 {
        self.budget() / 4 * 3
    }

    /// Bytes a result file gathers before each write: smaller in a small budget.
    fn output_buffer(&self) -> usize {
        (self.budget() / 256) as usize
    }

    /// Bytes reading one side takes besides its rows: the CSV reader's buffer, the record and
    /// the decoded row (some rows long), the rejected rows' output.
    fn reading_cost(&self) -> u64 {
        read::READ_BUFFER as u64 + Output::cost(self.output_buffer()) + (64 << 10)
    }

    /// Bytes matching one share takes besides its rows: the key table and the rest
    /// ([`matching::cost`]), and its five result files' buffers.
    fn matching_cost(&self, bo_rows: u64, partner_rows: u64) -> u64 {
        matching::cost(bo_rows, partner_rows) + 5 * Output::cost(self.output_buffer())
    }

    /// Waits for `bytes` of the budget; meanwhile the job's progress says so, and memory that
    /// idle jobs (or this job, for its later chunks) keep is let go. `None`: cancelled.
    fn reserve(&self, ctx: &ChunkContext, bytes: u64, file: u64) -> Result<Reservation, JobError> {
        let units = ctx.plan.units.max(1);
        let mut reported = false;
        self.memory.for_chunk(ctx, bytes, &mut || {
            if !reported {
                reported = true;
                ctx.report_in_file(0, units, WAITING, file, 2);
                // What this job keeps for its later chunks can be read again.
                self.cache.release(&ctx.job.id);
            }
            self.cache.release_idle();
        })
    }
}

/// What rows in blocks of `bytes` may take, the blocks' unused ends included.
fn blocks_bound(bytes: u64) -> u64 {
    bytes + bytes.min(4 << 20) + (64 << 10)
}

fn comparator(p: &Params) -> Comparator {
    Comparator {
        trim: p.trim,
        ignore_case: p.ignore_case,
        tolerance: p.numeric_tolerance,
        date_formats: p.date_formats.clone(),
    }
}

fn io(path: &Path, error: impl std::fmt::Display) -> JobError {
    JobError::retryable("io", format!("{}: {error}", path.display()))
}

fn column_indexes(
    headers: &[String],
    wanted: &[String],
    side: Side,
) -> Result<Vec<usize>, JobError> {
    wanted
        .iter()
        .map(|name| {
            headers.iter().position(|h| h == name).ok_or_else(|| {
                JobError::permanent(
                    "missing_column",
                    format!(
                        "the {} file has no column {name:?} (columns: {})",
                        side.name(),
                        headers.join(", ")
                    ),
                )
            })
        })
        .collect()
}

/// The compared columns: those `compare` names, or every column both headers share, keys
/// excepted.
fn compared_columns(
    p: &Params,
    bo_headers: &[String],
    partner_headers: &[String],
) -> Result<Vec<Column>, JobError> {
    let pairs: Vec<(String, String)> = match &p.compare {
        Some(pairs) => pairs.clone(),
        None => bo_headers
            .iter()
            .filter(|h| {
                partner_headers.contains(h) && !p.bo_key.contains(h) && !p.partner_key.contains(h)
            })
            .map(|h| (h.clone(), h.clone()))
            .collect(),
    };
    pairs
        .into_iter()
        .map(|(b, q)| {
            let bo = column_indexes(bo_headers, std::slice::from_ref(&b), Side::BackOffice)?;
            let partner = column_indexes(partner_headers, std::slice::from_ref(&q), Side::Partner)?;
            Ok(Column {
                name: b,
                bo: bo[0],
                partner: partner[0],
            })
        })
        .collect()
}

/// What chunk 0 learned, kept beside the partitions for the matching chunks.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Layout {
    bo_headers: Vec<String>,
    partner_headers: Vec<String>,
    /// Per side: the length of each bucket's partition file, or `None` when the side was
    /// kept in memory.
    files: [Option<Vec<u64>>; 2],
    /// Per side: the rows of each bucket, and their bytes (what the matching chunks reserve).
    #[serde(default)]
    rows: [Vec<u64>; 2],
    #[serde(default)]
    bytes: [Vec<u64>; 2],
}

impl Layout {
    fn rows(&self, side: Side, bucket: usize) -> u64 {
        self.rows[side.index()].get(bucket).copied().unwrap_or(0)
    }

    fn bytes(&self, side: Side, bucket: usize) -> u64 {
        self.bytes[side.index()].get(bucket).copied().unwrap_or(0)
    }
}

/// How a job is cut, decided by the plan and stored in every chunk's parameters.
#[derive(Debug, Clone, Copy)]
struct Cut {
    partitions: u64,
    shares: u64,
}

impl Cut {
    fn of(plan: &Value) -> Cut {
        Cut {
            partitions: plan["partitions"].as_u64().unwrap_or(1).max(1),
            shares: plan["shares"].as_u64().unwrap_or(1).max(1),
        }
    }

    fn buckets(self) -> usize {
        (self.partitions * self.shares) as usize
    }

    fn of_partition(self, partition: u64) -> Range<usize> {
        let first = (partition * self.shares) as usize;
        first..first + self.shares as usize
    }
}

fn work_dir(job: &JobInput) -> PathBuf {
    job.result_dir.join("work")
}

fn part_dir(job: &JobInput, chunk: u64) -> PathBuf {
    job.result_dir.join("parts").join(chunk.to_string())
}

/// Writes a chunk's files into a fresh directory, then puts it in place: a chunk that runs
/// again replaces its files whole.
fn publish_part<T>(
    job: &JobInput,
    chunk: u64,
    write: impl FnOnce(&Path) -> Result<T, JobError>,
) -> Result<T, JobError> {
    let target = part_dir(job, chunk);
    let temp = target.with_extension("tmp");
    let _ = fs::remove_dir_all(&temp);
    fs::create_dir_all(&temp).map_err(|e| io(&temp, e))?;
    let value = write(&temp)?;
    let _ = fs::remove_dir_all(&target);
    fs::rename(&temp, &target).map_err(|e| io(&target, e))?;
    Ok(value)
}

/// Writes `value` as JSON to `path` through a temporary file.
fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), JobError> {
    let temp = path.with_extension("tmp");
    let bytes = serde_json::to_vec(value).map_err(|e| io(path, e))?;
    fs::write(&temp, bytes)
        .and_then(|()| fs::rename(&temp, path))
        .map_err(|e| io(path, e))
}

/// The running counts after `chunk`, as that chunk stored them beside its files.
fn running_counts(job: &JobInput, chunk: u64) -> Result<Counts, JobError> {
    let path = part_dir(job, chunk).join("counts.json");
    fs::read(&path)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|v| serde_json::from_value(v["runningCounts"].clone()).ok())
        .ok_or_else(|| {
            JobError::permanent(
                "work_files_missing",
                format!("{} is missing or damaged", path.display()),
            )
        })
}

/// The result of a chunk, also stored beside its files.
fn chunk_result(
    phase: &str,
    partition: Option<u64>,
    counts: Counts,
    running: Counts,
    mismatch_sample: Vec<Value>,
) -> Value {
    let mut result = json!({
        "phase": phase,
        "counts": counts,
        "runningCounts": running,
        "mismatchSample": mismatch_sample,
    });
    if let Some(partition) = partition {
        result["partition"] = json!(partition);
    }
    result
}

impl Reconcile {
    /// Chunk 0: both files read at once and split by key.
    fn read_files(&self, ctx: &ChunkContext, p: &Params) -> Result<Value, JobError> {
        let cut = Cut::of(&ctx.plan.params);
        let job = &ctx.job;
        let (bo, bo_key) = self.open(p, Side::BackOffice, &job.owner)?;
        let (partner, partner_key) = self.open(p, Side::Partner, &job.owner)?;
        compared_columns(p, &bo.headers, &partner.headers)?;
        let dir = work_dir(job);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        self.cache.release(&job.id);
        let buffer = partition::file_buffer(self.budget(), cut.buckets());
        let outputs = cut.shares * 5 * Output::cost(self.output_buffer());
        // In memory: the rows as estimated and a tenth more, matching the largest partition,
        // reading. Only tried: without room, partition files.
        let estimate = &ctx.plan.params["estimate"];
        let (held_estimate, rows_estimate) = (
            estimate["bytes"].as_u64().unwrap_or(u64::MAX / 4),
            estimate["rows"].as_u64().unwrap_or(0),
        );
        let per_row = (MATCH_OVERHEAD * 5 / 4).div_ceil(cut.partitions);
        let wanted = (held_estimate / 10 * 11)
            .saturating_add(rows_estimate * per_row)
            .saturating_add(2 * self.reading_cost() + outputs);
        let mut reservation = None;
        if ctx.plan.params["inMemory"].as_bool().unwrap_or(false) && self.cache.claim(&job.id) {
            reservation = self.memory.try_reserve(wanted);
            if reservation.is_none() {
                self.cache.release(&job.id);
            }
        }
        let in_memory = reservation.is_some();
        // In files: reading, and each bucket's buffer.
        let reservation = match reservation {
            Some(r) => r,
            None => self.reserve(
                ctx,
                2 * (self.reading_cost() + cut.buckets() as u64 * buffer as u64),
                1,
            )?,
        };
        let limit = reservation
            .bytes()
            .saturating_sub(2 * self.reading_cost() + outputs);
        let comparator = comparator(p);
        let held = AtomicU64::new(0);
        let read = [AtomicU64::new(0), AtomicU64::new(0)];
        let done = [AtomicBool::new(false), AtomicBool::new(false)];
        let units = ctx.plan.units.max(1);
        // Both files are read at once: the position shown is the first file not yet read
        // to its end, and `processed` counts the rows of both read so far.
        let reporting = std::sync::Mutex::new(());
        let report = || {
            // One report at a time, so the file position never goes back.
            let _one = reporting.lock();
            let rows = read[0].load(Ordering::Relaxed) + read[1].load(Ordering::Relaxed);
            let (file, step) = if !done[0].load(Ordering::Relaxed) {
                (1, "reading back-office file")
            } else if !done[1].load(Ordering::Relaxed) {
                (2, "reading partner file")
            } else {
                (2, "files read")
            };
            ctx.report_in_file(rows.min(units), units, step, file, 2);
        };
        report();
        let headers = (bo.headers.clone(), partner.headers.clone());
        let output_buffer = self.output_buffer();
        let outcome = publish_part(job, 0, |out| {
            let mut sides = [
                (bo, bo_key, Side::BackOffice),
                (partner, partner_key, Side::Partner),
            ];
            type Read = (partition::Tally, Split, (Vec<u64>, Vec<u64>));
            let results: Vec<Result<Read, JobError>> = std::thread::scope(|scope| {
                let handles: Vec<_> = sides
                    .iter_mut()
                    .map(|(csv, key, side)| {
                        let side = *side;
                        let (held, comparator, dir, report) = (&held, &comparator, &dir, &report);
                        let (read, done) = (&read[side.index()], &done[side.index()]);
                        scope.spawn(move || {
                            let path = out.join(format!("rejected.{}.csv", side.index()));
                            let mut rejected =
                                Output::create(&path, output_buffer).map_err(|e| io(&path, e))?;
                            let mut sink = if in_memory {
                                Sink::memory(cut.buckets(), held, limit, per_row, dir, side)
                            } else {
                                Sink::files(cut.buckets(), held, buffer, dir, side)?
                            };
                            let counted = partition::split(
                                csv,
                                side,
                                key,
                                comparator,
                                &mut sink,
                                buffer,
                                Some(&mut rejected),
                                &mut |rows| {
                                    read.store(rows, Ordering::Relaxed);
                                    report();
                                    !ctx.is_cancelled()
                                },
                            )?;
                            rejected.finish().map_err(|e| io(&path, e))?;
                            read.store(counted.rows, Ordering::Relaxed);
                            done.store(true, Ordering::Relaxed);
                            report();
                            let counts = sink.counts();
                            Ok((counted, sink.finish()?, counts))
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(JobError::retryable("worker_panic", "reading a file failed"))
                        })
                    })
                    .collect()
            });
            let mut results = results.into_iter();
            let (Some(bo), Some(partner)) = (results.next(), results.next()) else {
                return Err(JobError::retryable("worker_panic", "reading a file failed"));
            };
            let ((bo_read, bo_split, bo_counts), (partner_read, partner_split, partner_counts)) =
                (bo?, partner?);
            let mut layout = Layout {
                bo_headers: headers.0,
                partner_headers: headers.1,
                files: [None, None],
                rows: [bo_counts.0, partner_counts.0],
                bytes: [bo_counts.1, partner_counts.1],
            };
            let mut splits = [bo_split, partner_split];
            // Both sides in memory, or both in files: one side that went to files takes the
            // other with it (matching reserves by the bucket, whichever way its rows come).
            if splits.iter().any(|s| matches!(s, Split::Files(_))) {
                for (side, split) in Side::BOTH.into_iter().zip(splits.iter_mut()) {
                    if let Split::Memory(buckets) = split {
                        let lengths = partition::write_files(&dir, side, buckets)?;
                        *split = Split::Files(lengths);
                    }
                }
            }
            let mut kept = Vec::new();
            for (side, split) in Side::BOTH.into_iter().zip(splits) {
                match split {
                    Split::Files(lengths) => layout.files[side.index()] = Some(lengths),
                    Split::Memory(buckets) => kept.push((side, buckets)),
                }
            }
            write_json(&dir.join("layout.json"), &layout)?;
            let counts = Counts {
                total_bo_records: bo_read.rows,
                total_partner_records: partner_read.rows,
                rejected_rows: bo_read.rejected + partner_read.rejected,
                ..Counts::default()
            };
            let result = chunk_result("read", None, counts, counts, Vec::new());
            write_json(&out.join("counts.json"), &result)?;
            Ok((result, layout, kept))
        });
        let (mut result, layout, kept) = outcome?;
        let all_in_memory = !kept.is_empty();
        let mut reservation = Some(reservation);
        if all_in_memory {
            // Keep what the rows take, and what matching the largest partition will.
            let rows: u64 = kept
                .iter()
                .flat_map(|(_, buckets)| buckets.iter().flatten())
                .map(Blocks::capacity)
                .sum();
            let matching = (0..cut.partitions)
                .map(|partition| {
                    cut.of_partition(partition)
                        .map(|b| {
                            self.matching_cost(
                                layout.rows(Side::BackOffice, b),
                                layout.rows(Side::Partner, b),
                            )
                        })
                        .sum::<u64>()
                })
                .max()
                .unwrap_or(0);
            if let Some(r) = reservation.as_mut() {
                let needed = rows + matching;
                if needed > r.bytes() {
                    // The estimate fell short: what the budget has to spare.
                    let more = (needed - r.bytes()).min(self.memory.available());
                    if let Some(more) = self.memory.try_reserve(more) {
                        r.merge(more);
                    }
                }
                r.shrink_to(needed);
            }
            for (side, buckets) in kept {
                self.cache.put(&job.id, side, buckets, reservation.take());
            }
        } else {
            self.cache.release(&job.id);
        }
        drop(reservation);
        result["partitions"] = json!(cut.partitions);
        result["inMemory"] = json!(all_in_memory);
        tracing::debug!(job = %job.id, in_memory = all_in_memory, "reconcile: files read");
        Ok(result)
    }

    /// Where the rows of the buckets of one partition are: for each side, each bucket's
    /// source (without taking anything yet).
    fn sources(&self, job: &JobInput, layout: &Layout, buckets: Range<usize>) -> [Vec<Source>; 2] {
        Side::BOTH.map(|side| {
            buckets
                .clone()
                .map(|b| {
                    if let Some(capacity) = self.cache.capacity(&job.id, side, b) {
                        return Source::Memory(capacity);
                    }
                    let path = side.part_file(&work_dir(job), b);
                    let expected = layout.files[side.index()]
                        .as_ref()
                        .and_then(|lengths| lengths.get(b).copied());
                    match (expected, fs::metadata(&path).map(|m| m.len())) {
                        (Some(expected), Ok(length)) if expected == length => {
                            Source::File(path, length)
                        }
                        (Some(_), _) => {
                            tracing::warn!(path = %path.display(), "reconcile: partition file damaged, reading the input again");
                            Source::Input(blocks_bound(layout.bytes(side, b)))
                        }
                        (None, _) => Source::Input(blocks_bound(layout.bytes(side, b))),
                    }
                })
                .collect()
        })
    }

    /// The memory one share takes: its rows and matching them.
    fn share_need(
        &self,
        layout: &Layout,
        sources: &[Vec<Source>; 2],
        share: usize,
        bucket: usize,
    ) -> u64 {
        let rows: u64 = sources
            .iter()
            .filter_map(|s| s.get(share))
            .map(Source::bytes)
            .sum();
        rows + self.matching_cost(
            layout.rows(Side::BackOffice, bucket),
            layout.rows(Side::Partner, bucket),
        )
    }

    /// Reserves what matching `buckets` takes: from what the job keeps for its chunks, else
    /// from the budget at once, else (letting go of what the job keeps, so as to hold nothing
    /// while it waits) by waiting for room.
    fn reserve_partition(
        &self,
        ctx: &ChunkContext,
        layout: &Layout,
        buckets: Range<usize>,
    ) -> Result<(Reservation, [Vec<Source>; 2]), JobError> {
        let job = &ctx.job;
        let need = |sources: &[Vec<Source>; 2]| {
            let reading = if sources
                .iter()
                .flatten()
                .any(|s| matches!(s, Source::Input(_)))
            {
                2 * self.reading_cost()
            } else {
                0
            };
            reading
                + buckets
                    .clone()
                    .enumerate()
                    .map(|(share, b)| self.share_need(layout, sources, share, b))
                    .sum::<u64>()
        };
        let sources = self.sources(job, layout, buckets.clone());
        let needed = need(&sources);
        let mut reservation = self.cache.reservation(&job.id, needed);
        let have = reservation.as_ref().map_or(0, Reservation::bytes);
        if have < needed {
            match (self.memory.try_reserve(needed - have), reservation.as_mut()) {
                (Some(more), Some(r)) => r.merge(more),
                (Some(more), None) => reservation = Some(more),
                (None, _) => {
                    drop(reservation.take());
                    self.cache.release(&job.id);
                }
            }
        }
        if let Some(reservation) = reservation {
            return Ok((reservation, sources));
        }
        let sources = self.sources(job, layout, buckets.clone());
        let needed = need(&sources);
        Ok((self.reserve(ctx, needed, 2)?, sources))
    }

    /// Reads `side` again from its input file, keeping the buckets that `sources` say are not
    /// anywhere else (within `reservation`), and, for later chunks, the buckets after `buckets`
    /// while the budget has room at once.
    #[allow(clippy::too_many_arguments)]
    fn read_again(
        &self,
        ctx: &ChunkContext,
        p: &Params,
        layout: &Layout,
        side: Side,
        buckets: Range<usize>,
        cut: Cut,
        sources: &[Source],
        reservation: &Reservation,
    ) -> Result<Vec<Option<Blocks>>, JobError> {
        let job = &ctx.job;
        let missing: Vec<usize> = buckets
            .clone()
            .zip(sources)
            .filter(|(_, s)| matches!(s, Source::Input(_)))
            .map(|(b, _)| b)
            .collect();
        // Later chunks' buckets too, when the side was meant to stay in memory, the cache is
        // free for this job and the budget has room now.
        let later = buckets.end..cut.buckets();
        let extra = (layout.files[side.index()].is_none() && self.cache.claim(&job.id))
            .then(|| {
                let bytes = later
                    .clone()
                    .map(|b| blocks_bound(layout.bytes(side, b)))
                    .sum();
                self.memory.try_reserve(bytes)
            })
            .flatten();
        let limit = reservation.bytes() + extra.as_ref().map_or(0, Reservation::bytes);
        let (mut csv, key) = self.open(p, side, &job.owner)?;
        let held = AtomicU64::new(0);
        let mut sink = Sink::select(
            cut.buckets(),
            &missing,
            if extra.is_some() { later } else { 0..0 },
            &held,
            limit,
        );
        let units = ctx.plan.units.max(1);
        let step = format!("reading the {} file again", side.name());
        let file = side.index() as u64 + 1;
        ctx.report_in_file(0, units, &step, file, 2);
        let buffer = partition::file_buffer(self.budget(), cut.buckets());
        partition::split(
            &mut csv,
            side,
            &key,
            &comparator(p),
            &mut sink,
            buffer,
            None,
            &mut |_| !ctx.is_cancelled(),
        )?;
        let Split::Memory(mut all) = sink.finish()? else {
            return Err(JobError::retryable("io", "a selective read wrote files"));
        };
        let needed = buckets
            .map(|b| all.get_mut(b).and_then(Option::take))
            .collect();
        self.cache.put(&job.id, side, all, extra);
        Ok(needed)
    }

    /// Chunks 1..=P: match the buckets of one partition, one thread each.
    fn match_partition(&self, ctx: &ChunkContext, p: &Params) -> Result<Value, JobError> {
        let job = &ctx.job;
        let cut = Cut::of(&ctx.plan.params);
        let partition = ctx.plan.params["partition"].as_u64().unwrap_or(0);
        let layout_path = work_dir(job).join("layout.json");
        let layout: Layout = fs::read(&layout_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| {
                JobError::permanent(
                    "work_files_missing",
                    format!("{} is missing or damaged", layout_path.display()),
                )
            })?;
        let columns = compared_columns(p, &layout.bo_headers, &layout.partner_headers)?;
        let comparator = comparator(p);
        let buckets = cut.of_partition(partition);
        let units = ctx.plan.units.max(1);
        let (mut reservation, sources) = self.reserve_partition(ctx, &layout, buckets.clone())?;
        // Each share's rows: taken from the cache, or read again from the input; files are
        // read by the share's own thread.
        let mut rows: [Vec<Option<Blocks>>; 2] = Default::default();
        for side in Side::BOTH {
            let of_side = &sources[side.index()];
            let mut taken: Vec<Option<Blocks>> = buckets
                .clone()
                .zip(of_side)
                .map(|(b, source)| match source {
                    Source::Memory(_) => self.cache.take(&job.id, side, b),
                    _ => None,
                })
                .collect();
            if of_side.iter().any(|s| matches!(s, Source::Input(_))) {
                let again = self.read_again(
                    ctx,
                    p,
                    &layout,
                    side,
                    buckets.clone(),
                    cut,
                    of_side,
                    &reservation,
                )?;
                for (slot, blocks) in taken.iter_mut().zip(again) {
                    if blocks.is_some() {
                        *slot = blocks;
                    }
                }
            }
            rows[side.index()] = taken;
        }
        // One reservation per share; the rest (reading) goes back.
        let shares: Vec<Reservation> = buckets
            .clone()
            .enumerate()
            .map(|(share, b)| reservation.split(self.share_need(&layout, &sources, share, b)))
            .collect();
        drop(reservation);
        ctx.report_in_file(0, units, "matching records", 2, 2);
        let previous = running_counts(job, ctx.index.saturating_sub(1))?;
        let output_buffer = self.output_buffer();
        let last = partition + 1 >= cut.partitions;
        let [bo_rows, partner_rows] = rows;
        let result = publish_part(job, ctx.index, |out| {
            let matched: Vec<Result<Matched, JobError>> = std::thread::scope(|scope| {
                let handles: Vec<_> = buckets
                    .clone()
                    .enumerate()
                    .zip(bo_rows.into_iter().zip(partner_rows))
                    .zip(shares)
                    .map(|(((share, bucket), (bo, partner)), mut reserved)| {
                        let (columns, comparator, layout, sources) =
                            (&columns, &comparator, &layout, &sources);
                        scope.spawn(move || {
                            let bo = rows_of(bo, &sources[0][share])?;
                            let partner = rows_of(partner, &sources[1][share])?;
                            let bo_rows = parse_rows(
                                &bo,
                                layout.rows(Side::BackOffice, bucket),
                                &sources[0][share],
                            )?;
                            let partner_rows = parse_rows(
                                &partner,
                                layout.rows(Side::Partner, bucket),
                                &sources[1][share],
                            )?;
                            let matched = matching::match_bucket(
                                &bo_rows,
                                &partner_rows,
                                columns,
                                comparator,
                                out,
                                share,
                                output_buffer,
                            )
                            .map_err(|e| io(out, e));
                            drop(bo_rows);
                            drop(partner_rows);
                            drop(bo);
                            drop(partner);
                            if !last {
                                // What matching took serves the next partition of a job that
                                // keeps its rows in memory; the rows' part goes back.
                                let matching = reserved.split(self.matching_cost(
                                    layout.rows(Side::BackOffice, bucket),
                                    layout.rows(Side::Partner, bucket),
                                ));
                                self.cache.keep(&ctx.job.id, matching);
                            }
                            drop(reserved);
                            matched
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(JobError::retryable("worker_panic", "matching failed"))
                        })
                    })
                    .collect()
            });
            let mut counts = Counts::default();
            let mut sample = Vec::new();
            for share in matched {
                let share = share?;
                counts += share.counts;
                let room = SAMPLE.saturating_sub(sample.len());
                sample.extend(share.mismatch_sample.into_iter().take(room));
            }
            let mut running = previous;
            running += counts;
            let result = chunk_result("match", Some(partition), counts, running, sample);
            write_json(&out.join("counts.json"), &result)?;
            Ok(result)
        })?;
        ctx.report_in_file(units, units, "matching records", 2, 2);
        if last {
            self.cache.release(&job.id);
        }
        Ok(result)
    }
}

/// Where the rows of one bucket of one side are, and the bytes they take in memory.
#[derive(Debug)]
enum Source {
    /// Kept in memory: the blocks' bytes.
    Memory(u64),
    /// In its partition file, of this length.
    File(PathBuf, u64),
    /// To be read again from the input file: at most this many bytes.
    Input(u64),
}

impl Source {
    fn bytes(&self) -> u64 {
        match self {
            Source::Memory(bytes) | Source::File(_, bytes) | Source::Input(bytes) => *bytes,
        }
    }
}

/// Indexes the rows of a bucket (about `rows` of them). Rows that do not parse come from a
/// damaged partition file: it is removed, so that the retry reads the input file again.
fn parse_rows<'a>(blocks: &'a Blocks, rows: u64, source: &Source) -> Result<Rows<'a>, JobError> {
    Rows::parse(blocks.blocks(), rows).map_err(|_| {
        if let Source::File(path, _) = source {
            let _ = fs::remove_file(path);
        }
        JobError::retryable("io", "damaged rows")
    })
}

/// The rows of one bucket: those in hand, else its partition file's. A file that changed
/// since it was found is removed, and the chunk fails to be retried: the retry reads the rows
/// from the input file.
fn rows_of(held: Option<Blocks>, source: &Source) -> Result<Blocks, JobError> {
    if let Some(blocks) = held {
        return Ok(blocks);
    }
    let Source::File(path, length) = source else {
        return Err(JobError::retryable("io", "rows not found in memory"));
    };
    let bytes = fs::read(path).map_err(|e| io(path, e))?;
    if bytes.len() as u64 != *length {
        let _ = fs::remove_file(path);
        return Err(io(path, "partition file changed"));
    }
    Ok(Blocks::from_vec(bytes))
}

impl JobHandler for Reconcile {
    fn validate(&self, params: &Value) -> Result<(), JobError> {
        let p = Params::parse(params)?;
        // Paths are checked now; an upload is checked against the job's owner when it runs.
        for input in [&p.bo_file, &p.partner_file] {
            if let Input::Path(path) = input {
                self.import_dir.resolve(path)?;
            }
        }
        Ok(())
    }

    fn plan(&self, job: &JobInput) -> Result<Vec<ChunkPlan>, JobError> {
        let p = Params::parse(&job.params)?;
        let mut estimates = Vec::with_capacity(2);
        for side in Side::BOTH {
            let (path, delimiter) = self.input(&p, side, &job.owner)?;
            // A file that cannot be read fails chunk 0, at once and with the reason; here
            // it only needs a guess (100 bytes a row).
            let estimate = read::estimate(&path, delimiter, p.has_header, p.encoding)
                .unwrap_or_else(|_| {
                    let bytes = fs::metadata(&path).map_or(0, |m| m.len());
                    read::Estimate {
                        rows: bytes / 100,
                        headers: Vec::new(),
                        bytes,
                    }
                });
            estimates.push(estimate);
        }
        let [bo, partner] = &estimates[..] else {
            return Err(JobError::permanent("io", "two files expected"));
        };
        let rows = bo.rows + partner.rows;
        // In memory: the text, plus per row a header, the field ends and the key.
        let held: u64 = estimates
            .iter()
            .map(|e| e.bytes + e.rows * (ROW_OVERHEAD + 4 * e.headers.len() as u64))
            .sum();
        let in_memory = held <= self.memory_limit();
        let shares = std::thread::available_parallelism()
            .map_or(1, |n| n.get() as u64)
            .clamp(1, 4);
        let by_rows = bo.rows.max(partner.rows).div_ceil(p.chunk_size);
        // A chunk holds its partition's rows while it matches them: half the budget at most.
        let by_memory = if in_memory {
            1
        } else {
            (held + rows * MATCH_OVERHEAD).div_ceil(self.budget() / 2)
        };
        let partitions = by_rows.max(by_memory).clamp(1, MAX_BUCKETS / shares);
        let cut = json!({ "partitions": partitions, "shares": shares });
        let mut plan = vec![ChunkPlan {
            label: "reading both files".into(),
            params: json!({
                "phase": "read", "partitions": partitions, "shares": shares, "inMemory": in_memory,
                "estimate": { "bytes": held, "rows": rows },
            }),
            units: rows.max(1),
        }];
        plan.extend((0..partitions).map(|i| {
            let mut params = cut.clone();
            params["phase"] = json!("match");
            params["partition"] = json!(i);
            ChunkPlan {
                label: format!("matching records, part {} of {partitions}", i + 1),
                params,
                // Rows are counted once read, and once matched.
                units: (rows / partitions + u64::from(i < rows % partitions)).max(1),
            }
        }));
        Ok(plan)
    }

    /// Chunk 0 reads both files whole: about 10 s a gigabyte on a small machine, so the
    /// default 300 s would cut (and retry, forever) jobs of some tens of gigabytes.
    fn chunk_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(3600)
    }

    fn run_chunk(&self, ctx: ChunkContext) -> ChunkFuture {
        let this = self.clone();
        Box::pin(async move {
            let p = Params::parse(&ctx.job.params)?;
            let job = ctx.job.id.clone();
            let cache = this.cache.clone();
            let outcome = tokio::task::spawn_blocking(move || {
                let started = std::time::Instant::now();
                let outcome = match ctx.plan.params["phase"].as_str() {
                    Some("read") => this.read_files(&ctx, &p),
                    _ => this.match_partition(&ctx, &p),
                };
                let ms = started.elapsed().as_millis() as u64;
                tracing::debug!(job = %ctx.job.id, chunk = ctx.index, ms, "reconcile: chunk done");
                outcome
            })
            .await
            .unwrap_or_else(|e| Err(JobError::retryable("worker_panic", e.to_string())));
            if outcome.is_err() {
                // A retry starts from the files; memory is not held for a job that stopped.
                cache.release(&job);
            }
            outcome
        })
    }

    fn merge(&self, job: &JobInput, chunks: Vec<Value>) -> Result<Value, JobError> {
        self.cache.release(&job.id);
        // A merge that ran before a crash left its result: the files are final already.
        let done = job.result_dir.join("result.json");
        if let Some(result) = fs::read(&done)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
        {
            return Ok(result);
        }
        let mut counts = Counts::default();
        for chunk in &chunks {
            counts += serde_json::from_value(chunk["counts"].clone()).unwrap_or_default();
        }
        let layout: Option<Layout> = fs::read(work_dir(job).join("layout.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let (bo_headers, partner_headers) = layout
            .map(|l| (l.bo_headers, l.partner_headers))
            .unwrap_or_default();
        let mut files = serde_json::Map::new();
        let mut samples = serde_json::Map::new();
        for (index, (name, _)) in FILES.iter().enumerate() {
            let path = job.result_dir.join(format!("{name}.csv"));
            let mut out = File::create(&path).map_err(|e| io(&path, e))?;
            out.write_all(&matching::header(index, &bo_headers, &partner_headers))
                .map_err(|e| io(&path, e))?;
            let mut sample = Vec::new();
            for chunk in 0..chunks.len() as u64 {
                for share in 0.. {
                    let part = part_dir(job, chunk).join(format!("{name}.{share}.csv"));
                    let Ok(mut file) = File::open(&part) else {
                        break;
                    };
                    std::io::copy(&mut file, &mut out).map_err(|e| io(&path, e))?;
                    if sample.len() < SAMPLE {
                        sample.extend(first_rows(&part, SAMPLE - sample.len()));
                    }
                }
            }
            out.flush().map_err(|e| io(&path, e))?;
            files.insert(format!("{name}.csv"), json!(path.display().to_string()));
            samples.insert((*name).into(), json!(sample));
        }
        let mut result = match serde_json::to_value(counts) {
            Ok(Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        result.insert("files".into(), Value::Object(files));
        result.insert("samples".into(), Value::Object(samples));
        let result = Value::Object(result);
        write_json(&done, &result)?;
        let _ = fs::remove_dir_all(work_dir(job));
        let _ = fs::remove_dir_all(job.result_dir.join("parts"));
        Ok(result)
    }
}

/// The first `n` rows of a result file share, each as one CSV line (without its newline).
fn first_rows(path: &Path, n: usize) -> Vec<String> {
    let Ok(mut reader) = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_path(path)
    else {
        return Vec::new();
    };
    reader
        .byte_records()
        .take(n)
        .filter_map(Result::ok)
        .map(|record| {
            let mut buf = Vec::new();
            let mut line = Line::new(&mut buf);
            for field in record.iter() {
                line = line.field(field);
            }
            line.end();
            buf.pop();
            String::from_utf8_lossy(&buf).into_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests;
