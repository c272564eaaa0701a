//! The emperor role end to end (spec emperor-and-master.md §1 and §7,
//! config.md §9): our binary runs `--emperor DIR` in a per-test temp dir,
//! in its own process group, killed by its recorded pid when the test ends.
//! Vassals are a fake (`FAKE_VASSAL`, a bash script given as
//! `emperor-wrapper`) that speaks the pipe protocol and records what it
//! receives; what it was given (argv, cwd, environment, descriptors) is
//! read from `/proc`. Readiness is always polled with a deadline.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crate::util::{touch, TempDir};

/// The fake vassal. It finds its file after `--ini`/..., reads `fake =
/// MODE` from it, appends `start <time> <pid>` to `$FAKE_RECORDS/<file>.starts`,
/// announces itself (bytes 1 and 5), then logs each command byte to
/// `<file>.events`: stop (0) and graceful stop (2) end it with status 0,
/// reload (1) is answered with 5 again, EOF ends it with status 1.
/// Modes: `die` exits 22 at once; `loyal` also sends 17; `heartbeat`
/// sends one 26; `sos` sends 30 (broodlord); `deaf` never reads (it
/// ignores stop).
const FAKE_VASSAL: &str = r#"#!/bin/bash
file=""; prev=""
for a in "$@"; do
  case "$prev" in --ini|--xml|--yaml|--json|--config) file="$a";; esac
  prev="$a"
done
rec="$FAKE_RECORDS/${file##*/}"
echo "start $EPOCHREALTIME $$" >> "$rec.starts"
mode=$(sed -n 's/^fake *= *//p' "$file" 2>/dev/null | head -n1)
fd="$UWSGI_EMPEROR_FD"
[ "$mode" = die ] && exit 22
printf '\001\005' >&"$fd"
case "$mode" in
  loyal) printf '\021' >&"$fd" ;;
  heartbeat) printf '\032' >&"$fd" ;;
  sos) printf '\036' >&"$fd" ;;
  deaf) exec sleep 600 ;;
esac
while IFS= read -r -n1 -d '' -u "$fd" c; do
  case "$c" in
    '') echo stop >> "$rec.events"; exit 0 ;;
    $'\001') echo reload >> "$rec.events"; printf '\005' >&"$fd" ;;
    $'\002') echo graceful >> "$rec.events"; exit 0 ;;
  esac
done
echo eof >> "$rec.events"
exit 1
"#;

/// How often conditions are polled.
const POLL: Duration = Duration::from_millis(10);

/// Held by the test that starts many processes and by the tests that
/// measure delays, so that the first does not skew the others.
static HEAVY: Mutex<()> = Mutex::new(());

fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Polls `cond` until it holds or `secs` pass.
fn eventually(secs: f64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(POLL);
    }
}

fn signal(pid: i32, sig: libc::c_int) {
    ruwsgi::sys::process::kill(pid, sig);
}

/// A live process (not a zombie).
fn alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// A per-test directory: `vassals/`, `records/` and the fake vassal.
struct Setup {
    tmp: TempDir,
}

impl Setup {
    fn new() -> Setup {
        let tmp = TempDir::new();
        let root = tmp.path();
        fs::create_dir(root.join("vassals")).unwrap();
        fs::create_dir(root.join("records")).unwrap();
        fs::set_permissions(root.join("records"), fs::Permissions::from_mode(0o777)).unwrap();
        fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(root.join("fake.sh"), FAKE_VASSAL).unwrap();
        fs::set_permissions(root.join("fake.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        Setup { tmp }
    }

    fn root(&self) -> PathBuf {
        fs::canonicalize(self.tmp.path()).unwrap()
    }

    fn vassals(&self) -> PathBuf {
        self.root().join("vassals")
    }

    fn fake(&self) -> String {
        self.root().join("fake.sh").display().to_string()
    }

    /// Writes a vassal file with a fake mode.
    fn vassal(&self, name: &str, mode: &str) -> PathBuf {
        let path = self.vassals().join(name);
        fs::write(&path, format!("[uwsgi]\nfake = {mode}\n")).unwrap();
        path
    }

    fn record(&self, name: &str, kind: &str) -> String {
        fs::read_to_string(self.root().join("records").join(format!("{name}.{kind}")))
            .unwrap_or_default()
    }

    /// Start times and pids of a vassal, oldest first.
    fn starts(&self, name: &str) -> Vec<(f64, i32)> {
        self.record(name, "starts")
            .lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace().skip(1);
                Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
            })
            .collect()
    }

    fn pid(&self, name: &str) -> Option<i32> {
        self.starts(name).last().map(|s| s.1)
    }

    fn events(&self, name: &str) -> Vec<String> {
        self.record(name, "events")
            .lines()
            .map(String::from)
            .collect()
    }

    /// Starts the emperor on `vassals/` with the fake as wrapper, plus `extra`.
    fn start(&self, extra: &[&str]) -> Emperor {
        let mut args: Vec<OsString> = vec![
            "--emperor".into(),
            self.vassals().into(),
            "--emperor-wrapper".into(),
            self.fake().into(),
        ];
        args.extend(extra.iter().map(OsString::from));
        self.start_with(&args, &[])
    }

    fn start_with(&self, args: &[OsString], env: &[(&str, &str)]) -> Emperor {
        self.launch(Command::new(env!("CARGO_BIN_EXE_uwsgi")), args, env)
    }

    /// Like `start_with`, but the emperor inherits descriptors 9 and 10
    /// without close-on-exec (as from a careless parent).
    fn start_leaking(&self, args: &[OsString], env: &[(&str, &str)]) -> Emperor {
        let mut bash = Command::new("bash");
        bash.args([
            "-c",
            "exec 9</dev/zero 10>&2; exec \"$0\" \"$@\"",
            env!("CARGO_BIN_EXE_uwsgi"),
        ]);
        self.launch(bash, args, env)
    }

