//! Counters an operator reads to see the broker at work. Plain atomics: cheap on the hot path,
//! read by the metrics endpoint and the benchmarks.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// The broker's counters.
        #[derive(Debug, Default)]
        pub struct Metrics {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        impl Metrics {
            /// Every counter with its name, for export.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.load(Ordering::Relaxed)),)*]
            }
        }
    };
}

counters! {
    /// Connections accepted, all transports.
    connections_accepted,
    /// Connections refused by the connection rate limit.
    connections_rate_limited,
    /// Sessions that completed CONNECT.
    sessions_opened,
    /// Sessions closed, for any reason.
    sessions_closed,
    /// Frames received from clients.
    frames_received,
    /// Messages accepted from publishers (SEND and in-process).
    messages_published,
    /// MESSAGE frames handed to subscribers' outboxes.
    messages_delivered,
    /// Queue messages returned to their queue (NACK, disconnect, unsubscribe).
    messages_redelivered,
    /// Queue messages dropped because they expired.
    messages_expired,
    /// Queue messages moved to a dead-letter queue.
    messages_dead_lettered,
    /// Topic messages a durable subscription's queue refused (full): logged at warn level.
    durable_subscription_overflows,
    /// ERROR frames sent.
    errors_sent,
    /// Frames refused for breaking a protocol rule or a limit.
    protocol_errors,
    /// Failed logins.
    auth_failures,
    /// Sessions cut off because their heart-beats stopped.
    heartbeat_timeouts,
    /// WebSocket sessions cut off for sending nothing, not even a pong, after a ping
    /// (`ws-ping-interval-ms`, `ws-pong-timeout-ms`).
    ping_timeouts,
    /// Sessions cut off for sending a frame too slowly (`frame-timeout-ms`, `frame-min-rate`):
    /// slowloris clients.
    slow_frames,
    /// Publishes that had to wait for a full subscriber outbox (flow control at work).
    publishes_paced,
    /// Total time publishers spent waiting for room, in microseconds.
    publish_wait_micros,
    /// Subscribers disconnected for not reading (slow consumers).
    slow_consumers_disconnected,
    /// Connections whose kernel receive buffer was bounded once they were paced
    /// (`paced-receive-buffer`).
    receive_buffers_bounded,
    /// TLS handshakes that failed or timed out (`stomps`, `https`): plain-text clients on a
    /// TLS port, clients that do not trust the certificate, scanners.
    tls_handshakes_failed,
}

impl Metrics {
    /// Adds one to a counter.
    pub fn incr(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
