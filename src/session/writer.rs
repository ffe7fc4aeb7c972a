//! The writer task: drains a session's outbox to its socket, in batches, and sends heart-beats
//! when the line has been quiet. It never waits on the session's reads, so a session whose
//! reading is paused (flow control) keeps receiving.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use stompede_protocol::{
    encode, encoded_len_estimate, names, write_command, write_header, Command, Escaping, Version,
};
use tokio::time::Instant;

use crate::broker::metrics::Metrics;
use crate::broker::outbox::{CloseReason, Delivery, Outbox, Outgoing};
use crate::broker::Broker;
use crate::transport::{write_frame, FrameSink};

/// Most items taken from the outbox per write.
const BATCH: usize = 256;
/// Time allowed for the farewell ERROR to a session being cut off.
const FAREWELL_TIMEOUT: Duration = Duration::from_secs(1);

/// Writes what the outbox holds until it closes.
///
/// Memory: the batch and the write buffer are kept only while the outbox keeps the writer
/// busy (full batches); once it has drained them, they are let go, so an idle session holds
/// neither.
pub async fn run<W: FrameSink>(
    outbox: Arc<Outbox>,
    mut sink: W,
    version: Version,
    heartbeat: Option<Duration>,
    metrics: Arc<Metrics>,
) {
    let mut batch = Vec::new();
    let mut buf = BytesMut::new();
    let mut last_write = Instant::now();
    loop {
        let next = tokio::select! {
            next = outbox.next_batch(&mut batch, BATCH) => Wake::Outbox(next),
            () = sink.control() => Wake::Control,
            () = sleep_until_beat(last_write, heartbeat) => Wake::HeartBeat,
        };
        let mut drained = true;
        match next {
            Wake::HeartBeat => {
                let start = sink.begin_frame(&mut buf, 1);
                buf.put_u8(b'\n');
                sink.end_frame(&mut buf, start, true);
            }
            Wake::Control => sink.take_control(&mut buf),
            Wake::Outbox(Ok(())) => {
                drained = batch.len() < BATCH;
                let settled: Vec<_> = batch
                    .iter()
                    .filter_map(|item| match item {
                        Outgoing::Delivery(d) => d.settle.clone(),
                        Outgoing::Frame(_) => None,
                    })
                    .collect();
                encode_batch(&sink, &mut buf, &mut batch, version);
                let written = sink.write_all(&buf).await;
                if written.is_ok() {
                    settled.iter().for_each(|s| s.written());
                }
                if finish_write(written, &mut buf, drained, &outbox).is_err() {
                    return;
                }
                if drained {
                    batch = Vec::new();
                }
                last_write = Instant::now();
                continue;
            }
            Wake::Outbox(Err(reason)) => {
                farewell(&mut sink, reason, version, &metrics).await;
                sink.close().await;
                return;
            }
        }
        let written = sink.write_all(&buf).await;
        if finish_write(written, &mut buf, drained, &outbox).is_err() {
            return;
        }
        last_write = Instant::now();
    }
}

/// Why the writer woke.
enum Wake {
    Outbox(Result<(), CloseReason>),
    Control,
    HeartBeat,
}

/// Clears the buffer after a write (letting it go when the outbox is drained); on a failed
/// write closes the outbox.
fn finish_write(
    written: std::io::Result<()>,
    buf: &mut BytesMut,
    drained: bool,
    outbox: &Outbox,
) -> std::io::Result<()> {
    if drained {
        *buf = BytesMut::new();
    } else {
        buf.clear();
    }
    if written.is_err() {
        outbox.close(CloseReason::Broken);
    }
    written
}

async fn sleep_until_beat(last_write: Instant, heartbeat: Option<Duration>) {
    match heartbeat {
        Some(interval) => tokio::time::sleep_until(last_write + interval).await,
        None => std::future::pending().await,
    }
}

/// Encodes the batch into `buf`, each item one frame of the transport.
fn encode_batch<W: FrameSink>(
    sink: &W,
    buf: &mut BytesMut,
    batch: &mut Vec<Outgoing>,
    version: Version,
) {
    for item in batch.drain(..) {
        match &item {
            Outgoing::Frame(frame) => {
                let start = sink.begin_frame(buf, encoded_len_estimate(frame));
                encode(frame, version, buf);
                sink.end_frame(buf, start, true);
            }
            Outgoing::Delivery(delivery) => {
                let tail = delivery.message.tail(version);
                let hint = DELIVERY_HEAD + delivery.subscription.len() + tail.len();
                let start = sink.begin_frame(buf, hint);
                write_delivery(buf, delivery, version);
                sink.end_frame(buf, start, delivery.message.text);
            }
        }
    }
}

/// Bytes of a MESSAGE's per-subscription head besides the subscription id (command, header
/// names, separators), for size hints.
const DELIVERY_HEAD: usize = 24;

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
    let _ = tokio::time::timeout(FAREWELL_TIMEOUT, write_frame(sink, &bytes, true)).await;
}
