//! Following jobs to their end: one progress bar per job on a terminal (chunks, rate, ETA),
//! plain lines otherwise, from the job events on `/topic/jobs/<id>`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use anyhow::bail;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;
use stompede::protocol::Command;

use super::connection::{refusal, Connection};

/// How a job ended, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// `JOB_COMPLETED`.
    Completed,
    /// `JOB_FAILED`.
    Failed,
    /// `JOB_CANCELLED`.
    Cancelled,
}

impl Ending {
    fn of(event: &str) -> Option<Ending> {
        match event {
            "JOB_COMPLETED" => Some(Ending::Completed),
            "JOB_FAILED" => Some(Ending::Failed),
            "JOB_CANCELLED" => Some(Ending::Cancelled),
            _ => None,
        }
    }
}

/// A job followed to its end: its final event's body.
pub struct Finished {
    /// The job id.
    pub id: String,
    /// How it ended.
    pub ending: Ending,
    /// The final event, as `protocol/docs/jobs.md` documents it.
    pub event: Value,
}

/// What one job's display shows.
enum Display {
    Bar(ProgressBar),
    Lines { last_percent: Option<u64> },
    Quiet,
}

/// How jobs are shown while they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A bar per job when standard error is a terminal, plain lines otherwise.
    Auto,
    /// Nothing (for `--json`: the final events are the whole output).
    Quiet,
}

struct Followed {
    display: Display,
    last_seq: u64,
}

impl Followed {
    fn show(&mut self, id: &str, event: &Value) {
        let kind = event["event"].as_str().unwrap_or("");
        let count = event["chunkCount"].as_u64();
        let done = match kind {
            "CHUNK_COMPLETED" => event["chunkIndex"].as_u64().map(|i| i + 1),
            _ => event["chunksCompleted"].as_u64(),
        };
        let step = event["step"].as_str().filter(|s| !s.is_empty());
        match &mut self.display {
            Display::Quiet => {}
            Display::Bar(bar) => {
                if let Some(count) = count {
                    if bar.length() == Some(0) && count > 0 {
                        bar.set_style(bar_style());
                    }
                    bar.set_length(count);
                }
                if let Some(done) = done {
                    bar.set_position(done.max(bar.position()));
                }
                match (kind, step) {
                    ("PROGRESS_UPDATE", Some(step)) => bar.set_message(step.to_owned()),
                    ("PROGRESS_UPDATE" | "CHUNK_COMPLETED", None) => {}
                    _ => bar.set_message(status_word(kind).to_owned()),
                }
            }
            Display::Lines { last_percent } => {
                let line = match kind {
                    "CHUNK_COMPLETED" => {
                        let percent = match (done, count) {
                            (Some(done), Some(count)) if count > 0 => done * 100 / count,
                            _ => 0,
                        };
                        // A line per 10%, not per chunk: a job may have thousands.
                        if last_percent.is_some_and(|p| percent < p + 10) && percent < 100 {
                            return;
                        }
                        *last_percent = Some(percent);
                        format!(
                            "chunk {}/{} ({percent}%)",
                            done.unwrap_or(0),
                            count.unwrap_or(0)
                        )
                    }
                    "PROGRESS_UPDATE" => return,
                    other => status_word(other).to_owned(),
                };
                eprintln!("job {id}: {line}");
            }
        }
    }

    fn finish(&self, ending: Ending) {
        if let Display::Bar(bar) = &self.display {
            let word = match ending {
                Ending::Completed => "completed",
                Ending::Failed => "failed",
                Ending::Cancelled => "cancelled",
            };
            if ending == Ending::Completed {
                bar.set_position(bar.length().unwrap_or(0));
            }
            bar.finish_with_message(word);
        }
    }
}

fn status_word(event: &str) -> &'static str {
    match event {
        "JOB_ACCEPTED" => "queued",
        "JOB_STARTED" => "running",
        "JOB_PAUSED" => "paused",
        "JOB_RESUMED" => "resumed",
        "JOB_RETRY_SCHEDULED" => "retry scheduled",
        "JOB_COMPLETED" => "completed",
        "JOB_FAILED" => "failed",
        "JOB_CANCELLED" => "cancelled",
        _ => "working",
    }
}

