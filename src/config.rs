//! The broker's configuration: every tunable with its default, readable from a TOML file (keys
//! in kebab-case, as the command-line flags).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use stompede_protocol::Limits;

pub use crate::broker::acl::AclRule;
use crate::broker::outbox::OutboxLimits;
use crate::broker::queues::QueuePolicy;
pub use crate::store::Durability;

/// The receive buffer a connection keeps once flow control has paced it (the default of
/// `paced-receive-buffer`).
///
/// A paced publisher's session stops reading while its subscribers catch up, and the kernel
/// keeps accepting its bytes into a receive buffer autotuned to several MiB: tens of
/// milliseconds of its messages that the broker holds where flow control cannot see them
/// (BENCHMARKS.md, flow control). Bounding it for every connection would slow every large
/// upload over a long round trip, since the buffer is also the TCP window; bounding it once a
/// connection has been paced costs only connections that publish faster than their
/// subscribers take, which that pace limits anyway. Linux doubles the figure for its own
/// bookkeeping: 64 KiB leaves a window of about 64 KiB, a few milliseconds of a flood.
pub const PACED_RECEIVE_BUFFER: usize = 64 * 1024;

/// Everything `stompede serve` and the embedded broker can be told.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    /// Where durable state lives.
    pub data_dir: PathBuf,
    /// Plain TCP STOMP listener; `None` disables it.
    pub stomp: Option<SocketAddr>,
    /// HTTP listener (WebSocket STOMP at `/ws`); `None` disables it.
    pub http: Option<SocketAddr>,
    /// STOMP over TLS listener (needs `tls-cert` and `tls-key`); `None` (the default) disables
    /// it.
    pub stomps: Option<SocketAddr>,
    /// HTTPS listener: the HTTP listener's routes over TLS (`wss://HOST/ws`, SockJS, the API,
    /// the dashboard); needs `tls-cert` and `tls-key`. `None` (the default) disables it.
    pub https: Option<SocketAddr>,
    /// The TLS listeners' certificate chain, PEM, leaf first; read again on SIGHUP.
    pub tls_cert: Option<PathBuf>,
    /// The TLS listeners' private key (PKCS#8, PKCS#1 or SEC1), PEM; read again on SIGHUP.
    pub tls_key: Option<PathBuf>,
    /// Time a new TLS connection has to complete its handshake, in ms.
    pub tls_handshake_timeout_ms: u64,
    /// Users and their passwords. Empty: open mode (any login accepted), loopback only.
    pub users: BTreeMap<String, String>,
    /// A file of `name:password` lines, merged into `users`.
    pub users_file: Option<PathBuf>,
    /// Allow open mode on a non-loopback address.
    pub allow_anonymous: bool,
    /// Authorisation rules, first match wins; see [`AclRule`].
    pub acl: Vec<AclRule>,
    /// Interval the server offers to send heart-beats at, in ms (0: never).
    pub heartbeat_send_ms: u64,
    /// Interval the server wants heart-beats from clients at, in ms (0: none needed).
    pub heartbeat_receive_ms: u64,
    /// A client silent for the negotiated interval times this factor is disconnected.
    pub heartbeat_tolerance: f64,
    /// Longest command line.
    pub max_command_len: usize,
    /// Most header lines per frame.
    pub max_headers: usize,
    /// Longest header line.
    pub max_header_line_len: usize,
    /// Largest frame body (default 16 MiB).
    pub max_body_len: usize,
    /// Most subscriptions one session may hold.
    pub max_subscriptions_per_session: usize,
    /// Most concurrent sessions one user may hold.
    pub max_sessions_per_user: usize,
    /// New connections accepted per second, all transports together (a token bucket with a
    /// burst of one second's worth).
    pub max_connections_per_second: u32,
    /// Most frames buffered in one transaction.
    pub max_transaction_frames: usize,
    /// Outbox high-water mark, in messages.
    pub outbox_high_water_messages: usize,
    /// Outbox high-water mark, in bytes.
    pub outbox_high_water_bytes: usize,
    /// How long a subscriber may stay above its outbox mark before it is cut off, in ms.
    pub slow_consumer_grace_ms: u64,
    /// Bytes all outboxes together may hold; above it every publisher waits (default 1 GiB).
    pub outbox_memory_cap: usize,
    /// The kernel receive buffer (`SO_RCVBUF`) of every accepted connection, in bytes; 0 (the
    /// default) leaves it to the kernel's autotuning. See `transport/socket.rs`.
    pub tcp_receive_buffer: usize,
    /// The kernel receive buffer (`SO_RCVBUF`) a connection keeps once flow control has
    /// paced it, in bytes; 0 leaves it as it was. See `transport/socket.rs`.
    pub paced_receive_buffer: usize,
    /// Most messages waiting on one queue.
    pub max_queue_messages: usize,
    /// Most bytes waiting on one queue.
    pub max_queue_bytes: usize,
    /// Waiting messages above which a queue's producers are paced.
    pub queue_high_water_messages: usize,
    /// Deliveries without an ACK after which a queue message moves to the dead-letter queue
    /// (0: never).
    pub max_deliveries: u32,
    /// Suffix naming a queue's dead-letter queue.
    pub dead_letter_suffix: String,
    /// Default time to live of queue messages, in ms, by queue name or pattern.
    pub queue_ttl_ms: BTreeMap<String, u64>,
    /// `sync`: a RECEIPT for a persistent message or a receipted ACK means it is on disk.
    /// `periodic`: RECEIPTs go out at once; sled `fsync`s its log every `flush-interval-ms`
    /// and the store syncs the rest (large values' blob files) about once a second.
    pub durability: Durability,
    /// How often the store is flushed in the background, in ms.
    pub flush_interval_ms: u64,
    /// Memory the store may keep its pages in, in MiB (sled's page cache; pages beyond it are
    /// read back from disk when needed; default 8, see `store::DEFAULT_CACHE_MIB`).
    pub store_cache_mib: u64,
    /// Where `reconcile` jobs read their input files (default `<data-dir>/import`).
    pub import_dir: Option<PathBuf>,
    /// Memory a `reconcile` job may use, in bytes (default 512 MiB).
    pub reconcile_memory_budget: u64,
    /// Memory all running `extract` jobs together may use, in bytes (default
    /// [`Config::DEFAULT_EXTRACT_MEMORY_BUDGET`]).
    pub extract_memory_budget: u64,
    /// Memory all running `ocr` jobs together may use, their tesseract and poppler processes
    /// included, in bytes (default [`Config::DEFAULT_OCR_MEMORY_BUDGET`]).
    pub ocr_memory_budget: u64,
    /// The tesseract program `ocr` jobs run: a name on the PATH or a path.
    pub ocr_tesseract: String,
    /// The audit log (`<data-dir>/audit/audit.log`) is rotated past this many bytes.
    pub audit_max_bytes: u64,
    /// An OpenAI-compatible chat-completions URL that `extract` jobs ask to correct and
    /// complete their rules' reading (`.../v1/chat/completions`); none by default.
    pub extract_llm_url: Option<String>,
    /// The model named to that endpoint (required with the URL).
    pub extract_llm_model: Option<String>,
    /// The bearer key sent to that endpoint.
    pub extract_llm_key: Option<String>,
    /// Largest upload accepted by the HTTP API, in bytes (default 1 GiB).
    pub max_upload_bytes: u64,
    /// How long an HTTP API bearer token is valid, in ms (default 1 hour).
    pub api_token_ttl_ms: u64,
    /// Origins whose pages may call the HTTP API from a browser (CORS); none by default.
    pub allowed_origins: Vec<String>,
    /// Hosts a job's callback URL may name (`host` or `host:port`); none by default, so the
    /// server calls nobody.
    pub webhook_hosts: Vec<String>,
    /// The key webhooks are signed with (HMAC-SHA256), shared with the receivers.
    pub webhook_secret: Option<String>,
    /// Deliveries tried per webhook, the first included.
    pub webhook_max_attempts: u32,
    /// Delay before a webhook's second attempt, in ms (doubling per attempt, at most 10 min).
    pub webhook_retry_base_ms: u64,
    /// Jobs running at once (0: the number of cores).
    pub job_concurrency: usize,
    /// Threads `stompede serve` runs sessions on (0: one per core). An application that embeds
    /// the broker runs it on its own runtime, and this is not used.
    pub workers: usize,
    /// Users who may control and watch every job.
    pub job_admins: Vec<String>,
    /// First retry delay of a failed chunk, in ms (doubling per attempt).
    pub job_retry_backoff_ms: u64,
    /// Least time between two in-chunk progress updates of a job, in ms.
    pub job_progress_interval_ms: u64,
    /// Time a cancelled chunk has to stop by itself, in ms.
    pub job_cancel_grace_ms: u64,
    /// A job unfinished this long after submission fails with `expired`, in ms.
    pub job_deadline_ms: u64,
    /// Finished jobs are removed this long after they end, in ms.
    pub job_retention_ms: u64,
    /// Completed jobs kept at most: the oldest beyond it is removed as soon as a newer one's
    /// completion is stored.
    pub job_keep_completed: usize,
    /// Failed and cancelled jobs kept at most, enforced as for `job_keep_completed`.
    pub job_keep_failed: usize,
    /// Unfinished jobs one user may have.
    pub job_max_queued_per_user: usize,
    /// Job submissions per second per user.
    pub job_submissions_per_second: u32,
    /// Time a new connection has to send CONNECT, in ms.
    pub connect_timeout_ms: u64,
    /// Time a frame that has begun to arrive has to complete, in ms, plus one second for every
    /// `frame_min_rate` bytes of it received (0: no limit): a client trickling a frame in
    /// (slowloris) is cut off, a large frame on a slow link is not.
    pub frame_timeout_ms: u64,
    /// The least rate, in bytes per second, at which a frame must arrive once its first
    /// `frame_timeout_ms` are spent (0: the timeout alone).
    pub frame_min_rate: u64,
    /// Time an HTTP connection has to send a request's head, in ms: a silent connection, or
    /// one idle between keep-alive requests, is closed after it (0: no limit).
    pub http_header_timeout_ms: u64,
    /// Time shutdown waits for sessions to flush, in ms.
    pub shutdown_timeout_ms: u64,
    /// Accept a WebSocket message whose frame lacks the final NUL (hand-typed frames in wscat).
    pub lenient_websocket_frames: bool,
    /// A WebSocket peer silent for this long is sent a ping, in ms (0: never): dead peers are
    /// found without STOMP heart-beats.
    pub ws_ping_interval_ms: u64,
    /// A WebSocket peer that still sends nothing this long after the ping is disconnected, in
    /// ms.
    pub ws_pong_timeout_ms: u64,
    /// TCP keep-alive on every accepted connection (STOMP and HTTP listeners): the first probe
    /// after this many seconds of silence, then four more a fifth of it apart, so a peer gone
    /// without a word is released after about twice this (0: off).
    pub tcp_keepalive_secs: u64,
    /// Where SockJS STOMP is served on the HTTP port (`/sockjs`); `off` disables it.
    pub sockjs_prefix: String,
    /// SockJS heart-beat frame interval while a receiving request is open, in ms.
    pub sockjs_heartbeat_ms: u64,
    /// A SockJS session without a receiving request for this long is closed, in ms.
    pub sockjs_session_timeout_ms: u64,
    /// Bytes a SockJS streaming response carries before the client must open the next one.
    pub sockjs_response_limit: usize,
    /// Set a `JSESSIONID` cookie on SockJS answers (for load balancers' sticky sessions).
    pub sockjs_jsessionid: bool,
    /// SockJS sessions (over HTTP: WebSocket ones are counted as connections) the server
    /// keeps at once; a request that would open one more is answered 503.
    pub sockjs_max_sessions: usize,
    /// The sockjs-client script the SockJS iframe page loads (iframe transports); serve your
    /// own copy where pages cannot reach the public CDN.
    pub sockjs_client_url: String,
    /// NATS servers (`nats://host:port`) that make this node a cluster member; empty (the
    /// default): a single node, and nothing of NATS is touched.
    pub cluster: Vec<String>,
    /// This node's name in the cluster (default: the host name and the STOMP port).
    pub node_name: Option<String>,
    /// A NATS credentials file (`.creds`: JWT and NKey seed).
    pub cluster_creds: Option<PathBuf>,
    /// NATS user name (with `cluster-password`).
    pub cluster_user: Option<String>,
    /// NATS password.
    pub cluster_password: Option<String>,
    /// NATS authentication token.
    pub cluster_token: Option<String>,
    /// A CA certificate (PEM) to trust for TLS to NATS (TLS is then required).
    pub cluster_ca: Option<PathBuf>,
    /// Messages waiting to be published to NATS; past half of it publishers are paced, past
    /// all of it copies for other nodes are dropped (counted).
    pub cluster_outbound_capacity: usize,
    /// Messages from other nodes buffered per NATS subscription before NATS's slow-consumer
    /// rule drops them (counted).
    pub cluster_subscription_capacity: usize,
    /// How long a SUBSCRIBE's RECEIPT waits for its interest to reach NATS, in ms.
    pub cluster_interest_timeout_ms: u64,
    /// How often a member announces itself to the others, in ms; one that misses three
    /// heartbeats is gone from their view (`/cluster`, `/health`, `/metrics`).
    pub cluster_heartbeat_ms: u64,
    /// On a cluster member, keep `/queue/...` destinations in JetStream, shared by every node
    /// (the NATS servers must run JetStream); off keeps each node's queues its own, in sled.
    pub cluster_queues: bool,
    /// Copies JetStream keeps of the queue stream (1, 3 or 5; at most the NATS servers).
    pub cluster_replicas: usize,
    /// How long JetStream waits for a node to acknowledge (or renew) a queue message before it
    /// hands it to another node, in ms: how soon a dead node's messages move on. Held messages
    /// are renewed every third of it while their session lives.
    pub cluster_ack_wait_ms: u64,
    /// On a cluster member, keep the job store and queue in JetStream (a key-value bucket and
    /// two streams), so that any node may run any job and a dead node's jobs move on; off (the
    /// default) keeps each node's jobs its own, in sled.
    pub cluster_jobs: bool,
    /// How long a node's lease on a job it runs lasts without renewal, in ms: how soon another
    /// node takes a dead node's job over. Renewed every third of it.
    pub cluster_job_lease_ms: u64,
    /// Jobs this node takes from the cluster's job queue at once (with `cluster-jobs`);
    /// None: `job-concurrency`; 0: the node submits and serves jobs but runs none.
    pub cluster_job_slots: Option<usize>,
}

