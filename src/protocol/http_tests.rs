//! Tests of [`super`]: head checking and parsing, framing decisions.

use super::*;

fn parsed(raw: &str) -> RequestHead {
    read_head(raw.as_bytes(), &HeadLimits::default())
        .unwrap()
        .expect("complete head")
}

#[test]
fn check_head_table() {
    let small = HeadLimits {
        max_head_len: 32,
        max_headers: 2,
    };
    let default = HeadLimits::default();
    let bad_header = |msg: &str| Err(HeadError::BadHeader(msg.to_owned()));
    type Want = Result<HeadStatus, HeadError>;
    let complete = |head_len| Ok(HeadStatus::Complete { head_len });
    let cases: &[(&str, &[u8], HeadLimits, Want)] = &[
        ("empty", b"", default, Ok(HeadStatus::Incomplete)),
        (
            "request line only so far",
            b"GET / HTTP/1.1\r\n",
            default,
            Ok(HeadStatus::Incomplete),
        ),
        (
            "no headers",
            b"GET / HTTP/1.1\r\n\r\n",
            default,
            complete(18),
        ),
        (
            "body after the head",
            b"GET / HTTP/1.1\r\nA: b\r\n\r\nbody",
            default,
            complete(24),
        ),
        (
            "bare LF head never completes",
            b"GET / HTTP/1.1\nHost: a\n\n",
            default,
            Ok(HeadStatus::Incomplete),
        ),
        (
            "head exactly at the cap",
            b"GET / HTTP/1.1\r\nX: 0123456789\r\n\r\n",
            HeadLimits {
                max_head_len: 33,
                ..small
            },
            complete(33),
        ),
        (
            "head over the cap",
            b"GET / HTTP/1.1\r\nX: 0123456789\r\n\r\n",
            small,
            Err(HeadError::TooLarge { max: 32 }),
        ),
        (
            "endless head",
            &[b'a'; 40],
            small,
            Err(HeadError::TooLarge { max: 32 }),
        ),
        (
            "header count at the cap",
            b"GET / H\r\nA: 1\r\nB: 2\r\n\r\n",
            small,
            complete(23),
        ),
        (
            "too many headers",
            b"GET / H\r\nA:1\r\nB:2\r\nC:3\r\n\r\n",
            small,
            Err(HeadError::TooManyHeaders { max: 2 }),
        ),
        (
            "no space in request line",
            b"GARBAGE\r\n\r\n",
            default,
            Err(HeadError::BadRequestLine),
        ),
        (
            "one space in request line",
            b"GET /\r\n\r\n",
            default,
            Err(HeadError::BadRequestLine),
        ),
        (
            "empty request line",
            b"\r\n\r\n",
            default,
            Err(HeadError::BadRequestLine),
        ),
        (
            "control byte in target",
            b"GET /\x00 HTTP/1.1\r\n\r\n",
            default,
            Err(HeadError::BadRequestLine),
        ),
        (
            "bare CR in request line",
            b"GET /\rx HTTP/1.1\r\n\r\n",
            default,
            Err(HeadError::BadRequestLine),
        ),
        (
            "two spaces are accepted",
            b"GET  /x HTTP/1.1\r\n\r\n",
            default,
            complete(20),
        ),
        (
            "any protocol token",
            b"get /x FOO/9\r\n\r\n",
            default,
            complete(16),
        ),
        (
            "bare LF inside a CRLF head",
            b"GET / HTTP/1.1\r\nA: 1\nB: 2\r\n\r\n",
            default,
            Err(HeadError::BareLineFeed),
        ),
        (
            "header without colon",
            b"GET / HTTP/1.1\r\nBad\r\n\r\n",
            default,
            bad_header("invalid header name"),
        ),
        (
            "empty header name",
            b"GET / HTTP/1.1\r\n: v\r\n\r\n",
            default,
            bad_header("invalid header name"),
        ),
        (
            "space before colon",
            b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            default,
            bad_header("invalid header name"),
        ),
        (
            "obsolete line folding",
            b"GET / HTTP/1.1\r\nX-F: a\r\n b\r\n\r\n",
            default,
            bad_header("invalid header name"),
        ),
        (
            "control byte in value",
            b"GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n",
            default,
            bad_header("invalid header value"),
        ),
    ];
    for (name, buf, limits, want) in cases {
        assert_eq!(&check_head(buf, limits), want, "{name}");
    }
}

