//! `jobs`: the job engine from outside, over real sockets, against a spawned (release) server
//! started with `--bench-job-types` (the `noop` job type: chunks that do no work and write
//! `workEndedAtNs`, the wall-clock time their work ended, into their result).
//!
//! Parts, each against a fresh server (`--part all` runs them in turn):
//!
//! * `submit` (issue #25 a, d): `--callers` connections, each sending `--jobs / --callers`
//!   SENDs to `/app/jobs`, one at a time, each awaiting its RECEIPT (which the server sends
//!   only once the job is on disk). The jobs are delayed by an hour, so none runs meanwhile.
//!   Reports submissions/s, the server's CPU per submission and per 100,000, and its resident
//!   memory before and after: the growth per 100,000 waiting jobs.
//! * `complete` (b): the same callers queue `--jobs` one-chunk `noop` jobs due at one moment
//!   (`run-at`, `--hold-ms` ahead, by when the queue is full), and a last one with a lower
//!   priority, which therefore starts after all the others; its `JOB_COMPLETED`, watched on
//!   its owner's `/user/queue/progress`, ends the clock. Completions/s and server CPU per job
//!   are counted from the due time; `/api/stats` then confirms that every job completed.
//! * `progress` (c): `--progress-lanes` connections each submit `noop` jobs of
//!   `--progress-chunks` chunks (`--progress-sleep-ms` of sleep each), one job at a time, and
//!   watch each on `/topic/jobs/<id>`; the latency of `CHUNK_COMPLETED` and of the chunk's
//!   `PROGRESS_UPDATE` is their arrival time less the chunk's `workEndedAtNs` (the server sends
//!   a `PROGRESS_UPDATE` after every chunk: `--progress-interval-ms 0`, as BullMQ's side calls
//!   `updateProgress` after every chunk).
//!
//! The server is given a config file: job concurrency `--concurrency` (50), and quotas and
//! retention high enough that neither refuses a submission nor removes a completed job during
//! the run (BullMQ keeps completed jobs by default, too).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::client::{Ack, Client, Proto};
use crate::conn::Target;
use crate::report::Fields;
use crate::stats::{latency_histogram, now_ns, record_latency};
use crate::Env;

/// Which part of the jobs benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Part {
    /// Durable submissions, each caller awaiting its RECEIPT; memory per waiting job.
    Submit,
    /// Trivial one-chunk jobs queued, then completed by the server's workers.
    Complete,
    /// Progress latency to a `/topic/jobs/<id>` subscriber.
    Progress,
    /// The three in turn.
    All,
}

impl Part {
    /// The parts to run, in order.
    pub fn expand(self) -> Vec<Part> {
        match self {
            Part::All => vec![Part::Submit, Part::Complete, Part::Progress],
            part => vec![part],
        }
    }

    fn name(self) -> &'static str {
        match self {
            Part::Submit => "submit",
            Part::Complete => "complete",
            Part::Progress => "progress",
            Part::All => "all",
        }
    }
}

/// `jobs` flags.
#[derive(Args, Clone)]
pub struct JobsArgs {
    #[arg(long, value_enum, default_value = "all")]
    pub part: Part,
    /// Jobs submitted (`submit`, `complete`).
    #[arg(long, default_value_t = 100_000)]
    pub jobs: usize,
    /// Concurrent callers, each awaiting its RECEIPT before the next SEND.
    #[arg(long, default_value_t = 64)]
    pub callers: usize,
    /// Jobs the server runs at once (its `job-concurrency`).
    #[arg(long, default_value_t = 50)]
    pub concurrency: usize,
    /// `complete`: how far ahead of the first submission the jobs are due; the queue must be
    /// full by then (0: 4 s plus 0.2 ms per job).
    #[arg(long, default_value_t = 0)]
    pub hold_ms: u64,
    /// `progress`: jobs, in all.
    #[arg(long, default_value_t = 200)]
    pub progress_jobs: usize,
    /// `progress`: chunks per job.
    #[arg(long, default_value_t = 10)]
    pub progress_chunks: u64,
    /// `progress`: sleep inside each chunk, in ms.
    #[arg(long, default_value_t = 5)]
    pub progress_sleep_ms: u64,
    /// `progress`: connections, each running its jobs one after another.
    #[arg(long, default_value_t = 4)]
    pub progress_lanes: usize,
    /// The server's `job-progress-interval-ms`: 0 sends a `PROGRESS_UPDATE` after every chunk,
    /// as BullMQ's side of the bench calls `updateProgress` after every chunk.
    #[arg(long, default_value_t = 0)]
    pub progress_interval_ms: u64,
}

