//! Serving Python WSGI apps like a uWSGI 2.0.21 instance: our binary runs
//! the apps of `tests/apps/` from an ini file, on unix sockets in a
//! per-test temp dir, each server in its own process group behind a
//! [`Proc`] guard.
//!
//! - real apps: plain, `wsgiref.validate`, Flask, Django;
//! - real peers: nginx (`uwsgi_pass`) and uWSGI's own http router in front
//!   of our `socket`; the app sees the environ it sees under the real uWSGI;
//! - the uwsgi packet errors of `routing-and-protocol.md` §1.5;
//! - the master's lifecycle (`emperor-and-master.md` §2): SIGHUP under
//!   load, worker respawn, harakiri, shutdown signals and exit codes;
//! - bad apps, missing apps, the interpreter's start-up.
//!
//! Tests that need software which may be absent (Flask, Django, nginx, the
//! real uWSGI) print `SKIP wsgi::<test>: <reason>` and pass, unless
//! `RUWSGI_IT_REQUIRE_PEERS` is set (`.ci/run` installs them and sets it).

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::server::{
    blocked_in, exchange, find_program, parse_environ, reference_uwsgi, request, scrubbed,
    sock_path, spawn_ours, start_nginx, start_uwsgi_router, uwsgi_packet, wait_for, wait_unix,
    worker_pids, Addr, Proc, Reply, Stream, READY,
};
use crate::util::{repo_root, run_uwsgi, visible, Invocation, TempDir};

/// How long a signalled master may take to exit (its tick is 1 s).
const EXIT: Duration = Duration::from_secs(10);

/// `tests/apps`, where the test apps live.
fn apps() -> PathBuf {
    repo_root().join("tests/apps")
}

/// Writes `DIR/app.ini`: `[uwsgi]`, `socket = DIR/u.sock`, `http-socket =
/// DIR/h.sock`, then `lines` with `@APPS@` standing for `tests/apps`.
fn write_ini(dir: &Path, lines: &str) -> PathBuf {
    let ini = dir.join("app.ini");
    let (u, h) = (sock_path(dir, "u.sock"), sock_path(dir, "h.sock"));
    let lines = lines.replace("@APPS@", &apps().display().to_string());
    let text = format!("[uwsgi]\nsocket = {u}\nhttp-socket = {h}\n{lines}\n");
    std::fs::write(&ini, text).expect("writing app.ini");
    ini
}

/// Runs `uwsgi --ini INI` to its end (for instances that must not start).
fn run_ini(dir: &Path, ini: PathBuf) -> crate::util::Output {
    let args = vec!["--ini".into(), ini.into()];
    run_uwsgi(
        dir,
        &Invocation {
            args,
            ..Invocation::default()
        },
    )
}

/// Our binary serving an ini in a fresh temp dir. The server is declared
/// first so it is killed before its directory is removed.
struct Instance {
    server: Proc,
    /// The `socket` (uwsgi protocol).
    u: Addr,
    /// The `http-socket`.
    h: Addr,
    dir: TempDir,
}

impl Instance {
    /// Starts `uwsgi --ini app.ini` (see [`write_ini`]) and waits until
    /// every worker (`processes = N` in `lines`, else 1) is spawned and
    /// both sockets accept.
    fn start(lines: &str) -> Instance {
        let dir = TempDir::new();
        let ini = write_ini(dir.path(), lines);
        let mut server = spawn_ours(dir.path(), &["--ini", &ini.display().to_string()]);
        let workers = lines
            .lines()
            .find_map(|l| l.strip_prefix("processes = "))
            .map_or(1, |n| n.parse().expect("processes = N"));
        for id in 1..=workers {
            server.wait_line(&format!("spawned uWSGI worker {id} ("), READY);
        }
        let (u, h) = (dir.path().join("u.sock"), dir.path().join("h.sock"));
        for sock in [&u, &h] {
            let up = wait_unix(sock, READY);
            assert!(up, "{} never accepted\n{}", sock.display(), server.tail());
        }
        Instance {
            server,
            u: Addr::Unix(u),
            h: Addr::Unix(h),
            dir,
        }
    }

    /// The current pid of worker 1.
    fn worker(&self) -> i32 {
        let pids = worker_pids(&self.server.log(), 1);
        *pids.last().expect("worker 1 was spawned")
    }

    /// `GET path HTTP/1.0` on the http-socket.
    fn get(&self, path: &str) -> Reply {
        let head = format!("GET {path} HTTP/1.0\r\nHost: it.test\r\n\r\n");
        request(&self.h, head.as_bytes())
    }

    /// Asserts a 200 with `body`.
    fn ok(&self, reply: &Reply, body: &[u8]) {
        let (text, tail) = (reply.text(), self.server.tail());
        assert_eq!(reply.status(), Some(200), "{text:?}\n{tail}");
        assert_eq!(reply.body(), body, "{text:?}");
    }

    /// Asserts that the log has `needle` already.
    fn logged(&self, needle: &str) {
        let log = self.server.log();
        assert!(
            log.contains(needle),
            "no {needle:?} in the log\n{}",
            self.server.tail()
        );
    }

    /// Waits until `pid` is blocked in one of the system calls `calls`;
    /// fails with `what` otherwise.
    fn wait_blocked_in(&self, pid: i32, calls: &[libc::c_long], what: &str) {
        let blocked = wait_for(READY, || {
            let call = blocked_in(pid);
            calls.iter().any(|c| call == Some(*c)).then_some(())
        });
        assert!(blocked.is_some(), "{what}\n{}", self.server.tail());
    }

    /// Waits until `pid` sleeps in the app (`/sleep`).
    fn wait_asleep(&self, pid: i32) {
        let calls = [
            libc::SYS_clock_nanosleep,
            libc::SYS_nanosleep,
            libc::SYS_select,
            libc::SYS_pselect6,
        ];
        self.wait_blocked_in(pid, &calls, "the app never slept");
    }

    /// A keep-alive client on the http-socket whose first request
    /// (`GET /`) was answered: its connection waits parked in the worker.
    fn parked_client(&self) -> Stream {
        let mut parked = Stream::connect(&self.h).expect("connect");
        parked
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .unwrap();
        let first = read_one(&mut parked);
        let (head, body) = first.unwrap_or_else(|| panic!("no response\n{}", self.server.tail()));
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(body, b"default");
        parked
    }

    /// Waits for a log line with `needle`; returns it.
    fn wait(&mut self, needle: &str) -> String {
        self.server.wait_line(needle, READY)
    }
}

