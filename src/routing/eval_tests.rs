//! Table-driven tests of parsing and evaluating whole chains, with the
//! spec's §9 scenarios (33–59) that do not need sockets.

use super::*;
use crate::config::Origin;
use std::sync::Arc;

fn origin(line: usize) -> Origin {
    Origin::File {
        file: Arc::from("test.ini"),
        line,
    }
}

fn table(rules: &[(&str, &str)]) -> Table {
    let origins: Vec<Origin> = (1..=rules.len()).map(origin).collect();
    Table::from_entries(
        rules
            .iter()
            .zip(&origins)
            .map(|((k, v), o)| (k.as_bytes(), v.as_bytes(), o)),
    )
    .unwrap_or_else(|e| panic!("{e} [{}]", e.origin))
}

/// A router-like request: `GET uri` with headers.
fn request(uri: &str, headers: &[(&str, &str)]) -> Vec<Var> {
    let (path, qs) = uri.split_once('?').unwrap_or((uri, ""));
    let mut vars: Vec<Var> = vec![
        (b"REQUEST_METHOD".to_vec(), b"GET".to_vec()),
        (b"REQUEST_URI".to_vec(), uri.as_bytes().to_vec()),
        (
            b"PATH_INFO".to_vec(),
            crate::protocol::cgi::decode_path_info(path.as_bytes()),
        ),
        (b"QUERY_STRING".to_vec(), qs.as_bytes().to_vec()),
        (b"SERVER_PROTOCOL".to_vec(), b"HTTP/1.1".to_vec()),
        (b"SCRIPT_NAME".to_vec(), b"".to_vec()),
        (b"SERVER_NAME".to_vec(), b"web1".to_vec()),
        (b"SERVER_PORT".to_vec(), b"8080".to_vec()),
        (b"UWSGI_ROUTER".to_vec(), b"http".to_vec()),
        (b"REMOTE_ADDR".to_vec(), b"127.0.0.1".to_vec()),
        (b"REMOTE_PORT".to_vec(), b"50000".to_vec()),
    ];
    for (k, v) in headers {
        vars.push((
            crate::protocol::cgi::header_var_name(k.as_bytes()),
            v.as_bytes().to_vec(),
        ));
    }
    vars
}

fn eval(t: &Table, vars: &[Var]) -> Evaluation {
    let ctx = Context {
        worker_id: 1,
        ..Context::default()
    };
    evaluate(&t.request, &vars.to_vec(), &ctx)
}

fn forward(addr: &str, m1: u8, m2: u8) -> Outcome {
    Outcome::Forward(Forward {
        addr: addr.as_bytes().to_vec(),
        kind: ForwardKind::Uwsgi {
            modifier1: m1,
            modifier2: m2,
        },
    })
}

fn rendered(ev: &Evaluation) -> String {
    match &ev.outcome {
        Outcome::Respond(r) => {
            String::from_utf8_lossy(&r.render(b"HTTP/1.1", &ev.headers)).into_owned()
        }
        other => format!("{other:?}"),
    }
}

#[test]
fn host_routing_scenario() {
    let t = table(&[(
        "route-host",
        r"^([-\w]+)\.example\.com$ uwsgi:/tmp/uwsgi_$1.sock,0,0",
    )]);
    let cases: &[(&str, &str, Outcome)] = &[
        (
            "alpha",
            "alpha.example.com",
            forward("/tmp/uwsgi_alpha.sock", 0, 0),
        ),
        ("with port", "alpha.example.com:8080", Outcome::Continue),
        ("upper case", "ALPHA.EXAMPLE.COM", Outcome::Continue),
        ("other", "other.org", Outcome::Continue),
        (
            "dash",
            "a-b.example.com",
            forward("/tmp/uwsgi_a-b.sock", 0, 0),
        ),
    ];
    for (name, host, expected) in cases {
        let ev = eval(&t, &request("/", &[("Host", host)]));
        assert_eq!(&ev.outcome, expected, "{name}");
    }
    // Without a Host header the subject is SERVER_NAME.
    let t = table(&[("route-host", "^web1$ return:204")]);
    assert!(matches!(
        eval(&t, &request("/", &[])).outcome,
        Outcome::Respond(_)
    ));
}

