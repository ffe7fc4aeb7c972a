//! `cargo bench --bench soak [-- --minutes 20]`: a bounded soak of mixed load against the
//! release binary (issue #23), outside CI. For the whole run a fresh `stompede serve` carries a
//! topic fanned out to TCP and WebSocket subscribers, receipted persistent messages with a
//! consumer acknowledging each, a session opened and left every 100 ms in five different ways,
//! `demo` and `reconcile` jobs, and HTTP health checks (see `load.rs`). Every `--sample-secs`
//! it reads the server's RSS, descriptors, threads, CPU time and data directory size.
//!
//! At the end it checks that nothing was lost (every topic message reached every steady
//! subscriber, every receipted persistent message was delivered, every accepted job finished)
//! and that, after the warm-up, memory stayed flat and no descriptor leaked; it prints the
//! samples, a verdict and one JSON line, and exits non-zero when either check fails.

// Shared with the load tool, of which the soak uses the spawning and the /proc readings.
#[allow(dead_code)]
#[path = "../load/broker.rs"]
mod broker;
#[path = "../../tests/common/mod.rs"]
mod common;
mod load;
mod sample;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;

use load::{Ledger, Shared, Stop};
use sample::Sample;

#[derive(Parser)]
#[command(name = "soak", about = "A bounded soak of mixed load against stompede")]
struct Args {
    /// How long the load runs.
    #[arg(long, default_value_t = 20.0)]
    minutes: f64,
    /// Seconds between two readings of the server.
    #[arg(long, default_value_t = 30)]
    sample_secs: u64,
    /// Readings from the first minutes are left out of the verdict (caches filling, the
    /// store's first segments); at most a third of the run.
    #[arg(long, default_value_t = 5.0)]
    warmup_minutes: f64,
    /// Topic messages a second.
    #[arg(long, default_value_t = 500)]
    rate: u64,
    #[arg(long, default_value_t = 10)]
    tcp_subscribers: usize,
    #[arg(long, default_value_t = 10)]
    ws_subscribers: usize,
    /// The verdict's bound on RSS growth between the first and last third after warm-up.
    #[arg(long, default_value_t = 10.0)]
    max_growth_pct: f64,
    /// Leave a part of the load out (repeatable: topic, queue, churn, jobs, health), to find
    /// which part a growth comes with.
    #[arg(long, value_enum)]
    without: Vec<Part>,
    /// The stompede binary (default: this workspace's, as `cargo bench` built it).
    #[arg(long)]
    spawn: Option<PathBuf>,
    /// Extra argument for the server (repeatable).
    #[arg(long = "broker-arg", allow_hyphen_values = true)]
    broker_args: Vec<String>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// The parts of the load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Part {
    Topic,
    Queue,
    Churn,
    Jobs,
    Health,
}

