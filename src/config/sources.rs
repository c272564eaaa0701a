//! Reading a config source: a plain file, standard input (`-`), or one of
//! uWSGI's schemes (`fd://`, `exec://`, `http://`). The schemes uWSGI has
//! but ruwsgi does not (`data://`, `sym://`, `section://`, `call://`,
//! `callint://`) are refused with a clear message.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;

use super::logic::strerror;

/// The schemes uWSGI registers, in its order.
pub const SCHEMES: &[&str] = &[
    "emperor", "http", "data", "sym", "section", "fd", "exec", "call", "callint",
];

/// The scheme name if `url` starts with `NAME://` for a known scheme.
pub fn scheme_of(url: &[u8]) -> Option<&'static str> {
    SCHEMES
        .iter()
        .copied()
        .find(|s| url.starts_with(s.as_bytes()) && url[s.len()..].starts_with(b"://"))
}

/// Reads a source whole. Errors carry uWSGI's message text.
pub fn read(url: &[u8]) -> Result<Vec<u8>, String> {
    if url == b"-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| format!("read(): {}", strerror(&e)))?;
        return Ok(buf);
    }
    match scheme_of(url) {
        Some(scheme) => read_scheme(scheme, &url[scheme.len() + 3..], url),
        None => read_file(url),
    }
}

fn read_file(path: &[u8]) -> Result<Vec<u8>, String> {
    let shown = String::from_utf8_lossy(path);
    let mut file = std::fs::File::open(OsStr::from_bytes(path))
        .map_err(|e| format!("open(\"{shown}\"): {}", strerror(&e)))?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf)
        .map_err(|e| format!("read(\"{shown}\"): {}", strerror(&e)))?;
    Ok(buf)
}

fn read_scheme(scheme: &str, rest: &[u8], url: &[u8]) -> Result<Vec<u8>, String> {
    let shown = String::from_utf8_lossy(url);
    match scheme {
        "fd" => {
            let fd = super::placeholders::atoi(rest);
            read_file(format!("/proc/self/fd/{fd}").as_bytes())
        }
        "exec" => {
            let out = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(OsStr::from_bytes(rest))
                .stdin(std::process::Stdio::null())
                .stderr(std::process::Stdio::inherit())
                .output()
                .map_err(|e| format!("unable to run \"{}\": {}", String::from_utf8_lossy(rest), strerror(&e)))?;
            Ok(out.stdout)
        }
        "http" => http_get(rest),
        _ => Err(format!("unable to load configuration from {shown}: ruwsgi does not support {scheme}:// sources")),
    }
}

/// A plain HTTP/1.0 GET, as uWSGI's `http://` scheme does.
fn http_get(rest: &[u8]) -> Result<Vec<u8>, String> {
    let rest = String::from_utf8_lossy(rest);
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (&rest[..], "/"),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().unwrap_or(80)),
        None => (hostport, 80),
    };
    let mut stream = std::net::TcpStream::connect((host, port))
        .map_err(|e| format!("connect() to {host}:{port}: {}", strerror(&e)))?;
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(30)));
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n")
        .map_err(|e| format!("send(): {}", strerror(&e)))?;
    let mut resp = Vec::new();
    stream
        .read_to_end(&mut resp)
        .map_err(|e| format!("recv(): {}", strerror(&e)))?;
    let head_end = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("Not usable HTTP response")?;
    let status_line = resp[..head_end]
        .split(|&b| b == b'\n')
        .next()
        .unwrap_or_default();
    let status = String::from_utf8_lossy(status_line);
    let code = status.split_whitespace().nth(1).unwrap_or("");
    if !code.starts_with('2') {
        return Err(format!("Not usable HTTP response: {code}"));
    }
    Ok(resp[head_end + 4..].to_vec())
}
