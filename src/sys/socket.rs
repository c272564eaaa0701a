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

/// accept4(2) on a listening socket: the connection comes back
/// non-blocking and close-on-exec in one call (std's accept would need an
/// extra ioctl to change blocking mode), with the peer's IP address when
/// it is a TCP connection.
pub fn accept_nonblocking(listener: RawFd) -> std::io::Result<(OwnedFd, Option<std::net::IpAddr>)> {
    // SAFETY: `storage` is a zeroed sockaddr_storage large enough for any
    // address; accept4 writes at most `len` bytes into it and updates
    // `len`; the returned descriptor is new and owned by nobody else.
    unsafe {
        let mut storage: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let fd = libc::accept4(
            listener,
            std::ptr::addr_of_mut!(storage).cast(),
            &mut len,
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        );
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let owned = OwnedFd::from_raw_fd(fd);
        let ip = match i32::from(storage.ss_family) {
            libc::AF_INET => {
                let a: libc::sockaddr_in = std::ptr::read(std::ptr::addr_of!(storage).cast());
                Some(std::net::IpAddr::from(
                    u32::from_be(a.sin_addr.s_addr).to_be_bytes(),
                ))
            }
            libc::AF_INET6 => {
                let a: libc::sockaddr_in6 = std::ptr::read(std::ptr::addr_of!(storage).cast());
                Some(std::net::IpAddr::from(a.sin6_addr.s6_addr))
            }
            _ => None,
        };
        Ok((owned, ip))
    }
}

