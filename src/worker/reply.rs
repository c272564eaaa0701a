//! One request's connection as the Python side uses it: the worker's
//! [`Exchange`]. Reads the body through [`Body`], writes the response with
//! the framing of its protocol, counts what the request log line needs,
//! and logs uWSGI's one line when the client fails.
//!
//! Framing: on a uwsgi socket the response goes out as the app made it and
//! the connection closes, unless ruwsgi's router marked the connection
//! and the response is length-delimited (then the head says so with
//! `protocol::uwsgi::KEEP_HEADER` and the connection stays). On an HTTP socket with a keep-alive request, a
//! response without `Content-Length` is sent chunked (HTTP/1.1), a body is
//! never sent for `HEAD`, 1xx, 204 or 304, and anything else closes the
//! connection (with `Connection: close` added when the client hoped
//! otherwise).

use std::fs::File;
use std::io::{self, IoSlice, Write};

use super::body::{Body, Wire};
use super::spool::Spool;
use super::status;
use crate::python::Exchange;

/// The connection's protocol, as far as response framing goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proto {
    /// uwsgi socket: raw response, close (see [`Reply::frame`] for
    /// `keep`).
    Uwsgi {
        /// ruwsgi's router marked the connection: a length-delimited
        /// response may leave it open.
        keep: bool,
        /// `HEAD`: no body bytes go out when the connection stays.
        head: bool,
    },
    /// HTTP socket.
    Http {
        /// The request allows another one on this connection.
        keep_alive: bool,
        /// `HEAD`: no body bytes go out.
        head: bool,
        /// The request said `Expect: 100-continue`, not answered yet.
        expect_continue: bool,
    },
}

/// How the response body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// As the app writes it, the end is the close.
    Raw,
    /// `Content-Length` from the app; bytes still expected.
    Length(u64),
    Chunked,
    /// No body may follow (HEAD, 1xx/204/304).
    NoBody,
}

/// What the request log line reports about the response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Stats {
    /// 0 until a head is sent (the log then shows uWSGI's default 500).
    pub(crate) status: u16,
    pub(crate) headers: usize,
    pub(crate) header_bytes: usize,
    pub(crate) body_bytes: u64,
    pub(crate) writes: u32,
    pub(crate) sendfile: bool,
}

/// Request facts used in error lines.
#[derive(Debug, Clone, Default)]
pub(crate) struct Who {
    pub(crate) method: String,
    pub(crate) uri: String,
    pub(crate) addr: String,
}

/// The worker's side of a request.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) wire: Wire,
    pub(crate) body: Body,
    pub(crate) proto: Proto,
    /// Status line protocol token (`SERVER_PROTOCOL` or `HTTP/1.0`).
    pub(crate) protocol: Vec<u8>,
    pub(crate) who: Who,
    pub(crate) stats: Stats,
    /// Announced body length, for the read error lines.
    pub(crate) content_length: u64,
    consumed: u64,
    framing: Framing,
    /// The head, held back to go out with the first body bytes.
    pending: Vec<u8>,
    head_sent: bool,
    /// The client failed; the connection must close.
    pub(crate) failed: bool,
    /// The connection may carry another request after this one.
    reusable: bool,
    /// `post-buffering`: the body, read before the app ran.
    spool: Option<Spool>,
    /// Header edits from the worker's routing rules (`addheader`, ...).
    pub(crate) header_ops: Vec<crate::routing::HeaderOp>,
}

