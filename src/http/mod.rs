//! The HTTP API next to `/ws`: uploads and jobs over REST, with the same users and rules as
//! STOMP. Every error is `application/problem+json` with a stable `code` (`problem.rs`),
//! the router's own 404 and 405 included.

mod broker;
mod caller;
mod dashboard;
mod jobs;
mod pages;
mod problem;
mod resumable;
mod tokens;
mod uploads;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, head, options, patch, post};
use axum::Router;

use crate::context::ServerContext;
use problem::Problem;

/// Declares the routes once: `ROUTES` (method and path, checked against the OpenAPI
/// description by a test) and the router that serves them come from the same list, so neither
/// can gain a route the other lacks.
macro_rules! api {
    ($($method:ident $path:literal => $route:expr,)*) => {
        /// Every API route, as `(method, path)`.
        pub(crate) const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),*];

        fn routes() -> Router<Arc<ServerContext>> {
            let router = Router::new();
            $(let router = router.route($path, $route);)*
            router
        }
    };
}

api! {
    // Uploads are bounded by the server's own limit, checked as they stream.
    post "/api/uploads" => post(uploads::create).layer(DefaultBodyLimit::disable()),
    get "/api/uploads/{id}" => get(uploads::get),
    // Resumable uploads (tus 1.0.0); each PATCH is bounded by the upload's declared length.
    options "/api/uploads/tus" => options(resumable::options),
    post "/api/uploads/tus" => post(resumable::create),
    head "/api/uploads/tus/{id}" => head(resumable::head),
    patch "/api/uploads/tus/{id}" => patch(resumable::patch).layer(DefaultBodyLimit::disable()),
    delete "/api/uploads/tus/{id}" => delete(resumable::delete),
    post "/api/jobs" => post(jobs::create),
    // Two uploads and the job in one request; bounded by the upload limit, as uploads are.
    post "/api/reconciliations" => post(uploads::reconciliation).layer(DefaultBodyLimit::disable()),
    get "/api/jobs" => get(jobs::list),
    get "/api/jobs/{id}" => get(jobs::get),
    delete "/api/jobs/{id}" => delete(jobs::delete),
    get "/api/jobs/{id}/result" => get(jobs::result),
    get "/api/jobs/{id}/events" => get(jobs::events),
    get "/api/jobs/{id}/files/{name}" => get(jobs::file),
    get "/api/jobs/{id}/pages/{page}" => get(pages::page),
    post "/api/jobs/{id}/{action}" => post(jobs::control),
    get "/api/stats" => get(jobs::stats),
    post "/api/tokens" => post(tokens::issue),
    get "/api/destinations" => get(broker::destinations),
    post "/api/queues/{name}/purge" => post(broker::purge),
    get "/api/sessions" => get(broker::sessions),
}

/// The API's routes.
pub(crate) fn router(ctx: Arc<ServerContext>) -> Router {
    let cors = cors(&ctx.config.allowed_origins);
    let router = routes()
        .route_layer(axum::middleware::from_fn_with_state(ctx.clone(), count))
        .merge(dashboard::router())
        .fallback(not_found)
        .method_not_allowed_fallback(not_allowed)
        .with_state(ctx);
    match cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// Cross-origin access for the configured origins only (browsers enforce it; a page on another
/// site gets no `Access-Control-Allow-Origin` and cannot read the answers). `None` when no
/// origin is configured: same-origin pages need no CORS.
fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{header, HeaderName, HeaderValue, Method};
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        tower_http::cors::CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::DELETE,
                Method::HEAD,
                Method::PATCH,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::CONTENT_DISPOSITION,
                header::RANGE,
                header::IF_NONE_MATCH,
                HeaderName::from_static("last-event-id"),
                HeaderName::from_static("tus-resumable"),
                HeaderName::from_static("upload-length"),
                HeaderName::from_static("upload-metadata"),
                HeaderName::from_static("upload-offset"),
            ])
            .expose_headers([
                header::ETAG,
                header::CONTENT_RANGE,
                header::RETRY_AFTER,
                header::LOCATION,
                HeaderName::from_static("tus-resumable"),
                HeaderName::from_static("tus-version"),
                HeaderName::from_static("tus-extension"),
                HeaderName::from_static("tus-max-size"),
                HeaderName::from_static("upload-offset"),
                HeaderName::from_static("upload-length"),
                HeaderName::from_static("upload-expires"),
            ])
            .allow_credentials(true)
            .max_age(std::time::Duration::from_secs(600)),
    )
}

/// Counts each answer of a matched route under its template (`/api/jobs/{id}`), so that ids
/// do not multiply the series.
async fn count(
    State(ctx): State<Arc<ServerContext>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .and_then(|matched| ROUTES.iter().find(|(_, path)| *path == matched.as_str()))
        .map_or("other", |(_, path)| *path);
    let response = next.run(request).await;
    ctx.http_requests.record(route, response.status().as_u16());
    response
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeSet;

    use super::ROUTES;

    #[test]
    fn the_openapi_description_lists_exactly_the_routes_served() {
        let spec: serde_json::Value =
            serde_json::from_str(include_str!("../../protocol/docs/openapi.json")).unwrap();
        let described: BTreeSet<(String, String)> = spec["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, operations)| {
                operations
                    .as_object()
                    .unwrap()
                    .keys()
                    .map(move |method| (method.clone(), path.clone()))
            })
            .collect();
        let served: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
            .collect();
        assert_eq!(described, served);
    }
}
