//! The master's signals: flags set by the handlers plus a self-pipe that
//! wakes the loop (no threads, so forking stays safe).

use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use signal_hook::SigId;

/// What a signal asks the master to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// SIGHUP: graceful reload.
    Reload,
    /// SIGINT, SIGQUIT: shutdown.
    Shutdown,
    /// SIGTERM: graceful shutdown, or a reload with `die-on-term = false`.
    Term,
    /// The emperor's graceful stop (never a signal of its own).
    GracefulStop,
}

pub struct Signals {
    flags: Vec<(Event, Arc<AtomicBool>)>,
    ids: Vec<SigId>,
    wake: UnixStream,
}

impl Signals {
    pub fn install() -> std::io::Result<Signals> {
        let (wake, write) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        let mut flags = Vec::new();
        let mut ids = Vec::new();
        for (sig, event) in [
            (SIGHUP, Event::Reload),
            (SIGINT, Event::Shutdown),
            (SIGQUIT, Event::Shutdown),
            (SIGTERM, Event::Term),
        ] {
            let flag = Arc::new(AtomicBool::new(false));
            ids.push(signal_hook::flag::register(sig, flag.clone())?);
            ids.push(signal_hook::low_level::pipe::register(
                sig,
                write.try_clone()?,
            )?);
            flags.push((event, flag));
        }
        // A dead child wakes the loop at once, so it is reaped (and
        // respawned, or a shutdown completes) without waiting for the tick.
        ids.push(signal_hook::low_level::pipe::register(
            signal_hook::consts::SIGCHLD,
            write.try_clone()?,
        )?);
        Ok(Signals { flags, ids, wake })
    }

    /// Waits up to `timeout` for a signal or for `extra` to become
    /// readable; the most drastic pending signal wins.
    pub fn wait(&self, timeout: Duration, extra: Option<RawFd>) -> (Option<Event>, bool) {
        let mut extra_ready = false;
        if !self.pending() {
            let mut fds = vec![self.wake.as_raw_fd()];
            fds.extend(extra);
            let ready = crate::sys::process::wait_readable_any(&fds, timeout.as_millis() as i32);
            extra_ready = ready.get(1).copied().unwrap_or(false);
        }
        let mut buf = [0u8; 64];
        while let Ok(n) = (&self.wake).read_some(&mut buf) {
            if n == 0 {
                break;
            }
        }
        for wanted in [Event::Shutdown, Event::Term, Event::Reload] {
            for (event, flag) in &self.flags {
                if *event == wanted && flag.swap(false, Ordering::SeqCst) {
                    return (Some(wanted), extra_ready);
                }
            }
        }
        (None, extra_ready)
    }

    fn pending(&self) -> bool {
        self.flags.iter().any(|(_, f)| f.load(Ordering::SeqCst))
    }

    /// In a forked worker: drop the master's handlers.
    pub fn forget(&self) {
        for id in &self.ids {
            signal_hook::low_level::unregister(*id);
        }
    }
}

trait ReadSome {
    fn read_some(self, buf: &mut [u8]) -> std::io::Result<usize>;
}

impl ReadSome for &UnixStream {
    fn read_some(mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        std::io::Read::read(&mut self, buf)
    }
}
