//! Tests of [`super`]: the spec's byte-level examples, every refusal of
//! §1.5 with uWSGI's log text, and the encoder's limits.

use super::*;

/// Bytes from a hex dump without offsets or ASCII column.
pub(crate) fn hex(lines: &[&str]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|l| l.split_whitespace())
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

/// A vars block from literal entries, lengths computed.
fn block(vars: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in vars {
        out.extend_from_slice(&(k.len() as u16).to_le_bytes());
        out.extend_from_slice(k);
        out.extend_from_slice(&(v.len() as u16).to_le_bytes());
        out.extend_from_slice(v);
    }
    out
}

fn packet(modifier1: u8, block: &[u8], modifier2: u8) -> Vec<u8> {
    let mut out = vec![modifier1];
    out.extend_from_slice(&(block.len() as u16).to_le_bytes());
    out.push(modifier2);
    out.extend_from_slice(block);
    out
}

// spec §1.8 example A
const EXAMPLE_A: &[&str] = &[
    "00 3e 00 00 0e 00 52 45 51 55 45 53 54 5f 4d 45",
    "54 48 4f 44 03 00 47 45 54 09 00 50 41 54 48 5f",
    "49 4e 46 4f 01 00 2f 0f 00 53 45 52 56 45 52 5f",
    "50 52 4f 54 4f 43 4f 4c 08 00 48 54 54 50 2f 31",
    "2e 31",
];

// spec §1.8 example B: 126-byte block then the 5-byte body `hello`
const EXAMPLE_B: &[&str] = &[
    "00 7e 00 00 0e 00 52 45 51 55 45 53 54 5f 4d 45",
    "54 48 4f 44 04 00 50 4f 53 54 09 00 50 41 54 48",
    "5f 49 4e 46 4f 07 00 2f 75 70 6c 6f 61 64 0b 00",
    "52 45 51 55 45 53 54 5f 55 52 49 07 00 2f 75 70",
    "6c 6f 61 64 0c 00 51 55 45 52 59 5f 53 54 52 49",
    "4e 47 00 00 0f 00 53 45 52 56 45 52 5f 50 52 4f",
    "54 4f 43 4f 4c 08 00 48 54 54 50 2f 31 2e 31 0e",
    "00 43 4f 4e 54 45 4e 54 5f 4c 45 4e 47 54 48 01",
    "00 35 68 65 6c 6c 6f",
];

// spec §1.8 example D: modifiers 5/7 from a `uwsgi:` routing action
const EXAMPLE_D: &[&str] = &[
    "05 23 00 07 09 00 50 41 54 48 5f 49 4e 46 4f 02",
    "00 2f 78 0b 00 55 57 53 47 49 5f 41 50 50 49 44",
    "05 00 6d 79 61 70 70",
];

#[test]
fn spec_examples_decode_and_reencode() {
    let cases: &[(&str, &[&str], Header, &[(&str, &str)], &str)] = &[
        (
            "A minimal GET",
            EXAMPLE_A,
            Header {
                modifier1: 0,
                datasize: 62,
                modifier2: 0,
            },
            &[
                ("REQUEST_METHOD", "GET"),
                ("PATH_INFO", "/"),
                ("SERVER_PROTOCOL", "HTTP/1.1"),
            ],
            "",
        ),
        (
            "B POST with body and empty QUERY_STRING",
            EXAMPLE_B,
            Header {
                modifier1: 0,
                datasize: 126,
                modifier2: 0,
            },
            &[
                ("REQUEST_METHOD", "POST"),
                ("PATH_INFO", "/upload"),
                ("REQUEST_URI", "/upload"),
                ("QUERY_STRING", ""),
                ("SERVER_PROTOCOL", "HTTP/1.1"),
                ("CONTENT_LENGTH", "5"),
            ],
            "hello",
        ),
        (
            "D routing action modifiers",
            EXAMPLE_D,
            Header {
                modifier1: 5,
                datasize: 35,
                modifier2: 7,
            },
            &[("PATH_INFO", "/x"), ("UWSGI_APPID", "myapp")],
            "",
        ),
    ];
    for (name, dump, header, vars, body) in cases {
        let bytes = hex(dump);
        let status = check(&bytes, &Limits::default()).unwrap();
        let vars_len = usize::from(header.datasize);
        assert_eq!(
            status,
            Status::Complete {
                header_len: 4,
                vars_len
            },
            "{name}"
        );
        let packet = Packet::parse(&bytes);
        assert_eq!(packet.header, *header, "{name}");
        let got: Vec<_> = packet.vars().collect();
        let want: Vec<_> = vars
            .iter()
            .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
            .collect();
        assert_eq!(got, want, "{name}");
        assert_eq!(&bytes[packet.len()..], body.as_bytes(), "{name}");
        let again = encode(header.modifier1, header.modifier2, want).unwrap();
        assert_eq!(again, &bytes[..packet.len()], "{name}: re-encoding");
    }
}

