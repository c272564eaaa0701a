//! The WSGI environ: the request's CGI variables in wire order (a later
//! duplicate overwrites the value but keeps the first position, as
//! uWSGI's `PyDict_SetItem` loop does), then uWSGI's fixed keys in its
//! order: `wsgi.input`, `wsgi.file_wrapper`, `wsgi.version`, `wsgi.errors`,
//! `wsgi.run_once`, `wsgi.multithread`, `wsgi.multiprocess`,
//! `wsgi.url_scheme`, `uwsgi.version`, `uwsgi.core` (threaded only),
//! `uwsgi.node`.
//!
//! Keys and values are decoded as latin-1 (PEP 3333 "native strings").
//! Keys are interned, from a bounded cache so hostile header names cannot
//! grow the interpreter's interned table without limit.

use std::collections::HashMap;
use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyString, PyTuple};

use super::file_wrapper::FileWrapper;
use super::uwsgi_module::{hostname, UWSGI_VERSION};

/// Largest number of distinct keys kept interned.
const KEY_CACHE_MAX: usize = 1024;

static KEY_CACHE: Mutex<Option<HashMap<Vec<u8>, Py<PyString>>>> = Mutex::new(None);

/// A latin-1 byte string as a Python str.
pub(crate) fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyString> {
    match std::str::from_utf8(bytes) {
        Ok(s) if bytes.is_ascii() => PyString::new(py, s),
        _ => {
            let s: String = bytes.iter().map(|&b| char::from(b)).collect();
            PyString::new(py, &s)
        }
    }
}

/// An environ key, interned while the cache has room.
fn key<'py>(py: Python<'py>, name: &[u8]) -> Bound<'py, PyString> {
    let mut guard = KEY_CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let cache = guard.get_or_insert_with(HashMap::new);
    if let Some(k) = cache.get(name) {
        return k.bind(py).clone();
    }
    let s = latin1(py, name);
    if cache.len() >= KEY_CACHE_MAX {
        return s;
    }
    let interned = PyString::intern(py, &s.to_cow().unwrap_or_default());
    cache.insert(name.to_vec(), interned.clone().unbind());
    interned
}

/// Per-process constants of the environ.
struct Fixed {
    file_wrapper: Py<PyAny>,
    version: Py<PyTuple>,
    uwsgi_version: Py<PyBytes>,
    node: Py<PyBytes>,
    sys: Py<PyModule>,
}

static FIXED: PyOnceLock<Fixed> = PyOnceLock::new();

fn fixed(py: Python<'_>) -> PyResult<&Fixed> {
    FIXED.get_or_try_init(py, || {
        Ok(Fixed {
            file_wrapper: py.get_type::<FileWrapper>().into_any().unbind(),
            version: PyTuple::new(py, [1, 0])?.unbind(),
            uwsgi_version: PyBytes::new(py, UWSGI_VERSION.as_bytes()).unbind(),
            node: PyBytes::new(py, hostname().as_bytes()).unbind(),
            sys: py.import("sys")?.unbind(),
        })
    })
}

/// Per-request inputs of the fixed keys.
pub(crate) struct Extras<'a, 'py> {
    pub(crate) input: Bound<'py, PyAny>,
    pub(crate) scheme: &'a str,
    pub(crate) threads: usize,
    pub(crate) numproc: usize,
    /// The body is de-chunked: adds `wsgi.input_terminated = True`.
    pub(crate) input_terminated: bool,
    /// (key, value) pairs that replace the wire value, e.g. the
    /// `manage-script-name` split of `SCRIPT_NAME` / `PATH_INFO`.
    pub(crate) overrides: &'a [(&'a [u8], &'a [u8])],
}

/// `wsgi.url_scheme`: the last `UWSGI_SCHEME` or `HTTP_X_FORWARDED_PROTO`,
/// else `https` when `HTTPS` is `on`/`1...`, else `http`.
pub(crate) fn url_scheme<'a>(vars: &[(&'a [u8], &'a [u8])]) -> std::borrow::Cow<'a, str> {
    let explicit = vars
        .iter()
        .rev()
        .find(|(k, _)| *k == b"UWSGI_SCHEME" || *k == b"HTTP_X_FORWARDED_PROTO")
        .map(|(_, v)| *v)
        .filter(|v| !v.is_empty());
    if let Some(v) = explicit {
        return String::from_utf8_lossy(v);
    }
    let https = vars
        .iter()
        .rev()
        .find(|(k, _)| *k == b"HTTPS")
        .map(|(_, v)| *v);
    match https {
        Some(v) if v.len() >= 2 && v[..2].eq_ignore_ascii_case(b"on") => "https".into(),
        Some([b'1', ..]) => "https".into(),
        _ => "http".into(),
    }
}

/// Builds the environ dict.
pub(crate) fn build<'py>(
    py: Python<'py>,
    vars: &[(&[u8], &[u8])],
    extras: Extras<'_, 'py>,
) -> PyResult<Bound<'py, PyDict>> {
    let env = PyDict::new(py);
    for (k, v) in vars.iter().chain(extras.overrides) {
        env.set_item(key(py, k), latin1(py, v))?;
    }
    let f = fixed(py)?;
    // sys.stderr as it is now (an app may replace it); the module is cached.
    let sys = f.sys.bind(py);
    env.set_item(pyo3::intern!(py, "wsgi.input"), extras.input)?;
    env.set_item(
        pyo3::intern!(py, "wsgi.file_wrapper"),
        f.file_wrapper.bind(py),
    )?;
    env.set_item(pyo3::intern!(py, "wsgi.version"), f.version.bind(py))?;
    env.set_item(pyo3::intern!(py, "wsgi.errors"), sys.getattr("stderr")?)?;
    env.set_item(pyo3::intern!(py, "wsgi.run_once"), false)?;
    env.set_item(pyo3::intern!(py, "wsgi.multithread"), extras.threads > 1)?;
    env.set_item(pyo3::intern!(py, "wsgi.multiprocess"), extras.numproc > 1)?;
    env.set_item(pyo3::intern!(py, "wsgi.url_scheme"), extras.scheme)?;
    if extras.input_terminated {
        env.set_item(pyo3::intern!(py, "wsgi.input_terminated"), true)?;
    }
    env.set_item(pyo3::intern!(py, "uwsgi.version"), f.uwsgi_version.bind(py))?;
    if extras.threads > 1 {
        // uWSGI gives the core id; each thread here is one core.
        env.set_item(pyo3::intern!(py, "uwsgi.core"), 0)?;
    }
    env.set_item(pyo3::intern!(py, "uwsgi.node"), f.node.bind(py))?;
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes() {
        let cases: &[(&str, &[(&[u8], &[u8])], &str)] = &[
            ("nothing", &[], "http"),
            ("https on", &[(b"HTTPS", b"on")], "https"),
            ("https ON", &[(b"HTTPS", b"ON")], "https"),
            ("https 1", &[(b"HTTPS", b"1")], "https"),
            ("https off", &[(b"HTTPS", b"off")], "http"),
            ("uwsgi scheme", &[(b"UWSGI_SCHEME", b"https")], "https"),
            (
                "forwarded proto wins over HTTPS",
                &[(b"HTTPS", b"off"), (b"HTTP_X_FORWARDED_PROTO", b"https")],
                "https",
            ),
        ];
        for (name, vars, want) in cases {
            assert_eq!(url_scheme(vars), *want, "{name}");
        }
    }
}
