//! Test support: a whole worker in this process, before the master
//! exists. [`run`] starts the interpreter, loads an app and serves the
//! given sockets; the `harness` test (ignored by default) serves one
//! socket until SIGINT, for differential checks against uWSGI:
//!
//! ```text
//! RUWSGI_SOCKET=127.0.0.1:19100 RUWSGI_PROTO=http RUWSGI_APP=tests/apps/environ.py \
//!     cargo test --lib worker::harness::harness -- --ignored --nocapture
//! ```

use std::os::fd::OwnedFd;
use std::sync::OnceLock;

use super::{serve, Listener, WorkerContext, WorkerExit};
use crate::config::model::{PythonConfig, SocketProto, WorkerConfig};
use crate::python;

/// Binds `name` (`host:port` or a path) and returns it as a listener.
pub(crate) fn bind(name: &str, proto: SocketProto) -> Listener {
    let fd: OwnedFd = if name.contains(':') {
        std::net::TcpListener::bind(name).expect("bind tcp").into()
    } else {
        let _ = std::fs::remove_file(name);
        std::os::unix::net::UnixListener::bind(name)
            .expect("bind unix")
            .into()
    };
    Listener {
        fd,
        name: name.to_string(),
        proto,
        pre_routed: false,
    }
}

pub(crate) fn worker_config(threads: usize) -> WorkerConfig {
    WorkerConfig {
        buffer_size: 4096,
        post_buffering: 0,
        socket_timeout: 4,
        harakiri: 0,
        max_requests: 0,
        reload_on_rss_mb: 0,
        min_worker_lifetime: 10,
        disable_logging: false,
        threads,
        static_maps: Vec::new(),
        check_static: Vec::new(),
        mime_files: Vec::new(),
        max_vars: 64,
    }
}

/// Starts the interpreter once per test process.
pub(crate) fn python_once() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        let var = |k: &str| std::env::var(k).ok();
        python::init(
            &PythonConfig {
                callable: "application".into(),
                threads: 1,
                home: var("RUWSGI_HOME"),
                pythonpath: var("RUWSGI_PYTHONPATH").into_iter().collect(),
                env: var("RUWSGI_ENV").into_iter().collect(),
                ..PythonConfig::default()
            },
            &[("plugins".into(), "python3".into())],
        )
        .unwrap_or_else(|e| panic!("{e}"));
    });
}

/// Loads `py`'s apps and serves `listeners` until a signal stops it.
pub(crate) fn run(listeners: &[Listener], config: &WorkerConfig, py: &PythonConfig) -> WorkerExit {
    python_once();
    let apps = python::load_apps(py).expect("apps");
    let total = std::sync::atomic::AtomicU64::new(0);
    serve(WorkerContext {
        id: 1,
        listeners,
        config,
        apps: &apps,
        harakiri: None,
        total: &total,
        routes: &crate::routing::Table::default(),
    })
}

#[test]
#[ignore = "manual: serves RUWSGI_SOCKET until SIGINT"]
fn harness() {
    let var = |k: &str| std::env::var(k).ok();
    let socket = var("RUWSGI_SOCKET").unwrap_or_else(|| "127.0.0.1:19100".into());
    let proto = match var("RUWSGI_PROTO").as_deref() {
        Some("uwsgi") => SocketProto::Uwsgi,
        _ => SocketProto::Http,
    };
    let threads = var("RUWSGI_THREADS")
        .and_then(|t| t.parse().ok())
        .unwrap_or(1);
    let mut config = worker_config(threads);
    if let Some((u, d)) = var("RUWSGI_STATIC_MAP")
        .as_deref()
        .and_then(|m| m.split_once('='))
    {
        config.static_maps.push((u.into(), d.into(), false));
    }
    if let Some(n) = var("RUWSGI_MAX_REQUESTS").and_then(|t| t.parse().ok()) {
        config.max_requests = n;
        config.min_worker_lifetime = 0;
    }
    let py = PythonConfig {
        wsgi_file: var("RUWSGI_APP"),
        module: var("RUWSGI_MODULE"),
        callable: "application".into(),
        threads,
        manage_script_name: var("RUWSGI_MSN").is_some(),
        mounts: var("RUWSGI_MOUNT").into_iter().collect(),
        ..PythonConfig::default()
    };
    let listeners = [bind(&socket, proto)];
    let exit = run(&listeners, &config, &py);
    eprintln!("worker exit: {exit:?}");
}
