//! Extraction started by an upload (`auto-extract:<profiles>`), as the reference systems did:
//! the file's SHA-256 goes with the job, and a file already extracted (or being extracted) by
//! the same user with the same profiles gives back that job instead of running again, so a
//! document uploaded twice is never processed twice. A job that failed or was cancelled does
//! not count: uploading the file again runs it again.

use serde_json::{json, Value};
use stompede_protocol::Headers;

use super::model::{Job, JobStatus};
use super::service::Rejection;
use super::JobEngine;

/// The job type auto-extraction submits.
const JOB_TYPE: &str = "extract";

/// Profiles as a sorted, deduplicated list, from a comma-separated string or a JSON list.
fn profile_set(value: &Value) -> Vec<String> {
    let mut names: Vec<String> = match value {
        Value::String(s) => s.split(',').map(|p| p.trim().to_owned()).collect(),
        Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(|s| s.trim().to_owned()))
            .collect(),
        _ => Vec::new(),
    };
    names.retain(|n| !n.is_empty());
    names.sort();
    names.dedup();
    names
}

impl JobEngine {
    /// Starts the extraction of `user`'s upload `upload_id` (content `sha256`) with
    /// `profiles` (comma-separated), or finds the one that ran on the same content: the job,
    /// and whether it was found rather than started.
    pub(crate) async fn extract_upload(
        &self,
        user: &str,
        address: &str,
        upload_id: &str,
        sha256: &str,
        profiles: &str,
    ) -> Result<(Job, bool), Rejection> {
        let wanted = profile_set(&json!(profiles));
        let earlier = self.newest_job(user, JOB_TYPE, |job| {
            !matches!(job.status, JobStatus::Failed | JobStatus::Cancelled)
                && job.params.get("sha256").and_then(Value::as_str) == Some(sha256)
                && job.params.get("profiles").map(profile_set).as_ref() == Some(&wanted)
        });
        if let Some(job) = earlier {
            return Ok((job, true));
        }
        let mut headers = Headers::new();
        headers.push("job-type", JOB_TYPE);
        let params = json!({ "upload": upload_id, "profiles": wanted, "sha256": sha256 });
        let submitted = self.submit_params(user, &headers, params).await;
        self.audit(user, address, "submit", JOB_TYPE, &submitted);
        Ok((submitted?, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_sets_ignore_order_spaces_and_repeats() {
        assert_eq!(
            profile_set(&json!("requirements, dce,dce")),
            profile_set(&json!(["dce", "requirements"]))
        );
        assert!(profile_set(&json!(" , ")).is_empty());
    }
}
