//! The built-in `uwsgi` module apps import: the cheap, commonly touched
//! part of uWSGI's API (`opt`, `worker_id()`, `numproc`, `reload()`,
//! `version`, `masterpid()`, `log()`, request counters, ...). Values have
//! uWSGI's Python 3 types: `version`, `hostname` and `opt` values are
//! bytes, `opt` keys are str, a repeated option becomes a list and a
//! valueless flag is `True`.
//!
//! Not here: caches, signals, mules, spoolers, RPC, websockets (absent, so
//! `hasattr(uwsgi, "cache_get")` is false instead of a stub that lies).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyModule, PyTuple};

use super::interp;
use super::log as logline;
use crate::config::model::PythonConfig;

/// The uWSGI version ruwsgi stands in for.
pub(crate) const UWSGI_VERSION: &str = "2.0.21";
const VERSION_INFO: (u32, u32, u32, u32) = (2, 0, 21, 0);

/// Requests this process has finished (`uwsgi.total_requests()`).
static TOTAL_REQUESTS: AtomicU64 = AtomicU64::new(0);

pub(crate) fn count_request() -> u64 {
    TOTAL_REQUESTS.fetch_add(1, Ordering::Relaxed) + 1
}

/// The host name, as uWSGI's `uwsgi.hostname` / `uwsgi.node`.
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim_end().to_string())
        .unwrap_or_default()
}

#[pyfunction]
fn worker_id() -> usize {
    interp::worker_id()
}

#[pyfunction]
fn mule_id() -> usize {
    0
}

#[pyfunction]
fn masterpid() -> u32 {
    interp::master_pid()
}

/// The instance's requests (every worker's), as uWSGI answers it.
#[pyfunction]
fn total_requests() -> u64 {
    super::apps::shared_total().unwrap_or_else(|| TOTAL_REQUESTS.load(Ordering::Relaxed))
}

#[pyfunction]
fn request_id() -> u64 {
    TOTAL_REQUESTS.load(Ordering::Relaxed)
}

/// Sends SIGHUP (graceful reload) to the master, as uWSGI does.
#[pyfunction]
pub(crate) fn reload(py: Python<'_>) -> PyResult<bool> {
    let pid = interp::master_pid();
    if pid == 0 {
        return Ok(false);
    }
    let os = py.import("os")?;
    let signal = py.import("signal")?;
    os.getattr("kill")?
        .call1((pid, signal.getattr("SIGHUP")?))
        .map(|_| true)
}

/// `uwsgi.log(message)`: one line to the log.
#[pyfunction(name = "log")]
fn log_message(message: &Bound<'_, PyAny>) -> PyResult<bool> {
    let text = match message.cast::<PyBytes>() {
        Ok(b) => String::from_utf8_lossy(b.as_bytes()).into_owned(),
        Err(_) => message.str()?.to_string(),
    };
    logline::line(&text);
    Ok(true)
}

/// `uwsgi.mem()`: (rss bytes, address space bytes) from /proc.
#[pyfunction]
fn mem() -> (u64, u64) {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let mut it = statm
        .split_whitespace()
        .map(|v| v.parse::<u64>().unwrap_or(0));
    let size = it.next().unwrap_or(0);
    let rss = it.next().unwrap_or(0);
    (rss * 4096, size * 4096)
}

#[pyfunction]
fn micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Accepted for compatibility; ruwsgi has one worker loop per thread and
/// nothing to tell it.
#[pyfunction]
#[pyo3(signature = (*_args))]
fn accepting(_args: &Bound<'_, PyTuple>) -> Option<bool> {
    None
}

/// Builds `uwsgi.opt` from the resolved option list.
fn opt_dict<'py>(py: Python<'py>, opt: &[(String, String)]) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (key, value) in opt {
        let value: Bound<'py, PyAny> = if value.is_empty() {
            pyo3::types::PyBool::new(py, true).to_owned().into_any()
        } else {
            PyBytes::new(py, value.as_bytes()).into_any()
        };
        match dict.get_item(key)? {
            None => dict.set_item(key, value)?,
            Some(old) => match old.cast::<PyList>() {
                Ok(list) => list.append(value)?,
                Err(_) => dict.set_item(key, PyList::new(py, [old, value])?)?,
            },
        }
    }
    Ok(dict)
}

/// Creates the module and puts it in `sys.modules`.
pub(crate) fn register(
    py: Python<'_>,
    cfg: &PythonConfig,
    opt: &[(String, String)],
) -> PyResult<()> {
    let m = PyModule::new(py, "uwsgi")?;
    m.add_function(wrap_pyfunction!(worker_id, &m)?)?;
    m.add_function(wrap_pyfunction!(mule_id, &m)?)?;
    m.add_function(wrap_pyfunction!(masterpid, &m)?)?;
    m.add_function(wrap_pyfunction!(total_requests, &m)?)?;
    m.add_function(wrap_pyfunction!(request_id, &m)?)?;
    m.add_function(wrap_pyfunction!(reload, &m)?)?;
    m.add_function(wrap_pyfunction!(log_message, &m)?)?;
    m.add_function(wrap_pyfunction!(mem, &m)?)?;
    m.add_function(wrap_pyfunction!(micros, &m)?)?;
    m.add_function(wrap_pyfunction!(accepting, &m)?)?;
    m.add("version", PyBytes::new(py, UWSGI_VERSION.as_bytes()))?;
    let (a, b, c, d) = VERSION_INFO;
    m.add("version_info", (a, b, c, d, PyBytes::new(py, b"")))?;
    m.add("hostname", PyBytes::new(py, hostname().as_bytes()))?;
    m.add("numproc", interp::numproc())?;
    m.add("opt", opt_dict(py, opt)?)?;
    m.add("has_threads", i32::from(cfg.enable_threads))?;
    m.add("cores", cfg.threads.max(1))?;
    m.add("buffer_size", crate::protocol::uwsgi::DEFAULT_BUFFER_SIZE)?;
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    m.add("started_on", started)?;
    m.add("SPOOL_RETRY", -1)?;
    m.add("SPOOL_OK", -2)?;
    m.add("SPOOL_IGNORE", 0)?;
    m.add("unbit", py.None())?;
    m.add("loop", py.None())?;
    m.add("applications", py.None())?;
    m.add("is_a_reload", std::env::var_os("UWSGI_RELOADS").is_some())?;
    m.add("magic_table", PyDict::new(py))?;
    m.add("sockets", PyList::empty(py))?;
    py.import("sys")?
        .getattr("modules")?
        .set_item("uwsgi", &m)?;
    Ok(())
}

/// Updates `uwsgi.numproc` after the master decided the worker count.
pub(crate) fn set_numproc(py: Python<'_>, numproc: usize) {
    if let Ok(m) = py.import("uwsgi") {
        let _ = m.setattr("numproc", numproc);
    }
}

/// Exposes the current environ as `uwsgi.env` (uWSGI does it only when a
/// worker has a single thread) or removes it.
pub(crate) fn set_env(py: Python<'_>, environ: Option<&Bound<'_, PyDict>>) {
    let Ok(m) = py.import("uwsgi") else {
        return;
    };
    let _ = match environ {
        Some(e) => m.setattr("env", e),
        None => m.delattr("env"),
    };
}
