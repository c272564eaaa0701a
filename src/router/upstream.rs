//! Backends: address syntax, non-blocking connect, and the node pool.
//!
//! Addresses follow uWSGI's `uwsgi_connect` (spec §3.3): with a `:` it is
//! `host:port` split at the first colon, the host a dotted IPv4 literal
//! (empty means 0.0.0.0, i.e. this machine); otherwise a UNIX socket path,
//! `@name` for the abstract namespace. As improvements, `[v6]:port` is an
//! IPv6 address and a host that is not a literal is resolved (the answer
//! is kept for [`RESOLVE_TTL`]: the loop does not wait on DNS per request).
//!
//! The default pool is the `http-to` nodes (round-robin per request, a
//! node that refuses is skipped for `http-gracetime`), or this instance's
//! socket 0 when there are none (never marked dead: it is ours and comes
//! back with the next worker); `http-fallback` nodes come after.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::os::linux::net::SocketAddrExt;
use std::time::{Duration, Instant};

use super::io::Stream;

/// A parsed backend address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    Unix(std::path::PathBuf),
    Abstract(Vec<u8>),
    Tcp(SocketAddr),
}

/// How long a resolved host name is used before it is looked up again.
pub const RESOLVE_TTL: Duration = Duration::from_secs(30);

thread_local! {
    /// Host names already resolved, with when.
    static RESOLVED: RefCell<HashMap<String, (SocketAddr, Instant)>> = RefCell::new(HashMap::new());
}

/// `host:port` through the resolver (and the cache).
fn resolve(host: &str, port: u16) -> Option<SocketAddr> {
    let key = format!("{host}:{port}");
    let now = Instant::now();
    let cached = RESOLVED.with(|c| {
        c.borrow()
            .get(&key)
            .filter(|(_, at)| now.duration_since(*at) < RESOLVE_TTL)
            .map(|(a, _)| *a)
    });
    if cached.is_some() {
        return cached;
    }
    let addr = (host, port).to_socket_addrs().ok()?.next()?;
    RESOLVED.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() > 1024 {
            c.clear();
        }
        c.insert(key, (addr, now));
    });
    Some(addr)
}

/// Why an address cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    #[error("empty address")]
    Empty,
    #[error("host name does not resolve")]
    Unresolved,
    #[error("invalid IPv6 address")]
    BadIpv6,
    #[error("invalid port")]
    BadPort,
}

impl Addr {
    pub fn parse(text: &[u8]) -> Result<Addr, AddrError> {
        use std::os::unix::ffi::OsStrExt;
        if text.is_empty() {
            return Err(AddrError::Empty);
        }
        let port_of = |p: &[u8]| {
            std::str::from_utf8(p)
                .ok()
                .and_then(|p| p.parse::<u16>().ok())
                .ok_or(AddrError::BadPort)
        };
        if let Some(rest) = text.strip_prefix(b"[") {
            let end = rest
                .iter()
                .position(|&b| b == b']')
                .ok_or(AddrError::BadIpv6)?;
            let ip = std::str::from_utf8(&rest[..end])
                .ok()
                .and_then(|h| h.parse::<Ipv6Addr>().ok())
                .ok_or(AddrError::BadIpv6)?;
            let port = rest[end + 1..]
                .strip_prefix(b":")
                .ok_or(AddrError::BadPort)?;
            return Ok(Addr::Tcp(SocketAddr::new(ip.into(), port_of(port)?)));
        }
        if let Some(colon) = text.iter().position(|&b| b == b':') {
            let host = &text[..colon];
            let port = port_of(&text[colon + 1..])?;
            if host.is_empty() {
                return Ok(Addr::Tcp(SocketAddr::new(
                    Ipv4Addr::UNSPECIFIED.into(),
                    port,
                )));
            }
            let host = std::str::from_utf8(host).map_err(|_| AddrError::Unresolved)?;
            if let Ok(ip) = host.parse::<Ipv4Addr>() {
                return Ok(Addr::Tcp(SocketAddr::new(ip.into(), port)));
            }
            return resolve(host, port)
                .map(Addr::Tcp)
                .ok_or(AddrError::Unresolved);
        }
        if let Some(name) = text.strip_prefix(b"@") {
            return Ok(Addr::Abstract(name.to_vec()));
        }
        Ok(Addr::Unix(std::ffi::OsStr::from_bytes(text).into()))
    }

    /// Starts a non-blocking connect. UNIX sockets connect (or fail) at
    /// once; TCP completes later (see [`Stream::connect_result`]).
    pub fn connect(&self) -> io::Result<Stream> {
        match self {
            Addr::Unix(path) => mio::net::UnixStream::connect(path).map(Stream::Unix),
            Addr::Abstract(name) => {
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                mio::net::UnixStream::connect_addr(&addr).map(Stream::Unix)
            }
            Addr::Tcp(addr) => {
                let s = mio::net::TcpStream::connect(*addr)?;
                let _ = s.set_nodelay(true);
                Ok(Stream::Tcp(s))
            }
        }
    }
}

/// Which backend a request goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The default pool (`http-to`, socket 0, fallbacks).
    Pool,
    /// One address chosen by a routing rule; no retry elsewhere.
    Fixed(String),
}

#[derive(Debug)]
struct Node {
    name: String,
    dead_until: Option<Instant>,
}

/// The default backends.
#[derive(Debug)]
pub struct Pool {
    nodes: Vec<Node>,
    /// Nodes are `http-to` entries (marked dead on failure), not socket 0.
    markable: bool,
    fallback: Vec<String>,
    next: usize,
    gracetime: Duration,
}

