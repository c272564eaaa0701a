//! The emperor's slice of the configuration ([`EmperorConfig`]), read once
//! from the resolved [`Config`] with uWSGI's defaults (`core/init.c`) and
//! option aliases. Nothing else of the `Config` reaches the emperor.

use std::time::Duration;

use crate::config::placeholders::atoi;
use crate::config::vassal::VassalArgs;
use crate::config::Config;

/// Defaults uWSGI uses when an option is absent.
pub mod defaults {
    /// `emperor-freq`: seconds between periodic scans.
    pub const FREQ_SECS: u64 = 3;
    /// `emperor-throttle`, in ms.
    pub const THROTTLE_MS: u64 = 1000;
    /// `emperor-max-throttle`, in ms.
    pub const MAX_THROTTLE_MS: u64 = 180_000;
    /// `emperor-required-heartbeat`, in seconds.
    pub const REQUIRED_HEARTBEAT_SECS: u64 = 30;
    /// `emperor-curse-tolerance`, in seconds.
    pub const CURSE_TOLERANCE_SECS: u64 = 30;
    /// `reload-mercy` during Ragnarok when unset (`royal_death`).
    pub const RAGNAROK_MERCY_SECS: u64 = 30;
    /// `listen`: backlog of on-demand and stats sockets.
    pub const LISTEN: i32 = 100;
    /// `socket-timeout`: how long a stats client may take to read.
    pub const SOCKET_TIMEOUT_SECS: u64 = 4;
}

/// Where an on-demand vassal's socket name comes from (§1.15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnDemand {
    Off,
    /// `emperor-on-demand-directory`: `DIR/<name without extension>.socket`.
    Directory(Vec<u8>),
    /// `emperor-on-demand-extension`: first line of `<vassal file><EXT>`.
    Extension(Vec<u8>),
    /// `emperor-on-demand-exec`: first line printed by `CMD "<vassal file>"`.
    Exec(Vec<u8>),
}

/// Everything the emperor reads from its configuration.
#[derive(Debug, Clone)]
pub struct EmperorConfig {
    /// `emperor` values (directories, globs, `dir://`, `glob://`), in order.
    pub monitors: Vec<Vec<u8>>,
    /// Argv template of every vassal (binary or wrapper first).
    pub vassal_args: VassalArgs,
    /// `emperor-wrapper-override`: binaries tried before the normal one.
    pub wrapper_override: Vec<Vec<u8>>,
    /// `emperor-wrapper-fallback`: binaries tried after it.
    pub wrapper_fallback: Vec<Vec<u8>>,
    pub freq: Duration,
    pub throttle_ms: u64,
    pub max_throttle_ms: u64,
    pub required_heartbeat: Duration,
    pub curse_tolerance: Duration,
    /// `reload-mercy`; 0 means unset (Ragnarok then uses 30 s).
    pub reload_mercy_secs: u64,
    pub tyrant: bool,
    pub tyrant_nofollow: bool,
    pub nofollow: bool,
    pub no_blacklist: bool,
    pub graceful_shutdown: bool,
    pub magic_exec: bool,
    /// `emperor-broodlord`: how many zergs may run at once (0: off).
    pub broodlord: u32,
    pub stats: Option<Vec<u8>>,
    pub stats_minified: bool,
    pub pidfile: Option<Vec<u8>>,
    pub on_demand: OnDemand,
    pub listen: i32,
    pub socket_timeout: Duration,
    /// `log-date`: `None` plain lines; `Some(None)` ctime prefix on every
    /// line; `Some(Some(fmt))` a strftime prefix (also on verbose lines).
    pub log_date: Option<Option<Vec<u8>>>,
    /// `UWSGI_ORIGINAL_PROC_NAME` given to vassals when the emperor's own
    /// environment has none: the emperor's argv[0].
    pub original_proc_name: Vec<u8>,
}

fn last_of<'a>(cfg: &'a Config, keys: &[&str]) -> Option<Option<&'a [u8]>> {
    cfg.applied
        .iter()
        .rev()
        .find(|a| keys.iter().any(|k| a.key == k.as_bytes()))
        .map(|a| a.value.as_deref())
}

