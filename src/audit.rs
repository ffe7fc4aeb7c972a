//! The audit log: who did what, from where, and how it went, as append-only JSON lines in
//! `<data-dir>/audit/audit.log`: logins and failed logins, API tokens issued, job submissions
//! and every cancel, pause, resume, retry and delete, queue purges.
//!
//! Each line is `{"time", "user", "address", "action", "outcome", ...details}`, written whole
//! with one `write` on a file opened for appending, so a crash loses at most the line being
//! written and never garbles an earlier one. Past `max_bytes` the file is rotated:
//! `audit.log` becomes `audit.log.1`, the older ones move up, and the oldest beyond
//! [`KEEP`] is removed. Values that come from clients are JSON-escaped like any string, so a
//! newline in a user name cannot forge a line.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Map, Value};

/// Rotated files kept besides the current one.
pub const KEEP: usize = 5;

/// A handle on the audit log; cheap to clone.
#[derive(Debug, Clone)]
pub struct Audit {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    max_bytes: u64,
    /// The open file and its size; `None` once writing failed (retried on the next line).
    file: Mutex<Option<(File, u64)>>,
    /// Lines not written (a full or read-only disk): counted for `/metrics`, never fatal.
    failures: AtomicU64,
    /// True from a failed line until a line is written again: the error is logged once per
    /// streak, not once per line, while the disk stays full.
    failing: AtomicBool,
}

/// How an audited action went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Ok,
    /// Refused: wrong credentials, not allowed, invalid.
    Denied,
    /// Refused for now: too many attempts.
    Throttled,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::Throttled => "throttled",
        }
    }
}

impl Audit {
    /// The audit log in `<data_dir>/audit/`, rotated past `max_bytes`.
    pub fn open(data_dir: &Path, max_bytes: u64) -> std::io::Result<Audit> {
        let dir = data_dir.join("audit");
        std::fs::create_dir_all(&dir)?;
        let file = open_current(&dir)?;
        Ok(Audit {
            inner: Arc::new(Inner {
                dir,
                max_bytes: max_bytes.max(4096),
                file: Mutex::new(Some(file)),
                failures: AtomicU64::new(0),
                failing: AtomicBool::new(false),
            }),
        })
    }

    /// The current file's path.
    pub fn path(&self) -> PathBuf {
        self.inner.dir.join("audit.log")
    }

    /// Records `action` by `user` from `address` with its `outcome`; `details` (an object)
    /// adds fields such as the job id.
    pub fn record(
        &self,
        user: &str,
        address: &str,
        action: &str,
        outcome: Outcome,
        details: Value,
    ) {
        let mut line = Map::new();
        line.insert("time".into(), json!(rfc3339_now()));
        line.insert("user".into(), json!(user));
        line.insert("address".into(), json!(address));
        line.insert("action".into(), json!(action));
        line.insert("outcome".into(), json!(outcome.as_str()));
        if let Value::Object(details) = details {
            for (key, value) in details {
                line.entry(key).or_insert(value);
            }
        }
        let mut bytes = Value::Object(line).to_string().into_bytes();
        bytes.push(b'\n');
        match self.append(&bytes) {
            Ok(()) => {
                if self.inner.failing.swap(false, Ordering::AcqRel) {
                    tracing::warn!("audit log written again");
                }
            }
            Err(error) => {
                self.inner.failures.fetch_add(1, Ordering::Relaxed);
                if self.inner.failing.swap(true, Ordering::AcqRel) {
                    tracing::debug!(%error, action, user, "audit log not written");
                } else {
                    tracing::error!(%error, action, user, "audit log not written (counted in stompede_audit_write_failures_total until it works again)");
                }
            }
        }
    }

    /// Lines that could not be written since start.
    pub fn write_failures(&self) -> u64 {
        self.inner.failures.load(Ordering::Relaxed)
    }

    fn append(&self, bytes: &[u8]) -> std::io::Result<()> {
        let mut guard = self.inner.file.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            *guard = Some(open_current(&self.inner.dir)?);
        }
        let needs_rotation = guard
            .as_ref()
            .is_some_and(|(_, size)| *size > 0 && size + bytes.len() as u64 > self.inner.max_bytes);
        if needs_rotation {
            *guard = None;
            rotate(&self.inner.dir)?;
            *guard = Some(open_current(&self.inner.dir)?);
        }
        let Some((file, size)) = guard.as_mut() else {
            return Ok(());
        };
        match file.write_all(bytes) {
            Ok(()) => {
                *size += bytes.len() as u64;
                Ok(())
            }
            Err(error) => {
                // A full disk may have taken part of the line: cut it off, so that the next
                // line starts on a line of its own (shrinking a file needs no space).
                let _ = file.set_len(*size);
                *guard = None;
                Err(error)
            }
        }
    }
}

fn open_current(dir: &Path) -> std::io::Result<(File, u64)> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("audit.log"))?;
    let size = file.metadata()?.len();
    Ok((file, size))
}

/// `audit.log.{n}` to `.{n+1}` from the oldest kept, then `audit.log` to `.1`.
fn rotate(dir: &Path) -> std::io::Result<()> {
    let name = |n: usize| dir.join(format!("audit.log.{n}"));
    let _ = std::fs::remove_file(name(KEEP));
    for n in (1..KEEP).rev() {
        if name(n).exists() {
            std::fs::rename(name(n), name(n + 1))?;
        }
    }
    std::fs::rename(dir.join("audit.log"), name(1))
}

/// Now in UTC as RFC 3339 with milliseconds (`2026-12-07T06:50:01.123Z`).
fn rfc3339_now() -> String {
    rfc3339(crate::clock::now_ms())
}

fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn times_are_utc_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_796_626_201_005), "2026-12-07T06:50:01.005Z");
    }

    #[test]
    fn lines_are_whole_json_and_the_file_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let audit = Audit::open(dir.path(), 4096).unwrap();
        for i in 0..200 {
            audit.record(
                "ann\nforged",
                "127.0.0.1",
                "job.cancel",
                Outcome::Ok,
                json!({ "jobId": format!("J{i}") }),
            );
        }
        let current = std::fs::read_to_string(audit.path()).unwrap();
        let rotated = std::fs::read_to_string(dir.path().join("audit/audit.log.1")).unwrap();
        assert!(current.len() <= 4096 && rotated.len() <= 4096);
        assert!(!dir
            .path()
            .join(format!("audit/audit.log.{}", KEEP + 1))
            .exists());
        let last: Value = serde_json::from_str(current.lines().last().unwrap()).unwrap();
        assert_eq!(last["jobId"], "J199");
        assert_eq!(last["user"], "ann\nforged");
        assert_eq!(last["outcome"], "ok");
        for line in current.lines().chain(rotated.lines()) {
            let parsed: Value = serde_json::from_str(line).unwrap();
            assert_eq!(parsed["action"], "job.cancel");
        }
    }
}