#[test]
fn responses_table() {
    // (name, rules, uri, headers, expected rendering)
    let cases: &[(&str, &[(&str, &str)], &str, &[(&str, &str)], &str)] = &[
        (
            "redirect with groups",
            &[("route", "^/r302/(.*) redirect:/new/$1")],
            "/r302/a/b?q=1",
            &[],
            "HTTP/1.1 302 Found\r\nLocation: /new/a/b\r\n\r\nMoved",
        ),
        (
            "redirect 301",
            &[("route", "^/ redirect-301:http://x.example/")],
            "/p",
            &[],
            "HTTP/1.1 301 Moved Permanently\r\nLocation: http://x.example/\r\n\r\nMoved Permanently",
        ),
        (
            "return 403",
            &[("route", "^/ return:403")],
            "/",
            &[],
            "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nForbidden",
        ),
        (
            "return 204 keeps its body",
            &[("route", "^/ return:204")],
            "/",
            &[],
            "HTTP/1.1 204 No Content\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nNo Content",
        ),
        ("return unknown", &[("route", "^/ return:299")], "/", &[], "Close"),
        (
            "break with status",
            &[("route", "^/ break:404 Not Found")],
            "/",
            &[],
            "HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\n",
        ),
        ("break empty", &[("route", "^/ break:")], "/", &[], "Close"),
        (
            "accumulation",
            &[
                ("route", "^/multi/a addheader:X-A: 1"),
                ("route", "^/multi redirect:/first"),
                ("route", "^/multi redirect:/second"),
            ],
            "/multi/a",
            &[],
            "HTTP/1.1 302 Found\r\nLocation: /first\r\nX-A: 1\r\n\r\nMoved",
        ),
        (
            "substitution line",
            &[(
                "route",
                r"^/sub/(\w+)/(\w+) addheader:X-S: [$1][$2][$0][$3][${PATH_INFO}][${qs[a]}][${cookie[c]}][$$][${NOPE}][${HTTP_HOST}][${uwsgi[wid]}][$x][${unterminated",
            ), ("route", "^/sub return:200")],
            "/sub/ab/cd.html?a=1&b=2&a=3",
            &[("Host", "h.example"), ("Cookie", "c=choc; d=x")],
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nX-S: [ab][cd][/sub/ab/cd][][/sub/ab/cd.html][1][choc][$$][][h.example][1][$x][${unterminated\r\n\r\nOK",
        ),
        (
            "$0 without groups",
            &[("route", "^/zero$ addheader:X-Zero: [$0]"), ("route-run", "return:200")],
            "/zero",
            &[],
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nX-Zero: [/zero]\r\n\r\nOK",
        ),
        (
            "basicauth missing",
            &[("route", "^/ basicauth:My Realm,user:pass")],
            "/",
            &[],
            "HTTP/1.1 401 Authorization Required\r\nWWW-Authenticate: Basic realm=\"My Realm\"\r\n\r\nUnauthorized",
        ),
        (
            "condition regexp groups",
            &[
                ("route-if", r"regexp:${HTTP_HOST};^(\w+)\.cond\.org$ addheader:X-Cond: $1"),
                ("route-run", "break:200"),
            ],
            "/",
            &[("Host", "abc.cond.org")],
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: text/plain\r\nX-Cond: abc\r\n\r\n",
        ),
        (
            "delheader",
            &[("route-run", "addheader:X-App: 1"), ("route-run", "delheader:x-app"), ("route-run", "break:200")],
            "/",
            &[],
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\n",
        ),
    ];
    for (name, rules, uri, headers, expected) in cases {
        let ev = eval(&table(rules), &request(uri, headers));
        let got = rendered(&ev);
        let want = if *expected == "Close" {
            format!("{:?}", Outcome::Close)
        } else {
            expected.to_string()
        };
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn flow_control() {
    let after = |rules: &[(&str, &str)], uri: &str| {
        let ev = eval(&table(rules), &request(uri, &[]));
        let headers: Vec<String> = ev
            .headers
            .iter()
            .map(|h| match h {
                HeaderOp::Add(l) => String::from_utf8_lossy(l).into_owned(),
                other => format!("{other:?}"),
            })
            .collect();
        (ev.outcome, headers, ev.logs)
    };
    // continue stops later rules
    let (o, h, _) = after(
        &[
            ("route", "^/c continue:"),
            ("route", "^/c addheader:X-No: 1"),
        ],
        "/c",
    );
    assert_eq!((o, h.len()), (Outcome::Continue, 0));
    // goto skips to the label
    let (o, h, _) = after(
        &[
            ("route", "^/g goto:mylabel"),
            ("route", "^/g addheader:X-Skipped: 1"),
            ("route-label", "mylabel"),
            ("route", "^/g addheader:X-After: 1"),
        ],
        "/g",
    );
    assert_eq!((o, h), (Outcome::Continue, vec!["X-After: 1".to_string()]));
    // goto by substituted label
    let (_, h, _) = after(
        &[
            ("route", "^/(\\w+) goto:$1"),
            ("route-run", "addheader:X-Skipped: 1"),
            ("route-label", "lbl"),
            ("route-run", "addheader:X-After: 1"),
        ],
        "/lbl",
    );
    assert_eq!(h, vec!["X-After: 1".to_string()]);
    // goto by number
    let (_, h, _) = after(
        &[
            ("route-run", "goto:2"),
            ("route-run", "addheader:X-Skipped: 1"),
            ("route-run", "addheader:X-Two: 1"),
        ],
        "/",
    );
    assert_eq!(h, vec!["X-Two: 1".to_string()]);
    // backward goto and unknown label: empty reply plus the error line
    for rules in [
        &[("route-label", "back"), ("route-run", "goto:back")][..],
        &[("route-run", "goto:nowhere")][..],
    ] {
        let (o, _, logs) = after(rules, "/");
        assert_eq!(o, Outcome::Close);
        assert_eq!(logs, vec![eval::GOTO_ERROR.as_bytes().to_vec()]);
    }
}

#[test]
fn request_changes() {
    let t = table(&[
        ("route", "^/rw/(.*) rewrite:/env/$1?added=1"),
        ("route", "^/env/ addheader:X-Seen: ${PATH_INFO}"),
        ("route-run", "addvar:EXTRA=1"),
        (
            "route-if-not",
            "equal:${REQUEST_METHOD};GET setmethod:WRONG",
        ),
        ("route-run", "setmethod:PUT"),
        (
            "route-if-not",
            "equal:${REQUEST_METHOD};GET addheader:X-Method: ${REQUEST_METHOD}",
        ),
        ("route-run", "uwsgi:/tmp/fake.sock,5,7,appz"),
    ]);
    let ev = eval(&t, &request("/rw/foo%20bar?orig=2", &[]));
    assert_eq!(ev.outcome, forward("/tmp/fake.sock", 5, 7));
    let vars: Vec<(String, String)> = ev
        .vars
        .iter()
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("PATH_INFO", "/env/foo bar"),
        ("QUERY_STRING", "added=1&orig=2"),
        ("EXTRA", "1"),
        ("REQUEST_METHOD", "PUT"),
        ("UWSGI_APPID", "appz"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(vars, expected);
    assert_eq!(
        ev.headers,
        vec![
            HeaderOp::Add(b"X-Seen: /env/foo bar".to_vec()),
            HeaderOp::Add(b"X-Method: PUT".to_vec())
        ]
    );
    // rewrite-last stops the chain; modifier-only uwsgi keeps the request local
    let t = table(&[("route", "^/ rewrite-last:/x"), ("route-run", "return:403")]);
    assert_eq!(eval(&t, &request("/a", &[])).outcome, Outcome::Continue);
    let t = table(&[("route-run", "uwsgi:,0,0,appx")]);
    let ev = eval(&t, &request("/a", &[]));
    assert_eq!((ev.outcome, ev.modifier1), (Outcome::Continue, Some(0)));
    assert_eq!(ev.vars, vec![(b"UWSGI_APPID".to_vec(), b"appx".to_vec())]);
}

#[test]
fn subjects_and_matching() {
    // (name, rule, uri, headers, matches)
    let cases: &[(&str, (&str, &str), &str, &[(&str, &str)], bool)] = &[
        (
            "case sensitive",
            ("route", "^/ci/ABC return:200"),
            "/ci/abc",
            &[],
            false,
        ),
        (
            "inline flag",
            ("route", "(?i)^/ci/abc return:200"),
            "/ci/ABC",
            &[],
            true,
        ),
        (
            "unanchored",
            ("route", "mid return:200"),
            "/xmidx",
            &[],
            true,
        ),
        (
            "anchored",
            ("route", "^/anch$ return:200"),
            "/anch/",
            &[],
            false,
        ),
        (
            "empty user agent",
            ("route-user-agent", "^$ return:200"),
            "/",
            &[("User-Agent", "")],
            true,
        ),
        (
            "absent user agent",
            ("route-user-agent", "^$ return:200"),
            "/",
            &[],
            false,
        ),
        (
            "host with port",
            ("route-host", r"^h\.example:8080$ return:200"),
            "/",
            &[("Host", "h.example:8080")],
            true,
        ),
        ("empty qs", ("route-qs", "^$ return:200"), "/", &[], true),
        (
            "uri keeps query",
            ("route-uri", r"\?x=1$ return:200"),
            "/a?x=1",
            &[],
            true,
        ),
        (
            "remote addr",
            ("route-remote-addr", r"^127\. return:200"),
            "/",
            &[],
            true,
        ),
        (
            "referer",
            ("route-referer", "example return:200"),
            "/",
            &[("Referer", "http://example/")],
            true,
        ),
        (
            "remote user absent",
            ("route-remote-user", ".* return:200"),
            "/",
            &[],
            false,
        ),
        (
            "decoded path dot",
            ("route", "^/a.b$ return:200"),
            "/a%20b",
            &[],
            true,
        ),
        (
            "decoded path escaped",
            ("route", r"^/a\x20b$ return:200"),
            "/a%20b",
            &[],
            true,
        ),
    ];
    for (name, rule, uri, headers, matches) in cases {
        let ev = eval(&table(&[*rule]), &request(uri, headers));
        assert_eq!(
            matches!(ev.outcome, Outcome::Respond(_)),
            *matches,
            "{name}"
        );
    }
}

#[test]
fn many_rules_through_sets_keep_order() {
    let mut rules: Vec<(String, String)> = (0..200)
        .map(|i| {
            (
                "route-host".to_string(),
                format!(r"^h{i}\.example$ uwsgi:/tmp/h{i}.sock,0,0"),
            )
        })
        .collect();
    rules.insert(
        0,
        (
            "route-host".into(),
            r"^h1\d\.example$ addheader:X-Teen: 1".into(),
        ),
    );
    rules.push((
        "route-host".into(),
        r"^h\d+\.example$ uwsgi:/tmp/late.sock,0,0".into(),
    ));
    let borrowed: Vec<(&str, &str)> = rules
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let t = table(&borrowed);
    assert!(t.request.sets[0].set.is_some());
    let ev = eval(&t, &request("/", &[("Host", "h15.example")]));
    assert_eq!(ev.outcome, forward("/tmp/h15.sock", 0, 0));
    assert_eq!(ev.headers, vec![HeaderOp::Add(b"X-Teen: 1".to_vec())]);
    let ev = eval(&t, &request("/", &[("Host", "h999.example")]));
    assert_eq!(ev.outcome, forward("/tmp/late.sock", 0, 0));
    // The set's answers are remembered per host, and the memo starts over
    // when many hosts come by: the outcomes stay the same throughout.
    for round in 0..2 {
        for i in (0..400).step_by(7) {
            let host = format!("h{i}.example");
            let want = if i < 200 {
                format!("/tmp/h{i}.sock")
            } else {
                "/tmp/late.sock".to_string()
            };
            let ev = eval(&t, &request("/", &[("Host", &host)]));
            assert_eq!(ev.outcome, forward(&want, 0, 0), "round {round}, {host}");
        }
        for i in 0..300 {
            let host = format!("other{i}.example");
            let ev = eval(&t, &request("/", &[("Host", &host)]));
            assert_eq!(ev.outcome, Outcome::Continue, "{host}");
        }
    }
}

#[test]
fn other_chains() {
    let t = table(&[
        ("error-route-status", "404 addheader:X-Error-Route: 404"),
        ("response-route", "^/resp addheader:X-R: 1"),
        (
            "final-route",
            r"^/fin log:FINAL ${PATH_INFO} ${uwsgi[status]}",
        ),
        ("route", "^/log/ log:LOGGED path=${PATH_INFO} cap=$1"),
        ("route", "^/log/ donotlog:"),
    ]);
    let ctx = |status| Context {
        status,
        ..Context::default()
    };
    let ev = evaluate(&t.error, &request("/x", &[]), &ctx(404));
    assert_eq!(
        ev.headers,
        vec![HeaderOp::Add(b"X-Error-Route: 404".to_vec())]
    );
    let ev = evaluate(&t.error, &request("/x", &[]), &ctx(200));
    assert!(ev.headers.is_empty());
    let ev = evaluate(&t.response, &request("/resp", &[]), &ctx(200));
    assert_eq!(ev.headers.len(), 1);
    let ev = evaluate(&t.final_, &request("/fin", &[]), &ctx(200));
    assert_eq!(ev.logs, vec![b"FINAL /fin 200".to_vec()]);
    let ev = eval(&t, &request("/log/x", &[]));
    assert_eq!(ev.logs, vec![b"LOGGED path=/log/x cap=".to_vec()]);
    assert!(ev.do_not_log);
}

#[test]
fn basic_auth_success_sets_remote_user() {
    let t = table(&[
        ("route", "^/ basicauth:My Realm,user:pass"),
        ("route-run", "addheader:X-U: ${REMOTE_USER}"),
    ]);
    let ev = eval(
        &t,
        &request("/", &[("Authorization", "Basic dXNlcjpwYXNz")]),
    );
    assert_eq!(ev.outcome, Outcome::Continue);
    assert_eq!(ev.vars, vec![(b"REMOTE_USER".to_vec(), b"user".to_vec())]);
    assert_eq!(ev.headers, vec![HeaderOp::Add(b"X-U: user".to_vec())]);
}

#[test]
fn static_and_effects() {
    let t = table(&[
        ("route", "^/s static-next:/nonexistent/file"),
        ("route", "^/s static:/etc/hostname"),
    ]);
    assert_eq!(
        eval(&t, &request("/s", &[])).outcome,
        Outcome::Static(b"/etc/hostname".to_vec())
    );
    let t = table(&[("route-run", "send:hello-$0"), ("route-run", "chdir:/tmp")]);
    let ev = eval(&t, &request("/", &[]));
    assert_eq!(
        (ev.sent.as_slice(), ev.chdirs),
        (&b"hello-"[..], vec![b"/tmp".to_vec()])
    );
}

#[test]
fn start_errors() {
    // (name, option, value, expected message start)
    let cases: &[(&str, &str, &str, &str)] = &[
        ("no space", "route", "^/x", "invalid route syntax"),
        (
            "space in regex",
            "route",
            "^/enc/a b$ addheader:X-Space: 1",
            "unknown routing action \"b$ addheader\"",
        ),
        ("no colon", "route", "^/x last", "invalid route syntax"),
        (
            "unknown action",
            "route",
            "^/x frob:1",
            "unknown routing action \"frob\"",
        ),
        (
            "unsupported",
            "route",
            "^/x cache:key=a",
            "routing action \"cache\" is not supported",
        ),
        (
            "one comma",
            "route",
            "^/x uwsgi:127.0.0.1:3031,0",
            "invalid route syntax: 127.0.0.1:3031,0",
        ),
        (
            "unknown condition",
            "route-if",
            "foo:a;b last:",
            "unable to find \"foo\" route condition",
        ),
        (
            "condition syntax",
            "route-if",
            "foo last:",
            "invalid route condition syntax",
        ),
        ("bad regex", "route", "^(x last:", "pcre error"),
        (
            "backreference",
            "route",
            r"(a)\1 last:",
            "unsupported regex construct (backreference)",
        ),
        (
            "lookahead",
            "route-host",
            "^a(?=b) last:",
            "unsupported regex construct (lookaround)",
        ),
        (
            "setvar",
            "route-run",
            "setvar:A=1",
            "routing action \"setvar\" does not exist",
        ),
    ];
    for (name, option, value, expected) in cases {
        let o = origin(7);
        let err = Table::from_entries([(option.as_bytes(), value.as_bytes(), &o)]).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with(expected), "{name}: {text}");
        assert!(
            text.contains(&format!("unable to register route \"{value}\"")),
            "{name}: {text}"
        );
        assert_eq!(err.origin.to_string(), "test.ini line 7", "{name}");
    }
}

#[test]
fn dump_lines() {
    let t = table(&[
        (
            "route-host",
            r"^([-\w]+)\.example\.com$ uwsgi:/tmp/uwsgi_$1.sock,0,0",
        ),
        ("route-label", "mylabel"),
        (
            "route-if",
            r"regexp:${HTTP_HOST};^(\w+)\.cond\.org$ addheader:X-Cond: $1",
        ),
        ("route-run", "last:"),
        ("error-route-status", "404 addheader:X: 1"),
    ]);
    assert_eq!(
        t.dump(),
        vec![
            "*** dumping internal routing table ***",
            r"[rule: 0] subject: http_host regexp: ^([-\w]+)\.example\.com$ action: uwsgi:/tmp/uwsgi_$1.sock,0,0",
            "[rule: 1] label: mylabel",
            r"[rule: 2] subject: ${HTTP_HOST};^(\w+)\.cond\.org$ func: regexp action: addheader:X-Cond: $1",
            "[rule: 3] action: last:",
            "*** end of the internal routing table ***",
            "*** dumping internal error routing table ***",
            "[rule: 0] subject: 404 func: 404 action: addheader:X: 1",
            "*** end of the internal error routing table ***",
        ]
    );
}

/// Cases recorded from uWSGI 2.0.21 (`--http-socket`, the rules below, a
/// WSGI app echoing its environ): the same rules must give the same
/// headers and variables here.
#[test]
fn recorded_from_uwsgi() {
    let t = table(&[
        (
            "route",
            r"^/sub/(\w+)/(\w+) addheader:X-S: [$10][$$][a$][${qs[a]}][${cookie[c]}][${NOPE}]",
        ),
        (
            "route",
            r"^/sub/ addheader:X-T: ${hex[PATH_INFO]}|${base64[QUERY_STRING]}",
        ),
        ("route", r"^/rw/(.*) rewrite:/env/$1?added=1"),
        ("route", r"^/rwnq/(.*) rewrite:/env/$1"),
        (
            "route-if-not",
            "equal:${REQUEST_METHOD} addheader:X-NoSemi: fired",
        ),
        (
            "route-if",
            "equal:${REQUEST_METHOD};GET addheader:X-Eq: [$1]",
        ),
        ("route", "^/goto goto:7"),
        ("route", "^/goto addheader:X-Skipped: 1"),
        ("route-label", "lbl"),
        ("route", "^/goto addheader:X-Label: passed"),
        ("route", "^/br302 break:302"),
        ("route", "^/ret299 return:299"),
        ("route", "^/bnext basicauth-next:R,u:p"),
        ("route", "^/fix setscriptname:/fi"),
        ("route", "^/fix fixpathinfo:"),
        ("route", "^/seturi seturi:/changed"),
        ("route", "^/setuser setuser:bob:secret"),
    ]);
    let adds = |ev: &Evaluation| -> Vec<String> {
        ev.headers
            .iter()
            .filter_map(|h| match h {
                HeaderOp::Add(l) => Some(String::from_utf8_lossy(l).into_owned()),
                _ => None,
            })
            .collect()
    };
    let var = |ev: &Evaluation, k: &str| {
        ev.vars
            .iter()
            .rev()
            .find(|(key, _)| key == k.as_bytes())
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    let always = ["X-NoSemi: fired".to_string(), "X-Eq: []".to_string()];
    let ev = eval(
        &t,
        &request("/sub/ab/cd?a=&a=3", &[("Host", "h"), ("Cookie", "c=; c=2")]),
    );
    let mut want = vec![
        "X-S: [ab0][$$][a$][3][2][]".to_string(),
        "X-T: 2F7375622F61622F6364|YT0mYT0z".to_string(),
    ];
    want.extend(always.clone());
    assert_eq!(adds(&ev), want);
    let ev = eval(&t, &request("/rw/x%20y?orig=2", &[]));
    assert_eq!(var(&ev, "PATH_INFO").as_deref(), Some("/env/x y"));
    assert_eq!(var(&ev, "QUERY_STRING").as_deref(), Some("added=1&orig=2"));
    let ev = eval(&t, &request("/rwnq/x", &[]));
    assert_eq!(
        (
            var(&ev, "PATH_INFO").as_deref(),
            var(&ev, "QUERY_STRING").as_deref()
        ),
        (Some("/env/x"), Some(""))
    );
    let ev = eval(&t, &request("/goto", &[]));
    let mut want = always.to_vec();
    want.extend(["X-Skipped: 1".to_string(), "X-Label: passed".to_string()]);
    assert_eq!(adds(&ev), want);
    let ev = eval(&t, &request("/br302", &[]));
    assert_eq!(
        rendered(&ev),
        "HTTP/1.1 302 Found\r\nConnection: close\r\nContent-Type: text/plain\r\nX-NoSemi: fired\r\nX-Eq: []\r\n\r\n"
    );
    assert_eq!(eval(&t, &request("/ret299", &[])).outcome, Outcome::Close);
    let ev = eval(&t, &request("/bnext", &[]));
    assert_eq!(
        rendered(&ev),
        "HTTP/1.1 401 Authorization Required\r\nWWW-Authenticate: Basic realm=\"R\"\r\nX-NoSemi: fired\r\nX-Eq: []\r\n\r\nUnauthorized"
    );
    assert_eq!(
        var(&eval(&t, &request("/fix/abc", &[])), "PATH_INFO").as_deref(),
        Some("x/abc")
    );
    assert_eq!(
        var(&eval(&t, &request("/seturi", &[])), "REQUEST_URI").as_deref(),
        Some("/changed")
    );
    assert_eq!(
        var(&eval(&t, &request("/setuser", &[])), "REMOTE_USER").as_deref(),
        Some("bob")
    );
}

#[test]
fn set_skipping_follows_variable_changes_and_order() {
    // Many pattern rules on two subjects, interleaved with an unconditional
    // rule; an action changes the Host midway: later rules see the new one.
    let mut rules: Vec<(String, String)> = Vec::new();
    for i in 0..300 {
        rules.push(("route-host".into(), format!("^nomatch{i}$ log:never")));
    }
    rules.push(("route-host".into(), "^a$ addvar:HTTP_HOST=b".into()));
    rules.push(("route-host".into(), "^a$ log:old-host".into()));
    rules.push(("route".into(), "^/x$ log:uri-1".into()));
    for i in 0..300 {
        rules.push(("route-uri".into(), format!("^/nomatch{i}$ log:never")));
    }
    rules.push(("route-host".into(), "^b$ log:new-host".into()));
    rules.push(("route-run".into(), "log:always".into()));
    rules.push(("route-uri".into(), "^/x$ log:uri-2".into()));
    let refs: Vec<(&str, &str)> = rules
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let t = table(&refs);
    let ev = eval(&t, &request("/x", &[("Host", "a")]));
    let logs: Vec<String> = ev
        .logs
        .iter()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    assert_eq!(logs, ["uri-1", "new-host", "always", "uri-2"]);
}
