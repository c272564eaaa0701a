//! `basicauth` credential checks (`plugins/router_basicauth`): a
//! `USER:PASS` pair from the rule, or an htpasswd-like file read on each
//! request. Only `{SHA}` file entries are understood (uWSGI also passed
//! 13-character DES `crypt(3)` hashes to libc, which ruwsgi does not link);
//! other entries never match.

use super::vars::{base64, base64_decode};

/// The user name the `Authorization` value authenticates, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Authenticated as this user.
    User(Vec<u8>),
    /// Missing, malformed or wrong credentials.
    Denied,
}

/// Checks an `Authorization` header value against `USER:PASS`.
pub fn check_pair(authorization: &[u8], pair: &[u8]) -> Verdict {
    let Some(decoded) = decode_basic(authorization) else {
        return Verdict::Denied;
    };
    if decoded != pair {
        return Verdict::Denied;
    }
    let user_len = pair.iter().position(|&b| b == b':').unwrap_or(pair.len());
    Verdict::User(decoded[..user_len].to_vec())
}

/// Checks an `Authorization` header value against an htpasswd file.
pub fn check_file(authorization: &[u8], path: &[u8]) -> Verdict {
    use std::os::unix::ffi::OsStrExt;
    let Some(decoded) = decode_basic(authorization) else {
        return Verdict::Denied;
    };
    let Some(colon) = decoded.iter().position(|&b| b == b':') else {
        return Verdict::Denied;
    };
    let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
    let file = match std::fs::read(std::ffi::OsStr::from_bytes(path)) {
        Ok(file) => file,
        Err(e) => {
            // Every request is refused: say why, naming the file.
            eprintln!(
                "[uwsgi-basicauth] unable to read htpasswd file {}: {e}",
                String::from_utf8_lossy(path)
            );
            return Verdict::Denied;
        }
    };
    let expected = [b"{SHA}".as_slice(), &base64(&sha1(password))].concat();
    for line in file.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(c) = line.iter().position(|&b| b == b':') else {
            break;
        };
        if &line[..c] == user && line[c + 1..] == expected[..] {
            return Verdict::User(user.to_vec());
        }
    }
    Verdict::Denied
}

/// The decoded `user:pass` of `Basic <base64>` (uWSGI wants more than 7
/// bytes and the exact prefix `Basic `).
fn decode_basic(authorization: &[u8]) -> Option<Vec<u8>> {
    if authorization.len() <= 7 {
        return None;
    }
    base64_decode(authorization.strip_prefix(b"Basic ")?)
}

/// SHA-1 (FIPS 180-4), only for `{SHA}` htpasswd entries.
pub fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());
    for block in msg.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (hv, v) in h.iter_mut().zip([a, b, c, d, e]) {
            *hv = hv.wrapping_add(v);
        }
    }
    let mut out = [0u8; 20];
    for (chunk, v) in out.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&v.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(v: Verdict) -> Option<Vec<u8>> {
        match v {
            Verdict::User(u) => Some(u),
            Verdict::Denied => None,
        }
    }

    #[test]
    fn sha1_vectors() {
        assert_eq!(
            super::super::vars::hex(&sha1(b"abc")),
            b"A9993E364706816ABA3E25717850C26C9CD0D89D"
        );
        assert_eq!(
            super::super::vars::hex(&sha1(b"")),
            b"DA39A3EE5E6B4B0D3255BFEF95601890AFD80709"
        );
    }

    #[test]
    fn pairs_and_files() {
        assert_eq!(
            user(check_pair(b"Basic dXNlcjpwYXNz", b"user:pass")),
            Some(b"user".to_vec())
        );
        assert_eq!(
            user(check_pair(b"Basic dXNlcjp3cm9uZw==", b"user:pass")),
            None
        );
        assert_eq!(user(check_pair(b"Bearer dXNlcjpwYXNz", b"user:pass")), None);
        assert_eq!(user(check_pair(b"Basic", b"user:pass")), None);
        let dir = std::env::temp_dir().join(format!("ruwsgi-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("htpasswd");
        // `user:pass` with htpasswd -s.
        std::fs::write(
            &file,
            "other:{SHA}x\nuser:{SHA}nU4eI71bcnBGqeO0t9tXvY1u5oQ=\n",
        )
        .unwrap();
        let path = file.to_str().unwrap().as_bytes();
        assert_eq!(
            user(check_file(b"Basic dXNlcjpwYXNz", path)),
            Some(b"user".to_vec())
        );
        assert_eq!(user(check_file(b"Basic dXNlcjp3cm9uZw==", path)), None);
        assert_eq!(
            user(check_file(b"Basic dXNlcjpwYXNz", b"/nonexistent")),
            None
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
