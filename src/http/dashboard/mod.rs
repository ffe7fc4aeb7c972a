//! The dashboard at `/`: a page, its script and style, built into the binary (no CDN, works
//! offline). The page reads the HTTP API and follows jobs over STOMP on `/ws`
//! (`stomp.js`, a small client of its own), with the same users and rules as any client.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// One built-in file: its name under `/dashboard/`, type and content.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const INDEX: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_str!("index.html"),
};

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("app.js"),
    },
    Asset {
        name: "extraction.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("extraction.js"),
    },
    Asset {
        name: "stomp.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("stomp.js"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("style.css"),
    },
];

/// A validator that changes with the binary's version and the file's content.
fn etag(asset: &Asset) -> String {
    // FNV-1a: enough to tell two builds of a file apart; not a security measure.
    let hash = asset.body.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("\"{}-{hash:016x}\"", env!("CARGO_PKG_VERSION"))
}

fn serve(asset: &Asset, request: &HeaderMap) -> Response {
    let tag = etag(asset);
    let headers = [
        (header::ETAG, tag.clone()),
        // Revalidated each time: a new binary serves a new page at once.
        (header::CACHE_CONTROL, "no-cache".to_owned()),
        (header::CONTENT_TYPE, asset.content_type.to_owned()),
        (
            header::HeaderName::from_static("x-content-type-options"),
            "nosniff".to_owned(),
        ),
    ];
    let fresh = request.get(header::IF_NONE_MATCH).is_some_and(|value| {
        value == HeaderValue::from_str(&tag).unwrap_or(HeaderValue::from_static(""))
    });
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (headers, asset.body).into_response()
}

async fn index(request: HeaderMap) -> Response {
    serve(&INDEX, &request)
}

async fn asset(Path(name): Path<String>, request: HeaderMap) -> Response {
    match ASSETS.iter().find(|asset| asset.name == name) {
        Some(asset) => serve(asset, &request),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `/` and `/dashboard/{file}`.
pub(crate) fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/dashboard/{file}", get(asset))
}
