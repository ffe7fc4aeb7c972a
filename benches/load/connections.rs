//! `connections`: K sessions, each CONNECT + SUBSCRIBE to its own topic, opened at a bounded rate
//! and kept open; then one message to each, which each must receive.

use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use clap::Args;
use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};

use crate::client::{Ack, Client, ClientOptions, Event};
use crate::conn::Target;
use crate::report::Fields;
use crate::stats::{body_template, now_ns, read_stamp, stamp};
use crate::{join, split, thread, wait_until, Control, Env};

/// `connections` flags.
#[derive(Args, Clone)]
pub struct ConnectionsArgs {
    /// Sessions to open and keep open.
    #[arg(long, default_value_t = 5_000)]
    pub sessions: usize,
    /// Sessions started per second at most.
    #[arg(long, default_value_t = 2_000.0)]
    pub connect_rate: f64,
    /// Sessions being set up at the same time at most.
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// Body size of the message each session receives.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Connect from this many loopback addresses, 127.0.0.1 to 127.0.0.N, in turn: one
    /// source address reaches one broker port from ~28,000 ephemeral ports only. (A port
    /// bound to a source address is unique for that address machine-wide, so processes
    /// using this at once share the ~28,000 of each address.)
    #[arg(long, default_value_t = 1)]
    pub source_addrs: u8,
    /// Seconds to keep every session open, idle, once all are subscribed, before the broker's
    /// memory is read and the messages are sent (so that runs started together overlap).
    #[arg(long, default_value_t = 0.5)]
    pub hold: f64,
}

/// The loopback address session `i` connects from, when spreading over `n` of them.
fn source_addr(i: usize, n: u8) -> Option<IpAddr> {
    (n > 1).then(|| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (i % usize::from(n)) as u8)))
}

#[allow(clippy::too_many_arguments)]
async fn session(
    target: Target,
    options: ClientOptions,
    prefix: Rc<str>,
    i: usize,
    slot: Instant,
    gate: Rc<Semaphore>,
    control: Arc<Control>,
    mut stop: watch::Receiver<bool>,
    timeout: Duration,
) -> Result<()> {
    tokio::time::sleep_until(slot.into()).await;
    let permit = gate.acquire().await?;
    let mut client = Client::connect(&target, &options, timeout).await?;
    client.subscribe(&format!("{prefix}{i}"), "s", Ack::Auto, Some("r"));
    client.conn.flush().await?;
    tokio::time::timeout(timeout, client.wait_receipt("r", |_| {}))
        .await
        .map_err(|_| anyhow!("no receipt for SUBSCRIBE in time"))??;
    drop(permit);
    Control::add(&control.ready, 1);
    let mut keepalive = tokio::time::interval(crate::fanout::KEEPALIVE);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = keepalive.tick() => {
                client.keepalive();
                client.conn.flush().await?;
            }
            event = client.next_event_or_read() => match event? {
                Some(Event::Message { body, .. }) => {
                    match read_stamp(&body) {
                        Some((0, seq, _)) if seq == i as u64 => Control::add(&control.delivered, 1),
                        _ => bail!("session {i}: unexpected message"),
                    }
                }
                Some(Event::Error(message)) => bail!("session {i}: ERROR {message}"),
                Some(_) => {}
                None => bail!("session {i}: the broker closed the connection"),
            },
            _ = stop.changed() => return Ok(()),
        }
    }
}

