//! The event loop: listeners, client connections (owned in a `Slab`),
//! their backends, deadlines and the control pipe, in one `mio::Poll`.
//!
//! Tokens are reserved by range: [`CONTROL`] (signals), then one per
//! listener, then two per connection (`CONN_BASE + 2*key` for the client,
//! `+1` for its backend). Readiness is edge-triggered and only a hint:
//! every event drives its connection until nothing moves
//! ([`Conn::drive`]); a connection that hit the per-turn bound is driven
//! again next turn without waiting. Deadlines live in an ordered set.

use std::collections::{BTreeSet, VecDeque};
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, UnixListener, UnixStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use super::conn::{Conn, Drive, Peer};
use super::io::Stream;
use super::upstream::Pool;
use super::{log, Shared};
use crate::config::model_router::RouterConfig;
use crate::protocol::cgi::port_of_socket_name;

/// The control pipe (signals, or a test's stop handle).
const CONTROL: Token = Token(0);
/// First listener token.
const LISTENER_BASE: usize = 1;
/// Listeners a gateway may have.
const MAX_LISTENERS: usize = 1024;
/// First connection token.
const CONN_BASE: usize = LISTENER_BASE + MAX_LISTENERS;
/// Events handled per poll.
const EVENTS: usize = 1024;
/// Connections accepted per listener per turn.
const ACCEPT_BATCH: usize = 256;
/// Deadlines handled per turn.
const EXPIRE_BATCH: usize = 1024;
/// The longest a drain may wait between checks.
const DRAIN_TICK: Duration = Duration::from_millis(200);
/// After accept() failed for lack of descriptors or memory: when to try
/// again (the listener's readiness is edge-triggered, so waiting for an
/// event would leave queued clients until the next one connects).
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// At most one log line per this period for a run of accept() failures.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(1);

/// The token of a connection's client (`side` 0) or backend (`side` 1).
pub(crate) fn conn_token(key: usize, side: usize) -> Token {
    Token(CONN_BASE + key * 2 + side)
}

#[derive(Debug)]
enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    fn from_fd(fd: OwnedFd) -> io::Result<(Listener, Option<u16>)> {
        let tcp = std::net::TcpListener::from(fd);
        match tcp.local_addr() {
            Ok(addr) => {
                tcp.set_nonblocking(true)?;
                Ok((Listener::Tcp(TcpListener::from_std(tcp)), Some(addr.port())))
            }
            Err(_) => {
                let unix = std::os::unix::net::UnixListener::from(OwnedFd::from(tcp));
                unix.set_nonblocking(true)?;
                Ok((Listener::Unix(UnixListener::from_std(unix)), None))
            }
        }
    }

    fn accept(&self) -> io::Result<(Stream, Peer)> {
        match self {
            Listener::Tcp(l) => {
                let (s, addr) = l.accept()?;
                let _ = s.set_nodelay(true);
                Ok((Stream::Tcp(s), Peer::tcp(addr)))
            }
            Listener::Unix(l) => {
                let (s, _) = l.accept()?;
                Ok((Stream::Unix(s), Peer::unix()))
            }
        }
    }

    fn source(&mut self) -> &mut dyn mio::event::Source {
        match self {
            Listener::Tcp(l) => l,
            Listener::Unix(l) => l,
        }
    }
}

/// A write end registered for SIGINT, SIGTERM and SIGQUIT: each signal
/// writes a byte; returns the read end.
pub fn signal_pipe() -> io::Result<OwnedFd> {
    let (read, write) = StdUnixStream::pair()?;
    write.set_nonblocking(true)?;
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGQUIT] {
        signal_hook::low_level::pipe::register(sig, write.try_clone()?)?;
    }
    Ok(read.into())
}

/// Serves `listeners` until `control` becomes readable (a byte: drain and
/// stop; a second one: stop now) or reaches end of file. Returns the exit
/// status.
pub fn serve(cfg: &RouterConfig, listeners: Vec<OwnedFd>, control: OwnedFd) -> i32 {
    crate::routing::mime::init(&cfg.mime_files);
    match Gateway::new(cfg, listeners, control) {
        Ok(mut gw) => gw.run(),
        Err(e) => {
            log(&format!("uWSGI http: {e}"));
            1
        }
    }
}

