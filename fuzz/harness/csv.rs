//! The reconcile CSV reader oracle, shared by the cargo-fuzz target (`fuzz_targets/csv.rs`)
//! and the corpus replay test (`tests/fuzz_corpus.rs`).
//!
//! Input layout (shorter inputs are padded with zeros):
//!
//! * byte 0: `delimiter`, from a table (absent, `auto`, `,`, `;`, tab, `|`, an invalid one);
//! * byte 1: `encoding`, from a table (absent, `auto`, `utf-8`, `windows-1252`, an alias, an
//!   invalid one);
//! * byte 2: bit 0 `hasHeader: false`; bit 1 `trim: false`; bit 2 `ignoreCase: true`;
//!   bits 3-4 how many key columns (1 to 4); bit 5 the key as a list; bit 6 a bad `hasHeader`;
//! * byte 3: the key columns, two bits each: the column of the first line (as the reader will
//!   name it, roughly) at that index, or a name no file has;
//! * byte 4: bits 0-2 the buckets (1 to 8); bit 3 a tiny memory limit (the rows go to
//!   partition files);
//! * the rest: the file.
//!
//! The file is read as chunk 0 of a job reads its back-office side: parameters checked,
//! delimiter detected, estimate, rows read, keyed, split into buckets, the buckets read back.
//! Checked, beyond "no panic": it terminates with rows or a clear error (a job error code a
//! user can act on, never `io` or damaged buckets); the estimate of a small file is exact;
//! every row has as many fields as the header, each UTF-8, with a line number within the file;
//! the buckets hold exactly the rows read, each with its key; the bytes held are bounded by
//! the file's size.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::{json, Map, Value};
use stompede::fuzzing::{read_csv, CsvRead, KeyedRow};

/// What the input's first five bytes select.
#[derive(Debug, Clone)]
pub struct Config {
    /// The job's parameters.
    pub params: Value,
    /// Buckets.
    pub buckets: usize,
    /// Bytes of rows held in memory before spilling to files.
    pub memory_limit: u64,
    /// `trim`.
    pub trim: bool,
    /// `ignoreCase`.
    pub ignore_case: bool,
}

const DELIMITERS: [Option<&str>; 10] = [
    None,
    Some("auto"),
    Some(","),
    Some(";"),
    Some("\t"),
    Some("tab"),
    Some("|"),
    Some("\\t"),
    Some(":"),
    Some(",,"),
];

const ENCODINGS: [Option<&str>; 8] = [
    None,
    Some("auto"),
    Some("utf-8"),
    Some("windows-1252"),
    Some("LATIN1"),
    Some("utf8"),
    Some("cp1252"),
    Some("ebcdic"),
];

/// The names of the first line's fields, roughly as the reader will name them (split on the
/// delimiter asked for, or the likeliest, without quotes handled).
fn first_line_names(file: &[u8], delimiter: Option<&str>, has_header: bool) -> Vec<String> {
    let line = file.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    let d = match delimiter {
        Some(";") => b';',
        Some("\t" | "tab" | "\\t") => b'\t',
        Some("|") => b'|',
        Some(",") => b',',
        _ => [b',', b';', b'\t', b'|']
            .into_iter()
            .max_by_key(|d| line.iter().filter(|b| *b == d).count())
            .unwrap_or(b','),
    };
    let fields: Vec<&[u8]> = line.split(|b| *b == d).collect();
    if has_header {
        fields
            .iter()
            .map(|f| String::from_utf8_lossy(f).trim().to_owned())
            .collect()
    } else {
        (1..=fields.len()).map(|i| i.to_string()).collect()
    }
}

/// Splits a fuzz input into its configuration and the file.
pub fn config(data: &[u8]) -> (Config, &[u8]) {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let file = data.get(5..).unwrap_or_default();
    let flags = byte(2);
    let has_header = flags & 1 == 0;
    let trim = flags & 2 == 0;
    let ignore_case = flags & 4 != 0;
    let keys = 1 + usize::from((flags >> 3) & 3);
    let delimiter = DELIMITERS[usize::from(byte(0)) % DELIMITERS.len()];
    let encoding = ENCODINGS[usize::from(byte(1)) % ENCODINGS.len()];
    let names = first_line_names(file, delimiter, has_header);
    let key: Vec<String> = (0..keys)
        .map(|k| {
            let pick = usize::from((byte(3) >> (2 * k)) & 3);
            names
                .get(pick)
                .cloned()
                .unwrap_or_else(|| "no such column".into())
        })
        .collect();
    let mut params = Map::new();
    params.insert("boFile".into(), json!("bo.csv"));
    params.insert("partnerFile".into(), json!("partner.csv"));
    let key_value = if flags & 32 != 0 || keys > 1 {
        json!(key)
    } else {
        json!(key[0])
    };
    params.insert("boKey".into(), key_value);
    params.insert("partnerKey".into(), json!(vec!["p"; keys]));
    if let Some(d) = delimiter {
        params.insert("delimiter".into(), json!(d));
    }
    if let Some(e) = encoding {
        params.insert("encoding".into(), json!(e));
    }
    if flags & 64 != 0 {
        params.insert("hasHeader".into(), json!("no"));
    } else {
        params.insert("hasHeader".into(), json!(has_header));
    }
    params.insert("trim".into(), json!(trim));
    params.insert("ignoreCase".into(), json!(ignore_case));
    let config = Config {
        params: Value::Object(params),
        buckets: 1 + usize::from(byte(4) & 7),
        memory_limit: if byte(4) & 8 != 0 { 64 } else { 64 << 20 },
        trim,
        ignore_case,
    };
    (config, file)
}