/// `std::io::Error`'s text without the " (os error N)" tail, as strerror.
pub(crate) fn strerror(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn header_is(name: &[u8], want: &str) -> bool {
    name.eq_ignore_ascii_case(want.as_bytes())
}

/// What the app's headers say about framing.
struct AppHead {
    /// `Content-Length`, when it parses.
    length: Option<u64>,
    /// The app set `Transfer-Encoding` itself.
    app_te: bool,
    /// `Connection: close`.
    app_close: bool,
    /// No body may follow: `HEAD`, 1xx, 204, 304.
    no_body: bool,
}

impl AppHead {
    fn scan(headers: &[(Vec<u8>, Vec<u8>)], head: bool, code: u16) -> AppHead {
        AppHead {
            no_body: head || code < 200 || code == 204 || code == 304,
            length: headers
                .iter()
                .find(|(k, _)| header_is(k, "content-length"))
                .and_then(|(_, v)| std::str::from_utf8(v).ok()?.trim().parse::<u64>().ok()),
            app_te: headers
                .iter()
                .any(|(k, _)| header_is(k, "transfer-encoding")),
            app_close: headers
                .iter()
                .any(|(k, v)| header_is(k, "connection") && v.eq_ignore_ascii_case(b"close")),
        }
    }
}

impl Reply {
    pub(crate) fn new(wire: Wire, body: Body, proto: Proto, protocol: Vec<u8>, who: Who) -> Reply {
        let content_length = body.remaining();
        Reply {
            wire,
            body,
            proto,
            protocol,
            who,
            stats: Stats::default(),
            content_length,
            consumed: 0,
            framing: Framing::Raw,
            pending: Vec::new(),
            head_sent: false,
            failed: false,
            reusable: false,
            spool: None,
            header_ops: Vec::new(),
        }
    }

    /// `post-buffering`: reads the whole body now (`limit` bytes in
    /// memory, the rest in a temporary file); `wsgi.input` then reads the
    /// copy and can seek. A failure is logged by `read_body`.
    pub(crate) fn buffer_body(&mut self, limit: usize) -> io::Result<()> {
        if self.body.is_done() {
            return Ok(());
        }
        let spool = Spool::fill(limit, |buf| self.read_body(buf))?;
        self.spool = Some(spool);
        Ok(())
    }

    /// uWSGI's one line for a failed write: `TIMEOUT !!!` for a client
    /// that stopped reading, else the error with the request.
    fn write_failed(&mut self, e: &io::Error, what: &str, line: u32) {
        if self.failed {
            return;
        }
        self.failed = true;
        let text = if matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ) {
            format!("{what}() TIMEOUT !!!")
        } else {
            format!(
                "{what}(): {} [core/writer.c line {line}] during {} {} ({})",
                strerror(e),
                self.who.method,
                self.who.uri,
                self.who.addr
            )
        };
        crate::worker::log(&text);
    }

    /// Picks the framing and adjusts the headers (HTTP keep-alive only).
    fn frame(&mut self, code: u16, headers: &mut Vec<(Vec<u8>, Vec<u8>)>) {
        let (keep_alive, head) = match self.proto {
            Proto::Http {
                keep_alive, head, ..
            } => (keep_alive, head),
            Proto::Uwsgi { keep: true, head } => return self.frame_kept_uwsgi(code, head, headers),
            Proto::Uwsgi { keep: false, .. } => {
                self.framing = Framing::Raw;
                return;
            }
        };
        let app = AppHead::scan(headers, head, code);
        self.framing = if app.no_body {
            Framing::NoBody
        } else if let Some(n) = app.length {
            Framing::Length(n)
        } else if keep_alive && !app.app_te && !app.app_close && self.protocol == b"HTTP/1.1" {
            headers.push((b"Transfer-Encoding".to_vec(), b"chunked".to_vec()));
            Framing::Chunked
        } else {
            Framing::Raw
        };
        self.reusable = keep_alive && !app.app_close && self.framing != Framing::Raw;
        let has_connection = headers.iter().any(|(k, _)| header_is(k, "connection"));
        if keep_alive && !self.reusable && !app.app_close {
            headers.push((b"Connection".to_vec(), b"close".to_vec()));
        } else if self.reusable && self.protocol != b"HTTP/1.1" && !has_connection {
            // An HTTP/1.0 client keeps the connection only when told so.
            headers.push((b"Connection".to_vec(), b"keep-alive".to_vec()));
        }
    }

    /// A uwsgi connection ruwsgi's router marked: when the router can find
    /// the end of the response by itself (`Content-Length`, or no body),
    /// the head tells it the connection stays; otherwise the response is
    /// raw and ends with the close, as on any uwsgi connection.
    fn frame_kept_uwsgi(&mut self, code: u16, head: bool, headers: &mut Vec<(Vec<u8>, Vec<u8>)>) {
        let keep = std::str::from_utf8(crate::protocol::uwsgi::KEEP_HEADER).unwrap_or("");
        // Only the worker may say it (an app's copy would mislead the router).
        headers.retain(|(k, _)| !header_is(k, keep));
        let app = AppHead::scan(headers, head, code);
        self.framing = match app.length {
            _ if app.no_body => Framing::NoBody,
            Some(n) if !app.app_te => Framing::Length(n),
            _ => Framing::Raw,
        };
        self.reusable = !app.app_close && self.framing != Framing::Raw;
        if self.reusable {
            headers.push((crate::protocol::uwsgi::KEEP_HEADER.to_vec(), b"1".to_vec()));
        }
    }

    fn flush_head(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let head = std::mem::take(&mut self.pending);
        self.wire.stream.write_all(&head)
    }

    /// Sends `parts` after any pending head, in as few writes as possible.
    fn send(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        let head = std::mem::take(&mut self.pending);
        let mut all: Vec<&[u8]> = Vec::with_capacity(parts.len() + 1);
        all.push(&head);
        all.extend_from_slice(parts);
        all.retain(|p| !p.is_empty());
        let (mut idx, mut off) = (0, 0);
        while idx < all.len() {
            let slices: Vec<IoSlice<'_>> = std::iter::once(&all[idx][off..])
                .chain(all[idx + 1..].iter().copied())
                .map(IoSlice::new)
                .collect();
            let mut n = self.wire.stream.write_vectored(&slices)?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            while n > 0 && idx < all.len() {
                let rest = all[idx].len() - off;
                if n >= rest {
                    n -= rest;
                    idx += 1;
                    off = 0;
                } else {
                    off += n;
                    n = 0;
                }
            }
        }
        Ok(())
    }

    /// Ends the response: the pending head, the last chunk. Returns whether
    /// the connection can serve another request.
    pub(crate) fn finish(&mut self) -> bool {
        if self.failed {
            return false;
        }
        let r = match self.framing {
            Framing::Chunked if self.head_sent => self.send(&[b"0\r\n\r\n"]),
            _ => self.flush_head(),
        };
        if let Err(e) = r {
            self.write_failed(&e, "uwsgi_response_write_body_do", 429);
            return false;
        }
        let complete = !matches!(self.framing, Framing::Length(n) if n > 0);
        self.reusable && complete
    }

    /// Drops the body the app did not read, so the next request can be
    /// read; false when that is not worth it (or failed).
    pub(crate) fn skip_body(&mut self, limit: u64) -> bool {
        !self.failed && self.body.drain(&mut self.wire, limit)
    }
}

