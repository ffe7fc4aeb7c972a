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

/// The future an [`AppHandler`] returns.
pub type AppFuture = Pin<Box<dyn Future<Output = Result<(), AppError>> + Send>>;

/// Handles SENDs to one `/app/` prefix. Implemented for any `Fn(AppRequest) -> Future`.
/// The RECEIPT of the SEND goes out after the future completes.
pub trait AppHandler: Send + Sync + 'static {
    /// Handles one request.
    fn handle(&self, request: AppRequest) -> AppFuture;
}

impl<F, Fut> AppHandler for F
where
    F: Fn(AppRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), AppError>> + Send + 'static,
{
    fn handle(&self, request: AppRequest) -> AppFuture {
        Box::pin(self(request))
    }
}

/// Handlers by destination prefix; the longest matching prefix wins.
#[derive(Clone, Default)]
pub struct AppRoutes {
    routes: Vec<(String, Arc<dyn AppHandler>)>,
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
            .find(|(prefix, _)| {
                destination == prefix
                    || destination
                        .strip_prefix(prefix.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            })
            .map(|(_, h)| h)
    }
}