impl Default for Config {
    fn default() -> Self {
        let limits = Limits::default();
        let outbox = OutboxLimits::default();
        let queue = QueuePolicy::default();
        Config {
            data_dir: PathBuf::from("./stompede-data"),
            stomp: Some(SocketAddr::from(([127, 0, 0, 1], 61613))),
            http: Some(SocketAddr::from(([127, 0, 0, 1], 15674))),
            stomps: None,
            https: None,
            tls_cert: None,
            tls_key: None,
            tls_handshake_timeout_ms: 10_000,
            users: BTreeMap::new(),
            users_file: None,
            allow_anonymous: false,
            acl: Vec::new(),
            heartbeat_send_ms: 10_000,
            heartbeat_receive_ms: 10_000,
            heartbeat_tolerance: 2.0,
            max_command_len: limits.max_command_len,
            max_headers: limits.max_headers,
            max_header_line_len: limits.max_header_line_len,
            max_body_len: limits.max_body_len,
            max_subscriptions_per_session: 1_000,
            max_sessions_per_user: 10_000,
            max_connections_per_second: 10_000,
            max_transaction_frames: 10_000,
            outbox_high_water_messages: outbox.high_water_messages,
            outbox_high_water_bytes: outbox.high_water_bytes,
            slow_consumer_grace_ms: outbox.slow_consumer_grace.as_millis() as u64,
            outbox_memory_cap: outbox.memory_cap,
            tcp_receive_buffer: 0,
            paced_receive_buffer: PACED_RECEIVE_BUFFER,
            max_queue_messages: queue.max_messages,
            max_queue_bytes: queue.max_bytes,
            queue_high_water_messages: queue.high_water_messages,
            max_deliveries: queue.max_deliveries,
            dead_letter_suffix: queue.dead_letter_suffix,
            queue_ttl_ms: BTreeMap::new(),
            durability: Durability::Sync,
            flush_interval_ms: 200,
            store_cache_mib: crate::store::DEFAULT_CACHE_MIB,
            import_dir: None,
            reconcile_memory_budget: 512 * 1024 * 1024,
            extract_memory_budget: Config::DEFAULT_EXTRACT_MEMORY_BUDGET,
            ocr_memory_budget: Config::DEFAULT_OCR_MEMORY_BUDGET,
            ocr_tesseract: "tesseract".into(),
            audit_max_bytes: 64 * 1024 * 1024,
            extract_llm_url: None,
            extract_llm_model: None,
            extract_llm_key: None,
            max_upload_bytes: 1 << 30,
            allowed_origins: Vec::new(),
            webhook_hosts: Vec::new(),
            webhook_secret: None,
            webhook_max_attempts: 10,
            webhook_retry_base_ms: 1_000,
            api_token_ttl_ms: 3_600_000,
            job_concurrency: 0,
            workers: 0,
            job_admins: Vec::new(),
            job_retry_backoff_ms: 2_000,
            job_progress_interval_ms: 500,
            job_cancel_grace_ms: 5_000,
            job_deadline_ms: 24 * 3600 * 1000,
            job_retention_ms: 24 * 3600 * 1000,
            job_keep_completed: 1_000,
            job_keep_failed: 500,
            job_max_queued_per_user: 10_000,
            job_submissions_per_second: 1_000,
            connect_timeout_ms: 10_000,
            frame_timeout_ms: 20_000,
            frame_min_rate: 500,
            shutdown_timeout_ms: 5_000,
            http_header_timeout_ms: 30_000,
            lenient_websocket_frames: true,
            ws_ping_interval_ms: 30_000,
            ws_pong_timeout_ms: 10_000,
            tcp_keepalive_secs: 60,
            sockjs_prefix: "/sockjs".into(),
            sockjs_heartbeat_ms: 25_000,
            sockjs_session_timeout_ms: 5_000,
            sockjs_response_limit: 128 * 1024,
            sockjs_jsessionid: false,
            sockjs_max_sessions: 10_000,
            sockjs_client_url: crate::transport::sockjs::DEFAULT_CLIENT_URL.into(),
            cluster: Vec::new(),
            node_name: None,
            cluster_creds: None,
            cluster_user: None,
            cluster_password: None,
            cluster_token: None,
            cluster_ca: None,
            cluster_outbound_capacity: 65_536,
            cluster_subscription_capacity: 65_536,
            cluster_interest_timeout_ms: 5_000,
            cluster_heartbeat_ms: 1_000,
            cluster_queues: true,
            cluster_replicas: 1,
            cluster_ack_wait_ms: 30_000,
            cluster_jobs: false,
            cluster_job_lease_ms: 30_000,
            cluster_job_slots: None,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML file could not be read or parsed.
    #[error("config file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A `name:password` user spec is malformed.
    #[error("user {0:?}: expected name:password")]
    User(String),
    /// Open mode on a non-loopback address without `allow-anonymous`.
    #[error("refusing to listen on non-loopback address {0} without users: configure users (--user name:password) or pass --allow-anonymous")]
    AnonymousOnPublicAddress(SocketAddr),
    /// A value out of range.
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// The default `extract-memory-budget`: 512 MiB, room for one 5,000-page tender (it
    /// reserves about 425 MiB) or several shorter documents at once.
    pub const DEFAULT_EXTRACT_MEMORY_BUDGET: u64 = 512 * 1024 * 1024;

    /// The default `ocr-memory-budget`: 512 MiB, room for four dense A4 pages recognised at
    /// once at 300 dpi (each reserves about 106 MiB), more than the pages a 2- or 4-core
    /// machine recognises at once.
    pub const DEFAULT_OCR_MEMORY_BUDGET: u64 = 512 * 1024 * 1024;

    /// Reads a TOML file.
    pub fn from_toml_file(path: &std::path::Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::File {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }

    /// Parses `name:password` and adds the user.
    pub fn add_user_spec(&mut self, spec: &str) -> Result<(), ConfigError> {
        let (name, password) = spec
            .split_once(':')
            .filter(|(n, _)| !n.is_empty())
            .ok_or_else(|| ConfigError::User(spec.to_owned()))?;
        self.users.insert(name.to_owned(), password.to_owned());
        Ok(())
    }

    /// Loads `users-file` (if any) into `users` and checks the whole configuration.
    pub fn resolve(mut self) -> Result<Config, ConfigError> {
        if let Some(path) = self.users_file.clone() {
            let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::File {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            for line in text.lines().map(str::trim) {
                if !line.is_empty() && !line.starts_with('#') {
                    self.add_user_spec(line)?;
                }
            }
        }
        if self.users.is_empty() && !self.allow_anonymous {
            for addr in [self.stomp, self.http, self.stomps, self.https]
                .into_iter()
                .flatten()
            {
                if !addr.ip().is_loopback() {
                    return Err(ConfigError::AnonymousOnPublicAddress(addr));
                }
            }
        }
        if self.heartbeat_tolerance.is_nan() || self.heartbeat_tolerance < 1.0 {
            return Err(ConfigError::Invalid(
                "heartbeat-tolerance must be at least 1.0".into(),
            ));
        }
        if self.dead_letter_suffix.is_empty() {
            return Err(ConfigError::Invalid(
                "dead-letter-suffix must not be empty".into(),
            ));
        }
        if self.outbox_high_water_messages == 0 || self.outbox_high_water_bytes == 0 {
            return Err(ConfigError::Invalid(
                "outbox high-water marks must be positive".into(),
            ));
        }
        self.check_sockjs()?;
        self.check_tls()?;
        self.check_cluster()?;
        Ok(self)
    }

    /// Cluster options that cannot work together.
    fn check_cluster(&self) -> Result<(), ConfigError> {
        if self.cluster_user.is_some() != self.cluster_password.is_some() {
            return Err(ConfigError::Invalid(
                "cluster-user and cluster-password go together".into(),
            ));
        }
        // Held messages are renewed every third of the ack wait, from a loop that turns about
        // once a second: a shorter wait would hand held messages to other nodes.
        if !(1..=5).contains(&self.cluster_replicas) || self.cluster_ack_wait_ms < 3_000 {
            return Err(ConfigError::Invalid(
                "cluster-replicas must be 1 to 5, cluster-ack-wait-ms at least 3000".into(),
            ));
        }
        // Renewed every third of the lease: below a second, a busy machine's renewals would
        // come too late and hand live jobs to other nodes.
        if self.cluster_job_lease_ms < 1_000 {
            return Err(ConfigError::Invalid(
                "cluster-job-lease-ms must be at least 1000".into(),
            ));
        }
        if self.cluster_heartbeat_ms < 10 {
            return Err(ConfigError::Invalid(
                "cluster-heartbeat-ms must be at least 10".into(),
            ));
        }
        if self.cluster_outbound_capacity < 2 || self.cluster_subscription_capacity == 0 {
            return Err(ConfigError::Invalid(
                "cluster-outbound-capacity must be at least 2, cluster-subscription-capacity positive"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The certificate and key files, when a TLS listener (`stomps`, `https`) is configured.
    pub fn tls_files(&self) -> Option<(&std::path::Path, &std::path::Path)> {
        if self.stomps.is_none() && self.https.is_none() {
            return None;
        }
        Some((self.tls_cert.as_deref()?, self.tls_key.as_deref()?))
    }

    /// A TLS listener needs both files; a handshake needs time.
    fn check_tls(&self) -> Result<(), ConfigError> {
        let listeners = [("stomps", self.stomps), ("https", self.https)];
        if let Some((name, _)) = listeners.iter().find(|(_, addr)| addr.is_some()) {
            if self.tls_cert.is_none() || self.tls_key.is_none() {
                return Err(ConfigError::Invalid(format!(
                    "{name} is a TLS listener: give its certificate and key (tls-cert and \
                     tls-key, PEM files)"
                )));
            }
        }
        if self.tls_handshake_timeout_ms == 0 {
            return Err(ConfigError::Invalid(
                "tls-handshake-timeout-ms must be positive".into(),
            ));
        }
        Ok(())
    }

    /// The SockJS prefix in force; `None` when SockJS is off.
    pub fn sockjs_prefix(&self) -> Option<&str> {
        let prefix = self.sockjs_prefix.trim_end_matches('/');
        (!self.sockjs_prefix.eq_ignore_ascii_case("off")).then_some(prefix)
    }

    /// SockJS settings that cannot work: a prefix that is not a path of its own beside the
    /// server's other routes, zero timers or limits.
    fn check_sockjs(&self) -> Result<(), ConfigError> {
        if let Some(prefix) = self.sockjs_prefix() {
            let taken = ["/ws", "/api", "/health", "/metrics", "/ready", "/cluster"];
            let first = prefix.split('/').nth(1).unwrap_or("");
            if !prefix.starts_with('/')
                || prefix.len() < 2
                || prefix.contains("//")
                || !prefix
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/-_.~".contains(&b))
                || taken.contains(&format!("/{first}").as_str())
            {
                return Err(ConfigError::Invalid(format!(
                    "sockjs-prefix {prefix:?}: expected a path such as /sockjs, not one of \
                     {taken:?} nor below them, or off"
                )));
            }
        }
        if self.ws_ping_interval_ms > 0 && self.ws_pong_timeout_ms == 0 {
            return Err(ConfigError::Invalid(
                "ws-pong-timeout-ms must be positive while ws-ping-interval-ms is".into(),
            ));
        }
        if self.sockjs_heartbeat_ms == 0
            || self.sockjs_session_timeout_ms == 0
            || self.sockjs_response_limit == 0
            || self.sockjs_max_sessions == 0
        {
            return Err(ConfigError::Invalid(
                "sockjs-heartbeat-ms, sockjs-session-timeout-ms, sockjs-response-limit and \
                 sockjs-max-sessions must be positive"
                    .into(),
            ));
        }
        Ok(())
    }

    /// How long an unfinished frame may take: a fixed allowance and the least rate in bytes per
    /// second that extends it; `None` when frames may take any time.
    pub fn slow_frame_limit(&self) -> Option<(Duration, u64)> {
        (self.frame_timeout_ms > 0).then(|| {
            (
                Duration::from_millis(self.frame_timeout_ms),
                self.frame_min_rate,
            )
        })
    }

    /// When a silent WebSocket peer is pinged, and how long it then has to answer: `None`
    /// when pings are off.
    pub fn ws_keepalive(&self) -> Option<(Duration, Duration)> {
        (self.ws_ping_interval_ms > 0).then(|| {
            (
                Duration::from_millis(self.ws_ping_interval_ms),
                Duration::from_millis(self.ws_pong_timeout_ms),
            )
        })
    }

    /// The codec limits.
    pub fn frame_limits(&self) -> Limits {
        Limits {
            max_command_len: self.max_command_len,
            max_headers: self.max_headers,
            max_header_line_len: self.max_header_line_len,
            max_body_len: self.max_body_len,
        }
    }

    /// The outbox limits.
    pub fn outbox_limits(&self) -> OutboxLimits {
        OutboxLimits {
            high_water_messages: self.outbox_high_water_messages,
            high_water_bytes: self.outbox_high_water_bytes,
            slow_consumer_grace: Duration::from_millis(self.slow_consumer_grace_ms),
            memory_cap: self.outbox_memory_cap,
        }
    }

    /// Where the HTTP API keeps uploads (`<data-dir>/uploads`).
    pub fn uploads_dir(&self) -> PathBuf {
        self.data_dir.join("uploads")
    }

    /// Where reconciliation and OCR jobs read their files.
    pub fn import_dir(&self) -> PathBuf {
        self.import_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("import"))
    }

    /// The job engine settings.
    pub fn jobs_config(&self) -> crate::jobs::JobsConfig {
        let defaults = crate::jobs::JobsConfig::default();
        crate::jobs::JobsConfig {
            concurrency: if self.job_concurrency == 0 {
                defaults.concurrency
            } else {
                self.job_concurrency
            },
            max_queued_per_user: self.job_max_queued_per_user,
            submissions_per_second_per_user: self.job_submissions_per_second,
            progress_interval: Duration::from_millis(self.job_progress_interval_ms),
            cancel_grace: Duration::from_millis(self.job_cancel_grace_ms),
            deadline: Duration::from_millis(self.job_deadline_ms),
            retention: Duration::from_millis(self.job_retention_ms),
            keep_completed: self.job_keep_completed,
            keep_failed: self.job_keep_failed,
            retry_backoff: Duration::from_millis(self.job_retry_backoff_ms),
            admins: self.job_admins.clone(),
            results_dir: self.data_dir.join("results"),
            webhooks: crate::jobs::WebhookConfig {
                hosts: self.webhook_hosts.clone(),
                secret: self.webhook_secret.clone(),
                max_attempts: self.webhook_max_attempts.max(1),
                retry_base: Duration::from_millis(self.webhook_retry_base_ms),
                ..crate::jobs::WebhookConfig::default()
            },
            audit: None,
            // Named by the server wiring once the node's name is known (it may take the bound
            // port).
            node: None,
            cluster_slots: self
                .cluster_job_slots
                .unwrap_or(if self.job_concurrency == 0 {
                    defaults.concurrency
                } else {
                    self.job_concurrency
                }),
        }
    }

    /// The queue policy.
    pub fn queue_policy(&self) -> QueuePolicy {
        QueuePolicy {
            max_messages: self.max_queue_messages,
            high_water_messages: self.queue_high_water_messages,
            max_bytes: self.max_queue_bytes,
            max_deliveries: self.max_deliveries,
            dead_letter_suffix: self.dead_letter_suffix.clone(),
            ttl_ms: self
                .queue_ttl_ms
                .iter()
                .map(|(name, ttl)| (name.clone(), *ttl))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_listeners_come_from_toml_and_need_a_certificate_and_a_key() {
        let config: Config = toml::from_str(
            "stomps = \"127.0.0.1:61614\"\nhttps = \"127.0.0.1:15673\"\n\
             tls-cert = \"cert.pem\"\ntls-key = \"key.pem\"\ntls-handshake-timeout-ms = 500\n",
        )
        .expect("valid TOML");
        assert_eq!(
            config.stomps,
            Some(SocketAddr::from(([127, 0, 0, 1], 61614)))
        );
        assert_eq!(
            config.https,
            Some(SocketAddr::from(([127, 0, 0, 1], 15673)))
        );
        assert_eq!(config.tls_handshake_timeout_ms, 500);
        assert_eq!(
            config.tls_files(),
            Some((
                std::path::Path::new("cert.pem"),
                std::path::Path::new("key.pem")
            ))
        );
        assert!(config.clone().resolve().is_ok());
        let defaults = Config::default();
        assert_eq!(
            (defaults.stomps, defaults.https, defaults.tls_files()),
            (None, None, None)
        );
        let without_key = Config {
            tls_key: None,
            ..config.clone()
        };
        let error = without_key.resolve().unwrap_err().to_string();
        assert!(
            error.contains("stomps") && error.contains("tls-key"),
            "{error}"
        );
        // Open mode stays on loopback, TLS or not.
        let public = Config {
            https: Some(SocketAddr::from(([0, 0, 0, 0], 15673))),
            ..config
        };
        assert!(matches!(
            public.resolve(),
            Err(ConfigError::AnonymousOnPublicAddress(_))
        ));
    }

    #[test]
    fn sockjs_settings_come_from_toml_and_are_checked() {
        let config: Config = toml::from_str(
            "sockjs-prefix = \"/stomp/sockjs\"\nsockjs-heartbeat-ms = 1000\n\
             sockjs-session-timeout-ms = 200\nsockjs-response-limit = 4096\n\
             sockjs-jsessionid = true\nsockjs-max-sessions = 5\n",
        )
        .expect("valid TOML");
        assert_eq!(config.sockjs_prefix(), Some("/stomp/sockjs"));
        assert_eq!(
            (
                config.sockjs_heartbeat_ms,
                config.sockjs_session_timeout_ms,
                config.sockjs_response_limit,
                config.sockjs_jsessionid,
                config.sockjs_max_sessions
            ),
            (1000, 200, 4096, true, 5)
        );
        assert_eq!(Config::default().sockjs_max_sessions, 10_000);
        let none = Config {
            sockjs_max_sessions: 0,
            ..Config::default()
        };
        assert!(none.resolve().is_err());
        assert!(config.resolve().is_ok());
        let defaults = Config::default();
        assert_eq!(defaults.sockjs_prefix(), Some("/sockjs"));
        assert!(!defaults.sockjs_jsessionid);
        let off = Config {
            sockjs_prefix: "off".into(),
            ..Config::default()
        };
        assert_eq!(off.sockjs_prefix(), None);
        for bad in ["sockjs", "/", "/ws", "/api/sockjs", "/a b", "/a//b"] {
            let config = Config {
                sockjs_prefix: bad.into(),
                ..Config::default()
            };
            assert!(config.resolve().is_err(), "{bad}");
        }
        let zero = Config {
            sockjs_session_timeout_ms: 0,
            ..Config::default()
        };
        assert!(zero.resolve().is_err());
    }
}
