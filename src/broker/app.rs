//! Application destinations (`/app/...`): SENDs handed to server-side handlers registered
//! through the library, never broadcast. The job engine registers `/app/jobs`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use bytestring::ByteString;
use stompede_protocol::Headers;

use super::Broker;

/// A SEND to an `/app/` destination.
#[derive(Debug, Clone)]
pub struct AppRequest {
    /// The sender's user name.
    pub user: Arc<str>,
    /// The sender's session id.
    pub session: u64,
    /// The sender's address (its IP), for the audit log.
    pub address: Arc<str>,
    /// The destination, e.g. `/app/jobs`.
    pub destination: ByteString,
    /// The SEND's headers.
    pub headers: Headers,
    /// The SEND's body.
    pub body: Bytes,
    /// The broker, to publish replies (for example to `/user/{user}/queue/...`).
    pub broker: Broker,
}

/// A handler refused a request: the session gets an ERROR with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AppError {
    /// The ERROR `message` header.
    pub message: String,
}

impl AppError {
    /// An error with a message.
    pub fn new(message: impl Into<String>) -> Self {
        AppError {
            message: message.into(),
        }
    }
}

/// How a handled request is answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppReply {
    /// Extra headers for the SEND's RECEIPT (e.g. `job-id`).
    pub receipt_headers: Vec<(String, String)>,
    /// The request was refused without ending the session: no RECEIPT is sent (the handler
    /// told the client why in a message of its own).
    pub refused: bool,
}

impl AppReply {
    /// Accepted; the RECEIPT carries `name:value`.
    pub fn with_receipt_header(name: impl Into<String>, value: impl Into<String>) -> Self {
        AppReply {
            receipt_headers: vec![(name.into(), value.into())],
            refused: false,
        }
    }

    /// Refused without closing the connection and without a RECEIPT.
    pub fn refused() -> Self {
        AppReply {
            receipt_headers: Vec::new(),
            refused: true,
        }
    }
}

impl From<()> for AppReply {
    fn from(_: ()) -> Self {
        AppReply::default()
    }
}

/// The future an [`AppHandler`] returns.
pub type AppFuture = Pin<Box<dyn Future<Output = Result<AppReply, AppError>> + Send>>;

/// Handles SENDs to one `/app/` prefix. Implemented for any `Fn(AppRequest) -> Future` whose
/// output is `Result<(), AppError>` or `Result<AppReply, AppError>`. The RECEIPT of the SEND
/// goes out after the future completes; an `Err` ends the session with an ERROR.
pub trait AppHandler: Send + Sync + 'static {
    /// Handles one request.
    fn handle(&self, request: AppRequest) -> AppFuture;
}

impl<F, Fut, R> AppHandler for F
where
    F: Fn(AppRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, AppError>> + Send + 'static,
    R: Into<AppReply> + 'static,
{
    fn handle(&self, request: AppRequest) -> AppFuture {
        let future = self(request);
        Box::pin(async move { future.await.map(Into::into) })
    }
}

/// Why a guard refused a subscription: the guard's own typed error.
pub type GuardRefusal = Box<dyn std::error::Error + Send + Sync>;

/// What a guard read ahead of deciding a SUBSCRIBE (see [`SubscribeGuard::prepare`]): its
/// own type, which only its `check` reads.
pub type Prepared = Box<dyn std::any::Any + Send + Sync>;

/// A guard's read ahead, awaited before the SUBSCRIBE is decided.
pub type PrepareFuture = Pin<Box<dyn Future<Output = Prepared> + Send>>;

/// Decides SUBSCRIBEs to destinations under a prefix (the job engine guards
/// `/topic/jobs/...`): may refuse, and may give messages to deliver before live ones (a
/// snapshot, a replay).
pub trait SubscribeGuard: Send + Sync + 'static {
    /// A lock its publisher holds while it delivers to the guarded destinations. The session
    /// holds it from [`SubscribeGuard::check`] until the subscription is registered, so that
    /// no message falls between the messages `check` gives (a replay) and the live ones.
    fn publication_lock(&self) -> Option<Arc<std::sync::Mutex<()>>> {
        None
    }

    /// What [`SubscribeGuard::check`] needs that only the network has (on a cluster member,
    /// a job another node holds), read before the subscription is decided: `check` itself
    /// runs holding the publication lock and cannot wait. None when there is nothing to
    /// read.
    fn prepare(
        &self,
        _user: &str,
        _destination: &str,
        _headers: &Headers,
    ) -> Option<PrepareFuture> {
        None
    }

    /// `Err(why)` refuses the subscription (its text goes to the subscriber); `Ok(messages)`
    /// admits it, the messages (headers and body) going first. `prepared` is what
    /// [`SubscribeGuard::prepare`] read, when it read something.
    fn check(
        &self,
        user: &str,
        destination: &str,
        headers: &Headers,
        prepared: Option<&Prepared>,
    ) -> Result<Vec<(Headers, Bytes)>, GuardRefusal>;
}

/// Handlers and subscription guards by destination prefix; the longest matching prefix wins.
#[derive(Clone, Default)]
pub struct AppRoutes {
    routes: Vec<(String, Arc<dyn AppHandler>)>,
    guards: Vec<(String, Arc<dyn SubscribeGuard>)>,
}

impl std::fmt::Debug for AppRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.routes.iter().map(|(p, _)| p))
            .finish()
    }
}

impl AppRoutes {
    /// Registers `handler` for `prefix` (e.g. `/app/jobs`: it also gets `/app/jobs/...`).
    pub fn insert(&mut self, prefix: impl Into<String>, handler: Arc<dyn AppHandler>) {
        let prefix = prefix.into();
        self.routes.retain(|(p, _)| *p != prefix);
        self.routes.push((prefix, handler));
        self.routes.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    }

    /// The handler for `destination`.
    pub fn find(&self, destination: &str) -> Option<&Arc<dyn AppHandler>> {
        self.routes
            .iter()
            .find(|(prefix, _)| under(destination, prefix))
            .map(|(_, h)| h)
    }

    /// Registers a subscription guard for destinations under `prefix`.
    pub fn insert_guard(&mut self, prefix: impl Into<String>, guard: Arc<dyn SubscribeGuard>) {
        let prefix = prefix.into();
        self.guards.retain(|(p, _)| *p != prefix);
        self.guards.push((prefix, guard));
        self.guards.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    }

    /// The guard for `destination`.
    pub fn guard(&self, destination: &str) -> Option<&Arc<dyn SubscribeGuard>> {
        self.guards
            .iter()
            .find(|(prefix, _)| under(destination, prefix))
            .map(|(_, g)| g)
    }
}

/// `destination` is `prefix` or below it.
fn under(destination: &str, prefix: &str) -> bool {
    destination == prefix
        || destination
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}
