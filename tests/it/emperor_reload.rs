//! Zero-downtime reload of a vassal (issue 5, "better than uWSGI"): the
//! headline setup (master + HTTP router + emperor) with one Python vassal;
//! a client loops requests through the router while the vassal's file is
//! touched. The new app takes a long time to import, so a request that
//! waited for it would show; a broken new app or config must leave the old
//! workers serving.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::server::{exchange, free_port, spawn_ours, wait_for, Addr, Proc, READY};
use crate::util::{touch, TempDir};

/// How long the app takes to import: far above any request's own time.
const SLOW_IMPORT: &str = "1.5";

fn app(version: &str) -> String {
    format!(
        "import time\ntime.sleep({SLOW_IMPORT})\n\
         def application(environ, start_response):\n\
         \x20   body = b'{version}'\n\
         \x20   start_response('200 OK', [('Content-Length', str(len(body)))])\n\
         \x20   return [body]\n"
    )
}

/// The main instance (router + emperor) and one vassal serving `app.py`.
struct Site {
    tmp: TempDir,
    port: u16,
    server: Proc,
}

impl Site {
    fn start() -> Site {
        let tmp = TempDir::new();
        let dir = fs::canonicalize(tmp.path()).unwrap();
        fs::create_dir(dir.join("vassals")).unwrap();
        fs::write(dir.join("app.py"), app("v1")).unwrap();
        let sock = dir.join("app.sock");
        fs::write(
            dir.join("vassals/app.ini"),
            format!(
                "[uwsgi]\nsocket = {}\nchdir = {}\nwsgi-file = app.py\nprocesses = 2\ndisable-logging = true\n",
                sock.display(),
                dir.display()
            ),
        )
        .unwrap();
        let port = free_port();
        fs::write(
            dir.join("main.ini"),
            format!(
                "[uwsgi]\nmaster = true\nhttp = 127.0.0.1:{port}\nemperor = {}\n\
                 route-run = uwsgi:{},0,0\n",
                dir.join("vassals").display(),
                sock.display()
            ),
        )
        .unwrap();
        let server = spawn_ours(&dir, &["--ini", "main.ini"]);
        let site = Site { tmp, port, server };
        site.wait_body("v1");
        site
    }

    fn dir(&self) -> &Path {
        self.tmp.path()
    }

    fn get(&self) -> Result<String, String> {
        let req = b"GET / HTTP/1.1\r\nHost: site\r\nConnection: close\r\n\r\n";
        let reply = exchange(&Addr::Tcp(self.port), req).map_err(|e| e.to_string())?;
        match reply.status() {
            Some(200) => Ok(String::from_utf8_lossy(reply.body()).into_owned()),
            other => Err(format!("status {other:?}: {}", reply.text())),
        }
    }

    fn wait_body(&self, want: &str) {
        if wait_for(READY, || (self.get().ok()? == want).then_some(())).is_none() {
            panic!("never served {want}; {}", self.server.tail());
        }
    }

    /// Replaces the app and touches the vassal file (the reload trigger).
    fn deploy(&self, source: &str) {
        fs::write(self.dir().join("app.py"), source).unwrap();
        touch(&self.dir().join("vassals/app.ini"));
    }
}

/// Requests looped by two clients until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<Outcome>>,
}

#[derive(Debug, Default)]
struct Outcome {
    ok: usize,
    failures: Vec<String>,
    bodies: Vec<String>,
    slowest: Duration,
}

impl Outcome {
    /// Fails with the failed requests and the server's log tail.
    fn assert_none_failed(&self, tail: &str) {
        assert!(
            self.failures.is_empty(),
            "failed requests: {:?}\n{tail}",
            self.failures
        );
    }
}

impl Load {
    fn start(port: u16) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..2)
            .map(|_| {
                let stop = stop.clone();
                thread::spawn(move || {
                    let mut out = Outcome::default();
                    let req = b"GET / HTTP/1.1\r\nHost: site\r\nConnection: close\r\n\r\n";
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        let res = exchange(&Addr::Tcp(port), req);
                        out.slowest = out.slowest.max(t.elapsed());
                        match res {
                            Ok(r) if r.status() == Some(200) => {
                                out.ok += 1;
                                let body = String::from_utf8_lossy(r.body()).into_owned();
                                if out.bodies.last() != Some(&body) {
                                    out.bodies.push(body);
                                }
                            }
                            Ok(r) => out.failures.push(r.text()),
                            Err(e) => out.failures.push(e.to_string()),
                        }
                    }
                    out
                })
            })
            .collect();
        Load { stop, threads }
    }

    fn finish(self) -> Outcome {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Outcome::default();
        for t in self.threads {
            let o = t.join().unwrap();
            all.ok += o.ok;
            all.failures.extend(o.failures);
            all.slowest = all.slowest.max(o.slowest);
            for b in o.bodies {
                if !all.bodies.contains(&b) {
                    all.bodies.push(b);
                }
            }
        }
        all
    }
}

