//! The `ocr` job's parameters (protocol/docs/jobs.md).

use serde_json::Value;

use crate::jobs::JobError;
use crate::processors::input::Input;

/// Most pages one job may ask for.
pub(super) const MAX_PAGES: u32 = 10_000;

/// What the job produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Outputs {
    /// `text.txt`.
    pub text: bool,
    /// `pages.json`.
    pub pages: bool,
    /// `searchable.pdf`.
    pub pdf: bool,
}

/// Checked parameters.
#[derive(Debug, Clone)]
pub(super) struct Params {
    pub file: Input,
    pub languages: String,
    pub pages_per_chunk: u32,
    /// Selected page ranges, from 1, inclusive; `None`: every page.
    pub pages: Option<Vec<(u32, u32)>>,
    pub dpi: u32,
    pub outputs: Outputs,
    pub password: Option<String>,
}

fn invalid(message: impl Into<String>) -> JobError {
    JobError::permanent("invalid_parameter", message)
}

impl Params {
    /// Reads and checks the parameters.
    pub(super) fn parse(params: &Value) -> Result<Params, JobError> {
        if !params.is_object() {
            return Err(invalid("parameters must be a JSON object"));
        }
        let text = |name: &str| -> Result<Option<&str>, JobError> {
            match params.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(_) => Err(invalid(format!("{name} must be a string"))),
            }
        };
        let number = |name: &str, default: u32, range: std::ops::RangeInclusive<u32>| match params
            .get(name)
        {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| range.contains(n))
                .ok_or_else(|| {
                    invalid(format!(
                        "{name} must be a whole number from {} to {}",
                        range.start(),
                        range.end()
                    ))
                }),
        };
        let file = Input::from_params(params, "file", "upload")?;
        let languages = text("languages")?.unwrap_or("fra+eng").to_owned();
        if languages.is_empty()
            || !languages
                .split('+')
                .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            return Err(invalid(
                "languages must be tesseract language codes joined by '+', such as fra+eng",
            ));
        }
        let pages = text("pages")?.map(parse_pages).transpose()?;
        let outputs = match params.get("outputs") {
            None | Some(Value::Null) => Outputs {
                text: true,
                pages: true,
                pdf: false,
            },
            Some(Value::Array(items)) => {
                let mut outputs = Outputs {
                    text: false,
                    pages: false,
                    pdf: false,
                };
                for item in items {
                    match item.as_str() {
                        Some("text") => outputs.text = true,
                        Some("pages") => outputs.pages = true,
                        Some("pdf") => outputs.pdf = true,
                        _ => return Err(invalid("outputs may hold text, pages and pdf")),
                    }
                }
                outputs
            }
            Some(_) => return Err(invalid("outputs must be a list, such as [\"text\"]")),
        };
        Ok(Params {
            file,
            languages,
            pages_per_chunk: number("pagesPerChunk", 5, 1..=100)?,
            pages,
            dpi: number("dpi", 300, 72..=1200)?,
            outputs,
            password: text("password")?.map(str::to_owned),
        })
    }

    /// Whether page `n` (from 1) is selected.
    pub(super) fn selects(&self, n: u32) -> bool {
        self.pages
            .as_ref()
            .is_none_or(|ranges| ranges.iter().any(|(a, b)| (*a..=*b).contains(&n)))
    }
}

/// `1-5,8` into `[(1, 5), (8, 8)]`: pages numbered from 1, as people number them.
fn parse_pages(spec: &str) -> Result<Vec<(u32, u32)>, JobError> {
    let bad = || {
        invalid(format!(
            "pages {spec:?} must look like 1-5,8 (pages from 1)"
        ))
    };
    let mut ranges = Vec::new();
    for part in spec.split(',') {
        let part = part.trim();
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let a: u32 = a.parse().map_err(|_| bad())?;
        let b: u32 = b.parse().map_err(|_| bad())?;
        if a == 0 || b < a || b > MAX_PAGES {
            return Err(bad());
        }
        ranges.push((a, b));
    }
    Ok(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_and_page_selections() {
        let p = Params::parse(&json!({"file": "scan.pdf"})).unwrap();
        assert_eq!(
            (p.languages.as_str(), p.pages_per_chunk, p.dpi),
            ("fra+eng", 5, 300)
        );
        assert!(p.outputs.text && p.outputs.pages && !p.outputs.pdf && p.selects(42));
        let p = Params::parse(&json!({"file": "a.pdf", "pages": "1-3, 8"})).unwrap();
        assert_eq!(p.pages, Some(vec![(1, 3), (8, 8)]));
        assert!(p.selects(2) && p.selects(8) && !p.selects(4));
    }

    #[test]
    fn bad_parameters_are_refused() {
        for bad in [
            json!({}),
            json!({"file": "../etc/passwd"}),
            json!({"file": "a.pdf", "pages": "0-2"}),
            json!({"file": "a.pdf", "pages": "5-2"}),
            json!({"file": "a.pdf", "languages": "fra;rm -rf"}),
            json!({"file": "a.pdf", "dpi": 10}),
            json!({"file": "a.pdf", "outputs": ["svg"]}),
        ] {
            assert!(Params::parse(&bad).is_err(), "{bad}");
        }
    }
}