/// Reports a skipped test visibly; fails instead when the environment
/// promises every peer (`RUWSGI_IT_REQUIRE_PEERS`, set by `.ci/run`).
fn skip(test: &str, reason: &str) {
    crate::util::skip_test(&format!("wsgi::{test}"), reason);
}

/// Whether `python3` (the Python this binary embeds) imports `module`.
fn has_module(module: &str) -> bool {
    let import = format!("import {module}");
    let out = Command::new("python3").args(["-c", &import]).output();
    out.is_ok_and(|o| o.status.success())
}

/// Example A of `routing-and-protocol.md` §1.8, with a path.
fn example_a(path: &str) -> Vec<u8> {
    let vars = [
        ("REQUEST_METHOD", "GET"),
        ("PATH_INFO", path),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
    ];
    uwsgi_packet(0, &vars)
}

// ---------------------------------------------------------------- apps

#[test]
fn plain_app_over_uwsgi_and_http_sockets() {
    let mut it = Instance::start("master = true\nprocesses = 2\nwsgi-file = @APPS@/hello.py");
    // §1.4: a raw HTTP response, no uwsgi header, closed after it (with
    // the length of the one-element body added: README, differences).
    let r = request(&it.u, &example_a("/"));
    assert!(r.closed);
    assert_eq!(
        r.text(),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nHello World!"
    );
    it.ok(&it.get("/"), b"Hello World!");
    let post = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc";
    it.ok(&request(&it.h, post), b"Hello World!");
    it.logged("WSGI app 0 (mountpoint='') ready in ");
    let line = it.wait("GET / => generated 12 bytes in ");
    let head = "(HTTP/1.0 200) 2 headers in 65 bytes";
    assert!(
        line.contains("|app: 0|req: ") && line.contains(head),
        "{line}"
    );
}

/// Reads one response with a `Content-Length` off a kept-alive stream:
/// (head, body); `None` when the server closed first.
fn read_one(s: &mut Stream) -> Option<(String, Vec<u8>)> {
    read_next(s, &mut Vec::new())
}

/// [`read_one`] for pipelined responses: starts from the bytes in `carry`
/// and leaves there what it read past the response (the next ones).
fn read_next(s: &mut Stream, carry: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = carry.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&carry[..end]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no Content-Length in {head:?}"));
            while carry.len() < end + 4 + len {
                let n = s.read(&mut buf).ok().filter(|&n| n > 0)?;
                carry.extend_from_slice(&buf[..n]);
            }
            let body = carry[end + 4..end + 4 + len].to_vec();
            carry.drain(..end + 4 + len);
            return Some((head, body));
        }
        let n = s.read(&mut buf).ok().filter(|&n| n > 0)?;
        carry.extend_from_slice(&buf[..n]);
    }
}

/// HTTP keep-alive with one worker: a client that keeps its connection
/// open between requests does not hold the worker (its connection waits
/// in the worker's poll). A second client is answered while the first
/// idles, then the first one's next request on the same connection;
/// pipelined requests come back in order. The app returns a one-element
/// list without `Content-Length`: the worker adds it (PEP 3333), so no
/// chunking is needed.
#[test]
fn keep_alive_clients_take_turns_on_one_worker() {
    // A long socket-timeout: a worker stuck on the idle client would
    // answer the second one only after it, past the client's read timeout.
    let it = Instance::start("processes = 1\nsocket-timeout = 60\nwsgi-file = @APPS@/hello.py");
    let get = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let check = |reply: Option<(String, Vec<u8>)>, who: &str| {
        let (head, body) =
            reply.unwrap_or_else(|| panic!("{who}: no response\n{}", it.server.tail()));
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{who}: {head}");
        assert!(head.contains("\r\nContent-Length: 12"), "{who}: {head}");
        assert!(!head.contains("Connection: close"), "{who}: {head}");
        assert_eq!(body, b"Hello World!", "{who}");
    };
    let mut first = Stream::connect(&it.h).expect("connect");
    first.write_all(get).unwrap();
    check(read_one(&mut first), "first client");
    let mut second = Stream::connect(&it.h).expect("connect");
    second.write_all(get).unwrap();
    check(read_one(&mut second), "second client, first idle");
    first.write_all(get).unwrap();
    check(read_one(&mut first), "first client again");
    second
        .write_all(&[&get[..], &get[..], &get[..]].concat())
        .unwrap();
    let mut carry = Vec::new();
    for n in 1..=3 {
        check(
            read_next(&mut second, &mut carry),
            &format!("pipelined {n}"),
        );
    }
}

/// A graceful reload while a keep-alive client waits on a busy worker: the
/// request it sent meanwhile is answered by the old worker before it
/// leaves, not dropped with its parked connection.
#[test]
fn sighup_answers_a_request_waiting_on_a_parked_connection() {
    let mut it = Instance::start(
        "master = true\nprocesses = 1\nsocket-timeout = 60\nwsgi-file = @APPS@/cases.py",
    );
    let worker = it.worker();
    let get = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let mut parked = it.parked_client();
    // Another client keeps the only worker busy for a while.
    let mut busy = Stream::connect(&it.h).expect("connect");
    busy.write_all(b"GET /sleep?3 HTTP/1.0\r\n\r\n").unwrap();
    it.wait_asleep(worker);
    // The parked client's next request waits in its socket.
    parked.write_all(get).unwrap();
    it.server.signal(libc::SIGHUP);
    let graceful = format!("Gracefully killing worker 1 (pid: {worker})...");
    it.server.wait_lines(&graceful, 1, READY);
    let reply = read_one(&mut parked);
    let (head, body) =
        reply.unwrap_or_else(|| panic!("the waiting request was dropped\n{}", it.server.tail()));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, b"default");
    let slow = busy.read_reply(Instant::now());
    assert!(slow.text().starts_with("HTTP/1.0 200"), "{}", slow.text());
}

/// A busy worker that then finds both a parked client's request and a new
/// connection waiting serves the parked client first: a known client (or
/// the router's kept connection) does not wait behind a stranger's slow
/// request.
#[test]
fn a_parked_client_is_served_before_a_new_connection() {
    let it = Instance::start(
        "master = true\nprocesses = 1\nsocket-timeout = 60\nwsgi-file = @APPS@/cases.py",
    );
    let worker = it.worker();
    let get = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let mut parked = it.parked_client();
    let mut busy = Stream::connect(&it.h).expect("connect");
    busy.write_all(b"GET /sleep?0.5 HTTP/1.0\r\n\r\n").unwrap();
    it.wait_asleep(worker);
    // Queued while the worker sleeps: a slow stranger, then the parked
    // client's next request.
    let mut stranger = Stream::connect(&it.h).expect("connect");
    stranger
        .write_all(b"GET /sleep?3 HTTP/1.0\r\n\r\n")
        .unwrap();
    let asked = Instant::now();
    parked.write_all(get).unwrap();
    let reply = read_one(&mut parked);
    let waited = asked.elapsed();
    assert!(reply.is_some(), "no reply\n{}", it.server.tail());
    assert!(
        waited < Duration::from_secs(2),
        "waited {waited:?} behind the stranger"
    );
    let slow = stranger.read_reply(Instant::now());
    assert!(slow.text().starts_with("HTTP/1.0 200"), "{}", slow.text());
}

