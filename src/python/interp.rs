//! Starting the interpreter and keeping it consistent across fork(2).
//!
//! [`init`] mirrors `uwsgi_python_init` + `init_uwsgi_vars`: the
//! `home`/`virtualenv` option (a PEP 405 venv is entered by pointing the
//! program name at `HOME/bin/python`, as uWSGI does, so the venv's
//! `include-system-site-packages` is honoured; a plain prefix becomes
//! `PYTHONHOME`), `env` applied first, `.` then every `pythonpath` entry
//! pushed to the front of `sys.path`, `sys.stdout`/`sys.stderr` line
//! buffered on fd 2, and the built-in `uwsgi` module. The GIL is released
//! at the end so any thread can attach.
//!
//! The fork hooks hold the GIL from [`before_fork`] to the matching
//! `after_fork_*`, so the child starts with a consistent interpreter
//! (`PyOS_BeforeFork` / `PyOS_AfterFork_Child`).

use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Mutex;

use pyo3::ffi;
use pyo3::prelude::*;

use super::log;
use super::uwsgi_module;
use crate::config::model::PythonConfig;

/// Why the interpreter could not start. Every case is a configuration or
/// installation fault: the master logs the line and exits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum InitError {
    #[error(
        "!!! virtualenv {home} was created for Python {venv}, but this uwsgi embeds Python {ours} !!!"
    )]
    VersionMismatch {
        home: String,
        venv: String,
        ours: String,
    },
    #[error("!!! Python Home is not a directory: {0} !!!")]
    HomeNotDir(String),
    #[error("invalid value for a Python path setting (embedded NUL byte): {0}")]
    Nul(String),
    #[error("Python initialization failed: {0}")]
    Status(String),
    #[error("Python initialization failed: {0}")]
    Python(String),
}

/// The main thread state, printed as uWSGI's "interpreter 0x..." address.
static MAIN_INTERPRETER: AtomicUsize = AtomicUsize::new(0);
static WORKER_ID: AtomicUsize = AtomicUsize::new(0);
static NUMPROC: AtomicUsize = AtomicUsize::new(1);
static MASTER_PID: AtomicU32 = AtomicU32::new(0);
/// The GIL state taken by [`before_fork`], released after the fork.
static FORK_GIL: Mutex<Option<ffi::PyGILState_STATE>> = Mutex::new(None);

/// How `home` is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Home {
    /// A PEP 405 virtualenv: the program name becomes `HOME/bin/python`.
    Venv(String),
    /// A Python prefix: becomes the interpreter's home (`PYTHONHOME`).
    Prefix(String),
}

/// Starts the interpreter. See the module doc for the steps.
pub fn init(cfg: &PythonConfig, opt: &[(String, String)]) -> Result<(), String> {
    init_inner(cfg, opt).map_err(|e| e.to_string())
}

/// Whether the configuration gives the interpreter anything to do: an app
/// to load (`module`, `wsgi-file`, `mount`) or files to watch
/// (`py-autoreload`). An instance without (a router and emperor front, say)
/// skips [`init`]: CPython costs every process megabytes once started.
pub fn needed(cfg: &PythonConfig) -> bool {
    cfg.module.is_some()
        || cfg.wsgi_file.is_some()
        || !cfg.mounts.is_empty()
        || cfg.py_autoreload > 0
}

/// What [`init`] does besides starting CPython, for an instance that does
/// not start it: `env` entries and the master's pid.
pub fn init_without_interpreter(cfg: &PythonConfig) {
    apply_env(&cfg.env);
    MASTER_PID.store(std::process::id(), Ordering::Relaxed);
}

fn init_inner(cfg: &PythonConfig, opt: &[(String, String)]) -> Result<(), InitError> {
    apply_env(&cfg.env);
    let version = runtime_version();
    log::line(&format!("Python version: {}", version.replace('\n', "")));
    MASTER_PID.store(std::process::id(), Ordering::Relaxed);
    // SAFETY: Py_IsInitialized may be called at any time.
    if unsafe { ffi::Py_IsInitialized() } != 0 {
        log::line("--- Python VM already initialized ---");
    } else {
        let home = match &cfg.home {
            Some(h) => Some(check_home(Path::new(h), &major_minor(&version))?),
            None => None,
        };
        let home = home.or_else(|| {
            // Without `home`, anchor the stdlib on the libpython this
            // process runs (a PATH lookup could find another Python's).
            if std::env::var_os("PYTHONHOME").is_some() {
                return None;
            }
            libpython_prefix(&major_minor(&version)).map(Home::Prefix)
        });
        start_interpreter(home.as_ref())?;
    }
    Python::attach(|py| setup(py, cfg, opt)).map_err(|e| InitError::Python(e.to_string()))?;
    if !cfg.enable_threads {
        log::line(
            "*** Python threads support is disabled. You can enable it with --enable-threads ***",
        );
    } else {
        log::line("python threads support enabled");
    }
    log::line(&format!(
        "Python main interpreter initialized at {:#x}",
        MAIN_INTERPRETER.load(Ordering::Relaxed)
    ));
    Ok(())
}

