//! The instance's request routing chain (`route*` rules) run in the worker,
//! for requests that came straight to one of its sockets (from nginx, a
//! client, another router). Requests the instance's own HTTP router sends
//! arrive on the router's private socket and were routed there already:
//! they are never routed twice ([`Listener::pre_routed`]).
//!
//! The outcome is acted on here with the worker's blocking I/O: a
//! generated response or a file is written, a `uwsgi:`/`http:` forward is
//! relayed (request body in, response bytes back as they come), and a
//! request that goes on to the app carries the variables and response
//! header edits the actions made.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::listener::Listener;
use super::reply::Reply;
use super::{log, Env};
use crate::python::Exchange;
use crate::routing::{self, Context, ForwardKind, HeaderOp, Outcome, Var};
use crate::sys::socket::{parse, Address};

/// Bytes copied per step of a relay.
const RELAY_CHUNK: usize = 64 * 1024;

/// What routing left for the caller.
pub(crate) enum Routed {
    /// The app serves the request, with these appended variables; the
    /// response head gets the queued header edits (already set on the
    /// reply).
    App { vars: Vec<Var>, log: bool },
    /// Routing answered the request (or dropped it); the connection
    /// closes after (the reply's stats hold the status for the log).
    Done { log: bool },
}

/// Whether requests accepted on `listener` run the routing table here.
fn routes_here(env: &Env<'_>, listener: &Listener) -> bool {
    !listener.pre_routed && !env.routes.request.is_empty()
}

/// Runs the request chain on `vars` (as received) and acts on its outcome.
pub(crate) fn request(env: &Env<'_>, vars: &[(&[u8], &[u8])], reply: &mut Reply) -> Routed {
    if !routes_here(env, env.listener) {
        return Routed::App {
            vars: Vec::new(),
            log: true,
        };
    }
    let owned: Vec<Var> = vars.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
    let ctx = Context {
        pid: env.pid,
        ..Context::default()
    };
    let ev = routing::evaluate(&env.routes.request, &owned, &ctx);
    for line in &ev.logs {
        log(&String::from_utf8_lossy(line));
    }
    for dir in &ev.chdirs {
        use std::os::unix::ffi::OsStrExt;
        if let Err(e) = std::env::set_current_dir(std::ffi::OsStr::from_bytes(dir)) {
            log(&format!(
                "uwsgi_router_chdir_func()/chdir(): {}",
                super::reply::strerror(&e)
            ));
            return Routed::Done {
                log: !ev.do_not_log,
            };
        }
    }
    let keep_log = !ev.do_not_log;
    if !ev.sent.is_empty() && reply.wire.stream.write_all(&ev.sent).is_err() {
        return Routed::Done { log: keep_log };
    }
    let mut all = owned;
    all.extend(ev.vars.iter().cloned());
    let status = match ev.outcome {
        Outcome::Continue => {
            reply.header_ops = ev.headers;
            return Routed::App {
                vars: ev.vars,
                log: keep_log,
            };
        }
        Outcome::Close => 0,
        Outcome::Respond(r) => {
            let bytes = r.render(&reply.protocol, &ev.headers);
            let _ = reply.wire.stream.write_all(&bytes);
            r.code()
        }
        Outcome::Static(path) => {
            use std::os::unix::ffi::OsStrExt;
            let p = std::path::Path::new(std::ffi::OsStr::from_bytes(&path));
            match open_file(p, &env.config.mime_files) {
                Some(found) => {
                    reply.header_ops = ev.headers;
                    let ims = routing::VarLookup::get_var(&all, b"HTTP_IF_MODIFIED_SINCE");
                    super::http_conn::serve_static(reply, found, ims);
                    reply.finish();
                    reply.stats.status
                }
                None => {
                    // uWSGI closes without a reply; a client gets a 404.
                    eprintln!("static file {}: not a readable regular file", p.display());
                    let r = routing::Response::not_found();
                    let bytes = r.render(&reply.protocol, &ev.headers);
                    let _ = reply.wire.stream.write_all(&bytes);
                    r.code()
                }
            }
        }
        Outcome::Forward(f) => {
            let timeout = Duration::from_secs(env.config.socket_timeout.max(1));
            let first = match &f.kind {
                ForwardKind::Uwsgi {
                    modifier1,
                    modifier2,
                } => crate::router::uwsgi_packet(*modifier1, *modifier2, &all, &[])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
                ForwardKind::Http { host, uri } => Ok(crate::router::http_request(
                    &all,
                    host.as_deref(),
                    uri.as_deref(),
                )),
            };
            let addr = String::from_utf8_lossy(&f.addr).into_owned();
            match first.and_then(|first| relay(&addr, &first, reply, timeout, &ev.headers)) {
                Ok(status) => status,
                Err(e) => {
                    log(&format!(
                        "[uwsgi-route] unable to forward the request to {addr}: {}",
                        super::reply::strerror(&e)
                    ));
                    let page = routing::Response::new(
                        b"502 Bad Gateway",
                        &[(b"Content-Type", b"text/plain"), (b"Content-Length", b"11")],
                        b"Bad Gateway",
                    );
                    let _ = reply
                        .wire
                        .stream
                        .write_all(&page.render(&reply.protocol, &[]));
                    502
                }
            }
        }
    };
    reply.stats.status = status;
    Routed::Done { log: keep_log }
}

/// `static:PATH`: a readable regular file.
fn open_file(path: &std::path::Path, mime_files: &[String]) -> Option<super::static_files::Found> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking open: a FIFO must not hang the worker (refused below).
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    Some(super::static_files::Found {
        file,
        len: meta.len(),
        mtime: meta.modified().unwrap_or(std::time::UNIX_EPOCH),
        content_type: crate::routing::mime::content_type(mime_files, path.as_os_str().as_bytes()),
    })
}

