//! `examples/procfile/` under a real Procfile runner (honcho, from PyPI):
//! `web: uwsgi uwsgi.ini` with `http-socket = :$(PORT)` starts, serves on
//! the port the runner gives it, and stops cleanly on the runner's SIGTERM
//! with no process left behind.

use std::time::Duration;

use crate::server::{exchange, find_program, free_port, scrubbed, wait_for, Addr, Proc};
use crate::util::{copy_tree, repo_root, visible, TempDir};

const WAIT: Duration = Duration::from_secs(20);

fn alive(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[test]
fn procfile_under_honcho() {
    let Some(honcho) = find_program(&["honcho"], &[]) else {
        if std::env::var_os("RUWSGI_IT_REQUIRE_PEERS").is_some() {
            panic!("honcho is required (pip install honcho)");
        }
        visible("SKIP procfile_under_honcho: honcho is not installed (pip install honcho)");
        return;
    };
    let tmp = TempDir::new();
    copy_tree(&repo_root().join("examples/procfile"), tmp.path()).unwrap();
    let port = free_port();
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_uwsgi"))
        .parent()
        .unwrap()
        .to_path_buf();
    let mut cmd = scrubbed(&honcho, tmp.path());
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    cmd.env("PATH", path)
        .args(["start", "-p", &port.to_string()]);
    let mut runner = Proc::spawn("honcho", cmd, &tmp.path().join("honcho.log"));

    let body = wait_for(WAIT, || {
        let reply = exchange(
            &Addr::Tcp(port),
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .ok()?;
        (reply.status() == Some(200)).then(|| String::from_utf8_lossy(reply.body()).into_owned())
    })
    .unwrap_or_else(|| panic!("no answer on $PORT {port}: {}", runner.tail()));
    assert!(body.contains("Procfile"), "{body}");
    let log = runner.log();
    let master: i32 = log
        .lines()
        .find_map(|l| l.split("spawned uWSGI master process (pid: ").nth(1))
        .and_then(|rest| rest.trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("no master pid in the log: {log}"));

    // Ctrl-C to the runner: it sends SIGTERM to the app, as a platform
    // stopping a dyno does.
    runner.signal(libc::SIGINT);
    runner.wait_exit(WAIT);
    let log = runner.log();
    assert!(log.contains("sending SIGTERM to web.1"), "{log}");
    assert!(log.contains("graceful shutdown triggered"), "{log}");
    assert!(log.contains("goodbye to uWSGI."), "{log}");
    assert!(
        wait_for(WAIT, || (!alive(master)).then_some(())).is_some(),
        "master {master} outlived the runner"
    );
}