/// `env = K=V` sets, a bare `env = K` unsets (glibc `putenv` semantics).
fn apply_env(env: &[String]) {
    for entry in env {
        match entry.split_once('=') {
            Some((k, v)) if !k.is_empty() && !k.contains('\0') && !v.contains('\0') => {
                std::env::set_var(k, v)
            }
            None if !entry.is_empty() && !entry.contains('\0') => std::env::remove_var(entry),
            _ => {}
        }
    }
}

/// `Py_GetVersion()`: "3.11.7 (main, ...) \n[GCC ...]".
fn runtime_version() -> String {
    // SAFETY: Py_GetVersion returns a static NUL-terminated string and may
    // be called before initialization.
    let ptr = unsafe { ffi::Py_GetVersion() };
    if ptr.is_null() {
        return String::new();
    }
    // SAFETY: non-null, NUL-terminated, static (see above).
    unsafe { std::ffi::CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

/// "3.11" from "3.11.7 ..." (also from a pyvenv.cfg "3.11.7.final.0").
fn major_minor(version: &str) -> String {
    let v = version.split_whitespace().next().unwrap_or_default();
    v.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// Validates `home` against the embedded Python version.
fn check_home(home: &Path, ours: &str) -> Result<Home, InitError> {
    let shown = home.display().to_string();
    if !home.is_dir() {
        return Err(InitError::HomeNotDir(shown));
    }
    let mismatch = |venv: String| InitError::VersionMismatch {
        home: shown.clone(),
        venv,
        ours: ours.to_string(),
    };
    if let Ok(cfg) = std::fs::read_to_string(home.join("pyvenv.cfg")) {
        log::line(&format!("PEP 405 virtualenv detected: {shown}"));
        if let Some(venv) = venv_version(&cfg) {
            if venv != ours {
                return Err(mismatch(venv));
            }
        }
        return Ok(Home::Venv(shown));
    }
    // A prefix or an old-style virtualenv: lib/pythonX.Y tells the version.
    let lib_versions: Vec<String> = std::fs::read_dir(home.join("lib"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.strip_prefix("python")
                        .filter(|v| v.starts_with(|c: char| c.is_ascii_digit()))
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    if !lib_versions.is_empty() && !lib_versions.iter().any(|v| v == ours) {
        let mut found = lib_versions;
        found.sort();
        return Err(mismatch(found.join(", ")));
    }
    log::line(&format!("Set PythonHome to {shown}"));
    Ok(Home::Prefix(shown))
}

/// The prefix of the loaded libpython: the nearest ancestor of its
/// directory holding `lib/pythonX.Y/os.py` (from /proc/self/maps).
fn libpython_prefix(ours: &str) -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let lib = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| {
            Path::new(p)
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("libpython{ours}")))
        })?;
    Path::new(lib)
        .ancestors()
        .skip(1)
        .find(|dir| dir.join(format!("lib/python{ours}/os.py")).is_file())
        .map(|d| d.display().to_string())
}

/// The `version` (venv) or `version_info` (virtualenv) key of pyvenv.cfg.
fn venv_version(cfg: &str) -> Option<String> {
    let mut found = None;
    for line in cfg.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match k.trim() {
            "version" => return Some(major_minor(v.trim())),
            "version_info" => found = Some(major_minor(v.trim())),
            _ => {}
        }
    }
    found
}

