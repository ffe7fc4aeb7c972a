//! The harness of the extraction tests: a real server with the `extract` (and `ocr`) job
//! types on a fresh import directory, jobs submitted and followed to their end, and the
//! precision and recall of what was extracted against what the corpus says is there.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use stompede::jobs::{Job, JobEngine, JobStatus};
use stompede::processors::{Extract, Ocr};
use stompede::protocol::Headers;
use stompede::{BrokerBuilder, Server};

/// A server with the extraction job types.
pub struct ExtractServer {
    pub server: Server,
    pub import: tempfile::TempDir,
    _dir: tempfile::TempDir,
}

impl ExtractServer {
    pub async fn start() -> ExtractServer {
        let import = tempfile::tempdir().unwrap();
        let (mut config, dir) = crate::common::test_config();
        config.job_progress_interval_ms = 0;
        config.import_dir = Some(import.path().to_owned());
        let uploads = config.uploads_dir();
        let server = BrokerBuilder::new(config)
            .job_type(
                "ocr",
                Ocr::new(import.path(), "tesseract")
                    .await
                    .with_uploads(&uploads),
            )
            .job_type(
                "extract",
                Extract::new(import.path()).with_uploads(&uploads),
            )
            .start()
            .await
            .unwrap();
        ExtractServer {
            server,
            import,
            _dir: dir,
        }
    }

    pub fn engine(&self) -> &JobEngine {
        self.server.jobs().unwrap()
    }

    /// Writes `bytes` as `name` in the import directory.
    pub fn put(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.import.path().join(name), bytes).unwrap();
    }

    /// Submits a job of `job_type` as `ann`; returns its id.
    pub async fn submit(&self, job_type: &str, params: &Value) -> String {
        let mut headers = Headers::new();
        headers.push("job-type", job_type);
        let job = self
            .engine()
            .submit("ann", &headers, params.to_string().as_bytes())
            .await
            .unwrap();
        job.id
    }

    /// Waits for job `id` to end; returns its final state.
    pub async fn finished(&self, id: &str) -> Job {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let job = self.engine().job(id).unwrap();
            if job.status.is_finished() {
                return job;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job {id} did not finish"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Extracts `profiles` from import file `file`; the job's result.
    pub async fn extract(&self, file: &str, profiles: &[&str]) -> Value {
        let id = self
            .submit(
                "extract",
                &serde_json::json!({ "file": file, "profiles": profiles }),
            )
            .await;
        let job = self.finished(&id).await;
        assert_eq!(job.status, JobStatus::Completed, "{file}: {:?}", job.error);
        job.result.unwrap()
    }

    /// Submits an extraction bound to fail; its error code and message.
    pub async fn refused(&self, params: &Value) -> (String, String) {
        let id = self.submit("extract", params).await;
        let job = self.finished(&id).await;
        assert_eq!(job.status, JobStatus::Failed, "{:?}", job.result);
        let error = job.error.unwrap();
        (error.code, error.message)
    }
}

/// The text a `source` span points at in an extraction result (spans count code points).
pub fn spanned(result: &Value, source: &Value) -> String {
    let page = source["page"].as_u64().unwrap();
    let text = result["pages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["page"].as_u64() == Some(page))
        .and_then(|p| p["text"].as_str())
        .unwrap_or_else(|| panic!("no page {page} in the result"));
    let (start, end) = (
        source["start"].as_u64().unwrap() as usize,
        source["end"].as_u64().unwrap() as usize,
    );
    text.chars().skip(start).take(end - start).collect()
}

/// Precision and recall per field: what was expected, what was found, what matched.
#[derive(Debug, Default)]
pub struct Scores {
    fields: BTreeMap<String, (usize, usize, usize)>,
}

impl Scores {
    /// Records one field of one document: `expected` and `found` values (as comparable
    /// strings; `None` when the document has none or nothing was extracted).
    pub fn field(&mut self, field: &str, expected: Option<String>, found: Option<String>) {
        self.items(
            field,
            expected.into_iter().collect(),
            found.into_iter().collect(),
        );
    }

    /// Records a list field of one document (lots, requirements, VAT lines).
    pub fn items(&mut self, field: &str, expected: Vec<String>, found: Vec<String>) {
        let entry = self.fields.entry(field.to_owned()).or_default();
        let mut unmatched = expected.clone();
        let mut hits = 0;
        for f in &found {
            if let Some(at) = unmatched.iter().position(|e| e == f) {
                unmatched.swap_remove(at);
                hits += 1;
            }
        }
        entry.0 += expected.len();
        entry.1 += found.len();
        entry.2 += hits;
    }

    /// Precision and recall of `field` (1 when there was nothing to find or nothing found).
    pub fn of(&self, field: &str) -> (f64, f64) {
        let (expected, found, hits) = self.fields.get(field).copied().unwrap_or_default();
        let ratio = |n: usize, d: usize| if d == 0 { 1.0 } else { n as f64 / d as f64 };
        (ratio(hits, found), ratio(hits, expected))
    }

    /// Fails naming every field whose precision or recall is under `threshold`.
    pub fn assert_at_least(&self, threshold: f64) {
        let mut report = String::new();
        let mut failed = false;
        for field in self.fields.keys() {
            let (p, r) = self.of(field);
            report.push_str(&format!("{field}: precision {p:.2}, recall {r:.2}\n"));
            failed |= p < threshold || r < threshold;
        }
        println!("{report}");
        assert!(!failed, "below {threshold}:\n{report}");
    }
}
