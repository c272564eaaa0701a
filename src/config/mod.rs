//! The configuration system: everything from argv, `UWSGI_*` variables and
//! config files to one ordered option list, exactly as uWSGI 2.0 builds it
//! (spec: config.md). [`resolve`] produces a [`Config`]; [`show`] renders
//! `--show-config`, `--get`, `--help` and `--dump-options`; [`vassal`]
//! builds an emperor's vassal command line; [`support`] says what ruwsgi
//! does with each option (`docs/options.md`).

pub mod facts;
pub mod glob;
pub mod ini;
pub mod logic;
pub mod man;
pub mod model;
pub mod model_router;
pub mod options;
pub mod placeholders;
pub mod resolve;
pub mod show;
pub mod source;
pub mod sources;
pub mod support;
pub mod vassal;

use std::io::Write;

pub use facts::HostFacts;
pub use resolve::{resolve, Applied, CustomOption, Inputs};
pub use source::{Entry, Origin};

/// Where the resolver writes: standard output (`print`, `--get`, `--help`)
/// and the log stream (loader lines, warnings, `--show-config`).
pub struct Io<'a> {
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
}

impl std::fmt::Debug for Io<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Io")
    }
}

/// A configuration error: uWSGI's message, then where it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}{}", .origin.as_ref().map(|o| format!(" [{o}]")).unwrap_or_default())]
pub struct ConfigError {
    pub message: String,
    pub origin: Option<Origin>,
}

/// Why resolution stopped before producing a [`Config`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Halt {
    /// A deliberate exit (`--help`, `--version`, `exit = N`); output done.
    Exit(i32),
    /// A configuration error: exit status 1.
    Fail(ConfigError),
    /// `--stop`/`--reload`/... : signal the instance named by a pidfile.
    SignalPidfile {
        pidfile: Vec<u8>,
        action: &'static str,
    },
}

/// The resolved configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The ordered list, as `--show-config` prints it.
    pub entries: Vec<Entry>,
    /// Options in the order they were applied (the effective values).
    pub applied: Vec<Applied>,
    pub custom: Vec<CustomOption>,
    /// Keys requested with `--get`.
    pub get: Vec<Vec<u8>>,
    /// Implied flags (`options::flag::*`) of every known option added.
    pub implied: u32,
    pub no_initial_output: bool,
}

impl Config {
    /// A resolved config made of `key = value` pairs (`None`: a bare flag),
    /// each from `file` at its 1-based position, for the typed-slice tests.
    #[cfg(test)]
    pub(crate) fn from_pairs(file: &str, pairs: &[(&str, Option<&str>)]) -> Config {
        let file: std::sync::Arc<str> = std::sync::Arc::from(file);
        Config {
            applied: pairs
                .iter()
                .enumerate()
                .map(|(i, (k, v))| Applied {
                    key: k.as_bytes().to_vec(),
                    value: v.map(|v| v.as_bytes().to_vec()),
                    origin: Origin::File {
                        file: file.clone(),
                        line: i + 1,
                    },
                })
                .collect(),
            ..Config::default()
        }
    }

    /// Value of the first entry with `key` (what `--get` and `%(key)` see).
    pub fn first(&self, key: &str) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|e| e.key == key.as_bytes())
            .and_then(|e| e.value.as_deref())
    }

    /// Every applied value of `key`, in order (lists).
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = Option<&'a [u8]>> + 'a {
        self.applied
            .iter()
            .filter(move |a| a.key == key.as_bytes())
            .map(|a| a.value.as_deref())
    }

    /// The effective (last applied) value of a scalar option; `Some(None)`
    /// for a valueless flag.
    pub fn last<'a>(&'a self, key: &'a str) -> Option<Option<&'a [u8]>> {
        self.all(key).last()
    }

    /// An effective boolean option.
    pub fn flag(&self, key: &str) -> bool {
        self.last(key).is_some_and(resolve::bool_value)
    }
}
