//! One STOMP session: the task that owns a connection from CONNECT to close.
//!
//! The session reads frames and acts on them in order; a separate writer task drains its outbox
//! to the socket. A SEND to a full subscriber makes the session wait before reading its next
//! frame (flow control), while its own writer keeps going, so no pair of sessions can deadlock.

pub mod carrier;
mod handshake;
mod heartbeat;
mod subscriptions;
mod transaction;
mod writer;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use stompede_protocol::{names, Command, Decoded, Decoder, Frame, Version};
use tokio::time::Instant;

use crate::broker::app::{AppReply, AppRequest};
use crate::broker::metrics::Metrics;
use crate::broker::outbox::{CloseReason, Outbox, Outgoing};
use crate::broker::Broker;
use crate::context::ServerContext;
use carrier::{FrameSink, FrameSource, Inbound, InboundError};
use subscriptions::{missing, Subscriptions};
use transaction::Transactions;

/// An ERROR frame: `message` in its header, `detail` (or the message again) as its body.
pub(crate) fn error_frame(message: &str, detail: &str, receipt: Option<&str>) -> Frame {
    let mut frame = Frame::new(Command::Error)
        .header(names::MESSAGE, message)
        .header(names::CONTENT_TYPE, "text/plain");
    if let Some(receipt) = receipt {
        frame = frame.header(names::RECEIPT_ID, receipt);
    }
    let body = if detail.is_empty() { message } else { detail };
    frame.body(bytes::Bytes::from(body.to_owned()))
}

/// A problem that ends the session with an ERROR frame.
#[derive(Debug, Clone)]
pub struct SessionError {
    message: String,
    detail: String,
    headers: Vec<(&'static str, String)>,
}

impl SessionError {
    /// An error with a short `message` header and a longer body.
    pub fn new(message: impl Into<String>, detail: impl Into<String>) -> Self {
        SessionError {
            message: message.into(),
            detail: detail.into(),
            headers: Vec::new(),
        }
    }

    /// Adds a header to the ERROR frame.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn into_frame(self, receipt: Option<&str>) -> Frame {
        let mut frame = error_frame(&self.message, &self.detail, receipt);
        for (name, value) in self.headers {
            frame = frame.header(name, value);
        }
        frame
    }
}

/// What the read loop does after a frame.
enum Flow {
    Continue,
    Stop,
}

/// Runs a session over a connection until either side ends it.
pub async fn run<S: FrameSource, W: FrameSink>(
    ctx: Arc<ServerContext>,
    mut source: S,
    sink: W,
    version_hint: Option<Version>,
    peer: String,
) {
    let mut decoder = Decoder::new(ctx.config.frame_limits());
    // Boxed, like frame handling: the handshake's state (the CONNECT frame, the timeout, the
    // refusals) is needed once, not for the life of the session's task.
    let opened = Box::pin(open(
        &ctx,
        &mut source,
        &mut decoder,
        sink,
        version_hint,
        peer,
    ))
    .await;
    let Some((mut session, writer, incoming)) = opened else {
        // Refused: the ERROR is written and the connection half-closed.
        Box::pin(linger(&ctx, &mut source)).await;
        return;
    };
    // A RECEIPT waits for this session's own store writes only (and, on a cluster member, for
    // its own appends to the cluster's queues).
    let ended = crate::broker::federation::own_appends(crate::store::own_writes(async {
        let ended = session.read_loop(&mut source, &mut decoder, incoming).await;
        session.finish();
        ended
    }))
    .await;
    let grace = Duration::from_millis(ctx.config.shutdown_timeout_ms);
    match finish_writer(writer, grace).await {
        // Boxed, like the handshake: rare, and not worth space in every session's task.
        true if ended == Ended::ByServer => Box::pin(linger(&ctx, &mut source)).await,
        true => {}
        false => tracing::debug!(session = session.id, "writer did not finish in time"),
    }
    Metrics::incr(&ctx.broker.metrics().sessions_closed);
}

/// Waits up to `grace` for the writer to finish; true when it did. One still writing then (to a
/// peer that reads nothing) is aborted, so that its half of the socket goes too. (A function of
/// its own, so that the abort handle is no part of the session's task while it reads.)
async fn finish_writer(writer: tokio::task::JoinHandle<()>, grace: Duration) -> bool {
    let abort = writer.abort_handle();
    let finished = tokio::time::timeout(grace, writer).await.is_ok();
    if !finished {
        abort.abort();
    }
    finished
}