/// Limits above the default count headers on the heap: the same answers.
#[test]
fn header_limits_beyond_the_default() {
    let head = |n: usize| {
        let mut h = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..n {
            h.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        h.extend_from_slice(b"\r\n");
        h
    };
    let wide = HeadLimits {
        max_head_len: 1 << 20,
        max_headers: DEFAULT_MAX_HEADERS + 50,
    };
    let fits = head(DEFAULT_MAX_HEADERS + 50);
    let want = Ok(HeadStatus::Complete {
        head_len: fits.len(),
    });
    assert_eq!(check_head(&fits, &wide), want);
    assert_eq!(
        check_head(&head(DEFAULT_MAX_HEADERS + 51), &wide),
        Err(HeadError::TooManyHeaders {
            max: DEFAULT_MAX_HEADERS + 50
        })
    );
    let default = HeadLimits {
        max_head_len: 1 << 20,
        ..HeadLimits::default()
    };
    assert_eq!(
        check_head(&head(DEFAULT_MAX_HEADERS + 1), &default),
        Err(HeadError::TooManyHeaders {
            max: DEFAULT_MAX_HEADERS
        })
    );
}

#[test]
fn error_statuses() {
    let cases = [
        (HeadError::TooLarge { max: 1 }, 431),
        (HeadError::TooManyHeaders { max: 1 }, 431),
        (HeadError::BadRequestLine, 400),
        (HeadError::BareLineFeed, 400),
        (HeadError::BadHeader(String::new()), 400),
    ];
    for (err, status) in cases {
        assert_eq!(err.status(), status, "{err}");
    }
    assert_eq!(FramingError::UnsupportedTransferEncoding.status(), 501);
    assert_eq!(FramingError::LengthAndTransferEncoding.status(), 400);
}

#[test]
fn parse_keeps_what_uwsgi_keeps() {
    let head = parsed(
        "get /p?q HTTP/1.1\r\nHost: a\r\nX-A-B:  v1 \r\nX-T:\tv\r\nX-E:\r\nx-dup: 1\r\n\r\nbody",
    );
    assert_eq!(head.method, b"get");
    assert_eq!(head.target, b"/p?q");
    assert_eq!(head.protocol, b"HTTP/1.1");
    assert_eq!(head.version, 1);
    assert_eq!(head.head_len, 67);
    let headers: Vec<(&[u8], &[u8])> = head
        .headers
        .iter()
        .map(|(n, v)| (n.as_slice(), v.as_slice()))
        .collect();
    let want: &[(&[u8], &[u8])] = &[
        (b"Host", b"a"),
        (b"X-A-B", b"v1 "),
        (b"X-T", b"\tv"),
        (b"X-E", b""),
        (b"x-dup", b"1"),
    ];
    assert_eq!(headers, want);
    assert_eq!(head.header(b"X-DUP"), Some(&b"1"[..]));
    assert_eq!(head.header(b"missing"), None);
}

#[test]
fn versions() {
    let cases: &[(&str, &str, u8)] = &[
        ("1.1", "GET / HTTP/1.1\r\n\r\n", 1),
        ("1.0", "GET / HTTP/1.0\r\n\r\n", 0),
        ("other token is 1.0", "GET / FOO/9\r\n\r\n", 0),
        ("lower case is not HTTP/1.1", "GET / http/1.1\r\n\r\n", 0),
    ];
    for (name, raw, want) in cases {
        assert_eq!(parsed(raw).version, *want, "{name}");
    }
}

#[test]
fn parse_of_unchecked_bytes_does_not_panic() {
    for raw in [
        &b""[..],
        b"\r\n\r\n",
        b"GET\r\n\r\n",
        b"x\n\r\n\r\n:",
        b"\r\n\r\n\r\n",
    ] {
        let _ = RequestHead::parse(raw);
    }
}

#[test]
fn body_framing_table() {
    type Want = Result<BodyFraming, FramingError>;
    let cases: &[(&str, &str, Want)] = &[
        ("no body", "GET / HTTP/1.1\r\n\r\n", Ok(BodyFraming::None)),
        (
            "length",
            "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
            Ok(BodyFraming::Length(5)),
        ),
        (
            "length zero",
            "POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            Ok(BodyFraming::Length(0)),
        ),
        (
            "length with trailing space",
            "POST / HTTP/1.1\r\nContent-Length: 5 \r\n\r\n",
            Ok(BodyFraming::Length(5)),
        ),
        (
            "repeated equal lengths",
            "POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n",
            Ok(BodyFraming::Length(5)),
        ),
        (
            "equal list",
            "POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n",
            Ok(BodyFraming::Length(5)),
        ),
        (
            "chunked",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            Ok(BodyFraming::Chunked),
        ),
        (
            "chunked any case",
            "POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n",
            Ok(BodyFraming::Chunked),
        ),
        (
            "both: smuggling",
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            Err(FramingError::LengthAndTransferEncoding),
        ),
        (
            "conflicting lengths",
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            Err(FramingError::ConflictingContentLength),
        ),
        (
            "conflicting list",
            "POST / HTTP/1.1\r\nContent-Length: 3, 4\r\n\r\n",
            Err(FramingError::ConflictingContentLength),
        ),
        (
            "signed length",
            "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n",
            Err(FramingError::InvalidContentLength),
        ),
        (
            "hex length",
            "POST / HTTP/1.1\r\nContent-Length: 0x5\r\n\r\n",
            Err(FramingError::InvalidContentLength),
        ),
        (
            "empty length",
            "POST / HTTP/1.1\r\nContent-Length:\r\n\r\n",
            Err(FramingError::InvalidContentLength),
        ),
        (
            "overflowing length",
            "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
            Err(FramingError::InvalidContentLength),
        ),
        (
            "chunked not last",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            Err(FramingError::UnsupportedTransferEncoding),
        ),
        (
            "gzip then chunked is not decoded",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            Err(FramingError::UnsupportedTransferEncoding),
        ),
        (
            "chunked twice",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            Err(FramingError::UnsupportedTransferEncoding),
        ),
        (
            "identity",
            "POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n",
            Err(FramingError::UnsupportedTransferEncoding),
        ),
        (
            "empty coding",
            "POST / HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n",
            Err(FramingError::UnsupportedTransferEncoding),
        ),
        (
            "chunked on HTTP/1.0",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            Err(FramingError::TransferEncodingInHttp10),
        ),
    ];
    for (name, raw, want) in cases {
        assert_eq!(body_framing(&parsed(raw)), *want, "{name}");
    }
}

#[test]
fn keep_alive_table() {
    let cases: &[(&str, &str, bool)] = &[
        ("1.1 default", "GET / HTTP/1.1\r\n\r\n", true),
        (
            "1.1 close",
            "GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
            false,
        ),
        (
            "1.1 close any case",
            "GET / HTTP/1.1\r\nConnection: Close\r\n\r\n",
            false,
        ),
        (
            "1.1 close in a list",
            "GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n",
            false,
        ),
        (
            "1.1 upgrade",
            "GET / HTTP/1.1\r\nConnection: Upgrade\r\n\r\n",
            false,
        ),
        (
            "1.1 other token",
            "GET / HTTP/1.1\r\nConnection: TE\r\n\r\n",
            true,
        ),
        ("1.0 default", "GET / HTTP/1.0\r\n\r\n", false),
        (
            "1.0 keep-alive",
            "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
            true,
        ),
        (
            "1.0 keep-alive and close",
            "GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n",
            false,
        ),
        (
            "unknown protocol",
            "GET / FOO/9\r\nConnection: keep-alive\r\n\r\n",
            false,
        ),
    ];
    for (name, raw, want) in cases {
        assert_eq!(keep_alive(&parsed(raw)), *want, "{name}");
    }
}

#[test]
fn expect_table() {
    let cases: &[(&str, &str, bool)] = &[
        (
            "exact",
            "POST / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            true,
        ),
        (
            "any case",
            "POST / HTTP/1.1\r\nexpect: 100-Continue\r\n\r\n",
            true,
        ),
        ("absent", "POST / HTTP/1.1\r\n\r\n", false),
        (
            "other expectation",
            "POST / HTTP/1.1\r\nExpect: 200-ok\r\n\r\n",
            false,
        ),
    ];
    for (name, raw, want) in cases {
        assert_eq!(expects_continue(&parsed(raw)), *want, "{name}");
    }
}

#[test]
fn host_key_table() {
    let long = format!("GET / HTTP/1.1\r\nHost: {}\r\n\r\n", "h".repeat(256));
    let max = format!("GET / HTTP/1.1\r\nHost: {}\r\n\r\n", "h".repeat(255));
    let cases: &[(&str, &str, Result<Option<&str>, HostError>)] = &[
        (
            "present",
            "GET / HTTP/1.1\r\nHost: a.example:8080\r\n\r\n",
            Ok(Some("a.example:8080")),
        ),
        ("absent", "GET / HTTP/1.1\r\n\r\n", Ok(None)),
        (
            "empty",
            "GET / HTTP/1.1\r\nHost:\r\n\r\n",
            Err(HostError::Empty),
        ),
        ("255 bytes", &max, Ok(Some(&max[22..277]))),
        ("256 bytes", &long, Err(HostError::TooLong)),
        (
            "duplicate",
            "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n",
            Err(HostError::Duplicate),
        ),
    ];
    for (name, raw, want) in cases {
        let head = parsed(raw);
        let want = want.map(|h| h.map(str::as_bytes));
        assert_eq!(host_key(&head), want, "{name}");
    }
}
