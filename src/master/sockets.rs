//! Opening the instance's listening sockets: reuse the ones inherited
//! across a reload (matched by name), then bind the rest, with uWSGI's log
//! lines and `chmod-socket`.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::config::model::SocketConfig;
use crate::sys::{process, socket};
use crate::worker::Listener;

/// Environment variable carrying `fd=name;...` across a reload's exec.
pub const INHERIT_ENV: &str = "RUWSGI_INHERITED_SOCKETS";

fn inherited(env: &[(Vec<u8>, Vec<u8>)]) -> Vec<(OwnedFd, String)> {
    let Some((_, v)) = env.iter().find(|(k, _)| k == INHERIT_ENV.as_bytes()) else { return vec![] };
    String::from_utf8_lossy(v)
        .split(';')
        .filter_map(|item| {
            let (fd, name) = item.split_once('=')?;
            let fd: i32 = fd.parse().ok()?;
            // SAFETY: the previous image of this process listed this fd as
            // a listening socket it kept open across exec for us.
            Some((unsafe { OwnedFd::from_raw_fd(fd) }, name.to_string()))
        })
        .collect()
}

/// Binds (or inherits) every configured socket.
pub fn open(cfg: &SocketConfig, env: &[(Vec<u8>, Vec<u8>)]) -> Result<Vec<Listener>, String> {
    let mut pool = inherited(env);
    let mut out = Vec::new();
    for (i, spec) in cfg.sockets.iter().enumerate() {
        let reused = pool.iter().position(|(_, n)| *n == spec.name).map(|p| pool.remove(p));
        let fd = match reused {
            Some((fd, _)) => {
                let family = if matches!(socket::parse(&spec.name), socket::Address::Tcp(_)) { "INET" } else { "UNIX" };
                log(format!("uwsgi socket {i} inherited {family} address {} fd {}", spec.name, fd.as_raw_fd()));
                fd
            }
            None => {
                let b = socket::bind(&spec.name, cfg.listen)?;
                log(format!("uwsgi socket {i} bound to {} address {} fd {}", b.family, spec.name, b.fd.as_raw_fd()));
                if let socket::Address::UnixPath(path) = socket::parse(&spec.name) {
                    chmod(cfg, &path)?;
                }
                b.fd
            }
        };
        out.push(Listener { fd, name: spec.name.clone(), proto: spec.proto });
    }
    // Sockets dropped from the config since the last load close here.
    drop(pool);
    Ok(out)
}

fn chmod(cfg: &SocketConfig, path: &str) -> Result<(), String> {
    let mode = match &cfg.chmod {
        None => return Ok(()),
        Some(None) => {
            log("chmod() socket to 666 for lazy and brave users");
            0o666
        }
        Some(Some(m)) => u32::from_str_radix(m.trim(), 8).map_err(|_| format!("invalid chmod-socket value {m}"))?,
    };
    socket::chmod(path, mode).map_err(|e| format!("chmod(): {e} [socket {path}]"))
}

/// Marks the sockets to survive an exec and describes them for the next
/// image.
pub fn describe_for_exec(listeners: &[Listener]) -> String {
    listeners
        .iter()
        .map(|l| {
            process::keep_across_exec(l.fd.as_raw_fd());
            format!("{}={}", l.fd.as_raw_fd(), l.name)
        })
        .collect::<Vec<_>>()
        .join(";")
}

fn log(line: impl AsRef<str>) {
    super::log(line);
}
