//! The HTTP router's slice of a resolved [`Config`]: its `http =`
//! addresses, backends, timeouts, keep-alive, the variables it adds and
//! the routing table (`route*` entries, parsed by [`crate::routing`] with
//! their origins so a bad rule names its file and line).
//!
//! Values follow uWSGI's option handlers (`plugins/http/http.c`): the last
//! scalar wins, lists append, integers are `atoi`. ruwsgi keeps client
//! connections alive by default; only an explicit `http-keepalive = 0`
//! turns that off (uWSGI read `http-keepalive = true` as 0, i.e. off).

use std::time::Duration;

use super::placeholders::atoi;
use super::{Config, ConfigError};
use crate::routing::Table;

/// Defaults of the HTTP router options.
pub mod router_defaults {
    /// `http-timeout` in seconds.
    pub const TIMEOUT: u64 = 60;
    /// `http-gracetime` in seconds: how long a dead node is skipped.
    pub const GRACETIME: u64 = 30;
    /// Read size and per-direction buffering (`http-buffer-size`).
    pub const BUFFER_SIZE: usize = 64 * 1024;
    /// `listen` backlog.
    pub const LISTEN: i32 = 100;
    /// Gateway processes uWSGI can register (`MAX_GATEWAYS`).
    pub const MAX_PROCESSES: usize = 64;
}

/// Whether client connections stay open between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAlive {
    Off,
    /// Idle time allowed between two requests.
    On {
        idle: Duration,
    },
}

/// Everything the HTTP router gateway needs.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// `http` / `httprouter` addresses, in order (one listener each).
    pub http: Vec<String>,
    /// `http-to` static nodes (round-robin).
    pub to: Vec<String>,
    /// This instance's socket 0, filled in by the master; used when there
    /// are no `http-to` nodes.
    pub local_socket: Option<String>,
    /// `http-fallback` nodes, tried in order after a failure.
    pub fallback: Vec<String>,
    /// `http-gracetime`: a dead node is skipped this long.
    pub gracetime: Duration,
    /// `http-timeout`: inactivity toward a backend or a client.
    pub timeout: Duration,
    /// `http-headers-timeout`: time to receive a request head.
    pub headers_timeout: Duration,
    /// `http-connect-timeout`: time to connect to a backend.
    pub connect_timeout: Duration,
    pub keepalive: KeepAlive,
    /// `http-auto-chunked`: chunk responses that have no length instead of
    /// closing after them.
    pub auto_chunked: bool,
    /// `http-raw-body`: forward request bodies as they come until the
    /// client closes (no keep-alive).
    pub raw_body: bool,
    /// `http-manage-expect = N` (N > 1): refuse an `Expect: 100-continue`
    /// body larger than N with 413. 100 Continue is always answered.
    pub expect_limit: Option<u64>,
    /// `http-var` pairs, appended to every packet.
    pub vars: Vec<(Vec<u8>, Vec<u8>)>,
    /// `http-modifier1` / `http-modifier2` (0 = unset).
    pub modifier1: u8,
    pub modifier2: u8,
    /// `http-buffer-size`: read size and how much is buffered per
    /// direction before reading pauses.
    pub buffer_size: usize,
    /// `http-server-name-as-http-host`.
    pub server_name_as_http_host: bool,
    /// `http-quiet`: no "unable to connect" lines.
    pub quiet: bool,
    /// `mimefile` / `mime-file`: `Content-Type` tables for `static:`.
    pub mime_files: Vec<String>,
    /// `listen` backlog of the `http` sockets.
    pub listen: i32,
    /// `http-processes` / `http-workers`: gateway processes sharing the
    /// listening sockets (at least 1).
    pub processes: usize,
    /// `TCP_DEFER_ACCEPT` seconds on TCP `http` sockets, as on the
    /// instance's own (`socket-timeout`; `None` with `no-defer-accept`).
    pub defer_accept: Option<u32>,
    /// The `route*` tables.
    pub routes: Table,
}

impl Config {
    /// Seconds of an integer option; `None` when absent or not positive
    /// (the caller's default applies: a zero timeout would fire at once).
    fn secs(&self, key: &str) -> Option<Duration> {
        let n = self.last(key)?.map_or(1, |v| i64::from(atoi(v)));
        u64::try_from(n)
            .ok()
            .filter(|&n| n > 0)
            .map(Duration::from_secs)
    }

