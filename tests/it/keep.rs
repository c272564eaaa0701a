//! Persistent connections between ruwsgi's router and ruwsgi's workers
//! (`protocol::uwsgi::KEEP_HEADER`): the router marks a new UNIX
//! connection with a descriptor; a worker that sees the mark keeps the
//! connection after a length-delimited response and says so in a header
//! the router takes out. Each half is tested against a peer written here
//! (a marked client for the worker, a marker-aware backend for the
//! router), then both together with a real vassal, where the worker's
//! idle timeout closes the kept connection under the router's feet.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use ruwsgi::protocol::uwsgi::{self, Packet, HEADER_LEN};
use ruwsgi::sys::socket::{recv_counting_fds, send_with_fd};

use crate::router::support::{Client, Router};
use crate::server::{
    sock_path, spawn_gateways, spawn_ours, uwsgi_packet, wait_for, wait_unix, worker_pids, Proc,
    READY,
};
use crate::util::{repo_root, TempDir};

const KEEP: &str = "X-Ruwsgi-Keep";

/// One raw response read from a uwsgi connection by its framing: the
/// head, then `Content-Length` bytes (or nothing for `HEAD`), or up to
/// the close when there is no length.
struct Raw {
    head: String,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

fn read_response(stream: &mut UnixStream, head_request: bool) -> Raw {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).expect("reading the response head");
        assert!(
            n > 0,
            "closed in the head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut body = buf[end..].to_vec();
    let mut raw = Raw {
        head,
        body: Vec::new(),
    };
    match raw
        .header("Content-Length")
        .map(|v| v.parse::<usize>().unwrap())
    {
        _ if head_request => {}
        Some(n) => {
            while body.len() < n {
                let got = stream.read(&mut chunk).expect("reading the body");
                assert!(got > 0, "closed in the body");
                body.extend_from_slice(&chunk[..got]);
            }
        }
        None => {
            stream.read_to_end(&mut body).expect("reading to the close");
        }
    }
    raw.body = body;
    raw
}

fn get(uri: &str, method: &str) -> Vec<u8> {
    uwsgi_packet(
        0,
        &[
            ("REQUEST_METHOD", method),
            ("REQUEST_URI", uri),
            ("PATH_INFO", uri),
            ("QUERY_STRING", ""),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("SERVER_NAME", "localhost"),
            ("SERVER_PORT", "80"),
            ("REMOTE_ADDR", "127.0.0.1"),
            ("HTTP_HOST", "localhost"),
        ],
    )
}

/// A connection to `path` whose first bytes carry a descriptor, as
/// ruwsgi's router sends them.
fn marked(path: &Path, first: &[u8]) -> UnixStream {
    let stream = UnixStream::connect(path).expect("connect to the worker");
    stream.set_read_timeout(Some(READY)).expect("timeout");
    let marker = std::fs::File::open("/dev/null").expect("/dev/null");
    let n = send_with_fd(stream.as_raw_fd(), first, marker.as_raw_fd()).expect("sendmsg");
    (&stream)
        .write_all(&first[n..])
        .expect("rest of the packet");
    stream
}

/// Whether the peer closed the connection (read gives 0 or fails).
fn closed(stream: &mut UnixStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.read(&mut byte), Ok(0) | Err(_))
}

/// Our binary serving `tests/apps/APP` on a UNIX uwsgi socket in `dir`
/// with `processes` workers (and `extra` options); returns it once every
/// worker is up and the socket accepts, with the socket's path.
fn spawn_app(dir: &Path, app: &str, processes: usize, extra: &[&str]) -> (Proc, String) {
    let sock = sock_path(dir, "app.sock");
    let app = repo_root().join("tests/apps").join(app);
    let processes = processes.to_string();
    let app = app.display().to_string();
    let mut args = vec![
        "--master",
        "--processes",
        &processes,
        "--socket",
        &sock,
        "--wsgi-file",
        &app,
    ];
    args.extend_from_slice(extra);
    let mut server = spawn_ours(dir, &args);
    server.wait_line(&format!("spawned uWSGI worker {processes} ("), READY);
    assert!(wait_unix(Path::new(&sock), READY), "{}", server.tail());
    (server, sock)
}

