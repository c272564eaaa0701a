//! The emperor pipe protocol against the real uWSGI 2.0, both ways: the
//! real binary as a vassal of our emperor (`emperor-wrapper`), and ours as
//! a vassal of the real emperor. Each side must see the vassal spawned,
//! ready and loyal (after one request), obey a reload (touched file) and a
//! stop (removed file). Skipped with a reason when uWSGI is not installed;
//! failed instead under `RUWSGI_IT_REQUIRE_PEERS`.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::server::{
    exchange, reference_uwsgi, scrubbed, spawn_ours, uwsgi_packet, wait_for, Addr, Proc, READY,
};
use crate::util::TempDir;

/// How long a stop may take (uWSGI's own shutdown, on a busy machine).
const STOP: Duration = Duration::from_secs(60);

fn skip(test: &str, reason: &str) {
    crate::util::skip_test(&format!("emperor_interop::{test}"), reason);
}

const APP: &str = "def application(environ, start_response):\n\
                   \x20   start_response('200 OK', [('Content-Type', 'text/plain')])\n\
                   \x20   return [b'hello from the vassal']\n";

/// A temp dir with `vassals/a.ini` serving `app.py` on `a.sock`.
fn site() -> (TempDir, PathBuf, PathBuf) {
    let tmp = TempDir::new();
    let dir = fs::canonicalize(tmp.path()).unwrap();
    fs::create_dir(dir.join("vassals")).unwrap();
    fs::write(dir.join("app.py"), APP).unwrap();
    let sock = dir.join("a.sock");
    let ini = dir.join("vassals/a.ini");
    fs::write(
        &ini,
        format!(
            "[uwsgi]\nplugins = python3\nsocket = {}\nchdir = {}\nwsgi-file = app.py\n\
             processes = 2\n",
            sock.display(),
            dir.display()
        ),
    )
    .unwrap();
    (tmp, sock, ini)
}

fn served(sock: &Path) -> bool {
    let packet = uwsgi_packet(
        0,
        &[
            ("REQUEST_METHOD", "GET"),
            ("PATH_INFO", "/"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("SERVER_NAME", "interop"),
            ("SERVER_PORT", "80"),
        ],
    );
    exchange(&Addr::Unix(sock.to_path_buf()), &packet)
        .is_ok_and(|r| r.text().ends_with("hello from the vassal"))
}

fn wait_served(sock: &Path, server: &Proc) {
    if wait_for(READY, || served(sock).then_some(())).is_none() {
        panic!("the vassal never served\n{}", server.tail());
    }
}

/// Touches `path` so that its mtime grows by a whole second at least: the
/// real emperor compares whole seconds and misses a touch within the
/// second the file was written.
fn touch(path: &Path) {
    let old = fs::metadata(path).unwrap().modified().unwrap();
    let new = SystemTime::now().max(old + Duration::from_secs(1));
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(new)
        .unwrap();
}

/// The lifecycle both tests check; `emperor` logs the emperor's and the
/// vassal's lines; `reloaded` is the vassal's line after a reload.
fn lifecycle(mut emperor: Proc, sock: &Path, ini: &Path, reloaded: &str, stopped: &str) {
    emperor.wait_line("[emperor] vassal a.ini has been spawned", READY);
    emperor.wait_line("[emperor] vassal a.ini is ready to accept requests", READY);
    wait_served(sock, &emperor);
    emperor.wait_line("announcing my loyalty to the Emperor...", READY);
    emperor.wait_line("[emperor] vassal a.ini is now loyal", READY);

    let before = emperor.count(reloaded);
    touch(ini);
    emperor.wait_line("[emperor] reload the uwsgi instance a.ini", READY);
    emperor.wait_lines(reloaded, before + 1, READY);
    if emperor
        .log()
        .contains("handing the sockets and the running workers over")
    {
        // Ours: the new image retires the workers it adopted.
        emperor.wait_line("old worker 1 (pid: ", READY);
    }
    wait_served(sock, &emperor);
    assert_eq!(
        emperor.count("has been spawned"),
        1,
        "the vassal was respawned instead of reloaded\n{}",
        emperor.log()
    );

    fs::remove_file(ini).unwrap();
    emperor.wait_line("[emperor] stop the uwsgi instance a.ini", READY);
    emperor.wait_line(stopped, READY);
    // uWSGI's workers may take their time to go on a loaded machine.
    emperor.wait_line("[emperor] removed uwsgi instance a.ini", STOP);
    let gone = wait_for(Duration::from_secs(5), || (!served(sock)).then_some(()));
    assert!(
        gone.is_some(),
        "still served after removal\n{}",
        emperor.tail()
    );
}

#[test]
fn the_real_uwsgi_is_a_vassal_of_our_emperor() {
    let Some(real) = reference_uwsgi("python3") else {
        return skip(
            "the_real_uwsgi_is_a_vassal_of_our_emperor",
            "the real uWSGI with the python3 plugin is not installed",
        );
    };
    let (tmp, sock, ini) = site();
    let vassals = ini.parent().unwrap().display().to_string();
    let real = real.display().to_string();
    let mut emperor = spawn_ours(
        tmp.path(),
        &["--emperor", &vassals, "--emperor-wrapper", &real],
    );
    // The real uWSGI's own lines: its version banner, then its reload.
    emperor.wait_line("*** Starting uWSGI 2.0", READY);
    // Its reaction to the stop byte; its goodbye may come late or never
    // on a loaded machine (a worker it waits for), so it is not required.
    lifecycle(
        emperor,
        &sock,
        &ini,
        "gracefully (RE)spawned uWSGI master process",
        "SIGINT/SIGTERM received...killing workers...",
    );
}

#[test]
fn ours_is_a_vassal_of_the_real_emperor() {
    let Some(real) = reference_uwsgi("python3") else {
        return skip(
            "ours_is_a_vassal_of_the_real_emperor",
            "the real uWSGI with the python3 plugin is not installed",
        );
    };
    let (tmp, sock, ini) = site();
    let mut cmd = scrubbed(&real, tmp.path());
    cmd.args(["--plugins", "python3", "--emperor"])
        .arg(ini.parent().unwrap())
        .args(["--emperor-freq", "1", "--emperor-wrapper"])
        .arg(env!("CARGO_BIN_EXE_uwsgi"));
    let mut emperor = Proc::spawn("real uWSGI emperor", cmd, &tmp.path().join("real.log"));
    emperor.wait_line("*** starting uWSGI Emperor ***", READY);
    lifecycle(
        emperor,
        &sock,
        &ini,
        "gracefully (RE)spawned uWSGI master process",
        "goodbye to uWSGI.",
    );
}
