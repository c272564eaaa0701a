//! End to end: a real worker (interpreter, apps, sockets, signals) in this
//! process, driven with literal uwsgi packets and HTTP requests on UNIX
//! sockets in a private temp dir, stopped with SIGHUP.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::harness::{bind, run, worker_config};
use super::WorkerExit;
use crate::config::model::{PythonConfig, SocketProto};

fn packet(vars: &[(&str, &str)], modifier1: u8) -> Vec<u8> {
    crate::protocol::uwsgi::encode(modifier1, 0, vars.iter().map(|(k, v)| (*k, *v))).unwrap()
}

/// Sends `data` and reads until the server closes (or 3 s pass).
fn exchange(path: &Path, data: &[u8]) -> Vec<u8> {
    let mut s = UnixStream::connect(path).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.write_all(data).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn uwsgi_cases(sock: &Path) {
    let a = [
        ("REQUEST_METHOD", "GET"),
        ("PATH_INFO", "/"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
    ];
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "example A",
            packet(&a, 0),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 7\r\n\r\ndefault",
        ),
        (
            "no SERVER_PROTOCOL",
            packet(&a[..2], 0),
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 7\r\n\r\ndefault",
        ),
        (
            "body after the packet",
            [
                packet(
                    &[
                        ("REQUEST_METHOD", "POST"),
                        ("PATH_INFO", "/lines"),
                        ("CONTENT_LENGTH", "6"),
                    ],
                    0,
                ),
                b"a\nb\nc\nextra".to_vec(),
            ]
            .concat(),
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 7\r\n\r\n3 lines",
        ),
        ("block over buffer-size", vec![0, 0, 0x20, 0], ""),
        ("unknown modifier1", packet(&a, 5), ""),
        ("empty packet", vec![0, 0, 0, 0], ""),
        (
            "status without text",
            packet(&[("PATH_INFO", "/status")], 0),
            "HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\nnope",
        ),
        (
            "app raises before start_response",
            packet(&[("PATH_INFO", "/raise")], 0),
            "HTTP/1.0 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 21\r\n\r\nInternal Server Error",
        ),
        (
            "str chunk",
            packet(&[("PATH_INFO", "/str")], 0),
            "HTTP/1.0 500 Internal Server Error\r\n",
        ),
        (
            "generator streamed",
            packet(&[("PATH_INFO", "/stream")], 0),
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nchunk0-chunk1-chunk2-",
        ),
        (
            "write() callable",
            packet(&[("PATH_INFO", "/write")], 0),
            "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nwritten-twice",
        ),
    ];
    for (name, data, want) in cases {
        let got = text(&exchange(sock, &data));
        assert!(got.starts_with(want), "{name}: got {got:?}");
        if want.is_empty() {
            assert_eq!(got, "", "{name}");
        }
    }
    // SCRIPT_NAME selects the mounted app.
    let got = text(&exchange(
        sock,
        &packet(&[("SCRIPT_NAME", "/env"), ("PATH_INFO", "/x")], 0),
    ));
    assert!(got.contains(r#"["SCRIPT_NAME", "/env"]"#), "{got}");
    assert!(got.contains(r#"["wsgi.url_scheme", "http"]"#), "{got}");
}

fn http_cases(sock: &Path) {
    // Keep-alive: all answered in order; a whole-body return gets its
    // length, a generator is chunked, and the last closes as asked.
    let got = text(&exchange(
        sock,
        b"GET /bytes HTTP/1.1\r\nHost: a\r\n\r\nGET /stream HTTP/1.1\r\nHost: a\r\n\r\n\
          GET /stream HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    ));
    assert_eq!(
        got,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nplain bytes\
         HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n\
         7\r\nchunk0-\r\n7\r\nchunk1-\r\n7\r\nchunk2-\r\n0\r\n\r\n\
         HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nchunk0-chunk1-chunk2-"
    );
    let got = text(&exchange(sock, b"GET / HTTP/1.1\r\nBad\r\n\r\n"));
    assert!(got.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{got}");
    let got = text(&exchange(
        sock,
        b"POST /lines HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n4\r\na\nb\n\r\n2\r\nc\n\r\n0\r\n\r\n",
    ));
    assert!(got.ends_with("\r\n\r\n3 lines"), "{got}");
    let got = exchange(
        sock,
        b"GET /file HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    let source = std::fs::read("tests/apps/cases.py").unwrap();
    assert!(got.ends_with(&source), "file_wrapper body differs");
    let got = text(&exchange(
        sock,
        b"HEAD /stream HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    ));
    assert_eq!(got, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n");
    let got = text(&exchange(
        sock,
        b"GET /echo HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello",
    ));
    assert!(got.ends_with("Content-Length: 5\r\n\r\nhello"), "{got}");
}

#[test]
fn worker_end_to_end() {
    let dir = std::env::temp_dir().join(format!("ruwsgi-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let usock = dir.join("uwsgi.sock");
    let hsock = dir.join("http.sock");
    let listeners = [
        bind(usock.to_str().unwrap(), SocketProto::Uwsgi),
        bind(hsock.to_str().unwrap(), SocketProto::Http),
    ];
    let config = worker_config(2);
    let py = PythonConfig {
        wsgi_file: Some("tests/apps/cases.py".into()),
        callable: "application".into(),
        mounts: vec!["/env=tests/apps/environ.py".into()],
        threads: 2,
        ..PythonConfig::default()
    };
    let exit = std::thread::scope(|s| {
        let worker = s.spawn(|| run(&listeners, &config, &py));
        // The listeners are already listening: connections queue until
        // the worker accepts them. A failed case still stops the worker.
        let cases = std::panic::catch_unwind(|| {
            uwsgi_cases(&usock);
            http_cases(&hsock);
        });
        signal_hook::low_level::raise(signal_hook::consts::SIGHUP).unwrap();
        let exit = worker.join().unwrap();
        if let Err(panic) = cases {
            std::panic::resume_unwind(panic);
        }
        exit
    });
    assert_eq!(exit, WorkerExit::Graceful);
    std::fs::remove_dir_all(&dir).unwrap();
}
