//! Long-running servers for the tests: our binary, the real uWSGI, nginx.
//!
//! [`Proc`] owns one spawned server: it runs in a process group of its own
//! (so its workers share it), its stdout and stderr go to a log file in the
//! test's temp dir, and dropping the guard (also while a test panics) kills
//! the whole group by the recorded pid and reaps the leader. Readiness is
//! polled with a deadline (a log line, a connect), never slept for.
//!
//! The clients here speak raw bytes: uwsgi packets built from literal
//! vars, HTTP requests written as text, and a reader that collects a reply
//! until the server closes. Not here: what a reply should be (the tests).

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

/// How long a server may take to become ready (generous: the suite shares
/// two cores with builds and other tests).
pub const READY: Duration = Duration::from_secs(20);

/// How long a client waits for a reply before giving up on it.
pub const REPLY: Duration = Duration::from_secs(10);

/// How often a condition is polled.
const POLL: Duration = Duration::from_millis(20);

/// Polls `check` until it yields a value or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(POLL);
    }
}

/// One spawned server and its log; see the module doc.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Child,
    pid: i32,
    log: PathBuf,
    status: Option<i32>,
}

impl Proc {
    /// Spawns `cmd` as the leader of a new process group, stdin from
    /// `/dev/null`, stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Proc {
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let err = file.try_clone().expect("dup log fd");
        crate::util::die_with_parent(&mut cmd);
        cmd.process_group(0)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {name} ({cmd:?}): {e}"));
        let pid = child.id() as i32;
        Proc {
            name: name.to_string(),
            child,
            pid,
            log: log.to_path_buf(),
            status: None,
        }
    }

    /// The leader's pid (also the process group id).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Everything logged so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// The last lines of the log, for failure messages.
    pub fn tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let from = lines.len().saturating_sub(40);
        format!(
            "--- last lines of the {} log ({}) ---\n{}",
            self.name,
            self.log.display(),
            lines[from..].join("\n")
        )
    }

    /// How many log lines contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.log().lines().filter(|l| l.contains(needle)).count()
    }

    /// Waits until at least `n` log lines contain `needle`; returns the
    /// `n`th of them. Panics with the log tail on timeout or if the server
    /// exits first.
    pub fn wait_lines(&mut self, needle: &str, n: usize, timeout: Duration) -> String {
        let found = wait_for(timeout, || {
            // The status first: a line logged just before exiting counts.
            let exited = self.try_status();
            let log = self.log();
            if let Some(l) = log.lines().filter(|l| l.contains(needle)).nth(n - 1) {
                return Some(Ok(l.to_string()));
            }
            exited.map(Err)
        });
        match found {
            Some(Ok(line)) => line,
            Some(Err(rc)) => panic!(
                "{} exited ({rc}) before logging {needle:?} (x{n})\n{}",
                self.name,
                self.tail()
            ),
            None => panic!(
                "{} did not log {needle:?} (x{n}) within {timeout:?}\n{}",
                self.name,
                self.tail()
            ),
        }
    }

    /// Waits for one log line containing `needle`.
    pub fn wait_line(&mut self, needle: &str, timeout: Duration) -> String {
        self.wait_lines(needle, 1, timeout)
    }

    /// Sends `sig` to the leader only.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with integer arguments; the pid is our child,
        // never reaped while `self` lives (so it cannot have been reused).
        unsafe { libc::kill(self.pid, sig) };
    }

    /// The exit status (as a shell shows it) once the leader has exited.
    /// The leader is not reaped here: its zombie keeps the pid, and so the
    /// group id, from being reused until the guard is dropped.
    pub fn try_status(&mut self) -> Option<i32> {
        if self.status.is_some() {
            return self.status;
        }
        // SAFETY: a zeroed siginfo_t is a valid value; waitid(2) with
        // WNOWAIT only reads the state of our own child and fills `info`;
        // si_pid/si_status read the union fields that waitid sets for
        // CLD_* codes.
        unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
            if libc::waitid(libc::P_PID, self.pid as libc::id_t, &mut info, flags) == 0
                && info.si_pid() == self.pid
            {
                let code = info.si_status();
                self.status = Some(if info.si_code == libc::CLD_EXITED {
                    code
                } else {
                    128 + code
                });
            }
        }
        self.status
    }

    /// Waits for the leader to exit; panics with the log tail on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> i32 {
        match wait_for(timeout, || self.try_status()) {
            Some(rc) => rc,
            None => panic!(
                "{} still running after {timeout:?}\n{}",
                self.name,
                self.tail()
            ),
        }
    }

    /// Whether any process of the group is still there (zombies count).
    fn group_alive(&self) -> bool {
        // SAFETY: kill(2) with signal 0 only checks for existence.
        unsafe { libc::kill(-self.pid, 0) == 0 }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group this guard created; SIGKILL
        // cannot be caught, so every member (workers too) goes.
        unsafe { libc::kill(-self.pid, libc::SIGKILL) };
        // Reaps the leader (never reaped before, see `try_status`).
        let _ = self.child.wait();
        // Orphaned members are reaped by init: give them a moment so a
        // test that ends leaves nothing running.
        let _ = wait_for(Duration::from_secs(2), || {
            (!self.group_alive()).then_some(())
        });
    }
}