/// Who ended a session's reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// The peer closed its side, or the connection broke.
    ByPeer,
    /// The server did (an ERROR, a DISCONNECT answered, a heart-beat timeout, a cut): the peer
    /// may still be sending.
    ByServer,
}

/// Longest wait, once the server has closed its side, for the peer to close its own.
const LINGER: Duration = Duration::from_secs(2);

/// After a close that the server started: the last frame is written and the connection
/// half-closed; reads what the peer still sends until it closes too (its WebSocket close
/// reply, or the frames it had in flight), so that the final close does not reset a
/// connection whose peer has not read that last frame yet.
async fn linger<S: FrameSource>(ctx: &ServerContext, source: &mut S) {
    let wait = LINGER.min(Duration::from_millis(ctx.config.shutdown_timeout_ms));
    let _ = tokio::time::timeout(wait, source.discard_input()).await;
}

/// The handshake: CONNECT read and accepted, the session registered, its writer started.
/// Returns the session, its writer and the incoming heart-beat limit; `None` when the
/// connection was refused or closed.
async fn open<S: FrameSource, W: FrameSink>(
    ctx: &Arc<ServerContext>,
    source: &mut S,
    decoder: &mut Decoder,
    mut sink: W,
    version_hint: Option<Version>,
    peer: String,
) -> Option<(Session, tokio::task::JoinHandle<()>, Option<Duration>)> {
    let id = ctx.broker.next_key();
    let connect_timeout = Duration::from_millis(ctx.config.connect_timeout_ms);
    let first = tokio::time::timeout(connect_timeout, first_frame(source, decoder));
    let connect = match answering_control(&mut sink, first).await {
        Ok(Ok(Some((frame, _)))) => frame,
        Ok(Ok(None)) => {
            // The client closed (a WebSocket close frame must be answered with one).
            sink.close().await;
            return None;
        }
        Ok(Err(error)) => {
            reject(
                &mut sink,
                ctx,
                SessionError::new(error.to_string(), "The connection is closed."),
                None,
            )
            .await;
            return None;
        }
        Err(_elapsed) => {
            let error = SessionError::new(
                "no CONNECT frame in time",
                format!(
                    "A session must send CONNECT within {} ms.",
                    ctx.config.connect_timeout_ms
                ),
            );
            reject(&mut sink, ctx, error, None).await;
            return None;
        }
    };
    let receipt = connect.get(names::RECEIPT).map(str::to_owned);
    // Failed logins are counted per address, not per connection: the port goes.
    let address: Arc<str> = peer
        .parse::<std::net::SocketAddr>()
        .map_or_else(|_| peer.clone(), |addr| addr.ip().to_string())
        .into();
    // Boxed: the login may wait for a password hash, and that wait must not widen the future
    // every idle session keeps (see the memory figures in BENCHMARKS.md).
    let accepted = match Box::pin(handshake::accept(
        &connect,
        version_hint,
        &ctx.config,
        &ctx.auth,
        id,
        &address,
    ))
    .await
    {
        Ok(accepted) => accepted,
        Err(error) => {
            if connect.get(names::LOGIN).is_some() || !ctx.auth.is_open() {
                Metrics::incr(&ctx.broker.metrics().auth_failures);
            }
            tracing::warn!(%peer, message = %error.message, "CONNECT refused");
            reject(&mut sink, ctx, error, receipt.as_deref()).await;
            return None;
        }
    };
    drop(connect);
    decoder.set_version(accepted.version);
    let user: Arc<str> = accepted.user.into();
    let outbox = ctx.broker.new_outbox();
    if let Err(error) =
        ctx.broker
            .register_session(id, user.clone(), outbox.clone(), sink.transport())
    {
        tracing::warn!(%peer, %user, "{error}");
        reject(
            &mut sink,
            ctx,
            SessionError::new(error.to_string(), "Close another session first."),
            receipt.as_deref(),
        )
        .await;
        return None;
    }
    if ctx.shutdown.is_cancelled() {
        // Registered after shutdown told every session to go: it would never hear it.
        ctx.broker.unregister_session(id);
        let error = SessionError::new("server shutting down", "Reconnect later.");
        reject(&mut sink, ctx, error, receipt.as_deref()).await;
        return None;
    }
    Metrics::incr(&ctx.broker.metrics().sessions_opened);
    if !ctx.auth.is_open() {
        ctx.audit.record(
            &user,
            &address,
            "login",
            crate::audit::Outcome::Ok,
            serde_json::json!({ "transport": sink.transport(), "session": id }),
        );
    }
    tracing::debug!(%peer, %user, session = id, version = %accepted.version, "session opened");
    // Pushes to a fresh outbox cannot fail.
    let _ = outbox.push_reply(Outgoing::Frame(accepted.connected));
    if let Some(receipt) = receipt {
        let _ = outbox.push_reply(Outgoing::Frame(receipt_frame(&receipt)));
    }
    let writer = tokio::spawn(writer::run(
        outbox.clone(),
        sink,
        accepted.version,
        accepted.heartbeat.outgoing,
        ctx.broker.metrics().clone(),
    ));
    let session = Session {
        id,
        user,
        address,
        version: accepted.version,
        broker: ctx.broker.clone(),
        outbox,
        subscriptions: Subscriptions::default(),
        transactions: Transactions::default(),
        ctx: ctx.clone(),
        paced: false,
    };
    let incoming = accepted
        .heartbeat
        .incoming
        .map(|d| d.mul_f64(ctx.config.heartbeat_tolerance));
    Some((session, writer, incoming))
}

