//! Text expansion: single-letter magic variables (`%d`, `%n`, ...)
//! substituted in a file's raw text as it is read, and the three deferred
//! passes over values, `$(ENV)`, `@(file)` and `%(name)`, which share one
//! scanner. The lookups themselves (environment, file reading, option list)
//! are supplied by the caller.

/// The 256-entry table of single-letter magic variables.
#[derive(Debug, Clone)]
pub struct MagicTable {
    vars: Vec<Vec<u8>>,
}

impl Default for MagicTable {
    fn default() -> Self {
        let mut vars = vec![Vec::new(); 256];
        vars[b'%' as usize] = b"%".to_vec();
        // `%(` must survive for the placeholder pass.
        vars[b'(' as usize] = b"%(".to_vec();
        MagicTable { vars }
    }
}

impl MagicTable {
    pub fn get(&self, c: u8) -> &[u8] {
        &self.vars[c as usize]
    }

    pub fn set(&mut self, c: u8, value: impl Into<Vec<u8>>) {
        self.vars[c as usize] = value.into();
    }
}

/// Text after magic substitution, with a map back to source lines.
#[derive(Debug, Default)]
pub struct Substituted {
    pub text: Vec<u8>,
    /// `line_of[i]` is the 1-based source line where output line `i + 1`
    /// begins (a `%` before a newline joins two source lines).
    pub line_of: Vec<usize>,
}

impl Substituted {
    /// Source line of a 1-based output line.
    pub fn source_line(&self, out_line: usize) -> usize {
        self.line_of
            .get(out_line.wrapping_sub(1))
            .copied()
            .unwrap_or(out_line)
    }
}

/// Replaces every `%X` in `text` by the table's value for `X`, in one
/// left-to-right pass without rescanning. A `%` as the very last byte
/// disappears (uWSGI pairs it with the terminating NUL).
pub fn magic_sub(text: &[u8], table: &MagicTable) -> Substituted {
    let mut out = Vec::with_capacity(text.len());
    let mut line_of = vec![1];
    let mut src_line = 1;
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        if b == b'%' {
            match text.get(i + 1) {
                Some(&c) => {
                    if c == b'\n' {
                        src_line += 1;
                    }
                    out.extend_from_slice(table.get(c));
                    i += 2;
                }
                None => i += 1,
            }
            continue;
        }
        out.push(b);
        if b == b'\n' {
            src_line += 1;
            line_of.push(src_line);
        }
        i += 1;
    }
    Substituted { text: out, line_of }
}

/// Why an expansion pass gave up on a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    #[error("{0}")]
    Hook(String),
    #[error("expansion of {symbol}(...) does not terminate (value grew past {limit} bytes)")]
    Runaway { symbol: char, limit: usize },
}

/// Largest value an expansion may build before we call it a loop
/// (uWSGI grows a self-referencing value until malloc fails).
pub const MAX_EXPANDED_LEN: usize = 8 << 20;

#[derive(Debug, Clone, Copy, Default)]
struct ScanState {
    /// 0: outside, 1: after the symbol, >= 2: inside, counting key bytes + 2.
    h: usize,
    depth: usize,
    key_start: usize,
}

enum Step {
    /// A reference the hook resolved: symbol at `start`, closing
    /// parenthesis at `end`; `before` is the scanner state before `start`.
    /// `before` is `None` when the reference began before this scan did.
    Found {
        start: usize,
        end: usize,
        before: Option<ScanState>,
        replacement: Vec<u8>,
    },
    Done,
}

type Hook<'h> = dyn FnMut(&[u8]) -> Result<Option<Vec<u8>>, String> + 'h;

fn scan(
    value: &[u8],
    from: usize,
    mut st: ScanState,
    symbol: u8,
    hook: &mut Hook<'_>,
) -> Result<Step, String> {
    let mut pre_symbol = st;
    for (j, &b) in value.iter().enumerate().skip(from) {
        if b == symbol {
            pre_symbol = st;
            st.h = 1;
        } else if b == b'(' && st.h == 1 {
            st = ScanState {
                h: 2,
                depth: 0,
                key_start: j + 1,
            };
        } else if st.h >= 2 {
            if b == b'(' {
                st.h += 1;
                st.depth += 1;
            } else if b == b')' {
                if st.depth > 0 {
                    st.h += 1;
                    st.depth -= 1;
                } else if st.h <= 2 {
                    st.h = 0;
                } else {
                    let key_end = st.key_start + (st.h - 2);
                    match hook(&value[st.key_start..key_end])? {
                        None => st.h = 0,
                        Some(replacement) => {
                            let start = st.key_start - 2;
                            let before = (start >= from).then_some(pre_symbol);
                            return Ok(Step::Found {
                                start,
                                end: j,
                                before,
                                replacement,
                            });
                        }
                    }
                }
            } else {
                st.h += 1;
            }
        } else {
            st.h = 0;
        }
    }
    Ok(Step::Done)
}

