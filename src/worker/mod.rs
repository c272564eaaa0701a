//! One worker process: the accept loop and the request cycle.
//!
//! [`serve`] runs `threads` copies of the loop (the GIL is released while
//! a thread waits on a socket). Each waits with poll(2) (mio) on every
//! listening socket plus the signal self-pipe, accepts non-blocking
//! (siblings race; `WouldBlock` is normal), and serves the connection with
//! its protocol: [`uwsgi_conn`] (one request, raw HTTP response, close) or
//! [`http_conn`] (HTTP/1.1 keep-alive: between requests the connection
//! waits in [`parked`], in the same poll). After each request: the log line
//! ([`reqlog`]), then the recycle checks (`max-requests`, `reload-on-rss`,
//! both only once `min-worker-lifetime` has passed).
//!
//! Stopping ([`signals`]): SIGHUP finishes the requests in progress, then
//! [`WorkerExit::Graceful`]; SIGINT/SIGQUIT/SIGTERM return
//! [`WorkerExit::Shutdown`] when idle, and exit the process at once with
//! [`SHUTDOWN_EXIT`] when a request is running (as uWSGI's worker does).

mod body;
mod http_conn;
mod listener;
mod parked;
mod reply;
mod reqlog;
mod route;
mod signals;
mod spool;
mod static_files;
mod status;
mod uwsgi_conn;

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

pub use listener::Listener;

use crate::config::model::{SocketProto, WorkerConfig};
use crate::python;
use listener::{Acceptor, Conn};
use parked::{Parked, MAX_PARKED};
use signals::{Control, Stop};

/// Exit status of a worker that stops at once (uWSGI's "end" code 30).
pub const SHUTDOWN_EXIT: i32 = 30;

/// How long a thread waits in poll before looking at the stop flag again.
const POLL_TICK: Duration = Duration::from_secs(1);

/// Token of the signal pipe in a thread's poll.
const WAKE: Token = Token(usize::MAX);

/// Body bytes the worker reads and drops after a response so a kept-alive
/// connection can go on; a bigger leftover closes the connection.
const MAX_DRAIN: u64 = 64 * 1024;

/// Writes one log line to standard error, ignoring failures.
pub(crate) fn log(line: &str) {
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line.as_bytes());
    buf.push(b'\n');
    let _ = std::io::stderr().lock().write_all(&buf);
}

/// The worker's harakiri deadline slot, placed by the master in shared
/// memory: the start time (unix seconds) of the request in progress, or 0.
#[derive(Debug, Clone, Copy)]
pub struct HarakiriSlot(&'static AtomicU64);

impl HarakiriSlot {
    pub fn new(slot: &'static AtomicU64) -> HarakiriSlot {
        HarakiriSlot(slot)
    }

    fn arm(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1);
        self.0.store(now, Ordering::Relaxed);
    }

    fn disarm(&self) {
        self.0.store(0, Ordering::Relaxed);
    }
}

/// What a worker is given.
#[derive(Debug)]
pub struct WorkerContext<'a> {
    /// 1-based worker id.
    pub id: usize,
    /// Already bound and listening, shared with the sibling workers.
    pub listeners: &'a [Listener],
    pub config: &'a WorkerConfig,
    pub apps: &'a python::Apps,
    pub harakiri: Option<&'a HarakiriSlot>,
    /// Requests served by the whole instance (shared memory): the `B` of
    /// the request line's `req: A/B`.
    pub total: &'a AtomicU64,
    /// The instance's `route*` rules.
    pub routes: &'a crate::routing::Table,
}

/// Why [`serve`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerExit {
    /// `max-requests` or `reload-on-rss`: the master respawns it.
    Recycled,
    /// SIGHUP: the requests in progress were finished.
    Graceful,
    /// SIGINT/SIGQUIT/SIGTERM.
    Shutdown,
}

/// State shared by the threads of this worker process.
struct Process<'a> {
    ctx: &'a WorkerContext<'a>,
    control: Control,
    started: Instant,
    pid: u32,
    /// Requests finished by this process.
    requests: AtomicU64,
    recycle_logged: AtomicBool,
    hostname: String,
}

/// Per-request facts shared by both protocols.
pub(crate) struct Env<'a> {
    pub(crate) config: &'a WorkerConfig,
    pub(crate) apps: &'a python::Apps,
    pub(crate) listener: &'a Listener,
    pub(crate) hostname: &'a str,
    pub(crate) core: usize,
    pub(crate) pid: u32,
    pub(crate) routes: &'a crate::routing::Table,
    requests: &'a AtomicU64,
    total: &'a AtomicU64,
    harakiri: Option<&'a HarakiriSlot>,
}

impl Env<'_> {
    pub(crate) fn request_started(&self) {
        if let Some(h) = self.harakiri {
            h.arm();
        }
    }

    /// Ends a request: disarms harakiri, counts it (for this process and
    /// for the instance), returns the instance's count.
    pub(crate) fn request_done(&self) -> u64 {
        if let Some(h) = self.harakiri {
            h.disarm();
        }
        let n = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        if n == 1 {
            crate::master::announce_loyalty();
        }
        self.total.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub(crate) fn log_request(&self, entry: &reqlog::Entry<'_>) {
        if !self.config.disable_logging {
            log(&entry.line());
        }
    }
}

