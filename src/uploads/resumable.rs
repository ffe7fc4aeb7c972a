//! Resumable uploads (the tus 1.0 core protocol's model): an upload is created with its final
//! length, then filled by appends that each start where the file on disk ends, so a client
//! whose connection broke asks for the offset and goes on from there. What arrived before a
//! break is kept: that is the point. Once the last byte is in, the upload is hashed, sniffed
//! and becomes an ordinary upload with the same id.
//!
//! On disk, beside the finished uploads: `<id>.part` (the bytes so far; its length is the
//! offset) and `<id>.tus.json` (name, owner, length, creation time).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{check_name, sniff, UploadError, UploadInfo, Uploads};

/// An upload under way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resumable {
    /// Its id, which the finished upload keeps.
    pub id: String,
    /// The name its sender gave it.
    pub name: String,
    /// Who is sending it.
    pub owner: String,
    /// Its final length in bytes, declared at creation.
    pub length: u64,
    /// When it was created, ms since the epoch (it expires like any upload).
    pub created_at: u64,
}

/// Where a resumable upload stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Bytes `0..offset` are stored.
    Partial {
        /// The upload.
        upload: Resumable,
        /// How many bytes are stored.
        offset: u64,
    },
    /// Every byte is in: it is an ordinary upload now.
    Complete(UploadInfo),
}

impl Progress {
    /// Bytes stored and the final length.
    pub fn offset_and_length(&self) -> (u64, u64) {
        match self {
            Progress::Partial { upload, offset } => (*offset, upload.length),
            Progress::Complete(info) => (info.size, info.size),
        }
    }

    /// The upload's creation time, ms since the epoch.
    pub fn created_at(&self) -> u64 {
        match self {
            Progress::Partial { upload, .. } => upload.created_at,
            Progress::Complete(info) => info.created_at,
        }
    }
}

/// The ids of uploads an append is writing to: one append at a time per upload, since two
/// would interleave their bytes.
#[derive(Debug, Clone, Default)]
pub(super) struct Appending(Arc<Mutex<HashSet<String>>>);

/// Holds an upload's append slot; frees it when dropped.
struct Slot {
    appending: Appending,
    id: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut ids) = self.appending.0.lock() {
            ids.remove(&self.id);
        }
    }
}

impl Appending {
    fn take(&self, id: &str) -> Option<Slot> {
        let mut ids = self.0.lock().ok()?;
        ids.insert(id.to_owned()).then(|| Slot {
            appending: self.clone(),
            id: id.to_owned(),
        })
    }
}

impl Uploads {
    pub(super) fn part(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.part"))
    }

    fn state(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.tus.json"))
    }

    /// Creates an empty resumable upload of `length` bytes named `name`, sent by `owner`. An
    /// empty file is complete at once.
    pub async fn create_resumable(
        &self,
        owner: &str,
        name: &str,
        length: u64,
    ) -> Result<Progress, UploadError> {
        let name = check_name(name)?.to_owned();
        if length > self.max_bytes {
            return Err(UploadError::TooLarge {
                limit: self.max_bytes,
            });
        }
        let upload = Resumable {
            id: crate::jobs::new_id().map_err(|e| UploadError::Id(e.to_string()))?,
            name,
            owner: owner.to_owned(),
            length,
            created_at: crate::clock::now_ms(),
        };
        tokio::fs::create_dir_all(&self.dir).await?;
        tokio::fs::File::create(self.part(&upload.id))
            .await?
            .sync_all()
            .await?;
        let state = serde_json::to_vec(&upload).map_err(std::io::Error::other)?;
        write_atomically(&self.state(&upload.id), state).await?;
        if length == 0 {
            return self.complete(upload).await.map(Progress::Complete);
        }
        Ok(Progress::Partial { upload, offset: 0 })
    }

