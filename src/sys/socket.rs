//! Listening sockets as uWSGI names them: `/path` (unix), `@name`
//! (abstract unix), `host:port` or `:port` (TCP, all interfaces for an
//! empty host), `[v6]:port`, and `fd://N` (an inherited descriptor).

use std::net::ToSocketAddrs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener};

/// What kind of address a socket name is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    UnixPath(String),
    Abstract(String),
    Tcp(String),
    Fd(i32),
}

pub fn parse(name: &str) -> Address {
    if let Some(n) = name.strip_prefix("fd://") {
        return Address::Fd(n.trim().parse().unwrap_or(-1));
    }
    if let Some(n) = name.strip_prefix('@') {
        return Address::Abstract(n.to_string());
    }
    if name.contains(':') {
        return Address::Tcp(name.to_string());
    }
    Address::UnixPath(name.to_string())
}

/// A bound, listening socket and how to describe it in logs.
#[derive(Debug)]
pub struct Bound {
    pub fd: OwnedFd,
    /// "UNIX" or "TCP", as uWSGI's log lines say.
    pub family: &'static str,
}

fn set_backlog(fd: &OwnedFd, backlog: i32) -> std::io::Result<()> {
    // SAFETY: listen(2) on a socket we own, integer arguments.
    if unsafe { libc::listen(fd.as_raw_fd(), backlog) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn tcp_addrs(name: &str) -> std::io::Result<Vec<std::net::SocketAddr>> {
    let (host, port) = name.rsplit_once(':').unwrap_or(("", name));
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    let port: u16 = port.parse().map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("invalid port in {name}"),
        )
    })?;
    Ok((host, port).to_socket_addrs()?.collect())
}

/// Binds and listens. The error text follows uWSGI's (`bind(): ...`).
pub fn bind(name: &str, backlog: i32) -> Result<Bound, String> {
    let err = |what: &str, e: std::io::Error| {
        let msg = crate::config::logic::strerror(&e);
        if e.kind() == std::io::ErrorKind::AddrInUse {
            format!("probably another instance of uWSGI is running on the same address ({name}).\n{what}(): {msg} [socket {name}]")
        } else {
            format!("{what}(): {msg} [socket {name}]")
        }
    };
    let bound = match parse(name) {
        Address::Fd(n) => {
            let fd =
                adopt(n).ok_or_else(|| format!("fd {n} is not an open socket [socket {name}]"))?;
            Bound {
                fd,
                family: "inherited",
            }
        }
        Address::UnixPath(path) => {
            if path.is_empty() {
                return Err("invalid/empty uwsgi socket name".into());
            }
            let _ = std::fs::remove_file(&path);
            let l = UnixListener::bind(&path).map_err(|e| err("bind", e))?;
            Bound {
                fd: l.into(),
                family: "UNIX",
            }
        }
        Address::Abstract(n) => {
            let addr = UnixAddr::from_abstract_name(n.as_bytes()).map_err(|e| err("bind", e))?;
            let l = UnixListener::bind_addr(&addr).map_err(|e| err("bind", e))?;
            Bound {
                fd: l.into(),
                family: "UNIX",
            }
        }
        Address::Tcp(t) => {
            let addrs = tcp_addrs(&t).map_err(|e| err("getaddrinfo", e))?;
            let l = std::net::TcpListener::bind(&addrs[..]).map_err(|e| err("bind", e))?;
            Bound {
                fd: l.into(),
                family: "TCP",
            }
        }
    };
    set_backlog(&bound.fd, backlog).map_err(|e| err("listen", e))?;
    Ok(bound)
}

/// Takes ownership of descriptor `fd`, handed to us by whoever started
/// this process (`fd://N`, systemd, our own previous image across a
/// reload), if it is an open socket. Each number must be adopted once.
pub fn adopt(fd: RawFd) -> Option<OwnedFd> {
    if fd < 0 {
        return None;
    }
    // SAFETY: fstat writes only into `st`, a zeroed plain C struct.
    let is_socket = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstat(fd, &mut st) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFSOCK
    };
    // SAFETY: the descriptor is open (fstat succeeded) and was handed to
    // this process to own; callers adopt each number once.
    is_socket.then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The local address of a socket, as a uWSGI socket name (for matching
/// inherited descriptors after a reload).
pub fn local_name(fd: &OwnedFd) -> Option<String> {
    let raw = fd.as_raw_fd();
    // Borrow the fd through std types without taking ownership.
    let tcp = std::mem::ManuallyDrop::new(unsafe_borrow_tcp(raw));
    if let Ok(a) = tcp.local_addr() {
        return Some(a.to_string());
    }
    let unix = std::mem::ManuallyDrop::new(unsafe_borrow_unix(raw));
    let a = unix.local_addr().ok()?;
    if let Some(p) = a.as_pathname() {
        return Some(p.to_string_lossy().into_owned());
    }
    a.as_abstract_name()
        .map(|n| format!("@{}", String::from_utf8_lossy(n)))
}

fn unsafe_borrow_tcp(fd: i32) -> std::net::TcpListener {
    // SAFETY: wrapped in ManuallyDrop by the caller, so the descriptor is
    // never closed through this value; only getsockname is called on it.
    unsafe { std::net::TcpListener::from_raw_fd(fd) }
}

fn unsafe_borrow_unix(fd: i32) -> UnixListener {
    // SAFETY: as above.
    unsafe { UnixListener::from_raw_fd(fd) }
}

/// Sets a unix socket's permission bits (`chmod-socket`).
pub fn chmod(path: &str, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            parse("/tmp/a.sock"),
            Address::UnixPath("/tmp/a.sock".into())
        );
        assert_eq!(parse("@abs"), Address::Abstract("abs".into()));
        assert_eq!(parse(":8080"), Address::Tcp(":8080".into()));
        assert_eq!(
            parse("127.0.0.1:3031"),
            Address::Tcp("127.0.0.1:3031".into())
        );
        assert_eq!(parse("[::1]:80"), Address::Tcp("[::1]:80".into()));
        assert_eq!(parse("fd://3"), Address::Fd(3));
    }

    #[test]
    fn bind_unix_and_tcp() {
        let dir = std::env::temp_dir().join(format!("ruwsgi-sock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.sock");
        let b = bind(path.to_str().unwrap(), 10).unwrap();
        assert_eq!(b.family, "UNIX");
        assert_eq!(local_name(&b.fd).as_deref(), path.to_str());
        let t = bind("127.0.0.1:0", 10).unwrap();
        assert!(local_name(&t.fd).unwrap().starts_with("127.0.0.1:"));
        assert!(bind("", 10).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
