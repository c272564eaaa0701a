//! Test helpers: temp dirs, copying fixture trees, running our binary the way
//! `compat-fixtures/record.sh` runs the reference uWSGI (scrubbed environment,
//! stdin from a file or `/dev/null`, a deadline), and the normalisation and
//! extraction rules of `compat-fixtures/lib.sh`.
//!
//! Keep the rules here in step with `compat-fixtures/lib.sh`.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long one run of our binary may take before it is killed.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(20);

/// How often a running child is polled for its exit.
const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// The three arguments of the show recipe (spec §12.2).
pub const SHOW_RECIPE: [&str; 3] = ["--show-config", "--privileged-binary-patch", "true"];

/// The repository root (where `Cargo.toml` is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh directory under `std::env::temp_dir()`, removed on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new() -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "ruwsgi-it.{}.{}.{:08x}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            nanos
        );
        let path = std::env::temp_dir().join(name);
        fs::create_dir(&path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        TempDir { path }
    }

    /// The path as created.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Copy the tree `src` into the existing directory `dst` (files, directories
/// and symlinks).
pub fn copy_tree(src: &Path, dst: &Path) -> io::Result<()> {
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            fs::create_dir_all(&to)?;
            copy_tree(&from, &to)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&from)?, &to)?;
        } else {
            fs::copy(&from, &to)?;
        }
    }
    Ok(())
}

/// What one run of our binary did.
#[derive(Debug)]
pub struct Output {
    /// Exit status as a shell reports it: the code, or 128 + the signal.
    pub rc: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Set when the run had to be killed or its output never ended.
    pub timeout: Option<String>,
}

impl Output {
    /// A Rust panic: exit status 101 or a panic message on stderr.
    pub fn panicked(&self) -> bool {
        self.rc == 101 || find(&self.stderr, b"panicked at").is_some()
    }
}

/// How to run our binary.
#[derive(Debug, Default)]
pub struct Invocation {
    pub args: Vec<OsString>,
    /// Added to the base environment `PATH` (inherited), `HOME` (= the working
    /// dir), `LANG=C`.
    pub env: Vec<(OsString, OsString)>,
    /// Standard input; `/dev/null` when `None`.
    pub stdin: Option<PathBuf>,
}

/// Run `env!("CARGO_BIN_EXE_uwsgi")` in `dir` with a scrubbed environment.
pub fn run_uwsgi(dir: &Path, inv: &Invocation) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_uwsgi"));
    cmd.args(&inv.args).current_dir(dir).env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd.env("HOME", dir).env("LANG", "C");
    for (k, v) in &inv.env {
        cmd.env(k, v);
    }
    let stdin = match &inv.stdin {
        Some(p) => {
            Stdio::from(fs::File::open(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        }
        None => Stdio::null(),
    };
    cmd.stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawning our uwsgi: {e}"));
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + RUN_TIMEOUT;
    let (rc, mut timeout) = wait_until(&mut child, deadline);
    // A daemonized grandchild may still hold the pipes: wait for them until
    // the same deadline (plus a little, for a child that just exited).
    let pipes_deadline = deadline.max(Instant::now() + Duration::from_secs(2));
    let mut collect = |rx: mpsc::Receiver<Vec<u8>>, name: &str| {
        let left = pipes_deadline.saturating_duration_since(Instant::now());
        rx.recv_timeout(left).unwrap_or_else(|_| {
            timeout.get_or_insert_with(|| {
                format!("{name} still open after the deadline (a daemonized child?)")
            });
            Vec::new()
        })
    };
    let stdout = collect(stdout, "stdout");
    let stderr = collect(stderr, "stderr");
    Output {
        rc,
        stdout,
        stderr,
        timeout,
    }
}

/// Read a pipe to its end on a thread; the bytes arrive on the channel.
fn drain(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

/// Wait for `child` until `deadline`; past it, kill the child (by its pid)
/// and reap it.
fn wait_until(child: &mut Child, deadline: Instant) -> (i32, Option<String>) {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return (shell_status(status), None),
            Ok(None) if Instant::now() < deadline => thread::sleep(POLL_INTERVAL),
            Ok(None) | Err(_) => break,
        }
    }
    let pid = child.id();
    let _ = child.kill();
    let status = child.wait().map(shell_status).unwrap_or(-1);
    (
        status,
        Some(format!("killed pid {pid} after {}s", RUN_TIMEOUT.as_secs())),
    )
}

fn shell_status(status: std::process::ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        (None, None) => -1,
    }
}

/// Map `f` over `items` on a few threads (runs of our binary mostly wait),
/// keeping the order.
pub fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = thread::available_parallelism()
        .map_or(4, |n| n.get())
        .clamp(4, 16);
    let next = AtomicUsize::new(0);
    let slots: Vec<std::sync::Mutex<Option<R>>> =
        items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    thread::scope(|scope| {
        for _ in 0..threads.min(items.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
            });
        }
    });
    slots
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("every item was mapped")
        })
        .collect()
}