#[test]
fn check_table() {
    let small = Limits {
        buffer_size: 64,
        max_vars: 2,
    };
    let four_vars = block(&[(b"A", b"1"), (b"B", b""), (b"C", b"3"), (b"D", b"4")]);
    let five_vars = block(&[
        (b"A", b"1"),
        (b"B", b""),
        (b"C", b"3"),
        (b"D", b"4"),
        (b"E", b""),
    ]);
    let base = block(&[(b"REQUEST_METHOD", b"GET"), (b"PATH_INFO", b"/")]);
    let with = |tail: &[u8]| [base.as_slice(), tail].concat();
    let default = Limits::default();
    type Expect = Result<Status, PacketError>;
    let complete = |vars_len| {
        Ok(Status::Complete {
            header_len: 4,
            vars_len,
        })
    };
    let cases: Vec<(&str, Vec<u8>, Limits, Expect)> = vec![
        (
            "empty buffer",
            vec![],
            default,
            Ok(Status::Incomplete { needed: 4 }),
        ),
        (
            "partial header",
            vec![0, 8],
            default,
            Ok(Status::Incomplete { needed: 2 }),
        ),
        (
            "header only",
            vec![0, 8, 0, 0],
            default,
            Ok(Status::Incomplete { needed: 8 }),
        ),
        (
            "empty packet is complete",
            vec![0, 0, 0, 0],
            default,
            complete(0),
        ),
        (
            "empty value last",
            packet(0, &block(&[(b"K", b"")]), 0),
            default,
            complete(5),
        ),
        (
            "max-vars x2 accepted",
            packet(0, &four_vars, 0),
            small,
            complete(four_vars.len()),
        ),
        (
            "block of exactly buffer-size",
            packet(0, &block(&[(b"K", &[b'v'; 4091])]), 0),
            default,
            complete(4096),
        ),
        (
            "block larger than buffer-size, refused from the header alone",
            vec![0, 0x00, 0x20, 0],
            default,
            Err(PacketError::BlockTooLarge {
                size: 8192,
                max: 4096,
            }),
        ),
        (
            "zero-length key",
            packet(0, &with(&[0, 0, 1, 0, b'x']), 0),
            default,
            Err(PacketError::NullKey { offset: base.len() }),
        ),
        (
            "value runs past the block",
            packet(0, &with(&[1, 0, b'K', 9, 0, b'a', b'b']), 0),
            default,
            Err(PacketError::Truncated {
                offset: base.len(),
                strsize: 9,
            }),
        ),
        (
            "key runs past the block",
            packet(0, &with(&[9, 0, b'K', b'E']), 0),
            default,
            Err(PacketError::Truncated {
                offset: base.len(),
                strsize: 9,
            }),
        ),
        (
            "key ends exactly at the block end",
            packet(0, &with(&[3, 0, b'K', b'E', b'Y']), 0),
            default,
            Err(PacketError::Truncated {
                offset: base.len(),
                strsize: 3,
            }),
        ),
        (
            "one stray byte reports the last length read",
            packet(0, &with(&[5]), 0),
            default,
            Err(PacketError::Truncated {
                offset: base.len(),
                strsize: 1,
            }),
        ),
        (
            "missing value length",
            packet(0, &with(&[1, 0, b'K', 0]), 0),
            default,
            Err(PacketError::Truncated {
                offset: base.len(),
                strsize: 1,
            }),
        ),
        (
            "more than 2 x max-vars",
            packet(0, &five_vars, 0),
            small,
            Err(PacketError::TooManyVars { max: 4 }),
        ),
    ];
    for (name, bytes, limits, want) in cases {
        assert_eq!(check(&bytes, &limits), want, "{name}");
    }
}

#[test]
fn default_limits_accept_128_vars_not_129() {
    let vars: Vec<(Vec<u8>, Vec<u8>)> = (0..129)
        .map(|i| (format!("X{i}").into_bytes(), Vec::new()))
        .collect();
    let pairs = |n| vars[..n].iter().map(|(k, v)| (k, v));
    let ok = encode(0, 0, pairs(128)).unwrap();
    assert!(matches!(
        check(&ok, &Limits::default()),
        Ok(Status::Complete { .. })
    ));
    let too_many = encode(0, 0, pairs(129)).unwrap();
    assert_eq!(
        check(&too_many, &Limits::default()),
        Err(PacketError::TooManyVars { max: 128 })
    );
}

#[test]
fn log_lines_match_uwsgi() {
    let cases = [
        (
            PacketError::BlockTooLarge {
                size: 8192,
                max: 4096,
            },
            "invalid request block size: 8192 (max 4096)...skip",
        ),
        (
            PacketError::NullKey { offset: 0 },
            "uwsgi key cannot be null. skip this var.",
        ),
        (
            PacketError::Truncated {
                offset: 3,
                strsize: 9,
            },
            "invalid uwsgi request (current strsize: 9). skip.",
        ),
        (
            PacketError::TooManyVars { max: 128 },
            "max vec size reached. skip this var.",
        ),
    ];
    for (err, line) in cases {
        assert_eq!(err.log_line(), line);
    }
    assert_eq!(
        unavailable_modifier_log(5),
        "-- unavailable modifier requested: 5 --"
    );
}