/// Runs the worker until it must stop.
pub fn serve(ctx: WorkerContext<'_>) -> WorkerExit {
    crate::routing::mime::init(&ctx.config.mime_files);
    let control = match Control::install() {
        Ok(c) => c,
        Err(e) => {
            log(&format!(
                "unable to install the worker signal handlers: {e}"
            ));
            return WorkerExit::Shutdown;
        }
    };
    let process = Process {
        ctx: &ctx,
        control,
        started: Instant::now(),
        pid: std::process::id(),
        requests: AtomicU64::new(0),
        recycle_logged: AtomicBool::new(false),
        hostname: hostname(),
    };
    let threads = ctx.config.threads.max(1);
    let stop = if threads == 1 {
        thread_loop(&process, 0)
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = (1..threads)
                .map(|core| {
                    let p = &process;
                    s.spawn(move || thread_loop(p, core))
                })
                .collect();
            let mine = thread_loop(&process, 0);
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(Stop::Shutdown))
                .fold(mine, Stop::max)
        })
    };
    match stop {
        Stop::Recycle => WorkerExit::Recycled,
        Stop::Graceful | Stop::Run => WorkerExit::Graceful,
        Stop::Shutdown => WorkerExit::Shutdown,
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim_end().to_string())
        .unwrap_or_default()
}

/// One thread: accept and serve until told to stop.
fn thread_loop(process: &Process<'_>, core: usize) -> Stop {
    let ctx = process.ctx;
    let mut acceptors = Vec::new();
    for l in ctx.listeners {
        match Acceptor::new(l) {
            Ok(a) => acceptors.push((a, l)),
            Err(e) => log(&format!("unable to use socket {}: {e}", l.name)),
        }
    }
    let Ok(mut poll) = Poll::new() else {
        log("unable to create the worker event queue");
        return Stop::Shutdown;
    };
    use std::os::fd::AsRawFd;
    let wake_fd = process.control.wake.as_raw_fd();
    let mut ok = poll
        .registry()
        .register(&mut SourceFd(&wake_fd), WAKE, Interest::READABLE)
        .is_ok();
    for (i, (a, _)) in acceptors.iter().enumerate() {
        let fd = a.raw_fd();
        ok &= poll
            .registry()
            .register(&mut SourceFd(&fd), Token(i), Interest::READABLE)
            .is_ok();
    }
    if !ok {
        log("unable to watch the worker sockets");
        return Stop::Shutdown;
    }
    let mut events = Events::with_capacity(64);
    let timeout = Duration::from_secs(ctx.config.socket_timeout);
    let mut parked = Parked::new(Some(timeout).filter(|t| !t.is_zero()), MAX_PARKED);
    // Listeners that may have a connection waiting (readiness is
    // edge-triggered and siblings race for it: cleared on WouldBlock).
    let mut pending = vec![true; acceptors.len()];
    let mut last_sweep = Instant::now();
    loop {
        let stop = process.control.stop();
        if stop != Stop::Run {
            if stop != Stop::Shutdown {
                // Graceful: a parked client may have sent a request while
                // this thread was busy; answer it (then close) rather than
                // drop it. The rest are idle: dropping them closes them.
                for taken in parked.take_all() {
                    if let Some((_, listener)) = acceptors.get(taken.listener) {
                        let incoming = Incoming::Parked(taken.wire, &taken.peer);
                        serve_conn(process, core, listener, incoming);
                    }
                }
            }
            return stop;
        }
        // One turn: each parked connection that spoke, then a new connection
        // from each listener that may have one, so neither kind starves.
        // Known clients first: a connection the router keeps with this
        // worker must not wait behind a new one's slow request.
        let mut worked = false;
        for _ in 0..parked.ready_count() {
            if process.control.stop() != Stop::Run {
                break;
            }
            let Some(taken) = parked.take_ready() else {
                break;
            };
            worked = true;
            let Some((_, listener)) = acceptors.get(taken.listener) else {
                parked.remove(taken.key);
                continue;
            };
            let peer = taken.peer.clone();
            match serve_conn(
                process,
                core,
                listener,
                Incoming::Parked(taken.wire, &taken.peer),
            ) {
                Some(wire) => parked.put_back(taken.key, wire, peer),
                None => parked.remove(taken.key),
            }
        }
        for (i, (acceptor, listener)) in acceptors.iter().enumerate() {
            // Told to stop while serving a parked client: the queued
            // connections are for the workers that stay (or come next).
            if !pending[i] || process.control.stop() != Stop::Run {
                continue;
            }
            match acceptor.accept(timeout) {
                Ok(conn) => {
                    worked = true;
                    let peer = conn.peer.clone();
                    if let Some(wire) = serve_conn(process, core, listener, Incoming::New(conn)) {
                        parked.park(poll.registry(), wire, peer, i);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => pending[i] = false,
                Err(e) if is_transient(&e) => {}
                // Out of descriptors: an idle keep-alive client gives way.
                Err(e) if is_fd_limit(&e) && parked.evict_oldest() => {}
                Err(e) => {
                    // Retried on the next sweep, not in a loop.
                    pending[i] = false;
                    log(&format!(
                        "accept(): {} [socket {}]",
                        reply::strerror(&e),
                        listener.name
                    ));
                }
            }
        }
        // Block unless a listener may still have a connection queued or a
        // parked connection is known to be ready: readiness is
        // edge-triggered, so anything else comes back as an event.
        let more = pending.iter().any(|&p| p) || parked.ready_count() > 0;
        let wait = if worked && more {
            Duration::ZERO
        } else {
            POLL_TICK
        };
        match poll.poll(&mut events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                log(&format!("poll(): {e}"));
                return Stop::Shutdown;
            }
        }
        for event in &events {
            match event.token() {
                WAKE => {}
                Token(i) if i < pending.len() => pending[i] = true,
                token => {
                    if let Some(key) = Parked::key_of(token) {
                        parked.mark_ready(key);
                    }
                }
            }
        }
        let now = Instant::now();
        if now.duration_since(last_sweep) >= POLL_TICK {
            last_sweep = now;
            parked.expire(now);
            pending.iter_mut().for_each(|p| *p = true);
        }
    }
}

fn is_fd_limit(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        WouldBlock | Interrupted | ConnectionAborted | ConnectionReset
    )
}