#[test]
fn worker_keeps_only_marked_connections_with_delimited_responses() {
    let dir = TempDir::new();
    let (_server, sock) = spawn_app(dir.path(), "cases.py", 1, &[]);
    let path = Path::new(&sock);

    // Marked: three requests on one connection, HEAD without body bytes.
    let mut conn = marked(path, &get("/bytes", "GET"));
    for (i, method) in ["GET", "GET", "HEAD", "GET"].iter().enumerate() {
        if i > 0 {
            conn.write_all(&get("/bytes", method))
                .expect("next request");
        }
        let r = read_response(&mut conn, *method == "HEAD");
        assert!(r.head.starts_with("HTTP/1.1 200"), "{}", r.head);
        assert_eq!(r.header(KEEP), Some("1"), "request {i}: {}", r.head);
        assert_eq!(r.header("Content-Length"), Some("11"), "{}", r.head);
        let want: &[u8] = if *method == "HEAD" {
            b""
        } else {
            b"plain bytes"
        };
        assert_eq!(r.body, want, "request {i}");
    }

    // Marked, but the app streams without a length: raw, then the close.
    let mut conn = marked(path, &get("/stream", "GET"));
    let r = read_response(&mut conn, false);
    assert_eq!(r.header(KEEP), None, "{}", r.head);
    assert_eq!(r.body, b"chunk0-chunk1-chunk2-");

    // Not marked (uWSGI's router, nginx): uWSGI's protocol, one response
    // and the close, with no extra header.
    let mut conn = UnixStream::connect(path).expect("connect");
    conn.set_read_timeout(Some(READY)).expect("timeout");
    conn.write_all(&get("/bytes", "GET")).expect("request");
    let r = read_response(&mut conn, false);
    assert_eq!(r.header(KEEP), None, "{}", r.head);
    assert!(closed(&mut conn), "an unmarked connection stayed open");
}

/// What the marker-aware backend saw on each connection, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    conn: usize,
    marked: bool,
    uri: String,
}

/// How the backend ends an exchange.
#[derive(Clone, Copy, PartialEq, Eq)]
enum After {
    /// Keep the connection, saying so.
    Keep,
    /// Answer without the header and close (a uWSGI worker would).
    Close,
    /// Say it keeps the connection, then close it at once.
    CloseNow,
    /// Say it keeps it, then close it as the next request arrives,
    /// without reading it (an idle timeout racing the router).
    CloseUnread,
}

/// A backend that reads the way ruwsgi's worker does (the first read
/// looks for the descriptor) and answers `conn=N n=K` with the header,
/// ending each exchange as `/close`, `/close-now` and `/close-unread`
/// ask; `/slow` is answered after a second.
fn start_keeping_backend(path: &Path) -> mpsc::Receiver<Seen> {
    let listener = UnixListener::bind(path).expect("bind backend");
    let (tx, rx) = mpsc::channel();
    let conns = Arc::new(AtomicUsize::new(0));
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let id = conns.fetch_add(1, Ordering::SeqCst) + 1;
            let tx = tx.clone();
            thread::spawn(move || serve_kept(stream, id, &tx));
        }
    });
    rx
}

fn serve_kept(mut stream: UnixStream, id: usize, tx: &mpsc::Sender<Seen>) {
    let _ = stream.set_read_timeout(Some(READY));
    let mut buf = vec![0u8; 65536];
    let Ok((n, fds)) = recv_counting_fds(stream.as_raw_fd(), &mut buf) else {
        return;
    };
    let mut pending = buf[..n].to_vec();
    let marked = fds > 0;
    for count in 1.. {
        // One whole packet (and its body) from `pending` plus reads.
        let packet = loop {
            if pending.len() >= HEADER_LEN {
                let size = usize::from(u16::from_le_bytes([pending[1], pending[2]]));
                if pending.len() >= HEADER_LEN + size {
                    break pending.drain(..HEADER_LEN + size).collect::<Vec<u8>>();
                }
            }
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
            }
        };
        let parsed = Packet::parse(&packet);
        let vars = parsed.vars();
        let uri =
            String::from_utf8_lossy(vars.get(b"REQUEST_URI").unwrap_or_default()).into_owned();
        let length = vars.get(b"CONTENT_LENGTH").map_or(0, uwsgi::content_length) as usize;
        while pending.len() < length {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
            }
        }
        pending.drain(..length);
        let after = match uri.as_str() {
            "/close" => After::Close,
            "/close-now" => After::CloseNow,
            "/close-unread" => After::CloseUnread,
            _ => After::Keep,
        };
        let slow = uri == "/slow";
        let _ = tx.send(Seen {
            conn: id,
            marked,
            uri,
        });
        if slow {
            thread::sleep(Duration::from_secs(1));
        }
        let body = format!("conn={id} n={count}");
        let keep = if after == After::Close {
            String::new()
        } else {
            format!("{KEEP}: backend-{id}\r\n")
        };
        let reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{keep}\r\n{body}",
            body.len()
        );
        if stream.write_all(reply.as_bytes()).is_err() {
            return;
        }
        match after {
            After::Keep => {}
            After::Close | After::CloseNow => return,
            After::CloseUnread => {
                let _ = ruwsgi::sys::socket::wait_io(stream.as_raw_fd(), false, Some(READY));
                return;
            }
        }
    }
}

