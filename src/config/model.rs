//! Typed slices of a resolved [`Config`], one per role: each role takes its
//! own slice, never the whole list. Values follow uWSGI's handlers: the
//! last applied scalar wins, list options append, booleans use uWSGI's
//! false/off/no/0 test, integers `atoi`.

use super::placeholders::{atoi, strtoll};
use super::Config;

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

impl Config {
    /// The last applied entry of any of `keys` (aliases share a value).
    fn last_of(&self, keys: &[&str]) -> Option<&super::Applied> {
        self.applied
            .iter()
            .rev()
            .find(|a| keys.iter().any(|k| a.key == k.as_bytes()))
    }

    fn str_opt(&self, keys: &[&str]) -> Option<String> {
        self.last_of(keys)
            .map(|a| text(a.value.as_deref().unwrap_or_default()))
    }

    fn setting(&self, keys: &[&str]) -> Option<Setting> {
        self.last_of(keys).map(|a| Setting {
            value: text(a.value.as_deref().unwrap_or_default()),
            origin: a.origin.to_string(),
        })
    }

    fn list(&self, keys: &[&str]) -> Vec<String> {
        self.applied
            .iter()
            .filter(|a| keys.iter().any(|k| a.key == k.as_bytes()))
            .map(|a| text(a.value.as_deref().unwrap_or_default()))
            .collect()
    }

    /// `atoi`; a valueless flag counts as 1.
    fn int(&self, keys: &[&str], default: i64) -> i64 {
        self.last_of(keys)
            .map(|a| a.value.as_deref().map(|v| i64::from(atoi(v))).unwrap_or(1))
            .unwrap_or(default)
    }

    fn u64(&self, keys: &[&str], default: u64) -> u64 {
        self.last_of(keys)
            .map(|a| a.value.as_deref().map(|v| strtoll(v) as u64).unwrap_or(1))
            .unwrap_or(default)
    }

    fn any_flag(&self, keys: &[&str]) -> bool {
        self.last_of(keys)
            .is_some_and(|a| super::resolve::bool_value(a.value.as_deref()))
    }
}

/// A scalar option's value and where it was set, for error lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub value: String,
    /// `app.ini line 3`, `command line argument 2`, ...
    pub origin: String,
}

/// What a listening socket speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketProto {
    Uwsgi,
    Http,
}

/// One socket the instance listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketSpec {
    /// As written: `/path`, `@abstract`, `host:port`, `:port`, `fd://N`.
    pub name: String,
    pub proto: SocketProto,
}

/// Sockets and their options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketConfig {
    pub sockets: Vec<SocketSpec>,
    /// `chmod-socket`: `None` when unset, `Some(None)` for the bare flag
    /// (666), `Some(Some(mode))` otherwise.
    pub chmod: Option<Option<String>>,
    /// `chown-socket = user[:group]` (names or numbers).
    pub chown: Option<Setting>,
    pub listen: i32,
    pub vacuum: bool,
    /// Seconds of `TCP_DEFER_ACCEPT` on TCP listeners (`socket-timeout`),
    /// `None` with `no-defer-accept`.
    pub defer_accept: Option<u32>,
}

/// The Python side of a worker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PythonConfig {
    pub module: Option<String>,
    pub wsgi_file: Option<String>,
    pub callable: String,
    /// `mount = /path=app`, in order.
    pub mounts: Vec<String>,
    pub manage_script_name: bool,
    pub pythonpath: Vec<String>,
    pub home: Option<String>,
    /// `env = K=V`, applied before the app loads.
    pub env: Vec<String>,
    pub need_app: bool,
    pub lazy_apps: bool,
    /// `lazy` (uWSGI's older form of lazy-apps): its workers fail to load
    /// the app without saying GAME OVER.
    pub lazy: bool,
    pub enable_threads: bool,
    pub threads: usize,
    /// `py-autoreload`: seconds between scans of the loaded modules.
    pub py_autoreload: u64,
    /// `py-auto-reload-ignore`: module names the scan skips.
    pub py_autoreload_ignore: Vec<String>,
}

