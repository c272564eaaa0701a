//! The emperor's one event loop (`emperor_loop`): a mio poll over the
//! signal self-pipe, the inotify descriptor, the stats socket, every
//! vassal pipe and on-demand socket, with timers for the periodic rescan,
//! settled inotify bursts, throttled restarts, curse tolerance, heartbeats
//! and Ragnarok's mercy. Idle, it wakes once per `emperor-freq`.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use crate::protocol::emperor::FromVassal;
use crate::sys::process;

use super::log::Logger;
use super::monitor::{Kind, Monitor};
use super::notify::Notify;
use super::signals::{Signal, Signals};
use super::stats::{self, View};
use super::stats_server::StatsServer;
use super::table::{Emperor, VASSAL_BASE};
use super::vassal::{Event, Mtime, Now};
use super::watch::{Changes, Watcher};
use super::{wall_secs, EmperorConfig};

const SIGNALS: Token = Token(0);
const INOTIFY: Token = Token(1);
const STATS: Token = Token(2);
/// Stats clients use tokens from here up (far above any vassal token).
const STATS_CLIENTS: usize = usize::MAX / 2;
const EVENTS_CAPACITY: usize = 256;
/// After a first inotify event, let the burst settle this long.
const SETTLE: Duration = Duration::from_millis(20);
/// Event-triggered scans are at least this far apart (a file rewritten
/// every millisecond reloads its vassal at most four times a second).
const EVENT_SCAN_GAP: Duration = Duration::from_millis(250);
/// Bytes read from one vassal pipe per wake-up before the others' turn.
const PIPE_READ_LIMIT: usize = 4096;
/// During Ragnarok, look at the vassals at least this often.
const RAGNAROK_TICK: Duration = Duration::from_secs(1);

fn clock() -> Now {
    Now {
        at: Instant::now(),
        wall: wall_secs(),
    }
}

/// Everything the loop owns besides the table.
struct Loop<'a> {
    emp: Emperor<'a>,
    poll: Poll,
    signals: Signals,
    watcher: Option<Watcher>,
    inotify_more: bool,
    /// The inotify descriptor is out of the poll while a batch settles, so
    /// a storm of events costs one wake-up per batch, not one per event.
    inotify_paused: bool,
    stats: Option<StatsServer>,
    changes: Changes,
    changes_at: Option<Instant>,
    last_event_scan: Option<Instant>,
    next_scan: Instant,
    pipe_backlog: Vec<usize>,
    /// SIGCHLD arrived: reap (`waitpid` walks every child, so not on
    /// every turn; the periodic scan reaps too, as a safety net).
    reap_due: bool,
    notify: Notify,
    governing: Option<usize>,
    base: PathBuf,
}

/// Runs the emperor until Ragnarok completes; returns the exit status.
pub fn run(cfg: &EmperorConfig) -> i32 {
    match Loop::new(cfg) {
        Ok(l) => l.run(),
        Err(code) => code,
    }
}

