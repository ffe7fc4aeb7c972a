//! # stompede
//!
//! A STOMP 1.0/1.1/1.2 message broker over WebSocket and TCP, with a durable job engine, built
//! to push live progress of long-running jobs to browsers.
//!
//! ## Where to start
//!
//! * [`BrokerBuilder`] configures ([`Config`]) and starts a server inside your tokio runtime;
//!   [`Server`] is the running handle (addresses, [`Broker`] figures, shutdown).
//! * [`LocalClient`] publishes and subscribes in process, held to the same rules as a STOMP
//!   client of the same user.
//! * [`jobs::JobHandler`] adds a job type: the engine plans it into chunks, runs them with
//!   retries, pause, resume and cancel, stores each result and checkpoint, and publishes
//!   progress on `/topic/jobs/<id>`. [`processors::Reconcile`] is the built-in CSV
//!   reconciliation.
//! * [`AppHandler`] answers SENDs to an `/app/...` prefix of your own.
//! * [`protocol`] is the STOMP codec (no I/O), usable on its own.
//! * [`cluster`] links nodes through NATS (`--cluster`): topics and user destinations reach
//!   every node; the broker sees it only as a federation behind its one door.
//!
//! ```no_run
//! # async fn demo() -> Result<(), stompede::Error> {
//! use stompede::{BrokerBuilder, Config};
//!
//! let server = BrokerBuilder::new(Config::default())
//!     .job_type("demo", stompede::jobs::Demo::default())
//!     .start()
//!     .await?;
//! let app = server.local_client("app");
//! let news = app.subscribe("/topic/news/**").expect("an open topic");
//! app.send("/topic/news/today", Default::default(), "hello").await.expect("delivered");
//! let message = news.next().await;
//! # drop(message);
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! ## How it fits together
//!
//! ```text
//! bytes ─► transport (TCP | WebSocket | SockJS) ─► protocol::Decoder ─► Frame
//!       ─► session (one task per connection) ─► Broker ─► topic fan-out | queue | /app handler
//!       ─► each subscriber's bounded outbox ─► its writer task ─► encoded once, shared ─► bytes
//!
//! SEND /app/jobs ─► job service ─► store commit (then RECEIPT) ─► scheduler ─► worker
//!       ─► chunk result + checkpoint + events in one store batch ─► MESSAGE on /topic/jobs/<id>
//!
//! cluster member: Broker ─► topic or user message ─► ordered outbound queue ─► NATS
//!       ─► other nodes' interest subscriptions ─► Broker::deliver_remote ─► their outboxes
//! ```
//!
//! The wire contract (destinations, headers, job events) is in `protocol/docs/`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod audit;
pub(crate) mod auth;
pub(crate) mod broker;
pub(crate) mod clock;
pub mod cluster;
pub mod config;
pub(crate) mod context;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub(crate) mod http;
pub mod jobs;
pub(crate) mod local;
pub mod processors;
pub(crate) mod rate;
pub(crate) mod server;
pub(crate) mod session;
pub(crate) mod store;
pub(crate) mod tokens;
pub(crate) mod transport;
/// SockJS, the protocol behind `new SockJS(url)`: the broker serves STOMP on it (at
/// `sockjs-prefix`), and [`sockjs::router`] serves any [`sockjs::Service`] of your own.
pub use transport::sockjs;
/// A WebSocket echo server on the broker's own WebSocket code, for conformance suites
/// (`examples/ws_echo.rs` serves it to the Autobahn test suite).
pub use transport::ws::echo as ws_echo;
pub(crate) mod uploads;

pub use auth::hash_password;
pub use broker::app::{AppError, AppHandler, AppReply, AppRequest};
pub use broker::message::Message;
pub use broker::metrics::Metrics;
pub use broker::queue::QueueStats;
pub use broker::{Broker, PublishError, SessionInfo, SubscribeError};
pub use config::Config;
pub use error::Error;
pub use local::{LocalClient, LocalSubscription};
pub use server::{BrokerBuilder, Server};
pub use stompede_protocol as protocol;
pub use transport::tls::{ring_provider as tls_provider, TlsError};
