//! The master: binds the sockets, loads the app once (unless `lazy-apps`),
//! forks the workers, then supervises them: respawn on death, harakiri,
//! touch-reload, graceful reload by re-exec with the sockets kept open,
//! and the shutdown flows, with uWSGI's log lines.

mod daemon;
mod emperor_link;
mod identity;
mod reload;
pub use emperor_link::announce_loyalty;
pub use reload::remember_start_dir;
mod signals;
mod sockets;

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use crate::config::model::{MasterConfig, PythonConfig, SocketConfig, WorkerConfig};
use crate::config::model_router::RouterConfig;
use crate::config::Config;
use crate::emperor::EmperorConfig;
use crate::sys::process::{self, ExitKind, Forked};
use crate::worker::{self, HarakiriSlot, Listener, WorkerContext, WorkerExit};
use crate::{python, sys};
use emperor_link::{Command, EmperorLink};
use signals::{Event, Signals};
use std::os::fd::{AsRawFd, OwnedFd};

use crate::protocol::emperor::FromVassal;

/// Exit codes a worker uses, as the master reads them.
pub mod exit_code {
    /// Finished its last request after a graceful stop or a recycle.
    pub const GRACEFUL: i32 = 17;
    /// Stopped at once (SIGINT/SIGTERM).
    pub const END: i32 = 30;
    /// The app failed to load in a lazy worker.
    pub const FAILED_APP: i32 = 22;
}

/// How long a stopping worker may take before it is killed
/// (`worker-reload-mercy`).
const WORKER_MERCY: Duration = Duration::from_secs(60);
/// The master's tick (`check-interval`).
const TICK: Duration = Duration::from_secs(1);

fn log(line: impl AsRef<str>) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{}", line.as_ref());
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[derive(Debug)]
struct Worker {
    pid: libc::pid_t,
    spawned: Instant,
    /// Set when the master asked it to stop (reload, shutdown, harakiri).
    stopping: Option<Instant>,
}

/// What the master is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    /// Waiting for the workers to go, then re-exec.
    Reloading,
    /// Waiting for the auxiliary processes to go, then re-exec with the
    /// workers still serving (see `reload`).
    HandingOver,
    /// Waiting for the workers to go, then exit 0.
    ShuttingDown,
}

/// Everything one instance needs, read from its config once.
struct Instance<'a> {
    config: &'a Config,
    master: MasterConfig,
    sockets: SocketConfig,
    worker: WorkerConfig,
    python: PythonConfig,
    /// The `route*` rules the workers run (for requests not from our router).
    routes: crate::routing::Table,
    argv: Vec<Vec<u8>>,
    env: Vec<(Vec<u8>, Vec<u8>)>,
    /// Set when an emperor started us.
    emperor: Option<EmperorLink>,
}

/// Runs an instance that serves sockets; returns the exit status.
pub fn run(config: &Config, argv: &[Vec<u8>], env: &[(Vec<u8>, Vec<u8>)]) -> i32 {
    let emperor = EmperorLink::from_env(env);
    let mut master = config.master_config();
    // A vassal always runs a master: the emperor talks to it.
    master.master |= emperor.is_some();
    let routes = match config.routing_table() {
        Ok(t) => t,
        Err(e) => {
            log(e.to_string());
            return 1;
        }
    };
    let inst = Instance {
        routes,
        config,
        master,
        sockets: config.socket_config(),
        worker: config.worker_config(),
        python: config.python_config(),
        argv: argv.to_vec(),
        env: env.to_vec(),
        emperor,
    };
    match inst.start() {
        Ok(code) => code,
        Err(msg) => {
            log(msg);
            1
        }
    }
}

