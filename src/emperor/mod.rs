//! The Emperor role (spec emperor-and-master.md §1, config.md §9): it
//! watches vassal files in directories or globs and runs one vassal
//! process per file, `fork()` + `exec` of this binary (or a wrapper) with
//! the argv, environment, working directory and pipe uWSGI gives vassals.
//! A new file starts a vassal, a newer mtime reloads it (byte 1), a
//! removed file stops it (byte 0, SIGKILL after the curse tolerance); a
//! dead vassal is restarted, throttled when it was never loyal. SIGHUP
//! reloads every vassal, SIGINT/SIGQUIT/SIGTERM stop them all and exit 0.
//!
//! Map: [`config`] (the options), [`monitor`] (which files are vassals),
//! [`watch`] (inotify), [`scan`] (files vs table), [`table`] (entries and
//! their descriptors), [`vassal`] (one lifecycle, sans-io), [`spawn`]
//! (fork/exec), [`blacklist`] (throttling), [`stats`] and
//! [`stats_server`] (the JSON), [`ondemand`] (socket-activated vassals),
//! [`event_loop`] (the one mio loop), [`handoff`] (running as the
//! `uwsgi-emperor` executable, without libpython). Not owned here: the vassal side of
//! the pipe (the master), the emperor-inside-a-master fork (the master).
//!
//! The emperor uses `config` (to read its options and build vassal argv),
//! `protocol::emperor` and `sys`; never python, router or master.

pub mod blacklist;
pub mod config;
pub mod event_loop;
mod fds;
pub mod handoff;
pub mod log;
pub mod monitor;
pub mod notify;
pub mod ondemand;
pub mod scan;
pub mod signals;
pub mod spawn;
pub mod stats;
pub mod stats_server;
pub mod table;
pub mod vassal;
pub mod watch;

pub use config::EmperorConfig;
pub use event_loop::run;

/// Seconds since the epoch (the numbers logs and stats show).
pub(crate) fn wall_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