/// Extra arguments for a spawned server: the bench job type and a config file in `dir`.
pub fn broker_args(args: &JobsArgs, dir: &std::path::Path) -> Result<Vec<String>> {
    let path = dir.join("jobs-bench.toml");
    std::fs::write(
        &path,
        format!(
            "job-concurrency = {}\n\
             job-max-queued-per-user = 1000000000\n\
             job-submissions-per-second = 1000000000\n\
             job-keep-completed = 1000000000\n\
             job-keep-failed = 1000000000\n\
             job-progress-interval-ms = {}\n",
            args.concurrency.max(1),
            args.progress_interval_ms
        ),
    )?;
    Ok(vec![
        "--bench-job-types".to_owned(),
        "--config".to_owned(),
        path.display().to_string(),
    ])
}

/// Runs one part against `env`'s server.
pub fn jobs(env: &Env, args: &JobsArgs, part: Part, run: usize) -> Result<Fields> {
    if env.common.proto != Proto::Stomp {
        bail!("the jobs scenario needs STOMP");
    }
    if args.callers == 0 || args.jobs < args.callers {
        bail!("--callers must be from 1 to --jobs");
    }
    let mut f = env.base_fields("jobs", run);
    f.insert("part".into(), part.name().into());
    f.insert("load_1m".into(), load_average().into());
    let env_ptr = EnvView::of(env);
    let args2 = args.clone();
    let handle = crate::thread("jobs", move || async move {
        match part {
            Part::Submit => submit_part(&env_ptr, &args2).await,
            Part::Complete => complete_part(&env_ptr, &args2).await,
            Part::Progress => progress_part(&env_ptr, &args2).await,
            Part::All => bail!("expand --part all first"),
        }
    })?;
    let mut measured = crate::join(handle)?;
    f.append(&mut measured);
    let problems: Vec<Value> = match f.remove("problems") {
        Some(Value::Array(p)) => p,
        _ => Vec::new(),
    };
    f.insert("ok".into(), problems.is_empty().into());
    f.insert("problems".into(), Value::Array(problems));
    Ok(f)
}

/// What a part's thread needs of the [`Env`] (which is not `Send`).
#[derive(Clone)]
struct EnvView {
    target: Target,
    client: crate::client::ClientOptions,
    pid: Option<String>,
    ticks: f64,
    deadline: Instant,
    http: Option<std::net::SocketAddr>,
}

impl EnvView {
    fn of(env: &Env) -> EnvView {
        let http = env
            ._spawned
            .as_ref()
            .and_then(|s| s.ws.as_deref())
            .and_then(|url| Target::ws(url).ok())
            .map(|t| t.addr())
            .or(match &env.target {
                Target::Ws { addr, .. } => Some(*addr),
                _ => None,
            });
        EnvView {
            target: env.target.clone(),
            client: env.client.clone(),
            pid: env.pid.clone(),
            ticks: env.ticks,
            deadline: env.deadline,
            http,
        }
    }

    fn usage(&self) -> crate::broker::Usage {
        crate::broker::Usage::of(self.pid.as_deref(), self.ticks)
    }

    fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    async fn connect(&self, login: &str) -> Result<Client> {
        let mut options = self.client.clone();
        options.login = login.to_owned();
        let mut client = Client::connect(&self.target, &options, Duration::from_secs(20)).await?;
        // A refused submission gets no RECEIPT but a JOB_REJECTED here: fail, not hang.
        client.subscribe("/user/queue/errors", "errors", Ack::Auto, Some("errors"));
        client.conn.flush().await?;
        wait_receipt(&mut client, "errors").await?;
        Ok(client)
    }
}

fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

fn mib(kib: Option<u64>) -> Value {
    kib.map_or(Value::Null, |k| json!(k as f64 / 1024.0))
}

/// Reads frames until the RECEIPT `id`; its `job-id` header, if any.
async fn wait_receipt(client: &mut Client, id: &str) -> Result<Option<String>> {
    loop {
        let Some(frame) = client.next_frame().await? else {
            bail!("connection closed while waiting for receipt {id}");
        };
        match frame.command {
            stompede::protocol::Command::Receipt if frame.get("receipt-id") == Some(id) => {
                return Ok(frame.get("job-id").map(str::to_owned));
            }
            stompede::protocol::Command::Error => bail!(
                "ERROR {}: {}",
                frame.get("message").unwrap_or_default(),
                String::from_utf8_lossy(&frame.body)
            ),
            stompede::protocol::Command::Message if frame.get("event") == Some("JOB_REJECTED") => {
                bail!("job rejected: {}", String::from_utf8_lossy(&frame.body))
            }
            _ => {}
        }
    }
}

/// Sends `count` submissions on `client`, one at a time, each awaiting its RECEIPT.
async fn submit_serially(
    client: &mut Client,
    count: usize,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<()> {
    for i in 0..count {
        let receipt = i.to_string();
        client.publish("/app/jobs", body, headers, Some(&receipt));
        client.conn.flush().await?;
        wait_receipt(client, &receipt).await?;
    }
    Ok(())
}

/// Connects `callers` clients (user `user<i>` each), then has each send its share of `jobs`
/// submissions with `headers`; returns the seconds from the first SEND to the last RECEIPT.
async fn submit_all(
    env: &EnvView,
    args: &JobsArgs,
    headers: Vec<(String, String)>,
    before_start: impl FnOnce(),
) -> Result<(f64, usize)> {
    let mut clients = Vec::with_capacity(args.callers);
    for c in 0..args.callers {
        clients.push(env.connect(&format!("user{c}")).await?);
    }
    let per = args.jobs / args.callers;
    before_start();
    let started = Instant::now();
    let headers = Rc::new(headers);
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            let headers = headers.clone();
            tokio::task::spawn_local(async move {
                let pairs: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str()))
                    .collect();
                submit_serially(&mut client, per, &pairs, b"{}").await?;
                client.disconnect();
                client.conn.flush().await?;
                Ok::<_, anyhow::Error>(())
            })
        })
        .collect();
    let all = async {
        for task in tasks {
            task.await.context("a caller panicked")??;
        }
        Ok::<_, anyhow::Error>(())
    };
    tokio::time::timeout(env.remaining(), all)
        .await
        .context("timed out submitting")??;
    Ok((started.elapsed().as_secs_f64(), per * args.callers))
}

async fn submit_part(env: &EnvView, args: &JobsArgs) -> Result<Fields> {
    let mut f = Fields::new();
    let headers = vec![
        ("job-type".to_owned(), "noop".to_owned()),
        // An hour: nothing runs while the submissions are timed.
        ("delay".to_owned(), "3600000".to_owned()),
    ];
    let before = RefCell::new(crate::broker::Usage::default());
    let (secs, n) = submit_all(env, args, headers, || *before.borrow_mut() = env.usage()).await?;
    let after = env.usage();
    let before = before.into_inner();
    f.insert("jobs".into(), n.into());
    f.insert("callers".into(), args.callers.into());
    f.insert("per_s".into(), json!(n as f64 / secs));
    f.insert("elapsed_s".into(), json!(secs));
    if let (Some(b), Some(a)) = (before.cpu_s, after.cpu_s) {
        let cpu = a - b;
        f.insert("broker_cpu_s".into(), json!(cpu));
        f.insert(
            "broker_cpu_s_per_100k".into(),
            json!(cpu * 100_000.0 / n as f64),
        );
        f.insert("broker_cpu_us_per_job".into(), json!(cpu * 1e6 / n as f64));
    }
    f.insert("broker_rss_mib_before".into(), mib(before.rss_kib));
    f.insert("broker_rss_mib_after".into(), mib(after.rss_kib));
    if let (Some(b), Some(a)) = (before.rss_kib, after.rss_kib) {
        let grown = a.saturating_sub(b) as f64;
        f.insert(
            "rss_mib_per_100k_waiting".into(),
            json!(grown / 1024.0 * 100_000.0 / n as f64),
        );
        f.insert(
            "rss_bytes_per_waiting_job".into(),
            json!(grown * 1024.0 / n as f64),
        );
    }
    f.insert("problems".into(), json!([]));
    Ok(f)
}

