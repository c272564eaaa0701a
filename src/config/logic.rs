//! Configuration logic: `for`/`for-glob`/`for-readline`/`for-times` loops
//! and the `if-*` conditions, as one table of openers and one evaluation
//! function. The block state itself (one global open block, no nesting,
//! closed by any closer) lives in the resolver; this module decides what a
//! body line turns into.

use super::glob;

/// What an opener does with each body line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cond {
    For,
    ForGlob,
    ForReadline,
    ForTimes,
    Env { negate: bool },
    Opt { negate: bool },
    Exists { negate: bool },
    File { negate: bool },
    Dir { negate: bool },
    Plugin { negate: bool },
    Hostname { negate: bool },
    HostnameMatch { negate: bool },
    Reload { negate: bool },
}

/// The opener options, aliases included.
pub fn opener(name: &[u8]) -> Option<Cond> {
    use Cond::*;
    let (yes, no) = (false, true);
    Some(match name {
        b"for" => For,
        b"for-glob" => ForGlob,
        b"for-readline" => ForReadline,
        b"for-times" => ForTimes,
        b"if-env" | b"ifenv" => Env { negate: yes },
        b"if-not-env" => Env { negate: no },
        b"if-opt" => Opt { negate: yes },
        b"if-not-opt" => Opt { negate: no },
        b"if-exists" | b"ifexists" => Exists { negate: yes },
        b"if-not-exists" => Exists { negate: no },
        b"if-file" => File { negate: yes },
        b"if-not-file" => File { negate: no },
        b"if-dir" | b"ifdir" | b"if-directory" => Dir { negate: yes },
        b"if-not-dir" => Dir { negate: no },
        b"if-plugin" | b"ifplugin" => Plugin { negate: yes },
        b"if-not-plugin" => Plugin { negate: no },
        b"if-hostname" => Hostname { negate: yes },
        b"if-not-hostname" => Hostname { negate: no },
        b"if-hostname-match" => HostnameMatch { negate: yes },
        b"if-not-hostname-match" => HostnameMatch { negate: no },
        b"if-reload" => Reload { negate: yes },
        b"if-not-reload" => Reload { negate: no },
        _ => return None,
    })
}

/// Keys that close whatever block is open.
pub fn is_closer(key: &[u8]) -> bool {
    matches!(key, b"end" | b"endfor" | b"endif" | b"end-if" | b"end-for")
}

/// What the conditions may ask about the world.
pub trait World {
    fn getenv(&self, name: &[u8]) -> Option<Vec<u8>>;
    /// Raw value of the first entry with this key; `None` for a missing key
    /// or a valueless command-line flag.
    fn first_opt(&self, key: &[u8]) -> Option<Vec<u8>>;
    fn plugin_loaded(&self, name: &[u8]) -> bool;
    fn hostname(&self) -> &[u8];
    fn is_reload(&self) -> bool;
}

/// The entries one body line turns into, and a line to log if any.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub values: Vec<Option<Vec<u8>>>,
    pub log: Option<String>,
}

/// Replaces every `%(_)` in `value` with `datum` (a `None` datum, or a
/// valueless flag, leaves it alone).
pub fn substitute(value: Option<&[u8]>, datum: Option<&[u8]>) -> Option<Vec<u8>> {
    let value = value?;
    let Some(datum) = datum else {
        return Some(value.to_vec());
    };
    const PAT: &[u8] = b"%(_)";
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        if value[i..].starts_with(PAT) {
            out.extend_from_slice(datum);
            i += PAT.len();
        } else {
            out.push(value[i]);
            i += 1;
        }
    }
    Some(out)
}

fn readable(path: &[u8]) -> bool {
    use std::os::unix::ffi::OsStrExt;
    std::fs::File::open(std::ffi::OsStr::from_bytes(path)).is_ok()
}

fn stat(path: &[u8]) -> Option<std::fs::Metadata> {
    use std::os::unix::ffi::OsStrExt;
    std::fs::metadata(std::ffi::OsStr::from_bytes(path)).ok()
}

