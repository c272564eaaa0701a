//! Responses the router makes itself: those of routing actions
//! (`redirect`, `return`, `break:NNN`, `basicauth`), rendered with uWSGI's
//! exact bytes, and `static:` files (`200` with `Content-Length` and
//! `Last-Modified`, `304` when `If-Modified-Since` repeats it; the type
//! from [`crate::routing::mime`]), streamed from disk with backpressure.
//!
//! A generated response without a length (a redirect's `Moved`) is
//! delimited by closing the connection, as the bytes are uWSGI's.

use std::fs::File;
use std::io::Read;
use std::time::UNIX_EPOCH;

use super::conn::response_ops;
use super::io::Outbox;
use super::{Request, Shared};
use crate::routing::mime;
use crate::routing::vars::http_date;
use crate::routing::{Response, VarLookup};

/// Bytes read from a file per step.
const FILE_CHUNK: usize = 64 * 1024;

/// A response being written from the router itself.
#[derive(Debug)]
pub(crate) struct Local {
    /// The head (and, for generated responses, the body) still to queue.
    head: Vec<u8>,
    file: Option<(File, u64)>,
    pub req: Request,
    pub status: u16,
    /// The connection may serve another request after this one.
    pub keep: bool,
}

/// What [`Local::fill`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fill {
    /// Queued something; there may be more.
    More,
    /// Everything is queued.
    Done,
    /// The file could not be read to its announced end.
    Failed,
}

impl Local {
    /// Queues the next piece of the response into `out`.
    pub(crate) fn fill(&mut self, out: &mut Outbox) -> Fill {
        if !self.head.is_empty() {
            out.push(&std::mem::take(&mut self.head));
            return Fill::More;
        }
        let Some((file, remaining)) = &mut self.file else {
            return Fill::Done;
        };
        let want = FILE_CHUNK.min(usize::try_from(*remaining).unwrap_or(FILE_CHUNK));
        let mut buf = vec![0; want];
        match file.read(&mut buf) {
            Ok(n) if n > 0 => {
                out.push(&buf[..n]);
                *remaining -= n as u64;
                if *remaining == 0 {
                    self.file = None;
                }
                Fill::More
            }
            _ => {
                self.file = None;
                Fill::Failed
            }
        }
    }
}

/// A routing action's response. `has_body`: the request carried a body
/// the router will not read, so the connection closes after.
pub(crate) fn respond(r: Response, req: Request, has_body: bool, sh: &Shared<'_>) -> Box<Local> {
    let status = r.code();
    let ops = response_ops(&req, status, sh);
    let head = if req.suppress_head {
        r.body.clone()
    } else {
        r.render(&req.protocol, &ops)
    };
    let keep = req.keep_alive && r.is_self_delimited() && !has_body && !req.suppress_head;
    Box::new(Local {
        head,
        file: None,
        req,
        status,
        keep,
    })
}

/// A readable regular file at `path`. Opened non-blocking: a FIFO named
/// by the request must not stall the router's loop.
fn open_regular(path: &[u8]) -> std::io::Result<(File, std::fs::Metadata)> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(std::ffi::OsStr::from_bytes(path))?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok((file, meta))
}

/// `static:PATH`. A path that is not a readable regular file gets a 404
/// and a log line naming it (uWSGI closes the connection without a reply).
pub(crate) fn serve_file(path: &[u8], req: Request, has_body: bool, sh: &Shared<'_>) -> Box<Local> {
    let (file, meta) = match open_regular(path) {
        Ok(opened) => opened,
        Err(e) => {
            eprintln!(
                "[uwsgi-http] static file {}: {e}",
                String::from_utf8_lossy(path)
            );
            return respond(Response::not_found(), req, has_body, sh);
        }
    };
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let last_modified = http_date(mtime);
    let not_modified =
        req.vars.get_var(b"HTTP_IF_MODIFIED_SINCE") == Some(last_modified.as_slice());
    let (status, response) = if not_modified {
        (304, Response::new(b"304 Not Modified", &[], b""))
    } else {
        let length = meta.len().to_string();
        let mut headers: Vec<(&[u8], &[u8])> = Vec::new();
        if let Some(ty) = mime::content_type(&sh.cfg.mime_files, path) {
            headers.push((b"Content-Type", ty.as_bytes()));
        }
        headers.push((b"Content-Length", length.as_bytes()));
        headers.push((b"Last-Modified", &last_modified));
        (200, Response::new(b"200 OK", &headers, b""))
    };
    let ops = response_ops(&req, status, sh);
    let head = response.render(&req.protocol, &ops);
    let file = (status == 200 && !req.head_method && meta.len() > 0).then_some((file, meta.len()));
    let keep = req.keep_alive && !has_body;
    Box::new(Local {
        head,
        file,
        req,
        status,
        keep,
    })
}
