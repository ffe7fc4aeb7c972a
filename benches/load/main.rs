//! `cargo bench --bench load -- <scenario> [flags]`: a load generator for STOMP brokers (and, for
//! comparison, NATS) over WebSocket or TCP.
//!
//! Scenarios: `fanout` (one topic, many subscribers), `queue` (competing consumers with
//! client-individual ACKs), `connections` (many idle subscribed sessions), `flow` (fan-out with a
//! subscriber that stops reading), `jobs` (the job engine: durable submissions, trivial jobs
//! completed, progress latency, memory per waiting job; see `jobs.rs`). Every run prints a table row and one JSON line; `--repeat`
//! adds a median row. Without `--url` or `--tcp` the tool starts the stompede binary of this
//! workspace itself on ephemeral loopback ports.
//!
//! The client is built not to be the bottleneck on a small machine: receivers are multiplexed
//! on one current-thread runtime (`--client-threads` for more), publishers on another; frames
//! are decoded from raw bytes with the stompede codec, WebSocket framing is done by hand, and
//! publishers pipeline their SENDs in 64 KiB writes with one receipt at the end.

mod broker;
mod client;
mod conn;
mod connections;
mod fanout;
mod jobs;
mod queue;
mod queues;
mod report;
mod stats;

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::Value;

use broker::{Spawned, Usage};
use client::{ClientOptions, Proto};
use conn::{ConnOptions, Target};
use report::Fields;

#[derive(Parser)]
#[command(name = "load", about = "Load generator for STOMP (and NATS) brokers")]
struct Cli {
    /// Without one, the tool prints its help and exits 0 (so a plain `cargo bench` of the
    /// workspace does not fail on it).
    #[command(subcommand)]
    scenario: Option<Scenario>,
    #[command(flatten)]
    common: Common,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true, global = true)]
    bench: bool,
}

