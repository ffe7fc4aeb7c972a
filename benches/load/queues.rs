//! Where the messages wait: the kernel's socket queues on the way from the publishers to the
//! subscribers, sampled from `/proc/net/tcp` while the publishers run (`--queues`).
//!
//! End-to-end latency is stamped before the publisher's write, so it counts every buffer on the
//! way, the clients' own included. With the broker on loopback both ends of every connection
//! are visible here, which splits that latency into four kernel queues: the publisher's send
//! buffer, the broker's receive buffer for it, the broker's send buffer towards each
//! subscriber, and that subscriber's receive buffer. By Little's law the mean time a byte
//! spends in a queue is its mean length over its throughput; what the four leave of the mean
//! latency is spent inside the broker (its outboxes) and in the tool.
//!
//! A send queue counts the bytes its peer has not acknowledged yet. Unpaced, ACKs follow the
//! data closely; at a modest paced rate the peer may delay its ACK while the bytes already sit
//! in its receive queue, so there the queues overlap and their sum can exceed the mean latency.

use std::collections::HashSet;
use std::net::SocketAddr;

use serde_json::{json, Value};

use crate::report::Fields;

/// Bytes in the four queues at one instant (sums over the connections of each kind).
#[derive(Clone, Copy, Default, Debug, PartialEq)]
struct Snapshot {
    publisher_send: u64,
    broker_receive: u64,
    broker_send: u64,
    subscriber_receive: u64,
    /// Broker-side sockets seen (0 when the broker is not on this machine).
    broker_sockets: usize,
}

/// Samples the queues of one run's connections.
pub struct Sampler {
    broker_port: u16,
    /// `/proc/net/tcp` and/or `/proc/net/tcp6`. Reading one walks the kernel's whole
    /// connection table, so only the family the tool connected with is read, unless the
    /// broker's ends turn out to be in the other one (a JVM accepts IPv4 on IPv6 sockets).
    tables: Vec<&'static str>,
    publishers: HashSet<u16>,
    subscribers: HashSet<u16>,
    total: Snapshot,
    samples: u64,
}

impl Sampler {
    /// A sampler for the connections from these local ports to the broker's port.
    pub fn new(broker: SocketAddr, publishers: &[u16], subscribers: &[u16]) -> Sampler {
        Sampler {
            broker_port: broker.port(),
            tables: vec![if broker.is_ipv4() {
                "/proc/net/tcp"
            } else {
                "/proc/net/tcp6"
            }],
            publishers: publishers.iter().copied().collect(),
            subscribers: subscribers.iter().copied().collect(),
            total: Snapshot::default(),
            samples: 0,
        }
    }

    /// Reads the queues once and adds them to the running means. Without `/proc/net/tcp`
    /// (not Linux) nothing is recorded.
    pub fn sample(&mut self) {
        let Some(mut now) = self.read() else {
            return;
        };
        if self.samples == 0 && now.broker_sockets == 0 && self.tables == ["/proc/net/tcp"] {
            self.tables.push("/proc/net/tcp6");
            match self.read() {
                Some(again) => now = again,
                None => return,
            }
        }
        self.total.publisher_send += now.publisher_send;
        self.total.broker_receive += now.broker_receive;
        self.total.broker_send += now.broker_send;
        self.total.subscriber_receive += now.subscriber_receive;
        self.total.broker_sockets = self.total.broker_sockets.max(now.broker_sockets);
        self.samples += 1;
    }

    /// The queues now, from the tables this sampler reads; `None` when none can be read.
    fn read(&self) -> Option<Snapshot> {
        let mut now = Snapshot::default();
        let mut read = false;
        for table in &self.tables {
            if let Ok(text) = std::fs::read_to_string(table) {
                self.add(&text, &mut now);
                read = true;
            }
        }
        read.then_some(now)
    }