    /// Where upload `id` stands, when `user` may use it (its owner, or anyone when `any`).
    pub async fn resumable(
        &self,
        id: &str,
        user: &str,
        any: bool,
    ) -> Result<Progress, UploadError> {
        let not_found = || UploadError::NotFound(id.to_owned());
        if !super::is_id(id) {
            return Err(not_found());
        }
        match tokio::fs::read(self.state(id)).await {
            Ok(bytes) => {
                let upload: Resumable = serde_json::from_slice(&bytes).map_err(|_| not_found())?;
                if upload.owner != user && !any {
                    return Err(not_found());
                }
                let offset = tokio::fs::metadata(self.part(id))
                    .await
                    .map_err(|_| not_found())?
                    .len();
                Ok(Progress::Partial { upload, offset })
            }
            // Finished since: HEAD after a lost last answer must still say so.
            Err(_) => self.get(id, user, any).map(Progress::Complete),
        }
    }

    /// Appends `body` to `upload` at `offset`, which must be where its stored bytes end. What
    /// arrives is kept even when the body breaks off; the answer is the new offset, or the
    /// finished upload when that was its last byte.
    pub async fn append<S, E>(
        &self,
        upload: Resumable,
        offset: u64,
        mut body: S,
    ) -> Result<Progress, UploadError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let Some(_slot) = self.appending.take(&upload.id) else {
            return Err(UploadError::Busy(upload.id));
        };
        let mut file = tokio::fs::OpenOptions::new()
            .append(true)
            .open(self.part(&upload.id))
            .await?;
        let stored = file.metadata().await?.len();
        if stored != offset {
            return Err(UploadError::OffsetMismatch {
                expected: stored,
                given: offset,
            });
        }
        let mut written = stored;
        let mut broken = None;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(chunk) => {
                    let end = written + chunk.len() as u64;
                    if end > upload.length {
                        // What came before stays; the client learns that offset from HEAD.
                        file.sync_data().await?;
                        return Err(UploadError::PastLength {
                            length: upload.length,
                        });
                    }
                    file.write_all(&chunk).await?;
                    written = end;
                }
                Err(error) => {
                    broken = Some(error.to_string());
                    break;
                }
            }
        }
        // The offset a HEAD reports must survive a crash.
        file.sync_data().await?;
        if let Some(why) = broken {
            tracing::info!(upload = %upload.id, offset = written, %why, "resumable upload broke off");
            return Err(UploadError::Interrupted(why));
        }
        if written == upload.length {
            return self.complete(upload).await.map(Progress::Complete);
        }
        Ok(Progress::Partial {
            upload,
            offset: written,
        })
    }

    /// Hashes and sniffs the finished part file (its bytes came in several requests, so there
    /// is no running hash to finish), then publishes it as an ordinary upload.
    async fn complete(&self, upload: Resumable) -> Result<UploadInfo, UploadError> {
        let part = self.part(&upload.id);
        let (sha256, head) = hash_file(&part).await?;
        let info = UploadInfo {
            id: upload.id.clone(),
            name: upload.name,
            size: upload.length,
            sha256,
            content_type: sniff(&head).to_owned(),
            owner: upload.owner,
            created_at: upload.created_at,
        };
        tokio::fs::rename(&part, self.data(&info.id)).await?;
        let meta = serde_json::to_vec(&info).map_err(std::io::Error::other)?;
        write_atomically(&self.meta(&info.id), meta).await?;
        let _ = tokio::fs::remove_file(self.state(&info.id)).await;
        Ok(info)
    }

    /// Removes an upload, finished or not (the tus termination extension).
    pub async fn terminate(&self, progress: &Progress) -> Result<(), UploadError> {
        match progress {
            Progress::Partial { upload, .. } => {
                let Some(_slot) = self.appending.take(&upload.id) else {
                    return Err(UploadError::Busy(upload.id.clone()));
                };
                let _ = tokio::fs::remove_file(self.state(&upload.id)).await;
                let _ = tokio::fs::remove_file(self.part(&upload.id)).await;
            }
            Progress::Complete(info) => self.remove(info).await,
        }
        Ok(())
    }
}

