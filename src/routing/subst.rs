//! Substitution in action arguments and condition operands, as uWSGI's
//! `uwsgi_routing_translate` does it, in two passes (spec
//! `routing-and-protocol.md` §5.6):
//!
//! 1. captures, only when the rule matched a pattern (a regex subject or a
//!    `regexp:` condition): `$0`…`$9`, one digit each; a group the pattern
//!    does not have, or one that did not take part, is empty; `$` before a
//!    non-digit stays, a final lone `$` is dropped. Unlike uWSGI 2.0.21,
//!    `$0` of a pattern without groups is the whole match (uWSGI crashed);
//! 2. variables on the result of pass 1: `${NAME}` is the request variable
//!    (its last value), `${fn[arg]}` a routing variable function
//!    ([`super::vars`]), an unknown `fn` is looked up as a variable named
//!    `fn[arg]`, an unterminated `${abc` is kept. There is no escape for
//!    `$`.
//!
//! Pure: the caller supplies the variables through [`Source`]. Bounded:
//! pass 1 grows the text by at most one subject per `$`, pass 2 by one
//! value per `${`.

use std::borrow::Cow;
use std::ops::Range;

/// Where `${...}` finds its values.
pub trait Source {
    /// The last value of request variable `name`.
    fn var(&self, name: &[u8]) -> Option<&[u8]>;
    /// A routing variable function `${func[arg]}`; `None` when `func` is
    /// not one (the text is then looked up as a plain variable).
    fn function(&self, func: &[u8], arg: &[u8]) -> Option<Option<Vec<u8>>>;
}

/// The groups of a successful match, for pass 1.
#[derive(Debug, Clone, Copy)]
pub struct Captures<'a> {
    /// The text the pattern ran on.
    pub subject: &'a [u8],
    /// `groups[0]` is the whole match, `groups[n]` group `n`; `None` for a
    /// group that did not take part. Empty for a rule that matched without
    /// a pattern (`route-run`, plain conditions): every `$N` is then empty.
    pub groups: &'a [Option<Range<usize>>],
}

impl Captures<'_> {
    /// Captures of a rule without a pattern: `$N` is empty.
    pub const NONE: Captures<'static> = Captures {
        subject: b"",
        groups: &[],
    };

    fn group(&self, n: usize) -> &[u8] {
        match self.groups.get(n) {
            Some(Some(range)) => self.subject.get(range.clone()).unwrap_or_default(),
            _ => b"",
        }
    }
}

/// Both passes. `captures` is `None` for condition operands (uWSGI runs
/// no capture pass there, so `$1` stays literally).
pub fn translate(template: &[u8], captures: Option<&Captures<'_>>, src: &dyn Source) -> Vec<u8> {
    let pass1 = match captures {
        Some(c) => Cow::Owned(apply_captures(template, c)),
        None => Cow::Borrowed(template),
    };
    apply_vars(&pass1, src)
}

/// Pass 1: `$N`.
pub fn apply_captures(template: &[u8], captures: &Captures<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(template.len());
    let mut dollar = false;
    for &c in template {
        if dollar {
            if c.is_ascii_digit() {
                out.extend_from_slice(captures.group(usize::from(c - b'0')));
            } else {
                out.push(b'$');
                out.push(c);
            }
            dollar = false;
        } else if c == b'$' {
            dollar = true;
        } else {
            out.push(c);
        }
    }
    out
}

#[derive(Clone, Copy)]
enum Scan {
    Text,
    Dollar,
    /// Inside `${`; the name starts at this index.
    Name(usize),
}

/// Pass 2: `${NAME}` and `${fn[arg]}`.
pub fn apply_vars(text: &[u8], src: &dyn Source) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut state = Scan::Text;
    for (i, &c) in text.iter().enumerate() {
        state = match state {
            Scan::Text if c == b'$' => Scan::Dollar,
            Scan::Text => {
                out.push(c);
                Scan::Text
            }
            Scan::Dollar if c == b'{' => Scan::Name(i + 1),
            Scan::Dollar => {
                out.push(b'$');
                out.push(c);
                Scan::Text
            }
            Scan::Name(start) if c == b'}' => {
                if let Some(value) = lookup(&text[start..i], src) {
                    out.extend_from_slice(&value);
                }
                Scan::Text
            }
            name @ Scan::Name(_) => name,
        };
    }
    match state {
        Scan::Text => {}
        Scan::Dollar => out.push(b'$'),
        Scan::Name(start) => {
            out.extend_from_slice(b"${");
            out.extend_from_slice(&text[start..]);
        }
    }
    out
}

