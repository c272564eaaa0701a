//! Interop with the real uWSGI 2.0 (skipped with a reason when it is not
//! installed; a failure under `RUWSGI_IT_REQUIRE_PEERS=1`):
//!
//! - our router in front of the real uWSGI's vassal sockets;
//! - the seed configuration (`examples/multisite/` copied into a temp dir,
//!   its `/tmp/` sockets moved there and its port one the test bound, plus
//!   one vassal serving `tests/apps/environ.py`) run side by side under the
//!   real uWSGI and under ours: the same requests give the same status,
//!   headers (but `Date`/`Server`) and body, and the app sees the same
//!   environ (but the documented differences: `REMOTE_PORT`, which uWSGI's
//!   router byte-swaps, and `SERVER_PORT`, the routers' own ports).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::server::{
    free_port, parse_environ, reference_uwsgi, request, scrubbed, sock_path, spawn_ours, wait_for,
    wait_tcp, wait_unix, Addr, Proc, Reply, READY,
};
use crate::util::{copy_tree, repo_root, TempDir};

const WAIT: Duration = Duration::from_secs(30);

fn skip(test: &str, reason: &str) {
    crate::util::skip_test(&format!("router_interop::{test}"), reason);
}

const NO_REFERENCE: &str = "the real uWSGI with its python3, http and router_uwsgi plugins is not installed (apt-get install uwsgi-core uwsgi-plugin-python3)";

fn reference() -> Option<PathBuf> {
    reference_uwsgi("python3,http,router_uwsgi")
}

/// `[["k", "v"], ...]` from `environ.py`.
fn environ(body: &[u8]) -> Vec<(String, String)> {
    parse_environ(body)
        .unwrap_or_else(|| panic!("not an environ dump: {}", String::from_utf8_lossy(body)))
}

/// An environ as compared: `uwsgi.*` keys dropped (each server's own),
/// the documented differences and Python object names masked, temp dirs
/// replaced.
fn comparable(env: Vec<(String, String)>, dir: &Path) -> Vec<(String, String)> {
    const VARYING: &[&str] = &[
        "REMOTE_PORT",
        "SERVER_PORT",
        "wsgi.input",
        "wsgi.errors",
        "wsgi.file_wrapper",
    ];
    let d = dir.display().to_string();
    env.into_iter()
        .filter(|(k, _)| !k.starts_with("uwsgi."))
        .map(|(k, v)| {
            if VARYING.contains(&k.as_str()) {
                (k, "<varies>".into())
            } else {
                let v = v.replace(&d, "DIR");
                (k, v)
            }
        })
        .collect()
}

/// Status line, then the headers but `Date` and `Server`, sorted.
fn head_of(reply: &Reply) -> (String, Vec<String>) {
    let text = reply.text();
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let mut lines = head.lines();
    let status = lines.next().unwrap_or_default().to_string();
    let mut headers: Vec<String> = lines
        .filter(|l| {
            let name = l.split(':').next().unwrap_or_default().trim();
            !name.eq_ignore_ascii_case("date") && !name.eq_ignore_ascii_case("server")
        })
        .map(str::to_string)
        .collect();
    headers.sort();
    (status, headers)
}

fn get(port: u16, raw: &str) -> Reply {
    request(&Addr::Tcp(port), raw.as_bytes())
}

/// The shipped example in `dir` under `bin` (`None`: ours), its `:8080`
/// and `/tmp/` rewritten, plus an `env` vassal serving `environ.py`.
struct Seed {
    server: Proc,
    port: u16,
    dir: PathBuf,
}

