//! CGI variables built from an HTTP request head, exactly as uWSGI 2.0.21
//! builds them (spec `routing-and-protocol.md` §2): the packet the HTTP
//! router sends ([`router_vars`], `plugins/http/http.c`) and what a worker
//! builds for itself on an `http-socket` ([`http_socket_vars`],
//! `proto/http.c`), in the same order, plus the PATH_INFO decoding both
//! share ([`decode_path_info`], `core/utils.c: http_url_decode`).
//!
//! One deliberate difference: `REMOTE_PORT` is whatever the caller passes,
//! meant to be the real client port (uWSGI's router prints it
//! byte-swapped).
//!
//! Not owned here: parsing the head ([`super::http`]), encoding the vars
//! into a packet ([`super::uwsgi::VarsWriter`]), the host name and socket
//! addresses (the caller knows them; no system calls here).

use super::http::RequestHead;

/// One `(key, value)` CGI variable.
pub type Var = (Vec<u8>, Vec<u8>);

/// What the HTTP router knows besides the head.
#[derive(Debug, Clone, Copy, Default)]
pub struct RouterEnv<'a> {
    /// The machine's host name (`SERVER_NAME`; not the Host header).
    pub server_name: &'a [u8],
    /// Text after the last `:` of the `http =` address
    /// ([`port_of_socket_name`]; empty for a UNIX socket).
    pub server_port: &'a [u8],
    /// Client address text, or the PROXY line's source.
    pub remote_addr: &'a [u8],
    /// Client port in decimal, or the PROXY line's source port.
    pub remote_port: &'a [u8],
    /// The connection is TLS: adds `HTTPS=on`.
    pub https: bool,
    /// `http-server-name-as-http-host`: `SERVER_NAME` becomes the Host
    /// value, emitted right before `HTTP_HOST` (and not at all without a
    /// Host header).
    pub server_name_as_http_host: bool,
    /// `http-var` entries, appended last, in config order
    /// ([`parse_http_var`]).
    pub extra: &'a [Var],
}

/// What an `http-socket` worker knows besides the head.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpSocketEnv<'a> {
    /// The machine's host name.
    pub server_name: &'a [u8],
    /// Only with a PROXY line: its destination address (`SERVER_ADDR`).
    pub server_addr: Option<&'a [u8]>,
    /// Text after the last `:` of the socket name, `80` without one; with
    /// a PROXY line its destination port, if any.
    pub server_port: Option<&'a [u8]>,
    pub remote_addr: &'a [u8],
    /// Only with a PROXY line: its source port.
    pub remote_port: Option<&'a [u8]>,
    /// `HTTPS` value on an `https-socket`.
    pub https: Option<&'a [u8]>,
    /// Emit `SCRIPT_NAME=""` (false with `manage-script-name`).
    pub script_name: bool,
}

fn push(out: &mut Vec<Var>, key: &[u8], value: &[u8]) {
    out.push((key.to_vec(), value.to_vec()));
}

/// `REQUEST_METHOD`, the URI trio and `SERVER_PROTOCOL`, in uWSGI's
/// order: with a `?`, PATH_INFO comes first (it is emitted when the `?` is
/// seen), without one REQUEST_URI does.
fn request_line_vars(head: &RequestHead, out: &mut Vec<Var>) {
    push(out, b"REQUEST_METHOD", &head.method);
    let target = head.target.as_slice();
    match target.iter().position(|&b| b == b'?') {
        Some(q) => {
            push(out, b"PATH_INFO", &decode_path_info(&target[..q]));
            push(out, b"REQUEST_URI", target);
            push(out, b"QUERY_STRING", &target[q + 1..]);
        }
        None => {
            push(out, b"REQUEST_URI", target);
            push(out, b"PATH_INFO", &decode_path_info(target));
            push(out, b"QUERY_STRING", b"");
        }
    }
    push(out, b"SERVER_PROTOCOL", &head.protocol);
}

/// A header name as uWSGI spells it before the prefix: ASCII upper case,
/// `-` → `_`.
fn cgi_name(name: &[u8]) -> Vec<u8> {
    name.iter()
        .map(|&b| match b {
            b'-' => b'_',
            b => b.to_ascii_uppercase(),
        })
        .collect()
}

/// The variable a header becomes: `HTTP_` + upper case with `_` for `-`,
/// except `CONTENT_LENGTH` and `CONTENT_TYPE`, which keep no prefix.
pub fn header_var_name(name: &[u8]) -> Vec<u8> {
    let name = cgi_name(name);
    if name == b"CONTENT_LENGTH" || name == b"CONTENT_TYPE" {
        name
    } else {
        [b"HTTP_".as_slice(), &name].concat()
    }
}

/// Header vars in order of first appearance; headers with the same
/// variable name are merged into the first, joined with `", "`.
fn header_vars(head: &RequestHead) -> Vec<Var> {
    let mut vars: Vec<Var> = Vec::new();
    for (name, value) in &head.headers {
        let key = header_var_name(name);
        match vars.iter_mut().find(|(k, _)| *k == key) {
            Some((_, merged)) => {
                merged.extend_from_slice(b", ");
                merged.extend_from_slice(value);
            }
            None => vars.push((key, value.clone())),
        }
    }
    vars
}