fn http_get(uri: &str) -> Vec<u8> {
    format!("GET {uri} HTTP/1.1\r\nHost: example.com\r\n\r\n").into_bytes()
}

/// The kernel refuses to pass a descriptor while more are in flight for
/// the sender's user than its descriptor limit (ETOOMANYREFS). The router
/// runs as a user of its own (root is exempt from the limit, and the count
/// is the user's, so no other test is touched) with more descriptors in
/// flight than it may open. Each request then goes out unmarked and is
/// answered, and the refusal is logged once.
#[test]
fn a_refused_marker_sends_the_request_unmarked() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("keep::a_refused_marker_sends_the_request_unmarked: skipped (needs root to run the router as a user of its own)");
        return;
    }
    let dir = TempDir::new();
    let backend = dir.path().join("keep.sock");
    let seen = start_keeping_backend(&backend);
    // The router's user may connect to it.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&backend, std::fs::Permissions::from_mode(0o777))
        .expect("chmod the backend socket");
    let router = Router::start(
        dir.path(),
        &[("#fd-room", "32"), ("#in-flight-as-uid", "64123")],
        Some(&backend),
    );
    let mut client = Client::connect(router.addr);
    for n in 1..=3 {
        client.send(&http_get("/a"));
        let r = client
            .response(false)
            .unwrap_or_else(|| panic!("no response\n{}", router.log_text()));
        assert_eq!(r.status, 200, "{}\n{}", r.head, router.log_text());
        assert_eq!(String::from_utf8_lossy(&r.body), format!("conn={n} n=1"));
        let got = seen.recv_timeout(READY).expect("the backend saw nothing");
        assert!(!got.marked, "request {n} was marked");
    }
    let log = router.log_text();
    let refusals = log.matches("cannot mark the connection to").count();
    assert_eq!(refusals, 1, "{log}");
    assert!(log.contains("Too many references"), "{log}");
}

#[test]
fn router_marks_new_connections_and_reuses_kept_ones() {
    let dir = TempDir::new();
    let backend = dir.path().join("keep.sock");
    let other = dir.path().join("other.sock");
    let seen = start_keeping_backend(&backend);
    let _other_seen = start_keeping_backend(&other);
    let rule = format!("^fixed\\.example$ uwsgi:{},0,0", other.display());
    let router = Router::start(dir.path(), &[("route-host", &rule)], Some(&backend));
    let next = || seen.recv_timeout(READY).expect("the backend saw nothing");
    let mut client = Client::connect(router.addr);
    let mut ask = |request: &[u8]| {
        client.send(request);
        let r = client.response(false).expect("a response");
        assert_eq!(r.status, 200, "{}", r.head);
        assert_eq!(r.header(KEEP), None, "the header reached the client");
        String::from_utf8_lossy(&r.body).into_owned()
    };

    // Socket 0 (the pool's one node): one marked connection for all.
    for n in 1..=3 {
        assert_eq!(ask(&http_get("/a")), format!("conn=1 n={n}"));
    }
    let first = next();
    assert!(
        first.marked,
        "the router's first bytes carried no descriptor"
    );
    for _ in 0..2 {
        assert_eq!(next().conn, 1);
    }

    // A request with a body goes on a new connection, which is then kept.
    let post = b"POST /p HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\n\r\nabc";
    assert_eq!(ask(post), "conn=2 n=1");
    assert_eq!(ask(&http_get("/b")), "conn=2 n=2");
    assert!(next().marked && next().marked);

    // The worker closes right after saying it keeps the connection: the
    // next request's write fails and it goes on a new connection.
    assert_eq!(ask(&http_get("/close-now")), "conn=2 n=3");
    assert_eq!(ask(&http_get("/c")), "conn=3 n=1");
    // It closes as the next request arrives, unread: reset, resent.
    assert_eq!(ask(&http_get("/close-unread")), "conn=3 n=2");
    assert_eq!(ask(&http_get("/d")), "conn=4 n=1");
    // No header: the connection is not reused.
    assert_eq!(ask(&http_get("/close")), "conn=4 n=2");
    assert_eq!(ask(&http_get("/e")), "conn=5 n=1");
    let rest: Vec<String> = (0..6).map(|_| next().uri).collect();
    assert_eq!(
        rest,
        ["/close-now", "/c", "/close-unread", "/d", "/close", "/e"],
        "a request was lost or sent twice"
    );

    // A routing rule's address: its own kept connection; the one to
    // socket 0 closes when the client's request goes elsewhere.
    let fixed = b"GET /f HTTP/1.1\r\nHost: fixed.example\r\n\r\n";
    assert_eq!(ask(fixed), "conn=1 n=1");
    assert_eq!(ask(fixed), "conn=1 n=2");
    assert_eq!(ask(&http_get("/g")), "conn=6 n=1");
    assert_eq!(next().uri, "/g");
    drop(client);
    // A client that closes after its request: no mark, nothing kept.
    let mut once = Client::connect(router.addr);
    once.send(b"GET /z HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n");
    assert_eq!(once.response(false).expect("a response").status, 200);
    let z = next();
    assert_eq!(z.uri, "/z");
    assert!(!z.marked, "marked a connection that cannot be kept");
    let log = router.log_text();
    assert!(
        !log.contains("without a response") && !log.contains("unable to connect"),
        "{log}"
    );
}

