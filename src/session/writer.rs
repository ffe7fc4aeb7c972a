//! The writer task: drains a session's outbox to its socket, in batches, and sends heart-beats
//! when the line has been quiet. It never waits on the session's reads, so a session whose
//! reading is paused (flow control) keeps receiving.

use std::io::{self, IoSlice};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use stompede_protocol::{
    encode, encoded_len_estimate, names, write_command, write_header, Command, Escaping, Version,
};
use tokio::time::Instant;

use super::carrier::{write_frame, FrameSink};
use crate::broker::metrics::Metrics;
use crate::broker::outbox::{CloseReason, Delivery, Outbox, Outgoing};

/// Most items taken from the outbox per write.
const BATCH: usize = 256;
/// Message tails at least this long are written from the message itself instead of being
/// copied into each subscriber's write buffer: one copy of the body less per subscriber, and
/// a writer's buffer does not grow to the size of the messages it sends.
const SPLICE_MIN: usize = 2 * 1024;
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
    let mut out = Output::default();
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
                let start = sink.begin_frame(&mut out.buf, 1);
                out.buf.put_u8(b'\n');
                sink.end_frame(&mut out.buf, start, true, 0);
            }
            Wake::Control => sink.take_control(&mut out.buf),
            Wake::Outbox(Ok(())) => {
                drained = batch.len() < BATCH;
                let settled: Vec<_> = batch
                    .iter()
                    .filter_map(|item| match item {
                        Outgoing::Delivery(d) => d.settle.clone(),
                        Outgoing::Frame(_) => None,
                    })
                    .collect();
                encode_batch(&sink, &mut out, &mut batch, version);
                let written = out.write_to(&mut sink).await;
                if written.is_ok() {
                    settled.iter().for_each(|s| s.written());
                }
                if finish_write(written, &mut out, drained, &outbox).is_err() {
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
        let written = out.write_to(&mut sink).await;
        if finish_write(written, &mut out, drained, &outbox).is_err() {
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

/// What one write sends: the writer's own buffer, with large shared message tails spliced in.
#[derive(Default)]
struct Output {
    buf: BytesMut,
    /// `(offset, tail)`: each tail goes out right after `buf[..offset]`, in order.
    spliced: Vec<(usize, Bytes)>,
}

impl Output {
    async fn write_to<W: FrameSink>(&self, sink: &mut W) -> io::Result<()> {
        if self.spliced.is_empty() {
            return sink.write_all(&self.buf).await;
        }
        let mut parts = Vec::with_capacity(2 * self.spliced.len() + 1);
        let mut from = 0;
        for (at, tail) in &self.spliced {
            if *at > from {
                parts.push(IoSlice::new(&self.buf[from..*at]));
            }
            parts.push(IoSlice::new(tail));
            from = *at;
        }
        if self.buf.len() > from {
            parts.push(IoSlice::new(&self.buf[from..]));
        }
        sink.write_all_vectored(&mut parts).await
    }

    /// Empties the output; `release` also lets its memory go.
    fn clear(&mut self, release: bool) {
        if release {
            *self = Output::default();
        } else {
            self.buf.clear();
            self.spliced.clear();
        }
    }
}

/// Clears the output after a write (letting its memory go when the outbox is drained); on a
/// failed write closes the outbox.
fn finish_write(
    written: io::Result<()>,
    out: &mut Output,
    drained: bool,
    outbox: &Outbox,
) -> io::Result<()> {
    out.clear(drained);
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

/// Encodes the batch into `out`, each item one frame of the transport.
fn encode_batch<W: FrameSink>(
    sink: &W,
    out: &mut Output,
    batch: &mut Vec<Outgoing>,
    version: Version,
) {
    for item in batch.drain(..) {
        match &item {
            Outgoing::Frame(frame) => {
                let start = sink.begin_frame(&mut out.buf, encoded_len_estimate(frame));
                encode(frame, version, &mut out.buf);
                sink.end_frame(&mut out.buf, start, true, 0);
            }
            Outgoing::Delivery(delivery) => {
                let (tail, splice) = match sink.encoded_tail(&delivery.message, version) {
                    Some(encoded) => (encoded, true),
                    None => {
                        let tail = delivery.message.tail(version);
                        (tail, tail.len() >= SPLICE_MIN)
                    }
                };
                let hint = DELIVERY_HEAD + delivery.subscription.len() + tail.len();
                let start = sink.begin_frame(&mut out.buf, hint);
                out.buf
                    .reserve(if splice { hint - tail.len() } else { hint } + 64);
                write_delivery_head(&mut out.buf, delivery, version);
                let text = delivery.message.text;
                if splice {
                    sink.end_frame(&mut out.buf, start, text, tail.len());
                    out.spliced.push((out.buf.len(), tail.clone()));
                } else {
                    out.buf.extend_from_slice(tail);
                    sink.end_frame(&mut out.buf, start, text, 0);
                }
            }
        }
    }
}

/// Bytes of a MESSAGE's per-subscription head besides the subscription id (command, header
/// names, separators), for size hints.
const DELIVERY_HEAD: usize = 24;

/// A MESSAGE's per-subscription headers; the message's shared, pre-encoded tail follows.
fn write_delivery_head(buf: &mut BytesMut, delivery: &Delivery, version: Version) {
    let escaping = Escaping::for_frame(Command::Message, version);
    write_command(buf, Command::Message);
    write_header(buf, escaping, names::SUBSCRIPTION, &delivery.subscription);
    if let Some(ack) = &delivery.ack {
        write_header(buf, escaping, names::ACK, ack);
    }
    if delivery.redelivered {
        write_header(buf, escaping, "redelivered", "true");
    }
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
        CloseReason::SlowConsumer => super::error_frame(
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
