//! Signal handlers whose whole body is written here, so the
//! async-signal-safety of what runs inside a handler can be checked in one
//! place. Callers get safe functions.

use std::io;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

pub use signal_hook::SigId;

/// On `sig`: raise `state` to at least `level`; when `exit_if_busy` is set
/// and `busy` is non-zero, `_exit` with that code at once instead (a
/// running request cannot be interrupted any other way).
pub fn raise_level_on(
    sig: libc::c_int,
    state: Arc<AtomicU8>,
    level: u8,
    busy: Arc<AtomicUsize>,
    exit_if_busy: Option<i32>,
) -> io::Result<SigId> {
    let action = move || {
        if let Some(code) = exit_if_busy {
            if busy.load(Ordering::SeqCst) > 0 {
                signal_hook::low_level::exit(code);
            }
        }
        state.fetch_max(level, Ordering::SeqCst);
    };
    // SAFETY: the action only does atomic loads, an atomic fetch_max and
    // `_exit` (signal_hook::low_level::exit), all async-signal-safe; it
    // allocates nothing and takes no lock. The Arcs are only dropped when
    // the handler is unregistered, outside signal context.
    unsafe { signal_hook::low_level::register(sig, action) }
}

/// Removes a handler installed by [`raise_level_on`].
pub fn unregister(id: SigId) {
    signal_hook::low_level::unregister(id);
}
