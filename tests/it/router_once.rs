//! Where the routing table runs: a request the instance's own HTTP router
//! forwards to its workers was routed by the router and is not routed again
//! in the worker; a request that comes straight to a worker's `socket` or
//! `http-socket` runs the same rules in the worker. Each rule here has a
//! visible effect (a response header, a log line, a variable) that must
//! happen exactly once.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::server::{
    free_port, request, sock_path, spawn_ours, uwsgi_packet, wait_tcp, wait_unix, Addr, Proc,
    Reply, READY,
};
use crate::util::{repo_root, TempDir};

/// Header lines of a reply named `name` (any case).
fn header_count(reply: &Reply, name: &str) -> usize {
    let text = reply.text();
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    head.lines()
        .skip(1)
        .filter(|l| {
            l.split_once(':')
                .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        })
        .count()
}

/// The environ the app saw: the JSON `[[key, value], ...]` of
/// `tests/apps/environ.py`, as (key, value) strings.
fn environ(reply: &Reply) -> Vec<(String, String)> {
    crate::server::parse_environ(reply.body())
        .unwrap_or_else(|| panic!("not an environ dump: {}", reply.text()))
}

/// Our binary serving the environ app on `DIR/h.sock` (`http-socket`, one
/// worker) with `rules` appended to its ini; returns it once it accepts.
fn environ_app_on_http_socket(dir: &Path, rules: &str) -> (Proc, PathBuf) {
    let h = sock_path(dir, "h.sock");
    let app = repo_root().join("tests/apps/environ.py");
    let ini = dir.join("app.ini");
    std::fs::write(
        &ini,
        format!(
            "[uwsgi]\nmaster = true\nprocesses = 1\nhttp-socket = {h}\nwsgi-file = {}\n{rules}",
            app.display()
        ),
    )
    .expect("writing app.ini");
    let mut server = spawn_ours(dir, &["--ini", &ini.display().to_string()]);
    server.wait_line("spawned uWSGI worker 1 (", READY);
    let h = PathBuf::from(h);
    assert!(wait_unix(&h, READY), "{}", server.tail());
    (server, h)
}

struct Site {
    server: Proc,
    port: u16,
    u: PathBuf,
    h: PathBuf,
    _dir: TempDir,
}

/// Starts `master + http + socket + http-socket` serving the environ app
/// with three rules: a response header, a log line, a variable.
fn start() -> Site {
    let dir = TempDir::new();
    let (u, h) = (
        sock_path(dir.path(), "u.sock"),
        sock_path(dir.path(), "h.sock"),
    );
    let app = repo_root().join("tests/apps/environ.py");
    for _ in 0..3 {
        let port = free_port();
        let ini = dir.path().join("app.ini");
        std::fs::write(
            &ini,
            format!(
                "[uwsgi]\nmaster = true\nprocesses = 1\nhttp = 127.0.0.1:{port}\n\
                 socket = {u}\nhttp-socket = {h}\nwsgi-file = {}\n\
                 route = ^/ addheader:X-Once: yes\n\
                 route = ^/ log:ROUTED-ONCE ${{REQUEST_URI}}\n\
                 route = ^/ addvar:ROUTE_MARK=${{ROUTE_MARK}}x\n",
                app.display()
            ),
        )
        .expect("writing app.ini");
        let mut server = spawn_ours(dir.path(), &["--ini", &ini.display().to_string()]);
        server.wait_line("spawned uWSGI worker 1 (", READY);
        if !wait_tcp(port, READY) {
            if server.log().contains("in use") {
                continue;
            }
            panic!("router never accepted\n{}", server.tail());
        }
        for s in [&u, &h] {
            assert!(wait_unix(Path::new(s), READY), "{s}\n{}", server.tail());
        }
        return Site {
            server,
            port,
            u: u.into(),
            h: h.into(),
            _dir: dir,
        };
    }
    panic!("no free port after 3 tries");
}

