//! Which web pages may open a WebSocket session: a browser sends the page's `Origin` with the
//! upgrade, and a page on another site must not open a session with the user's access (cross-site
//! WebSocket hijacking: in open mode on loopback, any site the user visits could otherwise read
//! every topic). Allowed: no `Origin` (not a browser), the server's own pages (the dashboard),
//! pages on loopback, and the configured `allowed-origin`s.

use axum::http::{header, HeaderMap};

/// Whether the request's `Origin` may open a session.
pub(crate) fn allowed(headers: &HeaderMap, configured: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim().trim_end_matches('/');
    // "null": a file, a sandboxed frame, a redirect: nothing that can be trusted.
    let Some((_scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let own = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .is_some_and(|host| host.eq_ignore_ascii_case(authority));
    own || is_loopback(authority)
        || configured
            .iter()
            .any(|o| o.trim().trim_end_matches('/').eq_ignore_ascii_case(origin))
}

/// `localhost`, `127.x.y.z` or `[::1]`, with or without a port.
fn is_loopback(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, host.parse().unwrap());
        if let Some(origin) = origin {
            headers.insert(header::ORIGIN, origin.parse().unwrap());
        }
        headers
    }

    #[test]
    fn own_loopback_and_configured_pages_may_connect_others_may_not() {
        let configured = vec!["https://app.example.com/".to_owned()];
        let host = "broker.example.org:15674";
        for ok in [
            None,
            Some("http://broker.example.org:15674"),
            Some("http://localhost:3000"),
            Some("http://127.0.0.1:8000"),
            Some("http://[::1]:8000"),
            Some("https://app.example.com"),
        ] {
            assert!(allowed(&headers(ok, host), &configured), "{ok:?}");
        }
        for bad in [
            "https://evil.example",
            "null",
            "http://broker.example.org:9999",
            "http://localhost.evil.example",
            "https://app.example.com.evil",
        ] {
            assert!(!allowed(&headers(Some(bad), host), &configured), "{bad}");
        }
    }
}
