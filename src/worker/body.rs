//! The connection's read side: a read-ahead buffer ([`Wire`]) and the
//! request body framing on top of it ([`Body`]).
//!
//! Bytes that arrived with the request head are the start of the body (or
//! of the next pipelined request); the body itself is never buffered whole:
//! `read` copies what is buffered, then reads the socket straight into the
//! caller's buffer.

use std::io::{self, Read};

use super::listener::Stream;
use crate::protocol::http::{Chunk, ChunkedDecoder};

/// Size of one socket read while looking for a head.
const READ_CHUNK: usize = 16 * 1024;

/// A stream with read-ahead.
#[derive(Debug)]
pub(crate) struct Wire {
    pub(crate) stream: Stream,
    buf: Vec<u8>,
    start: usize,
    /// The first read looks for the router's descriptor marker
    /// (`protocol::uwsgi::KEEP_HEADER`).
    watch_marker: bool,
    /// The marker came: the peer is ruwsgi's router and the connection
    /// may carry more requests.
    pub(crate) marked: bool,
}

impl Wire {
    pub(crate) fn new(stream: Stream) -> Wire {
        Wire {
            stream,
            buf: Vec::new(),
            start: 0,
            watch_marker: false,
            marked: false,
        }
    }

    /// A new connection on a UNIX uwsgi socket, whose first bytes may
    /// carry ruwsgi's router marker.
    pub(crate) fn watching_marker(stream: Stream) -> Wire {
        let mut wire = Wire::new(stream);
        wire.watch_marker = wire.stream.is_unix();
        wire
    }

    /// Buffered, unconsumed bytes.
    pub(crate) fn buffered(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    pub(crate) fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.buf.len());
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
    }

    /// Gives back the read-ahead's memory when nothing is buffered: a
    /// parked keep-alive connection may wait long, and there may be many.
    pub(crate) fn release_idle_buffer(&mut self) {
        if self.buffered().is_empty() {
            self.buf = Vec::new();
            self.start = 0;
        }
    }

    /// Reads more bytes after the buffered ones; `Ok(0)` at end of stream.
    /// Never buffers more than `cap` bytes in total.
    pub(crate) fn fill(&mut self, cap: usize) -> io::Result<usize> {
        if !self.watch_marker {
            return self.fill_with(cap, Stream::read);
        }
        let mut marked = false;
        let r = self.fill_with(cap, |stream, buf| {
            stream.read_marked(buf).map(|(n, m)| {
                marked = m;
                n
            })
        });
        if r.is_ok() {
            self.watch_marker = false;
            self.marked = marked;
        }
        r
    }

    /// [`Wire::fill`] without waiting: `WouldBlock` when nothing arrived.
    pub(crate) fn fill_now(&mut self, cap: usize) -> io::Result<usize> {
        self.fill_with(cap, Stream::read_now)
    }

    fn fill_with(
        &mut self,
        cap: usize,
        read: impl FnOnce(&mut Stream, &mut [u8]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let room = cap.saturating_sub(self.buf.len()).min(READ_CHUNK);
        if room == 0 {
            return Ok(0);
        }
        let old = self.buf.len();
        self.buf.resize(old + room, 0);
        let r = read(&mut self.stream, &mut self.buf[old..]);
        let n = *r.as_ref().unwrap_or(&0);
        self.buf.truncate(old + n);
        r
    }

    /// Buffered bytes first, then the socket.
    fn read_into(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let buffered = self.buffered();
        if !buffered.is_empty() {
            let n = buffered.len().min(out.len());
            out[..n].copy_from_slice(&buffered[..n]);
            self.consume(n);
            return Ok(n);
        }
        self.stream.read(out)
    }
}

/// The request body's framing and progress.
#[derive(Debug)]
pub(crate) enum Body {
    /// `Content-Length` (uwsgi `CONTENT_LENGTH`), `remaining` bytes to go.
    Length { remaining: u64 },
    /// Chunked; `pending` holds decoded bytes that did not fit the last read.
    Chunked {
        decoder: ChunkedDecoder,
        pending: Vec<u8>,
    },
}

/// A body that ended before its framing said.
pub(crate) fn truncated() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "Client closed connection")
}

impl Body {
    pub(crate) fn length(n: u64) -> Body {
        Body::Length { remaining: n }
    }

    pub(crate) fn chunked() -> Body {
        Body::Chunked {
            decoder: ChunkedDecoder::default(),
            pending: Vec::new(),
        }
    }

    /// Whether every body byte has been read.
    pub(crate) fn is_done(&self) -> bool {
        match self {
            Body::Length { remaining } => *remaining == 0,
            Body::Chunked { decoder, pending } => decoder.is_done() && pending.is_empty(),
        }
    }

    /// Bytes still expected (chunked: unknown, 0).
    pub(crate) fn remaining(&self) -> u64 {
        match self {
            Body::Length { remaining } => *remaining,
            Body::Chunked { .. } => 0,
        }
    }

    /// Reads body bytes into `out`; `Ok(0)` at the end of the body.
    pub(crate) fn read(&mut self, wire: &mut Wire, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        match self {
            Body::Length { remaining } => {
                if *remaining == 0 {
                    return Ok(0);
                }
                let want = usize::try_from(*remaining).map_or(out.len(), |r| r.min(out.len()));
                let n = wire.read_into(&mut out[..want])?;
                if n == 0 {
                    return Err(truncated());
                }
                *remaining -= n as u64;
                Ok(n)
            }
            Body::Chunked { decoder, pending } => loop {
                if !pending.is_empty() {
                    let n = pending.len().min(out.len());
                    out[..n].copy_from_slice(&pending[..n]);
                    pending.drain(..n);
                    return Ok(n);
                }
                if decoder.is_done() {
                    return Ok(0);
                }
                let (used, chunk) = decoder
                    .decode(wire.buffered())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                match chunk {
                    Chunk::Data(d) => {
                        let n = d.len().min(out.len());
                        out[..n].copy_from_slice(&d[..n]);
                        pending.extend_from_slice(&d[n..]);
                        wire.consume(used);
                        return Ok(n);
                    }
                    Chunk::End => {
                        wire.consume(used);
                        return Ok(0);
                    }
                    Chunk::Incomplete => {
                        wire.consume(used);
                        if wire.fill(usize::MAX)? == 0 {
                            return Err(truncated());
                        }
                    }
                }
            },
        }
    }

    /// Reads and drops the rest of the body, up to `limit` bytes; false if
    /// more was left (the connection must then close).
    pub(crate) fn drain(&mut self, wire: &mut Wire, limit: u64) -> bool {
        let mut scratch = [0u8; 8192];
        let mut dropped = 0u64;
        while !self.is_done() {
            if dropped > limit {
                return false;
            }
            match self.read(wire, &mut scratch) {
                Ok(0) => break,
                Ok(n) => dropped += n as u64,
                Err(_) => return false,
            }
        }
        true
    }
}