#[test]
fn body_bytes_after_the_block_are_left_to_the_caller() {
    let mut bytes = hex(EXAMPLE_A);
    bytes.extend_from_slice(b"next packet");
    assert_eq!(
        check(&bytes, &Limits::default()),
        Ok(Status::Complete {
            header_len: 4,
            vars_len: 62
        })
    );
    assert_eq!(&bytes[Packet::parse(&bytes).len()..], b"next packet");
}

#[test]
fn duplicates_are_kept_and_last_wins() {
    let bytes = encode(0, 0, [("X", "1"), ("Y", "y"), ("X", "2")]).unwrap();
    let packet = Packet::parse(&bytes);
    assert_eq!(packet.vars().count(), 3);
    assert_eq!(packet.vars().get(b"X"), Some(&b"2"[..]));
    assert_eq!(packet.vars().get(b"Z"), None);
}

#[test]
fn parse_of_unchecked_bytes_does_not_panic() {
    let cases: &[(&str, &[u8], usize)] = &[
        ("nothing", b"", 0),
        ("short header", b"\x00\x05", 0),
        (
            "block shorter than announced",
            b"\x00\x10\x00\x00\x01\x00K\x01\x00v",
            1,
        ),
        (
            "null key stops iteration",
            b"\x00\x06\x00\x00\x00\x00\x01\x00v\x00",
            0,
        ),
        (
            "truncated tail",
            b"\x00\x09\x00\x00\x01\x00K\x00\x00\x05\x00ab",
            1,
        ),
    ];
    for (name, bytes, count) in cases {
        assert_eq!(Packet::parse(bytes).vars().count(), *count, "{name}");
    }
}

#[test]
fn header_round_trip_is_little_endian() {
    let header = Header {
        modifier1: 7,
        datasize: 0x0102,
        modifier2: 3,
    };
    assert_eq!(header.to_bytes(), [7, 0x02, 0x01, 3]);
    assert_eq!(Header::parse(&header.to_bytes()), Some(header));
    assert_eq!(Header::parse(&[1, 2, 3]), None);
}

#[test]
fn writer_limits() {
    let cases: &[(&str, usize, usize, Result<(), EncodeError>)] = &[
        ("fits", 10, 10, Ok(())),
        ("empty key", 0, 1, Err(EncodeError::EmptyKey)),
        (
            "key over u16",
            65536,
            0,
            Err(EncodeError::FieldTooLong { len: 65536 }),
        ),
        (
            "value over u16",
            1,
            65536,
            Err(EncodeError::FieldTooLong { len: 65536 }),
        ),
        ("block exactly 65535", 1, 65530, Ok(())),
        (
            "block of 65536",
            1,
            65531,
            Err(EncodeError::BlockTooLarge { len: 65536 }),
        ),
    ];
    for (name, key_len, value_len, want) in cases {
        let mut writer = VarsWriter::new(0, 0);
        let got = writer.push(&vec![b'k'; *key_len], &vec![b'v'; *value_len]);
        assert_eq!(&got, want, "{name}");
        if got.is_err() {
            assert_eq!(writer.vars_len(), 0, "{name}: nothing written");
        }
    }
}

#[test]
fn writer_appends_after_existing_bytes() {
    let mut writer = VarsWriter::append_to(b"prefix".to_vec(), 5, 7);
    writer.push(b"PATH_INFO", b"/x").unwrap();
    writer.push(b"UWSGI_APPID", b"myapp").unwrap();
    let out = writer.finish();
    assert_eq!(&out[..6], b"prefix");
    assert_eq!(&out[6..], hex(EXAMPLE_D));
}

#[test]
fn modifier1_names() {
    let cases: &[(&str, u8, Option<Modifier1>)] = &[
        ("wsgi", 0, Some(Modifier1::Wsgi)),
        ("psgi", 5, Some(Modifier1::Psgi)),
        ("raw http response", 72, Some(Modifier1::RawHttpResponse)),
        ("emperor config", 115, Some(Modifier1::EmperorConfig)),
        ("router raw body", 123, Some(Modifier1::RouterRawBody)),
        ("subscription", 224, Some(Modifier1::Subscription)),
        ("unnamed", 42, None),
    ];
    for (name, byte, want) in cases {
        assert_eq!(Modifier1::from_byte(*byte), *want, "{name}");
        if let Some(m) = want {
            assert_eq!(m.to_byte(), *byte, "{name}");
        }
    }
}

#[test]
fn content_length_reads_leading_digits() {
    let cases: &[(&str, &[u8], u64)] = &[
        ("plain", b"5", 5),
        ("empty", b"", 0),
        ("stops at non-digit", b"12abc", 12),
        ("leading space is not a digit", b" 7", 0),
        ("merged duplicates", b"3, 4", 3),
        ("saturates", b"99999999999999999999999", u64::MAX),
    ];
    for (name, value, want) in cases {
        assert_eq!(content_length(value), *want, "{name}");
    }
}