impl Exchange for Reply {
    fn read_body(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(spool) = &mut self.spool {
            return std::io::Read::read(spool, buf);
        }
        if let Proto::Http {
            expect_continue: true,
            ..
        } = self.proto
        {
            if let Proto::Http {
                expect_continue, ..
            } = &mut self.proto
            {
                *expect_continue = false;
            }
            if !self.head_sent && !self.body.is_done() {
                self.wire
                    .stream
                    .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
            }
        }
        match self.body.read(&mut self.wire, buf) {
            Ok(n) => {
                self.consumed += n as u64;
                Ok(n)
            }
            Err(e) => {
                if !self.failed {
                    self.failed = true;
                    let left = self.content_length.saturating_sub(self.consumed);
                    let line = if matches!(
                        e.kind(),
                        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                    ) {
                        format!(
                            "[uwsgi-body-read] Timeout reading {} bytes. Content-Length: {} consumed: {} left: {left}",
                            buf.len(),
                            self.content_length,
                            self.consumed
                        )
                    } else {
                        let msg = match e.kind() {
                            io::ErrorKind::UnexpectedEof => "Client closed connection".to_string(),
                            _ => strerror(&e),
                        };
                        format!(
                            "[uwsgi-body-read] Error reading {} bytes. Content-Length: {} consumed: {} left: {left} message: {msg}",
                            buf.len(),
                            self.content_length,
                            self.consumed
                        )
                    };
                    crate::worker::log(&line);
                }
                Err(e)
            }
        }
    }

