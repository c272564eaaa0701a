//! uWSGI's PCRE patterns on the `regex` crate.
//!
//! uWSGI compiles rule patterns with PCRE1 and no options: Perl syntax,
//! case-sensitive, unanchored, no UTF-8 mode (a pattern and a subject are
//! bytes). [`translate`] rewrites such a pattern into the `regex` crate's
//! syntax with Unicode off (`(?-u)`), so `\w \d \s \b` and `(?i)` are ASCII
//! as in PCRE and `.` matches any byte but `\n`; non-ASCII pattern bytes
//! become `\xHH` escapes that match those bytes. What the `regex` crate
//! cannot do (it is linear-time by design, so a hostile subject cannot make
//! matching slow) is refused with a reason: backreferences, lookaround,
//! atomic groups, possessive quantifiers, recursion, conditionals,
//! callouts and verbs.
//!
//! Approximations, documented rather than hidden: PCRE's `$` (and `\Z`)
//! also match before a final `\n` of the subject; here they match only at
//! its end. Subjects are request variables, which the HTTP parser never
//! lets contain a line feed.

use regex::bytes::{Regex, RegexBuilder};

/// Compiled-size ceiling of one pattern (the `regex` default is 10 MiB;
/// routing patterns are small, a larger one is a mistake).
const SIZE_LIMIT: usize = 4 * 1024 * 1024;

/// Why a pattern is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// A PCRE feature the linear-time engine does not have.
    #[error("unsupported regex construct ({0}) at offset {1}")]
    Unsupported(&'static str, usize),
    /// The translated pattern does not compile (bad syntax).
    #[error("pcre error: {0}")]
    Syntax(String),
}

/// Compiles a PCRE pattern (see the module doc).
pub fn compile(pattern: &[u8]) -> Result<Regex, PatternError> {
    let translated = translate(pattern)?;
    RegexBuilder::new(&translated)
        .size_limit(SIZE_LIMIT)
        .build()
        .map_err(|e| PatternError::Syntax(first_line_of_error(&e)))
}

/// The `regex` error message without its multi-line pattern excerpt.
fn first_line_of_error(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .rev()
        .find(|l| l.starts_with("error:"))
        .map(|l| l.trim_start_matches("error:").trim().to_string())
        .unwrap_or(text)
}

/// Rewrites a PCRE pattern into `regex` syntax (Unicode off).
pub fn translate(pattern: &[u8]) -> Result<String, PatternError> {
    let mut t = Translator {
        p: pattern,
        i: 0,
        out: String::with_capacity(pattern.len() + 8),
    };
    t.out.push_str("(?-u)");
    t.run()?;
    Ok(t.out)
}

struct Translator<'a> {
    p: &'a [u8],
    i: usize,
    out: String,
}

