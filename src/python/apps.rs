//! Loading WSGI callables and choosing one per request.
//!
//! Loaders, in uWSGI's order (`uwsgi_python_init_apps`, then the core's
//! mount loop): `module` (`pkg.mod`, `pkg.mod:callable`, `mod:factory()`),
//! `wsgi-file` (run as module `uwsgi_file_<path with . and / as _>`), then
//! each `mount = /path=target` (`.py`/`.wsgi` → file, `a:b` → module). The
//! first app whose mountpoint is empty or starts with `/` is the default.
//!
//! Selection (`uwsgi_get_app_id`): `UWSGI_APPID`, else `SCRIPT_NAME`, must
//! equal a mountpoint; otherwise the default app. With
//! `manage-script-name` the longest mountpoint that prefixes `PATH_INFO`
//! (on a `/` boundary) moves from `PATH_INFO` to `SCRIPT_NAME` first.
//!
//! Unlike uWSGI, mounted apps share the main interpreter (uWSGI gives each
//! mount a sub-interpreter unless `single-interpreter`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use pyo3::prelude::*;
use pyo3::types::PyTuple;

use super::{interp, log};
use crate::config::model::PythonConfig;

/// One loaded WSGI callable.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) mountpoint: String,
    pub(crate) callable: Py<PyAny>,
    /// Requests this app served in this process, when there is no shared
    /// counter for it (see [`share_counters`]).
    requests: AtomicU64,
}

impl App {
    /// Counts a request of app `id`; returns the count (the `A` of the
    /// log line's `req: A/B`).
    pub(crate) fn count_request(&self, id: usize) -> u64 {
        shared_slot(id)
            .unwrap_or(&self.requests)
            .fetch_add(1, Ordering::Relaxed)
            + 1
    }
}

/// Apps per worker with a shared request counter (uWSGI's default
/// `max-apps`); apps past it count in their process only.
pub const SHARED_APPS_PER_WORKER: usize = 64;

/// Request counters every process of the instance shares, as uWSGI keeps
/// them in its shared worker table: a worker's count per app goes on
/// after the worker is respawned.
struct SharedCounts {
    /// [`SHARED_APPS_PER_WORKER`] counters per worker, worker 1 first.
    per_app: &'static [AtomicU64],
    /// The instance's requests (`uwsgi.total_requests()`).
    total: &'static AtomicU64,
}

static SHARED: std::sync::OnceLock<SharedCounts> = std::sync::OnceLock::new();

/// Installs the shared counters (zeroed memory mapped shared before the
/// workers fork); the master calls it once.
pub fn share_counters(per_app: &'static [AtomicU64], total: &'static AtomicU64) {
    let _ = SHARED.set(SharedCounts { per_app, total });
}

/// This worker's shared counter for app `id`.
fn shared_slot(id: usize) -> Option<&'static AtomicU64> {
    let shared = SHARED.get()?;
    let worker = interp::worker_id();
    if worker == 0 || id >= SHARED_APPS_PER_WORKER {
        return None;
    }
    shared
        .per_app
        .get((worker - 1) * SHARED_APPS_PER_WORKER + id)
}

/// The instance's request total, when the processes share one.
pub(crate) fn shared_total() -> Option<u64> {
    SHARED.get().map(|s| s.total.load(Ordering::Relaxed))
}

/// The apps of this process, by id (uWSGI's `app: N`).
#[derive(Debug, Default)]
pub struct Apps {
    apps: Vec<App>,
    default: Option<usize>,
    manage_script_name: bool,
}

impl Apps {
    /// No app loaded ("full dynamic mode").
    pub fn is_empty(&self) -> bool {
        self.apps.is_empty()
    }

    pub fn len(&self) -> usize {
        self.apps.len()
    }

    /// Mountpoints in id order.
    pub fn mountpoints(&self) -> impl Iterator<Item = &str> {
        self.apps.iter().map(|a| a.mountpoint.as_str())
    }

    /// `manage-script-name` is on (http-socket then omits `SCRIPT_NAME`).
    pub fn manage_script_name(&self) -> bool {
        self.manage_script_name
    }

    pub(crate) fn get(&self, id: usize) -> Option<&App> {
        self.apps.get(id)
    }

