//! The emperor in its own lean executable. `uwsgi` links libpython, and
//! the dynamic loader maps and relocates it at every exec: megabytes of
//! resident memory the emperor never uses. So once `uwsgi` has resolved
//! its configuration and knows it is an emperor (standalone, or the
//! emperor child of a master), it execs `uwsgi-emperor`, the executable
//! installed next to it, which runs only this module. The resolved
//! [`EmperorConfig`] travels in one environment variable (removed again
//! before any vassal starts), so nothing is resolved twice: no duplicate
//! log lines, no second read of a config on stdin, the same working
//! directory and privileges. The argv (what `ps` shows) and the process
//! name stay those of `uwsgi`; vassals still run the full `uwsgi`.
//! Without the sibling, or when the exec fails, the emperor runs in the
//! `uwsgi` process as before; a sibling built from other sources (a stale
//! one left by `cargo build --bin uwsgi`) execs `uwsgi` back, which then
//! runs the emperor itself ([`resume`]).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::Duration;

use super::config::{EmperorConfig, OnDemand};
use crate::config::vassal::VassalArgs;

/// The lean executable's file name, looked up next to `uwsgi`.
pub const SIBLING: &str = "uwsgi-emperor";
/// Carries the encoded configuration across the exec.
pub const ENV: &str = "RUWSGI_EMPEROR_CONFIG";
/// The `uwsgi` that encoded it, for a sibling that cannot decode it.
const FROM_ENV: &str = "RUWSGI_EMPEROR_FROM";
/// The process name (`/proc/self/comm`) `uwsgi` had.
const COMM_ENV: &str = "RUWSGI_EMPEROR_COMM";
/// The first token of an encoding: version and a hash of the sources
/// (build.rs), so a sibling from another build never misreads it.
const MAGIC: &str = concat!(
    "ruwsgi-emperor/",
    env!("CARGO_PKG_VERSION"),
    "/",
    env!("RUWSGI_SOURCE_ID")
);

/// Runs the emperor: in the lean sibling when there is one (this call
/// then never returns), else in this process. Returns the exit status.
pub fn run(cfg: &EmperorConfig) -> i32 {
    if let Some(path) = sibling() {
        let e = exec(&path, cfg);
        crate::sys::process::ignore_sigpipe();
        eprintln!(
            "execve(): {} [{}]: running the emperor in this process",
            crate::config::logic::strerror(&e),
            path.display()
        );
    }
    super::run(cfg)
}

/// The `uwsgi-emperor` next to the running executable, if it exists.
fn sibling() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    // Replaced on disk since it started (an upgrade: "uwsgi (deleted)"):
    // the sibling beside the new file belongs to the new build.
    if !exe.is_file() {
        return None;
    }
    let path = exe.parent()?.join(SIBLING);
    path.is_file().then_some(path)
}

/// Replaces this process with the sibling, keeping argv, environment,
/// working directory, fds and the parent-death signal; returns only on
/// failure.
fn exec(path: &std::path::Path, cfg: &EmperorConfig) -> std::io::Error {
    let mut args = std::env::args_os();
    let mut cmd = std::process::Command::new(path);
    if let Some(arg0) = args.next() {
        cmd.arg0(arg0);
    }
    cmd.args(args);
    cmd.env(ENV, OsStr::from_bytes(&encode(cfg)));
    if let Ok(me) = std::env::current_exe() {
        cmd.env(FROM_ENV, me);
    }
    // `uwsgi-emperor` would not fit `killall uwsgi` and the like.
    if let Ok(name) = std::fs::read("/proc/self/comm") {
        cmd.env(COMM_ENV, OsStr::from_bytes(name.trim_ascii_end()));
    }
    cmd.exec()
}

/// The `main` of `uwsgi-emperor`: decodes the configuration `uwsgi` left
/// in the environment and runs the emperor.
pub fn main() -> i32 {
    let Some(encoded) = std::env::var_os(ENV) else {
        eprintln!(
            "{SIBLING} is started by uwsgi: run `uwsgi --emperor DIR` (or an ini file with `emperor =`)"
        );
        return 1;
    };
    let cfg = match decode(encoded.as_bytes()) {
        Ok(cfg) => cfg,
        Err(e) => return bounce(&e),
    };
    if let Some(comm) = std::env::var_os(COMM_ENV) {
        let _ = std::fs::write("/proc/self/comm", comm.as_bytes());
    }
    forget_env();
    super::run(&cfg)
}