/// Per-worker request handling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    pub buffer_size: usize,
    pub post_buffering: usize,
    pub socket_timeout: u64,
    pub harakiri: u64,
    pub max_requests: u64,
    pub reload_on_rss_mb: u64,
    pub min_worker_lifetime: u64,
    pub disable_logging: bool,
    pub threads: usize,
    /// `static-map = /url=/dir` and `static-map2`, in order.
    pub static_maps: Vec<(String, String, bool)>,
    pub check_static: Vec<String>,
    /// `mimefile` / `mime-file`: `Content-Type` tables for served files.
    pub mime_files: Vec<String>,
    pub max_vars: usize,
}

/// The master process and everything around the workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterConfig {
    pub master: bool,
    pub processes: usize,
    pub lazy_apps: bool,
    pub pidfile: Option<String>,
    pub uid: Option<Setting>,
    pub gid: Option<Setting>,
    pub daemonize: Option<String>,
    pub logto: Option<String>,
    pub touch_reload: Vec<String>,
    pub die_on_term: bool,
    pub need_app: bool,
    pub vacuum: bool,
    pub harakiri: u64,
    pub chdir: Option<String>,
}

/// Defaults uWSGI uses when an option is absent.
pub mod defaults {
    /// `buffer-size`: the largest uwsgi packet header block accepted.
    pub const BUFFER_SIZE: usize = 4096;
    /// `listen`: the socket backlog.
    pub const LISTEN: i32 = 100;
    /// `socket-timeout` in seconds.
    pub const SOCKET_TIMEOUT: u64 = 4;
    /// `min-worker-lifetime` in seconds.
    pub const MIN_WORKER_LIFETIME: u64 = 10;
    /// `max-vars`.
    pub const MAX_VARS: usize = 64;
}

const SOCKET_KEYS: &[(&str, SocketProto)] = &[
    ("socket", SocketProto::Uwsgi),
    ("uwsgi-socket", SocketProto::Uwsgi),
    ("http-socket", SocketProto::Http),
    ("http11-socket", SocketProto::Http),
];

impl Config {
    pub fn socket_config(&self) -> SocketConfig {
        let sockets = self
            .applied
            .iter()
            .filter_map(|a| {
                let proto = SOCKET_KEYS.iter().find(|(k, _)| a.key == k.as_bytes())?.1;
                Some(SocketSpec {
                    name: text(a.value.as_deref().unwrap_or_default()),
                    proto,
                })
            })
            .collect();
        let chmod = self
            .last_of(&["chmod-socket", "chmod"])
            .map(|a| a.value.as_deref().map(text));
        SocketConfig {
            sockets,
            chmod,
            chown: self.setting(&["chown-socket"]),
            listen: self.int(&["listen"], i64::from(defaults::LISTEN)) as i32,
            vacuum: self.any_flag(&["vacuum"]),
            defer_accept: self.defer_accept(),
        }
    }

    /// uWSGI defers accepting a TCP connection until its first bytes come,
    /// for up to `socket-timeout` seconds, unless `no-defer-accept`.
    pub(crate) fn defer_accept(&self) -> Option<u32> {
        if self.any_flag(&["no-defer-accept"]) {
            return None;
        }
        let secs = self.int(&["socket-timeout"], defaults::SOCKET_TIMEOUT as i64);
        u32::try_from(secs).ok().filter(|&s| s > 0)
    }

    pub fn python_config(&self) -> PythonConfig {
        PythonConfig {
            module: self.str_opt(&["module", "wsgi", "w"]),
            wsgi_file: self.str_opt(&["wsgi-file", "file"]),
            callable: self
                .str_opt(&["callable"])
                .unwrap_or_else(|| "application".into()),
            mounts: self.list(&["mount"]),
            manage_script_name: self.any_flag(&["manage-script-name"]),
            pythonpath: self.list(&["pythonpath", "python-path", "pp"]),
            home: self.str_opt(&["home", "virtualenv", "venv", "pyhome"]),
            env: self.list(&["env"]),
            need_app: self.any_flag(&["need-app"]),
            lazy_apps: self.any_flag(&["lazy-apps", "lazy"]),
            lazy: self.any_flag(&["lazy"]),
            enable_threads: self.any_flag(&["enable-threads"]) || self.int(&["threads"], 1) > 1,
            threads: self.int(&["threads"], 1).max(1) as usize,
            py_autoreload: self.u64(
                &[
                    "py-autoreload",
                    "py-auto-reload",
                    "python-autoreload",
                    "python-auto-reload",
                ],
                0,
            ),
            py_autoreload_ignore: self.list(&["py-auto-reload-ignore"]),
        }
    }

