//! Starting one vassal process (`uwsgi_emperor_vassal_start`,
//! `uwsgi_emperor_spawn_vassal`, spec §1.5, config.md §9): a socketpair,
//! `fork()`, and in the child: parent-death signal (SIGKILL), tyrant
//! identity, the environment uWSGI gives vassals, stdin from `/dev/null`
//! (or the on-demand socket), no descriptor but 0, 1, 2 and the pipe end,
//! the vassal's working directory, then `exec` of the wrapper overrides,
//! the binary and the fallbacks, exiting 26 when all fail.
//!
//! The emperor must be single-threaded when it calls [`spawn`].

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::config::logic::strerror;
use crate::sys::process::{self, Forked};

use super::log::Logger;
use super::vassal::EXILE_CODE;
use super::EmperorConfig;

/// Environment variables a vassal never inherits from the emperor.
const DROPPED_ENV: &[&[u8]] = &[
    b"UWSGI_RELOADS",
    b"NOTIFY_SOCKET",
    b"UWSGI_EMPEROR_FD",
    b"UWSGI_EMPEROR_FD_CONFIG",
    b"UWSGI_BROODLORD_NUM",
];
/// `UWSGI_VASSAL_xxx=v` reaches the vassal as `UWSGI_xxx=v`.
const VASSAL_PREFIX: &[u8] = b"UWSGI_VASSAL_";
const UWSGI_PREFIX: &[u8] = b"UWSGI_";

/// What to start.
#[derive(Debug)]
pub struct Request<'a> {
    /// The vassal id (logs).
    pub name: &'a [u8],
    /// The whole argv, program first.
    pub argv: Vec<Vec<u8>>,
    pub cwd: PathBuf,
    /// Tyrant mode: (uid, gid) to run as.
    pub owner: Option<(u32, u32)>,
    /// On-demand: the listening socket, given as fd 0.
    pub stdin: Option<&'a OwnedFd>,
    /// Broodlord: `UWSGI_BROODLORD_NUM`.
    pub broodlord_num: Option<u32>,
}

/// Why a vassal could not be started (uWSGI's wording).
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("socketpair(): {}", strerror(.0))]
    Socketpair(std::io::Error),
    #[error("uwsgi_emperor_spawn_vassal()/fork(): {}", strerror(.0))]
    Fork(std::io::Error),
}

/// A started vassal: its pid and the emperor's (non-blocking) pipe end.
#[derive(Debug)]
pub struct Spawned {
    pub pid: libc::pid_t,
    pub pipe: UnixStream,
}

/// The vassal's environment, from the emperor's (spec §1.5.b.3, §1.18):
/// `UWSGI_RELOADS` and `NOTIFY_SOCKET` removed, `UWSGI_EMPEROR_FD` set,
/// `UWSGI_ORIGINAL_PROC_NAME` kept or set, `UWSGI_VASSAL_xxx` renamed to
/// `UWSGI_xxx` as documented (2.0.21's rewrite is broken; not reproduced).
pub fn vassal_env(
    emperor_env: impl IntoIterator<Item = (OsString, OsString)>,
    pipe_fd: i32,
    original_proc_name: &[u8],
    broodlord_num: Option<u32>,
) -> Vec<(OsString, OsString)> {
    let mut plain = Vec::new();
    let mut renamed = Vec::new();
    let mut has_proc_name = false;
    for (k, v) in emperor_env {
        let key = k.as_bytes();
        if DROPPED_ENV.contains(&key) {
            continue;
        }
        has_proc_name |= key == b"UWSGI_ORIGINAL_PROC_NAME";
        match key.strip_prefix(VASSAL_PREFIX) {
            Some(rest) => renamed.push((OsString::from_vec([UWSGI_PREFIX, rest].concat()), v)),
            None => plain.push((k, v)),
        }
    }
    // A renamed variable replaces one of the same name.
    plain.retain(|(k, _)| !renamed.iter().any(|(r, _)| r == k));
    plain.extend(renamed);
    plain.push(("UWSGI_EMPEROR_FD".into(), pipe_fd.to_string().into()));
    if !has_proc_name {
        plain.push((
            "UWSGI_ORIGINAL_PROC_NAME".into(),
            OsString::from_vec(original_proc_name.to_vec()),
        ));
    }
    if let Some(n) = broodlord_num {
        plain.push(("UWSGI_BROODLORD_NUM".into(), n.to_string().into()));
    }
    plain
}

