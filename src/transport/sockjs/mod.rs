//! SockJS (protocol 0.3.x), for pages that connect with `new SockJS(url)`: a WebSocket when
//! the way allows one, else HTTP streaming or polling, with the same API to the page.
//!
//! ```text
//! GET     {prefix}                                 greeting
//! GET     {prefix}/info                            capabilities, entropy (CORS)
//! GET     {prefix}/iframe[-version].html           the iframe page (cached, ETag)
//! GET     {prefix}/websocket                       raw WebSocket, no SockJS framing
//! GET     {prefix}/{server}/{session}/websocket    SockJS frames over WebSocket
//! POST    {prefix}/{server}/{session}/xhr          polling: one frame per request
//! POST    {prefix}/{server}/{session}/xhr_streaming
//! GET     {prefix}/{server}/{session}/eventsource
//! GET     {prefix}/{server}/{session}/htmlfile?c=callback
//! GET     {prefix}/{server}/{session}/jsonp?c=callback
//! POST    {prefix}/{server}/{session}/xhr_send     messages in (JSON array)
//! POST    {prefix}/{server}/{session}/jsonp_send   messages in (form field d, or body)
//! ```
//!
//! This layer knows nothing of STOMP: it hands each session to a [`Service`] as a
//! [`Connection`] (messages in, messages out). The broker's service (`stomp.rs`) runs a STOMP
//! session on it; `examples/sockjs_echo.rs` serves the protocol's test services on the same
//! code. Memory is bounded per session: the messages waiting for the client are bounded
//! ([`Options::max_pending_bytes`]) and a sender waits for room, client messages wait in
//! their request until the application takes them, and a session nobody receives for is
//! over after [`Options::session_timeout`].

mod connection;
mod cors;
pub(crate) mod frames;
mod pages;
mod receiver;
mod send;
mod session;
pub(crate) mod stomp;
pub(crate) mod websocket;

pub use connection::Connection;
pub use session::Closed;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use receiver::Transport;
use send::Sender;
use session::{Registry, Timing};
use websocket::Framing;

/// The sockjs-client script the iframe page loads by default (sockjs-node's default).
pub const DEFAULT_CLIENT_URL: &str =
    "https://cdn.jsdelivr.net/npm/sockjs-client@1/dist/sockjs.min.js";

/// What runs on each SockJS session.
pub trait Service: Send + Sync + 'static {
    /// A session opened: serve it (typically on a task of its own; this must not block).
    fn open(&self, connection: Connection);
}

/// How one SockJS endpoint behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// Heart-beat frame interval while a receiving request is open (25 s by default).
    pub heartbeat: Duration,
    /// A session without a receiving request for this long is over (5 s by default).
    pub session_timeout: Duration,
    /// Bytes a streaming response carries before it ends and the client opens the next one
    /// (128 KiB by default): a browser keeps a whole XHR response in memory.
    pub response_limit: usize,
    /// Set a `JSESSIONID` cookie, for load balancers that stick sessions by it.
    pub jsessionid: bool,
    /// Sessions over HTTP kept at once (10,000 by default); a receiving request that would
    /// open one more is answered 503. WebSocket sessions are in no registry: each is one
    /// connection, bounded with the connections.
    pub max_sessions: usize,
    /// Offer the WebSocket transports.
    pub websocket: bool,
    /// Bytes of messages a session holds for its client before the application's sends wait.
    pub max_pending_bytes: usize,
    /// Largest body of a sending request, and largest WebSocket message, in bytes.
    pub max_message_bytes: usize,
    /// The SockJS client script the iframe page loads.
    pub sockjs_url: String,
    /// Cancelled when the server shuts down: receiving requests end, and sessions.
    pub shutdown: CancellationToken,
    /// Where the endpoint's tasks run (WebSocket connections, session timeouts): the
    /// server's tracker, so that its shutdown waits for them.
    pub tracker: TaskTracker,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            heartbeat: Duration::from_secs(25),
            session_timeout: Duration::from_secs(5),
            response_limit: 128 * 1024,
            jsessionid: false,
            max_sessions: 10_000,
            websocket: true,
            max_pending_bytes: 1024 * 1024,
            max_message_bytes: 1024 * 1024,
            sockjs_url: DEFAULT_CLIENT_URL.into(),
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
        }
    }
}

/// One SockJS endpoint: its service, options and sessions.
pub(crate) struct Endpoint {
    service: Arc<dyn Service>,
    options: Options,
    timing: Timing,
    registry: Arc<Registry>,
    iframe: pages::Iframe,
}

