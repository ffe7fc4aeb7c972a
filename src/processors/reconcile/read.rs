//! Reading the input files: encoding (UTF-8 with or without BOM, Windows-1252), delimiter
//! detection, CSV records with their line numbers, rejected rows with reasons; and the
//! partition files that keep memory bounded whatever the input size.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

use super::params::Encoding;
use crate::jobs::model::JobError;

/// A decoded row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Line number in the file (line 1 is the header).
    pub line: u64,
    /// The fields.
    pub fields: Vec<String>,
}

/// A row that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Line number.
    pub line: u64,
    /// Why.
    pub reason: String,
}

fn io(path: &Path, error: impl std::fmt::Display) -> JobError {
    JobError::retryable("io", format!("{}: {error}", path.display()))
}

/// Picks the delimiter among `,` `;` tab `|` that the first line uses most (outside quotes).
pub fn detect_delimiter(path: &Path) -> Result<u8, JobError> {
    let mut first = Vec::new();
    BufReader::new(File::open(path).map_err(|e| io(path, e))?)
        .take(64 * 1024)
        .read_until(b'\n', &mut first)
        .map_err(|e| io(path, e))?;
    let mut counts = [0usize; 4];
    let candidates = [b',', b';', b'\t', b'|'];
    let mut quoted = false;
    for &b in &first {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted {
            if let Some(i) = candidates.iter().position(|c| *c == b) {
                counts[i] += 1;
            }
        }
    }
    let best = (0..4).max_by_key(|i| (counts[*i], 3 - i)).unwrap_or(0);
    Ok(candidates[best])
}

/// Decodes one field: UTF-8 when valid; otherwise Windows-1252 unless UTF-8 was required.
fn decode(bytes: &[u8], encoding: Encoding) -> Option<String> {
    match (std::str::from_utf8(bytes), encoding) {
        (Ok(s), Encoding::Utf8 | Encoding::Auto) => Some(s.to_owned()),
        (Err(_), Encoding::Utf8) => None,
        (_, _) => Some(
            encoding_rs::WINDOWS_1252
                .decode_without_bom_handling(bytes)
                .0
                .into_owned(),
        ),
    }
}

/// Reads a CSV file row by row: the header, then each data row or its rejection.
pub struct CsvFile {
    reader: csv::Reader<Box<dyn Read + Send>>,
    encoding: Encoding,
    /// The column names (`1`, `2`, ... without a header row).
    pub headers: Vec<String>,
    record: csv::ByteRecord,
    path: std::path::PathBuf,
}

impl CsvFile {
    /// Opens `path`. An empty file, or a first line that is not text, fails the job.
    pub fn open(
        path: &Path,
        delimiter: u8,
        has_header: bool,
        encoding: Encoding,
    ) -> Result<CsvFile, JobError> {
        let mut file = BufReader::new(File::open(path).map_err(|e| {
            JobError::permanent("file_not_found", format!("{}: {e}", path.display()))
        })?);
        // A UTF-8 byte-order mark is not part of the first column's name.
        let bom = file
            .fill_buf()
            .map_err(|e| io(path, e))?
            .starts_with(b"\xEF\xBB\xBF");
        if bom {
            file.consume(3);
        }
        let reader: Box<dyn Read + Send> = Box::new(file);
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(false)
            .flexible(true)
            .from_reader(reader);
        let mut record = csv::ByteRecord::new();
        let first = reader
            .read_byte_record(&mut record)
            .map_err(|e| JobError::permanent("not_csv", format!("{}: {e}", path.display())))?;
        if !first {
            return Err(JobError::permanent(
                "empty_file",
                format!("{} is empty", path.display()),
            ));
        }
        let headers = if has_header {
            let names: Option<Vec<String>> = record.iter().map(|f| decode(f, encoding)).collect();
            let names = names.ok_or_else(|| {
                JobError::permanent(
                    "not_csv",
                    format!("{}: the header row is not text", path.display()),
                )
            })?;
            names.into_iter().map(|n| n.trim().to_owned()).collect()
        } else {
            (1..=record.len()).map(|i| i.to_string()).collect()
        };
        let mut csv = CsvFile {
            reader,
            encoding,
            headers,
            record: csv::ByteRecord::new(),
            path: path.to_owned(),
        };
        if !has_header {
            // The first line was data: keep it for the first `next`.
            csv.record = record;
        }
        Ok(csv)
    }

