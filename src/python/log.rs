//! One log line to standard error, as uWSGI's `uwsgi_log` does. A closed
//! or full stderr must not take the process down, so errors are ignored
//! (`eprintln!` would panic).

use std::io::Write;

/// Writes `line` and a newline to standard error in one call.
pub(crate) fn line(line: &str) {
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line.as_bytes());
    buf.push(b'\n');
    let _ = std::io::stderr().lock().write_all(&buf);
}