impl Site {
    /// Asserts the effects of the three rules happened exactly once for
    /// the request to `uri`.
    fn once(&self, reply: &Reply, uri: &str) {
        let tail = self.server.tail();
        assert_eq!(reply.status(), Some(200), "{}\n{tail}", reply.text());
        assert_eq!(header_count(reply, "X-Once"), 1, "{}", reply.text());
        let env = environ(reply);
        let marks: Vec<&str> = env
            .iter()
            .filter(|(k, _)| k == "ROUTE_MARK")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(marks, ["x"], "the addvar rule ran {marks:?}");
        let line = format!("ROUTED-ONCE {uri}");
        let seen = crate::server::wait_for(READY, || (self.server.count(&line) > 0).then_some(()));
        assert!(seen.is_some(), "no {line:?} logged\n{tail}");
        assert_eq!(
            self.server.log().lines().filter(|l| *l == line).count(),
            1,
            "{tail}"
        );
    }
}

#[test]
fn router_requests_are_routed_once_direct_ones_in_the_worker() {
    // A private directory left by a master that was killed (its pid is
    // gone) is swept when the next one starts.
    let mut child = std::process::Command::new("true")
        .spawn()
        .expect("spawn true");
    let dead = child.id();
    child.wait().expect("reap true");
    let stale = std::env::temp_dir().join(format!("ruwsgi-router-{dead}"));
    std::fs::create_dir_all(&stale).expect("stale dir");
    std::fs::write(stale.join("router.sock"), b"").expect("stale socket");
    let site = start();
    assert!(!stale.exists(), "{} was not swept", stale.display());
    // Through the router: it ran the rules, the worker must not.
    let r = request(
        &Addr::Tcp(site.port),
        b"GET /via-router HTTP/1.0\r\nHost: it.test\r\n\r\n",
    );
    site.once(&r, "/via-router");
    // Straight to the http-socket (as from nginx): the worker runs them.
    let r = request(
        &Addr::Unix(site.h.clone()),
        b"GET /via-http-socket HTTP/1.0\r\nHost: it.test\r\n\r\n",
    );
    site.once(&r, "/via-http-socket");
    // Straight to socket 0 with the uwsgi protocol: a client there cannot
    // pass for the router; the rules run in the worker.
    let packet = uwsgi_packet(
        0,
        &[
            ("REQUEST_METHOD", "GET"),
            ("REQUEST_URI", "/via-socket"),
            ("PATH_INFO", "/via-socket"),
            ("QUERY_STRING", ""),
            ("SERVER_PROTOCOL", "HTTP/1.0"),
            ("SERVER_NAME", "it.test"),
            ("SERVER_PORT", "80"),
            ("REMOTE_ADDR", "127.0.0.1"),
            ("UWSGI_ROUTER", "http"),
        ],
    );
    let r = request(&Addr::Unix(site.u.clone()), &packet);
    site.once(&r, "/via-socket");

    // The router's own way in is a socket in a directory only this user
    // can enter.
    let private = std::env::temp_dir().join(format!("ruwsgi-router-{}", site.server.pid()));
    let mode = std::fs::metadata(&private)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", private.display(), site.server.tail()))
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "{}", private.display());
}

#[test]
fn worker_routing_actions_answer_direct_requests() {
    let dir = TempDir::new();
    let (_server, h) = environ_app_on_http_socket(
        dir.path(),
        "route = ^/old$ redirect-301:/new\n\
         route = ^/gone$ return:410\n\
         route = ^/drop$ delheader:Content-Type\n\
         route-uri = ^/rw/(.*)$ rewrite:/new/$1\n",
    );
    let get = |path: &str| {
        request(
            &Addr::Unix(h.clone()),
            format!("GET {path} HTTP/1.0\r\nHost: it.test\r\n\r\n").as_bytes(),
        )
    };
    let r = get("/old");
    assert_eq!(r.status(), Some(301), "{}", r.text());
    assert!(r.text().contains("\r\nLocation: /new\r\n"), "{}", r.text());
    let r = get("/gone");
    assert_eq!(r.status(), Some(410), "{}", r.text());
    let r = get("/drop");
    assert_eq!(r.status(), Some(200), "{}", r.text());
    assert_eq!(header_count(&r, "Content-Type"), 0, "{}", r.text());
    let r = get("/rw/x?q=1");
    let env = environ(&r);
    let path = env.iter().rev().find(|(k, _)| k == "PATH_INFO");
    assert_eq!(
        path.map(|(_, v)| v.as_str()),
        Some("/new/x"),
        "{}",
        r.text()
    );
}

