//! The vassal table (uWSGI's `ui` list): entries in a [`Slab`], found by
//! name and by pid; each entry's pipe and on-demand socket live beside its
//! [`Vassal`] record. Every change of a record goes through
//! [`Emperor::step`], which runs the lifecycle and applies its
//! [`Outcome`]: add (`emperor_add`), start (`uwsgi_emperor_vassal_start`),
//! remove (`emperor_del`, with the blacklist), zergs.

use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::time::Instant;

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use slab::Slab;

use crate::protocol::emperor::ToVassal;

use super::blacklist::Blacklist;
use super::log::{Line, Logger};
use super::monitor::{FileMeta, Monitor, StatOpts, MAX_NAME};
use super::vassal::{Effects, Event, Mtime, Now, Outcome, Policy, State, Vassal};
use super::{ondemand, spawn, EmperorConfig};

/// First token of the vassal range: entry `k` uses `VASSAL_BASE + 2k`
/// for its pipe and `+ 1` for its on-demand socket.
pub const VASSAL_BASE: usize = 16;
/// Suffix of a zerg's name (`a.ini:zerg`).
const ZERG_SUFFIX: &[u8] = b":zerg";
/// The argv prefix of an executable vassal file with `emperor-magic-exec`.
const EXEC_SCHEME: &[u8] = b"exec://";

pub fn pipe_token(key: usize) -> Token {
    Token(VASSAL_BASE + 2 * key)
}

pub fn socket_token(key: usize) -> Token {
    Token(VASSAL_BASE + 2 * key + 1)
}

/// One vassal and the descriptors the emperor holds for it.
#[derive(Debug)]
pub struct Entry {
    pub v: Vassal,
    /// The emperor's end of the socketpair (kept until the entry goes,
    /// even after EOF, so the vassal's workers never get EPIPE from us).
    pub pipe: Option<mio::net::UnixStream>,
    /// The pipe is registered in the poll.
    pub pipe_live: bool,
    /// On-demand: the listening socket the emperor holds.
    pub socket: Option<OwnedFd>,
    /// The socket is registered (waiting for a first connection).
    pub socket_live: bool,
}

/// The emperor's state; the event loop drives it.
#[derive(Debug)]
pub struct Emperor<'a> {
    pub cfg: &'a EmperorConfig,
    pub log: Logger,
    pub policy: Policy,
    pub registry: Registry,
    pub monitors: Vec<Monitor>,
    pub vassals: Slab<Entry>,
    pub by_name: HashMap<Vec<u8>, usize>,
    pub by_pid: HashMap<libc::pid_t, usize>,
    pub blacklist: Blacklist,
    seq: u64,
    zergs: u32,
    broodlord_num: u32,
    /// Set once Ragnarok started: nothing is added or respawned any more.
    pub ragnarok: Option<Instant>,
    /// Files to look at (and start) soon, at most a few per loop turn.
    pub pending: VecDeque<(usize, Vec<u8>)>,
    pub pending_set: HashSet<(usize, Vec<u8>)>,
    /// Throttled names and when they may start.
    pub retries: BinaryHeap<std::cmp::Reverse<(Instant, usize, Vec<u8>)>>,
    pub retry_at: HashMap<Vec<u8>, Instant>,
}

/// Effects of a step on one entry.
struct Fx<'e> {
    pipe: Option<&'e mut mio::net::UnixStream>,
    log: &'e Logger,
}

impl Effects for Fx<'_> {
    fn send(&mut self, msg: ToVassal) -> std::io::Result<()> {
        let pipe = self
            .pipe
            .as_mut()
            .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EPIPE))?;
        pipe.write_all(&[msg.to_byte()])
    }
    fn kill(&mut self, pid: libc::pid_t) {
        crate::sys::process::kill(pid, libc::SIGKILL);
    }
    fn log(&mut self, line: Line) {
        self.log.log(line);
    }
}

fn text(b: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(b)
}

impl<'a> Emperor<'a> {
    pub fn new(cfg: &'a EmperorConfig, registry: Registry, monitors: Vec<Monitor>) -> Emperor<'a> {
        Emperor {
            cfg,
            log: Logger {
                log_date: cfg.log_date.clone(),
            },
            policy: Policy {
                stop: if cfg.graceful_shutdown {
                    ToVassal::GracefulStop
                } else {
                    ToVassal::Stop
                },
                curse_tolerance: cfg.curse_tolerance,
                required_heartbeat: cfg.required_heartbeat,
            },
            registry,
            monitors,
            vassals: Slab::new(),
            by_name: HashMap::new(),
            by_pid: HashMap::new(),
            blacklist: Blacklist::default(),
            seq: 0,
            zergs: 0,
            broodlord_num: 0,
            ragnarok: None,
            pending: VecDeque::new(),
            pending_set: HashSet::new(),
            retries: BinaryHeap::new(),
            retry_at: HashMap::new(),
        }
    }

    pub fn stat_opts(&self) -> StatOpts<'a> {
        StatOpts {
            extra_extensions: &self.cfg.vassal_args.extra_extensions,
            nofollow: self.cfg.nofollow,
            tyrant_nofollow: self.cfg.tyrant && self.cfg.tyrant_nofollow,
        }
    }