/// A blocking backend connection.
enum Backend {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Backend {
    fn connect(addr: &str, timeout: Duration) -> io::Result<Backend> {
        let b = match parse(addr) {
            Address::UnixPath(p) => Backend::Unix(UnixStream::connect(p)?),
            Address::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                let a = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
                Backend::Unix(UnixStream::connect_addr(&a)?)
            }
            Address::Tcp(name) => {
                let name = if name.starts_with(':') {
                    format!("127.0.0.1{name}")
                } else {
                    name
                };
                let mut last = io::Error::from(io::ErrorKind::AddrNotAvailable);
                let mut found = None;
                for a in std::net::ToSocketAddrs::to_socket_addrs(name.as_str())? {
                    match TcpStream::connect_timeout(&a, timeout) {
                        Ok(s) => {
                            found = Some(s);
                            break;
                        }
                        Err(e) => last = e,
                    }
                }
                Backend::Tcp(found.ok_or(last)?)
            }
            Address::Fd(_) => return Err(io::ErrorKind::InvalidInput.into()),
        };
        match &b {
            Backend::Tcp(s) => {
                s.set_read_timeout(Some(timeout))?;
                s.set_write_timeout(Some(timeout))?;
            }
            Backend::Unix(s) => {
                s.set_read_timeout(Some(timeout))?;
                s.set_write_timeout(Some(timeout))?;
            }
        }
        Ok(b)
    }
}

impl Read for Backend {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Backend::Tcp(s) => s.read(buf),
            Backend::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Backend {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Backend::Tcp(s) => s.write(buf),
            Backend::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Sends `first` and the request body to `addr`, then copies the response
/// to the client as it comes (its head edited by `ops`). Returns the
/// response status. Errors before any response byte went out are returned
/// (the caller answers 502); later ones end the relay.
fn relay(
    addr: &str,
    first: &[u8],
    reply: &mut Reply,
    timeout: Duration,
    ops: &[HeaderOp],
) -> io::Result<u16> {
    let mut backend = Backend::connect(addr, timeout)?;
    backend.write_all(first)?;
    let mut buf = vec![0; RELAY_CHUNK];
    loop {
        let n = reply.read_body(&mut buf)?;
        if n == 0 {
            break;
        }
        backend.write_all(&buf[..n])?;
    }
    // The head, then the rest as it comes.
    let mut head = Vec::new();
    let head_end = loop {
        let n = backend.read(&mut buf)?;
        if n == 0 {
            break None;
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break Some(i + 4);
        }
        if head.len() > RELAY_CHUNK {
            break None;
        }
    };
    if head.is_empty() {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let status = head
        .get(9..12)
        .and_then(|s| std::str::from_utf8(s).ok()?.parse().ok())
        .unwrap_or(0);
    let out = match head_end {
        Some(end) if !ops.is_empty() => {
            [edit_head(&head[..end], ops), head[end..].to_vec()].concat()
        }
        _ => head,
    };
    let client = &mut reply.wire.stream;
    if client.write_all(&out).is_err() {
        return Ok(status);
    }
    loop {
        match backend.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if client.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    Ok(status)
}

/// Applies routing header edits to an app's response head; returns the
/// status (changed by `clearheaders:`).
pub(crate) fn edit_headers(
    status: &[u8],
    headers: &mut Vec<(Vec<u8>, Vec<u8>)>,
    ops: &[HeaderOp],
) -> Vec<u8> {
    let mut status = status.to_vec();
    let mut added = Vec::new();
    for op in ops {
        match op {
            HeaderOp::Add(line) => {
                let colon = line.iter().position(|&b| b == b':').unwrap_or(line.len());
                let value = line.get(colon + 1..).unwrap_or_default().trim_ascii_start();
                added.push((line[..colon].to_vec(), value.to_vec()));
            }
            HeaderOp::Remove(name) => {
                let name = name.trim_ascii();
                headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
                added.retain(|(k, _): &(Vec<u8>, Vec<u8>)| !k.eq_ignore_ascii_case(name));
            }
            HeaderOp::Clear(new_status) => {
                status.clone_from(new_status);
                headers.clear();
            }
        }
    }
    headers.extend(added);
    status
}

/// A backend's response head with the routing header edits applied.
fn edit_head(head: &[u8], ops: &[HeaderOp]) -> Vec<u8> {
    let mut lines: Vec<&[u8]> = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty())
        .collect();
    let status_line = if lines.is_empty() {
        Vec::new()
    } else {
        lines.remove(0).to_vec()
    };
    let (proto, status) = match status_line.iter().position(|&b| b == b' ') {
        Some(i) => (status_line[..i].to_vec(), status_line[i + 1..].to_vec()),
        None => (status_line.clone(), Vec::new()),
    };
    let headers: Vec<(&[u8], &[u8])> = lines
        .iter()
        .map(|l| {
            let colon = l.iter().position(|&b| b == b':').unwrap_or(l.len());
            let value = l.get(colon + 1..).unwrap_or_default().trim_ascii_start();
            (&l[..colon], value)
        })
        .collect();
    routing::Response::new(&status, &headers, b"").render(&proto, ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_a_backend_head() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Drop: 1\r\n\r\n";
        let ops = [
            HeaderOp::Add(b"X-Once: yes".to_vec()),
            HeaderOp::Remove(b"x-drop".to_vec()),
        ];
        assert_eq!(
            edit_head(head, &ops),
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Once: yes\r\n\r\n"
        );
    }
}
