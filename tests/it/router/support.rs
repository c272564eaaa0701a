//! Helpers for the router tests: the gateway in a child process (this test
//! binary re-run on [`router_child`] with a config file), tiny uwsgi
//! backends on UNIX sockets that record what they receive, and a raw
//! HTTP client that reads responses by their framing.
//!
//! Readiness is polled with a deadline; children are killed by pid and
//! reaped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use ruwsgi::config::{Applied, Config, Origin};
use ruwsgi::protocol::uwsgi::{self, Header, Packet, HEADER_LEN};

/// Environment variable naming the child's config file.
const CHILD_ENV: &str = "RUWSGI_ROUTER_TEST_CONFIG";
/// How long anything in these tests may take to become ready.
pub const READY: Duration = Duration::from_secs(10);
/// Read timeout of test clients.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Becomes `uid` (a user no other process runs as, so what follows
/// touches no other test) and puts `count` descriptors in flight on a
/// socket pair nobody reads, kept until the process ends. The kernel counts
/// in-flight descriptors per user and refuses to pass more (ETOOMANYREFS)
/// while the count is over the sender's descriptor limit.
fn own_user_with_descriptors_in_flight(uid: u32, count: usize) {
    // SAFETY: setgroups/setgid/setuid with plain integers; the results
    // are checked.
    let switched = unsafe {
        libc::setgroups(0, std::ptr::null()) == 0
            && libc::setgid(uid) == 0
            && libc::setuid(uid) == 0
    };
    assert!(
        switched,
        "setuid({uid}): {}",
        std::io::Error::last_os_error()
    );
    let (held, unread) = UnixStream::pair().expect("socketpair");
    let null = std::fs::File::open("/dev/null").expect("/dev/null");
    for _ in 0..count {
        ruwsgi::sys::socket::send_with_fd(held.as_raw_fd(), b"x", null.as_raw_fd())
            .expect("passing a descriptor");
    }
    std::mem::forget((held, unread));
}

/// Lowers this process's descriptor limit so that exactly `room`
/// descriptor numbers are free below it (the router's own set-up takes a
/// few of those).
fn limit_descriptors(room: u64) {
    let open: std::collections::HashSet<u64> = std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .collect();
    let mut free = 0;
    let mut fd = 0;
    while free < room {
        if !open.contains(&fd) {
            free += 1;
        }
        fd += 1;
    }
    let limit = libc::rlimit {
        rlim_cur: fd,
        rlim_max: fd,
    };
    // SAFETY: setrlimit with a valid, initialised struct.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    assert_eq!(rc, 0, "setrlimit");
}

/// Not a test: the body of the router child. Without the environment
/// variable it does nothing.
#[test]
fn router_child() {
    let Ok(file) = std::env::var(CHILD_ENV) else {
        return;
    };
    let text = std::fs::read_to_string(&file).expect("child config");
    let applied = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.is_empty())
        .map(|(i, line)| {
            let (k, v) = line.split_once('=').unwrap_or((line, ""));
            Applied {
                key: k.trim().as_bytes().to_vec(),
                value: Some(v.trim_start().as_bytes().to_vec()),
                origin: Origin::File {
                    file: Arc::from(file.as_str()),
                    line: i + 1,
                },
            }
        })
        .collect();
    let config = Config {
        applied,
        ..Config::default()
    };
    let mut cfg = match config.router_config() {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    cfg.local_socket = std::env::var("RUWSGI_ROUTER_TEST_SOCKET0").ok();
    let listeners = ruwsgi::router::bind_all(&cfg).expect("bind");
    let port = std::net::TcpListener::from(listeners[0].try_clone().expect("dup"))
        .local_addr()
        .expect("local addr")
        .port();
    let port_file = Path::new(&file).with_extension("port");
    std::fs::write(port_file.with_extension("tmp"), port.to_string()).expect("port file");
    std::fs::rename(port_file.with_extension("tmp"), &port_file).expect("port file");
    // Clients wait in the listen queue until the router runs. The user
    // switch writes nothing here and the descriptors go in flight before
    // the limit is lowered.
    if let Some(uid) = std::env::var("RUWSGI_ROUTER_TEST_AS_UID")
        .ok()
        .and_then(|u| u.parse().ok())
    {
        own_user_with_descriptors_in_flight(uid, 96);
    }
    if let Some(room) = std::env::var("RUWSGI_ROUTER_TEST_FD_ROOM")
        .ok()
        .and_then(|r| r.parse::<u64>().ok())
    {
        limit_descriptors(room);
    }
    std::process::exit(ruwsgi::router::run(&cfg, listeners));
}