impl<'a> Loop<'a> {
    fn new(cfg: &'a EmperorConfig) -> Result<Loop<'a>, i32> {
        let log = Logger {
            log_date: cfg.log_date.clone(),
        };
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            log.plain(format!("{what}: {e}"));
            1
        };
        let base = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        if let Some(pidfile) = &cfg.pidfile {
            let name = String::from_utf8_lossy(pidfile);
            log.plain(format!("writing pidfile to {name}"));
            let path = Path::new(std::ffi::OsStr::from_bytes(pidfile));
            std::fs::write(path, format!("{}\n", std::process::id()))
                .map_err(|e| fail(&format!("uwsgi_write_pidfile()/open() [{name}]"), &e))?;
        }
        let signals = Signals::install().map_err(|e| fail("signal handlers", &e))?;
        let poll = Poll::new().map_err(|e| fail("epoll_create()", &e))?;
        let registry = poll.registry();
        registry
            .register(
                &mut SourceFd(&signals.wake.as_raw_fd()),
                SIGNALS,
                Interest::READABLE,
            )
            .map_err(|e| fail("epoll_ctl()", &e))?;
        let monitors: Vec<Monitor> = cfg
            .monitors
            .iter()
            .map(|m| Monitor::new(m, &base))
            .collect();
        for m in monitors.iter().filter(|m| m.is_missing()) {
            log.plain(format!(
                "[emperor] directory {} does not exist (yet): waiting for it",
                String::from_utf8_lossy(&m.arg)
            ));
        }
        let sub = std::env::var_os("UWSGI_EMPEROR_FD").is_some();
        log.plain(if sub {
            "*** starting uWSGI sub-Emperor ***"
        } else {
            "*** starting uWSGI Emperor ***"
        });
        let stats = match &cfg.stats {
            None => None,
            Some(addr) => {
                let (server, fd) = StatsServer::bind(
                    addr,
                    cfg.listen,
                    cfg.socket_timeout,
                    registry,
                    STATS,
                    STATS_CLIENTS,
                )
                .map_err(|e| fail("emperor-stats", &e))?;
                log.plain(format!(
                    "*** Emperor stats server enabled on {} fd: {fd} ***",
                    String::from_utf8_lossy(addr)
                ));
                Some(server)
            }
        };
        let watcher = match Watcher::new(monitors.len()) {
            Ok(w) => {
                let fd = w.inotify().as_raw_fd();
                registry
                    .register(&mut SourceFd(&fd), INOTIFY, Interest::READABLE)
                    .ok()
                    .map(|_| w)
            }
            Err(e) => {
                log.plain(format!(
                    "[emperor] inotify unavailable ({e}): rescanning every {} seconds",
                    cfg.freq.as_secs()
                ));
                None
            }
        };
        let notify = Notify::from_env();
        notify.ready();
        let registry = registry.try_clone().map_err(|e| fail("epoll", &e))?;
        Ok(Loop {
            emp: Emperor::new(cfg, registry, monitors),
            poll,
            signals,
            watcher,
            inotify_more: false,
            inotify_paused: false,
            stats,
            changes: Changes::default(),
            changes_at: None,
            last_event_scan: None,
            next_scan: Instant::now(),
            pipe_backlog: Vec::new(),
            reap_due: true,
            notify,
            governing: None,
            base,
        })
    }

