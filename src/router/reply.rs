//! Responses toward the client: the head a backend wrote (read to learn
//! its framing, then passed on, edited only when routing actions or the
//! framing require it) and the router's own error pages.
//!
//! A backend's response is raw HTTP (spec §1.4). The router copies it,
//! but it must know where it ends to keep the client connection alive:
//! `Content-Length`, `Transfer-Encoding: chunked`, no body (`HEAD`, 1xx,
//! 204, 304) or the backend closing. In the last case, on a connection
//! that would otherwise stay open, it either chunks the body
//! (`http-auto-chunked`) or adds `Connection: close` and closes after.

use crate::routing::response::{header_named, reason};
use crate::routing::HeaderOp;

/// Header lines accepted in a backend's response head.
const MAX_RESPONSE_HEADERS: usize = 128;

/// A backend's response head, read from the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendHead {
    pub status: u16,
    /// The status line starts with `HTTP/1.1 `.
    pub http11: bool,
    /// Bytes of the head, final blank line included.
    pub head_len: usize,
    pub content_length: Option<u64>,
    pub chunked: bool,
    /// A `Connection` header whose value is exactly `close`.
    pub connection_close: bool,
    pub has_connection: bool,
    /// A ruwsgi worker will keep the connection open after this response
    /// (`protocol::uwsgi::KEEP_HEADER`; meaningful only on a connection
    /// the router marked).
    pub keep: bool,
    /// The head's bytes; the status line and the header lines are ranges
    /// of it, without line ends (one allocation per head, not per line).
    raw: Vec<u8>,
    status_line: std::ops::Range<usize>,
    lines: Vec<std::ops::Range<usize>>,
}

/// Outcome of [`parse_backend_head`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadParse {
    Complete(BackendHead),
    Incomplete,
    /// Not an HTTP response (the backend's fault: 502).
    Invalid(String),
}

/// Reads a response head at the start of `buf`.
pub fn parse_backend_head(buf: &[u8]) -> HeadParse {
    let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return HeadParse::Incomplete,
        Err(e) => return HeadParse::Invalid(e.to_string()),
    };
    let status = response.code.unwrap_or(0);
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut connection_close = false;
    let mut has_connection = false;
    let mut keep = false;
    for h in response.headers.iter() {
        let value = h.value.trim_ascii();
        if h.name.eq_ignore_ascii_case("content-length") {
            let Some(n) = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
            else {
                return HeadParse::Invalid("invalid Content-Length".into());
            };
            if content_length.is_some_and(|c| c != n) {
                return HeadParse::Invalid("conflicting Content-Length".into());
            }
            content_length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            has_connection = true;
            connection_close |= value.eq_ignore_ascii_case(b"close");
        } else if h
            .name
            .as_bytes()
            .eq_ignore_ascii_case(crate::protocol::uwsgi::KEEP_HEADER)
        {
            keep = true;
        }
    }
    let raw = buf[..head_len].to_vec();
    let mut start = 0;
    let mut lines = raw
        .split(|&b| b == b'\n')
        .map(|l| {
            let range = start..start + l.strip_suffix(b"\r").unwrap_or(l).len();
            start += l.len() + 1;
            range
        })
        .filter(|r| !r.is_empty());
    let status_line = lines.next().unwrap_or_default();
    let lines = lines.collect();
    HeadParse::Complete(BackendHead {
        status,
        http11: raw[status_line.clone()].starts_with(b"HTTP/1.1 "),
        head_len,
        content_length,
        chunked,
        connection_close,
        has_connection,
        keep,
        raw,
        status_line,
        lines,
    })
}

/// How the body after a backend's head ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    Length(u64),
    Chunked,
    /// Until the backend closes.
    UntilClose,
}

