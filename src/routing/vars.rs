//! The request as the routing engine sees it: the variables (read through
//! [`VarLookup`], with the variables actions append on top, [`Overlay`])
//! and the routing variable functions of `${fn[arg]}` (spec §5.6.1):
//! `cookie`, `qs`, `mime`, `uwsgi`, `time`, `httptime`, `base64`, `hex`.
//!
//! `${mime[VAR]}` is the `Content-Type` of the file name in `VAR`, from
//! [`super::mime`] (uWSGI's is empty unless a static option built its
//! table; ours always has the built-in types).

use std::time::{SystemTime, UNIX_EPOCH};

use super::subst::Source;

/// One `(key, value)` request variable.
pub type Var = (Vec<u8>, Vec<u8>);

/// Read access to a request's variables: the effective value of a key is
/// its last occurrence (spec §1.2).
pub trait VarLookup {
    fn get_var(&self, key: &[u8]) -> Option<&[u8]>;
}

impl VarLookup for [Var] {
    fn get_var(&self, key: &[u8]) -> Option<&[u8]> {
        self.iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }
}

impl VarLookup for Vec<Var> {
    fn get_var(&self, key: &[u8]) -> Option<&[u8]> {
        self.as_slice().get_var(key)
    }
}

impl VarLookup for crate::protocol::uwsgi::Vars<'_> {
    fn get_var(&self, key: &[u8]) -> Option<&[u8]> {
        self.get(key)
    }
}

/// Facts about the request that are not variables, for `${uwsgi[..]}` and
/// the `*-route-status` rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// Worker id (`${uwsgi[wid]}`); 0 in the HTTP router.
    pub worker_id: u32,
    pub pid: u32,
    /// Response status (0 before one is known).
    pub status: u16,
    /// Response time in microseconds (`rtime`).
    pub response_time_us: u64,
    /// Response size in bytes (`rsize`).
    pub response_size: u64,
    /// Start of the request, microseconds since the epoch (`sor`).
    pub start_us: u64,
    /// Listen queue length (`lq`).
    pub listen_queue: u64,
}

/// The base variables plus what actions appended, in order.
#[derive(Debug)]
pub struct Overlay<'a> {
    base: &'a dyn VarLookupDebug,
    pub(crate) added: Vec<Var>,
    pub(crate) context: &'a Context,
}

/// [`VarLookup`] plus `Debug`, so [`Overlay`] can derive it.
pub trait VarLookupDebug: VarLookup + std::fmt::Debug {}
impl<T: VarLookup + std::fmt::Debug + ?Sized> VarLookupDebug for T {}

impl<'a> Overlay<'a> {
    pub fn new(base: &'a dyn VarLookupDebug, context: &'a Context) -> Overlay<'a> {
        Overlay {
            base,
            added: Vec::new(),
            context,
        }
    }

    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.added.get_var(key).or_else(|| self.base.get_var(key))
    }

    pub fn push(&mut self, key: &[u8], value: Vec<u8>) {
        self.added.push((key.to_vec(), value));
    }
}

impl Source for Overlay<'_> {
    fn var(&self, name: &[u8]) -> Option<&[u8]> {
        self.get(name)
    }

    fn function(&self, func: &[u8], arg: &[u8]) -> Option<Option<Vec<u8>>> {
        let value = match func {
            b"cookie" => self
                .get(b"HTTP_COOKIE")
                .and_then(|c| cookie(c, arg))
                .map(<[u8]>::to_vec),
            b"qs" => self
                .get(b"QUERY_STRING")
                .and_then(|q| query_item(q, arg))
                .map(<[u8]>::to_vec),
            b"mime" => self
                .get(arg)
                .and_then(super::mime::lookup)
                .map(|t| t.as_bytes().to_vec()),
            b"uwsgi" => uwsgi_var(self.context, arg),
            b"time" => time_var(arg),
            b"httptime" => Some(http_date(now_secs().saturating_add(leading_number(arg)))),
            b"base64" => self.get(arg).map(base64),
            b"hex" => self.get(arg).map(hex),
            _ => return None,
        };
        Some(value)
    }
}

/// The first cookie called `name` with a non-empty value: the header is
/// split on `;`, each item trimmed of whitespace, not URL-decoded.
pub fn cookie<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    header
        .split(|&b| b == b';')
        .filter_map(|item| keyed_value(item.trim_ascii(), name))
        .next()
}

/// The first `name=` item of a query string with a non-empty value (split
/// on `&` only, not decoded).
pub fn query_item<'a>(qs: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    qs.split(|&b| b == b'&')
        .filter_map(|item| keyed_value(item, name))
        .next()
}

fn keyed_value<'a>(item: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let eq = item.iter().position(|&b| b == b'=')?;
    let value = &item[eq + 1..];
    (&item[..eq] == name && !value.is_empty()).then_some(value)
}

fn uwsgi_var(ctx: &Context, key: &[u8]) -> Option<Vec<u8>> {
    let number = match key {
        b"wid" => u64::from(ctx.worker_id),
        b"pid" => u64::from(ctx.pid),
        b"status" => u64::from(ctx.status),
        b"rtime" => ctx.response_time_us,
        b"lq" => ctx.listen_queue,
        b"rsize" => ctx.response_size,
        b"sor" => ctx.start_us,
        b"uuid" => return Some(uuid4()),
        _ => return None,
    };
    Some(number.to_string().into_bytes())
}