async fn complete_part(env: &EnvView, args: &JobsArgs) -> Result<Fields> {
    let mut f = Fields::new();
    let mut problems = Vec::new();
    let hold = if args.hold_ms > 0 {
        args.hold_ms
    } else {
        4_000 + args.jobs as u64 / 5
    };
    let due_ms = now_ns() / 1_000_000 + hold;
    let due = due_ms.to_string();
    let headers = vec![
        ("job-type".to_owned(), "noop".to_owned()),
        ("run-at".to_owned(), due.clone()),
    ];
    let (secs, n) = submit_all(env, args, headers, || {}).await?;
    f.insert("submit_per_s".into(), json!(n as f64 / secs));
    // The last job: lower priority, so it starts after every other one. Its owner has no
    // other job, so its events are the only ones on the watcher's progress queue, which is
    // subscribed before it is submitted (it may run at once if the others are done already).
    let mut watcher = env.connect("watcher").await?;
    watcher.subscribe("/user/queue/progress", "last", Ack::Auto, Some("sub"));
    watcher.conn.flush().await?;
    wait_receipt(&mut watcher, "sub").await?;
    watcher.publish(
        "/app/jobs",
        b"{}",
        &[("job-type", "noop"), ("run-at", &due), ("priority", "-1")],
        Some("last"),
    );
    watcher.conn.flush().await?;
    wait_receipt(&mut watcher, "last").await?;
    let now_ms = now_ns() / 1_000_000;
    if now_ms >= due_ms {
        problems.push(json!(format!(
            "the queue was not full when the jobs became due ({} ms late): raise --hold-ms",
            now_ms - due_ms
        )));
    } else {
        tokio::time::sleep(Duration::from_millis(due_ms - now_ms)).await;
    }
    let before = env.usage();
    let started = Instant::now();
    let done = async {
        loop {
            let Some(frame) = watcher.next_frame().await? else {
                bail!("the watcher's connection closed");
            };
            match frame.get("event") {
                Some("JOB_COMPLETED") => return Ok(()),
                Some("JOB_FAILED") => bail!("the last job failed"),
                _ => {}
            }
        }
    };
    tokio::time::timeout(env.remaining(), done)
        .await
        .context("timed out waiting for the jobs to complete")??;
    let secs = started.elapsed().as_secs_f64();
    let after = env.usage();
    let total = n + 1;
    f.insert("jobs".into(), total.into());
    f.insert("concurrency".into(), args.concurrency.into());
    f.insert("per_s".into(), json!(total as f64 / secs));
    f.insert("elapsed_s".into(), json!(secs));
    if let (Some(b), Some(a)) = (before.cpu_s, after.cpu_s) {
        let cpu = a - b;
        f.insert("broker_cpu_s".into(), json!(cpu));
        f.insert(
            "broker_cpu_s_per_100k".into(),
            json!(cpu * 100_000.0 / total as f64),
        );
        f.insert(
            "broker_cpu_us_per_job".into(),
            json!(cpu * 1e6 / total as f64),
        );
    }
    f.insert("broker_rss_mib_before".into(), mib(before.rss_kib));
    f.insert("broker_rss_mib_after".into(), mib(after.rss_kib));
    match env.http {
        Some(http) => match completed_count(http).await {
            Ok(completed) if completed == total as u64 => {
                f.insert("completed".into(), completed.into());
            }
            Ok(completed) => {
                f.insert("completed".into(), completed.into());
                problems.push(json!(format!("{completed} of {total} jobs completed")));
            }
            Err(error) => problems.push(json!(format!("/api/stats: {error:#}"))),
        },
        None => problems.push(json!("no HTTP address to confirm the completions")),
    }
    f.insert("problems".into(), Value::Array(problems));
    Ok(f)
}

