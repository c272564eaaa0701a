//! Operating-system helpers: processes, sockets, shared memory, signals,
//! exec. This is where `unsafe` lives.

pub mod daemon;
pub mod identity;
pub mod inotify;
pub mod process;
pub mod shm;
pub mod signals;
pub mod socket;

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

/// `strftime` in local time (log prefixes); at most 63 bytes as uWSGI.
pub fn local_strftime(fmt: &[u8], secs: i64) -> Vec<u8> {
    let Ok(cfmt) = std::ffi::CString::new(fmt.to_vec()) else {
        return Vec::new();
    };
    let t: libc::time_t = secs as libc::time_t;
    // SAFETY: `tm` is a plain C struct, fully written by localtime_r before
    // use; strftime writes at most `buf.len()` bytes into `buf`.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return Vec::new();
        }
        let mut buf = [0u8; 64];
        let n = libc::strftime(buf.as_mut_ptr().cast(), buf.len(), cfmt.as_ptr(), &tm);
        buf[..n].to_vec()
    }
}

/// The 24 characters of `ctime()` ("Fri Nov 27 16:33:46 2026").
pub fn ctime24(secs: i64) -> Vec<u8> {
    local_strftime(b"%a %b %e %H:%M:%S %Y", secs)
}