/// The soft `Max open files` limit of `pid`.
fn descriptor_limit(pid: u32) -> usize {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        .expect("Max open files")
}

#[test]
fn idle_clients_give_up_their_kept_connections_to_active_ones() {
    let dir = TempDir::new();
    let backend = dir.path().join("keep.sock");
    let _seen = start_keeping_backend(&backend);
    let router = Router::start(dir.path(), &[("#fd-room", "80")], Some(&backend));
    let room = descriptor_limit(router.pid()) / 4;
    let ask = |c: &mut Client| {
        c.send(&http_get("/"));
        let r = c.response(false).expect("a response");
        assert_eq!(r.status, 200, "{}\n{}", r.head, router.log_text());
        String::from_utf8_lossy(&r.body).into_owned()
    };
    // More idle clients than kept connections may wait: each made one
    // request and stays open.
    let idle: Vec<Client> = (0..room + 20)
        .map(|_| {
            let mut c = Client::connect(router.addr);
            assert!(ask(&mut c).ends_with(" n=1"));
            c
        })
        .collect();
    // An active client still gets a kept connection, and keeps it.
    let mut active = Client::connect(router.addr);
    for n in 1..=10 {
        let body = ask(&mut active);
        assert!(body.ends_with(&format!(" n={n}")), "request {n}: {body}");
    }
    // The router holds the clients and at most `room` kept connections.
    let held = sockets_of(router.pid() as i32);
    assert!(
        held <= idle.len() + 1 + room + 8,
        "{held} sockets for {} clients",
        idle.len() + 1
    );
}

/// The socket descriptors `pid` holds, from `/proc/PID/fd`.
fn sockets_of(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .is_ok_and(|t| t.to_string_lossy().starts_with("socket:"))
                })
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn routed_requests_share_a_vassal_connection_until_its_idle_timeout() {
    let dir = TempDir::new();
    let (mut vassal, sock) = spawn_app(dir.path(), "hello.py", 1, &["--socket-timeout", "1"]);
    let worker = *worker_pids(&vassal.log(), 1).last().expect("worker pid");
    let idle = sockets_of(worker);
    let router = Router::start(dir.path(), &[], Some(Path::new(&sock)));

    let mut client = Client::connect(router.addr);
    for _ in 0..20 {
        client.send(&http_get("/"));
        let r = client.response(false).expect("a response");
        assert_eq!((r.status, r.body.as_slice()), (200, &b"Hello World!"[..]));
        assert_eq!(r.header(KEEP), None);
    }
    // The worker holds the router's connection between requests (two when
    // a slow request on a loaded machine made the router open another).
    let held = sockets_of(worker);
    assert!(
        (idle + 1..=idle + 2).contains(&held),
        "{held} sockets, {idle} before\n{}",
        vassal.tail()
    );
    // After socket-timeout idle it closes it; the router notices on the
    // next request and sends it on a new connection.
    let closed = wait_for(Duration::from_secs(5), || {
        (sockets_of(worker) == idle).then_some(())
    });
    assert!(closed.is_some(), "the idle connection was never closed");
    client.send(&http_get("/"));
    let r = client.response(false).expect("a response");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"Hello World!"[..]));
    let log = router.log_text();
    assert!(!log.contains("backend"), "{log}");
    // Every request reached the app once (the log line follows the reply).
    vassal.wait_lines("[pid: ", 21, READY);
    assert_eq!(vassal.count("[pid: "), 21, "{}", vassal.tail());
}

