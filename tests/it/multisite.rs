//! The shipped multi-site example (`examples/multisite/`) run end to end:
//! the router sends each Host to its vassal, unknown hosts get the 404
//! page, a vassal file added while it runs is served, one removed is
//! stopped, a touched one serves its new code, and Ctrl-C (SIGINT to the
//! process group) takes everything down, sockets included.
//!
//! The files are copied into the test's temp dir; only the listening port
//! and the `/tmp/` socket directory are rewritten (to a port the test chose
//! and the temp dir), so the `route-host` lines are the shipped ones.

use std::path::Path;
use std::time::Duration;

use crate::procfile::group_members;
use crate::server::{free_port, request, spawn_ours, wait_for, wait_unix, Addr, Proc};
use crate::util::{copy_tree, repo_root, TempDir};

const WAIT: Duration = Duration::from_secs(20);

fn rewrite(dir: &Path, port: u16) {
    let tmp = format!("{}/", dir.display());
    for entry in walk(dir) {
        if entry.extension().is_some_and(|e| e == "ini") {
            let text = std::fs::read_to_string(&entry).unwrap();
            let text = text
                .replace("http = :8080", &format!("http = 127.0.0.1:{port}"))
                .replace("/tmp/", &tmp);
            std::fs::write(&entry, text).unwrap();
        }
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn get(port: u16, host: &str, path: &str) -> (Option<u16>, String) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let reply = request(&Addr::Tcp(port), req.as_bytes());
    (
        reply.status(),
        String::from_utf8_lossy(reply.body()).into_owned(),
    )
}

fn wait_status(port: u16, host: &str, want: u16) -> String {
    wait_for(WAIT, || match get(port, host, "/") {
        (Some(s), body) if s == want => Some(body),
        _ => None,
    })
    .unwrap_or_else(|| panic!("{host} never answered {want}"))
}

#[test]
fn multisite_example_end_to_end() {
    let tmp = TempDir::new();
    let dir = tmp.path().join("multisite");
    copy_tree(&repo_root().join("examples/multisite"), &dir).unwrap();
    let port = free_port();
    rewrite(&dir, port);
    let shipped =
        std::fs::read_to_string(repo_root().join("examples/multisite/uwsgi.ini")).unwrap();
    assert!(shipped.contains(r"route-host = ^([-\w]+)\.example\.com$ uwsgi:/tmp/uwsgi_$1.sock,0,0"));

    let mut server: Proc = spawn_ours(&dir, &["--ini", "uwsgi.ini"]);
    for site in ["www", "blog", "notfound"] {
        assert!(
            wait_unix(&dir.join(format!("uwsgi_{site}.sock")), WAIT),
            "{site} vassal socket: {}",
            server.tail()
        );
    }
    assert!(wait_status(port, "www.example.com", 200).contains("www.example.com"));
    assert!(wait_status(port, "blog.example.com", 200).contains("blog.example.com"));
    assert!(wait_status(port, "other.org", 404).contains("No site is configured"));
    assert_eq!(get(port, "nope.example.com", "/").0, Some(502));

    // A vassal added while running is served; removed, it is stopped.
    let shop = dir.join("vassals.d/shop.ini");
    std::fs::write(
        &shop,
        std::fs::read_to_string(dir.join("vassals.d/www.ini"))
            .unwrap()
            .replace("%n", "shop"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("sites/shop")).unwrap();
    std::fs::copy(dir.join("sites/www/app.py"), dir.join("sites/shop/app.py")).unwrap();
    assert!(wait_status(port, "shop.example.com", 200).contains("Served by a plain WSGI app"));
    std::fs::remove_file(&shop).unwrap();
    wait_status(port, "shop.example.com", 502);
    server.wait_line("removed uwsgi instance", WAIT);

    // Touching a vassal file reloads it: the new code answers.
    let app = dir.join("sites/www/app.py");
    let code = std::fs::read_to_string(&app).unwrap();
    std::fs::write(&app, code.replace("a plain WSGI app", "the reloaded app")).unwrap();
    let www = dir.join("vassals.d/www.ini");
    std::fs::File::options()
        .append(true)
        .open(&www)
        .unwrap()
        .set_modified(std::time::SystemTime::now())
        .unwrap();
    wait_for(WAIT, || {
        let (status, body) = get(port, "www.example.com", "/");
        (status == Some(200) && body.contains("the reloaded app")).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "the touched vassal never served its new code: {}",
            server.tail()
        )
    });

    // Ctrl-C in a terminal: SIGINT to the whole process group. Everything
    // stops (vassals and workers are in the group) and the sockets go.
    let pgid = server.pid();
    // SAFETY: kill(2) on the process group this test created.
    unsafe { libc::kill(-pgid, libc::SIGINT) };
    assert_eq!(server.wait_exit(WAIT), 0, "{}", server.tail());
    assert!(server.log().contains("goodbye to uWSGI."));
    let left = wait_for(WAIT, || group_members(pgid).is_empty().then_some(()));
    assert!(left.is_some(), "left running: {:?}", group_members(pgid));
    for site in ["www", "blog", "notfound"] {
        assert!(
            !dir.join(format!("uwsgi_{site}.sock")).exists(),
            "{site} socket left behind"
        );
    }
}
