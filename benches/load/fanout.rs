//! `fanout` and `flow`: publishers on one topic, many subscribers that must each get every
//! message; in `flow` one more subscriber stops reading and should be cut off.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use clap::Args;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::client::{Ack, Client, ClientOptions, Event};
use crate::conn::Target;
use crate::queues::Sampler;
use crate::report::Fields;
use crate::stats::{body_template, latency_histogram, now_ns, record_latency, stamp, Tracker};
use crate::{join, split, thread, wait_until, Control, Env};

/// `fanout` flags.
#[derive(Args, Clone)]
pub struct FanoutArgs {
    /// Subscribers on the topic.
    #[arg(long, default_value_t = 100)]
    pub subscribers: usize,
    /// Publishers (the messages are split between them).
    #[arg(long, default_value_t = 1)]
    pub publishers: usize,
    /// Messages published in all; every subscriber must receive all of them.
    #[arg(long, default_value_t = 200_000)]
    pub messages: u64,
    /// Body size in bytes.
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    /// Published messages per second in all (0: as fast as the broker takes them).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
}

/// `flow` flags.
#[derive(Args, Clone)]
pub struct FlowArgs {
    /// Subscribers that keep reading.
    #[arg(long, default_value_t = 10)]
    pub subscribers: usize,
    #[arg(long, default_value_t = 1)]
    pub publishers: usize,
    #[arg(long, default_value_t = 100_000)]
    pub messages: u64,
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// SO_RCVBUF of the subscriber that stops reading.
    #[arg(long, default_value_t = 4096)]
    pub stuck_rcvbuf: u32,
}

/// A publish/subscribe plan.
#[derive(Clone)]
pub struct Plan {
    pub subscribers: usize,
    pub publishers: usize,
    pub per_publisher: u64,
    pub size: usize,
    pub rate: f64,
    pub destination: String,
    /// SO_RCVBUF of an extra subscriber that stops reading.
    pub stuck: Option<u32>,
    pub ack: Ack,
    pub headers: Vec<(String, String)>,
    /// Publishers wait while more than this many messages (all publishers together) are
    /// published and not yet received (0: no limit).
    pub window: u64,
}

struct SubResult {
    tracker: Tracker,
    last: Option<Instant>,
}

/// What the subscriber that stopped reading got once it read again.
pub struct StuckResult {
    received: u64,
    error: Option<String>,
    eof: bool,
}

struct GroupResult {
    histogram: Histogram<u64>,
    subs: Vec<SubResult>,
    stuck: Option<StuckResult>,
}

/// Everything a publish/subscribe run measured.
pub struct Measured {
    pub fields: Fields,
    /// (seconds since start, messages received so far, messages sent so far), every 100 ms.
    pub timeline: Vec<(f64, u64, u64)>,
    pub stuck: Option<StuckResult>,
    pub problems: Vec<String>,
}

/// How often a reader sends a keep-alive.
pub const KEEPALIVE: Duration = Duration::from_secs(10);

/// One receiving connection: subscribes, then counts until it has every message or is stopped.
#[allow(clippy::too_many_arguments)]
async fn subscriber(
    target: Target,
    options: ClientOptions,
    plan: Rc<Plan>,
    id: usize,
    control: Arc<Control>,
    mut stop: watch::Receiver<bool>,
    histogram: Rc<RefCell<Histogram<u64>>>,
    timeout: Duration,
) -> Result<SubResult> {
    let mut client = Client::connect(&target, &options, timeout).await?;
    control.note_port(client.conn.local_port(), false);
    let receipt = format!("sub-{id}");
    client.subscribe(
        &plan.destination,
        &format!("s{id}"),
        plan.ack,
        Some(&receipt),
    );
    client.conn.flush().await?;
    tokio::time::timeout(timeout, client.wait_receipt(&receipt, |_| {}))
        .await
        .map_err(|_| anyhow!("no receipt for SUBSCRIBE in time"))??;
    Control::add(&control.ready, 1);
    let expected = plan.per_publisher * plan.publishers as u64;
    let mut tracker = Tracker::new(plan.publishers, plan.per_publisher);
    let mut last = None;
    // Queue consumers stop on the shared count; fan-out subscribers when they have everything.
    let competing = matches!(plan.ack, Ack::ClientIndividual { .. });
    let mut keepalive = tokio::time::interval(KEEPALIVE);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let now = now_ns();
        let mut got = 0;
        {
            let mut histogram = histogram.borrow_mut();
            while let Some(event) = client.next_event()? {
                match event {
                    Event::Message { body, ack } => {
                        got += 1;
                        if let Some(ts) = tracker.record(&body) {
                            record_latency(&mut histogram, ts, now);
                        }
                        if competing {
                            match ack {
                                Some(id) => client.ack(&id),
                                None => bail!("MESSAGE without an ack header"),
                            }
                        }
                    }
                    Event::Error(message) => bail!("subscriber {id}: ERROR {message}"),
                    _ => {}
                }
            }
        }
        if got > 0 {
            Control::add(&control.delivered, got);
            last = Some(Instant::now());
        }
        if client.conn.pending() > 0 {
            client.conn.flush().await?;
        }
        if !competing && tracker.received - tracker.duplicates - tracker.invalid >= expected {
            break;
        }
        tokio::select! {
            more = client.conn.fill() => if !more? {
                bail!("subscriber {id}: the broker closed the connection");
            },
            _ = keepalive.tick() => client.keepalive(),
            _ = stop.changed() => break,
        }
    }
    Control::add(&control.received_bytes, client.conn.bytes_read);
    Ok(SubResult { tracker, last })
}

