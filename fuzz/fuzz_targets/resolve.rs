//! The whole resolver, in-process, on an arbitrary ini file:
//! `uwsgi --ini FILE` with an empty environment and fixed host facts.
//! Invariant: no panic (any `Ok` or `Halt` is fine).

#![no_main]

use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ruwsgi::config::ini::trim;
use ruwsgi::config::{resolve, HostFacts, Inputs, Io};

/// Inputs the resolver would act on outside this process, which a fuzzer
/// must not do (and which would make runs slow or flaky):
/// - `exec://` runs a shell command (`ini = exec://rm ...`);
/// - `http://` opens a TCP connection, `resolve = p=host` does a DNS query;
/// - `fd://N` reads one of the fuzzer's own descriptors, and a source of
///   exactly `-` (or `@(-)`) reads standard input: both can block forever;
/// - `/dev/`, `/proc/` and `/sys/` paths include endless or blocking files
///   (`/dev/zero`, `/dev/stdin`, FIFOs) that `ini =`, `@(...)`,
///   `for-readline` or `if-exists` would open.
///
/// It also skips `for-times` loops of 10000 rounds or more: they are
/// faithful to uWSGI (which takes quadratic time on them) and only
/// exhaust memory or the time limit.
///
/// Standard input is also pointed at `/dev/null` (see [`scratch_file`]) in
/// case a value is built from placeholders that this filter cannot see.
fn unsafe_input(data: &[u8]) -> bool {
    const NEEDLES: &[&[u8]] = &[
        b"exec://", b"http://", b"fd://", b"resolve", b"@(-)", b"/dev/", b"/proc/", b"/sys/",
    ];
    let contains = |needle: &[u8]| data.windows(needle.len()).any(|w| w == needle);
    if NEEDLES.iter().any(|n| contains(n)) {
        return true;
    }
    data.split(|&b| b == b'\n').any(|line| {
        let (key, value) = match line.iter().position(|&b| b == b'=') {
            Some(eq) => (trim(&line[..eq]), trim(&line[eq + 1..])),
            None => (trim(line), &line[..0]),
        };
        // A source of exactly `-` (a bare `-` line is a key: skip it too).
        value == b"-"
            || key == b"-"
            || (key == b"for-times"
                && value
                    .iter()
                    .skip_while(|&&b| b == b'+')
                    .take_while(|b| b.is_ascii_digit())
                    .skip_while(|&&b| b == b'0')
                    .count()
                    > 4)
    })
}

/// The ini file the input is written to: one temporary directory per
/// fuzzing process, created on the first call and reused.
fn scratch_file() -> &'static PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ruwsgi-fuzz-resolve-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the scratch directory");
        let null = std::fs::File::open("/dev/null").expect("open /dev/null");
        // SAFETY: dup2 on two open descriptors; fd 0 is replaced
        // atomically and `null` stays owned by this function.
        unsafe {
            libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), 0);
        }
        dir.join("fuzz.ini")
    })
}

fn facts(dir: &[u8]) -> HostFacts {
    HostFacts {
        cwd: dir.to_vec(),
        hostname: b"fuzzhost".to_vec(),
        now_secs: 1_700_000_000,
        now_micros: 1_700_000_000_000_000,
        version: b"2.0.21".to_vec(),
        cpus: 2,
        uid: 1000,
        user: b"fuzz".to_vec(),
        gid: 1000,
        group: b"fuzz".to_vec(),
        binary_path: b"/usr/bin/uwsgi".to_vec(),
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() > 16 * 1024 || unsafe_input(data) {
        return;
    }
    let path = scratch_file();
    if std::fs::write(path, data).is_err() {
        return;
    }
    let dir = path
        .parent()
        .map(|p| p.as_os_str().as_bytes())
        .unwrap_or(b"/");
    let inputs = Inputs {
        argv: vec![
            b"uwsgi".to_vec(),
            b"--ini".to_vec(),
            path.as_os_str().as_bytes().to_vec(),
        ],
        env: vec![],
        facts: facts(dir),
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let _ = resolve(
        inputs,
        Io {
            out: &mut out,
            err: &mut err,
        },
    );
});