    fn values(&self, keys: &[&str]) -> Vec<String> {
        self.applied
            .iter()
            .filter(|a| keys.iter().any(|k| a.key == k.as_bytes()))
            .map(|a| String::from_utf8_lossy(a.value.as_deref().unwrap_or_default()).into_owned())
            .collect()
    }

    /// The `route*` tables; fails on the first bad rule, naming its
    /// file and line.
    pub fn routing_table(&self) -> Result<Table, ConfigError> {
        Table::from_entries(self.applied.iter().map(|a| {
            (
                a.key.as_slice(),
                a.value.as_deref().unwrap_or_default(),
                &a.origin,
            )
        }))
        .map_err(|e| ConfigError {
            message: e.to_string(),
            origin: Some(e.origin.clone()),
        })
    }

    /// The HTTP router's slice; fails on the first bad routing rule.
    pub fn router_config(&self) -> Result<RouterConfig, ConfigError> {
        let routes = self.routing_table()?;
        let timeout = self
            .secs("http-timeout")
            .unwrap_or(Duration::from_secs(router_defaults::TIMEOUT));
        let keepalive = match self.last("http-keepalive") {
            Some(Some(v)) if v.trim_ascii() == b"0" => KeepAlive::Off,
            Some(Some(v)) if atoi(v) > 1 => KeepAlive::On {
                idle: Duration::from_secs(atoi(v) as u64),
            },
            _ => KeepAlive::On { idle: timeout },
        };
        let expect_limit = self
            .last("http-manage-expect")
            .and_then(|v| v.map(|v| i64::from(atoi(v))))
            .filter(|&n| n > 1)
            .map(|n| n as u64);
        let vars = self
            .values(&["http-var"])
            .iter()
            .filter_map(|v| crate::protocol::cgi::parse_http_var(v.as_bytes()))
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        let modifier = |key| {
            self.last(key)
                .flatten()
                .map_or(0, |v| atoi(v).clamp(0, 255) as u8)
        };
        let buffer_size = self
            .last("http-buffer-size")
            .flatten()
            .map(|v| usize::try_from(atoi(v)).unwrap_or(0))
            .filter(|&n| n >= 4096)
            .unwrap_or(router_defaults::BUFFER_SIZE);
        Ok(RouterConfig {
            http: self.values(&["http", "httprouter"]),
            to: self.values(&["http-to"]),
            local_socket: None,
            fallback: self.values(&["http-fallback"]),
            gracetime: self
                .secs("http-gracetime")
                .unwrap_or(Duration::from_secs(router_defaults::GRACETIME)),
            timeout,
            headers_timeout: self.secs("http-headers-timeout").unwrap_or(timeout),
            connect_timeout: self.secs("http-connect-timeout").unwrap_or(timeout),
            keepalive,
            auto_chunked: self.flag("http-auto-chunked"),
            raw_body: self.flag("http-raw-body"),
            expect_limit,
            vars,
            modifier1: modifier("http-modifier1"),
            modifier2: modifier("http-modifier2"),
            buffer_size,
            server_name_as_http_host: self.flag("http-server-name-as-http-host"),
            quiet: self.flag("http-quiet"),
            mime_files: self.values(&["mimefile", "mime-file"]),
            listen: self
                .last("listen")
                .flatten()
                .map_or(router_defaults::LISTEN, atoi),
            processes: self.router_processes()?,
            defer_accept: self.defer_accept(),
            routes,
        })
    }
}

impl Config {
    /// `http-processes` / `http-workers`: at least 1, at most uWSGI's
    /// 64 gateways (more is refused at start, as uWSGI exits then).
    fn router_processes(&self) -> Result<usize, ConfigError> {
        let Some(entry) = self
            .applied
            .iter()
            .rev()
            .find(|a| a.key == b"http-processes" || a.key == b"http-workers")
        else {
            return Ok(1);
        };
        let n = usize::try_from(entry.value.as_deref().map_or(1, atoi)).unwrap_or(0);
        if n > router_defaults::MAX_PROCESSES {
            return Err(ConfigError {
                message: format!(
                    "you can register max {} gateways (http-processes = {n})",
                    router_defaults::MAX_PROCESSES
                ),
                origin: Some(entry.origin.clone()),
            });
        }
        Ok(n.max(1))
    }
}

