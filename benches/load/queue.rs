//! `queue`: producers and competing consumers on one queue, each message ACKed on its own
//! (`ack:client-individual`) under a prefetch window; nothing may be lost.

use anyhow::{bail, Result};
use clap::Args;
use serde_json::json;

use crate::client::{Ack, Proto};
use crate::fanout::{measure, Plan};
use crate::report::Fields;
use crate::stats::body_template;
use crate::Env;

/// `queue` flags.
#[derive(Args, Clone)]
pub struct QueueArgs {
    #[arg(long, default_value_t = 4)]
    pub producers: usize,
    #[arg(long, default_value_t = 4)]
    pub consumers: usize,
    /// Messages in all (split between the producers).
    #[arg(long, default_value_t = 200_000)]
    pub messages: u64,
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    /// Messages per second in all (0: unpaced).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Unacknowledged messages a consumer may hold (`prefetch-count`).
    #[arg(long, default_value_t = 100)]
    pub prefetch: u32,
    /// Producers wait while more than this many messages (all producers together) are
    /// published and not yet consumed: end-to-end credit, for brokers that refuse rather than
    /// pace producers when a queue is full (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub window: u64,
    /// Send with `persistent:true`.
    #[arg(long)]
    pub persistent: bool,
}

/// The `queue` scenario.
pub fn queue(env: &Env, args: &QueueArgs, run: usize) -> Result<Fields> {
    if env.common.proto != Proto::Stomp {
        bail!("the queue scenario needs STOMP (acks and prefetch)");
    }
    if args.producers == 0 || args.consumers == 0 {
        bail!("--producers and --consumers must be at least 1");
    }
    let mut headers = Vec::new();
    if args.persistent {
        headers.push(("persistent".to_owned(), "true".to_owned()));
    }
    let plan = Plan {
        subscribers: args.consumers,
        publishers: args.producers,
        per_publisher: args.messages / args.producers as u64,
        size: args.size,
        rate: args.rate,
        destination: format!("/queue/load-{}", env.run_tag),
        stuck: None,
        ack: Ack::ClientIndividual {
            prefetch: args.prefetch,
        },
        headers,
        window: args.window,
    };
    body_template(plan.size)?;
    let mut m = measure(env, plan)?;
    let mut f = env.base_fields("queue", run);
    f.insert("producers".into(), args.producers.into());
    f.insert("consumers".into(), args.consumers.into());
    f.insert("prefetch".into(), args.prefetch.into());
    f.insert("persistent".into(), args.persistent.into());
    f.insert("window".into(), args.window.into());
    m.fields.remove("subscribers");
    m.fields.remove("publishers");
    f.append(&mut m.fields);
    f.insert("ok".into(), m.problems.is_empty().into());
    f.insert("problems".into(), json!(m.problems));
    Ok(f)
}