    fn launch(&self, mut cmd: Command, args: &[OsString], env: &[(&str, &str)]) -> Emperor {
        cmd.args(args)
            .current_dir(self.root())
            .env_clear()
            .process_group(0);
        crate::util::die_with_parent(&mut cmd);
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        cmd.env("HOME", self.root())
            .env("LANG", "C")
            .env("FAKE_RECORDS", self.root().join("records"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawning our uwsgi");
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut stderr = child.stderr.take().expect("piped stderr");
        let sink = log.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&buf[..n]);
            }
        });
        let pid = child.id() as i32;
        Emperor { child, pid, log }
    }
}

/// A running emperor; dropping it kills its whole process group.
struct Emperor {
    child: Child,
    pid: i32,
    log: Arc<Mutex<Vec<u8>>>,
}

impl Emperor {
    fn log(&self) -> String {
        String::from_utf8_lossy(&self.log.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    fn count(&self, needle: &str) -> usize {
        self.log().matches(needle).count()
    }

    /// Waits for `n` occurrences of `needle` in the log.
    fn wait_count(&self, needle: &str, n: usize, secs: f64) {
        if !eventually(secs, || self.count(needle) >= n) {
            panic!(
                "{n} x {needle:?} not logged within {secs}s; log:\n{}",
                self.log()
            );
        }
    }

    fn wait_log(&self, needle: &str, secs: f64) {
        self.wait_count(needle, 1, secs);
    }

    /// Waits for the emperor to exit.
    fn wait_exit(&mut self, secs: f64) -> ExitStatus {
        let mut status = None;
        eventually(secs, || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        status.unwrap_or_else(|| {
            panic!(
                "the emperor did not exit within {secs}s; log:\n{}",
                self.log()
            )
        })
    }
}

impl Drop for Emperor {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.pid)])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the fake `name` runs and returns its pid.
fn running(s: &Setup, name: &str, secs: f64) -> i32 {
    let mut pid = None;
    eventually(secs, || {
        pid = s.pid(name).filter(|&p| alive(p));
        pid.is_some()
    });
    pid.unwrap_or_else(|| panic!("vassal {name} not running within {secs}s"))
}

#[test]
fn new_touched_and_removed_files_act_within_milliseconds() {
    let _serial = heavy();
    let s = Setup::new();
    // A long period: only inotify can be this fast.
    let em = s.start(&["--emperor-freq", "60"]);
    em.wait_log("*** starting uWSGI Emperor ***", 5.0);
    let t = Instant::now();
    let file = s.vassal("n.ini", "plain");
    em.wait_log("[emperor] vassal n.ini has been spawned", 2.0);
    em.wait_log("[emperor] vassal n.ini is ready to accept requests", 1.0);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "spawned after {:?}",
        t.elapsed()
    );
    let pid = running(&s, "n.ini", 1.0);

    touch(&file);
    em.wait_log("[emperor] reload the uwsgi instance n.ini", 1.0);
    assert!(
        eventually(1.0, || s.events("n.ini") == ["reload"]),
        "{:?}",
        s.events("n.ini")
    );
    assert_eq!(
        s.pid("n.ini"),
        Some(pid),
        "a reload keeps the vassal process"
    );
    em.wait_count("[emperor] vassal n.ini is ready to accept requests", 2, 1.0);

    fs::remove_file(&file).unwrap();
    em.wait_log("[emperor] stop the uwsgi instance n.ini", 1.0);
    em.wait_log("[emperor] removed uwsgi instance n.ini", 2.0);
    assert!(eventually(1.0, || !alive(pid)));
    assert_eq!(s.events("n.ini"), ["reload", "stop"]);
    assert!(alive(em.pid), "the emperor stays up");
}

#[test]
fn ragnarok_on_sigint_stops_every_vassal_and_exits_0() {
    let s = Setup::new();
    s.vassal("a.ini", "plain");
    s.vassal("b.ini", "plain");
    let mut em = s.start(&[]);
    let pids = [running(&s, "a.ini", 5.0), running(&s, "b.ini", 5.0)];
    em.wait_count("is ready to accept requests", 2, 2.0);
    signal(em.pid, libc::SIGINT);
    let status = em.wait_exit(5.0);
    assert_eq!(status.code(), Some(0), "log:\n{}", em.log());
    let log = em.log();
    for needle in [
        "[emperor] *** RAGNAROK EVOKED ***",
        "[emperor] stop the uwsgi instance a.ini",
        "[emperor] stop the uwsgi instance b.ini",
        "[emperor] removed uwsgi instance a.ini",
        "[emperor] removed uwsgi instance b.ini",
        " - The Emperor is buried.",
    ] {
        assert!(log.contains(needle), "{needle:?} missing; log:\n{log}");
    }
    assert!(pids.iter().all(|&p| !alive(p)));
    assert_eq!(s.events("a.ini"), ["stop"]);
}

#[test]
fn ragnarok_kills_deaf_vassals_after_reload_mercy() {
    let s = Setup::new();
    s.vassal("deaf.ini", "deaf");
    let mut em = s.start(&["--reload-mercy", "1"]);
    let pid = running(&s, "deaf.ini", 5.0);
    em.wait_log("vassal deaf.ini has been spawned", 2.0);
    signal(em.pid, libc::SIGTERM);
    em.wait_log("RAGNAROK EVOKED", 2.0);
    signal(em.pid, libc::SIGTERM);
    em.wait_log("[emperor] *** RAGNAROK ALREADY EVOKED (mercyless in ", 2.0);
    assert_eq!(em.wait_exit(4.0).code(), Some(0));
    assert!(
        em.log()
            .contains("[emperor] NO MERCY for vassal deaf.ini !!!"),
        "{}",
        em.log()
    );
    assert!(eventually(1.0, || !alive(pid)));
}

