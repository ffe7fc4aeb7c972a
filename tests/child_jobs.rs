//! Jobs that start jobs, through the public `JobHandler::children`: the parent waits without
//! a worker, plans with its children's outcomes, fails with a failed child, cancels its
//! children when cancelled, and waits on across a restart.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use serde_json::{json, Value};
use stompede::jobs::{
    ChildJob, ChunkContext, ChunkFuture, ChunkPlan, Demo, Job, JobError, JobHandler, JobInput,
    JobStatus,
};
use stompede::protocol::Headers;
use stompede::{BrokerBuilder, Config, Server};

/// A job that needs `demo` jobs done first (`children` of them, each `chunkDelayMs` slow, the
/// one numbered `failing` failing for good) and then has one chunk per child, reporting it.
struct Fanout;

impl JobHandler for Fanout {
    fn validate(&self, _params: &Value) -> Result<(), JobError> {
        Ok(())
    }

    fn children(&self, job: &JobInput) -> Result<Vec<ChildJob>, JobError> {
        let count = job.params["children"].as_u64().unwrap_or(2);
        let delay = job.params["chunkDelayMs"].as_u64().unwrap_or(0);
        let failing = job.params["failing"].as_u64();
        Ok((0..count)
            .map(|n| {
                let mut params = json!({ "chunks": 2, "mibPerChunk": 0, "chunkDelayMs": delay });
                if Some(n) == failing {
                    params["failChunk"] = json!(0);
                    params["failTimes"] = json!(100);
                }
                ChildJob {
                    job_type: "demo".into(),
                    params,
                }
            })
            .collect())
    }

    fn plan(&self, job: &JobInput) -> Result<Vec<ChunkPlan>, JobError> {
        if let Some(failed) = job
            .children
            .iter()
            .find(|c| c.status != JobStatus::Completed)
        {
            return Err(JobError::permanent(
                "child_failed",
                format!("child {} ended {}", failed.id, failed.status.as_str()),
            ));
        }
        Ok(job
            .children
            .iter()
            .map(|c| ChunkPlan {
                label: c.id.clone(),
                params: json!({ "child": c.id, "chunks": c.result.as_ref().map(|r| r["chunks"].clone()) }),
                units: 1,
            })
            .collect())
    }

    fn run_chunk(&self, ctx: ChunkContext) -> ChunkFuture {
        Box::pin(async move { Ok(ctx.plan.params) })
    }

    fn merge(&self, _job: &JobInput, chunks: Vec<Value>) -> Result<Value, JobError> {
        Ok(json!({ "children": chunks }))
    }
}

fn builder(config: Config) -> BrokerBuilder {
    BrokerBuilder::new(config)
        .job_type("demo", Demo::default())
        .job_type("fanout", Fanout)
}

async fn start() -> (Server, tempfile::TempDir) {
    let (mut config, dir) = common::test_config();
    config.job_retry_backoff_ms = 10;
    config.job_progress_interval_ms = 0;
    (builder(config).start().await.unwrap(), dir)
}

async fn submit(server: &Server, params: Value) -> String {
    let mut headers = Headers::new();
    headers.push("job-type", "fanout");
    headers.push("max-attempts", "1");
    let job = server.jobs().unwrap();
    job.submit("ann", &headers, params.to_string().as_bytes())
        .await
        .unwrap()
        .id
}

async fn until(server: &Server, id: &str, done: impl Fn(&Job) -> bool) -> Job {
    let deadline = tokio::time::Instant::now() + common::WAIT;
    loop {
        let job = server.jobs().unwrap().job(id).unwrap();
        if done(&job) {
            return job;
        }
        assert!(tokio::time::Instant::now() < deadline, "{job:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_waits_for_its_children_then_plans_with_their_results() {
    let (server, _dir) = start().await;
    let id = submit(&server, json!({ "children": 3, "chunkDelayMs": 100 })).await;
    let waiting = until(&server, &id, |j| j.status == JobStatus::Waiting).await;
    assert_eq!(waiting.children.len(), 3);
    for child in &waiting.children {
        let child = server.jobs().unwrap().job(child).unwrap();
        assert_eq!(child.parent.as_deref(), Some(id.as_str()));
        assert_eq!(child.owner, "ann");
    }
    let done = until(&server, &id, |j| j.status.is_finished()).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    let reported = done.result.unwrap()["children"].clone();
    let ids: Vec<&str> = reported
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["child"].as_str().unwrap())
        .collect();
    assert_eq!(ids, waiting.children);
    // Each child's own result reached the parent's plan.
    assert!(
        reported
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["chunks"].as_array().map(Vec::len) == Some(2)),
        "{reported}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_child_fails_its_parent_with_the_reason() {
    let (server, _dir) = start().await;
    let id = submit(&server, json!({ "children": 2, "failing": 1 })).await;
    let done = until(&server, &id, |j| j.status.is_finished()).await;
    assert_eq!(done.status, JobStatus::Failed);
    let error = done.error.unwrap();
    assert_eq!(error.code, "child_failed");
    assert!(error.message.contains("failed"), "{}", error.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_parent_cancels_its_unfinished_children() {
    let (server, _dir) = start().await;
    let id = submit(&server, json!({ "children": 2, "chunkDelayMs": 5_000 })).await;
    let waiting = until(&server, &id, |j| j.status == JobStatus::Waiting).await;
    let engine = server.jobs().unwrap();
    engine.control("ann", &id, "cancel").await.unwrap();
    for child in &waiting.children {
        let child = until(&server, child, |j| j.status.is_finished()).await;
        assert_eq!(child.status, JobStatus::Cancelled);
    }
    assert_eq!(engine.job(&id).unwrap().status, JobStatus::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_parent_waits_on_across_a_restart() {
    let (server, dir) = start().await;
    let id = submit(&server, json!({ "children": 2, "chunkDelayMs": 300 })).await;
    let waiting = until(&server, &id, |j| j.status == JobStatus::Waiting).await;
    let config = server.config().clone();
    server.shutdown().await;
    let server = builder(config).start().await.unwrap();
    let recovered = server.jobs().unwrap().job(&id).unwrap();
    assert_eq!(recovered.children, waiting.children);
    let done = until(&server, &id, |j| j.status.is_finished()).await;
    assert_eq!(done.status, JobStatus::Completed, "{:?}", done.error);
    for child in &waiting.children {
        let child = server.jobs().unwrap().job(child).unwrap();
        assert_eq!(child.status, JobStatus::Completed);
    }
    drop(dir);
}
