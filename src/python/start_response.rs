//! `start_response` and the `write()` callable it returns (PEP 3333).
//!
//! `start_response` validates and records the status and headers; they go
//! out with the first non-empty body chunk. A second call is allowed only
//! with `exc_info`, and once the head is sent `exc_info` is re-raised.
//! Type errors use uWSGI's messages.

use pyo3::exceptions::{PyAssertionError, PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use super::exchange::{IoFailure, Response, Shared};

/// The `start_response` callable of one request.
#[pyclass(module = "uwsgi", frozen)]
pub(crate) struct StartResponse {
    shared: Shared,
}

impl StartResponse {
    pub(crate) fn new(shared: Shared) -> StartResponse {
        StartResponse { shared }
    }
}

/// A str as latin-1 bytes, refusing CR/LF (no response splitting).
fn latin1(value: &Bound<'_, PyAny>, not_str: &str) -> PyResult<Vec<u8>> {
    let s = value
        .cast::<PyString>()
        .map_err(|_| PyTypeError::new_err(not_str.to_string()))?;
    let text = s.to_cow()?;
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        let b = u8::try_from(u32::from(c))
            .map_err(|_| PyTypeError::new_err("http header must be encodable in latin1"))?;
        if b == b'\r' || b == b'\n' {
            return Err(PyValueError::new_err(
                "http status and headers must not contain CR or LF",
            ));
        }
        out.push(b);
    }
    Ok(out)
}

fn parse_headers(headers: &Bound<'_, PyAny>) -> PyResult<Vec<(Vec<u8>, Vec<u8>)>> {
    let list = headers
        .cast::<PyList>()
        .map_err(|_| PyTypeError::new_err("http headers must be in a python list"))?;
    let mut out = Vec::with_capacity(list.len());
    for item in list.iter() {
        let tuple = item
            .cast::<PyTuple>()
            .map_err(|_| PyTypeError::new_err("http header must be defined in a tuple"))?;
        if tuple.len() != 2 {
            return Err(PyTypeError::new_err("http header must be a 2-item tuple"));
        }
        let name = latin1(&tuple.get_item(0)?, "http header key must be a string")?;
        let value = latin1(&tuple.get_item(1)?, "http header value must be a string")?;
        out.push((name, value));
    }
    Ok(out)
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info = None))]
    fn __call__(
        &self,
        status: &Bound<'_, PyAny>,
        headers: &Bound<'_, PyAny>,
        exc_info: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Write> {
        let exc_value = match exc_info {
            Some(info) if !info.is_none() => Some(info.get_item(1)?),
            _ => None,
        };
        let exc_value = exc_value.filter(|v| !v.is_none());
        let sent = matches!(self.shared.lock().response, Response::HeadSent);
        match (&exc_value, sent) {
            (Some(v), true) => return Err(PyErr::from_value(v.clone())),
            (None, true) => return Err(PyOSError::new_err("headers already sent")),
            (None, false) => {
                if matches!(self.shared.lock().response, Response::Started { .. }) {
                    return Err(PyAssertionError::new_err(
                        "start_response() called twice without exc_info",
                    ));
                }
            }
            (Some(_), false) => {}
        }
        let status = latin1(status, "http status must be a string")?;
        let headers = parse_headers(headers)?;
        self.shared.lock().response = Response::Started { status, headers };
        Ok(Write {
            shared: self.shared.clone(),
        })
    }
}

/// The legacy `write(data)` callable.
#[pyclass(module = "uwsgi", frozen)]
pub(crate) struct Write {
    shared: Shared,
}

/// Python's view of a failed body write.
pub(crate) fn write_error(e: IoFailure) -> PyErr {
    match e {
        IoFailure::Client(_) => PyOSError::new_err("write error"),
        IoFailure::NotStarted => PyAssertionError::new_err(e.to_string()),
        IoFailure::Finished => PyOSError::new_err(e.to_string()),
    }
}

#[pymethods]
impl Write {
    fn __call__(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let bytes = data
            .cast::<PyBytes>()
            .map_err(|_| PyTypeError::new_err("write() argument must be bytes"))?;
        let data = bytes.as_bytes();
        self.shared.io(py, |s| s.write(data)).map_err(write_error)
    }
}
