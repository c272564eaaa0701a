//! Opening the instance's listening sockets: reuse the ones inherited
//! across a reload (matched by name), then bind the rest, with uWSGI's log
//! lines and `chmod-socket`.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::config::model::SocketConfig;
use crate::sys::{process, socket};
use crate::worker::Listener;

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
        let fd = match inherited.take(&spec.name) {
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
            pre_routed: false,
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

/// The HTTP router's private way to the workers: a uwsgi socket in a
/// directory only this user can enter (mode 0700, checked when it already
/// exists), so no other client can pass for the router. Requests accepted
/// on it skip the workers' routing table: the router applied it.
/// The directory is named after the master's pid, which a reload keeps.
pub fn router_private(listen: i32) -> Result<(Listener, PrivateDir), String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let name = format!("ruwsgi-router-{}", process::getpid());
    let mut dir = std::env::temp_dir().join(&name);
    // A socket path must fit sun_path (108 bytes).
    if dir.as_os_str().len() > 80 {
        dir = std::path::Path::new("/tmp").join(&name);
    }
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
    let _ = std::fs::remove_file(&path);
    let name = path.display().to_string();
    let b = socket::bind(&name, listen)?;
    Ok((
        Listener {
            fd: b.fd,
            name,
            proto: crate::config::model::SocketProto::Uwsgi,
            pre_routed: true,
        },
        PrivateDir(dir),
    ))
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
            drop(PrivateDir(path));
        }
    }
}

/// Removes the router's private directory when the master ends.
#[derive(Debug)]
pub struct PrivateDir(std::path::PathBuf);

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.0.join("router.sock"));
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// The name a router listener is kept under across a reload.
pub fn router_key(addr: &str) -> String {
    format!("http:{addr}")
}

fn log(line: impl AsRef<str>) {
    super::log(line);
}