fn seed(root: &Path, name: &str, bin: Option<&Path>) -> Seed {
    let dir = root.join(name);
    copy_tree(&repo_root().join("examples/multisite"), &dir).expect("copying the example");
    let environ = repo_root().join("tests/apps/environ.py");
    std::fs::write(
        dir.join("vassals.d/env.ini"),
        format!(
            "[uwsgi]\nsocket = /tmp/uwsgi_%n.sock\nwsgi-file = {}\n",
            environ.display()
        ),
    )
    .expect("writing env.ini");
    for _ in 0..3 {
        let port = free_port();
        // Only the example's socket paths: the repository itself (and so
        // the environ app's path) may live under /tmp too.
        let socks = format!("{}/uwsgi_", dir.display());
        for f in [
            "uwsgi.ini",
            "vassals.d/www.ini",
            "vassals.d/blog.ini",
            "vassals.d/notfound.ini",
            "vassals.d/env.ini",
        ] {
            let p = dir.join(f);
            let text = std::fs::read_to_string(&p).expect("reading the example");
            let text = text
                .replace("http = :8080", &format!("http = 127.0.0.1:{port}"))
                .lines()
                .filter(|l| !l.starts_with("http = 127.0.0.1:") || l.ends_with(&format!(":{port}")))
                .collect::<Vec<_>>()
                .join("\n")
                .replace("/tmp/uwsgi_", &socks);
            std::fs::write(&p, text + "\n").expect("rewriting the example");
        }
        let server = match bin {
            None => spawn_ours(&dir, &["--ini", "uwsgi.ini"]),
            Some(bin) => {
                let mut cmd: Command = scrubbed(bin, &dir);
                cmd.args(["--ini", "uwsgi.ini"]);
                Proc::spawn(name, cmd, &dir.join("reference.log"))
            }
        };
        let socks_up = ["www", "blog", "notfound", "env"].iter().all(|s| {
            wait_unix(
                Path::new(&sock_path(&dir, &format!("uwsgi_{s}.sock"))),
                WAIT,
            )
        });
        assert!(socks_up, "{name}: vassal sockets\n{}", server.tail());
        if wait_tcp(port, READY) {
            // The routing instance's worker may come up after the router.
            let up = wait_for(WAIT, || {
                let r = get(port, "GET / HTTP/1.0\r\nHost: www.example.com\r\n\r\n");
                (r.status() == Some(200)).then_some(())
            });
            assert!(up.is_some(), "{name}: never served\n{}", server.tail());
            return Seed { server, port, dir };
        }
        if !server.log().contains("in use") {
            panic!("{name}: router never accepted\n{}", server.tail());
        }
    }
    panic!("{name}: no free port after 3 tries");
}

/// Requests both stacks get. (Not the blog: it is a Flask app where the
/// embedding Python has Flask, and the system Python of the real uWSGI
/// may not.)
const REQUESTS: &[&str] = &[
    "GET / HTTP/1.0\r\nHost: www.example.com\r\n\r\n",
    "GET /some/where?x=1 HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: nosuchsite.org\r\nConnection: close\r\n\r\n",
    "GET /a%20b/c?x=1&y=%20 HTTP/1.1\r\nHost: env.example.com\r\nX-Dup: 1\r\nx-dup: 2\r\n\
     User-Agent: it\r\nConnection: close\r\n\r\n",
    "POST /form?q HTTP/1.1\r\nHost: env.example.com\r\nContent-Type: application/x-www-form-urlencoded\r\n\
     Content-Length: 7\r\nConnection: close\r\n\r\na=1&b=2",
    "HEAD / HTTP/1.0\r\nHost: www.example.com\r\n\r\n",
];