/// The subscriber that stops reading after its SUBSCRIBE is confirmed, until told to stop;
/// then it reads what is left, to the end of the stream or 3 quiet seconds.
async fn stuck(
    target: Target,
    options: ClientOptions,
    plan: Rc<Plan>,
    control: Arc<Control>,
    mut stop: watch::Receiver<bool>,
    timeout: Duration,
) -> Result<StuckResult> {
    let mut client = Client::connect(&target, &options, timeout).await?;
    client.subscribe(&plan.destination, "stuck", Ack::Auto, Some("stuck"));
    client.conn.flush().await?;
    tokio::time::timeout(timeout, client.wait_receipt("stuck", |_| {}))
        .await
        .map_err(|_| anyhow!("no receipt for SUBSCRIBE in time"))??;
    Control::add(&control.ready, 1);
    let _ = stop.changed().await;
    let mut result = StuckResult {
        received: 0,
        error: None,
        eof: false,
    };
    loop {
        loop {
            match client.next_event() {
                Ok(Some(Event::Message { .. })) => result.received += 1,
                Ok(Some(Event::Error(message))) => result.error = Some(message),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    result.error = Some(format!("{e:#}"));
                    result.eof = true;
                    return Ok(result);
                }
            }
        }
        match tokio::time::timeout(Duration::from_secs(3), client.conn.fill()).await {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) | Ok(Err(_)) => {
                result.eof = true;
                return Ok(result);
            }
            Err(_) => return Ok(result),
        }
    }
}

/// A group of receivers on one thread.
fn receivers(
    env: &Env,
    plan: &Arc<Plan>,
    ids: std::ops::Range<usize>,
    with_stuck: bool,
    control: &Arc<Control>,
    stop: &watch::Receiver<bool>,
) -> Result<std::thread::JoinHandle<Result<GroupResult>>> {
    let target = env.receiver_target.clone();
    let targets = ids
        .clone()
        .map(|id| env.receiver_target_for(id))
        .collect::<Result<Vec<_>>>()?;
    let options = env.receiver_options();
    let mut stuck_options = env.client.clone();
    stuck_options.conn.rcvbuf = plan.stuck;
    let plan = Plan::clone(plan);
    let control = control.clone();
    let stop = stop.clone();
    let timeout = env.remaining();
    thread("receivers", move || async move {
        let plan = Rc::new(plan);
        let histogram = Rc::new(RefCell::new(latency_histogram()?));
        let handles: Vec<_> = ids
            .zip(targets)
            .map(|(id, target)| {
                tokio::task::spawn_local(subscriber(
                    target,
                    options.clone(),
                    plan.clone(),
                    id,
                    control.clone(),
                    stop.clone(),
                    histogram.clone(),
                    timeout,
                ))
            })
            .collect();
        let stuck_handle = with_stuck.then(|| {
            tokio::task::spawn_local(stuck(
                target.clone(),
                stuck_options,
                plan.clone(),
                control.clone(),
                stop.clone(),
                timeout,
            ))
        });
        let mut subs = Vec::new();
        for handle in handles {
            match handle.await {
                Ok(Ok(sub)) => subs.push(sub),
                Ok(Err(e)) => control.fail(&e),
                Err(e) => control.fail(&anyhow!(e)),
            }
        }
        let mut stuck = None;
        if let Some(handle) = stuck_handle {
            match handle.await {
                Ok(Ok(s)) => stuck = Some(s),
                Ok(Err(e)) => control.fail(&e),
                Err(e) => control.fail(&anyhow!(e)),
            }
        }
        let histogram = histogram.borrow().clone();
        Ok(GroupResult {
            histogram,
            subs,
            stuck,
        })
    })
}

