//! Wiring: the listeners, the router and shutdown, for the binary and for embedding.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Authenticator;
use crate::broker::acl::Acl;
use crate::broker::app::{AppHandler, AppRoutes};
use crate::broker::Broker;
use crate::config::Config;
use crate::context::ServerContext;
use crate::jobs::handler::{JobHandler, JobTypes};
use crate::jobs::JobEngine;
use crate::local::LocalClient;
use crate::rate::TokenBucket;
use crate::store::jobs::JobStore;
use crate::store::Store;
use crate::transport;
use crate::uploads::Uploads;
use crate::Error;

/// Configures and starts a broker inside the caller's tokio runtime.
///
/// ```no_run
/// # async fn demo() -> Result<(), stompede::Error> {
/// let mut config = stompede::Config::default();
/// config.stomp = Some("127.0.0.1:0".parse().unwrap());
/// config.http = Some("127.0.0.1:0".parse().unwrap());
/// let server = stompede::BrokerBuilder::new(config).start().await?;
/// println!("STOMP on {:?}", server.stomp_addr());
/// server.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct BrokerBuilder {
    config: Config,
    apps: AppRoutes,
    job_types: JobTypes,
}

impl BrokerBuilder {
    /// A builder for `config`.
    pub fn new(config: Config) -> Self {
        BrokerBuilder {
            config,
            apps: AppRoutes::default(),
            job_types: JobTypes::default(),
        }
    }

    /// Registers a job type: SENDs to `/app/jobs` with `job-type:<name>` run on `handler`.
    pub fn job_type(mut self, name: &str, handler: impl JobHandler) -> Self {
        self.job_types.insert(name, Arc::new(handler));
        self
    }

    /// Registers a handler for SENDs to `prefix` (and below it), e.g. `/app/echo`.
    pub fn app_handler(mut self, prefix: &str, handler: impl AppHandler) -> Self {
        self.apps.insert(prefix, Arc::new(handler));
        self
    }

