//! The HTTP listener: WebSocket upgrades, the REST and admin routes, over HTTP/1.1.
//!
//! Served with hyper's HTTP/1 connection rather than `axum::serve`, whose protocol detection
//! wraps every connection in a private type: here an upgraded WebSocket connection gives its
//! [`Stream`] (TCP, or TLS over TCP) back (`Upgraded::downcast`), so the session reads and
//! writes the socket without hyper's layers in between, and flow control can bound its
//! receive buffer.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_service::Service;

use super::stream::Stream;
use super::tls::Tls;
use crate::context::ServerContext;

/// Put in a response's extensions: the connection carrying the response is dropped when
/// `when` is cancelled, unless `unless` is cancelled first (the response ended). For a
/// streaming response whose client stopped reading: hyper, its socket full, never polls the
/// body again, so the body cannot end itself; only dropping the connection releases it.
#[derive(Debug, Clone)]
pub(crate) struct DropConnection {
    /// Drop the connection once this is cancelled...
    pub when: CancellationToken,
    /// ...unless this was cancelled first.
    pub unless: CancellationToken,
}

/// Accepts connections until shutdown, each served on its own task. With `tls` (the `https`
/// listener) the task does the TLS handshake first, then serves the same routes as over plain
/// HTTP: the WebSocket upgrade, SockJS, the API and the dashboard.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    ctx: Arc<ServerContext>,
    tls: Option<Arc<Tls>>,
) {
    loop {
        let accepted = tokio::select! {
            _ = ctx.shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                super::socket::tune(&stream, ctx.config.tcp_receive_buffer);
                super::socket::keepalive(&stream, ctx.config.tcp_keepalive_secs);
                let (app, ctx2, tls) = (app.clone(), ctx.clone(), tls.clone());
                ctx.tracker.spawn(async move {
                    let Some(stream) = super::tls::establish(stream, peer, tls, &ctx2).await else {
                        return;
                    };
                    connection(stream, peer, app, ctx2).await;
                });
            }
            Err(error) => super::accept_failed(&error).await,
        }
    }
}

/// Serves one connection's requests until it closes, is upgraded, or the server shuts down
/// (then the request in progress is finished first).
async fn connection(stream: Stream, peer: SocketAddr, app: Router, ctx: Arc<ServerContext>) {
    // Cancelled to drop the connection at once (a `DropConnection` fired), and when the
    // connection is over (which ends the watches of its responses).
    let kill = CancellationToken::new();
    let watch = (kill.clone(), ctx.tracker.clone());
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let mut app = app.clone();
        let (kill, tracker) = watch.clone();
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(peer));
        async move {
            let ready: Result<(), Infallible> = std::future::poll_fn(|cx| {
                Service::<axum::extract::Request>::poll_ready(&mut app, cx)
            })
            .await;
            ready?;
            let mut response = app.call(request).await?;
            if let Some(drop) = response.extensions_mut().remove::<DropConnection>() {
                tracker.spawn(async move {
                    tokio::select! {
                        // A response that ended was written whole: never cut it.
                        biased;
                        () = drop.unless.cancelled() => {}
                        () = kill.cancelled() => {}
                        () = drop.when.cancelled() => kill.cancel(),
                    }
                });
            }
            Ok::<_, Infallible>(response)
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // A bound on silent, idle and slow-header connections, each of which holds a descriptor.
    let header_timeout = ctx.config.http_header_timeout_ms;
    builder
        .timer(TokioTimer::new())
        .header_read_timeout((header_timeout > 0).then(|| Duration::from_millis(header_timeout)));
    let conn = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = kill.cancelled() => Ok(()),
        _ = ctx.shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                result = conn.as_mut() => result,
                () = kill.cancelled() => Ok(()),
            }
        }
    };
    kill.cancel();
    if let Err(error) = result {
        tracing::debug!(%error, "HTTP connection ended with an error");
    }
}
