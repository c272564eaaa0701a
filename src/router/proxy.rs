//! One request's exchange with a backend: connect (with failover over the
//! pool), send the packet and stream the body with backpressure, read the
//! response head to learn its framing, pass the response on, and say
//! whether the client connection may serve another request.
//!
//! [`Proxy::step`] does what it can without blocking and reports a
//! [`ProxyStep`]; the connection ([`super::conn`]) owns the client side
//! and acts on it.

use std::time::Instant;

use mio::Token;

use super::body::SpoolReader;
use super::io::{read_some_detailed, strerror, Flush, Outbox, ReadOutcome, Stream};
use super::reply::{parse_backend_head, BackendHead, Framing, HeadParse};
use super::upstream::{Addr, Attempts, Pick, Target};
use super::{log, Request, Shared};

mod response;
use crate::protocol::chunked::{Chunk, ChunkedDecoder};

/// Largest response head accepted from a backend.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Bytes read from the client per call.
const READ_AHEAD: usize = 64 * 1024;

/// What is left of the request body.
#[derive(Debug)]
pub(crate) enum BodyIn {
    None,
    /// Bytes still to come from the client.
    Length(u64),
    /// A de-chunked body, read back from the spool.
    Spooled(SpoolReader),
    /// `http-raw-body`: everything until the client closes.
    Raw,
}

impl BodyIn {
    fn is_done(&self) -> bool {
        match self {
            BodyIn::None => true,
            BodyIn::Length(n) => *n == 0,
            BodyIn::Spooled(r) => r.remaining() == 0,
            BodyIn::Raw => false,
        }
    }
}

/// How the response body is being passed on.
#[derive(Debug)]
enum BodyOut {
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
    /// Re-framed as chunks (`http-auto-chunked`).
    AutoChunk,
}

#[derive(Debug)]
enum Resp {
    /// Collecting the head.
    Head(Vec<u8>),
    Body(BodyOut),
    Done,
}

/// The client side, lent to [`Proxy::step`].
pub(crate) struct ClientSide<'a> {
    pub stream: &'a mut Stream,
    pub inbuf: &'a mut Vec<u8>,
    pub out: &'a mut Outbox,
    pub eof: &'a mut bool,
    /// Nothing to read from the client until its next readiness event.
    pub quiet: &'a mut bool,
    /// The client's end was reported: never quiet.
    pub hup: bool,
    pub token: Token,
}

/// What [`Proxy::step`] reports.
#[derive(Debug)]
pub(crate) enum ProxyStep {
    Progress,
    Idle,
    /// Nothing was sent to the client yet: answer with this status.
    Failed(u16),
    /// The response is complete; `keep` when the connection may go on.
    Finished {
        keep: bool,
    },
    /// The backend switched protocols (101): splice from now on.
    Upgrade,
    /// Give up on the connection without another word.
    Abort,
}

/// A backend being talked to.
#[derive(Debug)]
pub(crate) struct Proxy {
    pub req: Request,
    target: Target,
    /// `uwsgi` or `http`, for log lines.
    kind: &'static str,
    /// The packet (or HTTP request head) sent first on each connection.
    request_bytes: Vec<u8>,
    attempts: Attempts,
    pick: Option<Pick>,
    pub(crate) backend: Option<Stream>,
    connected: bool,
    connect_started: Option<Instant>,
    to_backend: Outbox,
    body: BodyIn,
    /// The backend stopped reading: the rest of the body is dropped.
    body_abandoned: bool,
    resp: Resp,
    /// Bytes of this response given to the client.
    pub(crate) response_started: bool,
    pub(crate) status: u16,
    /// The response allows the connection to go on.
    keepable: bool,
    continue_pending: bool,
    sent_continue: bool,
    rbuf: Vec<u8>,
    /// Start of a chunk-size line not yet complete.
    chunk_carry: Vec<u8>,
    /// Whether the backend may keep this connection for the next request.
    keeping: Keeping,
    /// Nothing to read from the backend until its next readiness event
    /// (it says nothing before it has the request).
    backend_quiet: bool,
    /// The poll reported the backend's end: read until it is seen.
    backend_hup: bool,
    /// Counts this request as in flight to its uwsgi address while it
    /// lives (held for its `Drop`; see [`super::kept`]).
    _in_flight: Option<super::kept::InFlight>,
}

/// The backend connection's marker (see `protocol::uwsgi::KEEP_HEADER`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Mark {
    /// Not marked (TCP, `http:`, no marker descriptor): closed after.
    #[default]
    None,
    /// New; its first bytes go with the marker.
    Pending,
    Sent,
    /// Kept from an earlier exchange: if it turns out closed before any
    /// response byte, the request goes again on a new connection.
    Reused,
}

