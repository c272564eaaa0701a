//! Tests of [`super`]: the CGI vars compared with what uWSGI 2.0.21 sent
//! (captured from `--http` and from `--http-socket` + a `uwsgi:` route).

use super::*;
use crate::protocol::http::{read_head, HeadLimits, RequestHead};
use crate::protocol::uwsgi;

fn head(raw: &str) -> RequestHead {
    read_head(raw.as_bytes(), &HeadLimits::default())
        .unwrap()
        .expect("complete head")
}

fn as_text(vars: &[Var]) -> Vec<(String, String)> {
    vars.iter()
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn router_env<'a>(extra: &'a [Var]) -> RouterEnv<'a> {
    RouterEnv {
        server_name: b"vm",
        server_port: b"18081",
        remote_addr: b"127.0.0.1",
        remote_port: b"50000",
        extra,
        ..RouterEnv::default()
    }
}

/// spec §1.8 example C, with the real client port (50000) where uWSGI
/// wrote the byte-swapped 20675; same length, so same datasize.
#[test]
fn router_packet_is_example_c_byte_for_byte() {
    let example_c = uwsgi::tests::hex(&[
        "00 02 01 00 0e 00 52 45 51 55 45 53 54 5f 4d 45",
        "54 48 4f 44 03 00 47 45 54 09 00 50 41 54 48 5f",
        "49 4e 46 4f 06 00 2f 68 65 6c 6c 6f 0b 00 52 45",
        "51 55 45 53 54 5f 55 52 49 0a 00 2f 68 65 6c 6c",
        "6f 3f 78 3d 31 0c 00 51 55 45 52 59 5f 53 54 52",
        "49 4e 47 03 00 78 3d 31 0f 00 53 45 52 56 45 52",
        "5f 50 52 4f 54 4f 43 4f 4c 08 00 48 54 54 50 2f",
        "31 2e 31 0b 00 53 43 52 49 50 54 5f 4e 41 4d 45",
        "00 00 0b 00 53 45 52 56 45 52 5f 4e 41 4d 45 04",
        "00 77 65 62 31 0b 00 53 45 52 56 45 52 5f 50 4f",
        "52 54 04 00 38 30 38 30 0c 00 55 57 53 47 49 5f",
        "52 4f 55 54 45 52 04 00 68 74 74 70 0b 00 52 45",
        "4d 4f 54 45 5f 41 44 44 52 09 00 31 32 37 2e 30",
        "2e 30 2e 31 0b 00 52 45 4d 4f 54 45 5f 50 4f 52",
        "54 05 00 35 30 30 30 30 09 00 48 54 54 50 5f 48",
        "4f 53 54 11 00 61 6c 70 68 61 2e 65 78 61 6d 70",
        "6c 65 2e 63 6f 6d",
    ]);
    let head = head("GET /hello?x=1 HTTP/1.1\r\nHost: alpha.example.com\r\n\r\n");
    let env = RouterEnv {
        server_name: b"web1",
        server_port: b"8080",
        ..router_env(&[])
    };
    let packet = uwsgi::encode(0, 0, router_vars(&head, &env)).unwrap();
    assert_eq!(packet, example_c);
}