impl Endpoint {
    fn new(service: Arc<dyn Service>, options: Options) -> Endpoint {
        Endpoint {
            service,
            timing: Timing {
                heartbeat: options.heartbeat,
                timeout: options.session_timeout,
                max_pending_bytes: options.max_pending_bytes.max(1),
                tracker: options.tracker.clone(),
                shutdown: options.shutdown.clone(),
            },
            registry: Arc::new(Registry::new(options.max_sessions)),
            iframe: pages::Iframe::new(&options.sockjs_url),
            options,
        }
    }
}

/// The routes of a SockJS endpoint at `prefix` (e.g. `/sockjs`; no trailing slash) running
/// `service` on every session.
pub fn router(prefix: &str, service: Arc<dyn Service>, options: Options) -> Router {
    let prefix = prefix.trim_end_matches('/');
    let endpoint = Arc::new(Endpoint::new(service, options));
    let root = if prefix.is_empty() { "/" } else { prefix };
    let mut router = Router::new()
        .route(root, any(dispatch))
        .route(&format!("{prefix}/{{*rest}}"), any(dispatch));
    if !prefix.is_empty() {
        router = router.route(&format!("{prefix}/"), any(dispatch));
    }
    router.with_state(EndpointState {
        endpoint,
        prefix: prefix.len(),
    })
}

#[derive(Clone)]
struct EndpointState {
    endpoint: Arc<Endpoint>,
    /// Bytes of the prefix in the path.
    prefix: usize,
}

/// What a path under the prefix names.
#[derive(Debug, PartialEq, Eq)]
enum Target<'a> {
    Greeting,
    Info,
    Iframe,
    RawWebSocket,
    Session {
        session: &'a str,
        transport: &'a str,
    },
    NotFound,
}

/// Takes apart the path under the prefix. A trailing slash is allowed, as sockjs-node allows
/// it; server and session ids are non-empty and hold no dot.
fn target(rest: &str) -> Target<'_> {
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Target::Greeting;
    }
    let Some(rest) = rest.strip_prefix('/') else {
        return Target::NotFound;
    };
    let parts: Vec<&str> = rest.split('/').collect();
    match parts[..] {
        ["info"] => Target::Info,
        ["websocket"] => Target::RawWebSocket,
        [name] if pages::is_iframe(name) => Target::Iframe,
        [server, session, transport]
            if [server, session]
                .iter()
                .all(|id| !id.is_empty() && !id.contains('.')) =>
        {
            Target::Session { session, transport }
        }
        _ => Target::NotFound,
    }
}

async fn dispatch(State(state): State<EndpointState>, request: Request) -> Response {
    let endpoint = &state.endpoint;
    let path = request.uri().path().to_owned();
    let rest = path.get(state.prefix..).unwrap_or("");
    let method = request.method().clone();
    let peer = request
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map_or_else(|| String::from("sockjs"), |info| info.0.to_string());
    let websocket = endpoint.options.websocket;
    match (target(rest), &method) {
        (Target::Greeting, &Method::GET) => pages::greeting(),
        (Target::Greeting, _) => not_allowed("GET"),
        (Target::Info, &Method::GET) => {
            pages::info(request.headers(), websocket, endpoint.options.jsessionid)
        }
        (Target::Info, &Method::OPTIONS) => {
            pages::info_options(request.headers(), endpoint.options.jsessionid)
        }
        (Target::Info, _) => not_allowed("OPTIONS, GET"),
        (Target::Iframe, &Method::GET) => endpoint.iframe.respond(request.headers()),
        (Target::Iframe, _) => not_allowed("GET"),
        (Target::RawWebSocket, _) if !websocket => not_found(),
        (Target::RawWebSocket, &Method::GET) => {
            websocket::upgrade(endpoint, request, Framing::Raw, peer)
        }
        (Target::RawWebSocket, _) => not_allowed("GET"),
        (Target::Session { session, transport }, _) => {
            let session = session.to_owned();
            session_request(endpoint, &session, transport, request, peer).await
        }
        (Target::NotFound, _) => not_found(),
    }
}

