//! What the router sends to a backend: the uwsgi packet (header, the vars
//! uWSGI's router sends in its order, then what routing actions
//! appended), or for an `http:` action the HTTP/1.0 request uWSGI's
//! `router_http` builds (spec §5.10). The body follows either one.

use crate::protocol::uwsgi::{EncodeError, VarsWriter, HEADER_LEN};
use crate::routing::{Var, VarLookup};

/// The packet: `modifier1 | size | modifier2`, `vars`, then `appended`.
pub fn uwsgi_packet(
    modifier1: u8,
    modifier2: u8,
    vars: &[Var],
    appended: &[Var],
) -> Result<Vec<u8>, EncodeError> {
    let size: usize = vars
        .iter()
        .chain(appended)
        .map(|(k, v)| 4 + k.len() + v.len())
        .sum();
    let mut w = VarsWriter::append_to(Vec::with_capacity(HEADER_LEN + size), modifier1, modifier2);
    w.extend(vars.iter().map(|(k, v)| (k, v)))?;
    w.extend(appended.iter().map(|(k, v)| (k, v)))?;
    Ok(w.finish())
}

/// A de-chunked body's length replaces `HTTP_TRANSFER_ENCODING` (at its
/// place) as `CONTENT_LENGTH`: the backend reads a plain body.
pub fn dechunked_vars(vars: &mut Vec<Var>, length: u64) {
    let len = length.to_string().into_bytes();
    match vars
        .iter()
        .position(|(k, _)| k == b"HTTP_TRANSFER_ENCODING")
    {
        Some(i) => vars[i] = (b"CONTENT_LENGTH".to_vec(), len),
        None => vars.push((b"CONTENT_LENGTH".to_vec(), len)),
    }
}

/// Request headers `router_http` does not pass on.
const HOP_BY_HOP: &[&[u8]] = &[
    b"CONNECTION",
    b"KEEP_ALIVE",
    b"TE",
    b"TRAILER",
    b"X_FORWARDED_FOR",
];

/// `X_CUSTOM_UNDER` → `X-Custom-Under`.
fn title_case(name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len());
    let mut start = true;
    for &b in name {
        if b == b'_' {
            out.push(b'-');
            start = true;
        } else {
            out.push(if start {
                b.to_ascii_uppercase()
            } else {
                b.to_ascii_lowercase()
            });
            start = false;
        }
    }
    out
}

/// The HTTP/1.0 request of an `http:ADDR[,HOST[,URI]]` action, built from
/// the request's variables (all of them, appended ones included).
pub fn http_request(vars: &[Var], host: Option<&[u8]>, uri: Option<&[u8]>) -> Vec<u8> {
    let get = |k: &[u8]| vars.get_var(k).unwrap_or_default();
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(get(b"REQUEST_METHOD"));
    out.push(b' ');
    out.extend_from_slice(uri.unwrap_or_else(|| get(b"REQUEST_URI")));
    out.extend_from_slice(b" HTTP/1.0\r\n");
    for (key, value) in vars {
        let Some(name) = key.strip_prefix(b"HTTP_") else {
            continue;
        };
        if HOP_BY_HOP.contains(&name) || (host.is_some() && name == b"HOST") {
            continue;
        }
        out.extend_from_slice(&title_case(name));
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    let mut line = |name: &[u8], value: &[u8]| {
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    };
    if let Some(host) = host {
        line(b"Host", host);
    }
    if let Some(ct) = vars.get_var(b"CONTENT_TYPE") {
        line(b"Content-Type", ct);
    }
    let cl = crate::protocol::uwsgi::content_length(get(b"CONTENT_LENGTH"));
    if cl > 0 {
        line(b"Content-Length", cl.to_string().as_bytes());
    }
    line(b"Connection", b"close");
    let remote = get(b"REMOTE_ADDR");
    let xff = match vars.get_var(b"HTTP_X_FORWARDED_FOR") {
        Some(prev) => [prev, b", ", remote].concat(),
        None => remote.to_vec(),
    };
    line(b"X-Forwarded-For", &xff);
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<Var> {
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn http_action_request() {
        let v = vars(&[
            ("REQUEST_METHOD", "POST"),
            ("REQUEST_URI", "/h/a/b?x=1"),
            ("REMOTE_ADDR", "127.0.0.1"),
            ("HTTP_HOST", "front"),
            ("HTTP_X_FORWARDED_FOR", "1.2.3.4"),
            ("HTTP_CONNECTION", "keep-alive"),
            ("HTTP_TE", "trailers"),
            ("HTTP_X_CUSTOM_UNDER", "u"),
            ("CONTENT_TYPE", "text/plain"),
            ("CONTENT_LENGTH", "4"),
        ]);
        let req = http_request(&v, Some(b"backend.example"), Some(b"/rewritten/a/b"));
        assert_eq!(
            String::from_utf8(req).unwrap(),
            "POST /rewritten/a/b HTTP/1.0\r\nX-Custom-Under: u\r\nHost: backend.example\r\nContent-Type: text/plain\r\nContent-Length: 4\r\nConnection: close\r\nX-Forwarded-For: 1.2.3.4, 127.0.0.1\r\n\r\n"
        );
        let req = http_request(&v[..4], None, None);
        assert_eq!(
            String::from_utf8(req).unwrap(),
            "POST /h/a/b?x=1 HTTP/1.0\r\nHost: front\r\nConnection: close\r\nX-Forwarded-For: 127.0.0.1\r\n\r\n"
        );
    }

    #[test]
    fn packets() {
        let mut v = vars(&[
            ("REQUEST_METHOD", "POST"),
            ("HTTP_TRANSFER_ENCODING", "chunked"),
            ("HTTP_X", "1"),
        ]);
        dechunked_vars(&mut v, 11);
        assert_eq!(v[1], (b"CONTENT_LENGTH".to_vec(), b"11".to_vec()));
        let p = uwsgi_packet(5, 7, &v[..1], &vars(&[("UWSGI_APPID", "a")])).unwrap();
        assert_eq!(&p[..4], &[5, 38, 0, 7]);
    }
}