#[test]
fn router_vars_table() {
    let extra = vec![(b"MY_VAR".to_vec(), b"hello".to_vec())];
    let cases: &[(&str, &str, RouterEnv, &[(&str, &str)])] = &[
        (
            "header mapping, merging, escapes (captured)",
            "GET /a%20b/%2F?x=%20 HTTP/1.1\r\nX-Dup: 1\r\nHost: h.example:9\r\nx-dup: 2\r\n\
             X-A-B:  v1 \r\nX-T:\tv\r\nContent-Type: text/x\r\nContent-Length: 0\r\n\
             X-Custom_Under: u\r\nX-Custom-Under: w\r\nX-E:\r\n\r\n",
            router_env(&extra),
            &[
                ("REQUEST_METHOD", "GET"),
                ("PATH_INFO", "/a b//"),
                ("REQUEST_URI", "/a%20b/%2F?x=%20"),
                ("QUERY_STRING", "x=%20"),
                ("SERVER_PROTOCOL", "HTTP/1.1"),
                ("SCRIPT_NAME", ""),
                ("SERVER_NAME", "vm"),
                ("SERVER_PORT", "18081"),
                ("UWSGI_ROUTER", "http"),
                ("REMOTE_ADDR", "127.0.0.1"),
                ("REMOTE_PORT", "50000"),
                ("HTTP_X_DUP", "1, 2"),
                ("HTTP_HOST", "h.example:9"),
                ("HTTP_X_A_B", "v1 "),
                ("HTTP_X_T", "\tv"),
                ("CONTENT_TYPE", "text/x"),
                ("CONTENT_LENGTH", "0"),
                ("HTTP_X_CUSTOM_UNDER", "u, w"),
                ("HTTP_X_E", ""),
                ("MY_VAR", "hello"),
            ],
        ),
        (
            "no query: REQUEST_URI before PATH_INFO (captured)",
            "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
            router_env(&[]),
            &[
                ("REQUEST_METHOD", "POST"),
                ("REQUEST_URI", "/p"),
                ("PATH_INFO", "/p"),
                ("QUERY_STRING", ""),
                ("SERVER_PROTOCOL", "HTTP/1.1"),
                ("SCRIPT_NAME", ""),
                ("SERVER_NAME", "vm"),
                ("SERVER_PORT", "18081"),
                ("UWSGI_ROUTER", "http"),
                ("REMOTE_ADDR", "127.0.0.1"),
                ("REMOTE_PORT", "50000"),
                ("HTTP_HOST", "a"),
                ("HTTP_TRANSFER_ENCODING", "chunked"),
            ],
        ),
        (
            "two spaces: empty URI, protocol swallows the path (captured)",
            "GET  /x HTTP/1.1\r\n\r\n",
            router_env(&[]),
            &[
                ("REQUEST_METHOD", "GET"),
                ("REQUEST_URI", ""),
                ("PATH_INFO", ""),
                ("QUERY_STRING", ""),
                ("SERVER_PROTOCOL", "/x HTTP/1.1"),
                ("SCRIPT_NAME", ""),
                ("SERVER_NAME", "vm"),
                ("SERVER_PORT", "18081"),
                ("UWSGI_ROUTER", "http"),
                ("REMOTE_ADDR", "127.0.0.1"),
                ("REMOTE_PORT", "50000"),
            ],
        ),
        (
            "server-name-as-http-host, https (SERVER_NAME moves before HTTP_HOST)",
            "get /x FOO/9\r\nX-A: 1\r\nHost: a.b:9\r\n\r\n",
            RouterEnv {
                server_name_as_http_host: true,
                https: true,
                ..router_env(&[])
            },
            &[
                ("REQUEST_METHOD", "get"),
                ("REQUEST_URI", "/x"),
                ("PATH_INFO", "/x"),
                ("QUERY_STRING", ""),
                ("SERVER_PROTOCOL", "FOO/9"),
                ("SCRIPT_NAME", ""),
                ("SERVER_PORT", "18081"),
                ("UWSGI_ROUTER", "http"),
                ("HTTPS", "on"),
                ("REMOTE_ADDR", "127.0.0.1"),
                ("REMOTE_PORT", "50000"),
                ("HTTP_X_A", "1"),
                ("SERVER_NAME", "a.b:9"),
                ("HTTP_HOST", "a.b:9"),
            ],
        ),
        (
            "server-name-as-http-host without Host: no SERVER_NAME at all",
            "GET /x HTTP/1.1\r\n\r\n",
            RouterEnv {
                server_name_as_http_host: true,
                ..router_env(&[])
            },
            &[
                ("REQUEST_METHOD", "GET"),
                ("REQUEST_URI", "/x"),
                ("PATH_INFO", "/x"),
                ("QUERY_STRING", ""),
                ("SERVER_PROTOCOL", "HTTP/1.1"),
                ("SCRIPT_NAME", ""),
                ("SERVER_PORT", "18081"),
                ("UWSGI_ROUTER", "http"),
                ("REMOTE_ADDR", "127.0.0.1"),
                ("REMOTE_PORT", "50000"),
            ],
        ),
    ];
    for (name, raw, env, want) in cases {
        assert_eq!(
            as_text(&router_vars(&head(raw), env)),
            pairs(want),
            "{name}"
        );
    }
}