#[test]
fn a_worker_busy_with_a_slow_request_does_not_hold_up_the_next_client() {
    let dir = TempDir::new();
    let (_vassal, sock) = spawn_app(dir.path(), "cases.py", 2, &[]);
    let router = Router::start(dir.path(), &[], Some(Path::new(&sock)));
    let pid_of = |client: &mut Client| {
        client.send(&http_get("/pid"));
        let r = client.response(false).expect("a response");
        assert_eq!(r.status, 200, "{}", r.head);
        String::from_utf8_lossy(&r.body).into_owned()
    };
    // Clients until both workers hold a kept connection of one of them.
    let mut clients: Vec<(Client, String)> = Vec::new();
    while clients.iter().all(|(_, p)| *p == clients[0].1) {
        assert!(clients.len() < 16, "every client landed on one worker?");
        let mut c = Client::connect(router.addr);
        let pid = pid_of(&mut c);
        clients.push((c, pid));
    }
    // A request with a body goes on a new connection; whichever worker
    // takes it is busy for 2 s, and the router cannot see which.
    let mut slow = Client::connect(router.addr);
    slow.send(b"POST /sleep?2 HTTP/1.1\r\nHost: example.com\r\nContent-Length: 1\r\n\r\nx");
    thread::sleep(ruwsgi_stuck_after() * 5);
    // No kept client waits for it, the one kept with that worker included.
    for (client, _) in &mut clients {
        let started = std::time::Instant::now();
        pid_of(client);
        let waited = started.elapsed();
        assert!(waited < Duration::from_secs(1), "waited {waited:?}");
    }
    let r = slow.response(false).expect("the slow response");
    assert_eq!(r.body, b"slept");
}

/// The router's patience with a busy worker before it stops reusing the
/// connections it keeps (`router::kept::STUCK_AFTER`).
fn ruwsgi_stuck_after() -> Duration {
    Duration::from_millis(20)
}

/// One keep-alive `GET uri` on a UNIX HTTP socket; the response body.
fn ask_unix(stream: &mut UnixStream, uri: &str) -> String {
    stream
        .write_all(format!("GET {uri} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
        .expect("send");
    let r = read_response(stream, false);
    assert!(r.head.starts_with("HTTP/1.1 200"), "{}", r.head);
    String::from_utf8_lossy(&r.body).into_owned()
}

/// With `http-processes`, a gateway counts the requests the others have in
/// flight: a kept connection is not reused while another gateway's
/// request to the same address is slow (the worker behind it may be the
/// busy one), exactly as for its own.
#[test]
fn gateways_share_what_they_have_in_flight() {
    let dir = TempDir::new();
    let backend = dir.path().join("keep.sock");
    let seen = start_keeping_backend(&backend);
    let next = || seen.recv_timeout(READY).expect("the backend saw nothing");
    let front = dir.path().join("h.sock");
    // A fixed target: kept connections are reused (an `http-to` pool
    // spreads requests round-robin instead).
    let rule = format!("^a$ uwsgi:{},0,0", backend.display());
    let (_server, pids) = spawn_gateways(dir.path(), &front, 2, &["--route-host", &rule]);
    let (one, two) = (pids[0], pids[1]);
    let signal = |pid: i32, sig: i32| {
        // SAFETY: kill(2) on a gateway of the server this test started.
        unsafe { libc::kill(pid, sig) };
    };
    // Client A through gateway 1, kept with backend connection 1.
    signal(two, libc::SIGSTOP);
    let mut a = UnixStream::connect(&front).expect("connect");
    a.set_read_timeout(Some(READY)).expect("timeout");
    assert_eq!(ask_unix(&mut a, "/a"), "conn=1 n=1");
    assert!(next().marked);
    signal(two, libc::SIGCONT);
    // Client B through gateway 2: a slow request on connection 2.
    signal(one, libc::SIGSTOP);
    let mut b = UnixStream::connect(&front).expect("connect");
    b.set_read_timeout(Some(READY)).expect("timeout");
    b.write_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        .expect("send");
    let slow = next();
    assert_eq!((slow.uri.as_str(), slow.conn), ("/slow", 2));
    signal(one, libc::SIGCONT);
    thread::sleep(ruwsgi_stuck_after() * 5);
    // Gateway 1 sees it: A's next request goes on a new connection.
    assert_eq!(ask_unix(&mut a, "/a"), "conn=3 n=1");
    let r = read_response(&mut b, false);
    assert_eq!(r.body, b"conn=2 n=1");
}