/// Expands every `S(key)` in `value` (S = `symbol`) through `hook`,
/// reproducing uWSGI's scanner exactly: nested parentheses belong to the
/// key, an empty key or a `None` from the hook leaves the text alone, and
/// after each substitution scanning resumes as if restarted at index 1 of
/// the new value (so a reference at index 0 of a result stays literal).
/// The hook also receives the value as it stands (for self references).
///
/// Resuming where the substitution happened, with the scanner state that a
/// restart from index 1 would have there, gives the same result without
/// rescanning the unchanged prefix: every reference in that prefix already
/// failed, and lookups do not change while one value is expanded.
pub fn expand(
    value: &mut Vec<u8>,
    symbol: u8,
    mut hook: impl FnMut(&[u8], &[u8]) -> Result<Option<Vec<u8>>, String>,
) -> Result<bool, ExpandError> {
    let mut changed = false;
    let mut from = 0;
    let mut state = ScanState::default();
    let mut first_scan = true;
    loop {
        let step = {
            let current: &[u8] = value;
            let mut h = |key: &[u8]| hook(key, current);
            scan(current, from, state, symbol, &mut h).map_err(ExpandError::Hook)?
        };
        let Step::Found {
            start,
            end,
            before,
            replacement,
        } = step
        else {
            return Ok(changed);
        };
        let resume_state = match before {
            Some(st) if !first_scan => st,
            // This scan started at index 0 while the next ones start at 1,
            // or the reference began in the prefix: recompute the state at
            // `start` as a scan from index 1 sees it.
            _ => dry_state(&value[..start], symbol),
        };
        first_scan = false;
        let new_len = value.len() - (end + 1 - start) + replacement.len();
        if new_len > MAX_EXPANDED_LEN {
            return Err(ExpandError::Runaway {
                symbol: symbol as char,
                limit: MAX_EXPANDED_LEN,
            });
        }
        value.splice(start..=end, replacement);
        changed = true;
        // A restart at index 1 never looks at index 0.
        if start == 0 {
            from = 1;
            state = ScanState::default();
        } else {
            from = start;
            state = resume_state;
        }
    }
}

/// Scanner state after reading `prefix[1..]` with every reference failing.
fn dry_state(prefix: &[u8], symbol: u8) -> ScanState {
    let mut st = ScanState::default();
    for (j, &b) in prefix.iter().enumerate().skip(1) {
        if b == symbol {
            st.h = 1;
        } else if b == b'(' && st.h == 1 {
            st = ScanState {
                h: 2,
                depth: 0,
                key_start: j + 1,
            };
        } else if st.h >= 2 {
            if b == b'(' {
                st.h += 1;
                st.depth += 1;
            } else if b == b')' {
                if st.depth > 0 {
                    st.h += 1;
                    st.depth -= 1;
                } else {
                    st.h = 0;
                }
            } else {
                st.h += 1;
            }
        } else {
            st.h = 0;
        }
    }
    st
}

/// C `strtoll(s, NULL, 10)`: leading whitespace, optional sign, digits,
/// saturating on overflow, 0 when there are no digits.
pub fn strtoll(s: &[u8]) -> i64 {
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        neg = s[i] == b'-';
        i += 1;
    }
    let mut acc: i128 = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        acc = (acc * 10 + i128::from(s[i] - b'0')).min(i128::from(i64::MAX) + 1);
        i += 1;
    }
    let v = if neg { -acc } else { acc };
    v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// C `atoi`: as `strtoll`, truncated to 32 bits.
pub fn atoi(s: &[u8]) -> i32 {
    strtoll(s) as i32
}

