//! Raw configuration entries and where each one came from.
//!
//! Keys and values are bytes, as in uWSGI: a config file may hold any
//! encoding and we keep it untouched. Every entry remembers its origin so
//! that an error can name the file and line, argv position or environment
//! variable it came from.

use std::fmt;
use std::sync::Arc;

/// Where a raw entry was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A `UWSGI_*` environment variable (its full name).
    Env(String),
    /// The command line, by argv index.
    Argv(usize),
    /// A line of a config file (the file as it was named).
    File { file: Arc<str>, line: usize },
    /// Produced by the engine itself (custom option templates).
    Internal,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Env(name) => write!(f, "environment variable {name}"),
            Origin::Argv(i) => write!(f, "command line argument {i}"),
            Origin::File { file, line } => write!(f, "{file} line {line}"),
            Origin::Internal => write!(f, "internal"),
        }
    }
}

/// One entry of the ordered option list (what `--show-config` prints).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: Vec<u8>,
    /// `None` only for a command-line flag given without a value.
    pub value: Option<Vec<u8>>,
    /// Already applied (immediate options, `set-ph` placeholders, openers):
    /// the expansion passes skip it.
    pub configured: bool,
    pub origin: Origin,
}

/// Lossy text for messages: config bytes are usually UTF-8.
pub fn show(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}
