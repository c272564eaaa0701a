//! Listening sockets shared by the workers, and the accepted connections.
//!
//! Every worker (and every thread of a worker) races to `accept` on the
//! same non-blocking listening sockets; losing the race is `WouldBlock`,
//! normal control flow. Accepted connections are blocking with
//! `socket-timeout` on reads and writes, so a slow client costs a timeout,
//! never a stuck worker.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
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
        use std::os::fd::AsRawFd;
        match self {
            Acceptor::Tcp(l) => l.as_raw_fd(),
            Acceptor::Unix(l) => l.as_raw_fd(),
        }
    }

    /// One connection, blocking with `timeout` on reads and writes.
    pub(crate) fn accept(&self, timeout: Duration) -> io::Result<Conn> {
        let conn = match self {
            Acceptor::Tcp(l) => {
                let (s, peer) = l.accept()?;
                // Small responses should not wait for Nagle.
                let _ = s.set_nodelay(true);
                Conn {
                    stream: Stream::Tcp(s),
                    peer: peer.ip().to_canonical().to_string(),
                }
            }
            // uWSGI reports a UNIX peer as 0.0.0.0 (REMOTE_ADDR, log line).
            Acceptor::Unix(l) => Conn {
                stream: Stream::Unix(l.accept()?.0),
                peer: "0.0.0.0".to_string(),
            },
        };
        conn.stream.set_nonblocking(false)?;
        let timeout = Some(timeout).filter(|t| !t.is_zero());
        conn.stream.set_timeouts(timeout)?;
        Ok(conn)
    }
}

/// A connected socket.
#[derive(Debug)]
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nonblocking(on),
            Stream::Unix(s) => s.set_nonblocking(on),
        }
    }

    fn set_timeouts(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => {
                s.set_read_timeout(t)?;
                s.set_write_timeout(t)
            }
            Stream::Unix(s) => {
                s.set_read_timeout(t)?;
                s.set_write_timeout(t)
            }
        }
    }

    /// Half-closes the write side so the client sees the end of the body.
    pub(crate) fn shutdown_write(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Write),
            Stream::Unix(s) => s.shutdown(Shutdown::Write),
        };
    }

    /// Sends `len` bytes of `file` (sendfile(2)/splice via `io::copy`).
    pub(crate) fn send_file(&mut self, file: &mut std::fs::File, len: u64) -> io::Result<u64> {
        let mut part = Read::take(file, len);
        let sent = match self {
            Stream::Tcp(s) => io::copy(&mut part, s)?,
            Stream::Unix(s) => io::copy(&mut part, s)?,
        };
        if sent < len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shorter than announced",
            ));
        }
        Ok(sent)
    }
}

/// Runs `op` again when a signal interrupts it. The kernel never restarts
/// a socket read or write that has a timeout (signal(7)), and a graceful
/// stop (SIGHUP) must not cut the request in progress.
fn restarting<T>(mut op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match op() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            r => return r,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        restarting(|| match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        })
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        restarting(|| match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        })
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        restarting(|| match self {
            Stream::Tcp(s) => s.write_vectored(bufs),
            Stream::Unix(s) => s.write_vectored(bufs),
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