/// A bar once the job's chunk count is known: chunks, rate, ETA and what it does.
fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix:.bold} [{bar:30.cyan/blue}] {pos}/{len} chunks  {per_sec:.1}  ETA {eta}  {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

/// Bars when standard error is a terminal, lines otherwise, nothing when quiet.
fn display_for(mode: Mode, multi: &Option<MultiProgress>, id: &str) -> Display {
    match (mode, multi) {
        (Mode::Quiet, _) => Display::Quiet,
        (Mode::Auto, Some(multi)) => {
            // A spinner until the job is planned and its chunk count known.
            let bar = multi.add(ProgressBar::new(0));
            let waiting = ProgressStyle::with_template("{prefix:.bold} {spinner} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            bar.set_style(waiting);
            bar.set_prefix(id.chars().take(10).collect::<String>());
            bar.enable_steady_tick(Duration::from_millis(200));
            Display::Bar(bar)
        }
        (Mode::Auto, None) => Display::Lines { last_percent: None },
    }
}

/// Follows the jobs `ids` on `connection` until each has ended; the final events in the order
/// of `ids`.
pub async fn follow(
    connection: &mut Connection,
    ids: &[String],
    mode: Mode,
) -> anyhow::Result<Vec<Finished>> {
    let multi = (mode == Mode::Auto && std::io::stderr().is_terminal())
        .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
    let mut followed: HashMap<String, Followed> = HashMap::new();
    let mut finished: HashMap<String, Finished> = HashMap::new();
    for (n, id) in ids.iter().enumerate() {
        followed.insert(
            id.clone(),
            Followed {
                display: display_for(mode, &multi, id),
                last_seq: 0,
            },
        );
        // From the first event: a job may have ended before this subscription, and its
        // final event is what the summary shows.
        let replayed = connection
            .subscribe(
                &format!("job-{n}"),
                &format!("/topic/jobs/{id}"),
                &[("since-seq", "0")],
            )
            .await?;
        for frame in replayed {
            handle(&frame, &mut followed, &mut finished)?;
        }
    }
    while finished.len() < ids.len() {
        let frame = connection.next().await?;
        handle(&frame, &mut followed, &mut finished)?;
    }
    Ok(ids.iter().filter_map(|id| finished.remove(id)).collect())
}

fn handle(
    frame: &stompede::protocol::Frame,
    followed: &mut HashMap<String, Followed>,
    finished: &mut HashMap<String, Finished>,
) -> anyhow::Result<()> {
    match frame.command {
        Command::Message => {}
        Command::Error => bail!("{}", refusal(frame)),
        _ => return Ok(()),
    }
    let Ok(event) = serde_json::from_slice::<Value>(&frame.body) else {
        return Ok(());
    };
    let Some(id) = event["jobId"].as_str() else {
        return Ok(());
    };
    let Some(job) = followed.get_mut(id) else {
        return Ok(());
    };
    // Each event once: a replay and the live stream never overlap, but be sure.
    let seq = event["seq"].as_u64().unwrap_or(0);
    if seq <= job.last_seq || finished.contains_key(id) {
        return Ok(());
    }
    job.last_seq = seq;
    job.show(id, &event);
    if let Some(ending) = event["event"].as_str().and_then(Ending::of) {
        job.finish(ending);
        finished.insert(
            id.to_owned(),
            Finished {
                id: id.to_owned(),
                ending,
                event,
            },
        );
    }
    Ok(())
}

/// A person's summary of finished jobs, on standard output; result files as their download
/// URLs under `http_base` when the HTTP API is known.
pub fn summary(finished: &[Finished], http_base: Option<&str>) {
    for job in finished {
        let event = &job.event;
        let status = event["status"].as_str().unwrap_or("?");
        println!(
            "job {}  {}  {status}",
            job.id,
            event["jobType"].as_str().unwrap_or("?")
        );
        if let Some(ms) = event["executionTimeMs"].as_u64() {
            println!("  time                  {:.1} s", ms as f64 / 1000.0);
        }
        if let Some(message) = event["message"].as_str() {
            println!(
                "  error       {}: {message}",
                event["code"].as_str().unwrap_or("?")
            );
        }
        if let Value::Object(result) = &event["result"] {
            for (key, value) in result {
                match value {
                    Value::Number(_) | Value::String(_) | Value::Bool(_) => {
                        println!("  {key:<21} {value}");
                    }
                    Value::Object(files) if key == "files" => {
                        for (name, path) in files {
                            let place = match http_base {
                                Some(base) => format!("{base}/api/jobs/{}/files/{name}", job.id),
                                None => path.as_str().unwrap_or_default().to_owned(),
                            };
                            println!("  file                  {name}  {place}");
                        }
                    }
                    Value::Array(items) if key == "files" => {
                        for item in items {
                            let name = item["name"].as_str().or(item.as_str()).unwrap_or("?");
                            println!("  file                  {name}");
                        }
                    }
                    Value::Array(items) => println!("  {key:<21} {} items", items.len()),
                    // Samples and the like: too much for a summary (--json has them).
                    Value::Object(_) => {}
                    Value::Null => {}
                }
            }
        }
    }
}
