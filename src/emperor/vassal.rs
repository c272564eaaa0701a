//! One vassal's lifecycle (uWSGI's `struct uwsgi_instance`, spec §1.5–1.11,
//! §1.15): a [`State`] enum and one `match` on (state, [`Event`]) in
//! [`Vassal::on`]. The machine is sans-io: writes on the pipe, signals and
//! log lines go through [`Effects`]; what the table must do next (remove
//! the entry, respawn, listen again...) comes back as an [`Outcome`].

use std::time::{Duration, Instant};

use crate::protocol::emperor::{FromVassal, ToVassal};
use crate::sys::process::ExitKind;

use super::log::Line;

/// The status with which a vassal asks not to be respawned (uWSGI's
/// `UWSGI_EXILE_CODE`); in practice the scanner re-adds it anyway.
pub const EXILE_CODE: i32 = 26;

/// A file modification time at full precision (uWSGI compares whole
/// seconds; two edits within one second are not merged here).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mtime {
    pub secs: i64,
    pub nanos: u32,
}

impl Mtime {
    pub fn now() -> Mtime {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Mtime {
            secs: d.as_secs() as i64,
            nanos: d.subsec_nanos(),
        }
    }
}

/// The clock a step runs at: monotonic for deadlines, wall seconds for
/// the numbers the stats show.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub at: Instant,
    pub wall: i64,
}

/// Where a vassal is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// On demand: the emperor holds its socket; no process yet (pid -1).
    Waiting,
    /// Running (uWSGI status 0).
    Running { pid: libc::pid_t },
    /// Asked to stop, or its pipe was lost (status 1): the entry goes when
    /// the process is reaped; SIGKILL after each curse tolerance.
    Dying {
        pid: Option<libc::pid_t>,
        cursed_at: Instant,
    },
    /// Asked to stop so that it waits on its socket again (status 2).
    Returning {
        pid: libc::pid_t,
        cursed_at: Instant,
    },
}

/// What happened to a vassal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Its file has a newer mtime (or SIGHUP asked for a reload).
    Modified(Mtime),
    /// Its file is gone, or the emperor is stopping everything.
    Gone,
    /// Tyrant mode: the file changed owner.
    OwnerChanged,
    Message(FromVassal),
    /// EOF or an error on the pipe.
    PipeClosed,
    Exited(ExitKind),
    /// A client connected to the on-demand socket.
    Connection,
    /// Time passed: curse tolerance and heartbeat checks.
    Tick,
}

/// What the table must do after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Keep,
    /// Delete the entry (log `removed`, blacklist it unless loyal).
    Remove,
    /// It died on its own while running: delete it and start the file again.
    Respawn,
    /// Start the process (first connection on an on-demand socket).
    Start,
    /// Back to on-demand: watch the socket again.
    Listen,
    /// It became loyal: forget it in the blacklist.
    Loyal,
    /// Broodlord SOS: launch a zerg for it.
    Zerg,
}

/// The side effects of a step.
pub trait Effects {
    /// Writes one command byte on the vassal's pipe.
    fn send(&mut self, msg: ToVassal) -> std::io::Result<()>;
    /// SIGKILLs the vassal master (never its workers).
    fn kill(&mut self, pid: libc::pid_t);
    fn log(&mut self, line: Line);
}

/// The emperor settings a step needs.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Byte 0, or byte 2 with `emperor-graceful-shutdown`.
    pub stop: ToVassal,
    pub curse_tolerance: Duration,
    pub required_heartbeat: Duration,
}

/// One vassal, with the fields the stats server shows.
#[derive(Debug, Clone)]
pub struct Vassal {
    /// The id in logs, stats and argv: bare name (dir monitor) or glob path.
    pub name: Vec<u8>,
    /// Index of the monitor that found it.
    pub monitor: usize,
    /// Creation order (uWSGI's list order).
    pub seq: u64,
    pub zerg: bool,
    pub uid: u32,
    pub gid: u32,
    /// File mtime (seconds) when the entry was created.
    pub born: i64,
    pub last_mod: Mtime,
    pub loyal: bool,
    pub ready: bool,
    pub accepting: bool,
    pub last_loyal: i64,
    pub last_ready: i64,
    pub last_accepting: i64,
    pub first_run: i64,
    pub last_run: i64,
    pub last_heartbeat: Option<Instant>,
    pub last_heartbeat_wall: i64,
    /// Wall time of the last curse (0: none), as the stats show it.
    pub cursed_wall: i64,
    /// Emperor-initiated reloads of this entry.
    pub respawns: u64,
    /// On-demand socket name.
    pub socket_name: Option<Vec<u8>>,
    pub state: State,
}