/// The vars the HTTP router puts in its uwsgi packet (spec §2.1).
pub fn router_vars(head: &RequestHead, env: &RouterEnv<'_>) -> Vec<Var> {
    let mut out = Vec::with_capacity(12 + head.headers.len() + env.extra.len());
    request_line_vars(head, &mut out);
    push(&mut out, b"SCRIPT_NAME", b"");
    if !env.server_name_as_http_host {
        push(&mut out, b"SERVER_NAME", env.server_name);
    }
    push(&mut out, b"SERVER_PORT", env.server_port);
    push(&mut out, b"UWSGI_ROUTER", b"http");
    if env.https {
        push(&mut out, b"HTTPS", b"on");
    }
    push(&mut out, b"REMOTE_ADDR", env.remote_addr);
    push(&mut out, b"REMOTE_PORT", env.remote_port);
    for (key, value) in header_vars(head) {
        if env.server_name_as_http_host && key == b"HTTP_HOST" {
            push(&mut out, b"SERVER_NAME", &value);
        }
        out.push((key, value));
    }
    out.extend(env.extra.iter().cloned());
    out
}

/// The vars an `http-socket` worker builds from the head (spec §2.2).
pub fn http_socket_vars(head: &RequestHead, env: &HttpSocketEnv<'_>) -> Vec<Var> {
    let mut out = Vec::with_capacity(12 + head.headers.len());
    request_line_vars(head, &mut out);
    if env.script_name {
        push(&mut out, b"SCRIPT_NAME", b"");
    }
    push(&mut out, b"SERVER_NAME", env.server_name);
    if let Some(addr) = env.server_addr {
        push(&mut out, b"SERVER_ADDR", addr);
    }
    if let Some(port) = env.server_port {
        push(&mut out, b"SERVER_PORT", port);
    }
    push(&mut out, b"REMOTE_ADDR", env.remote_addr);
    if let Some(port) = env.remote_port {
        push(&mut out, b"REMOTE_PORT", port);
    }
    if let Some(https) = env.https {
        push(&mut out, b"HTTPS", https);
    }
    out.extend(header_vars(head));
    out
}

/// Text after the last `:` of a socket name (`SERVER_PORT`); `None` for a
/// UNIX socket path. The router then sends an empty port, an
/// `http-socket` worker `80`.
pub fn port_of_socket_name(name: &[u8]) -> Option<&[u8]> {
    let colon = name.iter().rposition(|&b| b == b':')?;
    Some(&name[colon + 1..])
}

/// An `http-var = KEY=VALUE` entry, split at the first `=`. Entries
/// without `=` are skipped by uWSGI; an empty key (which uWSGI sends,
/// breaking the packet) is skipped too.
pub fn parse_http_var(entry: &[u8]) -> Option<(&[u8], &[u8])> {
    let eq = entry.iter().position(|&b| b == b'=')?;
    (eq > 0).then(|| (&entry[..eq], &entry[eq + 1..]))
}

#[derive(Clone, Copy)]
enum Decode {
    Plain,
    Percent1,
    Percent2(u8),
    Slash,
    Dot,
    DotDot,
}

/// PATH_INFO from the raw path (the target before `?`), as uWSGI's
/// `http_url_decode` makes it (spec §2.5): percent-decoding (`%%` is `%`,
/// a bad escape is a NUL byte, a truncated one is dropped), `#` ends the
/// path, and literal `.`/`..` segments are resolved without climbing above
/// the root. Encoded dots and slashes are decoded but not resolved.
pub fn decode_path_info(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    // A path not starting with `/` gets no leading `/` added.
    let relative = raw.first().is_some_and(|&b| b != b'/');
    let mut state = if relative {
        Decode::Slash
    } else {
        Decode::Plain
    };
    for (i, &c) in raw.iter().enumerate() {
        if c == b'#' {
            break;
        }
        state = match state {
            Decode::Plain => match c {
                b'%' => Decode::Percent1,
                b'/' => Decode::Slash,
                _ => {
                    out.push(c);
                    Decode::Plain
                }
            },
            Decode::Percent1 if c == b'%' => {
                out.push(b'%');
                Decode::Plain
            }
            Decode::Percent1 => Decode::Percent2(c),
            Decode::Percent2(high) => {
                out.push(hex_pair(high, c));
                Decode::Plain
            }
            Decode::Slash if c == b'.' => Decode::Dot,
            Decode::Slash => {
                if i > 0 || !relative {
                    out.push(b'/');
                }
                segment_byte(c, &mut out)
            }
            Decode::Dot => match c {
                b'.' => Decode::DotDot,
                b'/' => Decode::Slash,
                _ => {
                    // uWSGI tests the raw index, not what was written.
                    if i > 1 {
                        out.push(b'/');
                    }
                    out.push(b'.');
                    segment_byte(c, &mut out)
                }
            },
            Decode::DotDot if c == b'/' => {
                // Drop the last segment and its slash.
                out.truncate(out.iter().rposition(|&b| b == b'/').unwrap_or(0));
                Decode::Slash
            }
            Decode::DotDot => {
                if i > 2 {
                    out.push(b'/');
                }
                out.extend_from_slice(b"..");
                segment_byte(c, &mut out)
            }
        };
    }
    match state {
        Decode::Slash | Decode::Dot => out.push(b'/'),
        Decode::DotDot => out.truncate(out.iter().rposition(|&b| b == b'/').map_or(0, |p| p + 1)),
        _ => {}
    }
    out
}

/// First byte of a segment after a separator or dots.
fn segment_byte(c: u8, out: &mut Vec<u8>) -> Decode {
    match c {
        b'%' => Decode::Percent1,
        b'/' => Decode::Slash,
        _ => {
            out.push(c);
            Decode::Plain
        }
    }
}

/// uWSGI's `hex2num`: an escape with a non-hex digit is a NUL byte.
fn hex_pair(high: u8, low: u8) -> u8 {
    match (hex_digit(high), hex_digit(low)) {
        (Some(h), Some(l)) => h << 4 | l,
        _ => 0,
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
#[path = "cgi_tests.rs"]
mod tests;
