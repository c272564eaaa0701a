//! Request bodies on their way to a backend.
//!
//! A `Content-Length` body streams through (the connection moves bytes as
//! the backend takes them). A chunked body cannot: the uwsgi protocol needs
//! `CONTENT_LENGTH` before the body, so the router de-chunks it into a
//! [`Spool`] first — memory up to [`SPOOL_IN_MEMORY`], then an unlinked
//! temporary file, never the whole of a large body in memory — and sends
//! it with its length once the last chunk is in.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

use crate::protocol::chunked::{Chunk, ChunkedDecoder, ChunkedError};

/// Body bytes kept in memory before spilling to a temporary file.
pub const SPOOL_IN_MEMORY: usize = 1024 * 1024;

/// Largest de-chunked body accepted (413 beyond).
pub const MAX_SPOOLED_BODY: u64 = 1024 * 1024 * 1024;

/// Why spooling stopped.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("malformed chunked body: {0}")]
    Chunked(#[from] ChunkedError),
    #[error("chunked body larger than {MAX_SPOOLED_BODY} bytes")]
    TooLarge,
    #[error("spooling the body: {0}")]
    Io(#[from] io::Error),
}

impl SpoolError {
    /// The status the client gets.
    pub fn status(&self) -> u16 {
        match self {
            SpoolError::Chunked(_) => 400,
            SpoolError::TooLarge => 413,
            SpoolError::Io(_) => 500,
        }
    }
}

/// A chunked body being decoded.
#[derive(Debug, Default)]
pub struct Spool {
    decoder: ChunkedDecoder,
    mem: Vec<u8>,
    file: Option<File>,
    len: u64,
}

/// Outcome of [`Spool::feed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fed {
    /// Input bytes consumed; more are needed.
    More(usize),
    /// Input bytes consumed; the body is complete (the rest of the input
    /// is the next request).
    Done(usize),
}

impl Spool {
    /// Decodes as much of `input` as possible.
    pub fn feed(&mut self, input: &[u8]) -> Result<Fed, SpoolError> {
        let mut pos = 0;
        loop {
            let (consumed, chunk) = self.decoder.decode(&input[pos..])?;
            pos += consumed;
            match chunk {
                Chunk::Data(data) => self.store(data)?,
                Chunk::Incomplete => return Ok(Fed::More(pos)),
                Chunk::End => return Ok(Fed::Done(pos)),
            }
        }
    }

    fn store(&mut self, data: &[u8]) -> Result<(), SpoolError> {
        self.len += data.len() as u64;
        if self.len > MAX_SPOOLED_BODY {
            return Err(SpoolError::TooLarge);
        }
        if self.file.is_none() && self.mem.len() + data.len() > SPOOL_IN_MEMORY {
            let mut file = temp_file()?;
            file.write_all(&self.mem)?;
            self.mem = Vec::new();
            self.file = Some(file);
        }
        match &mut self.file {
            Some(file) => file.write_all(data)?,
            None => self.mem.extend_from_slice(data),
        }
        Ok(())
    }

    /// The decoded length so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// The complete body, to be read back.
    pub fn finish(self) -> io::Result<SpoolReader> {
        let mut file = self.file;
        if let Some(f) = &mut file {
            f.seek(SeekFrom::Start(0))?;
        }
        Ok(SpoolReader {
            mem: self.mem,
            mem_pos: 0,
            file,
            remaining: self.len,
        })
    }
}

/// A spooled body, read back in pieces.
#[derive(Debug)]
pub struct SpoolReader {
    mem: Vec<u8>,
    mem_pos: usize,
    file: Option<File>,
    remaining: u64,
}

impl SpoolReader {
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Up to `max` next bytes (empty at the end).
    pub fn next_piece(&mut self, max: usize) -> io::Result<Vec<u8>> {
        let want = max.min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let piece = match &mut self.file {
            Some(file) => {
                let mut buf = vec![0; want];
                let n = file.read(&mut buf)?;
                if n == 0 && want > 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "spool file truncated",
                    ));
                }
                buf.truncate(n);
                buf
            }
            None => {
                let end = (self.mem_pos + want).min(self.mem.len());
                let piece = self.mem[self.mem_pos..end].to_vec();
                self.mem_pos = end;
                piece
            }
        };
        self.remaining -= piece.len() as u64;
        Ok(piece)
    }
}

/// A temporary file nobody else can open: created exclusively, unlinked
/// at once.
fn temp_file() -> io::Result<File> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir();
    for _ in 0..16 {
        let name = format!(
            "ruwsgi-body.{}.{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = dir.join(name);
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(file) => {
                let _ = std::fs::remove_file(&path);
                return Ok(file);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free temporary file name",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(mut r: SpoolReader) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let piece = r.next_piece(1000).unwrap();
            if piece.is_empty() {
                return out;
            }
            out.extend_from_slice(&piece);
        }
    }

    #[test]
    fn small_body_in_memory() {
        let mut s = Spool::default();
        assert_eq!(s.feed(b"5\r\nhel").unwrap(), Fed::More(6));
        assert_eq!(s.feed(b"lo\r\n0\r\n\r\nGET").unwrap(), Fed::Done(9));
        assert_eq!(s.len(), 5);
        assert_eq!(read_all(s.finish().unwrap()), b"hello");
    }

    #[test]
    fn large_body_spills_to_a_file() {
        let mut s = Spool::default();
        let chunk = vec![b'x'; 64 * 1024];
        let mut wire = Vec::new();
        for _ in 0..20 {
            wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            wire.extend_from_slice(&chunk);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\n\r\n");
        assert_eq!(s.feed(&wire).unwrap(), Fed::Done(wire.len()));
        assert!(s.file.is_some());
        let body = read_all(s.finish().unwrap());
        assert_eq!(body.len(), 20 * 64 * 1024);
        assert!(body.iter().all(|&b| b == b'x'));
        assert_eq!(Spool::default().feed(b"zz\r\n").unwrap_err().status(), 400);
    }
}