#[test]
fn http_socket_vars_table() {
    let plain = HttpSocketEnv {
        server_name: b"vm",
        server_port: Some(b"18082"),
        remote_addr: b"127.0.0.1",
        script_name: true,
        ..HttpSocketEnv::default()
    };
    let cases: &[(&str, &str, HttpSocketEnv, &[(&str, &str)])] = &[
        (
            "captured from --http-socket",
            "GET /a%20b/%2F?x=%20 HTTP/1.1\r\nX-Dup: 1\r\nHost: h.example:9\r\nx-dup: 2\r\n\
             X-A-B:  v1 \r\nContent-Type: text/x\r\nContent-Length: 0\r\n\r\n",
            plain,
            &[
                ("REQUEST_METHOD", "GET"),
                ("PATH_INFO", "/a b//"),
                ("REQUEST_URI", "/a%20b/%2F?x=%20"),
                ("QUERY_STRING", "x=%20"),
                ("SERVER_PROTOCOL", "HTTP/1.1"),
                ("SCRIPT_NAME", ""),
                ("SERVER_NAME", "vm"),
                ("SERVER_PORT", "18082"),
                ("REMOTE_ADDR", "127.0.0.1"),
                ("HTTP_X_DUP", "1, 2"),
                ("HTTP_HOST", "h.example:9"),
                ("HTTP_X_A_B", "v1 "),
                ("CONTENT_TYPE", "text/x"),
                ("CONTENT_LENGTH", "0"),
            ],
        ),
        (
            "manage-script-name, PROXY line, https-socket",
            "GET /x HTTP/1.1\r\n\r\n",
            HttpSocketEnv {
                server_addr: Some(b"10.9.9.9"),
                server_port: Some(b"80"),
                remote_addr: b"10.1.2.3",
                remote_port: Some(b"5555"),
                https: Some(b"on"),
                script_name: false,
                ..plain
            },
            &[
                ("REQUEST_METHOD", "GET"),
                ("REQUEST_URI", "/x"),
                ("PATH_INFO", "/x"),
                ("QUERY_STRING", ""),
                ("SERVER_PROTOCOL", "HTTP/1.1"),
                ("SERVER_NAME", "vm"),
                ("SERVER_ADDR", "10.9.9.9"),
                ("SERVER_PORT", "80"),
                ("REMOTE_ADDR", "10.1.2.3"),
                ("REMOTE_PORT", "5555"),
                ("HTTPS", "on"),
            ],
        ),
    ];
    for (name, raw, env, want) in cases {
        assert_eq!(
            as_text(&http_socket_vars(&head(raw), env)),
            pairs(want),
            "{name}"
        );
    }
}

