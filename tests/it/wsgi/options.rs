//! Instance options of issue 3 end to end: identity (`uid`, `gid`,
//! `chown-socket`), output (`logto`, `daemonize`), inherited sockets
//! (systemd `LISTEN_FDS`, `fd://N`), `post-buffering`, `py-autoreload`,
//! `mimefile`, and the recycling lines of `max-requests` / `reload-on-rss`.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

use super::{apps, example_a, skip, write_ini, Instance, EXIT};
use crate::server::{
    request, scrubbed, sock_path, wait_for, wait_unix, worker_pids, Addr, Proc, Stream, READY,
};
use crate::util::TempDir;

/// The id of the unprivileged user and group the drop tests switch to.
const NOBODY: u32 = 65534;

fn is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

/// Whether `nobody`/`nogroup` exist with id 65534 (Debian's layout).
fn has_nobody() -> bool {
    let has = |file: &str, name: &str| {
        std::fs::read_to_string(file).is_ok_and(|t| {
            t.lines()
                .any(|l| l.starts_with(&format!("{name}:x:{NOBODY}:")))
        })
    };
    has("/etc/passwd", "nobody") && has("/etc/group", "nogroup")
}

fn can_drop(test: &str) -> bool {
    if !is_root() {
        skip(test, "needs root to change user");
        return false;
    }
    if !has_nobody() {
        skip(test, "no nobody/nogroup user with id 65534");
        return false;
    }
    true
}

fn get(addr: &Addr, path: &str) -> String {
    let head = format!("GET {path} HTTP/1.0\r\nHost: it.test\r\n\r\n");
    let r = request(addr, head.as_bytes());
    assert_eq!(r.status(), Some(200), "{path}: {:?}", r.text());
    String::from_utf8_lossy(r.body()).into_owned()
}

// ---------------------------------------------------------------- identity

#[test]
fn uid_and_gid_by_name_drop_after_binding_and_the_pidfile() {
    if !can_drop("uid_and_gid_by_name_drop_after_binding_and_the_pidfile") {
        return;
    }
    let mut it = Instance::start(
        "master = true\nuid = nobody\ngid = nogroup\npidfile = %dapp.pid\nwsgi-file = @APPS@/cases.py",
    );
    assert_eq!(get(&it.h, "/ids"), format!("{NOBODY} {NOBODY}"));
    it.logged(&format!("setgid() to {NOBODY}"));
    it.logged(&format!("setuid() to {NOBODY}"));
    let log = it.server.log();
    let order = ["writing pidfile to", "uwsgi socket 0 bound", "setuid() to"]
        .map(|n| log.find(n).unwrap_or_else(|| panic!("no {n:?}\n{log}")));
    assert!(order[0] < order[1] && order[1] < order[2], "{log}");
    // Created before the drop: still root's.
    for f in ["u.sock", "h.sock", "app.pid"] {
        let meta = std::fs::metadata(it.dir.path().join(f)).expect(f);
        assert_eq!((meta.uid(), meta.gid()), (0, 0), "{f}");
    }
    let pid = std::fs::read_to_string(it.dir.path().join("app.pid")).expect("pidfile");
    assert_eq!(pid.trim(), it.server.pid().to_string());
    // The master dropped too (a reload re-execs it as that user).
    let status = std::fs::read_to_string(format!("/proc/{}/status", it.server.pid())).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line.split_whitespace().skip(1).all(|u| u == "65534"),
        "{uid_line}"
    );
    it.server.signal(libc::SIGHUP);
    it.wait("gracefully (RE)spawned uWSGI master process");
    it.server.wait_lines("spawned uWSGI worker 1 (", 2, READY);
    assert_eq!(get(&it.h, "/ids"), format!("{NOBODY} {NOBODY}"));
}

#[test]
fn chown_socket_and_numeric_uid() {
    if !can_drop("chown_socket_and_numeric_uid") {
        return;
    }
    let it = Instance::start(&format!(
        "master = true\nchown-socket = {NOBODY}:nogroup\nuid = {NOBODY}\ngid = {NOBODY}\n\
         wsgi-file = @APPS@/cases.py"
    ));
    for f in ["u.sock", "h.sock"] {
        let meta = std::fs::metadata(it.dir.path().join(f)).expect(f);
        assert_eq!((meta.uid(), meta.gid()), (NOBODY, NOBODY), "{f}");
    }
    assert_eq!(get(&it.h, "/ids"), format!("{NOBODY} {NOBODY}"));
}