impl Instance<'_> {
    fn is_reload(&self) -> bool {
        self.env.iter().any(|(k, _)| k == b"UWSGI_RELOADS")
    }

    fn start(&self) -> Result<i32, String> {
        let ended = self.run_to_end();
        // Only a master that ends for good gets here (a reload execs).
        sockets::remove_router_private();
        ended
    }

    fn run_to_end(&self) -> Result<i32, String> {
        daemon::apply(&self.master, self.is_reload(), self.emperor.is_some())?;
        if let Some(pidfile) = &self.master.pidfile {
            if !self.is_reload() {
                log(format!("writing pidfile to {pidfile}"));
                std::fs::write(pidfile, format!("{}\n", process::getpid()))
                    .map_err(|e| format!("open(\"{pidfile}\"): {e} [pidfile]"))?;
            }
        }
        let inherited = sockets::Inherited::from_env(&self.env);
        let handover = reload::Handover::from_env(&self.env, &inherited);
        let failed = match self.serve(inherited, &handover) {
            Ok(Serve::Supervise(mut sup)) => {
                sup.handover = handover;
                return sup.supervise();
            }
            Ok(Serve::Exit(code)) => return Ok(code),
            Err(f) => f,
        };
        if handover.has_workers() {
            return Ok(self.keep_old_workers(handover, failed.aux, &failed.error));
        }
        for a in &failed.aux {
            process::kill(a.pid, libc::SIGINT);
        }
        Err(failed.error)
    }

    /// Opens the sockets, starts the auxiliary processes and loads the
    /// app: everything before the workers are forked.
    fn serve(
        &self,
        mut inherited: sockets::Inherited,
        handover: &reload::Handover,
    ) -> Result<Serve<'_>, reload::Failed> {
        let mut router = self.router_setup(&mut inherited)?;
        let wants_local = router.as_ref().is_some_and(|(cfg, _)| cfg.to.is_empty());
        let mut listeners = sockets::open(&self.sockets, &mut inherited, wants_local)?;
        identity::drop_privileges(&self.master)?;
        // Created after the drop: the router (running as that user too)
        // must be able to reach it.
        if let Some((cfg, _)) = router.as_mut() {
            cfg.local_socket = listeners.first().map(|l| l.name.clone());
            if wants_local {
                // The router reaches the workers by its own socket, so they
                // know its requests are routed already.
                let l = sockets::router_private(self.sockets.listen, &mut inherited)?;
                cfg.local_socket = Some(l.name.clone());
                listeners.push(l);
            }
        }
        let emperor = self.emperor_setup();
        // Auxiliary processes start before Python, while we are single-threaded.
        let mut aux = Vec::new();
        if let Some((cfg, fds)) = &router {
            aux.push(spawn_aux(AuxKind::Http, cfg, fds, emperor.as_ref(), None)?);
        }
        if let Some(e) = &emperor {
            aux.push(spawn_aux(
                AuxKind::Emperor,
                &RouterConfig::default(),
                &[],
                Some(e),
                None,
            )?);
        }
        if listeners.is_empty() {
            // Only auxiliary processes (an emperor inside a master).
            let sup = Supervisor::new(self, listeners, None, &[], router, emperor, aux);
            return Ok(Serve::Supervise(Box::new(sup)));
        }
        let opt: Vec<(String, String)> = self
            .config
            .entries
            .iter()
            .map(|e| {
                (
                    String::from_utf8_lossy(&e.key).into_owned(),
                    e.value
                        .as_deref()
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                        .unwrap_or_else(|| "true".into()),
                )
            })
            .collect();
        if let Err(e) = python::init(&self.python, &opt) {
            return Err(reload::Failed { error: e, aux });
        }
        let apps = if self.master.lazy_apps {
            None
        } else {
            match python::load_apps(&self.python) {
                Ok(apps)
                    if !handover.has_workers()
                        || reload::apps_complete(&self.python, apps.len()) =>
                {
                    Some(apps)
                }
                Ok(_) => {
                    let error = "the new app did not load".into();
                    return Err(reload::Failed { error, aux });
                }
                Err(error) if handover.has_workers() => return Err(reload::Failed { error, aux }),
                Err(e) => {
                    log(e);
                    if self.master.need_app {
                        log("*** no app loaded. GAME OVER ***");
                        return Ok(Serve::Exit(exit_code::FAILED_APP));
                    }
                    None
                }
            }
        };
        // One harakiri slot per worker, then the instance's request total.
        let slots = sys::shm::shared_u64s(self.master.processes.max(1) + 1)
            .map_err(|e| format!("mmap(): {e}"))?;
        if !self.master.master {
            return Ok(Serve::Exit(self.single(&listeners, apps.as_ref(), slots)));
        }
        let sup = Supervisor::new(self, listeners, apps, slots, router, emperor, aux);
        Ok(Serve::Supervise(Box::new(sup)))
    }

    /// Binds (or inherits) the `http =` listeners and reads the router's
    /// configuration, when the instance has a router.
    fn router_setup(
        &self,
        inherited: &mut sockets::Inherited,
    ) -> Result<Option<(RouterConfig, Vec<OwnedFd>)>, String> {
        if self.config.last("http").is_none() && self.config.last("httprouter").is_none() {
            return Ok(None);
        }
        let cfg = self.config.router_config().map_err(|e| e.to_string())?;
        let mut fds = Vec::new();
        for addr in &cfg.http {
            let fd = match inherited.take(&sockets::router_key(addr)) {
                Some(fd) => fd,
                None => {
                    let b = sys::socket::bind(addr, cfg.listen)?;
                    log(format!(
                        "uWSGI http bound on {addr} fd {}",
                        b.fd.as_raw_fd()
                    ));
                    b.fd
                }
            };
            fds.push(fd);
        }
        Ok(Some((cfg, fds)))
    }

    fn emperor_setup(&self) -> Option<EmperorConfig> {
        self.config.last("emperor")?;
        let binary = std::env::current_exe()
            .map(|p| std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()).to_vec())
            .unwrap_or_default();
        Some(EmperorConfig::from_config(self.config, &binary))
    }

    /// No master: this process is the only worker.
    fn single(
        &self,
        listeners: &[Listener],
        apps: Option<&python::Apps>,
        slots: &'static [AtomicU64],
    ) -> i32 {
        log(format!(
            "spawned uWSGI worker 1 (and the only) (pid: {}, cores: {})",
            process::getpid(),
            self.worker.threads
        ));
        log("*** WARNING: you are running uWSGI without its master process manager ***");
        python::set_worker_id(1, 1);
        let loaded;
        let apps = match apps {
            Some(a) => a,
            None => match python::load_apps(&self.python) {
                Ok(a) => {
                    loaded = a;
                    &loaded
                }
                Err(e) => {
                    log(e);
                    return exit_code::FAILED_APP;
                }
            },
        };
        notify_ready();
        python::start_autoreloader(
            self.python.py_autoreload,
            self.python.py_autoreload_ignore.clone(),
        );
        let harakiri = HarakiriSlot::new(&slots[0]);
        let ctx = WorkerContext {
            id: 1,
            listeners,
            config: &self.worker,
            apps,
            harakiri: Some(&harakiri),
            total: &slots[slots.len() - 1],
            routes: &self.routes,
        };
        match worker::serve(ctx) {
            WorkerExit::Shutdown => exit_code::END,
            _ => 0,
        }
    }
}

