//! Built-in job types. Each is a [`JobHandler`](crate::jobs::JobHandler) and knows nothing of
//! STOMP.

mod input;
mod reconcile;

pub use reconcile::Reconcile;