/// How the publishers of a paced run (`--rate`) line up in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Pacing {
    /// Evenly interleaved, as independent publishers would be: with P publishers and R
    /// messages per second in all, one message every 1/R s, from each publisher in turn.
    Spread,
    /// Each publisher on its own schedule from the same start, on tokio's 1 ms timer: at
    /// 1,000 msgs/s each, all P send in the same tick, a burst of P messages every
    /// millisecond (the worst case for latency).
    Aligned,
}

impl Pacing {
    /// The name used in the results.
    pub fn name(self) -> &'static str {
        match self {
            Pacing::Spread => "spread",
            Pacing::Aligned => "aligned",
        }
    }
}

/// What every publisher sends: the plan's destination and headers, and a body to stamp.
struct Outgoing<'a> {
    plan: &'a Plan,
    headers: Vec<(&'a str, &'a str)>,
    body: Vec<u8>,
}

impl<'a> Outgoing<'a> {
    fn new(plan: &'a Plan) -> Result<Self> {
        Ok(Outgoing {
            plan,
            headers: plan
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect(),
            body: body_template(plan.size)?,
        })
    }

    /// Stamps message `seq` of `publisher` with the time now and queues it on `client`; the
    /// last message of each publisher asks for a receipt.
    fn publish(&mut self, client: &mut Client, publisher: u64, seq: u64) {
        stamp(&mut self.body, publisher as u32, seq, now_ns());
        let receipt = (seq + 1 == self.plan.per_publisher).then_some("published");
        client.publish(&self.plan.destination, &self.body, &self.headers, receipt);
    }
}

/// Writes what the clients have queued and counts `unsent` messages as sent.
async fn flush(clients: &mut [Client], control: &Control, unsent: &mut u64) -> Result<()> {
    for client in clients {
        client.conn.flush().await?;
    }
    Control::add(&control.sent, std::mem::take(unsent));
    Ok(())
}