/// A uwsgi responder on a unix socket: answers every request with the
/// request's `PATH_INFO` and `HTTP_HOST` in the body. Detached thread.
fn uwsgi_echo(path: &Path) {
    use std::io::{Read, Write};
    let listener = std::os::unix::net::UnixListener::bind(path).expect("bind echo backend");
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut header = [0u8; 4];
            if s.read_exact(&mut header).is_err() {
                continue;
            }
            let mut block = vec![0u8; usize::from(u16::from_le_bytes([header[1], header[2]]))];
            if s.read_exact(&mut block).is_err() {
                continue;
            }
            let mut vars = Vec::new();
            let mut i = 0;
            while i + 2 <= block.len() {
                let mut field = || {
                    let n = usize::from(u16::from_le_bytes([block[i], block[i + 1]]));
                    let v =
                        String::from_utf8_lossy(block.get(i + 2..i + 2 + n).unwrap_or_default())
                            .into_owned();
                    i += 2 + n;
                    v
                };
                let k = field();
                let v = field();
                vars.push((k, v));
            }
            let get = |k: &str| {
                vars.iter()
                    .rev()
                    .find(|(key, _)| key == k)
                    .map_or("", |(_, v)| v.as_str())
                    .to_string()
            };
            let body = format!("echo {} {}", get("PATH_INFO"), get("HTTP_HOST"));
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Backend: echo\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(reply.as_bytes());
        }
    });
}

#[test]
fn worker_forwards_direct_requests_by_host() {
    let dir = TempDir::new();
    let echo = PathBuf::from(sock_path(dir.path(), "uwsgi_echo.sock"));
    uwsgi_echo(&echo);
    let d = dir.path().display();
    let (mut server, h) = environ_app_on_http_socket(
        dir.path(),
        &format!(
            "route-host = ^([a-z]+)\\.example\\.com$ uwsgi:{d}/uwsgi_$1.sock,0,0\n\
             route-host = ^echo\\.example\\.com$ addheader:X-Never: 1\n"
        ),
    );
    let r = request(
        &Addr::Unix(h.clone()),
        b"GET /p HTTP/1.0\r\nHost: echo.example.com\r\n\r\n",
    );
    assert_eq!(r.status(), Some(200), "{}\n{}", r.text(), server.tail());
    assert_eq!(r.body(), b"echo /p echo.example.com", "{}", r.text());
    assert_eq!(header_count(&r, "X-Backend"), 1, "{}", r.text());
    // The forward ended the chain.
    assert_eq!(header_count(&r, "X-Never"), 0, "{}", r.text());
    // No such vassal: a 502 from the worker, and one line naming the socket.
    let r = request(
        &Addr::Unix(h),
        b"GET / HTTP/1.0\r\nHost: nosuch.example.com\r\n\r\n",
    );
    assert_eq!(r.status(), Some(502), "{}", r.text());
    server.wait_line(
        &format!("unable to forward the request to {d}/uwsgi_nosuch.sock"),
        READY,
    );
}

/// The router of an instance that has loaded its app dies: the master
/// forks a new one (through Python's fork hooks), which serves on the same
/// port, and the workers never noticed.
#[test]
fn a_killed_router_is_respawned_and_serves() {
    let mut site = start();
    let first = site.server.wait_line("spawned uWSGI http 1 (pid: ", READY);
    let pid: i32 = first
        .rsplit("pid: ")
        .next()
        .and_then(|p| p.trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("no pid in {first:?}"));
    // SAFETY: a plain kill(2) of the router process this test's server
    // logged; it is a child of that server, so the pid is not reused
    // before the server reaps it.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    site.server
        .wait_lines("spawned uWSGI http 1 (pid: ", 2, READY);
    let r = request(
        &Addr::Tcp(site.port),
        b"GET /after-respawn HTTP/1.0\r\nHost: it.test\r\n\r\n",
    );
    site.once(&r, "/after-respawn");
    assert_eq!(
        site.server.count("spawned uWSGI worker 1 ("),
        1,
        "{}",
        site.server.tail()
    );
}
