//! A connection on an HTTP socket (`http-socket`): the worker parses HTTP
//! itself and builds uWSGI's http-socket variables (spec §2.2, §4).
//!
//! Requests are served one after the other on the same connection while
//! both sides allow it (HTTP/1.1 keep-alive; see [`super::reply`] for the
//! response framing). Request bodies come with `Content-Length` or are
//! de-chunked. A bad head or an untrustworthy body framing is answered
//! with a 4xx/5xx and one log line, then the connection closes. An idle
//! connection is parked by the worker thread and closes after
//! `socket-timeout`.

use std::time::{Instant, SystemTime};

use super::body::{Body, Wire};
use super::listener::Conn;
use super::reply::{Proto, Reply, Who};
use super::static_files::{self, Found};
use super::{log, reqlog, Env, MAX_DRAIN};
use crate::protocol::http::{
    self, check_head, http_socket_vars, port_of_socket_name, BodyFraming, HeadError, HeadLimits,
    HeadStatus, HttpSocketEnv, RequestHead,
};
use crate::python::Exchange;

/// What reading a head gave.
enum Next {
    Head(RequestHead),
    /// The client is gone or idle: close without a word.
    Close,
    /// A refused head: status and log line.
    Refuse(u16, String),
}

fn read_head(wire: &mut Wire, limits: &HeadLimits, addr: &str) -> Next {
    loop {
        match check_head(wire.buffered(), limits) {
            Ok(HeadStatus::Complete { head_len }) => {
                let head = RequestHead::parse(&wire.buffered()[..head_len]);
                wire.consume(head_len);
                return Next::Head(head);
            }
            Ok(HeadStatus::Incomplete) => {
                let partial = !wire.buffered().is_empty();
                match wire.fill(limits.max_head_len) {
                    Ok(0) | Err(_) if !partial => return Next::Close,
                    Ok(0) => {
                        log("uwsgi_proto_http_parser() -> client closed connection");
                        return Next::Close;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        log(&format!(
                            "uwsgi_proto_http_parser(): {} reading the request head from {addr}",
                            super::reply::strerror(&e)
                        ));
                        return Next::Close;
                    }
                }
            }
            Err(e @ HeadError::TooLarge { max }) => {
                return Next::Refuse(
                    e.status(),
                    format!("invalid HTTP request size (max {max})...skip"),
                )
            }
            Err(e) => {
                return Next::Refuse(e.status(), format!("invalid HTTP request from {addr}: {e}"))
            }
        }
    }
}

/// A complete error response, then the connection closes.
fn refuse(wire: &mut Wire, status: u16) {
    let reason = super::status::reason(status).unwrap_or("Bad Request");
    let page = format!(
        "HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{reason}",
        reason.len()
    );
    let _ = std::io::Write::write_all(&mut wire.stream, page.as_bytes());
    wire.stream.shutdown_write();
}

/// Sends a static file (or its 304) through `reply`.
pub(crate) fn serve_static(reply: &mut Reply, mut found: Found, ims: Option<&[u8]>) {
    if static_files::not_modified(&found, ims) {
        let _ = reply.send_head(b"304 Not Modified", &[]);
        return;
    }
    let headers = static_files::headers(&found);
    if reply.send_head(b"200 OK", &headers).is_ok() {
        let len = found.len;
        let _ = reply.send_file(&mut found.file, len);
    }
}

/// The vars block size uWSGI reports: 2+key+2+value per variable.
fn packet_size(vars: &[(Vec<u8>, Vec<u8>)]) -> usize {
    vars.iter().map(|(k, v)| 4 + k.len() + v.len()).sum()
}

/// Serves the requests a new connection brings: the first (its head
/// awaited up to `socket-timeout`) and any pipelined behind it. Returns
/// the connection when it may carry another request later; the caller
/// parks it until the client speaks again (see [`super::parked`]).
pub(crate) fn serve(env: &Env<'_>, conn: Conn, keep_going: &dyn Fn() -> bool) -> Option<Wire> {
    serve_wire(env, Wire::new(conn.stream), &conn.peer, keep_going)
}

/// A parked connection turned readable: serves its requests, or finds the
/// client closed it, or finds nothing (readiness is only a hint). Returns
/// it when it is to be parked again.
pub(crate) fn resume(
    env: &Env<'_>,
    wire: Wire,
    peer: &str,
    keep_going: &dyn Fn() -> bool,
) -> Option<Wire> {
    super::resume_parked(env, wire, |w| serve_wire(env, w, peer, keep_going))
}