/// How `serve` ended: ready to supervise workers, or done.
enum Serve<'a> {
    Supervise(Box<Supervisor<'a>>),
    Exit(i32),
}

struct Supervisor<'a> {
    inst: &'a Instance<'a>,
    listeners: Vec<Listener>,
    apps: Option<python::Apps>,
    slots: &'static [AtomicU64],
    /// Index = worker id - 1.
    workers: Vec<Option<Worker>>,
    /// Recent respawn instants (fork-bomb protection).
    respawns: Vec<Instant>,
    router: Option<(RouterConfig, Vec<OwnedFd>)>,
    emperor: Option<EmperorConfig>,
    aux: Vec<Aux>,
    /// Workers of the previous image, retired once ours serve.
    handover: reload::Handover,
}

impl<'a> Supervisor<'a> {
    fn new(
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
    fn supervise(&mut self) -> Result<i32, String> {
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
        let loaded;
        let apps = match &self.apps {
            Some(a) => a,
            None => match python::load_apps(&self.inst.python) {
                Ok(a) => {
                    loaded = a;
                    &loaded
                }
                Err(e) => {
                    log(e);
                    return exit_code::FAILED_APP;
                }
            },
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
        0
    }

    /// Re-executes this binary with the same pid and argv; the listening
    /// sockets stay open across the exec, so no connection is refused.
    fn reexec(&self) -> i32 {
        self.exec_keeping_sockets(false)
    }
}

/// Tells systemd (or an emperor using `NOTIFY_SOCKET`) that we are ready.
fn notify_ready() {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let msg = b"STATUS=uWSGI is ready\nREADY=1\n";
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
    let _ = match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name)
                .and_then(|a| sock.send_to_addr(msg, &a))
        }
        None => sock.send_to(msg, &path),
    };
}