/// Runs `work` (the wait for CONNECT) while sending what the transport owes the peer: the
/// writer task that does it later does not exist yet, and a WebSocket ping is to be answered
/// as soon as it arrives, before CONNECT too (RFC 6455 section 5.5.2).
async fn answering_control<W: FrameSink, T>(sink: &mut W, work: impl Future<Output = T>) -> T {
    let mut work = std::pin::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return out,
            () = sink.control() => {}
        }
        let mut buf = bytes::BytesMut::new();
        sink.take_control(&mut buf);
        if !buf.is_empty() {
            let _ = sink.write_all(&buf).await;
        }
    }
}

/// Reads up to the first frame, skipping heart-beats.
async fn first_frame<S: FrameSource>(
    source: &mut S,
    decoder: &mut Decoder,
) -> Result<Option<(Frame, Option<bool>)>, InboundError> {
    loop {
        match source.next(decoder).await? {
            None => return Ok(None),
            Some(Inbound {
                item: Decoded::HeartBeat,
                ..
            }) => continue,
            Some(Inbound {
                item: Decoded::Frame(frame),
                text,
            }) => return Ok(Some((frame, text))),
        }
    }
}

/// Sends an ERROR before a session exists, then closes.
async fn reject<W: FrameSink>(
    sink: &mut W,
    ctx: &ServerContext,
    error: SessionError,
    receipt: Option<&str>,
) {
    Metrics::incr(&ctx.broker.metrics().errors_sent);
    // The version is not negotiated yet: 1.0 framing needs no escaping any client misreads.
    let bytes = stompede_protocol::to_bytes(&error.into_frame(receipt), Version::V1_0);
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        carrier::write_frame(sink, &bytes, true),
    )
    .await;
    sink.close().await;
}

fn receipt_frame(receipt: &str) -> Frame {
    Frame::new(Command::Receipt).header(names::RECEIPT_ID, receipt)
}

struct Session {
    id: u64,
    user: Arc<str>,
    /// The peer's IP (its port dropped), for the audit log.
    address: Arc<str>,
    version: Version,
    broker: Broker,
    outbox: Arc<Outbox>,
    subscriptions: Subscriptions,
    transactions: Transactions,
    ctx: Arc<ServerContext>,
    /// Flow control held the frame being handled (see [`FrameSource::paced`]).
    paced: bool,
}