    pub fn worker_config(&self) -> WorkerConfig {
        let mut static_maps: Vec<(String, String, bool)> = Vec::new();
        for a in &self.applied {
            let second = match a.key.as_slice() {
                b"static-map" => false,
                b"static-map2" => true,
                _ => continue,
            };
            let v = text(a.value.as_deref().unwrap_or_default());
            if let Some((url, dir)) = v.split_once('=') {
                static_maps.push((url.to_string(), dir.to_string(), second));
            }
        }
        WorkerConfig {
            buffer_size: self
                .u64(&["buffer-size"], defaults::BUFFER_SIZE as u64)
                .min(65535) as usize,
            post_buffering: self.u64(&["post-buffering"], 0) as usize,
            socket_timeout: self.int(&["socket-timeout"], defaults::SOCKET_TIMEOUT as i64) as u64,
            harakiri: self.int(&["harakiri"], 0) as u64,
            max_requests: self.u64(&["max-requests"], 0),
            reload_on_rss_mb: self.u64(&["reload-on-rss"], 0),
            min_worker_lifetime: self.u64(&["min-worker-lifetime"], defaults::MIN_WORKER_LIFETIME),
            disable_logging: self.any_flag(&["disable-logging"]),
            threads: self.int(&["threads"], 1).max(1) as usize,
            static_maps,
            check_static: self.list(&["check-static"]),
            mime_files: self.list(&["mimefile", "mime-file"]),
            max_vars: self.int(&["max-vars"], defaults::MAX_VARS as i64).max(1) as usize,
        }
    }

    pub fn master_config(&self) -> MasterConfig {
        MasterConfig {
            master: self.any_flag(&["master"]) || self.implied & super::options::flag::MASTER != 0,
            processes: self.int(&["processes", "workers"], 1).max(0) as usize,
            lazy_apps: self.any_flag(&["lazy-apps", "lazy"]),
            pidfile: self.str_opt(&["pidfile"]),
            uid: self.setting(&["uid"]),
            gid: self.setting(&["gid"]),
            daemonize: self.str_opt(&["daemonize"]),
            logto: self.str_opt(&["logto"]),
            touch_reload: self.list(&["touch-reload"]),
            // SIGTERM is a graceful shutdown unless die-on-term = false.
            die_on_term: self
                .last("die-on-term")
                .map(super::resolve::bool_value)
                .unwrap_or(true),
            need_app: self.any_flag(&["need-app"]),
            vacuum: self.any_flag(&["vacuum"]),
            harakiri: self.int(&["harakiri"], 0) as u64,
            chdir: self.str_opt(&["chdir"]),
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
    fn slices() {
        let c = config(&[
            ("socket", Some("/tmp/a.sock")),
            ("http-socket", Some(":8080")),
            ("processes", Some("3abc")),
            ("workers", Some("4")),
            ("master", None),
            ("chmod-socket", None),
            ("module", Some("app:application")),
            ("static-map", Some("/static=/srv/static")),
            ("die-on-term", Some("false")),
            ("harakiri", Some("30")),
        ]);
        let s = c.socket_config();
        assert_eq!(s.sockets.len(), 2);
        assert_eq!(
            s.sockets[1],
            SocketSpec {
                name: ":8080".into(),
                proto: SocketProto::Http
            }
        );
        assert_eq!(s.chmod, Some(None));
        let m = c.master_config();
        assert_eq!(m.processes, 4);
        assert!(m.master);
        assert!(!m.die_on_term);
        assert_eq!(m.harakiri, 30);
        assert_eq!(c.python_config().module.as_deref(), Some("app:application"));
        assert_eq!(
            c.worker_config().static_maps,
            vec![("/static".into(), "/srv/static".into(), false)]
        );
        assert!(config(&[]).master_config().die_on_term);
    }
}
