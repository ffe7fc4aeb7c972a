//! The answers that belong to no session: the greeting, `/info` and the iframe page.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::cors;

/// `GET {prefix}` and `{prefix}/`.
pub fn greeting() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=UTF-8")],
        "Welcome to SockJS!\n",
    )
        .into_response()
}

/// `GET {prefix}/info`: what the client needs before it picks a transport. The entropy is
/// fresh for every answer, from the operating system's generator (browsers once had no good
/// source of their own).
pub fn info(request: &HeaderMap, websocket: bool, cookie_needed: bool) -> Response {
    let mut entropy = [0u8; 4];
    // On failure the entropy is 0: the client mixes it with its own, and still works.
    let _ = getrandom::fill(&mut entropy);
    let body = serde_json::json!({
        "websocket": websocket,
        "cookie_needed": cookie_needed,
        "origins": ["*:*"],
        "entropy": u32::from_be_bytes(entropy),
    })
    .to_string();
    let mut response = (
        [(header::CONTENT_TYPE, "application/json; charset=UTF-8")],
        body,
    )
        .into_response();
    cors::xhr_cors(request, response.headers_mut());
    cors::no_cache(response.headers_mut());
    response
}

/// `OPTIONS {prefix}/info`.
pub fn info_options(request: &HeaderMap, jsessionid: bool) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    cors::jsessionid(jsessionid, request, headers);
    cors::xhr_cors(request, headers);
    cors::preflight("OPTIONS, GET", headers);
    response
}

/// True for `iframe.html` and its versioned names (`iframe-0.3.4.html`): the client names
/// the page after its own version so that caches keep one copy per version.
pub fn is_iframe(name: &str) -> bool {
    name.strip_prefix("iframe")
        .and_then(|rest| rest.strip_suffix(".html"))
        .is_some_and(|version| {
            version.bytes().all(|b| {
                b.is_ascii_digit() || b.is_ascii_lowercase() || matches!(b, b'-' | b'.' | b'_')
            })
        })
}

/// The iframe page, which loads the client from `sockjs_url` so that a page can use the
/// iframe transports across origins.
pub struct Iframe {
    page: String,
    etag: HeaderValue,
}

impl Iframe {
    /// The page for a client script at `sockjs_url`.
    pub fn new(sockjs_url: &str) -> Iframe {
        // The URL goes into an attribute: quotes and angle brackets would end it.
        let url: String = sockjs_url
            .chars()
            .filter(|c| !matches!(c, '"' | '<' | '>'))
            .collect();
        let page = format!(
            r#"<!DOCTYPE html>
<html>
<head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
  <script src="{url}"></script>
  <script>
    document.domain = document.domain;
    SockJS.bootstrap_iframe();
  </script>
</head>
<body>
  <h2>Don't panic!</h2>
  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>
</body>
</html>"#
        );
        let digest = Sha256::digest(page.as_bytes());
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        let etag = HeaderValue::from_str(&format!("\"{hex}\""))
            .unwrap_or_else(|_| HeaderValue::from_static("\"sockjs\""));
        Iframe { page, etag }
    }

    /// The page, or 304 when the client's copy (`If-None-Match`) is current. A 304 carries
    /// the ETag and caching headers a 200 would (RFC 9110 section 15.4.5), so the cache keeps
    /// its copy fresh for another year.
    pub fn respond(&self, request: &HeaderMap) -> Response {
        if self.matches(request) {
            let mut response = StatusCode::NOT_MODIFIED.into_response();
            let headers = response.headers_mut();
            headers.insert(header::ETAG, self.etag.clone());
            cors::cache_for_a_year(headers);
            return response;
        }
        let mut response = Response::new(Body::from(self.page.clone()));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=UTF-8"),
        );
        headers.insert(header::ETAG, self.etag.clone());
        cors::cache_for_a_year(headers);
        response
    }

    /// True when an `If-None-Match` of the request names this page's tag: `*`, or a
    /// comma-separated list of tags, weak (`W/`) or strong, compared weakly as RFC 9110
    /// section 13.1.2 has it for GET.
    fn matches(&self, request: &HeaderMap) -> bool {
        let ours = self.etag.as_bytes();
        request.get_all(header::IF_NONE_MATCH).iter().any(|value| {
            value.as_bytes().split(|&b| b == b',').any(|tag| {
                let tag = tag.trim_ascii();
                let tag = tag.strip_prefix(b"W/").unwrap_or(tag);
                tag == b"*" || tag == ours
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_takes_lists_weak_tags_and_star_and_304_keeps_the_cache_headers() {
        let iframe = Iframe::new("https://example.test/sockjs.js");
        let tag = iframe.etag.to_str().unwrap().to_owned();
        let status = |value: &str| {
            let mut request = HeaderMap::new();
            request.insert(header::IF_NONE_MATCH, HeaderValue::from_str(value).unwrap());
            iframe.respond(&request)
        };
        for current in [
            tag.clone(),
            format!("W/{tag}"),
            format!("\"other\", {tag}"),
            format!("\"a\",W/{tag} , \"b\""),
            "*".to_owned(),
        ] {
            let response = status(&current);
            assert_eq!(response.status(), StatusCode::NOT_MODIFIED, "{current}");
            let headers = response.headers();
            assert_eq!(headers.get(header::ETAG), Some(&iframe.etag));
            assert_eq!(
                headers.get(header::CACHE_CONTROL).unwrap(),
                "public, max-age=31536000"
            );
            assert!(headers.get(header::EXPIRES).is_some());
            assert!(headers.get(header::CONTENT_TYPE).is_none());
        }
        for stale in ["\"other\"", "W/\"other\", \"x\"", ""] {
            assert_eq!(status(stale).status(), StatusCode::OK, "{stale}");
        }
    }

    #[test]
    fn iframe_names_are_the_page_and_its_versions_only() {
        for good in [
            "iframe.html",
            "iframe-a.html",
            "iframe-.html",
            "iframe-0.1.2abc-dirty.2144.html",
        ] {
            assert!(is_iframe(good), "{good}");
        }
        for bad in [
            "iframe.htm",
            "iframe",
            "IFRAME.HTML",
            "iframe.HTML",
            "iframe.xml",
        ] {
            assert!(!is_iframe(bad), "{bad}");
        }
    }
}