impl Session {
    async fn read_loop<S: FrameSource>(
        &mut self,
        source: &mut S,
        decoder: &mut Decoder,
        incoming: Option<Duration>,
    ) -> Ended {
        // Pacing can hold the loop away from the socket; time spent handling a frame counts
        // as activity, so a paced publisher never looks silent.
        let mut last_handled = Instant::now();
        loop {
            // In a block: what lives across the await below is part of every idle session.
            let deadline = {
                let silent_since = source.last_activity().max(last_handled);
                earliest(
                    earliest(
                        incoming.map(|limit| silent_since + limit),
                        self.keepalive_deadline::<S>(silent_since),
                    ),
                    self.slow_frame_deadline(source, last_handled),
                )
            };
            let next = tokio::select! {
                _ = self.outbox.closed() => return Ended::ByServer,
                _ = sleep_until(deadline) => {
                    let silent_since = source.last_activity().max(last_handled);
                    let now = Instant::now();
                    if let Some(limit) = incoming {
                        if silent_since + limit <= now {
                            Metrics::incr(&self.broker.metrics().heartbeat_timeouts);
                            tracing::info!(session = self.id, user = %self.user, "heart-beat timeout");
                            self.fail(SessionError::new("heart-beat timeout", format!("No data from the client for {} ms (negotiated interval times the tolerance).", limit.as_millis())), None);
                            return Ended::ByServer;
                        }
                    }
                    if self
                        .slow_frame_deadline(source, last_handled)
                        .is_some_and(|cutoff| cutoff <= now)
                    {
                        Metrics::incr(&self.broker.metrics().slow_frames);
                        tracing::info!(session = self.id, user = %self.user, "frame too slow");
                        let (allowance, rate) = self.ctx.config.slow_frame_limit().unwrap_or_default();
                        self.fail(SessionError::new("frame too slow", format!("A frame must complete within {} ms plus one second for every {rate} bytes received.", allowance.as_millis())), None);
                        return Ended::ByServer;
                    }
                    if let Some((interval, timeout)) = self.keepalive::<S>() {
                        if silent_since + interval + timeout <= now {
                            Metrics::incr(&self.broker.metrics().ping_timeouts);
                            tracing::info!(session = self.id, user = %self.user, "ping timeout");
                            self.fail(SessionError::new("ping timeout", format!("No answer to a WebSocket ping within {} ms.", timeout.as_millis())), None);
                            return Ended::ByServer;
                        }
                        if silent_since + interval <= now {
                            source.ping();
                        }
                    }
                    continue;
                }
                next = source.next(decoder) => next,
            };
            match next {
                Ok(None) => return Ended::ByPeer,
                Ok(Some(Inbound {
                    item: Decoded::HeartBeat,
                    ..
                })) => {}
                Ok(Some(Inbound {
                    item: Decoded::Frame(frame),
                    text,
                })) => {
                    Metrics::incr(&self.broker.metrics().frames_received);
                    // Boxed: handling a frame (routing, flow control, store commits, /app
                    // handlers) needs ~2 KiB of future state, which would otherwise be part of
                    // every session's task for its whole life, idle or not. One allocation per
                    // frame is cheap next to routing it.
                    let flow = Box::pin(self.handle(frame, text)).await;
                    last_handled = Instant::now();
                    if std::mem::take(&mut self.paced) && source.paced() {
                        Metrics::incr(&self.broker.metrics().receive_buffers_bounded);
                    }
                    if let Flow::Stop = flow {
                        return Ended::ByServer;
                    }
                }
                Err(InboundError::Decode(error)) => {
                    Metrics::incr(&self.broker.metrics().protocol_errors);
                    tracing::warn!(session = self.id, user = %self.user, code = error.code(), "{error}");
                    self.fail(
                        SessionError::new(
                            error.to_string(),
                            "The frame could not be read; the connection is closed.",
                        ),
                        None,
                    );
                    return Ended::ByServer;
                }
                Err(InboundError::Io(error)) => {
                    tracing::debug!(session = self.id, %error, "read failed");
                    // InvalidData: the transport refused the peer's bytes (a WebSocket protocol
                    // error) and its close frame is on the way; anything else is a broken link.
                    return match error.kind() {
                        std::io::ErrorKind::InvalidData => Ended::ByServer,
                        _ => Ended::ByPeer,
                    };
                }
            }
        }
    }

    /// The transport's keep-alive, when it has one and it is on: how long the peer may be
    /// silent before it is pinged, and how long it then has to send anything.
    fn keepalive<S: FrameSource>(&self) -> Option<(Duration, Duration)> {
        if S::PINGS {
            self.ctx.config.ws_keepalive()
        } else {
            None
        }
    }