    fn send_head(&mut self, status: &[u8], headers: &[(Vec<u8>, Vec<u8>)]) -> io::Result<()> {
        let mut headers = headers.to_vec();
        let edited;
        let status = if self.header_ops.is_empty() {
            status
        } else {
            edited = super::route::edit_headers(status, &mut headers, &self.header_ops);
            &edited
        };
        let code = status::code(status);
        self.frame(code, &mut headers);
        let mut head = Vec::with_capacity(256);
        let proto: &[u8] = if self.protocol.is_empty() {
            b"HTTP/1.0"
        } else {
            &self.protocol
        };
        head.extend_from_slice(proto);
        head.push(b' ');
        head.extend_from_slice(&status::status_text(status));
        head.extend_from_slice(b"\r\n");
        for (k, v) in &headers {
            head.extend_from_slice(k);
            head.extend_from_slice(b": ");
            head.extend_from_slice(v);
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"\r\n");
        self.stats.status = code;
        self.stats.headers = headers.len();
        self.stats.header_bytes = head.len();
        self.pending = head;
        self.head_sent = true;
        Ok(())
    }

    fn seek_body(&mut self, pos: u64) -> io::Result<()> {
        match &mut self.spool {
            Some(spool) => spool.seek_to(pos),
            None => Err(io::ErrorKind::Unsupported.into()),
        }
    }

    fn send_body(&mut self, data: &[u8]) -> io::Result<()> {
        self.stats.writes += 1;
        self.stats.body_bytes += match self.framing {
            Framing::Length(left) => left.min(data.len() as u64),
            _ => data.len() as u64,
        };
        let r = match self.framing {
            Framing::NoBody => self.flush_head(),
            Framing::Raw => self.send(&[data]),
            Framing::Length(left) => {
                // Never more than announced: the rest would corrupt the
                // next response on a kept-alive connection.
                let n = usize::try_from(left).map_or(data.len(), |l| l.min(data.len()));
                self.framing = Framing::Length(left - n as u64);
                self.send(&[&data[..n]])
            }
            Framing::Chunked => {
                let size = format!("{:X}\r\n", data.len());
                self.send(&[size.as_bytes(), data, b"\r\n"])
            }
        };
        r.inspect_err(|e| self.write_failed(e, "uwsgi_response_write_body_do", 429))
    }

    fn input_terminated(&self) -> bool {
        matches!(self.body, Body::Chunked { .. })
    }

    fn send_file(&mut self, file: &mut File, len: u64) -> io::Result<()> {
        self.stats.body_bytes += match self.framing {
            Framing::Length(left) => left.min(len),
            _ => len,
        };
        self.stats.writes += 1;
        self.stats.sendfile = true;
        let r = (|| {
            match self.framing {
                Framing::NoBody => return self.flush_head(),
                Framing::Chunked => {
                    self.send(&[format!("{len:X}\r\n").as_bytes()])?;
                    self.wire.stream.send_file(file, len)?;
                    return self.send(&[b"\r\n"]);
                }
                Framing::Length(left) => {
                    let n = left.min(len);
                    self.framing = Framing::Length(left - n);
                    self.flush_head()?;
                    self.wire.stream.send_file(file, n)?;
                    return Ok(());
                }
                Framing::Raw => {}
            }
            self.flush_head()?;
            self.wire.stream.send_file(file, len).map(|_| ())
        })();
        r.inspect_err(|e| self.write_failed(e, "uwsgi_response_sendfile_do", 560))
    }
}
