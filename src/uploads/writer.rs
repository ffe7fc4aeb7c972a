//! Writes an upload to disk on a thread of its own, hashing as it goes, while the request's
//! task goes on receiving: the network, the hash and the disk then work at once instead of
//! in turn, and a disk that throttles its writers always has the next block waiting.

use std::io::Write;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

/// Bytes gathered before a block goes to the writer.
const BLOCK: usize = 1 << 20;
/// Blocks in flight between the request and the writer (so at most this many MiB held).
const IN_FLIGHT: usize = 8;

/// The receiving side's handle.
pub(super) struct FileWriter {
    pending: BytesMut,
    blocks: Option<mpsc::Sender<Bytes>>,
    done: Option<tokio::task::JoinHandle<std::io::Result<String>>>,
}

impl FileWriter {
    /// Creates `path` and starts its writer.
    pub(super) async fn create(path: &Path) -> std::io::Result<FileWriter> {
        let file = tokio::fs::File::create(path).await?.into_std().await;
        let (blocks, mut incoming) = mpsc::channel::<Bytes>(IN_FLIGHT);
        let done = tokio::task::spawn_blocking(move || {
            let mut file = file;
            let mut hash = Sha256::new();
            while let Some(block) = incoming.blocking_recv() {
                hash.update(&block);
                file.write_all(&block)?;
            }
            file.sync_all()?;
            Ok(format!("{:x}", hash.finalize()))
        });
        Ok(FileWriter {
            pending: BytesMut::with_capacity(BLOCK),
            blocks: Some(blocks),
            done: Some(done),
        })
    }

    /// A writer with nothing behind it (what is left once one has finished).
    pub(super) fn closed() -> FileWriter {
        FileWriter {
            pending: BytesMut::new(),
            blocks: None,
            done: None,
        }
    }

    /// Adds `chunk`; waits only when the writer is `IN_FLIGHT` blocks behind.
    pub(super) async fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.pending.extend_from_slice(chunk);
        if self.pending.len() >= BLOCK {
            self.send().await?;
        }
        Ok(())
    }

    async fn send(&mut self) -> std::io::Result<()> {
        let block = self.pending.split().freeze();
        self.pending.reserve(BLOCK);
        let sent = match &self.blocks {
            Some(blocks) => blocks.send(block).await.is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            // The writer stopped: its own error says why.
            Err(self
                .finish_writer()
                .await
                .err()
                .unwrap_or_else(|| std::io::Error::other("the upload's writer stopped")))
        }
    }

    async fn finish_writer(&mut self) -> std::io::Result<String> {
        self.blocks = None;
        match self.done.take() {
            Some(done) => done
                .await
                .map_err(|e| std::io::Error::other(format!("the upload's writer failed: {e}")))?,
            None => Err(std::io::Error::other("the upload's writer is gone")),
        }
    }

    /// Writes what is left, makes it durable; the SHA-256 (hex) of everything written.
    pub(super) async fn finish(mut self) -> std::io::Result<String> {
        if !self.pending.is_empty() {
            self.send().await?;
        }
        self.finish_writer().await
    }
}