fn serve_wire(
    env: &Env<'_>,
    mut wire: Wire,
    peer: &str,
    keep_going: &dyn Fn() -> bool,
) -> Option<Wire> {
    let limits = HeadLimits {
        max_head_len: env.config.buffer_size.max(1),
        max_headers: http::DEFAULT_MAX_HEADERS.min(env.config.max_vars * 2),
    };
    let server_port = port_of_socket_name(env.listener.name.as_bytes()).unwrap_or(b"80");
    loop {
        let head = match read_head(&mut wire, &limits, peer) {
            Next::Head(h) => h,
            Next::Close => return None,
            Next::Refuse(status, line) => {
                log(&line);
                refuse(&mut wire, status);
                return None;
            }
        };
        wire = serve_one(env, wire, head, peer, server_port).filter(|_| keep_going())?;
        if wire.buffered().is_empty() {
            return Some(wire);
        }
    }
}

/// One request; gives the connection back when it can carry another.
fn serve_one(
    env: &Env<'_>,
    mut wire: Wire,
    head: RequestHead,
    peer: &str,
    server_port: &[u8],
) -> Option<Wire> {
    let started = Instant::now();
    let wall = SystemTime::now();
    let framing = match http::body_framing(&head) {
        Ok(f) => f,
        Err(e) => {
            log(&format!("invalid HTTP request from {peer}: {e}"));
            refuse(&mut wire, e.status());
            return None;
        }
    };
    let body = match framing {
        BodyFraming::None => Body::length(0),
        BodyFraming::Length(n) => Body::length(n),
        BodyFraming::Chunked => Body::chunked(),
    };
    let vars = http_socket_vars(
        &head,
        &HttpSocketEnv {
            server_name: env.hostname.as_bytes(),
            server_port: Some(server_port),
            remote_addr: peer.as_bytes(),
            script_name: !env.apps.manage_script_name(),
            ..HttpSocketEnv::default()
        },
    );
    let mut refs: Vec<(&[u8], &[u8])> = vars
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect();
    let proto = Proto::Http {
        keep_alive: http::keep_alive(&head),
        head: head.method == b"HEAD",
        expect_continue: http::expects_continue(&head) && head.version == 1,
    };
    let who = Who {
        method: String::from_utf8_lossy(&head.method).into_owned(),
        uri: String::from_utf8_lossy(&head.target).into_owned(),
        addr: peer.to_string(),
    };
    let mut reply = Reply::new(wire, body, proto, head.protocol.clone(), who);
    env.request_started();
    let (extra, done, do_log) = match super::route::request(env, &refs, &mut reply) {
        super::route::Routed::App { vars, log } => (vars, false, log),
        super::route::Routed::Done { log } => (Vec::new(), true, log),
    };
    refs.extend(extra.iter().map(|(k, v)| (k.as_slice(), v.as_slice())));
    let path_info = refs
        .iter()
        .rev()
        .find(|(k, _)| *k == b"PATH_INFO")
        .map_or(&b""[..], |(_, v)| *v);
    let found = (!done)
        .then(|| {
            static_files::lookup(
                &env.config.static_maps,
                &env.config.check_static,
                &env.config.mime_files,
                &head.method,
                path_info,
            )
        })
        .flatten();
    let mut app = None;
    let mut complete = true;
    // post-buffering: the body first; a client that fails it never
    // reaches the app (the failure is logged once by the reader).
    let buffered = found.is_some()
        || env.config.post_buffering == 0
        || reply.buffer_body(env.config.post_buffering).is_ok();
    let reply = match found {
        // Routing answered: the connection closes after.
        _ if done => {
            complete = false;
            Some(reply)
        }
        Some(found) => {
            serve_static(&mut reply, found, head.header(b"if-modified-since"));
            Some(reply)
        }
        None if !buffered => {
            complete = false;
            Some(reply)
        }
        None => {
            let (outcome, back) = crate::python::handle(env.apps, &refs, env.config.threads, reply);
            app = outcome.app_id.map(|id| (id, outcome.app_requests));
            complete = outcome.complete;
            back
        }
    };
    let mut entry = reqlog::Entry {
        pid: env.pid,
        app,
        remote_addr: peer.as_bytes(),
        remote_user: b"",
        vars: vars.len(),
        vars_bytes: packet_size(&vars),
        started: Some(wall),
        method: &head.method,
        uri: &head.target,
        protocol: &head.protocol,
        core: env.core,
        ..reqlog::Entry::default()
    };
    let mut reply = reply?;
    let reusable = complete && reply.finish();
    entry.stats = reply.stats;
    entry.total = env.request_done();
    entry.elapsed = started.elapsed();
    if do_log {
        env.log_request(&entry);
    }
    if reusable && reply.skip_body(MAX_DRAIN) {
        return Some(reply.wire);
    }
    // Dropping the connection closes it (FIN); no separate shutdown call.
    None
}
