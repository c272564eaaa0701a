//! HTTP/1.x request heads: finding, validating and reading them, and the
//! framing decisions made from their headers.
//!
//! Two phases again: [`check_head`] answers [`HeadStatus::Incomplete`]
//! until the head's `\r\n\r\n` has arrived (a bare-LF head never ends, as
//! in uWSGI, and runs into the size cap or the caller's timeout), then
//! validates it; [`RequestHead::parse`] reads checked bytes into an owned
//! [`RequestHead`] and cannot fail.
//!
//! The request line is split the way uWSGI splits it (spec
//! `routing-and-protocol.md` §2.1, §3.2): method up to the first space,
//! target up to the next one, protocol = the rest, none of them validated
//! beyond having no control bytes, so `GET  /x HTTP/1.1` gives an empty
//! target and the protocol `/x HTTP/1.1`, as uWSGI does. Header lines are
//! validated by `httparse` (token names, no space before the colon, no
//! obsolete line folding, no stray CR or LF): what uWSGI tolerated there
//! is refused with 400. Header values are kept as uWSGI passes them on:
//! leading spaces skipped, trailing whitespace kept.
//!
//! Framing helpers ([`body_framing`], [`keep_alive`], [`expects_continue`],
//! [`host_key`]) follow RFC 9112 and refuse ambiguous requests (request
//! smuggling). The CGI variables built from a head live in
//! [`super::cgi`], the chunked body decoder in [`super::chunked`]; both
//! are re-exported here.

pub use super::cgi::{
    decode_path_info, header_var_name, http_socket_vars, parse_http_var, port_of_socket_name,
    router_vars, HttpSocketEnv, RouterEnv, Var,
};
pub use super::chunked::{Chunk, ChunkedDecoder, ChunkedError, ChunkedLimits};

/// The HTTP router's client buffer: a longer head is refused.
pub const DEFAULT_MAX_HEAD_LEN: usize = 64 * 1024;

/// Header lines accepted in one head: what a worker can still carry with
/// uWSGI's default cap of 128 variables next to the ~10 request vars.
pub const DEFAULT_MAX_HEADERS: usize = 100;

/// Longest `Host` the HTTP router uses as a routing key.
pub const MAX_HOST_LEN: usize = 255;

const HEAD_END: &[u8] = b"\r\n\r\n";
const CRLF: &[u8] = b"\r\n";

/// Caps applied by [`check_head`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// Longest head, request line and final empty line included.
    pub max_head_len: usize,
    pub max_headers: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits {
            max_head_len: DEFAULT_MAX_HEAD_LEN,
            max_headers: DEFAULT_MAX_HEADERS,
        }
    }
}

/// Outcome of [`check_head`] when the bytes are not (yet) wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadStatus {
    /// The head is `buf[..head_len]`; the body (or the next request)
    /// starts right after.
    Complete {
        head_len: usize,
    },
    Incomplete,
}

/// Why a head is refused. Every case is the client's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("request head exceeds {max} bytes")]
    TooLarge { max: usize },
    #[error("more than {max} header lines")]
    TooManyHeaders { max: usize },
    #[error("malformed request line")]
    BadRequestLine,
    #[error("line feed without carriage return in the request head")]
    BareLineFeed,
    #[error("malformed header line: {0}")]
    BadHeader(String),
}

impl HeadError {
    /// The HTTP status ruwsgi answers with (uWSGI closes silently).
    pub fn status(&self) -> u16 {
        match self {
            HeadError::TooLarge { .. } | HeadError::TooManyHeaders { .. } => 431,
            _ => 400,
        }
    }
}

/// A request head, owned, as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestHead {
    /// Bytes before the first space, verbatim.
    pub method: Vec<u8>,
    /// The raw request target (`REQUEST_URI`), possibly empty.
    pub target: Vec<u8>,
    /// The rest of the request line (`SERVER_PROTOCOL`), verbatim.
    pub protocol: Vec<u8>,
    /// Minor version: 1 when the protocol is exactly `HTTP/1.1`, else 0
    /// (`HTTP/1.0` and any other token are handled as HTTP/1.0).
    pub version: u8,
    /// `(name, value)` in order, duplicates kept; names as sent, values
    /// without the spaces that follow the colon.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// Bytes of the head, final `\r\n\r\n` included.
    pub head_len: usize,
}

