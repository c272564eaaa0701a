//! Output built from the option table and the resolved list:
//! `--show-config`, `--get`, `--help` and `--dump-options`.

use super::options::OPTIONS;
use super::{Config, CustomOption};

/// The `--show-config` block, byte for byte as uWSGI prints it. `prefix`
/// (from `log-date`) starts every logger call: the header, each entry and
/// the footer.
pub fn show_config(config: &Config, prefix: &[u8]) -> Vec<u8> {
    let mut out = prefix.to_vec();
    out.extend_from_slice(b"\n;uWSGI instance configuration\n[uwsgi]\n");
    for e in &config.entries {
        out.extend_from_slice(prefix);
        out.extend_from_slice(&e.key);
        out.extend_from_slice(b" = ");
        out.extend_from_slice(e.value.as_deref().unwrap_or(b"true"));
        out.push(b'\n');
    }
    out.extend_from_slice(prefix);
    out.extend_from_slice(b";end of configuration\n\n");
    out
}

/// What `log-date`/`logdate`/`log-prefix` put before each log line: a
/// strftime format, or the ctime date for a bare flag or true/1/on/yes.
pub fn log_prefix(
    config: &Config,
    strftime: impl Fn(&[u8]) -> Vec<u8>,
    ctime: impl Fn() -> Vec<u8>,
) -> Vec<u8> {
    let Some(value) = config
        .applied
        .iter()
        .rev()
        .find(|a| matches!(a.key.as_slice(), b"log-date" | b"logdate" | b"log-prefix"))
        .map(|a| a.value.clone())
    else {
        return Vec::new();
    };
    let mut out = match value {
        Some(v)
            if !["true", "1", "on", "yes"]
                .iter()
                .any(|t| v.eq_ignore_ascii_case(t.as_bytes())) =>
        {
            strftime(&v)
        }
        _ => ctime(),
    };
    out.extend_from_slice(b" - ");
    out
}

/// `--get`: the first value of each requested key, one per line; nothing
/// for a missing key or a valueless flag.
pub fn get(config: &Config) -> Vec<u8> {
    let mut out = Vec::new();
    for key in &config.get {
        let first = config
            .entries
            .iter()
            .find(|e| &e.key == key)
            .and_then(|e| e.value.as_deref());
        if let Some(v) = first {
            out.extend_from_slice(v);
            out.push(b'\n');
        }
    }
    out
}

/// `--help`: one line per option in table order, custom options last.
pub fn help(binary: &[u8], custom: &[CustomOption]) -> String {
    let width = OPTIONS
        .iter()
        .map(|o| o.name.len())
        .chain(custom.iter().map(|c| c.name.len()))
        .max()
        .unwrap_or(0)
        + 1;
    let mut out = format!("Usage: {} [options...]\n", String::from_utf8_lossy(binary));
    let mut line = |short: Option<u8>, name: &str, help: &str| match short {
        Some(c) => out.push_str(&format!(
            "    -{}|--{:<w$} {}\n",
            c as char,
            name,
            help,
            w = width - 3
        )),
        None => out.push_str(&format!("    --{name:<width$} {help}\n")),
    };
    for o in OPTIONS {
        line(o.short, o.name, o.help);
    }
    for c in custom {
        line(
            None,
            &String::from_utf8_lossy(&c.name),
            &String::from_utf8_lossy(&c.template),
        );
    }
    out
}

/// `--dump-options`: every long option name, one per line.
pub fn dump_options(custom: &[CustomOption]) -> Vec<u8> {
    let mut out = Vec::new();
    for o in OPTIONS {
        out.extend_from_slice(o.name.as_bytes());
        out.push(b'\n');
    }
    for c in custom {
        out.extend_from_slice(&c.name);
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Entry, Origin};

    fn entry(k: &str, v: Option<&str>) -> Entry {
        Entry {
            key: k.into(),
            value: v.map(Into::into),
            configured: false,
            origin: Origin::Internal,
        }
    }

    #[test]
    fn block_format() {
        let config = Config {
            entries: vec![
                entry("master", None),
                entry("empty", Some("")),
                entry("", Some("x")),
            ],
            get: vec![b"empty".to_vec(), b"master".to_vec(), b"nope".to_vec()],
            ..Config::default()
        };
        assert_eq!(
            String::from_utf8(show_config(&config, b"")).unwrap(),
            "\n;uWSGI instance configuration\n[uwsgi]\nmaster = true\nempty = \n = x\n;end of configuration\n\n"
        );
        assert_eq!(get(&config), b"\n");
    }

    #[test]
    fn help_lists_every_option() {
        let h = help(b"/usr/bin/uwsgi", &[]);
        assert!(h.starts_with("Usage: /usr/bin/uwsgi [options...]\n"));
        assert_eq!(h.lines().count(), OPTIONS.len() + 1);
        assert!(h.lines().any(|l| l.starts_with("    -s|--socket ")));
    }
}
