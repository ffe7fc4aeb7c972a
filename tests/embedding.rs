//! The broker inside an application's own axum server, one port for both (as
//! `examples/axum_app.rs` does): the application's routes, WebSocket STOMP, the API and the
//! dashboard all answer.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;

use axum::routing::get;
use stompede::protocol::Command;
use stompede::BrokerBuilder;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_axum_application_serves_the_broker_beside_its_own_routes() {
    let (mut config, _dir) = common::test_config();
    config.http = None;
    let server = BrokerBuilder::new(config).start().await.unwrap();
    assert_eq!(server.http_addr(), None, "the application serves HTTP");
    let app = axum::Router::new()
        .route("/hello", get(|| async { "hello from the application" }))
        .merge(server.http_router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });

    let get = |path: &str| {
        let url = format!("http://{addr}{path}");
        async move {
            tokio::task::spawn_blocking(move || {
                let out = std::process::Command::new("curl")
                    .args(["-sS", &url])
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout).into_owned()
            })
            .await
            .unwrap()
        }
    };
    assert_eq!(get("/hello").await, "hello from the application");
    assert_eq!(get("/health").await.trim(), "ok");
    assert!(get("/").await.contains("<title>stompede</title>"));

    // STOMP over the application's port, and a message from the application itself.
    let mut ws = common::Ws::connect(&format!("ws://{addr}/ws")).await;
    ws.subscribe("1", "/topic/app").await;
    server
        .local_client("app")
        .send("/topic/app", Default::default(), "from the app")
        .await
        .unwrap();
    let (frame, _) = ws.frame().await;
    assert_eq!(frame.command, Command::Message);
    assert_eq!(&frame.body[..], b"from the app");
    server.shutdown().await;
}
