//! A WebSocket echo server on stompede's WebSocket code (the same framing, UTF-8 checks,
//! limits, ping answers and closing handshake that carry STOMP at `/ws` on `stompede serve`),
//! for the Autobahn WebSocket test suite's fuzzing client: every text and binary message sent
//! to `ws://ADDR/` (any path) comes back, with the broker's default limit of 16 MiB per
//! message, in any number of fragments.
//!
//! ```text
//! cargo run --release --example ws_echo -- 127.0.0.1:9001
//! scripts/autobahn.sh          # sets up the suite in a virtualenv and runs it against this
//! ```

use std::net::SocketAddr;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".into())
        .parse()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("WebSocket echo on ws://{}/", listener.local_addr()?);
    stompede::ws_echo::serve(listener, stompede::ws_echo::Options::default()).await?;
    Ok(())
}