/// A worker that must stop after the request it is serving (here
/// `max-requests`) takes no new connection from the queue after it: the
/// next worker does.
#[test]
fn a_stopping_worker_leaves_queued_connections_to_the_next() {
    let mut it = Instance::start(
        "master = true\nprocesses = 1\nmax-requests = 3\nmin-worker-lifetime = 0\n\
         socket-timeout = 60\nwsgi-file = @APPS@/cases.py",
    );
    let worker = it.worker();
    let mut parked = it.parked_client();
    let mut busy = Stream::connect(&it.h).expect("connect");
    busy.write_all(b"GET /sleep?0.5 HTTP/1.0\r\n\r\n").unwrap();
    it.wait_asleep(worker);
    // The worker's third and last request, then a stranger in the queue.
    parked
        .write_all(b"GET /sleep?0.5 HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let mut stranger = Stream::connect(&it.h).expect("connect");
    stranger.write_all(b"GET /pid HTTP/1.0\r\n\r\n").unwrap();
    let slept = busy.read_reply(Instant::now());
    assert!(slept.text().ends_with("slept"), "{}", slept.text());
    let last = read_one(&mut parked);
    assert!(
        last.is_some_and(|(_, body)| body == b"slept"),
        "{}",
        it.server.tail()
    );
    let reply = stranger.read_reply(Instant::now());
    let pid = String::from_utf8_lossy(reply.body()).into_owned();
    assert!(reply.text().starts_with("HTTP/1.0 200"), "{}", reply.text());
    assert_ne!(
        pid,
        worker.to_string(),
        "the retiring worker took it\n{}",
        it.server.tail()
    );
    it.server
        .wait_line("Respawned uWSGI worker 1 (new pid: ", READY);
}

/// A kept-alive connection that stays idle closes after `socket-timeout`.
#[test]
fn idle_keep_alive_connection_closes_after_socket_timeout() {
    let it = Instance::start("processes = 1\nsocket-timeout = 1\nwsgi-file = @APPS@/hello.py");
    let mut s = Stream::connect(&it.h).expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
    let (head, _) = read_one(&mut s).expect("a response");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    // The server closes (end of stream) well before the client's own
    // read timeout (10 s).
    let mut buf = [0u8; 16];
    let n = s.read(&mut buf);
    assert!(matches!(n, Ok(0)), "expected the server to close: {n:?}");
}

/// `req: A/B` of the request line: B counts the requests of the whole
/// instance (`emperor-and-master.md` §2.17.b), whichever worker served them.
#[test]
fn request_line_total_counts_the_whole_instance() {
    let mut it = Instance::start("master = true\nprocesses = 2\nwsgi-file = @APPS@/cases.py");
    // Two overlapping requests keep both workers busy at once.
    std::thread::scope(|s| {
        let sleep = || request(&it.u, &example_a("/sleep"));
        for t in [s.spawn(sleep), s.spawn(sleep)] {
            assert!(t.join().expect("client").text().ends_with("slept"));
        }
    });
    request(&it.u, &example_a("/"));
    it.server.wait_lines("=> generated ", 3, READY);
    let log = it.server.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("=> generated "))
        .collect();
    let pids: HashSet<&str> = lines.iter().filter_map(|l| l.split('|').next()).collect();
    assert_eq!(
        pids.len(),
        2,
        "both workers should have served\n{}",
        it.server.tail()
    );
    // "[pid: P|app: 0|req: A/B] ..." -> B
    let total = |l: &&str| {
        let b = l.split_once("|req: ")?.1.split_once('/')?.1;
        b.split(']').next()?.parse().ok()
    };
    let mut totals: Vec<u64> = lines.iter().filter_map(total).collect();
    totals.sort_unstable();
    assert_eq!(totals, [1, 2, 3], "{}", it.server.tail());
}

/// The counts a worker keeps survive its respawn, as in uWSGI's shared
/// worker table: `req: A/B` goes on from the retired worker's A, and
/// `uwsgi.total_requests()` is the instance's total, not the process's.
#[test]
fn request_counts_go_on_after_a_respawn() {
    let mut it = Instance::start(
        "master = true\nprocesses = 1\nmax-requests = 2\nmin-worker-lifetime = 0\n\
         wsgi-file = @APPS@/cases.py",
    );
    let mut seen = Vec::new();
    for n in 1..=5 {
        let reply = request(&it.u, &example_a("/total"));
        let text = String::from_utf8_lossy(reply.body()).into_owned();
        let (pid, total) = text.split_once(' ').expect("PID TOTAL");
        // The total before this request (it counts finished ones).
        assert_eq!(
            total,
            (n - 1).to_string(),
            "request {n}\n{}",
            it.server.tail()
        );
        seen.push(pid.to_string());
        it.server.wait_lines("=> generated ", n, READY);
        if n % 2 == 0 && n < 5 {
            // max-requests: the worker retires; wait for its successor.
            it.server
                .wait_lines("Respawned uWSGI worker 1 (new pid: ", n / 2, READY);
        }
    }
    assert!(
        seen[0] == seen[1] && seen[1] != seen[2] && seen[3] != seen[4],
        "{seen:?}"
    );
    let log = it.server.log();
    let counts: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("=> generated "))
        .filter_map(|l| l.split_once("|req: ")?.1.split(']').next())
        .collect();
    assert_eq!(
        counts,
        ["1/1", "2/2", "3/3", "4/4", "5/5"],
        "{}",
        it.server.tail()
    );
}