fn time_var(key: &[u8]) -> Option<Vec<u8>> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    match key {
        b"unix" => Some(now.as_secs().to_string().into_bytes()),
        b"micros" => Some(now.as_micros().to_string().into_bytes()),
        _ => None,
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Leading decimal digits (uWSGI's `uwsgi_str_num`).
fn leading_number(s: &[u8]) -> u64 {
    s.iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0u64, |n, d| {
            n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
        })
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 1123, as `uwsgi_http_date`).
pub fn http_date(secs: u64) -> Vec<u8> {
    const WEEK: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{}, {day:02} {} {year:4} {:02}:{:02}:{:02} GMT",
        WEEK[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
    .into_bytes()
}

/// Days since 1970-01-01 → (year, month 1-12, day 1-31) (H. Hinnant's
/// algorithm, for non-negative day counts).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[(n >> (18 - 6 * i) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
    out
}

/// Standard base64 decoding; `None` on a byte outside the alphabet.
/// Padding is optional; whitespace is not allowed.
pub fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    let text = text
        .strip_suffix(b"==")
        .or_else(|| text.strip_suffix(b"="))
        .unwrap_or(text);
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 2);
    let mut acc = 0u32;
    let mut bits = 0;
    for &c in text {
        let v = BASE64.iter().position(|&b| b == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits & 0xff) as u8);
        }
    }
    Some(out)
}

/// Upper-case hex, two digits per byte (`uwsgi_str_to_hex`).
pub fn hex(data: &[u8]) -> Vec<u8> {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    data.iter()
        .flat_map(|&b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]])
        .collect()
}

/// A random (version 4) UUID; randomness from `/dev/urandom`, with a
/// time-based fallback.
fn uuid4() -> Vec<u8> {
    use std::io::Read;
    let mut b = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if read.is_err() {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        b = nanos.to_le_bytes();
    }
    b[6] = b[6] & 0x0f | 0x40;
    b[8] = b[8] & 0x3f | 0x80;
    let h = hex(&b).to_ascii_lowercase();
    [
        &h[0..8],
        b"-",
        &h[8..12],
        b"-",
        &h[12..16],
        b"-",
        &h[16..20],
        b"-",
        &h[20..32],
    ]
    .concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_query_items() {
        let cases: &[(&str, &[u8], &[u8], Option<&[u8]>)] = &[
            ("first cookie", b"c=choc; d=x", b"c", Some(b"choc")),
            ("second cookie", b"c=choc; d=x", b"d", Some(b"x")),
            ("trimmed", b"  a=1 ;b=2  ", b"a", Some(b"1")),
            ("empty is absent", b"a=; a=2", b"a", Some(b"2")),
            ("missing", b"a=1", b"b", None),
            ("prefix is not the key", b"ab=1", b"a", None),
        ];
        for (name, header, key, expected) in cases {
            assert_eq!(cookie(header, key), *expected, "{name}");
        }
        let cases: &[(&str, &[u8], &[u8], Option<&[u8]>)] = &[
            ("first wins", b"a=1&b=2&a=3", b"a", Some(b"1")),
            ("not decoded", b"a=%20", b"a", Some(b"%20")),
            ("empty skipped", b"a=&a=3", b"a", Some(b"3")),
            ("semicolon is not a separator", b"a=1;b=2", b"b", None),
            ("no value", b"a", b"a", None),
        ];
        for (name, qs, key, expected) in cases {
            assert_eq!(query_item(qs, key), *expected, "{name}");
        }
    }

    #[test]
    fn encodings() {
        assert_eq!(base64(b""), b"");
        assert_eq!(base64(b"f"), b"Zg==");
        assert_eq!(base64(b"fo"), b"Zm8=");
        assert_eq!(base64(b"user:pass"), b"dXNlcjpwYXNz");
        assert_eq!(
            base64_decode(b"dXNlcjpwYXNz").as_deref(),
            Some(&b"user:pass"[..])
        );
        assert_eq!(base64_decode(b"Zg==").as_deref(), Some(&b"f"[..]));
        assert_eq!(base64_decode(b"Z!=="), None);
        assert_eq!(hex(b"\x01\xab"), b"01AB");
        assert_eq!(http_date(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(uuid4().len(), 36);
    }

    #[test]
    fn functions() {
        let base: Vec<Var> = vec![
            (b"QUERY_STRING".to_vec(), b"a=1&b=2".to_vec()),
            (b"HTTP_COOKIE".to_vec(), b"c=choc".to_vec()),
            (b"NAME".to_vec(), b"ab".to_vec()),
            (b"FILE".to_vec(), b"/static/site.css".to_vec()),
        ];
        let ctx = Context {
            worker_id: 1,
            status: 404,
            ..Context::default()
        };
        let o = Overlay::new(&base, &ctx);
        let f = |func: &[u8], arg: &[u8]| o.function(func, arg);
        assert_eq!(f(b"qs", b"b"), Some(Some(b"2".to_vec())));
        assert_eq!(f(b"cookie", b"c"), Some(Some(b"choc".to_vec())));
        assert_eq!(f(b"uwsgi", b"wid"), Some(Some(b"1".to_vec())));
        assert_eq!(f(b"uwsgi", b"status"), Some(Some(b"404".to_vec())));
        assert_eq!(f(b"uwsgi", b"nope"), Some(None));
        assert_eq!(f(b"hex", b"NAME"), Some(Some(b"6162".to_vec())));
        assert_eq!(f(b"base64", b"NAME"), Some(Some(b"YWI=".to_vec())));
        assert_eq!(f(b"mime", b"NAME"), Some(None));
        assert_eq!(f(b"mime", b"FILE"), Some(Some(b"text/css".to_vec())));
        assert_eq!(f(b"upper", b"NAME"), None);
    }
}
