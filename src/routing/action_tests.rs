//! Tests of [`super`]: table-driven, one named case per row.

use super::*;

#[test]
fn parse_table() {
    let cases: &[(&str, &[u8], Result<Action, ActionError>)] = &[
        ("last", b"last:", Ok(Action::Continue)),
        ("break empty", b"break:", Ok(Action::Break { status: None })),
        (
            "break short",
            b"break:40",
            Ok(Action::Break { status: None }),
        ),
        (
            "break status",
            b"break:404 Not Found",
            Ok(Action::Break {
                status: Some(b"404 Not Found".to_vec()),
            }),
        ),
        (
            "goto number",
            b"goto:3",
            Ok(Action::Goto {
                label: b"3".to_vec(),
                number: 3,
            }),
        ),
        (
            "goto label",
            b"goto:lbl",
            Ok(Action::Goto {
                label: b"lbl".to_vec(),
                number: 0,
            }),
        ),
        (
            "addheader keeps colons",
            b"addheader:X-S: a b",
            Ok(Action::AddHeader(b"X-S: a b".to_vec())),
        ),
        (
            "uwsgi remote",
            b"uwsgi:/tmp/uwsgi_$1.sock,5,7,myapp",
            Ok(Action::Uwsgi {
                addr: b"/tmp/uwsgi_$1.sock".to_vec(),
                modifier1: 5,
                modifier2: 7,
                appid: Some(b"myapp".to_vec()),
            }),
        ),
        (
            "uwsgi local",
            b"uwsgi:,0,0,appx",
            Ok(Action::Uwsgi {
                addr: vec![],
                modifier1: 0,
                modifier2: 0,
                appid: Some(b"appx".to_vec()),
            }),
        ),
        (
            "uwsgi tcp",
            b"uwsgi:127.0.0.1:3031,0,0",
            Ok(Action::Uwsgi {
                addr: b"127.0.0.1:3031".to_vec(),
                modifier1: 0,
                modifier2: 0,
                appid: None,
            }),
        ),
        (
            "uwsgi one comma",
            b"uwsgi:127.0.0.1:3031,0",
            Err(ActionError::Syntax(
                "invalid route syntax: 127.0.0.1:3031,0".into(),
            )),
        ),
        (
            "http",
            b"http:127.0.0.1:9000,backend.example,/r/$1",
            Ok(Action::Http {
                addr: b"127.0.0.1:9000".to_vec(),
                host: Some(b"backend.example".to_vec()),
                uri: Some(b"/r/$1".to_vec()),
            }),
        ),
        (
            "redirect 301",
            b"redirect-301:http://x/",
            Ok(Action::Redirect {
                url: b"http://x/".to_vec(),
                permanent: true,
            }),
        ),
        (
            "rewrite-last",
            b"rewrite-last:/a",
            Ok(Action::Rewrite {
                target: b"/a".to_vec(),
                last: true,
            }),
        ),
        (
            "addvar",
            b"addvar:FOO=bar$1",
            Ok(Action::AddVar {
                key: b"FOO".to_vec(),
                value: b"bar$1".to_vec(),
            }),
        ),
        (
            "addvar without =",
            b"addvar:FOO",
            Err(ActionError::Syntax(
                "[uwsgi-route] invalid addvar syntax, must be KEY=VAL".into(),
            )),
        ),
        (
            "setmethod",
            b"setmethod:PUT",
            Ok(Action::Set {
                var: SetVar::Method,
                value: b"PUT".to_vec(),
            }),
        ),
        (
            "basicauth pair",
            b"basicauth:My Realm,user:pass",
            Ok(Action::BasicAuth {
                realm: b"My Realm".to_vec(),
                credentials: Credentials::Pair(b"user:pass".to_vec()),
                next: false,
            }),
        ),
        (
            "basicauth file",
            b"basicauth-next:R,/etc/htpasswd",
            Ok(Action::BasicAuth {
                realm: b"R".to_vec(),
                credentials: Credentials::File(b"/etc/htpasswd".to_vec()),
                next: true,
            }),
        ),
        ("no colon", b"last", Err(ActionError::NoColon)),
        ("setvar", b"setvar:A=1", Err(ActionError::SetVar)),
        (
            "unsupported",
            b"cache:key=x",
            Err(ActionError::Unsupported("cache".into())),
        ),
        (
            "unknown",
            b"frobnicate:x",
            Err(ActionError::Unknown("frobnicate".into())),
        ),
    ];
    for (name, text, expected) in cases {
        assert_eq!(&parse(text), expected, "{name}");
    }
}

#[test]
fn atoi_like_c() {
    assert_eq!(atoi(b" 12abc"), 12);
    assert_eq!(atoi(b"-3"), -3);
    assert_eq!(atoi(b"x"), 0);
}
