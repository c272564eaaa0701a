//! A connection on a uwsgi socket: one packet, one response, close
//! (spec `routing-and-protocol.md` §1). A connection ruwsgi's own router
//! marked stays open after a length-delimited response and is parked like
//! a keep-alive HTTP connection (see `protocol::uwsgi::KEEP_HEADER`).
//!
//! The packet is checked as it arrives (`buffer-size`, `max-vars`); a bad
//! one closes the connection with nothing written and uWSGI's log line,
//! followed by ` [socket NAME]` (the listener's configured name) so a
//! multi-socket instance says which peer sent it.
//! `modifier1` 0 goes to the WSGI app, any other value is refused with
//! `-- unavailable modifier requested: N --`. The body is the rest of the
//! stream up to `CONTENT_LENGTH`. The response is a raw HTTP response
//! (status line with the request's `SERVER_PROTOCOL`, else `HTTP/1.0`).

use std::time::{Instant, SystemTime};

use super::body::{Body, Wire};
use super::listener::Conn;
use super::reply::{strerror, Proto, Reply, Who};
use super::{log, reqlog, static_files, Env, MAX_DRAIN};
use crate::protocol::uwsgi::{self, Limits, Packet, PacketError, Status, EMPTY_PYTHON_REQUEST_LOG};

/// Why no request came out of the connection.
enum ReadFailure {
    /// Closed or timed out before a whole packet: `Some(line)` to log.
    Gone(Option<String>),
    Bad(PacketError),
}

/// Reads one packet; returns `(header + vars bytes)` copied out.
fn read_packet(wire: &mut Wire, limits: &Limits) -> Result<Vec<u8>, ReadFailure> {
    loop {
        match uwsgi::check(wire.buffered(), limits) {
            Ok(Status::Complete {
                header_len,
                vars_len,
            }) => {
                let packet = wire.buffered()[..header_len + vars_len].to_vec();
                wire.consume(packet.len());
                return Ok(packet);
            }
            Ok(Status::Incomplete { needed }) => {
                let cap = wire.buffered().len() + needed;
                match wire.fill(cap) {
                    Ok(0) => return Err(ReadFailure::Gone(None)),
                    Ok(_) => {}
                    Err(e) => {
                        return Err(ReadFailure::Gone(Some(format!(
                            "uwsgi_proto_uwsgi_parser(): {} [proto/uwsgi.c line 40]",
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) {
                                "Resource temporarily unavailable".to_string()
                            } else {
                                strerror(&e)
                            }
                        ))))
                    }
                }
            }
            Err(e) => return Err(ReadFailure::Bad(e)),
        }
    }
}