    fn run(mut self) -> i32 {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        loop {
            let timeout = self.timeout(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    self.emp.log.plain(format!("epoll_wait(): {e}"));
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            let now = clock();
            for event in events.iter() {
                self.dispatch(event.token(), now);
            }
            if std::mem::take(&mut self.reap_due) {
                self.reap(now);
            }
            if let Some(code) = self.ragnarok_check(now) {
                return code;
            }
            self.timers(now);
            let governing = self.emp.by_pid.len();
            if self.governing != Some(governing) {
                self.governing = Some(governing);
                self.notify.governing(governing);
            }
        }
    }

    /// How long the poll may sleep.
    fn timeout(&self, now: Instant) -> Duration {
        let busy =
            !self.emp.pending.is_empty() || !self.pipe_backlog.is_empty() || self.inotify_more;
        if busy {
            return Duration::ZERO;
        }
        let policy = &self.emp.policy;
        let mut next = match self.emp.ragnarok {
            Some(since) => (since + self.emp.cfg.ragnarok_mercy()).min(now + RAGNAROK_TICK),
            None => {
                let retry = self.emp.next_retry().unwrap_or(self.next_scan);
                self.next_scan
                    .min(retry)
                    .min(self.changes_at.unwrap_or(self.next_scan))
            }
        };
        if let Some(d) = self
            .emp
            .vassals
            .iter()
            .filter_map(|(_, e)| e.v.deadline(policy))
            .min()
        {
            next = next.min(d);
        }
        if let Some(d) = self.stats.as_ref().and_then(StatsServer::next_deadline) {
            next = next.min(d);
        }
        next.saturating_duration_since(now)
    }

    fn dispatch(&mut self, token: Token, now: Now) {
        match token {
            SIGNALS => {
                for s in self.signals.take() {
                    self.signal(s, now);
                }
            }
            INOTIFY => self.read_inotify(now),
            STATS => {
                let (emp, base) = (&self.emp, &self.base);
                if let Some(s) = self.stats.as_mut() {
                    s.accept(&emp.registry, &|| render_stats(emp, base), now.at);
                }
            }
            t if self.stats.as_ref().is_some_and(|s| s.owns(t)) => {
                if let Some(s) = self.stats.as_mut() {
                    s.writable(&self.emp.registry, t);
                }
            }
            Token(t) if t >= VASSAL_BASE => {
                let key = (t - VASSAL_BASE) / 2;
                if (t - VASSAL_BASE) % 2 == 0 {
                    self.read_pipe(key, now);
                } else if self.emp.ragnarok.is_none() {
                    self.emp.step(key, Event::Connection, now);
                }
            }
            Token(_) => {}
        }
    }

    fn signal(&mut self, s: Signal, now: Now) {
        let emp = &mut self.emp;
        match s {
            Signal::Ragnarok => {
                match emp.ragnarok {
                    Some(since) => {
                        let left = emp
                            .cfg
                            .ragnarok_mercy()
                            .saturating_sub(now.at - since)
                            .as_secs();
                        emp.log.plain(format!("[emperor] *** RAGNAROK ALREADY EVOKED (mercyless in {left} seconds)***"));
                    }
                    None => {
                        emp.log.plain("[emperor] *** RAGNAROK EVOKED ***");
                        emp.ragnarok = Some(now.at);
                        emp.pending.clear();
                        emp.pending_set.clear();
                        for key in emp.keys_in_order() {
                            emp.step(key, Event::Gone, now);
                        }
                    }
                }
            }
            Signal::ReloadAll => {
                for key in emp.keys_in_order() {
                    emp.step(key, Event::Modified(Mtime::now()), now);
                }
            }
            Signal::Status => {
                for key in emp.keys_in_order() {
                    let v = &emp.vassals[key].v;
                    emp.log.plain(format!(
                        "vassal instance {} (last modified {}) status {} loyal {} zerg {}",
                        v.id(),
                        v.last_mod.secs,
                        v.status(),
                        u8::from(v.loyal),
                        u8::from(v.zerg)
                    ));
                }
            }
            Signal::ClearBlacklist => {
                emp.log.verbose("[emperor] cleaning up blacklist ...");
                emp.blacklist.clear();
                emp.release_retries(now.at, true);
            }
            Signal::Wake => self.next_scan = now.at,
            Signal::Child => self.reap_due = true,
        }
    }

    fn read_inotify(&mut self, now: Now) {
        let Some(w) = self.watcher.as_mut() else {
            return;
        };
        self.inotify_more = w.read(&mut self.changes);
        if self.changes.is_empty() {
            return;
        }
        if self.changes_at.is_none() {
            let earliest = self.last_event_scan.map_or(now.at, |t| t + EVENT_SCAN_GAP);
            self.changes_at = Some((now.at + SETTLE).max(earliest));
        }
        if !self.inotify_paused && !self.inotify_more {
            let fd = w.inotify().as_raw_fd();
            self.inotify_paused = self.emp.registry.deregister(&mut SourceFd(&fd)).is_ok();
        }
    }

    /// Applies a settled batch of inotify changes and listens again.
    fn apply_inotify_batch(&mut self, now: Now) {
        self.changes_at = None;
        self.last_event_scan = Some(now.at);
        if let Some(w) = self.watcher.as_mut() {
            self.inotify_more = w.read(&mut self.changes);
            if std::mem::take(&mut self.inotify_paused) {
                let fd = w.inotify().as_raw_fd();
                let _ = self
                    .emp
                    .registry
                    .register(&mut SourceFd(&fd), INOTIFY, Interest::READABLE);
            }
        }
        let changes = std::mem::take(&mut self.changes);
        self.emp.apply_changes(changes, self.watcher.as_mut(), now);
    }

    /// Reads what a vassal sent; EOF or an error curses it.
    fn read_pipe(&mut self, key: usize, now: Now) {
        if self.emp.ragnarok.is_some() {
            return;
        }
        let mut buf = [0u8; 256];
        let mut total = 0;
        loop {
            let Some(entry) = self.emp.vassals.get_mut(key) else {
                return;
            };
            let Some(pipe) = entry.pipe.as_mut().filter(|_| entry.pipe_live) else {
                return;
            };
            match pipe.read(&mut buf) {
                Ok(0) => return self.emp.pipe_closed(key, now),
                Ok(n) => {
                    for &byte in &buf[..n] {
                        if let Ok(msg) = FromVassal::from_byte(byte) {
                            self.emp.step(key, Event::Message(msg), now);
                        }
                    }
                    total += n;
                    if total >= PIPE_READ_LIMIT {
                        self.pipe_backlog.push(key);
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return self.emp.pipe_closed(key, now),
            }
        }
    }

    fn reap(&mut self, now: Now) {
        while let Some((pid, kind)) = process::reap() {
            if let Some(&key) = self.emp.by_pid.get(&pid) {
                let v = &self.emp.vassals[key].v;
                let failure = match kind {
                    process::ExitKind::Code(0) => None,
                    process::ExitKind::Code(c) => Some(format!("exit code {c}")),
                    process::ExitKind::Signal(s) => Some(format!("killed by signal {s}")),
                };
                // The vassal's own error went to the shared log just before;
                // this line ties it to the file.
                if let (Some(how), false) = (failure, v.ready || v.accepting || v.loyal) {
                    let line = format!(
                        "[emperor] vassal {} (pid: {pid}) failed before it was ready ({how}): see its error above",
                        v.id()
                    );
                    self.emp.log.verbose(line);
                }
                self.emp.step(key, Event::Exited(kind), now);
            }
        }
    }

    /// During Ragnarok: done when every vassal is gone, or at the end of
    /// the mercy period (SIGKILL to the rest).
    fn ragnarok_check(&mut self, now: Now) -> Option<i32> {
        let since = self.emp.ragnarok?;
        if !self.emp.vassals.is_empty() {
            if now.at < since + self.emp.cfg.ragnarok_mercy() {
                return None;
            }
            for key in self.emp.keys_in_order() {
                let v = &self.emp.vassals[key].v;
                self.emp
                    .log
                    .verbose(format!("[emperor] NO MERCY for vassal {} !!!", v.id()));
                if let Some(pid) = v.pid() {
                    process::kill(pid, libc::SIGKILL);
                }
            }
        }
        self.emp.log.verbose("The Emperor is buried.");
        self.notify.buried();
        Some(0)
    }

    fn timers(&mut self, now: Now) {
        if let Some(s) = self.stats.as_mut() {
            s.expire(&self.emp.registry, now.at);
        }
        for key in std::mem::take(&mut self.pipe_backlog) {
            self.read_pipe(key, now);
        }
        let policy = self.emp.policy;
        let due: Vec<usize> = self
            .emp
            .vassals
            .iter()
            .filter(|(_, e)| e.v.deadline(&policy).is_some_and(|d| d <= now.at))
            .map(|(k, _)| k)
            .collect();
        for key in due {
            self.emp.step(key, Event::Tick, now);
        }
        if self.emp.ragnarok.is_some() {
            return;
        }
        if self.inotify_more && !self.inotify_paused {
            self.read_inotify(now);
        }
        if self.changes_at.is_some_and(|t| t <= now.at) {
            self.apply_inotify_batch(now);
        }
        if now.at >= self.next_scan {
            self.next_scan = now.at + self.emp.cfg.freq;
            self.reap(now);
            self.emp.scan_all(self.watcher.as_mut(), now);
        }
        self.emp.release_retries(now.at, false);
        self.emp.start_pending(now);
    }
}

/// The stats document for the current table.
fn render_stats(emp: &Emperor, base: &Path) -> Vec<u8> {
    use std::os::unix::fs::MetadataExt;
    let me = std::fs::metadata("/proc/self").ok();
    let cwd = emp
        .monitors
        .iter()
        .rev()
        .find(|m| m.kind == Kind::Dir && m.dir.is_some())
        .map(Monitor::vassal_cwd)
        .unwrap_or_else(|| base.to_path_buf());
    let view = View {
        version: crate::config::facts::VERSION,
        pid: std::process::id(),
        uid: me.as_ref().map_or(0, |m| m.uid()),
        gid: me.as_ref().map_or(0, |m| m.gid()),
        cwd: cwd.as_os_str().as_bytes().to_vec(),
        monitors: emp.monitors.iter().map(Monitor::label).collect(),
        tyrant: emp.cfg.tyrant,
        vassals: emp
            .keys_in_order()
            .into_iter()
            .map(|k| &emp.vassals[k].v)
            .collect(),
        blacklist: emp.blacklist.entries(),
        minified: emp.cfg.stats_minified,
    };
    stats::render(&view, |m| emp.monitors[m].label())
}