/// Forks and execs a vassal.
pub fn spawn(cfg: &EmperorConfig, log: &Logger, req: &Request) -> Result<Spawned, SpawnError> {
    let (ours, theirs) = UnixStream::pair().map_err(SpawnError::Socketpair)?;
    ours.set_nonblocking(true).map_err(SpawnError::Socketpair)?;
    let env = vassal_env(
        std::env::vars_os(),
        theirs.as_raw_fd(),
        &cfg.original_proc_name,
        req.broodlord_num,
    );
    let emperor = std::process::id();
    // Signals stay blocked in the child until just before its exec, so one
    // sent meanwhile cannot run our handlers in the child.
    let mask = process::block_all_signals();
    let forked = process::fork();
    if !matches!(forked, Ok(Forked::Child)) {
        process::restore_signals(&mask);
    }
    match forked.map_err(SpawnError::Fork)? {
        Forked::Parent(pid) => Ok(Spawned { pid, pipe: ours }),
        Forked::Child => {
            process::default_signal_actions(super::signals::handled());
            drop(ours);
            let code = child(cfg, log, req, &theirs, &env, emperor);
            std::process::exit(code)
        }
    }
}

/// Runs in the child; returns only the exit status of a failed start.
fn child(
    cfg: &EmperorConfig,
    log: &Logger,
    req: &Request,
    pipe: &UnixStream,
    env: &[(OsString, OsString)],
    emperor: u32,
) -> i32 {
    process::set_parent_death_signal(libc::SIGKILL);
    if std::os::unix::process::parent_id() != emperor {
        // The emperor died before the death signal was armed.
        return 1;
    }
    let name = String::from_utf8_lossy(req.name);
    if let Some((uid, gid)) = req.owner {
        log.plain(format!(
            "[emperor-tyrant] dropping privileges to {uid} {gid} for instance {name}"
        ));
    }
    let mut keep = vec![pipe.as_raw_fd()];
    keep.extend(req.stdin.map(|s| s.as_raw_fd()));
    super::fds::cloexec_all_except(&keep);
    process::keep_across_exec(pipe.as_raw_fd());
    // A mask survives exec: a vassal started with every signal blocked
    // would never see SIGCHLD, SIGTERM or SIGHUP. Our handlers are already
    // reset here, so a signal pending since the fork acts as on any
    // process that has not installed its own yet.
    process::unblock_all_signals();
    let exec = |program: &[u8]| -> std::io::Error {
        let mut cmd = Command::new(OsStr::from_bytes(program));
        cmd.arg0(OsStr::from_bytes(program))
            .args(req.argv.iter().skip(1).map(|a| OsStr::from_bytes(a)))
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(&req.cwd);
        match req.stdin.map(OwnedFd::try_clone) {
            Some(Ok(fd)) => cmd.stdin(Stdio::from(fd)),
            Some(Err(e)) => return e,
            None => cmd.stdin(Stdio::null()),
        };
        if let Some((uid, gid)) = req.owner {
            cmd.uid(uid).gid(gid);
        }
        cmd.exec()
    };
    for wrapper in &cfg.wrapper_override {
        log.plain(format!(
            "[emperor] trying to use {} as binary wrapper ...",
            String::from_utf8_lossy(wrapper)
        ));
        exec(wrapper);
    }
    let program = req.argv.first().map(Vec::as_slice).unwrap_or_default();
    let e = exec(program);
    log.plain(format!(
        "execvp(): {} [emperor vassal {name}]",
        strerror(&e)
    ));
    log.plain(format!(
        "[emperor] binary path: {}",
        String::from_utf8_lossy(program)
    ));
    log.plain("[emperor] is the uwsgi binary in your system PATH ?");
    for fallback in &cfg.wrapper_fallback {
        log.plain(format!(
            "[emperor] trying to use {} as binary fallback ...",
            String::from_utf8_lossy(fallback)
        ));
        exec(fallback);
    }
    EXILE_CODE
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    #[test]
    fn environment_rules() {
        let got = vassal_env(
            env(&[
                ("PATH", "/bin"),
                ("UWSGI_RELOADS", "3"),
                ("NOTIFY_SOCKET", "/run/n"),
                ("UWSGI_EMPEROR_FD", "9"),
                ("UWSGI_VASSAL_SOCKET", "/run/%n.sock"),
                ("SSL_CERT_FILE", "/etc/ssl/cert.pem"),
                ("UWSGI_SOCKET", "overridden"),
            ]),
            7,
            b"uwsgi",
            None,
        );
        let want = env(&[
            ("PATH", "/bin"),
            ("SSL_CERT_FILE", "/etc/ssl/cert.pem"),
            ("UWSGI_SOCKET", "/run/%n.sock"),
            ("UWSGI_EMPEROR_FD", "7"),
            ("UWSGI_ORIGINAL_PROC_NAME", "uwsgi"),
        ]);
        assert_eq!(got, want);
        let kept = vassal_env(
            env(&[("UWSGI_ORIGINAL_PROC_NAME", "uwsgi_python3")]),
            5,
            b"uwsgi",
            Some(2),
        );
        assert_eq!(
            kept,
            env(&[
                ("UWSGI_ORIGINAL_PROC_NAME", "uwsgi_python3"),
                ("UWSGI_EMPEROR_FD", "5"),
                ("UWSGI_BROODLORD_NUM", "2")
            ])
        );
    }
}
