//! The emperor stats socket (`emperor-stats`): every client gets one JSON
//! document and is closed, without sending anything. Writes are
//! non-blocking; a client that does not read within `socket-timeout` is
//! dropped, and at most [`MAX_CLIENTS`] are served at once.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Interest, Registry, Token};
use slab::Slab;

/// Clients being written to at once; more are closed at once.
pub const MAX_CLIENTS: usize = 64;
/// Connections accepted per wake-up.
const MAX_ACCEPTS: usize = 64;

#[derive(Debug)]
enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

#[derive(Debug)]
enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn source(&mut self) -> &mut dyn mio::event::Source {
        match self {
            Stream::Unix(s) => s,
            Stream::Tcp(s) => s,
        }
    }
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }
}

#[derive(Debug)]
struct Client {
    stream: Stream,
    doc: Vec<u8>,
    written: usize,
    deadline: Instant,
}

/// What is left to do for a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    Done,
    Blocked,
}

impl Client {
    fn push(&mut self) -> Progress {
        while self.written < self.doc.len() {
            match self.stream.write(&self.doc[self.written..]) {
                Ok(0) => return Progress::Done,
                Ok(n) => self.written += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Progress::Blocked,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return Progress::Done,
            }
        }
        Progress::Done
    }
}

/// The listening socket and the clients being served.
#[derive(Debug)]
pub struct StatsServer {
    listener: Listener,
    clients: Slab<Client>,
    first_token: usize,
    timeout: Duration,
}

impl StatsServer {
    /// Binds `addr` (`host:port` is TCP, anything else a unix socket) and
    /// registers it as `token`; clients get tokens from `first_client`.
    pub fn bind(
        addr: &[u8],
        backlog: i32,
        timeout: Duration,
        registry: &Registry,
        token: Token,
        first_client: usize,
    ) -> Result<(StatsServer, i32), String> {
        let name = String::from_utf8_lossy(addr);
        let bound = crate::sys::socket::bind(&name, backlog)?;
        let fd = bound.fd.as_raw_fd();
        let mut listener = if name.contains(':') {
            let l = std::net::TcpListener::from(bound.fd);
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            Listener::Tcp(TcpListener::from_std(l))
        } else {
            let l = std::os::unix::net::UnixListener::from(bound.fd);
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            Listener::Unix(UnixListener::from_std(l))
        };
        let source: &mut dyn mio::event::Source = match &mut listener {
            Listener::Unix(l) => l,
            Listener::Tcp(l) => l,
        };
        registry
            .register(source, token, Interest::READABLE)
            .map_err(|e| e.to_string())?;
        Ok((
            StatsServer {
                listener,
                clients: Slab::new(),
                first_token: first_client,
                timeout,
            },
            fd,
        ))
    }

    fn accept_one(&self) -> std::io::Result<Stream> {
        match &self.listener {
            Listener::Unix(l) => l.accept().map(|(s, _)| Stream::Unix(s)),
            Listener::Tcp(l) => l.accept().map(|(s, _)| Stream::Tcp(s)),
        }
    }

    /// Accepts the waiting clients and sends each the document.
    pub fn accept(&mut self, registry: &Registry, render: &dyn Fn() -> Vec<u8>, now: Instant) {
        for _ in 0..MAX_ACCEPTS {
            let stream = match self.accept_one() {
                Ok(s) => s,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            if self.clients.len() >= MAX_CLIENTS {
                continue;
            }
            let mut client = Client {
                stream,
                doc: render(),
                written: 0,
                deadline: now + self.timeout,
            };
            if client.push() == Progress::Done {
                continue;
            }
            let entry = self.clients.vacant_entry();
            let token = Token(self.first_token + entry.key());
            if registry
                .register(client.stream.source(), token, Interest::WRITABLE)
                .is_ok()
            {
                entry.insert(client);
            }
        }
    }

    /// Is this token one of our clients?
    pub fn owns(&self, token: Token) -> bool {
        token.0 >= self.first_token
    }

    /// A client became writable.
    pub fn writable(&mut self, registry: &Registry, token: Token) {
        let key = token.0 - self.first_token;
        let Some(client) = self.clients.get_mut(key) else {
            return;
        };
        if client.push() == Progress::Done {
            let mut c = self.clients.remove(key);
            let _ = registry.deregister(c.stream.source());
        }
    }

    /// Drops clients past their deadline.
    pub fn expire(&mut self, registry: &Registry, now: Instant) {
        let late: Vec<usize> = self
            .clients
            .iter()
            .filter(|(_, c)| c.deadline <= now)
            .map(|(k, _)| k)
            .collect();
        for key in late {
            let mut c = self.clients.remove(key);
            let _ = registry.deregister(c.stream.source());
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.clients.iter().map(|(_, c)| c.deadline).min()
    }
}
