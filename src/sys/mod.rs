//! Operating-system helpers: signals, exec. This is where `unsafe` lives.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;

/// The signal a pidfile action sends (`--stop`, `--reload`, ...).
pub fn pidfile_action_signal(action: &str) -> libc::c_int {
    match action {
        "stop" => libc::SIGINT,
        "reload" => libc::SIGHUP,
        _ => libc::SIGTSTP,
    }
}

/// Sends `sig` to the pid written in `pidfile`. A pid that is not a
/// positive number is refused (uWSGI would signal its own process group).
pub fn signal_pidfile(pidfile: &[u8], sig: libc::c_int) -> Result<(), String> {
    let name = String::from_utf8_lossy(pidfile);
    let text = std::fs::read(OsStr::from_bytes(pidfile))
        .map_err(|e| format!("open(\"{name}\"): {}", crate::config::logic::strerror(&e)))?;
    let pid = crate::config::placeholders::atoi(&text);
    if pid <= 0 {
        return Err(format!("error: invalid pidfile {name}"));
    }
    // SAFETY: kill(2) has no memory-safety preconditions; pid is positive,
    // so it targets exactly one process.
    let rc = unsafe { libc::kill(pid, sig) };
    if rc != 0 {
        return Err(format!(
            "signal_pidfile()/kill() of pid {pid} from {name}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Replaces this process with `program` (looked up in PATH), keeping the
/// rest of `argv`; returns only on failure.
pub fn exec_patch(program: &[u8], argv: &[Vec<u8>]) -> std::io::Error {
    let prog = OsStr::from_bytes(program);
    std::process::Command::new(prog)
        .arg0(prog)
        .args(argv.iter().skip(1).map(|a| OsStr::from_bytes(a)))
        .exec()
}

/// Runs `command` through the shell in place of this process.
pub fn exec_shell(command: &[u8]) -> std::io::Error {
    std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(OsStr::from_bytes(command))
        .exec()
}
