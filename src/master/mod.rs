//! The master: binds the sockets, loads the app once (unless `lazy-apps`),
//! forks the workers, then supervises them: respawn on death, harakiri,
//! touch-reload, graceful reload by re-exec with the sockets kept open,
//! and the shutdown flows, with uWSGI's log lines.
//!
//! This file holds the [`Instance`] and the flow up to the workers
//! (pidfile, sockets, privileges, auxiliary processes, app loading, the
//! master-less single worker). [`supervisor`] runs the workers and the
//! master's loop, [`auxiliary`] the router and emperor processes,
//! [`reload`] the zero-downtime reload, [`touch`] `touch-reload`.

mod auxiliary;
mod daemon;
mod emperor_link;
mod identity;
mod reload;
pub use emperor_link::announce_loyalty;
pub use reload::remember_start_dir;
mod signals;
mod sockets;
mod supervisor;
mod touch;

use std::io::Write;
use std::os::fd::OwnedFd;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use crate::config::model::{MasterConfig, PythonConfig, SocketConfig, WorkerConfig};
use crate::config::model_router::RouterConfig;
use crate::config::Config;
use crate::emperor::EmperorConfig;
use crate::sys::process;
use crate::worker::{self, HarakiriSlot, Listener, WorkerContext, WorkerExit};
use crate::{python, sys};
use auxiliary::{spawn_aux, AuxKind};
use emperor_link::EmperorLink;
use supervisor::Supervisor;

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
        // A failure part-way returns the ones started, for the caller to
        // stop (or, in a reload, to keep track of).
        let mut kinds = Vec::new();
        if let Some((cfg, _)) = &router {
            kinds.extend((1..=cfg.processes).map(AuxKind::Http));
        }
        if emperor.is_some() {
            kinds.push(AuxKind::Emperor);
        }
        // Several gateways share one board of requests in flight.
        if let Some((cfg, _)) = router.as_ref().filter(|(c, _)| c.processes > 1) {
            match sys::shm::shared_u64s(cfg.processes * crate::router::BOARD_BUCKETS) {
                Ok(slots) => crate::router::share_board(slots),
                Err(e) => log(format!("mmap(): {e} [http-processes board]")),
            }
        }
        let mut aux = Vec::new();
        let no_router = RouterConfig::default();
        for kind in kinds {
            let (cfg, fds) = match (&router, kind) {
                (Some((cfg, fds)), AuxKind::Http(_)) => (cfg, fds.as_slice()),
                _ => (&no_router, &[][..]),
            };
            match spawn_aux(kind, cfg, fds, emperor.as_ref(), None) {
                Ok(a) => aux.push(a),
                Err(error) => return Err(reload::Failed { error, aux }),
            }
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
        if !python::needed(&self.python) {
            python::init_without_interpreter(&self.python);
        } else if let Err(e) = python::init(&self.python, &opt) {
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
                Err(_) => {
                    // Only need-app makes a missing app an error.
                    log("*** no app loaded. GAME OVER ***");
                    return Ok(Serve::Exit(exit_code::FAILED_APP));
                }
            }
        };
        // One harakiri slot per worker, then the instance's request total.
        let workers = self.master.processes.max(1);
        let shared = sys::shm::shared_u64s(workers + 1).and_then(|slots| {
            let per_app = sys::shm::shared_u64s(workers * python::SHARED_APPS_PER_WORKER)?;
            Ok((slots, per_app))
        });
        let (slots, per_app) = match shared {
            Ok(s) => s,
            Err(e) => {
                let error = format!("mmap(): {e}");
                return Err(reload::Failed { error, aux });
            }
        };
        python::share_counters(per_app, &slots[workers]);
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
                None => crate::router::bind_listener(addr, &cfg)?,
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
        let mut loaded = None;
        let apps = match loaded_or_load(apps, &self.python, &mut loaded) {
            Ok(a) => a,
            Err(code) => return code,
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

/// The apps the master preloaded, or else (`lazy-apps`) loaded now into
/// `slot`; a failed load is logged and gives the exit status.
fn loaded_or_load<'a>(
    apps: Option<&'a python::Apps>,
    cfg: &PythonConfig,
    slot: &'a mut Option<python::Apps>,
) -> Result<&'a python::Apps, i32> {
    if let Some(a) = apps {
        return Ok(a);
    }
    match python::load_apps(cfg) {
        Ok(a) => Ok(slot.insert(a)),
        Err(_) => {
            if !cfg.lazy {
                log("*** no app loaded. GAME OVER ***");
            }
            Err(exit_code::FAILED_APP)
        }
    }
}