#[test]
fn vassals_die_within_a_second_of_a_sigkilled_emperor() {
    let _serial = heavy();
    let s = Setup::new();
    for n in ["a.ini", "b.ini", "c.ini"] {
        s.vassal(n, "deaf");
    }
    let mut em = s.start(&[]);
    let pids: Vec<i32> = ["a.ini", "b.ini", "c.ini"]
        .iter()
        .map(|n| running(&s, n, 5.0))
        .collect();
    signal(em.pid, libc::SIGKILL);
    em.wait_exit(2.0);
    let t = Instant::now();
    assert!(
        eventually(1.0, || pids.iter().all(|&p| !alive(p))),
        "vassals survive: {pids:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[test]
fn a_hundred_vassals_at_once() {
    let _serial = heavy();
    let s = Setup::new();
    for i in 0..100 {
        s.vassal(&format!("v{i}.ini"), "plain");
    }
    let mut em = s.start(&[]);
    em.wait_count("has been spawned", 100, 20.0);
    let pids: Vec<i32> = (0..100)
        .map(|i| running(&s, &format!("v{i}.ini"), 2.0))
        .collect();
    assert_eq!(pids.iter().collect::<BTreeSet<_>>().len(), 100);
    signal(em.pid, libc::SIGINT);
    assert_eq!(em.wait_exit(10.0).code(), Some(0), "log:\n{}", em.log());
    assert_eq!(em.count("removed uwsgi instance"), 100);
    assert!(pids.iter().all(|&p| !alive(p)));
}

#[test]
fn crash_loop_is_throttled_as_uwsgi_does() {
    let _serial = heavy();
    let s = Setup::new();
    s.vassal("die.ini", "die");
    let em = s.start(&["--emperor-freq", "1"]);
    assert!(
        eventually(12.0, || s.starts("die.ini").len() >= 5),
        "starts: {:?}",
        s.starts("die.ini")
    );
    let t: Vec<f64> = s.starts("die.ini").iter().map(|s| s.0).collect();
    let gaps: Vec<f64> = t.windows(2).map(|w| w[1] - w[0]).collect();
    // Delays 1 ms, then 1, 2, 3 s (spec §1.8.e, test 12), each ± the scan slack.
    let want = [0.0, 1.0, 2.0, 3.0];
    for (i, (gap, w)) in gaps.iter().zip(want).enumerate() {
        assert!(
            *gap >= w - 0.05 && *gap <= w + 1.0,
            "gap {i} = {gap:.3}s, want ~{w}s; gaps {gaps:?}\n{}",
            em.log()
        );
    }
    em.wait_log(
        "[emperor] unloyal bad behaving vassal found: die.ini throttling it...",
        1.0,
    );
    assert!(
        em.count("[emperor] curse the uwsgi instance die.ini") >= 4,
        "{}",
        em.log()
    );
}

#[test]
fn a_loyal_vassal_that_crashes_is_respawned_at_once() {
    let _serial = heavy();
    let s = Setup::new();
    s.vassal("l.ini", "loyal");
    let em = s.start(&["--emperor-freq", "60"]);
    let first = running(&s, "l.ini", 5.0);
    em.wait_log("[emperor] vassal l.ini is now loyal", 2.0);
    signal(first, libc::SIGKILL);
    assert!(eventually(1.0, || s
        .pid("l.ini")
        .is_some_and(|p| p != first && alive(p))));
    em.wait_log("[emperor] removed uwsgi instance l.ini", 1.0);
}

#[test]
fn missed_heartbeats_get_the_vassal_killed_and_respawned() {
    let s = Setup::new();
    s.vassal("hb.ini", "heartbeat");
    let em = s.start(&["--emperor-required-heartbeat", "1"]);
    let first = running(&s, "hb.ini", 5.0);
    em.wait_log(
        "[emperor] vassal hb.ini sent no heartbeat in last 1 seconds, brutally respawning it...",
        3.0,
    );
    assert!(eventually(3.0, || s
        .pid("hb.ini")
        .is_some_and(|p| p != first && alive(p))));
}

#[test]
fn sighup_reloads_every_vassal_in_place() {
    let s = Setup::new();
    s.vassal("a.ini", "plain");
    s.vassal("b.ini", "plain");
    let em = s.start(&[]);
    let pids = [running(&s, "a.ini", 5.0), running(&s, "b.ini", 5.0)];
    em.wait_count("is ready to accept requests", 2, 2.0);
    signal(em.pid, libc::SIGHUP);
    em.wait_log("[emperor] reload the uwsgi instance a.ini", 2.0);
    em.wait_log("[emperor] reload the uwsgi instance b.ini", 2.0);
    assert!(eventually(2.0, || s.events("a.ini") == ["reload"]
        && s.events("b.ini") == ["reload"]));
    assert_eq!([s.pid("a.ini").unwrap(), s.pid("b.ini").unwrap()], pids);
    signal(em.pid, libc::SIGUSR1);
    em.wait_log("vassal instance a.ini (last modified ", 2.0);
    em.wait_log(") status 0 loyal 0 zerg 0", 1.0);
}

/// The command line of a process, without the interpreter (`/bin/bash`).
fn script_argv(pid: i32) -> Vec<String> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let mut v: Vec<String> = raw
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    v.pop();
    v.remove(0);
    v
}

fn environ(pid: i32) -> Vec<(String, String)> {
    let raw = fs::read(format!("/proc/{pid}/environ")).unwrap();
    raw.split(|&b| b == 0)
        .filter(|e| !e.is_empty())
        .map(|e| {
            let e = String::from_utf8_lossy(e);
            let (k, v) = e.split_once('=').unwrap_or((&e, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn fd_target(pid: i32, fd: &str) -> String {
    fs::read_link(format!("/proc/{pid}/fd/{fd}"))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

#[test]
fn vassal_argv_cwd_env_and_descriptors_as_spec_9_1() {
    let s = Setup::new();
    s.vassal("app.ini", "plain");
    let r = s.root();
    let p = |n: &str| r.join(n).display().to_string();
    let args: Vec<OsString> = [
        "--emperor",
        &s.vassals().display().to_string(),
        "--vassal-set",
        "a=1",
        "--vassal-set",
        "b=%(a) two",
        "--vassals-include",
        &p("inc.ini"),
        "--vassals-inherit",
        &p("inh.ini"),
        "--vassals-include-before",
        &p("incb.ini"),
        "--vassals-inherit-before",
        &p("inhb.ini"),
        "--emperor-wrapper",
        &s.fake(),
    ]
    .iter()
    .map(OsString::from)
    .collect();
    let env = [
        ("UWSGI_RELOADS", "3"),
        ("NOTIFY_SOCKET", "/nonexistent/notify"),
        ("UWSGI_VASSAL_FOO", "bar"),
    ];
    let em = s.start_leaking(&args, &env);
    let pid = running(&s, "app.ini", 5.0);
    em.wait_log("vassal app.ini is ready to accept requests", 2.0);
    let want: Vec<String> = [
        s.fake(),
        "--inherit".into(),
        p("inhb.ini"),
        "--include".into(),
        p("incb.ini"),
        "--set".into(),
        "a=1".into(),
        "--set".into(),
        "b=%(a) two".into(),
        "--ini".into(),
        "app.ini".into(),
        "--inherit".into(),
        p("inh.ini"),
        "--include".into(),
        p("inc.ini"),
    ]
    .to_vec();
    assert_eq!(script_argv(pid), want);
    assert_eq!(
        fs::read_link(format!("/proc/{pid}/cwd")).unwrap(),
        s.vassals()
    );

    let env = environ(pid);
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let fd = get("UWSGI_EMPEROR_FD").expect("UWSGI_EMPEROR_FD");
    assert!(
        fd_target(pid, &fd).starts_with("socket:"),
        "fd {fd} is {}",
        fd_target(pid, &fd)
    );
    assert_eq!(
        get("UWSGI_ORIGINAL_PROC_NAME").as_deref(),
        Some(env!("CARGO_BIN_EXE_uwsgi"))
    );
    assert_eq!(
        get("UWSGI_FOO").as_deref(),
        Some("bar"),
        "UWSGI_VASSAL_FOO is renamed"
    );
    for gone in ["UWSGI_RELOADS", "NOTIFY_SOCKET", "UWSGI_VASSAL_FOO"] {
        assert_eq!(get(gone), None, "{gone} reached the vassal");
    }

    // Exactly 0, 1, 2 and the pipe (plus bash's own script descriptor):
    // not the emperor's own, nor the 9 and 10 it inherited.
    assert_eq!(
        fd_target(em.pid, "9"),
        "/dev/zero",
        "the emperor holds a leaked descriptor"
    );
    let fds: BTreeSet<String> = fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| !fd_target(pid, f).ends_with("/fake.sh"))
        .collect();
    let want: BTreeSet<String> = ["0", "1", "2", fd.as_str()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(fds, want);
    assert_eq!(fd_target(pid, "0"), "/dev/null");
    // No signal blocked: the mask the emperor forks with must not survive
    // the exec (a vassal blocking SIGCHLD and SIGTERM hears nothing).
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let blocked = status
        .lines()
        .find_map(|l| l.strip_prefix("SigBlk:"))
        .map(str::trim);
    assert_eq!(blocked, Some("0000000000000000"), "{status}");
}

#[test]
fn glob_monitor_uses_paths_and_the_emperor_cwd() {
    let s = Setup::new();
    s.vassal("g.ini", "plain");
    s.vassal(".hidden.ini", "plain");
    let em = s.start_with(
        &[
            "--emperor".into(),
            "vassals/*.ini".into(),
            "--emperor-wrapper".into(),
            s.fake().into(),
        ],
        &[],
    );
    em.wait_log("[emperor] vassal vassals/g.ini has been spawned", 5.0);
    let pid = running(&s, "g.ini", 1.0);
    assert_eq!(script_argv(pid)[1..], ["--ini", "vassals/g.ini"]);
    assert_eq!(fs::read_link(format!("/proc/{pid}/cwd")).unwrap(), s.root());
    assert!(
        s.starts(".hidden.ini").is_empty(),
        "a glob does not match dot-files"
    );
}

#[test]
fn a_missing_directory_is_waited_for() {
    let s = Setup::new();
    let later = s.root().join("later");
    let em = s.start_with(
        &[
            "--emperor".into(),
            later.clone().into(),
            "--emperor-wrapper".into(),
            s.fake().into(),
        ],
        &[],
    );
    em.wait_log("does not exist (yet)", 5.0);
    fs::create_dir(&later).unwrap();
    fs::write(later.join("late.ini"), "[uwsgi]\nfake = plain\n").unwrap();
    em.wait_log("[emperor] vassal late.ini has been spawned", 2.0);
    assert_eq!(em.count("does not exist"), 1, "one warning only");
    // The directory goes: nothing is stopped, the emperor survives; back: resumed.
    let pid = running(&s, "late.ini", 1.0);
    fs::remove_dir_all(&later).unwrap();
    signal(em.pid, libc::SIGWINCH);
    em.wait_log("chdir(): No such file or directory", 2.0);
    assert!(alive(pid) && alive(em.pid));
}

#[test]
fn exec_failure_exits_26_and_is_retried() {
    let s = Setup::new();
    s.vassal("x.ini", "plain");
    let em = s.start(&[
        "--emperor-wrapper",
        "/nonexistent/wrapper",
        "--emperor-freq",
        "1",
    ]);
    em.wait_log("execvp(): No such file or directory", 5.0);
    em.wait_log("[emperor] binary path: /nonexistent/wrapper", 1.0);
    em.wait_log("[emperor] is the uwsgi binary in your system PATH ?", 1.0);
    em.wait_count("[emperor] removed uwsgi instance x.ini", 2, 5.0);
}

#[test]
fn wrapper_fallback_is_tried_after_the_binary() {
    let s = Setup::new();
    s.vassal("f.ini", "plain");
    let em = s.start(&[
        "--emperor-wrapper",
        "/nonexistent/wrapper",
        "--emperor-wrapper-fallback",
        &s.fake(),
    ]);
    em.wait_log(
        &format!(
            "[emperor] trying to use {} as binary fallback ...",
            s.fake()
        ),
        5.0,
    );
    em.wait_log("[emperor] vassal f.ini has been spawned", 2.0);
    let pid = running(&s, "f.ini", 1.0);
    assert_eq!(script_argv(pid), [s.fake(), "--ini".into(), "f.ini".into()]);
}

#[test]
fn removed_file_of_a_deaf_vassal_is_killed_after_the_curse_tolerance() {
    let s = Setup::new();
    let file = s.vassal("st.ini", "deaf");
    let em = s.start(&["--emperor-curse-tolerance", "1"]);
    let pid = running(&s, "st.ini", 5.0);
    em.wait_log("vassal st.ini has been spawned", 2.0);
    fs::remove_file(file).unwrap();
    em.wait_log("[emperor] stop the uwsgi instance st.ini", 2.0);
    let t = Instant::now();
    em.wait_log("[emperor] removed uwsgi instance st.ini", 3.0);
    assert!(
        t.elapsed() >= Duration::from_millis(800),
        "killed too early: {:?}",
        t.elapsed()
    );
    assert!(!alive(pid));
}

#[test]
fn graceful_shutdown_sends_byte_2() {
    let s = Setup::new();
    s.vassal("g.ini", "plain");
    let mut em = s.start(&["--emperor-graceful-shutdown"]);
    running(&s, "g.ini", 5.0);
    em.wait_log("vassal g.ini is ready to accept requests", 2.0);
    signal(em.pid, libc::SIGQUIT);
    assert_eq!(em.wait_exit(5.0).code(), Some(0));
    assert_eq!(s.events("g.ini"), ["graceful"]);
}

#[test]
fn broodlord_launches_a_zerg() {
    let s = Setup::new();
    s.vassal("z.ini", "sos");
    let em = s.start(&["--emperor-broodlord", "1"]);
    em.wait_log(
        "[emperor] going in broodlord mode: launching zergs for z.ini",
        5.0,
    );
    let pid = running(&s, "z.ini:zerg", 2.0);
    assert_eq!(script_argv(pid)[1..], ["--ini", "z.ini:zerg"]);
    let env = environ(pid);
    assert!(
        env.contains(&("UWSGI_BROODLORD_NUM".into(), "1".into())),
        "{env:?}"
    );
    assert_eq!(em.count("going in broodlord mode"), 1, "one zerg at most");
}

#[test]
fn systemd_notification() {
    let s = Setup::new();
    s.vassal("a.ini", "plain");
    let path = s.root().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let args: Vec<OsString> = vec![
        "--emperor".into(),
        s.vassals().into(),
        "--emperor-wrapper".into(),
        s.fake().into(),
    ];
    let mut em = s.start_with(&args, &[("NOTIFY_SOCKET", path.to_str().unwrap())]);
    let mut buf = [0u8; 256];
    let mut got = Vec::new();
    let mut recv = || {
        let n = sock.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    got.push(recv());
    assert_eq!(got[0], "STATUS=uWSGI is ready\nREADY=1\n");
    running(&s, "a.ini", 5.0);
    assert!(
        eventually(3.0, || {
            got.push(recv());
            got.last()
                .is_some_and(|m| m == "STATUS=The Emperor is governing 1 vassals\n")
        }),
        "{got:?}"
    );
    let environ_of_vassal = environ(s.pid("a.ini").unwrap());
    assert!(environ_of_vassal.iter().all(|(k, _)| k != "NOTIFY_SOCKET"));
    signal(em.pid, libc::SIGINT);
    assert_eq!(em.wait_exit(5.0).code(), Some(0));
    let mut last = String::new();
    while let Ok(n) = sock.recv(&mut buf) {
        last = String::from_utf8_lossy(&buf[..n]).into_owned();
        if last.contains("buried") {
            break;
        }
    }
    assert_eq!(last, "STATUS=The Emperor is buried.\n");
}

#[test]
fn emperor_stats_json() {
    let s = Setup::new();
    s.vassal("a.ini", "plain");
    let sock = s.root().join("stats.sock");
    let pidfile = s.root().join("emperor.pid");
    let em = s.start(&[
        "--emperor-stats",
        &sock.display().to_string(),
        "--emperor-pidfile",
        &pidfile.display().to_string(),
    ]);
    em.wait_log("*** Emperor stats server enabled on ", 5.0);
    assert!(em
        .log()
        .contains(&format!("writing pidfile to {}", pidfile.display())));
    assert_eq!(
        fs::read_to_string(&pidfile).unwrap(),
        format!("{}\n", em.pid)
    );
    em.wait_log("vassal a.ini is ready to accept requests", 5.0);
    let mut doc = String::new();
    std::os::unix::net::UnixStream::connect(&sock)
        .unwrap()
        .read_to_string(&mut doc)
        .unwrap();
    let keys = [
        "\"version\"",
        "\"pid\"",
        "\"uid\"",
        "\"gid\"",
        "\"cwd\"",
        "\"emperor\"",
        "\"emperor_tyrant\"",
    ];
    let mut at = 0;
    for k in keys
        .iter()
        .chain(&["\"throttle_level\"", "\"vassals\"", "\"blacklist\""])
    {
        let i = doc[at..]
            .find(k)
            .unwrap_or_else(|| panic!("{k} missing or out of order in\n{doc}"));
        at += i;
    }
    assert!(doc.contains("\"id\":\"a.ini\""), "{doc}");
    assert!(
        doc.contains(&format!("\"monitor\":\"{}\"", s.vassals().display())),
        "{doc}"
    );
    assert!(doc.ends_with("\n}"), "{doc}");
}

#[test]
fn on_demand_vassal_starts_on_first_connection() {
    let s = Setup::new();
    let od = s.root().join("od");
    fs::create_dir(&od).unwrap();
    s.vassal("od.ini", "plain");
    let em = s.start(&["--emperor-on-demand-directory", &od.display().to_string()]);
    let sock = od.join("od.socket");
    em.wait_log("[uwsgi-emperor] od.ini -> \"on demand\" instance detected, waiting for connections on socket", 5.0);
    assert_eq!(
        fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o666
    );
    thread::sleep(Duration::from_millis(200));
    assert!(
        s.starts("od.ini").is_empty(),
        "no process before the first connection"
    );
    let _client = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    let pid = running(&s, "od.ini", 2.0);
    assert!(
        fd_target(pid, "0").starts_with("socket:"),
        "fd 0 is {}",
        fd_target(pid, "0")
    );
}

#[test]
fn idle_emperor_uses_no_cpu() {
    let s = Setup::new();
    s.vassal("a.ini", "plain");
    let em = s.start(&[]);
    em.wait_log("vassal a.ini is ready to accept requests", 5.0);
    let ticks = |pid: i32| -> u64 {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let rest = stat.rsplit_once(") ").unwrap().1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    };
    thread::sleep(Duration::from_millis(300));
    let before = ticks(em.pid);
    thread::sleep(Duration::from_secs(2));
    assert!(ticks(em.pid) - before <= 2, "the idle emperor used CPU");
}

#[test]
fn tyrant_runs_vassals_as_the_file_owner() {
    if !std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
    {
        let test = "emperor::tyrant_runs_vassals_as_the_file_owner";
        return crate::util::skip_test(test, "needs root to change identity");
    }
    let s = Setup::new();
    let file = s.vassal("t.ini", "plain");
    std::os::unix::fs::chown(&file, Some(1000), Some(1000)).unwrap();
    s.vassal("root.ini", "plain");
    let em = s.start(&["--emperor-tyrant"]);
    em.wait_log(
        "[emperor-tyrant] invalid permissions for vassal root.ini",
        5.0,
    );
    em.wait_log(
        "[emperor-tyrant] dropping privileges to 1000 1000 for instance t.ini",
        5.0,
    );
    let pid = running(&s, "t.ini", 2.0);
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status.lines().any(|l| l.starts_with("Uid:\t1000\t1000")),
        "{status}"
    );
    assert!(
        status.lines().any(|l| l.starts_with("Gid:\t1000\t1000")),
        "{status}"
    );
    assert!(s.starts("root.ini").is_empty());
}

/// Bad input (issue 5): files that do not parse, name a missing app or
/// exit at once are each reported with the file name and the vassal's own
/// error, throttled, and the emperor stays up. Our own binary is the
/// vassal here (no wrapper), so the errors are the real ones.
#[test]
fn broken_vassal_files_are_named_with_their_own_error_and_throttled() {
    let s = Setup::new();
    let root = s.root();
    let v = s.vassals();
    fs::write(
        v.join("bad.ini"),
        format!(
            "[uwsgi]\nsocket = {0}/bad.sock\nini = {0}/missing.ini\n",
            root.display()
        ),
    )
    .unwrap();
    fs::write(
        v.join("noapp.ini"),
        format!(
            "[uwsgi]\nsocket = {0}/noapp.sock\nwsgi-file = {0}/nothere.py\nneed-app = true\n",
            root.display()
        ),
    )
    .unwrap();
    fs::write(v.join("exits.ini"), "[uwsgi]\nprocesses = 2\n").unwrap();
    let em = s.start_with(&["--emperor".into(), v.clone().into()], &[]);
    for (name, code, own_error) in [
        (
            "bad.ini",
            1,
            "missing.ini failed: No such file or directory [bad.ini line 3]",
        ),
        ("noapp.ini", 22, "nothere.py"),
        ("exits.ini", 1, "The -s/--socket option is missing"),
    ] {
        em.wait_log(&format!("[emperor] vassal {name} (pid: "), 20.0);
        em.wait_log(
            &format!("failed before it was ready (exit code {code}): see its error above"),
            20.0,
        );
        em.wait_log(own_error, 1.0);
        em.wait_log(
            &format!("[emperor] unloyal bad behaving vassal found: {name} throttling it..."),
            20.0,
        );
    }
    assert!(alive(em.pid), "the emperor stays up");
    // Throttled: the backoff grows (1 s, 2 s, ...), so a few seconds see
    // only a few attempts of each file.
    let before = em.count("getting INI configuration from bad.ini");
    thread::sleep(Duration::from_secs(3));
    let during = em.count("getting INI configuration from bad.ini") - before;
    assert!(during <= 3, "{during} attempts in 3 s\n{}", em.log());
}

/// A symlink loop, a file replaced by a directory and back, and a file
/// rewritten every millisecond: logged, bounded, survived.
#[test]
fn hostile_directory_entries_are_survived() {
    let s = Setup::new();
    let v = s.vassals();
    s.vassal("good.ini", "plain");
    std::os::unix::fs::symlink(v.join("loop.ini"), v.join("loop.ini")).unwrap();
    let flip = s.vassal("flip.ini", "plain");
    let storm = s.vassal("storm.ini", "plain");
    let em = s.start(&["--emperor-freq", "1"]);
    let good = running(&s, "good.ini", 10.0);
    let flip_pid = running(&s, "flip.ini", 10.0);
    let storm_pid = running(&s, "storm.ini", 10.0);

    // A file replaced by a directory is a removed vassal; back, a new one.
    fs::remove_file(&flip).unwrap();
    fs::create_dir(&flip).unwrap();
    em.wait_log("[emperor] removed uwsgi instance flip.ini", 5.0);
    assert!(eventually(2.0, || !alive(flip_pid)));
    fs::remove_dir(&flip).unwrap();
    s.vassal("flip.ini", "plain");
    em.wait_count("[emperor] vassal flip.ini has been spawned", 2, 5.0);

    // A file rewritten every millisecond for a second: reloads, never a
    // respawn, fewer reloads than writes, and the emperor keeps up.
    let mut writes = 0;
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(1) {
        fs::write(&storm, format!("[uwsgi]\nfake = plain\n; {writes}\n")).unwrap();
        writes += 1;
        thread::sleep(Duration::from_millis(1));
    }
    em.wait_log("[emperor] reload the uwsgi instance storm.ini", 2.0);
    let reloads = em.count("[emperor] reload the uwsgi instance storm.ini");
    assert!(reloads < writes, "{reloads} reloads for {writes} writes");
    assert_eq!(s.pid("storm.ini"), Some(storm_pid), "never respawned");
    assert_eq!(s.starts("storm.ini").len(), 1);
    // Still responsive: one more change is acted on at once.
    thread::sleep(Duration::from_millis(100));
    let settled = em.count("[emperor] reload the uwsgi instance storm.ini");
    touch(&storm);
    em.wait_count(
        "[emperor] reload the uwsgi instance storm.ini",
        settled + 1,
        2.0,
    );

    assert!(alive(em.pid) && alive(good) && alive(storm_pid));
    assert_eq!(s.starts("good.ini").len(), 1, "good.ini untouched");
    assert_eq!(em.count("loop.ini has been spawned"), 0);
}

/// 10,000 vassal files at once: started a bounded batch per loop turn
/// (a wrapper that exits at once keeps it cheap), memory stays bounded,
/// and a stop request is still obeyed promptly.
#[test]
fn ten_thousand_files_stay_bounded() {
    let _serial = heavy();
    let s = Setup::new();
    let v = s.vassals();
    for i in 0..10_000 {
        fs::write(v.join(format!("v{i}.ini")), "[uwsgi]\n").unwrap();
    }
    let mut em = s.start_with(
        &[
            "--emperor".into(),
            v.clone().into(),
            "--emperor-wrapper".into(),
            "/bin/false".into(),
        ],
        &[],
    );
    em.wait_log("failed before it was ready (exit code 1)", 20.0);
    thread::sleep(Duration::from_millis(500));
    let status = fs::read_to_string(format!("/proc/{}/status", em.pid)).unwrap();
    let hwm_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(hwm_kib < 64 * 1024, "peak RSS {hwm_kib} KiB");
    let t = Instant::now();
    signal(em.pid, libc::SIGINT);
    let st = em.wait_exit(20.0);
    assert_eq!(st.code(), Some(0), "{}", em.log());
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "stop took {:?}",
        t.elapsed()
    );
}

/// A change inside the same second is a change (uWSGI compares whole
/// seconds and misses it).
#[test]
fn a_change_within_the_same_second_is_detected() {
    let s = Setup::new();
    let file = s.vassal("ns.ini", "plain");
    let second = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let set = |t: SystemTime| {
        fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(t)
            .unwrap()
    };
    set(second);
    // A long period: the periodic scan may not be what notices it.
    let em = s.start(&["--emperor-freq", "60"]);
    let pid = running(&s, "ns.ini", 10.0);
    em.wait_log("[emperor] vassal ns.ini is ready to accept requests", 5.0);
    set(second + Duration::from_millis(500));
    em.wait_log("[emperor] reload the uwsgi instance ns.ini", 2.0);
    assert!(eventually(2.0, || s.events("ns.ini") == ["reload"]));
    assert_eq!(s.pid("ns.ini"), Some(pid));
}

/// What `pid` runs as: its executable, whether libpython is mapped, its
/// name (`/proc/PID/comm`) and its argv.
fn image(pid: i32) -> (PathBuf, bool, String, Vec<String>) {
    let exe = fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    let raw = fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let argv = raw
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    (
        exe,
        maps.contains("libpython"),
        comm.trim_end().to_string(),
        argv,
    )
}

/// The children of `pid`.
fn children(pid: i32) -> Vec<i32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The handoff's variables never reach a vassal.
fn assert_clean_vassal_env(pid: i32) {
    let env = environ(pid);
    for (k, _) in &env {
        assert!(!k.starts_with("RUWSGI_EMPEROR"), "{k} reached the vassal");
    }
    assert!(env.iter().any(|(k, _)| k == "UWSGI_EMPEROR_FD"), "{env:?}");
}

#[test]
fn the_emperor_runs_as_the_lean_sibling_without_libpython() {
    let s = Setup::new();
    s.vassal("app.ini", "plain");
    let sibling = fs::canonicalize(env!("CARGO_BIN_EXE_uwsgi-emperor")).unwrap();
    let ours = fs::canonicalize(env!("CARGO_BIN_EXE_uwsgi")).unwrap();

    // Standalone: the same process (pid, argv, name), another image.
    let args = [
        "--emperor".to_string(),
        s.vassals().display().to_string(),
        "--emperor-wrapper".into(),
        s.fake(),
    ];
    let em = s.start_with(&args.iter().map(OsString::from).collect::<Vec<_>>(), &[]);
    let vassal = running(&s, "app.ini", 5.0);
    em.wait_log("vassal app.ini is ready to accept requests", 2.0);
    let (exe, python, comm, argv) = image(em.pid);
    assert_eq!(exe, sibling);
    assert!(!python, "the emperor maps libpython");
    assert_eq!(comm, "uwsgi");
    assert_eq!(argv[0], env!("CARGO_BIN_EXE_uwsgi"));
    assert_eq!(argv[1..], args);
    assert_eq!(
        em.count("*** starting uWSGI Emperor ***"),
        1,
        "{}",
        em.log()
    );
    assert_clean_vassal_env(vassal);
    // The vassal's binary is still the full `uwsgi` (`binary-path`
    // semantics): without a wrapper it is the emperor's own executable.
    assert_eq!(
        environ(vassal)
            .into_iter()
            .find(|(k, _)| k == "UWSGI_ORIGINAL_PROC_NAME")
            .map(|(_, v)| v),
        Some(env!("CARGO_BIN_EXE_uwsgi").to_string())
    );
    drop(em);

    // Inside a master: the emperor child execs the sibling; the master
    // keeps libpython (with the `python` feature) and supervises it.
    let _ = fs::remove_file(s.root().join("records/app.ini.starts"));
    fs::write(
        s.root().join("main.ini"),
        format!(
            "[uwsgi]\nmaster = true\nemperor = {}\nemperor-wrapper = {}\n",
            s.vassals().display(),
            s.fake()
        ),
    )
    .unwrap();
    let em = s.start_with(&["--ini".into(), "main.ini".into()], &[]);
    let vassal = running(&s, "app.ini", 5.0);
    em.wait_log("vassal app.ini is ready to accept requests", 2.0);
    let (exe, python, _, _) = image(em.pid);
    assert_eq!(exe, ours);
    assert_eq!(python, cfg!(feature = "python"));
    let emperor = *children(em.pid)
        .iter()
        .find(|&&c| children(c).contains(&vassal))
        .expect("the vassal's emperor is a child of the master");
    let (exe, python, comm, argv) = image(emperor);
    assert_eq!(exe, sibling);
    assert!(!python, "the emperor maps libpython");
    assert_eq!(comm, "uwsgi");
    assert_eq!(argv[1..], ["--ini", "main.ini"]);
    assert_eq!(
        em.count("[uWSGI] getting INI configuration"),
        1,
        "{}",
        em.log()
    );
    assert_clean_vassal_env(vassal);
}

#[test]
fn without_the_sibling_the_emperor_runs_in_the_uwsgi_process() {
    let s = Setup::new();
    s.vassal("app.ini", "plain");
    // `uwsgi` alone in a directory, as when only it is copied.
    let bin = s.root().join("bin");
    fs::create_dir(&bin).unwrap();
    let alone = bin.join("uwsgi");
    if fs::hard_link(env!("CARGO_BIN_EXE_uwsgi"), &alone).is_err() {
        fs::copy(env!("CARGO_BIN_EXE_uwsgi"), &alone).unwrap();
    }
    let args: Vec<OsString> = vec![
        "--emperor".into(),
        s.vassals().into(),
        "--emperor-wrapper".into(),
        s.fake().into(),
    ];
    let em = s.launch(Command::new(&alone), &args, &[]);
    running(&s, "app.ini", 5.0);
    em.wait_log("vassal app.ini is ready to accept requests", 2.0);
    assert_eq!(image(em.pid).0, alone);
    assert!(!em.log().contains("execve()"), "{}", em.log());
    drop(em);

    // A sibling that cannot be executed: said once, then the same.
    let _ = fs::remove_file(s.root().join("records/app.ini.starts"));
    fs::write(bin.join("uwsgi-emperor"), "not a program").unwrap();
    let em = s.launch(Command::new(&alone), &args, &[]);
    running(&s, "app.ini", 5.0);
    em.wait_log("vassal app.ini is ready to accept requests", 2.0);
    assert_eq!(image(em.pid).0, alone);
    let log = em.log();
    assert_eq!(log.matches("execve(): ").count(), 1, "{log}");
    assert!(
        log.contains(&format!(
            "[{}]: running the emperor in this process",
            bin.join("uwsgi-emperor").display()
        )),
        "{log}"
    );
    // The failed exec reset SIGPIPE; the emperor ignores it again, or a
    // write to a vanished vassal's pipe would kill it.
    let status = fs::read_to_string(format!("/proc/{}/status", em.pid)).unwrap();
    let ignored = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .unwrap();
    assert_ne!(
        ignored & (1 << (libc::SIGPIPE - 1)),
        0,
        "SigIgn {ignored:#x}"
    );
    drop(em);

    // A sibling of another build hands the configuration back (as this
    // script does): `uwsgi` runs the emperor with it, resolving nothing
    // again.
    let _ = fs::remove_file(s.root().join("records/app.ini.starts"));
    fs::write(
        bin.join("uwsgi-emperor"),
        "#!/bin/bash\nexec -a \"$0\" \"$RUWSGI_EMPEROR_FROM\" \"${@:1}\"\n",
    )
    .unwrap();
    fs::set_permissions(bin.join("uwsgi-emperor"), fs::Permissions::from_mode(0o755)).unwrap();
    let em = s.launch(Command::new(&alone), &args, &[]);
    let vassal = running(&s, "app.ini", 5.0);
    em.wait_log("vassal app.ini is ready to accept requests", 2.0);
    assert_eq!(image(em.pid).0, alone);
    assert_eq!(
        em.count("*** starting uWSGI Emperor ***"),
        1,
        "{}",
        em.log()
    );
    assert_clean_vassal_env(vassal);
}

#[test]
fn the_sibling_alone_refuses_to_start() {
    let run = |env: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_uwsgi-emperor"));
        cmd.env_clear().stdin(Stdio::null());
        if let Some(v) = env {
            cmd.env("RUWSGI_EMPEROR_CONFIG", v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(None);
    assert_eq!(code, Some(1));
    assert!(err.contains("run `uwsgi --emperor DIR`"), "{err}");
    let (code, err) = run(Some("ruwsgi-emperor/0 1 x2f"));
    assert_eq!(code, Some(1));
    assert!(
        err.contains("configuration from ruwsgi-emperor/0, this is ruwsgi-emperor/"),
        "{err}"
    );
    // With the `uwsgi` that wrote it known, the sibling execs it with the
    // configuration (here `env`, which prints what it was given).
    let out = Command::new(env!("CARGO_BIN_EXE_uwsgi-emperor"))
        .env_clear()
        .env("RUWSGI_EMPEROR_CONFIG", "ruwsgi-emperor/0 1 x2f")
        .env("RUWSGI_EMPEROR_FROM", "/usr/bin/env")
        .env("RUWSGI_EMPEROR_COMM", "uwsgi")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        printed.contains("RUWSGI_EMPEROR_CONFIG=ruwsgi-emperor/0 1 x2f\n"),
        "{printed}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("another build than /usr/bin/env"));
}
