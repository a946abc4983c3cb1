//! What every HTTP response and request of the collector goes through, whichever door
//! (API, web page, metrics, a 404): security headers and a request body limit
//! (issue 21). Applied once, in [`harden`], so that a route added later cannot miss
//! them.
//!
//! - `Content-Security-Policy` ([`CSP`]): nothing loads from elsewhere, no inline
//!   script or style runs (the page's stylesheet is a served file,
//!   the web page's `STYLESHEET_PATH`), forms post only here, and
//!   `frame-ancestors 'none'` forbids framing (clickjacking).
//! - `X-Content-Type-Options: nosniff`: a browser takes a JSON or CSV answer for what
//!   its `Content-Type` says, never for HTML.
//! - `Referrer-Policy: no-referrer`: a page's URL (org names, device ids in the path)
//!   does not leak to a link's target.
//! - `X-Frame-Options: DENY`: `frame-ancestors` for browsers that predate it.
//! - Bodies over [`MAX_BODY_BYTES`] get `413` before a handler parses them.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::connect_info::Connected;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::Response;
use axum::serve::IncomingStream;

/// The one Content-Security-Policy of every response.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
                       form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Largest request body any route accepts. The largest legitimate body is a policy
/// draft (`PUT /api/v1/policy`, `POST /api/v1/policy/replay`): a few windows of JSON,
/// well under 4 KiB; 64 KiB leaves room for long lists of excluded devices while a
/// client cannot make the collector buffer megabytes per request.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Every header [`harden`] sets, with its value.
pub const HEADERS: [(HeaderName, &str); 4] = [
    (header::CONTENT_SECURITY_POLICY, CSP),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::X_FRAME_OPTIONS, "DENY"),
];

/// `app` with the headers and the body limit on every route and on the fallback.
pub fn harden(app: Router) -> Router {
    app.layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(add_headers))
}

async fn add_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    for (name, value) in HEADERS {
        h.insert(name, HeaderValue::from_static(value));
    }
    resp
}

/// The client's address, for handlers that key on it (the web login's throttle).
/// A type of ours because axum only provides `SocketAddr` for its own TCP listener,
/// and the TLS listener ([`crate::tls::HttpsListener`]) is ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

impl Connected<IncomingStream<'_, tokio::net::TcpListener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, crate::tls::HttpsListener>> for ClientAddr {
    fn connect_info(stream: IncomingStream<'_, crate::tls::HttpsListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}
