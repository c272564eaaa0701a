//! Tests of [`super`]: table-driven, one named case per row.

use super::*;

#[test]
fn matching_table() {
    // (name, pattern, subject, expected match as text or None)
    let cases: &[(&str, &[u8], &[u8], Option<&[u8]>)] = &[
        ("unanchored", b"mid", b"/xmidx", Some(b"mid")),
        ("case sensitive", b"^/ci/ABC", b"/ci/abc", None),
        ("inline (?i)", b"(?i)^/ci/abc", b"/ci/ABC", Some(b"/ci/ABC")),
        ("anchored end", b"^/anch$", b"/anch/", None),
        ("ascii \\w", b"^\\w+$", "café".as_bytes(), None),
        (
            "ascii \\w ok",
            b"^[-\\w]+\\.example\\.com$",
            b"alpha.example.com",
            Some(b"alpha.example.com"),
        ),
        ("host with port", b"^h\\.example$", b"h.example:8080", None),
        ("dot any byte", b"^a.b$", b"a\xffb", Some(b"a\xffb")),
        (
            "non-ascii literal",
            "^/café$".as_bytes(),
            "/café".as_bytes(),
            Some("/café".as_bytes()),
        ),
        ("byte escape", b"^\\xe9$", b"\xe9", Some(b"\xe9")),
        ("braced byte escape", b"^\\x{e9}$", b"\xe9", Some(b"\xe9")),
        ("literal brace", b"^a{b}$", b"a{b}", Some(b"a{b}")),
        ("quantifier", b"^a{2,3}$", b"aaa", Some(b"aaa")),
        ("bracket in class", b"^[[]$", b"[", Some(b"[")),
        ("amp in class", b"^[a&&b]+$", b"a&&b", Some(b"a&&b")),
        ("posix class", b"^[[:digit:]]+$", b"123", Some(b"123")),
        ("escaped slash", b"^\\/x$", b"/x", Some(b"/x")),
        ("comment", b"a(?#note)b", b"ab", Some(b"ab")),
        ("quoted", b"^\\Q.*\\E$", b".*", Some(b".*")),
        ("octal", b"^\\101$", b"A", Some(b"A")),
        ("named group", b"^(?<n>a)(?'m'b)$", b"ab", Some(b"ab")),
        ("lazy", b"^(a+?)", b"aaa", Some(b"a")),
    ];
    for (name, pattern, subject, expected) in cases {
        let re = compile(pattern).unwrap_or_else(|e| panic!("{name}: {e}"));
        let got = re.find(subject).map(|m| m.as_bytes());
        assert_eq!(got, *expected, "{name}");
    }
}

#[test]
fn refusals() {
    let cases: &[(&str, &[u8], &str)] = &[
        ("backreference", b"(a)\\1", "backreference"),
        ("named backreference", b"(?P<x>a)(?P=x)", "backreference"),
        ("\\k", b"(?<x>a)\\k<x>", "backreference"),
        ("lookahead", b"a(?=b)", "lookaround"),
        ("negative lookahead", b"a(?!b)", "lookaround"),
        ("lookbehind", b"(?<=a)b", "lookaround"),
        ("negative lookbehind", b"(?<!a)b", "lookaround"),
        ("atomic", b"(?>a)", "atomic group"),
        ("possessive", b"a*+", "possessive quantifier"),
        ("possessive brace", b"a{2}+", "possessive quantifier"),
        ("recursion", b"(a(?R))", "recursion or subroutine call"),
        ("conditional", b"(?(1)a|b)", "conditional group"),
        ("verb", b"(*UTF8)a", "backtracking control verb"),
        ("\\K", b"a\\Kb", "unsupported escape"),
    ];
    for (name, pattern, what) in cases {
        match compile(pattern) {
            Err(PatternError::Unsupported(w, _)) => assert_eq!(w, *what, "{name}"),
            other => panic!("{name}: expected a refusal, got {other:?}"),
        }
    }
}

#[test]
fn syntax_errors() {
    for pattern in [&b"(a"[..], b"[a", b"\\", b"\\x{100}", b"a)"] {
        assert!(
            matches!(compile(pattern), Err(PatternError::Syntax(_))),
            "{:?}",
            String::from_utf8_lossy(pattern)
        );
    }
}