    fn add(&self, table: &str, into: &mut Snapshot) {
        for line in table.lines().skip(1) {
            let Some(entry) = Entry::parse(line) else {
                continue;
            };
            if entry.state != ESTABLISHED {
                continue;
            }
            if entry.local_port == self.broker_port {
                if self.publishers.contains(&entry.remote_port) {
                    into.broker_receive += entry.rx_queue;
                    into.broker_sockets += 1;
                } else if self.subscribers.contains(&entry.remote_port) {
                    into.broker_send += entry.tx_queue;
                    into.broker_sockets += 1;
                }
            } else if entry.remote_port == self.broker_port {
                if self.publishers.contains(&entry.local_port) {
                    into.publisher_send += entry.tx_queue;
                } else if self.subscribers.contains(&entry.local_port) {
                    into.subscriber_receive += entry.rx_queue;
                }
            }
        }
    }

    /// The mean time spent in each queue, in ms, given the bytes per second the publishers
    /// wrote (all together) and the subscribers read (all together); nothing without samples.
    pub fn fields(&self, published_bytes_per_s: f64, received_bytes_per_s: f64) -> Fields {
        let mut f = Fields::new();
        if self.samples == 0 {
            return f;
        }
        let mean = |bytes: u64| bytes as f64 / self.samples as f64;
        let ms = |bytes: u64, rate: f64| -> Value {
            if rate > 0.0 {
                json!((mean(bytes) / rate * 1e5).round() / 100.0)
            } else {
                Value::Null
            }
        };
        let t = &self.total;
        let queues = [
            (
                "queued_publisher_send_ms",
                t.publisher_send,
                published_bytes_per_s,
                false,
            ),
            (
                "queued_broker_receive_ms",
                t.broker_receive,
                published_bytes_per_s,
                true,
            ),
            (
                "queued_broker_send_ms",
                t.broker_send,
                received_bytes_per_s,
                true,
            ),
            (
                "queued_subscriber_receive_ms",
                t.subscriber_receive,
                received_bytes_per_s,
                false,
            ),
        ];
        for (name, bytes, rate, broker_side) in queues {
            // The broker's side is only seen when it runs on this machine.
            if !broker_side || t.broker_sockets > 0 {
                f.insert(name.into(), ms(bytes, rate));
            }
        }
        f
    }
}

const ESTABLISHED: u8 = 1;

/// The fields of one `/proc/net/tcp` row that matter here.
#[derive(Debug, PartialEq)]
struct Entry {
    local_port: u16,
    remote_port: u16,
    state: u8,
    tx_queue: u64,
    rx_queue: u64,
}

impl Entry {
    /// `sl local_address rem_address st tx_queue:rx_queue ...`, addresses as `HEXIP:HEXPORT`.
    fn parse(line: &str) -> Option<Entry> {
        let mut fields = line.split_whitespace().skip(1);
        let port = |address: &str| u16::from_str_radix(address.rsplit_once(':')?.1, 16).ok();
        let local_port = port(fields.next()?)?;
        let remote_port = port(fields.next()?)?;
        let state = u8::from_str_radix(fields.next()?, 16).ok()?;
        let (tx, rx) = fields.next()?.split_once(':')?;
        Some(Entry {
            local_port,
            remote_port,
            state,
            tx_queue: u64::from_str_radix(tx, 16).ok()?,
            rx_queue: u64::from_str_radix(rx, 16).ok()?,
        })
    }
}

/// The one-line summary printed under a run's table row.
pub fn summary(fields: &Fields) -> Option<String> {
    let get = |name: &str| fields.get(name).and_then(Value::as_f64);
    let publisher = get("queued_publisher_send_ms")?;
    let subscriber = get("queued_subscriber_receive_ms")?;
    let broker = match (
        get("queued_broker_receive_ms"),
        get("queued_broker_send_ms"),
    ) {
        (Some(r), Some(s)) => format!(", broker receive {r:.1} ms, broker send {s:.1} ms"),
        _ => String::new(),
    };
    let mean =
        get("latency_mean_ms").map_or(String::new(), |m| format!(" (mean latency {m:.1} ms)"));
    Some(format!(
        "  mean time in kernel socket queues: publisher send {publisher:.1} ms{broker}, \
         subscriber receive {subscriber:.1} ms{mean}"
    ))
}