#[test]
fn validator_wrapped_app_raises_nothing() {
    let mut it = Instance::start("master = true\nwsgi-file = @APPS@/validated.py");
    let http_post = b"POST /p?q=1 HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\n\
                      Content-Length: 5\r\nConnection: close\r\n\r\nhello";
    // What nginx or uWSGI's router would send: the CGI keys PEP 3333 requires.
    let vars = [
        ("REQUEST_METHOD", "POST"),
        ("SCRIPT_NAME", ""),
        ("PATH_INFO", "/up"),
        ("QUERY_STRING", ""),
        ("SERVER_NAME", "it"),
        ("SERVER_PORT", "80"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("CONTENT_LENGTH", "3"),
    ];
    let uwsgi_post = [uwsgi_packet(0, &vars), b"abc".to_vec()].concat();
    let cases: [(&Addr, &[u8], &[u8]); 3] = [
        (&it.h, b"GET / HTTP/1.0\r\n\r\n", b"validated "),
        (&it.h, http_post, b"validated hello"),
        (&it.u, &uwsgi_post, b"validated abc"),
    ];
    for (i, (addr, data, body)) in cases.iter().enumerate() {
        it.ok(&request(addr, data), body);
        it.server.wait_lines("=> generated ", i + 1, READY);
    }
    // wsgiref.validate raises AssertionError on a violation, warns with
    // WSGIWarning, and complains from __del__ when close() was not called.
    let log = it.server.log();
    for bad in [
        "Traceback",
        "AssertionError",
        "WSGIWarning",
        "Exception ignored",
        " 500)",
    ] {
        assert!(
            !log.contains(bad),
            "the validator complained ({bad})\n{}",
            it.server.tail()
        );
    }
}

#[test]
fn flask_app() {
    if !has_module("flask") {
        return skip(
            "flask_app",
            "python3 cannot import flask (pip install flask)",
        );
    }
    let it = Instance::start("master = true\npythonpath = @APPS@\nmodule = flaskapp:app");
    it.ok(&it.get("/"), b"flask ok");
    it.ok(&request(&it.u, &example_a("/")), b"flask ok");
    let file = "x".repeat(70_000);
    let body = format!(
        "--XyZ\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nfield\r\n--XyZ\r\n\
         Content-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\
         Content-Type: text/plain\r\n\r\n{file}\r\n--XyZ--\r\n"
    );
    let head = format!(
        "POST /upload HTTP/1.0\r\nHost: a\r\nContent-Type: multipart/form-data; boundary=XyZ\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    it.ok(
        &request(&it.h, (head + &body).as_bytes()),
        b"a.txt 70000 field",
    );
    assert_eq!(it.get("/missing").status(), Some(404));
}

#[test]
fn django_app() {
    if !has_module("django") {
        return skip(
            "django_app",
            "python3 cannot import django (pip install django)",
        );
    }
    let it = Instance::start("master = true\npythonpath = @APPS@\nmodule = djangoapp");
    it.ok(&it.get("/"), b"django ok");
    let post = b"POST /echo HTTP/1.0\r\nHost: a\r\nContent-Type: text/plain\r\n\
                 Content-Length: 5\r\n\r\nhello";
    let want = br#"{"method": "POST", "body": 5, "path": "/echo", "script": "", "secure": false}"#;
    it.ok(&request(&it.h, post), want);
}

// ---------------------------------------------------------------- peers

#[test]
fn environ_parser() {
    let dump = br#"[["A", "x\u00e9\"\\"], ["B", ""], ["C", "\ud83d\ude00"]]"#;
    let want = [("A", "x\u{e9}\"\\"), ("B", ""), ("C", "\u{1f600}")]
        .map(|(k, v)| (k.to_string(), v.to_string()));
    assert_eq!(parse_environ(dump), Some(want.to_vec()));
    assert_eq!(parse_environ(b"[]"), Some(vec![]));
    assert_eq!(parse_environ(b"[[\"A\"]]"), None);
}

/// Keys whose values legitimately differ between two servers: the peer's
/// client port, and Python objects (shown by type name).
const VARYING: &[&str] = &[
    "REMOTE_PORT",
    "wsgi.input",
    "wsgi.errors",
    "wsgi.file_wrapper",
];

/// An environ as compared: `uwsgi.*` keys dropped, varying values masked,
/// order kept (the order is part of what an app sees).
fn comparable(env: Vec<(String, String)>) -> Vec<(String, String)> {
    let mask = |(k, v): (String, String)| {
        if VARYING.contains(&k.as_str()) {
            (k, "<varies>".into())
        } else {
            (k, v)
        }
    };
    env.into_iter()
        .filter(|(k, _)| !k.starts_with("uwsgi."))
        .map(mask)
        .collect()
}

/// Requests sent through a peer: query, percent-escapes, duplicate and
/// odd headers, a body, HTTP/1.0 without Host.
const PEER_REQUESTS: &[&str] = &[
    "GET /a%20b/c?x=1&y=%20 HTTP/1.1\r\nHost: peer.test\r\nX-Dup: 1\r\nx-dup: 2\r\nX-A-B:  v1 \r\n\
     User-Agent: it\r\nConnection: close\r\n\r\n",
    "POST /form?q HTTP/1.1\r\nHost: peer.test:8\r\nContent-Type: application/x-www-form-urlencoded\r\n\
     Content-Length: 7\r\nConnection: close\r\n\r\na=1&b=2",
    "GET / HTTP/1.0\r\n\r\n",
];

/// Which server runs `environ.py` behind the peer.
#[derive(Debug, Clone, Copy)]
enum Backend {
    Ours,
    Reference,
}

/// Starts `backend` on `sock` (the peer's upstream), sends every request
/// of [`PEER_REQUESTS`] to the peer on `port`, returns the environs.
fn environs_behind(
    dir: &Path,
    backend: Backend,
    reference: &Path,
    sock: &str,
    port: u16,
) -> Vec<Vec<(String, String)>> {
    let _ = std::fs::remove_file(sock);
    let environ = apps().join("environ.py").display().to_string();
    let args = [
        "--master",
        "--processes",
        "1",
        "--socket",
        sock,
        "--wsgi-file",
        &environ,
    ];
    let mut server = match backend {
        Backend::Ours => spawn_ours(dir, &args),
        Backend::Reference => {
            let mut cmd = scrubbed(reference, dir);
            cmd.args(["--plugins", "python3"]).args(args);
            Proc::spawn("uwsgi", cmd, &dir.join("reference.log"))
        }
    };
    server.wait_line("spawned uWSGI worker 1 (", READY);
    assert!(
        wait_unix(Path::new(sock), READY),
        "{backend:?} never accepted\n{}",
        server.tail()
    );
    let environ_of = |req: &&str| {
        let r = request(&Addr::Tcp(port), req.as_bytes());
        assert_eq!(
            r.status(),
            Some(200),
            "{backend:?} {req:?}: {:?}\n{}",
            r.text(),
            server.tail()
        );
        parse_environ(r.body())
            .unwrap_or_else(|| panic!("{backend:?}: not an environ dump: {:?}", r.text()))
    };
    PEER_REQUESTS.iter().map(environ_of).collect()
}

/// Serves `environ.py` with ours, then with the real uWSGI, behind the
/// same running peer, and compares what the app saw.
fn compare_behind(peer: &Proc, port: u16, dir: &Path, reference: &Path, sock: &str) {
    let ours = environs_behind(dir, Backend::Ours, reference, sock, port);
    let theirs = environs_behind(dir, Backend::Reference, reference, sock, port);
    for ((req, a), b) in PEER_REQUESTS.iter().zip(ours).zip(theirs) {
        let (a, b) = (comparable(a), comparable(b));
        if a != b {
            let diff: Vec<String> = a
                .iter()
                .zip(&b)
                .filter(|(x, y)| x != y)
                .map(|(x, y)| format!("  ours {x:?} / uWSGI {y:?}"))
                .collect();
            panic!(
                "environ differs for {req:?} ({} vs {} keys)\n{}\nours:  {a:?}\nuWSGI: {b:?}\n{}",
                a.len(),
                b.len(),
                diff.join("\n"),
                peer.tail()
            );
        }
    }
}

const NO_REFERENCE: &str =
    "the real uWSGI with its python3 and http plugins is not installed (apt-get install uwsgi-core uwsgi-plugin-python3)";

#[test]
fn environ_behind_nginx_matches_real_uwsgi() {
    let test = "environ_behind_nginx_matches_real_uwsgi";
    let Some(nginx) = find_program(&["nginx"], &["/usr/sbin/nginx"]) else {
        return skip(test, "nginx is not installed (apt-get install nginx)");
    };
    let Some(reference) = reference_uwsgi("python3") else {
        return skip(test, NO_REFERENCE);
    };
    let dir = TempDir::new();
    let sock = sock_path(dir.path(), "app.sock");
    let (nginx, port) = start_nginx(&nginx, dir.path(), &sock);
    compare_behind(&nginx, port, dir.path(), &reference, &sock);
}

#[test]
fn environ_behind_uwsgi_http_router_matches_real_uwsgi() {
    let (Some(reference), Some(_)) = (reference_uwsgi("python3"), reference_uwsgi("http")) else {
        return skip(
            "environ_behind_uwsgi_http_router_matches_real_uwsgi",
            NO_REFERENCE,
        );
    };
    let dir = TempDir::new();
    let sock = sock_path(dir.path(), "app.sock");
    let (router, port) = start_uwsgi_router(&reference, dir.path(), &sock);
    compare_behind(&router, port, dir.path(), &reference, &sock);
}

// ---------------------------------------------------------------- protocol

/// One malformed packet per row (§1.5): its name, its bytes, and the line
/// the worker logs before closing the connection with nothing written
/// (uWSGI's words; the worker adds ` [socket NAME]` at the end).
fn malformed_packets() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let names: Vec<String> = (0..200).map(|i| format!("V{i}")).collect();
    let many: Vec<(&str, &str)> = names.iter().map(|k| (k.as_str(), "x")).collect();
    let mut past = uwsgi_packet(0, &[("PATH_INFO", "/")]);
    past[15] = 50; // the value length runs past the block
    vec![
        (
            "oversized",
            vec![0, 0x00, 0x20, 0],
            "invalid request block size: 8192 (max 4096)...skip",
        ),
        (
            "zero-length key",
            uwsgi_packet(0, &[("", "v"), ("PATH_INFO", "/")]),
            "uwsgi key cannot be null. skip this var.",
        ),
        (
            "too many vars",
            uwsgi_packet(0, &many),
            "max vec size reached. skip this var.",
        ),
        (
            "unknown modifier1",
            uwsgi_packet(5, &[("PATH_INFO", "/")]),
            "-- unavailable modifier requested: 5 --",
        ),
        (
            "empty packet",
            vec![0, 0, 0, 0],
            "Empty python request. skip.",
        ),
        (
            "value past the block",
            past,
            "invalid uwsgi request (current strsize: ",
        ),
        // Announces 16 bytes, sends none and keeps its end open: closed
        // after socket-timeout.
        (
            "truncated",
            vec![0, 16, 0, 0],
            "uwsgi_proto_uwsgi_parser(): Resource temporarily unavailable",
        ),
    ]
}