/// The loop's state.
struct Gateway<'a> {
    cfg: &'a RouterConfig,
    poll: Poll,
    listeners: Vec<Option<Listener>>,
    /// Listeners whose accept batch ran out: accept again without waiting.
    accept_again: Vec<usize>,
    /// accept() failed (EMFILE, ENOMEM...): every listener tries again then.
    accept_retry: Option<Instant>,
    /// When the last accept() failure was logged.
    accept_logged: Option<Instant>,
    control: UnixStream,
    conns: Slab<Conn>,
    timers: BTreeSet<(Instant, usize)>,
    ready: VecDeque<usize>,
    pool: Pool,
    loads: super::kept::SharedLoads,
    server_name: Vec<u8>,
    /// This process's pid, for `${pid}`-style routing vars.
    pid: u32,
    server_ports: Vec<Vec<u8>>,
    /// Set when shutting down: the time it must end by.
    drain_until: Option<Instant>,
    stop_now: bool,
}

impl<'a> Gateway<'a> {
    fn new(cfg: &'a RouterConfig, fds: Vec<OwnedFd>, control: OwnedFd) -> io::Result<Gateway<'a>> {
        if fds.len() > MAX_LISTENERS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "too many http sockets",
            ));
        }
        let poll = Poll::new()?;
        let mut listeners = Vec::new();
        let mut server_ports = Vec::new();
        for (i, fd) in fds.into_iter().enumerate() {
            let (mut listener, bound_port) = Listener::from_fd(fd)?;
            poll.registry().register(
                listener.source(),
                Token(LISTENER_BASE + i),
                Interest::READABLE,
            )?;
            let name = cfg.http.get(i).map(String::as_str).unwrap_or_default();
            let port = match (port_of_socket_name(name.as_bytes()), bound_port) {
                (Some(b"0") | None, Some(p)) => p.to_string().into_bytes(),
                (Some(p), _) => p.to_vec(),
                (None, None) => Vec::new(),
            };
            server_ports.push(port);
            listeners.push(Some(listener));
        }
        let control = StdUnixStream::from(control);
        control.set_nonblocking(true)?;
        let mut control = UnixStream::from_std(control);
        poll.registry()
            .register(&mut control, CONTROL, Interest::READABLE)?;
        Ok(Gateway {
            cfg,
            poll,
            listeners,
            accept_again: Vec::new(),
            accept_retry: None,
            accept_logged: None,
            control,
            conns: Slab::new(),
            timers: BTreeSet::new(),
            ready: VecDeque::new(),
            pool: Pool::new(
                &cfg.to,
                cfg.local_socket.as_deref(),
                &cfg.fallback,
                cfg.gracetime,
            ),
            loads: Default::default(),
            server_name: host_name(),
            pid: std::process::id(),
            server_ports,
            drain_until: None,
            stop_now: false,
        })
    }

    fn run(&mut self) -> i32 {
        for line in self.cfg.routes.dump() {
            log(&line);
        }
        let mut events = Events::with_capacity(EVENTS);
        loop {
            let now = Instant::now();
            if self.stop_now
                || self
                    .drain_until
                    .is_some_and(|t| self.conns.is_empty() || now >= t)
            {
                return 0;
            }
            let timeout = if !self.ready.is_empty() || !self.accept_again.is_empty() {
                Some(Duration::ZERO)
            } else {
                let next = self
                    .timers
                    .first()
                    .map(|(t, _)| *t)
                    .into_iter()
                    .chain(self.accept_retry)
                    .min()
                    .map(|t| t.saturating_duration_since(now));
                match (next, self.drain_until) {
                    (Some(t), Some(_)) => Some(t.min(DRAIN_TICK)),
                    (None, Some(_)) => Some(DRAIN_TICK),
                    (t, None) => t,
                }
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log(&format!("uWSGI http: poll(): {e}"));
                return 1;
            }
            for event in events.iter() {
                match event.token() {
                    CONTROL => self.on_control(),
                    Token(t) if (LISTENER_BASE..CONN_BASE).contains(&t) => {
                        self.accept(t - LISTENER_BASE)
                    }
                    Token(t) => {
                        let key = (t - CONN_BASE) / 2;
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            if let Some(conn) = self.conns.get_mut(key) {
                                conn.readable(
                                    (t - CONN_BASE) % 2,
                                    event.is_read_closed() || event.is_error(),
                                );
                            }
                        }
                        self.drive(key);
                    }
                }
            }
            for i in std::mem::take(&mut self.accept_again) {
                self.accept(i);
            }
            if self.accept_retry.is_some_and(|at| at <= Instant::now()) {
                self.accept_retry = None;
                for i in 0..self.listeners.len() {
                    self.accept(i);
                }
            }
            for _ in 0..self.ready.len() {
                if let Some(key) = self.ready.pop_front() {
                    self.drive(key);
                }
            }
            self.expire(Instant::now());
        }
    }

    fn on_control(&mut self) {
        let mut buf = [0u8; 16];
        let stop = match self.control.read(&mut buf) {
            Ok(_) => true,
            Err(e) => e.kind() != io::ErrorKind::WouldBlock,
        };
        if !stop {
            return;
        }
        if self.drain_until.is_some() {
            self.stop_now = true;
            return;
        }
        self.drain_until = Some(Instant::now() + self.cfg.timeout);
        for slot in &mut self.listeners {
            if let Some(mut listener) = slot.take() {
                let _ = self.poll.registry().deregister(listener.source());
            }
        }
        self.accept_again.clear();
        self.accept_retry = None;
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.drive(key);
        }
    }

    fn accept(&mut self, index: usize) {
        for _ in 0..ACCEPT_BATCH {
            let Some(Some(listener)) = self.listeners.get(index) else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => self.add(stream, peer, index),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: the clients stay queued; retry
                    // soon (closing connections frees descriptors).
                    let now = Instant::now();
                    if self
                        .accept_logged
                        .is_none_or(|t| now.duration_since(t) >= ACCEPT_LOG_EVERY)
                    {
                        self.accept_logged = Some(now);
                        let name = self.cfg.http.get(index).map_or("?", String::as_str);
                        log(&format!("uWSGI http: accept(): {e} [socket {name}]"));
                    }
                    if self.drain_until.is_none() {
                        self.accept_retry.get_or_insert(now + ACCEPT_RETRY);
                    }
                    return;
                }
            }
        }
        self.accept_again.push(index);
    }

    fn add(&mut self, mut stream: Stream, peer: Peer, listener: usize) {
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) = stream.register(self.poll.registry(), conn_token(key, 0)) {
            log(&format!("uWSGI http: registering a connection: {e}"));
            return;
        }
        let deadline = Instant::now() + self.cfg.headers_timeout;
        entry.insert(Conn::new(key, stream, peer, listener, deadline));
        self.drive(key);
    }

    fn shared(&mut self) -> (Shared<'_>, &mut Slab<Conn>) {
        (
            Shared {
                cfg: self.cfg,
                registry: self.poll.registry(),
                pool: &mut self.pool,
                loads: &self.loads,
                server_name: &self.server_name,
                pid: self.pid,
                server_ports: &self.server_ports,
                now: Instant::now(),
                draining: self.drain_until.is_some(),
            },
            &mut self.conns,
        )
    }

    fn drive(&mut self, key: usize) {
        let (mut sh, conns) = self.shared();
        let Some(conn) = conns.get_mut(key) else {
            return;
        };
        let result = conn.drive(&mut sh);
        self.settle(key, result);
    }

    /// Acts on a drive's result and keeps the timer set in step.
    fn settle(&mut self, key: usize, result: Drive) {
        match result {
            Drive::Close => {
                let conn = self.conns.remove(key);
                if let Some(t) = conn.armed {
                    self.timers.remove(&(t, key));
                }
                return;
            }
            Drive::Busy => self.ready.push_back(key),
            Drive::Open => {}
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.armed != conn.deadline {
            if let Some(t) = conn.armed {
                self.timers.remove(&(t, key));
            }
            if let Some(t) = conn.deadline {
                self.timers.insert((t, key));
            }
            conn.armed = conn.deadline;
        }
    }

    /// Handles the deadlines that passed (a bounded number per turn).
    fn expire(&mut self, now: Instant) {
        for _ in 0..EXPIRE_BATCH {
            let Some(&(t, key)) = self.timers.first() else {
                return;
            };
            if t > now {
                return;
            }
            self.timers.remove(&(t, key));
            let result = {
                let (mut sh, conns) = self.shared();
                let Some(conn) = conns.get_mut(key) else {
                    continue;
                };
                conn.armed = None;
                if conn.deadline == Some(t) {
                    conn.deadline = None;
                    match conn.on_timeout(&mut sh) {
                        Drive::Open => conn.drive(&mut sh),
                        other => other,
                    }
                } else {
                    Drive::Open
                }
            };
            self.settle(key, result);
        }
    }
}

/// The machine's host name (`SERVER_NAME`), as `gethostname()` gives it.
fn host_name() -> Vec<u8> {
    std::fs::read("/proc/sys/kernel/hostname")
        .map(|mut h| {
            while h.last().is_some_and(|b| b.is_ascii_whitespace()) {
                h.pop();
            }
            h
        })
        .unwrap_or_else(|_| b"localhost".to_vec())
}
