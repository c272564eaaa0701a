//! The master's supervision of its workers once the app is loaded: the
//! [`Supervisor`] forks the workers, then runs the master's loop (signals,
//! emperor commands, `touch-reload`), reaps and respawns workers and
//! auxiliary processes, enforces harakiri and the reload mercy, and ends
//! in a re-exec (reload) or goodbye (shutdown), with uWSGI's log lines.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use super::auxiliary::{spawn_aux, Aux, AuxKind};
use super::emperor_link::{self, Command, EmperorLink};
use super::signals::{Event, Signals};
use super::touch::Touch;
use super::{exit_code, log, notify_ready, reload, Instance, TICK, WORKER_MERCY};
use crate::config::model_router::RouterConfig;
use crate::emperor::EmperorConfig;
use crate::protocol::emperor::FromVassal;
use crate::sys::process::{self, ExitKind, Forked};
use crate::worker::{self, HarakiriSlot, Listener, WorkerContext, WorkerExit};
use crate::{python, sys};

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[derive(Debug)]
pub(super) struct Worker {
    pub(super) pid: libc::pid_t,
    spawned: Instant,
    /// Set when the master asked it to stop (reload, shutdown, harakiri).
    stopping: Option<Instant>,
}

/// What the master is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Running,
    /// Waiting for the workers to go, then re-exec.
    Reloading,
    /// Waiting for the auxiliary processes to go, then re-exec with the
    /// workers still serving (see `reload`).
    HandingOver,
    /// Waiting for the workers to go, then exit 0.
    ShuttingDown,
}

pub(super) struct Supervisor<'a> {
    pub(super) inst: &'a Instance<'a>,
    pub(super) listeners: Vec<Listener>,
    apps: Option<python::Apps>,
    slots: &'static [AtomicU64],
    /// Index = worker id - 1.
    pub(super) workers: Vec<Option<Worker>>,
    /// Recent respawn instants (fork-bomb protection).
    respawns: Vec<Instant>,
    pub(super) router: Option<(RouterConfig, Vec<OwnedFd>)>,
    emperor: Option<EmperorConfig>,
    pub(super) aux: Vec<Aux>,
    /// Workers of the previous image, retired once ours serve.
    pub(super) handover: reload::Handover,
    /// A worker could not load its app (lazy-apps) under need-app: the
    /// instance goes down and exits 22, as uWSGI's does.
    dying_for_need_app: bool,
}

impl<'a> Supervisor<'a> {
    pub(super) fn new(
        inst: &'a Instance<'a>,
        listeners: Vec<Listener>,
        apps: Option<python::Apps>,
        slots: &'static [AtomicU64],
        router: Option<(RouterConfig, Vec<OwnedFd>)>,
        emperor: Option<EmperorConfig>,
        aux: Vec<Aux>,
    ) -> Self {
        Supervisor {
            inst,
            listeners,
            apps,
            slots,
            workers: Vec::new(),
            respawns: Vec::new(),
            router,
            emperor,
            aux,
            handover: reload::Handover::default(),
            dying_for_need_app: false,
        }
    }

    fn respawn_aux(&mut self, kind: AuxKind, signals: &Signals) -> Result<(), String> {
        let default = RouterConfig::default();
        let (cfg, fds) = match &self.router {
            Some((c, f)) => (c, f.as_slice()),
            None => (&default, &[][..]),
        };
        let a = spawn_aux(kind, cfg, fds, self.emperor.as_ref(), Some(signals))?;
        self.aux.push(a);
        Ok(())
    }

    fn everything_gone(&self, phase: Phase) -> bool {
        let aux_gone = self.aux.is_empty();
        match phase {
            Phase::HandingOver => aux_gone,
            _ => {
                aux_gone && self.workers.iter().all(Option::is_none) && !self.handover.has_workers()
            }
        }
    }