    /// When the keep-alive next has something to do for a peer silent since `silent_since`:
    /// ping it, or, once pinged, give up on it.
    /// When the frame now arriving is cut off (`frame-timeout-ms`, `frame-min-rate`): its
    /// allowance runs from its first byte, or from the end of the last frame's handling when
    /// that came later (flow control may hold a publisher's reads while its next frame waits
    /// in the buffer), and grows a second for every `frame-min-rate` bytes received.
    ///
    /// With no frame under way, the earliest a frame starting from now could be due: the
    /// source reads on without returning while a frame trickles in, so the loop must wake to
    /// look (an idle session once per allowance).
    fn slow_frame_deadline<S: FrameSource>(
        &self,
        source: &S,
        last_handled: Instant,
    ) -> Option<Instant> {
        let (allowance, rate) = self.ctx.config.slow_frame_limit()?;
        let Some((since, buffered)) = source.partial() else {
            return Some(Instant::now() + allowance);
        };
        let earned = match rate {
            0 => Duration::ZERO,
            rate => Duration::from_millis((buffered as u64).saturating_mul(1000) / rate),
        };
        Some(since.max(last_handled) + allowance + earned)
    }

    fn keepalive_deadline<S: FrameSource>(&self, silent_since: Instant) -> Option<Instant> {
        let (interval, timeout) = self.keepalive::<S>()?;
        let ping = silent_since + interval;
        Some(if Instant::now() < ping {
            ping
        } else {
            ping + timeout
        })
    }

    /// Acts on one frame; sends its RECEIPT when it asked for one, or an ERROR.
    async fn handle(&mut self, frame: Frame, text: Option<bool>) -> Flow {
        let receipt = frame.headers.get_shared(names::RECEIPT);
        let command = frame.command;
        let mut reply = AppReply::default();
        let result = match command {
            Command::Send => self.send(frame, text).await.map(|r| reply = r),
            Command::Subscribe => {
                let subscribed = self
                    .subscriptions
                    .subscribe(
                        &frame,
                        self.version,
                        &self.user,
                        &self.outbox,
                        &self.broker,
                        self.ctx.config.max_subscriptions_per_session,
                    )
                    .await;
                match subscribed {
                    // On a cluster member the RECEIPT (and this session's next frame) waits
                    // until the other nodes route the destination here (bounded by the link):
                    // a message published anywhere after the RECEIPT reaches the subscription.
                    Ok(interest) => {
                        interest.registered().await;
                        Ok(())
                    }
                    Err(error) => Err(error),
                }
            }
            Command::Unsubscribe => {
                self.subscriptions
                    .unsubscribe(&frame, self.version, &self.user, &self.broker)
            }
            Command::Ack | Command::Nack => self.acknowledge(frame, text),
            Command::Begin => self
                .transaction_id(&frame)
                .and_then(|id| self.transactions.begin(&id)),
            Command::Commit => self.commit(&frame).await,
            Command::Abort => self
                .transaction_id(&frame)
                .and_then(|id| self.transactions.abort(&id)),
            Command::Disconnect => {
                if let Some(receipt) = &receipt {
                    // Everything acknowledged before the DISCONNECT is on disk first.
                    if let Err(error) = self.broker.commit_own().await {
                        tracing::error!(%error, "store commit failed");
                    }
                    let _ = self
                        .outbox
                        .push_reply(Outgoing::Frame(receipt_frame(receipt)));
                }
                self.outbox.close(CloseReason::Finished);
                return Flow::Stop;
            }
            Command::Connect | Command::Stomp => Err(SessionError::new(
                "already connected",
                "CONNECT may only be sent once per session.",
            )),
            Command::Connected | Command::Message | Command::Receipt | Command::Error => {
                Err(SessionError::new(
                    format!("{command} is a server frame"),
                    "Clients may not send CONNECTED, MESSAGE, RECEIPT or ERROR frames.",
                ))
            }
        };
        // A RECEIPT promises that the frame's effect is durable: persistent messages stored,
        // acknowledged ones removed. Concurrent sessions share one flush (group commit).
        let result = match (result, &receipt) {
            (Ok(()), Some(_)) => self.broker.commit_own().await.map_err(|e| {
                SessionError::new(
                    format!("store failure: {e}"),
                    "The frame was processed but could not be made durable.",
                )
            }),
            (result, _) => result,
        };
        match result {
            Ok(()) => {
                if let (Some(receipt), false) = (receipt, reply.refused) {
                    let mut frame = receipt_frame(&receipt);
                    for (name, value) in reply.receipt_headers {
                        frame = frame.header(name, value);
                    }
                    let _ = self.outbox.push_reply(Outgoing::Frame(frame));
                }
                if self.outbox.is_full() {
                    // Its answers (RECEIPTs) and messages wait in its outbox: a client that
                    // sends faster than it reads is paced here, like any publisher to a full
                    // outbox, and cut off only once the grace runs out. (Here, in the boxed
                    // frame handling, the wait takes no room in an idle session's task.)
                    self.paced = true;
                    if self.outbox.room_or_cut_off().await {
                        return Flow::Stop;
                    }
                }
                Flow::Continue
            }
            Err(error) => {
                Metrics::incr(&self.broker.metrics().protocol_errors);
                tracing::warn!(session = self.id, user = %self.user, %command, message = %error.message, "frame refused");
                self.fail(error, receipt.as_deref());
                Flow::Stop
            }
        }
    }

