//! Built-in job types (`reconcile`, `ocr`). Each is a [`JobHandler`](crate::jobs::JobHandler) and knows nothing of
//! STOMP.

pub(crate) mod input;
pub(crate) mod ocr;
mod reconcile;

pub use ocr::Ocr;
pub use reconcile::Reconcile;
