//! `wsgi.input`: the request body, streamed from the connection.
//!
//! Nothing is buffered ahead except what `readline` needs to find a line
//! end; `read(n)` blocks (GIL released) until `n` bytes or the end of the
//! body, `read()` returns the rest. The end of the body is the worker's
//! business (`CONTENT_LENGTH`, de-chunking). A client that fails or times
//! out raises `OSError` with uWSGI's text, and the request stops quietly.

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use super::exchange::{IoFailure, Shared};

/// The `wsgi.input` object (uWSGI names its type `uwsgi._Input`).
#[pyclass(module = "uwsgi", name = "_Input", frozen)]
pub(crate) struct Input {
    shared: Shared,
}

impl Input {
    pub(crate) fn new(shared: Shared) -> Input {
        Input { shared }
    }
}

/// `-1`/`None` mean "no limit".
fn limit(size: Option<isize>) -> Option<usize> {
    size.and_then(|s| usize::try_from(s).ok())
}

fn to_pyerr(e: IoFailure, what: &str, size: Option<isize>) -> PyErr {
    let arg = size.unwrap_or(0);
    match e {
        IoFailure::Client(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) =>
        {
            PyOSError::new_err(format!("timeout during {what}({arg}) on wsgi.input"))
        }
        IoFailure::Client(_) => {
            PyOSError::new_err(format!("error during {what}({arg}) on wsgi.input"))
        }
        other => PyOSError::new_err(other.to_string()),
    }
}

#[pymethods]
impl Input {
    #[pyo3(signature = (size = None))]
    fn read<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let n = limit(size);
        let data = self
            .shared
            .io(py, |s| s.read(n))
            .map_err(|e| to_pyerr(e, "read", size))?;
        Ok(PyBytes::new(py, &data))
    }

    #[pyo3(signature = (size = None))]
    fn readline<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let n = limit(size);
        let data = self
            .shared
            .io(py, |s| s.readline(n))
            .map_err(|e| to_pyerr(e, "readline", size))?;
        Ok(PyBytes::new(py, &data))
    }

    /// All remaining lines; stops once `hint` bytes were read (hint > 0).
    #[pyo3(signature = (hint = None))]
    fn readlines<'py>(&self, py: Python<'py>, hint: Option<isize>) -> PyResult<Bound<'py, PyList>> {
        let max = limit(hint).filter(|&h| h > 0);
        let lines = PyList::empty(py);
        let mut total = 0;
        loop {
            let line = self
                .shared
                .io(py, |s| s.readline(None))
                .map_err(|e| to_pyerr(e, "readline", hint))?;
            if line.is_empty() {
                break;
            }
            total += line.len();
            lines.append(PyBytes::new(py, &line))?;
            if max.is_some_and(|m| total >= m) {
                break;
            }
        }
        Ok(lines)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.readline(py, None)?;
        Ok((!line.as_bytes().is_empty()).then_some(line))
    }

    /// mod_wsgi compatibility: a no-op.
    #[pyo3(signature = (*_args))]
    fn close(&self, _args: &Bound<'_, pyo3::types::PyTuple>) {}

    /// Bytes read so far.
    fn tell(&self) -> u64 {
        self.shared.lock().consumed
    }

    /// Only a body buffered whole (`post-buffering`) can seek; `whence`
    /// 0 (from the start) and 1 (from the current position).
    #[pyo3(signature = (offset, whence = 0))]
    fn seek(&self, py: Python<'_>, offset: i64, whence: i32) -> PyResult<u64> {
        let base = match whence {
            0 => 0,
            1 => i64::try_from(self.tell()).unwrap_or(i64::MAX),
            _ => {
                return Err(PyOSError::new_err(
                    "wsgi.input can only seek with whence 0 or 1",
                ))
            }
        };
        let pos = u64::try_from(base.saturating_add(offset))
            .map_err(|_| PyOSError::new_err("negative seek position on wsgi.input"))?;
        match self.shared.io(py, |s| s.seek(pos)) {
            Ok(true) => Ok(pos),
            Ok(false) => Err(PyOSError::new_err(
                "seeking wsgi.input without post_buffering is IMPOSSIBLE !!!",
            )),
            Err(e) => Err(to_pyerr(e, "seek", Some(offset as isize))),
        }
    }
}
