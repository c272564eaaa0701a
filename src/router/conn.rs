//! A client connection: a lifecycle of [`Stage`]s, one request at a time
//! (pipelined requests wait in the input buffer and are answered in
//! order).
//!
//! ```text
//! Head ──head──▶ (routing) ──▶ Local ─────────────┐
//!   ▲               │      └──▶ Spooling ──▶ Proxy ┤──keep-alive──▶ Head
//!   │               └─────────────────────▶ Proxy ┘
//!   └───────────────────────────── Proxy ──101──▶ Tunnel
//! any stage ──error / close──▶ Closing (flush, half-close, linger) ──▶ gone
//! ```
//!
//! Each `step_*` takes its stage by value and returns the next one with a
//! [`Step`]: the transitions are the return values. [`Conn::drive`] steps
//! until nothing moves (readiness is edge-triggered), at most
//! [`MAX_STEPS`] times per event. Starting a request (routing, then the
//! stage it leads to) lives in `dispatch`, the spliced stage in `tunnel`.

mod dispatch;
mod tunnel;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::body::{Fed, Spool};
use super::gateway::conn_token;
use super::io::{read_some, read_some_detailed, Flush, Outbox, ReadOutcome, Stream};
use super::local::{self, Local};
use super::proxy::{BodyIn, ClientSide, Proxy, ProxyStep};
use super::reply::error_page;
use super::upstream::Target;
use super::wire;
use super::{log, Request, Shared, HIGH_WATER};
use crate::protocol::http::{
    body_framing, check_head, expects_continue, host_key, keep_alive, router_vars, BodyFraming,
    HeadLimits, HeadStatus, RequestHead, RouterEnv, DEFAULT_MAX_HEAD_LEN,
};
use crate::routing::{self, Context, ForwardKind, HeaderOp, Outcome};
use dispatch::Spooling;
use tunnel::Tunnel;

/// Steps per event before the connection yields to the others.
pub(crate) const MAX_STEPS: usize = 64;

/// How long a closing connection reads and discards what the client still
/// sends, so the response is not lost to a reset.
const LINGER: Duration = Duration::from_secs(2);

/// The client's address as the vars show it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Peer {
    pub addr: String,
    pub port: String,
}

impl Peer {
    pub(crate) fn tcp(addr: SocketAddr) -> Peer {
        Peer {
            addr: addr.ip().to_string(),
            port: addr.port().to_string(),
        }
    }

    pub(crate) fn unix() -> Peer {
        Peer::default()
    }
}

/// What driving a connection ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Drive {
    /// Waiting for readiness or a deadline.
    Open,
    /// Done: drop it.
    Close,
    /// The step bound was hit: drive again soon.
    Busy,
}

/// One step's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Progress,
    Idle,
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    /// Writing what is queued.
    Flushing,
    /// Our side is shut; discarding input until the client closes.
    Lingering,
}

/// The stages of a connection.
#[derive(Debug)]
enum Stage {
    Head,
    Spooling(Box<Spooling>),
    Proxy(Box<Proxy>),
    Local(Box<Local>),
    Tunnel(Box<Tunnel>),
    Closing(Closing),
}

/// A client connection.
#[derive(Debug)]
pub(crate) struct Conn {
    key: usize,
    client: Stream,
    peer: Peer,
    listener: usize,
    inbuf: Vec<u8>,
    client_eof: bool,
    /// The client's socket had nothing more at the last read: new bytes
    /// come with a readiness event, so there is no read until then.
    client_quiet: bool,
    /// The poll reported the client's end (or an error): read until it is seen.
    client_hup: bool,
    out: Outbox,
    stage: Stage,
    pub(crate) deadline: Option<Instant>,
    /// The deadline as registered in the gateway's timer set.
    pub(crate) armed: Option<Instant>,
    /// The last backend connection, which its worker keeps open: the next
    /// request to the same address goes on it (see [`super::kept`]).
    kept: Option<super::kept::KeptHandle>,
}

impl Conn {
    pub(crate) fn new(
        key: usize,
        client: Stream,
        peer: Peer,
        listener: usize,
        deadline: Instant,
    ) -> Conn {
        Conn {
            key,
            client,
            peer,
            listener,
            inbuf: Vec::new(),
            client_eof: false,
            client_quiet: false,
            client_hup: false,
            out: Outbox::default(),
            stage: Stage::Head,
            deadline: Some(deadline),
            armed: None,
            kept: None,
        }
    }

    /// The poll says `side` (0: the client, 1: the backend) has bytes, an
    /// end or an error to read.
    pub(crate) fn readable(&mut self, side: usize, hup: bool) {
        if side == 0 {
            self.client_quiet = false;
            self.client_hup |= hup;
        } else if let Stage::Proxy(p) = &mut self.stage {
            p.backend_readable(hup);
        }
    }

    pub(crate) fn drive(&mut self, sh: &mut Shared<'_>) -> Drive {
        for _ in 0..MAX_STEPS {
            match self.step(sh) {
                Step::Progress => continue,
                Step::Idle => return Drive::Open,
                Step::Close => return Drive::Close,
            }
        }
        Drive::Busy
    }

