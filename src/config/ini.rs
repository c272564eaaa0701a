//! The uWSGI ini dialect, as `core/ini.c` reads it.
//!
//! Generic INI crates do not fit: uWSGI has no inline comments, keeps
//! backslashes, treats a line without `=` as a key with an empty value,
//! ignores text before the first section and keeps repeated keys and
//! sections in order (rust-ini drops backslashes and garbles bare flags;
//! configparser keeps only the last of repeated keys). This reader works on
//! bytes after magic-variable substitution and returns the key/value lines
//! of the selected section; loading, nesting and expansion live elsewhere.

/// A key/value line of the selected section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IniLine<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    /// 1-based line number in the text that was parsed.
    pub line: usize,
}

/// Result of reading one file for one section.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct IniRead<'a> {
    pub lines: Vec<IniLine<'a>>,
    /// At least one key/value line was in the selected section.
    pub found: bool,
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t' || b == b'\r'
}

/// Strips uWSGI's whitespace set (space, tab, CR) from both ends.
pub fn trim(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_blank(*first) {
            break;
        }
        s = rest;
    }
    trim_end(s)
}

fn trim_end(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., last] = s {
        if !is_blank(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// Reads `text` and returns the key/value lines of `section`, in order.
pub fn read<'a>(text: &'a [u8], section: &[u8]) -> IniRead<'a> {
    let mut out = IniRead::default();
    // Lines before the first header belong to the unnamed section, which
    // can never be selected (an empty `:section` means `uwsgi`).
    let mut current: &[u8] = b"";
    for (idx, raw) in text.split(|&b| b == b'\n').enumerate() {
        // A NUL byte ends the line, as with C strings.
        let raw = match raw.iter().position(|&b| b == 0) {
            Some(nul) => &raw[..nul],
            None => raw,
        };
        let line = trim(raw);
        match line.first() {
            None => {}
            Some(b'[') => {
                // The name is the line minus its first and last byte,
                // whatever the last byte is.
                current = if line.len() >= 2 {
                    &line[1..line.len() - 1]
                } else {
                    b""
                };
            }
            Some(b';') | Some(b'#') => {}
            Some(_) => {
                if current != section {
                    continue;
                }
                let (key, value) = match line.iter().position(|&b| b == b'=') {
                    Some(eq) => (trim_end(&line[..eq]), trim(&line[eq + 1..])),
                    None => (line, &line[line.len()..]),
                };
                out.found = true;
                out.lines.push(IniLine {
                    key,
                    value,
                    line: idx + 1,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(text: &str, section: &str) -> Vec<(String, String)> {
        read(text.as_bytes(), section.as_bytes())
            .lines
            .iter()
            .map(|l| {
                (
                    String::from_utf8_lossy(l.key).into_owned(),
                    String::from_utf8_lossy(l.value).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn table() {
        let cases: &[(&str, &str, &str, &[(&str, &str)])] = &[
            ("simple", "[uwsgi]\na = 1\n", "uwsgi", &[("a", "1")]),
            (
                "no inline comment",
                "[uwsgi]\nk = v ; c\n",
                "uwsgi",
                &[("k", "v ; c")],
            ),
            (
                "hash not comment",
                "[uwsgi]\nk = v # c\n",
                "uwsgi",
                &[("k", "v # c")],
            ),
            ("bare flag", "[uwsgi]\nmaster\n", "uwsgi", &[("master", "")]),
            (
                "empty key",
                "[uwsgi]\n=noname\n",
                "uwsgi",
                &[("", "noname")],
            ),
            (
                "first equals",
                "[uwsgi]\nk = a = b\n",
                "uwsgi",
                &[("k", "a = b")],
            ),
            (
                "tabs and cr",
                "[uwsgi]\r\n\t\tk\t=\tv\t\r\n",
                "uwsgi",
                &[("k", "v")],
            ),
            (
                "before section ignored",
                "a = 1\n[uwsgi]\nb = 2",
                "uwsgi",
                &[("b", "2")],
            ),
            (
                "comments",
                "[uwsgi]\n; x = 1\n# y = 2\n  ; z\nw = 3\n",
                "uwsgi",
                &[("w", "3")],
            ),
            (
                "backslash kept",
                "[uwsgi]\nr = ^/a\\.b$\\\n",
                "uwsgi",
                &[("r", "^/a\\.b$\\")],
            ),
            (
                "quotes kept",
                "[uwsgi]\nq = \"v\"\n",
                "uwsgi",
                &[("q", "\"v\"")],
            ),
            ("case sensitive", "[UWSGI]\na = 1\n", "uwsgi", &[]),
            ("spaces in header", "[ uwsgi ]\na = 1\n", "uwsgi", &[]),
            (
                "header last char dropped",
                "[uwsgix\na = 1\n",
                "uwsgi",
                &[("a", "1")],
            ),
            (
                "repeated sections",
                "[uwsgi]\na=1\n[o]\nb=2\n[uwsgi]\na=3\n",
                "uwsgi",
                &[("a", "1"), ("a", "3")],
            ),
            (
                "other section",
                "[uwsgi]\na=1\n[dev]\nb=2\n",
                "dev",
                &[("b", "2")],
            ),
            ("bom hides header", "\u{feff}[uwsgi]\na = 1\n", "uwsgi", &[]),
            (
                "nul truncates",
                "[uwsgi]\na = 1\0junk\n",
                "uwsgi",
                &[("a", "1")],
            ),
            ("lone bracket", "[\na = 1\n", "uwsgi", &[]),
        ];
        for (name, text, section, want) in cases {
            let got = kv(text, section);
            let want: Vec<(String, String)> = want
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            assert_eq!(got, want, "case {name}");
        }
    }

    #[test]
    fn found_and_line_numbers() {
        let r = read(b"[uwsgi]\n; only comment\n", b"uwsgi");
        assert!(!r.found);
        let r = read(b"x\n[uwsgi]\n\nk = v\n", b"uwsgi");
        assert!(r.found);
        assert_eq!(r.lines[0].line, 4);
    }
}
