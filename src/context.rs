//! What every connection task shares: the broker, the configuration, login checks, the
//! connection rate limit and shutdown. The server builds it (`server.rs`); sessions and
//! transports only read it, so they depend on this module and not on the server that wires them.

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Authenticator;
use crate::broker::Broker;
use crate::config::Config;
use crate::jobs::JobEngine;
use crate::rate::TokenBucket;
use crate::uploads::Uploads;

/// What every connection task shares.
pub struct ServerContext {
    /// The router.
    pub broker: Broker,
    /// The configuration in force.
    pub config: Config,
    /// Login checks.
    pub auth: Authenticator,
    /// The connection rate limit.
    pub(crate) rate: TokenBucket,
    /// Cancelled when the server stops accepting.
    pub shutdown: CancellationToken,
    /// Every connection task, so shutdown can wait for them.
    pub tracker: TaskTracker,
    /// The job engine, when job types are registered.
    pub jobs: Option<JobEngine>,
    /// The link to the other nodes, on a cluster member (`--cluster`).
    pub cluster: Option<crate::cluster::Cluster>,
    /// Who did what (`audit.rs`).
    pub audit: crate::audit::Audit,
    /// Uploaded files.
    pub uploads: Uploads,
    /// The HTTP API's bearer tokens.
    pub(crate) tokens: crate::tokens::Tokens,
    /// HTTP API requests answered, by route and status (for `/metrics`).
    pub(crate) http_requests: RequestCounts,
}

/// Requests answered, by route template and status. Bounded: routes are the API's own
/// templates, statuses three digits.
#[derive(Debug, Default)]
pub(crate) struct RequestCounts {
    // A std Mutex: one map update per request.
    counts: std::sync::Mutex<std::collections::BTreeMap<(&'static str, u16), u64>>,
}

impl RequestCounts {
    /// Counts one answer.
    pub(crate) fn record(&self, route: &'static str, status: u16) {
        *self
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((route, status))
            .or_default() += 1;
    }

    /// Every count so far.
    pub(crate) fn snapshot(&self) -> Vec<((&'static str, u16), u64)> {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect()
    }
}

impl std::fmt::Debug for ServerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerContext").finish_non_exhaustive()
    }
}
