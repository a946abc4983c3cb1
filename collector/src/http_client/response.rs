//! The response side of the HTTP client: a complete `Connection: close` response
//! (status line, headers, body framed by `Content-Length` or chunked) parsed from
//! bytes, with no I/O.
//!
//! One file that names nothing else of the collector (std alone): the fuzz target
//! `http_response` compiles it as a module of its own (`#[path]`), so that it fuzzes
//! this very parser without linking the collector (its SQLite, Parquet and Postgres
//! clients would multiply the fuzz build's time under AddressSanitizer; fuzz/README.md).
//! What it reads comes from the network: the collector's own server for the CLI, but
//! also a GLPI server (`glpi sync`), which the collector does not control.

/// A response: status code and body (de-chunked).
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names and values in arrival order (GLPI's paging reads `Content-Range`).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a complete `Connection: close` response: the body is framed by
/// `Transfer-Encoding: chunked`, else `Content-Length`, else it is the rest of the
/// input.
///
/// Strict where framing is concerned (RFC 9112), so that the body returned is the one
/// whose length a caller reads in the headers: a status of three digits; a header
/// name is compared as stored (trimmed); `Content-Length` is digits, and repeated only
/// with the same value; the only transfer coding is `chunked`, once (the client asks
/// for no compression); each chunk ends with CRLF and its size is hex digits.
pub fn parse_response(raw: &[u8]) -> Result<HttpResponse, String> {
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head = std::str::from_utf8(&raw[..head_end]).map_err(|_| "headers are not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .filter(|s| s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| *s >= 100)
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut chunked = false;
    let mut length = None;
    let mut headers = Vec::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("transfer-encoding") {
            if chunked || !value.eq_ignore_ascii_case("chunked") {
                return Err(format!("unsupported transfer-encoding {value:?}"));
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case("content-length") {
            let n = Some(value)
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or_else(|| format!("bad content-length {value:?}"))?;
            if length.is_some_and(|l| l != n) {
                return Err("conflicting content-length headers".to_owned());
            }
            length = Some(n);
        }
        headers.push((name.to_owned(), value.to_owned()));
    }
    let body = &raw[head_end + 4..];
    let body = if chunked {
        dechunk(body)?
    } else if let Some(n) = length {
        body.get(..n)
            .ok_or("body shorter than content-length")?
            .to_vec()
    } else {
        body.to_vec()
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk header")?;
        let size_text = std::str::from_utf8(&body[..line_end]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = Some(size_text)
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|t| usize::from_str_radix(t, 16).ok())
            .ok_or_else(|| format!("bad chunk size {size_text:?}"))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = body.get(..size).ok_or("truncated chunk")?;
        // `size` bytes fit in `body`: `size + 2` cannot overflow.
        if body.get(size..size + 2) != Some(b"\r\n") {
            return Err("chunk not followed by CRLF".to_owned());
        }
        out.extend_from_slice(chunk);
        body = &body[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_length_and_chunked_bodies() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokEXTRA").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
        let r = parse_response(
            b"HTTP/1.1 206 Partial Content\r\nContent-Range: 0-49/200\r\ncontent-length: 2\r\n\r\n[]",
        )
        .unwrap();
        assert_eq!(r.header("content-range"), Some("0-49/200"));
        assert_eq!(r.header("Accept-Range"), None);
        let r = parse_response(
            b"HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (401, &b"abcde"[..]));
        assert!(parse_response(b"garbage").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nok").is_err());
    }

    /// Found writing the `http_response` fuzz target's invariants: a header the caller
    /// reads as `Content-Length` (names are stored trimmed) was not the one that framed
    /// the body, and of two different lengths the last framed it while `header` gave
    /// the first.
    #[test]
    fn the_content_length_a_caller_reads_is_the_one_that_framed_the_body() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\n Content-Length : 2\r\n\r\nokEXTRA").unwrap();
        assert_eq!(
            (r.header("content-length"), r.body.as_slice()),
            (Some("2"), &b"ok"[..])
        );
        assert!(
            parse_response(
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 4\r\n\r\nokok"
            )
            .is_err()
        );
        let r =
            parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nContent-Length: 2\r\n\r\nok!")
                .unwrap();
        assert_eq!(r.body, b"ok");
        for bad in ["+2", "-0", "0x2", "2 2", ""] {
            let raw = format!("HTTP/1.1 200 OK\r\ncontent-length: {bad}\r\n\r\nok");
            assert!(parse_response(raw.as_bytes()).is_err(), "{bad:?}");
        }
    }

    /// Found with the same invariants: `+20` and `0` were statuses.
    #[test]
    fn a_status_is_three_digits() {
        for bad in ["+20", "20", "0", "000", "099", "2000", "", "20x"] {
            let raw = format!("HTTP/1.1 {bad} OK\r\n\r\n");
            assert!(parse_response(raw.as_bytes()).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse_response(b"HTTP/1.1 100 Continue\r\n\r\n")
                .unwrap()
                .status,
            100
        );
        assert_eq!(parse_response(b"HTTP/1.1 599\r\n\r\n").unwrap().status, 599);
    }

    /// A coding under `chunked` (gzip) was read as an unframed body and returned still
    /// encoded; a chunk's CRLF was skipped unread, so a short chunk swallowed the
    /// next one's size; `+a` was a chunk size.
    #[test]
    fn chunked_framing_is_checked() {
        for te in ["gzip, chunked", "gzip", "identity"] {
            let raw =
                format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: {te}\r\n\r\n2\r\nok\r\n0\r\n\r\n");
            assert!(parse_response(raw.as_bytes()).is_err(), "{te:?}");
        }
        let twice = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        assert!(parse_response(twice).is_err());
        let te = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        for bad in [
            "2\r\nokXX0\r\n\r\n",
            "1\r\nok\r\n0\r\n\r\n",
            "+2\r\nok\r\n0\r\n\r\n",
            "\r\n",
        ] {
            assert!(
                parse_response(format!("{te}{bad}").as_bytes()).is_err(),
                "{bad:?}"
            );
        }
        let r =
            parse_response(format!("{te}2 ; a=b\r\nok\r\nA\r\n0123456789\r\n0\r\n\r\n").as_bytes())
                .unwrap();
        assert_eq!(r.body, b"ok0123456789");
    }
}
