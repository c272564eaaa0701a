//! `static-map`, `static-map2` and `check-static`: files served by the
//! worker without entering Python (`core/static.c`).
//!
//! `static-map = /url=/dir` maps `PATH_INFO` below `/url` to `/dir` + the
//! rest, `static-map2` to `/dir` + the whole `PATH_INFO`, `check-static =
//! /dir` to `/dir` + `PATH_INFO`. Only `GET` and `HEAD` of a regular file
//! whose real path stays under the real document root are served (no `..`
//! or symlink escapes); anything else falls through to the app. Headers:
//! `Content-Type` from [`crate::routing::mime`] (when the extension is known),
//! `Content-Length`, `Last-Modified`; `If-Modified-Since` gives a 304.

use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use super::reqlog::http_date;
use crate::routing::mime;

/// A file to send.
#[derive(Debug)]
pub(crate) struct Found {
    pub(crate) file: File,
    pub(crate) len: u64,
    pub(crate) mtime: SystemTime,
    pub(crate) content_type: Option<&'static str>,
}

/// The candidate paths for `path_info`, in uWSGI's order.
fn candidates(
    maps: &[(String, String, bool)],
    check_static: &[String],
    path_info: &[u8],
) -> Vec<(PathBuf, PathBuf)> {
    let Ok(path) = std::str::from_utf8(path_info) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (url, dir, whole) in maps {
        if let Some(rest) = path.strip_prefix(url.as_str()) {
            let tail = if *whole { path } else { rest };
            out.push((PathBuf::from(dir), PathBuf::from(format!("{dir}{tail}"))));
        }
    }
    for dir in check_static {
        out.push((PathBuf::from(dir), PathBuf::from(format!("{dir}{path}"))));
    }
    out
}

/// The file to serve for this request, if any; `mime_files` are the
/// `mimefile` entries.
pub(crate) fn lookup(
    maps: &[(String, String, bool)],
    check_static: &[String],
    mime_files: &[String],
    method: &[u8],
    path_info: &[u8],
) -> Option<Found> {
    if method != b"GET" && method != b"HEAD" {
        return None;
    }
    for (root, candidate) in candidates(maps, check_static, path_info) {
        let Ok(real) = candidate.canonicalize() else {
            continue;
        };
        let Ok(real_root) = root.canonicalize() else {
            continue;
        };
        if !real.starts_with(&real_root) {
            crate::worker::log(&format!(
                "[uwsgi-fileserve] security error: {} is not under {} or a safe path",
                real.display(),
                root.display()
            ));
            continue;
        }
        let Ok(file) = File::open(&real) else {
            continue;
        };
        let Ok(meta) = file.metadata() else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        return Some(Found {
            file,
            len: meta.len(),
            mtime: meta.modified().unwrap_or(UNIX_EPOCH),
            content_type: mime::content_type(mime_files, real.as_os_str().as_bytes()),
        });
    }
    None
}

/// Whether `If-Modified-Since` makes this a 304.
pub(crate) fn not_modified(found: &Found, if_modified_since: Option<&[u8]>) -> bool {
    let Some(ims) = if_modified_since.and_then(parse_http_date) else {
        return false;
    };
    let mtime = found
        .mtime
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    mtime <= ims
}

/// Response headers for a found file.
pub(crate) fn headers(found: &Found) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut h = Vec::new();
    if let Some(ct) = found.content_type {
        h.push((b"Content-Type".to_vec(), ct.as_bytes().to_vec()));
    }
    h.push((
        b"Content-Length".to_vec(),
        found.len.to_string().into_bytes(),
    ));
    h.push((
        b"Last-Modified".to_vec(),
        http_date(found.mtime).into_bytes(),
    ));
    h
}

/// Seconds since the epoch of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub(crate) fn parse_http_date(v: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(v).ok()?.trim();
    let rest = s.split_once(", ")?.1;
    let mut parts = rest.split(' ');
    let day: i64 = parts.next()?.parse().ok()?;
    let month = parts.next()?;
    let year: i64 = parts.next()?.parse().ok()?;
    let time = parts.next()?;
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = months.iter().position(|x| *x == month)? as i64 + 1;
    let mut hms = time.split(':').map(|p| p.parse::<u64>().ok());
    let (h, mi, sec) = (hms.next()??, hms.next()??, hms.next()??);
    // Client input: out-of-range fields are not a date (and cannot overflow).
    if !(1..=31).contains(&day) || !(1970..=9999).contains(&year) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    // days_from_civil (Howard Hinnant).
    let y = if m <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + mi * 60 + sec;
    Some(secs)
}

#[cfg(test)]
fn from_secs(s: u64) -> SystemTime {
    UNIX_EPOCH + std::time::Duration::from_secs(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_round_trip() {
        for s in [0u64, 951_782_400, 1_795_805_681] {
            let text = http_date(from_secs(s));
            assert_eq!(parse_http_date(text.as_bytes()), Some(s), "{text}");
        }
        assert_eq!(parse_http_date(b"garbage"), None);
        for hostile in [
            "Sun, 06 Nov 9223372036854775807 08:49:37 GMT",
            "Sun, 99999999999 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 18446744073709551615:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:99999999999999 GMT",
            "Sun, 00 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_http_date(hostile.as_bytes()), None, "{hostile}");
        }
    }

    #[test]
    fn lookups() {
        let dir = std::env::temp_dir().join(format!("ruwsgi-static-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("pub/sub")).unwrap();
        std::fs::write(dir.join("pub/a.css"), "body{}").unwrap();
        std::fs::write(dir.join("secret.txt"), "no").unwrap();
        let root = dir.join("pub").display().to_string();
        let maps = vec![("/static".to_string(), root.clone(), false)];
        let cases: &[(&str, &[u8], &[u8], bool)] = &[
            ("mapped file", b"GET", b"/static/a.css", true),
            ("HEAD too", b"HEAD", b"/static/a.css", true),
            ("POST falls through", b"POST", b"/static/a.css", false),
            ("missing", b"GET", b"/static/nope", false),
            ("directory", b"GET", b"/static/sub", false),
            ("dot-dot escape", b"GET", b"/static/../secret.txt", false),
            ("other prefix", b"GET", b"/other/a.css", false),
        ];
        for (name, method, path, want) in cases {
            assert_eq!(
                lookup(&maps, &[], &[], method, path).is_some(),
                *want,
                "{name}"
            );
        }
        let found = lookup(&maps, &[], &[], b"GET", b"/static/a.css").unwrap();
        assert_eq!(found.content_type, Some("text/css"));
        assert_eq!(found.len, 6);
        let later = http_date(found.mtime + Duration::from_secs(10));
        assert!(not_modified(&found, Some(later.as_bytes())));
        assert!(!not_modified(
            &found,
            Some(b"Thu, 01 Jan 1970 00:00:00 GMT")
        ));
        let check = vec![root];
        assert!(lookup(&[], &check, &[], b"GET", b"/a.css").is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