#[test]
fn malformed_uwsgi_packets_close_and_the_worker_serves_the_next_request() {
    let mut it = Instance::start("master = true\nsocket-timeout = 1\nwsgi-file = @APPS@/cases.py");
    let socket = format!(" [socket {}]", sock_path(it.dir.path(), "u.sock"));
    for (served, (name, data, line)) in malformed_packets().into_iter().enumerate() {
        let before = it.server.count(line);
        let r = request(&it.u, &data);
        assert!(r.closed && r.bytes.is_empty(), "{name}: got {:?}", r.text());
        if name == "truncated" {
            let waited = r.elapsed;
            assert!(
                waited >= Duration::from_millis(900),
                "{name}: closed after {waited:?}"
            );
        }
        it.server.wait_lines(line, before + 1, READY);
        let log = it.server.log();
        let logged = log.lines().rfind(|l| l.contains(line)).unwrap_or_default();
        assert!(logged.ends_with(&socket), "{name}: {logged:?}");
        let ok = request(&it.u, &example_a("/"));
        let want =
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 7\r\n\r\ndefault";
        assert_eq!(ok.text(), want, "after {name}");
        it.server
            .wait_lines("=> generated 7 bytes", served + 1, READY);
    }
    let log = it.server.log();
    assert_eq!(
        worker_pids(&log, 1).len(),
        1,
        "the worker was replaced\n{}",
        it.server.tail()
    );
    assert!(!log.contains("DAMN !"), "{}", it.server.tail());
}

// ---------------------------------------------------------------- master