    pub fn has_zergs(&self) -> bool {
        self.zergs > 0
    }

    /// Keys in creation order (uWSGI's list order).
    pub fn keys_in_order(&self) -> Vec<usize> {
        let mut keys: Vec<(u64, usize)> = self.vassals.iter().map(|(k, e)| (e.v.seq, k)).collect();
        keys.sort_unstable();
        keys.into_iter().map(|(_, k)| k).collect()
    }

    /// Runs one lifecycle step on an entry and applies its outcome.
    pub fn step(&mut self, key: usize, event: Event, now: Now) {
        let Some(entry) = self.vassals.get_mut(key) else {
            return;
        };
        let old_pid = entry.v.pid();
        let mut fx = Fx {
            pipe: entry.pipe.as_mut(),
            log: &self.log,
        };
        let outcome = entry.v.on(event, now, &self.policy, &mut fx);
        let new_pid = entry.v.pid();
        if old_pid != new_pid {
            if let Some(p) = old_pid {
                self.by_pid.remove(&p);
            }
        }
        match outcome {
            Outcome::Keep => {}
            Outcome::Remove | Outcome::Respawn => {
                let (monitor, name, zerg, owner) = {
                    let v = &self.vassals[key].v;
                    (v.monitor, v.name.clone(), v.zerg, (v.uid, v.gid))
                };
                self.remove(key, now);
                // The file, if still there, is started again (throttled
                // when the vassal was never loyal); a crashed zerg too.
                match (self.ragnarok, outcome, zerg) {
                    (Some(_), _, _) => {}
                    (None, _, false) => self.queue_new(monitor, name),
                    (None, Outcome::Respawn, true) => self.add_zerg(monitor, name, owner, now),
                    (None, _, true) => {}
                }
            }
            Outcome::Start => self.start(key, now),
            Outcome::Listen => self.listen(key),
            Outcome::Loyal => {
                let name = self.vassals[key].v.name.clone();
                self.blacklist.remove(&name);
            }
            Outcome::Zerg => self.sos(key, now),
        }
    }

    /// The pipe hit EOF or an error: stop watching it, curse the vassal.
    pub fn pipe_closed(&mut self, key: usize, now: Now) {
        if let Some(e) = self.vassals.get_mut(key) {
            if e.pipe_live {
                if let Some(p) = e.pipe.as_mut() {
                    let _ = self.registry.deregister(p);
                }
                e.pipe_live = false;
            }
        }
        self.step(key, Event::PipeClosed, now);
    }

    /// `emperor_add`: a new entry for a file, started or left waiting on
    /// its on-demand socket. Refused while throttled, and in tyrant mode
    /// for root-owned files.
    pub fn add(&mut self, monitor: usize, name: Vec<u8>, meta: FileMeta, now: Now) {
        if name.len() >= MAX_NAME {
            self.log
                .plain(format!("[emperor] invalid vassal name: {}", text(&name)));
            return;
        }
        if let Some(until) = self.blacklist.blocked_until(&name, now.at) {
            self.schedule_retry(until, monitor, name);
            return;
        }
        if self.cfg.tyrant && (meta.uid == 0 || meta.gid == 0) {
            self.log.plain(format!(
                "[emperor-tyrant] invalid permissions for vassal {}",
                text(&name)
            ));
            return;
        }
        let path = self.monitors[monitor].path_of(&name);
        let socket_name = ondemand::socket_name(&self.cfg.on_demand, &name, &path);
        self.seq += 1;
        let mut v = Vassal::new(
            name.clone(),
            monitor,
            self.seq,
            meta.mtime,
            (meta.uid, meta.gid),
            now,
        );
        v.socket_name = socket_name.clone();
        let key = self.insert(v);
        self.by_name.insert(name.clone(), key);
        let Some(socket) = socket_name else {
            return self.start(key, now);
        };
        match ondemand::bind(&socket, self.cfg.listen) {
            Ok(fd) => {
                self.vassals[key].socket = Some(fd);
                self.listen(key);
                self.log.plain(format!(
                    "[uwsgi-emperor] {} -> \"on demand\" instance detected, waiting for connections on socket \"{}\" ...",
                    text(&name),
                    text(&socket)
                ));
            }
            Err(e) => {
                self.log.plain(format!("emperor_add()/bind(): {e}"));
                self.remove(key, now);
            }
        }
    }

    fn insert(&mut self, v: Vassal) -> usize {
        self.vassals.insert(Entry {
            v,
            pipe: None,
            pipe_live: false,
            socket: None,
            socket_live: false,
        })
    }