#[test]
fn unknown_uid_fails_naming_the_option() {
    let dir = TempDir::new();
    let ini = write_ini(
        dir.path(),
        "master = true\nuid = no-such-user-here\nwsgi-file = @APPS@/hello.py",
    );
    let out = super::run_ini(dir.path(), ini);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.rc, 1, "{err}");
    assert!(
        err.contains("unable to find user no-such-user-here (") && err.contains("app.ini line "),
        "{err}"
    );
}

// ---------------------------------------------------------------- output

#[test]
fn logto_sends_everything_after_the_config_line_to_the_file() {
    let dir = TempDir::new();
    let ini = write_ini(
        dir.path(),
        "master = true\nlogto = %dapp.log\nwsgi-file = @APPS@/hello.py",
    );
    let server = crate::server::spawn_ours(dir.path(), &["--ini", &ini.display().to_string()]);
    let sock = dir.path().join("h.sock");
    assert!(wait_unix(&sock, READY), "{}", server.tail());
    let file = dir.path().join("app.log");
    assert_eq!(get(&Addr::Unix(sock), "/"), "Hello World!");
    let found = wait_for(READY, || {
        let log = std::fs::read_to_string(&file).unwrap_or_default();
        log.contains("GET / => generated 12 bytes").then_some(log)
    });
    let log = found.unwrap_or_else(|| panic!("no request line in {}", file.display()));
    assert!(log.contains("spawned uWSGI worker 1 ("), "{log}");
    let ours = server.log();
    assert!(ours.contains("getting INI configuration from"), "{ours}");
    assert!(!ours.contains("spawned uWSGI worker"), "{ours}");
}

/// Kills a daemonized master (not our child) by pid when dropped.
struct Daemon(i32);

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: kill(2) with integers; the pid was read from the pidfile
        // the master wrote, and the workers follow it (parent-death signal).
        unsafe { libc::kill(self.0, libc::SIGKILL) };
        let gone = || (!Path::new(&format!("/proc/{}", self.0)).exists()).then_some(());
        let _ = wait_for(Duration::from_secs(5), gone);
    }
}

fn session_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid pgrp session ..."
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}

#[test]
fn daemonize_detaches_writes_the_pidfile_and_logs_to_the_file() {
    let dir = TempDir::new();
    let ini = write_ini(
        dir.path(),
        "master = true\ndaemonize = %ddaemon.log\npidfile = %dapp.pid\nwsgi-file = @APPS@/hello.py",
    );
    let out = super::run_ini(dir.path(), ini);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!((out.rc, out.timeout.as_deref()), (0, None), "{err}");
    let pidfile = dir.path().join("app.pid");
    let pid: i32 = wait_for(READY, || {
        std::fs::read_to_string(&pidfile).ok()?.trim().parse().ok()
    })
    .expect("the daemon wrote its pidfile");
    let _daemon = Daemon(pid);
    assert!(wait_unix(&dir.path().join("h.sock"), READY), "{err}");
    assert_eq!(
        get(&Addr::Unix(dir.path().join("h.sock")), "/"),
        "Hello World!"
    );
    // SAFETY: getsid(0) only reads our own session id.
    let ours = unsafe { libc::getsid(0) };
    let theirs = session_of(pid).expect("daemon session");
    assert_ne!(theirs, ours, "the daemon left our session");
    let file = dir.path().join("daemon.log");
    let log = wait_for(READY, || {
        let l = std::fs::read_to_string(&file).ok()?;
        l.contains("GET / => generated").then_some(l)
    })
    .unwrap_or_else(|| panic!("no request line in {}", file.display()));
    assert!(
        log.contains(&format!("spawned uWSGI master process (pid: {pid})")),
        "{log}"
    );
    assert!(!err.contains("spawned uWSGI"), "{err}");
}

// ---------------------------------------------------------------- inherited sockets