    /// Binds the listeners and starts serving.
    pub async fn start(self) -> Result<Server, Error> {
        let config = self.config.resolve()?;
        std::fs::create_dir_all(&config.data_dir).map_err(|source| Error::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let store = Store::open_with_cache(
            &config.data_dir.join("store"),
            config.durability,
            Duration::from_millis(config.flush_interval_ms),
            config.store_cache_mib,
        )?;
        let with_jobs = !self.job_types.names().is_empty();
        let broker = Broker::new(
            self.apps,
            Acl::new(config.acl.clone()),
            config.outbox_limits(),
            config.queue_policy(),
            Some(store.clone()),
            config.max_sessions_per_user,
        )?;
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let audit = crate::audit::Audit::open(&config.data_dir, config.audit_max_bytes).map_err(
            |source| Error::DataDir {
                path: config.data_dir.join("audit"),
                source,
            },
        )?;
        let stomp = match config.stomp {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let http = match config.http {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        // The certificate is read before the TLS listeners are bound: a missing or broken file
        // stops the start, naming the file.
        let tls = match config.tls_files() {
            Some((cert, key)) => Some(Arc::new(transport::tls::Tls::load(
                cert,
                key,
                Duration::from_millis(config.tls_handshake_timeout_ms),
            )?)),
            None => None,
        };
        let stomps = match config.stomps {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let https = match config.https {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let stomp_addr = stomp.as_ref().and_then(|l| l.local_addr().ok());
        let http_addr = http.as_ref().and_then(|l| l.local_addr().ok());
        let stomps_addr = stomps.as_ref().and_then(|l| l.local_addr().ok());
        let https_addr = https.as_ref().and_then(|l| l.local_addr().ok());
        // Bound before the job engine starts: a node's default name takes its port, and every
        // job it starts names it.
        let cluster_settings = cluster_settings(&config, stomp_addr.or(http_addr));
        // The link first: on a member that keeps its jobs in JetStream, the engine starts on
        // the shared store.
        let cluster = match cluster_settings.clone() {
            Some(settings) => {
                Some(crate::cluster::Cluster::start(settings, &broker, shutdown.clone()).await?)
            }
            None => None,
        };
        let jobs = if with_jobs {
            let shared = cluster
                .as_ref()
                .and_then(crate::cluster::Cluster::shared_jobs);
            let engine = JobEngine::start(
                JobStore::open(&store)?,
                self.job_types,
                broker.clone(),
                crate::jobs::JobsConfig {
                    audit: Some(audit.clone()),
                    node: cluster_settings.as_ref().map(|c| c.node.clone()),
                    ..config.jobs_config()
                },
                shared,
                shutdown.clone(),
                tracker.clone(),
            )?;
            engine.mount(&broker);
            Some(engine)
        } else {
            None
        };
        let uploads = Uploads::new(config.uploads_dir(), config.max_upload_bytes);
        uploads.mount(
            &broker,
            jobs.as_ref()
                .map(crate::jobs::JobEngine::downgrade)
                .unwrap_or_default(),
        );
        let tokens = crate::tokens::Tokens::open(&config.data_dir.join("api-token.key"))
            .map_err(|e| Error::TokenKey(e.to_string()))?;
        let auth = Authenticator::new(config.users.clone()).with_audit(audit.clone());
        let plain = auth.plain_text_users();
        if !plain.is_empty() {
            tracing::warn!(
                users = %plain.join(", "),
                "passwords stored in plain text; store argon2id hashes instead (stompede passwd NAME)"
            );
        }
        if auth.is_open() {
            tracing::info!(
                "open mode: any login is accepted (loopback only unless allow-anonymous)"
            );
        }
        let ctx = Arc::new(ServerContext {
            audit,
            jobs: jobs.clone(),
            cluster,
            uploads,
            http_requests: Default::default(),
            tokens,
            broker: broker.clone(),
            auth,
            rate: TokenBucket::new(config.max_connections_per_second),
            config,
            shutdown,
            tracker,
        });
        let mut listeners = vec![
            tokio::spawn(sweep_expired(broker.clone(), ctx.shutdown.clone())),
            tokio::spawn(expire_uploads(
                ctx.config.uploads_dir(),
                ctx.config.job_retention_ms,
                ctx.shutdown.clone(),
            )),
        ];
        // The plain and the TLS listeners of a kind share one accept loop: only the handshake
        // before the session differs.
        for (listener, tls) in [(stomp, None), (stomps, tls.clone())] {
            if let Some(listener) = listener {
                listeners.push(tokio::spawn(transport::tcp::serve(
                    listener,
                    ctx.clone(),
                    tls,
                )));
            }
        }
        if http.is_some() || https.is_some() {
            let app = router(ctx.clone());
            for (listener, tls) in [(http, None), (https, tls.clone())] {
                if let Some(listener) = listener {
                    listeners.push(tokio::spawn(transport::http::serve(
                        listener,
                        app.clone(),
                        ctx.clone(),
                        tls,
                    )));
                }
            }
        }
        Ok(Server {
            ctx,
            jobs,
            tls,
            stomp_addr,
            http_addr,
            stomps_addr,
            https_addr,
            listeners,
        })
    }
}

/// The cluster link's settings, when `cluster` names NATS servers; `port` (the STOMP or HTTP
/// one, once bound) names the node by default, beside the host name.
fn cluster_settings(
    config: &Config,
    port: Option<SocketAddr>,
) -> Option<crate::cluster::ClusterSettings> {
    if config.cluster.is_empty() {
        return None;
    }
    let node = config.node_name.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "localhost".into());
        match port {
            Some(addr) => format!("{host}:{}", addr.port()),
            None => host,
        }
    });
    Some(crate::cluster::ClusterSettings {
        servers: config.cluster.clone(),
        node,
        credentials_file: config.cluster_creds.clone(),
        user: config.cluster_user.clone(),
        password: config.cluster_password.clone(),
        token: config.cluster_token.clone(),
        ca_file: config.cluster_ca.clone(),
        outbound_capacity: config.cluster_outbound_capacity,
        subscription_capacity: config.cluster_subscription_capacity,
        interest_timeout: Duration::from_millis(config.cluster_interest_timeout_ms),
        connect_timeout: Duration::from_secs(5),
        heartbeat: Duration::from_millis(config.cluster_heartbeat_ms),
        queues: config.cluster_queues,
        replicas: config.cluster_replicas,
        ack_wait: Duration::from_millis(config.cluster_ack_wait_ms),
        durable_max_messages: config.max_queue_messages,
        durable_max_bytes: config.max_queue_bytes,
        jobs: config.cluster_jobs,
        job_lease: Duration::from_millis(config.cluster_job_lease_ms),
    })
}

/// Drops expired queue messages every second, so expired messages deep in an idle queue do
/// not hold memory until a consumer reaches them.
async fn sweep_expired(broker: Broker, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {
                broker.drop_expired();
            }
        }
    }
}

