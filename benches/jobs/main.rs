//! Job engine measurements: durable submissions per second (RECEIPT awaited, 64 concurrent
//! STOMP clients), empty-chunk completions per second, and restart time with pending jobs.
//!
//! `cargo bench --bench jobs -- [--submissions N] [--chunks N] [--pending N]`
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stompede::jobs::{ChunkContext, ChunkFuture, JobHandler, JobInput};
use stompede::jobs::{ChunkPlan, JobError, JobStatus};
use stompede::protocol::Headers;
use stompede::{BrokerBuilder, Config, Server};

/// Chunks that do nothing: measures the engine, not the work.
struct Empty;

impl JobHandler for Empty {
    fn validate(&self, _: &Value) -> Result<(), JobError> {
        Ok(())
    }
    fn plan(&self, job: &JobInput) -> Result<Vec<ChunkPlan>, JobError> {
        let n = job.params["chunks"].as_u64().unwrap_or(1);
        Ok((0..n)
            .map(|i| ChunkPlan {
                label: format!("chunk {i}"),
                params: Value::Null,
                units: 1,
            })
            .collect())
    }
    fn run_chunk(&self, ctx: ChunkContext) -> ChunkFuture {
        Box::pin(async move { Ok(json!({ "i": ctx.index })) })
    }
    fn merge(&self, _: &JobInput, chunks: Vec<Value>) -> Result<Value, JobError> {
        Ok(json!({ "chunks": chunks.len() }))
    }
}

// The same allocator as the `stompede` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../common/args.rs"]
mod args;
use args::number as arg;

#[path = "../common/submit.rs"]
mod submit;
use submit::submissions;

async fn server(dir: &std::path::Path) -> Server {
    let config = Config {
        data_dir: dir.to_owned(),
        stomp: Some("127.0.0.1:0".parse().unwrap()),
        http: None,
        job_max_queued_per_user: 10_000_000,
        job_submissions_per_second: 10_000_000,
        job_retention_ms: 3_600_000,
        job_keep_completed: 10_000_000,
        durability: if std::env::var("PERIODIC").is_ok() {
            stompede::config::Durability::Periodic
        } else {
            stompede::config::Durability::Sync
        },
        ..Config::default()
    };
    BrokerBuilder::new(config)
        .job_type("empty", Empty)
        .start()
        .await
        .unwrap()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let n = arg("--submissions", 20_000);
        let dir = tempfile::tempdir().unwrap();
        let s = server(dir.path()).await;
        // Delayed, so that running them does not compete with accepting them.
        let rate = submissions(s.stomp_addr().unwrap(), "empty", n, 64, Some(3_600_000)).await;
        println!("| durable submissions/s (64 clients, RECEIPT awaited each) | {rate:.0} |");
        println!("{{\"bench\":\"job_submissions\",\"clients\":64,\"per_s\":{rate:.0}}}");
        s.shutdown().await;

        let chunks = arg("--chunks", 100_000);
        let dir = tempfile::tempdir().unwrap();
        let s = server(dir.path()).await;
        let engine = s.jobs().unwrap().clone();
        let mut headers = Headers::new();
        headers.push("job-type", "empty");
        let jobs = 4;
        let started = Instant::now();
        let mut ids = Vec::new();
        for _ in 0..jobs {
            let params = format!(r#"{{"chunks":{}}}"#, chunks / jobs);
            ids.push(
                engine
                    .submit("bench", &headers, params.as_bytes())
                    .await
                    .unwrap()
                    .id,
            );
        }
        for id in &ids {
            while engine.job(id).unwrap().status != JobStatus::Completed {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let rate = (chunks / jobs * jobs) as f64 / started.elapsed().as_secs_f64();
        println!("| empty chunk completions/s ({jobs} jobs) | {rate:.0} |");
        println!("{{\"bench\":\"chunk_completions\",\"per_s\":{rate:.0}}}");
        s.shutdown().await;

        let pending = arg("--pending", 100_000);
        let dir = tempfile::tempdir().unwrap();
        {
            let s = server(dir.path()).await;
            submissions(
                s.stomp_addr().unwrap(),
                "empty",
                pending,
                64,
                Some(3_600_000),
            )
            .await;
            s.shutdown().await;
        }
        let started = Instant::now();
        let s = server(dir.path()).await;
        let restart = started.elapsed().as_secs_f64();
        let waiting = s.jobs().unwrap().stats().queue_length;
        assert_eq!(waiting, pending / 64 * 64);
        println!("| restart with {waiting} pending jobs | {restart:.2} s |");
        println!("{{\"bench\":\"job_restart\",\"pending\":{waiting},\"seconds\":{restart:.3}}}");
        s.shutdown().await;
    });
}