/// Starts our binary with `listeners` as descriptors 3, 4, ... and
/// `LISTEN_PID`/`LISTEN_FDS` (systemd) when `systemd` is set.
fn spawn_with_fds(dir: &Path, ini: &Path, listeners: &[&UnixListener], systemd: bool) -> Proc {
    let bin = env!("CARGO_BIN_EXE_uwsgi");
    let mut cmd = scrubbed("/bin/sh", dir);
    let script = if systemd {
        format!(
            "export LISTEN_PID=$$ LISTEN_FDS={}; exec \"$0\" --ini \"$1\"",
            listeners.len()
        )
    } else {
        "exec \"$0\" --ini \"$1\"".to_string()
    };
    cmd.arg("-c").arg(script).arg(bin).arg(ini);
    let fds: Vec<i32> = listeners.iter().map(|l| l.as_raw_fd()).collect();
    // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and
    // exec. Each socket is first copied above the target range so a
    // source that is itself 3 or 4 is not overwritten.
    unsafe {
        cmd.pre_exec(move || {
            for (i, fd) in fds.iter().enumerate() {
                let h = libc::fcntl(*fd, libc::F_DUPFD, 200 + i as libc::c_int);
                if h < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::dup2(h, 3 + i as libc::c_int) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    Proc::spawn("ruwsgi", cmd, &dir.join("ours.log"))
}

#[test]
fn systemd_sockets_are_adopted_and_hidden_from_the_app() {
    let dir = TempDir::new();
    let (sd, h) = (
        sock_path(dir.path(), "sd.sock"),
        sock_path(dir.path(), "h.sock"),
    );
    let sd_l = UnixListener::bind(&sd).expect("bind sd.sock");
    let h_l = UnixListener::bind(&h).expect("bind h.sock");
    let ini = dir.path().join("app.ini");
    let text = format!(
        "[uwsgi]\nmaster = true\nhttp-socket = {h}\nwsgi-file = {}/cases.py\n",
        apps().display()
    );
    std::fs::write(&ini, text).expect("app.ini");
    let mut server = spawn_with_fds(dir.path(), &ini, &[&sd_l, &h_l], true);
    drop((sd_l, h_l));
    server.wait_line("spawned uWSGI worker 1 (", READY);
    let log = server.log();
    assert!(
        log.contains("- SystemD socket activation detected -"),
        "{log}"
    );
    assert!(
        log.contains(&format!("uwsgi socket 0 inherited UNIX address {h} fd 4")),
        "{log}"
    );
    assert!(
        log.contains(&format!("uwsgi socket 1 inherited UNIX address {sd} fd 3")),
        "{log}"
    );
    // The configured name keeps its protocol; the extra one speaks uwsgi.
    assert_eq!(get(&Addr::Unix(h.into()), "/getenv?LISTEN_PID"), "-");
    let r = request(&Addr::Unix(sd.into()), &example_a("/"));
    assert!(
        r.text().starts_with("HTTP/1.1 200 OK"),
        "{:?}\n{}",
        r.text(),
        server.tail()
    );
}

#[test]
fn fd_scheme_socket_is_used_as_is() {
    let dir = TempDir::new();
    let path = sock_path(dir.path(), "fd.sock");
    let l = UnixListener::bind(&path).expect("bind fd.sock");
    let ini = dir.path().join("app.ini");
    let text = format!(
        "[uwsgi]\nmaster = true\nhttp-socket = fd://3\nwsgi-file = {}/hello.py\n",
        apps().display()
    );
    std::fs::write(&ini, text).expect("app.ini");
    let mut server = spawn_with_fds(dir.path(), &ini, &[&l], false);
    drop(l);
    server.wait_line("spawned uWSGI worker 1 (", READY);
    let line = format!("uwsgi socket 0 inherited UNIX address {path} fd 3");
    assert!(server.log().contains(&line), "{}", server.tail());
    assert_eq!(get(&Addr::Unix(path.into()), "/"), "Hello World!");
}

// ---------------------------------------------------------------- post-buffering

fn post(addr: &Addr, path: &str, body: &[u8]) -> String {
    let head = format!(
        "POST {path} HTTP/1.0\r\nHost: it.test\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let r = request(addr, &[head.as_bytes(), body].concat());
    assert_eq!(r.status(), Some(200), "{:?}", r.text());
    String::from_utf8_lossy(r.body()).into_owned()
}

#[test]
fn post_buffering_reads_the_body_first_and_input_can_seek() {
    let mut it = Instance::start(
        "master = true\npost-buffering = 1024\nsocket-timeout = 1\nwsgi-file = @APPS@/cases.py",
    );
    // In memory, then spilled to a temporary file.
    for n in [100usize, 300_000] {
        let body: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
        assert_eq!(post(&it.h, "/seek", &body), format!("{n} same"));
    }
    // Half a body, then silence: the app never runs, one line, no traceback.
    let mut s = Stream::connect(&it.h).expect("connect");
    let head = "POST /seek HTTP/1.0\r\nContent-Length: 100\r\n\r\n0123456789";
    s.write_all(head.as_bytes()).expect("write");
    it.wait("[uwsgi-body-read] Timeout reading");
    drop(s);
    assert_eq!(get(&it.h, "/"), "default");
    let log = it.server.log();
    assert!(!log.contains("Traceback"), "{log}");
    assert_eq!(log.matches("[uwsgi-body-read]").count(), 1, "{log}");
}

// ---------------------------------------------------------------- py-autoreload

#[test]
fn py_autoreload_reloads_when_a_loaded_module_changes() {
    let dir = TempDir::new();
    let module = dir.path().join("reloadme.py");
    std::fs::write(&module, "VALUE = b'one'\n").expect("module");
    let app = dir.path().join("app.py");
    let code = "import reloadme\n\ndef application(e, sr):\n    sr('200 OK', [])\n    return [reloadme.VALUE]\n";
    std::fs::write(&app, code).expect("app");
    let ini = write_ini(
        dir.path(),
        &format!(
            "master = true\npy-autoreload = 1\npythonpath = %d\nwsgi-file = {}",
            app.display()
        ),
    );
    let mut server = crate::server::spawn_ours(dir.path(), &["--ini", &ini.display().to_string()]);
    server.wait_line("spawned uWSGI worker 1 (", READY);
    server.wait_line("Python auto-reloader enabled", READY);
    let h = Addr::Unix(dir.path().join("h.sock"));
    assert!(wait_unix(&dir.path().join("h.sock"), READY));
    assert_eq!(get(&h, "/"), "one");
    // Let the reloader record the first mtime, then change the file with
    // an mtime clearly different even on a coarse clock.
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::write(&module, "VALUE = b'two'\n").expect("module");
    let later = std::time::SystemTime::now() + Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&module)
        .and_then(|f| f.set_modified(later))
        .expect("set mtime");
    let line = format!(
        "[uwsgi-python-reloader] module/file {} has been modified",
        module.display()
    );
    server.wait_line(&line, READY);
    server.wait_line("gracefully (RE)spawned uWSGI master process", READY);
    let two = wait_for(READY, || {
        let head = b"GET / HTTP/1.0\r\n\r\n";
        crate::server::exchange(&h, head)
            .ok()
            .filter(|r| r.body() == b"two")
            .map(|_| ())
    });
    assert!(two.is_some(), "{}", server.tail());
}

// ---------------------------------------------------------------- recycling

fn recycles_after(option: &str, requests: usize) {
    let mut it = Instance::start(&format!(
        "master = true\nmin-worker-lifetime = 0\n{option}\nwsgi-file = @APPS@/hello.py"
    ));
    let first = it.worker();
    for _ in 0..requests {
        assert_eq!(get(&it.h, "/"), "Hello World!");
    }
    it.wait(&format!("...The work of process {first} is done. Seeya!"));
    it.wait(&format!("worker 1 killed successfully (pid: {first})"));
    it.wait("Respawned uWSGI worker 1 (new pid: ");
    // reload-on-rss recycles every worker after each request: 2 or more.
    let pids = worker_pids(&it.server.log(), 1);
    assert!(pids.len() >= 2, "{}", it.server.tail());
    assert_eq!(get(&it.h, "/"), "Hello World!");
    let line = format!("[pid: {}|", pids[1]);
    it.wait(&line);
    it.server.signal(libc::SIGINT);
    assert_eq!(it.server.wait_exit(EXIT), 0);
}

#[test]
fn max_requests_recycles_with_uwsgis_lines() {
    recycles_after("max-requests = 2", 2);
}

#[test]
fn reload_on_rss_recycles_with_uwsgis_lines() {
    // Any Python worker is above 1 MiB.
    recycles_after("reload-on-rss = 1", 1);
}

// ---------------------------------------------------------------- bad clients

#[test]
fn slow_body_and_vanishing_client_cost_one_line_each() {
    let mut it = Instance::start("master = true\nsocket-timeout = 1\nwsgi-file = @APPS@/cases.py");
    let worker = it.worker();
    // A body slower than socket-timeout while the app streams it.
    let mut s = Stream::connect(&it.h).expect("connect");
    let head = "POST /echo HTTP/1.0\r\nContent-Length: 100\r\n\r\n0123456789";
    s.write_all(head.as_bytes()).expect("write");
    it.wait("[uwsgi-body-read] Timeout reading");
    drop(s);
    // A client that goes away in the middle of a 64 MiB response.
    let mut s = Stream::connect(&it.h).expect("connect");
    s.write_all(b"GET /big HTTP/1.0\r\n\r\n").expect("write");
    let mut some = [0u8; 65536];
    let n = s.read(&mut some).expect("first bytes");
    assert!(n > 0);
    drop(s);
    it.wait("GET /big => generated ");
    assert_eq!(get(&it.h, "/"), "default");
    let log = it.server.log();
    assert!(!log.contains("Traceback"), "{log}");
    assert_eq!(log.matches("[uwsgi-body-read]").count(), 1, "{log}");
    let write_errors = log
        .lines()
        .filter(|l| l.contains("uwsgi_response_write") || l.contains("TIMEOUT !!!"))
        .count();
    assert_eq!(write_errors, 1, "{log}");
    assert_eq!(it.worker(), worker, "the worker was replaced\n{log}");
}

// ---------------------------------------------------------------- audit

/// The Python and instance options real configs use, on one instance.
#[test]
fn python_and_instance_options_reach_the_app() {
    let mut it = Instance::start(
        "master = true\nprocesses = 2\npythonpath = @APPS@\nmodule = pkg.site:app\n\
         mount = /sub=pkg.site:app\nmanage-script-name = true\nenv = GREETING=hello world\n\
         enable-threads = true\nsingle-interpreter = true\nchmod-socket = 660\nvacuum = true\n\
         static-map = /static=@APPS@\nstatic-map2 = /pkg=@APPS@\ncheck-static = @APPS@\n\
         touch-reload = %dreload.txt",
    );
    let info = get(&it.h, "/x");
    for part in [
        "\"numproc\": 2",
        "\"greeting\": \"hello world\"",
        "\"module\": \"pkg.site:app\"",
        "\"path_info\": \"/x\"",
    ] {
        assert!(info.contains(part), "{part} in {info}");
    }
    let ids: HashSet<String> = (0..20)
        .map(|_| get(&it.h, "/x"))
        .filter_map(|j| {
            Some(
                j.split_once("\"worker_id\": ")?
                    .1
                    .chars()
                    .next()?
                    .to_string(),
            )
        })
        .collect();
    assert!(ids.iter().all(|i| i == "1" || i == "2"), "{ids:?}");
    // mount + manage-script-name: the mountpoint moves to SCRIPT_NAME.
    let sub = get(&it.h, "/sub/a/b");
    assert!(
        sub.contains("\"script_name\": \"/sub\"") && sub.contains("\"path_info\": \"/a/b\""),
        "{sub}"
    );
    assert_eq!(get(&it.h, "/thread"), "ran");
    // Static files never enter Python.
    let hello = std::fs::read_to_string(apps().join("hello.py")).unwrap();
    let init = std::fs::read_to_string(apps().join("pkg/__init__.py")).unwrap();
    assert_eq!(get(&it.h, "/static/hello.py"), hello);
    assert_eq!(get(&it.h, "/pkg/__init__.py"), init);
    assert_eq!(get(&it.h, "/hello.py"), hello);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(it.dir.path().join("u.sock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o660);
    // touch-reload, then uwsgi.reload(): two graceful reloads.
    std::fs::write(it.dir.path().join("reload.txt"), "x").unwrap();
    it.wait("reload.txt has been touched... grace them all !!! ***");
    it.server
        .wait_lines("gracefully (RE)spawned uWSGI master process", 1, READY);
    it.server.wait_lines("spawned uWSGI worker 2 (", 2, READY);
    assert_eq!(get(&it.h, "/reload"), "True");
    it.server
        .wait_lines("gracefully (RE)spawned uWSGI master process", 2, READY);
    it.server.wait_lines("spawned uWSGI worker 2 (", 3, READY);
    // vacuum on shutdown.
    it.server.signal(libc::SIGINT);
    assert_eq!(it.server.wait_exit(EXIT), 0, "{}", it.server.tail());
    it.logged("VACUUM: unix socket ");
    assert!(!it.dir.path().join("u.sock").exists());
}

/// The `Content-Type` of a reply, if it has one.
fn content_type(r: &crate::server::Reply) -> Option<String> {
    let text = r.text();
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.trim().to_string())
}

/// `static-map` and a worker's `static:` route type files from one table:
/// the `mimefile` files in order (an unreadable one is logged), then the
/// built-in types, whatever the extension's case.
#[test]
fn static_files_and_static_routes_share_the_mime_table() {
    let files = TempDir::new();
    let root = files.path().display().to_string();
    std::fs::write(files.path().join("x.types"), "text/x-from-file\tpy\n").unwrap();
    for name in ["hello.py", "FAVICON.ICO", "data.qqq"] {
        std::fs::write(files.path().join(name), "x").unwrap();
    }
    let it = Instance::start(&format!(
        "wsgi-file = @APPS@/hello.py\nmimefile = {root}/missing.types\nmimefile = {root}/x.types\n\
         static-map = /s={root}\nroute = ^/r/(.*)$ static:{root}/$1"
    ));
    for prefix in ["/s/", "/r/"] {
        for (name, want) in [
            ("hello.py", Some("text/x-from-file")),
            ("FAVICON.ICO", Some("image/vnd.microsoft.icon")),
            ("data.qqq", None),
        ] {
            let r = it.get(&format!("{prefix}{name}"));
            it.ok(&r, b"x");
            assert_eq!(content_type(&r).as_deref(), want, "{prefix}{name}");
        }
    }
    it.logged(&format!("!!! no {root}/missing.types file found !!!"));
}

#[test]
fn lazy_apps_load_in_each_worker_and_readiness_is_notified() {
    let dir = TempDir::new();
    let notify = dir.path().join("notify.sock");
    let rx = std::os::unix::net::UnixDatagram::bind(&notify).expect("bind notify socket");
    rx.set_read_timeout(Some(READY)).unwrap();
    let ini = write_ini(
        dir.path(),
        "master = true\nprocesses = 2\nlazy-apps = true\nwsgi-file = @APPS@/hello.py",
    );
    let bin = env!("CARGO_BIN_EXE_uwsgi");
    let mut cmd = scrubbed(bin, dir.path());
    cmd.env("NOTIFY_SOCKET", &notify).arg("--ini").arg(&ini);
    let mut server = Proc::spawn("ruwsgi", cmd, &dir.path().join("ours.log"));
    let mut buf = [0u8; 256];
    let n = rx.recv(&mut buf).expect("a readiness datagram");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("READY=1"));
    server.wait_lines("WSGI app 0 (mountpoint='') ready in ", 2, READY);
    let log = server.log();
    let loaded_in: Vec<i32> = log
        .lines()
        .filter_map(|l| {
            l.split_once("WSGI app 0 (mountpoint='') ready in ")?
                .1
                .split_once(" pid: ")
        })
        .filter_map(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .collect();
    let mut workers = [worker_pids(&log, 1)[0], worker_pids(&log, 2)[0]];
    let mut loaded = [loaded_in[0], loaded_in[1]];
    workers.sort_unstable();
    loaded.sort_unstable();
    assert_eq!(loaded, workers, "{log}");
    assert!(wait_unix(&dir.path().join("h.sock"), READY));
    assert_eq!(
        get(&Addr::Unix(dir.path().join("h.sock")), "/"),
        "Hello World!"
    );
}
