//! Zero-downtime reload: the workers of the old image keep serving while
//! the new image of the master loads the new config and app.
//!
//! uWSGI stops its workers, re-execs, imports the app, then forks new
//! workers: every request in between waits for the import, and a broken
//! new app leaves the site down. Here the master keeps its pid (the
//! emperor, pidfiles and systemd track it) and re-execs *without* stopping
//! its workers: they stay its children across the exec and keep accepting
//! on the listening sockets, which stay open too. The new image learns
//! their pids from [`ADOPT_ENV`], loads the app, forks its own workers, and
//! only then asks the old ones to finish their request and leave (SIGHUP).
//! When the new config does not resolve (checked before the exec) or the
//! new app does not load (after it), the old workers keep serving, the
//! error is logged, and the next reload trigger tries again.
//!
//! Not covered: `lazy-apps` (each worker imports the app itself, so the
//! master cannot know when the new ones are ready) and the brutal reload
//! of SIGTERM with `die-on-term = false`: both keep uWSGI's stop-then-exec.

use std::collections::BTreeSet;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use super::auxiliary::Aux;
use super::emperor_link::Command;
use super::signals::{Event, Signals};
use super::supervisor::{Phase, Supervisor};
use super::touch::Touch;
use super::{log, sockets, Instance, TICK, WORKER_MERCY};
use crate::config::model::PythonConfig;
use crate::config::{self, HostFacts, Inputs, Io};
use crate::sys::process::{self, ExitKind};

/// Environment variable naming the workers of the previous image:
/// comma-separated `id:pid` pairs.
pub const ADOPT_ENV: &str = "RUWSGI_ADOPTED_WORKERS";

/// The working directory before the config's `chdir`: argv may name files
/// relative to it, so a reload resolves and execs from there (as uWSGI does).
static START_DIR: OnceLock<PathBuf> = OnceLock::new();

pub fn remember_start_dir() {
    if let Ok(dir) = std::env::current_dir() {
        let _ = START_DIR.set(dir);
    }
}

/// Runs `f` in the start directory, then comes back.
fn in_start_dir<T>(f: impl FnOnce() -> T) -> T {
    let here = std::env::current_dir().ok();
    let moved = START_DIR
        .get()
        .is_some_and(|d| here.as_ref() != Some(d) && std::env::set_current_dir(d).is_ok());
    let out = f();
    if let (true, Some(here)) = (moved, here) {
        let _ = std::env::set_current_dir(here);
    }
    out
}

/// A worker forked by a previous image of this master.
#[derive(Debug)]
struct OldWorker {
    /// Its worker id in the previous image (for the log lines).
    id: usize,
    pid: libc::pid_t,
    /// Set once asked to leave.
    stopping: Option<Instant>,
}

/// The workers and sockets handed over by the previous image.
#[derive(Debug, Default)]
pub struct Handover {
    old: Vec<OldWorker>,
    /// Copies of the inherited sockets, kept until this image serves, so
    /// a failed start can still hand them to the next exec.
    spare: Vec<(OwnedFd, String)>,
}

impl Handover {
    pub fn from_env(env: &[(Vec<u8>, Vec<u8>)], inherited: &sockets::Inherited) -> Handover {
        let old: Vec<OldWorker> = env
            .iter()
            .find(|(k, _)| k == ADOPT_ENV.as_bytes())
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
            .split(',')
            .filter_map(|item| {
                let (id, pid) = item.split_once(':')?;
                Some((id.trim().parse().ok()?, pid.trim().parse().ok()?))
            })
            .filter(|&(_, pid): &(usize, libc::pid_t)| pid > 0)
            .map(|(id, pid)| OldWorker {
                id,
                pid,
                stopping: None,
            })
            .collect();
        let spare = if old.is_empty() {
            Vec::new()
        } else {
            inherited.spare()
        };
        Handover { old, spare }
    }

    /// Workers of the previous image are still around.
    pub fn has_workers(&self) -> bool {
        !self.old.is_empty()
    }

