//! The `stompede` command: parses arguments, sets up logging, runs the library.

use std::net::SocketAddr;
use std::path::PathBuf;

mod cli;

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, CommandFactory, Parser, Subcommand};
use stompede::{BrokerBuilder, Config};
use tracing_subscriber::EnvFilter;

// sled and the broker allocate per record and per message; glibc's malloc spent a third of the
// job engine's time in `_int_malloc`/`malloc_consolidate` (see BENCHMARKS.md). Heap profilers
// (heaptrack, valgrind's massif) see only the system allocator: `--features system-allocator`.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "stompede",
    version,
    about = "STOMP over WebSocket broker with a durable job engine",
    after_help = "Examples:
  stompede serve                                   run the server (ws://127.0.0.1:15674/ws)
  stompede submit demo --chunks 20                 submit a job and watch its progress
  stompede submit reconcile bo.csv partner.csv --bo-key id --partner-key ref
  stompede jobs list --status failed               your failed jobs
  stompede subscribe /topic/news                   print what arrives there
  STOMPEDE_PASSWORD=pw stompede --user ann jobs watch 01J...

Client exit codes: 0 done, 1 error, 3 a job failed, 4 a job was cancelled."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker.
    Serve(Box<ServeArgs>),
    /// Upload what a job reads, submit it, and follow it with a progress bar.
    Submit {
        #[command(flatten)]
        client: cli::ClientArgs,
        #[command(subcommand)]
        job: cli::SubmitCommand,
    },
    /// List, show, watch, cancel, pause, resume, retry or delete jobs.
    Jobs {
        #[command(flatten)]
        client: cli::ClientArgs,
        #[command(subcommand)]
        command: cli::JobsCommand,
    },
    /// Send one message to a destination.
    Send {
        #[command(flatten)]
        client: cli::ClientArgs,
        #[command(flatten)]
        send: cli::SendArgs,
    },
    /// Print the messages that arrive on a destination.
    Subscribe {
        #[command(flatten)]
        client: cli::ClientArgs,
        #[command(flatten)]
        subscribe: cli::SubscribeArgs,
    },
    /// Print a users-file line with NAME's password hashed (argon2id); the password is read
    /// from standard input (asked for, without echo, on a terminal).
    Passwd {
        /// The user name.
        name: String,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// Flags override environment variables, which override the config file, which overrides the
/// defaults.
#[derive(Args)]
struct ServeArgs {
    /// TOML file with the same keys as the flags (kebab-case).
    #[arg(long, env = "STOMPEDE_CONFIG")]
    config: Option<PathBuf>,
    /// Where durable state lives [default: ./stompede-data].
    #[arg(long, env = "STOMPEDE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Plain TCP STOMP address, or "off" [default: 127.0.0.1:61613].
    #[arg(long, env = "STOMPEDE_STOMP")]
    stomp: Option<Listen>,
    /// HTTP address (WebSocket STOMP at /ws), or "off" [default: 127.0.0.1:15674].
    #[arg(long, env = "STOMPEDE_HTTP")]
    http: Option<Listen>,
    /// STOMP over TLS address, or "off" [default: off]; needs --tls-cert and --tls-key.
    #[arg(long, env = "STOMPEDE_STOMPS")]
    stomps: Option<Listen>,
    /// HTTPS address (wss://HOST:PORT/ws, SockJS, the API and the dashboard over TLS), or
    /// "off" [default: off]; needs --tls-cert and --tls-key.
    #[arg(long, env = "STOMPEDE_HTTPS")]
    https: Option<Listen>,
    /// The TLS listeners' certificate chain, a PEM file (leaf first); read again on SIGHUP.
    #[arg(long, env = "STOMPEDE_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// The TLS listeners' private key, a PEM file (PKCS#8, PKCS#1 or SEC1); read again on
    /// SIGHUP.
    #[arg(long, env = "STOMPEDE_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Time a new TLS connection has to finish its handshake, in ms [default: 10000].
    #[arg(long, env = "STOMPEDE_TLS_HANDSHAKE_TIMEOUT_MS")]
    tls_handshake_timeout_ms: Option<u64>,
    /// A user, as name:password (repeatable). Without users the server runs in open mode.
    #[arg(long = "user", env = "STOMPEDE_USERS", value_delimiter = ',')]
    users: Vec<String>,
    /// A file of name:password lines.
    #[arg(long, env = "STOMPEDE_USERS_FILE")]
    users_file: Option<PathBuf>,
    /// Allow open mode on a non-loopback address.
    #[arg(long, env = "STOMPEDE_ALLOW_ANONYMOUS")]
    allow_anonymous: bool,
    /// Server heart-beat offer "send,receive" in ms [default: 10000,10000].
    #[arg(long, env = "STOMPEDE_HEARTBEAT")]
    heartbeat: Option<String>,
    /// A client silent for the heart-beat interval times this is disconnected [default: 2].
    #[arg(long, env = "STOMPEDE_HEARTBEAT_TOLERANCE")]
    heartbeat_tolerance: Option<f64>,
    /// Largest frame body in bytes [default: 16 MiB].
    #[arg(long, env = "STOMPEDE_MAX_BODY_LEN")]
    max_body_len: Option<usize>,
    /// How long a subscriber may stay above its outbox mark before it is cut off, in ms.
    #[arg(long, env = "STOMPEDE_SLOW_CONSUMER_GRACE_MS")]
    slow_consumer_grace_ms: Option<u64>,
    /// Kernel receive buffer of every accepted connection in bytes (0: kernel autotuning).
    #[arg(long, env = "STOMPEDE_TCP_RECEIVE_BUFFER")]
    tcp_receive_buffer: Option<usize>,
    /// Kernel receive buffer a connection keeps once flow control has paced it, in bytes
    /// (0: left as it was) [default: 65536].
    #[arg(long, env = "STOMPEDE_PACED_RECEIVE_BUFFER")]
    paced_receive_buffer: Option<usize>,
    /// Outbox high-water mark in messages.
    #[arg(long, env = "STOMPEDE_OUTBOX_HIGH_WATER_MESSAGES")]
    outbox_high_water_messages: Option<usize>,
    /// New connections accepted per second.
    #[arg(long, env = "STOMPEDE_MAX_CONNECTIONS_PER_SECOND")]
    max_connections_per_second: Option<u32>,
    /// Where reconciliation and OCR jobs read their files [default: <data-dir>/import].
    #[arg(long, env = "STOMPEDE_IMPORT_DIR")]
    import_dir: Option<PathBuf>,
    /// The tesseract program OCR jobs run [default: tesseract].
    #[arg(long, env = "STOMPEDE_OCR_TESSERACT")]
    ocr_tesseract: Option<String>,
    /// Bytes past which the audit log (<data-dir>/audit/audit.log) is rotated
    /// [default: 67108864].
    #[arg(long, env = "STOMPEDE_AUDIT_MAX_BYTES")]
    audit_max_bytes: Option<u64>,
    /// An OpenAI-compatible chat-completions URL that extract jobs ask to correct and complete
    /// their rules' reading (off by default; extraction needs no model).
    #[arg(long, env = "STOMPEDE_EXTRACT_LLM_URL")]
    extract_llm_url: Option<String>,
    /// The model named to the extraction endpoint.
    #[arg(long, env = "STOMPEDE_EXTRACT_LLM_MODEL")]
    extract_llm_model: Option<String>,
    /// The extraction endpoint's bearer key (better from the environment or the config file).
    #[arg(long, env = "STOMPEDE_EXTRACT_LLM_KEY", hide_env_values = true)]
    extract_llm_key: Option<String>,
    /// Threads that run the sessions (0: one per core) [default: 0]. On a machine shared with
    /// other busy processes fewer threads hand less work between cores.
    #[arg(long, env = "STOMPEDE_WORKERS")]
    workers: Option<usize>,
    /// Log filter (tracing's EnvFilter syntax) [default: info].
    #[arg(long, env = "STOMPEDE_LOG", default_value = "info")]
    log: String,
    /// Log lines as text or as JSON objects, one per line [default: text].
    #[arg(long, env = "STOMPEDE_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// An origin whose pages may call the HTTP API (CORS), e.g. https://app.example.com
    /// (repeatable; none by default: same-origin pages only).
    #[arg(
        long = "allowed-origin",
        env = "STOMPEDE_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    allowed_origins: Vec<String>,
    /// A host that jobs' callback URLs may name, `host` or `host:port` (repeatable; none by
    /// default: no webhooks).
    #[arg(
        long = "webhook-host",
        env = "STOMPEDE_WEBHOOK_HOSTS",
        value_delimiter = ','
    )]
    webhook_hosts: Vec<String>,
    /// The key webhooks are signed with (HMAC-SHA256); better given by the environment or the
    /// config file than on a command line others can read.
    #[arg(long, env = "STOMPEDE_WEBHOOK_SECRET", hide_env_values = true)]
    webhook_secret: Option<String>,
    /// Where SockJS STOMP is served on the HTTP port, `off` to disable [default: /sockjs].
    #[arg(long, env = "STOMPEDE_SOCKJS_PREFIX")]
    sockjs_prefix: Option<String>,
    /// SockJS heart-beat frame interval in ms [default: 25000].
    #[arg(long, env = "STOMPEDE_SOCKJS_HEARTBEAT_MS")]
    sockjs_heartbeat_ms: Option<u64>,
    /// A SockJS session without a receiving request for this long is closed, in ms
    /// [default: 5000].
    #[arg(long, env = "STOMPEDE_SOCKJS_SESSION_TIMEOUT_MS")]
    sockjs_session_timeout_ms: Option<u64>,
    /// Bytes a SockJS streaming response carries before the client opens the next one
    /// [default: 131072].
    #[arg(long, env = "STOMPEDE_SOCKJS_RESPONSE_LIMIT")]
    sockjs_response_limit: Option<usize>,
    /// SockJS sessions over HTTP kept at once; one more is refused with 503
    /// [default: 10000].
    #[arg(long, env = "STOMPEDE_SOCKJS_MAX_SESSIONS")]
    sockjs_max_sessions: Option<usize>,
    /// Set a JSESSIONID cookie on SockJS answers, for sticky load balancers [default: off].
    #[arg(long, env = "STOMPEDE_SOCKJS_JSESSIONID", value_parser = on_off)]
    sockjs_jsessionid: Option<bool>,
    /// The sockjs-client script the SockJS iframe page loads [default: jsDelivr's
    /// sockjs-client 1.x].
    #[arg(long, env = "STOMPEDE_SOCKJS_CLIENT_URL")]
    sockjs_client_url: Option<String>,
    /// Time a frame that has begun to arrive has to complete, in ms, plus a second for every
    /// `--frame-min-rate` bytes received (0: no limit) [default: 20000].
    #[arg(long, env = "STOMPEDE_FRAME_TIMEOUT_MS")]
    frame_timeout_ms: Option<u64>,
    /// The least rate, in bytes/s, at which a frame must arrive after its first
    /// `--frame-timeout-ms` [default: 500].
    #[arg(long, env = "STOMPEDE_FRAME_MIN_RATE")]
    frame_min_rate: Option<u64>,
    /// Ping a WebSocket peer silent for this long, in ms (0: never) [default: 30000].
    #[arg(long, env = "STOMPEDE_WS_PING_INTERVAL_MS")]
    ws_ping_interval_ms: Option<u64>,
    /// Disconnect a pinged WebSocket peer that still sends nothing after this long, in ms
    /// [default: 10000].
    #[arg(long, env = "STOMPEDE_WS_PONG_TIMEOUT_MS")]
    ws_pong_timeout_ms: Option<u64>,
    /// TCP keep-alive: first probe after this many idle seconds (0: off) [default: 60].
    #[arg(long, env = "STOMPEDE_TCP_KEEPALIVE_SECS")]
    tcp_keepalive_secs: Option<u64>,
    /// Join a cluster through these NATS servers (nats://HOST:PORT, comma-separated); without
    /// it the node is on its own and touches nothing of NATS.
    #[arg(long, env = "STOMPEDE_CLUSTER", value_delimiter = ',')]
    cluster: Vec<String>,
    /// This node's name in the cluster [default: the host name and the STOMP port].
    #[arg(long, env = "STOMPEDE_NODE_NAME")]
    node_name: Option<String>,
    /// NATS credentials file (.creds: JWT and NKey seed).
    #[arg(long, env = "STOMPEDE_CLUSTER_CREDS")]
    cluster_creds: Option<PathBuf>,
    /// NATS user name (with --cluster-password).
    #[arg(long, env = "STOMPEDE_CLUSTER_USER")]
    cluster_user: Option<String>,
    /// NATS password.
    #[arg(long, env = "STOMPEDE_CLUSTER_PASSWORD", hide_env_values = true)]
    cluster_password: Option<String>,
    /// NATS authentication token.
    #[arg(long, env = "STOMPEDE_CLUSTER_TOKEN", hide_env_values = true)]
    cluster_token: Option<String>,
    /// CA certificate (PEM) to trust for TLS to NATS (TLS is then required).
    #[arg(long, env = "STOMPEDE_CLUSTER_CA")]
    cluster_ca: Option<PathBuf>,
    /// How often this member announces itself to the others, in ms; a member that misses three
    /// heartbeats is gone from the view [default: 1000].
    #[arg(long, env = "STOMPEDE_CLUSTER_HEARTBEAT_MS")]
    cluster_heartbeat_ms: Option<u64>,
    /// Keep /queue/ destinations in JetStream, shared by every node (on|off) [default: on].
    #[arg(long, env = "STOMPEDE_CLUSTER_QUEUES", value_parser = on_off)]
    cluster_queues: Option<bool>,
    /// Copies JetStream keeps of the queue stream (1 to 5) [default: 1].
    #[arg(long, env = "STOMPEDE_CLUSTER_REPLICAS")]
    cluster_replicas: Option<usize>,
    /// How long JetStream waits for a node to acknowledge (or renew) a queue message before
    /// handing it to another node, in ms; at least 3000 [default: 30000].
    #[arg(long, env = "STOMPEDE_CLUSTER_ACK_WAIT_MS")]
    cluster_ack_wait_ms: Option<u64>,
    /// Keep the job store and queue in JetStream, so that any node runs any job and a dead
    /// node's jobs move on (on|off) [default: off].
    #[arg(long, env = "STOMPEDE_CLUSTER_JOBS", value_parser = on_off)]
    cluster_jobs: Option<bool>,
    /// How long a node's lease on a running job lasts unrenewed, in ms: how soon another node
    /// takes a dead node's job over; at least 1000 [default: 30000].
    #[arg(long, env = "STOMPEDE_CLUSTER_JOB_LEASE_MS")]
    cluster_job_lease_ms: Option<u64>,
    /// Jobs this node takes from the cluster's job queue at once; 0: it runs none
    /// [default: job-concurrency].
    #[arg(long, env = "STOMPEDE_CLUSTER_JOB_SLOTS")]
    cluster_job_slots: Option<usize>,
    /// Also register the bench-only `noop` job type (chunks that do no work and stamp when
    /// they ended), for `cargo bench --bench load -- jobs`; not for production.
    #[arg(long, hide = true)]
    bench_job_types: bool,
}

