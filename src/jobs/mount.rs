//! How the engine plugs into the broker: SENDs under `/app/jobs` reach its service and
//! subscriptions under `/topic/jobs` pass its guard.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use stompede_protocol::Headers;

use super::{JobEngine, WeakJobEngine};
use crate::broker::app::{
    AppError, AppFuture, AppHandler, AppRequest, GuardRefusal, PrepareFuture, Prepared,
    SubscribeGuard,
};
use crate::broker::Broker;

impl JobEngine {
    /// Mounts the engine on `broker`, which it publishes through. The broker holds the engine
    /// weakly: the engine holds the broker, and a strong pair would keep both alive forever.
    pub(crate) fn mount(&self, broker: &Broker) {
        let mounted = Arc::new(Mounted(self.downgrade()));
        broker.mount_app("/app/jobs", mounted.clone());
        broker.mount_guard("/topic/jobs", mounted);
    }
}

/// The engine as the broker sees it.
struct Mounted(WeakJobEngine);

impl Mounted {
    fn engine(&self) -> Result<JobEngine, &'static str> {
        self.0.upgrade().ok_or("the job engine is not running")
    }
}

impl AppHandler for Mounted {
    fn handle(&self, request: AppRequest) -> AppFuture {
        let engine = self.engine();
        Box::pin(async move {
            match engine {
                Ok(engine) => engine.handle(request).await,
                Err(reason) => Err(AppError::new(reason)),
            }
        })
    }
}

impl SubscribeGuard for Mounted {
    fn publication_lock(&self) -> Option<Arc<Mutex<()>>> {
        self.engine().ok()?.publication_lock()
    }

    fn prepare(&self, user: &str, destination: &str, headers: &Headers) -> Option<PrepareFuture> {
        self.engine().ok()?.prepare(user, destination, headers)
    }

    fn check(
        &self,
        user: &str,
        destination: &str,
        headers: &Headers,
        prepared: Option<&Prepared>,
    ) -> Result<Vec<(Headers, Bytes)>, GuardRefusal> {
        self.engine()?.check(user, destination, headers, prepared)
    }
}