/// Splits `NAME=VALUE` at the first `=`.
fn split_eq(arg: &[u8]) -> (&[u8], Option<&[u8]>) {
    match arg.iter().position(|&b| b == b'=') {
        Some(i) => (&arg[..i], Some(&arg[i + 1..])),
        None => (arg, None),
    }
}

/// Evaluates the open block `cond` (argument `arg`) for one body line.
pub fn run(cond: Cond, arg: &[u8], value: Option<&[u8]>, world: &dyn World) -> Outcome {
    let one = |datum: Option<&[u8]>| Outcome {
        values: vec![substitute(value, datum)],
        log: None,
    };
    let gate =
        |pass: bool, datum: Option<&[u8]>| if pass { one(datum) } else { Outcome::default() };
    match cond {
        Cond::For => Outcome {
            values: arg
                .split(|&b| b == b' ')
                .filter(|t| !t.is_empty())
                .map(|t| substitute(value, Some(t)))
                .collect(),
            log: None,
        },
        Cond::ForGlob => Outcome {
            values: glob::glob(arg)
                .iter()
                .map(|p| substitute(value, Some(p)))
                .collect(),
            log: None,
        },
        Cond::ForReadline => {
            use std::os::unix::ffi::OsStrExt;
            match std::fs::read(std::ffi::OsStr::from_bytes(arg)) {
                Ok(text) => Outcome {
                    values: readlines(&text)
                        .map(|l| substitute(value, Some(l)))
                        .collect(),
                    log: None,
                },
                Err(e) => Outcome {
                    values: vec![],
                    log: Some(format!(
                        "open(\"{}\"): {}",
                        String::from_utf8_lossy(arg),
                        strerror(&e)
                    )),
                },
            }
        }
        Cond::ForTimes => {
            let n = super::placeholders::atoi(arg).max(0);
            Outcome {
                values: (1..=n)
                    .map(|i| substitute(value, Some(i.to_string().as_bytes())))
                    .collect(),
                log: None,
            }
        }
        Cond::Env { negate } | Cond::Opt { negate } => {
            let (name, want) = split_eq(arg);
            let found = match cond {
                Cond::Env { .. } => world.getenv(name),
                _ => world.first_opt(name),
            };
            let matched = match (&found, want) {
                (None, _) => false,
                (Some(v), Some(w)) => v.as_slice() == w,
                (Some(_), None) => true,
            };
            gate(matched != negate, found.as_deref())
        }
        Cond::Exists { negate } => gate(readable(arg) != negate, Some(arg)),
        Cond::File { negate } => gate(stat(arg).is_some_and(|m| m.is_file()) != negate, Some(arg)),
        Cond::Dir { negate } => gate(stat(arg).is_some_and(|m| m.is_dir()) != negate, Some(arg)),
        Cond::Plugin { negate } => gate(world.plugin_loaded(arg) != negate, Some(arg)),
        Cond::Hostname { negate } => gate((world.hostname() == arg) != negate, Some(arg)),
        Cond::HostnameMatch { negate } => {
            // PCRE semantics: ASCII classes, bytes.
            let re = regex::bytes::RegexBuilder::new(&String::from_utf8_lossy(arg))
                .unicode(false)
                .build();
            let hit = re.as_ref().is_ok_and(|re| re.is_match(world.hostname()));
            let mut out = gate(hit != negate, Some(arg));
            if let Err(e) = re {
                out.log = Some(format!(
                    "invalid regular expression in if-hostname-match: {e}"
                ));
            }
            out
        }
        Cond::Reload { negate } => gate(world.is_reload() != negate, None),
    }
}

/// Lines as `fgets` with a 1024-byte buffer yields them: chunks of at most
/// 1023 bytes, the trailing newline removed.
fn readlines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    const CHUNK: usize = 1023;
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest
            .iter()
            .take(CHUNK)
            .position(|&b| b == b'\n')
            .map(|i| i + 1)
            .unwrap_or(CHUNK.min(rest.len()));
        let (line, tail) = rest.split_at(end);
        rest = tail;
        Some(chomp(line))
    })
}

