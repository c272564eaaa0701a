//! A thin safe wrapper over Linux inotify (`inotify_init1`,
//! `inotify_add_watch`, `inotify_rm_watch`, `read`): the emperor watches
//! its vassal directories with it so a change is acted on in milliseconds.
//!
//! The descriptor is non-blocking and close-on-exec; events are decoded
//! from the kernel's byte layout without `unsafe` (the record is read field
//! by field). What to watch and what an event means belong to the caller.

use std::ffi::CString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Event bits (`<sys/inotify.h>`), named once.
pub mod mask {
    pub const MODIFY: u32 = libc::IN_MODIFY;
    pub const ATTRIB: u32 = libc::IN_ATTRIB;
    pub const CLOSE_WRITE: u32 = libc::IN_CLOSE_WRITE;
    pub const MOVED_FROM: u32 = libc::IN_MOVED_FROM;
    pub const MOVED_TO: u32 = libc::IN_MOVED_TO;
    pub const CREATE: u32 = libc::IN_CREATE;
    pub const DELETE: u32 = libc::IN_DELETE;
    pub const DELETE_SELF: u32 = libc::IN_DELETE_SELF;
    pub const MOVE_SELF: u32 = libc::IN_MOVE_SELF;
    /// The event queue overflowed: events were lost.
    pub const Q_OVERFLOW: u32 = libc::IN_Q_OVERFLOW;
    /// The watch is gone (removed, or its object deleted).
    pub const IGNORED: u32 = libc::IN_IGNORED;
    /// The subject of the event is a directory.
    pub const ISDIR: u32 = libc::IN_ISDIR;
    /// Only watch the path if it is a directory.
    pub const ONLYDIR: u32 = libc::IN_ONLYDIR;
}

/// Size of the fixed part of `struct inotify_event` (wd, mask, cookie, len).
const EVENT_HEADER: usize = 16;

/// One watch descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Watch(i32);

/// One decoded event. `wd` is -1 for a queue overflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub watch: Watch,
    pub mask: u32,
    /// The name inside the watched directory (empty for the directory
    /// itself), without the kernel's NUL padding.
    pub name: Vec<u8>,
}

/// An inotify instance.
#[derive(Debug)]
pub struct Inotify {
    file: File,
}

impl Inotify {
    /// A non-blocking, close-on-exec instance.
    pub fn new() -> std::io::Result<Inotify> {
        // SAFETY: inotify_init1 takes integer flags and returns a new
        // descriptor or -1; it touches no memory of ours.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by inotify_init1, is valid and is
        // owned by nobody else.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Inotify {
            file: File::from(owned),
        })
    }

    /// Watches `path` for the events in `bits`.
    pub fn add_watch(&self, path: &Path, bits: u32) -> std::io::Result<Watch> {
        let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "path contains a NUL byte")
        })?;
        // SAFETY: our descriptor is valid for the life of `self`; `c` is a
        // NUL-terminated string that outlives the call.
        let wd = unsafe { libc::inotify_add_watch(self.file.as_raw_fd(), c.as_ptr(), bits) };
        if wd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Watch(wd))
    }

    /// Stops a watch (the kernel then queues an `IGNORED` event for it).
    pub fn rm_watch(&self, watch: Watch) -> std::io::Result<()> {
        // SAFETY: integer arguments only; an unknown watch gives EINVAL.
        if unsafe { libc::inotify_rm_watch(self.file.as_raw_fd(), watch.0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Reads the events queued now into `out` (appending); `Ok(0)` when
    /// none are pending. `buf` must hold at least one event with a name
    /// (4096 bytes is plenty).
    pub fn read_into(&self, buf: &mut [u8], out: &mut Vec<Event>) -> std::io::Result<usize> {
        let n = match (&self.file).read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(0),
            Err(e) => return Err(e),
        };
        let before = out.len();
        decode(&buf[..n], out);
        Ok(out.len() - before)
    }
}

impl AsFd for Inotify {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl AsRawFd for Inotify {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_ne_bytes(word)
}

/// Decodes whole `struct inotify_event` records; a truncated tail (which
/// the kernel never produces) is ignored.
fn decode(mut bytes: &[u8], out: &mut Vec<Event>) {
    while bytes.len() >= EVENT_HEADER {
        let wd = u32_at(bytes, 0) as i32;
        let mask = u32_at(bytes, 4);
        let len = u32_at(bytes, 12) as usize;
        let Some(record) = bytes.get(..EVENT_HEADER + len) else {
            break;
        };
        let raw_name = &record[EVENT_HEADER..];
        let end = raw_name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(raw_name.len());
        out.push(Event {
            watch: Watch(wd),
            mask,
            name: raw_name[..end].to_vec(),
        });
        bytes = &bytes[EVENT_HEADER + len..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(wd: i32, mask: u32, name: &[u8], padded: usize) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&wd.to_ne_bytes());
        v.extend_from_slice(&mask.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v.extend_from_slice(&(padded as u32).to_ne_bytes());
        let mut n = name.to_vec();
        n.resize(padded, 0);
        v.extend_from_slice(&n);
        v
    }

    #[test]
    fn decodes_records() {
        let mut bytes = record(1, mask::CREATE, b"a.ini", 16);
        bytes.extend(record(-1, mask::Q_OVERFLOW, b"", 0));
        bytes.extend(record(2, mask::DELETE_SELF, b"", 0));
        bytes.extend_from_slice(&[1, 2, 3]); // truncated tail
        let mut out = Vec::new();
        decode(&bytes, &mut out);
        let want = vec![
            Event {
                watch: Watch(1),
                mask: mask::CREATE,
                name: b"a.ini".to_vec(),
            },
            Event {
                watch: Watch(-1),
                mask: mask::Q_OVERFLOW,
                name: vec![],
            },
            Event {
                watch: Watch(2),
                mask: mask::DELETE_SELF,
                name: vec![],
            },
        ];
        assert_eq!(out, want);
        let mut none = Vec::new();
        decode(&record(3, mask::MODIFY, b"x", 64)[..20], &mut none);
        assert!(none.is_empty(), "a record cut short is not decoded");
    }

    #[test]
    fn watches_a_directory() {
        let dir = std::env::temp_dir().join(format!("ruwsgi-inotify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ino = Inotify::new().unwrap();
        let w = ino.add_watch(&dir, mask::CREATE | mask::DELETE).unwrap();
        let mut buf = [0u8; 4096];
        let mut out = Vec::new();
        assert_eq!(
            ino.read_into(&mut buf, &mut out).unwrap(),
            0,
            "nothing pending yet"
        );
        std::fs::write(dir.join("a.ini"), b"x").unwrap();
        assert!(ino.read_into(&mut buf, &mut out).unwrap() >= 1);
        assert_eq!(out[0].watch, w);
        assert_eq!(out[0].name, b"a.ini");
        assert!(out[0].mask & mask::CREATE != 0);
        ino.rm_watch(w).unwrap();
        assert!(ino.add_watch(&dir.join("missing"), mask::CREATE).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