/// `NAME` or `fn[arg]` (a `[` and a final `]`).
fn lookup<'a>(key: &[u8], src: &'a dyn Source) -> Option<Cow<'a, [u8]>> {
    if let (Some(bracket), Some(b']')) = (key.iter().position(|&b| b == b'['), key.last()) {
        let arg = key.get(bracket + 1..key.len() - 1).unwrap_or_default();
        if let Some(value) = src.function(&key[..bracket], arg) {
            return value.map(Cow::Owned);
        }
    }
    src.var(key).map(Cow::Borrowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake(Vec<(&'static [u8], &'static [u8])>);

    impl Source for Fake {
        fn var(&self, name: &[u8]) -> Option<&[u8]> {
            self.0
                .iter()
                .rev()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| *v)
        }
        fn function(&self, func: &[u8], arg: &[u8]) -> Option<Option<Vec<u8>>> {
            (func == b"up").then(|| self.var(arg).map(|v| v.to_ascii_uppercase()))
        }
    }

    #[test]
    fn table() {
        let src = Fake(vec![
            (b"PATH_INFO", b"/sub/ab/cd"),
            (b"HTTP_HOST", b"h.example"),
            (b"X", b"first"),
            (b"X", b"last"),
            (b"odd[1]", b"plain"),
        ]);
        let subject = b"/sub/ab/cd";
        let groups = [Some(0..10), Some(5..7), Some(8..10), None];
        let caps = Captures {
            subject,
            groups: &groups,
        };
        let whole = [Some(0..10)];
        let no_groups = Captures {
            subject,
            groups: &whole,
        };
        // (name, template, captures, expected)
        let cases: &[(&str, &[u8], Option<&Captures<'_>>, &[u8])] = &[
            ("plain", b"abc", Some(&caps), b"abc"),
            (
                "groups",
                b"[$1][$2][$0]",
                Some(&caps),
                b"[ab][cd][/sub/ab/cd]",
            ),
            ("unmatched group", b"[$3]", Some(&caps), b"[]"),
            ("group beyond pattern", b"[$9]", Some(&caps), b"[]"),
            ("ten is one then zero", b"$10", Some(&caps), b"ab0"),
            ("dollar non digit", b"$x", Some(&caps), b"$x"),
            ("double dollar", b"$$", Some(&caps), b"$$"),
            ("final lone dollar", b"a$", Some(&caps), b"a"),
            (
                "$0 without groups",
                b"[$0]",
                Some(&no_groups),
                b"[/sub/ab/cd]",
            ),
            ("no pattern", b"[$1][$0]", Some(&Captures::NONE), b"[][]"),
            ("operand keeps $1", b"$1", None, b"$1"),
            ("var", b"${HTTP_HOST}", None, b"h.example"),
            ("last value", b"${X}", None, b"last"),
            ("absent var", b"[${NOPE}]", None, b"[]"),
            ("function", b"${up[HTTP_HOST]}", None, b"H.EXAMPLE"),
            ("unknown function is a var", b"${odd[1]}", None, b"plain"),
            ("unterminated", b"[${unterminated", None, b"[${unterminated"),
            ("dollar brace at end", b"a${", None, b"a${"),
            ("escaped var stays", b"$${X}", Some(&caps), b"$${X}"),
            (
                "capture then var",
                b"${$9HTTP_HOST}",
                Some(&caps),
                b"h.example",
            ),
            ("trailing dollar pass 2", b"a$", None, b"a$"),
        ];
        for (name, template, captures, expected) in cases {
            let got = translate(template, *captures, &src);
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(expected),
                "{name}"
            );
        }
    }
}