/// End-to-end credit: waits while more than the plan's window is published and not yet
/// received.
async fn wait_for_credit(
    clients: &mut [Client],
    plan: &Plan,
    control: &Control,
    unsent: &mut u64,
) -> Result<()> {
    loop {
        let sent = Control::get(&control.sent) + *unsent;
        if sent.saturating_sub(Control::get(&control.delivered)) <= plan.window {
            return Ok(());
        }
        flush(clients, control, unsent).await?;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Sleeps until `due`, to within the OS's timer slack rather than tokio's 1 ms ticks: the
/// last stretch blocks the publishers' thread, which has nothing else to do meanwhile.
async fn sleep_precisely(due: Instant) {
    const COARSE_MARGIN: Duration = Duration::from_millis(2);
    if due.saturating_duration_since(Instant::now()) > COARSE_MARGIN {
        tokio::time::sleep_until((due - COARSE_MARGIN).into()).await;
    }
    let left = due.saturating_duration_since(Instant::now());
    if !left.is_zero() {
        std::thread::sleep(left);
    }
}

/// After the last SEND: flushes, waits for each publisher's receipt and disconnects; returns
/// when the last receipt came.
async fn finish_publishing(
    clients: &mut [Client],
    plan: &Plan,
    control: &Control,
    mut unsent: u64,
) -> Result<Instant> {
    flush(clients, control, &mut unsent).await?;
    for client in clients.iter_mut() {
        Control::add(&control.published_bytes, client.conn.bytes_written);
        if plan.per_publisher > 0 {
            client.wait_receipt("published", |_| {}).await?;
        }
    }
    let done = Instant::now();
    for client in clients.iter_mut() {
        client.disconnect();
        let _ = client.conn.flush().await;
    }
    Ok(done)
}

/// One publisher: pipelines its SENDs in 64 KiB writes, paced when `rate` > 0 (on tokio's
/// timer: `Pacing::Aligned`).
async fn publish(
    client: Client,
    publisher: u64,
    plan: Rc<Plan>,
    rate: f64,
    start: Instant,
    control: Arc<Control>,
) -> Result<Instant> {
    let mut out = Outgoing::new(&plan)?;
    let mut clients = [client];
    let mut unsent = 0;
    for seq in 0..plan.per_publisher {
        if rate > 0.0 {
            let due = start + Duration::from_secs_f64(seq as f64 / rate);
            if due > Instant::now() {
                flush(&mut clients, &control, &mut unsent).await?;
                tokio::time::sleep_until(due.into()).await;
            }
        }
        if plan.window > 0 && seq % 64 == 0 {
            wait_for_credit(&mut clients, &plan, &control, &mut unsent).await?;
        }
        out.publish(&mut clients[0], publisher, seq);
        unsent += 1;
        if clients[0].conn.pending() >= 64 * 1024 {
            flush(&mut clients, &control, &mut unsent).await?;
        }
    }
    finish_publishing(&mut clients, &plan, &control, unsent).await
}

/// All the publishers of a paced run with `Pacing::Spread`, driven by one task so that their
/// sends interleave evenly: message k (counting all of them) is due k / rate seconds after
/// the start and goes out from publisher k mod P.
async fn publish_spread(
    mut clients: Vec<Client>,
    plan: Rc<Plan>,
    start: Instant,
    control: Arc<Control>,
) -> Result<Instant> {
    let mut out = Outgoing::new(&plan)?;
    let count = clients.len() as u64;
    let mut unsent = 0;
    for k in 0..plan.per_publisher * count {
        let due = start + Duration::from_secs_f64(k as f64 / plan.rate);
        if due > Instant::now() {
            flush(&mut clients, &control, &mut unsent).await?;
            sleep_precisely(due).await;
        }
        if plan.window > 0 && k % 64 == 0 {
            wait_for_credit(&mut clients, &plan, &control, &mut unsent).await?;
        }
        let (publisher, seq) = (k % count, k / count);
        if let Some(client) = clients.get_mut(publisher as usize) {
            out.publish(client, publisher, seq);
            unsent += 1;
        }
    }
    finish_publishing(&mut clients, &plan, &control, unsent).await
}

/// The publishers, on one thread: connect, wait for `go`, publish; returns when the last one
/// has its receipt.
fn publishers(
    env: &Env,
    plan: &Arc<Plan>,
    control: &Arc<Control>,
    go: &watch::Receiver<bool>,
) -> Result<std::thread::JoinHandle<Result<Instant>>> {
    let target = env.target.clone();
    let options = env.publisher_options();
    let plan = Plan::clone(plan);
    let control = control.clone();
    let mut go = go.clone();
    let timeout = env.remaining();
    let pacing = env.common.pacing;
    thread("publishers", move || async move {
        let plan = Rc::new(plan);
        let mut clients = Vec::new();
        for _ in 0..plan.publishers {
            let client = Client::connect(&target, &options, timeout).await?;
            control.note_port(client.conn.local_port(), true);
            clients.push(client);
            Control::add(&control.publishers_ready, 1);
        }
        go.wait_for(|go| *go).await?;
        let start = Instant::now();
        if plan.rate > 0.0 && pacing == Pacing::Spread {
            return publish_spread(clients, plan, start, control).await;
        }
        let rate = plan.rate / plan.publishers as f64;
        let handles: Vec<_> = clients
            .into_iter()
            .enumerate()
            .map(|(p, client)| {
                tokio::task::spawn_local(publish(
                    client,
                    p as u64,
                    plan.clone(),
                    rate,
                    start,
                    control.clone(),
                ))
            })
            .collect();
        let mut finished = start;
        for handle in handles {
            finished = finished.max(handle.await??);
        }
        Ok(finished)
    })
}

/// Runs a publish/subscribe plan (fan-out, flow, and the queue scenario with competing
/// consumers) and measures it.
pub fn measure(env: &Env, plan: Plan) -> Result<Measured> {
    let plan = Arc::new(plan);
    let control = Arc::new(Control::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let (go_tx, go_rx) = watch::channel(false);
    let mut problems = Vec::new();
    let competing = matches!(plan.ack, Ack::ClientIndividual { .. });
    let groups: Vec<_> = split(plan.subscribers, env.common.client_threads)
        .into_iter()
        .enumerate()
        .map(|(g, ids)| {
            receivers(
                env,
                &plan,
                ids,
                g == 0 && plan.stuck.is_some(),
                &control,
                &stop_rx,
            )
        })
        .collect::<Result<_>>()?;
    let want_ready = (plan.subscribers + usize::from(plan.stuck.is_some())) as u64;
    let ready = wait_until(
        env,
        || Control::get(&control.ready) == want_ready,
        || Control::get(&control.failed) > 0 || groups.iter().any(|g| g.is_finished()),
    );
    let mut timed_out = false;
    let mut publisher_result = None;
    let (mut t0, mut t_done) = (Instant::now(), Instant::now());
    let (mut before, mut after) = Default::default();
    let (mut cpu0, mut cpu1) = (0.0, 0.0);
    let mut timeline = Vec::new();
    let mut sampler = None;
    if !ready {
        problems.push(format!(
            "only {} of {want_ready} receivers subscribed",
            Control::get(&control.ready)
        ));
    } else {
        before = env.broker_usage();
        cpu0 = env.client_cpu();
        let pubs = publishers(env, &plan, &control, &go_rx)?;
        if !wait_until(
            env,
            || Control::get(&control.publishers_ready) == plan.publishers as u64,
            || pubs.is_finished(),
        ) {
            problems.push("publishers did not connect".into());
        }
        if env.common.queues {
            let ports = control.ports.lock().unwrap_or_else(|e| e.into_inner());
            sampler = Some(Sampler::new(
                env.target.addr(),
                &ports.publishers,
                &ports.receivers,
            ));
        }
        t0 = Instant::now();
        go_tx.send(true)?;
        let expected = plan.per_publisher * plan.publishers as u64;
        let expected_total = if competing {
            expected
        } else {
            expected * plan.subscribers as u64
        };
        let drain = Duration::from_secs_f64(env.common.drain_timeout);
        let mut last_count = 0;
        let mut last_change = Instant::now();
        let mut next_sample = t0;
        loop {
            let now = Instant::now();
            let delivered = Control::get(&control.delivered);
            if now >= next_sample {
                timeline.push((
                    now.duration_since(t0).as_secs_f64(),
                    delivered,
                    Control::get(&control.sent),
                ));
                next_sample += Duration::from_millis(100);
                if let (Some(sampler), false) = (&mut sampler, pubs.is_finished()) {
                    sampler.sample();
                }
            }
            if delivered != last_count {
                last_count = delivered;
                last_change = now;
            }
            if delivered >= expected_total {
                break;
            }
            if pubs.is_finished() && now.duration_since(last_change) >= drain {
                problems.push(format!(
                    "nothing arrived for {:.0} s after the publishers finished",
                    drain.as_secs_f64()
                ));
                break;
            }
            if Control::get(&control.failed) > 0 {
                problems.push("a receiver failed".into());
                break;
            }
            if env.timed_out() {
                timed_out = true;
                problems.push(format!("timed out after {} s", env.common.timeout));
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        t_done = Instant::now();
        timeline.push((
            t_done.duration_since(t0).as_secs_f64(),
            Control::get(&control.delivered),
            Control::get(&control.sent),
        ));
        after = env.broker_usage();
        cpu1 = env.client_cpu();
        stop_tx.send(true)?;
        publisher_result = Some(join(pubs));
    }
    let _ = stop_tx.send(true);
    let _ = go_tx.send(true);
    let mut histogram = latency_histogram()?;
    let mut subs = Vec::new();
    let mut stuck = None;
    for group in groups {
        match join(group) {
            Ok(g) => {
                histogram.add(&g.histogram)?;
                subs.extend(g.subs);
                if g.stuck.is_some() {
                    stuck = g.stuck;
                }
            }
            Err(e) => problems.push(format!("{e:#}")),
        }
    }
    if let Some(error) = control.first_error() {
        problems.push(format!(
            "{} connection(s) failed; first: {error}",
            Control::get(&control.failed)
        ));
    }
    let published_at = match publisher_result {
        Some(Ok(at)) => Some(at),
        Some(Err(e)) => {
            problems.push(format!("publisher: {e:#}"));
            None
        }
        None => None,
    };
    // Losses: per subscriber for fan-out; over the union of the consumers for a queue.
    let expected = plan.per_publisher * plan.publishers as u64;
    let missing_subs = plan.subscribers.saturating_sub(subs.len()) as u64;
    let (lost, duplicates, out_of_order, invalid, distinct) = if competing {
        let mut all = Tracker::new(plan.publishers, plan.per_publisher);
        for s in &subs {
            all.merge(&s.tracker);
        }
        (
            all.missing(),
            all.duplicates,
            all.out_of_order,
            all.invalid,
            all.distinct(),
        )
    } else {
        subs.iter().fold(
            (missing_subs * expected, 0, 0, 0, 0),
            |(l, d, o, i, n), s| {
                let t = &s.tracker;
                (
                    l + t.missing(),
                    d + t.duplicates,
                    o + t.out_of_order,
                    i + t.invalid,
                    n + t.distinct(),
                )
            },
        )
    };
    let last = subs.iter().filter_map(|s| s.last).max().unwrap_or(t_done);
    let secs = last.saturating_duration_since(t0).as_secs_f64().max(1e-9);
    let mut f = Fields::new();
    f.insert("subscribers".into(), plan.subscribers.into());
    f.insert("publishers".into(), plan.publishers.into());
    f.insert("messages".into(), expected.into());
    f.insert("size".into(), plan.size.into());
    f.insert(
        "rate".into(),
        if plan.rate > 0.0 {
            plan.rate.into()
        } else {
            "unpaced".into()
        },
    );
    if plan.rate > 0.0 {
        f.insert("pacing".into(), env.common.pacing.name().into());
    }
    f.insert("delivered".into(), distinct.into());
    f.insert(
        "delivered_per_s".into(),
        (distinct as f64 / secs).round().into(),
    );
    if let Some(at) = published_at {
        let s = at.saturating_duration_since(t0).as_secs_f64().max(1e-9);
        f.insert(
            "published_per_s".into(),
            (expected as f64 / s).round().into(),
        );
        if let Some(sampler) = &sampler {
            f.append(&mut sampler.fields(
                Control::get(&control.published_bytes) as f64 / s,
                Control::get(&control.received_bytes) as f64 / secs,
            ));
        }
    }
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    if !histogram.is_empty() {
        f.insert(
            "latency_mean_ms".into(),
            ((histogram.mean() / 10.0).round() / 100.0).into(),
        );
        f.insert("latency_p50_ms".into(), ms(0.5).into());
        f.insert("latency_p99_ms".into(), ms(0.99).into());
        f.insert("latency_p999_ms".into(), ms(0.999).into());
        f.insert(
            "latency_max_ms".into(),
            (histogram.max() as f64 / 1000.0).into(),
        );
    }
    f.insert("lost".into(), lost.into());
    f.insert("duplicates".into(), duplicates.into());
    f.insert("out_of_order".into(), out_of_order.into());
    f.insert("invalid".into(), invalid.into());
    if let (Some(c0), Some(c1)) = (before.cpu_s, after.cpu_s) {
        let cpu = c1 - c0;
        f.insert("broker_cpu_s".into(), cpu.into());
        if distinct > 0 {
            f.insert(
                "broker_cpu_s_per_million".into(),
                (cpu / (distinct as f64 / 1e6)).into(),
            );
        }
    }
    let mib = |k: Option<u64>| k.map_or(Value::Null, |k| json!(k as f64 / 1024.0));
    f.insert("broker_rss_mib_before".into(), mib(before.rss_kib));
    f.insert("broker_rss_mib_after".into(), mib(after.rss_kib));
    f.insert("broker_peak_rss_mib".into(), mib(after.peak_rss_kib));
    f.insert("client_cpu_s".into(), (cpu1 - cpu0).into());
    f.insert("elapsed_s".into(), secs.into());
    f.insert("timed_out".into(), timed_out.into());
    if lost > 0 {
        problems.push(format!("{lost} messages lost"));
    }
    if duplicates > 0 {
        problems.push(format!("{duplicates} duplicates"));
    }
    if invalid > 0 {
        problems.push(format!("{invalid} invalid bodies"));
    }
    Ok(Measured {
        fields: f,
        timeline,
        stuck,
        problems,
    })
}

fn finish(env: &Env, scenario: &str, run: usize, mut m: Measured) -> Fields {
    let mut f = env.base_fields(scenario, run);
    f.append(&mut m.fields);
    f.insert("ok".into(), m.problems.is_empty().into());
    f.insert("problems".into(), json!(m.problems));
    f
}

/// The `fanout` scenario.
pub fn fanout(env: &Env, args: &FanoutArgs, run: usize) -> Result<Fields> {
    if args.publishers == 0 || args.subscribers == 0 {
        bail!("--publishers and --subscribers must be at least 1");
    }
    let plan = Plan {
        subscribers: args.subscribers,
        publishers: args.publishers,
        per_publisher: args.messages / args.publishers as u64,
        size: args.size,
        rate: args.rate,
        destination: format!("/topic/load-{}", env.run_tag),
        stuck: None,
        ack: Ack::Auto,
        headers: Vec::new(),
        window: 0,
    };
    body_template(plan.size)?;
    let m = measure(env, plan)?;
    let f = finish(env, "fanout", run, m);
    if !env.common.json {
        if let Some(line) = crate::queues::summary(&f) {
            println!("{line}");
        }
    }
    Ok(f)
}

/// The `flow` scenario.
pub fn flow(env: &Env, args: &FlowArgs, run: usize) -> Result<Fields> {
    if args.publishers == 0 || args.subscribers == 0 {
        bail!("--publishers and --subscribers must be at least 1");
    }
    let plan = Plan {
        subscribers: args.subscribers,
        publishers: args.publishers,
        per_publisher: args.messages / args.publishers as u64,
        size: args.size,
        rate: args.rate,
        destination: format!("/topic/flow-{}", env.run_tag),
        stuck: Some(args.stuck_rcvbuf),
        ack: Ack::Auto,
        headers: Vec::new(),
        window: 0,
    };
    body_template(plan.size)?;
    let mut m = measure(env, plan)?;
    // Per-second throughput, and the longest stretch (100 ms samples) in which the readers
    // got less than a tenth of their best rate while the publishers still had work.
    let mut per_second = Vec::new();
    let mut prev = (0.0, 0, 0);
    for &(t, d, s) in &m.timeline {
        if t - prev.0 >= 0.999 || per_second.is_empty() && t >= 1.0 {
            per_second.push(json!({"t": (t * 10.0).round() / 10.0, "delivered_per_s": ((d - prev.1) as f64 / (t - prev.0)).round(), "sent_per_s": ((s - prev.2) as f64 / (t - prev.0)).round()}));
            prev = (t, d, s);
        }
    }
    if let Some(&(t, d, s)) = m.timeline.last() {
        if t - prev.0 > 0.05 {
            per_second.push(json!({"t": (t * 10.0).round() / 10.0, "delivered_per_s": ((d - prev.1) as f64 / (t - prev.0)).round(), "sent_per_s": ((s - prev.2) as f64 / (t - prev.0)).round()}));
        }
    }
    let rates: Vec<f64> = m
        .timeline
        .windows(2)
        .map(|w| (w[1].1 - w[0].1) as f64 / (w[1].0 - w[0].0).max(1e-9))
        .collect();
    let best = rates.iter().copied().fold(0.0, f64::max);
    let total = m.timeline.last().map_or(0, |x| x.1);
    let (mut longest, mut start, mut stall_at) = (0.0f64, None, None);
    for (i, w) in m.timeline.windows(2).enumerate() {
        let slow = rates[i] < best / 10.0 && w[0].1 < total;
        match (slow, start) {
            (true, None) => start = Some(w[0].0),
            (false, Some(s)) => {
                if w[0].0 - s > longest {
                    longest = w[0].0 - s;
                    stall_at = Some((s, w[0].0));
                }
                start = None;
            }
            _ => {}
        }
    }
    m.fields
        .insert("timeline".into(), Value::Array(per_second.clone()));
    m.fields.insert("longest_stall_s".into(), longest.into());
    if let Some((s, e)) = stall_at {
        m.fields.insert("stall_from_s".into(), s.into());
        m.fields.insert("stuck_cut_off_after_s".into(), e.into());
    }
    match &m.stuck {
        Some(stuck) => {
            m.fields
                .insert("stuck_received".into(), stuck.received.into());
            m.fields.insert("stuck_cut_off".into(), stuck.eof.into());
            m.fields
                .insert("stuck_error".into(), json!(stuck.error.clone()));
            if !stuck.eof {
                m.problems
                    .push("the subscriber that stopped reading was not cut off".into());
            }
        }
        None => m.problems.push("the stuck subscriber failed".into()),
    }
    if !env.common.json {
        println!("timeline (readers' deliveries and publisher's sends per second):");
        for row in &per_second {
            println!(
                "  t={:>5}s  delivered/s={:>10}  sent/s={:>9}",
                row["t"], row["delivered_per_s"], row["sent_per_s"]
            );
        }
    }
    Ok(finish(env, "flow", run, m))
}
