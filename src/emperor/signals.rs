//! The emperor's signals (spec §1.12) as events of its loop: one flag per
//! signal set by the handler plus a self-pipe registered in the poll, so
//! nothing runs in the handler and no thread exists (forking stays safe).
//! SIGCHLD is included so dead vassals are reaped at once. Signals with
//! no row here keep their default action, as in uWSGI.

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGURG, SIGUSR1, SIGWINCH};
use signal_hook::SigId;

/// What a signal asks the emperor to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT, SIGTERM, SIGQUIT: stop every vassal and exit.
    Ragnarok,
    /// SIGHUP: reload every vassal.
    ReloadAll,
    /// SIGUSR1: one status line per vassal.
    Status,
    /// SIGURG: forget the blacklist.
    ClearBlacklist,
    /// SIGWINCH: scan now.
    Wake,
    /// SIGCHLD: reap.
    Child,
}

/// In the order they are handled when several are pending.
const TABLE: &[(libc::c_int, Signal)] = &[
    (SIGINT, Signal::Ragnarok),
    (SIGTERM, Signal::Ragnarok),
    (SIGQUIT, Signal::Ragnarok),
    (SIGCHLD, Signal::Child),
    (SIGHUP, Signal::ReloadAll),
    (SIGUSR1, Signal::Status),
    (SIGURG, Signal::ClearBlacklist),
    (SIGWINCH, Signal::Wake),
];

/// The signals the emperor catches.
pub fn handled() -> impl Iterator<Item = libc::c_int> {
    TABLE.iter().map(|&(sig, _)| sig)
}

/// Installed handlers; dropping them restores the previous behaviour.
#[derive(Debug)]
pub struct Signals {
    flags: Vec<(Signal, Arc<AtomicBool>)>,
    ids: Vec<SigId>,
    /// Readable when a signal arrived (non-blocking).
    pub wake: UnixStream,
}

impl Signals {
    pub fn install() -> std::io::Result<Signals> {
        let (wake, write) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        let mut flags = Vec::new();
        let mut ids = Vec::new();
        for &(sig, what) in TABLE {
            let flag = Arc::new(AtomicBool::new(false));
            ids.push(signal_hook::flag::register(sig, flag.clone())?);
            // Each registration owns (and closes) its own copy of the end.
            ids.push(signal_hook::low_level::pipe::register(
                sig,
                write.try_clone()?,
            )?);
            flags.push((what, flag));
        }
        Ok(Signals { flags, ids, wake })
    }

    /// The signals received since the last call, one entry per signal
    /// number, in [`TABLE`] order.
    pub fn take(&mut self) -> Vec<Signal> {
        let mut buf = [0u8; 64];
        while matches!((&self.wake).read(&mut buf), Ok(n) if n > 0) {}
        self.flags
            .iter()
            .filter(|(_, f)| f.swap(false, Ordering::SeqCst))
            .map(|(s, _)| *s)
            .collect()
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        for id in &self.ids {
            signal_hook::low_level::unregister(*id);
        }
    }
}
