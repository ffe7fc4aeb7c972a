//! WebSocket STOMP (at `/ws` on the HTTP port), as @stomp/stompjs, RabbitMQ Web-STOMP and
//! Spring speak it: one frame per message usually, but several frames in one message and one
//! frame across messages are accepted too.

use std::io;
use std::sync::Arc;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::{Bytes, BytesMut};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use stompede_protocol::{Decoder, Version};
use tokio::time::Instant;

use super::{FrameSink, FrameSource, Inbound, InboundError};
use crate::server::ServerContext;
use crate::session;

/// The subprotocols offered, most preferred first.
const SUBPROTOCOLS: [&str; 3] = ["v12.stomp", "v11.stomp", "v10.stomp"];

/// Reads frames from WebSocket messages.
pub struct WsSource {
    stream: SplitStream<WebSocket>,
    buf: BytesMut,
    /// Kind of the message the buffered bytes came from.
    text: bool,
    /// A message ended and the decoder has not yet been told.
    message_ended: bool,
    lenient: bool,
    last_activity: Instant,
}

impl FrameSource for WsSource {
    async fn next(&mut self, decoder: &mut Decoder) -> Result<Option<Inbound>, InboundError> {
        loop {
            if let Some(item) = decoder.decode(&mut self.buf)? {
                return Ok(Some(Inbound {
                    item,
                    text: Some(self.text),
                }));
            }
            if std::mem::take(&mut self.message_ended) && self.lenient {
                if let Some(item) = decoder.decode_end_of_message(&mut self.buf)? {
                    return Ok(Some(Inbound {
                        item,
                        text: Some(self.text),
                    }));
                }
            }
            let message = match self.stream.next().await {
                None => return Ok(None),
                Some(Err(error)) => return Err(InboundError::Io(io::Error::other(error))),
                Some(Ok(message)) => message,
            };
            self.last_activity = Instant::now();
            match message {
                Message::Text(text) => {
                    self.buf.extend_from_slice(text.as_bytes());
                    self.text = true;
                    self.message_ended = true;
                }
                Message::Binary(bytes) => {
                    self.buf.extend_from_slice(&bytes);
                    self.text = false;
                    self.message_ended = true;
                }
                Message::Close(_) => return Ok(None),
                // Pongs are answered by the library; both count as activity.
                Message::Ping(_) | Message::Pong(_) => {}
            }
        }
    }

    fn last_activity(&self) -> Instant {
        self.last_activity
    }
}

/// Writes frames as WebSocket messages.
pub struct WsSink {
    sink: SplitSink<WebSocket, Message>,
}

impl FrameSink for WsSink {
    fn is_stream(&self) -> bool {
        false
    }

    async fn write(&mut self, bytes: Bytes, text: bool) -> io::Result<()> {
        let message = if text {
            match Utf8Bytes::try_from(bytes) {
                Ok(text) => Message::Text(text),
                Err(_) => return Err(io::Error::other("text frame is not UTF-8")),
            }
        } else {
            Message::Binary(bytes)
        };
        self.sink.feed(message).await.map_err(io::Error::other)
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.sink.flush().await.map_err(io::Error::other)
    }

    async fn close(&mut self) {
        let _ = self.sink.close().await;
    }
}

/// The WebSocket routes, to mount on the HTTP server (or an embedding application's router).
pub fn router(ctx: Arc<ServerContext>) -> Router {
    Router::new().route("/ws", get(upgrade)).with_state(ctx)
}

async fn upgrade(State(ctx): State<Arc<ServerContext>>, ws: WebSocketUpgrade) -> Response {
    let metrics = ctx.broker.metrics();
    crate::broker::metrics::Metrics::incr(&metrics.connections_accepted);
    if !ctx.rate.admit() {
        crate::broker::metrics::Metrics::incr(&metrics.connections_rate_limited);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "connection rate limit exceeded; retry later",
        )
            .into_response();
    }
    let limit = ctx.config.frame_limits().max_frame_bytes();
    // Small read buffer: tungstenite's default (128 KiB) made an idle WebSocket session cost
    // ~148 KiB; frames larger than it still arrive, the buffer grows for them.
    let ws = ws
        .read_buffer_size(8 * 1024)
        .write_buffer_size(16 * 1024)
        .protocols(SUBPROTOCOLS)
        .max_message_size(limit)
        .max_frame_size(limit);
    let version_hint = ws
        .selected_protocol()
        .and_then(|p| p.to_str().ok())
        .and_then(Version::from_subprotocol);
    let tracker = ctx.tracker.clone();
    ws.on_upgrade(move |socket| {
        let task = tracker.track_future(async move {
            let (sink, stream) = socket.split();
            let source = WsSource {
                stream,
                buf: BytesMut::new(),
                text: true,
                message_ended: false,
                lenient: ctx.config.lenient_websocket_frames,
                last_activity: Instant::now(),
            };
            session::run(
                ctx,
                source,
                WsSink { sink },
                version_hint,
                "websocket".into(),
            )
            .await;
        });
        task
    })
}
