//! # stompede
//!
//! A STOMP 1.0/1.1/1.2 message broker over WebSocket and TCP, built to push live progress of
//! long-running jobs to browsers.
//!
//! ```text
//! bytes ─► transport (TCP | WebSocket) ─► protocol::Decoder ─► Frame
//!       ─► session (one task per connection) ─► Broker ─► topic fan-out | queue | /app handler
//!       ─► each subscriber's bounded Outbox ─► its writer task ─► encoded once, shared ─► bytes
//! ```
//!
//! * [`stompede_protocol`] is the codec (no I/O).
//! * [`broker`] routes: topics with `*`/`**` patterns, queues with acks and prefetch, Spring's
//!   `/user/...` destinations, `/app/...` handlers, and flow control through bounded outboxes.
//! * [`session`] runs one connection; [`transport`] adapts TCP and WebSocket to it.
//! * [`BrokerBuilder`] starts it all in the caller's runtime; [`LocalClient`] publishes and
//!   subscribes in process.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod auth;
pub mod broker;
pub(crate) mod clock;
pub mod config;
pub(crate) mod context;
mod error;
pub mod jobs;
pub mod local;
pub mod processors;
pub(crate) mod rate;
pub mod server;
pub mod session;
pub mod store;
pub mod transport;

pub use broker::app::{AppError, AppHandler, AppReply, AppRequest};
pub use broker::Broker;
pub use config::Config;
pub use error::Error;
pub use local::{LocalClient, LocalSubscription};
pub use server::{BrokerBuilder, Server};
pub use stompede_protocol as protocol;
