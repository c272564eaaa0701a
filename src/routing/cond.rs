//! `route-if` / `route-if-not` conditions (spec §5.7): one table of names,
//! parsed once, evaluated on substituted operands. Binary conditions take
//! `A;B` split at the first `;`; without one they are false (so the
//! `-not` form fires). The `regexp` pattern is compiled at start (uWSGI
//! compiled it per request and did not substitute it either).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use regex::bytes::Regex;

use super::pcre::{self, PatternError};
use super::subst::{self, Source};

/// What a condition tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CondKind {
    Equal,
    StartsWith,
    EndsWith,
    Contains,
    Regexp,
    Empty,
    Higher,
    HigherEqual,
    Lower,
    LowerEqual,
    Exists,
    IsFile,
    IsDir,
    IsLink,
    IsExec,
    Ipv4In,
    Ipv6In,
}

/// Names of uWSGI 2.0.21's conditions, aliases included.
const NAMES: &[(&str, CondKind)] = &[
    ("equal", CondKind::Equal),
    ("isequal", CondKind::Equal),
    ("eq", CondKind::Equal),
    ("==", CondKind::Equal),
    ("startswith", CondKind::StartsWith),
    ("endswith", CondKind::EndsWith),
    ("contains", CondKind::Contains),
    ("contain", CondKind::Contains),
    ("regexp", CondKind::Regexp),
    ("re", CondKind::Regexp),
    ("empty", CondKind::Empty),
    ("ishigher", CondKind::Higher),
    (">", CondKind::Higher),
    ("ishigherequal", CondKind::HigherEqual),
    (">=", CondKind::HigherEqual),
    ("islower", CondKind::Lower),
    ("<", CondKind::Lower),
    ("islowerequal", CondKind::LowerEqual),
    ("<=", CondKind::LowerEqual),
    ("exists", CondKind::Exists),
    ("isfile", CondKind::IsFile),
    ("isdir", CondKind::IsDir),
    ("islink", CondKind::IsLink),
    ("isexec", CondKind::IsExec),
    ("ipv4in", CondKind::Ipv4In),
    ("ipv6in", CondKind::Ipv6In),
];

impl CondKind {
    pub fn from_name(name: &[u8]) -> Option<CondKind> {
        NAMES
            .iter()
            .find(|(n, _)| n.as_bytes() == name)
            .map(|(_, k)| *k)
    }

    fn is_binary(self) -> bool {
        !matches!(
            self,
            CondKind::Empty
                | CondKind::Exists
                | CondKind::IsFile
                | CondKind::IsDir
                | CondKind::IsLink
                | CondKind::IsExec
        )
    }
}

/// A parsed condition.
#[derive(Debug, Clone)]
pub struct Condition {
    pub kind: CondKind,
    /// The operand text (`A` or `A;B`), with its templates.
    pub args: Vec<u8>,
    /// The `regexp` pattern (the text after `;`), compiled.
    regex: Option<Regex>,
}

/// The result of evaluating a condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CondResult {
    False,
    True,
    /// True, with the groups of a `regexp` match on `subject`.
    Matched {
        subject: Vec<u8>,
        groups: Vec<Option<Range<usize>>>,
    },
    /// The condition failed internally (uWSGI then ends the request).
    Error,
}

impl Condition {
    /// `kind` with its operand text.
    pub fn new(kind: CondKind, args: &[u8]) -> Result<Condition, PatternError> {
        let regex = match (kind, split(args)) {
            (CondKind::Regexp, Some((_, pattern))) => Some(pcre::compile(pattern)?),
            _ => None,
        };
        Ok(Condition {
            kind,
            args: args.to_vec(),
            regex,
        })
    }

