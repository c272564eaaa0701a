//! One WSGI request: choose the app, build the environ, call it, stream
//! the result, call `close()`.
//!
//! Error policy (who is at fault decides what happens):
//! * the app raised, returned a non-iterable, yielded a non-bytes item,
//!   called `start_response` twice without `exc_info` or never: the
//!   traceback goes to the log and, if no byte of the head was sent, the
//!   client gets a 500; otherwise the response is cut ([`Outcome::complete`]
//!   is false and the worker closes the connection);
//! * the client failed (read timeout, disconnect): the [`Exchange`] already
//!   logged one line; nothing else is logged or sent;
//! * no app for the request: uWSGI's exact 500 page and log line.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::apps::Apps;
use super::environ::{self, Extras};
use super::exchange::{Exchange, IoFailure, Response, Shared};
use super::file_wrapper::{sendfile_source, FileWrapper};
use super::input::Input;
use super::start_response::{write_error, StartResponse};
use super::{interp, log, uwsgi_module};

/// What the worker needs after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The app that served it (`None`: no app, uWSGI's `app: -1`).
    pub app_id: Option<usize>,
    /// Requests that app served in this process, this one included.
    pub app_requests: u64,
    /// The app raised (uWSGI counts these as exceptions).
    pub exception: bool,
    /// False when the response was cut short: the connection must close
    /// without finishing the framing.
    pub complete: bool,
}

/// How a request ended, seen from the app.
enum Ended {
    Ok,
    /// The app is at fault; the error is to be logged.
    AppError(PyErr),
    /// The client went away; already logged.
    ClientGone,
}

const ERROR_500: &[u8] = b"500 Internal Server Error";
const BODY_500: &[u8] = b"Internal Server Error";

/// Serves one request with the app chosen from `vars`. `threads` is the
/// worker's thread count (for `wsgi.multithread` and `uwsgi.env`). The
/// exchange comes back with the outcome (always `Some` in practice).
pub fn handle<E: Exchange + 'static>(
    apps: &Apps,
    vars: &[(&[u8], &[u8])],
    threads: usize,
    exchange: E,
) -> (Outcome, Option<E>) {
    if !super::interp::is_initialized() {
        return no_interpreter(exchange);
    }
    let shared = Shared::new(Box::new(exchange));
    let outcome = Python::attach(|py| run(py, apps, vars, threads, &shared));
    uwsgi_module::count_request();
    let back = shared
        .finish()
        .and_then(|any| any.downcast::<E>().ok())
        .map(|b| *b);
    (outcome, back)
}

fn last<'a>(vars: &[(&'a [u8], &'a [u8])], key: &[u8]) -> Option<&'a [u8]> {
    vars.iter().rev().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

fn run(
    py: Python<'_>,
    apps: &Apps,
    vars: &[(&[u8], &[u8])],
    threads: usize,
    shared: &Shared,
) -> Outcome {
    let mut outcome = Outcome {
        app_id: None,
        app_requests: 0,
        exception: false,
        complete: true,
    };
    // manage-script-name moves the mountpoint from PATH_INFO to SCRIPT_NAME.
    let path_info = last(vars, b"PATH_INFO");
    let split = if apps.manage_script_name() {
        // As uWSGI, the whole mountpoint (trailing slash included) is cut;
        // `/app` under `/app/` leaves an empty PATH_INFO (uWSGI underflows).
        path_info.and_then(|p| {
            apps.script_name_for(p)
                .map(|mp| (mp, p.get(mp.len()..).unwrap_or_default()))
        })
    } else {
        None
    };
    let overrides_storage: Vec<(&[u8], &[u8])> = match split {
        Some((mp, rest)) => vec![(b"SCRIPT_NAME", mp.as_bytes()), (b"PATH_INFO", rest)],
        None => Vec::new(),
    };
    let script_name = split
        .map(|(mp, _)| mp.as_bytes())
        .or_else(|| last(vars, b"SCRIPT_NAME"));
    let Some(id) = apps.select(last(vars, b"UWSGI_APPID"), script_name) else {
        no_app(py, shared);
        return outcome;
    };
    let Some(app) = apps.get(id) else {
        no_app(py, shared);
        return outcome;
    };
    outcome.app_id = Some(id);
    outcome.app_requests = app.count_request(id);

    let scheme = environ::url_scheme(vars);
    let call = Call {
        vars,
        overrides: &overrides_storage,
        scheme: &scheme,
        threads,
    };
    let ended = call_app(py, &app.callable, &call, shared);
    match ended {
        Ended::Ok => {}
        Ended::ClientGone => outcome.complete = false,
        Ended::AppError(e) => {
            outcome.exception = true;
            if shared.lock().client_failed {
                outcome.complete = false;
            } else {
                e.display(py);
                outcome.complete = send_500(py, shared);
            }
        }
    }
    outcome
}

/// An instance that never started CPython (nothing to load): uWSGI's "no
/// app" 500 and log line, written without the interpreter.
fn no_interpreter<E: Exchange + 'static>(mut exchange: E) -> (Outcome, Option<E>) {
    uwsgi_module::count_request();
    let headers = [
        (b"Connection".to_vec(), b"close".to_vec()),
        (b"Content-Type".to_vec(), b"text/plain".to_vec()),
    ];
    let sent = exchange
        .send_head(ERROR_500, &headers)
        .and_then(|()| exchange.send_body(BODY_500));
    log::line("--- no python application found, check your startup logs for errors ---");
    let outcome = Outcome {
        app_id: None,
        app_requests: 0,
        exception: false,
        complete: sent.is_ok(),
    };
    (outcome, Some(exchange))
}

