//! Reading the input files: encoding (UTF-8 with or without BOM, Windows-1252), delimiter
//! detection, CSV records with their line numbers, rejected rows with reasons, and a quick
//! look at the start of a file to estimate its rows before it is read.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::params::Encoding;
use crate::jobs::model::JobError;

/// Bytes the CSV reader asks the file for at a time.
pub const READ_BUFFER: usize = 256 * 1024;

/// A decoded row, reused from row to row: the fields as UTF-8, one after another.
#[derive(Debug, Default, Clone)]
pub struct Decoded {
    /// Line number in the file (line 1 is the header).
    pub line: u64,
    /// The fields' bytes, concatenated.
    pub data: Vec<u8>,
    /// Where each field ends in `data`.
    pub ends: Vec<u32>,
}

impl Decoded {
    /// Field `i` (empty when out of range).
    pub fn field(&self, i: usize) -> &str {
        let start = match i {
            0 => 0,
            _ => self.ends.get(i - 1).copied().unwrap_or(0) as usize,
        };
        let end = self.ends.get(i).copied().unwrap_or(0) as usize;
        self.data
            .get(start..end)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or_default()
    }
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

/// Appends one field, decoded: UTF-8 when valid; otherwise Windows-1252 unless UTF-8 was
/// required (false then).
fn decode_into(bytes: &[u8], encoding: Encoding, out: &mut Vec<u8>) -> bool {
    match (encoding, std::str::from_utf8(bytes)) {
        (Encoding::Utf8 | Encoding::Auto, Ok(_)) => out.extend_from_slice(bytes),
        (Encoding::Utf8, Err(_)) => return false,
        _ => out.extend_from_slice(
            encoding_rs::WINDOWS_1252
                .decode_without_bom_handling(bytes)
                .0
                .as_bytes(),
        ),
    }
    true
}

/// Reads a CSV file row by row: the header, then each data row or its rejection.
pub struct CsvFile {
    reader: csv::Reader<File>,
    encoding: Encoding,
    /// The column names (`1`, `2`, ... without a header row).
    pub headers: Vec<String>,
    record: csv::ByteRecord,
    /// The first line when it is data (no header row), not yet returned.
    pending: bool,
    /// Where the file ends (as the reader counts, after any BOM), and whether its last line
    /// has no line break.
    unterminated_end: (u64, bool),
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
        let mut file = File::open(path).map_err(|e| {
            JobError::permanent("file_not_found", format!("{}: {e}", path.display()))
        })?;
        // A UTF-8 byte-order mark is not part of the first column's name.
        let mut start = [0u8; 3];
        let mut got = 0;
        while got < 3 {
            match file.read(&mut start[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io(path, e)),
            }
        }
        let skip = if start[..got] == *b"\xEF\xBB\xBF" {
            3
        } else {
            0
        };
        let length = file.seek(SeekFrom::End(0)).map_err(|e| io(path, e))?;
        let mut last = [0u8; 1];
        if length > 0 {
            file.seek(SeekFrom::End(-1)).map_err(|e| io(path, e))?;
            file.read_exact(&mut last).map_err(|e| io(path, e))?;
        }
        file.seek(SeekFrom::Start(skip)).map_err(|e| io(path, e))?;
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(false)
            .flexible(true)
            .buffer_capacity(READ_BUFFER)
            .from_reader(file);
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
            let mut names = Vec::with_capacity(record.len());
            for field in record.iter() {
                let mut name = Vec::new();
                if !decode_into(field, encoding, &mut name) {
                    return Err(JobError::permanent(
                        "not_csv",
                        format!("{}: the header row is not text", path.display()),
                    ));
                }
                names.push(String::from_utf8_lossy(&name).trim().to_owned());
            }
            names
        } else {
            (1..=record.len()).map(|i| i.to_string()).collect()
        };
        Ok(CsvFile {
            reader,
            encoding,
            headers,
            record,
            pending: !has_header,
            path: path.to_owned(),
            unterminated_end: (length - skip, last[0] != b'\n'),
        })
    }

    /// Bytes of the file read so far.
    pub fn bytes_read(&self) -> u64 {
        self.reader.position().byte()
    }

    /// The line the record just read starts on. The csv crate gives the line where reading
    /// started, before any blank lines it skipped; from the line after the record, less the
    /// line breaks inside it and its own, comes the right one.
    fn start_line(&self) -> u64 {
        let start = self.record.position().map_or(0, |p| p.line());
        let after = self.reader.position().line();
        if after.saturating_sub(start) <= 1 {
            return start;
        }
        let inside = self
            .record
            .as_slice()
            .iter()
            .filter(|b| **b == b'\n')
            .count() as u64;
        let (end, unterminated) = self.unterminated_end;
        let terminated = u64::from(!(unterminated && self.reader.position().byte() >= end));
        after.saturating_sub(inside + terminated).max(start)
    }

    /// Reads the next data row into `row`: `Some(Ok(Ok(())))`, or why it was rejected;
    /// `None` at the end.
    pub fn next_into(
        &mut self,
        row: &mut Decoded,
    ) -> Option<Result<Result<(), Rejected>, JobError>> {
        loop {
            if !std::mem::take(&mut self.pending) {
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
            let record = &self.record;
            let line = self.start_line();
            if record.len() != self.headers.len() {
                // A blank line is no row at all.
                if record.len() == 1 && record.get(0).is_some_and(<[u8]>::is_empty) {
                    continue;
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
            // Decoded (up to 3 bytes a byte), its field ends must fit in 32 bits.
            if record.as_slice().len() > u32::MAX as usize / 4 {
                return Some(Ok(Err(Rejected {
                    line,
                    reason: "row longer than 1 GiB".into(),
                })));
            }
            row.line = line;
            row.data.clear();
            row.ends.clear();
            let ascii = self.encoding != Encoding::Windows1252 && record.as_slice().is_ascii();
            if ascii {
                // The common case: no decoding, one copy.
                row.data.extend_from_slice(record.as_slice());
                let mut end = 0u32;
                for field in record.iter() {
                    end += field.len() as u32;
                    row.ends.push(end);
                }
            } else {
                for field in record.iter() {
                    if !decode_into(field, self.encoding, &mut row.data) {
                        return Some(Ok(Err(Rejected {
                            line,
                            reason: "bytes that are not valid UTF-8".into(),
                        })));
                    }
                    row.ends.push(row.data.len() as u32);
                }
            }
            return Some(Ok(Ok(())));
        }
    }
}

/// What the start of a file says about all of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// Rows in the whole file (extrapolated from the first rows and the file size).
    pub rows: u64,
    /// The column names.
    pub headers: Vec<String>,
    /// The file's size in bytes.
    pub bytes: u64,
}

/// Reads up to the first 256 KiB of `path` and extrapolates its row count from the size.
pub fn estimate(
    path: &Path,
    delimiter: u8,
    has_header: bool,
    encoding: Encoding,
) -> Result<Estimate, JobError> {
    let bytes = std::fs::metadata(path).map_err(|e| io(path, e))?.len();
    let mut csv = CsvFile::open(path, delimiter, has_header, encoding)?;
    let start = csv.bytes_read();
    let mut row = Decoded::default();
    let mut rows = 0u64;
    while csv.bytes_read() - start < READ_BUFFER as u64 {
        match csv.next_into(&mut row) {
            None => {
                return Ok(Estimate {
                    rows,
                    headers: csv.headers,
                    bytes,
                })
            }
            Some(Err(e)) => return Err(e),
            Some(Ok(_)) => rows += 1,
        }
    }
    let sampled = (csv.bytes_read() - start).max(1);
    let rows = (rows as f64 * bytes.saturating_sub(start) as f64 / sampled as f64).ceil() as u64;
    Ok(Estimate {
        rows,
        headers: csv.headers,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Headers, rows with their lines, rejected lines.
    type All = (Vec<String>, Vec<(u64, Vec<String>)>, Vec<u64>);

    fn read_all(path: &Path, encoding: Encoding) -> All {
        let mut csv = CsvFile::open(path, detect_delimiter(path).unwrap(), true, encoding).unwrap();
        let mut row = Decoded::default();
        let (mut rows, mut rejected) = (Vec::new(), Vec::new());
        while let Some(item) = csv.next_into(&mut row) {
            match item.unwrap() {
                Ok(()) => rows.push((
                    row.line,
                    (0..row.ends.len())
                        .map(|i| row.field(i).to_owned())
                        .collect(),
                )),
                Err(bad) => rejected.push(bad.line),
            }
        }
        (csv.headers, rows, rejected)
    }

    #[test]
    fn bom_quotes_windows_1252_and_bad_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.csv");
        let mut bytes = b"\xEF\xBB\xBFid;label\n1;\"a;\nb\"\n\n2\n3;caf\xE9\n".to_vec();
        std::fs::write(&path, &bytes).unwrap();
        let (headers, rows, rejected) = read_all(&path, Encoding::Auto);
        assert_eq!(headers, ["id", "label"]);
        assert_eq!(
            rows,
            [
                (2, vec!["1".to_owned(), "a;\nb".to_owned()]),
                (6, vec!["3".to_owned(), "café".to_owned()])
            ]
        );
        assert_eq!(rejected, [5]);
        let (_, rows, rejected) = read_all(&path, Encoding::Utf8);
        assert_eq!((rows.len(), rejected), (1, vec![5, 6]));
        // Windows-1252 throughout: the BOM bytes are skipped either way.
        bytes.truncate(bytes.len() - 1);
        std::fs::write(&path, &bytes).unwrap();
        let (_, rows, _) = read_all(&path, Encoding::Windows1252);
        assert_eq!(rows[1], (6, vec!["3".to_owned(), "café".to_owned()]));
        // After blank lines, and on a last line without a line break.
        std::fs::write(&path, "id,label\n\n\n\"x\ny\",1\n\n\n2,\"3\n4\"").unwrap();
        let (_, rows, _) = read_all(&path, Encoding::Auto);
        let lines: Vec<u64> = rows.iter().map(|r| r.0).collect();
        assert_eq!(lines, [4, 8]);
    }

    #[test]
    fn estimates_extrapolate_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.csv");
        let mut text = String::from("a,b,c\n");
        for i in 0..100_000 {
            text.push_str(&format!("{i:08},x,y\n"));
        }
        std::fs::write(&path, &text).unwrap();
        let e = estimate(&path, b',', true, Encoding::Auto).unwrap();
        assert_eq!(e.headers, ["a", "b", "c"]);
        assert!((99_000..=101_000).contains(&e.rows), "{e:?}");
        std::fs::write(&path, "a,b\n1,2\n").unwrap();
        assert_eq!(estimate(&path, b',', true, Encoding::Auto).unwrap().rows, 1);
    }
}