fn list(cfg: &Config, keys: &[&str]) -> Vec<Vec<u8>> {
    cfg.applied
        .iter()
        .filter(|a| keys.iter().any(|k| a.key == k.as_bytes()))
        .map(|a| a.value.clone().unwrap_or_default())
        .collect()
}

/// `atoi` of a scalar; a bare flag counts as 1, a negative value as 0.
fn number(cfg: &Config, keys: &[&str], default: u64) -> u64 {
    match last_of(cfg, keys) {
        None => default,
        Some(None) => 1,
        Some(Some(v)) => u64::try_from(atoi(v)).unwrap_or(0),
    }
}

fn flag(cfg: &Config, keys: &[&str]) -> bool {
    last_of(cfg, keys).is_some_and(crate::config::resolve::bool_value)
}

fn text(cfg: &Config, keys: &[&str]) -> Option<Vec<u8>> {
    match last_of(cfg, keys) {
        Some(Some(v)) if !v.is_empty() => Some(v.to_vec()),
        _ => None,
    }
}

impl EmperorConfig {
    /// Reads the emperor options. `own_binary` is the executable vassals
    /// run (the current executable); `binary-path` overrides it and
    /// `emperor-wrapper` replaces it.
    pub fn from_config(cfg: &Config, own_binary: &[u8]) -> EmperorConfig {
        let binary = text(cfg, &["binary-path"]).unwrap_or_else(|| own_binary.to_vec());
        let mut vassal_args = VassalArgs::from_config(cfg, &binary);
        vassal_args.extra_extensions = list(cfg, &["emperor-extra-extension", "emperor-extra-ext"]);
        let on_demand = if let Some(ext) = text(
            cfg,
            &["emperor-on-demand-extension", "emperor-on-demand-ext"],
        ) {
            OnDemand::Extension(ext)
        } else if let Some(dir) = text(
            cfg,
            &["emperor-on-demand-directory", "emperor-on-demand-dir"],
        ) {
            OnDemand::Directory(dir)
        } else if let Some(cmd) = text(cfg, &["emperor-on-demand-exec"]) {
            OnDemand::Exec(cmd)
        } else {
            OnDemand::Off
        };
        let log_date = last_of(cfg, &["log-date", "logdate"]).map(|v| match v {
            Some(v)
                if !["true", "1", "on", "yes"]
                    .iter()
                    .any(|t| v.eq_ignore_ascii_case(t.as_bytes())) =>
            {
                Some(v.to_vec())
            }
            _ => None,
        });
        let original_proc_name = std::env::args_os()
            .next()
            .map(|a| std::os::unix::ffi::OsStrExt::as_bytes(a.as_os_str()).to_vec())
            .unwrap_or_else(|| b"uwsgi".to_vec());
        EmperorConfig {
            monitors: list(cfg, &["emperor"])
                .into_iter()
                .filter(|v| !v.is_empty())
                .collect(),
            vassal_args,
            wrapper_override: list(cfg, &["emperor-wrapper-override"]),
            wrapper_fallback: list(cfg, &["emperor-wrapper-fallback"]),
            // A zero period would make the loop spin: at least one second.
            freq: Duration::from_secs(number(cfg, &["emperor-freq"], defaults::FREQ_SECS).max(1)),
            throttle_ms: number(cfg, &["emperor-throttle"], defaults::THROTTLE_MS),
            max_throttle_ms: number(cfg, &["emperor-max-throttle"], defaults::MAX_THROTTLE_MS),
            required_heartbeat: Duration::from_secs(number(
                cfg,
                &["emperor-required-heartbeat"],
                defaults::REQUIRED_HEARTBEAT_SECS,
            )),
            curse_tolerance: Duration::from_secs(number(
                cfg,
                &["emperor-curse-tolerance"],
                defaults::CURSE_TOLERANCE_SECS,
            )),
            reload_mercy_secs: number(cfg, &["reload-mercy"], 0),
            tyrant: flag(cfg, &["emperor-tyrant"]),
            tyrant_nofollow: flag(cfg, &["emperor-tyrant-nofollow"]),
            nofollow: flag(cfg, &["emperor-nofollow"]),
            no_blacklist: flag(cfg, &["emperor-no-blacklist"]),
            graceful_shutdown: flag(cfg, &["emperor-graceful-shutdown"]),
            magic_exec: flag(cfg, &["emperor-magic-exec"]),
            broodlord: u32::try_from(number(cfg, &["emperor-broodlord"], 0)).unwrap_or(u32::MAX),
            stats: text(cfg, &["emperor-stats", "emperor-stats-server"]),
            stats_minified: flag(cfg, &["stats-minified", "stats-min"]),
            pidfile: text(cfg, &["emperor-pidfile"]),
            on_demand,
            listen: i32::try_from(number(cfg, &["listen"], defaults::LISTEN as u64))
                .unwrap_or(i32::MAX),
            socket_timeout: Duration::from_secs(
                number(cfg, &["socket-timeout"], defaults::SOCKET_TIMEOUT_SECS).max(1),
            ),
            log_date,
            original_proc_name,
        }
    }