/// `on`/`off` (also `true`/`false`).
fn on_off(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" => Ok(false),
        _ => Err(format!("{value:?}: expected on or off")),
    }
}

/// How log lines look.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum LogFormat {
    /// For people.
    Text,
    /// For log collectors: one JSON object per line.
    Json,
}

/// A listen address, or "off".
#[derive(Clone, Copy)]
struct Listen(Option<SocketAddr>);

impl std::str::FromStr for Listen {
    type Err = std::net::AddrParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("off") {
            return Ok(Listen(None));
        }
        s.parse().map(|a| Listen(Some(a)))
    }
}

impl ServeArgs {
    fn into_config(self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::from_toml_file(path)?,
            None => Config::default(),
        };
        if let Some(dir) = self.data_dir {
            config.data_dir = dir;
        }
        if let Some(Listen(addr)) = self.stomp {
            config.stomp = addr;
        }
        if let Some(Listen(addr)) = self.http {
            config.http = addr;
        }
        if let Some(Listen(addr)) = self.stomps {
            config.stomps = addr;
        }
        if let Some(Listen(addr)) = self.https {
            config.https = addr;
        }
        if let Some(path) = self.tls_cert {
            config.tls_cert = Some(path);
        }
        if let Some(path) = self.tls_key {
            config.tls_key = Some(path);
        }
        if let Some(v) = self.tls_handshake_timeout_ms {
            config.tls_handshake_timeout_ms = v;
        }
        for user in &self.users {
            config.add_user_spec(user)?;
        }
        if self.users_file.is_some() {
            config.users_file = self.users_file;
        }
        config.allow_anonymous |= self.allow_anonymous;
        if let Some(beat) = &self.heartbeat {
            let (send, receive) = beat
                .split_once(',')
                .and_then(|(s, r)| Some((s.trim().parse().ok()?, r.trim().parse().ok()?)))
                .with_context(|| format!("--heartbeat {beat:?}: expected send,receive in ms"))?;
            config.heartbeat_send_ms = send;
            config.heartbeat_receive_ms = receive;
        }
        if let Some(v) = self.heartbeat_tolerance {
            config.heartbeat_tolerance = v;
        }
        if let Some(v) = self.max_body_len {
            config.max_body_len = v;
        }
        if let Some(v) = self.slow_consumer_grace_ms {
            config.slow_consumer_grace_ms = v;
        }
        if let Some(v) = self.tcp_receive_buffer {
            config.tcp_receive_buffer = v;
        }
        if let Some(v) = self.paced_receive_buffer {
            config.paced_receive_buffer = v;
        }
        if let Some(v) = self.outbox_high_water_messages {
            config.outbox_high_water_messages = v;
        }
        if let Some(dir) = self.import_dir {
            config.import_dir = Some(dir);
        }
        if let Some(program) = self.ocr_tesseract {
            config.ocr_tesseract = program;
        }
        if let Some(bytes) = self.audit_max_bytes {
            config.audit_max_bytes = bytes;
        }
        if let Some(url) = self.extract_llm_url {
            config.extract_llm_url = Some(url);
        }
        if let Some(model) = self.extract_llm_model {
            config.extract_llm_model = Some(model);
        }
        if let Some(key) = self.extract_llm_key {
            config.extract_llm_key = Some(key);
        }
        if !self.allowed_origins.is_empty() {
            config.allowed_origins = self.allowed_origins;
        }
        if !self.webhook_hosts.is_empty() {
            config.webhook_hosts = self.webhook_hosts;
        }
        if let Some(secret) = self.webhook_secret {
            config.webhook_secret = Some(secret);
        }
        if let Some(v) = self.max_connections_per_second {
            config.max_connections_per_second = v;
        }
        if let Some(v) = self.workers {
            config.workers = v;
        }
        if let Some(v) = self.sockjs_prefix {
            config.sockjs_prefix = v;
        }
        if let Some(v) = self.sockjs_heartbeat_ms {
            config.sockjs_heartbeat_ms = v;
        }
        if let Some(v) = self.sockjs_session_timeout_ms {
            config.sockjs_session_timeout_ms = v;
        }
        if let Some(v) = self.sockjs_response_limit {
            config.sockjs_response_limit = v;
        }
        if let Some(v) = self.sockjs_max_sessions {
            config.sockjs_max_sessions = v;
        }
        if let Some(v) = self.sockjs_jsessionid {
            config.sockjs_jsessionid = v;
        }
        if let Some(v) = self.sockjs_client_url {
            config.sockjs_client_url = v;
        }
        if let Some(v) = self.frame_timeout_ms {
            config.frame_timeout_ms = v;
        }
        if let Some(v) = self.frame_min_rate {
            config.frame_min_rate = v;
        }
        if let Some(v) = self.ws_ping_interval_ms {
            config.ws_ping_interval_ms = v;
        }
        if let Some(v) = self.ws_pong_timeout_ms {
            config.ws_pong_timeout_ms = v;
        }
        if let Some(v) = self.tcp_keepalive_secs {
            config.tcp_keepalive_secs = v;
        }
        if !self.cluster.is_empty() {
            config.cluster = self.cluster;
        }
        if let Some(v) = self.node_name {
            config.node_name = Some(v);
        }
        if let Some(v) = self.cluster_creds {
            config.cluster_creds = Some(v);
        }
        if let Some(v) = self.cluster_user {
            config.cluster_user = Some(v);
        }
        if let Some(v) = self.cluster_password {
            config.cluster_password = Some(v);
        }
        if let Some(v) = self.cluster_token {
            config.cluster_token = Some(v);
        }
        if let Some(v) = self.cluster_ca {
            config.cluster_ca = Some(v);
        }
        if let Some(v) = self.cluster_heartbeat_ms {
            config.cluster_heartbeat_ms = v;
        }
        if let Some(v) = self.cluster_queues {
            config.cluster_queues = v;
        }
        if let Some(v) = self.cluster_replicas {
            config.cluster_replicas = v;
        }
        if let Some(v) = self.cluster_ack_wait_ms {
            config.cluster_ack_wait_ms = v;
        }
        if let Some(v) = self.cluster_jobs {
            config.cluster_jobs = v;
        }
        if let Some(v) = self.cluster_job_lease_ms {
            config.cluster_job_lease_ms = v;
        }
        if let Some(v) = self.cluster_job_slots {
            config.cluster_job_slots = Some(v);
        }
        Ok(config)
    }
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Submit { client, job } => Ok(cli::run(cli::submit::submit(&client, job))),
        Command::Jobs { client, command } => Ok(cli::run(cli::jobs::jobs(&client, command))),
        Command::Send { client, send } => Ok(cli::run(cli::debug::send(&client, send))),
        Command::Subscribe { client, subscribe } => {
            Ok(cli::run(cli::debug::subscribe(&client, subscribe)))
        }
        Command::Passwd { name } => passwd(&name),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "stompede",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve(args) => {
            let logs = tracing_subscriber::fmt()
                .with_env_filter(EnvFilter::try_new(&args.log).context("--log")?)
                .with_writer(std::io::stderr);
            match args.log_format {
                LogFormat::Text => logs.init(),
                LogFormat::Json => logs.json().init(),
            }
            let bench_job_types = args.bench_job_types;
            let config = args.into_config()?;
            raise_open_file_limit();
            let mut runtime = tokio::runtime::Builder::new_multi_thread();
            if config.workers > 0 {
                runtime.worker_threads(config.workers);
            }
            runtime
                .enable_all()
                .build()
                .context("starting the runtime")?
                .block_on(serve(config, bench_job_types))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Every session holds a descriptor, and distributions start processes with a soft limit of
/// 1,024 (below the hard limit): raise the soft limit to the hard one, as brokers do, so the
/// broker's session limits, not the kernel's, decide how many clients it takes.
fn raise_open_file_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        if let Err(error) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!(%error, "could not raise the open-file limit");
        }
    }
    let limit = getrlimit(Resource::Nofile).current;
    tracing::info!(
        open_files = limit.map_or_else(|| "unlimited".to_owned(), |n| n.to_string()),
        "open-file limit"
    );
}

