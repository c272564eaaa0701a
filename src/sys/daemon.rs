//! Detaching from the terminal (`daemonize`) and sending the process's
//! output to a file (`logto`).

use std::io;
use std::os::fd::AsRawFd;

use super::process::{self, Forked};

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Makes descriptors 1 and 2 append to `path` (created 0640 if missing).
pub fn redirect_output(path: &str) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)?;
    for target in [libc::STDOUT_FILENO, libc::STDERR_FILENO] {
        // SAFETY: dup2 between a descriptor we own and a standard one;
        // the file stays open through the new descriptors after `file` drops.
        check(unsafe { libc::dup2(file.as_raw_fd(), target) })?;
    }
    Ok(())
}

/// Standard input from `/dev/null`.
pub fn null_stdin() -> io::Result<()> {
    let null = std::fs::File::open("/dev/null")?;
    // SAFETY: as in `redirect_output`.
    check(unsafe { libc::dup2(null.as_raw_fd(), libc::STDIN_FILENO) })
}

/// The classic double fork: the caller's process exits 0 at once (as the
/// shell that started it expects), the surviving grandchild leads no
/// session and has no controlling terminal. Must be called while
/// single-threaded.
pub fn detach() -> io::Result<()> {
    if let Forked::Parent(_) = process::fork()? {
        // The launcher: its work is done; no destructors, no atexit.
        process::exit_now(0);
    }
    // SAFETY: setsid has no memory-safety preconditions.
    check(unsafe { libc::setsid() })?;
    if let Forked::Parent(_) = process::fork()? {
        process::exit_now(0);
    }
    Ok(())
}