    /// Ragnarok's grace period (`reload-mercy`, 30 s when unset).
    pub fn ragnarok_mercy(&self) -> Duration {
        match self.reload_mercy_secs {
            0 => Duration::from_secs(defaults::RAGNAROK_MERCY_SECS),
            n => Duration::from_secs(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, Option<&str>)]) -> Config {
        Config::from_pairs("test.ini", pairs)
    }

    #[test]
    fn defaults_as_uwsgi() {
        let c = EmperorConfig::from_config(
            &config(&[("emperor", Some("/etc/uwsgi/vassals"))]),
            b"/bin/uwsgi",
        );
        assert_eq!(c.monitors, vec![b"/etc/uwsgi/vassals".to_vec()]);
        assert_eq!(c.freq, Duration::from_secs(3));
        assert_eq!((c.throttle_ms, c.max_throttle_ms), (1000, 180_000));
        assert_eq!(c.required_heartbeat, Duration::from_secs(30));
        assert_eq!(c.curse_tolerance, Duration::from_secs(30));
        assert_eq!(c.ragnarok_mercy(), Duration::from_secs(30));
        assert_eq!(c.vassal_args.binary, b"/bin/uwsgi");
        assert_eq!(c.on_demand, OnDemand::Off);
        assert_eq!(c.log_date, None);
        assert!(!c.tyrant && !c.nofollow && !c.graceful_shutdown);
    }

    #[test]
    fn options_and_aliases() {
        let c = EmperorConfig::from_config(
            &config(&[
                ("emperor", Some("a")),
                ("emperor", Some("b/*.ini")),
                ("emperor-freq", Some("0")),
                ("emperor-throttle", Some("500")),
                ("emperor-max-throttle", Some("2000")),
                ("emperor-stats-server", Some("127.0.0.1:9001")),
                ("emperor-on-demand-dir", Some("/run/od")),
                ("emperor-extra-ext", Some(".conf")),
                ("binary-path", Some("/opt/uwsgi")),
                ("reload-mercy", Some("6")),
                ("emperor-tyrant", None),
                ("emperor-nofollow", Some("false")),
                ("log-date", Some("%H")),
            ]),
            b"/bin/uwsgi",
        );
        assert_eq!(c.monitors.len(), 2);
        assert_eq!(
            c.freq,
            Duration::from_secs(1),
            "zero is raised to one second"
        );
        assert_eq!((c.throttle_ms, c.max_throttle_ms), (500, 2000));
        assert_eq!(c.stats.as_deref(), Some(&b"127.0.0.1:9001"[..]));
        assert_eq!(c.on_demand, OnDemand::Directory(b"/run/od".to_vec()));
        assert_eq!(c.vassal_args.load_flag(b"x.conf"), "--config");
        assert_eq!(c.vassal_args.binary, b"/opt/uwsgi");
        assert_eq!(c.ragnarok_mercy(), Duration::from_secs(6));
        assert!(c.tyrant && !c.nofollow);
        assert_eq!(c.log_date, Some(Some(b"%H".to_vec())));
        let w = EmperorConfig::from_config(
            &config(&[
                ("emperor-wrapper", Some("/w.sh")),
                ("binary-path", Some("/opt/uwsgi")),
            ]),
            b"/bin/uwsgi",
        );
        assert_eq!(
            w.vassal_args.binary, b"/w.sh",
            "the wrapper wins over the binary"
        );
    }
}