/// `byStatus.completed` from the server's `/api/stats` (open mode: no credentials).
async fn completed_count(http: std::net::SocketAddr) -> Result<u64> {
    let mut stream = tokio::net::TcpStream::connect(http).await?;
    let request = format!("GET /api/stats HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut response))
        .await
        .context("/api/stats timed out")??;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").context("no HTTP head")?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!("{}", head.lines().next().unwrap_or_default());
    }
    // A chunked body holds the JSON between its size lines: take the outermost braces.
    let json = body
        .find('{')
        .zip(body.rfind('}'))
        .map(|(a, b)| &body[a..=b])
        .context("no JSON in /api/stats")?;
    let stats: Value = serde_json::from_str(json)?;
    Ok(stats["byStatus"]["completed"].as_u64().unwrap_or(0))
}

/// Latencies of one progress lane.
struct Lane {
    chunk: Histogram<u64>,
    progress: Histogram<u64>,
    missed: u64,
}

async fn progress_lane(env: EnvView, args: JobsArgs, lane: usize, jobs: usize) -> Result<Lane> {
    let mut client = env.connect(&format!("progress{lane}")).await?;
    let mut out = Lane {
        chunk: latency_histogram()?,
        progress: latency_histogram()?,
        missed: 0,
    };
    let body = format!(
        r#"{{"chunks":{},"sleepMs":{}}}"#,
        args.progress_chunks, args.progress_sleep_ms
    );
    for j in 0..jobs {
        // Due a little later, so the subscription is in place before the first chunk ends.
        let receipt = format!("s{j}");
        client.publish(
            "/app/jobs",
            body.as_bytes(),
            &[("job-type", "noop"), ("delay", "20")],
            Some(&receipt),
        );
        client.conn.flush().await?;
        let id = wait_receipt(&mut client, &receipt)
            .await?
            .context("no job-id on the RECEIPT")?;
        let sub = format!("j{j}");
        let sub_receipt = format!("r{j}");
        client.subscribe(
            &format!("/topic/jobs/{id}"),
            &sub,
            Ack::Auto,
            Some(&sub_receipt),
        );
        client.conn.flush().await?;
        wait_receipt(&mut client, &sub_receipt).await?;
        let mut ended: Vec<Option<u64>> = vec![None; args.progress_chunks as usize];
        // A chunk's PROGRESS_UPDATE may arrive before its CHUNK_COMPLETED (which waits for
        // the chunk's commit): its arrival is kept until the chunk's end time is known.
        let mut early: Vec<Vec<u64>> = vec![Vec::new(); args.progress_chunks as usize];
        let mut seen = 0u64;
        loop {
            let Some(frame) = client.next_frame().await? else {
                bail!("connection closed while watching {id}");
            };
            let arrived = now_ns();
            if frame.command != stompede::protocol::Command::Message
                || frame.get("subscription") != Some(sub.as_str())
            {
                continue;
            }
            if frame.get("snapshot") == Some("true") {
                // Subscribed after the job ended (a slow machine, past the job's 20 ms delay):
                // its events are gone by; counted as missed rather than waited for.
                let job: Value = serde_json::from_slice(&frame.body)?;
                if matches!(
                    job["status"].as_str(),
                    Some("completed" | "failed" | "cancelled")
                ) {
                    break;
                }
                continue;
            }
            match frame.get("event") {
                Some("CHUNK_COMPLETED") => {
                    let event: Value = serde_json::from_slice(&frame.body)?;
                    let index = event["chunkIndex"].as_u64().unwrap_or(0) as usize;
                    let at = event["result"]["workEndedAtNs"]
                        .as_u64()
                        .context("CHUNK_COMPLETED without result.workEndedAtNs")?;
                    if let Some(slot) = ended.get_mut(index) {
                        *slot = Some(at);
                    }
                    for progress_arrived in
                        early.get_mut(index).map(std::mem::take).unwrap_or_default()
                    {
                        record_latency(&mut out.progress, at, progress_arrived);
                    }
                    record_latency(&mut out.chunk, at, arrived);
                    seen += 1;
                }
                Some("PROGRESS_UPDATE") => {
                    let event: Value = serde_json::from_slice(&frame.body)?;
                    let index = event["chunkIndex"].as_u64().unwrap_or(0) as usize;
                    match (ended.get(index), early.get_mut(index)) {
                        (Some(Some(at)), _) => record_latency(&mut out.progress, *at, arrived),
                        // Bounded: one list per chunk of this job, at most one update per
                        // chunk end and in-chunk update.
                        (_, Some(waiting)) if waiting.len() < 1_000 => waiting.push(arrived),
                        _ => {}
                    }
                }
                Some("JOB_COMPLETED") => break,
                Some("JOB_FAILED") | Some("JOB_CANCELLED") => bail!("job {id} did not complete"),
                _ => {}
            }
        }
        out.missed += args.progress_chunks.saturating_sub(seen);
        client.unsubscribe(&sub);
    }
    client.disconnect();
    client.conn.flush().await?;
    Ok(out)
}

