//! Descriptor hygiene for a vassal child: everything the emperor holds
//! (including descriptors it inherited without close-on-exec, such as a
//! master's listening sockets) must not reach the vassal.
//!
//! This is an operating-system helper and belongs in `src/sys/process.rs`;
//! it lives here only because that file is shared and was not ours to
//! edit. Move it there as is.

use std::os::fd::RawFd;

/// Highest descriptor tried when `/proc/self/fd` cannot be listed.
const FALLBACK_MAX_FD: RawFd = 4096;

/// Marks every descriptor from 3 up close-on-exec, except `keep`, so that
/// an `exec` leaves exactly 0, 1, 2 and `keep`. Call it in a forked child
/// right before `exec` (nothing is closed before the exec itself).
pub fn cloexec_all_except(keep: &[RawFd]) {
    let listed: Option<Vec<RawFd>> = std::fs::read_dir("/proc/self/fd").ok().map(|rd| {
        rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect()
    });
    let fds = listed.unwrap_or_else(|| (3..FALLBACK_MAX_FD).collect());
    for fd in fds {
        if fd < 3 || keep.contains(&fd) {
            continue;
        }
        // SAFETY: fcntl(F_SETFD) only changes the descriptor's flags and
        // touches no memory; a number that is not open (such as the
        // directory listing's own, already closed) just fails with EBADF.
        unsafe {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
    }
}
