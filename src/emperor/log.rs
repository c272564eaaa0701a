//! The emperor's log lines, as uWSGI writes them: `uwsgi_log` lines go out
//! as they are, `uwsgi_log_verbose` lines carry the 24-character `ctime()`
//! date and ` - ` (or the `log-date` strftime format). Operators grep for
//! these strings, so which line is verbose follows uWSGI exactly.

use std::io::Write;

use crate::sys;

/// One log line, without its newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// `uwsgi_log`: no date unless `log-date` is set.
    Plain(String),
    /// `uwsgi_log_verbose`: always dated.
    Verbose(String),
}

/// Writes lines to stderr with the configured date prefix.
#[derive(Debug, Clone, Default)]
pub struct Logger {
    /// See [`super::EmperorConfig::log_date`].
    pub log_date: Option<Option<Vec<u8>>>,
}

impl Logger {
    fn prefix(&self, verbose: bool, now: i64) -> Vec<u8> {
        let mut out = match (&self.log_date, verbose) {
            (Some(Some(fmt)), _) => sys::local_strftime(fmt, now),
            (Some(None), _) | (None, true) => sys::ctime24(now),
            (None, false) => return Vec::new(),
        };
        out.extend_from_slice(b" - ");
        out
    }

    /// Formats a line as it is written (with its newline).
    pub fn format(&self, line: &Line, now: i64) -> Vec<u8> {
        let (verbose, text) = match line {
            Line::Plain(t) => (false, t),
            Line::Verbose(t) => (true, t),
        };
        let mut out = self.prefix(verbose, now);
        out.extend_from_slice(text.as_bytes());
        out.push(b'\n');
        out
    }

    /// Writes one line in a single `write` (lines from vassals sharing
    /// stderr do not interleave inside it).
    pub fn log(&self, line: Line) {
        let bytes = self.format(&line, super::wall_secs());
        let _ = std::io::stderr().lock().write_all(&bytes);
    }

    pub fn plain(&self, text: impl Into<String>) {
        self.log(Line::Plain(text.into()));
    }

    pub fn verbose(&self, text: impl Into<String>) {
        self.log(Line::Verbose(text.into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        let now = 1_795_796_870;
        let plain = Logger::default();
        assert_eq!(plain.format(&Line::Plain("x".into()), now), b"x\n");
        let v = plain.format(&Line::Verbose("[emperor] y".into()), now);
        assert_eq!(
            v.len(),
            24 + 3 + "[emperor] y".len() + 1,
            "{}",
            String::from_utf8_lossy(&v)
        );
        assert!(v.ends_with(b" - [emperor] y\n"));
        let dated = Logger {
            log_date: Some(None),
        };
        assert!(dated
            .format(&Line::Plain("x".into()), now)
            .ends_with(b" - x\n"));
        let fmt = Logger {
            log_date: Some(Some(b"[%Y]".to_vec())),
        };
        let f = fmt.format(&Line::Verbose("z".into()), now);
        assert!(
            f.starts_with(b"[20") && f.ends_with(b"] - z\n"),
            "{}",
            String::from_utf8_lossy(&f)
        );
    }
}