/// SHA-256 (hex) of the file at `path`, and its first KiB for sniffing.
async fn hash_file(path: &std::path::Path) -> std::io::Result<(String, Vec<u8>)> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut hash = Sha256::new();
    let mut head = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        if head.len() < 1024 {
            let take = (1024 - head.len()).min(n);
            head.extend_from_slice(&buf[..take]);
        }
        hash.update(&buf[..n]);
    }
    Ok((format!("{:x}", hash.finalize()), head))
}

/// Writes `bytes` to `path` so that a reader sees the old file or the whole new one.
pub(super) async fn write_atomically(
    path: &std::path::Path,
    bytes: Vec<u8>,
) -> std::io::Result<()> {
    let temp = path.with_extension("tmp");
    tokio::fs::write(&temp, bytes).await?;
    tokio::fs::rename(&temp, path).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, String>> + Unpin {
        futures::stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
    }

    #[tokio::test]
    async fn appends_resume_where_the_stored_bytes_end_even_after_a_break() {
        let dir = tempfile::tempdir().unwrap();
        let uploads = Uploads::new(dir.path(), 100);
        let Progress::Partial { upload, .. } =
            uploads.create_resumable("ann", "a.txt", 11).await.unwrap()
        else {
            panic!("a non-empty upload starts partial")
        };
        // The first request breaks off after "hello".
        let broken = futures::stream::iter(vec![
            Ok(Bytes::from_static(b"hello")),
            Err("connection reset".to_owned()),
        ]);
        assert!(matches!(
            uploads.append(upload.clone(), 0, broken).await,
            Err(UploadError::Interrupted(_))
        ));
        let progress = uploads.resumable(&upload.id, "ann", false).await.unwrap();
        assert_eq!(progress.offset_and_length(), (5, 11));
        assert!(uploads.resumable(&upload.id, "bob", false).await.is_err());
        // A stale offset is refused, the right one goes on.
        assert!(matches!(
            uploads.append(upload.clone(), 0, chunks(&[b"x"])).await,
            Err(UploadError::OffsetMismatch {
                expected: 5,
                given: 0
            })
        ));
        let done = uploads
            .append(upload.clone(), 5, chunks(&[b" ", b"world"]))
            .await
            .unwrap();
        let Progress::Complete(info) = done else {
            panic!("the last byte completes the upload")
        };
        assert_eq!(
            info.sha256,
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        assert_eq!(uploads.get(&upload.id, "ann", false).unwrap(), info);
        // Asking again after the end still answers, with the whole length.
        let again = uploads.resumable(&upload.id, "ann", false).await.unwrap();
        assert_eq!(again.offset_and_length(), (11, 11));
    }

    #[tokio::test]
    async fn bytes_past_the_declared_length_and_a_second_writer_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let uploads = Uploads::new(dir.path(), 100);
        assert!(matches!(
            uploads.create_resumable("ann", "big", 101).await,
            Err(UploadError::TooLarge { limit: 100 })
        ));
        let Progress::Partial { upload, .. } =
            uploads.create_resumable("ann", "a", 3).await.unwrap()
        else {
            panic!("partial")
        };
        assert!(matches!(
            uploads.append(upload.clone(), 0, chunks(&[b"abcd"])).await,
            Err(UploadError::PastLength { length: 3 })
        ));
        let _slot = uploads.appending.take(&upload.id).unwrap();
        assert!(matches!(
            uploads.append(upload.clone(), 0, chunks(&[b"a"])).await,
            Err(UploadError::Busy(_))
        ));
    }

    #[tokio::test]
    async fn an_empty_upload_is_complete_at_creation() {
        let dir = tempfile::tempdir().unwrap();
        let uploads = Uploads::new(dir.path(), 100);
        let progress = uploads.create_resumable("ann", "e", 0).await.unwrap();
        assert!(matches!(progress, Progress::Complete(ref info) if info.size == 0));
    }
}
