//! Non-blocking byte plumbing for the gateway: a stream that is TCP or
//! UNIX ([`Stream`]), a queue of bytes waiting to be written ([`Outbox`]),
//! one bounded read ([`read_some`]) and error text as uWSGI prints it.
//!
//! Every call does at most one system call and reports `WouldBlock` as a
//! value: the connection code loops until nothing moves (mio readiness is
//! edge-triggered and only a hint).

use std::io::{self, Read, Write};
use std::net::Shutdown;

use mio::event::Source;
use mio::{Interest, Registry, Token};

/// A connected socket of either family.
#[derive(Debug)]
pub enum Stream {
    Tcp(mio::net::TcpStream),
    Unix(mio::net::UnixStream),
}

impl Stream {
    pub fn shutdown_write(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Write),
            Stream::Unix(s) => s.shutdown(Shutdown::Write),
        };
    }

    /// A pending connect's outcome: `Ok(true)` connected, `Ok(false)` still
    /// in progress, `Err` failed.
    pub fn connect_result(&self) -> io::Result<bool> {
        match self {
            Stream::Tcp(s) => {
                if let Some(e) = s.take_error()? {
                    return Err(e);
                }
                match s.peer_addr() {
                    Ok(_) => Ok(true),
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
                    Err(e) => Err(e),
                }
            }
            // A UNIX connect completes or fails inside connect() itself
            // (see `Addr::connect`): no need to ask the socket.
            Stream::Unix(_) => Ok(true),
        }
    }

    /// The descriptor of a UNIX stream (`None` for TCP).
    pub fn unix_fd(&self) -> Option<std::os::fd::RawFd> {
        match self {
            Stream::Unix(s) => Some(std::os::fd::AsRawFd::as_raw_fd(s)),
            Stream::Tcp(_) => None,
        }
    }

    pub fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(self, token, Interest::READABLE | Interest::WRITABLE)
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Source for Stream {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.register(r, t, i),
            Stream::Unix(s) => s.register(r, t, i),
        }
    }

    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.reregister(r, t, i),
            Stream::Unix(s) => s.reregister(r, t, i),
        }
    }

    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.deregister(r),
            Stream::Unix(s) => s.deregister(r),
        }
    }
}

/// What one read did.
#[derive(Debug)]
pub enum ReadOutcome {
    Data,
    WouldBlock,
    /// The peer closed its side (or reset the connection).
    Closed,
}

/// Bytes one read asks for at most.
const READ_CHUNK: usize = 64 * 1024;

/// Appends at most `max` bytes (and at most [`READ_CHUNK`]) read from
/// `stream` to `buf` (one call). The read goes through a stack buffer, so
/// `buf` never grows by more than what arrived.
pub fn read_some(stream: &mut Stream, buf: &mut Vec<u8>, max: usize) -> ReadOutcome {
    read_some_detailed(stream, buf, max).outcome
}

/// A read's outcome with the details some callers act on.
#[derive(Debug)]
pub struct ReadDetail {
    pub outcome: ReadOutcome,
    /// `Closed` was a reset (`ECONNRESET`), not an orderly end: on a UNIX
    /// socket, the peer closed without reading what it had been sent.
    pub reset: bool,
    /// Nothing more was waiting: the read got less than it asked for, or
    /// `WouldBlock`. New bytes then come with a readiness event.
    pub drained: bool,
}

/// [`read_some`] with the [`ReadDetail`].
pub fn read_some_detailed(stream: &mut Stream, buf: &mut Vec<u8>, max: usize) -> ReadDetail {
    let detail = |outcome, reset, drained| ReadDetail {
        outcome,
        reset,
        drained,
    };
    if max == 0 {
        return detail(ReadOutcome::WouldBlock, false, false);
    }
    thread_local! {
        // Zeroed once: a fresh 64 KiB array per read costs a memset each.
        static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; READ_CHUNK]);
    }
    let want = max.min(READ_CHUNK);
    let result = SCRATCH.with(|scratch| {
        let mut chunk = scratch.borrow_mut();
        loop {
            match stream.read(&mut chunk[..want]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    break Ok(n);
                }
                Err(e) => break Err(e),
            }
        }
    });
    match result {
        Ok(0) => detail(ReadOutcome::Closed, false, false),
        Ok(n) => detail(ReadOutcome::Data, false, n < want),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            detail(ReadOutcome::WouldBlock, false, true)
        }
        Err(e) => detail(
            ReadOutcome::Closed,
            e.kind() == io::ErrorKind::ConnectionReset,
            false,
        ),
    }
}

/// What flushing an [`Outbox`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// Some bytes went out (maybe not all).
    Progress,
    /// Nothing could be written now (or nothing was pending).
    Idle,
    /// The peer is gone.
    Broken,
}

/// Bytes queued for one peer.
#[derive(Debug, Default)]
pub struct Outbox {
    buf: Vec<u8>,
    pos: usize,
}

impl Outbox {
    pub fn push(&mut self, bytes: &[u8]) {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes not yet written.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.pending() == 0
    }

    /// Writes what it can (one call).
    pub fn flush_to(&mut self, stream: &mut Stream) -> Flush {
        self.flush_via(|bytes| stream.write(bytes))
    }

    /// Like [`Outbox::flush_to`], with `write` doing the one call.
    pub fn flush_via(&mut self, mut write: impl FnMut(&[u8]) -> io::Result<usize>) -> Flush {
        if self.is_empty() {
            return Flush::Idle;
        }
        let result = loop {
            match write(&self.buf[self.pos..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        match result {
            Ok(0) => Flush::Broken,
            Ok(n) => {
                self.pos += n;
                if self.pos == self.buf.len() {
                    self.buf.clear();
                    self.pos = 0;
                } else if self.pos > 64 * 1024 && self.pos * 2 > self.buf.len() {
                    self.buf.drain(..self.pos);
                    self.pos = 0;
                }
                Flush::Progress
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Flush::Idle,
            Err(_) => Flush::Broken,
        }
    }
}

/// An I/O error as uWSGI prints it (`strerror` text, no "os error N").
pub fn strerror(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(cut) => text[..cut].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbox_over_a_socket_pair() {
        let (a, b) = mio::net::UnixStream::pair().unwrap();
        let (mut a, mut b) = (Stream::Unix(a), Stream::Unix(b));
        let mut out = Outbox::default();
        assert_eq!(out.flush_to(&mut a), Flush::Idle);
        out.push(b"hello");
        assert_eq!(out.flush_to(&mut a), Flush::Progress);
        assert!(out.is_empty());
        let mut buf = Vec::new();
        assert!(matches!(read_some(&mut b, &mut buf, 3), ReadOutcome::Data));
        assert_eq!(buf.len(), 3);
        assert!(matches!(
            read_some(&mut b, &mut buf, 100),
            ReadOutcome::Data
        ));
        assert_eq!(buf, b"hello");
        assert!(matches!(
            read_some(&mut b, &mut buf, 100),
            ReadOutcome::WouldBlock
        ));
        drop(a);
        assert!(matches!(
            read_some(&mut b, &mut buf, 100),
            ReadOutcome::Closed
        ));
        let e = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(strerror(&e), "Connection refused");
    }
}