    fn argv_for(&self, v: &Vassal) -> Vec<Vec<u8>> {
        let args = &self.cfg.vassal_args;
        let load_name = match v.zerg {
            true => v.name.strip_suffix(ZERG_SUFFIX).unwrap_or(&v.name),
            false => &v.name,
        };
        let mut argv = args.argv(load_name);
        let file_at =
            2 + 2 * (args.inherit_before.len() + args.include_before.len() + args.set.len());
        let mut file_arg = v.name.clone();
        if self.cfg.magic_exec && !v.zerg {
            let path = self.monitors[v.monitor].path_of(&v.name);
            if std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0) {
                file_arg = [EXEC_SCHEME, &v.name].concat();
            }
        }
        if let Some(slot) = argv.get_mut(file_at) {
            *slot = file_arg;
        }
        argv
    }

    /// Forks the vassal process of an entry; a failure removes the entry.
    pub fn start(&mut self, key: usize, now: Now) {
        if self.vassals[key].v.zerg {
            self.broodlord_num += 1;
        }
        let entry = &self.vassals[key];
        let v = &entry.v;
        let req = spawn::Request {
            name: &v.name,
            argv: self.argv_for(v),
            cwd: self.monitors[v.monitor].vassal_cwd(),
            owner: self.cfg.tyrant.then_some((v.uid, v.gid)),
            stdin: entry.socket.as_ref(),
            broodlord_num: v.zerg.then_some(self.broodlord_num),
        };
        let spawned = spawn::spawn(self.cfg, &self.log, &req);
        match spawned {
            Ok(s) => {
                let mut pipe = mio::net::UnixStream::from_std(s.pipe);
                let registered = self
                    .registry
                    .register(&mut pipe, pipe_token(key), Interest::READABLE)
                    .is_ok();
                let entry = &mut self.vassals[key];
                if entry.socket_live {
                    if let Some(fd) = &entry.socket {
                        let _ = self.registry.deregister(&mut SourceFd(&fd.as_raw_fd()));
                    }
                    entry.socket_live = false;
                }
                entry.pipe = Some(pipe);
                entry.pipe_live = registered;
                entry.v.state = State::Running { pid: s.pid };
                entry.v.last_run = now.wall;
                self.by_pid.insert(s.pid, key);
            }
            Err(e) => {
                self.log.plain(e.to_string());
                self.remove(key, now);
            }
        }
    }

    /// Back to (or first time in) on-demand mode: drop the pipe, watch the
    /// socket.
    fn listen(&mut self, key: usize) {
        let entry = &mut self.vassals[key];
        if let Some(mut pipe) = entry.pipe.take() {
            if entry.pipe_live {
                let _ = self.registry.deregister(&mut pipe);
            }
        }
        entry.pipe_live = false;
        if let (Some(fd), false) = (&entry.socket, entry.socket_live) {
            entry.socket_live = self
                .registry
                .register(
                    &mut SourceFd(&fd.as_raw_fd()),
                    socket_token(key),
                    Interest::READABLE,
                )
                .is_ok();
        }
    }

    /// `emperor_del`: the entry goes; an unloyal one is throttled.
    pub fn remove(&mut self, key: usize, now: Now) {
        let Some(mut entry) = self.vassals.try_remove(key) else {
            return;
        };
        if let (Some(pipe), true) = (entry.pipe.as_mut(), entry.pipe_live) {
            let _ = self.registry.deregister(pipe);
        }
        if let (Some(fd), true) = (&entry.socket, entry.socket_live) {
            let _ = self.registry.deregister(&mut SourceFd(&fd.as_raw_fd()));
        }
        let v = &entry.v;
        if self.by_name.get(&v.name) == Some(&key) {
            self.by_name.remove(&v.name);
        }
        if let Some(pid) = v.pid() {
            if self.by_pid.get(&pid) == Some(&key) {
                self.by_pid.remove(&pid);
            }
        }
        self.log
            .verbose(format!("[emperor] removed uwsgi instance {}", v.id()));
        if !v.loyal && !self.cfg.no_blacklist {
            for line in self.blacklist.add(
                &v.name,
                self.cfg.throttle_ms,
                self.cfg.max_throttle_ms,
                now.at,
                now.wall,
            ) {
                self.log.log(line);
            }
        }
        if v.zerg {
            self.zergs = self.zergs.saturating_sub(1);
        }
    }

    /// Byte 30: launch a zerg if the broodlord limit allows.
    fn sos(&mut self, key: usize, now: Now) {
        if self.cfg.broodlord == 0 || self.zergs >= self.cfg.broodlord || self.ragnarok.is_some() {
            return;
        }
        let v = &self.vassals[key].v;
        self.log.verbose(format!(
            "[emperor] going in broodlord mode: launching zergs for {}",
            v.id()
        ));
        let name = [v.name.as_slice(), ZERG_SUFFIX].concat();
        let (monitor, owner) = (v.monitor, (v.uid, v.gid));
        self.add_zerg(monitor, name, owner, now);
    }

    fn add_zerg(&mut self, monitor: usize, name: Vec<u8>, owner: (u32, u32), now: Now) {
        if self.blacklist.blocked_until(&name, now.at).is_some() {
            return;
        }
        self.seq += 1;
        let mut v = Vassal::new(name, monitor, self.seq, Mtime::now(), owner, now);
        v.zerg = true;
        self.zergs += 1;
        let key = self.insert(v);
        self.start(key, now);
    }
}
