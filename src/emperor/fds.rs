//! Descriptor hygiene for a vassal child: everything the emperor holds
//! (including descriptors it inherited without close-on-exec, such as a
//! master's listening sockets) must not reach the vassal.
//!
//! This is an operating-system helper and belongs in `src/sys/process.rs`;
//! it lives here only because that file is shared and was not ours to
//! edit. Move it there as is.

use std::os::fd::RawFd;

/// Highest descriptor tried when neither `close_range` nor
/// `/proc/self/fd` is available.
const FALLBACK_MAX_FD: RawFd = 4096;
/// `close_range(2)` flag: mark close-on-exec instead of closing.
const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;

/// `close_range(first, last, CLOSE_RANGE_CLOEXEC)` (Linux 5.11+).
fn cloexec_range(first: RawFd, last: libc::c_uint) -> bool {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets descriptor
    // flags; it takes integers and touches no memory of ours.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            last,
            CLOSE_RANGE_CLOEXEC,
        ) == 0
    }
}

fn cloexec_one(fd: RawFd) {
    // SAFETY: fcntl(F_SETFD) only changes the descriptor's flags and
    // touches no memory; a number that is not open (such as the directory
    // listing's own, already closed) just fails with EBADF.
    unsafe {
        libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
    }
}

/// Marks every descriptor from 3 up close-on-exec, except `keep`, so that
/// an `exec` leaves exactly 0, 1, 2 and `keep`. Call it in a forked child
/// right before `exec` (nothing is closed before the exec itself).
pub fn cloexec_all_except(keep: &[RawFd]) {
    let mut kept: Vec<RawFd> = keep.iter().copied().filter(|&k| k >= 3).collect();
    kept.sort_unstable();
    kept.dedup();
    let mut first = 3;
    let mut ok = true;
    for &k in &kept {
        if k > first {
            ok &= cloexec_range(first, (k - 1) as libc::c_uint);
        }
        first = k + 1;
    }
    if ok && cloexec_range(first, libc::c_uint::MAX) {
        return;
    }
    let listed: Option<Vec<RawFd>> = std::fs::read_dir("/proc/self/fd").ok().map(|rd| {
        rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect()
    });
    for fd in listed.unwrap_or_else(|| (3..FALLBACK_MAX_FD).collect()) {
        if fd >= 3 && !kept.contains(&fd) {
            cloexec_one(fd);
        }
    }
}