#[derive(Subcommand)]
enum Scenario {
    /// S subscribers on one topic, P publishers, N messages of B bytes.
    Fanout(fanout::FanoutArgs),
    /// Producers and competing consumers on one queue, client-individual ACK per message.
    Queue(queue::QueueArgs),
    /// K concurrent subscribed sessions, then one message to each.
    Connections(connections::ConnectionsArgs),
    /// Fan-out with one extra subscriber that stops reading: timeline and cut-off.
    Flow(fanout::FlowArgs),
    /// The job engine (issue #25): durable submissions, trivial jobs completed, progress
    /// latency, memory per waiting job; a fresh server (started with the bench job type) per
    /// part.
    Jobs(jobs::JobsArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Transport {
    Ws,
    Tcp,
    /// Receivers over SockJS xhr-streaming (at `/sockjs`), publishers over WebSocket.
    SockjsXhrStreaming,
    /// Receivers over SockJS eventsource (at `/sockjs`), publishers over WebSocket.
    SockjsEventsource,
}

/// Flags shared by every scenario.
#[derive(Args, Clone)]
pub(crate) struct Common {
    /// WebSocket URL of the broker (ws://host:port/path).
    #[arg(long, global = true)]
    url: Option<String>,
    /// TCP address of the broker (host:port).
    #[arg(long, global = true, conflicts_with = "url")]
    tcp: Option<String>,
    /// Start this stompede binary on ephemeral loopback ports (the default, with this
    /// workspace's binary, when neither --url nor --tcp is given).
    #[arg(long, global = true)]
    spawn: Option<PathBuf>,
    /// With a spawned broker: which of its listeners to use.
    #[arg(long, global = true, value_enum, default_value = "ws")]
    transport: Transport,
    /// Extra argument for the spawned broker (repeatable), e.g. --broker-arg=--heartbeat=0,0.
    #[arg(long = "broker-arg", global = true, allow_hyphen_values = true)]
    broker_args: Vec<String>,
    /// PID of the broker, for its CPU time and memory (automatic with a spawned broker).
    #[arg(long, global = true)]
    broker_pid: Option<u32>,
    /// Name of the broker in the results.
    #[arg(long, global = true)]
    label: Option<String>,
    #[arg(long, global = true, value_enum, default_value = "stomp")]
    proto: Proto,
    #[arg(long, global = true, default_value = "guest")]
    login: String,
    #[arg(long, global = true, default_value = "guest")]
    passcode: String,
    /// STOMP `host` header (RabbitMQ: the virtual host).
    #[arg(long, global = true, default_value = "/")]
    vhost: String,
    /// Give up (and exit non-zero) after this many seconds per run.
    #[arg(long, global = true, default_value_t = 120.0)]
    timeout: f64,
    /// After the publishers are done, stop waiting once nothing arrived for this many seconds.
    #[arg(long, global = true, default_value_t = 10.0)]
    drain_timeout: f64,
    /// Runs (a fresh spawned broker each); a median row follows.
    #[arg(long, global = true, default_value_t = 1)]
    repeat: usize,
    /// Threads (each a current-thread runtime) for the receiving connections.
    #[arg(long, global = true, default_value_t = 1)]
    client_threads: usize,
    /// SO_RCVBUF for receiving connections (default: the kernel's autotuning).
    #[arg(long, global = true)]
    rcvbuf: Option<u32>,
    /// TCP_NOTSENT_LOWAT for publishing connections (default: none, so an unpaced publisher's
    /// kernel send buffer, autotuned up to 4 MiB, adds its backlog to the measured latency).
    #[arg(long, global = true)]
    publisher_lowat: Option<u32>,
    /// With --rate: how the publishers' sends line up in time.
    #[arg(long, global = true, value_enum, default_value = "aligned")]
    pacing: fanout::Pacing,
    /// Sample the kernel's socket queues every 100 ms and split the latency between them.
    /// Each sample reads `/proc/net/tcp`, which walks the kernel's whole connection table
    /// (about 1.3 ms of CPU here): enough to add milliseconds to a paced run's p99.
    #[arg(long, global = true)]
    queues: bool,
    /// Print only the JSON lines.
    #[arg(long, global = true)]
    json: bool,
    /// Receivers connect here instead, spread over the addresses in turn (repeatable):
    /// `ws://host:port/ws` or a TCP `host:port`. With publishers on another node of a cluster,
    /// this measures fan-out across nodes (`benches/cluster.sh`).
    #[arg(long = "receivers-at", global = true)]
    receivers_at: Vec<String>,
}

/// Everything a run needs to reach the broker and measure it.
pub(crate) struct Env {
    /// Where publishers connect.
    pub(crate) target: Target,
    /// Where receivers connect: `target`, or the SockJS endpoint beside it.
    pub(crate) receiver_target: Target,
    pub(crate) client: ClientOptions,
    pub(crate) pid: Option<String>,
    pub(crate) ticks: f64,
    pub(crate) deadline: Instant,
    pub(crate) common: Common,
    pub(crate) run_tag: String,
    _spawned: Option<Spawned>,
}

impl Env {
    fn new(common: &Common, run: usize) -> Result<Env> {
        let mut spawned = None;
        let (target, pid) = if let Some(url) = &common.url {
            (Target::ws(url)?, common.broker_pid.map(|p| p.to_string()))
        } else if let Some(tcp) = &common.tcp {
            (Target::tcp(tcp)?, common.broker_pid.map(|p| p.to_string()))
        } else {
            let path = common
                .spawn
                .clone()
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_stompede")));
            let broker = Spawned::start(&path, &common.broker_args)?;
            let target = match common.transport {
                Transport::Tcp => {
                    Target::tcp(broker.stomp.as_deref().context("no stomp listener")?)?
                }
                _ => Target::ws(broker.ws.as_deref().context("no ws listener")?)?,
            };
            let pid = broker.pid().to_string();
            spawned = Some(broker);
            (target, Some(pid))
        };
        let streaming = match common.transport {
            Transport::SockjsXhrStreaming => Some(conn::Streaming::XhrStreaming),
            Transport::SockjsEventsource => Some(conn::Streaming::EventSource),
            Transport::Ws | Transport::Tcp => None,
        };
        let receiver_target = match (streaming, &target) {
            (None, _) => target.clone(),
            (Some(streaming), Target::Ws { host, .. }) => {
                Target::sockjs(&format!("ws://{host}/"), "/sockjs", streaming)?
            }
            (Some(_), _) => {
                bail!("the SockJS transports need a WebSocket --url or a spawned broker")
            }
        };
        let client = ClientOptions {
            proto: common.proto,
            login: common.login.clone(),
            passcode: common.passcode.clone(),
            host: common.vhost.clone(),
            conn: ConnOptions::default(),
        };
        let now = Instant::now();
        Ok(Env {
            target,
            receiver_target,
            client,
            pid,
            ticks: broker::clock_ticks(),
            deadline: now + Duration::from_secs_f64(common.timeout),
            common: common.clone(),
            run_tag: format!(
                "{}-{run}-{}",
                std::process::id(),
                stats::now_ns() % 1_000_000
            ),
            _spawned: spawned,
        })
    }

    /// Options for a publishing connection.
    pub(crate) fn publisher_options(&self) -> ClientOptions {
        let mut options = self.client.clone();
        options.conn.notsent_lowat = self.common.publisher_lowat;
        options
    }

    /// Where receiver `id` connects: `receiver_target`, or one of `--receivers-at` in turn.
    pub(crate) fn receiver_target_for(&self, id: usize) -> Result<Target> {
        let at = &self.common.receivers_at;
        if at.is_empty() {
            return Ok(self.receiver_target.clone());
        }
        let address = &at[id % at.len()];
        if address.starts_with("ws://") {
            Target::ws(address)
        } else {
            Target::tcp(address)
        }
    }

    /// Options for a receiving connection.
    pub(crate) fn receiver_options(&self) -> ClientOptions {
        let mut options = self.client.clone();
        options.conn.rcvbuf = self.common.rcvbuf;
        options
    }

    pub(crate) fn broker_usage(&self) -> Usage {
        Usage::of(self.pid.as_deref(), self.ticks)
    }

    pub(crate) fn client_cpu(&self) -> f64 {
        broker::cpu_seconds("self", self.ticks).unwrap_or(0.0)
    }

    pub(crate) fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    pub(crate) fn timed_out(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Common result fields.
    pub(crate) fn base_fields(&self, scenario: &str, run: usize) -> Fields {
        let mut f = Fields::new();
        f.insert("scenario".into(), scenario.into());
        let label = self.common.label.clone().unwrap_or_else(|| {
            if self.common.url.is_none() && self.common.tcp.is_none() {
                "stompede".into()
            } else {
                "broker".into()
            }
        });
        f.insert("broker".into(), label.into());
        f.insert("transport".into(), self.receiver_target.kind().into());
        f.insert(
            "proto".into(),
            format!("{:?}", self.common.proto).to_lowercase().into(),
        );
        f.insert("run".into(), Value::from(run));
        f
    }
}

/// Counters shared between the receiving threads, the publishing thread and the main thread.
#[derive(Default)]
pub(crate) struct Control {
    /// Messages received (all receivers, duplicates included).
    pub(crate) delivered: AtomicU64,
    /// Messages published.
    pub(crate) sent: AtomicU64,
    /// Connections subscribed and ready.
    pub(crate) ready: AtomicU64,
    /// Publishers connected and waiting for the start.
    pub(crate) publishers_ready: AtomicU64,
    /// Connections that failed.
    pub(crate) failed: AtomicU64,
    /// Bytes the publishers wrote, once they are done.
    pub(crate) published_bytes: AtomicU64,
    /// Bytes the receivers read, once they are done.
    pub(crate) received_bytes: AtomicU64,
    /// Local ports of the publishing and of the receiving connections.
    pub(crate) ports: std::sync::Mutex<Ports>,
    first_error: std::sync::Mutex<Option<String>>,
}

/// Local ports of a run's connections, by role.
#[derive(Default)]
pub(crate) struct Ports {
    pub(crate) publishers: Vec<u16>,
    pub(crate) receivers: Vec<u16>,
}

impl Control {
    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn fail(&self, error: &anyhow::Error) {
        Self::add(&self.failed, 1);
        let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_none() {
            *first = Some(format!("{error:#}"));
        }
    }

    /// Notes a connection's local port under its role.
    pub(crate) fn note_port(&self, port: Option<u16>, publisher: bool) {
        let mut ports = self.ports.lock().unwrap_or_else(|e| e.into_inner());
        let list = if publisher {
            &mut ports.publishers
        } else {
            &mut ports.receivers
        };
        list.extend(port);
    }

    pub(crate) fn first_error(&self) -> Option<String> {
        self.first_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Runs `f` on a new thread with its own current-thread runtime and a `LocalSet` (so tasks
/// spawned with `spawn_local` need not be `Send`).
pub(crate) fn thread<T, F, Fut>(name: &str, f: F) -> Result<std::thread::JoinHandle<Result<T>>>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T>>,
{
    Ok(std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let local = tokio::task::LocalSet::new();
            local.block_on(&runtime, f())
        })?)
}

/// Joins a thread started by [`thread`].
pub(crate) fn join<T>(handle: std::thread::JoinHandle<Result<T>>) -> Result<T> {
    match handle.join() {
        Ok(result) => result,
        Err(_) => bail!("a load thread panicked"),
    }
}

/// Waits (polling) until `done` or the deadline; false on timeout or when a thread ended early
/// (`early` says so).
pub(crate) fn wait_until(
    env: &Env,
    mut done: impl FnMut() -> bool,
    mut early: impl FnMut() -> bool,
) -> bool {
    loop {
        if done() {
            return true;
        }
        if env.timed_out() || early() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Splits `0..n` into `parts` nearly equal ranges.
pub(crate) fn split(n: usize, parts: usize) -> Vec<std::ops::Range<usize>> {
    let parts = parts.max(1);
    (0..parts)
        .map(|i| (n * i / parts)..(n * (i + 1) / parts))
        .filter(|r| !r.is_empty())
        .collect()
}

/// Raises this process's soft limit on open files to its hard limit (a spawned broker inherits
/// it); returns the limit in force.
pub(crate) fn fd_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        if let Err(error) = setrlimit(Resource::Nofile, limit) {
            eprintln!("load: could not raise the open-file limit: {error}");
        }
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

fn main() -> ExitCode {
    fd_limit();
    let cli = Cli::parse();
    let Some(scenario) = &cli.scenario else {
        use clap::CommandFactory;
        eprintln!("{}", Cli::command().render_help());
        return ExitCode::SUCCESS;
    };
    match run(scenario, &cli.common) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("load: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the scenario `--repeat` times; true when every run was ok.
fn run(scenario: &Scenario, common: &Common) -> Result<bool> {
    let mut rows: Vec<Fields> = Vec::new();
    let columns = match scenario {
        Scenario::Fanout(_) => report::FANOUT,
        Scenario::Queue(_) => report::QUEUE,
        Scenario::Connections(_) => report::CONNECTIONS,
        Scenario::Flow(_) => report::FLOW,
        Scenario::Jobs(args) => return run_jobs(args, common),
    };
    for run in 1..=common.repeat.max(1) {
        let env = Env::new(common, run)?;
        let fields = match scenario {
            Scenario::Fanout(args) => fanout::fanout(&env, args, run)?,
            Scenario::Queue(args) => queue::queue(&env, args, run)?,
            Scenario::Connections(args) => connections::connections(&env, args, run)?,
            Scenario::Flow(args) => fanout::flow(&env, args, run)?,
            Scenario::Jobs(_) => unreachable!("run_jobs runs the jobs scenario"),
        };
        println!("{}", Value::Object(fields.clone()));
        if let Some(Value::Array(problems)) = fields.get("problems") {
            for p in problems {
                eprintln!("load: run {run}: {}", p.as_str().unwrap_or_default());
            }
        }
        rows.push(fields);
        drop(env);
    }
    if rows.len() > 1 {
        let median = report::median_of(&rows);
        println!("{}", Value::Object(median.clone()));
        rows.push(median);
    }
    if !common.json {
        report::table(columns, &rows);
    }
    Ok(rows
        .iter()
        .all(|r| r.get("ok").and_then(Value::as_bool).unwrap_or(false)))
}

/// The `jobs` scenario: each part `--repeat` times, each run against a fresh server (spawned with
/// the bench job type and the scenario's config file unless `--url` or `--tcp` names one).
fn run_jobs(args: &jobs::JobsArgs, common: &Common) -> Result<bool> {
    let dir = tempfile::tempdir()?;
    let mut common = common.clone();
    if common.url.is_none() && common.tcp.is_none() {
        common
            .broker_args
            .extend(jobs::broker_args(args, dir.path())?);
    }
    let mut rows: Vec<Fields> = Vec::new();
    for part in args.part.expand() {
        let mut part_rows = Vec::new();
        for run in 1..=common.repeat.max(1) {
            let env = Env::new(&common, run)?;
            let fields = jobs::jobs(&env, args, part, run)?;
            println!("{}", Value::Object(fields.clone()));
            if let Some(Value::Array(problems)) = fields.get("problems") {
                for p in problems {
                    eprintln!("load: run {run}: {}", p.as_str().unwrap_or_default());
                }
            }
            part_rows.push(fields);
            drop(env);
        }
        if part_rows.len() > 1 {
            let median = report::median_of(&part_rows);
            println!("{}", Value::Object(median.clone()));
            part_rows.push(median);
        }
        rows.extend(part_rows);
    }
    if !common.json {
        report::table(report::JOBS, &rows);
    }
    Ok(rows
        .iter()
        .all(|r| r.get("ok").and_then(Value::as_bool).unwrap_or(false)))
}
