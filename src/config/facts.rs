//! Facts about the running process that magic variables expose (`%v %h %t
//! %T %V %k %u %U %g %G %b`), gathered once at start-up with std only, so
//! the resolver stays pure and tests can inject fixed values.

use std::os::unix::ffi::OsStrExt;

/// uWSGI's version string as ruwsgi reports it: the 2.0 release whose
/// behaviour it follows, then its own name and version.
pub const VERSION: &str = concat!("2.0.21-ruwsgi-", env!("CARGO_PKG_VERSION"));

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    /// Working directory at start-up (physical path).
    pub cwd: Vec<u8>,
    pub hostname: Vec<u8>,
    pub now_secs: u64,
    pub now_micros: u64,
    pub version: Vec<u8>,
    pub cpus: u32,
    pub uid: u32,
    pub user: Vec<u8>,
    pub gid: u32,
    pub group: Vec<u8>,
    pub binary_path: Vec<u8>,
}

impl HostFacts {
    /// Reads the facts from this process and machine.
    pub fn detect() -> HostFacts {
        let cwd = std::env::current_dir()
            .map(|p| p.as_os_str().as_bytes().to_vec())
            .unwrap_or_default();
        let hostname = std::fs::read("/proc/sys/kernel/hostname")
            .map(|mut h| {
                while h.last() == Some(&b'\n') {
                    h.pop();
                }
                h
            })
            .unwrap_or_default();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let (uid, gid) = ids();
        let binary_path = std::env::current_exe()
            .map(|p| p.as_os_str().as_bytes().to_vec())
            .unwrap_or_else(|_| b"uwsgi".to_vec());
        HostFacts {
            cwd,
            hostname,
            now_secs: now.as_secs(),
            now_micros: now.as_micros() as u64,
            version: VERSION.as_bytes().to_vec(),
            cpus: online_cpus(),
            uid,
            user: name_of("/etc/passwd", uid).unwrap_or_else(|| uid.to_string().into_bytes()),
            gid,
            group: name_of("/etc/group", gid).unwrap_or_else(|| gid.to_string().into_bytes()),
            binary_path,
        }
    }
}

/// Real uid and gid, from `/proc/self/status`.
fn ids() -> (u32, u32) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("Uid:"), field("Gid:"))
}

/// The name for an id in a passwd-style file (`name:x:id:...`).
fn name_of(file: &str, id: u32) -> Option<Vec<u8>> {
    let text = std::fs::read(file).ok()?;
    text.split(|&b| b == b'\n').find_map(|line| {
        let mut fields = line.split(|&b| b == b':');
        let name = fields.next()?;
        let _ = fields.next()?;
        let field_id = std::str::from_utf8(fields.next()?)
            .ok()?
            .parse::<u32>()
            .ok()?;
        (field_id == id).then(|| name.to_vec())
    })
}

/// Online CPUs as `sysconf(_SC_NPROCESSORS_ONLN)` counts them.
fn online_cpus() -> u32 {
    let parse = |s: &str| -> Option<u32> {
        let mut n = 0;
        for range in s.trim().split(',') {
            let (a, b) = match range.split_once('-') {
                Some((a, b)) => (a.parse::<u32>().ok()?, b.parse::<u32>().ok()?),
                None => {
                    let a = range.parse::<u32>().ok()?;
                    (a, a)
                }
            };
            n += b.checked_sub(a)? + 1;
        }
        Some(n)
    };
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|s| parse(&s))
        .or_else(|| {
            std::thread::available_parallelism()
                .ok()
                .map(|n| n.get() as u32)
        })
        .unwrap_or(1)
}