/// `touch-reload` files: fire when an mtime changes or a file appears or
/// disappears.
struct Touch {
    files: Vec<(String, Option<SystemTime>)>,
}

impl Touch {
    fn stamp(path: &str) -> Option<SystemTime> {
        std::fs::metadata(path).and_then(|m| m.modified()).ok()
    }

    fn new(paths: &[String]) -> Touch {
        let files = paths
            .iter()
            .map(|p| {
                let s = Self::stamp(p);
                if s.is_none() {
                    log(format!("unable to stat() {p}, events will be triggered as soon as the file is created"));
                }
                (p.clone(), s)
            })
            .collect();
        Touch { files }
    }

    fn fired(&mut self) -> bool {
        let mut fired = false;
        for (path, stamp) in &mut self.files {
            let now = Self::stamp(path);
            if now != *stamp {
                log(format!(
                    "*** {path} has been touched... grace them all !!! ***"
                ));
                *stamp = now;
                fired = true;
            }
        }
        fired
    }
}

/// A process the master runs besides its workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuxKind {
    /// The HTTP router gateway.
    Http,
    /// An emperor inside this master.
    Emperor,
}

impl AuxKind {
    fn name(self) -> &'static str {
        match self {
            AuxKind::Http => "uWSGI http 1",
            AuxKind::Emperor => "uWSGI Emperor",
        }
    }
}

#[derive(Debug)]
struct Aux {
    kind: AuxKind,
    pid: libc::pid_t,
    stopping: Option<Instant>,
}

/// Forks an auxiliary process; the child runs the role and exits.
/// `master_signals` are the master's handlers, dropped in the child. At
/// start this happens before Python is up; a respawn after the app loaded
/// goes through Python's fork hooks like a worker's fork, so the child's
/// interpreter state is consistent even though it never runs Python.
fn spawn_aux(
    kind: AuxKind,
    router: &RouterConfig,
    fds: &[OwnedFd],
    emperor: Option<&EmperorConfig>,
    master_signals: Option<&Signals>,
) -> Result<Aux, String> {
    let master_pid = process::getpid();
    python::before_fork();
    let mask = process::block_all_signals();
    match process::fork() {
        Err(e) => {
            process::restore_signals(&mask);
            python::after_fork_parent();
            Err(format!("fork(): {e} [{}]", kind.name()))
        }
        Ok(Forked::Parent(pid)) => {
            process::restore_signals(&mask);
            python::after_fork_parent();
            log(format!("spawned {} (pid: {pid})", kind.name()));
            Ok(Aux {
                kind,
                pid,
                stopping: None,
            })
        }
        Ok(Forked::Child) => {
            if let Some(s) = master_signals {
                s.forget();
            }
            process::die_with(master_pid);
            python::after_fork_child();
            let code = match kind {
                AuxKind::Http => {
                    let owned: Vec<OwnedFd> =
                        fds.iter().filter_map(|f| f.try_clone().ok()).collect();
                    process::unblock_all_signals();
                    crate::router::run(router, owned)
                }
                AuxKind::Emperor => {
                    process::unblock_all_signals();
                    emperor.map(crate::emperor::run).unwrap_or(1)
                }
            };
            std::process::exit(code);
        }
    }
}
