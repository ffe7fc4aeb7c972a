//! Job engine measurements: durable submissions per second (RECEIPT awaited, 64 concurrent
//! STOMP clients), empty-chunk completions per second, and restart time with pending jobs.
//!
//! `cargo bench --bench jobs -- [--submissions N] [--chunks N] [--pending N]`
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use serde_json::{json, Value};
use stompede::jobs::{ChunkContext, ChunkFuture, JobHandler, JobInput};
use stompede::jobs::{ChunkPlan, JobError, JobStatus};
use stompede::protocol::{encode, Command, Decoded, Decoder, Frame, Headers, Version};
use stompede::{BrokerBuilder, Config, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

async fn submitter(addr: SocketAddr, user: String, count: usize, delay: Option<u64>) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut decoder = Decoder::new(Default::default());
    let mut buf = BytesMut::new();
    let mut out = BytesMut::new();
    let connect = Frame::new(Command::Connect)
        .header("accept-version", "1.2")
        .header("login", user.as_str());
    encode(&connect, Version::V1_2, &mut out);
    stream.write_all(&out).await.unwrap();
    out.clear();
    let next = async |stream: &mut TcpStream, buf: &mut BytesMut, decoder: &mut Decoder| loop {
        if let Some(Decoded::Frame(f)) = decoder.decode(buf).unwrap() {
            return f;
        }
        assert!(stream.read_buf(buf).await.unwrap() > 0, "closed");
    };
    next(&mut stream, &mut buf, &mut decoder).await;
    decoder.set_version(Version::V1_2);
    for i in 0..count {
        let mut frame = Frame::new(Command::Send)
            .header("destination", "/app/jobs")
            .header("job-type", "empty")
            .header("receipt", i.to_string())
            .body(r#"{"chunks":1}"#);
        if let Some(delay) = delay {
            frame = frame.header("delay", delay.to_string());
        }
        encode(&frame, Version::V1_2, &mut out);
        stream.write_all(&out).await.unwrap();
        out.clear();
        let reply = next(&mut stream, &mut buf, &mut decoder).await;
        assert_eq!(reply.command, Command::Receipt, "{reply:?}");
    }
}

async fn submissions(addr: SocketAddr, total: usize, clients: usize, delay: Option<u64>) -> f64 {
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| tokio::spawn(submitter(addr, format!("user{c}"), total / clients, delay)))
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    (total / clients * clients) as f64 / started.elapsed().as_secs_f64()
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
        let rate = submissions(s.stomp_addr().unwrap(), n, 64, Some(3_600_000)).await;
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
            submissions(s.stomp_addr().unwrap(), pending, 64, Some(3_600_000)).await;
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