/// Phase one: is a whole, valid head at the start of `buf`?
pub fn check_head(buf: &[u8], limits: &HeadLimits) -> Result<HeadStatus, HeadError> {
    let window = &buf[..buf.len().min(limits.max_head_len)];
    let Some(end) = find(window, HEAD_END) else {
        return if buf.len() >= limits.max_head_len {
            Err(HeadError::TooLarge {
                max: limits.max_head_len,
            })
        } else {
            Ok(HeadStatus::Incomplete)
        };
    };
    let head_len = end + HEAD_END.len();
    let head = &buf[..head_len];
    if head
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || head[i - 1] != b'\r'))
    {
        return Err(HeadError::BareLineFeed);
    }
    let line_end = find(head, CRLF).unwrap_or(0);
    split_request_line(&head[..line_end]).ok_or(HeadError::BadRequestLine)?;
    check_header_block(&head[line_end + CRLF.len()..], limits)?;
    Ok(HeadStatus::Complete { head_len })
}

fn check_header_block(block: &[u8], limits: &HeadLimits) -> Result<(), HeadError> {
    // On the stack for the usual limits: a heap block of this size per
    // request made the allocator consolidate its free lists every time.
    let mut on_stack = [httparse::EMPTY_HEADER; DEFAULT_MAX_HEADERS];
    let mut on_heap = Vec::new();
    let headers = if limits.max_headers <= DEFAULT_MAX_HEADERS {
        &mut on_stack[..limits.max_headers]
    } else {
        on_heap.resize(limits.max_headers, httparse::EMPTY_HEADER);
        &mut on_heap[..]
    };
    match httparse::parse_headers(block, headers) {
        Ok(httparse::Status::Complete((len, _))) if len == block.len() => Ok(()),
        Ok(_) => Err(HeadError::BadHeader(
            "header block does not end the head".into(),
        )),
        Err(httparse::Error::TooManyHeaders) => Err(HeadError::TooManyHeaders {
            max: limits.max_headers,
        }),
        Err(e) => Err(HeadError::BadHeader(e.to_string())),
    }
}

/// `(method, target, protocol)` split on the first two spaces; `None`
/// without two spaces or with a control byte.
fn split_request_line(line: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    if line.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return None;
    }
    let mut parts = line.splitn(3, |&b| b == b' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(target), Some(protocol)) => Some((method, target, protocol)),
        _ => None,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl RequestHead {
    /// Phase two: reads the head [`check_head`] accepted in `buf`. On
    /// unchecked input it never panics but may return an empty head.
    pub fn parse(buf: &[u8]) -> RequestHead {
        let Some(end) = find(buf, HEAD_END) else {
            return RequestHead::default();
        };
        let head = &buf[..end + CRLF.len()];
        let mut lines = head
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
        let request_line = lines.next().unwrap_or_default();
        let (method, target, protocol) = split_request_line(request_line).unwrap_or_default();
        let headers = lines
            .filter(|l| !l.is_empty())
            .map(|line| {
                let colon = line.iter().position(|&b| b == b':').unwrap_or(line.len());
                let value = line.get(colon + 1..).unwrap_or_default();
                let skip = value.iter().take_while(|&&b| b == b' ').count();
                (line[..colon].to_vec(), value[skip..].to_vec())
            })
            .collect();
        RequestHead {
            method: method.to_vec(),
            target: target.to_vec(),
            version: u8::from(protocol == b"HTTP/1.1"),
            protocol: protocol.to_vec(),
            headers,
            head_len: end + HEAD_END.len(),
        }
    }

    /// Values of the headers called `name` (ASCII case-insensitive), in
    /// order.
    pub fn header_values<'a>(&'a self, name: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// The first header called `name`.
    pub fn header(&self, name: &[u8]) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// Both phases at once: `Ok(None)` while the head is incomplete.
pub fn read_head(buf: &[u8], limits: &HeadLimits) -> Result<Option<RequestHead>, HeadError> {
    match check_head(buf, limits)? {
        HeadStatus::Complete { head_len } => Ok(Some(RequestHead::parse(&buf[..head_len]))),
        HeadStatus::Incomplete => Ok(None),
    }
}

/// How the request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// Neither `Content-Length` nor `Transfer-Encoding`: no body.
    None,
    Length(u64),
    /// `Transfer-Encoding: chunked`: decode with [`ChunkedDecoder`].
    Chunked,
}

/// A body whose length cannot be trusted. uWSGI forwards such requests
/// anyway; ruwsgi refuses them (request smuggling).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("both Content-Length and Transfer-Encoding")]
    LengthAndTransferEncoding,
    #[error("invalid Content-Length")]
    InvalidContentLength,
    #[error("conflicting Content-Length values")]
    ConflictingContentLength,
    #[error("Transfer-Encoding in an HTTP/1.0 request")]
    TransferEncodingInHttp10,
    #[error("Transfer-Encoding does not end with a single chunked")]
    UnsupportedTransferEncoding,
}

