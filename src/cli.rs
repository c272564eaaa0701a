//! Command-line scanning with glibc `getopt_long` semantics, as uWSGI
//! parses its argv: long options with `=value` or a following word,
//! unambiguous prefixes, bundled short options, optional arguments only
//! attached, argv permutation (all options first, then the positional
//! words in order), `--` ending the options, and getopt's own messages.
//!
//! clap is not used here: uWSGI's command line depends on getopt's exact
//! behaviour (permutation, prefix matching against a table that grows while
//! scanning when `declare-option` runs, required values taken even when
//! they start with `-`, the error texts), which clap does not reproduce.

use crate::config::options::Arg;

/// The options known at this point of the scan, in table order.
pub trait OptionTable {
    /// Every long option name with its arity, in table order.
    fn long_options(&self) -> Vec<(&[u8], Arg)>;
    /// The first option carrying this short letter.
    fn short_option(&self, c: u8) -> Option<(&[u8], Arg)>;
}

/// One option found on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliOption {
    /// The full long name (abbreviations resolved).
    pub name: Vec<u8>,
    pub value: Option<Vec<u8>>,
    /// argv index of the option word.
    pub index: usize,
}

/// getopt's complaint; uWSGI then logs `getopt_long() error` and exits 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    pub message: String,
    pub index: usize,
}

/// An incremental scanner: the option table may change between calls.
#[derive(Debug)]
pub struct Scanner {
    argv: Vec<Vec<u8>>,
    prog: String,
    next: usize,
    /// Position inside a bundle of short options (`-MT`).
    bundle: Option<(usize, usize)>,
    positional: Vec<(usize, Vec<u8>)>,
    done: bool,
}

impl Scanner {
    pub fn new(argv: Vec<Vec<u8>>) -> Scanner {
        let prog = argv
            .first()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .unwrap_or_else(|| "uwsgi".into());
        Scanner {
            argv,
            prog,
            next: 1,
            bundle: None,
            positional: Vec::new(),
            done: false,
        }
    }

    /// Positional words (with their argv index), valid once `next_option`
    /// has returned `None`.
    pub fn positional(&self) -> &[(usize, Vec<u8>)] {
        &self.positional
    }

    fn err(&self, index: usize, message: String) -> CliError {
        CliError {
            message: format!("{}: {}", self.prog, message),
            index,
        }
    }

    /// The next option, in argv order, or `None` when only positional words
    /// are left.
    pub fn next_option(&mut self, table: &dyn OptionTable) -> Option<Result<CliOption, CliError>> {
        if let Some((idx, pos)) = self.bundle {
            return Some(self.short(table, idx, pos));
        }
        while !self.done && self.next < self.argv.len() {
            let idx = self.next;
            let word = &self.argv[idx];
            if word == b"--" {
                self.done = true;
                self.next += 1;
                let rest: Vec<(usize, Vec<u8>)> = (self.next..self.argv.len())
                    .map(|i| (i, self.argv[i].clone()))
                    .collect();
                self.positional.extend(rest);
                self.next = self.argv.len();
                return None;
            }
            if word.len() < 2 || word[0] != b'-' {
                self.positional.push((idx, word.clone()));
                self.next += 1;
                continue;
            }
            self.next += 1;
            if word.starts_with(b"--") {
                return Some(self.long(table, idx));
            }
            return Some(self.short(table, idx, 1));
        }
        None
    }

    fn long(&mut self, table: &dyn OptionTable, idx: usize) -> Result<CliOption, CliError> {
        let text = self.argv[idx][2..].to_vec();
        let (name, attached) = match text.iter().position(|&b| b == b'=') {
            Some(eq) => (&text[..eq], Some(text[eq + 1..].to_vec())),
            None => (&text[..], None),
        };
        let shown = String::from_utf8_lossy(&text).into_owned();
        let options = table.long_options();
        let found = match options.iter().find(|(n, _)| *n == name) {
            Some(exact) => *exact,
            None => {
                let prefixed: Vec<&(&[u8], Arg)> = options
                    .iter()
                    .filter(|(n, _)| n.starts_with(name))
                    .collect();
                match prefixed.as_slice() {
                    [] => return Err(self.err(idx, format!("unrecognized option '--{shown}'"))),
                    [one] => **one,
                    many => {
                        let list: Vec<String> = many
                            .iter()
                            .map(|(n, _)| format!(" '--{}'", String::from_utf8_lossy(n)))
                            .collect();
                        return Err(self.err(
                            idx,
                            format!(
                                "option '--{shown}' is ambiguous; possibilities:{}",
                                list.concat()
                            ),
                        ));
                    }
                }
            }
        };
        let (full, arg) = found;
        let full_name = String::from_utf8_lossy(full).into_owned();
        let value = match (arg, attached) {
            (Arg::None, Some(_)) => {
                return Err(self.err(
                    idx,
                    format!("option '--{full_name}' doesn't allow an argument"),
                ));
            }
            (Arg::None, None) | (Arg::Optional, None) => None,
            (_, Some(v)) => Some(v),
            (Arg::Required, None) => {
                if self.next < self.argv.len() {
                    let v = self.argv[self.next].clone();
                    self.next += 1;
                    Some(v)
                } else {
                    return Err(
                        self.err(idx, format!("option '--{full_name}' requires an argument"))
                    );
                }
            }
        };
        Ok(CliOption {
            name: full.to_vec(),
            value,
            index: idx,
        })
    }

