//! Listening sockets shared by the workers, and the accepted connections.
//!
//! Every worker (and every thread of a worker) races to `accept` on the
//! same non-blocking listening sockets; losing the race is `WouldBlock`,
//! normal control flow. Accepted connections are non-blocking: a read or
//! write tries at once and only waits (poll, up to `socket-timeout`) when
//! the socket is not ready, so a slow client costs a timeout, never a
//! stuck worker, and a fast one costs no timeout set-up calls.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

use crate::config::model::SocketProto;

/// A bound, listening socket, as the master hands it over.
#[derive(Debug)]
pub struct Listener {
    pub fd: OwnedFd,
    /// As configured (`127.0.0.1:3031`, `/tmp/app.sock`, ...).
    pub name: String,
    pub proto: SocketProto,
    /// The instance's HTTP router's private socket: its requests were
    /// routed by the router and skip the routing table here.
    pub pre_routed: bool,
}

/// A worker thread's handle on a [`Listener`] (its own descriptor, so the
/// std accept helpers can be used).
#[derive(Debug)]
pub(crate) enum Acceptor {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Acceptor {
    /// Duplicates the listener's descriptor and makes it non-blocking.
    pub(crate) fn new(listener: &Listener) -> io::Result<Acceptor> {
        let tcp = TcpListener::from(listener.fd.try_clone()?);
        let acceptor = if tcp.local_addr().is_ok() {
            // Inherited by every accepted connection: small responses
            // should not wait for Nagle.
            let _ = crate::sys::socket::set_nodelay(tcp.as_raw_fd());
            Acceptor::Tcp(tcp)
        } else {
            Acceptor::Unix(UnixListener::from(OwnedFd::from(tcp)))
        };
        match &acceptor {
            Acceptor::Tcp(l) => l.set_nonblocking(true)?,
            Acceptor::Unix(l) => l.set_nonblocking(true)?,
        }
        Ok(acceptor)
    }

    pub(crate) fn raw_fd(&self) -> std::os::fd::RawFd {
        match self {
            Acceptor::Tcp(l) => l.as_raw_fd(),
            Acceptor::Unix(l) => l.as_raw_fd(),
        }
    }

    /// One connection; its reads and writes wait at most `timeout`.
    pub(crate) fn accept(&self, timeout: Duration) -> io::Result<Conn> {
        let (fd, ip) = crate::sys::socket::accept_nonblocking(self.raw_fd())?;
        let timeout = Some(timeout).filter(|t| !t.is_zero());
        let conn = match self {
            Acceptor::Tcp(_) => Conn {
                stream: Stream::new(Kind::Tcp(TcpStream::from(fd)), timeout),
                peer: ip.map_or_else(|| "0.0.0.0".into(), |ip| ip.to_canonical().to_string()),
            },
            // uWSGI reports a UNIX peer as 0.0.0.0 (REMOTE_ADDR, log line).
            Acceptor::Unix(_) => Conn {
                stream: Stream::new(Kind::Unix(UnixStream::from(fd)), timeout),
                peer: "0.0.0.0".to_string(),
            },
        };
        Ok(conn)
    }
}

#[derive(Debug)]
enum Kind {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// A connected, non-blocking socket whose operations wait up to a timeout.
#[derive(Debug)]
pub(crate) struct Stream {
    kind: Kind,
    timeout: Option<Duration>,
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "timed out")
}

impl Stream {
    fn new(kind: Kind, timeout: Option<Duration>) -> Stream {
        Stream { kind, timeout }
    }

    fn fd(&self) -> std::os::fd::RawFd {
        match &self.kind {
            Kind::Tcp(s) => s.as_raw_fd(),
            Kind::Unix(s) => s.as_raw_fd(),
        }
    }

    /// Runs `op` until it does not block: waits for readiness (up to the
    /// timeout) after each `WouldBlock`; a signal (`Interrupted`) retries,
    /// so a graceful stop (SIGHUP) does not cut a request in progress.
    fn ready<T>(
        &mut self,
        write: bool,
        mut op: impl FnMut(&mut Kind) -> io::Result<T>,
    ) -> io::Result<T> {
        loop {
            match op(&mut self.kind) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !crate::sys::socket::wait_io(self.fd(), write, self.timeout)? {
                        return Err(timed_out());
                    }
                }
                r => return r,
            }
        }
    }

    pub(crate) fn raw_fd(&self) -> std::os::fd::RawFd {
        self.fd()
    }

    pub(crate) fn is_unix(&self) -> bool {
        matches!(self.kind, Kind::Unix(_))
    }

    /// A read (waiting as [`Read::read`] does) that also tells whether
    /// descriptors came with the bytes: ruwsgi's router marks its
    /// connections so (see `protocol::uwsgi::KEEP_HEADER`).
    pub(crate) fn read_marked(&mut self, buf: &mut [u8]) -> io::Result<(usize, bool)> {
        let fd = self.fd();
        self.ready(false, |_| {
            crate::sys::socket::recv_counting_fds(fd, buf).map(|(n, fds)| (n, fds > 0))
        })
    }

    /// One read that never waits: `WouldBlock` when nothing has arrived.
    pub(crate) fn read_now(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let r = match &mut self.kind {
                Kind::Tcp(s) => s.read(buf),
                Kind::Unix(s) => s.read(buf),
            };
            match r {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                r => return r,
            }
        }
    }

    /// Half-closes the write side so the client sees the end of the body
    /// before we close (used before an error page's close).
    pub(crate) fn shutdown_write(&self) {
        let _ = match &self.kind {
            Kind::Tcp(s) => s.shutdown(Shutdown::Write),
            Kind::Unix(s) => s.shutdown(Shutdown::Write),
        };
    }

    /// Sends `len` bytes of `file` from its position with sendfile(2),
    /// waiting for room in the socket as needed.
    pub(crate) fn send_file(&mut self, file: &mut std::fs::File, len: u64) -> io::Result<u64> {
        /// Largest single sendfile call (the kernel caps it near 2 GiB).
        const MAX_CALL: u64 = 1 << 30;
        let src = file.as_raw_fd();
        let mut sent = 0u64;
        while sent < len {
            let count = (len - sent).min(MAX_CALL) as usize;
            let fd = self.fd();
            let n = self.ready(true, |_| crate::sys::socket::sendfile(fd, src, count))?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shorter than announced",
                ));
            }
            sent += n as u64;
        }
        Ok(sent)
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.ready(false, |kind| match kind {
            Kind::Tcp(s) => s.read(buf),
            Kind::Unix(s) => s.read(buf),
        })
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.ready(true, |kind| match kind {
            Kind::Tcp(s) => s.write(buf),
            Kind::Unix(s) => s.write(buf),
        })
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.ready(true, |kind| match kind {
            Kind::Tcp(s) => s.write_vectored(bufs),
            Kind::Unix(s) => s.write_vectored(bufs),
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An accepted connection and the client's address text.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) stream: Stream,
    /// `127.0.0.1`; `0.0.0.0` on a UNIX socket, as uWSGI reports it.
    pub(crate) peer: String,
}
