//! The reconcile job's reading of one input file, as the fuzz targets drive it (feature
//! `fuzzing`): the parameters checked, the delimiter found, the estimate, then every row read,
//! keyed and split into buckets (in memory, or in partition files once memory runs out) as
//! chunk 0 does, and the buckets read back.

use std::path::Path;
use std::sync::atomic::AtomicU64;

use serde_json::Value;

use super::partition::{self, Side, Sink, Split};
use super::read::{self, CsvFile, Decoded};
use super::rows::{Blocks, Rows};
use super::{column_indexes, comparator, params::Params};
use crate::jobs::model::JobError;

/// One row as the matching chunks see it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyedRow {
    /// Line number in the file.
    pub line: u64,
    /// The normalised key.
    pub key: Vec<u8>,
    /// The fields, UTF-8.
    pub fields: Vec<Vec<u8>>,
}

/// What reading a file gave.
#[derive(Debug)]
pub struct CsvRead {
    /// The delimiter used (given or detected).
    pub delimiter: u8,
    /// The column names.
    pub headers: Vec<String>,
    /// The key columns' indexes.
    pub key_columns: Vec<usize>,
    /// The estimate's rows and column names.
    pub estimate: (u64, Vec<String>),
    /// Each data row as the reader returns it: its line and fields.
    pub rows: Vec<(u64, Vec<Vec<u8>>)>,
    /// The lines of rejected rows, with the reason.
    pub rejected: Vec<(u64, String)>,
    /// The rows read back from the buckets (in bucket order).
    pub keyed: Vec<KeyedRow>,
    /// True when the rows went to partition files.
    pub spilled: bool,
    /// Bytes of row data the buckets held (the blocks' or files' lengths).
    pub bucket_bytes: u64,
}

/// Why reading stopped: the job error's code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvError {
    /// The code (`not_csv`, `empty_file`, `missing_column`, `invalid_parameter`...).
    pub code: String,
    /// The message.
    pub message: String,
}

impl From<JobError> for CsvError {
    fn from(error: JobError) -> Self {
        CsvError {
            code: error.code.clone(),
            message: error.message.clone(),
        }
    }
}

/// Reads `path` as the back-office file of a job with `params` (its `boKey` names the key
/// columns; `boFile`/`partnerFile`/`partnerKey` are needed by the parameter check only), in
/// `buckets` buckets, spilling to partition files in `work_dir` once the rows take more than
/// `memory_limit` bytes.
pub fn read_csv(
    path: &Path,
    params: &Value,
    buckets: usize,
    memory_limit: u64,
    work_dir: &Path,
) -> Result<CsvRead, CsvError> {
    let p = Params::parse(params)?;
    let delimiter = match p.delimiter {
        Some(d) => d,
        None => read::detect_delimiter(path)?,
    };
    let estimate = read::estimate(path, delimiter, p.has_header, p.encoding)?;
    let mut csv = CsvFile::open(path, delimiter, p.has_header, p.encoding)?;
    let key_columns = column_indexes(&csv.headers, &p.bo_key, Side::BackOffice)?;
    let mut rows = Vec::new();
    let mut rejected = Vec::new();
    let mut row = Decoded::default();
    while let Some(item) = csv.next_into(&mut row) {
        match item? {
            Ok(()) => rows.push((
                row.line,
                (0..row.ends.len())
                    .map(|i| {
                        let start = if i == 0 { 0 } else { row.ends[i - 1] as usize };
                        row.data[start..row.ends[i] as usize].to_vec()
                    })
                    .collect(),
            )),
            Err(bad) => rejected.push((bad.line, bad.reason)),
        }
    }
    let headers = csv.headers.clone();

    let mut csv = CsvFile::open(path, delimiter, p.has_header, p.encoding)?;
    let held = AtomicU64::new(0);
    let mut sink = Sink::memory(
        buckets.max(1),
        &held,
        memory_limit,
        0,
        work_dir,
        Side::BackOffice,
    );
    partition::split(
        &mut csv,
        Side::BackOffice,
        &key_columns,
        &comparator(&p),
        &mut sink,
        16 << 10,
        None,
        &mut |_| true,
    )?;
    let (counts, _) = sink.counts();
    let damaged = |what: &str| CsvError {
        code: "damaged".into(),
        message: format!("{what}: rows written could not be read back"),
    };
    let mut keyed = Vec::new();
    let mut bucket_bytes = 0;
    let mut read_back = |blocks: &Blocks, rows: u64| -> Result<(), CsvError> {
        bucket_bytes += blocks.len();
        let parsed = Rows::parse(blocks.blocks(), rows).map_err(|_| damaged("bucket"))?;
        if parsed.len() as u64 != rows {
            return Err(damaged("bucket row count"));
        }
        for i in 0..parsed.len() {
            let r = parsed.get(i);
            keyed.push(KeyedRow {
                line: r.line,
                key: r.key.to_vec(),
                fields: r.fields().map(<[u8]>::to_vec).collect(),
            });
        }
        Ok(())
    };
    let spilled = match sink.finish()? {
        Split::Memory(kept) => {
            for (bucket, blocks) in kept.iter().enumerate() {
                let blocks = blocks
                    .as_ref()
                    .ok_or_else(|| damaged("a bucket not kept"))?;
                read_back(blocks, counts[bucket])?;
            }
            false
        }
        Split::Files(lengths) => {
            for (bucket, length) in lengths.iter().enumerate() {
                let file = Side::BackOffice.part_file(work_dir, bucket);
                let bytes = std::fs::read(&file).map_err(|_| damaged("partition file"))?;
                if bytes.len() as u64 != *length {
                    return Err(damaged("partition file length"));
                }
                read_back(&Blocks::from_vec(bytes), counts[bucket])?;
            }
            true
        }
    };
    Ok(CsvRead {
        delimiter,
        headers,
        key_columns,
        estimate: (estimate.rows, estimate.headers),
        rows,
        rejected,
        keyed,
        spilled,
        bucket_bytes,
    })
}