/// A parked connection that looked readable: reads what it has (nothing
/// yet: parked again; its end: closed), then lets `serve` have it.
/// Returns the connection when it is to be parked again.
fn resume_parked(
    env: &Env<'_>,
    mut wire: body::Wire,
    serve: impl FnOnce(body::Wire) -> Option<body::Wire>,
) -> Option<body::Wire> {
    if wire.buffered().is_empty() {
        match wire.fill_now(env.config.buffer_size.max(1)) {
            Ok(0) => return None,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Some(wire),
            Err(_) => return None,
        }
    }
    serve(wire)
}

/// A connection for [`serve_conn`].
enum Incoming<'a> {
    New(Conn),
    /// A parked HTTP connection that looked readable, and its peer.
    Parked(body::Wire, &'a str),
}

/// Serves what a connection brings; returns an HTTP connection that may
/// carry another request, for the caller to park.
fn serve_conn(
    process: &Process<'_>,
    core: usize,
    listener: &Listener,
    incoming: Incoming<'_>,
) -> Option<body::Wire> {
    let ctx = process.ctx;
    process.control.set_busy(true);
    let env = Env {
        config: ctx.config,
        apps: ctx.apps,
        listener,
        hostname: &process.hostname,
        core,
        pid: process.pid,
        routes: ctx.routes,
        requests: &process.requests,
        total: ctx.total,
        harakiri: ctx.harakiri,
    };
    let keep_going = || process.control.stop() == Stop::Run && !check_recycle(process);
    let before = process.requests.load(Ordering::Relaxed);
    let kept = match (listener.proto, incoming) {
        (SocketProto::Uwsgi, Incoming::New(conn)) => uwsgi_conn::serve(&env, conn, &keep_going),
        (SocketProto::Http, Incoming::New(conn)) => http_conn::serve(&env, conn, &keep_going),
        (SocketProto::Uwsgi, Incoming::Parked(wire, _)) => {
            uwsgi_conn::resume(&env, wire, &keep_going)
        }
        (SocketProto::Http, Incoming::Parked(wire, peer)) => {
            http_conn::resume(&env, wire, peer, &keep_going)
        }
    };
    // A connection that carried no request (a probe) recycles nothing.
    if process.requests.load(Ordering::Relaxed) != before {
        check_recycle(process);
    }
    process.control.set_busy(false);
    kept
}

/// After a request: `max-requests` / `reload-on-rss`, once the worker is
/// old enough. Returns whether the worker is recycling.
fn check_recycle(process: &Process<'_>) -> bool {
    let cfg = process.ctx.config;
    if process.started.elapsed() < Duration::from_secs(cfg.min_worker_lifetime) {
        return false;
    }
    let served = process.requests.load(Ordering::Relaxed);
    let by_requests = cfg.max_requests > 0 && served >= cfg.max_requests;
    let by_rss = cfg.reload_on_rss_mb > 0 && rss_mb() >= cfg.reload_on_rss_mb;
    if !(by_requests || by_rss) {
        return false;
    }
    if !process.recycle_logged.swap(true, Ordering::SeqCst) {
        log(&format!(
            "...The work of process {} is done. Seeya!",
            process.pid
        ));
    }
    process.control.request(Stop::Recycle);
    true
}

/// Resident set size in MiB, from /proc/self/status.
fn rss_mb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kb| kb / 1024)
        .unwrap_or(0)
}

#[cfg(test)]
mod harness;

#[cfg(test)]
mod e2e_tests;