impl Translator<'_> {
    fn peek(&self, ahead: usize) -> Option<u8> {
        self.p.get(self.i + ahead).copied()
    }

    fn rest_starts_with(&self, s: &[u8]) -> bool {
        self.p[self.i..].starts_with(s)
    }

    fn refuse<T>(&self, what: &'static str) -> Result<T, PatternError> {
        Err(PatternError::Unsupported(what, self.i))
    }

    fn push_byte(&mut self, b: u8) {
        if b.is_ascii_alphanumeric() || b == b' ' {
            self.out.push(char::from(b));
        } else {
            self.out.push_str(&format!("\\x{b:02X}"));
        }
    }

    fn run(&mut self) -> Result<(), PatternError> {
        while let Some(c) = self.peek(0) {
            match c {
                b'\\' => self.escape(false)?,
                b'[' => self.class()?,
                b'(' => self.group()?,
                b'{' => self.brace()?,
                b'}' => {
                    self.out.push_str("\\}");
                    self.i += 1;
                }
                b'*' | b'+' | b'?' => {
                    self.out.push(char::from(c));
                    self.i += 1;
                    self.after_quantifier()?;
                }
                0x80..=0xff => {
                    self.push_byte(c);
                    self.i += 1;
                }
                _ => {
                    self.out.push(char::from(c));
                    self.i += 1;
                }
            }
        }
        Ok(())
    }

    /// After a quantifier: `?` (lazy) passes, `+` (possessive) is refused.
    fn after_quantifier(&mut self) -> Result<(), PatternError> {
        match self.peek(0) {
            Some(b'+') => self.refuse("possessive quantifier"),
            Some(b'?') => {
                self.out.push('?');
                self.i += 1;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// `{n}`, `{n,}`, `{n,m}` are quantifiers; any other `{` is a literal.
    fn brace(&mut self) -> Result<(), PatternError> {
        let rest = &self.p[self.i + 1..];
        let close = rest.iter().position(|&b| b == b'}');
        let body = close.map(|c| &rest[..c]);
        let is_quantifier = body.is_some_and(|b| {
            let mut parts = b.splitn(2, |&x| x == b',');
            let low = parts.next().unwrap_or_default();
            let high = parts.next();
            !low.is_empty()
                && low.iter().all(u8::is_ascii_digit)
                && high.is_none_or(|h| h.iter().all(u8::is_ascii_digit))
        });
        match (is_quantifier, body) {
            (true, Some(body)) => {
                self.out.push('{');
                self.out.push_str(&String::from_utf8_lossy(body));
                self.out.push('}');
                self.i += body.len() + 2;
                self.after_quantifier()
            }
            _ => {
                self.out.push_str("\\{");
                self.i += 1;
                Ok(())
            }
        }
    }

    fn group(&mut self) -> Result<(), PatternError> {
        if self.rest_starts_with(b"(*") {
            return self.refuse("backtracking control verb");
        }
        if !self.rest_starts_with(b"(?") {
            self.out.push('(');
            self.i += 1;
            return Ok(());
        }
        let next = self.peek(2);
        let next2 = self.peek(3);
        match (next, next2) {
            (Some(b'#'), _) => {
                // A comment: dropped (the regex crate has no `(?#`).
                let end = self.p[self.i..].iter().position(|&b| b == b')');
                self.i = end.map_or(self.p.len(), |e| self.i + e + 1);
                Ok(())
            }
            (Some(b'=' | b'!'), _) | (Some(b'<'), Some(b'=' | b'!')) => self.refuse("lookaround"),
            (Some(b'>'), _) => self.refuse("atomic group"),
            (Some(b'|'), _) => self.refuse("branch reset group"),
            (Some(b'('), _) => self.refuse("conditional group"),
            (Some(b'C'), _) => self.refuse("callout"),
            (Some(b'R' | b'&' | b'+' | b'0'..=b'9'), _) => {
                self.refuse("recursion or subroutine call")
            }
            (Some(b'-'), Some(b'0'..=b'9')) => self.refuse("recursion or subroutine call"),
            (Some(b'P'), Some(b'=')) => self.refuse("backreference"),
            (Some(b'P'), Some(b'>')) => self.refuse("recursion or subroutine call"),
            (Some(b'\''), _) => {
                // (?'name'...) → (?P<name>...)
                let rest = &self.p[self.i + 3..];
                let Some(end) = rest.iter().position(|&b| b == b'\'') else {
                    return Err(PatternError::Syntax("unterminated group name".into()));
                };
                self.out.push_str("(?P<");
                self.out.push_str(&String::from_utf8_lossy(&rest[..end]));
                self.out.push('>');
                self.i += 3 + end + 1;
                Ok(())
            }
            _ => {
                self.out.push_str("(?");
                self.i += 2;
                Ok(())
            }
        }
    }

    /// A backslash escape, outside (`in_class` false) or inside a class.
    fn escape(&mut self, in_class: bool) -> Result<(), PatternError> {
        let Some(c) = self.peek(1) else {
            return Err(PatternError::Syntax("\\ at end of pattern".into()));
        };
        self.i += 2;
        match c {
            b'1'..=b'9' if !in_class => {
                // PCRE: a number below 10 (or up to the groups opened so
                // far) is a backreference; a longer one reads as octal.
                let digits = self.p[self.i - 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                if digits < 2 || !(b'0'..=b'7').contains(&c) {
                    self.i -= 2;
                    return self.refuse("backreference");
                }
                self.octal(c)
            }
            b'g' | b'k' if !in_class => {
                self.i -= 2;
                self.refuse("backreference")
            }
            b'G' | b'K' | b'X' if !in_class => {
                self.i -= 2;
                self.refuse("unsupported escape")
            }
            b'0'..=b'7' => self.octal(c),
            b'x' => self.hex_escape(),
            b'e' => {
                self.out.push_str("\\x1B");
                Ok(())
            }
            b'c' => {
                let Some(ctl) = self.peek(0) else {
                    return Err(PatternError::Syntax("\\c at end of pattern".into()));
                };
                self.i += 1;
                self.out
                    .push_str(&format!("\\x{:02X}", ctl.to_ascii_uppercase() ^ 0x40));
                Ok(())
            }
            b'Z' if !in_class => {
                self.out.push_str("\\z");
                Ok(())
            }
            b'h' => {
                self.out.push_str(if in_class { "\\t " } else { "[\\t ]" });
                Ok(())
            }
            b'R' if !in_class => {
                self.out.push_str("(?:\\r\\n|[\\n\\x0B\\x0C\\r\\x85])");
                Ok(())
            }
            b'C' if !in_class => {
                self.out.push_str("(?s:.)");
                Ok(())
            }
            b'Q' => self.quoted(in_class),
            b'E' => Ok(()),
            _ if c.is_ascii_alphanumeric() => {
                self.out.push('\\');
                self.out.push(char::from(c));
                Ok(())
            }
            _ => {
                self.out.push_str(&format!("\\x{c:02X}"));
                Ok(())
            }
        }
    }

    /// Octal after `\`: up to three digits in all (`\0`, `\012`, `\101`).
    fn octal(&mut self, first: u8) -> Result<(), PatternError> {
        let mut value = u32::from(first - b'0');
        let mut digits = 1;
        while digits < 3 {
            match self.peek(0) {
                Some(d @ b'0'..=b'7') => {
                    value = value * 8 + u32::from(d - b'0');
                    self.i += 1;
                    digits += 1;
                }
                _ => break,
            }
        }
        let byte = u8::try_from(value).unwrap_or(0xff);
        self.out.push_str(&format!("\\x{byte:02X}"));
        Ok(())
    }

    /// `\xHH`, `\xH`, `\x` and `\x{HH}`; PCRE without UTF-8 caps at 0xFF.
    fn hex_escape(&mut self) -> Result<(), PatternError> {
        let value = if self.peek(0) == Some(b'{') {
            let rest = &self.p[self.i + 1..];
            let Some(end) = rest.iter().position(|&b| b == b'}') else {
                return Err(PatternError::Syntax("unterminated \\x{".into()));
            };
            let digits = std::str::from_utf8(&rest[..end]).unwrap_or("x");
            let value = u32::from_str_radix(digits, 16)
                .map_err(|_| PatternError::Syntax("invalid \\x{} escape".into()))?;
            self.i += end + 2;
            value
        } else {
            let mut value = 0;
            for _ in 0..2 {
                match self.peek(0).and_then(|d| char::from(d).to_digit(16)) {
                    Some(d) => {
                        value = value * 16 + d;
                        self.i += 1;
                    }
                    None => break,
                }
            }
            value
        };
        let byte = u8::try_from(value)
            .map_err(|_| PatternError::Syntax("character value in \\x{} is too large".into()))?;
        self.out.push_str(&format!("\\x{byte:02X}"));
        Ok(())
    }

    /// `\Q...\E`: everything literal.
    fn quoted(&mut self, in_class: bool) -> Result<(), PatternError> {
        while self.i < self.p.len() && !self.rest_starts_with(b"\\E") {
            let b = self.p[self.i];
            if in_class && b == b'-' {
                self.out.push_str("\\x2D");
            } else {
                self.push_byte(b);
            }
            self.i += 1;
        }
        if self.rest_starts_with(b"\\E") {
            self.i += 2;
        }
        Ok(())
    }

    /// A bracket class. PCRE takes `[`, `&`, `~` and `--` literally inside
    /// a class; the regex crate would read nesting or set operations.
    fn class(&mut self) -> Result<(), PatternError> {
        let start = self.i;
        self.out.push('[');
        self.i += 1;
        if self.peek(0) == Some(b'^') {
            self.out.push('^');
            self.i += 1;
        }
        if self.peek(0) == Some(b']') {
            self.out.push_str("\\]");
            self.i += 1;
        }
        loop {
            let Some(c) = self.peek(0) else {
                self.i = start;
                return Err(PatternError::Syntax(
                    "missing terminating ] for character class".into(),
                ));
            };
            match c {
                b']' => {
                    self.out.push(']');
                    self.i += 1;
                    return Ok(());
                }
                b'\\' => self.escape(true)?,
                b'[' if self.peek(1) == Some(b':') => {
                    let rest = &self.p[self.i..];
                    let end = rest.windows(2).position(|w| w == b":]");
                    let Some(end) = end else {
                        self.out.push_str("\\[");
                        self.i += 1;
                        continue;
                    };
                    self.out
                        .push_str(&String::from_utf8_lossy(&rest[..end + 2]));
                    self.i += end + 2;
                }
                b'-' if self.out.ends_with('-') => {
                    self.out.push_str("\\x2D");
                    self.i += 1;
                }
                b'[' | b'&' | b'~' | 0x80..=0xff => {
                    self.out.push_str(&format!("\\x{c:02X}"));
                    self.i += 1;
                }
                _ => {
                    self.out.push(char::from(c));
                    self.i += 1;
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "pcre_tests.rs"]
mod tests;