    pub(super) fn supervise(&mut self) -> Result<i32, String> {
        let signals = Signals::install().map_err(|e| format!("signal setup: {e}"))?;
        let reloading = self.inst.is_reload();
        log(format!(
            "{} uWSGI master process (pid: {})",
            if reloading {
                "gracefully (RE)spawned"
            } else {
                "spawned"
            },
            process::getpid()
        ));
        if let Some(link) = &self.inst.emperor {
            if !reloading {
                link.send(FromVassal::Spawned);
            }
        }
        // No sockets (an emperor-only master): nothing for workers to serve.
        let n = if self.listeners.is_empty() {
            0
        } else {
            self.inst.master.processes
        };
        // Stamped before any worker serves: a touch after the first
        // request must count.
        let mut touch = Touch::new(&self.inst.master.touch_reload);
        self.workers = (0..n).map(|_| None).collect();
        for id in 1..=n {
            self.spawn(id, &signals, false)?;
        }
        self.handover.serving();
        self.handover.retire();
        notify_ready();
        let mut phase = Phase::Running;
        let mut phase_since = Instant::now();
        loop {
            let link_fd = self.inst.emperor.as_ref().map(EmperorLink::fd);
            let (event, link_ready) = signals.wait(TICK, link_fd);
            let command = match (&self.inst.emperor, link_ready) {
                (Some(link), true) => link.read_command(),
                _ => Command::Ignored,
            };
            if command == Command::Lost {
                log("lost connection with my emperor !!!");
                self.signal_workers(libc::SIGKILL);
                std::thread::sleep(Duration::from_secs(2));
                return Ok(1);
            }
            let event = match command {
                Command::Stop => Some(Event::Shutdown),
                Command::Reload => Some(Event::Reload),
                Command::GracefulStop => Some(Event::GracefulStop),
                _ => event,
            };
            let next = match event {
                Some(Event::GracefulStop) if phase != Phase::ShuttingDown => {
                    Some(self.begin_shutdown(true))
                }
                Some(Event::Reload) if phase == Phase::Running => Some(self.begin_reload()),
                Some(Event::Shutdown) if phase != Phase::ShuttingDown => {
                    Some(self.begin_shutdown(false))
                }
                Some(Event::Term) if phase != Phase::ShuttingDown => {
                    Some(if self.inst.master.die_on_term {
                        self.begin_shutdown(true)
                    } else {
                        self.begin_brutal_reload()
                    })
                }
                _ => None,
            };
            if let Some(p) = next {
                phase = p;
                phase_since = Instant::now();
            }
            self.reap(phase, &signals)?;
            if self.dying_for_need_app && phase == Phase::Running {
                phase = self.begin_shutdown(false);
                phase_since = Instant::now();
            }
            self.check_harakiri();
            if phase == Phase::Running && touch.fired() {
                phase = self.begin_reload();
                phase_since = Instant::now();
            }
            if phase != Phase::Running {
                self.enforce_mercy();
                if self.everything_gone(phase) {
                    return Ok(match phase {
                        Phase::Reloading => self.reexec(),
                        Phase::HandingOver => self.handover_exec(),
                        _ => self.goodbye(),
                    });
                }
                let _ = phase_since;
            }
        }
    }

    fn spawn(&mut self, id: usize, signals: &Signals, respawn: bool) -> Result<(), String> {
        if respawn {
            self.respawns.retain(|t| t.elapsed() < TICK);
            if self.respawns.len() >= self.inst.master.processes.max(1) {
                log("worker respawning too fast !!! i have to sleep a bit (2 seconds)...");
                std::thread::sleep(Duration::from_secs(2));
                self.respawns.clear();
            }
            self.respawns.push(Instant::now());
        }
        let master_pid = process::getpid();
        python::before_fork();
        let mask = process::block_all_signals();
        let forked = process::fork();
        if !matches!(forked, Ok(Forked::Child)) {
            process::restore_signals(&mask);
        }
        let forked = forked.map_err(|e| {
            // Python's fork locks were taken by before_fork: give them back.
            python::after_fork_parent();
            format!("fork(): {e} [worker {id}]")
        })?;
        match forked {
            Forked::Child => {
                signals.forget();
                process::die_with(master_pid);
                python::after_fork_child();
                python::set_worker_id(id, self.inst.master.processes);
                if let Some(link) = &self.inst.emperor {
                    emperor_link::arm_loyalty(link.fd());
                }
                let code = self.worker_main(id);
                std::process::exit(code);
            }
            Forked::Parent(pid) => {
                python::after_fork_parent();
                if respawn {
                    log(format!("Respawned uWSGI worker {id} (new pid: {pid})"));
                } else {
                    log(format!(
                        "spawned uWSGI worker {id} (pid: {pid}, cores: {})",
                        self.inst.worker.threads
                    ));
                }
                self.slots[id - 1].store(0, Ordering::Relaxed);
                self.workers[id - 1] = Some(Worker {
                    pid,
                    spawned: Instant::now(),
                    stopping: None,
                });
                if id == 1 {
                    if let Some(link) = &self.inst.emperor {
                        link.send(FromVassal::Accepting);
                    }
                }
                Ok(())
            }
        }
    }

