//! The headers SockJS responses carry: CORS as the protocol asks (the request's `Origin`
//! echoed, with credentials, so that the `JSESSIONID` cookie flies), caching (none for session
//! traffic, a year for the static answers), and the `JSESSIONID` cookie a load balancer may
//! stick sessions by.

use std::time::{Duration, SystemTime};

use axum::http::{header, HeaderMap, HeaderValue};

/// The `Cache-Control` of every answer that must never be cached.
const NO_CACHE: &str = "no-store, no-cache, no-transform, must-revalidate, max-age=0";

/// How long the static answers (iframe page, OPTIONS) may be cached: a year, in seconds.
pub const ONE_YEAR: u64 = 365 * 24 * 60 * 60;

/// CORS for the XHR transports and `/info`: the request's origin (credentials allowed), or
/// `*` when it sent none; the headers a preflight asked for.
pub fn xhr_cors(request: &HeaderMap, response: &mut HeaderMap) {
    allow_origin(request.get(header::ORIGIN), request, response);
}

/// CORS for `eventsource`: as [`xhr_cors`], except that the `null` origin (a page from
/// `file://`) gets `*`.
pub fn eventsource_cors(request: &HeaderMap, response: &mut HeaderMap) {
    let origin = request
        .get(header::ORIGIN)
        .filter(|o| o.as_bytes() != b"null");
    allow_origin(origin, request, response);
}

/// Allows `origin` with credentials, or any origin without them when there is none.
fn allow_origin(origin: Option<&HeaderValue>, request: &HeaderMap, response: &mut HeaderMap) {
    match origin {
        Some(origin) => {
            response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            response.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        None => {
            response.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
        }
    }
    response.insert(header::VARY, HeaderValue::from_static("Origin"));
    allow_requested_headers(request, response);
}

fn allow_requested_headers(request: &HeaderMap, response: &mut HeaderMap) {
    if let Some(asked) = request
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .filter(|v| !v.is_empty())
    {
        response.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
    }
}

/// A preflight's answer: `methods` allowed, cacheable for a year.
pub fn preflight(methods: &'static str, response: &mut HeaderMap) {
    cache_for_a_year(response);
    response.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    response.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(ONE_YEAR));
}

/// Session traffic: never cached (iOS 6 cached POSTs).
pub fn no_cache(response: &mut HeaderMap) {
    response.insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_CACHE));
}

/// Static answers: `public`, a year, with `Expires` for HTTP/1.0 caches.
pub fn cache_for_a_year(response: &mut HeaderMap) {
    response.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000"),
    );
    let expires = SystemTime::now() + Duration::from_secs(ONE_YEAR);
    if let Ok(value) = HeaderValue::from_str(&httpdate::fmt_http_date(expires)) {
        response.insert(header::EXPIRES, value);
    }
}

/// `Set-Cookie: JSESSIONID=...; path=/`, when the service asks for it: the client's own
/// value, or `dummy` for a load balancer to replace (set on every answer, so that a balancer
/// can attach its own).
pub fn jsessionid(enabled: bool, request: &HeaderMap, response: &mut HeaderMap) {
    if !enabled {
        return;
    }
    let current = request
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| name.trim() == "JSESSIONID")
        .map(|(_, value)| value.trim())
        // Only a value that cannot break the header it is echoed into.
        .filter(|value| {
            !value.is_empty()
                && value.len() <= 256
                && value
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b';' && b != b',')
        })
        .unwrap_or("dummy");
    if let Ok(cookie) = HeaderValue::from_str(&format!("JSESSIONID={current}; path=/")) {
        response.insert(header::SET_COOKIE, cookie);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_is_echoed_with_credentials_and_star_without_one() {
        let mut request = HeaderMap::new();
        let mut response = HeaderMap::new();
        xhr_cors(&request, &mut response);
        assert_eq!(response[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert!(response
            .get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS)
            .is_none());
        request.insert(header::ORIGIN, HeaderValue::from_static("null"));
        request.insert(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_static("a, b"),
        );
        let mut response = HeaderMap::new();
        xhr_cors(&request, &mut response);
        assert_eq!(response[header::ACCESS_CONTROL_ALLOW_ORIGIN], "null");
        assert_eq!(response[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert_eq!(response[header::ACCESS_CONTROL_ALLOW_HEADERS], "a, b");
        let mut response = HeaderMap::new();
        eventsource_cors(&request, &mut response);
        assert_eq!(response[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    }

    #[test]
    fn the_cookie_keeps_the_clients_value_or_is_dummy() {
        let mut request = HeaderMap::new();
        let mut response = HeaderMap::new();
        jsessionid(false, &request, &mut response);
        assert!(response.is_empty());
        jsessionid(true, &request, &mut response);
        assert_eq!(response[header::SET_COOKIE], "JSESSIONID=dummy; path=/");
        request.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; JSESSIONID=abcdef"),
        );
        jsessionid(true, &request, &mut response);
        assert_eq!(response[header::SET_COOKIE], "JSESSIONID=abcdef; path=/");
    }
}