/// A gateway in a child process, killed and reaped on drop.
pub struct Router {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl Router {
    /// Starts a router on `127.0.0.1:0` with these `key = value` options
    /// (besides `http`); `socket0` is the default backend.
    pub fn start(dir: &Path, options: &[(&str, &str)], socket0: Option<&Path>) -> Router {
        let conf = dir.join("router.conf");
        let mut text = String::from("http = 127.0.0.1:0\n");
        // `#fd-room` (the descriptors the router may open) and
        // `#in-flight-as-uid` (the router runs as that user, with more
        // descriptors in flight than it may open) are not options.
        for (k, v) in options.iter().filter(|(k, _)| !k.starts_with('#')) {
            text.push_str(&format!("{k} = {v}\n"));
        }
        std::fs::write(&conf, text).expect("write config");
        let _ = std::fs::remove_file(conf.with_extension("port"));
        let log = dir.join("router.log");
        let stderr = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
        cmd.args([
            "--exact",
            "router::support::router_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &conf)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
        if let Some(s) = socket0 {
            cmd.env("RUWSGI_ROUTER_TEST_SOCKET0", s);
        }
        if let Some((_, uid)) = options.iter().find(|(k, _)| *k == "#in-flight-as-uid") {
            cmd.env("RUWSGI_ROUTER_TEST_AS_UID", uid);
        }
        if let Some(room) = options
            .iter()
            .find(|(k, _)| *k == "#fd-room")
            .map(|(_, v)| *v)
        {
            cmd.env("RUWSGI_ROUTER_TEST_FD_ROOM", room);
        }
        crate::util::die_with_parent(&mut cmd);
        // Owned by the guard from the start: a failed wait kills it.
        let mut router = Router {
            child: Some(cmd.spawn().expect("spawn router child")),
            addr: ([127, 0, 0, 1], 0).into(),
            log,
        };
        let port_file = conf.with_extension("port");
        let deadline = Instant::now() + READY;
        let port: u16 = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                break text.trim().parse().expect("port");
            }
            if let Some(Ok(Some(status))) = router.child.as_mut().map(Child::try_wait) {
                panic!("router exited early ({status}): {}", router.log_text());
            }
            assert!(Instant::now() < deadline, "router did not start");
            thread::sleep(Duration::from_millis(5));
        };
        router.addr = ([127, 0, 0, 1], port).into();
        while TcpStream::connect(router.addr).is_err() {
            assert!(Instant::now() < deadline, "router not accepting");
            thread::sleep(Duration::from_millis(5));
        }
        router
    }

