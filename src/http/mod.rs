//! The HTTP API next to `/ws`: uploads and jobs over REST, with the same users and rules as
//! STOMP. Every error is `application/problem+json` with a stable `code` (`problem.rs`),
//! the router's own 404 and 405 included.

mod caller;
mod jobs;
mod problem;
mod uploads;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;

use crate::context::ServerContext;
use problem::Problem;

/// The API's routes.
pub(crate) fn router(ctx: Arc<ServerContext>) -> Router {
    Router::new()
        .route(
            "/api/uploads",
            // Uploads are bounded by the server's own limit, checked as they stream.
            post(uploads::create).layer(DefaultBodyLimit::disable()),
        )
        .route("/api/uploads/{id}", get(uploads::get))
        .route("/api/jobs", post(jobs::create).get(jobs::list))
        .route("/api/jobs/{id}", get(jobs::get).delete(jobs::delete))
        .route("/api/jobs/{id}/files/{name}", get(jobs::file))
        .route("/api/jobs/{id}/result", get(jobs::result))
        .route("/api/jobs/{id}/events", get(jobs::events))
        .route("/api/jobs/{id}/{action}", post(jobs::control))
        .route("/api/stats", get(jobs::stats))
        .fallback(not_found)
        .method_not_allowed_fallback(not_allowed)
        .with_state(ctx)
}

async fn not_found() -> Problem {
    Problem::not_found("no such route")
}

async fn not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method",
    )
}