/// One exchange's state as far as keeping its backend connection goes.
#[derive(Debug, Default)]
struct Keeping {
    mark: Mark,
    /// The response ended cleanly after the worker said so.
    keeps: bool,
    /// The backend sent bytes past the end of the response.
    overrun: bool,
}

/// The descriptor the router attaches to the first bytes of a new uwsgi
/// connection (any descriptor does; this one is created once per
/// process). `None` when it cannot be created: connections are then not
/// kept.
fn marker_fd() -> Option<std::os::fd::RawFd> {
    use std::os::fd::AsRawFd;
    static MARKER: std::sync::OnceLock<Option<std::os::fd::OwnedFd>> = std::sync::OnceLock::new();
    MARKER
        .get_or_init(|| crate::sys::socket::eventfd().ok())
        .as_ref()
        .map(AsRawFd::as_raw_fd)
}

impl Proxy {
    pub(crate) fn new(
        req: Request,
        target: Target,
        request_bytes: Vec<u8>,
        body: BodyIn,
        kind: &'static str,
    ) -> Proxy {
        // A spooled body was read already (the spooler sent the 100).
        let spooled = matches!(body, BodyIn::Spooled(_));
        let continue_pending = req.expect_continue && !spooled && !body.is_done();
        let sent_continue = req.expect_continue && spooled;
        Proxy {
            req,
            target,
            kind,
            request_bytes,
            attempts: Attempts::default(),
            pick: None,
            backend: None,
            connected: false,
            connect_started: None,
            to_backend: Outbox::default(),
            body,
            body_abandoned: false,
            resp: Resp::Head(Vec::new()),
            response_started: false,
            status: 0,
            keepable: false,
            continue_pending,
            sent_continue,
            rbuf: Vec::new(),
            chunk_carry: Vec::new(),
            keeping: Keeping::default(),
            backend_quiet: true,
            backend_hup: false,
            _in_flight: None,
        }
    }

    /// The poll says the backend has something to read.
    pub(crate) fn backend_readable(&mut self, hup: bool) {
        self.backend_quiet = false;
        self.backend_hup |= hup;
    }

    /// Sends the request on `stream`, a connection to `name` kept from
    /// the previous exchange (still registered under this connection's
    /// backend token). Only for requests without a body.
    pub(crate) fn reuse(mut self, kept: super::kept::Kept, sh: &Shared<'_>) -> Proxy {
        let super::kept::Kept { name, stream } = kept;
        self.keeping = Keeping {
            mark: Mark::Reused,
            ..Keeping::default()
        };
        self._in_flight = Some(super::kept::InFlight::start(sh.loads, &name, sh.now));
        self.pick = Some(Pick::named(&name));
        self.backend = Some(stream);
        self.connected = true;
        self.to_backend.push(&self.request_bytes);
        self
    }

    /// The backend connection, when the worker keeps it open and the
    /// exchange ended cleanly: for the next request of the same client.
    pub(crate) fn take_kept(&mut self) -> Option<super::kept::Kept> {
        let clean = self.keeping.keeps
            && !self.keeping.overrun
            && self.body.is_done()
            && !self.body_abandoned
            && self.to_backend.is_empty();
        if !clean {
            return None;
        }
        Some(super::kept::Kept {
            name: self.backend_name().to_string(),
            stream: self.backend.take()?,
        })
    }

    /// A kept connection failed before any response byte: the request was
    /// never read, so it goes again on a new connection.
    fn retry_fresh(&mut self, token: Token, sh: &mut Shared<'_>) -> ProxyStep {
        self.backend = None;
        self.connected = false;
        self.keeping = Keeping::default();
        self.backend_quiet = true;
        self.backend_hup = false;
        self.to_backend = Outbox::default();
        self.resp = Resp::Head(Vec::new());
        match self.connect_next(token, sh) {
            Ok(()) => ProxyStep::Progress,
            Err(status) => ProxyStep::Failed(status),
        }
    }

    /// Nothing of the response came yet on a kept connection.
    fn may_retry(&self) -> bool {
        self.keeping.mark == Mark::Reused && matches!(&self.resp, Resp::Head(buf) if buf.is_empty())
    }

    /// The address being (or last) tried.
    pub(crate) fn backend_name(&self) -> &str {
        self.pick.as_ref().map_or("", |p| p.name.as_str())
    }

    pub(crate) fn is_connecting(&self) -> bool {
        self.backend.is_some() && !self.connected
    }

    pub(crate) fn connect_started(&self) -> Option<Instant> {
        self.connect_started
    }

    /// The body still needs bytes from the client.
    pub(crate) fn waiting_for_client(&self) -> bool {
        matches!(self.body, BodyIn::Length(n) if n > 0) || matches!(self.body, BodyIn::Raw)
    }