async fn progress_part(env: &EnvView, args: &JobsArgs) -> Result<Fields> {
    let mut f = Fields::new();
    let lanes = args.progress_lanes.max(1);
    let before = env.usage();
    let started = Instant::now();
    let tasks: Vec<_> = crate::split(args.progress_jobs, lanes)
        .into_iter()
        .enumerate()
        .map(|(lane, range)| {
            tokio::task::spawn_local(progress_lane(env.clone(), args.clone(), lane, range.len()))
        })
        .collect();
    let mut chunk = latency_histogram()?;
    let mut progress = latency_histogram()?;
    let mut missed = 0;
    let all = async {
        for task in tasks {
            let lane = task.await.context("a lane panicked")??;
            chunk.add(&lane.chunk)?;
            progress.add(&lane.progress)?;
            missed += lane.missed;
        }
        Ok::<_, anyhow::Error>(())
    };
    tokio::time::timeout(env.remaining(), all)
        .await
        .context("timed out watching progress")??;
    let after = env.usage();
    let ms = |h: &Histogram<u64>, q: f64| json!(h.value_at_quantile(q) as f64 / 1000.0);
    f.insert("jobs".into(), args.progress_jobs.into());
    f.insert("chunks_per_job".into(), args.progress_chunks.into());
    f.insert("lanes".into(), lanes.into());
    f.insert("samples".into(), chunk.len().into());
    f.insert("latency_p50_ms".into(), ms(&chunk, 0.5));
    f.insert("latency_p99_ms".into(), ms(&chunk, 0.99));
    f.insert("latency_p999_ms".into(), ms(&chunk, 0.999));
    f.insert("latency_max_ms".into(), json!(chunk.max() as f64 / 1000.0));
    f.insert("progress_samples".into(), progress.len().into());
    f.insert("progress_p50_ms".into(), ms(&progress, 0.5));
    f.insert("progress_p99_ms".into(), ms(&progress, 0.99));
    f.insert("progress_p999_ms".into(), ms(&progress, 0.999));
    f.insert(
        "progress_max_ms".into(),
        json!(progress.max() as f64 / 1000.0),
    );
    f.insert("elapsed_s".into(), json!(started.elapsed().as_secs_f64()));
    if let (Some(b), Some(a)) = (before.cpu_s, after.cpu_s) {
        f.insert("broker_cpu_s".into(), json!(a - b));
    }
    let mut problems = Vec::new();
    if missed > 0 {
        problems.push(json!(format!(
            "{missed} CHUNK_COMPLETED events not received"
        )));
    }
    f.insert("problems".into(), Value::Array(problems));
    Ok(f)
}
