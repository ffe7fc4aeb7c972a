//! Uploaded files: streamed to `<data-dir>/uploads/` under a name the server chooses, with
//! their size, SHA-256 and a type sniffed from the content, and owned by who sent them. Job
//! types take an upload id where they take a path (`processors/input.rs`). Large files may
//! come in several requests instead (`resumable.rs`).

mod mount;
mod resumable;
mod writer;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use resumable::{Progress, Resumable};

/// What is known of an upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadInfo {
    /// Its id (a ULID).
    pub id: String,
    /// The name its sender gave it.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// SHA-256 of the content, hex.
    pub sha256: String,
    /// The type, sniffed from the content.
    pub content_type: String,
    /// Who sent it.
    pub owner: String,
    /// When it arrived, ms since the epoch.
    pub created_at: u64,
}

/// Why an upload was refused or not found.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// Over the size limit.
    #[error("the upload is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The name tries to leave its directory or holds a forbidden character.
    #[error("file name {0:?} is refused: no '/', '\\\\', NUL, '..' or absolute path")]
    BadName(String),
    /// The sender's stream broke off.
    #[error("the upload was interrupted: {0}")]
    Interrupted(String),
    /// No such upload (or not the caller's).
    #[error("no upload {0} of yours")]
    NotFound(String),
    /// The disk failed.
    #[error("storing the upload failed: {0}")]
    Io(#[from] std::io::Error),
    /// No randomness for an id.
    #[error("no id could be made: {0}")]
    Id(String),
    /// A resumable upload's append did not start where its stored bytes end.
    #[error("the upload holds {expected} bytes, not {given}: resume from {expected}")]
    OffsetMismatch {
        /// The stored length.
        expected: u64,
        /// The offset the client gave.
        given: u64,
    },
    /// More bytes than the upload's declared length.
    #[error("the upload was declared {length} bytes long")]
    PastLength {
        /// The declared length.
        length: u64,
    },
    /// Another request is appending to this upload.
    #[error("upload {0} is being written by another request")]
    Busy(String),
}

/// The upload directory.
#[derive(Debug, Clone)]
pub struct Uploads {
    dir: PathBuf,
    max_bytes: u64,
    appending: resumable::Appending,
}

/// An id is a ULID: anything else cannot name a file here.
fn is_id(id: &str) -> bool {
    id.len() == 26 && id.chars().all(|c| c.is_ascii_alphanumeric())
}

/// Checks a file name as given by a client: refused, not cleaned, when it could name anything
/// but a plain file.
pub fn check_name(name: &str) -> Result<&str, UploadError> {
    let bad = name.is_empty()
        || name.len() > 255
        || name == "."
        || name == ".."
        || name.contains(['/', '\\', '\0'])
        || name.chars().any(char::is_control);
    if bad {
        Err(UploadError::BadName(name.to_owned()))
    } else {
        Ok(name)
    }
}

/// The type of a file starting with `head`.
pub fn sniff(head: &[u8]) -> &'static str {
    if head.windows(5).take(1024).any(|w| w == b"%PDF-") {
        "application/pdf"
    } else if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        "image/jpeg"
    } else if head.starts_with(b"II*\0") || head.starts_with(b"MM\0*") {
        "image/tiff"
    } else if head.starts_with(b"PK\x03\x04") {
        "application/zip"
    } else if !head.is_empty() && std::str::from_utf8(head).is_ok() {
        "text/plain"
    } else {
        "application/octet-stream"
    }
}

/// An upload being written: chunks go to a temporary file, hashed and counted on the way.
/// Dropped before [`Incoming::finish`] (refused, interrupted, or its request abandoned when
/// the client went away), it removes what it wrote.
pub struct Incoming {
    uploads: Uploads,
    id: String,
    name: String,
    owner: String,
    part: PathBuf,
    file: writer::FileWriter,
    size: u64,
    head: Vec<u8>,
    finished: bool,
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if !self.finished {
            // A small unlink: done here rather than leave a partial file to chance.
            let _ = std::fs::remove_file(&self.part);
        }
    }
}

impl Uploads {
    /// Uploads live in `dir`, each at most `max_bytes`.
    pub fn new(dir: impl Into<PathBuf>, max_bytes: u64) -> Uploads {
        Uploads {
            dir: dir.into(),
            max_bytes,
            appending: resumable::Appending::default(),
        }
    }

    /// The largest upload accepted.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    fn data(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    fn meta(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Starts an upload of `name` by `owner`.
    pub async fn begin(&self, owner: &str, name: &str) -> Result<Incoming, UploadError> {
        let name = check_name(name)?.to_owned();
        let id = crate::jobs::new_id().map_err(|e| UploadError::Id(e.to_string()))?;
        tokio::fs::create_dir_all(&self.dir).await?;
        let part = self.part(&id);
        let file = writer::FileWriter::create(&part).await?;
        Ok(Incoming {
            uploads: self.clone(),
            id,
            name,
            owner: owner.to_owned(),
            part,
            file,
            size: 0,
            head: Vec::new(),
            finished: false,
        })
    }