impl FramingError {
    /// The HTTP status ruwsgi answers with.
    pub fn status(&self) -> u16 {
        match self {
            FramingError::UnsupportedTransferEncoding => 501,
            _ => 400,
        }
    }
}

/// Comma-separated list elements of every header called `name`, trimmed
/// of optional whitespace; empty elements kept so callers can refuse them.
fn list_elements<'a>(head: &'a RequestHead, name: &'a [u8]) -> impl Iterator<Item = &'a [u8]> {
    head.header_values(name)
        .flat_map(|v| v.split(|&b| b == b','))
        .map(|e| e.trim_ascii())
}

/// Body framing from `Content-Length` / `Transfer-Encoding` (RFC 9112
/// §6): both present, a malformed length, differing lengths, a transfer
/// coding on HTTP/1.0 or one not ending in `chunked` are errors.
pub fn body_framing(head: &RequestHead) -> Result<BodyFraming, FramingError> {
    let has_te = head.header(b"transfer-encoding").is_some();
    let has_cl = head.header(b"content-length").is_some();
    if has_te {
        if has_cl {
            return Err(FramingError::LengthAndTransferEncoding);
        }
        if head.version == 0 {
            return Err(FramingError::TransferEncodingInHttp10);
        }
        let codings: Vec<&[u8]> = list_elements(head, b"transfer-encoding")
            .filter(|c| !c.is_empty())
            .collect();
        let chunked = |c: &&[u8]| c.eq_ignore_ascii_case(b"chunked");
        return match codings.split_last() {
            Some((last, rest)) if chunked(last) && !rest.iter().any(chunked) => {
                // Other codings before chunked (gzip...) are not decoded.
                if rest.is_empty() {
                    Ok(BodyFraming::Chunked)
                } else {
                    Err(FramingError::UnsupportedTransferEncoding)
                }
            }
            _ => Err(FramingError::UnsupportedTransferEncoding),
        };
    }
    let mut length = None;
    for element in list_elements(head, b"content-length") {
        let value = parse_decimal(element).ok_or(FramingError::InvalidContentLength)?;
        if length.is_some_and(|l| l != value) {
            return Err(FramingError::ConflictingContentLength);
        }
        length = Some(value);
    }
    Ok(length.map_or(BodyFraming::None, BodyFraming::Length))
}

fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Whether the connection may serve another request after this one, by
/// the request alone: HTTP/1.1 unless `Connection: close`; HTTP/1.0 only
/// with `Connection: keep-alive`. `Connection: upgrade` also closes, as
/// in uWSGI's router (the connection would stop being HTTP).
pub fn keep_alive(head: &RequestHead) -> bool {
    let mut wants_keep_alive = false;
    for token in list_elements(head, b"connection") {
        if token.eq_ignore_ascii_case(b"close") || token.eq_ignore_ascii_case(b"upgrade") {
            return false;
        }
        wants_keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
    }
    head.version == 1 || (head.protocol == b"HTTP/1.0" && wants_keep_alive)
}

/// `Expect: 100-continue` (case-insensitive; uWSGI's router matched the
/// exact line `Expect: 100-continue`).
pub fn expects_continue(head: &RequestHead) -> bool {
    head.header_values(b"expect")
        .any(|v| v.trim_ascii().eq_ignore_ascii_case(b"100-continue"))
}

/// A `Host` header the router cannot route on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("empty Host header")]
    Empty,
    #[error("Host header longer than 255 bytes")]
    TooLong,
    #[error("more than one Host header")]
    Duplicate,
}

/// The router's routing key: the `Host` value, or `None` without one (the
/// router then uses the machine's host name). uWSGI also refuses an empty
/// or over-long Host; it merged duplicates with `", "`, ruwsgi refuses
/// them (RFC 9112 §3.2).
pub fn host_key(head: &RequestHead) -> Result<Option<&[u8]>, HostError> {
    let mut hosts = head.header_values(b"host");
    let Some(host) = hosts.next() else {
        return Ok(None);
    };
    if hosts.next().is_some() {
        return Err(HostError::Duplicate);
    }
    match host.len() {
        0 => Err(HostError::Empty),
        n if n > MAX_HOST_LEN => Err(HostError::TooLong),
        _ => Ok(Some(host)),
    }
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