#[test]
fn sighup_under_load_loses_no_request() {
    let mut it = Instance::start("master = true\nprocesses = 2\nwsgi-file = @APPS@/hello.py");
    let (stop, done) = (AtomicBool::new(false), AtomicUsize::new(0));
    let client = || {
        let mut failures = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            match exchange(&it.h, b"GET / HTTP/1.0\r\n\r\n") {
                Ok(r) if r.status() == Some(200) && r.body() == b"Hello World!" => {}
                Ok(r) => failures.push(format!("after {:?}: {:?}", r.elapsed, r.text())),
                Err(e) => failures.push(format!("connect: {e}")),
            }
            done.fetch_add(1, Ordering::Relaxed);
        }
        failures
    };
    let twenty_more = || {
        let before = done.load(Ordering::Relaxed);
        wait_for(READY, || {
            (done.load(Ordering::Relaxed) >= before + 20).then_some(())
        });
    };
    let master = format!(
        "gracefully (RE)spawned uWSGI master process (pid: {})",
        it.server.pid()
    );
    let failures = std::thread::scope(|s| {
        let client = s.spawn(client);
        for reload in 1..=2 {
            twenty_more();
            it.server.signal(libc::SIGHUP);
            it.server.wait_lines(&master, reload, READY);
            it.server
                .wait_lines("spawned uWSGI worker 2 (", reload + 1, READY);
        }
        twenty_more();
        stop.store(true, Ordering::Relaxed);
        client.join().expect("client thread")
    });
    let (total, lost) = (done.load(Ordering::Relaxed), failures.len());
    let shown = &failures[..lost.min(5)];
    assert_eq!(
        lost,
        0,
        "{lost} of {total} requests failed: {shown:?}\n{}",
        it.server.tail()
    );
    let log = it.server.log();
    assert_eq!(
        log.matches("binary reloading uWSGI...").count(),
        2,
        "{}",
        it.server.tail()
    );
    let h = it.dir.path().join("h.sock");
    it.logged(&format!(
        "uwsgi socket 1 inherited UNIX address {} fd ",
        h.display()
    ));
    assert!(
        it.server.try_status().is_none(),
        "the master exited\n{}",
        it.server.tail()
    );
    let test = "wsgi::sighup_under_load_loses_no_request";
    visible(&format!(
        "{test}: {total} requests across 2 reloads, none lost"
    ));
}

/// A request whose head is still arriving when SIGHUP comes is in
/// progress: the worker finishes it before it stops (§2.8.1). The signal
/// interrupts the worker's wait for the rest of the head (EINTR), which
/// must not drop it.
#[test]
fn sighup_while_a_request_is_being_read_finishes_it() {
    let mut it = Instance::start("master = true\nwsgi-file = @APPS@/hello.py");
    let packet = example_a("/");
    let cases: [(&Addr, &[u8], &[u8]); 2] = [
        (&it.h, b"GET / HTTP/1.0\r\n", b"\r\n"),
        (&it.u, &packet[..10], &packet[10..]),
    ];
    for (reload, (addr, first, rest)) in cases.into_iter().enumerate() {
        let worker = it.worker();
        let started = Instant::now();
        let mut s = Stream::connect(addr).expect("connect");
        s.write_all(first).expect("first part");
        // The worker has accepted and waits for the rest of the request.
        // Idle, a worker waits in epoll_wait; a connection's read waits
        // in poll (or in recvfrom on a blocking socket).
        it.wait_blocked_in(
            worker,
            &[libc::SYS_recvfrom, libc::SYS_poll, libc::SYS_ppoll],
            "the worker never read",
        );
        it.server.signal(libc::SIGHUP);
        let graceful = format!("Gracefully killing worker 1 (pid: {worker})...");
        it.server.wait_lines(&graceful, 1, READY);
        // Not a readiness wait: it lets the worker's SIGHUP land while its
        // read is blocked, the moment this test is about.
        std::thread::sleep(Duration::from_millis(200));
        let _ = s.write_all(rest);
        let r = s.read_reply(started);
        assert!(
            r.text().ends_with("Hello World!"),
            "request {reload}: {:?}\n{}",
            r.text(),
            it.server.tail()
        );
        it.server
            .wait_lines("spawned uWSGI worker 1 (", reload + 2, READY);
    }
}

#[test]
fn sigkill_of_a_worker_is_followed_by_a_respawn() {
    let mut it = Instance::start("master = true\nwsgi-file = @APPS@/hello.py");
    let old = it.worker();
    // SAFETY: kill(2); `old` is a worker in the process group this test owns.
    unsafe { libc::kill(old, libc::SIGKILL) };
    it.wait(&format!(
        "DAMN ! worker 1 (pid: {old}) died, killed by signal 9 :( trying respawn ..."
    ));
    it.wait("Respawned uWSGI worker 1 (new pid: ");
    let new = it.worker();
    assert_ne!(new, old);
    let r = request(&it.u, &example_a("/"));
    assert!(r.text().ends_with("\r\n\r\nHello World!"), "{:?}", r.text());
    it.wait(&format!("[pid: {new}|app: 0|"));
}

#[test]
fn harakiri_kills_a_sleeping_worker_and_it_is_respawned() {
    let mut it = Instance::start("master = true\nharakiri = 2\nwsgi-file = @APPS@/cases.py");
    let old = it.worker();
    let r = it.get("/sleep?6");
    assert!(
        r.closed && r.bytes.is_empty(),
        "expected an empty reply, got {:?}",
        r.text()
    );
    // §2.6: the kill comes 2 to 3.5 s after the request started (more
    // slack here: the test shares its cores).
    let cut = r.elapsed;
    let expected = Duration::from_secs(2)..Duration::from_millis(5500);
    assert!(expected.contains(&cut), "cut after {cut:?}");
    it.wait(&format!("*** HARAKIRI ON WORKER 1 (pid: {old}"));
    it.wait(&format!(
        "DAMN ! worker 1 (pid: {old}) died, killed by signal 9"
    ));
    it.wait("Respawned uWSGI worker 1 (new pid: ");
    it.ok(&it.get("/"), b"default");
}

/// SIGTERM is a graceful shutdown (a deliberate difference, see README):
/// the request in progress completes, then the master exits 0.
#[test]
fn sigterm_is_a_graceful_shutdown() {
    let mut it = Instance::start("master = true\nwsgi-file = @APPS@/cases.py");
    let worker = it.worker();
    let r = std::thread::scope(|s| {
        let slow = s.spawn(|| it.get("/sleep?1"));
        // The app is in its time.sleep: the request is in progress.
        let sleeping = wait_for(READY, || {
            (blocked_in(worker) == Some(libc::SYS_clock_nanosleep)).then_some(())
        });
        assert!(
            sleeping.is_some(),
            "the request never started\n{}",
            it.server.tail()
        );
        it.server.signal(libc::SIGTERM);
        slow.join().expect("client thread")
    });
    it.ok(&r, b"slept");
    assert_eq!(it.server.wait_exit(EXIT), 0, "{}", it.server.tail());
    it.logged("graceful shutdown triggered...");
    assert!(
        it.server.log().trim_end().ends_with("goodbye to uWSGI."),
        "{}",
        it.server.tail()
    );
}

#[test]
fn sigint_shuts_down_with_status_0() {
    let mut it = Instance::start("master = true\nprocesses = 2\nwsgi-file = @APPS@/hello.py");
    it.server.signal(libc::SIGINT);
    assert_eq!(it.server.wait_exit(EXIT), 0, "{}", it.server.tail());
    it.logged("SIGINT/SIGTERM received...killing workers...");
    assert!(
        it.server.log().trim_end().ends_with("goodbye to uWSGI."),
        "{}",
        it.server.tail()
    );
}