/// A directory of this process's own, for the file and the partition files (in memory where
/// the system offers it).
fn work_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_owned()
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("stompede-fuzz-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a work directory");
        dir
    })
}

/// The key the job makes of a row's key columns.
fn expected_key(fields: &[Vec<u8>], columns: &[usize], config: &Config) -> Vec<u8> {
    let mut key = Vec::new();
    for (n, column) in columns.iter().enumerate() {
        if n > 0 {
            key.push(0x1f);
        }
        let value = std::str::from_utf8(&fields[*column]).expect("UTF-8 fields");
        let value = if config.trim { value.trim() } else { value };
        if config.ignore_case {
            key.extend_from_slice(value.to_lowercase().as_bytes());
        } else {
            key.extend_from_slice(value.as_bytes());
        }
    }
    key
}

/// Job error codes a bad file or bad parameters may end in.
const CLEAR_ERRORS: [&str; 4] = [
    "invalid_parameter",
    "not_csv",
    "empty_file",
    "missing_column",
];

/// Checks what reading gave.
fn check(read: &CsvRead, file: &[u8], config: &Config) {
    let breaks = file.iter().filter(|b| **b == b'\n').count() as u64;
    assert_eq!(
        read.headers, read.estimate.1,
        "the estimate names other columns"
    );
    let body = file.len()
        - if file.starts_with(b"\xEF\xBB\xBF") {
            3
        } else {
            0
        };
    if body < 200 * 1024 {
        assert_eq!(
            read.estimate.0,
            (read.rows.len() + read.rejected.len()) as u64,
            "the estimate of a small file is not its row count"
        );
    }
    let mut last = 0;
    let mut data = 0;
    for (line, fields) in &read.rows {
        assert!(
            (1..=breaks + 1).contains(line),
            "row on line {line} of a file of {} lines",
            breaks + 1
        );
        assert!(*line >= last, "rows out of order: {line} after {last}");
        last = *line;
        assert_eq!(fields.len(), read.headers.len(), "a row of another width");
        for field in fields {
            assert!(std::str::from_utf8(field).is_ok(), "a field not UTF-8");
            data += field.len();
        }
    }
    for (line, reason) in &read.rejected {
        assert!(*line <= breaks + 1, "rejected line {line}");
        assert!(!reason.is_empty());
    }
    // Windows-1252 takes up to 3 bytes of UTF-8 for a byte.
    assert!(
        data <= 3 * file.len(),
        "{data} bytes of fields from {}",
        file.len()
    );
    // The buckets hold the rows read, each once, with its key.
    let mut expected: Vec<KeyedRow> = read
        .rows
        .iter()
        .map(|(line, fields)| KeyedRow {
            line: *line,
            key: expected_key(fields, &read.key_columns, config),
            fields: fields.clone(),
        })
        .collect();
    let mut keyed = read.keyed.clone();
    expected.sort();
    keyed.sort();
    assert_eq!(keyed, expected, "the buckets do not hold the rows read");
    let bound: u64 = read
        .keyed
        .iter()
        .map(|r| (24 + 4 * r.fields.len() + r.key.len()) as u64)
        .sum::<u64>()
        + data as u64;
    assert_eq!(read.bucket_bytes, bound, "the buckets hold other bytes");
}

/// The whole oracle on one fuzz input.
pub fn run(data: &[u8]) {
    let (config, file) = config(data);
    run_with(&config, file);
}

/// The whole oracle on one file under `config`.
pub fn run_with(config: &Config, file: &[u8]) {
    let dir = work_dir();
    let path = dir.join("input.csv");
    std::fs::write(&path, file).expect("the input written");
    let parts = dir.join("parts");
    let _ = std::fs::remove_dir_all(&parts);
    std::fs::create_dir_all(&parts).expect("a partition directory");
    match read_csv(
        &path,
        &config.params,
        config.buckets,
        config.memory_limit,
        &parts,
    ) {
        Ok(read) => check(&read, file, config),
        Err(error) => {
            assert!(
                CLEAR_ERRORS.contains(&error.code.as_str()),
                "unclear error {error:?}"
            );
            assert!(!error.message.is_empty());
        }
    }
}
