//! Tests of [`super`]: table-driven, one named case per row.

use super::*;
use crate::routing::vars::{Context, Overlay, Var};

#[test]
fn table() {
    let base: Vec<Var> = vec![
        (b"HTTP_HOST".to_vec(), b"abc.cond.org".to_vec()),
        (b"CONTENT_LENGTH".to_vec(), b"6".to_vec()),
        (b"PATH_INFO".to_vec(), b"/x.php".to_vec()),
        (b"REMOTE_ADDR".to_vec(), b"127.0.0.1".to_vec()),
        (b"REQUEST_METHOD".to_vec(), b"GET".to_vec()),
    ];
    let ctx = Context::default();
    let src = Overlay::new(&base, &ctx);
    let cases: &[(&str, &str, &[u8], CondResult)] = &[
        ("equal", "equal", b"${REQUEST_METHOD};GET", CondResult::True),
        (
            "not equal",
            "eq",
            b"${REQUEST_METHOD};PUT",
            CondResult::False,
        ),
        (
            "no semicolon",
            "equal",
            b"${REQUEST_METHOD}",
            CondResult::False,
        ),
        (
            "empty missing",
            "empty",
            b"${HTTP_X_MISSING}",
            CondResult::True,
        ),
        ("empty present", "empty", b"${HTTP_HOST}", CondResult::False),
        (
            "higher",
            "ishigher",
            b"${CONTENT_LENGTH};5",
            CondResult::True,
        ),
        (
            "higher equal",
            ">=",
            b"${CONTENT_LENGTH};6",
            CondResult::True,
        ),
        ("lower", "<", b"${CONTENT_LENGTH};6", CondResult::False),
        (
            "endswith",
            "endswith",
            b"${PATH_INFO};.php",
            CondResult::True,
        ),
        (
            "startswith",
            "startswith",
            b"${PATH_INFO};/y",
            CondResult::False,
        ),
        (
            "contains",
            "contains",
            b"${HTTP_HOST};cond",
            CondResult::True,
        ),
        (
            "ipv4in",
            "ipv4in",
            b"${REMOTE_ADDR};127.0.0.0/8",
            CondResult::True,
        ),
        (
            "ipv4 outside",
            "ipv4in",
            b"${REMOTE_ADDR};10.0.0.0/8",
            CondResult::False,
        ),
        (
            "ipv4 too long",
            "ipv4in",
            b"1234567890123456;10.0.0.0/8",
            CondResult::Error,
        ),
        ("ipv6in", "ipv6in", b"::1;::/64", CondResult::True),
        ("isfile", "isfile", b"/nonexistent/file", CondResult::False),
        ("isdir", "isdir", b"/", CondResult::True),
        (
            "regexp",
            "regexp",
            b"${HTTP_HOST};^(\\w+)\\.cond\\.org$",
            CondResult::Matched {
                subject: b"abc.cond.org".to_vec(),
                groups: vec![Some(0..12), Some(0..3)],
            },
        ),
        ("regexp miss", "re", b"${HTTP_HOST};^x", CondResult::False),
    ];
    for (name, cond, args, expected) in cases {
        let kind = CondKind::from_name(cond.as_bytes()).unwrap_or_else(|| panic!("{name}"));
        let c = Condition::new(kind, args).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(&c.eval(&src), expected, "{name}");
    }
    assert_eq!(CondKind::from_name(b"foo"), None);
    assert!(Condition::new(CondKind::Regexp, b"x;(a").is_err());
}