    fn worker_main(&self, id: usize) -> i32 {
        let mut loaded = None;
        let apps = match super::loaded_or_load(self.apps.as_ref(), &self.inst.python, &mut loaded) {
            Ok(a) => a,
            Err(code) => return code,
        };
        let py = &self.inst.python;
        python::start_autoreloader(py.py_autoreload, py.py_autoreload_ignore.clone());
        let harakiri = HarakiriSlot::new(&self.slots[id - 1]);
        let ctx = WorkerContext {
            id,
            listeners: &self.listeners,
            config: &self.inst.worker,
            apps,
            harakiri: Some(&harakiri),
            total: &self.slots[self.slots.len() - 1],
            routes: &self.inst.routes,
        };
        match worker::serve(ctx) {
            WorkerExit::Shutdown => exit_code::END,
            WorkerExit::Graceful | WorkerExit::Recycled => exit_code::GRACEFUL,
        }
    }

    fn id_of(&self, pid: libc::pid_t) -> Option<usize> {
        self.workers
            .iter()
            .position(|w| w.as_ref().is_some_and(|w| w.pid == pid))
            .map(|i| i + 1)
    }

    fn reap(&mut self, phase: Phase, signals: &Signals) -> Result<(), String> {
        while let Some((pid, how)) = process::reap() {
            if self.handover.reaped(pid, how) {
                continue;
            }
            if let Some(pos) = self.aux.iter().position(|a| a.pid == pid) {
                let a = self.aux.remove(pos);
                if phase == Phase::Running {
                    log(format!(
                        "{} (pid: {pid}) died ({how:?}), respawning it",
                        a.kind.name()
                    ));
                    self.respawn_aux(a.kind, signals)?;
                }
                continue;
            }
            let Some(id) = self.id_of(pid) else { continue };
            let Some(w) = self.workers[id - 1].take() else {
                continue;
            };
            self.slots[id - 1].store(0, Ordering::Relaxed);
            if let Some(since) = w.stopping {
                if phase != Phase::Running {
                    log(format!(
                        "worker {id} buried after {} seconds",
                        since.elapsed().as_secs().max(1)
                    ));
                    continue;
                }
            }
            if phase != Phase::Running {
                continue;
            }
            match how {
                ExitKind::Code(exit_code::GRACEFUL) | ExitKind::Code(0) => {
                    log(format!("worker {id} killed successfully (pid: {pid})"))
                }
                ExitKind::Code(exit_code::FAILED_APP)
                    if self.inst.master.lazy_apps && self.inst.master.need_app =>
                {
                    log(format!("OOPS ! failed loading app in worker {id} (pid {pid})"));
                    log("need-app requested, destroying the instance...");
                    self.dying_for_need_app = true;
                    continue;
                }
                ExitKind::Code(exit_code::FAILED_APP) if self.inst.master.lazy_apps => {
                    log(format!("OOPS ! failed loading app in worker {id} (pid {pid}) :( trying again..."))
                }
                ExitKind::Signal(sig) => {
                    log(format!("DAMN ! worker {id} (pid: {pid}) died, killed by signal {sig} :( trying respawn ..."))
                }
                ExitKind::Code(_) => log(format!("DAMN ! worker {id} (pid: {pid}) died :( trying respawn ...")),
            }
            let _ = w.spawned;
            self.spawn(id, signals, true)?;
        }
        Ok(())
    }