#[test]
fn without_master_sigint_exits_30() {
    let mut it = Instance::start("wsgi-file = @APPS@/hello.py");
    it.logged("spawned uWSGI worker 1 (and the only) (pid: ");
    let r = request(&it.u, &example_a("/"));
    assert!(r.text().ends_with("Hello World!"), "{:?}", r.text());
    it.server.signal(libc::SIGINT);
    assert_eq!(it.server.wait_exit(EXIT), 30, "{}", it.server.tail());
}

// ---------------------------------------------------------------- bad apps

/// A deliberate difference (README): uWSGI sometimes sends nothing.
#[test]
fn app_errors_give_500_and_the_worker_lives_on() {
    let mut it = Instance::start("master = true\nwsgi-file = @APPS@/cases.py");
    let rows = [
        ("/raise", "RuntimeError: boom before headers"),
        ("/none", "TypeError: 'NoneType' object is not iterable"),
        ("/twice", "start_response() called twice"),
        ("/str", "TypeError: "),
    ];
    for (i, (path, error)) in rows.iter().enumerate() {
        let before = it.server.count(error);
        let r = it.get(path);
        assert_eq!(r.status(), Some(500), "{path}: {:?}", r.text());
        it.server.wait_lines(error, before + 1, READY);
        it.server.wait_lines("(HTTP/1.0 500)", i + 1, READY);
    }
    it.logged("Traceback (most recent call last):");
    it.ok(&it.get("/"), b"default");
    let log = it.server.log();
    let pids = worker_pids(&log, 1);
    assert_eq!(
        pids.len(),
        1,
        "the worker was replaced\n{}",
        it.server.tail()
    );
    let line = format!("[pid: {}|app: 0|", pids[0]);
    let served = log.lines().filter(|l| l.starts_with(&line)).count();
    assert_eq!(served, rows.len() + 1, "{}", it.server.tail());
}

#[test]
fn import_error_with_need_app_exits_22() {
    let dir = TempDir::new();
    let ini = write_ini(
        dir.path(),
        "master = true\nneed-app = true\nwsgi-file = @APPS@/broken.py",
    );
    let out = run_ini(dir.path(), ini);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.rc, 22, "{err}");
    let import = "ModuleNotFoundError: No module named 'this_module_does_not_exist'";
    assert!(err.contains(import), "{err}");
    // Said once, as uWSGI does.
    assert_eq!(
        err.matches("*** no app loaded. GAME OVER ***").count(),
        1,
        "{err}"
    );
    assert!(!out.panicked(), "{err}");
}

/// The last line of the traceback `python3 -c CODE` prints ("Type: text").
fn python_error(code: &str) -> String {
    let out = Command::new("python3")
        .args(["-c", code])
        .output()
        .expect("python3");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    err.lines().last().unwrap_or_default().to_string()
}

/// A `wsgi-file` is compiled as Python compiles a source file: its coding
/// declaration is honoured, and a file that cannot compile is reported
/// with its name and line (or the reason) and no app is loaded.
#[test]
fn a_wsgi_file_compiles_like_a_python_source_file() {
    let dir = TempDir::new();
    let app = dir.path().join("latin.py");
    // "caf\xe9" in Latin-1 under a Latin-1 declaration.
    let mut source = b"# -*- coding: latin-1 -*-\nword = '".to_vec();
    source.extend_from_slice(b"caf\xe9");
    source.extend_from_slice(
        b"'\ndef application(environ, start_response):\n    \
          start_response('200 OK', [('Content-Type', 'text/plain')])\n    \
          return [word.encode('utf-8')]\n",
    );
    std::fs::write(&app, source).expect("writing latin.py");
    let it = Instance::start(&format!("wsgi-file = {}", app.display()));
    it.ok(&it.get("/"), "caf\u{e9}".as_bytes());

    // The error python3 (the interpreter the binary embeds) gives.
    let nul_error = python_error("compile(b'x = 1\\0\\n', 'nul.py', 'exec')");
    let broken: [(&str, &[u8], &str); 2] = [
        (
            "syntax.py",
            b"x = 1\ndef application(environ, start_response)\n    return []\n",
            "syntax.py\", line 2",
        ),
        ("nul.py", b"x = 1\0\n", &nul_error),
    ];
    for (name, text, reported) in broken {
        let dir = TempDir::new();
        let file = dir.path().join(name);
        std::fs::write(&file, text).expect("writing the app");
        let lines = format!(
            "master = true\nneed-app = true\nwsgi-file = {}",
            file.display()
        );
        let out = run_ini(dir.path(), write_ini(dir.path(), &lines));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.rc, 22, "{name}: {err}");
        assert!(err.contains(reported), "{name}: no {reported:?} in\n{err}");
        assert!(err.contains("unable to load app 0"), "{name}: {err}");
        assert!(!out.panicked(), "{name}: {err}");
    }
}

/// With lazy-apps each worker loads the app; under need-app a worker that
/// cannot takes the whole instance down with status 22 (uWSGI's master
/// "destroying the instance"), instead of respawning it forever.
/// uWSGI's older `lazy` loads in the workers too, and they say no GAME
/// OVER; uWSGI 2.0's master then respawns them forever (it checks
/// lazy-apps only), ruwsgi ends the instance alike (README differences).
#[test]
fn lazy_apps_with_need_app_end_the_instance_when_a_worker_fails() {
    for (lazy, game_over) in [("lazy-apps", true), ("lazy", false)] {
        let dir = TempDir::new();
        let ini = write_ini(
            dir.path(),
            &format!(
                "master = true\nprocesses = 2\n{lazy} = true\nneed-app = true\n\
                 wsgi-file = @APPS@/broken.py"
            ),
        );
        let out = run_ini(dir.path(), ini);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.contains("GAME OVER"), game_over, "{lazy}: {err}");
        assert_ended_for_need_app(&out);
    }
}

fn assert_ended_for_need_app(out: &crate::util::Output) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.rc, 22, "{err}");
    assert!(
        err.contains("OOPS ! failed loading app in worker "),
        "{err}"
    );
    assert!(
        err.contains("need-app requested, destroying the instance..."),
        "{err}"
    );
    assert!(!err.contains("trying again"), "{err}");
    assert!(!err.contains("Respawned uWSGI worker"), "{err}");
    assert!(!out.panicked(), "{err}");
}

