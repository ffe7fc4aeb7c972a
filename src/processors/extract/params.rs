//! The `extract` job's parameters.

use serde_json::Value;

use crate::jobs::JobError;
use crate::processors::input::Input;

use super::profiles;

/// Most pages in one chunk.
const MAX_PAGES_PER_CHUNK: u64 = 1000;

/// What an `extract` job was asked to do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Params {
    /// The document.
    pub file: Input,
    /// The profiles to run, in the order given, each once.
    pub profiles: Vec<String>,
    /// Pages per chunk.
    pub pages_per_chunk: u64,
    /// Tesseract languages for scanned pages.
    pub languages: String,
    /// A PDF's user password.
    pub password: Option<String>,
}

fn invalid(message: impl Into<String>) -> JobError {
    JobError::permanent("invalid_parameter", message)
}

impl Params {
    /// Reads and checks `params`.
    pub(crate) fn parse(params: &Value) -> Result<Params, JobError> {
        let file = Input::from_params(params, "file", "upload")?;
        let profiles = parse_profiles(params.get("profiles"))?;
        let pages_per_chunk = match params.get("pagesPerChunk") {
            None | Some(Value::Null) => 10,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=MAX_PAGES_PER_CHUNK).contains(n))
                .ok_or_else(|| {
                    invalid(format!(
                        "pagesPerChunk must be a whole number from 1 to {MAX_PAGES_PER_CHUNK}"
                    ))
                })?,
        };
        let text = |name: &str| match params.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid(format!("{name} must be a string"))),
        };
        let languages = text("languages")?.unwrap_or_else(|| "fra+eng".to_owned());
        if languages.is_empty()
            || !languages
                .split('+')
                .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            return Err(invalid("languages must look like fra+eng"));
        }
        Ok(Params {
            file,
            profiles,
            pages_per_chunk,
            languages,
            password: text("password")?,
        })
    }
}

/// `profiles` as a list (`["dce", "requirements"]`) or a comma-separated string
/// (`"dce,requirements"`, as the `auto-extract` header gives it).
pub(crate) fn parse_profiles(value: Option<&Value>) -> Result<Vec<String>, JobError> {
    let known = profiles::names();
    let names: Vec<String> = match value {
        Some(Value::String(s)) => s.split(',').map(|p| p.trim().to_owned()).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| invalid("profiles must be names"))
            })
            .collect::<Result<_, _>>()?,
        None | Some(Value::Null) => Vec::new(),
        Some(_) => return Err(invalid("profiles must be a list of names")),
    };
    let mut chosen: Vec<String> = Vec::new();
    for name in names.into_iter().filter(|n| !n.is_empty()) {
        if !known.contains(&name.as_str()) {
            return Err(invalid(format!(
                "unknown profile {name:?}; known: {}",
                known.join(", ")
            )));
        }
        if !chosen.contains(&name) {
            chosen.push(name);
        }
    }
    if chosen.is_empty() {
        return Err(invalid(format!(
            "profiles is required: any of {}",
            known.join(", ")
        )));
    }
    Ok(chosen)
}
