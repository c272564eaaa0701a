//! systemd notification (`NOTIFY_SOCKET`, spec §1.1.d): `READY=1` when the
//! emperor runs, the number of vassals it governs when that changes, and
//! its burial. Silent when the variable is absent or the socket is gone.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Where the notifications go.
#[derive(Debug, Default)]
pub struct Notify {
    target: Option<(UnixDatagram, SocketAddr)>,
}

impl Notify {
    /// Reads `NOTIFY_SOCKET` (`@name` is an abstract socket).
    pub fn from_env() -> Notify {
        let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
            return Notify::default();
        };
        let bytes = path.as_bytes();
        let addr = match bytes.strip_prefix(b"@") {
            Some(name) => SocketAddr::from_abstract_name(name),
            None => SocketAddr::from_pathname(&path),
        };
        let target = addr
            .ok()
            .and_then(|a| Some((UnixDatagram::unbound().ok()?, a)));
        Notify { target }
    }

    pub fn send(&self, message: &str) {
        if let Some((sock, addr)) = &self.target {
            let _ = sock.send_to_addr(message.as_bytes(), addr);
        }
    }

    pub fn ready(&self) {
        self.send("STATUS=uWSGI is ready\nREADY=1\n");
    }

    pub fn governing(&self, vassals: usize) {
        self.send(&format!(
            "STATUS=The Emperor is governing {vassals} vassals\n"
        ));
    }

    pub fn buried(&self) {
        self.send("STATUS=The Emperor is buried.\n");
    }
}