    pub(crate) fn step(&mut self, c: &mut ClientSide<'_>, sh: &mut Shared<'_>) -> ProxyStep {
        if self.backend.is_none() {
            return match self.connect_next(c.token, sh) {
                Ok(()) => ProxyStep::Progress,
                Err(status) => ProxyStep::Failed(status),
            };
        }
        if !self.connected {
            let result = self.backend.as_ref().map(Stream::connect_result);
            match result {
                Some(Ok(true)) => self.on_connected(c),
                Some(Ok(false)) | None => return ProxyStep::Idle,
                Some(Err(e)) => {
                    self.connect_failed(&strerror(&e), sh);
                    return ProxyStep::Progress;
                }
            }
        }
        let mut progress = false;
        progress |= self.feed_body(c);
        match self.flush_backend() {
            Flush::Progress => progress = true,
            Flush::Broken if self.may_retry() => return self.retry_fresh(c.token, sh),
            Flush::Broken => {
                // The backend will not read more; it may still answer.
                self.body_abandoned = true;
                self.to_backend = Outbox::default();
                progress = true;
            }
            Flush::Idle => {}
        }
        if let Some(step) = self.read_client(c) {
            return step;
        }
        match self.read_backend(c, sh) {
            ProxyStep::Idle => {}
            ProxyStep::Progress => progress = true,
            other => return other,
        }
        if progress {
            ProxyStep::Progress
        } else {
            ProxyStep::Idle
        }
    }

    /// Picks the next address and starts connecting; `Err(502)` when there
    /// is nothing left to try.
    fn connect_next(&mut self, token: Token, sh: &mut Shared<'_>) -> Result<(), u16> {
        loop {
            let pick = match &self.target {
                Target::Fixed(name) if self.attempts.count == 0 => {
                    self.attempts.count = 1;
                    Pick::named(name)
                }
                Target::Fixed(_) => return Err(502),
                Target::Pool => match sh.pool.pick(&mut self.attempts, sh.now) {
                    Some(p) => p,
                    None => {
                        if self.attempts.count == 0 {
                            log("[uwsgi-http] no backend available (no http-to node and no socket 0)");
                        }
                        return Err(502);
                    }
                },
            };
            self.pick = Some(pick.clone());
            let connected = Addr::parse(pick.name.as_bytes())
                .map_err(|e| e.to_string())
                .and_then(|addr| addr.connect().map_err(|e| strerror(&e)));
            match connected {
                Ok(mut stream) => {
                    if let Err(e) = stream.register(sh.registry, token) {
                        self.connect_failed(&strerror(&e), sh);
                        continue;
                    }
                    // Only worth it when the client connection goes on.
                    let markable = self.req.keep_alive
                        && self.kind == "uwsgi"
                        && stream.unix_fd().is_some()
                        && marker_fd().is_some();
                    self.keeping.mark = if markable { Mark::Pending } else { Mark::None };
                    if self.kind == "uwsgi" {
                        self._in_flight =
                            Some(super::kept::InFlight::start(sh.loads, &pick.name, sh.now));
                    }
                    self.backend = Some(stream);
                    self.connected = false;
                    self.connect_started = Some(sh.now);
                    return Ok(());
                }
                Err(reason) => self.connect_failed(&reason, sh),
            }
        }
    }

    /// Logs a failed connect, marks the node, and forgets the socket so the
    /// next step tries the next address.
    pub(crate) fn connect_failed(&mut self, reason: &str, sh: &mut Shared<'_>) {
        let name = self.backend_name().to_string();
        match &self.target {
            Target::Fixed(_) => log(&format!(
                "error routing request to {} server {name} ({reason})",
                self.kind
            )),
            Target::Pool => {
                if !sh.cfg.quiet {
                    log(&format!(
                        "[uwsgi-http] unable to connect() to node \"{name}\" ({} retries): {reason}",
                        self.attempts.count.saturating_sub(1)
                    ));
                }
                if let Some(pick) = &self.pick {
                    if sh.pool.mark_failed(pick, sh.now) {
                        log(&format!(
                            "[uwsgi-http] {} => marking {name} as failed",
                            self.req.key
                        ));
                    }
                }
            }
        }
        self.backend = None;
        self.connected = false;
    }

    fn on_connected(&mut self, c: &mut ClientSide<'_>) {
        self.connected = true;
        self.to_backend.push(&self.request_bytes);
        if self.continue_pending && c.inbuf.is_empty() {
            c.out.push(b"HTTP/1.1 100 Continue\r\n\r\n");
            self.sent_continue = true;
        }
        self.continue_pending = false;
    }