    fn signal_workers(&mut self, sig: libc::c_int) {
        self.handover.signal(sig);
        for w in self.workers.iter_mut().flatten() {
            w.stopping = Some(Instant::now());
            process::kill(w.pid, sig);
        }
        // The router drains its connections and the emperor stops its
        // vassals on SIGINT; a hard kill stays a hard kill.
        let aux_sig = if sig == libc::SIGKILL {
            libc::SIGKILL
        } else {
            libc::SIGINT
        };
        for a in &mut self.aux {
            a.stopping.get_or_insert_with(Instant::now);
            process::kill(a.pid, aux_sig);
        }
    }

    fn begin_reload(&mut self) -> Phase {
        if let Some(phase) = self.begin_handover() {
            return phase;
        }
        log("...gracefully killing workers...");
        for (i, w) in self.workers.iter().enumerate() {
            if let Some(w) = w {
                log(format!(
                    "Gracefully killing worker {} (pid: {})...",
                    i + 1,
                    w.pid
                ));
            }
        }
        self.signal_workers(libc::SIGHUP);
        Phase::Reloading
    }

    fn begin_brutal_reload(&mut self) -> Phase {
        log("...brutally killing workers...");
        self.signal_workers(libc::SIGTERM);
        Phase::Reloading
    }

    fn begin_shutdown(&mut self, graceful: bool) -> Phase {
        if graceful {
            log("graceful shutdown triggered...");
            self.signal_workers(libc::SIGHUP);
        } else {
            log("SIGINT/SIGTERM received...killing workers...");
            self.signal_workers(libc::SIGINT);
        }
        Phase::ShuttingDown
    }

    fn enforce_mercy(&mut self) {
        self.handover.enforce_mercy();
        for a in &self.aux {
            if a.stopping.is_some_and(|t| t.elapsed() > WORKER_MERCY) {
                log(format!(
                    "{} (pid: {}) is taking too much time to die...NO MERCY !!!",
                    a.kind.name(),
                    a.pid
                ));
                process::kill(a.pid, libc::SIGKILL);
            }
        }
        for (i, w) in self.workers.iter().enumerate() {
            if let Some(w) = w {
                if w.stopping.is_some_and(|t| t.elapsed() > WORKER_MERCY) {
                    log(format!(
                        "worker {} (pid: {}) is taking too much time to die...NO MERCY !!!",
                        i + 1,
                        w.pid
                    ));
                    process::kill(w.pid, libc::SIGKILL);
                }
            }
        }
    }

    fn check_harakiri(&mut self) {
        let limit = self.inst.worker.harakiri;
        if limit == 0 {
            return;
        }
        let now = now_secs();
        for (i, w) in self.workers.iter().enumerate() {
            let Some(w) = w else { continue };
            let started = self.slots[i].load(Ordering::Relaxed);
            if started != 0 && now > started + limit {
                log(format!(
                    "*** HARAKIRI ON WORKER {} (pid: {}, try: 1) ***",
                    i + 1,
                    w.pid
                ));
                process::kill(w.pid, libc::SIGKILL);
                self.slots[i].store(0, Ordering::Relaxed);
            }
        }
    }

    fn vacuum(&self) {
        if !self.inst.master.vacuum {
            return;
        }
        if let Some(p) = &self.inst.master.pidfile {
            if std::fs::remove_file(p).is_ok() {
                log("VACUUM: pidfile removed.");
            }
        }
        for s in &self.inst.sockets.sockets {
            if let sys::socket::Address::UnixPath(path) = sys::socket::parse(&s.name) {
                if std::fs::remove_file(&path).is_ok() {
                    log(format!("VACUUM: unix socket {path} removed."));
                }
            }
        }
    }

    fn goodbye(&self) -> i32 {
        self.vacuum();
        log("goodbye to uWSGI.");
        if self.dying_for_need_app {
            exit_code::FAILED_APP
        } else {
            0
        }
    }

    /// Re-executes this binary with the same pid and argv; the listening
    /// sockets stay open across the exec, so no connection is refused.
    fn reexec(&self) -> i32 {
        self.exec_keeping_sockets(false)
    }
}