/// The last value of `key` (uWSGI's `uwsgi_get_var`).
fn var<'a>(vars: &[(&'a [u8], &'a [u8])], key: &[u8]) -> Option<&'a [u8]> {
    vars.iter().rev().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// Logs why a packet was refused: uWSGI's words, then the socket.
fn log_refused(env: &Env<'_>, line: &str) {
    log(&format!("{line} [socket {}]", env.listener.name));
}

/// Serves a new connection; returns it when it may carry another request
/// (the caller parks it).
pub(crate) fn serve(env: &Env<'_>, conn: Conn, keep_going: &dyn Fn() -> bool) -> Option<Wire> {
    serve_wire(env, Wire::watching_marker(conn.stream), keep_going)
}

/// A parked (kept) connection turned readable: serves what it sent, or
/// finds it closed, or finds nothing yet (readiness is only a hint).
/// Returns it when it is to be parked again.
pub(crate) fn resume(env: &Env<'_>, wire: Wire, keep_going: &dyn Fn() -> bool) -> Option<Wire> {
    super::resume_parked(env, wire, |w| serve_wire(env, w, keep_going))
}

/// Requests one after the other while the connection is kept and more
/// bytes are already buffered.
fn serve_wire(env: &Env<'_>, mut wire: Wire, keep_going: &dyn Fn() -> bool) -> Option<Wire> {
    loop {
        wire = serve_one(env, wire).filter(|_| keep_going())?;
        if wire.buffered().is_empty() {
            return Some(wire);
        }
    }
}

/// One packet and its response; the connection back when it stays open.
fn serve_one(env: &Env<'_>, mut wire: Wire) -> Option<Wire> {
    let started = Instant::now();
    let wall = SystemTime::now();
    let limits = Limits {
        buffer_size: env.config.buffer_size,
        max_vars: env.config.max_vars,
    };
    let packet = match read_packet(&mut wire, &limits) {
        Ok(p) => p,
        Err(ReadFailure::Gone(line)) => {
            if let Some(line) = line {
                log_refused(env, &line);
            }
            return None;
        }
        Err(ReadFailure::Bad(e)) => {
            log_refused(env, &e.log_line());
            if matches!(
                e,
                PacketError::NullKey { .. } | PacketError::TooManyVars { .. }
            ) {
                let total = env.request_done();
                env.log_request(&reqlog::Entry {
                    pid: env.pid,
                    total,
                    started: Some(wall),
                    elapsed: started.elapsed(),
                    core: env.core,
                    ..reqlog::Entry::default()
                });
            }
            return None;
        }
    };
    let parsed = Packet::parse(&packet);
    if parsed.header.modifier1 != 0 {
        log_refused(
            env,
            &uwsgi::unavailable_modifier_log(parsed.header.modifier1),
        );
        return None;
    }
    let vars: Vec<(&[u8], &[u8])> = parsed.vars().collect();
    let first = |key: &[u8]| vars.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    let method = var(&vars, b"REQUEST_METHOD").unwrap_or_default();
    let uri = var(&vars, b"REQUEST_URI").unwrap_or_default();
    let protocol = var(&vars, b"SERVER_PROTOCOL").unwrap_or_default();
    let remote_addr = first(b"REMOTE_ADDR").unwrap_or_default();
    let mut entry = reqlog::Entry {
        pid: env.pid,
        remote_addr,
        remote_user: var(&vars, b"REMOTE_USER").unwrap_or_default(),
        vars: vars.len(),
        vars_bytes: parsed.block.len(),
        started: Some(wall),
        method,
        uri,
        protocol,
        core: env.core,
        ..reqlog::Entry::default()
    };
    if parsed.block.is_empty() {
        log_refused(env, EMPTY_PYTHON_REQUEST_LOG);
        entry.total = env.request_done();
        entry.elapsed = started.elapsed();
        env.log_request(&entry);
        return None;
    }
    let length = var(&vars, b"CONTENT_LENGTH").map_or(0, uwsgi::content_length);
    let who = Who {
        method: String::from_utf8_lossy(method).into_owned(),
        uri: String::from_utf8_lossy(uri).into_owned(),
        addr: String::from_utf8_lossy(remote_addr).into_owned(),
    };
    let proto = Proto::Uwsgi {
        keep: wire.marked,
        head: method == b"HEAD",
    };
    let mut reply = Reply::new(wire, Body::length(length), proto, protocol.to_vec(), who);
    env.request_started();
    let do_log;
    let extra = match super::route::request(env, &vars, &mut reply) {
        super::route::Routed::App { vars, log } => {
            do_log = log;
            vars
        }
        super::route::Routed::Done { log } => {
            reply.wire.stream.shutdown_write();
            entry.stats = reply.stats;
            entry.total = env.request_done();
            entry.elapsed = started.elapsed();
            if log {
                env.log_request(&entry);
            }
            return None;
        }
    };
    let vars: Vec<(&[u8], &[u8])> = vars
        .iter()
        .copied()
        .chain(extra.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))
        .collect();
    let path_info = var(&vars, b"PATH_INFO").unwrap_or_default();
    let found = static_files::lookup(
        &env.config.static_maps,
        &env.config.check_static,
        &env.config.mime_files,
        method,
        path_info,
    );
    // post-buffering: the body first; a client that fails it never
    // reaches the app (the failure is logged once by the reader).
    let buffered = found.is_some()
        || env.config.post_buffering == 0
        || reply.buffer_body(env.config.post_buffering).is_ok();
    let mut complete = true;
    let reply = match found {
        Some(found) => {
            super::http_conn::serve_static(
                &mut reply,
                found,
                var(&vars, b"HTTP_IF_MODIFIED_SINCE"),
            );
            Some(reply)
        }
        None if !buffered => {
            complete = false;
            Some(reply)
        }
        None => {
            let (outcome, back) = crate::python::handle(env.apps, &vars, env.config.threads, reply);
            entry.app = outcome.app_id.map(|id| (id, outcome.app_requests));
            complete = outcome.complete;
            back
        }
    };
    let mut kept = None;
    if let Some(mut reply) = reply {
        let reusable = complete && reply.finish();
        entry.stats = std::mem::take(&mut reply.stats);
        if reusable && reply.skip_body(MAX_DRAIN) {
            kept = Some(reply.wire);
        }
        // Otherwise closing sends the FIN (no separate shutdown call),
        // before the log line is written.
    }
    entry.total = env.request_done();
    entry.elapsed = started.elapsed();
    if do_log {
        env.log_request(&entry);
    }
    kept
}
