//! Built-in job types. Each is a [`JobHandler`](crate::jobs::handler::JobHandler) and knows
//! nothing of STOMP.

pub mod reconcile;