#[test]
fn reload_under_load_fails_no_request_and_none_waits_for_the_import() {
    let mut site = Site::start();
    let vassal_master = site
        .server
        .wait_line("[emperor] vassal app.ini has been spawned", READY);
    let load = Load::start(site.port);
    // Some requests before the reload.
    thread::sleep(Duration::from_millis(200));
    site.deploy(&app("v2"));
    site.wait_body("v2");
    thread::sleep(Duration::from_millis(200));
    let out = load.finish();
    out.assert_none_failed(&site.server.tail());
    assert!(out.ok > 10, "too few requests: {out:?}");
    assert_eq!(out.bodies, ["v1", "v2"], "{out:?}");
    // The import takes 1.5 s; the old workers served meanwhile.
    assert!(
        out.slowest < Duration::from_millis(1000),
        "a request waited {:?} (the import takes {SLOW_IMPORT} s)\n{}",
        out.slowest,
        site.server.tail()
    );
    site.server.wait_line("old worker 1 (pid: ", READY);
    // Same vassal process (its master re-exec'd in place), never respawned.
    let log = site.server.log();
    assert_eq!(
        log.matches("has been spawned").count(),
        1,
        "{vassal_master}\n{log}"
    );
    assert!(
        log.contains("gracefully (RE)spawned uWSGI master process"),
        "{log}"
    );
}

#[test]
fn a_broken_new_app_or_config_keeps_the_old_workers_serving() {
    let mut site = Site::start();
    let load = Load::start(site.port);
    site.deploy("import time\ntime.sleep(0.2)\nraise RuntimeError('deploy went wrong')\n");
    site.server
        .wait_line("!!! reload failed: the new app did not load !!!", READY);
    site.server.wait_line("keep serving", READY);
    assert!(site.server.log().contains("deploy went wrong"));
    // Keeps serving the old code for a while.
    thread::sleep(Duration::from_millis(300));
    site.wait_body("v1");

    // A file that no longer resolves is refused before the exec.
    let ini = site.dir().join("vassals/app.ini");
    let good = fs::read_to_string(&ini).unwrap();
    fs::write(
        &ini,
        format!("{good}ini = {}/missing.ini\n", site.dir().display()),
    )
    .unwrap();
    site.server.wait_line("!!! reload aborted: ", READY);
    site.wait_body("v1");

    // Fixed: the next trigger loads it.
    fs::write(&ini, &good).unwrap();
    site.deploy(&app("v3"));
    site.wait_body("v3");
    let out = load.finish();
    out.assert_none_failed(&site.server.tail());
    assert_eq!(out.bodies, ["v1", "v3"], "{out:?}");
    assert_eq!(
        site.server.count("has been spawned"),
        1,
        "{}",
        site.server.log()
    );
}

/// A single instance with its own router (`http =`): a broken new app
/// keeps the old workers serving, and the router (restarted by the new
/// image, whose config did resolve) keeps routing to them.
#[test]
fn a_broken_app_behind_the_instances_own_router_keeps_serving() {
    let tmp = TempDir::new();
    let dir = fs::canonicalize(tmp.path()).unwrap();
    fs::write(dir.join("app.py"), app("v1")).unwrap();
    let port = free_port();
    fs::write(
        dir.join("site.ini"),
        format!(
            "[uwsgi]\nmaster = true\nhttp = 127.0.0.1:{port}\nwsgi-file = app.py\n\
             processes = 2\ndisable-logging = true\ntouch-reload = {}\n",
            dir.join("deploy").display()
        ),
    )
    .unwrap();
    fs::write(dir.join("deploy"), "").unwrap();
    let server = spawn_ours(&dir, &["--ini", "site.ini"]);
    let site = Site { tmp, port, server };
    site.wait_body("v1");
    let load = Load::start(port);
    fs::write(dir.join("app.py"), "raise ImportError('broken deploy')\n").unwrap();
    touch(&dir.join("deploy"));
    let mut server = site.server;
    server.wait_line("!!! reload failed: the new app did not load !!!", READY);
    thread::sleep(Duration::from_millis(1500));
    let out = load.finish();
    out.assert_none_failed(&server.tail());
    assert_eq!(out.bodies, ["v1"], "{out:?}");
}
