//! The seam between a WSGI request and the worker's connection.
//!
//! The worker implements [`Exchange`] for its protocol (uwsgi or HTTP:
//! body framing, chunked encoding, keep-alive). This module wraps it in
//! [`Shared`], the state every per-request Python object (`wsgi.input`,
//! `start_response`, `write`) points to: the response stage, the read-ahead
//! buffer of `wsgi.input`, and whether the client failed. All blocking
//! calls go through [`Shared::io`], which releases the GIL first and only
//! then takes the lock, so a thread never waits for the lock while holding
//! the GIL.

use std::any::Any;
use std::fs::File;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::Python;

/// One request's connection, as the Python side sees it. Implementations
/// log their own I/O failures (uWSGI's one line per broken client); the
/// caller only stops.
pub trait Exchange: Send {
    /// Reads request body bytes; `Ok(0)` at the end of the body.
    fn read_body(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Sends the status line and headers (`status` as given by the app,
    /// e.g. `200 OK`; names and values latin-1 bytes).
    fn send_head(&mut self, status: &[u8], headers: &[(Vec<u8>, Vec<u8>)]) -> io::Result<()>;
    /// Sends body bytes (never empty).
    fn send_body(&mut self, data: &[u8]) -> io::Result<()>;
    /// Sends `len` bytes of `file` from its current position.
    fn send_file(&mut self, file: &mut File, len: u64) -> io::Result<()>;
    /// Moves the body's read position (only a body buffered whole by
    /// `post-buffering` can); `Unsupported` otherwise.
    fn seek_body(&mut self, _pos: u64) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }
    /// The body ends where `read_body` says even without `CONTENT_LENGTH`
    /// (a de-chunked body): sets `wsgi.input_terminated`, which tells
    /// frameworks such as Werkzeug to read to the end.
    fn input_terminated(&self) -> bool {
        false
    }
}

/// An [`Exchange`] that can be handed back as its concrete type.
pub(crate) trait Erased: Send {
    fn exchange(&mut self) -> &mut dyn Exchange;
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
}

impl<E: Exchange + 'static> Erased for E {
    fn exchange(&mut self) -> &mut dyn Exchange {
        self
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}

/// Where the response is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Response {
    /// `start_response` not called yet.
    Idle,
    /// Status and headers recorded, not sent (PEP 3333: they go out with
    /// the first non-empty body chunk).
    Started {
        status: Vec<u8>,
        headers: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// The head is on the wire.
    HeadSent,
}

/// Why an I/O call did not happen or failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IoFailure {
    /// The client broke (already logged by the Exchange); stop quietly.
    #[error("{0}")]
    Client(io::Error),
    /// Body before `start_response`: an app error.
    #[error("write() before start_response()")]
    NotStarted,
    /// The request is over; the object outlived it.
    #[error("the request is finished")]
    Finished,
}

/// Read-ahead of `wsgi.input` (needed by `readline`).
#[derive(Debug, Default)]
pub(crate) struct InputBuf {
    pub(crate) data: Vec<u8>,
    pub(crate) pos: usize,
    pub(crate) eof: bool,
}

impl InputBuf {
    pub(crate) fn available(&self) -> &[u8] {
        &self.data[self.pos..]
    }

    pub(crate) fn take(&mut self, n: usize) -> Vec<u8> {
        let end = self.pos.saturating_add(n).min(self.data.len());
        let out = self.data[self.pos..end].to_vec();
        self.pos = end;
        if self.pos == self.data.len() {
            self.data.clear();
            self.pos = 0;
        }
        out
    }
}

/// Everything behind the lock.
pub(crate) struct State {
    pub(crate) io: Option<Box<dyn Erased>>,
    pub(crate) response: Response,
    pub(crate) input: InputBuf,
    /// Set once the client failed; later calls do nothing.
    pub(crate) client_failed: bool,
    /// Bytes handed to the app through `wsgi.input`.
    pub(crate) consumed: u64,
}

/// Read chunk for `readline` and iteration.
const READ_CHUNK: usize = 8192;

impl State {
    fn exchange(&mut self) -> Result<&mut dyn Exchange, IoFailure> {
        if self.client_failed {
            return Err(IoFailure::Client(io::ErrorKind::BrokenPipe.into()));
        }
        self.io
            .as_mut()
            .map(|e| e.exchange())
            .ok_or(IoFailure::Finished)
    }

