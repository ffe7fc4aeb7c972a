//! The parameters of a `reconcile` job, named as the reference system names them.

use serde_json::Value;

use crate::jobs::model::JobError;
use crate::processors::input::Input;

/// Text encodings of the input files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Detect: UTF-8 (with or without BOM) when the bytes are valid UTF-8, else Windows-1252.
    Auto,
    /// UTF-8; undecodable rows are rejected.
    Utf8,
    /// Windows-1252 (a superset of Latin-1 for printable text), as French exports often are.
    Windows1252,
}

/// What to compare and how.
#[derive(Debug, Clone)]
pub struct Params {
    /// The back-office file, inside the import directory.
    pub bo_file: Input,
    /// The partner file, inside the import directory.
    pub partner_file: Input,
    /// Key column(s) of the back-office file.
    pub bo_key: Vec<String>,
    /// Key column(s) of the partner file.
    pub partner_key: Vec<String>,
    /// Pairs of (back-office column, partner column) to compare; `None`: every shared column.
    pub compare: Option<Vec<(String, String)>>,
    /// Field delimiter; `None`: detected among `,` `;` tab `|`.
    pub delimiter: Option<u8>,
    /// Whether the first line names the columns (default true; otherwise columns are `1`, `2`...).
    pub has_header: bool,
    /// Encoding of both files.
    pub encoding: Encoding,
    /// Trim spaces around values before comparing (default true).
    pub trim: bool,
    /// Compare case-insensitively (default false).
    pub ignore_case: bool,
    /// Numbers equal within this (default: exact); French formats like `1 234,56` understood.
    pub numeric_tolerance: Option<f64>,
    /// Date formats understood, among `dd/mm/yyyy`, `yyyy-mm-dd`, `dd-mm-yyyy`, `dd.mm.yyyy`,
    /// `mm/dd/yyyy` (default: the first four). Dates are compared as dates.
    pub date_formats: Vec<String>,
    /// Rows per chunk (a hint: the files are split by key into about rows / chunkSize parts).
    pub chunk_size: u64,
}

fn invalid(message: impl Into<String>) -> JobError {
    JobError::permanent("invalid_parameter", message)
}

fn string(params: &Value, names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| params.get(*n))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn columns(params: &Value, names: &[&str]) -> Result<Vec<String>, JobError> {
    match names.iter().find_map(|n| params.get(*n)) {
        Some(Value::String(s)) if !s.is_empty() => Ok(vec![s.clone()]),
        Some(Value::Array(list)) if !list.is_empty() => list
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| invalid(format!("{} must list column names", names[0])))
            })
            .collect(),
        _ => Err(invalid(format!(
            "{} (a column name or a list of them) is required",
            names[0]
        ))),
    }
}

impl Params {
    /// Reads and checks the parameters.
    pub fn parse(params: &Value) -> Result<Params, JobError> {
        if !params.is_object() {
            return Err(invalid("parameters must be a JSON object"));
        }
        let bo_file = Input::from_params(params, "boFile", "boUpload")?;
        let partner_file = Input::from_params(params, "partnerFile", "partnerUpload")?;
        let bo_key = columns(params, &["boKey", "boReconciliationKey"])?;
        let partner_key = columns(params, &["partnerKey", "partnerReconciliationKey"])?;
        if bo_key.len() != partner_key.len() {
            return Err(invalid("boKey and partnerKey must name as many columns"));
        }
        let compare = match params.get("compare") {
            None | Some(Value::Null) => None,
            Some(Value::Array(list)) => Some(
                list.iter()
                    .map(|v| v.as_str().map(|s| (s.to_owned(), s.to_owned())))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| invalid("compare must list column names"))?,
            ),
            Some(Value::Object(map)) => Some(
                map.iter()
                    .map(|(k, v)| v.as_str().map(|p| (k.clone(), p.to_owned())))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        invalid("compare must map back-office columns to partner columns")
                    })?,
            ),
            Some(_) => return Err(invalid("compare must be a list or a map of column names")),
        };
        let delimiter = match string(params, &["delimiter"]).as_deref() {
            None | Some("auto") => None,
            Some("\\t") | Some("\t") | Some("tab") => Some(b'\t'),
            Some(d) if d.len() == 1 && [",", ";", "|"].contains(&d) => Some(d.as_bytes()[0]),
            Some(other) => {
                return Err(invalid(format!(
                    "delimiter {other:?}: use , ; | tab or auto"
                )))
            }
        };
        let encoding = match string(params, &["encoding"])
            .map(|e| e.to_ascii_lowercase())
            .as_deref()
        {
            None | Some("auto") => Encoding::Auto,
            Some("utf-8") | Some("utf8") => Encoding::Utf8,
            Some("windows-1252") | Some("cp1252") | Some("latin-1") | Some("latin1")
            | Some("iso-8859-1") => Encoding::Windows1252,
            Some(other) => {
                return Err(invalid(format!(
                    "encoding {other:?}: use utf-8, windows-1252 or auto"
                )))
            }
        };
        let flag = |name: &str, default: bool| {
            params.get(name).and_then(Value::as_bool).unwrap_or(default)
        };
        let numeric_tolerance = match params.get("numericTolerance") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_f64()
                    .filter(|t| *t >= 0.0)
                    .ok_or_else(|| invalid("numericTolerance must be a non-negative number"))?,
            ),
        };
        let date_formats = match params.get("dateFormats") {
            None | Some(Value::Null) => ["dd/mm/yyyy", "yyyy-mm-dd", "dd-mm-yyyy", "dd.mm.yyyy"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            Some(Value::Array(list)) => {
                let formats: Vec<String> = list
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect();
                if let Some(bad) = formats
                    .iter()
                    .find(|f| !super::compare::DATE_FORMATS.contains(&f.as_str()))
                {
                    return Err(invalid(format!("date format {bad:?} is not supported")));
                }
                formats
            }
            Some(_) => return Err(invalid("dateFormats must be a list")),
        };
        let chunk_size = match params.get("chunkSize") {
            None | Some(Value::Null) => 500_000,
            Some(v) => v
                .as_u64()
                .filter(|n| *n >= 1)
                .ok_or_else(|| invalid("chunkSize must be a positive integer"))?,
        };
        Ok(Params {
            bo_file,
            partner_file,
            bo_key,
            partner_key,
            compare,
            delimiter,
            has_header: flag("hasHeader", true),
            encoding,
            trim: flag("trim", true),
            ignore_case: flag("ignoreCase", false),
            numeric_tolerance,
            date_formats,
            chunk_size,
        })
    }
}
