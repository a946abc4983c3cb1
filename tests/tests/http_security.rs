//! The collector's HTTP doors against a real `veille-collector serve` (issue 21):
//! security headers on every response (API, page, stylesheet, metrics, redirects,
//! errors, 404), pages with no inline script or style, request bodies over the limit
//! refused, and the web login throttled per client address.

use std::net::{IpAddr, SocketAddr};

use veille_collector::security::{CSP, MAX_BODY_BYTES};
use veille_collector::web::throttle::{MAX_FAILURES, WINDOW_MS};
use veille_tests::Collector;

/// A response: status, lower-cased headers, body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One request on a fresh connection from `from` (any loopback address: the
/// throttle keys on it) to `addr`. `extra`: header lines, each ending in `\r\n`.
fn request(from: IpAddr, addr: &str, method: &str, path: &str, extra: &str, body: &[u8]) -> Answer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let addr: SocketAddr = addr.parse().unwrap();
    let raw = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(from, 0)).unwrap();
        let mut s = socket.connect(addr).await.unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await.unwrap();
        // The server may answer (413) and close before reading a large body.
        let _ = s.write_all(body).await;
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw).await;
        raw
    });
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head: {text:?}"));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("status line: {head}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_owned(),
    }
}

fn local() -> IpAddr {
    "127.0.0.1".parse().unwrap()
}

fn get(addr: &str, path: &str, extra: &str) -> Answer {
    request(local(), addr, "GET", path, extra, b"")
}

fn login(from: IpAddr, addr: &str, token: &str) -> Answer {
    request(
        from,
        addr,
        "POST",
        "/login",
        "Content-Type: application/x-www-form-urlencoded\r\n",
        format!("token={token}").as_bytes(),
    )
}

