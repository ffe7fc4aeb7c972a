//! The built-in `demo` job type: each chunk hashes its share of generated data with SHA-256.
//! It lets users try the engine without writing code and lets tests prove it, including
//! injected failures (`failChunk`, `failTimes`).

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::handler::{ChunkContext, ChunkFuture, JobHandler, JobInput};
use super::model::{ChunkPlan, JobError};

/// Most chunks a demo job may ask for.
const MAX_CHUNKS: u64 = 10_000;
/// Most MiB per chunk.
const MAX_MIB: u64 = 1_024;

/// The `demo` job type.
#[derive(Debug, Default)]
pub struct Demo {
    /// Failures injected so far, by (job, chunk).
    failures: Mutex<HashMap<(String, u64), u64>>,
}

struct Params {
    chunks: u64,
    mib_per_chunk: u64,
    fail_chunk: Option<u64>,
    fail_times: u64,
    chunk_delay_ms: u64,
}

fn number(params: &Value, name: &str, default: u64, max: u64) -> Result<u64, JobError> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(value) => value.as_u64().filter(|n| *n <= max).ok_or_else(|| {
            JobError::permanent(
                "invalid_parameter",
                format!("{name} must be an integer from 0 to {max}"),
            )
        }),
    }
}

fn params(params: &Value) -> Result<Params, JobError> {
    if !params.is_object() && !params.is_null() {
        return Err(JobError::permanent(
            "invalid_parameter",
            "parameters must be a JSON object",
        ));
    }
    let chunks = number(params, "chunks", 10, MAX_CHUNKS)?;
    if chunks == 0 {
        return Err(JobError::permanent(
            "invalid_parameter",
            "chunks must be at least 1",
        ));
    }
    Ok(Params {
        chunks,
        mib_per_chunk: number(params, "mibPerChunk", 1, MAX_MIB)?,
        fail_chunk: params.get("failChunk").and_then(Value::as_u64),
        fail_times: number(params, "failTimes", 1, 100)?,
        chunk_delay_ms: number(params, "chunkDelayMs", 0, 60_000)?,
    })
}

impl JobHandler for Demo {
    fn validate(&self, value: &Value) -> Result<(), JobError> {
        params(value).map(|_| ())
    }

    fn plan(&self, job: &JobInput) -> Result<Vec<ChunkPlan>, JobError> {
        let p = params(&job.params)?;
        let bytes = p.mib_per_chunk * 1024 * 1024;
        Ok((0..p.chunks)
            .map(|i| ChunkPlan {
                label: format!("chunk {} of {}", i + 1, p.chunks),
                params: json!({ "index": i }),
                units: bytes.max(1),
            })
            .collect())
    }

    fn run_chunk(&self, ctx: ChunkContext) -> ChunkFuture {
        let p = params(&ctx.job.params);
        let injected = match &p {
            Ok(p) if p.fail_chunk == Some(ctx.index) => {
                let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
                let count = failures.entry((ctx.job.id.clone(), ctx.index)).or_default();
                *count += 1;
                *count <= p.fail_times
            }
            _ => false,
        };
        Box::pin(async move {
            let p = p?;
            if p.chunk_delay_ms > 0 {
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_millis(p.chunk_delay_ms)) => {}
                    _ = ctx.cancelled() => return Err(JobError::retryable("cancelled", "chunk cancelled")),
                }
            }
            if injected {
                return Err(JobError::retryable(
                    "injected_failure",
                    format!("chunk {} failed on purpose (failChunk)", ctx.index),
                ));
            }
            let index = ctx.index;
            let bytes = p.mib_per_chunk * 1024 * 1024;
            let job_id = ctx.job.id.clone();
            let digest = tokio::task::spawn_blocking(move || hash_share(&job_id, index, bytes))
                .await
                .map_err(|e| JobError::retryable("worker_panic", e.to_string()))?;
            ctx.report(bytes, bytes, "hashing");
            Ok(json!({ "index": index, "sha256": digest }))
        })
    }

    fn merge(&self, _job: &JobInput, chunks: Vec<Value>) -> Result<Value, JobError> {
        Ok(json!({ "chunks": chunks }))
    }

    fn light_plan_and_merge(&self) -> bool {
        // The plan is generated from the parameters; the merge lists the chunk results.
        true
    }
}

/// SHA-256 of the chunk's generated data: `bytes` bytes derived from the chunk index, so the
/// result is the same however often the chunk runs.
fn hash_share(_job: &str, index: u64, bytes: u64) -> String {
    let mut hasher = Sha256::new();
    let mut block = [0u8; 64 * 1024];
    for (i, b) in block.iter_mut().enumerate() {
        *b = (i as u64).wrapping_mul(31).wrapping_add(index) as u8;
    }
    let mut left = bytes;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        hasher.update(&block[..n]);
        left -= n as u64;
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
