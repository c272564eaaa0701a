//! The auxiliary processes a master runs besides its workers: the HTTP
//! router gateway (`http =`) and an emperor inside the master
//! (`emperor =`), forked by [`spawn_aux`] and respawned by the supervisor.

use std::os::fd::OwnedFd;
use std::time::Instant;

use super::log;
use super::signals::Signals;
use crate::config::model_router::RouterConfig;
use crate::emperor::EmperorConfig;
use crate::python;
use crate::sys::process::{self, Forked};

/// A process the master runs besides its workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AuxKind {
    /// An HTTP router gateway process, numbered from 1 (`http-processes`).
    Http(usize),
    /// An emperor inside this master.
    Emperor,
}

impl AuxKind {
    pub(super) fn name(self) -> String {
        match self {
            AuxKind::Http(n) => format!("uWSGI http {n}"),
            AuxKind::Emperor => "uWSGI Emperor".into(),
        }
    }
}

#[derive(Debug)]
pub(super) struct Aux {
    pub(super) kind: AuxKind,
    pub(super) pid: libc::pid_t,
    pub(super) stopping: Option<Instant>,
}

/// Forks an auxiliary process; the child runs the role and exits.
/// `master_signals` are the master's handlers, dropped in the child; they
/// are given for a respawn only. At
/// start this happens before Python is up; a respawn after the app loaded
/// goes through Python's fork hooks like a worker's fork, so the child's
/// interpreter state is consistent even though it never runs Python.
pub(super) fn spawn_aux(
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
            // uWSGI says "respawned" for a gateway it starts again.
            let verb = match kind {
                AuxKind::Http(_) if master_signals.is_some() => "respawned",
                _ => "spawned",
            };
            log(format!("{verb} {} (pid: {pid})", kind.name()));
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
                AuxKind::Http(n) => {
                    crate::router::set_board_row(n - 1);
                    let owned: Vec<OwnedFd> =
                        fds.iter().filter_map(|f| f.try_clone().ok()).collect();
                    process::unblock_all_signals();
                    crate::router::run(router, owned)
                }
                AuxKind::Emperor => {
                    process::unblock_all_signals();
                    emperor.map(crate::emperor::handoff::run).unwrap_or(1)
                }
            };
            std::process::exit(code);
        }
    }
}
