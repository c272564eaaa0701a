//! The HTTP router gateway (`http = ADDR`): one process, one mio loop,
//! HTTP/1.x from clients in, the uwsgi protocol (or HTTP, for `http:`
//! rules) to backends out.
//!
//! For each request the router builds exactly the variables uWSGI's router
//! sends (spec §2.1, with the real `REMOTE_PORT`), runs the routing table
//! itself ([`crate::routing`]; a `route-host ... uwsgi:/tmp/uwsgi_$1.sock`
//! rule reaches the vassal in one hop), and forwards to the chosen
//! backend, or to the default pool (`http-to` nodes, round-robin with
//! failover, else this instance's socket 0, then `http-fallback`).
//!
//! Where ruwsgi differs from uWSGI 2.0.21's router (on purpose, see the
//! README): connections are kept alive by default with correct framing;
//! pipelined requests are answered in order; chunked request bodies are
//! de-chunked and forwarded with `CONTENT_LENGTH`; `Expect: 100-continue`
//! is answered; failures get an HTTP status (400, 408, 413, 431, 502, 504)
//! and one log line instead of a silent close; a UNIX connection to a
//! ruwsgi worker stays open for the client's next request (`kept`,
//! `protocol::uwsgi::KEEP_HEADER`).
//!
//! Parts: `conn` (a client connection's stages), `proxy` (one
//! exchange with a backend), `upstream` (addresses and the pool), `kept`
//! (the workers behind kept backend connections),
//! `reply` (backend response heads, error pages), `wire` (packets and
//! `http:` requests), `body` (chunked-body spool), `local` (responses
//! the router makes itself: routing actions, static files), `io`
//! (non-blocking plumbing), `gateway` (the loop, tokens, timers,
//! signals).

mod body;
mod conn;
mod gateway;
mod io;
mod kept;
mod local;
mod proxy;
mod reply;
mod upstream;
mod wire;

use std::io::Write as _;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Instant;

use mio::Registry;

use crate::config::model_router::RouterConfig;
use crate::routing::{HeaderOp, Var};
use upstream::Pool;

pub use gateway::{serve, signal_pipe};
pub use kept::{set_board_row, share_board, BOARD_BUCKETS};
pub use wire::{http_request, uwsgi_packet};

/// Bytes queued toward one peer before reading from the other side
/// pauses (backpressure).
pub(crate) const HIGH_WATER: usize = 256 * 1024;

/// Writes one log line to standard error.
pub(crate) fn log(line: &str) {
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line.as_bytes());
    buf.push(b'\n');
    let _ = std::io::stderr().lock().write_all(&buf);
}

/// What every connection may use while it is being driven.
pub(crate) struct Shared<'a> {
    pub cfg: &'a RouterConfig,
    pub registry: &'a Registry,
    pub pool: &'a mut Pool,
    /// The workers behind kept backend connections.
    pub loads: &'a kept::SharedLoads,
    /// `SERVER_NAME`: the machine's host name.
    pub server_name: &'a [u8],
    /// The router's pid (read once: routing contexts want it per request).
    pub pid: u32,
    /// `SERVER_PORT` of each listener.
    pub server_ports: &'a [Vec<u8>],
    pub now: Instant,
    /// Shutting down: no new requests on kept-alive connections.
    pub draining: bool,
}

/// One request, as the stages after its head need it.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    /// The routing key for log lines: the Host header, or the host name.
    pub key: String,
    pub client_addr: String,
    pub client_port: String,
    /// The router's vars plus what routing actions appended.
    pub vars: Vec<Var>,
    /// `SERVER_PROTOCOL`, for generated status lines.
    pub protocol: Vec<u8>,
    pub head_method: bool,
    /// The client asked for a persistent connection (HTTP/1.1 default).
    pub wanted_keep_alive: bool,
    /// ... and the router will give it one.
    pub keep_alive: bool,
    pub expect_continue: bool,
    /// Header edits from the request chain.
    pub ops: Vec<HeaderOp>,
    /// `send:` / `disableheaders:` ran: the response head is not sent.
    pub suppress_head: bool,
    pub started: Instant,
}

/// Binds every `http =` address (see [`bind_listener`]).
pub fn bind_all(cfg: &RouterConfig) -> Result<Vec<OwnedFd>, String> {
    cfg.http
        .iter()
        .map(|name| bind_listener(name, cfg))
        .collect()
}

/// Binds one `http =` address, logging uWSGI's `uWSGI http bound on :8080
/// fd 4`, and defers accept on it as uWSGI does (`no-defer-accept`).
pub fn bind_listener(name: &str, cfg: &RouterConfig) -> Result<OwnedFd, String> {
    let bound = crate::sys::socket::bind(name, cfg.listen)?;
    let fd = bound.fd.as_raw_fd();
    log(&format!("uWSGI http bound on {name} fd {fd}"));
    if let Some(secs) = cfg.defer_accept {
        if let Err(e) = crate::sys::socket::defer_accept(fd, name, secs) {
            log(&format!(
                "TCP_DEFER_ACCEPT setsockopt(): {e} [socket {name}]"
            ));
        }
    }
    Ok(bound.fd)
}

/// The gateway's entry point: serves `listeners` (the bound `http =`
/// sockets, in `cfg.http` order) until SIGINT, SIGTERM or SIGQUIT, then
/// finishes the requests in flight and returns 0. Returns 1 when the loop
/// cannot start.
pub fn run(cfg: &RouterConfig, listeners: Vec<OwnedFd>) -> i32 {
    let control = match gateway::signal_pipe() {
        Ok(fd) => fd,
        Err(e) => {
            log(&format!("uWSGI http: cannot install signal handlers: {e}"));
            return 1;
        }
    };
    // The master forks with signals blocked; ours are handled from now on.
    crate::sys::process::unblock_all_signals();
    serve(cfg, listeners, control)
}
