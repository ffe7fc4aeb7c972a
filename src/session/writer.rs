//! The writer task: drains a session's outbox to its socket, in batches, and sends heart-beats
//! when the line has been quiet. It never waits on the session's reads, so a session whose
//! reading is paused (flow control) keeps receiving.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use stompede_protocol::{encode, names, write_command, write_header, Command, Escaping, Version};
use tokio::time::Instant;

use crate::broker::metrics::Metrics;
use crate::broker::outbox::{CloseReason, Delivery, Outbox, Outgoing};
use crate::broker::Broker;
use crate::transport::FrameSink;

/// Most items taken from the outbox per write.
const BATCH: usize = 256;
/// Time allowed for the farewell ERROR to a session being cut off.
const FAREWELL_TIMEOUT: Duration = Duration::from_secs(1);

/// Writes what the outbox holds until it closes.
pub async fn run<W: FrameSink>(
    outbox: Arc<Outbox>,
    mut sink: W,
    version: Version,
    heartbeat: Option<Duration>,
    metrics: Arc<Metrics>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut last_write = Instant::now();
    loop {
        let next = tokio::select! {
            next = outbox.next_batch(&mut batch, BATCH) => Some(next),
            _ = sleep_until_beat(last_write, heartbeat) => None,
        };
        let written = match next {
            None => write_heartbeat(&mut sink).await,
            Some(Ok(())) => {
                let settled: Vec<_> = batch
                    .iter()
                    .filter_map(|item| match item {
                        Outgoing::Delivery(d) => d.settle.clone(),
                        Outgoing::Frame(_) => None,
                    })
                    .collect();
                let written = write_batch(&mut sink, &mut buf, &mut batch, version).await;
                if written.is_ok() {
                    settled.iter().for_each(|s| s.written());
                }
                written
            }
            Some(Err(reason)) => {
                farewell(&mut sink, reason, version, &metrics).await;
                sink.close().await;
                return;
            }
        };
        if written.is_err() {
            outbox.close(CloseReason::Broken);
            return;
        }
        last_write = Instant::now();
    }
}

async fn sleep_until_beat(last_write: Instant, heartbeat: Option<Duration>) {
    match heartbeat {
        Some(interval) => tokio::time::sleep_until(last_write + interval).await,
        None => std::future::pending().await,
    }
}

async fn write_heartbeat<W: FrameSink>(sink: &mut W) -> std::io::Result<()> {
    sink.write(Bytes::from_static(b"\n"), true).await?;
    sink.flush().await
}

async fn write_batch<W: FrameSink>(
    sink: &mut W,
    buf: &mut BytesMut,
    batch: &mut Vec<Outgoing>,
    version: Version,
) -> std::io::Result<()> {
    let stream = sink.is_stream();
    for item in batch.drain(..) {
        let text = match &item {
            Outgoing::Frame(frame) => {
                encode(frame, version, buf);
                true
            }
            Outgoing::Delivery(delivery) => {
                write_delivery(buf, delivery, version);
                delivery.message.text
            }
        };
        if !stream {
            sink.write(buf.split().freeze(), text).await?;
        }
    }
    if stream && !buf.is_empty() {
        sink.write(buf.split().freeze(), false).await?;
    }
    sink.flush().await
}

/// A MESSAGE: the per-subscription headers, then the message's shared, pre-encoded tail.
fn write_delivery(buf: &mut BytesMut, delivery: &Delivery, version: Version) {
    let escaping = Escaping::for_frame(Command::Message, version);
    let tail = delivery.message.tail(version);
    buf.reserve(64 + delivery.subscription.len() + tail.len());
    write_command(buf, Command::Message);
    write_header(buf, escaping, names::SUBSCRIPTION, &delivery.subscription);
    if let Some(ack) = &delivery.ack {
        write_header(buf, escaping, names::ACK, ack);
    }
    if delivery.redelivered {
        write_header(buf, escaping, "redelivered", "true");
    }
    buf.extend_from_slice(tail);
}

/// The last frame of a session that is being closed, when there is one to send.
async fn farewell<W: FrameSink>(
    sink: &mut W,
    reason: CloseReason,
    version: Version,
    metrics: &Metrics,
) {
    let frame = match reason {
        CloseReason::Error(frame) => *frame,
        CloseReason::SlowConsumer => Broker::error_frame(
            "slow consumer: disconnected for not reading its messages",
            "Your subscription's outbox stayed above its high-water mark for longer than the \
             slow-consumer grace, so the broker disconnected this session rather than slow \
             down every publisher or drop messages silently.",
            None,
        ),
        CloseReason::Finished | CloseReason::Broken => return,
    };
    Metrics::incr(&metrics.errors_sent);
    let bytes = stompede_protocol::to_bytes(&frame, version);
    let _ = tokio::time::timeout(FAREWELL_TIMEOUT, async {
        sink.write(bytes, true).await?;
        sink.flush().await
    })
    .await;
}
