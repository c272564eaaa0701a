//! The HTTP router gateway end to end: a router child process in front of
//! test backends (uwsgi servers on UNIX sockets in the test's temp dir that
//! record what they receive). Scenarios from `spec/routing-and-protocol.md`
//! §9 that apply to the router, with ruwsgi's decisions (HTTP errors,
//! keep-alive, pipelining, de-chunked uploads).

pub(crate) mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{exchange, host_name, ok, Answer, Backend, Client, Received, Reply, Router};

use crate::util::TempDir;

fn answer(f: impl Fn(&Received) -> Reply + Send + Sync + 'static) -> Answer {
    Arc::new(f)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn host_routing_reaches_the_vassal_in_one_hop() {
    let dir = TempDir::new();
    let alpha = Backend::start(
        &dir.path().join("uwsgi_alpha.sock"),
        answer(|_| ok("alpha")),
    );
    let fixed = Backend::start(
        &dir.path().join("uwsgi_fixed.sock"),
        answer(|_| ok("fixed")),
    );
    let d = dir.path().display().to_string();
    let router = Router::start(
        dir.path(),
        &[
            (
                "route-host",
                &format!(r"^static\.org$ uwsgi:{d}/uwsgi_fixed.sock,5,7,myapp"),
            ),
            (
                "route-host",
                &format!(r"^([-\w]+)\.example\.com$ uwsgi:{d}/uwsgi_$1.sock,0,0"),
            ),
        ],
        None,
    );
    let mut c = Client::connect(router.addr);
    c.send(b"GET /hello?x=1 HTTP/1.1\r\nHost: alpha.example.com\r\n\r\n");
    let r = c.response(false).expect("response");
    assert_eq!((r.status, text(&r.body)), (200, "alpha".to_string()));
    let got = alpha.next();
    assert_eq!((got.modifier1, got.modifier2), (0, 0));
    assert_eq!(got.var("HTTP_HOST"), Some("alpha.example.com"));

    c.send(b"GET /s HTTP/1.1\r\nHost: static.org\r\n\r\n");
    let r = c.response(false).expect("response");
    assert_eq!(text(&r.body), "fixed");
    let got = fixed.next();
    assert_eq!((got.modifier1, got.modifier2), (5, 7));
    assert_eq!(
        got.vars.last().map(|(k, v)| (k.as_str(), v.as_str())),
        Some(("UWSGI_APPID", "myapp"))
    );

    // The port is part of the Host: no rule matches, and there is no
    // default backend: 502.
    c.send(b"GET / HTTP/1.1\r\nHost: alpha.example.com:8080\r\n\r\n");
    assert_eq!(c.response(false).expect("response").status, 502);
}

#[test]
fn exact_vars_in_order() {
    let dir = TempDir::new();
    let s0 = Backend::start(&dir.path().join("s0.sock"), answer(|_| ok("x")));
    let router = Router::start(dir.path(), &[("http-var", "MY_VAR=hello")], Some(&s0.path));
    let mut c = Client::connect(router.addr);
    let port = c.stream.local_addr().expect("local").port();
    c.send(b"GET /a%20b/%2F?x=%20 HTTP/1.1\r\nHost: h.example:9\r\nX-Dup: 1\r\nx-dup: 2\r\nContent-Type: text/plain\r\n\r\n");
    assert_eq!(c.response(false).expect("response").status, 200);
    let got = s0.next();
    let expected: Vec<(String, String)> = [
        ("REQUEST_METHOD", "GET".to_string()),
        ("PATH_INFO", "/a b//".to_string()),
        ("REQUEST_URI", "/a%20b/%2F?x=%20".to_string()),
        ("QUERY_STRING", "x=%20".to_string()),
        ("SERVER_PROTOCOL", "HTTP/1.1".to_string()),
        ("SCRIPT_NAME", String::new()),
        ("SERVER_NAME", host_name()),
        ("SERVER_PORT", router.addr.port().to_string()),
        ("UWSGI_ROUTER", "http".to_string()),
        ("REMOTE_ADDR", "127.0.0.1".to_string()),
        ("REMOTE_PORT", port.to_string()),
        ("HTTP_HOST", "h.example:9".to_string()),
        ("HTTP_X_DUP", "1, 2".to_string()),
        ("CONTENT_TYPE", "text/plain".to_string()),
        ("MY_VAR", "hello".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(got.vars, expected);
    assert_eq!((got.modifier1, got.modifier2), (0, 0));
}

#[test]
fn missing_vassal_socket_is_a_502_naming_nothing() {
    let dir = TempDir::new();
    let d = dir.path().display().to_string();
    let router = Router::start(
        dir.path(),
        &[(
            "route-host",
            &format!(r"^([-\w]+)\.example\.com$ uwsgi:{d}/uwsgi_$1.sock,0,0"),
        )],
        None,
    );
    let reply = text(&exchange(
        router.addr,
        b"GET / HTTP/1.1\r\nHost: nope.example.com\r\n\r\n",
    ));
    assert!(reply.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{reply}");
    assert!(!reply.contains("uwsgi_nope"), "{reply}");
    let log = router.wait_log("error routing request to uwsgi server");
    assert!(
        log.contains(&format!(
            "error routing request to uwsgi server {d}/uwsgi_nope.sock (No such file or directory)"
        )),
        "{log}"
    );
}

#[test]
fn silent_backend_is_a_504() {
    let dir = TempDir::new();
    let s0 = Backend::start(&dir.path().join("s0.sock"), answer(|_| Reply::Silent));
    let router = Router::start(dir.path(), &[("http-timeout", "1")], Some(&s0.path));
    let started = Instant::now();
    let reply = text(&exchange(
        router.addr,
        b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n",
    ));
    assert!(
        reply.starts_with("HTTP/1.1 504 Gateway Timeout\r\n"),
        "{reply}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    router.wait_log("sent no response within 1s");
}

#[test]
fn client_errors() {
    let dir = TempDir::new();
    let s0 = Backend::start(&dir.path().join("s0.sock"), answer(|_| ok("x")));
    let router = Router::start(dir.path(), &[], Some(&s0.path));
    let long_host = format!("GET / HTTP/1.1\r\nHost: {}\r\n\r\n", "h".repeat(300));
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "v".repeat(70_000)
    );
    let cases: &[(&str, &[u8], &str)] = &[
        ("no spaces", b"GARBAGE\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"),
        ("one space", b"GET /\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"),
        ("header without colon", b"GET /env HTTP/1.1\r\nBad\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"),
        ("empty host", b"GET / HTTP/1.1\r\nHost:\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"),
        ("long host", long_host.as_bytes(), "HTTP/1.1 400 Bad Request\r\n"),
        (
            "length and chunked",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 400 Bad Request\r\n",
        ),
        ("header block too large", huge.as_bytes(), "HTTP/1.1 431 Request Header Fields Too Large\r\n"),
    ];
    for (name, request, expected) in cases {
        let reply = text(&exchange(router.addr, request));
        assert!(reply.starts_with(expected), "{name}: {reply}");
    }
    assert!(
        s0.try_next(Duration::from_millis(50)).is_none(),
        "a bad request reached the backend"
    );
    let log = router.log_text();
    assert!(log.contains("client_addr: 127.0.0.1"), "{log}");
    assert!(log.contains("invalid request: "), "{log}");
}

#[test]
fn slow_headers_get_a_408() {
    let dir = TempDir::new();
    let s0 = Backend::start(&dir.path().join("s0.sock"), answer(|_| ok("x")));
    let router = Router::start(dir.path(), &[("http-headers-timeout", "1")], Some(&s0.path));
    let started = Instant::now();
    let reply = text(&exchange(router.addr, b"GET / HTTP/1.1\r\nHost: a\r\n"));
    assert!(
        reply.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
        "{reply}"
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
    // A connection that sent nothing is closed without a word.
    assert_eq!(exchange(router.addr, b""), b"");
}

#[test]
fn keep_alive_and_pipelining() {
    let dir = TempDir::new();
    let s0 = Backend::start(
        &dir.path().join("s0.sock"),
        answer(|r| ok(&format!("path={}", r.var("PATH_INFO").unwrap_or("")))),
    );
    let router = Router::start(dir.path(), &[], Some(&s0.path));
    let mut c = Client::connect(router.addr);
    c.send(b"GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\r\nHost: a\r\n\r\nHEAD /three HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(text(&c.response(false).expect("first").body), "path=/one");
    assert_eq!(text(&c.response(false).expect("second").body), "path=/two");
    let head = c.response(true).expect("third");
    assert_eq!(
        (head.status, head.header("content-length")),
        (200, Some("11"))
    );
    assert!(c.is_open(Duration::from_millis(200)));
    c.send(b"GET /four HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(text(&c.response(false).expect("fourth").body), "path=/four");
    // HTTP/1.0 and Connection: close end the connection after the response.
    for req in [
        &b"GET /x HTTP/1.0\r\n\r\n"[..],
        b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    ] {
        let reply = text(&exchange(router.addr, req));
        assert!(reply.ends_with("path=/x"), "{reply}");
    }
}

#[test]
fn responses_without_length() {
    let dir = TempDir::new();
    let nocl = || {
        Reply::Pieces(
            vec![
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nchunk1-".to_vec(),
                b"chunk2".to_vec(),
            ],
            Duration::from_millis(20),
        )
    };
    let s0 = Backend::start(&dir.path().join("s0.sock"), answer(move |_| nocl()));
    let router = Router::start(dir.path(), &[], Some(&s0.path));
    let reply = text(&exchange(
        router.addr,
        b"GET /nocl HTTP/1.1\r\nHost: a\r\n\r\n",
    ));
    assert_eq!(
        reply,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nchunk1-chunk2"
    );
    drop(router);
    let router = Router::start(dir.path(), &[("http-auto-chunked", "true")], Some(&s0.path));
    let mut c = Client::connect(router.addr);
    c.send(b"GET /nocl HTTP/1.1\r\nHost: a\r\n\r\n");
    let r = c.response(false).expect("chunked response");
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(text(&r.body), "chunk1-chunk2");
    c.send(b"GET /again HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(
        text(&c.response(false).expect("next").body),
        "chunk1-chunk2"
    );
}

#[test]
fn chunked_upload_is_forwarded_with_a_length() {
    let dir = TempDir::new();
    let s0 = Backend::start(
        &dir.path().join("s0.sock"),
        answer(|r| ok(&format!("{}", r.body.len()))),
    );
    let router = Router::start(dir.path(), &[], Some(&s0.path));
    let mut c = Client::connect(router.addr);
    c.send(b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n");
    let interim = c.response(false).expect("100 Continue");
    assert_eq!(interim.status, 100);
    c.send(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    let r = c.response(false).expect("response");
    assert_eq!(text(&r.body), "11");
    let got = s0.next();
    assert_eq!(got.body, b"hello world");
    assert_eq!(got.var("CONTENT_LENGTH"), Some("11"));
    assert_eq!(got.var("HTTP_TRANSFER_ENCODING"), None);
    // The connection goes on.
    c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(c.response(false).expect("next").status, 200);
}

#[test]
fn large_bodies_stream_both_ways() {
    const SIZE: usize = 8 * 1024 * 1024;
    let dir = TempDir::new();
    let s0 = Backend::start(
        &dir.path().join("s0.sock"),
        answer(|r| {
            let mut reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                r.body.len()
            )
            .into_bytes();
            reply.extend_from_slice(&r.body);
            Reply::Bytes(reply)
        }),
    );
    let router = Router::start(dir.path(), &[], Some(&s0.path));
    let body: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    let mut c = Client::connect(router.addr);
    let mut stream = c.stream.try_clone().expect("clone");
    let upload = body.clone();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        stream.write_all(
            format!("POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: {SIZE}\r\n\r\n").as_bytes(),
        )?;
        stream.write_all(&upload)
    });
    let r = c.response(false).expect("response");
    writer.join().expect("writer").expect("upload");
    assert_eq!(r.body.len(), SIZE);
    assert!(r.body == body, "body changed on the way");
    assert_eq!(s0.next().body.len(), SIZE);
}

#[test]
fn round_robin_with_a_dead_node() {
    let dir = TempDir::new();
    let a = Backend::start(&dir.path().join("a.sock"), answer(|_| ok("A")));
    let b = Backend::start(&dir.path().join("b.sock"), answer(|_| ok("B")));
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_addr = dead.local_addr().expect("addr").to_string();
    drop(dead);
    let (pa, pb) = (a.path.display().to_string(), b.path.display().to_string());
    let router = Router::start(
        dir.path(),
        &[("http-to", &pa), ("http-to", &dead_addr), ("http-to", &pb)],
        None,
    );
    let bodies: Vec<String> = (0..6)
        .map(|_| text(&Client::connect_and_get(router.addr)))
        .collect();
    assert!(bodies.iter().all(|b| b == "A" || b == "B"), "{bodies:?}");
    assert!(
        bodies.contains(&"A".to_string()) && bodies.contains(&"B".to_string()),
        "{bodies:?}"
    );
    let log = router.wait_log("marking");
    assert!(
        log.contains(&format!(
            "unable to connect() to node \"{dead_addr}\" (0 retries): Connection refused"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!("[uwsgi-http] a => marking {dead_addr} as failed")),
        "{log}"
    );
}

impl Client {
    fn connect_and_get(addr: std::net::SocketAddr) -> Vec<u8> {
        let mut c = Client::connect(addr);
        c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        c.response(false).expect("response").body
    }
}

#[test]
fn generated_responses_and_header_edits() {
    let dir = TempDir::new();
    let s0 = Backend::start(
        &dir.path().join("s0.sock"),
        answer(|_| {
            Reply::Bytes(b"HTTP/1.1 200 OK\r\nX-App: 1\r\nContent-Length: 2\r\n\r\nok".to_vec())
        }),
    );
    let router = Router::start(
        dir.path(),
        &[
            ("route", "^/r302/(.*) redirect:/new/$1"),
            ("route", "^/health return:200"),
            ("route", "^/edit addheader:X-Added: yes"),
            ("route", "^/edit delheader:X-App"),
            ("route", "^/auth basicauth:My Realm,user:pass"),
        ],
        Some(&s0.path),
    );
    let reply = text(&exchange(
        router.addr,
        b"GET /r302/a/b?q=1 HTTP/1.1\r\nHost: a\r\n\r\n",
    ));
    assert_eq!(
        reply,
        "HTTP/1.1 302 Found\r\nLocation: /new/a/b\r\n\r\nMoved"
    );
    let mut c = Client::connect(router.addr);
    c.send(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
    let r = c.response(false).expect("health");
    assert_eq!((r.status, text(&r.body)), (200, "OK".to_string()));
    c.send(b"GET /edit HTTP/1.1\r\nHost: a\r\n\r\n");
    let r = c.response(false).expect("edited");
    assert_eq!(
        r.head,
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Added: yes\r\n\r\n"
    );
    let reply = text(&exchange(
        router.addr,
        b"GET /auth HTTP/1.1\r\nHost: a\r\n\r\n",
    ));
    assert_eq!(reply, "HTTP/1.1 401 Authorization Required\r\nWWW-Authenticate: Basic realm=\"My Realm\"\r\n\r\nUnauthorized");
    c.send(b"GET /auth HTTP/1.1\r\nHost: a\r\nAuthorization: Basic dXNlcjpwYXNz\r\n\r\n");
    assert_eq!(c.response(false).expect("authorized").status, 200);
    assert_eq!(s0.next().var("PATH_INFO"), Some("/edit"));
    let got = s0.next();
    assert_eq!(
        (got.var("PATH_INFO"), got.var("REMOTE_USER")),
        (Some("/auth"), Some("user"))
    );
}

#[test]
fn websocket_upgrade_is_spliced() {
    let dir = TempDir::new();
    let s0 = Backend::start(
        &dir.path().join("s0.sock"),
        answer(|_| {
            Reply::Echo(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n".to_vec())
        }),
    );
    let router = Router::start(dir.path(), &[], Some(&s0.path));
    let mut c = Client::connect(router.addr);
    c.send(b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: x\r\nSec-WebSocket-Version: 13\r\n\r\n");
    assert_eq!(c.response(true).expect("101").status, 101);
    c.send(b"ping-frame");
    let mut buf = [0u8; 10];
    use std::io::Read;
    c.stream.read_exact(&mut buf).expect("echo");
    assert_eq!(&buf, b"ping-frame");
}

#[test]
fn bad_rule_stops_the_start_with_its_line() {
    let dir = TempDir::new();
    let (rc, log) = Router::start_failure(dir.path(), &[("route", "^/x frobnicate:1")]);
    assert_eq!(rc, 1);
    assert!(
        log.contains("unknown routing action \"frobnicate\""),
        "{log}"
    );
    assert!(log.contains("router.conf line 2"), "{log}");
    let (rc, log) = Router::start_failure(dir.path(), &[("route", r"(a)\1 last:")]);
    assert_eq!(rc, 1);
    assert!(log.contains("backreference"), "{log}");
}

#[test]
fn sigterm_drains_and_exits_zero() {
    let dir = TempDir::new();
    let s0 = Backend::start(
        &dir.path().join("s0.sock"),
        answer(|_| {
            Reply::Pieces(
                vec![
                    b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab".to_vec(),
                    b"cd".to_vec(),
                ],
                Duration::from_millis(300),
            )
        }),
    );
    let router = Router::start(dir.path(), &[], Some(&s0.path));
    let mut c = Client::connect(router.addr);
    c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let _ = s0.next();
    let addr = router.addr;
    let status = std::thread::spawn(move || router.stop_with(libc::SIGTERM));
    let r = c.response(false).expect("in-flight response finishes");
    assert_eq!(text(&r.body), "abcd");
    assert_eq!(c.rest().expect("closed after the response"), b"");
    assert_eq!(status.join().expect("join"), Some(0));
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "still accepting after shutdown"
    );
}

#[test]
fn http_action_and_static_files() {
    use std::io::{Read, Write};
    let dir = TempDir::new();
    let http = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let http_addr = http.local_addr().expect("addr");
    let server = std::thread::spawn(move || {
        let (mut s, _) = http.accept().expect("accept");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") || !req.ends_with(b"data") {
            let n = s.read(&mut buf).expect("read request");
            assert!(n > 0, "request cut: {}", String::from_utf8_lossy(&req));
            req.extend_from_slice(&buf[..n]);
        }
        s.write_all(b"HTTP/1.0 201 Created\r\nX-Back: 1\r\nContent-Length: 3\r\n\r\nabc")
            .expect("reply");
        String::from_utf8_lossy(&req).into_owned()
    });
    let file = dir.path().join("file.txt");
    std::fs::write(&file, "static body").expect("file");
    // `mimefile` replaces /etc/mime.types; the built-in types still fill in.
    let icon = dir.path().join("Icon.ICO");
    std::fs::write(&icon, "ico").expect("icon");
    let types = dir.path().join("x.types");
    std::fs::write(&types, "image/x-test-icon\tico\n").expect("types");
    let router = Router::start(
        dir.path(),
        &[
            (
                "route",
                &format!("^/h/(.*) http:{http_addr},backend.example,/rewritten/$1"),
            ),
            ("route", &format!("^/s static:{}", file.display())),
            ("route", &format!("^/i static:{}", icon.display())),
            ("mimefile", &types.display().to_string()),
            (
                "route",
                &format!("^/fifo static:{}/fifo", dir.path().display()),
            ),
            (
                "route",
                &format!("^/none static:{}/none", dir.path().display()),
            ),
        ],
        None,
    );
    let mut c = Client::connect(router.addr);
    c.send(b"POST /h/a/b?x=1 HTTP/1.1\r\nHost: front\r\nX-Forwarded-For: 1.2.3.4\r\nTE: trailers\r\nX-Custom_Under: u\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\ndata");
    let r = c.response(false).expect("response");
    assert_eq!((r.status, text(&r.body)), (201, "abc".to_string()));
    assert_eq!(r.header("x-back"), Some("1"));
    let seen = server.join().expect("http server");
    assert_eq!(
        seen,
        "POST /rewritten/a/b HTTP/1.0\r\nX-Custom-Under: u\r\nHost: backend.example\r\nContent-Type: text/plain\r\nContent-Length: 4\r\nConnection: close\r\nX-Forwarded-For: 1.2.3.4, 127.0.0.1\r\n\r\ndata"
    );
    // The HTTP/1.0 response closed the connection; a file on a new one.
    let mut c = Client::connect(router.addr);
    c.send(b"GET /s HTTP/1.1\r\nHost: a\r\n\r\n");
    let r = c.response(false).expect("static");
    assert_eq!((r.status, text(&r.body)), (200, "static body".to_string()));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    let modified = r
        .header("last-modified")
        .expect("Last-Modified")
        .to_string();
    c.send(
        format!("GET /s HTTP/1.1\r\nHost: a\r\nIf-Modified-Since: {modified}\r\n\r\n").as_bytes(),
    );
    assert_eq!(c.response(false).expect("304").status, 304);
    c.send(b"GET /i HTTP/1.1\r\nHost: a\r\n\r\n");
    let r = c.response(false).expect("icon");
    assert_eq!((r.status, text(&r.body)), (200, "ico".to_string()));
    assert_eq!(r.header("content-type"), Some("image/x-test-icon"));
    // Not a regular file: a 404 (uWSGI sends nothing), and a FIFO nobody
    // writes to does not stall the router.
    let fifo = std::ffi::CString::new(format!("{}/fifo", dir.path().display())).expect("path");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0, "mkfifo");
    for path in ["/fifo", "/none", "/s"] {
        c.send(format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
        let want = if path == "/s" { 200 } else { 404 };
        assert_eq!(c.response(false).expect(path).status, want, "{path}");
    }
}

#[test]
fn expect_limit_and_dead_only_node() {
    let dir = TempDir::new();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_addr = dead.local_addr().expect("addr").to_string();
    drop(dead);
    let router = Router::start(
        dir.path(),
        &[("http-to", &dead_addr), ("http-manage-expect", "10")],
        None,
    );
    let reply = text(&exchange(
        router.addr,
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 50\r\n\r\n",
    ));
    assert!(
        reply.starts_with("HTTP/1.1 413 Request Entity Too Large\r\n"),
        "{reply}"
    );
    let reply = text(&exchange(router.addr, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
    assert!(reply.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{reply}");
    let log = router.wait_log("marking");
    assert!(
        log.contains(&format!(
            "unable to connect() to node \"{dead_addr}\" (0 retries): Connection refused"
        )),
        "{log}"
    );
}

#[test]
fn many_clients_at_once() {
    const CLIENTS: usize = 32;
    const REQUESTS: usize = 16;
    let dir = TempDir::new();
    let s0 = Backend::start(
        &dir.path().join("s0.sock"),
        answer(|r| ok(r.var("QUERY_STRING").unwrap_or(""))),
    );
    let router = Router::start(dir.path(), &[], Some(&s0.path));
    let addr = router.addr;
    let workers: Vec<_> = (0..CLIENTS)
        .map(|i| {
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                for j in 0..REQUESTS {
                    c.send(format!("GET /?{i}-{j} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
                    let r = c.response(false).expect("response");
                    assert_eq!(text(&r.body), format!("{i}-{j}"));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("client");
    }
    let mut seen = 0;
    while s0.try_next(Duration::from_millis(100)).is_some() {
        seen += 1;
    }
    assert_eq!(seen, CLIENTS * REQUESTS);
}

/// A uwsgi backend on TCP `addr` answering `body` to every request, with
/// the modifier1 it received in an `X-M1` header. Runs until the test
/// process ends (a detached thread; the listener dies with it).
fn tcp_backend(addr: &str, body: &'static str) -> Option<std::net::SocketAddr> {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind(addr).ok()?;
    let local = listener.local_addr().ok()?;
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut header = [0u8; 4];
            if s.read_exact(&mut header).is_err() {
                continue;
            }
            let mut vars = vec![0u8; usize::from(u16::from_le_bytes([header[1], header[2]]))];
            let _ = s.read_exact(&mut vars);
            let reply = format!(
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nX-M1: {}\r\n\r\n{body}",
                body.len(),
                header[0]
            );
            let _ = s.write_all(reply.as_bytes());
        }
    });
    Some(local)
}

#[test]
fn backend_address_forms_v6_and_host_names() {
    let dir = TempDir::new();
    let v4 = tcp_backend("127.0.0.1:0", "v4").expect("bind 127.0.0.1");
    let name = format!("localhost:{}", v4.port());
    let mut to = vec![("http-to", name.clone())];
    let v6 = tcp_backend("[::1]:0", "v6");
    if let Some(v6) = v6 {
        to.push(("http-to", format!("[::1]:{}", v6.port())));
    } else {
        crate::util::visible(
            "router::backend_address_forms: no IPv6 loopback; [v6]:port not checked",
        );
    }
    to.push(("http-modifier1", "5".to_string()));
    let opts: Vec<(&str, &str)> = to.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let router = Router::start(dir.path(), &opts, None);
    let mut bodies = Vec::new();
    for _ in 0..4 {
        let mut c = Client::connect(router.addr);
        c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        let r = c.response(false).expect("response");
        assert_eq!(r.header("X-M1"), Some("5"), "http-modifier1");
        bodies.push(text(&r.body));
    }
    assert!(bodies.contains(&"v4".to_string()), "{bodies:?}");
    if v6.is_some() {
        assert!(bodies.contains(&"v6".to_string()), "{bodies:?}");
    }
}

#[test]
fn fallback_after_dead_nodes_and_keepalive_off() {
    let dir = TempDir::new();
    let fb = Backend::start(&dir.path().join("fb.sock"), answer(|_| ok("fallback")));
    let dead = dir.path().join("dead.sock").display().to_string();
    let router = Router::start(
        dir.path(),
        &[
            ("http-to", &dead),
            ("http-fallback", &fb.path.display().to_string()),
            ("http-gracetime", "60"),
            ("http-keepalive", "0"),
        ],
        None,
    );
    for _ in 0..2 {
        let mut c = Client::connect(router.addr);
        c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        let r = c.response(false).expect("response");
        assert_eq!((r.status, text(&r.body)), (200, "fallback".to_string()));
        // http-keepalive = 0: one request per connection.
        assert!(!c.is_open(Duration::from_secs(2)), "connection kept open");
    }
    let log = router.wait_log("marking");
    assert!(
        log.contains(&format!(
            "unable to connect() to node \"{dead}\" (0 retries)"
        )),
        "{log}"
    );
    // Marked failed for the grace time: the second request went straight
    // to the fallback, so the node was tried once.
    assert_eq!(log.matches(&format!("node \"{dead}\"")).count(), 1, "{log}");
}

/// Out of descriptors: accept() fails (logged once), the clients it could
/// not take stay queued, and once a connection closes the router takes
/// them on its own, without waiting for yet another client to connect.
#[test]
fn out_of_descriptors_the_queued_clients_are_served_later() {
    let dir = TempDir::new();
    let s0 = Backend::start(&dir.path().join("s0.sock"), answer(|_| ok("hi")));
    let router = Router::start(dir.path(), &[("#fd-room", "8")], Some(&s0.path));
    let get = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let mut served = Vec::new();
    let waiting = loop {
        assert!(
            served.len() < 64,
            "the router never ran out of descriptors\n{}",
            router.log_text()
        );
        let mut c = Client::connect(router.addr);
        c.send(get);
        // Answered, or the router logged that it could not accept it.
        let answered = crate::server::wait_for(crate::server::READY, || {
            if c.is_open(Duration::from_millis(20)) {
                if router.log_text().contains("accept(): Too many open files") {
                    return Some(false);
                }
                None
            } else {
                Some(true)
            }
        });
        match answered {
            Some(true) => served.push(c),
            Some(false) => break c,
            None => panic!("neither answered nor refused\n{}", router.log_text()),
        }
    };
    // Room for the queued client and for its connection to the backend.
    assert!(served.len() >= 3, "{}", router.log_text());
    served.truncate(served.len() - 3);
    let mut waiting = waiting;
    let reply = waiting
        .response(false)
        .unwrap_or_else(|| panic!("the queued client was never served\n{}", router.log_text()));
    assert_eq!(reply.status, 200, "{}", router.log_text());
    // Retried every 100 ms, logged at most once a second: no flood.
    let logged = router
        .log_text()
        .matches("accept(): Too many open files")
        .count();
    assert!((1..=2).contains(&logged), "{}", router.log_text());
}

/// `${mime[VAR]}`: the `Content-Type` of the file name in a request var,
/// from the same MIME table as `static:` (a `mimefile` entry included);
/// empty when the extension is unknown.
#[test]
fn mime_route_var() {
    let dir = TempDir::new();
    let types = dir.path().join("types");
    std::fs::write(&types, "application/x-from-file\tzzq\n").unwrap();
    let s0 = Backend::start(&dir.path().join("s0.sock"), answer(|_| ok("hi")));
    let router = Router::start(
        dir.path(),
        &[
            ("mimefile", types.to_str().unwrap()),
            ("route", "^/ addheader:X-Mime: [${mime[PATH_INFO]}]"),
        ],
        Some(&s0.path),
    );
    let mut c = Client::connect(router.addr);
    for (path, want) in [
        ("/a/site.css", "[text/css]"),
        ("/b.zzq", "[application/x-from-file]"),
        ("/c.nosuchext", "[]"),
    ] {
        c.send(format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
        let r = c.response(false).expect("a response");
        assert_eq!(r.header("X-Mime"), Some(want), "{path}: {}", r.head);
    }
}

/// A backend's last bytes and its close often arrive together, in one
/// readiness event: the router must still read on to the end, not wait for
/// another event that never comes.
#[test]
fn a_response_ended_by_close_reaches_the_client_with_its_end() {
    let dir = TempDir::new();
    let s0 = Backend::start(
        &dir.path().join("s0.sock"),
        answer(|_| {
            Reply::Bytes(
                b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close\n".to_vec(),
            )
        }),
    );
    let router = Router::start(dir.path(), &[], Some(&s0.path));
    for round in 0..20 {
        let started = Instant::now();
        let got = exchange(router.addr, b"GET / HTTP/1.0\r\nHost: a\r\n\r\n");
        assert!(text(&got).ends_with("until close\n"), "{}", text(&got));
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "round {round}: the end came after {took:?}"
        );
    }
}

/// `http-processes = 3`: three gateway processes share the listening
/// socket; each serves alone while the other two are stopped, one killed
/// is respawned under its number, and none outlives the master.
#[test]
fn http_processes_share_the_listener() {
    use crate::server::{gateway_pids, spawn_gateways, wait_for};
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    let dir = TempDir::new();
    let backend = Backend::start(&dir.path().join("b.sock"), answer(|_| ok("b")));
    let front = dir.path().join("h.sock");
    let backend_s = backend.path.display().to_string();
    let (mut server, pids) = spawn_gateways(dir.path(), &front, 3, &["--http-to", &backend_s]);
    let log = server.log();
    assert!(!log.contains("not supported"), "{log}");
    let get = || {
        let mut c = UnixStream::connect(&front).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        c.write_all(b"GET / HTTP/1.0\r\nHost: a\r\n\r\n")
            .expect("send");
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        text(&out)
    };
    let signal = |pid: i32, sig: i32| {
        // SAFETY: kill(2) on a gateway process of the server this test
        // started (its master has not reaped it: it is running).
        unsafe { libc::kill(pid, sig) };
    };
    for (i, &serving) in pids.iter().enumerate() {
        let others: Vec<i32> = pids.iter().copied().filter(|&p| p != serving).collect();
        others.iter().for_each(|&p| signal(p, libc::SIGSTOP));
        let reply = get();
        others.iter().for_each(|&p| signal(p, libc::SIGCONT));
        assert!(
            reply.ends_with("\r\n\r\nb"),
            "http {} alone: {reply:?}",
            i + 1
        );
    }
    signal(pids[1], libc::SIGKILL);
    let died = format!("uWSGI http 2 (pid: {}) died", pids[1]);
    server.wait_line(&died, support::READY);
    server.wait_line("respawned uWSGI http 2 (pid: ", support::READY);
    let respawned = gateway_pids(&server.log(), 2);
    assert_ne!(respawned[1], pids[1]);
    assert!(get().ends_with("\r\n\r\nb"));
    server.signal(libc::SIGINT);
    server.wait_line("goodbye to uWSGI", support::READY);
    let gone = |pid: i32| {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z "))
    };
    for pid in [pids[0], respawned[1], pids[2]] {
        let exited = wait_for(support::READY, || gone(pid).then_some(()));
        assert!(exited.is_some(), "gateway {pid} outlived its master");
    }
}