/// uWSGI's `uwsgi_chomp`: strips trailing CR/LF.
fn chomp(mut s: &[u8]) -> &[u8] {
    while let [head @ .., b'\n' | b'\r'] = s {
        s = head;
    }
    s
}

/// The C library's message for an I/O error (without Rust's suffix).
pub fn strerror(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct W;
    impl World for W {
        fn getenv(&self, name: &[u8]) -> Option<Vec<u8>> {
            match name {
                b"SETVAR" => Some(b"hello".to_vec()),
                b"EMPTYVAR" => Some(vec![]),
                _ => None,
            }
        }
        fn first_opt(&self, key: &[u8]) -> Option<Vec<u8>> {
            match key {
                b"opt1" => Some(b"v1".to_vec()),
                b"dup" => Some(b"first".to_vec()),
                _ => None,
            }
        }
        fn plugin_loaded(&self, name: &[u8]) -> bool {
            name == b"python"
        }
        fn hostname(&self) -> &[u8] {
            b"web1"
        }
        fn is_reload(&self) -> bool {
            false
        }
    }

    fn eval(opener_name: &str, arg: &str, value: &str) -> Vec<String> {
        let cond = opener(opener_name.as_bytes()).unwrap();
        run(cond, arg.as_bytes(), Some(value.as_bytes()), &W)
            .values
            .into_iter()
            .map(|v| String::from_utf8(v.unwrap()).unwrap())
            .collect()
    }

    #[test]
    fn conditions_table() {
        let cases: &[(&str, &str, &[&str])] = &[
            ("if-env", "SETVAR", &["[hello]"]),
            ("if-env", "UNSETVAR", &[]),
            ("if-env", "SETVAR=hello", &["[hello]"]),
            ("if-env", "SETVAR=other", &[]),
            ("if-not-env", "UNSETVAR", &["[%(_)]"]),
            ("if-not-env", "SETVAR", &[]),
            ("if-not-env", "SETVAR=other", &["[hello]"]),
            ("if-not-env", "SETVAR=hello", &[]),
            ("if-env", "EMPTYVAR", &["[]"]),
            ("ifenv", "SETVAR", &["[hello]"]),
            ("if-opt", "opt1", &["[v1]"]),
            ("if-opt", "opt1=v1", &["[v1]"]),
            ("if-opt", "dup=second", &[]),
            ("if-not-opt", "nothere", &["[%(_)]"]),
            ("if-not-opt", "opt1", &[]),
            ("if-plugin", "python", &["[python]"]),
            ("if-not-plugin", "php", &["[php]"]),
            ("if-hostname", "web1", &["[web1]"]),
            ("if-not-hostname", "web1", &[]),
            ("if-hostname-match", "^web\\d$", &["[^web\\d$]"]),
            ("if-not-reload", "", &["[%(_)]"]),
            ("if-reload", "", &[]),
            ("if-exists", "/nonexistent/x", &[]),
            ("if-not-exists", "/nonexistent/x", &["[/nonexistent/x]"]),
            ("if-dir", "/", &["[/]"]),
            ("if-not-file", "/", &["[/]"]),
            ("for", "a  b\tc", &["[a]", "[b\tc]"]),
            ("for-times", "3", &["[1]", "[2]", "[3]"]),
            ("for-times", "junk", &[]),
        ];
        for (op, arg, want) in cases {
            assert_eq!(eval(op, arg, "[%(_)]"), *want, "case {op} = {arg}");
        }
    }

    #[test]
    fn readline_chunks() {
        let text = b"r1\nr2 with space\n\nr4";
        let lines: Vec<&[u8]> = readlines(text).collect();
        assert_eq!(lines, vec![&b"r1"[..], b"r2 with space", b"", b"r4"]);
        let long = vec![b'x'; 2000];
        assert_eq!(
            readlines(&long).map(<[u8]>::len).collect::<Vec<_>>(),
            vec![1023, 977]
        );
    }

    #[test]
    fn closers_and_unknown() {
        assert!(is_closer(b"endif") && is_closer(b"end") && !is_closer(b"endx"));
        assert!(opener(b"if-nope").is_none());
    }
}
