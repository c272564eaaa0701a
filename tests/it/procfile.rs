//! `examples/procfile/` under a real Procfile runner (honcho, from PyPI):
//! `web: uwsgi uwsgi.ini` with `http-socket = :$(PORT)` starts, serves on
//! the port the runner gives it, and stops cleanly on the runner's SIGTERM
//! (what a platform or a service manager sends) with no process left
//! behind.
//!
//! honcho runs each Procfile line as `sh -c LINE` in a session of its own
//! and, on SIGTERM or SIGINT, sends SIGTERM to that process group, waits
//! for it to end and exits 143 (130 for SIGINT). The app's processes are
//! therefore outside the test's process group: they are found by the pids
//! honcho and uWSGI log, and by the app's process group (honcho's `sh`).

use std::time::Duration;

use crate::server::{
    exchange, find_program, free_port, scrubbed, wait_for, worker_pids, Addr, Proc,
};
use crate::util::{copy_tree, repo_root, visible, TempDir};

const WAIT: Duration = Duration::from_secs(20);

/// Field `n` (1-based, as in proc(5)) of `/proc/PID/stat`.
fn stat_field(pid: i32, n: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command (field 2) is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(n - 3).map(str::to_owned)
}

/// Running (a zombie has finished: only its parent has not reaped it).
pub fn alive(pid: i32) -> bool {
    stat_field(pid, 3).is_some_and(|state| state != "Z")
}

/// The running members of process group `pgid`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| stat_field(pid, 5).is_some_and(|g| g == pgid.to_string()) && alive(pid))
        .collect()
}

/// The number after `prefix` in the first log line that has it.
fn logged_pid(log: &str, prefix: &str) -> i32 {
    log.lines()
        .find_map(|l| l.split(prefix).nth(1))
        .and_then(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no {prefix:?} in the log:\n{log}"))
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

    // Every process of the app, by the pids logged: honcho's `sh` (the
    // leader of the app's process group), the master and both workers.
    let workers = || [1, 2].map(|id| worker_pids(&runner.log(), id).last().copied());
    wait_for(WAIT, || workers().iter().all(Option::is_some).then_some(()))
        .unwrap_or_else(|| panic!("workers not logged: {}", runner.tail()));
    let log = runner.log();
    let web = logged_pid(&log, "web.1 started (pid=");
    let master = logged_pid(&log, "spawned uWSGI master process (pid: ");
    let mut pids = vec![web, master];
    pids.extend(workers().iter().flatten());
    assert!(
        group_members(web).contains(&master),
        "the master is in the app's process group"
    );

    // What a platform does to stop the dyno: SIGTERM to the runner.
    runner.signal(libc::SIGTERM);
    let rc = runner.wait_exit(WAIT);
    let log = runner.log();
    assert_eq!(rc, 143, "honcho's status after SIGTERM\n{log}");
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(log.contains("sending SIGTERM to web.1"), "{log}");
    assert!(log.contains("graceful shutdown triggered"), "{log}");
    assert!(log.contains("goodbye to uWSGI."), "{log}");
    assert!(
        !log.contains("SIGKILL"),
        "honcho had to kill the app:\n{log}"
    );

    // Nothing of the app is left: not the recorded pids, not any member of
    // its process group, and nothing in honcho's own group.
    let remaining = || -> Vec<i32> {
        let mut left: Vec<i32> = pids.iter().copied().filter(|&p| alive(p)).collect();
        left.extend(group_members(web));
        left.extend(group_members(runner.pid()));
        left
    };
    let clean = wait_for(WAIT, || remaining().is_empty().then_some(()));
    assert!(
        clean.is_some(),
        "processes outlived the runner: {:?} (recorded: {pids:?})\n{log}",
        remaining()
    );
}