    pub fn eval(&self, src: &dyn Source) -> CondResult {
        let sub = |t: &[u8]| subst::translate(t, None, src);
        if !self.kind.is_binary() {
            let a = sub(&self.args);
            return bool_result(match self.kind {
                CondKind::Empty => a.is_empty(),
                _ => file_test(self.kind, &a),
            });
        }
        let Some((a, b)) = split(&self.args) else {
            return CondResult::False;
        };
        let a = sub(a);
        if self.kind == CondKind::Regexp {
            let Some(re) = &self.regex else {
                return CondResult::False;
            };
            return match re.captures(&a) {
                Some(caps) => CondResult::Matched {
                    groups: caps.iter().map(|m| m.map(|m| m.range())).collect(),
                    subject: a,
                },
                None => CondResult::False,
            };
        }
        let b = sub(b);
        match self.kind {
            CondKind::Equal => bool_result(a == b),
            CondKind::StartsWith => bool_result(a.starts_with(&b)),
            CondKind::EndsWith => bool_result(a.ends_with(&b)),
            CondKind::Contains => bool_result(contains(&a, &b)),
            CondKind::Higher => bool_result(strtol(&a) > strtol(&b)),
            CondKind::HigherEqual => bool_result(strtol(&a) >= strtol(&b)),
            CondKind::Lower => bool_result(strtol(&a) < strtol(&b)),
            CondKind::LowerEqual => bool_result(strtol(&a) <= strtol(&b)),
            CondKind::Ipv4In => ipv4_in(&a, &b),
            CondKind::Ipv6In => ipv6_in(&a, &b),
            _ => CondResult::False,
        }
    }
}

fn bool_result(b: bool) -> CondResult {
    if b {
        CondResult::True
    } else {
        CondResult::False
    }
}

fn split(args: &[u8]) -> Option<(&[u8], &[u8])> {
    let semi = args.iter().position(|&b| b == b';')?;
    Some((&args[..semi], &args[semi + 1..]))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// C `strtol(s, NULL, 10)`, saturating.
fn strtol(s: &[u8]) -> i64 {
    super::action::atoi(s)
}

fn file_test(kind: CondKind, path: &[u8]) -> bool {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    let path = std::path::Path::new(std::ffi::OsStr::from_bytes(path));
    match kind {
        CondKind::Exists => path.exists(),
        CondKind::IsFile => path.is_file(),
        CondKind::IsDir => path.is_dir(),
        CondKind::IsLink => path
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink()),
        // Any execute bit (uWSGI asks access(X_OK) for its own user).
        CondKind::IsExec => path
            .metadata()
            .is_ok_and(|m| m.permissions().mode() & 0o111 != 0),
        _ => false,
    }
}

/// `ADDR;NET[/PREFIX]`; over-long operands are an error (uWSGI ends the
/// request), unparsable ones false.
fn ipv4_in(addr: &[u8], net: &[u8]) -> CondResult {
    const MAX_ADDR: usize = "255.255.255.255".len();
    if addr.len() > MAX_ADDR || net.len() >= "255.255.255.255/32".len() {
        return CondResult::Error;
    }
    let (net, prefix) = prefix_of(net, 32);
    let parse = |b: &[u8]| std::str::from_utf8(b).ok()?.parse::<Ipv4Addr>().ok();
    let (Some(ip), Some(net), Some(prefix)) = (parse(addr), parse(net), prefix) else {
        return CondResult::False;
    };
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    bool_result(u32::from(ip) & mask == u32::from(net) & mask)
}

fn ipv6_in(addr: &[u8], net: &[u8]) -> CondResult {
    const MAX_ADDR: usize = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".len();
    if addr.len() > MAX_ADDR || net.len() >= MAX_ADDR + 4 {
        return CondResult::Error;
    }
    let (net, prefix) = prefix_of(net, 128);
    let parse = |b: &[u8]| std::str::from_utf8(b).ok()?.parse::<Ipv6Addr>().ok();
    let (Some(ip), Some(net), Some(prefix)) = (parse(addr), parse(net), prefix) else {
        return CondResult::False;
    };
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    bool_result(u128::from(ip) & mask == u128::from(net) & mask)
}

/// `net/prefix` → (net, prefix in 0..=max); `None` prefix when out of range.
fn prefix_of(net: &[u8], max: u32) -> (&[u8], Option<u32>) {
    match net.iter().position(|&b| b == b'/') {
        Some(slash) => {
            let p = super::action::atoi(&net[slash + 1..]);
            let prefix = u32::try_from(p).ok().filter(|&p| p <= max);
            (&net[..slash], prefix)
        }
        None => (net, Some(max)),
    }
}

#[cfg(test)]
#[path = "cond_tests.rs"]
mod tests;