/// Stands in for a part left out: runs until the load stops.
async fn idle(stop: Stop) {
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("soak: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<bool> {
    let path = args
        .spawn
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_stompede")));
    let mut server_args = vec!["--log".to_owned(), "warn".to_owned()];
    server_args.extend(args.broker_args.iter().cloned());
    let server = broker::Spawned::start(&path, &server_args)?;
    let stomp: SocketAddr = server
        .stomp
        .as_deref()
        .context("no STOMP listener")?
        .parse()?;
    let ws = server.ws.clone().context("no WebSocket listener")?;
    let http: SocketAddr = ws
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .context("WebSocket URL")?
        .parse()?;
    load::write_reconcile_inputs(&server.data_dir().join("import"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(soak(args, &server, stomp, ws, http))
}

async fn soak(
    args: &Args,
    server: &broker::Spawned,
    stomp: SocketAddr,
    ws: String,
    http: SocketAddr,
) -> Result<bool> {
    let on = |part: Part| !args.without.contains(&part);
    let (tcp_subscribers, ws_subscribers) = if on(Part::Topic) {
        (args.tcp_subscribers, args.ws_subscribers)
    } else {
        (0, 0)
    };
    let subscribers = tcp_subscribers + ws_subscribers;
    let ledger: Shared = Arc::new(Ledger::new(subscribers));
    let stop: Stop = Arc::new(AtomicBool::new(false));

    let (ready, mut subscribed) = tokio::sync::mpsc::channel(subscribers.max(1));
    let mut steady = Vec::new();
    for i in 0..subscribers {
        steady.push(if i < tcp_subscribers {
            tokio::spawn(load::tcp_subscriber(
                stomp,
                ledger.clone(),
                i,
                ready.clone(),
            ))
        } else {
            tokio::spawn(load::ws_subscriber(
                ws.clone(),
                ledger.clone(),
                i,
                ready.clone(),
            ))
        });
    }
    drop(ready);
    for _ in 0..subscribers {
        tokio::time::timeout(Duration::from_secs(30), subscribed.recv())
            .await
            .context("steady subscribers not subscribed within 30 s")?;
    }
    if on(Part::Queue) {
        steady.push(tokio::spawn(load::queue_consumer(stomp, ledger.clone())));
    }

    let publisher = if on(Part::Topic) {
        tokio::spawn(load::topic_publisher(
            stomp,
            ledger.clone(),
            stop.clone(),
            args.rate,
        ))
    } else {
        tokio::spawn(idle(stop.clone()))
    };
    let producer = if on(Part::Queue) {
        tokio::spawn(load::queue_producer(stomp, ledger.clone(), stop.clone()))
    } else {
        let stop = stop.clone();
        tokio::spawn(async move {
            idle(stop).await;
            Ok(())
        })
    };
    let churn = if on(Part::Churn) {
        tokio::spawn(load::churn(stomp, ws, ledger.clone(), stop.clone()))
    } else {
        tokio::spawn(idle(stop.clone()))
    };
    let jobs = if on(Part::Jobs) {
        tokio::spawn(load::jobs(stomp, ledger.clone(), stop.clone()))
    } else {
        let stop = stop.clone();
        tokio::spawn(async move {
            idle(stop).await;
            Ok(())
        })
    };
    let health = if on(Part::Health) {
        tokio::spawn(load::health(http, ledger.clone(), stop.clone()))
    } else {
        tokio::spawn(idle(stop.clone()))
    };

    let ticks = broker::clock_ticks();
    let started = Instant::now();
    let total = Duration::from_secs_f64(args.minutes * 60.0);
    let mut samples: Vec<Sample> = Vec::new();
    println!(
        "{:>6} {:>8} {:>8} {:>5} {:>7} {:>8} {:>7} {:>10} {:>8} {:>6} {:>7}",
        "min",
        "RSS MiB",
        "peak",
        "fds",
        "threads",
        "data MiB",
        "CPU s",
        "topic rcvd",
        "queue",
        "jobs",
        "churned"
    );
    loop {
        let at = started.elapsed();
        let mut sample = sample::read(server.pid(), &server.data_dir(), at.as_secs_f64(), ticks)?;
        sample.topic_received = ledger
            .topic_received
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum();
        sample.queue_delivered = ledger.queue_delivered.lock().expect("ledger").len() as u64;
        sample.jobs_completed = ledger.jobs_completed.lock().expect("ledger").len();
        sample.sessions_churned = ledger
            .churned
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum();
        println!(
            "{:>6.1} {:>8.1} {:>8.1} {:>5} {:>7} {:>8.1} {:>7.1} {:>10} {:>8} {:>6} {:>7}",
            sample.at_s / 60.0,
            sample.rss_kib as f64 / 1024.0,
            sample.peak_rss_kib as f64 / 1024.0,
            sample.fds,
            sample.threads,
            sample.data_kib as f64 / 1024.0,
            sample.cpu_s,
            sample.topic_received,
            sample.queue_delivered,
            sample.jobs_completed,
            sample.sessions_churned,
        );
        samples.push(sample);
        if at >= total {
            break;
        }
        for task in [&publisher, &churn, &health] {
            if task.is_finished() {
                bail!("a load task ended early");
            }
        }
        if producer.is_finished() || jobs.is_finished() || steady.iter().any(|t| t.is_finished()) {
            bail!("a load task ended early (a panic or a refused operation; see above)");
        }
        let next = Duration::from_secs(args.sample_secs).min(total.saturating_sub(at));
        tokio::time::sleep(next.max(Duration::from_millis(100))).await;
    }

    stop.store(true, Ordering::Relaxed);
    publisher.await?;
    producer.await??;
    churn.await?;
    health.await?;
    tokio::time::timeout(Duration::from_secs(300), jobs)
        .await
        .context("accepted jobs still unfinished 5 minutes after the load stopped")???;
    let lost = drain(&ledger).await;
    for task in steady {
        task.abort();
        if let Err(error) = task.await {
            if error.is_panic() {
                bail!("a steady client panicked: {error}");
            }
        }
    }

    let warmup = (args.warmup_minutes * 60.0).min(args.minutes * 20.0);
    let after: Vec<Sample> = samples
        .iter()
        .filter(|s| s.at_s >= warmup)
        .cloned()
        .collect();
    let verdict = sample::verdict(&after, args.max_growth_pct, 32)
        .context("too few samples after the warm-up for a verdict")?;
    let churned: Vec<u64> = ledger
        .churned
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .collect();
    let summary = serde_json::json!({
        "minutes": args.minutes,
        "topic_sent": ledger.topic_sent.load(Ordering::Relaxed),
        "topic_subscribers": subscribers,
        "queue_receipted": ledger.queue_receipted.load(Ordering::Relaxed),
        "sessions_churned": churned,
        "churn_faults": ledger.churn_faults.load(Ordering::Relaxed),
        "jobs_accepted": ledger.jobs_accepted.lock().expect("ledger").len(),
        "jobs_completed": ledger.jobs_completed.lock().expect("ledger").len(),
        "jobs_failed": ledger.jobs_failed.lock().expect("ledger").clone(),
        "health_ok": ledger.health_ok.load(Ordering::Relaxed),
        "health_failed": ledger.health_failed.load(Ordering::Relaxed),
        "lost": lost,
        "verdict": verdict,
    });
    println!("{summary}");
    let faults = ledger.churn_faults.load(Ordering::Relaxed);
    let failed_jobs = ledger.jobs_failed.lock().expect("ledger").len();
    let health_failed = ledger.health_failed.load(Ordering::Relaxed);
    let ok = verdict.flat && lost.is_empty() && faults == 0 && failed_jobs == 0;
    println!(
        "soak {}: RSS {:.1} -> {:.1} MiB after warm-up ({:+.1}%, slope {:+.1} KiB/min), \
         descriptors {} -> {} (range {}..{}), {} health checks failed, {} churn faults, \
         {} jobs failed, lost: {:?}",
        if ok { "passed" } else { "FAILED" },
        verdict.rss_early_kib as f64 / 1024.0,
        verdict.rss_late_kib as f64 / 1024.0,
        verdict.rss_growth_pct,
        verdict.rss_slope_kib_per_min,
        verdict.fds_first,
        verdict.fds_last,
        verdict.fds_min,
        verdict.fds_max,
        health_failed,
        faults,
        failed_jobs,
        lost,
    );
    Ok(ok)
}

/// Waits for the steady clients to catch up; returns what never arrived.
async fn drain(ledger: &Ledger) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut lost = Vec::new();
        let sent = ledger.topic_sent.load(Ordering::Relaxed);
        for (i, received) in ledger.topic_received.iter().enumerate() {
            let received = received.load(Ordering::Relaxed);
            if received != sent {
                lost.push(format!(
                    "subscriber {i}: {received} of {sent} topic messages"
                ));
            }
        }
        let receipted = ledger.queue_receipted.load(Ordering::Relaxed);
        let missing = {
            let delivered = ledger.queue_delivered.lock().expect("ledger");
            (0..receipted).filter(|id| !delivered.contains(id)).count()
        };
        if missing > 0 {
            lost.push(format!(
                "{missing} of {receipted} receipted persistent messages"
            ));
        }
        if lost.is_empty() || Instant::now() > deadline {
            return lost;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
