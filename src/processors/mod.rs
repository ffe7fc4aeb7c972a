//! Built-in job types. Each is a [`JobHandler`](crate::jobs::JobHandler) and knows nothing of
//! STOMP.

mod reconcile;

pub use reconcile::Reconcile;