    /// The mountpoint `manage-script-name` strips from `path_info`: the
    /// longest one (trailing `/` ignored) that prefixes it on a `/`
    /// boundary. Returns the mountpoint as configured.
    pub(crate) fn script_name_for(&self, path_info: &[u8]) -> Option<&str> {
        if path_info.len() <= 1 {
            return None;
        }
        let mut best: Option<(usize, &str)> = None;
        for app in &self.apps {
            let mp = app.mountpoint.as_bytes();
            let len = mp.len() - usize::from(mp.last() == Some(&b'/'));
            let better = best.map_or(len > 0, |(b, _)| len > b);
            if better
                && path_info.len() >= len
                && path_info[..len] == mp[..len]
                && (path_info.len() == len || path_info[len] == b'/')
            {
                best = Some((len, &app.mountpoint));
            }
        }
        best.map(|(_, mp)| mp)
    }

    /// The app id for a request (see the module doc).
    pub(crate) fn select(&self, appid: Option<&[u8]>, script_name: Option<&[u8]>) -> Option<usize> {
        let key = appid.filter(|a| !a.is_empty()).or(script_name);
        key.and_then(|k| self.apps.iter().position(|a| a.mountpoint.as_bytes() == k))
            .or(self.default)
    }
}

/// What a configured target loads.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// `pkg.mod` with the default callable, or `pkg.mod:name` / `mod:f()`.
    Module { module: String, callable: String },
    /// A file run as a module.
    File(String),
}

impl Target {
    fn module(spec: &str, default_callable: &str) -> Target {
        let (module, callable) = spec.split_once(':').unwrap_or((spec, default_callable));
        Target::Module {
            module: module.to_string(),
            callable: callable.to_string(),
        }
    }

    /// The target of `mount = /path=target` (`uwsgi_python_mount_app`).
    fn mount(spec: &str, default_callable: &str) -> Option<Target> {
        if spec.ends_with(".py") || spec.ends_with(".wsgi") {
            Some(Target::File(spec.to_string()))
        } else if spec.contains(':') {
            Some(Target::module(spec, default_callable))
        } else {
            None
        }
    }
}