    fn client<T>(&mut self, r: io::Result<T>) -> Result<T, IoFailure> {
        r.map_err(|e| {
            self.client_failed = true;
            IoFailure::Client(e)
        })
    }

    pub(crate) fn input_terminated(&mut self) -> bool {
        self.exchange().is_ok_and(|e| e.input_terminated())
    }

    /// Sends the recorded head if it is not out yet.
    pub(crate) fn send_head(&mut self) -> Result<(), IoFailure> {
        match std::mem::replace(&mut self.response, Response::HeadSent) {
            Response::Idle => {
                self.response = Response::Idle;
                Err(IoFailure::NotStarted)
            }
            Response::HeadSent => Ok(()),
            Response::Started { status, headers } => {
                let r = self.exchange()?.send_head(&status, &headers);
                self.client(r)
            }
        }
    }

    /// The whole body is `len` bytes (a bare bytes return, or a list or
    /// tuple of one): adds the `Content-Length` the app left out, as
    /// PEP 3333 allows, so the response can be framed without chunks or a
    /// close. Not for statuses that carry no body.
    pub(crate) fn body_length_known(&mut self, len: usize) {
        let Response::Started { status, headers } = &mut self.response else {
            return;
        };
        let bodiless =
            matches!(status.get(..3), Some(b"204" | b"304")) || status.first() == Some(&b'1');
        let framed = headers.iter().any(|(k, _)| {
            k.eq_ignore_ascii_case(b"content-length")
                || k.eq_ignore_ascii_case(b"transfer-encoding")
        });
        if !bodiless && !framed {
            headers.push((b"Content-Length".to_vec(), len.to_string().into_bytes()));
        }
    }

    /// Head if needed, then `data` (nothing for an empty chunk).
    pub(crate) fn write(&mut self, data: &[u8]) -> Result<(), IoFailure> {
        if data.is_empty() {
            return Ok(());
        }
        self.send_head()?;
        let r = self.exchange()?.send_body(data);
        self.client(r)
    }

    pub(crate) fn send_file(&mut self, file: &mut File, len: u64) -> Result<(), IoFailure> {
        self.send_head()?;
        if len == 0 {
            return Ok(());
        }
        let r = self.exchange()?.send_file(file, len);
        self.client(r)
    }

    /// Pulls one chunk into the read-ahead; false at the end of the body.
    fn fill(&mut self, want: usize) -> Result<bool, IoFailure> {
        if self.input.eof {
            return Ok(false);
        }
        let mut chunk = vec![0; want.clamp(1, READ_CHUNK * 8)];
        let r = self.exchange()?.read_body(&mut chunk);
        let n = self.client(r)?;
        if n == 0 {
            self.input.eof = true;
            return Ok(false);
        }
        self.input.data.extend_from_slice(&chunk[..n]);
        Ok(true)
    }

    /// `read(size)`: up to `size` bytes (all of the body for `None`),
    /// blocking until that many arrived or the body ended.
    pub(crate) fn read(&mut self, size: Option<usize>) -> Result<Vec<u8>, IoFailure> {
        let limit = size.unwrap_or(usize::MAX);
        while self.input.available().len() < limit {
            let want = limit.saturating_sub(self.input.available().len());
            if !self.fill(want.min(READ_CHUNK * 8))? {
                break;
            }
        }
        let out = self.input.take(limit);
        self.consumed += out.len() as u64;
        Ok(out)
    }

    /// `seek(pos)`: `Ok(false)` when the body cannot seek.
    pub(crate) fn seek(&mut self, pos: u64) -> Result<bool, IoFailure> {
        match self.exchange()?.seek_body(pos) {
            Ok(()) => {
                self.input = InputBuf::default();
                self.consumed = pos;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::Unsupported => Ok(false),
            Err(e) => Err(IoFailure::Client(e)),
        }
    }

    /// `readline(hint)`: through the next `\n`, at most `hint` bytes when
    /// `hint` is positive.
    pub(crate) fn readline(&mut self, hint: Option<usize>) -> Result<Vec<u8>, IoFailure> {
        let limit = hint.filter(|&h| h > 0).unwrap_or(usize::MAX);
        let mut scanned = 0;
        loop {
            let avail = self.input.available();
            if let Some(i) = avail[scanned..].iter().position(|&b| b == b'\n') {
                let end = (scanned + i + 1).min(limit);
                let out = self.input.take(end);
                self.consumed += out.len() as u64;
                return Ok(out);
            }
            scanned = avail.len();
            if scanned >= limit || !self.fill(READ_CHUNK)? {
                let out = self.input.take(limit);
                self.consumed += out.len() as u64;
                return Ok(out);
            }
        }
    }
}

/// The per-request state shared by the Python objects of one request.
#[derive(Clone)]
pub(crate) struct Shared(Arc<Mutex<State>>);

impl Shared {
    pub(crate) fn new(io: Box<dyn Erased>) -> Shared {
        Shared(Arc::new(Mutex::new(State {
            io: Some(io),
            response: Response::Idle,
            input: InputBuf::default(),
            client_failed: false,
            consumed: 0,
        })))
    }

