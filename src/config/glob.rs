//! A small `glob(3)` with `GLOB_MARK | GLOB_NOCHECK` semantics, as uWSGI
//! uses it for `for-glob` and glob emperors: `*`, `?`, `[...]` and `\`
//! escapes per path component, hidden names only matched by an explicit
//! leading dot, results in byte order, directories marked with `/`, and
//! the pattern itself when nothing matches.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Upper bound on matches, so a hostile pattern cannot exhaust memory.
pub const MAX_MATCHES: usize = 100_000;

fn has_magic(s: &[u8]) -> bool {
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'\\' => i += 1,
            b'*' | b'?' | b'[' => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

fn unescape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\' && i + 1 < s.len() {
            i += 1;
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// `fnmatch(3)` without flags except the leading-period rule.
pub fn fnmatch(pat: &[u8], name: &[u8]) -> bool {
    if name.first() == Some(&b'.') && pat.first() != Some(&b'.') {
        return false;
    }
    matches(pat, name)
}

fn matches(pat: &[u8], name: &[u8]) -> bool {
    // Iterative matcher with single-star backtracking: linear-ish time.
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pat.len() {
            match pat[p] {
                b'*' => {
                    star = Some((p, n));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    n += 1;
                    continue;
                }
                b'[' => {
                    if let Some((ok, next)) = class(&pat[p..], name[n]) {
                        if ok {
                            p += next;
                            n += 1;
                            continue;
                        }
                    } else if name[n] == b'[' {
                        p += 1;
                        n += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pat.len() => {
                    if pat[p + 1] == name[n] {
                        p += 2;
                        n += 1;
                        continue;
                    }
                }
                c => {
                    if c == name[n] {
                        p += 1;
                        n += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, sn)) => {
                p = sp + 1;
                n = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

/// Matches a bracket expression at the start of `pat`; returns whether `c`
/// matched and the expression's length, or `None` if it is unterminated.
fn class(pat: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(pat.get(i), Some(b'!') | Some(b'^'));
    if negate {
        i += 1;
    }
    let mut ok = false;
    let mut first = true;
    loop {
        let lo = *pat.get(i)?;
        if lo == b']' && !first {
            return Some((ok != negate, i + 1));
        }
        first = false;
        if pat.get(i + 1) == Some(&b'-') && pat.get(i + 2).is_some_and(|&h| h != b']') {
            let hi = pat[i + 2];
            ok |= lo <= c && c <= hi;
            i += 3;
        } else {
            ok |= lo == c;
            i += 1;
        }
    }
}

fn is_dir(p: &[u8]) -> bool {
    Path::new(OsStr::from_bytes(p)).is_dir()
}

/// Expands `pattern`; never fails (unreadable directories just match
/// nothing), returns the pattern itself when nothing matches.
pub fn glob(pattern: &[u8]) -> Vec<Vec<u8>> {
    let mut out = expand(pattern);
    if out.is_empty() {
        return vec![pattern.to_vec()];
    }
    out.sort();
    for p in &mut out {
        if is_dir(p) && p.last() != Some(&b'/') {
            p.push(b'/');
        }
    }
    out
}

fn expand(pattern: &[u8]) -> Vec<Vec<u8>> {
    if !has_magic(pattern) {
        let plain = unescape(pattern);
        return if std::fs::symlink_metadata(OsStr::from_bytes(&plain)).is_ok() {
            vec![plain]
        } else {
            vec![]
        };
    }
    let absolute = pattern.first() == Some(&b'/');
    let mut bases: Vec<Vec<u8>> = vec![if absolute { b"/".to_vec() } else { Vec::new() }];
    let comps: Vec<&[u8]> = pattern
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .collect();
    for (idx, comp) in comps.iter().enumerate() {
        let last = idx + 1 == comps.len();
        let mut next = Vec::new();
        for base in &bases {
            let join = |name: &[u8]| {
                let mut p = base.clone();
                if !p.is_empty() && p.last() != Some(&b'/') {
                    p.push(b'/');
                }
                p.extend_from_slice(name);
                p
            };
            if !has_magic(comp) {
                let p = join(&unescape(comp));
                let exists = std::fs::symlink_metadata(OsStr::from_bytes(&p)).is_ok();
                if exists && (last || is_dir(&p)) {
                    next.push(p);
                }
                continue;
            }
            let dir = if base.is_empty() {
                b".".to_vec()
            } else {
                base.clone()
            };
            let Ok(rd) = std::fs::read_dir(OsStr::from_bytes(&dir)) else {
                continue;
            };
            for entry in rd.flatten() {
                let name = entry.file_name();
                let name = name.as_bytes();
                if fnmatch(comp, name) {
                    let p = join(name);
                    if last || is_dir(&p) {
                        next.push(p);
                    }
                    if next.len() >= MAX_MATCHES {
                        break;
                    }
                }
            }
        }
        bases = next;
        if bases.is_empty() {
            break;
        }
    }
    if pattern.ends_with(b"/") {
        bases.retain(|p| is_dir(p));
    }
    bases
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("*.ini", "a.ini", true),
            ("*.ini", "a.ini.bak", false),
            ("*.ini", ".hidden.ini", false),
            (".*.ini", ".hidden.ini", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("[ab]x", "bx", true),
            ("[!ab]x", "bx", false),
            ("[a-c]x", "cx", true),
            ("[]]x", "]x", true),
            ("a\\*", "a*", true),
            ("a\\*", "ab", false),
            ("*a*b*c*", "xaybzc", true),
            ("[unterminated", "[unterminated", true),
        ];
        for (pat, name, want) in cases {
            assert_eq!(
                fnmatch(pat.as_bytes(), name.as_bytes()),
                *want,
                "{pat} vs {name}"
            );
        }
    }

    #[test]
    fn glob_dir() {
        let dir = std::env::temp_dir().join(format!("ruwsgi-glob-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub.conf")).unwrap();
        std::fs::write(dir.join("b.conf"), "").unwrap();
        std::fs::write(dir.join("a.conf"), "").unwrap();
        std::fs::write(dir.join(".h.conf"), "").unwrap();
        let base = dir.to_str().unwrap();
        let got = glob(format!("{base}/*.conf").as_bytes());
        let want: Vec<Vec<u8>> = ["a.conf", "b.conf", "sub.conf/"]
            .iter()
            .map(|n| format!("{base}/{n}").into_bytes())
            .collect();
        assert_eq!(got, want);
        let none = format!("{base}/*.nomatch");
        assert_eq!(glob(none.as_bytes()), vec![none.into_bytes()]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