#[test]
fn seed_configuration_side_by_side_with_real_uwsgi() {
    let test = "seed_configuration_side_by_side_with_real_uwsgi";
    let Some(reference) = reference() else {
        return skip(test, NO_REFERENCE);
    };
    let tmp = TempDir::new();
    let theirs = seed(tmp.path(), "theirs", Some(&reference));
    let ours = seed(tmp.path(), "ours", None);
    for req in REQUESTS {
        let a = get(ours.port, req);
        let b = get(theirs.port, req);
        let context = || {
            format!(
                "{req:?}\nours:  {:?}\nuWSGI: {:?}\n{}",
                a.text(),
                b.text(),
                ours.server.tail()
            )
        };
        let env_dump = req.contains("env.example.com");
        // An environ dump's length follows its (compared) content.
        let head = |r: &Reply| {
            let (status, mut headers) = head_of(r);
            headers.retain(|h| !(env_dump && h.starts_with("Content-Length:")));
            (status, headers)
        };
        assert_eq!(head(&a), head(&b), "{}", context());
        if env_dump {
            assert_eq!(
                comparable(environ(a.body()), &ours.dir),
                comparable(environ(b.body()), &theirs.dir),
                "{}",
                context()
            );
        } else if req.starts_with("HEAD ") {
            // uWSGI passes on the body the app made for HEAD; a HEAD
            // response has none (README, differences).
            assert!(a.body().is_empty(), "{}", context());
        } else {
            assert_eq!(a.body(), b.body(), "{}", context());
        }
    }
}

#[test]
fn our_router_in_front_of_real_uwsgi_vassals() {
    let test = "our_router_in_front_of_real_uwsgi_vassals";
    let Some(reference) = reference() else {
        return skip(test, NO_REFERENCE);
    };
    let tmp = TempDir::new();
    let dir = tmp.path();
    let app = repo_root().join("tests/apps/environ.py");
    let mut vassals = Vec::new();
    for site in ["alpha", "beta"] {
        let sock = sock_path(dir, &format!("uwsgi_{site}.sock"));
        let mut cmd = scrubbed(&reference, dir);
        cmd.args([
            "--plugins",
            "python3",
            "--master",
            "--socket",
            &sock,
            "--wsgi-file",
        ])
        .arg(&app);
        let p = Proc::spawn(site, cmd, &dir.join(format!("{site}.log")));
        assert!(wait_unix(Path::new(&sock), WAIT), "{site}\n{}", p.tail());
        vassals.push(p);
    }
    let port = free_port();
    let d = dir.display();
    std::fs::write(
        dir.join("router.ini"),
        format!(
            "[uwsgi]\nmaster = true\nhttp = 127.0.0.1:{port}\n\
             route-host = ^([a-z]+)\\.example\\.com$ uwsgi:{d}/uwsgi_$1.sock,0,0\n"
        ),
    )
    .expect("writing router.ini");
    let router = spawn_ours(dir, &["--ini", "router.ini"]);
    assert!(wait_tcp(port, READY), "{}", router.tail());
    for site in ["alpha", "beta"] {
        let r = get(
            port,
            &format!(
                "GET /p?q=1 HTTP/1.1\r\nHost: {site}.example.com\r\nConnection: close\r\n\r\n"
            ),
        );
        assert_eq!(r.status(), Some(200), "{}\n{}", r.text(), router.tail());
        let env = environ(r.body());
        let get = |k: &str| {
            env.iter()
                .rev()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(
            get("HTTP_HOST"),
            Some(format!("{site}.example.com").as_str())
        );
        assert_eq!(get("PATH_INFO"), Some("/p"));
        assert_eq!(get("QUERY_STRING"), Some("q=1"));
        assert_eq!(get("UWSGI_ROUTER"), Some("http"));
        assert_eq!(get("SERVER_PORT"), Some(port.to_string().as_str()));
    }
    // A keep-alive client: two requests on one connection, both answered
    // by the real uWSGI vassal (which closes its side each time).
    let mut s = crate::server::Stream::connect(&Addr::Tcp(port)).expect("connect");
    use std::io::Write;
    s.write_all(b"GET /1 HTTP/1.1\r\nHost: alpha.example.com\r\n\r\nGET /2 HTTP/1.1\r\nHost: beta.example.com\r\nConnection: close\r\n\r\n")
        .expect("write");
    let both = s.read_reply(std::time::Instant::now()).text();
    assert_eq!(both.matches("HTTP/1.1 200 OK").count(), 2, "{both}");
    assert!(
        both.contains("alpha.example.com") && both.contains("beta.example.com"),
        "{both}"
    );
}