/// Runs `Py_InitializeFromConfig` without Python's signal handlers (the
/// process has its own), then releases the GIL.
fn start_interpreter(home: Option<&Home>) -> Result<(), InitError> {
    let cstring = |s: String| std::ffi::CString::new(s.clone()).map_err(|_| InitError::Nul(s));
    // As uWSGI: a venv is entered through its bin/python, otherwise the
    // program is this binary (sys.executable).
    let program = match home {
        Some(Home::Venv(h)) => Some(cstring(format!("{h}/bin/python"))?),
        _ => match std::env::current_exe() {
            Ok(p) => Some(cstring(p.display().to_string())?),
            Err(_) => None,
        },
    };
    let py_home = match home {
        Some(Home::Prefix(h)) => Some(cstring(h.clone())?),
        _ => None,
    };
    let argv0 = cstring("uwsgi".into())?;
    let mut config = std::mem::MaybeUninit::<ffi::PyConfig>::uninit();
    // SAFETY: PyConfig_InitPythonConfig fully initializes the struct; the
    // setters copy the C strings, which outlive the calls; the config is
    // cleared exactly once; Py_InitializeFromConfig runs once (guarded by
    // Py_IsInitialized in the caller) on this thread, which then owns the
    // GIL and gives it up with PyEval_SaveThread.
    unsafe {
        ffi::PyConfig_InitPythonConfig(config.as_mut_ptr());
        let c = config.as_mut_ptr();
        (*c).install_signal_handlers = 0;
        (*c).parse_argv = 0;
        let mut statuses = Vec::new();
        if let Some(p) = &program {
            statuses.push(ffi::PyConfig_SetBytesString(
                c,
                std::ptr::addr_of_mut!((*c).program_name),
                p.as_ptr(),
            ));
        }
        if let Some(h) = &py_home {
            statuses.push(ffi::PyConfig_SetBytesString(
                c,
                std::ptr::addr_of_mut!((*c).home),
                h.as_ptr(),
            ));
        }
        let mut argv = [argv0.as_ptr()];
        statuses.push(ffi::PyConfig_SetBytesArgv(c, 1, argv.as_mut_ptr()));
        (*c).parse_argv = 0;
        if let Some(bad) = statuses
            .into_iter()
            .find(|s| ffi::PyStatus_Exception(*s) != 0)
        {
            ffi::PyConfig_Clear(c);
            return Err(InitError::Status(status_message(&bad)));
        }
        let status = ffi::Py_InitializeFromConfig(c);
        ffi::PyConfig_Clear(c);
        if ffi::PyStatus_Exception(status) != 0 {
            return Err(InitError::Status(status_message(&status)));
        }
        let tstate = ffi::PyEval_SaveThread();
        MAIN_INTERPRETER.store(tstate as usize, Ordering::Relaxed);
    }
    Ok(())
}

fn status_message(status: &ffi::PyStatus) -> String {
    if status.err_msg.is_null() {
        return format!("exit code {}", status.exitcode);
    }
    // SAFETY: err_msg of a PyStatus is a static NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(status.err_msg) }
        .to_string_lossy()
        .into_owned()
}

/// The part of init that runs with the GIL: streams, sys.path, `uwsgi`.
fn setup(py: Python<'_>, cfg: &PythonConfig, opt: &[(String, String)]) -> PyResult<()> {
    let sys = py.import("sys")?;
    let os = py.import("os")?;
    let environ = os.getattr("environ")?;
    for entry in &cfg.env {
        if let Some((k, v)) = entry.split_once('=') {
            if !k.is_empty() {
                environ.set_item(k, v)?;
            }
        }
    }
    // Python 3 buffers stdout/stderr; uWSGI makes both line-buffered on fd 2
    // unless stdin is a terminal (keeps debuggers usable).
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
    if !interactive {
        let io = py.import("io")?;
        let kwargs = pyo3::types::PyDict::new(py);
        kwargs.set_item("buffering", 1)?;
        kwargs.set_item("closefd", false)?;
        kwargs.set_item("encoding", "utf-8")?;
        kwargs.set_item("errors", "backslashreplace")?;
        let stream = io.getattr("open")?.call((2, "w"), Some(&kwargs))?;
        for name in ["stdout", "__stdout__", "stderr", "__stderr__"] {
            sys.setattr(name, &stream)?;
        }
    }
    let path = sys.getattr("path")?;
    path.call_method1("insert", (0, "."))?;
    for dir in &cfg.pythonpath {
        path.call_method1("insert", (0, dir.as_str()))?;
        log::line(&format!("added {dir} to pythonpath."));
    }
    uwsgi_module::register(py, cfg, opt)?;
    if MAIN_INTERPRETER.load(Ordering::Relaxed) == 0 {
        // SAFETY: the GIL is held, so there is a current thread state.
        let ts = unsafe { ffi::PyThreadState_Get() };
        MAIN_INTERPRETER.store(ts as usize, Ordering::Relaxed);
    }
    Ok(())
}

/// Compiles a file's source as uWSGI's loader does (`Py_CompileString`).
/// The builtin `compile()` first builds every AST node type of Python's
/// `ast` module (it checks whether it was given a tree), about half a
/// millisecond of each process start.
pub(crate) fn compile_file<'py>(
    py: Python<'py>,
    source: &[u8],
    path: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let Ok(source) = std::ffi::CString::new(source) else {
        // A NUL byte: the builtin raises the error this CPython raises for
        // it (a ValueError or a SyntaxError, depending on the version).
        let builtins = py.import("builtins")?;
        let bytes = pyo3::types::PyBytes::new(py, source);
        return builtins.getattr("compile")?.call1((bytes, path, "exec"));
    };
    let path = std::ffi::CString::new(path)
        .map_err(|_| pyo3::exceptions::PyValueError::new_err("embedded null byte"))?;
    // SAFETY: the GIL is held (`py`); both strings are NUL-terminated and
    // outlive the call, which copies what it keeps. A null result comes
    // with a Python exception set, which from_owned_ptr_or_err takes.
    unsafe {
        let code = ffi::Py_CompileStringExFlags(
            source.as_ptr(),
            path.as_ptr(),
            ffi::Py_file_input,
            std::ptr::null_mut(),
            -1,
        );
        Bound::from_owned_ptr_or_err(py, code)
    }
}