    /// The state, for quick non-blocking looks (GIL may be held).
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs a blocking operation with the GIL released.
    pub(crate) fn io<R, F>(&self, py: Python<'_>, f: F) -> R
    where
        F: FnOnce(&mut State) -> R + Send,
        R: Send,
    {
        py.detach(|| f(&mut self.lock()))
    }

    /// Ends the request: returns the exchange to the worker; objects that
    /// outlive the request see [`IoFailure::Finished`].
    pub(crate) fn finish(&self) -> Option<Box<dyn Any + Send>> {
        self.lock().io.take().map(Erased::into_any)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An in-memory exchange: the body is read in `step`-byte pieces.
    pub(crate) struct Fake {
        pub body: Vec<u8>,
        pub pos: usize,
        pub step: usize,
        pub out: Arc<Mutex<Vec<u8>>>,
    }

    impl Exchange for Fake {
        fn read_body(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.step).min(self.body.len() - self.pos);
            buf[..n].copy_from_slice(&self.body[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
        fn send_head(&mut self, status: &[u8], headers: &[(Vec<u8>, Vec<u8>)]) -> io::Result<()> {
            let mut out = self.out.lock().unwrap();
            out.extend_from_slice(status);
            out.extend_from_slice(b"\r\n");
            for (k, v) in headers {
                out.extend_from_slice(&[k.as_slice(), b": ", v, b"\r\n"].concat());
            }
            out.extend_from_slice(b"\r\n");
            Ok(())
        }
        fn send_body(&mut self, data: &[u8]) -> io::Result<()> {
            self.out.lock().unwrap().extend_from_slice(data);
            Ok(())
        }
        fn send_file(&mut self, _file: &mut File, _len: u64) -> io::Result<()> {
            Ok(())
        }
    }

    fn state(body: &[u8], step: usize) -> State {
        State {
            io: Some(Box::new(Fake {
                body: body.to_vec(),
                pos: 0,
                step,
                out: Arc::default(),
            })),
            response: Response::Idle,
            input: InputBuf::default(),
            client_failed: false,
            consumed: 0,
        }
    }

    #[test]
    fn input_reads() {
        let body = b"line one\nline two\nlast";
        for step in [1, 3, 100] {
            let mut s = state(body, step);
            assert_eq!(s.readline(None).unwrap(), b"line one\n", "step {step}");
            assert_eq!(s.readline(Some(4)).unwrap(), b"line", "step {step}");
            assert_eq!(s.read(Some(6)).unwrap(), b" two\nl", "step {step}");
            assert_eq!(s.readline(None).unwrap(), b"ast", "step {step}");
            assert_eq!(s.readline(None).unwrap(), b"", "step {step}");
            assert_eq!(s.read(None).unwrap(), b"", "step {step}");
            assert_eq!(s.consumed, body.len() as u64);
        }
        let mut s = state(body, 5);
        assert_eq!(s.read(None).unwrap(), body);
    }

    #[test]
    fn response_stages() {
        let mut s = state(b"", 1);
        assert!(matches!(s.write(b"x"), Err(IoFailure::NotStarted)));
        s.response = Response::Started {
            status: b"200 OK".to_vec(),
            headers: vec![(b"A".to_vec(), b"b".to_vec())],
        };
        s.write(b"").unwrap();
        assert_eq!(
            s.response,
            Response::Started {
                status: b"200 OK".to_vec(),
                headers: vec![(b"A".to_vec(), b"b".to_vec())],
            }
        );
        s.write(b"hi").unwrap();
        assert_eq!(s.response, Response::HeadSent);
        s.io = None;
        assert!(matches!(s.write(b"x"), Err(IoFailure::Finished)));
    }
}