    fn transaction_id(&self, frame: &Frame) -> Result<bytestring::ByteString, SessionError> {
        frame
            .headers
            .get_shared(names::TRANSACTION)
            .ok_or_else(|| missing(frame, names::TRANSACTION))
    }

    async fn send(&mut self, frame: Frame, text: Option<bool>) -> Result<AppReply, SessionError> {
        if frame.get(names::DESTINATION).is_none() {
            return Err(missing(&frame, names::DESTINATION));
        }
        if let Some(tx) = frame.get(names::TRANSACTION).map(str::to_owned) {
            let max = self.ctx.config.max_transaction_frames;
            return self
                .transactions
                .hold(&tx, frame, text, max)
                .map(|()| AppReply::default());
        }
        self.apply_send(frame, text).await
    }

    async fn apply_send(
        &mut self,
        frame: Frame,
        text: Option<bool>,
    ) -> Result<AppReply, SessionError> {
        let Some(destination) = frame.headers.get_shared(names::DESTINATION) else {
            return Err(missing(&frame, names::DESTINATION));
        };
        if destination.starts_with("/app/") {
            let Some(handler) = self.broker.app_handler(&destination) else {
                return Err(SessionError::new(
                    format!("no handler for {destination}"),
                    "No server-side handler is registered for this /app/ destination.",
                ));
            };
            let request = AppRequest {
                user: self.user.clone(),
                session: self.id,
                address: self.address.clone(),
                destination,
                headers: frame.headers,
                body: frame.body,
                broker: self.broker.clone(),
            };
            return handler.handle(request).await.map_err(|e| {
                SessionError::new(e.message, "The application handler refused the message.")
            });
        }
        let text = text.unwrap_or_else(|| std::str::from_utf8(&frame.body).is_ok());
        let message = self
            .broker
            .message(destination, &frame.headers, frame.body, text);
        let wait = self
            .broker
            .publish_now(&self.user, message)
            .map_err(|e| SessionError::new(e.to_string(), "The message was not accepted."))?;
        self.paced |= wait.is_pending();
        wait.wait().await;
        Ok(AppReply::default())
    }

    fn acknowledge(&mut self, frame: Frame, text: Option<bool>) -> Result<(), SessionError> {
        if let Some(tx) = frame.get(names::TRANSACTION).map(str::to_owned) {
            let max = self.ctx.config.max_transaction_frames;
            return self.transactions.hold(&tx, frame, text, max);
        }
        let nack = frame.command == Command::Nack;
        if nack && self.version == Version::V1_0 {
            return Err(SessionError::new(
                "NACK is not part of STOMP 1.0",
                "Negotiate STOMP 1.1 or later to use NACK.",
            ));
        }
        self.subscriptions.acknowledge(&frame, nack)
    }

    async fn commit(&mut self, frame: &Frame) -> Result<(), SessionError> {
        let id = self.transaction_id(frame)?;
        for (mut held, text) in self.transactions.commit(&id)? {
            held.headers.remove(names::TRANSACTION);
            held.headers.remove(names::RECEIPT);
            match held.command {
                Command::Send => {
                    self.apply_send(held, text).await?;
                }
                _ => self.acknowledge(held, text)?,
            }
        }
        Ok(())
    }

    /// Ends the session with an ERROR after what is already queued.
    fn fail(&self, error: SessionError, receipt: Option<&str>) {
        self.outbox
            .close(CloseReason::Error(Box::new(error.into_frame(receipt))));
    }

    /// Cleans up: subscriptions removed, unacked queue messages returned, transactions dropped.
    fn finish(&mut self) {
        self.subscriptions.clear(&self.broker);
        self.broker.unregister_session(self.id);
        self.outbox.close(CloseReason::Finished);
        tracing::debug!(session = self.id, user = %self.user, "session closed");
    }
}

/// The earlier of two optional instants.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