#[test]
fn path_info_table() {
    // spec §2.5, plus cases checked against uWSGI 2.0.21.
    let cases: &[(&str, &[u8], &[u8])] = &[
        (
            "encoded space and slash",
            b"/foo%20bar/%2Fx",
            b"/foo bar//x",
        ),
        ("double slash kept", b"/a//b", b"/a//b"),
        ("dot segment", b"/a/./b", b"/a/b"),
        ("dot-dot segment", b"/a/b/../c", b"/a/c"),
        ("trailing dot-dot", b"/a/b/..", b"/a/"),
        ("cannot climb above root", b"/../x", b"/x"),
        ("cannot climb twice", b"/a/../../x", b"/x"),
        ("trailing dot", b"/a/.", b"/a/"),
        ("dot-name", b"/a/.b", b"/a/.b"),
        ("dot-dot-name", b"/a/..b", b"/a/..b"),
        ("three dots", b"/a/...", b"/a/..."),
        ("encoded dots not resolved", b"/%41%2e%2e/", b"/A../"),
        ("fragment ends the path", b"/a#frag", b"/a"),
        ("plus kept", b"/a+b", b"/a+b"),
        ("double percent", b"/a%%b", b"/a%b"),
        ("bad escape is NUL", b"/a%zz", b"/a\x00"),
        ("bad second digit is NUL", b"/a%4z", b"/a\x00"),
        ("truncated escape dropped", b"/a%4", b"/a"),
        ("lone percent dropped", b"/a%", b"/a"),
        ("NUL escape", b"/a%00b", b"/a\x00b"),
        ("utf-8 bytes", b"/caf%C3%A9", b"/caf\xc3\xa9"),
        ("encoded question mark", b"/a%3Fb", b"/a?b"),
        ("relative", b"a/b", b"a/b"),
        ("asterisk", b"*", b"*"),
        ("empty", b"", b""),
        ("root", b"/", b"/"),
        (
            "relative dot segments (captured)",
            b"./../a/./b/%2e%2E/c",
            b"/a/b/../c",
        ),
        ("relative dot-name", b".x", b".x"),
        ("relative dot-dot-name", b"..x/y", b"..x/y"),
        (
            "absolute form kept",
            b"http://x.example/p",
            b"http://x.example/p",
        ),
    ];
    for (name, raw, want) in cases {
        assert_eq!(decode_path_info(raw), *want, "{name}");
    }
}

#[test]
fn header_names() {
    let cases: &[(&str, &str, &str)] = &[
        ("plain", "Host", "HTTP_HOST"),
        ("dashes", "X-Forwarded-For", "HTTP_X_FORWARDED_FOR"),
        ("underscore kept", "X-Custom_Under", "HTTP_X_CUSTOM_UNDER"),
        (
            "content-length unprefixed",
            "content-length",
            "CONTENT_LENGTH",
        ),
        ("content-type unprefixed", "Content-Type", "CONTENT_TYPE"),
        (
            "content_type spelled with underscore",
            "Content_Type",
            "CONTENT_TYPE",
        ),
        (
            "other content header prefixed",
            "Content-Encoding",
            "HTTP_CONTENT_ENCODING",
        ),
        ("http prefix doubled", "Http-Foo", "HTTP_HTTP_FOO"),
    ];
    for (name, header, want) in cases {
        assert_eq!(
            header_var_name(header.as_bytes()),
            want.as_bytes(),
            "{name}"
        );
    }
}

#[test]
fn small_helpers() {
    let ports: &[(&str, &[u8], Option<&[u8]>)] = &[
        ("ip and port", b"127.0.0.1:8080", Some(b"8080")),
        ("port only", b":9090", Some(b"9090")),
        ("ipv6 takes the last colon", b"[::1]:8080", Some(b"8080")),
        ("unix socket", b"/tmp/app.sock", None),
    ];
    for (name, socket, want) in ports {
        assert_eq!(port_of_socket_name(socket), *want, "{name}");
    }
    let vars: &[(&str, &[u8], Option<(&[u8], &[u8])>)] = &[
        (
            "key and value",
            b"MY_VAR=hello",
            Some((b"MY_VAR", b"hello")),
        ),
        ("first equals splits", b"A=b=c", Some((b"A", b"b=c"))),
        ("empty value", b"A=", Some((b"A", b""))),
        ("no equals skipped", b"JUSTKEY", None),
        ("empty key skipped", b"=v", None),
    ];
    for (name, entry, want) in vars {
        assert_eq!(parse_http_var(entry), *want, "{name}");
    }
}
