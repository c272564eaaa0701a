//! Opening the instance's listening sockets: reuse the ones inherited
//! across a reload (matched by name), then bind the rest, with uWSGI's log
//! lines and `chmod-socket`.

use std::os::fd::{AsRawFd, OwnedFd};

use crate::config::model::SocketConfig;
use crate::sys::{process, socket};
use crate::worker::Listener;

/// Prefix of the names router listeners are kept under.
const ROUTER_PREFIX: &str = "http:";

/// Environment variable carrying `fd=name;...` across a reload's exec.
pub const INHERIT_ENV: &str = "RUWSGI_INHERITED_SOCKETS";

/// Descriptors handed to us: by the previous image of this process
/// across a reload (by name), or by systemd socket activation.
#[derive(Debug, Default)]
pub struct Inherited {
    pool: Vec<(OwnedFd, String)>,
    /// systemd's sockets (fd 3 onwards), named by their local address.
    activated: Vec<(OwnedFd, String)>,
}

/// systemd's first passed descriptor (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: i32 = 3;

fn env_value<'a>(env: &'a [(Vec<u8>, Vec<u8>)], key: &str) -> Option<&'a [u8]> {
    env.iter()
        .find(|(k, _)| k == key.as_bytes())
        .map(|(_, v)| v.as_slice())
}

/// Whether a configured name and a socket's local address are the same
/// endpoint (`:8080` is `0.0.0.0:8080`).
fn same_endpoint(configured: &str, local: &str) -> bool {
    configured == local
        || configured
            .strip_prefix(':')
            .is_some_and(|p| local == format!("0.0.0.0:{p}"))
}

impl Inherited {
    pub fn from_env(env: &[(Vec<u8>, Vec<u8>)]) -> Inherited {
        let listed = env_value(env, INHERIT_ENV).unwrap_or_default();
        let pool = String::from_utf8_lossy(listed)
            .split(';')
            .filter_map(|item| {
                let (fd, name) = item.split_once('=')?;
                let fd = socket::adopt(fd.parse().ok()?)?;
                Some((fd, name.to_string()))
            })
            .collect();
        let mut inherited = Inherited {
            pool,
            activated: Vec::new(),
        };
        inherited.add_activated(env);
        inherited
    }