/// Runs the server; `bench_job_types` adds the bench-only `noop` job type.
async fn serve(config: Config, bench_job_types: bool) -> anyhow::Result<()> {
    let import_dir = config.import_dir();
    std::fs::create_dir_all(&import_dir)
        .with_context(|| format!("creating the import directory {}", import_dir.display()))?;
    let uploads = config.uploads_dir();
    let reconcile =
        stompede::processors::Reconcile::new(&import_dir, config.reconcile_memory_budget)
            .with_uploads(&uploads);
    let ocr = stompede::processors::Ocr::new(&import_dir, config.ocr_tesseract.clone())
        .await
        .with_uploads(&uploads)
        .with_memory_budget(config.ocr_memory_budget);
    if ocr.is_available() {
        tracing::info!(tesseract = %ocr.status(), "OCR available");
    } else {
        tracing::warn!("OCR {}: ocr jobs are refused", ocr.status());
    }
    let mut extract = stompede::processors::Extract::new(&import_dir)
        .with_uploads(&uploads)
        .with_memory_budget(config.extract_memory_budget);
    if let Some(url) = &config.extract_llm_url {
        let model = config
            .extract_llm_model
            .clone()
            .context("extract-llm-url is set without extract-llm-model: name the model to ask")?;
        extract = extract
            .with_chat_backend(url.clone(), model, config.extract_llm_key.clone())
            .map_err(anyhow::Error::msg)?;
        tracing::info!(%url, "extract jobs ask a chat-completions endpoint after their rules");
    }
    let mut builder = BrokerBuilder::new(config);
    if bench_job_types {
        tracing::warn!("--bench-job-types: the noop job type is registered (benchmarks only)");
        builder = builder.job_type("noop", stompede::jobs::Noop);
    }
    let server = builder
        .job_type("demo", stompede::jobs::Demo::default())
        .job_type("reconcile", reconcile)
        .job_type("ocr", ocr)
        .job_type("extract", extract)
        .start()
        .await?;
    // Before the listening line: a SIGHUP sent as soon as the server says it listens must find
    // its handler (SIGHUP's default action ends the process).
    let signals = Signals::install(server.has_tls())?;
    // One machine-readable line on stdout, so scripts and tests find the ports.
    println!("{}", server.listening_line());
    tracing::info!(
        stomp = ?server.stomp_addr(),
        http = ?server.http_addr(),
        stomps = ?server.stomps_addr(),
        https = ?server.https_addr(),
        data_dir = %server.config().data_dir.display(),
        open_mode = server.config().users.is_empty(),
        "stompede listening"
    );
    signals.wait(&server).await?;
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(())
}