/// A command for `program` run in `dir` with a scrubbed environment
/// (`PATH`, `HOME` = `dir`, `LANG=C`), as `util::run_uwsgi` runs ours,
/// plus `PYTHONDONTWRITEBYTECODE` so imported test apps leave no
/// `__pycache__` in the source tree.
pub fn scrubbed(program: impl AsRef<OsStr>, dir: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(dir).env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd.env("HOME", dir)
        .env("LANG", "C")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    cmd
}

/// Starts our binary in `dir` with `args`, logging to `dir/ours.log`.
pub fn spawn_ours(dir: &Path, args: &[&str]) -> Proc {
    let mut cmd = scrubbed(env!("CARGO_BIN_EXE_uwsgi"), dir);
    cmd.args(args);
    Proc::spawn("ruwsgi", cmd, &dir.join("ours.log"))
}

/// The pids in `spawned uWSGI worker N (pid: P, ...)` and
/// `Respawned uWSGI worker N (new pid: P)` lines, in log order, for worker
/// `id`.
pub fn worker_pids(log: &str, id: usize) -> Vec<i32> {
    let spawned = format!("spawned uWSGI worker {id} (pid: ");
    let respawned = format!("Respawned uWSGI worker {id} (new pid: ");
    log.lines()
        .filter_map(|l| {
            let rest = l
                .split_once(&spawned)
                .or_else(|| l.split_once(&respawned))?
                .1;
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

/// The pids in `spawned uWSGI http N (pid: P)` and `respawned uWSGI http
/// N (pid: P)` lines, in log order, for gateway process `n`.
pub fn gateway_pids(log: &str, n: usize) -> Vec<i32> {
    let spawned = format!("spawned uWSGI http {n} (pid: ");
    log.lines()
        .filter_map(|l| l.split_once(&spawned))
        .filter_map(|(_, rest)| rest.split(')').next()?.parse().ok())
        .collect()
}

/// Our binary as a master with `processes` router gateways on the UNIX
/// HTTP socket `front` in `dir` (and `extra` options), once all are up
/// and the socket accepts; with the gateways' pids, by number.
pub fn spawn_gateways(
    dir: &Path,
    front: &Path,
    processes: usize,
    extra: &[&str],
) -> (Proc, Vec<i32>) {
    let (front_s, n) = (front.display().to_string(), processes.to_string());
    let mut args = vec!["--master", "--http", &front_s, "--http-processes", &n];
    args.extend_from_slice(extra);
    let mut server = spawn_ours(dir, &args);
    server.wait_line(&format!("spawned uWSGI http {processes} (pid: "), READY);
    assert!(wait_unix(front, READY), "{}", server.tail());
    let log = server.log();
    let pids = (1..=processes).map(|g| gateway_pids(&log, g)[0]).collect();
    (server, pids)
}

/// The system call `pid` (its main thread) is blocked in, from
/// `/proc/PID/syscall`; `None` while it runs or when it cannot be read.
pub fn blocked_in(pid: i32) -> Option<libc::c_long> {
    let text = fs::read_to_string(format!("/proc/{pid}/syscall")).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Finds an executable: each of `names` on `PATH`, then the absolute
/// `fallbacks` (`/usr/sbin` is not on every `PATH`).
pub fn find_program(names: &[&str], fallbacks: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let on_path = names
        .iter()
        .flat_map(|n| std::env::split_paths(&path).map(move |d| d.join(n)));
    on_path
        .chain(fallbacks.iter().map(PathBuf::from))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The real uWSGI (not ours) with the given plugins loadable, if
/// installed (`apt-get install uwsgi-core uwsgi-plugin-python3`).
pub fn reference_uwsgi(plugins: &str) -> Option<PathBuf> {
    let ours = fs::canonicalize(env!("CARGO_BIN_EXE_uwsgi")).ok();
    let bin = find_program(&["uwsgi", "uwsgi-core"], &["/usr/bin/uwsgi-core"])?;
    if fs::canonicalize(&bin).ok() == ours {
        return None;
    }
    let out = Command::new(&bin)
        .args(["--plugins", plugins, "--version"])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let all = [out.stdout, out.stderr].concat();
    let text = String::from_utf8_lossy(&all);
    let real = text.starts_with("2.0") && !text.contains("ruwsgi");
    (out.status.success() && real && !text.contains("UNABLE to load")).then_some(bin)
}

/// A TCP port on 127.0.0.1 that was free a moment ago: bound, read and
/// closed here, never handed out twice by this process.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    loop {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("local_addr").port();
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if given.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
}

/// Waits until a unix socket accepts connections.
pub fn wait_unix(path: &Path, timeout: Duration) -> bool {
    wait_for(timeout, || UnixStream::connect(path).ok().map(|_| ())).is_some()
}

/// Waits until 127.0.0.1:`port` accepts connections.
pub fn wait_tcp(port: u16, timeout: Duration) -> bool {
    wait_for(timeout, || {
        TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .ok()
            .map(|_| ())
    })
    .is_some()
}

/// Where a client connects.
#[derive(Debug, Clone)]
pub enum Addr {
    Unix(PathBuf),
    Tcp(u16),
}

/// What a client got.
#[derive(Debug)]
pub struct Reply {
    /// Every byte received until the server closed (or the timeout).
    pub bytes: Vec<u8>,
    /// Whether the server closed the connection (EOF or reset) before
    /// the timeout.
    pub closed: bool,
    pub elapsed: Duration,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// The status code of an HTTP response, if it starts with one.
    pub fn status(&self) -> Option<u16> {
        let line = self.bytes.split(|&b| b == b'\n').next()?;
        let code = line.split(|&b| b == b' ').nth(1)?;
        std::str::from_utf8(code).ok()?.trim().parse().ok()
    }

    /// The bytes after the blank line ending the head.
    pub fn body(&self) -> &[u8] {
        match self.bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(i) => &self.bytes[i + 4..],
            None => &[],
        }
    }
}

/// A connected client stream of either kind.
pub enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    pub fn connect(addr: &Addr) -> io::Result<Stream> {
        let s = match addr {
            Addr::Unix(p) => Stream::Unix(UnixStream::connect(p)?),
            Addr::Tcp(port) => Stream::Tcp(TcpStream::connect((Ipv4Addr::LOCALHOST, *port))?),
        };
        let timeout = Some(REPLY);
        match &s {
            Stream::Unix(u) => {
                u.set_read_timeout(timeout)?;
                u.set_write_timeout(timeout)?;
            }
            Stream::Tcp(t) => {
                t.set_read_timeout(timeout)?;
                t.set_write_timeout(timeout)?;
            }
        }
        Ok(s)
    }

    /// Reads until the server closes; a reset also ends the reply.
    pub fn read_reply(&mut self, started: Instant) -> Reply {
        let mut bytes = Vec::new();
        let mut buf = [0u8; 65536];
        let closed = loop {
            match self.read(&mut buf) {
                Ok(0) => break true,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    break !matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    )
                }
            }
        };
        Reply {
            bytes,
            closed,
            elapsed: started.elapsed(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Connects, writes `data` and reads the reply until the server closes.
/// A write error (the server closed early) still reads what came back.
pub fn exchange(addr: &Addr, data: &[u8]) -> io::Result<Reply> {
    let started = Instant::now();
    let mut s = Stream::connect(addr)?;
    let _ = s.write_all(data);
    Ok(s.read_reply(started))
}

/// [`exchange`] that panics on a connect error.
pub fn request(addr: &Addr, data: &[u8]) -> Reply {
    exchange(addr, data).unwrap_or_else(|e| panic!("connecting to {addr:?}: {e}"))
}

/// A uwsgi packet: the 4-byte header then `u16le len | bytes` pairs.
pub fn uwsgi_packet(modifier1: u8, vars: &[(&str, &str)]) -> Vec<u8> {
    let mut block = Vec::new();
    for (k, v) in vars {
        for part in [k.as_bytes(), v.as_bytes()] {
            block.extend_from_slice(&(part.len() as u16).to_le_bytes());
            block.extend_from_slice(part);
        }
    }
    let mut packet = vec![modifier1];
    packet.extend_from_slice(&(block.len() as u16).to_le_bytes());
    packet.push(0);
    packet.extend_from_slice(&block);
    packet
}

/// A path usable as a unix socket name (shorter than `sun_path`).
pub fn sock_path(dir: &Path, name: &str) -> String {
    let p = dir.join(name);
    let s = p.to_str().expect("utf-8 temp path").to_string();
    assert!(s.len() < 100, "socket path too long for sun_path: {s}");
    s
}

// ---------------------------------------------------------------- peers

/// An nginx configuration: one foreground process (`daemon off;
/// master_process off;`), every path in `dir`, listening on
/// 127.0.0.1:`port`, `uwsgi_pass` to the unix socket `upstream` with the
/// parameters of Debian's `uwsgi_params`.
pub fn nginx_conf(dir: &Path, port: u16, upstream: &str) -> String {
    let d = dir.display();
    let params: String = [
        ("QUERY_STRING", "$query_string"),
        ("REQUEST_METHOD", "$request_method"),
        ("CONTENT_TYPE", "$content_type"),
        ("CONTENT_LENGTH", "$content_length"),
        ("REQUEST_URI", "$request_uri"),
        ("PATH_INFO", "$document_uri"),
        ("DOCUMENT_ROOT", "$document_root"),
        ("SERVER_PROTOCOL", "$server_protocol"),
        ("REQUEST_SCHEME", "$scheme"),
        ("REMOTE_ADDR", "$remote_addr"),
        ("REMOTE_PORT", "$remote_port"),
        ("SERVER_PORT", "$server_port"),
        ("SERVER_NAME", "$server_name"),
    ]
    .iter()
    .map(|(k, v)| format!("      uwsgi_param {k} {v};\n"))
    .collect();
    format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/nginx.err info;\nevents {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/cb;\n  proxy_temp_path {d}/px;\n\
         \x20 fastcgi_temp_path {d}/fc;\n  uwsgi_temp_path {d}/uw;\n  scgi_temp_path {d}/sc;\n\
         \x20 server {{\n    listen 127.0.0.1:{port};\n    server_name it.test;\n\
         \x20   location / {{\n{params}      uwsgi_pass unix:{upstream};\n    }}\n  }}\n}}\n"
    )
}

/// Starts nginx (see [`nginx_conf`]) in front of `upstream`; returns it
/// and its port once it accepts connections.
pub fn start_nginx(nginx: &Path, dir: &Path, upstream: &str) -> (Proc, u16) {
    start_peer(|port| {
        let conf = dir.join("nginx.conf");
        fs::write(&conf, nginx_conf(dir, port, upstream)).expect("writing nginx.conf");
        let mut cmd = Command::new(nginx);
        cmd.arg("-e")
            .arg(dir.join("nginx.err"))
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf);
        Proc::spawn("nginx", cmd, &dir.join("nginx.log"))
    })
}

/// Starts the real uWSGI's http router (`--http 127.0.0.1:PORT --http-to
/// upstream`, under a master); returns it and its port once it accepts.
pub fn start_uwsgi_router(uwsgi: &Path, dir: &Path, upstream: &str) -> (Proc, u16) {
    start_peer(|port| {
        let mut cmd = scrubbed(uwsgi, dir);
        let http = format!("127.0.0.1:{port}");
        cmd.args([
            "--plugins",
            "http",
            "--master",
            "--http",
            &http,
            "--http-to",
            upstream,
        ]);
        Proc::spawn("uwsgi-http", cmd, &dir.join("router.log"))
    })
}

/// Starts a peer with `make(port)` until one binds: a port chosen by
/// [`free_port`] may be taken by someone else meanwhile.
fn start_peer(make: impl Fn(u16) -> Proc) -> (Proc, u16) {
    for _ in 0..3 {
        let port = free_port();
        let mut peer = make(port);
        let up = wait_for(READY, || {
            if wait_tcp(port, Duration::ZERO) {
                return Some(true);
            }
            peer.try_status().map(|_| false)
        });
        match up {
            Some(true) => return (peer, port),
            _ if peer.log().contains("in use") => continue,
            _ => panic!("peer did not start on port {port}\n{}", peer.tail()),
        }
    }
    panic!("no free port for the peer after 3 tries");
}

/// The environ dump of `tests/apps/environ.py`: `[["key", "value"], ...]`.
pub fn parse_environ(json: &[u8]) -> Option<Vec<(String, String)>> {
    let mut c = Json { b: json, i: 0 };
    let mut out = Vec::new();
    c.eat(b'[')?;
    if c.eat(b']').is_some() {
        return Some(out);
    }
    loop {
        c.eat(b'[')?;
        let k = c.string()?;
        c.eat(b',')?;
        let v = c.string()?;
        c.eat(b']')?;
        out.push((k, v));
        if c.eat(b',').is_none() {
            c.eat(b']')?;
            return Some(out);
        }
    }
}

/// Just enough JSON for [`parse_environ`] (Python's `ensure_ascii` output).
struct Json<'a> {
    b: &'a [u8],
    i: usize,
}

impl Json<'_> {
    fn eat(&mut self, c: u8) -> Option<()> {
        while self.b.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
        (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = std::str::from_utf8(self.b.get(self.i..self.i + 4)?).ok()?;
        self.i += 4;
        u32::from_str_radix(h, 16).ok()
    }

    fn string(&mut self) -> Option<String> {
        self.eat(b'"')?;
        let mut out = String::new();
        loop {
            let c = *self.b.get(self.i)?;
            self.i += 1;
            let ch = match c {
                b'"' => return Some(out),
                b'\\' => {
                    self.i += 1;
                    match *self.b.get(self.i - 1)? {
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'u' => {
                            let mut u = self.hex4()?;
                            if (0xD800..0xDC00).contains(&u)
                                && self.b.get(self.i..self.i + 2) == Some(b"\\u")
                            {
                                self.i += 2;
                                u = 0x10000 + ((u - 0xD800) << 10) + (self.hex4()? - 0xDC00);
                            }
                            char::from_u32(u).unwrap_or('\u{fffd}')
                        }
                        other => other as char,
                    }
                }
                _ => c as char,
            };
            out.push(ch);
        }
    }
}