    fn step(&mut self, sh: &mut Shared<'_>) -> Step {
        let flushed = match self.out.flush_to(&mut self.client) {
            Flush::Broken => return Step::Close,
            Flush::Progress => true,
            Flush::Idle => false,
        };
        let stage = std::mem::replace(&mut self.stage, Stage::Closing(Closing::Flushing));
        let (next, step) = match stage {
            Stage::Head => self.step_head(sh),
            Stage::Spooling(s) => self.step_spool(s, sh),
            Stage::Proxy(p) => self.step_proxy(p, sh),
            Stage::Local(l) => self.step_local(l, sh),
            Stage::Tunnel(t) => self.step_tunnel(t, sh),
            Stage::Closing(c) => self.step_closing(c, sh),
        };
        self.stage = next;
        match step {
            Step::Idle if flushed => Step::Progress,
            other => other,
        }
    }

    /// A deadline passed.
    pub(crate) fn on_timeout(&mut self, sh: &mut Shared<'_>) -> Drive {
        let stage = std::mem::replace(&mut self.stage, Stage::Closing(Closing::Flushing));
        let (next, step) = match stage {
            Stage::Head if !self.inbuf.is_empty() => {
                self.fail(408, "timeout while reading the request head", None, sh)
            }
            Stage::Spooling(s) => self.fail(
                408,
                "timeout while reading the request body",
                Some(&s.req.key),
                sh,
            ),
            Stage::Proxy(mut p) => {
                if p.is_connecting() {
                    p.connect_failed("timeout", sh);
                    (Stage::Proxy(p), Step::Progress)
                } else if p.response_started {
                    (Stage::Proxy(p), Step::Close)
                } else if p.waiting_for_client() && self.inbuf.is_empty() {
                    self.fail(
                        408,
                        "timeout while reading the request body",
                        Some(&p.req.key),
                        sh,
                    )
                } else {
                    let msg = format!(
                        "backend \"{}\" sent no response within {}s",
                        p.backend_name(),
                        sh.cfg.timeout.as_secs()
                    );
                    self.fail(504, &msg, Some(&p.req.key), sh)
                }
            }
            other => (other, Step::Close),
        };
        self.stage = next;
        match step {
            Step::Close => Drive::Close,
            _ => Drive::Open,
        }
    }

    /// Logs `msg` in the router's session style, queues the error page for
    /// `status` (none for 0) and closes after it.
    fn fail(
        &mut self,
        status: u16,
        msg: &str,
        key: Option<&str>,
        sh: &Shared<'_>,
    ) -> (Stage, Step) {
        if !msg.is_empty() {
            self.session_log(key, msg, sh);
        }
        if status != 0 {
            self.out.push(&error_page(status));
        }
        self.deadline = Some(sh.now + sh.cfg.timeout);
        (Stage::Closing(Closing::Flushing), Step::Progress)
    }

    fn session_log(&self, key: Option<&str>, msg: &str, sh: &Shared<'_>) {
        let key = key.map_or_else(
            || String::from_utf8_lossy(sh.server_name).into_owned(),
            str::to_string,
        );
        log(&format!(
            "[uwsgi-http key: {key} client_addr: {} client_port: {}] {msg}",
            self.peer.addr, self.peer.port
        ));
    }

    fn step_head(&mut self, sh: &mut Shared<'_>) -> (Stage, Step) {
        if !self.inbuf.is_empty() {
            match check_head(&self.inbuf, &HeadLimits::default()) {
                Ok(HeadStatus::Complete { head_len }) => return self.start_request(head_len, sh),
                Ok(HeadStatus::Incomplete) => {}
                Err(e) => return self.fail(e.status(), &format!("invalid request: {e}"), None, sh),
            }
        }
        if self.client_eof || (sh.draining && self.inbuf.is_empty()) {
            return (Stage::Head, Step::Close);
        }
        if self.client_quiet {
            return (Stage::Head, Step::Idle);
        }
        let was_empty = self.inbuf.is_empty();
        let room = (DEFAULT_MAX_HEAD_LEN + 1)
            .saturating_sub(self.inbuf.len())
            .max(1);
        let read = read_some_detailed(&mut self.client, &mut self.inbuf, room);
        self.client_quiet = read.drained && !self.client_hup;
        match read.outcome {
            ReadOutcome::Data => {
                if was_empty {
                    self.deadline = Some(sh.now + sh.cfg.headers_timeout);
                }
                (Stage::Head, Step::Progress)
            }
            ReadOutcome::WouldBlock => (Stage::Head, Step::Idle),
            ReadOutcome::Closed => {
                self.client_eof = true;
                (Stage::Head, Step::Progress)
            }
        }
    }