/// A configuration this build cannot read: back to the `uwsgi` that wrote
/// it (argv and environment unchanged), which runs the emperor itself.
fn bounce(error: &str) -> i32 {
    let Some(from) = std::env::var_os(FROM_ENV) else {
        eprintln!("{SIBLING}: {error}");
        return 1;
    };
    eprintln!(
        "{SIBLING}: {error}: another build than {}, which runs the emperor itself",
        from.to_string_lossy()
    );
    let mut args = std::env::args_os();
    let mut cmd = std::process::Command::new(&from);
    if let Some(arg0) = args.next() {
        cmd.arg0(arg0);
    }
    let e = cmd.args(args).env_remove(COMM_ENV).exec();
    eprintln!(
        "execve(): {} [{}]",
        crate::config::logic::strerror(&e),
        from.to_string_lossy()
    );
    1
}

/// Called first thing in `uwsgi`: when a sibling of another build handed
/// the configuration back, runs the emperor in this process and returns
/// its exit status.
pub fn resume() -> Option<i32> {
    let encoded = std::env::var_os(ENV)?;
    forget_env();
    Some(match decode(encoded.as_bytes()) {
        Ok(cfg) => super::run(&cfg),
        Err(e) => {
            eprintln!("uwsgi: {e}");
            1
        }
    })
}

/// Vassals inherit the environment: leave it as `uwsgi` had it.
fn forget_env() {
    // Single-threaded here, so changing the environment is sound.
    for k in [ENV, FROM_ENV, COMM_ENV] {
        std::env::remove_var(k);
    }
}

/// Encodes `cfg` as space-separated tokens: `x` + hex for bytes, decimal
/// numbers, list lengths before their items, `-`/`+` for absent/present.
pub fn encode(cfg: &EmperorConfig) -> Vec<u8> {
    // Destructured, so a new field does not compile until it is encoded.
    let EmperorConfig {
        monitors,
        vassal_args,
        wrapper_override,
        wrapper_fallback,
        freq,
        throttle_ms,
        max_throttle_ms,
        required_heartbeat,
        curse_tolerance,
        reload_mercy_secs,
        tyrant,
        tyrant_nofollow,
        nofollow,
        no_blacklist,
        graceful_shutdown,
        magic_exec,
        broodlord,
        stats,
        stats_minified,
        pidfile,
        on_demand,
        listen,
        socket_timeout,
        log_date,
        original_proc_name,
    } = cfg;
    let VassalArgs {
        binary,
        inherit_before,
        include_before,
        set,
        inherit,
        include,
        extra_extensions,
    } = vassal_args;
    let mut w = Writer(MAGIC.as_bytes().to_vec());
    w.list(monitors);
    w.bytes(binary);
    for l in [inherit_before, include_before, set, inherit, include] {
        w.list(l);
    }
    w.list(extra_extensions);
    w.list(wrapper_override);
    w.list(wrapper_fallback);
    w.duration(*freq);
    w.num(*throttle_ms);
    w.num(*max_throttle_ms);
    w.duration(*required_heartbeat);
    w.duration(*curse_tolerance);
    w.num(*reload_mercy_secs);
    for b in [
        tyrant,
        tyrant_nofollow,
        nofollow,
        no_blacklist,
        graceful_shutdown,
        magic_exec,
    ] {
        w.num(u64::from(*b));
    }
    w.num(u64::from(*broodlord));
    w.opt(stats.as_deref());
    w.num(u64::from(*stats_minified));
    w.opt(pidfile.as_deref());
    match on_demand {
        OnDemand::Off => w.num(0),
        OnDemand::Directory(d) => {
            w.num(1);
            w.bytes(d);
        }
        OnDemand::Extension(e) => {
            w.num(2);
            w.bytes(e);
        }
        OnDemand::Exec(c) => {
            w.num(3);
            w.bytes(c);
        }
    }
    // Two's complement, so a negative backlog survives.
    w.num(u64::from(*listen as u32));
    w.duration(*socket_timeout);
    match log_date {
        None => w.token(b"-"),
        Some(fmt) => {
            w.token(b"+");
            w.opt(fmt.as_deref());
        }
    }
    w.bytes(original_proc_name);
    w.0
}