impl BackendHead {
    /// Takes out the worker's keep-alive line: it is for the router only.
    pub fn remove_keep_line(&mut self) {
        let name = crate::protocol::uwsgi::KEEP_HEADER;
        let raw = &self.raw;
        self.lines.retain(|l| !header_named(&raw[l.clone()], name));
    }

    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }

    pub fn framing(&self, head_request: bool) -> Framing {
        if head_request || self.status < 200 || self.status == 204 || self.status == 304 {
            Framing::None
        } else if self.chunked {
            Framing::Chunked
        } else if let Some(n) = self.content_length {
            Framing::Length(n)
        } else {
            Framing::UntilClose
        }
    }

    /// The head for the client: the status line (or a `clearheaders`
    /// replacement), the backend's lines minus `delheader` names, the
    /// `addheader` lines, then `extra` lines.
    pub fn render(&self, ops: &[HeaderOp], extra: &[&[u8]]) -> Vec<u8> {
        let mut status_line = std::borrow::Cow::Borrowed(&self.raw[self.status_line.clone()]);
        let mut lines: Vec<&[u8]> = self.lines.iter().map(|r| &self.raw[r.clone()]).collect();
        let mut added: Vec<&[u8]> = Vec::new();
        for op in ops {
            match op {
                HeaderOp::Add(line) => added.push(line),
                HeaderOp::Remove(name) => {
                    lines.retain(|l| !header_named(l, name));
                    added.retain(|l| !header_named(l, name));
                }
                HeaderOp::Clear(status) => {
                    let protocol = status_line.split(|&b| b == b' ').next().unwrap_or_default();
                    status_line = std::borrow::Cow::Owned(
                        [
                            protocol,
                            b" ",
                            &crate::routing::response::status_text(status),
                        ]
                        .concat(),
                    );
                    lines.clear();
                }
            }
        }
        let mut out = Vec::with_capacity(self.head_len + 64);
        out.extend_from_slice(&status_line);
        out.extend_from_slice(b"\r\n");
        for line in lines.iter().chain(&added).chain(extra) {
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

/// The router's own answer to a failure: a short text page, then close.
/// The body names nothing internal.
pub fn error_page(status: u16) -> Vec<u8> {
    let reason = reason(status.to_string().as_bytes()).unwrap_or("Error");
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reason}\n",
        reason.len() + 1
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(bytes: &[u8]) -> BackendHead {
        match parse_backend_head(bytes) {
            HeadParse::Complete(h) => h,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn framing_table() {
        let cases: &[(&str, &[u8], bool, Framing)] = &[
            (
                "length",
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
                false,
                Framing::Length(3),
            ),
            (
                "chunked",
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
                Framing::Chunked,
            ),
            (
                "until close",
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n",
                false,
                Framing::UntilClose,
            ),
            (
                "head request",
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
                true,
                Framing::None,
            ),
            (
                "204",
                b"HTTP/1.1 204 No Content\r\n\r\n",
                false,
                Framing::None,
            ),
            (
                "304",
                b"HTTP/1.0 304 Not Modified\r\n\r\n",
                false,
                Framing::None,
            ),
        ];
        for (name, bytes, head_req, expected) in cases {
            assert_eq!(head(bytes).framing(*head_req), *expected, "{name}");
        }
        assert_eq!(
            parse_backend_head(b"HTTP/1.1 200 OK\r\nA: b\r\n"),
            HeadParse::Incomplete
        );
        assert!(matches!(
            parse_backend_head(b"garbage\r\n\r\n"),
            HeadParse::Invalid(_)
        ));
        assert!(matches!(
            parse_backend_head(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
            ),
            HeadParse::Invalid(_)
        ));
        let h = head(b"HTTP/1.0 200 OK\r\nConnection: close\r\n\r\n");
        assert!(!h.http11 && h.connection_close && h.has_connection);
    }

    #[test]
    fn render_edits() {
        let h = head(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-App: 1\r\n\r\n");
        assert_eq!(
            h.render(&[], &[]),
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-App: 1\r\n\r\n"
        );
        let ops = [
            HeaderOp::Add(b"X-Added: yes".to_vec()),
            HeaderOp::Remove(b"x-app".to_vec()),
        ];
        assert_eq!(
            h.render(&ops, &[b"Connection: close"]),
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Added: yes\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(
            h.render(&[HeaderOp::Clear(b"404".to_vec())], &[]),
            b"HTTP/1.1 404 Not Found\r\n\r\n"
        );
        let page = String::from_utf8(error_page(502)).unwrap();
        assert!(page.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{page}");
        assert!(page.ends_with("\r\n\r\nBad Gateway\n"), "{page}");
    }
}