    fn pids(&self) -> impl Iterator<Item = libc::pid_t> + '_ {
        self.old.iter().map(|w| w.pid)
    }

    fn workers(&self) -> impl Iterator<Item = (usize, libc::pid_t)> + '_ {
        self.old.iter().map(|w| (w.id, w.pid))
    }

    /// This image serves: the spare sockets are not needed any more.
    pub fn serving(&mut self) {
        self.spare.clear();
    }

    /// Asks the old workers to finish their request and leave.
    pub fn retire(&mut self) {
        for w in self.old.iter_mut().filter(|w| w.stopping.is_none()) {
            log(format!(
                "Gracefully killing worker {} (pid: {})...",
                w.id, w.pid
            ));
            w.stopping = Some(Instant::now());
            process::kill(w.pid, libc::SIGHUP);
        }
    }

    pub fn signal(&mut self, sig: libc::c_int) {
        for w in &mut self.old {
            w.stopping.get_or_insert_with(Instant::now);
            process::kill(w.pid, sig);
        }
    }

    /// Forgets `pid` if it was an old worker; true when it was.
    pub fn reaped(&mut self, pid: libc::pid_t, how: ExitKind) -> bool {
        let Some(pos) = self.old.iter().position(|w| w.pid == pid) else {
            return false;
        };
        let w = self.old.remove(pos);
        let id = w.id;
        match (w.stopping, how) {
            (Some(t), _) => log(format!(
                "old worker {id} (pid: {pid}) retired after {} ms",
                t.elapsed().as_millis()
            )),
            (None, ExitKind::Signal(sig)) => log(format!(
                "old worker {id} (pid: {pid}) died, killed by signal {sig}"
            )),
            (None, ExitKind::Code(code)) => log(format!(
                "old worker {id} (pid: {pid}) died (exit code {code})"
            )),
        }
        true
    }

    pub fn enforce_mercy(&self) {
        for w in &self.old {
            if w.stopping.is_some_and(|t| t.elapsed() > WORKER_MERCY) {
                log(format!(
                    "old worker {} (pid: {}) is taking too much time to die...NO MERCY !!!",
                    w.id, w.pid
                ));
                process::kill(w.pid, libc::SIGKILL);
            }
        }
    }
}

/// A start that failed, with the auxiliary processes (router, emperor) it
/// had already forked: they run the new config, which did resolve, so they
/// keep running beside the old workers.
pub(super) struct Failed {
    pub error: String,
    pub aux: Vec<Aux>,
}

impl From<String> for Failed {
    fn from(error: String) -> Failed {
        Failed {
            error,
            aux: Vec::new(),
        }
    }
}

/// Asks auxiliary processes to stop (the next image starts its own; the
/// listening sockets stay open meanwhile).
fn stop_aux(aux: &mut [Aux]) {
    for a in aux {
        a.stopping.get_or_insert_with(Instant::now);
        process::kill(a.pid, libc::SIGINT);
    }
}

/// Resolves the configuration the next image would read (same argv, same
/// environment, same working directory), so that a broken file is
/// reported before the exec instead of taking the instance down.
pub fn new_config_loads(argv: &[Vec<u8>], env: &[(Vec<u8>, Vec<u8>)]) -> Result<(), String> {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let resolved = in_start_dir(|| {
        config::resolve(
            Inputs {
                argv: argv.to_vec(),
                env: env.to_vec(),
                facts: HostFacts::detect(),
            },
            Io {
                out: &mut out,
                err: &mut err,
            },
        )
    });
    let detail = || String::from_utf8_lossy(&err).trim().replace('\n', "; ");
    match resolved {
        Ok(_) => Ok(()),
        Err(config::Halt::Fail(e)) => Err(e.to_string()),
        Err(config::Halt::Exit(0)) | Err(config::Halt::SignalPidfile { .. }) => Err(
            "the new configuration does not start an instance (it only prints or signals)".into(),
        ),
        Err(config::Halt::Exit(code)) => Err(format!("exit code {code}: {}", detail())),
    }
}