/// sendfile(2): up to `count` bytes of `file` from its current position
/// (which advances) to the socket `out`.
pub fn sendfile(out: RawFd, file: RawFd, count: usize) -> std::io::Result<usize> {
    // SAFETY: a null offset makes the kernel use and advance the file's
    // own position; no memory of ours is read or written.
    let n = unsafe { libc::sendfile(out, file, std::ptr::null_mut(), count) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// TCP_NODELAY on a socket; on a listening socket every accepted
/// connection inherits it (Linux), which saves a call per connection.
pub fn set_nodelay(fd: RawFd) -> std::io::Result<()> {
    set_tcp_int(fd, libc::TCP_NODELAY, 1)
}

/// An integer `IPPROTO_TCP` option.
fn set_tcp_int(fd: RawFd, option: libc::c_int, value: libc::c_int) -> std::io::Result<()> {
    // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from `value`.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            option,
            std::ptr::addr_of!(value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Waits until `fd` is readable (or writable, with `write`), for at most
/// `timeout` (`None`: forever). `Ok(false)` when the time ran out. A
/// signal ends the wait early with `Ok(true)`: the caller just retries.
pub fn wait_io(
    fd: RawFd,
    write: bool,
    timeout: Option<std::time::Duration>,
) -> std::io::Result<bool> {
    let events = if write { libc::POLLOUT } else { libc::POLLIN };
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    let ms = timeout.map_or(-1, |t| i32::try_from(t.as_millis()).unwrap_or(i32::MAX));
    // SAFETY: one valid pollfd on the stack, count 1.
    let n = unsafe { libc::poll(&mut p, 1, ms) };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        return if e.kind() == std::io::ErrorKind::Interrupted {
            Ok(true)
        } else {
            Err(e)
        };
    }
    Ok(n > 0)
}

/// A new eventfd (close-on-exec): a descriptor that refers to nothing in
/// the file system, for passing as a marker over UNIX sockets.
pub fn eventfd() -> std::io::Result<OwnedFd> {
    // SAFETY: eventfd takes no pointers; a non-negative result is a new
    // descriptor nobody else owns.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and is owned here only.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Room for the control message of [`recv_counting_fds`]: a few
/// descriptors (a peer might send more than one).
const FDS_PER_MESSAGE: usize = 4;

/// One `sendmsg` of `data` on the connected UNIX socket `sock`, with a
/// duplicate of `attach` passed alongside (`SCM_RIGHTS`). May send fewer
/// bytes than given, like `send`; the descriptor goes with the first one.
/// A peer that reads with plain `read(2)` never sees the descriptor: the
/// kernel drops it.
pub fn send_with_fd(sock: RawFd, data: &[u8], attach: RawFd) -> std::io::Result<usize> {
    // SAFETY: the iovec points at `data` (read only by the kernel); the
    // control buffer is a u64 array (aligned for cmsghdr) of at least
    // CMSG_SPACE(size_of::<c_int>()) bytes, and the header and the one int
    // written through CMSG_FIRSTHDR/CMSG_DATA lie inside it.
    unsafe {
        let mut control = [0u64; 8];
        let space = libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) as usize;
        debug_assert!(space <= std::mem::size_of_val(&control));
        let mut iov = libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        };
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>(), attach);
        let n = libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL);
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

/// `TCP_DEFER_ACCEPT` on a listening TCP socket bound to `name` (nothing
/// for other addresses): a connection is handed to `accept` when its first
/// bytes arrive (or after `secs`), so a worker never wakes for a client
/// that has not spoken yet.
pub fn defer_accept(fd: RawFd, name: &str, secs: u32) -> std::io::Result<()> {
    if !matches!(parse(name), Address::Tcp(_)) {
        return Ok(());
    }
    let secs = libc::c_int::try_from(secs).unwrap_or(libc::c_int::MAX);
    set_tcp_int(fd, libc::TCP_DEFER_ACCEPT, secs)
}

/// One `recvmsg` into `buf` on a UNIX socket: the bytes read and how many
/// descriptors came with them (`SCM_RIGHTS`). The descriptors are closed
/// at once: only their presence matters to the caller.
pub fn recv_counting_fds(sock: RawFd, buf: &mut [u8]) -> std::io::Result<(usize, usize)> {
    // SAFETY: the iovec points at `buf`, which the kernel fills up to its
    // length; the control buffer is u64-aligned and `msg_controllen` is its
    // size. Headers are walked with CMSG_FIRSTHDR/CMSG_NXTHDR, which stay
    // inside the `msg_controllen` the kernel reports, and each descriptor
    // is read unaligned from inside its header's CMSG_LEN. The received
    // descriptors are new (MSG_CMSG_CLOEXEC) and ours to close.
    unsafe {
        let mut control = [0u64; 8];
        debug_assert!(
            libc::CMSG_SPACE((FDS_PER_MESSAGE * std::mem::size_of::<libc::c_int>()) as u32)
                as usize
                <= std::mem::size_of_val(&control)
        );
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        let n = libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC);
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut fds = 0;
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg).cast::<libc::c_int>();
                let header = libc::CMSG_LEN(0) as usize;
                let count = ((*cmsg).cmsg_len as usize).saturating_sub(header)
                    / std::mem::size_of::<libc::c_int>();
                for i in 0..count {
                    libc::close(std::ptr::read_unaligned(data.add(i)));
                }
                fds += count;
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
        Ok((n as usize, fds))
    }
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
    fn accepts_non_blocking_with_the_peer() {
        let t = bind("127.0.0.1:0", 10).unwrap();
        let addr = local_name(&t.fd).unwrap();
        let _c = std::net::TcpStream::connect(&addr).unwrap();
        let (fd, ip) = accept_nonblocking(t.fd.as_raw_fd()).unwrap();
        assert_eq!(ip, Some(std::net::IpAddr::from([127, 0, 0, 1])));
        let s = std::net::TcpStream::from(fd);
        let mut buf = [0u8; 4];
        let e = std::io::Read::read(&mut &s, &mut buf).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
        let short = Some(std::time::Duration::from_millis(10));
        assert!(!wait_io(s.as_raw_fd(), false, short).unwrap());
        assert!(wait_io(s.as_raw_fd(), true, short).unwrap());
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