/// The inverse of [`encode`].
pub fn decode(s: &[u8]) -> Result<EmperorConfig, String> {
    let mut r = Reader(s.split(|&b| b == b' '));
    let magic = r.next()?;
    if magic != MAGIC.as_bytes() {
        return Err(format!(
            "configuration from {}, this is {MAGIC}",
            String::from_utf8_lossy(magic)
        ));
    }
    let monitors = r.list()?;
    let vassal_args = VassalArgs {
        binary: r.bytes()?,
        inherit_before: r.list()?,
        include_before: r.list()?,
        set: r.list()?,
        inherit: r.list()?,
        include: r.list()?,
        extra_extensions: r.list()?,
    };
    let cfg = EmperorConfig {
        monitors,
        vassal_args,
        wrapper_override: r.list()?,
        wrapper_fallback: r.list()?,
        freq: r.duration()?,
        throttle_ms: r.num()?,
        max_throttle_ms: r.num()?,
        required_heartbeat: r.duration()?,
        curse_tolerance: r.duration()?,
        reload_mercy_secs: r.num()?,
        tyrant: r.flag()?,
        tyrant_nofollow: r.flag()?,
        nofollow: r.flag()?,
        no_blacklist: r.flag()?,
        graceful_shutdown: r.flag()?,
        magic_exec: r.flag()?,
        broodlord: r.small()?,
        stats: r.opt()?,
        stats_minified: r.flag()?,
        pidfile: r.opt()?,
        on_demand: match r.num()? {
            0 => OnDemand::Off,
            1 => OnDemand::Directory(r.bytes()?),
            2 => OnDemand::Extension(r.bytes()?),
            3 => OnDemand::Exec(r.bytes()?),
            n => return Err(format!("on-demand kind {n}")),
        },
        listen: r.small::<u32>()? as i32,
        socket_timeout: r.duration()?,
        log_date: match r.next()? {
            b"-" => None,
            b"+" => Some(r.opt()?),
            t => return Err(format!("log-date token {}", String::from_utf8_lossy(t))),
        },
        original_proc_name: r.bytes()?,
    };
    match r.0.next() {
        None => Ok(cfg),
        Some(_) => Err("trailing data in the configuration".into()),
    }
}

struct Writer(Vec<u8>);

impl Writer {
    fn token(&mut self, t: &[u8]) {
        self.0.push(b' ');
        self.0.extend_from_slice(t);
    }

    fn num(&mut self, n: u64) {
        self.token(n.to_string().as_bytes());
    }

    fn bytes(&mut self, b: &[u8]) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.0.extend_from_slice(b" x");
        for &c in b {
            self.0.push(HEX[usize::from(c >> 4)]);
            self.0.push(HEX[usize::from(c & 15)]);
        }
    }

    fn list(&mut self, l: &[Vec<u8>]) {
        self.num(l.len() as u64);
        for b in l {
            self.bytes(b);
        }
    }

    fn opt(&mut self, b: Option<&[u8]>) {
        match b {
            None => self.token(b"-"),
            Some(b) => {
                self.token(b"+");
                self.bytes(b);
            }
        }
    }

    fn duration(&mut self, d: Duration) {
        self.num(d.as_secs());
        self.num(u64::from(d.subsec_nanos()));
    }
}

struct Reader<'a, I: Iterator<Item = &'a [u8]>>(I);