/// Progress through the pool for one request.
#[derive(Debug, Clone, Default)]
pub struct Attempts {
    tried: Vec<usize>,
    fallbacks_tried: usize,
    /// Connections tried so far (the "N retries" of the log line).
    pub count: u32,
}

/// One candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pick {
    pub name: String,
    /// Index into the nodes (`None` for a fallback).
    node: Option<usize>,
}

impl Pick {
    /// An address outside the pool (a routing rule's).
    pub fn named(name: &str) -> Pick {
        Pick {
            name: name.to_string(),
            node: None,
        }
    }
}

impl Pool {
    pub fn new(
        to: &[String],
        local: Option<&str>,
        fallback: &[String],
        gracetime: Duration,
    ) -> Pool {
        let (names, markable): (Vec<String>, bool) = if to.is_empty() {
            (local.map(str::to_string).into_iter().collect(), false)
        } else {
            (to.to_vec(), true)
        };
        Pool {
            nodes: names
                .into_iter()
                .map(|name| Node {
                    name,
                    dead_until: None,
                })
                .collect(),
            markable,
            fallback: fallback.to_vec(),
            next: 0,
            gracetime,
        }
    }

    /// The next node to try: round-robin over live, untried nodes, then
    /// the fallbacks in order; `None` when everything was tried.
    pub fn pick(&mut self, attempts: &mut Attempts, now: Instant) -> Option<Pick> {
        let n = self.nodes.len();
        for _ in 0..n {
            let i = self.next % n;
            self.next = (self.next + 1) % n;
            let node = &mut self.nodes[i];
            if node.dead_until.is_some_and(|t| t <= now) {
                node.dead_until = None;
            }
            if node.dead_until.is_none() && !attempts.tried.contains(&i) {
                attempts.tried.push(i);
                attempts.count += 1;
                return Some(Pick {
                    name: node.name.clone(),
                    node: Some(i),
                });
            }
        }
        let name = self.fallback.get(attempts.fallbacks_tried)?.clone();
        attempts.fallbacks_tried += 1;
        attempts.count += 1;
        Some(Pick { name, node: None })
    }

    /// The one node every request of the pool goes to (this instance's
    /// socket 0, no fallback), so a kept connection to it may serve the
    /// next request without skipping round-robin.
    pub fn sticky_node(&self) -> Option<&str> {
        match self.nodes.as_slice() {
            [only] if !self.markable && self.fallback.is_empty() => Some(&only.name),
            _ => None,
        }
    }

    /// Marks a node that refused; returns whether it was marked.
    pub fn mark_failed(&mut self, pick: &Pick, now: Instant) -> bool {
        match pick.node {
            Some(i) if self.markable => {
                self.nodes[i].dead_until = Some(now + self.gracetime);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let cases: &[(&[u8], Result<Addr, AddrError>)] = &[
            (b"/tmp/a.sock", Ok(Addr::Unix("/tmp/a.sock".into()))),
            (b"@abs", Ok(Addr::Abstract(b"abs".to_vec()))),
            (
                b"127.0.0.1:3031",
                Ok(Addr::Tcp("127.0.0.1:3031".parse().unwrap())),
            ),
            (b":3031", Ok(Addr::Tcp("0.0.0.0:3031".parse().unwrap()))),
            (
                b"localhost:3031",
                Ok(Addr::Tcp(
                    ("localhost", 3031)
                        .to_socket_addrs()
                        .unwrap()
                        .next()
                        .unwrap(),
                )),
            ),
            (b"[::1]:3031", Ok(Addr::Tcp("[::1]:3031".parse().unwrap()))),
            (b"[::1]3031", Err(AddrError::BadPort)),
            (b"[zz]:3031", Err(AddrError::BadIpv6)),
            (b"no-such-host.invalid:3031", Err(AddrError::Unresolved)),
            (b"127.0.0.1:x", Err(AddrError::BadPort)),
            (b"", Err(AddrError::Empty)),
        ];
        for (text, expected) in cases {
            assert_eq!(
                &Addr::parse(text),
                expected,
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn round_robin_failover_and_fallback() {
        let now = Instant::now();
        let to = vec!["A".to_string(), "B".to_string(), "C".to_string()];
        let mut pool = Pool::new(&to, None, &["F".to_string()], Duration::from_secs(30));
        let names = |pool: &mut Pool| {
            let mut a = Attempts::default();
            pool.pick(&mut a, now).map(|p| p.name)
        };
        assert_eq!(names(&mut pool).as_deref(), Some("A"));
        assert_eq!(names(&mut pool).as_deref(), Some("B"));
        // B fails: marked, and the same request moves on to C, A, then F.
        let mut a = Attempts::default();
        let b = pool.pick(&mut a, now).unwrap();
        assert_eq!(b.name, "C");
        assert!(pool.mark_failed(&b, now));
        let order: Vec<String> =
            std::iter::from_fn(|| pool.pick(&mut a, now).map(|p| p.name)).collect();
        assert_eq!(order, vec!["A", "B", "F"]);
        // C is skipped during the grace time, back after it.
        let picks: Vec<String> = (0..3).filter_map(|_| names(&mut pool)).collect();
        assert!(!picks.contains(&"C".to_string()), "{picks:?}");
        let later = now + Duration::from_secs(31);
        let mut a = Attempts::default();
        let all: Vec<String> =
            std::iter::from_fn(|| pool.pick(&mut a, later).map(|p| p.name)).collect();
        assert!(all.contains(&"C".to_string()));
        // Socket 0 is never marked.
        let mut local = Pool::new(&[], Some("/tmp/s0.sock"), &[], Duration::from_secs(30));
        let mut a = Attempts::default();
        let p = local.pick(&mut a, now).unwrap();
        assert!(!local.mark_failed(&p, now));
    }
}