/// uWSGI's `uwsgi_500` page plus its log line.
fn no_app(py: Python<'_>, shared: &Shared) {
    shared.lock().response = Response::Started {
        status: ERROR_500.to_vec(),
        headers: vec![
            (b"Connection".to_vec(), b"close".to_vec()),
            (b"Content-Type".to_vec(), b"text/plain".to_vec()),
        ],
    };
    let _ = shared.io(py, |s| s.write(BODY_500));
    log::line("--- no python application found, check your startup logs for errors ---");
}

/// Replaces an unsent head with a 500; true if it could.
fn send_500(py: Python<'_>, shared: &Shared) -> bool {
    {
        let mut s = shared.lock();
        if s.response == Response::HeadSent {
            return false;
        }
        s.response = Response::Started {
            status: ERROR_500.to_vec(),
            headers: vec![
                (b"Content-Type".to_vec(), b"text/plain".to_vec()),
                (
                    b"Content-Length".to_vec(),
                    BODY_500.len().to_string().into_bytes(),
                ),
            ],
        };
    }
    shared.io(py, |s| s.write(BODY_500)).is_ok()
}

/// What the app call needs besides the interpreter and the app.
struct Call<'a> {
    vars: &'a [(&'a [u8], &'a [u8])],
    overrides: &'a [(&'a [u8], &'a [u8])],
    scheme: &'a str,
    threads: usize,
}

fn call_app(py: Python<'_>, callable: &Py<PyAny>, call: &Call<'_>, shared: &Shared) -> Ended {
    let Call {
        vars,
        overrides,
        scheme,
        threads,
    } = *call;
    let prepared = (|| {
        let input = Bound::new(py, Input::new(shared.clone()))?.into_any();
        let env = environ::build(
            py,
            vars,
            Extras {
                input,
                scheme,
                threads,
                numproc: interp::numproc(),
                input_terminated: shared.lock().input_terminated(),
                overrides,
            },
        )?;
        let start_response = Bound::new(py, StartResponse::new(shared.clone()))?;
        Ok::<_, PyErr>((env, start_response))
    })();
    let (env, start_response) = match prepared {
        Ok(p) => p,
        Err(e) => return Ended::AppError(e),
    };
    let single = threads < 2;
    if single {
        uwsgi_module::set_env(py, Some(&env));
    }
    let result = callable.bind(py).call1((env, start_response));
    let ended = match result {
        Err(e) => classify(shared, e),
        Ok(result) => {
            let sent = send_result(py, &result, shared);
            // PEP 3333: close() is called whatever happened.
            let closed = close(&result);
            match (sent, closed) {
                (Ended::Ok, Err(e)) => Ended::AppError(e),
                (Ended::Ok, Ok(())) => finish_head(py, shared),
                (other, Err(e)) => {
                    e.display(py);
                    other
                }
                (other, Ok(())) => other,
            }
        }
    };
    if single {
        uwsgi_module::set_env(py, None);
    }
    ended
}

