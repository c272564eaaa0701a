//! The request log line in uWSGI's default format
//! (`core/logging.c: uwsgi_logit_simple`), and the dates it and the static
//! file server need. Dates are UTC (uWSGI uses local time; ruwsgi avoids
//! libc's non-thread-safe time zone state).
//!
//! ```text
//! [pid: 2549|app: 0|req: 1/1] 127.0.0.1 () {24 vars in 246 bytes} [Fri Nov 27 16:27:17 2026] GET / => generated 21 bytes in 0 msecs (HTTP/1.1 200) 2 headers in 65 bytes (1 switches on core 0)
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::reply::Stats;

/// Everything one line shows.
#[derive(Debug, Clone, Default)]
pub(crate) struct Entry<'a> {
    pub(crate) pid: u32,
    /// `(app id, requests of that app)`; `None` prints `-1`.
    pub(crate) app: Option<(usize, u64)>,
    pub(crate) total: u64,
    pub(crate) remote_addr: &'a [u8],
    pub(crate) remote_user: &'a [u8],
    /// Number of variables (the line shows twice this, as uWSGI does).
    pub(crate) vars: usize,
    pub(crate) vars_bytes: usize,
    pub(crate) started: Option<SystemTime>,
    pub(crate) elapsed: Duration,
    pub(crate) method: &'a [u8],
    pub(crate) uri: &'a [u8],
    pub(crate) protocol: &'a [u8],
    pub(crate) stats: Stats,
    pub(crate) core: usize,
}

fn text(b: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(b)
}

impl Entry<'_> {
    pub(crate) fn line(&self) -> String {
        let (app, req) = match self.app {
            Some((id, n)) => (id.to_string(), n.to_string()),
            None => ("-1".into(), "-1".into()),
        };
        let status = if self.stats.status == 0 {
            500
        } else {
            self.stats.status
        };
        let via = if self.stats.sendfile {
            " via sendfile()"
        } else {
            ""
        };
        format!(
            "[pid: {}|app: {app}|req: {req}/{}] {} ({}) {{{} vars in {} bytes}} [{}] {} {} => generated {} bytes in {} msecs{via} ({} {status}) {} headers in {} bytes ({} switches on core {})",
            self.pid,
            self.total,
            text(self.remote_addr),
            text(self.remote_user),
            self.vars * 2,
            self.vars_bytes,
            ctime(self.started.unwrap_or(UNIX_EPOCH)),
            text(self.method),
            text(self.uri),
            self.stats.body_bytes,
            self.elapsed.as_millis(),
            text(self.protocol),
            self.stats.headers,
            self.stats.header_bytes,
            self.stats.writes,
            self.core,
        )
    }
}

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Broken-down UTC time: (year, month 1-12, day, hour, min, sec, weekday
/// index into [`DAYS`]).
fn civil(t: SystemTime) -> (i64, usize, u32, u64, u64, u64, usize) {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-from-civil inverse.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as usize;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        days.rem_euclid(7) as usize,
    )
}

/// `Fri Nov 27 16:27:17 2026` (C `ctime` without the newline).
pub(crate) fn ctime(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, wd) = civil(t);
    format!(
        "{} {} {d:2} {h:02}:{mi:02}:{s:02} {y}",
        DAYS[wd],
        MONTHS[mo - 1]
    )
}

/// `Fri, 27 Nov 2026 16:27:17 GMT` (RFC 9110 IMF-fixdate), as the
/// router's `static:` answers write it.
pub(crate) fn http_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    String::from_utf8_lossy(&crate::routing::vars::http_date(secs)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_805_681);
        assert_eq!(ctime(t), "Fri Nov 27 18:54:41 2026");
        assert_eq!(http_date(t), "Fri, 27 Nov 2026 18:54:41 GMT");
        assert_eq!(ctime(UNIX_EPOCH), "Thu Jan  1 00:00:00 1970");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(http_date(leap), "Tue, 29 Feb 2000 00:00:00 GMT");
    }

    #[test]
    fn line() {
        let e = Entry {
            pid: 2549,
            app: Some((0, 1)),
            total: 1,
            remote_addr: b"127.0.0.1",
            vars: 12,
            vars_bytes: 246,
            started: Some(UNIX_EPOCH + Duration::from_secs(1_795_797_637)),
            method: b"GET",
            uri: b"/",
            protocol: b"HTTP/1.1",
            stats: Stats {
                status: 200,
                headers: 2,
                header_bytes: 65,
                body_bytes: 21,
                writes: 1,
                sendfile: false,
            },
            ..Entry::default()
        };
        assert_eq!(
            e.line(),
            "[pid: 2549|app: 0|req: 1/1] 127.0.0.1 () {24 vars in 246 bytes} [Fri Nov 27 16:40:37 2026] GET / => generated 21 bytes in 0 msecs (HTTP/1.1 200) 2 headers in 65 bytes (1 switches on core 0)"
        );
    }
}
