//! Processes: fork, wait, signal, parent-death signal, exec of ourselves.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;

/// Which side of a fork we are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    Child,
    Parent(libc::pid_t),
}

/// fork(2). The caller must be single-threaded (or accept that only the
/// calling thread survives in the child) and, once Python is up, must
/// wrap the call in the interpreter's fork hooks.
pub fn fork() -> std::io::Result<Forked> {
    // SAFETY: fork has no memory-safety preconditions of its own; the
    // single-threaded requirement is documented for callers, and the
    // child only continues in Rust code that does not rely on other threads.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid)),
    }
}

/// Asks the kernel to send `sig` to this process when its parent dies.
pub fn set_parent_death_signal(sig: libc::c_int) {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes an integer argument and touches
    // no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0);
    }
}

/// In a freshly forked child: dies with SIGKILL when `parent` does, and
/// exits at once if `parent` already died before the signal was armed
/// (the child would otherwise be orphaned for good).
pub fn die_with(parent: libc::pid_t) {
    set_parent_death_signal(libc::SIGKILL);
    // SAFETY: getppid cannot fail and touches no memory.
    if unsafe { libc::getppid() } != parent {
        exit_now(1);
    }
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    Code(i32),
    Signal(i32),
}

/// Reaps one finished child without blocking.
pub fn reap() -> Option<(libc::pid_t, ExitKind)> {
    let mut status: libc::c_int = 0;
    // SAFETY: waitpid writes only to `status`, a valid local.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    if pid <= 0 {
        return None;
    }
    let kind = if libc::WIFSIGNALED(status) {
        ExitKind::Signal(libc::WTERMSIG(status))
    } else {
        ExitKind::Code(libc::WEXITSTATUS(status))
    };
    Some((pid, kind))
}

/// Sends a signal; a vanished process is not an error.
pub fn kill(pid: libc::pid_t, sig: libc::c_int) {
    if pid > 0 {
        // SAFETY: kill(2) touches no memory; pid is positive so exactly one
        // process is targeted.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

pub fn getpid() -> libc::pid_t {
    std::process::id() as libc::pid_t
}

/// The effective user id.
pub fn geteuid() -> u32 {
    // SAFETY: geteuid(2) takes no arguments and cannot fail.
    unsafe { libc::geteuid() }
}

/// Replaces this process image with the current executable (same pid),
/// keeping fds that are not close-on-exec. Returns only on failure.
pub fn exec_self(argv: &[Vec<u8>], env: &[(Vec<u8>, Vec<u8>)]) -> std::io::Error {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return e,
    };
    let mut cmd = std::process::Command::new(exe);
    if let Some(arg0) = argv.first() {
        cmd.arg0(OsStr::from_bytes(arg0));
    }
    cmd.args(argv.iter().skip(1).map(|a| OsStr::from_bytes(a)));
    cmd.env_clear();
    cmd.envs(
        env.iter()
            .map(|(k, v)| (OsStr::from_bytes(k), OsStr::from_bytes(v))),
    );
    cmd.exec()
}

/// write(2) of `buf` on a raw descriptor this process holds open.
pub fn write_fd(fd: std::os::fd::RawFd, buf: &[u8]) -> std::io::Result<usize> {
    // SAFETY: `buf` is a valid slice for its length; a stale fd only makes
    // write fail with EBADF.
    let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Clears close-on-exec so `fd` survives an exec.
pub fn keep_across_exec(fd: std::os::fd::RawFd) {
    // SAFETY: fcntl on an fd we own, integer arguments only.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
        }
    }
}

/// Waits up to `timeout_ms` for `fd` to become readable.
pub fn wait_readable(fd: std::os::fd::RawFd, timeout_ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd on the stack, count 1.
    let n = unsafe { libc::poll(&mut p, 1, timeout_ms) };
    n > 0
}

/// Waits up to `timeout_ms` for any of `fds` to become readable (or hung
/// up); returns which ones are.
pub fn wait_readable_any(fds: &[std::os::fd::RawFd], timeout_ms: i32) -> Vec<bool> {
    let mut polls: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: `polls` is a valid array of `polls.len()` pollfd structs.
    let n = unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, timeout_ms) };
    if n <= 0 {
        return vec![false; fds.len()];
    }
    polls.iter().map(|p| p.revents != 0).collect()
}

/// Blocks every catchable signal in the calling thread and returns the
/// previous mask. Forking with signals blocked keeps a signal sent to a
/// new child pending until the child has installed its own handlers.
pub fn block_all_signals() -> libc::sigset_t {
    // SAFETY: both sets are plain C structs initialised by sigfillset /
    // written by pthread_sigmask before being read.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
        old
    }
}

/// Restores a mask saved by [`block_all_signals`].
pub fn restore_signals(old: &libc::sigset_t) {
    // SAFETY: `old` is a mask obtained from pthread_sigmask.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, old, std::ptr::null_mut());
    }
}

/// In a forked child with signals blocked: puts `signals` back to their
/// default action, so one that arrived since the fork (pending) acts on
/// the child once unblocked instead of being caught by the parent's
/// handlers (which would swallow it).
pub fn default_signal_actions(signals: impl IntoIterator<Item = libc::c_int>) {
    for sig in signals {
        // SAFETY: SIG_DFL is a valid disposition for any catchable signal.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
}

/// Unblocks every signal (a forked child, once its handlers are in place).
pub fn unblock_all_signals() {
    // SAFETY: an empty set, initialised by sigemptyset.
    unsafe {
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::pthread_sigmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
    }
}

/// `_exit(2)`: ends the process without running destructors or atexit
/// handlers (a forked copy must not flush or clean up its parent's state).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and has no preconditions.
    unsafe { libc::_exit(code) }
}

/// CLOCK_MONOTONIC in nanoseconds: the clock `Instant` reads, comparable
/// between processes of one machine.
pub fn monotonic_nanos() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// The soft limit on open descriptors (`RLIMIT_NOFILE`); `None` when it
/// cannot be read or is unlimited.
pub fn descriptor_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into `lim`.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    (rc == 0 && lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur)
}

/// Ignores SIGPIPE again (as the Rust runtime sets it up at start): a
/// failed `Command::exec` has already reset it to the default, which would
/// let a write to a closed pipe or socket kill the process.
pub fn ignore_sigpipe() {
    // SAFETY: setting a signal's disposition to SIG_IGN installs no code.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}