/// Removes uploads older than the job retention, once a minute, on the blocking pool.
async fn expire_uploads(dir: std::path::PathBuf, retention_ms: u64, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {
                let dir = dir.clone();
                let removed =
                    tokio::task::spawn_blocking(move || crate::uploads::expire(&dir, retention_ms))
                        .await;
                match removed {
                    Ok(Ok(0)) => {}
                    Ok(Ok(n)) => tracing::info!(uploads = n, "expired uploads removed"),
                    Ok(Err(error)) => tracing::warn!(%error, "expiring uploads"),
                    Err(error) => tracing::warn!(%error, "expiring uploads"),
                }
            }
        }
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}

/// Every HTTP route: WebSocket STOMP at `/ws`, SockJS STOMP at `sockjs-prefix`, `/health`,
/// `/metrics` and the `/api`.
pub fn router(ctx: Arc<ServerContext>) -> axum::Router {
    let mut router = transport::ws::router(ctx.clone());
    if let Some(prefix) = ctx.config.sockjs_prefix() {
        let service = Arc::new(transport::sockjs::stomp::StompService::new(ctx.clone()));
        let options = transport::sockjs::stomp::options(&ctx);
        router = router.merge(transport::sockjs::router(prefix, service, options));
    }
    router
        .merge(transport::admin::router(ctx.clone()))
        .merge(crate::http::router(ctx))
}

