//! HTTP/1.1 responses as the collector's client reads them (`http_client::
//! parse_response`): the CLI's answers from its own server, and a GLPI server's
//! (`glpi sync`), which the collector does not control. The input is the whole
//! `Connection: close` response as read from the socket.
//!
//! The parser is the collector's own (`collector/src/http_client/response.rs`),
//! compiled here as a module: this crate does not build veille-collector (its SQLite,
//! Parquet and Postgres clients under AddressSanitizer would multiply the fuzz build's
//! time), and that file names nothing but std.
//!
//! Invariants: a parsed body is never longer than the input; the status is three
//! digits; the `Content-Length` a caller reads (`header`) is the body's length when the
//! body is not chunked; the response written back (its status, its headers but the
//! framing ones, then `Content-Length`, or chunked) parses to the same status, headers
//! and body.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../collector/src/http_client/response.rs"]
mod response;

use response::{HttpResponse, parse_response};

fn is_framing(name: &str) -> bool {
    name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("transfer-encoding")
}

/// `r` as a server would send it: its headers but the framing ones, then `framing`.
fn write_back(r: &HttpResponse, chunked: bool) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {} Fuzzed\r\n", r.status).into_bytes();
    for (name, value) in r.headers.iter().filter(|(n, _)| !is_framing(n)) {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    if chunked {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
        // Two chunks (when there is more than one byte), so that the join is tried.
        let (a, b) = r.body.split_at(r.body.len() / 2);
        for chunk in [a, b].into_iter().filter(|c| !c.is_empty()) {
            out.extend_from_slice(format!("{:x};ext=1\r\n", chunk.len()).as_bytes());
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
    } else {
        out.extend_from_slice(format!("content-length: {}\r\n\r\n", r.body.len()).as_bytes());
        out.extend_from_slice(&r.body);
        // Bytes past Content-Length are not the body's.
        out.extend_from_slice(b"TRAILING");
    }
    out
}

fn unframed_headers(r: &HttpResponse) -> Vec<&(String, String)> {
    r.headers.iter().filter(|(n, _)| !is_framing(n)).collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(r) = parse_response(data) else {
        return;
    };
    assert!(r.body.len() <= data.len());
    assert!((100..=999).contains(&r.status), "status {}", r.status);
    let chunked = r
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    if !chunked && let Some(length) = r.header("content-length") {
        assert_eq!(
            length.parse::<usize>().ok(),
            Some(r.body.len()),
            "{length:?}"
        );
    }
    for chunked in [false, true] {
        let again = parse_response(&write_back(&r, chunked))
            .unwrap_or_else(|e| panic!("written back (chunked: {chunked}): {e}"));
        assert_eq!(again.status, r.status);
        assert_eq!(again.body, r.body);
        assert_eq!(unframed_headers(&again), unframed_headers(&r));
    }
});
