//! Embeds stompede in an application: starts the broker inside the application's own tokio
//! runtime, registers an `/app/` handler, and publishes from the application without a socket.
//!
//! Run with `cargo run --example embedded`, then connect a STOMP client to the printed
//! addresses and send to `/app/greet` while subscribed to `/user/queue/greetings`.

use std::time::Duration;

use stompede::protocol::Headers;
use stompede::{AppError, AppRequest, BrokerBuilder, Config};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join("stompede-embedded-example");
    let config = Config {
        data_dir: dir,
        stomp: Some("127.0.0.1:0".parse()?),
        http: Some("127.0.0.1:0".parse()?),
        ..Config::default()
    };
    let server = BrokerBuilder::new(config)
        // A server-side handler: replies on the sender's private destination.
        .app_handler("/app/greet", |request: AppRequest| async move {
            let name = String::from_utf8_lossy(&request.body).trim().to_owned();
            let reply = request.broker.message(
                format!("/user/{}/queue/greetings", request.user).into(),
                &Headers::new(),
                format!("hello, {name}").into(),
                true,
            );
            request
                .broker
                .publish(&request.user, reply)
                .await
                .map_err(|e| AppError::new(e.to_string()))
        })
        .start()
        .await?;
    println!("{}", server.listening_line());

    // The application itself subscribes and publishes in process.
    let app = server.local_client("app");
    let ticks = app.subscribe("/topic/ticks")?;
    app.send("/topic/ticks", Headers::new(), "tick 1").await?;
    if let Some(message) = ticks.next().await {
        println!(
            "in-process subscriber got {:?}",
            String::from_utf8_lossy(&message.body)
        );
    }

    // Serve for a moment (or until Ctrl-C), then shut down gracefully.
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    server.shutdown().await;
    Ok(())
}