/// The `connections` scenario.
pub fn connections(env: &Env, args: &ConnectionsArgs, run: usize) -> Result<Fields> {
    if args.connect_rate <= 0.0 || args.concurrency == 0 {
        bail!("--connect-rate and --concurrency must be positive");
    }
    let k = args.sessions;
    if args.source_addrs > 1 {
        let ip = env.target.addr().ip();
        if !ip.is_loopback() || !ip.is_ipv4() {
            bail!("--source-addrs spreads over 127.0.0.x: the broker must be on IPv4 loopback, not {ip}");
        }
        if args.source_addrs == u8::MAX {
            bail!("--source-addrs: at most 254");
        }
    }
    // One descriptor per session here, and one in the broker (which, when spawned, inherited
    // this process's limit): fail now rather than with EMFILE half way.
    let files = crate::fd_limit();
    if (k as u64) + 64 > files {
        bail!(
            "{k} sessions need more than this process's limit of {files} open files (the hard \
             limit: `ulimit -Hn`); raise it (as root with CAP_SYS_RESOURCE, or via limits.conf) \
             or open fewer sessions"
        );
    }
    let prefix: String = format!("/topic/conn-{}-", env.run_tag);
    let control = Arc::new(Control::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut problems = Vec::new();
    let before = env.broker_usage();
    let t0 = Instant::now() + Duration::from_millis(50);
    let ranges = split(k, env.common.client_threads);
    let per_thread = (args.concurrency / ranges.len().max(1)).max(1);
    let mut groups = Vec::new();
    for ids in ranges {
        let target = env.receiver_target.clone();
        let options = env.receiver_options();
        let prefix = prefix.clone();
        let control = control.clone();
        let stop = stop_rx.clone();
        let timeout = env.remaining();
        let rate = args.connect_rate;
        let source_addrs = args.source_addrs;
        groups.push(thread("sessions", move || async move {
            let prefix: Rc<str> = prefix.into();
            let gate = Rc::new(Semaphore::new(per_thread));
            let handles: Vec<_> = ids
                .map(|i| {
                    let slot = t0 + Duration::from_secs_f64(i as f64 / rate);
                    let mut options = options.clone();
                    options.conn.source = source_addr(i, source_addrs);
                    let session = session(
                        target.clone(),
                        options,
                        prefix.clone(),
                        i,
                        slot,
                        gate.clone(),
                        control.clone(),
                        stop.clone(),
                        timeout,
                    );
                    // A failure counts at once (the main thread waits for ready + failed).
                    let control = control.clone();
                    tokio::task::spawn_local(async move {
                        if let Err(e) = session.await {
                            control.fail(&e);
                        }
                    })
                })
                .collect();
            for handle in handles {
                if let Err(e) = handle.await {
                    control.fail(&anyhow!(e));
                }
            }
            Ok(())
        })?);
    }
    let all_in = wait_until(
        env,
        || Control::get(&control.ready) + Control::get(&control.failed) >= k as u64,
        || false,
    );
    let connected_at = Instant::now();
    let ready = Control::get(&control.ready);
    let failed = Control::get(&control.failed);
    if !all_in {
        problems.push(format!("timed out with {ready} of {k} sessions subscribed"));
    }
    // Let the broker settle before reading its memory.
    std::thread::sleep(Duration::from_secs_f64(args.hold.max(0.0)));
    let after = env.broker_usage();
    let secs = connected_at
        .saturating_duration_since(t0)
        .as_secs_f64()
        .max(1e-9);

    // One message to each session's topic, one receipt at the end.
    let mut published = false;
    if all_in && ready > 0 {
        let target = env.target.clone();
        let options: ClientOptions = env.client.clone();
        let prefix = prefix.clone();
        let size = args.size;
        let timeout = env.remaining();
        let publisher = thread("publisher", move || async move {
            let mut client = Client::connect(&target, &options, timeout).await?;
            let mut body = body_template(size)?;
            for i in 0..k {
                stamp(&mut body, 0, i as u64, now_ns());
                let receipt = (i + 1 == k).then_some("published");
                client.publish(&format!("{prefix}{i}"), &body, &[], receipt);
                if client.conn.pending() >= 64 * 1024 {
                    client.conn.flush().await?;
                }
            }
            client.conn.flush().await?;
            client.wait_receipt("published", |_| {}).await?;
            Ok(())
        })?;
        let drain = Duration::from_secs_f64(env.common.drain_timeout);
        let mut done_at = None;
        loop {
            if Control::get(&control.delivered) >= ready {
                break;
            }
            if publisher.is_finished() {
                let at = *done_at.get_or_insert_with(Instant::now);
                if at.elapsed() >= drain {
                    break;
                }
            }
            if env.timed_out() {
                problems.push(format!("timed out after {} s", env.common.timeout));
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        match join(publisher) {
            Ok(()) => published = true,
            Err(e) => problems.push(format!("publisher: {e:#}")),
        }
    }
    let received = Control::get(&control.delivered);
    stop_tx.send(true)?;
    // Sessions that already failed have ended; the rest end on `stop`.
    let _ = wait_until(env, || groups.iter().all(|g| g.is_finished()), || false);
    for group in groups {
        if let Err(e) = join(group) {
            problems.push(format!("{e:#}"));
        }
    }
    if let Some(error) = control.first_error() {
        problems.push(format!(
            "{} session(s) failed; first: {error}",
            Control::get(&control.failed)
        ));
    }
    let lost = ready.saturating_sub(received);
    if lost > 0 {
        problems.push(format!("{lost} sessions did not get their message"));
    }
    if !published && problems.is_empty() {
        problems.push("nothing was published".into());
    }
    let mut f = env.base_fields("connections", run);
    f.insert("sessions".into(), k.into());
    f.insert("connect_rate".into(), args.connect_rate.into());
    f.insert("concurrency".into(), args.concurrency.into());
    f.insert("source_addrs".into(), args.source_addrs.into());
    f.insert("hold_s".into(), args.hold.into());
    f.insert("fd_limit".into(), files.into());
    f.insert("ready".into(), ready.into());
    f.insert("failed".into(), failed.into());
    f.insert("connect_s".into(), secs.into());
    f.insert(
        "sessions_per_s".into(),
        (ready as f64 / secs).round().into(),
    );
    let mib = |k: Option<u64>| k.map_or(Value::Null, |k| json!(k as f64 / 1024.0));
    f.insert("broker_rss_mib_before".into(), mib(before.rss_kib));
    f.insert("broker_rss_mib_after".into(), mib(after.rss_kib));
    if let (Some(b), Some(a)) = (before.rss_kib, after.rss_kib) {
        if ready > 0 {
            f.insert(
                "broker_kib_per_session".into(),
                (a.saturating_sub(b) as f64 / ready as f64).into(),
            );
        }
    }
    f.insert("received".into(), received.into());
    f.insert("lost".into(), lost.into());
    f.insert("ok".into(), problems.is_empty().into());
    f.insert("problems".into(), json!(problems));
    Ok(f)
}
