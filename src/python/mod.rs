//! Embedded CPython: the only module that uses pyo3.
//!
//! Owns the interpreter ([`init`], the fork hooks), the built-in `uwsgi`
//! module, app loading ([`load_apps`], [`Apps`]) and the WSGI (PEP 3333)
//! side of a request ([`handle`]): the environ, `wsgi.input`,
//! `start_response`, the `write()` callable, `wsgi.file_wrapper`, iterating
//! the response and calling `close()`.
//!
//! It owns no sockets: the worker hands it an [`Exchange`] (read the
//! request body, send the response head, body bytes or a file) and frames
//! the bytes for its protocol. Every blocking call into the `Exchange`
//! runs with the GIL released (`py.detach`), so `threads = N` workers
//! serve requests in parallel while one waits on a slow client.

mod apps;
mod autoreload;
mod call;
mod environ;
mod exchange;
mod file_wrapper;
mod input;
mod interp;
mod log;
mod start_response;
mod uwsgi_module;

pub use apps::{load_apps, share_counters, Apps, SHARED_APPS_PER_WORKER};
pub use autoreload::start_autoreloader;
pub use call::{handle, Outcome};
pub use exchange::Exchange;
pub use interp::{
    after_fork_child, after_fork_parent, before_fork, init, init_without_interpreter, needed,
    set_master_pid, set_worker_id,
};
