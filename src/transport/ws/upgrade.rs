//! The WebSocket opening handshake (RFC 6455 section 4.2) on the HTTP server, and the session
//! it starts: on the upgraded socket's own halves when the connection is our listener's.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use bytes::Bytes;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use sha1::{Digest, Sha1};
use stompede_protocol::Version;

use super::{ReadOptions, Shared, WsSink, WsSource};
use crate::context::ServerContext;
use crate::session;
use crate::transport::stream::Stream;

/// The subprotocols offered, most preferred first.
const SUBPROTOCOLS: [&str; 3] = ["v12.stomp", "v11.stomp", "v10.stomp"];

/// RFC 6455 section 1.3: appended to the client's key before hashing.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A source and a sink over the two halves of one upgraded connection; `already_read` is
/// what the HTTP server read past the request head.
pub(super) fn source_and_sink<R, W>(
    read: R,
    write: W,
    already_read: Bytes,
    options: ReadOptions,
) -> (WsSource<R>, WsSink<W>) {
    let shared = Arc::new(Shared::default());
    (
        WsSource::new(read, already_read, shared.clone(), options),
        WsSink {
            write,
            shared,
            transport: "websocket",
        },
    )
}

/// Runs the session of an upgraded connection.
async fn serve(
    ctx: Arc<ServerContext>,
    upgraded: Upgraded,
    options: ReadOptions,
    version: Option<Version>,
    peer: String,
) {
    match upgraded.downcast::<TokioIo<Stream>>() {
        // Our own HTTP server's connections: the socket itself (or TLS over it), without
        // hyper's layers in between, so its receive buffer can be bounded once it is paced.
        Ok(parts) => {
            let stream = parts.io.into_inner();
            let secure = stream.is_tls();
            let (read, write) = stream.into_split();
            let (source, mut sink) = source_and_sink(read, write, parts.read_buf, options);
            if secure {
                sink.transport = "websocket+tls";
            }
            session::run(ctx, source, sink, version, peer).await;
        }
        // Any other connection (the router mounted on another server, or a hyper that wraps
        // its connections differently): served through hyper's layers, never bounded.
        Err(upgraded) => {
            let (read, write) = tokio::io::split(TokioIo::new(upgraded));
            let (source, sink) = source_and_sink(read, write, Bytes::new(), options);
            session::run(ctx, source, sink, version, peer).await;
        }
    }
}

/// The WebSocket routes, to mount on the HTTP server (or an embedding application's router).
pub fn router(ctx: Arc<ServerContext>) -> Router {
    Router::new().route("/ws", get(upgrade)).with_state(ctx)
}

/// True when the comma-separated header `name` holds `token` (ASCII case-insensitive).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// The subprotocol to answer with: ours in our order of preference, among those offered.
fn choose_subprotocol(headers: &HeaderMap) -> Option<&'static str> {
    let offered: Vec<&str> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    SUBPROTOCOLS.into_iter().find(|p| offered.contains(p))
}

/// Checks a request for an opening handshake (RFC 6455 section 4.2.1) and returns the
/// `Sec-WebSocket-Accept` value to answer it with, or the refusal. Shared with SockJS's
/// WebSocket transports.
pub(crate) fn accept_key(request: &Request) -> Result<String, Box<Response>> {
    let headers = request.headers();
    if request.method() != Method::GET
        || !has_token(headers, header::UPGRADE, "websocket")
        || !has_token(headers, header::CONNECTION, "upgrade")
    {
        return Err(Box::new(
            (StatusCode::BAD_REQUEST, "expected a WebSocket upgrade\n").into_response(),
        ));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return Err(Box::new(
            (
                StatusCode::UPGRADE_REQUIRED,
                [(header::SEC_WEBSOCKET_VERSION, "13")],
                "WebSocket version 13 only\n",
            )
                .into_response(),
        ));
    }
    // Section 4.2.1: one key, 16 bytes in base64.
    let mut keys = headers.get_all(header::SEC_WEBSOCKET_KEY).iter();
    let Some(key) = keys.next().filter(|key| {
        base64::engine::general_purpose::STANDARD
            .decode(key.as_bytes())
            .is_ok_and(|raw| raw.len() == 16)
    }) else {
        return Err(Box::new(
            (StatusCode::BAD_REQUEST, "no valid Sec-WebSocket-Key\n").into_response(),
        ));
    };
    if keys.next().is_some() {
        return Err(Box::new(
            (StatusCode::BAD_REQUEST, "more than one Sec-WebSocket-Key\n").into_response(),
        ));
    }
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(ACCEPT_GUID.as_bytes());
    Ok(base64::engine::general_purpose::STANDARD.encode(sha.finalize()))
}

/// The `101 Switching Protocols` answer to a valid opening handshake.
pub(crate) fn switching_protocols(accept: &str, protocol: Option<&'static str>) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Ok(accept) = HeaderValue::from_str(accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    if let Some(protocol) = protocol {
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(protocol),
        );
    }
    response
}

/// The opening handshake, server side (RFC 6455 section 4.2).
async fn upgrade(State(ctx): State<Arc<ServerContext>>, mut request: Request) -> Response {
    let metrics = ctx.broker.metrics();
    let accept = match accept_key(&request) {
        Ok(accept) => accept,
        Err(refusal) => return *refusal,
    };
    let headers = request.headers();
    if !crate::transport::origin::allowed(headers, &ctx.config.allowed_origins) {
        tracing::warn!(origin = ?headers.get(header::ORIGIN), "WebSocket from another site refused");
        return (
            StatusCode::FORBIDDEN,
            "this page's origin may not open a session: add it with --allowed-origin\n",
        )
            .into_response();
    }
    let protocol = choose_subprotocol(headers);
    let Some(on_upgrade) = request
        .extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>()
    else {
        return (
            StatusCode::BAD_REQUEST,
            "this connection cannot be upgraded\n",
        )
            .into_response();
    };
    // Counted once the handshake is valid, as the TCP listener counts what it accepts
    // (rate-limited connections included).
    crate::broker::metrics::Metrics::incr(&metrics.connections_accepted);
    if !ctx.rate.admit() {
        crate::broker::metrics::Metrics::incr(&metrics.connections_rate_limited);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "connection rate limit exceeded; retry later",
        )
            .into_response();
    }
    let version_hint = protocol.and_then(Version::from_subprotocol);
    // The client's address, for the session's log lines (set by our HTTP listener).
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| String::from("websocket"), |info| info.0.to_string());
    let options = ReadOptions {
        lenient: ctx.config.lenient_websocket_frames,
        max_message: ctx.config.frame_limits().max_frame_bytes(),
        paced_receive_buffer: crate::transport::socket::paced_bound(
            ctx.config.tcp_receive_buffer,
            ctx.config.paced_receive_buffer,
        ),
    };
    let tracker = ctx.tracker.clone();
    tracker.spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(error) => {
                tracing::debug!(%error, "WebSocket upgrade failed");
                return;
            }
        };
        serve(ctx, upgraded, options, version_hint, peer).await;
    });
    switching_protocols(&accept, protocol)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subprotocols_are_chosen_in_our_order() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("v10.stomp, v12.stomp"),
        );
        assert_eq!(choose_subprotocol(&headers), Some("v12.stomp"));
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("mqtt"),
        );
        assert_eq!(choose_subprotocol(&headers), None);
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(has_token(&headers, header::CONNECTION, "upgrade"));
    }
}
