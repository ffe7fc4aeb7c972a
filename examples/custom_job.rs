//! A custom job type: counts the words of a text, one chunk per paragraph, and reports
//! progress. Registered with `BrokerBuilder::job_type`, it is submitted and watched like the
//! built-in ones:
//!
//! ```text
//! SEND
//! destination:/app/jobs
//! job-type:wordcount
//!
//! {"text":"first paragraph\n\nsecond one"}
//! ```
//!
//! Run with `cargo run --example custom_job`: it submits one job in process and prints its
//! events.

use serde_json::{json, Value};
use stompede::jobs::{ChunkContext, ChunkFuture, JobHandler, JobInput};
use stompede::jobs::{ChunkPlan, JobError};
use stompede::protocol::Headers;
use stompede::{BrokerBuilder, Config};

/// Counts words, paragraph by paragraph.
struct WordCount;

impl JobHandler for WordCount {
    fn validate(&self, params: &Value) -> Result<(), JobError> {
        match params.get("text") {
            Some(Value::String(_)) => Ok(()),
            _ => Err(JobError::permanent(
                "invalid_parameter",
                "text (a string) is required",
            )),
        }
    }

    fn plan(&self, job: &JobInput) -> Result<Vec<ChunkPlan>, JobError> {
        let text = job.params["text"].as_str().unwrap_or_default();
        Ok(text
            .split("\n\n")
            .enumerate()
            .map(|(i, paragraph)| ChunkPlan {
                label: format!("paragraph {}", i + 1),
                params: json!({ "paragraph": paragraph }),
                units: paragraph.len().max(1) as u64,
            })
            .collect())
    }

    fn run_chunk(&self, ctx: ChunkContext) -> ChunkFuture {
        Box::pin(async move {
            let paragraph = ctx.plan.params["paragraph"].as_str().unwrap_or_default();
            ctx.report(
                paragraph.len() as u64,
                paragraph.len() as u64,
                "counting words",
            );
            Ok(json!({ "words": paragraph.split_whitespace().count() }))
        })
    }

    fn merge(&self, _job: &JobInput, chunks: Vec<Value>) -> Result<Value, JobError> {
        let total: u64 = chunks.iter().filter_map(|c| c["words"].as_u64()).sum();
        Ok(json!({ "words": total, "paragraphs": chunks.len() }))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("stompede-custom-job-{}", std::process::id()));
    let config = Config {
        data_dir: dir.clone(),
        stomp: Some("127.0.0.1:0".parse()?),
        http: None,
        ..Config::default()
    };
    let server = BrokerBuilder::new(config)
        .job_type("wordcount", WordCount)
        .start()
        .await?;
    let jobs = server.jobs().ok_or("job engine not running")?;
    let watcher = server
        .local_client("ann")
        .subscribe("/user/queue/progress")?;
    let mut headers = Headers::new();
    headers.push("job-type", "wordcount");
    let job = jobs
        .submit("ann", &headers, br#"{"text":"one two three\n\nfour five"}"#)
        .await?;
    println!("submitted {}", job.id);
    while let Some(message) = watcher.next().await {
        let event: Value = serde_json::from_slice(&message.body)?;
        println!("{} {}", event["event"], event);
        if event["event"] == "JOB_COMPLETED" {
            break;
        }
    }
    server.shutdown().await;
    std::fs::remove_dir_all(dir)?;
    Ok(())
}
