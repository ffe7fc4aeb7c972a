//! Embeds stompede in an axum application on one port: the application's own routes and
//! stompede's (WebSocket STOMP at `/ws`, the HTTP API, the dashboard at `/`) served together.
//! A route of the application submits a job on behalf of the caller; browsers watch it over
//! `/ws` like any STOMP client.
//!
//! Run with `cargo run --example axum_app -- 127.0.0.1:8080`, then open
//! `http://127.0.0.1:8080/`, or `curl -X POST http://127.0.0.1:8080/reports` and watch
//! `/topic/jobs/<id>` from the dashboard.

use std::net::SocketAddr;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use stompede::jobs::{Demo, JobEngine};
use stompede::protocol::Headers;
use stompede::{BrokerBuilder, Config};

/// The application's own route: starts a report (a `demo` job here) as user `reports`.
async fn start_report(State(jobs): State<JobEngine>) -> Json<serde_json::Value> {
    let mut headers = Headers::new();
    headers.push("job-type", "demo");
    match jobs
        .submit("reports", &headers, br#"{"chunks":20,"chunkDelayMs":100}"#)
        .await
    {
        Ok(job) => {
            Json(serde_json::json!({ "jobId": job.id, "watch": format!("/topic/jobs/{}", job.id) }))
        }
        Err(rejection) => Json(serde_json::json!({ "error": rejection.reason })),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned())
        .parse()?;
    let config = Config {
        data_dir: std::env::temp_dir().join("stompede-axum-example"),
        // The application serves HTTP itself; stompede keeps its STOMP-over-TCP listener.
        http: None,
        stomp: Some("127.0.0.1:0".parse()?),
        ..Config::default()
    };
    let server = BrokerBuilder::new(config)
        .job_type("demo", Demo::default())
        .start()
        .await?;
    let jobs = server.jobs().cloned().ok_or("no job engine")?;

    let app = Router::new()
        .route("/hello", get(|| async { "hello from the application\n" }))
        .route("/reports", post(start_report))
        .with_state(jobs)
        .merge(server.http_router());
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    server.shutdown().await;
    Ok(())
}