    fn step_proxy(&mut self, mut p: Box<Proxy>, sh: &mut Shared<'_>) -> (Stage, Step) {
        let mut side = ClientSide {
            stream: &mut self.client,
            inbuf: &mut self.inbuf,
            out: &mut self.out,
            eof: &mut self.client_eof,
            quiet: &mut self.client_quiet,
            hup: self.client_hup,
            token: conn_token(self.key, 1),
        };
        match p.step(&mut side, sh) {
            ProxyStep::Progress => {
                self.deadline = Some(match p.connect_started() {
                    Some(t) if p.is_connecting() => t + sh.cfg.connect_timeout,
                    _ => sh.now + sh.cfg.timeout,
                });
                (Stage::Proxy(p), Step::Progress)
            }
            ProxyStep::Idle => (Stage::Proxy(p), Step::Idle),
            ProxyStep::Failed(status) => {
                // The proxy logged the cause.
                let key = p.req.key.clone();
                self.fail(status, "", Some(&key), sh)
            }
            ProxyStep::Finished { keep } => {
                if keep {
                    self.kept = p.take_kept().map(|k| super::kept::Loads::keep(sh.loads, k));
                }
                let status = p.status;
                self.finish(p.req, status, keep, sh)
            }
            ProxyStep::Upgrade => match p.backend.take() {
                Some(backend) => {
                    self.deadline = Some(sh.now + sh.cfg.timeout);
                    let tunnel = Tunnel {
                        backend,
                        to_backend: Outbox::default(),
                        backend_closed: false,
                        backend_shut: false,
                    };
                    (Stage::Tunnel(Box::new(tunnel)), Step::Progress)
                }
                None => (Stage::Closing(Closing::Flushing), Step::Progress),
            },
            ProxyStep::Abort => (Stage::Closing(Closing::Flushing), Step::Close),
        }
    }

    /// A response is complete: run the final chain, then serve the next
    /// request or close.
    fn finish(&mut self, req: Request, status: u16, keep: bool, sh: &Shared<'_>) -> (Stage, Step) {
        if !sh.cfg.routes.final_.is_empty() {
            let ctx = Context {
                pid: sh.pid,
                status,
                response_time_us: u64::try_from(sh.now.duration_since(req.started).as_micros())
                    .unwrap_or(u64::MAX),
                ..Context::default()
            };
            let ev = routing::evaluate(&sh.cfg.routes.final_, &req.vars, &ctx);
            for line in &ev.logs {
                log(&String::from_utf8_lossy(line));
            }
        }
        if keep && !sh.draining && !self.client_eof {
            let idle = match sh.cfg.keepalive {
                crate::config::model_router::KeepAlive::On { idle } => idle,
                crate::config::model_router::KeepAlive::Off => sh.cfg.timeout,
            };
            self.deadline = Some(sh.now + idle);
            return (Stage::Head, Step::Progress);
        }
        self.deadline = Some(sh.now + sh.cfg.timeout);
        (Stage::Closing(Closing::Flushing), Step::Progress)
    }

    fn step_local(&mut self, mut l: Box<Local>, sh: &mut Shared<'_>) -> (Stage, Step) {
        if self.out.pending() < HIGH_WATER {
            match l.fill(&mut self.out) {
                local::Fill::More => return (Stage::Local(l), Step::Progress),
                local::Fill::Failed => return (Stage::Closing(Closing::Flushing), Step::Progress),
                local::Fill::Done => {}
            }
        }
        if !self.out.is_empty() {
            return (Stage::Local(l), Step::Idle);
        }
        let Local {
            req, status, keep, ..
        } = *l;
        self.finish(req, status, keep, sh)
    }

    fn step_closing(&mut self, c: Closing, sh: &mut Shared<'_>) -> (Stage, Step) {
        match c {
            Closing::Flushing if !self.out.is_empty() => (Stage::Closing(c), Step::Idle),
            Closing::Flushing if self.client_eof => (Stage::Closing(c), Step::Close),
            Closing::Flushing => {
                self.client.shutdown_write();
                self.deadline = Some(sh.now + LINGER);
                (Stage::Closing(Closing::Lingering), Step::Progress)
            }
            Closing::Lingering => {
                self.inbuf.clear();
                match read_some(&mut self.client, &mut self.inbuf, sh.cfg.buffer_size) {
                    ReadOutcome::Data => {
                        self.inbuf.clear();
                        (Stage::Closing(c), Step::Progress)
                    }
                    ReadOutcome::WouldBlock => (Stage::Closing(c), Step::Idle),
                    ReadOutcome::Closed => (Stage::Closing(c), Step::Close),
                }
            }
        }
    }
}

/// The header edits for a response with `status`: the request chain's,
/// then the error chain's and the response chain's (their log lines are
/// written here).
pub(crate) fn response_ops(req: &Request, status: u16, sh: &Shared<'_>) -> Vec<HeaderOp> {
    let mut ops = req.ops.clone();
    let ctx = Context {
        pid: sh.pid,
        status,
        ..Context::default()
    };
    for chain in [&sh.cfg.routes.error, &sh.cfg.routes.response] {
        if chain.is_empty() {
            continue;
        }
        let ev = routing::evaluate(chain, &req.vars, &ctx);
        for line in &ev.logs {
            log(&String::from_utf8_lossy(line));
        }
        ops.extend(ev.headers);
    }
    ops
}