impl<'a, I: Iterator<Item = &'a [u8]>> Reader<'a, I> {
    fn next(&mut self) -> Result<&'a [u8], String> {
        self.0
            .next()
            .ok_or_else(|| "truncated configuration".into())
    }

    fn num(&mut self) -> Result<u64, String> {
        let t = self.next()?;
        std::str::from_utf8(t)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad number {}", String::from_utf8_lossy(t)))
    }

    fn small<T: TryFrom<u64>>(&mut self) -> Result<T, String> {
        let n = self.num()?;
        T::try_from(n).map_err(|_| format!("number {n} out of range"))
    }

    fn flag(&mut self) -> Result<bool, String> {
        match self.num()? {
            0 => Ok(false),
            1 => Ok(true),
            n => Err(format!("bad flag {n}")),
        }
    }

    fn bytes(&mut self) -> Result<Vec<u8>, String> {
        let t = self.next()?;
        let bad = || format!("bad bytes {}", String::from_utf8_lossy(t));
        let hex = t.strip_prefix(b"x").ok_or_else(bad)?;
        if hex.len() % 2 != 0 {
            return Err(bad());
        }
        let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        hex.chunks(2)
            .map(|p| Some((digit(p[0])? << 4) | digit(p[1])?))
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(bad)
    }

    fn list(&mut self) -> Result<Vec<Vec<u8>>, String> {
        let n = self.num()?;
        // Each item is at least one token: a bogus length fails here
        // instead of reserving memory for it.
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(self.bytes()?);
        }
        Ok(out)
    }

    fn opt(&mut self) -> Result<Option<Vec<u8>>, String> {
        match self.next()? {
            b"-" => Ok(None),
            b"+" => Ok(Some(self.bytes()?)),
            t => Err(format!("bad option token {}", String::from_utf8_lossy(t))),
        }
    }

    fn duration(&mut self) -> Result<Duration, String> {
        let secs = self.num()?;
        let nanos: u32 = self.small()?;
        if nanos >= 1_000_000_000 {
            return Err(format!("bad nanoseconds {nanos}"));
        }
        Ok(Duration::new(secs, nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> EmperorConfig {
        let b = |s: &str| s.as_bytes().to_vec();
        EmperorConfig {
            monitors: vec![b("/srv/vassals"), b("glob:///etc/*.ini")],
            vassal_args: VassalArgs {
                binary: b("/usr/bin/uwsgi"),
                inherit_before: vec![b("a.ini")],
                include_before: vec![],
                set: vec![b("x=1 2"), b("")],
                inherit: vec![b("base.ini")],
                include: vec![b("inc.ini")],
                extra_extensions: vec![b(".cfg")],
            },
            wrapper_override: vec![b("/opt/w1")],
            wrapper_fallback: vec![b("/opt/w2"), b("/opt/w3")],
            freq: Duration::from_secs(7),
            throttle_ms: 250,
            max_throttle_ms: 9000,
            required_heartbeat: Duration::new(30, 5),
            curse_tolerance: Duration::from_millis(1500),
            reload_mercy_secs: 12,
            tyrant: true,
            tyrant_nofollow: false,
            nofollow: true,
            no_blacklist: false,
            graceful_shutdown: true,
            magic_exec: false,
            broodlord: 3,
            stats: Some(b("127.0.0.1:0")),
            stats_minified: true,
            pidfile: None,
            on_demand: OnDemand::Extension(b(".socket")),
            listen: -1,
            socket_timeout: Duration::from_secs(4),
            log_date: Some(Some(b("%Y \u{e9}\n\t"))),
            original_proc_name: vec![0xff, b' ', 0x01, b'u'],
        }
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let cfg = sample();
        let enc = encode(&cfg);
        assert!(!enc.contains(&0), "an environment value cannot hold NUL");
        let back = decode(&enc).unwrap();
        assert_eq!(format!("{back:?}"), format!("{cfg:?}"));
        for (on_demand, log_date) in [
            (OnDemand::Off, None),
            (OnDemand::Directory(b"/run/od".to_vec()), Some(None)),
            (OnDemand::Exec(b"cmd".to_vec()), None),
        ] {
            let cfg = EmperorConfig {
                on_demand,
                log_date,
                ..sample()
            };
            let back = decode(&encode(&cfg)).unwrap();
            assert_eq!(format!("{back:?}"), format!("{cfg:?}"));
        }
    }

    #[test]
    fn foreign_or_damaged_encodings_are_refused() {
        let enc = encode(&sample());
        let other = [b"ruwsgi-emperor/0/0.0.0".as_slice(), &enc[MAGIC.len()..]].concat();
        assert!(decode(&other)
            .unwrap_err()
            .contains("ruwsgi-emperor/0/0.0.0"));
        let last = enc.iter().rposition(|&b| b == b' ').unwrap();
        assert!(decode(&enc[..last]).is_err(), "truncated");
        assert!(decode(&[&enc[..], b" 1"].concat()).is_err(), "trailing");
        let bad = String::from_utf8(enc).unwrap().replacen(" x", " xz", 1);
        assert!(decode(bad.as_bytes()).is_err(), "bad hex");
        assert!(decode(b"").is_err());
    }
}
