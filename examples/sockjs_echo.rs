//! The SockJS protocol's standard test services, served on stompede's SockJS layer (the same
//! code that carries STOMP at `/sockjs` on `stompede serve`), for the public SockJS protocol
//! test suite (`sockjs-protocol.py` in the sockjs/sockjs-protocol repository):
//!
//! * `/echo`: every message comes back;
//! * `/close`: every session is closed at once with `c[3000,"Go away!"]`;
//! * `/disabled_websocket_echo`: `/echo` without the WebSocket transports;
//! * `/cookie_needed_echo`: `/echo` with the `JSESSIONID` cookie.
//!
//! As sockjs-node's test server does, streaming responses end after 4,096 bytes.
//!
//! ```text
//! cargo run --release --example sockjs_echo -- 127.0.0.1:8081
//! SOCKJS_URL=http://127.0.0.1:8081 ./venv/bin/python sockjs-protocol.py
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use stompede::sockjs::{self, Connection, Options, Service};

/// Sends every message back.
struct Echo;

impl Service for Echo {
    fn open(&self, mut connection: Connection) {
        tokio::spawn(async move {
            while let Some(message) = connection.recv().await {
                if connection.send([message]).await.is_err() {
                    break;
                }
            }
        });
    }
}

/// Closes every session as soon as it opens.
struct Close;

impl Service for Close {
    fn open(&self, connection: Connection) {
        connection.close(3000, "Go away!");
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8081".into())
        .parse()?;
    let options = Options {
        response_limit: 4096,
        ..Options::default()
    };
    let app = sockjs::router("/echo", Arc::new(Echo), options.clone())
        .merge(sockjs::router("/close", Arc::new(Close), options.clone()))
        .merge(sockjs::router(
            "/disabled_websocket_echo",
            Arc::new(Echo),
            Options {
                websocket: false,
                ..options.clone()
            },
        ))
        .merge(sockjs::router(
            "/cookie_needed_echo",
            Arc::new(Echo),
            Options {
                jsessionid: true,
                ..options
            },
        ));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("sockjs_echo listening on http://{}", listener.local_addr()?);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