/// uWSGI's answer when no app is loaded (routing-and-protocol.md §5.11,
/// byte for byte), its log lines, and the same 500 over HTTP.
fn no_app_page(it: &mut Instance) {
    let r = request(&it.u, &example_a("/"));
    let page = "HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\
                Content-Type: text/plain\r\n\r\nInternal Server Error";
    assert_eq!(r.text(), page);
    it.wait("--- no python application found, check your startup logs for errors ---");
    let line = it.wait("|app: -1|req: -1/1]");
    assert!(
        line.contains("(HTTP/1.1 500) 2 headers in 83 bytes"),
        "{line}"
    );
    let r = it.get("/");
    assert_eq!(r.status(), Some(500), "{:?}", r.text());
    assert_eq!(r.body(), b"Internal Server Error");
}

#[test]
fn without_need_app_a_missing_app_gives_uwsgis_500() {
    let mut it = Instance::start("master = true\nwsgi-file = @APPS@/broken.py");
    it.logged("*** no app loaded. going in full dynamic mode ***");
    no_app_page(&mut it);
}

/// An instance with nothing for Python to load (a router and emperor
/// front, say) never starts CPython, and still answers like uWSGI's "full
/// dynamic mode": the same 500 page and log lines, byte for byte.
#[test]
fn without_any_app_the_interpreter_is_not_started() {
    let mut it = Instance::start("master = true");
    it.logged("*** no app loaded. going in full dynamic mode ***");
    let log = it.server.log();
    assert!(!log.contains("Python version: "), "{log}");
    assert!(
        !log.contains("Python main interpreter initialized"),
        "{log}"
    );
    no_app_page(&mut it);
}

// ---------------------------------------------------------------- start-up

/// `TCP_DEFER_ACCEPT` of descriptor `fd` in process `pid` (a TCP
/// listener), read through a copy of it; `None` when this kernel or
/// user cannot copy another process's descriptor.
fn defer_accept_of(pid: i32, fd: i32) -> Option<i32> {
    // SAFETY: pidfd_open/pidfd_getfd with integer arguments; each
    // descriptor they return is closed here.
    let copy = unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid, 0) as i32;
        if pidfd < 0 {
            return None;
        }
        let copy = libc::syscall(libc::SYS_pidfd_getfd, pidfd, fd, 0) as i32;
        libc::close(pidfd);
        copy
    };
    if copy < 0 {
        return None;
    }
    let mut value: libc::c_int = -1;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `value`; `copy`
    // is our descriptor, closed right after.
    let rc = unsafe {
        let rc = libc::getsockopt(
            copy,
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        );
        libc::close(copy);
        rc
    };
    (rc == 0).then_some(value)
}

/// As uWSGI, TCP listeners (`socket`, `http-socket`, the router's `http`)
/// accept a connection only once its first bytes arrive, waiting up to
/// `socket-timeout`; `no-defer-accept` turns that off.
#[test]
fn tcp_listeners_defer_accept_unless_told_not_to() {
    for (extra, deferred) in [(None, true), (Some("--no-defer-accept"), false)] {
        let dir = TempDir::new();
        let mut args = vec![
            "--master",
            "--socket",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
        ];
        args.extend(extra);
        let mut server = spawn_ours(dir.path(), &args);
        server.wait_line("spawned uWSGI worker 1 (", READY);
        let log = server.log();
        let fd_of = |prefix: &str| -> i32 {
            let line = log.lines().find(|l| l.starts_with(prefix)).expect(prefix);
            line.rsplit(" fd ")
                .next()
                .and_then(|n| n.trim().parse().ok())
                .expect("fd")
        };
        for prefix in ["uwsgi socket 0 bound to TCP address", "uWSGI http bound on"] {
            let Some(value) = defer_accept_of(server.pid(), fd_of(prefix)) else {
                // Not a missing peer (which fails under CI): a kernel or
                // a policy without pidfd_getfd.
                eprintln!("wsgi::tcp_listeners_defer_accept_unless_told_not_to: skipped (pidfd_getfd refused)");
                return;
            };
            assert_eq!(value > 0, deferred, "{prefix} ({extra:?}): {value}\n{log}");
        }
    }
}

#[test]
fn starts_with_an_empty_environment() {
    let dir = TempDir::new();
    let ini = write_ini(dir.path(), "master = true\nwsgi-file = @APPS@/cases.py");
    // `env -i`: no PATH, HOME, PYTHONHOME or LD_LIBRARY_PATH; the binary
    // must find libpython and its stdlib by itself.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_uwsgi"));
    cmd.current_dir(dir.path())
        .env_clear()
        .arg("--ini")
        .arg(&ini);
    let mut server = Proc::spawn("ruwsgi", cmd, &dir.path().join("ours.log"));
    server.wait_line("spawned uWSGI worker 1 (", READY);
    let sock = dir.path().join("u.sock");
    assert!(wait_unix(&sock, READY), "{}", server.tail());
    let r = request(&Addr::Unix(sock), &example_a("/file"));
    assert!(
        r.text().starts_with("HTTP/1.1 200 OK\r\n"),
        "{:?}\n{}",
        r.text(),
        server.tail()
    );
    let ready = server
        .log()
        .contains("WSGI app 0 (mountpoint='') ready in ");
    assert!(ready, "{}", server.tail());
}

#[test]
fn home_venv_of_another_python_fails_in_one_clear_line() {
    let dir = TempDir::new();
    let venv = dir.path().join("venv39");
    std::fs::create_dir_all(venv.join("bin")).expect("mkdir venv");
    let cfg = "home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.9.18\n";
    std::fs::write(venv.join("pyvenv.cfg"), cfg).expect("pyvenv.cfg");
    let lines = format!(
        "master = true\nhome = {}\nwsgi-file = @APPS@/hello.py",
        venv.display()
    );
    let out = run_ini(dir.path(), write_ini(dir.path(), &lines));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.rc, 0, "{err}");
    assert!(out.timeout.is_none() && !out.panicked(), "{err}");
    // "Python version: 3.11.7 (main, ...)" -> "3.11"
    let ours: String = err
        .lines()
        .find_map(|l| l.strip_prefix("Python version: "))
        .map(|v| v.split('.').take(2).collect::<Vec<_>>().join("."))
        .unwrap_or_else(|| panic!("no Python version line\n{err}"));
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("3.9")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    let named = [venv.display().to_string(), ours];
    let clear = named.iter().all(|n| lines[0].contains(n.as_str()));
    assert!(
        clear,
        "the line should name {named:?} and 3.9: {}",
        lines[0]
    );
    assert!(
        !err.contains("Traceback") && !err.contains("Fatal Python error"),
        "{err}"
    );
}

mod mount;
mod options;
mod venv;