/// uWSGI's module name for a file: `uwsgi_file_` + the path with `.` and
/// `/` turned into `_`, without a trailing `.py`/`_py`.
fn file_module_name(path: &str) -> String {
    let mut name: String = path
        .chars()
        .map(|c| if c == '.' || c == '/' { '_' } else { c })
        .collect();
    if name.ends_with("_py") {
        name.truncate(name.len() - 3);
    }
    format!("uwsgi_file_{name}")
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Loads every configured app; failures are logged (with the traceback)
/// and skipped, as uWSGI does. `Err` only when `need-app` is set and
/// nothing loaded (the caller exits 22).
pub fn load_apps(cfg: &PythonConfig) -> Result<Apps, String> {
    let mut targets: Vec<(String, Target)> = Vec::new();
    if let Some(m) = &cfg.module {
        targets.push((String::new(), Target::module(m, &cfg.callable)));
    }
    if let Some(f) = &cfg.wsgi_file {
        targets.push((String::new(), Target::File(f.clone())));
    }
    let mut apps = Apps {
        manage_script_name: cfg.manage_script_name,
        ..Apps::default()
    };
    let nothing_to_load = targets.is_empty() && cfg.mounts.is_empty();
    // Nothing to load: the interpreter may not even be started.
    (!nothing_to_load).then(|| {
        Python::attach(|py| {
            for (mountpoint, target) in targets {
                load_one(py, &mut apps, mountpoint, &target, &cfg.callable);
            }
            for mount in &cfg.mounts {
                let Some((mountpoint, what)) = mount.split_once('=') else {
                    log::line(&format!("invalid mountpoint: {mount}"));
                    continue;
                };
                log::line(&format!("mounting {what} on {mountpoint}"));
                if let Some(target) = Target::mount(what, &cfg.callable) {
                    load_one(
                        py,
                        &mut apps,
                        mountpoint.to_string(),
                        &target,
                        &cfg.callable,
                    );
                }
            }
        })
    });
    if apps.is_empty() {
        if cfg.need_app {
            // The caller says GAME OVER, or keeps the old workers (reload).
            return Err("no app loaded".into());
        }
        log::line("*** no app loaded. going in full dynamic mode ***");
    }
    Ok(apps)
}

fn load_one(py: Python<'_>, apps: &mut Apps, mountpoint: String, target: &Target, callable: &str) {
    let id = apps.apps.len();
    if apps.apps.iter().any(|a| a.mountpoint == mountpoint) {
        log::line(&format!(
            "mountpoint {mountpoint} already configured. skip."
        ));
        return;
    }
    let started = now_secs();
    let loaded = match target {
        Target::Module { module, callable } => load_module(py, module, callable),
        Target::File(path) => load_file(py, path, callable),
    };
    let callable = match loaded {
        Ok(c) => c,
        Err(e) => {
            if let Some(e) = e {
                e.display(py);
            }
            log::line(&format!(
                "unable to load app {id} (mountpoint='{mountpoint}') (callable not found or import error)"
            ));
            return;
        }
    };
    let is_default =
        apps.default.is_none() && (mountpoint.is_empty() || mountpoint.starts_with('/'));
    if is_default {
        apps.default = Some(id);
    }
    log::line(&format!(
        "WSGI app {id} (mountpoint='{mountpoint}') ready in {} seconds on interpreter {:#x} pid: {}{}",
        now_secs().saturating_sub(started),
        interp::main_interpreter(),
        std::process::id(),
        if is_default { " (default app)" } else { "" }
    ));
    // An app a worker loads itself (lazy-apps) counts from zero, as
    // uWSGI's worker table entry is cleared when an app is added.
    if let Some(slot) = shared_slot(id) {
        slot.store(0, Ordering::Relaxed);
    }
    apps.apps.push(App {
        mountpoint,
        callable,
        requests: AtomicU64::new(0),
    });
}

/// `Err(None)`: already logged, no Python error to print.
type Loaded = Result<Py<PyAny>, Option<PyErr>>;

fn load_module(py: Python<'_>, module: &str, callable: &str) -> Loaded {
    let m = py.import(module).map_err(Some)?;
    let found = match callable.strip_suffix("()") {
        Some(factory) => m.getattr(factory).and_then(|f| f.call0()).map_err(Some)?,
        None => m.getattr(callable).map_err(|_| None)?,
    };
    Ok(found.unbind())
}

fn load_file(py: Python<'_>, path: &str, callable: &str) -> Loaded {
    let source = match std::fs::read(path) {
        Ok(s) => s,
        Err(_) => {
            log::line(&format!("failed to open python file {path}"));
            return Err(None);
        }
    };
    let name = file_module_name(path);
    let code = (|| {
        let compiled = interp::compile_file(py, &source, path)?;
        // What types.ModuleType(name) makes, without importing `types`
        // (a measurable part of a vassal's start).
        let module = pyo3::types::PyModule::new(py, name.as_str())?;
        module.setattr("__file__", path)?;
        py.import("sys")?
            .getattr("modules")?
            .set_item(name.as_str(), &module)?;
        let globals = module.getattr("__dict__")?;
        py.import("builtins")?
            .getattr("exec")?
            .call1(PyTuple::new(py, [compiled, globals.clone()])?)?;
        Ok::<_, PyErr>(globals)
    })();
    let globals = match code {
        Ok(g) => g,
        Err(e) => {
            let _ = py
                .import("sys")
                .and_then(|s| s.getattr("modules")?.del_item(name.as_str()));
            return Err(Some(e));
        }
    };
    match globals.get_item(callable) {
        Ok(c) if c.is_callable() => Ok(c.unbind()),
        Ok(_) => {
            log::line(&format!(
                "\"application\" must be a callable object in file {path}"
            ));
            Err(None)
        }
        Err(_) => {
            log::line(&format!(
                "unable to find \"application\" callable in file {path}"
            ));
            Err(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_targets() {
        assert_eq!(file_module_name("hello.py"), "uwsgi_file_hello");
        assert_eq!(
            file_module_name("tests/apps/environ.py"),
            "uwsgi_file_tests_apps_environ"
        );
        assert_eq!(file_module_name("app.wsgi"), "uwsgi_file_app_wsgi");
        assert_eq!(
            Target::module("pkg.mod", "application"),
            Target::Module {
                module: "pkg.mod".into(),
                callable: "application".into()
            }
        );
        assert_eq!(
            Target::mount("a/b.wsgi", "application"),
            Some(Target::File("a/b.wsgi".into()))
        );
        assert_eq!(Target::mount("nothing", "application"), None);
    }
}