    /// The next data row, or why it was rejected; `None` at the end.
    pub fn next(&mut self) -> Option<Result<Result<Row, Rejected>, JobError>> {
        if self.record.is_empty() {
            match self.reader.read_byte_record(&mut self.record) {
                Ok(true) => {}
                Ok(false) => return None,
                Err(error) => {
                    let line = error.position().map_or(0, |p| p.line());
                    if let csv::ErrorKind::Io(e) = error.kind() {
                        return Some(Err(io(&self.path, e)));
                    }
                    return Some(Ok(Err(Rejected {
                        line,
                        reason: format!("unreadable row: {error}"),
                    })));
                }
            }
        }
        let record = std::mem::take(&mut self.record);
        let line = record.position().map_or(0, |p| p.line());
        if record.len() != self.headers.len() {
            // A blank line is no row at all.
            if record.len() == 1 && record.get(0).is_some_and(<[u8]>::is_empty) {
                return self.next();
            }
            return Some(Ok(Err(Rejected {
                line,
                reason: format!(
                    "expected {} fields, found {}",
                    self.headers.len(),
                    record.len()
                ),
            })));
        }
        let fields: Option<Vec<String>> = record.iter().map(|f| decode(f, self.encoding)).collect();
        Some(Ok(match fields {
            Some(fields) => Ok(Row { line, fields }),
            None => Err(Rejected {
                line,
                reason: "bytes that are not valid UTF-8".into(),
            }),
        }))
    }
}

/// Writes rows to partition files: length-prefixed fields, so any content round-trips.
pub struct PartitionWriter {
    files: Vec<BufWriter<File>>,
}

impl PartitionWriter {
    /// `count` partition files named `<prefix>-<i>.part` in `dir`.
    pub fn create(dir: &Path, prefix: &str, count: usize) -> Result<Self, JobError> {
        let files = (0..count)
            .map(|i| {
                let path = dir.join(format!("{prefix}-{i}.part"));
                File::create(&path)
                    .map(|f| BufWriter::with_capacity(64 * 1024, f))
                    .map_err(|e| io(&path, e))
            })
            .collect::<Result<_, _>>()?;
        Ok(PartitionWriter { files })
    }

    /// Appends `row` with its normalised `key` to partition `index`.
    pub fn write(&mut self, index: usize, key: &str, row: &Row) -> std::io::Result<()> {
        let file = &mut self.files[index];
        file.write_all(&row.line.to_le_bytes())?;
        file.write_all(&(row.fields.len() as u32).to_le_bytes())?;
        for field in std::iter::once(key).chain(row.fields.iter().map(String::as_str)) {
            file.write_all(&(field.len() as u32).to_le_bytes())?;
            file.write_all(field.as_bytes())?;
        }
        Ok(())
    }

    /// Flushes every file.
    pub fn finish(self) -> std::io::Result<()> {
        for mut file in self.files {
            file.flush()?;
            file.get_ref().sync_all()?;
        }
        Ok(())
    }
}

/// Reads back a partition file: (key, row) in the order written.
pub fn read_partition(path: &Path) -> Result<Vec<(String, Row)>, JobError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| io(path, e))?;
    let corrupt =
        || JobError::retryable("io", format!("{}: damaged partition file", path.display()));
    let mut at = 0usize;
    let mut take = |n: usize| -> Result<&[u8], JobError> {
        let slice = bytes.get(at..at + n).ok_or_else(corrupt)?;
        at += n;
        Ok(slice)
    };
    let mut rows = Vec::new();
    while let Ok(line) = take(8) {
        let line = u64::from_le_bytes(line.try_into().map_err(|_| corrupt())?);
        let count = u32::from_le_bytes(take(4)?.try_into().map_err(|_| corrupt())?) as usize;
        let mut strings = Vec::with_capacity(count + 1);
        for _ in 0..=count {
            let len = u32::from_le_bytes(take(4)?.try_into().map_err(|_| corrupt())?) as usize;
            strings.push(String::from_utf8(take(len)?.to_vec()).map_err(|_| corrupt())?);
        }
        let key = strings.remove(0);
        rows.push((
            key,
            Row {
                line,
                fields: strings,
            },
        ));
    }
    Ok(rows)
}