fn assert_hardened(what: &str, a: &Answer) {
    let csp = a
        .header("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no CSP in {:?}", a.headers));
    assert_eq!(csp, CSP, "{what}");
    for directive in [
        "default-src 'none'",
        "frame-ancestors 'none'",
        "style-src 'self'",
    ] {
        assert!(csp.contains(directive), "{what}: {directive} in {csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert!(
        !csp.contains("script-src"),
        "{what}: no script allowed: {csp}"
    );
    assert_eq!(
        a.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(a.header("referrer-policy"), Some("no-referrer"), "{what}");
    assert_eq!(a.header("x-frame-options"), Some("DENY"), "{what}");
}

#[test]
fn every_response_is_hardened_and_pages_have_no_inline_code() {
    let data = tempfile::tempdir().unwrap();
    let c = Collector::start(data.path(), "127.0.0.1:0");
    let addr = c.http.clone();
    let token = c.token();
    let bearer = format!("Authorization: Bearer {token}\r\n");

    let session = login(local(), &addr, &token);
    assert_eq!(session.status, 303, "{}", session.body);
    assert_hardened("POST /login (good)", &session);
    let cookie = session
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let with_cookie = format!("Cookie: {cookie}\r\n");

    let answers = [
        ("GET /healthz", get(&addr, "/healthz", ""), 200),
        (
            "GET devices, no token",
            get(&addr, "/api/v1/devices", ""),
            401,
        ),
        ("GET devices", get(&addr, "/api/v1/devices", &bearer), 200),
        ("GET /metrics", get(&addr, "/metrics", ""), 200),
        ("GET / without session", get(&addr, "/", ""), 303),
        ("GET /login", get(&addr, "/login", ""), 200),
        ("GET /nowhere", get(&addr, "/nowhere", ""), 404),
        ("GET / ", get(&addr, "/", &with_cookie), 200),
        ("GET /devices", get(&addr, "/devices", &with_cookie), 200),
        (
            "GET /consumption",
            get(&addr, "/consumption", &with_cookie),
            200,
        ),
        ("GET /renewal", get(&addr, "/renewal", &with_cookie), 200),
        ("GET /rooms", get(&addr, "/rooms", &with_cookie), 200),
        ("GET /replay", get(&addr, "/replay", &with_cookie), 200),
        (
            "GET /compliance",
            get(&addr, "/compliance", &with_cookie),
            200,
        ),
        (
            "GET the stylesheet",
            get(&addr, "/static/veille.css", ""),
            200,
        ),
    ];
    for (what, a, status) in &answers {
        assert_eq!(a.status, *status, "{what}: {}", a.body);
        assert_hardened(what, a);
    }

    // The pages hold no script and no inline style (either would be blocked by the
    // CSP and break the page); the stylesheet they link is served as CSS, and holds
    // the legend's colours that used to be inline.
    for (what, a, _) in &answers {
        if a.header("content-type") == Some("text/html; charset=utf-8") {
            for inline in ["<script", "<style", " style=", "javascript:", " onclick="] {
                assert!(!a.body.contains(inline), "{what}: {inline} in the page");
            }
        }
    }
    let pages = answers.iter().filter(|(what, _, status)| {
        *status == 200
            && what.starts_with("GET /")
            && *what != "GET /healthz"
            && *what != "GET /metrics"
    });
    for (what, a, _) in pages {
        assert!(
            a.body
                .contains("<link rel=\"stylesheet\" href=\"/static/veille.css\">"),
            "{what}"
        );
    }
    let css = &answers
        .iter()
        .find(|(what, _, _)| *what == "GET the stylesheet")
        .expect("the stylesheet was fetched")
        .1;
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    assert!(
        css.body.contains("header{background:#123a63"),
        "{}",
        css.body
    );
    assert!(
        css.body
            .contains(".legend .state-active{background:#b35806}"),
        "{}",
        css.body
    );
}

#[test]
fn bodies_over_the_limit_are_refused() {
    let data = tempfile::tempdir().unwrap();
    let c = Collector::start(data.path(), "127.0.0.1:0");
    let addr = c.http.clone();
    let operator = std::fs::read_to_string(data.path().join("operator.token"))
        .expect("operator.token")
        .trim()
        .to_owned();
    let put = |body: &[u8]| {
        request(
            local(),
            &addr,
            "PUT",
            "/api/v1/policy",
            &format!("Authorization: Bearer {operator}\r\nContent-Type: application/json\r\n"),
            body,
        )
    };
    // Up to the limit the body reaches the handler, which says what is wrong with it;
    // one byte more and it never does.
    let at_limit = put(&vec![b' '; MAX_BODY_BYTES]);
    assert_eq!(at_limit.status, 400, "{}", at_limit.body);
    assert!(at_limit.body.contains("policy file"), "{}", at_limit.body);
    let over = put(&vec![b' '; MAX_BODY_BYTES + 1]);
    assert_eq!(over.status, 413, "{}", over.body);
    assert_hardened("413", &over);

    let form = format!("token={}", "x".repeat(MAX_BODY_BYTES));
    let big_login = request(
        local(),
        &addr,
        "POST",
        "/login",
        "Content-Type: application/x-www-form-urlencoded\r\n",
        form.as_bytes(),
    );
    assert_eq!(big_login.status, 413);
}

#[test]
fn wrong_logins_are_throttled_per_client_address() {
    let data = tempfile::tempdir().unwrap();
    let c = Collector::start(data.path(), "127.0.0.1:0");
    let addr = c.http.clone();
    let token = c.token();
    let other: IpAddr = "127.0.0.2".parse().unwrap();

    for i in 0..MAX_FAILURES {
        let a = login(local(), &addr, "not-the-token");
        assert_eq!(a.status, 401, "try {i}");
        assert!(a.body.contains("id=\"login-error\""));
    }
    // The next try from that address is refused without its token being looked at:
    // even the right one.
    for t in ["not-the-token", token.as_str()] {
        let a = login(local(), &addr, t);
        assert_eq!(a.status, 429, "{}", a.body);
        let wait_s: i64 = a
            .header("retry-after")
            .expect("Retry-After")
            .parse()
            .unwrap();
        assert!(wait_s > 0 && wait_s <= WINDOW_MS / 1000, "{wait_s}");
        assert!(a.body.contains("Too many attempts") || a.body.contains("Trop d"));
        assert_hardened("429", &a);
    }
    // Another address is not held back by the first one's failures.
    let a = login(other, &addr, &token);
    assert_eq!(a.status, 303, "{}", a.body);
    assert!(a.header("set-cookie").is_some());
}
