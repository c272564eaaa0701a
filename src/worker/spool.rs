//! `post-buffering = N`: the whole request body is read before the app
//! runs, kept in memory up to N bytes and in an unnamed temporary file
//! above that, so a slow client costs the worker nothing once the app is
//! called and `wsgi.input` can seek.

use std::fs::File;
use std::io::{self, Cursor, Read, Seek, SeekFrom, Write};

/// Size of one read from the connection while buffering.
const CHUNK: usize = 64 * 1024;

/// A fully read request body.
#[derive(Debug)]
pub(crate) enum Spool {
    Memory(Cursor<Vec<u8>>),
    File(File),
}

/// An unnamed file in the temporary directory (gone when closed).
fn temp_file() -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = std::env::temp_dir();
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE)
        .open(&dir)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("{e} [post-buffering in {}]", dir.display()),
            )
        })
}

impl Spool {
    /// Reads everything `read` yields until it returns 0, spilling to a
    /// temporary file once more than `limit` bytes arrived.
    pub(crate) fn fill(
        limit: usize,
        mut read: impl FnMut(&mut [u8]) -> io::Result<usize>,
    ) -> io::Result<Spool> {
        let mut mem = Vec::new();
        let mut file: Option<File> = None;
        let mut chunk = vec![0u8; CHUNK];
        loop {
            let n = read(&mut chunk)?;
            if n == 0 {
                break;
            }
            match &mut file {
                Some(f) => f.write_all(&chunk[..n])?,
                None if mem.len() + n > limit => {
                    let mut f = temp_file()?;
                    f.write_all(&mem)?;
                    f.write_all(&chunk[..n])?;
                    mem = Vec::new();
                    file = Some(f);
                }
                None => mem.extend_from_slice(&chunk[..n]),
            }
        }
        Ok(match file {
            Some(mut f) => {
                f.rewind()?;
                Spool::File(f)
            }
            None => Spool::Memory(Cursor::new(mem)),
        })
    }

    #[cfg(test)]
    pub(crate) fn is_file(&self) -> bool {
        matches!(self, Spool::File(_))
    }

    pub(crate) fn seek_to(&mut self, pos: u64) -> io::Result<()> {
        match self {
            Spool::Memory(c) => c.seek(SeekFrom::Start(pos)).map(drop),
            Spool::File(f) => f.seek(SeekFrom::Start(pos)).map(drop),
        }
    }
}

impl Read for Spool {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Spool::Memory(c) => c.read(buf),
            Spool::File(f) => f.read(buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(body: &[u8], limit: usize) -> Spool {
        let mut src = Cursor::new(body.to_vec());
        Spool::fill(limit, |b| src.read(b)).unwrap()
    }

    #[test]
    fn memory_then_file() {
        let body: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        for (limit, on_disk) in [(1 << 20, false), (1000, true), (0, true)] {
            let mut s = from(&body, limit);
            assert_eq!(s.is_file(), on_disk, "limit {limit}");
            let mut all = Vec::new();
            s.read_to_end(&mut all).unwrap();
            assert_eq!(all, body, "limit {limit}");
            s.seek_to(10).unwrap();
            let mut two = [0u8; 2];
            s.read_exact(&mut two).unwrap();
            assert_eq!(two, [10, 11]);
        }
        assert!(!from(b"", 0).is_file());
    }
}
