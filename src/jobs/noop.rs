//! The `noop` job type, for benchmarks only (`stompede serve --bench-job-types`, or
//! [`crate::BrokerBuilder::job_type`] in an embedding): its chunks do no work, so a benchmark
//! times the engine (submission, scheduling, the commit of each chunk, event delivery) rather
//! than a job's work.
//!
//! Parameters (all optional): `chunks` (1 to 10,000, default 1) and `sleepMs` (0 to 60,000,
//! default 0), a pause inside each chunk before it ends. Each chunk's result is
//! `{"index": i, "workEndedAtNs": t}`, `t` the wall-clock time (ns since the Unix epoch) at
//! which the chunk's work ended: a watcher on the same machine subtracts it from the arrival time
//! of the chunk's `CHUNK_COMPLETED` to get the latency of progress delivery.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::handler::{ChunkContext, ChunkFuture, JobHandler, JobInput};
use super::model::{ChunkPlan, JobError};

/// Most chunks a noop job may ask for.
const MAX_CHUNKS: u64 = 10_000;
/// Longest pause per chunk, in ms.
const MAX_SLEEP_MS: u64 = 60_000;

/// The `noop` job type.
#[derive(Debug, Default, Clone, Copy)]
pub struct Noop;

struct Params {
    chunks: u64,
    sleep_ms: u64,
}

fn number(params: &Value, name: &str, default: u64, min: u64, max: u64) -> Result<u64, JobError> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(value) => value
            .as_u64()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| {
                JobError::permanent(
                    "invalid_parameter",
                    format!("{name} must be an integer from {min} to {max}"),
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
    Ok(Params {
        chunks: number(params, "chunks", 1, 1, MAX_CHUNKS)?,
        sleep_ms: number(params, "sleepMs", 0, 0, MAX_SLEEP_MS)?,
    })
}

/// Now, in ns since the Unix epoch (0 if the clock is before it).
fn wall_clock_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl JobHandler for Noop {
    fn validate(&self, value: &Value) -> Result<(), JobError> {
        params(value).map(|_| ())
    }

    fn plan(&self, job: &JobInput) -> Result<Vec<ChunkPlan>, JobError> {
        let p = params(&job.params)?;
        Ok((0..p.chunks)
            .map(|i| ChunkPlan {
                label: format!("chunk {} of {}", i + 1, p.chunks),
                params: Value::Null,
                units: 1,
            })
            .collect())
    }

    fn run_chunk(&self, ctx: ChunkContext) -> ChunkFuture {
        let sleep = params(&ctx.job.params).map(|p| p.sleep_ms);
        Box::pin(async move {
            let sleep = sleep?;
            if sleep > 0 {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(sleep)) => {}
                    _ = ctx.cancelled() => return Err(JobError::retryable("cancelled", "chunk cancelled")),
                }
            }
            Ok(json!({ "index": ctx.index, "workEndedAtNs": wall_clock_ns() }))
        })
    }

    fn merge(&self, _job: &JobInput, chunks: Vec<Value>) -> Result<Value, JobError> {
        Ok(json!({ "chunks": chunks.len() }))
    }

    fn light_plan_and_merge(&self) -> bool {
        // The plan is generated from the parameters; the merge lists the chunk results.
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_bounded() {
        assert!(Noop.validate(&json!({})).is_ok());
        assert!(Noop.validate(&Value::Null).is_ok());
        assert!(Noop.validate(&json!({ "chunks": 3, "sleepMs": 5 })).is_ok());
        assert!(Noop.validate(&json!({ "chunks": 0 })).is_err());
        assert!(Noop.validate(&json!({ "chunks": MAX_CHUNKS + 1 })).is_err());
        assert!(Noop.validate(&json!({ "sleepMs": -1 })).is_err());
        assert!(Noop.validate(&json!("x")).is_err());
    }
}