/// Position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Replace every occurrence of `needle` (non-empty) with `with`.
pub fn replace_all(hay: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut rest = hay;
    while let Some(i) = find(rest, needle) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(with);
        rest = &rest[i + needle.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// The temp dir's real path, its path as created, then its bare name become
/// `@TMP@`, `@TMP@`, `@TMPNAME@` (lib.sh `normalise`).
pub fn normalise(bytes: &[u8], dir: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    let real = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut out = replace_all(bytes, real.as_os_str().as_bytes(), b"@TMP@");
    out = replace_all(&out, dir.as_os_str().as_bytes(), b"@TMP@");
    if let Some(name) = dir.file_name() {
        out = replace_all(&out, name.as_bytes(), b"@TMPNAME@");
    }
    out
}

/// Split into lines on `\n`; a final newline does not start another line.
pub fn lines(bytes: &[u8]) -> Vec<&[u8]> {
    let mut v: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    if v.last().is_some_and(|l| l.is_empty()) {
        v.pop();
    }
    v
}

fn join_lines(lines: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

/// From the line `;uWSGI instance configuration` to the first following line
/// that ends with `;end of configuration`, inclusive (lib.sh `extract_block`).
pub fn extract_block(stderr: &[u8]) -> Vec<u8> {
    let mut picked = Vec::new();
    let mut inside = false;
    for line in lines(stderr) {
        if inside {
            picked.push(line);
            if line.ends_with(b";end of configuration") {
                inside = false;
            }
        } else if line == b";uWSGI instance configuration" {
            picked.push(line);
            inside = true;
        }
    }
    join_lines(&picked)
}

/// The loader lines (lib.sh `extract_load`).
pub fn extract_load(stderr: &[u8]) -> Vec<u8> {
    const WARNING: &[u8] = b"*** WARNING: Can";
    const SECTION: &[u8] = b"t find section";
    let picked: Vec<&[u8]> = lines(stderr)
        .into_iter()
        .filter(|l| {
            l.starts_with(b"[uWSGI] getting INI")
                || (l.starts_with(WARNING)
                    && l.len() > WARNING.len()
                    && l[WARNING.len() + 1..].starts_with(SECTION))
        })
        .collect();
    join_lines(&picked)
}

/// Lines of `stderr` that start with `prefix` (the case's `grep` file).
pub fn extract_prefixed<'a>(stderr: &'a [u8], prefix: &[u8]) -> Vec<&'a [u8]> {
    lines(stderr)
        .into_iter()
        .filter(|l| l.starts_with(prefix))
        .collect()
}

/// POSIX `[:space:]`.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// The last line with a non-space byte (lib.sh `extract_errline`, before the
/// location is stripped).
pub fn last_line(stderr: &[u8]) -> &[u8] {
    lines(stderr)
        .into_iter()
        .rev()
        .find(|l| l.iter().any(|&b| !is_space(b)))
        .unwrap_or(b"")
}

/// `line` without one trailing ` [...]` (a source location such as uWSGI's
/// ` [core/utils.c line 3662]` or ours ` [file.ini:3]`), if it has one.
pub fn strip_bracket_suffix(line: &[u8]) -> Option<&[u8]> {
    if !line.ends_with(b"]") {
        return None;
    }
    let open = line.windows(2).rposition(|w| w == b" [")?;
    if line[open + 2..line.len() - 1].contains(&b']') {
        return None;
    }
    Some(&line[..open])
}

/// Whether our stderr line matches the recorded one: equal, or equal once our
/// trailing location is stripped.
pub fn line_matches(ours: &[u8], expected: &[u8]) -> bool {
    ours == expected || strip_bracket_suffix(ours) == Some(expected)
}

/// Read the lines of an `args`-style file: one item per line, an empty line is
/// an empty item, `@TMP@` replaced by `tmp`.
pub fn read_arg_lines(path: &Path, tmp: &Path) -> Vec<OsString> {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    lines(&bytes)
        .into_iter()
        .map(|l| OsString::from_vec(replace_all(l, b"@TMP@", tmp.as_os_str().as_bytes())))
        .collect()
}

/// Read an `env` file: `KEY=VALUE` per line, empty lines ignored.
pub fn read_env_file(path: &Path, tmp: &Path) -> Vec<(OsString, OsString)> {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    read_arg_lines(path, tmp)
        .into_iter()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let bytes = l.as_bytes().to_vec();
            match bytes.iter().position(|&b| b == b'=') {
                Some(i) => (
                    OsString::from_vec(bytes[..i].to_vec()),
                    OsString::from_vec(bytes[i + 1..].to_vec()),
                ),
                None => (OsString::from_vec(bytes), OsString::new()),
            }
        })
        .collect()
}