    /// systemd socket activation: `LISTEN_PID` is us, `LISTEN_FDS` sockets
    /// from fd 3. The variables are removed so the app does not see them;
    /// a reload's exec keeps them (same pid), and a descriptor already
    /// adopted from the reload list is moved, never adopted twice.
    fn add_activated(&mut self, env: &[(Vec<u8>, Vec<u8>)]) {
        let Some(pid) = env_value(env, "LISTEN_PID") else {
            return;
        };
        if crate::config::placeholders::atoi(pid) != process::getpid() {
            return;
        }
        let n = env_value(env, "LISTEN_FDS").map_or(0, crate::config::placeholders::atoi);
        for key in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
            std::env::remove_var(key);
        }
        if n <= 0 {
            return;
        }
        log("- SystemD socket activation detected -");
        for raw in LISTEN_FDS_START..LISTEN_FDS_START.saturating_add(n) {
            let fd = match self.pool.iter().position(|(fd, _)| fd.as_raw_fd() == raw) {
                Some(pos) => self.pool.remove(pos).0,
                None => match socket::adopt(raw) {
                    Some(fd) => fd,
                    None => {
                        log(format!("LISTEN_FDS: fd {raw} is not a socket, skipped"));
                        continue;
                    }
                },
            };
            let name = socket::local_name(&fd).unwrap_or_else(|| format!("fd://{raw}"));
            self.activated.push((fd, name));
        }
    }

    /// Takes the activated socket bound to the configured `name`.
    fn take_activated(&mut self, name: &str) -> Option<(OwnedFd, String)> {
        let pos = self
            .activated
            .iter()
            .position(|(_, n)| same_endpoint(name, n))?;
        Some(self.activated.remove(pos))
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
    /// socket configured, the kept loopback one (not a router's `http =`
    /// listener, not the router's private unix socket).
    pub fn take_auto(&mut self) -> Option<OwnedFd> {
        let pos = self
            .pool
            .iter()
            .position(|(_, n)| !n.starts_with(ROUTER_PREFIX) && n.starts_with(AUTO_HOST))?;
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
/// Where the router's default backend socket is bound when none is
/// configured (port chosen by the kernel).
const AUTO_HOST: &str = "127.0.0.1:";

/// configured (the router's default backend).
pub fn open(
    cfg: &SocketConfig,
    inherited: &mut Inherited,
    auto_local: bool,
) -> Result<Vec<Listener>, String> {
    let mut specs = cfg.sockets.clone();
    let auto = auto_local && specs.is_empty() && inherited.activated.is_empty();
    if auto {
        specs.push(crate::config::model::SocketSpec {
            name: format!("{AUTO_HOST}0"),
            proto: crate::config::model::SocketProto::Uwsgi,
        });
    }
    let mut out = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        // The auto socket was kept under the port it got, not `:0`.
        let reused = match auto {
            true => inherited.take_auto(),
            false => inherited
                .take(&spec.name)
                .or_else(|| inherited.take_activated(&spec.name).map(|(fd, _)| fd)),
        };
        let fd = match reused {
            Some(fd) => {
                log_inherited(i, &spec.name, &fd);
                fd
            }
            None if matches!(socket::parse(&spec.name), socket::Address::Fd(_)) => {
                let b = socket::bind(&spec.name, cfg.listen)?;
                let name = socket::local_name(&b.fd).unwrap_or_else(|| spec.name.clone());
                log_inherited(i, &name, &b.fd);
                b.fd
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
                if let Some(secs) = cfg.defer_accept {
                    if let Err(e) = socket::defer_accept(b.fd.as_raw_fd(), &spec.name, secs) {
                        log(format!(
                            "TCP_DEFER_ACCEPT setsockopt(): {e} [socket {}]",
                            spec.name
                        ));
                    }
                }
                if let socket::Address::UnixPath(path) = socket::parse(&spec.name) {
                    chmod(cfg, &path)?;
                    if let Some(owner) = &cfg.chown {
                        super::identity::chown_socket(owner, &path)?;
                    }
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
            pre_routed: false,
        });
    }
    // Activated sockets nobody configured speak the uwsgi protocol.
    for (fd, name) in std::mem::take(&mut inherited.activated) {
        log_inherited(out.len(), &name, &fd);
        out.push(Listener {
            fd,
            name,
            proto: crate::config::model::SocketProto::Uwsgi,
            pre_routed: false,
        });
    }
    Ok(out)
}

fn log_inherited(i: usize, name: &str, fd: &OwnedFd) {
    let family = if matches!(socket::parse(name), socket::Address::Tcp(_)) {
        "INET"
    } else {
        "UNIX"
    };
    log(format!(
        "uwsgi socket {i} inherited {family} address {name} fd {}",
        fd.as_raw_fd()
    ));
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

/// The HTTP router's private way to the workers: a uwsgi socket in a
/// directory only this user can enter (mode 0700, checked when it already
/// exists), so no other client can pass for the router. Requests accepted
/// on it skip the workers' routing table: the router applied it.
/// The directory is named after the master's pid, which a reload keeps.
pub fn router_private(listen: i32, inherited: &mut Inherited) -> Result<Listener, String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let dir = private_dir();
    if let Some(parent) = dir.parent() {
        sweep_stale(parent);
    }
    let fail = |e: std::io::Error| format!("{e} [router private socket {}]", dir.display());
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let meta = std::fs::symlink_metadata(&dir).map_err(fail)?;
            if !meta.is_dir() || meta.uid() != process::geteuid() || meta.mode() & 0o077 != 0 {
                return Err(fail(std::io::Error::other(
                    "exists and is not a private directory of ours",
                )));
            }
        }
        Err(e) => return Err(fail(e)),
    }
    let path = dir.join("router.sock");
    let name = path.display().to_string();
    // After a reload the same socket is kept: the router never finds the
    // path missing.
    let fd = match inherited.take(&name) {
        Some(fd) => fd,
        None => {
            let _ = std::fs::remove_file(&path);
            socket::bind(&name, listen)?.fd
        }
    };
    Ok(Listener {
        fd,
        name,
        proto: crate::config::model::SocketProto::Uwsgi,
        pre_routed: true,
    })
}

/// This master's private directory (named after its pid, which a reload
/// keeps).
fn private_dir() -> std::path::PathBuf {
    let name = format!("ruwsgi-router-{}", process::getpid());
    let dir = std::env::temp_dir().join(&name);
    // A socket path must fit sun_path (108 bytes).
    if dir.as_os_str().len() > 80 {
        return std::path::Path::new("/tmp").join(&name);
    }
    dir
}

/// Removes this master's private directory, if it made one. Called when
/// the master ends for good (never across a reload's exec: the router
/// and the old workers still use the socket then).
pub fn remove_router_private() {
    remove_private(&private_dir());
}

fn remove_private(dir: &std::path::Path) {
    let _ = std::fs::remove_file(dir.join("router.sock"));
    let _ = std::fs::remove_dir(dir);
}

/// Removes the private directories of masters that are gone without
/// cleaning up (killed): ours by owner, dead by their pid.
fn sweep_stale(parent: &std::path::Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("ruwsgi-router-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let path = entry.path();
        let ours = std::fs::symlink_metadata(&path)
            .is_ok_and(|m| m.is_dir() && m.uid() == process::geteuid());
        if ours && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            remove_private(&path);
        }
    }
}

/// The name a router listener is kept under across a reload.
pub fn router_key(addr: &str) -> String {
    format!("{ROUTER_PREFIX}{addr}")
}

fn log(line: impl AsRef<str>) {
    super::log(line);
}
