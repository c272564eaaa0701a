//! The one integration-test binary: it spawns our `uwsgi` binary
//! (`env!("CARGO_BIN_EXE_uwsgi")`) in per-test temp dirs with a scrubbed
//! environment. Shared helpers live in `util`; each other module is one area.

mod compat;
mod config_errors;
mod emperor;
mod emperor_interop;
mod emperor_reload;
mod keep;
mod multisite;
mod procfile;
mod router;
mod router_interop;
mod router_once;
mod server;
mod util;
mod wsgi;