/// Evaluates the `%(a b + 1)` form: tokens split on spaces, digits are
/// literals, other words are option values, operators apply to the next
/// operand, adjacent operands concatenate. `None` when no operand was seen.
pub fn placeholder_math(
    key: &[u8],
    mut lookup: impl FnMut(&[u8]) -> Option<Vec<u8>>,
) -> Option<Vec<u8>> {
    #[derive(Clone, Copy)]
    enum Op {
        Concat,
        Add,
        Sub,
        Mul,
        Div,
    }
    let mut op = Op::Concat;
    let mut current: Option<Vec<u8>> = None;
    for tok in key.split(|&b| b == b' ').filter(|t| !t.is_empty()) {
        let operand = match tok {
            b"+" => {
                op = Op::Add;
                continue;
            }
            b"-" => {
                op = Op::Sub;
                continue;
            }
            b"*" => {
                op = Op::Mul;
                continue;
            }
            b"/" => {
                op = Op::Div;
                continue;
            }
            b"++" | b"--" => {
                if let Some(cur) = current.as_mut() {
                    let n = strtoll(cur);
                    let n = if tok == b"++" {
                        n.wrapping_add(1)
                    } else {
                        n.wrapping_sub(1)
                    };
                    *cur = n.to_string().into_bytes();
                }
                op = Op::Concat;
                continue;
            }
            t if t.iter().all(u8::is_ascii_digit) => t.to_vec(),
            t => lookup(t).unwrap_or_default(),
        };
        let a = current.as_deref().map(strtoll).unwrap_or(0);
        let b = strtoll(&operand);
        current = Some(match op {
            Op::Concat => {
                let mut c = current.take().unwrap_or_default();
                c.extend_from_slice(&operand);
                c
            }
            Op::Add => a.wrapping_add(b).to_string().into_bytes(),
            Op::Sub => a.wrapping_sub(b).to_string().into_bytes(),
            Op::Mul => a.wrapping_mul(b).to_string().into_bytes(),
            Op::Div if b == 0 => b"0".to_vec(),
            Op::Div => a.wrapping_div(b).to_string().into_bytes(),
        });
        op = Op::Concat;
    }
    current
}

