//! On-demand ("socket activated") vassals (spec §1.15): which socket a
//! vassal file asks for (`emperor_check_on_demand_socket`) and binding it
//! as uWSGI's `on_demand_bind` does (unix sockets mode 0666, stale file
//! removed; `host:port` is TCP). The emperor holds the socket and starts
//! the vassal, with the socket as its fd 0, on the first connection.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::config::OnDemand;

/// Mode of an on-demand unix socket.
const SOCKET_MODE: u32 = 0o666;
/// Upper bound on what is read to find a socket name.
const MAX_NAME_SOURCE: u64 = 4096;

/// The first line of `text` (up to the first control character), if any.
fn first_line(text: &[u8]) -> Option<Vec<u8>> {
    let end = text.iter().position(|&b| b < 32).unwrap_or(text.len());
    (end > 0).then(|| text[..end].to_vec())
}

/// `DIR/<file name without its last extension>.socket`.
fn in_directory(dir: &[u8], name: &[u8]) -> Option<Vec<u8>> {
    let start = name.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
    let dot = name.iter().rposition(|&b| b == b'.')?;
    let stem = name.get(start..dot)?;
    Some([dir, b"/", stem, b".socket"].concat())
}

/// The socket a vassal file asks for, if on-demand mode applies. `path`
/// is where the file is; `name` its vassal id.
pub fn socket_name(mode: &OnDemand, name: &[u8], path: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    match mode {
        OnDemand::Off => None,
        OnDemand::Directory(dir) => in_directory(dir, name),
        OnDemand::Extension(ext) => {
            let mut file_name = path.as_os_str().as_bytes().to_vec();
            file_name.extend_from_slice(ext);
            let mut text = Vec::new();
            std::fs::File::open(OsStr::from_bytes(&file_name))
                .ok()?
                .take(MAX_NAME_SOURCE)
                .read_to_end(&mut text)
                .ok()?;
            first_line(&text)
        }
        OnDemand::Exec(cmd) => run_exec(cmd, name, path),
    }
}

/// How long `emperor-on-demand-exec` may take before it is killed: the
/// emperor loop waits for it.
const EXEC_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// `emperor-on-demand-exec`: the first line `CMD "NAME"` prints. The name
/// is passed as `$1`, never pasted into the script, so a file name cannot
/// inject shell code (uWSGI pastes it between double quotes).
fn run_exec(cmd: &[u8], name: &[u8], path: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut script = cmd.to_vec();
    script.extend_from_slice(b" \"$1\"");
    let mut child = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(OsStr::from_bytes(&script))
        .arg("sh")
        .arg(OsStr::from_bytes(name))
        .current_dir(path.parent().unwrap_or(Path::new("/")))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    let started = std::time::Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() < EXEC_LIMIT => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            _ => {
                eprintln!(
                    "[emperor] emperor-on-demand-exec for {} took over {} s: killed",
                    String::from_utf8_lossy(name),
                    EXEC_LIMIT.as_secs()
                );
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let mut out = Vec::new();
    child
        .stdout
        .take()?
        .take(MAX_NAME_SOURCE)
        .read_to_end(&mut out)
        .ok()?;
    first_line(&out)
}

/// Binds and listens on an on-demand socket.
pub fn bind(socket: &[u8], backlog: i32) -> Result<OwnedFd, String> {
    let name = String::from_utf8_lossy(socket);
    let bound = crate::sys::socket::bind(&name, backlog)?;
    if let crate::sys::socket::Address::UnixPath(p) = crate::sys::socket::parse(&name) {
        crate::sys::socket::chmod(&p, SOCKET_MODE)
            .map_err(|e| format!("chmod(): {e} [socket {name}]"))?;
    }
    Ok(bound.fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_names() {
        let cases: &[(&str, Option<&str>)] = &[
            ("od.ini", Some("/run/od.socket")),
            ("vassals/app.v1.ini", Some("/run/app.v1.socket")),
            ("noext", None),
        ];
        for (name, want) in cases {
            let got = socket_name(
                &OnDemand::Directory(b"/run".to_vec()),
                name.as_bytes(),
                Path::new(name),
            );
            assert_eq!(got.as_deref(), want.map(str::as_bytes), "{name}");
        }
        assert_eq!(
            socket_name(&OnDemand::Off, b"a.ini", Path::new("a.ini")),
            None
        );
    }

    #[test]
    fn extension_and_exec() {
        let dir = std::env::temp_dir().join(format!("ruwsgi-od-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let vassal = dir.join("a.ini");
        std::fs::write(dir.join("a.ini.socket"), b"/tmp/a.sock\nignored\n").unwrap();
        let ext = OnDemand::Extension(b".socket".to_vec());
        assert_eq!(
            socket_name(&ext, b"a.ini", &vassal).as_deref(),
            Some(&b"/tmp/a.sock"[..])
        );
        assert_eq!(socket_name(&ext, b"b.ini", &dir.join("b.ini")), None);
        let exec = OnDemand::Exec(b"echo 127.0.0.1:0 for".to_vec());
        assert_eq!(
            socket_name(&exec, b"a.ini", &vassal).as_deref(),
            Some(&b"127.0.0.1:0 for a.ini"[..])
        );
        // A hostile file name stays data: no command runs, no file appears.
        let evil = b"x$(touch pwned)`touch pwned2`\".ini";
        assert_eq!(
            socket_name(&exec, evil, &vassal).as_deref(),
            Some(&[&b"127.0.0.1:0 for "[..], &evil[..]].concat()[..])
        );
        assert!(!dir.join("pwned").exists() && !dir.join("pwned2").exists());
        let sock = dir.join("od.socket");
        let fd = bind(sock.as_os_str().as_bytes(), 10).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
            0o666
        );
        drop(fd);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