/// A running broker.
#[derive(Debug)]
pub struct Server {
    ctx: Arc<ServerContext>,
    jobs: Option<JobEngine>,
    /// The TLS listeners' certificate, when there are any.
    tls: Option<Arc<transport::tls::Tls>>,
    stomp_addr: Option<SocketAddr>,
    http_addr: Option<SocketAddr>,
    stomps_addr: Option<SocketAddr>,
    https_addr: Option<SocketAddr>,
    listeners: Vec<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// The server's shared state, for the fuzz targets' in-process sessions.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn context(&self) -> &Arc<ServerContext> {
        &self.ctx
    }

    /// The router, to publish from the embedding application.
    pub fn broker(&self) -> &Broker {
        &self.ctx.broker
    }

    /// The link to the other nodes, on a cluster member.
    pub fn cluster(&self) -> Option<&crate::cluster::Cluster> {
        self.ctx.cluster.as_ref()
    }

    /// The job engine, when job types are registered.
    pub fn jobs(&self) -> Option<&JobEngine> {
        self.jobs.as_ref()
    }

    /// An in-process client acting as `user`.
    pub fn local_client(&self, user: &str) -> LocalClient {
        LocalClient::new(self.ctx.broker.clone(), user)
    }

    /// The bound TCP STOMP address.
    pub fn stomp_addr(&self) -> Option<SocketAddr> {
        self.stomp_addr
    }

    /// The bound HTTP (WebSocket) address.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The bound STOMP over TLS address.
    pub fn stomps_addr(&self) -> Option<SocketAddr> {
        self.stomps_addr
    }

    /// The bound HTTPS (secure WebSocket) address.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https_addr
    }

    /// True when a TLS listener is configured (there is a certificate to reload).
    pub fn has_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Reads the TLS certificate and key files again (`stompede serve` does on SIGHUP): new
    /// connections get the new certificate, established sessions stay as they are. On error
    /// the certificate in force stays. `Ok(false)` when no TLS listener is configured.
    pub fn reload_tls(&self) -> Result<bool, crate::TlsError> {
        match &self.tls {
            Some(tls) => tls.reload().map(|()| true),
            None => Ok(false),
        }
    }

    /// Every HTTP route of the server (WebSocket STOMP at `/ws`, the API, the dashboard,
    /// `/health`, `/metrics`), to serve from an application's own axum server: start the
    /// broker with `http: None`, merge this router into the application's, and serve it with
    /// `into_make_service_with_connect_info::<SocketAddr>()` (sessions know their peer's
    /// address). See `examples/axum_app.rs`.
    pub fn http_router(&self) -> axum::Router {
        router(self.ctx.clone())
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.ctx.config
    }

    /// The listening addresses as one JSON line, for scripts and tests.
    pub fn listening_line(&self) -> String {
        serde_json::json!({
            "event": "listening",
            "stomp": self.stomp_addr.map(|a| a.to_string()),
            "http": self.http_addr.map(|a| a.to_string()),
            "ws": self.http_addr.map(|a| format!("ws://{a}/ws")),
            "stomps": self.stomps_addr.map(|a| a.to_string()),
            "https": self.https_addr.map(|a| a.to_string()),
            "wss": self.https_addr.map(|a| format!("wss://{a}/ws")),
            "node": self.ctx.cluster.as_ref().map(|c| c.node()),
            "workers": tokio::runtime::Handle::try_current()
                .ok()
                .map(|runtime| runtime.metrics().num_workers()),
        })
        .to_string()
    }

    /// Stops accepting, tells every session "server shutting down", and waits (bounded by
    /// `shutdown-timeout-ms`) for their last frames to be written, then for the store to be
    /// closed: once this returns, the data directory can be opened again, by this process or
    /// another.
    pub async fn shutdown(self) {
        let Server {
            ctx,
            jobs,
            listeners,
            ..
        } = self;
        // Before anything stops: the cluster's other nodes take this node's jobs over now.
        if let Some(jobs) = &jobs {
            let timeout = Duration::from_millis(ctx.config.shutdown_timeout_ms);
            if tokio::time::timeout(timeout, jobs.hand_back_to_cluster())
                .await
                .is_err()
            {
                tracing::warn!("jobs not handed back to the cluster within the shutdown timeout");
            }
        }
        ctx.shutdown.cancel();
        for listener in listeners {
            let _ = listener.await;
        }
        let farewell = crate::session::error_frame("server shutting down", "", None);
        ctx.broker.close_all_sessions(&farewell);
        ctx.tracker.close();
        let timeout = Duration::from_millis(ctx.config.shutdown_timeout_ms);
        if tokio::time::timeout(timeout, ctx.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                sessions = ctx.broker.session_count(),
                "sessions still open after the shutdown timeout"
            );
        }
        let Some(store) = ctx.broker.store().cloned() else {
            return;
        };
        if let Err(error) = store.flush().await {
            tracing::error!(%error, "final store flush failed");
        }
        // The tasks' last handles go a moment after they end (a job step on the blocking
        // pool, a flush under way); a restart before then would find the store locked.
        let released = store.released();
        drop((store, jobs, ctx));
        if !released.wait(timeout).await {
            tracing::warn!("the store is still open after the shutdown timeout");
        }
    }
}