/// uWSGI's `%j`: the djb33x hash of the path, its four bytes in
/// little-endian memory order as uppercase hex.
pub fn djb33x_hex(path: &[u8]) -> String {
    let mut h: u32 = 5381;
    for &b in path {
        // C `char` is signed on x86: bytes >= 0x80 are sign-extended.
        let sx = b as i8 as i32 as u32;
        h = h.wrapping_mul(33) ^ sx;
    }
    h.to_le_bytes().iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn table() -> MagicTable {
        let mut t = MagicTable::default();
        t.set(b'n', "app");
        t.set(b'd', "/srv/app/");
        t
    }

    #[test]
    fn magic_cases() {
        let cases: &[(&str, &str, &str)] = &[
            ("plain", "a = %n", "a = app"),
            ("dir", "i = %dx.ini", "i = /srv/app/x.ini"),
            ("percent", "c = 100%%", "c = 100%"),
            ("escaped var", "d = %%d", "d = %d"),
            ("unknown vanishes", "u = [%q]", "u = []"),
            ("space vanishes", "b = 50% off", "b = 50off"),
            ("joins lines", "a = foo%\nbar = 1\n", "a = foobar = 1\n"),
            ("trailing percent", "last = 100%", "last = 100"),
            ("paren kept", "p = %(x)", "p = %(x)"),
            ("no rescan", "r = %%%n", "r = %app"),
        ];
        for (name, input, want) in cases {
            let got = magic_sub(input.as_bytes(), &table());
            assert_eq!(String::from_utf8_lossy(&got.text), *want, "case {name}");
        }
    }

    #[test]
    fn magic_line_map() {
        let s = magic_sub(b"a%\nb\nc\n", &table());
        assert_eq!(s.text, b"ab\nc\n");
        assert_eq!(s.source_line(1), 1);
        assert_eq!(s.source_line(2), 3);
    }

    fn expand_with(value: &str, symbol: u8, vars: &HashMap<&str, &str>) -> String {
        let mut v = value.as_bytes().to_vec();
        expand(&mut v, symbol, |k, _| {
            Ok(vars
                .get(std::str::from_utf8(k).unwrap())
                .map(|s| s.as_bytes().to_vec()))
        })
        .unwrap();
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn scanner_cases() {
        let vars: HashMap<&str, &str> = [
            ("c", "/root"),
            ("b", "%(c)/b"),
            ("a(b)", "nested"),
            ("e", ""),
        ]
        .into_iter()
        .collect();
        let cases: &[(&str, &str, &str)] = &[
            ("simple", "%(c)", "/root"),
            ("twice", "%(c)%(c)", "/root/root"),
            ("unterminated", "%(c", "%(c"),
            ("after paren", "%(c)(x)", "/root(x)"),
            ("empty key", "%()", "%()"),
            ("unknown", "[%(nope)]", "[%(nope)]"),
            ("nested parens in key", "%(a(b))", "nested"),
            ("rescanned not at 0", "x%(b)", "x/root/b"),
            ("not rescanned at 0", "%(b)", "%(c)/b"),
            ("empty value", "[%(e)]", "[]"),
            ("dollar ignored", "$(c)", "$(c)"),
            ("restart on symbol", "%(x%(c)", "%(x/root"),
            ("unterminated then joined", "%(ab%(c)", "%(ab/root"),
        ];
        for (name, input, want) in cases {
            assert_eq!(expand_with(input, b'%', &vars), *want, "case {name}");
        }
    }

    #[test]
    fn scanner_matches_naive_restart() {
        // Our resume-in-place must agree with uWSGI's literal restart at 1.
        fn naive(value: &str, vars: &HashMap<&str, &str>) -> String {
            let mut v: Vec<u8> = value.as_bytes().to_vec();
            let mut j = 0usize;
            let (mut h, mut depth, mut ks) = (0usize, 0usize, 0usize);
            while j < v.len() {
                let b = v[j];
                if b == b'%' {
                    h = 1;
                } else if b == b'(' && h == 1 {
                    h = 2;
                    depth = 0;
                    ks = j + 1;
                } else if h > 1 {
                    if b == b'(' {
                        h += 1;
                        depth += 1;
                    } else if b == b')' {
                        if depth > 0 {
                            h += 1;
                            depth -= 1;
                            j += 1;
                            continue;
                        }
                        if h <= 2 {
                            h = 0;
                            j += 1;
                            continue;
                        }
                        let key = std::str::from_utf8(&v[ks..ks + h - 2]).unwrap().to_string();
                        match vars.get(key.as_str()) {
                            None => h = 0,
                            Some(r) => {
                                let mut n = v[..ks - 2].to_vec();
                                n.extend_from_slice(r.as_bytes());
                                n.extend_from_slice(&v[ks + h - 1..]);
                                v = n;
                                h = 0;
                                j = 0;
                            }
                        }
                    } else {
                        h += 1;
                    }
                } else {
                    h = 0;
                }
                j += 1;
            }
            String::from_utf8(v).unwrap()
        }
        let vars: HashMap<&str, &str> = [
            ("a", "(x)"),
            ("b", "%"),
            ("c", "c)"),
            ("d", "%(a)"),
            ("p", "%("),
        ]
        .into_iter()
        .collect();
        let alphabet = ["%(", "a", "b", ")", "(", "%", "c", "d", "p", "x"];
        let mut seed: u64 = 0x9E3779B97F4A7C15;
        for _ in 0..20000 {
            let mut s = String::new();
            for _ in 0..(seed % 12) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                s.push_str(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            seed = seed.wrapping_add(0x9E3779B97F4A7C15);
            assert_eq!(
                expand_with(&s, b'%', &vars),
                naive(&s, &vars),
                "input {s:?}"
            );
        }
    }

    #[test]
    fn runaway_is_an_error() {
        let mut v = b"[%(x)]".to_vec();
        let err = expand(&mut v, b'%', |_, cur| Ok(Some(cur.to_vec()))).unwrap_err();
        assert!(matches!(err, ExpandError::Runaway { .. }));
    }

    #[test]
    fn math_table() {
        let vars: HashMap<&str, &str> = [
            ("num", "10"),
            ("x1", "foo"),
            ("x2", "bar"),
            ("dup", "first"),
            ("c", "/root"),
        ]
        .into_iter()
        .collect();
        let look = |k: &[u8]| {
            vars.get(std::str::from_utf8(k).unwrap())
                .map(|s| s.as_bytes().to_vec())
        };
        let cases: &[(&str, Option<&str>)] = &[
            ("num + 5", Some("15")),
            ("num * 3 - 4 / 2", Some("13")),
            ("num / 0", Some("0")),
            ("num ++", Some("11")),
            ("num --", Some("9")),
            ("num - 20", Some("-10")),
            ("num + abc", Some("10")),
            ("num + -3", Some("10")),
            ("num +5", Some("10")),
            ("num * num *", Some("100")),
            ("2 3 + 1", Some("24")),
            ("007 num", Some("00710")),
            ("x1 x2", Some("foobar")),
            ("dup dup", Some("firstfirst")),
            (" c ", Some("/root")),
            ("+", None),
        ];
        for (key, want) in cases {
            let got = placeholder_math(key.as_bytes(), look).map(|v| String::from_utf8(v).unwrap());
            assert_eq!(got.as_deref(), *want, "case {key}");
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(atoi(b"3abc"), 3);
        assert_eq!(atoi(b"+2"), 2);
        assert_eq!(atoi(b"0x40"), 0);
        assert_eq!(atoi(b" -7"), -7);
        assert_eq!(atoi(b""), 0);
        assert_eq!(strtoll(b"99999999999999999999"), i64::MAX);
    }

    #[test]
    fn djb33x() {
        assert_eq!(
            djb33x_hex(b"/tmp/example/apps/blog/site.prod.ini"),
            "B3F211F8"
        );
    }
}