impl RouterConfig {
    /// A configuration with uWSGI's defaults and no addresses, backends or
    /// rules (tests and embedders fill in the rest).
    pub fn new() -> RouterConfig {
        let timeout = Duration::from_secs(router_defaults::TIMEOUT);
        RouterConfig {
            http: Vec::new(),
            to: Vec::new(),
            local_socket: None,
            fallback: Vec::new(),
            gracetime: Duration::from_secs(router_defaults::GRACETIME),
            timeout,
            headers_timeout: timeout,
            connect_timeout: timeout,
            keepalive: KeepAlive::On { idle: timeout },
            auto_chunked: false,
            raw_body: false,
            expect_limit: None,
            vars: Vec::new(),
            modifier1: 0,
            modifier2: 0,
            buffer_size: router_defaults::BUFFER_SIZE,
            server_name_as_http_host: false,
            quiet: false,
            mime_files: Vec::new(),
            listen: router_defaults::LISTEN,
            processes: 1,
            defer_accept: None,
            routes: Table::default(),
        }
    }
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, Option<&str>)]) -> Config {
        Config::from_pairs("r.ini", pairs)
    }

    #[test]
    fn slice() {
        let c = config(&[
            ("http", Some(":8080")),
            ("httprouter", Some("/tmp/h.sock")),
            ("http-to", Some("127.0.0.1:3031")),
            ("http-to", Some("/tmp/b.sock")),
            ("http-timeout", Some("5")),
            ("http-keepalive", Some("true")),
            ("http-var", Some("MY_VAR=hello")),
            ("http-var", Some("broken")),
            ("http-modifier1", Some("7")),
            ("http-manage-expect", Some("10")),
            ("route-host", Some("^a$ uwsgi:/tmp/a.sock,0,0")),
        ]);
        let r = c.router_config().unwrap();
        assert_eq!(r.http, vec![":8080", "/tmp/h.sock"]);
        assert_eq!(r.to.len(), 2);
        assert_eq!(r.timeout, Duration::from_secs(5));
        assert_eq!(r.headers_timeout, Duration::from_secs(5));
        assert_eq!(
            r.keepalive,
            KeepAlive::On {
                idle: Duration::from_secs(5)
            }
        );
        assert_eq!(r.vars, vec![(b"MY_VAR".to_vec(), b"hello".to_vec())]);
        assert_eq!((r.modifier1, r.modifier2), (7, 0));
        assert_eq!(r.expect_limit, Some(10));
        assert_eq!(r.routes.request.rules.len(), 1);
        assert_eq!(r.processes, 1);
        let procs =
            |pairs: &[(&str, Option<&str>)]| config(pairs).router_config().unwrap().processes;
        assert_eq!(procs(&[("http-processes", Some("4"))]), 4);
        assert_eq!(
            procs(&[("http-processes", Some("2")), ("http-workers", Some("3"))]),
            3
        );
        assert_eq!(procs(&[("http-workers", Some("0"))]), 1);
        assert_eq!(procs(&[("http-processes", Some("-2"))]), 1);
        assert_eq!(procs(&[("http-processes", Some("64"))]), 64);
        let err = config(&[("http", Some(":8080")), ("http-workers", Some("65"))])
            .router_config()
            .unwrap_err();
        assert_eq!(err.origin.unwrap().to_string(), "r.ini line 2");
        assert!(err.message.contains("max 64 gateways"), "{}", err.message);
        let off = config(&[("http-keepalive", Some("0"))])
            .router_config()
            .unwrap();
        assert_eq!(off.keepalive, KeepAlive::Off);
        let idle = config(&[("http-keepalive", Some("3"))])
            .router_config()
            .unwrap();
        assert_eq!(
            idle.keepalive,
            KeepAlive::On {
                idle: Duration::from_secs(3)
            }
        );
    }

    #[test]
    fn bad_rule_names_its_line() {
        let c = config(&[("http", Some(":8080")), ("route", Some("^/x frob:1"))]);
        let err = c.router_config().unwrap_err();
        assert_eq!(err.origin.unwrap().to_string(), "r.ini line 2");
        assert!(
            err.message.contains("unknown routing action \"frob\""),
            "{}",
            err.message
        );
    }
}