impl Vassal {
    /// A new entry, not started yet (the caller starts it or makes it wait).
    pub fn new(
        name: Vec<u8>,
        monitor: usize,
        seq: u64,
        mtime: Mtime,
        owner: (u32, u32),
        now: Now,
    ) -> Vassal {
        Vassal {
            name,
            monitor,
            seq,
            zerg: false,
            uid: owner.0,
            gid: owner.1,
            born: mtime.secs,
            last_mod: mtime,
            loyal: false,
            ready: false,
            accepting: false,
            last_loyal: 0,
            last_ready: 0,
            last_accepting: 0,
            first_run: now.wall,
            last_run: now.wall,
            last_heartbeat: None,
            last_heartbeat_wall: 0,
            cursed_wall: 0,
            respawns: 0,
            socket_name: None,
            state: State::Waiting,
        }
    }

    /// The display name.
    pub fn id(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.name)
    }

    /// The vassal master's pid, if a process exists.
    pub fn pid(&self) -> Option<libc::pid_t> {
        match self.state {
            State::Waiting | State::Dying { pid: None, .. } => None,
            State::Running { pid }
            | State::Dying { pid: Some(pid), .. }
            | State::Returning { pid, .. } => Some(pid),
        }
    }

    /// uWSGI's status number (0 running/waiting, 1 dying, 2 returning).
    pub fn status(&self) -> u8 {
        match self.state {
            State::Waiting | State::Running { .. } => 0,
            State::Dying { .. } => 1,
            State::Returning { .. } => 2,
        }
    }

    /// The next instant [`Event::Tick`] has something to do.
    pub fn deadline(&self, policy: &Policy) -> Option<Instant> {
        match self.state {
            State::Dying {
                pid: Some(_),
                cursed_at,
            }
            | State::Returning { cursed_at, .. } => Some(cursed_at + policy.curse_tolerance),
            State::Running { .. } => self.last_heartbeat.map(|t| t + policy.required_heartbeat),
            State::Waiting | State::Dying { pid: None, .. } => None,
        }
    }

    fn stop(
        &mut self,
        pid: Option<libc::pid_t>,
        now: Now,
        policy: &Policy,
        fx: &mut dyn Effects,
    ) -> Outcome {
        if pid.is_some() {
            if let Err(e) = fx.send(policy.stop) {
                fx.log(Line::Plain(format!(
                    "emperor_stop()/write(): {}",
                    crate::config::logic::strerror(&e)
                )));
            }
        }
        self.state = State::Dying {
            pid,
            cursed_at: now.at,
        };
        self.cursed_wall = now.wall;
        fx.log(Line::Verbose(format!(
            "[emperor] stop the uwsgi instance {}",
            self.id()
        )));
        if pid.is_none() {
            Outcome::Remove
        } else {
            Outcome::Keep
        }
    }

    fn curse(&mut self, pid: libc::pid_t, now: Now, fx: &mut dyn Effects) {
        self.cursed_wall = now.wall;
        fx.log(Line::Verbose(format!(
            "[emperor] curse the uwsgi instance {} (pid: {pid})",
            self.id()
        )));
    }

    /// One step of the lifecycle.
    pub fn on(&mut self, event: Event, now: Now, policy: &Policy, fx: &mut dyn Effects) -> Outcome {
        use Event::*;
        use State::*;
        match (self.state, event) {
            (Waiting, Modified(mtime)) => {
                self.last_mod = mtime;
                self.ready = false;
                self.accepting = false;
                fx.log(Line::Verbose(format!(
                    "[emperor] updated configuration for \"on demand\" instance {}",
                    self.id()
                )));
                Outcome::Keep
            }
            (Running { pid }, Modified(mtime)) => {
                if let Err(e) = fx.send(ToVassal::Reload) {
                    fx.log(Line::Plain(format!(
                        "emperor_respawn/write(): {}",
                        crate::config::logic::strerror(&e)
                    )));
                    self.state = Dying {
                        pid: Some(pid),
                        cursed_at: now.at,
                    };
                    self.curse(pid, now, fx);
                    return Outcome::Keep;
                }
                self.respawns += 1;
                self.last_mod = mtime;
                self.last_run = now.wall;
                self.ready = false;
                self.accepting = false;
                fx.log(Line::Verbose(format!(
                    "[emperor] reload the uwsgi instance {}",
                    self.id()
                )));
                Outcome::Keep
            }
            (Dying { .. } | Returning { .. }, Modified(_) | OwnerChanged) => Outcome::Keep,
            (Dying { .. }, Gone) => Outcome::Keep,
            (Waiting, Gone) => self.stop(None, now, policy, fx),
            (Running { pid } | Returning { pid, .. }, Gone) => {
                self.stop(Some(pid), now, policy, fx)
            }
            (Waiting | Running { .. }, OwnerChanged) => {
                fx.log(Line::Plain(format!(
                    "!!! permissions of file {} changed. stopping the instance... !!!",
                    self.id()
                )));
                self.on(Gone, now, policy, fx)
            }
            (_, Message(msg)) => self.message(msg, now, policy, fx),
            (Running { pid }, PipeClosed) => {
                self.state = Dying {
                    pid: Some(pid),
                    cursed_at: now.at,
                };
                self.curse(pid, now, fx);
                Outcome::Keep
            }
            (Returning { pid, .. }, PipeClosed) => {
                self.state = Returning {
                    pid,
                    cursed_at: now.at,
                };
                self.curse(pid, now, fx);
                Outcome::Keep
            }
            (Waiting | Dying { .. }, PipeClosed) => Outcome::Keep,
            (Running { .. }, Exited(ExitKind::Code(EXILE_CODE))) => Outcome::Remove,
            (Running { .. }, Exited(_)) => Outcome::Respawn,
            (Dying { .. }, Exited(_)) => Outcome::Remove,
            (Returning { .. }, Exited(_)) => {
                self.state = Waiting;
                self.ready = false;
                self.accepting = false;
                self.cursed_wall = 0;
                let socket = self
                    .socket_name
                    .as_deref()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                fx.log(Line::Plain(format!(
                    "[uwsgi-emperor] {} -> back to \"on demand\" mode, waiting for connections on socket \"{socket}\" ...",
                    self.id()
                )));
                Outcome::Listen
            }
            (Waiting, Exited(_)) => Outcome::Keep,
            (Waiting, Connection) => Outcome::Start,
            (_, Connection) => Outcome::Keep,
            (
                Dying {
                    pid: Some(pid),
                    cursed_at,
                },
                Tick,
            ) if now.at >= cursed_at + policy.curse_tolerance => {
                fx.kill(pid);
                self.state = Dying {
                    pid: Some(pid),
                    cursed_at: now.at,
                };
                self.cursed_wall = now.wall;
                Outcome::Keep
            }
            (Returning { pid, cursed_at }, Tick)
                if now.at >= cursed_at + policy.curse_tolerance =>
            {
                fx.kill(pid);
                self.state = Returning {
                    pid,
                    cursed_at: now.at,
                };
                self.cursed_wall = now.wall;
                Outcome::Keep
            }
            (Running { pid }, Tick) => {
                if self
                    .last_heartbeat
                    .is_some_and(|t| now.at >= t + policy.required_heartbeat)
                {
                    fx.log(Line::Plain(format!(
                        "[emperor] vassal {} sent no heartbeat in last {} seconds, brutally respawning it...",
                        self.id(),
                        policy.required_heartbeat.as_secs()
                    )));
                    self.last_heartbeat = None;
                    fx.kill(pid);
                }
                Outcome::Keep
            }
            (_, Tick) => Outcome::Keep,
        }
    }

    fn message(
        &mut self,
        msg: FromVassal,
        now: Now,
        policy: &Policy,
        fx: &mut dyn Effects,
    ) -> Outcome {
        match msg {
            FromVassal::Loyal => {
                self.loyal = true;
                self.last_loyal = now.wall;
                fx.log(Line::Verbose(format!(
                    "[emperor] vassal {} is now loyal",
                    self.id()
                )));
                Outcome::Loyal
            }
            FromVassal::Heartbeat => {
                self.last_heartbeat = Some(now.at);
                self.last_heartbeat_wall = now.wall;
                Outcome::Keep
            }
            FromVassal::Spawned => {
                self.ready = true;
                self.last_ready = now.wall;
                fx.log(Line::Verbose(format!(
                    "[emperor] vassal {} has been spawned",
                    self.id()
                )));
                Outcome::Keep
            }
            FromVassal::Accepting => {
                self.accepting = true;
                self.last_accepting = now.wall;
                fx.log(Line::Verbose(format!(
                    "[emperor] vassal {} is ready to accept requests",
                    self.id()
                )));
                Outcome::Keep
            }
            FromVassal::StopRequest => match (self.state, self.socket_name.is_some()) {
                (State::Running { pid }, true) => {
                    if let Err(e) = fx.send(policy.stop) {
                        fx.log(Line::Plain(format!(
                            "emperor_stop()/write(): {}",
                            crate::config::logic::strerror(&e)
                        )));
                    }
                    self.state = State::Returning {
                        pid,
                        cursed_at: now.at,
                    };
                    self.cursed_wall = now.wall;
                    fx.log(Line::Verbose(format!(
                        "[emperor] bringing back instance {} to on-demand mode",
                        self.id()
                    )));
                    Outcome::Keep
                }
                (State::Running { .. } | State::Waiting, _) => {
                    self.on(Event::Gone, now, policy, fx)
                }
                _ => Outcome::Keep,
            },
            FromVassal::Sos => Outcome::Zerg,
            // Pushed configurations are not used by the file monitors.
            FromVassal::ConfigRequest => Outcome::Keep,
        }
    }
}

#[cfg(test)]
#[path = "vassal_tests.rs"]
mod tests;