    /// Starts a router that must fail at start; returns its exit status
    /// and log.
    pub fn start_failure(dir: &Path, options: &[(&str, &str)]) -> (i32, String) {
        let conf = dir.join("router.conf");
        let mut text = String::from("http = 127.0.0.1:0\n");
        for (k, v) in options {
            text.push_str(&format!("{k} = {v}\n"));
        }
        std::fs::write(&conf, text).expect("write config");
        let out = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "router::support::router_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &conf)
            .stdin(Stdio::null())
            .output()
            .expect("run router child");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The router child's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + READY;
        loop {
            let text = self.log_text();
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "log never showed {needle:?}:\n{text}"
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `sig` and waits for the exit status (killing after the
    /// deadline).
    pub fn stop_with(mut self, sig: i32) -> Option<i32> {
        let mut child = self.child.take()?;
        // SAFETY: kill(2) on the pid of a child we spawned and still own.
        unsafe {
            libc::kill(child.id() as libc::pid_t, sig);
        }
        let deadline = Instant::now() + READY;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What a test backend received on one connection.
#[derive(Debug, Clone)]
pub struct Received {
    pub modifier1: u8,
    pub modifier2: u8,
    pub vars: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    /// The last value of `key`.
    pub fn var(&self, key: &str) -> Option<&str> {
        self.vars
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// How a test backend answers.
pub type Answer = Arc<dyn Fn(&Received) -> Reply + Send + Sync>;

/// A test backend's reply.
pub enum Reply {
    /// Write these bytes, then close.
    Bytes(Vec<u8>),
    /// Write these pieces with a pause between, then close.
    Pieces(Vec<Vec<u8>>, Duration),
    /// Say nothing; keep the connection open until the backend stops.
    Silent,
    /// After these bytes, echo whatever arrives (a 101 tunnel).
    Echo(Vec<u8>),
}

/// A `Content-Length` response with this body.
pub fn ok(body: &str) -> Reply {
    Reply::Bytes(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

/// A uwsgi backend on a UNIX socket that records every request.
pub struct Backend {
    pub path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    received: mpsc::Receiver<Received>,
}

impl Backend {
    pub fn start(path: &Path, answer: Answer) -> Backend {
        let listener = UnixListener::bind(path).expect("bind backend");
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, received) = mpsc::channel();
        let flag = stop.clone();
        let held: Arc<Mutex<Vec<UnixStream>>> = Arc::default();
        let thread = thread::spawn(move || {
            for stream in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (tx, answer, held) = (tx.clone(), answer.clone(), held.clone());
                thread::spawn(move || serve_one(stream, &tx, &*answer, &held));
            }
            held.lock().unwrap_or_else(|e| e.into_inner()).clear();
        });
        Backend {
            path: path.to_path_buf(),
            stop,
            thread: Some(thread),
            received,
        }
    }

    /// The next request received (waits up to [`READY`]).
    pub fn next(&self) -> Received {
        self.received
            .recv_timeout(READY)
            .expect("backend received nothing")
    }

    pub fn try_next(&self, wait: Duration) -> Option<Received> {
        self.received.recv_timeout(wait).ok()
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve_one(
    mut stream: UnixStream,
    tx: &mpsc::Sender<Received>,
    answer: &(dyn Fn(&Received) -> Reply + Send + Sync),
    held: &Mutex<Vec<UnixStream>>,
) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let mut header = [0u8; HEADER_LEN];
    if stream.read_exact(&mut header).is_err() {
        return;
    }
    let h = Header::parse(&header).expect("header");
    let mut block = vec![0u8; usize::from(h.datasize)];
    if stream.read_exact(&mut block).is_err() {
        return;
    }
    let mut packet = header.to_vec();
    packet.extend_from_slice(&block);
    let parsed = Packet::parse(&packet);
    let vars: Vec<(String, String)> = parsed
        .vars()
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect();
    let length = parsed
        .vars()
        .get(b"CONTENT_LENGTH")
        .map_or(0, uwsgi::content_length);
    let mut body = Vec::new();
    let _ = (&mut stream).take(length).read_to_end(&mut body);
    let rec = Received {
        modifier1: h.modifier1,
        modifier2: h.modifier2,
        vars,
        body,
    };
    let reply = answer(&rec);
    let _ = tx.send(rec);
    match reply {
        Reply::Bytes(b) => {
            let _ = stream.write_all(&b);
        }
        Reply::Pieces(pieces, pause) => {
            for p in pieces {
                let _ = stream.write_all(&p);
                thread::sleep(pause);
            }
        }
        Reply::Silent => held.lock().unwrap_or_else(|e| e.into_inner()).push(stream),
        Reply::Echo(first) => {
            let _ = stream.write_all(&first);
            let mut buf = [0u8; 4096];
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 || stream.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
}

/// A parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// The head as received, final blank line included.
    pub head: String,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// A client connection reading responses by their framing.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect to router");
        stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write request");
    }

    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 65536];
        match self.stream.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// Reads one response (`None` when the connection ends first).
    pub fn response(&mut self, head_request: bool) -> Option<Response> {
        let (status, head_len, length, chunked) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut r = httparse::Response::new(&mut headers);
            if let Ok(httparse::Status::Complete(n)) = r.parse(&self.buf) {
                let get = |name: &str| {
                    r.headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .map(|h| String::from_utf8_lossy(h.value).into_owned())
                };
                let length = get("content-length").and_then(|v| v.parse::<usize>().ok());
                let chunked =
                    get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
                break (r.code.unwrap_or(0), n, length, chunked);
            }
            if !self.fill() {
                return None;
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_len]).into_owned();
        self.buf.drain(..head_len);
        let body = if head_request || status == 204 || status == 304 || (100..200).contains(&status)
        {
            Vec::new()
        } else if chunked {
            self.read_chunked()
        } else if let Some(n) = length {
            while self.buf.len() < n {
                if !self.fill() {
                    break;
                }
            }
            self.buf.drain(..n.min(self.buf.len())).collect()
        } else {
            while self.fill() {}
            std::mem::take(&mut self.buf)
        };
        Some(Response { status, head, body })
    }

    fn read_chunked(&mut self) -> Vec<u8> {
        let mut decoder = ruwsgi::protocol::chunked::ChunkedDecoder::default();
        let mut body = Vec::new();
        loop {
            match decoder.decode(&self.buf) {
                Ok((n, ruwsgi::protocol::chunked::Chunk::Data(d))) => {
                    body.extend_from_slice(d);
                    self.buf.drain(..n);
                }
                Ok((n, ruwsgi::protocol::chunked::Chunk::End)) => {
                    self.buf.drain(..n);
                    return body;
                }
                Ok((n, ruwsgi::protocol::chunked::Chunk::Incomplete)) => {
                    self.buf.drain(..n);
                    if !self.fill() {
                        return body;
                    }
                }
                Err(e) => panic!("bad chunked response: {e}"),
            }
        }
    }

    /// Everything until the router closes (`Err` on timeout).
    pub fn rest(&mut self) -> Result<Vec<u8>, String> {
        let mut chunk = [0u8; 65536];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(std::mem::take(&mut self.buf)),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return Ok(std::mem::take(&mut self.buf))
                }
                Err(e) => {
                    return Err(format!(
                        "{e} after {:?}",
                        String::from_utf8_lossy(&self.buf)
                    ))
                }
            }
        }
    }

    /// The connection is still open: nothing to read within `wait`.
    pub fn is_open(&mut self, wait: Duration) -> bool {
        self.stream.set_read_timeout(Some(wait)).expect("timeout");
        let mut b = [0u8; 1];
        let open = matches!(self.stream.read(&mut b), Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut);
        self.stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .expect("timeout");
        open
    }
}

/// One request on a fresh connection; everything until close.
pub fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut c = Client::connect(addr);
    c.send(request);
    c.rest().expect("read until close")
}

/// The machine's host name, as the router's `SERVER_NAME`.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim_end().to_string())
        .unwrap_or_default()
}
