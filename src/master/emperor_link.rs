//! The vassal side of the emperor pipe: an instance started by an emperor
//! gets the pipe's fd in `UWSGI_EMPEROR_FD`, announces itself on it, and
//! obeys the stop and reload bytes the emperor sends.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicI32, Ordering};

use crate::protocol::emperor::{received_log, FromVassal, ToVassal};

/// What the emperor asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Stop,
    Reload,
    GracefulStop,
    /// The pipe closed: the emperor is gone.
    Lost,
    /// A byte we do not act on.
    Ignored,
}

#[derive(Debug)]
pub struct EmperorLink {
    stream: UnixStream,
}

impl EmperorLink {
    /// The link named by `UWSGI_EMPEROR_FD`, if this instance is a vassal.
    pub fn from_env(env: &[(Vec<u8>, Vec<u8>)]) -> Option<EmperorLink> {
        let (_, v) = env.iter().find(|(k, _)| k == b"UWSGI_EMPEROR_FD")?;
        let fd: RawFd = std::str::from_utf8(v).ok()?.trim().parse().ok()?;
        // Only an open socket is taken over (a stale or bogus number in the
        // environment must not make us own, and later close, another fd).
        let Some(owned) = crate::sys::socket::adopt(fd) else {
            super::log(format!("UWSGI_EMPEROR_FD={fd} is not a socket: ignored"));
            return None;
        };
        let stream = UnixStream::from(owned);
        super::log(format!("*** has_emperor mode detected (fd: {fd}) ***"));
        Some(EmperorLink { stream })
    }

    pub fn fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    pub fn send(&self, msg: FromVassal) {
        let _ = (&self.stream).write_all(&[msg.to_byte()]);
    }

    /// Reads one byte after the fd polled readable.
    pub fn read_command(&self) -> Command {
        let mut b = [0u8; 1];
        match (&self.stream).read(&mut b) {
            Ok(1) => {
                super::log(received_log(b[0]));
                match ToVassal::from_byte(b[0]) {
                    Ok(ToVassal::Stop) => Command::Stop,
                    Ok(ToVassal::Reload) => Command::Reload,
                    Ok(ToVassal::GracefulStop) => Command::GracefulStop,
                    Err(_) => Command::Ignored,
                }
            }
            Ok(_) => Command::Lost,
            Err(e)
                if e.kind() == std::io::ErrorKind::Interrupted
                    || e.kind() == std::io::ErrorKind::WouldBlock =>
            {
                Command::Ignored
            }
            Err(e) => {
                super::log(format!("uwsgi_master_manage_emperor()/read(): {e}"));
                Command::Lost
            }
        }
    }
}

/// The emperor pipe as a worker sees it: set in each worker of a vassal,
/// taken by its first finished request.
static LOYALTY_FD: AtomicI32 = AtomicI32::new(-1);

/// In a freshly forked worker: its first request will announce loyalty.
pub fn arm_loyalty(fd: RawFd) {
    LOYALTY_FD.store(fd, Ordering::Relaxed);
}

/// Called when a worker finished its first request: tells the emperor this
/// vassal works (byte 17, once per worker process, as uWSGI's workers do).
pub fn announce_loyalty() {
    let fd = LOYALTY_FD.swap(-1, Ordering::Relaxed);
    if fd < 0 {
        return;
    }
    super::log("announcing my loyalty to the Emperor...");
    let byte = [FromVassal::Loyal.to_byte()];
    if let Err(e) = crate::sys::process::write_fd(fd, &byte) {
        super::log(format!("write(): {e} [emperor pipe]"));
    }
}
