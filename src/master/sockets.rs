//! Opening the instance's listening sockets: reuse the ones inherited
//! across a reload (matched by name), then bind the rest, with uWSGI's log
//! lines and `chmod-socket`.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::config::model::SocketConfig;
use crate::sys::{process, socket};
use crate::worker::Listener;

/// Prefix of the names router listeners are kept under.
const ROUTER_PREFIX: &str = "http:";

/// Environment variable carrying `fd=name;...` across a reload's exec.
pub const INHERIT_ENV: &str = "RUWSGI_INHERITED_SOCKETS";

/// Descriptors the previous image of this process kept open for us.
#[derive(Debug, Default)]
pub struct Inherited {
    pool: Vec<(OwnedFd, String)>,
}

impl Inherited {
    pub fn from_env(env: &[(Vec<u8>, Vec<u8>)]) -> Inherited {
        let Some((_, v)) = env.iter().find(|(k, _)| k == INHERIT_ENV.as_bytes()) else {
            return Inherited::default();
        };
        let pool = String::from_utf8_lossy(v)
            .split(';')
            .filter_map(|item| {
                let (fd, name) = item.split_once('=')?;
                let fd: i32 = fd.parse().ok()?;
                // SAFETY: the previous image of this process listed this fd
                // as a listening socket it kept open across exec for us.
                Some((unsafe { OwnedFd::from_raw_fd(fd) }, name.to_string()))
            })
            .collect();
        Inherited { pool }
    }

    /// Copies of every descriptor still in the pool, for a start that may
    /// fail and have to pass them on again.
    pub fn spare(&self) -> Vec<(OwnedFd, String)> {
        self.pool
            .iter()
            .filter_map(|(fd, name)| Some((fd.try_clone().ok()?, name.clone())))
            .collect()
    }

    /// Takes the auto-assigned local socket of a previous image: with no
    /// socket configured, the only kept one that is not a router's.
    pub fn take_auto(&mut self) -> Option<OwnedFd> {
        let pos = self
            .pool
            .iter()
            .position(|(_, n)| !n.starts_with(ROUTER_PREFIX))?;
        Some(self.pool.remove(pos).0)
    }

    /// Takes the descriptor kept under `name`.
    pub fn take(&mut self, name: &str) -> Option<OwnedFd> {
        let pos = self.pool.iter().position(|(_, n)| n == name)?;
        Some(self.pool.remove(pos).0)
    }
}

/// Binds (or inherits) every configured socket. `auto_local` asks for a
/// uwsgi socket on 127.0.0.1 with a kernel-chosen port when none is
/// configured (the router's default backend).
pub fn open(
    cfg: &SocketConfig,
    inherited: &mut Inherited,
    auto_local: bool,
) -> Result<Vec<Listener>, String> {
    let mut specs = cfg.sockets.clone();
    let auto = auto_local && specs.is_empty();
    if auto {
        specs.push(crate::config::model::SocketSpec {
            name: "127.0.0.1:0".into(),
            proto: crate::config::model::SocketProto::Uwsgi,
        });
    }
    let mut out = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        // The auto socket was kept under the port it got, not `:0`.
        let kept = match auto {
            true => inherited.take_auto(),
            false => inherited.take(&spec.name),
        };
        let fd = match kept {
            Some(fd) => {
                let family = if matches!(socket::parse(&spec.name), socket::Address::Tcp(_)) {
                    "INET"
                } else {
                    "UNIX"
                };
                log(format!(
                    "uwsgi socket {i} inherited {family} address {} fd {}",
                    spec.name,
                    fd.as_raw_fd()
                ));
                fd
            }
            None => {
                let b = socket::bind(&spec.name, cfg.listen)?;
                if auto {
                    let name = socket::local_name(&b.fd).unwrap_or_else(|| spec.name.clone());
                    log(format!(
                        "uwsgi socket {i} bound to TCP address {name} (port auto-assigned) fd {}",
                        b.fd.as_raw_fd()
                    ));
                } else {
                    log(format!(
                        "uwsgi socket {i} bound to {} address {} fd {}",
                        b.family,
                        spec.name,
                        b.fd.as_raw_fd()
                    ));
                }
                if let socket::Address::UnixPath(path) = socket::parse(&spec.name) {
                    chmod(cfg, &path)?;
                }
                b.fd
            }
        };
        // An auto-assigned port is only known once bound; keep the real name
        // so a reload finds it again.
        let name = if auto {
            socket::local_name(&fd).unwrap_or_else(|| spec.name.clone())
        } else {
            spec.name.clone()
        };
        out.push(Listener {
            fd,
            name,
            proto: spec.proto,
        });
    }
    Ok(out)
}

fn chmod(cfg: &SocketConfig, path: &str) -> Result<(), String> {
    let mode = match &cfg.chmod {
        None => return Ok(()),
        Some(None) => {
            log("chmod() socket to 666 for lazy and brave users");
            0o666
        }
        Some(Some(m)) => u32::from_str_radix(m.trim(), 8)
            .map_err(|_| format!("invalid chmod-socket value {m}"))?,
    };
    socket::chmod(path, mode).map_err(|e| format!("chmod(): {e} [socket {path}]"))
}

/// Marks descriptors to survive an exec and describes them, by name, for
/// the next image.
pub fn describe_for_exec<'a>(fds: impl Iterator<Item = (&'a OwnedFd, &'a str)>) -> String {
    fds.map(|(fd, name)| {
        process::keep_across_exec(fd.as_raw_fd());
        format!("{}={}", fd.as_raw_fd(), name)
    })
    .collect::<Vec<_>>()
    .join(";")
}

/// The name a router listener is kept under across a reload.
pub fn router_key(addr: &str) -> String {
    format!("{ROUTER_PREFIX}{addr}")
}

fn log(line: impl AsRef<str>) {
    super::log(line);
}