    /// Moves body bytes from the client buffer (or the spool) toward the
    /// backend while the backend's queue has room.
    fn feed_body(&mut self, c: &mut ClientSide<'_>) -> bool {
        let room = super::HIGH_WATER.saturating_sub(self.to_backend.pending());
        if room == 0 {
            return false;
        }
        let take = |inbuf: &mut Vec<u8>, n: usize| -> Vec<u8> { inbuf.drain(..n).collect() };
        match &mut self.body {
            BodyIn::None => false,
            BodyIn::Length(remaining) => {
                let n = room
                    .min(c.inbuf.len())
                    .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                if n == 0 {
                    return false;
                }
                *remaining -= n as u64;
                let bytes = take(c.inbuf, n);
                if !self.body_abandoned {
                    self.to_backend.push(&bytes);
                }
                true
            }
            BodyIn::Raw => {
                let n = room.min(c.inbuf.len());
                if n == 0 {
                    return false;
                }
                let bytes = take(c.inbuf, n);
                if !self.body_abandoned {
                    self.to_backend.push(&bytes);
                }
                true
            }
            BodyIn::Spooled(reader) => match reader.next_piece(room) {
                Ok(piece) if piece.is_empty() => false,
                Ok(piece) => {
                    if !self.body_abandoned {
                        self.to_backend.push(&piece);
                    }
                    true
                }
                Err(e) => {
                    log(&format!("[uwsgi-http] reading the spooled body: {e}"));
                    self.body = BodyIn::None;
                    self.body_abandoned = true;
                    true
                }
            },
        }
    }

    fn flush_backend(&mut self) -> Flush {
        match self.backend.as_mut() {
            Some(b) if self.connected && self.keeping.mark == Mark::Pending => {
                let (Some(fd), Some(marker)) = (b.unix_fd(), marker_fd()) else {
                    self.keeping.mark = Mark::None;
                    return self.to_backend.flush_to(b);
                };
                // The kernel may refuse the descriptor (more in flight than
                // the descriptor limit: ETOOMANYREFS) while the socket is
                // fine: then the bytes go without it.
                let mut refused = None;
                let flushed = self.to_backend.flush_via(|bytes| {
                    crate::sys::socket::send_with_fd(fd, bytes, marker).inspect_err(|e| {
                        use std::io::ErrorKind::*;
                        if !matches!(
                            e.kind(),
                            WouldBlock | Interrupted | BrokenPipe | ConnectionReset
                        ) {
                            refused = Some(strerror(e));
                        }
                    })
                });
                if let Some(why) = refused {
                    static LOGGED: std::sync::atomic::AtomicBool =
                        std::sync::atomic::AtomicBool::new(false);
                    if !LOGGED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                        let name = self.pick.as_ref().map_or("", |p| p.name.as_str());
                        log(&format!(
                            "[uwsgi-http] cannot mark the connection to {name} ({why}): connections are not kept while this lasts"
                        ));
                    }
                    self.keeping.mark = Mark::None;
                    return self.to_backend.flush_to(b);
                }
                if flushed == Flush::Progress {
                    self.keeping.mark = Mark::Sent;
                }
                flushed
            }
            Some(b) if self.connected => self.to_backend.flush_to(b),
            _ => Flush::Idle,
        }
    }

    /// Reads the client while the body needs bytes (or, once it is done, a
    /// little ahead, to see a close or the next pipelined request).
    fn read_client(&mut self, c: &mut ClientSide<'_>) -> Option<ProxyStep> {
        if *c.eof || *c.quiet {
            return None;
        }
        let wanted = match &self.body {
            BodyIn::Length(n) if *n > 0 => {
                c.inbuf.is_empty() && self.to_backend.pending() < super::HIGH_WATER
            }
            BodyIn::Raw => c.inbuf.is_empty() && self.to_backend.pending() < super::HIGH_WATER,
            _ => c.inbuf.len() < crate::protocol::http::DEFAULT_MAX_HEAD_LEN,
        };
        if !wanted {
            return None;
        }
        let read = read_some_detailed(c.stream, c.inbuf, READ_AHEAD);
        *c.quiet = read.drained && !c.hup;
        match read.outcome {
            ReadOutcome::Data => Some(ProxyStep::Progress),
            ReadOutcome::WouldBlock => None,
            ReadOutcome::Closed => {
                *c.eof = true;
                match &self.body {
                    BodyIn::Raw => {
                        self.body = BodyIn::None;
                        if let Some(b) = &self.backend {
                            b.shutdown_write();
                        }
                        Some(ProxyStep::Progress)
                    }
                    body if !body.is_done() => Some(ProxyStep::Abort),
                    _ => Some(ProxyStep::Progress),
                }
            }
        }
    }
}