/// A request on a session's URL.
async fn session_request(
    endpoint: &Arc<Endpoint>,
    session: &str,
    transport: &str,
    request: Request,
    peer: String,
) -> Response {
    let method = request.method().clone();
    let receive = |transport: Transport, request: &Request| {
        receiver::respond(
            endpoint,
            session,
            transport,
            request.headers(),
            peer.clone(),
        )
    };
    match (transport, &method) {
        ("websocket", _) if !endpoint.options.websocket => not_found(),
        ("websocket", &Method::GET) => {
            websocket::upgrade(endpoint, request, Framing::SockJs, peer.clone())
        }
        ("websocket", _) => not_allowed("GET"),
        ("xhr" | "xhr_send" | "xhr_streaming", &Method::OPTIONS) => {
            let mut response = StatusCode::NO_CONTENT.into_response();
            let headers = response.headers_mut();
            cors::jsessionid(endpoint.options.jsessionid, request.headers(), headers);
            cors::xhr_cors(request.headers(), headers);
            cors::preflight("OPTIONS, POST", headers);
            response
        }
        ("xhr", &Method::POST) => receive(Transport::XhrPolling, &request),
        ("xhr_streaming", &Method::POST) => receive(Transport::XhrStreaming, &request),
        ("eventsource", &Method::GET) => receive(Transport::EventSource, &request),
        ("htmlfile", &Method::GET) => match callback(&request) {
            Ok(callback) => receive(Transport::HtmlFile(callback), &request),
            Err(refusal) => server_error(refusal),
        },
        ("jsonp", &Method::GET) => match callback(&request) {
            Ok(callback) => receive(Transport::Jsonp(callback), &request),
            Err(refusal) => server_error(refusal),
        },
        ("eventsource" | "htmlfile" | "jsonp", _) => not_allowed("GET"),
        ("xhr_send", &Method::POST) => {
            let (parts, body) = request.into_parts();
            send::respond(endpoint, session, Sender::Xhr, &parts.headers, body).await
        }
        ("jsonp_send", &Method::POST) => {
            let (parts, body) = request.into_parts();
            send::respond(endpoint, session, Sender::Jsonp, &parts.headers, body).await
        }
        ("xhr" | "xhr_streaming" | "xhr_send", _) => not_allowed("OPTIONS, POST"),
        ("jsonp_send", _) => not_allowed("POST"),
        _ => not_found(),
    }
}

/// The `c` (or `callback`) query parameter of the htmlfile and JSONP transports, checked.
fn callback(request: &Request) -> Result<String, &'static str> {
    callback_of(request.uri().query().unwrap_or(""))
}

/// The callback named in `query`: `c` when there is one, else `callback` (as sockjs-node
/// reads them); an empty one is as good as none.
fn callback_of(query: &str) -> Result<String, &'static str> {
    let named = |wanted: &str| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(name, _)| name == wanted)
            .map(|(_, value)| value)
    };
    let callback = named("c")
        .or_else(|| named("callback"))
        .filter(|callback| !callback.is_empty())
        .ok_or("\"callback\" parameter required")?;
    if !frames::valid_callback(&callback) {
        return Err("invalid \"callback\" parameter");
    }
    Ok(callback.into_owned())
}

fn server_error(message: &'static str) -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "text/plain; charset=UTF-8")],
        message,
    )
        .into_response()
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=UTF-8")],
        "404 Error: Page not found\n",
    )
        .into_response()
}

/// 405 with the methods the URL takes, no body and no content type (as the protocol's tests
/// ask).
fn not_allowed(methods: &'static str) -> Response {
    let mut response = StatusCode::METHOD_NOT_ALLOWED.into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(methods));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callbacks_prefer_c_and_are_required_non_empty() {
        assert_eq!(callback_of("c=a-b").as_deref(), Ok("a-b"));
        assert_eq!(callback_of("callback=x&c=y").as_deref(), Ok("y"));
        assert_eq!(callback_of("callback=x").as_deref(), Ok("x"));
        for missing in ["", "c=", "callback=", "d=x"] {
            assert_eq!(
                callback_of(missing),
                Err("\"callback\" parameter required"),
                "{missing}"
            );
        }
        assert_eq!(callback_of("c=a(b"), Err("invalid \"callback\" parameter"));
    }

    #[test]
    fn paths_name_what_the_protocol_names() {
        assert_eq!(target(""), Target::Greeting);
        assert_eq!(target("/"), Target::Greeting);
        assert_eq!(target("/info"), Target::Info);
        assert_eq!(target("/iframe-1.2.html"), Target::Iframe);
        assert_eq!(target("/websocket"), Target::RawWebSocket);
        assert_eq!(
            target("/000/abc/xhr"),
            Target::Session {
                session: "abc",
                transport: "xhr"
            }
        );
        for bad in [
            "/a",
            "/a.html",
            "//",
            "///",
            "/a/a",
            "/a/a/",
            "/a./a/xhr",
            "/a/a./xhr",
            "//a/xhr",
            "x",
        ] {
            assert_eq!(target(bad), Target::NotFound, "{bad}");
        }
    }
}
