//! Response status lines as uWSGI writes them (`core/writer.c:
//! uwsgi_response_prepare_headers`): a status of at most 4 bytes (`"404"`)
//! gets the reason phrase from uWSGI's table (`core/init.c`), `Unknown`
//! when absent (the table has no 308); a longer status is kept verbatim.

/// uWSGI's reason phrase table.
const REASONS: &[(u16, &str)] = &[
    (100, "Continue"),
    (101, "Switching Protocols"),
    (200, "OK"),
    (201, "Created"),
    (202, "Accepted"),
    (203, "Non-Authoritative Information"),
    (204, "No Content"),
    (205, "Reset Content"),
    (206, "Partial Content"),
    (300, "Multiple Choices"),
    (301, "Moved Permanently"),
    (302, "Found"),
    (303, "See Other"),
    (304, "Not Modified"),
    (305, "Use Proxy"),
    (307, "Temporary Redirect"),
    (400, "Bad Request"),
    (401, "Unauthorized"),
    (402, "Payment Required"),
    (403, "Forbidden"),
    (404, "Not Found"),
    (405, "Method Not Allowed"),
    (406, "Not Acceptable"),
    (407, "Proxy Authentication Required"),
    (408, "Request Timeout"),
    (409, "Conflict"),
    (410, "Gone"),
    (411, "Length Required"),
    (412, "Precondition Failed"),
    (413, "Request Entity Too Large"),
    (414, "Request-URI Too Long"),
    (415, "Unsupported Media Type"),
    (416, "Requested Range Not Satisfiable"),
    (417, "Expectation Failed"),
    (418, "I'm a teapot"),
    (422, "Unprocessable Entity"),
    (425, "Too Early"),
    (426, "Upgrade Required"),
    (428, "Precondition Required"),
    (429, "Too Many Requests"),
    (431, "Request Header Fields Too Large"),
    (451, "Unavailable For Legal Reasons"),
    (500, "Internal Server Error"),
    (501, "Not Implemented"),
    (502, "Bad Gateway"),
    (503, "Service Unavailable"),
    (504, "Gateway Timeout"),
    (505, "HTTP Version Not Supported"),
    (509, "Bandwidth Limit Exceeded"),
    (511, "Network Authentication Required"),
];

/// The numeric code of a status (`uwsgi_str3_num`: the first three bytes
/// as digits; anything else counts as 0).
pub(crate) fn code(status: &[u8]) -> u16 {
    match status {
        [a, b, c, ..] if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit() => {
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
        }
        _ => 0,
    }
}

pub(crate) fn reason(code: u16) -> Option<&'static str> {
    REASONS.iter().find(|(c, _)| *c == code).map(|(_, r)| *r)
}

/// The status text after the protocol token on the status line.
pub(crate) fn status_text(status: &[u8]) -> Vec<u8> {
    if status.len() > 4 || status.len() < 3 {
        return status.to_vec();
    }
    let phrase = reason(code(status)).unwrap_or("Unknown");
    [&status[..3], b" ", phrase.as_bytes()].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        let cases: &[(&str, &[u8], &[u8])] = &[
            ("bare known code", b"404", b"404 Not Found"),
            ("bare code with space", b"200 ", b"200 OK"),
            ("308 is not in the table", b"308", b"308 Unknown"),
            ("app text kept", b"200 Fine", b"200 Fine"),
            ("too short kept", b"20", b"20"),
        ];
        for (name, input, want) in cases {
            assert_eq!(status_text(input), *want, "{name}");
        }
        assert_eq!(code(b"201 Created"), 201);
        assert_eq!(code(b"x"), 0);
    }
}