/// Whether every configured app loaded (a mountpoint missing means its
/// import failed; uWSGI would serve "no app" errors for it).
pub fn apps_complete(cfg: &PythonConfig, loaded: usize) -> bool {
    let mut wanted = BTreeSet::new();
    if cfg.module.is_some() || cfg.wsgi_file.is_some() {
        wanted.insert("");
    }
    for m in &cfg.mounts {
        if let Some((mp, _)) = m.split_once('=') {
            wanted.insert(mp);
        }
    }
    loaded >= wanted.len()
}

/// Re-executes this binary (same pid, same argv) keeping `sockets` open
/// and naming the workers that keep serving until the new image has its
/// own. Returns only on failure.
fn exec<'s>(
    inst: &Instance<'_>,
    sockets: impl Iterator<Item = (&'s OwnedFd, &'s str)>,
    workers: &[(usize, libc::pid_t)],
) -> i32 {
    log("binary reloading uWSGI...");
    let reloads = inst
        .env
        .iter()
        .find(|(k, _)| k == b"UWSGI_RELOADS")
        .map(|(_, v)| config::placeholders::atoi(v))
        .unwrap_or(0);
    let mut env: Vec<(Vec<u8>, Vec<u8>)> = inst
        .env
        .iter()
        .filter(|(k, _)| {
            k != b"UWSGI_RELOADS"
                && k != sockets::INHERIT_ENV.as_bytes()
                && k != ADOPT_ENV.as_bytes()
        })
        .cloned()
        .collect();
    env.push((
        b"UWSGI_RELOADS".to_vec(),
        (reloads + 1).to_string().into_bytes(),
    ));
    env.push((
        sockets::INHERIT_ENV.as_bytes().to_vec(),
        sockets::describe_for_exec(sockets).into_bytes(),
    ));
    if !workers.is_empty() {
        let pids: Vec<String> = workers
            .iter()
            .map(|(id, pid)| format!("{id}:{pid}"))
            .collect();
        env.push((ADOPT_ENV.as_bytes().to_vec(), pids.join(",").into_bytes()));
    }
    if let Some(link) = &inst.emperor {
        process::keep_across_exec(link.fd());
    }
    log(format!(
        "running {}",
        String::from_utf8_lossy(inst.argv.first().map(Vec::as_slice).unwrap_or(b"uwsgi"))
    ));
    if let Some(dir) = START_DIR.get() {
        if let Err(e) = std::env::set_current_dir(dir) {
            log(format!("chdir(): {e} [{}]", dir.display()));
        }
    }
    let e = process::exec_self(&inst.argv, &env);
    log(format!("execvp(): {e} [reload]"));
    1
}

impl Supervisor<'_> {
    /// Starts a reload that hands the workers over; `None` when this
    /// instance reloads the uWSGI way (stop the workers, then exec).
    pub(super) fn begin_handover(&mut self) -> Option<Phase> {
        if self.inst.master.lazy_apps || self.listeners.is_empty() {
            return None;
        }
        if let Err(e) = new_config_loads(&self.inst.argv, &self.inst.env) {
            log(format!("!!! reload aborted: {e} !!!"));
            log("the current workers keep serving; fix the configuration and reload again");
            return Some(Phase::Running);
        }
        log("...handing the sockets and the running workers over to the new image...");
        // The router and an inner emperor are restarted by the new image;
        // the sockets they listen on stay open meanwhile.
        for a in &mut self.aux {
            a.stopping.get_or_insert_with(Instant::now);
            process::kill(a.pid, libc::SIGINT);
        }
        Some(Phase::HandingOver)
    }

    /// The exec of a handover: every worker still alive keeps serving.
    pub(super) fn handover_exec(&self) -> i32 {
        self.exec_keeping_sockets(true)
    }

    /// Re-executes with the listening sockets open; `with_workers` names
    /// the live workers for the new image to adopt.
    pub(super) fn exec_keeping_sockets(&self, with_workers: bool) -> i32 {
        let workers: Vec<(usize, libc::pid_t)> = if with_workers {
            self.workers
                .iter()
                .enumerate()
                .filter_map(|(i, w)| Some((i + 1, w.as_ref()?.pid)))
                .chain(self.handover.workers())
                .collect()
        } else {
            Vec::new()
        };
        let router_names: Vec<String> = self
            .router
            .as_ref()
            .map(|(cfg, _)| cfg.http.iter().map(|a| sockets::router_key(a)).collect())
            .unwrap_or_default();
        let router_fds = self
            .router
            .as_ref()
            .map(|(_, fds)| fds.as_slice())
            .unwrap_or_default();
        let kept = self
            .listeners
            .iter()
            .map(|l| (&l.fd, l.name.as_str()))
            .chain(
                router_fds
                    .iter()
                    .zip(router_names.iter().map(String::as_str)),
            );
        exec(self.inst, kept, &workers)
    }
}