/// An exception from the app: the client's fault if the client failed.
fn classify(shared: &Shared, e: PyErr) -> Ended {
    if shared.lock().client_failed {
        Ended::ClientGone
    } else {
        Ended::AppError(e)
    }
}

fn io_ended(e: IoFailure) -> Ended {
    match e {
        IoFailure::Client(_) => Ended::ClientGone,
        other => Ended::AppError(write_error(other)),
    }
}

/// Sends the head of an empty response; a missing `start_response` is an
/// app error.
fn finish_head(py: Python<'_>, shared: &Shared) -> Ended {
    if shared.lock().response == Response::Idle {
        return Ended::AppError(pyo3::exceptions::PyRuntimeError::new_err(
            "the WSGI app returned without calling start_response()",
        ));
    }
    match shared.io(py, |s| s.send_head()) {
        Ok(()) => Ended::Ok,
        Err(e) => io_ended(e),
    }
}

fn send_result(py: Python<'_>, result: &Bound<'_, PyAny>, shared: &Shared) -> Ended {
    // uWSGI (non-strict) accepts a bare bytes return as the whole body.
    if let Ok(bytes) = result.cast::<PyBytes>() {
        shared.lock().body_length_known(bytes.as_bytes().len());
        return write(py, shared, bytes.as_bytes());
    }
    if let Some(body) = sole_item(result) {
        let body = match body {
            Ok(b) => b,
            Err(e) => return classify(shared, e),
        };
        match body.as_ref().map(|b| b.cast::<PyBytes>()) {
            Some(Ok(bytes)) => {
                shared.lock().body_length_known(bytes.as_bytes().len());
                return write(py, shared, bytes.as_bytes());
            }
            None => {
                shared.lock().body_length_known(0);
                return Ended::Ok;
            }
            // Not bytes: the loop below reports it.
            Some(Err(_)) => {}
        }
    }
    if let Ok(wrapper) = result.cast::<FileWrapper>() {
        if let Some((mut file, len)) = sendfile_source(py, wrapper) {
            return match shared.io(py, |s| s.send_file(&mut file, len)) {
                Ok(()) => Ended::Ok,
                Err(e) => io_ended(e),
            };
        }
    }
    let iter = match result.try_iter() {
        Ok(it) => it,
        Err(e) => return classify(shared, e),
    };
    for item in iter {
        let item = match item {
            Ok(i) => i,
            Err(e) => return classify(shared, e),
        };
        let Ok(bytes) = item.cast::<PyBytes>() else {
            return Ended::AppError(pyo3::exceptions::PyTypeError::new_err(format!(
                "response body items must be bytes, not {}",
                item.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            )));
        };
        match write(py, shared, bytes.as_bytes()) {
            Ended::Ok => {}
            other => return other,
        }
    }
    Ended::Ok
}

/// The one item of an exact list or tuple of at most one (`None` inside
/// for an empty one); `None` for anything else.
fn sole_item<'py>(result: &Bound<'py, PyAny>) -> Option<PyResult<Option<Bound<'py, PyAny>>>> {
    let seq = if let Ok(list) = result.cast_exact::<pyo3::types::PyList>() {
        list.as_sequence().clone()
    } else if let Ok(tuple) = result.cast_exact::<pyo3::types::PyTuple>() {
        tuple.as_sequence().clone()
    } else {
        return None;
    };
    match seq.len() {
        Ok(0) => Some(Ok(None)),
        Ok(1) => Some(seq.get_item(0).map(Some)),
        Ok(_) => None,
        Err(e) => Some(Err(e)),
    }
}

fn write(py: Python<'_>, shared: &Shared, data: &[u8]) -> Ended {
    match shared.io(py, |s| s.write(data)) {
        Ok(()) => Ended::Ok,
        Err(e) => io_ended(e),
    }
}

fn close(result: &Bound<'_, PyAny>) -> PyResult<()> {
    // The common return values have no close(): skip the attribute lookup
    // (a miss builds an AttributeError, message and all).
    if result.is_exact_instance_of::<pyo3::types::PyList>()
        || result.is_exact_instance_of::<pyo3::types::PyTuple>()
        || result.is_exact_instance_of::<PyBytes>()
    {
        return Ok(());
    }
    if result.hasattr("close")? {
        result.call_method0("close")?;
    }
    Ok(())
}