    /// Upload `id`, when `user` may use it (its owner, or anyone when `any` is set: admins).
    pub fn get(&self, id: &str, user: &str, any: bool) -> Result<UploadInfo, UploadError> {
        let not_found = || UploadError::NotFound(id.to_owned());
        if !is_id(id) {
            return Err(not_found());
        }
        let bytes = std::fs::read(self.meta(id)).map_err(|_| not_found())?;
        let info: UploadInfo = serde_json::from_slice(&bytes).map_err(|_| not_found())?;
        if info.owner != user && !any {
            return Err(not_found());
        }
        Ok(info)
    }

    /// Forgets an upload (its request failed after it was stored).
    pub async fn remove(&self, info: &UploadInfo) {
        let _ = tokio::fs::remove_file(self.meta(&info.id)).await;
        let _ = tokio::fs::remove_file(self.data(&info.id)).await;
    }

    /// The content of upload `id` (checked with [`Uploads::get`] first).
    pub fn path(&self, info: &UploadInfo) -> PathBuf {
        self.data(&info.id)
    }
}

impl Incoming {
    /// Adds a chunk; refuses (and removes what was written) past the size limit.
    pub async fn write(&mut self, chunk: &Bytes) -> Result<(), UploadError> {
        self.size += chunk.len() as u64;
        if self.size > self.uploads.max_bytes {
            return Err(UploadError::TooLarge {
                limit: self.uploads.max_bytes,
            });
        }
        if self.head.len() < 1024 {
            let take = (1024 - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        self.file.write(chunk).await?;
        Ok(())
    }

    /// Makes the upload durable and visible; returns what is known of it.
    pub async fn finish(mut self) -> Result<UploadInfo, UploadError> {
        let file = std::mem::replace(&mut self.file, writer::FileWriter::closed());
        let sha256 = file.finish().await?;
        let info = UploadInfo {
            id: self.id.clone(),
            name: self.name.clone(),
            size: self.size,
            sha256,
            content_type: sniff(&self.head).to_owned(),
            owner: self.owner.clone(),
            created_at: crate::clock::now_ms(),
        };
        let data = self.uploads.data(&self.id);
        tokio::fs::rename(&self.part, &data).await?;
        self.finished = true;
        let meta = serde_json::to_vec(&info).map_err(std::io::Error::other)?;
        resumable::write_atomically(&self.uploads.meta(&self.id), meta).await?;
        Ok(info)
    }

    /// Gives up: nothing is left behind.
    pub fn abandon(self) {
        drop(self);
    }
}

/// Removes uploads older than `retention_ms` (their jobs expire with the same retention),
/// finished or not, and the leftovers of uploads cut short by a crash.
pub fn expire(dir: &Path, retention_ms: u64) -> std::io::Result<usize> {
    let cutoff = crate::clock::now_ms().saturating_sub(retention_ms);
    let mut removed = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(0);
    };
    for entry in entries.take(100_000) {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(id) = name.strip_suffix(".tus.json") {
            let created = std::fs::read(&path)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Resumable>(&bytes).ok())
                .map(|upload| upload.created_at);
            if created.is_some_and(|at| at < cutoff) {
                let _ = std::fs::remove_file(dir.join(format!("{id}.part")));
                let _ = std::fs::remove_file(&path);
                removed += 1;
            }
        } else if let Some(id) = name.strip_suffix(".json") {
            let created = std::fs::read(&path)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<UploadInfo>(&bytes).ok())
                .map(|info| info.created_at);
            if created.is_some_and(|at| at < cutoff) {
                let _ = std::fs::remove_file(dir.join(id));
                let _ = std::fs::remove_file(&path);
                removed += 1;
            }
        } else if name.ends_with(".part") || name.ends_with(".tmp") {
            // An upload whose server died mid-write; a resumable one's state goes first.
            let modified = entry.metadata()?.modified()?;
            let age = modified.elapsed().unwrap_or_default();
            let has_state = dir.join(name.replace(".part", ".tus.json")).exists();
            if !has_state && age.as_millis() > u128::from(retention_ms) {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_leave_the_directory_are_refused() {
        assert!(check_name("relevé 2024.csv").is_ok());
        for bad in ["", "..", "a/b", "a\\b", "/etc/passwd", "x\0y", "a\nb"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn an_upload_is_counted_hashed_and_kept_for_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let uploads = Uploads::new(dir.path(), 10);
        let mut incoming = uploads.begin("ann", "a.txt").await.unwrap();
        incoming.write(&Bytes::from_static(b"hello")).await.unwrap();
        let info = incoming.finish().await.unwrap();
        assert_eq!((info.size, info.content_type.as_str()), (5, "text/plain"));
        assert_eq!(
            info.sha256,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(uploads.get(&info.id, "ann", false).unwrap(), info);
        assert!(uploads.get(&info.id, "bob", false).is_err());
        assert!(uploads.get("../../etc/passwd", "ann", true).is_err());
        let mut big = uploads.begin("ann", "b.bin").await.unwrap();
        assert!(matches!(
            big.write(&Bytes::from_static(b"0123456789ab")).await,
            Err(UploadError::TooLarge { limit: 10 })
        ));
        big.abandon();
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 2, "only the first upload and its metadata");
    }
}