    fn short(
        &mut self,
        table: &dyn OptionTable,
        idx: usize,
        pos: usize,
    ) -> Result<CliOption, CliError> {
        self.bundle = None;
        let word = self.argv[idx].clone();
        let c = word[pos];
        let rest = &word[pos + 1..];
        let Some((name, arg)) = table.short_option(c) else {
            return Err(self.err(idx, format!("invalid option -- '{}'", c as char)));
        };
        let name = name.to_vec();
        let value = match arg {
            Arg::None => {
                if !rest.is_empty() {
                    self.bundle = Some((idx, pos + 1));
                }
                None
            }
            Arg::Optional => (!rest.is_empty()).then(|| rest.to_vec()),
            Arg::Required => {
                if !rest.is_empty() {
                    Some(rest.to_vec())
                } else if self.next < self.argv.len() {
                    let v = self.argv[self.next].clone();
                    self.next += 1;
                    Some(v)
                } else {
                    return Err(self.err(
                        idx,
                        format!("option requires an argument -- '{}'", c as char),
                    ));
                }
            }
        };
        Ok(CliOption {
            name,
            value,
            index: idx,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct T;
    const TABLE: &[(&str, Option<u8>, Arg)] = &[
        ("socket", Some(b's'), Arg::Required),
        ("socket-protocol", None, Arg::Required),
        ("master", Some(b'M'), Arg::None),
        ("memory-report", Some(b'm'), Arg::None),
        ("abstract-socket", Some(b'a'), Arg::None),
        ("processes", Some(b'p'), Arg::Required),
        ("thunder-lock", None, Arg::None),
        ("chmod-socket", Some(b'C'), Arg::Optional),
        ("enable-threads", Some(b'T'), Arg::None),
    ];
    impl OptionTable for T {
        fn long_options(&self) -> Vec<(&[u8], Arg)> {
            TABLE.iter().map(|(n, _, a)| (n.as_bytes(), *a)).collect()
        }
        fn short_option(&self, c: u8) -> Option<(&[u8], Arg)> {
            TABLE
                .iter()
                .find(|(_, s, _)| *s == Some(c))
                .map(|(n, _, a)| (n.as_bytes(), *a))
        }
    }

    fn scan(args: &[&str]) -> (Vec<String>, Vec<String>, Option<String>) {
        let mut argv = vec![b"uwsgi".to_vec()];
        argv.extend(args.iter().map(|a| a.as_bytes().to_vec()));
        let mut s = Scanner::new(argv);
        let mut opts = Vec::new();
        while let Some(r) = s.next_option(&T) {
            match r {
                Ok(o) => opts.push(match o.value {
                    Some(v) => format!(
                        "{}={}",
                        String::from_utf8_lossy(&o.name),
                        String::from_utf8_lossy(&v)
                    ),
                    None => String::from_utf8_lossy(&o.name).into_owned(),
                }),
                Err(e) => return (opts, vec![], Some(e.message)),
            }
        }
        let pos = s
            .positional()
            .iter()
            .map(|(_, p)| String::from_utf8_lossy(p).into_owned())
            .collect();
        (opts, pos, None)
    }

    #[test]
    fn forms() {
        let cases: &[(&[&str], &[&str], &[&str], Option<&str>)] = &[
            (&["--socket", ":3031"], &["socket=:3031"], &[], None),
            (&["--socket=:3031"], &["socket=:3031"], &[], None),
            (&["--processes", "-1"], &["processes=-1"], &[], None),
            (&["--master"], &["master"], &[], None),
            (&["--master=false"], &[], &[], Some("uwsgi: option '--master' doesn't allow an argument")),
            (&["--chmod-socket", "666"], &["chmod-socket"], &["666"], None),
            (&["--chmod-socket=666"], &["chmod-socket=666"], &[], None),
            (&["-C", "666"], &["chmod-socket"], &["666"], None),
            (&["-C666"], &["chmod-socket=666"], &[], None),
            (&["--thund"], &["thunder-lock"], &[], None),
            (&["--sock", "1"], &[], &[], Some("uwsgi: option '--sock' is ambiguous; possibilities: '--socket' '--socket-protocol'")),
            (&["--socket"], &[], &[], Some("uwsgi: option '--socket' requires an argument")),
            (&["--foo-bar=1"], &[], &[], Some("uwsgi: unrecognized option '--foo-bar=1'")),
            (&["-Z"], &[], &[], Some("uwsgi: invalid option -- 'Z'")),
            (&["-p2", "-MT"], &["processes=2", "master", "enable-threads"], &[], None),
            (&["-master"], &["memory-report", "abstract-socket", "socket=ter"], &[], None),
            (&["a.ini", "--master", "b.ini"], &["master"], &["a.ini", "b.ini"], None),
            (&["--master", "--", "--socket", "x"], &["master"], &["--socket", "x"], None),
            (&["-"], &[], &["-"], None),
            (&["-s"], &[], &[], Some("uwsgi: option requires an argument -- 's'")),
        ];
        for (args, opts, pos, err) in cases {
            let (o, p, e) = scan(args);
            assert_eq!(o, *opts, "{args:?}");
            assert_eq!(e.as_deref(), *err, "{args:?}");
            if err.is_none() {
                assert_eq!(p, *pos, "{args:?}");
            }
        }
    }
}