/// Print a line on stderr that the test harness does not capture, so that it
/// shows even when the test passes (skips, pass ratios).
pub fn visible(msg: &str) {
    use std::io::Write;
    let _ = writeln!(io::stderr().lock(), "{msg}");
}

/// Show bytes compactly for a failure message.
pub fn show(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

/// A compact description of the first difference between two texts, or
/// `None` when they are equal.
pub fn first_difference(expected: &[u8], actual: &[u8]) -> Option<String> {
    if expected == actual {
        return None;
    }
    let (e, a) = (lines(expected), lines(actual));
    let i = e
        .iter()
        .zip(&a)
        .position(|(x, y)| x != y)
        .unwrap_or(e.len().min(a.len()));
    let pick = |v: &[&[u8]]| {
        v.get(i)
            .map(|l| show(l))
            .unwrap_or_else(|| "<end>".to_string())
    };
    Some(format!(
        "line {}: expected {} got {} ({} vs {} lines)",
        i + 1,
        pick(&e),
        pick(&a),
        e.len(),
        a.len()
    ))
}

/// Number of online CPUs, as uWSGI's `%k` sees it (`/sys/devices/system/cpu/online`).
pub fn online_cpus() -> Option<usize> {
    let text = fs::read_to_string("/sys/devices/system/cpu/online").ok()?;
    let mut n = 0;
    for part in text.trim().split(',') {
        match part.split_once('-') {
            Some((a, b)) => n += b.parse::<usize>().ok()? - a.parse::<usize>().ok()? + 1,
            None => {
                part.parse::<usize>().ok()?;
                n += 1;
            }
        }
    }
    Some(n)
}

/// Makes the spawned process die (SIGKILL) when the test thread that
/// spawned it ends, so a killed or crashed test run leaves no server
/// behind. Spawn from the test's own thread, which outlives its guards.
pub fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe and touches no memory of ours;
    // nothing else runs between fork and exec here.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Reports a skipped test (`module::name`) visibly; fails instead when the
/// environment promises every peer (`RUWSGI_IT_REQUIRE_PEERS`, set by
/// `.ci/run`).
pub fn skip_test(test: &str, reason: &str) {
    if std::env::var_os("RUWSGI_IT_REQUIRE_PEERS").is_some() {
        panic!("{test}: {reason} (RUWSGI_IT_REQUIRE_PEERS is set)");
    }
    visible(&format!("SKIP {test}: {reason}"));
}

/// Sets `path`'s modification time to now (full precision).
pub fn touch(path: &Path) {
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(SystemTime::now())
        .unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_extraction_follows_the_sed_range() {
        let err =
            b"x\n\n;uWSGI instance configuration\n[uwsgi]\na = 1\n;end of configuration\n\nafter\n";
        assert_eq!(
            extract_block(err),
            b";uWSGI instance configuration\n[uwsgi]\na = 1\n;end of configuration\n"
        );
        let dated = b"D - \n;uWSGI instance configuration\n[uwsgi]\nD - a = 1\nD - ;end of configuration\nD - x\n";
        assert_eq!(
            extract_block(dated),
            b";uWSGI instance configuration\n[uwsgi]\nD - a = 1\nD - ;end of configuration\n"
        );
        assert_eq!(extract_block(b"nothing\n"), b"");
    }

    #[test]
    fn load_lines() {
        let err = b"[uWSGI] getting INI configuration from a.ini\nnoise\n*** WARNING: Can't find section \"x\" in INI configuration file a.ini ***\n";
        assert_eq!(lines(&extract_load(err)).len(), 2);
    }

    #[test]
    fn errline_and_locations() {
        assert_eq!(last_line(b"a\nlast one\n \n\n"), b"last one");
        assert_eq!(
            strip_bracket_suffix(b"realpath() failed [src/config/ini.rs:3]"),
            Some(&b"realpath() failed"[..])
        );
        assert_eq!(strip_bracket_suffix(b"no suffix"), None);
        assert_eq!(strip_bracket_suffix(b"a [b] c"), None);
        assert!(line_matches(b"x [core/utils.c line 1]", b"x"));
        assert!(line_matches(b"hello [$3]", b"hello [$3]"));
    }

    #[test]
    fn normalisation_replaces_paths_then_name() {
        let dir = TempDir::new();
        let p = dir.path().to_string_lossy().into_owned();
        let name = dir
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let text = format!("{p}/a.ini {name}");
        assert_eq!(
            normalise(text.as_bytes(), dir.path()),
            b"@TMP@/a.ini @TMPNAME@"
        );
    }

    #[test]
    fn cpu_count_parses() {
        if let Some(n) = online_cpus() {
            assert!(n >= 1);
        }
    }
}