/// The address uWSGI prints as "interpreter 0x...".
pub(crate) fn main_interpreter() -> usize {
    MAIN_INTERPRETER.load(Ordering::Relaxed)
}

/// This worker's 1-based id (0 in the master).
pub(crate) fn worker_id() -> usize {
    WORKER_ID.load(Ordering::Relaxed)
}

pub(crate) fn numproc() -> usize {
    NUMPROC.load(Ordering::Relaxed)
}

pub(crate) fn master_pid() -> u32 {
    MASTER_PID.load(Ordering::Relaxed)
}

/// Overrides the pid `uwsgi.reload()` signals (default: the process that
/// called [`init`]).
pub fn set_master_pid(pid: u32) {
    MASTER_PID.store(pid, Ordering::Relaxed);
}

/// Records this process's worker slot; `uwsgi.numproc` follows.
pub fn set_worker_id(id: usize, numproc: usize) {
    WORKER_ID.store(id, Ordering::Relaxed);
    NUMPROC.store(numproc.max(1), Ordering::Relaxed);
    if is_initialized() {
        Python::attach(|py| uwsgi_module::set_numproc(py, numproc));
    }
}

pub(crate) fn is_initialized() -> bool {
    // SAFETY: Py_IsInitialized may be called at any time.
    unsafe { ffi::Py_IsInitialized() != 0 }
}

/// Call right before fork(2), single-threaded: takes the GIL and Python's
/// fork locks until [`after_fork_parent`] / [`after_fork_child`].
pub fn before_fork() {
    if !is_initialized() {
        return;
    }
    // SAFETY: the interpreter is initialized; the GIL state is kept in
    // FORK_GIL and released by exactly one after_fork_* in each process.
    let state = unsafe {
        let state = ffi::PyGILState_Ensure();
        ffi::PyOS_BeforeFork();
        state
    };
    *FORK_GIL.lock().unwrap_or_else(|e| e.into_inner()) = Some(state);
}

/// Call in the parent after fork(2).
pub fn after_fork_parent() {
    let Some(state) = FORK_GIL.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        return;
    };
    // SAFETY: before_fork took the GIL on this thread (state is Some).
    unsafe {
        ffi::PyOS_AfterFork_Parent();
        ffi::PyGILState_Release(state);
    }
}

/// Call in the child after fork(2), before anything else touches Python.
pub fn after_fork_child() {
    let Some(state) = FORK_GIL.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        return;
    };
    // SAFETY: the forking thread held the GIL (before_fork), so this thread
    // of the child holds it too; AfterFork_Child must run first.
    unsafe {
        ffi::PyOS_AfterFork_Child();
        ffi::PyGILState_Release(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(major_minor("3.11.7 (main, Jan  1 2024) [GCC]"), "3.11");
        assert_eq!(major_minor("3.12.1.final.0"), "3.12");
        let cfg = "home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.12.1\n";
        assert_eq!(venv_version(cfg).as_deref(), Some("3.12"));
        assert_eq!(
            venv_version("version_info = 3.10.2.final.0\n").as_deref(),
            Some("3.10")
        );
        assert_eq!(venv_version("home = /x\n"), None);
    }

    #[test]
    fn home_checks() {
        let dir = std::env::temp_dir().join(format!("ruwsgi-home-{}", std::process::id()));
        let venv = dir.join("venv");
        std::fs::create_dir_all(&venv).unwrap();
        std::fs::write(venv.join("pyvenv.cfg"), "version = 3.12.1\n").unwrap();
        let err = check_home(&venv, "3.11").unwrap_err().to_string();
        assert!(
            err.contains("Python 3.12") && err.contains("Python 3.11"),
            "{err}"
        );
        assert!(!err.contains('\n'));
        assert_eq!(
            check_home(&venv, "3.12"),
            Ok(Home::Venv(venv.display().to_string()))
        );
        let prefix = dir.join("prefix");
        std::fs::create_dir_all(prefix.join("lib/python3.9")).unwrap();
        assert!(matches!(
            check_home(&prefix, "3.11"),
            Err(InitError::VersionMismatch { .. })
        ));
        assert!(matches!(
            check_home(&dir.join("missing"), "3.11"),
            Err(InitError::HomeNotDir(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
