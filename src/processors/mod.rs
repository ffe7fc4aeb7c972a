//! Built-in job types (`reconcile`, `ocr`, `extract`). Each is a [`JobHandler`](crate::jobs::JobHandler) and knows nothing of
//! STOMP.

mod extract;
pub(crate) mod input;
pub mod memory;
pub(crate) mod ocr;
pub(crate) mod reconcile;

pub use extract::Extract;
pub use ocr::Ocr;
pub use reconcile::Reconcile;