impl Instance<'_> {
    /// The new image could not start serving: the workers of the old one
    /// keep doing so until a reload trigger (signal, emperor, touch) tries
    /// again or a stop request ends them.
    pub(super) fn keep_old_workers(
        &self,
        mut handover: Handover,
        mut aux: Vec<Aux>,
        error: &str,
    ) -> i32 {
        log(format!("!!! reload failed: {error} !!!"));
        let pids: Vec<String> = handover.pids().map(|p| p.to_string()).collect();
        log(format!(
            "the old workers (pids: {}) keep serving; fix the error and reload again",
            pids.join(", ")
        ));
        let signals = match Signals::install() {
            Ok(s) => s,
            Err(e) => {
                log(format!("signal setup: {e}"));
                handover.signal(libc::SIGINT);
                stop_aux(&mut aux);
                return 1;
            }
        };
        let mut touch = Touch::new(&self.master.touch_reload);
        let mut stopping = false;
        loop {
            let link_fd = self.emperor.as_ref().map(|l| l.fd());
            let (event, link_ready) = signals.wait(TICK, link_fd);
            let command = match (&self.emperor, link_ready) {
                (Some(link), true) => link.read_command(),
                _ => Command::Ignored,
            };
            if command == Command::Lost {
                log("lost connection with my emperor !!!");
                handover.signal(libc::SIGKILL);
                for a in &aux {
                    process::kill(a.pid, libc::SIGKILL);
                }
                return 1;
            }
            let event = match command {
                Command::Stop => Some(Event::Shutdown),
                Command::Reload => Some(Event::Reload),
                Command::GracefulStop => Some(Event::GracefulStop),
                _ => event,
            };
            let reload = !stopping && (event == Some(Event::Reload) || touch.fired());
            match event {
                Some(Event::Shutdown) => {
                    stopping = true;
                    handover.signal(libc::SIGINT);
                    stop_aux(&mut aux);
                }
                Some(Event::GracefulStop) | Some(Event::Term) => {
                    stopping = true;
                    handover.signal(libc::SIGHUP);
                    stop_aux(&mut aux);
                }
                _ => {}
            }
            while let Some((pid, how)) = process::reap() {
                if !handover.reaped(pid, how) {
                    aux.retain(|a| a.pid != pid);
                }
            }
            handover.enforce_mercy();
            if stopping && !handover.has_workers() && aux.is_empty() {
                log("goodbye to uWSGI.");
                return 0;
            }
            // Once the old workers are all gone there is nothing left to
            // protect: start again as a fresh instance would.
            if reload || !handover.has_workers() {
                if let Err(e) = new_config_loads(&self.argv, &self.env) {
                    log(format!("!!! reload aborted: {e} !!!"));
                    if handover.has_workers() {
                        continue;
                    }
                }
                stop_aux(&mut aux);
                let workers: Vec<_> = handover.workers().collect();
                let kept = handover.spare.iter().map(|(fd, n)| (fd, n.as_str()));
                return exec(self, kept, &workers);
            }
        }
    }
}
