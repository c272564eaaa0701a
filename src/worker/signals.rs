//! The worker's signals and its stop decision, shared by its threads.
//!
//! SIGHUP: finish the current request, then stop (`Graceful`). SIGINT,
//! SIGQUIT, SIGTERM: stop now (`Shutdown`): an idle worker returns from
//! its loop, a busy one `_exit`s at once with [`SHUTDOWN_EXIT`] as uWSGI's
//! worker does (running Python code cannot be interrupted). Each handler
//! sets a flag, then writes a byte to a self-pipe whose read end every
//! thread polls, so an idle thread wakes at once. A recycle (max-requests,
//! reload-on-rss) is the same decision taken from inside.

use std::io;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::sys::signals::SigId;
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};

use super::SHUTDOWN_EXIT;

/// Why the worker stops; ordered by urgency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub(crate) enum Stop {
    Run = 0,
    Recycle = 1,
    Graceful = 2,
    Shutdown = 3,
}

impl Stop {
    fn from_u8(v: u8) -> Stop {
        match v {
            0 => Stop::Run,
            1 => Stop::Recycle,
            2 => Stop::Graceful,
            _ => Stop::Shutdown,
        }
    }
}

/// Installed handlers plus the shared stop state.
#[derive(Debug)]
pub(crate) struct Control {
    state: Arc<AtomicU8>,
    /// Threads inside a request right now.
    busy: Arc<AtomicUsize>,
    /// Read end of the wake pipe (each thread registers it in its poll).
    pub(crate) wake: UnixStream,
    /// Write end, to wake siblings after an internal decision.
    waker: UnixStream,
    ids: Vec<SigId>,
}

impl Control {
    pub(crate) fn install() -> io::Result<Control> {
        let (wake, waker) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        waker.set_nonblocking(true)?;
        let state = Arc::new(AtomicU8::new(Stop::Run as u8));
        let busy = Arc::new(AtomicUsize::new(0));
        let mut ids = Vec::new();
        for (sig, stop) in [
            (SIGHUP, Stop::Graceful),
            (SIGINT, Stop::Shutdown),
            (SIGQUIT, Stop::Shutdown),
            (SIGTERM, Stop::Shutdown),
        ] {
            let id = crate::sys::signals::raise_level_on(
                sig,
                Arc::clone(&state),
                stop as u8,
                Arc::clone(&busy),
                (stop == Stop::Shutdown).then_some(SHUTDOWN_EXIT),
            )?;
            ids.push(id);
            ids.push(signal_hook::low_level::pipe::register(
                sig,
                waker.try_clone()?,
            )?);
        }
        // The master forks us with signals blocked: a stop request sent
        // before this point is pending and is delivered to our handlers now.
        crate::sys::process::unblock_all_signals();
        Ok(Control {
            state,
            busy,
            wake,
            waker,
            ids,
        })
    }

    pub(crate) fn stop(&self) -> Stop {
        Stop::from_u8(self.state.load(Ordering::SeqCst))
    }

    /// Marks a thread as inside (`true`) or outside a request.
    pub(crate) fn set_busy(&self, busy: bool) {
        if busy {
            self.busy.fetch_add(1, Ordering::SeqCst);
        } else {
            self.busy.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Raises the stop decision (never lowers it) and wakes the threads.
    pub(crate) fn request(&self, stop: Stop) {
        self.state.fetch_max(stop as u8, Ordering::SeqCst);
        let _ = io::Write::write(&mut &self.waker, &[0]);
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            crate::sys::signals::unregister(id);
        }
    }
}
