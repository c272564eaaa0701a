//! Memory shared between the master and its workers: a fixed array of
//! atomics in an anonymous shared mapping made before forking.

use std::sync::atomic::AtomicU64;

/// Maps `n` zeroed `AtomicU64` shared with every child forked afterwards.
/// The mapping lives as long as the process.
pub fn shared_u64s(n: usize) -> std::io::Result<&'static [AtomicU64]> {
    let len = (n.max(1)) * std::mem::size_of::<AtomicU64>();
    // SAFETY: an anonymous mapping with no address hint; the result is
    // checked for MAP_FAILED before use.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the mapping is page-aligned, zero-filled (a valid AtomicU64
    // bit pattern), `len` bytes long, never unmapped, and only accessed
    // through atomics, so a shared 'static slice is sound.
    Ok(unsafe { std::slice::from_raw_parts(ptr as *const AtomicU64, n.max(1)) })
}