/// `stompede passwd NAME`: `NAME:$argon2id$...` for the users file.
fn passwd(name: &str) -> anyhow::Result<ExitCode> {
    use std::io::{BufRead, IsTerminal};
    anyhow::ensure!(
        !name.is_empty() && !name.contains([':', '\n', '\r']),
        "a user name has no ':' and no line break"
    );
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("password for {name}: "))?;
        let again = rpassword::prompt_password("again: ")?;
        anyhow::ensure!(first == again, "the two passwords differ");
        first
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    };
    anyhow::ensure!(!password.is_empty(), "the password is empty");
    let hash = stompede::hash_password(&password).map_err(anyhow::Error::msg)?;
    println!("{name}:{hash}");
    Ok(ExitCode::SUCCESS)
}

/// The signals `stompede serve` handles: SIGINT and SIGTERM stop it; with a TLS listener,
/// SIGHUP reloads the certificate and key (only then: without TLS, SIGHUP keeps its default
/// meaning).
struct Signals {
    terminate: tokio::signal::unix::Signal,
    hangup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install(tls: bool) -> anyhow::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            terminate: signal(SignalKind::terminate()).context("SIGTERM handler")?,
            hangup: match tls {
                true => Some(signal(SignalKind::hangup()).context("SIGHUP handler")?),
                false => None,
            },
        })
    }

    /// Waits for SIGINT or SIGTERM, reloading the TLS certificate on each SIGHUP meanwhile.
    async fn wait(mut self, server: &stompede::Server) -> anyhow::Result<()> {
        loop {
            let hangup = async {
                match &mut self.hangup {
                    Some(hangup) => hangup.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                result = tokio::signal::ctrl_c() => return result.context("SIGINT handler"),
                _ = self.terminate.recv() => return Ok(()),
                Some(()) = hangup => match server.reload_tls() {
                    Ok(_) => tracing::info!("SIGHUP: TLS certificate reloaded"),
                    Err(error) => tracing::error!(
                        %error,
                        "SIGHUP: TLS certificate not reloaded; the one in force stays"
                    ),
                },
            }
        }
    }
}
