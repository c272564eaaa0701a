//! Tests of [`super`]: every case fed whole and in small pieces.

use super::*;

/// Feeds `input` in pieces of `step` bytes (the whole rest when 0),
/// keeping unconsumed bytes as a real caller would. `Ok(None)`: the
/// input ended before the body did.
fn run(
    input: &[u8],
    step: usize,
    limits: ChunkedLimits,
) -> Result<Option<(Vec<u8>, usize)>, ChunkedError> {
    let mut decoder = ChunkedDecoder::new(limits);
    let mut pending = Vec::new();
    let mut body = Vec::new();
    let mut fed = 0;
    loop {
        let (consumed, chunk) = decoder.decode(&pending)?;
        match chunk {
            Chunk::Data(data) => {
                assert!(!data.is_empty());
                body.extend_from_slice(data);
            }
            Chunk::End => {
                assert!(decoder.is_done());
                let rest = pending.len() - consumed + input.len() - fed;
                return Ok(Some((body, rest)));
            }
            Chunk::Incomplete if fed == input.len() => return Ok(None),
            Chunk::Incomplete => {
                let end = if step == 0 {
                    input.len()
                } else {
                    (fed + step).min(input.len())
                };
                pending.drain(..consumed);
                pending.extend_from_slice(&input[fed..end]);
                fed = end;
                continue;
            }
        }
        pending.drain(..consumed);
    }
}

#[test]
fn table() {
    let small = ChunkedLimits {
        max_size_line: 8,
        max_trailer_len: 16,
    };
    let default = ChunkedLimits::default();
    type Want = Result<Option<(&'static [u8], usize)>, ChunkedError>;
    let cases: &[(&str, &[u8], ChunkedLimits, Want)] = &[
        (
            "one chunk",
            b"5\r\nhello\r\n0\r\n\r\n",
            default,
            Ok(Some((b"hello", 0))),
        ),
        (
            "two chunks, upper-case hex",
            b"2\r\nhe\r\nA\r\nllo world!\r\n0\r\n\r\n",
            default,
            Ok(Some((b"hello world!", 0))),
        ),
        ("empty body", b"0\r\n\r\n", default, Ok(Some((b"", 0)))),
        (
            "extension ignored",
            b"5;name=v\r\nhello\r\n0\r\n\r\n",
            default,
            Ok(Some((b"hello", 0))),
        ),
        (
            "space before extension",
            b"5 ;x\r\nhello\r\n0\r\n\r\n",
            default,
            Ok(Some((b"hello", 0))),
        ),
        (
            "leading zeros",
            b"0005\r\nhello\r\n000\r\n\r\n",
            default,
            Ok(Some((b"hello", 0))),
        ),
        (
            "trailer discarded",
            b"1\r\nx\r\n0\r\nX-Sum: 1\r\nX-B:\r\n\r\n",
            default,
            Ok(Some((b"x", 0))),
        ),
        (
            "next request left over",
            b"1\r\nx\r\n0\r\n\r\nGET / HTTP/1.1",
            default,
            Ok(Some((b"x", 14))),
        ),
        (
            "size line at the limit",
            b"00000005\r\nhello\r\n0\r\n\r\n",
            small,
            Ok(Some((b"hello", 0))),
        ),
        (
            "no size digits",
            b"\r\nhello\r\n0\r\n\r\n",
            default,
            Err(ChunkedError::InvalidSize),
        ),
        (
            "negative size",
            b"-5\r\nhello\r\n0\r\n\r\n",
            default,
            Err(ChunkedError::InvalidSize),
        ),
        (
            "0x prefix",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            default,
            Err(ChunkedError::InvalidSize),
        ),
        (
            "leading space",
            b" 5\r\nhello\r\n0\r\n\r\n",
            default,
            Err(ChunkedError::InvalidSize),
        ),
        (
            "junk after size",
            b"5 x\r\nhello\r\n0\r\n\r\n",
            default,
            Err(ChunkedError::InvalidSize),
        ),
        (
            "control byte in extension",
            b"5;\x01\r\nhello\r\n0\r\n\r\n",
            default,
            Err(ChunkedError::InvalidSize),
        ),
        (
            "size overflow",
            b"10000000000000000\r\n",
            default,
            Err(ChunkedError::SizeOverflow),
        ),
        (
            "size line too long",
            b"000000005\r\nhello\r\n0\r\n\r\n",
            small,
            Err(ChunkedError::SizeLineTooLong { max: 8 }),
        ),
        (
            "endless size line",
            b"0000000000000",
            small,
            Err(ChunkedError::SizeLineTooLong { max: 8 }),
        ),
        (
            "bare LF after size",
            b"5\nhello\r\n0\r\n\r\n",
            default,
            Err(ChunkedError::BareLineFeed),
        ),
        (
            "data longer than size",
            b"3\r\nhello\r\n0\r\n\r\n",
            default,
            Err(ChunkedError::MissingCrlf),
        ),
        (
            "bare LF after data",
            b"5\r\nhello\n0\r\n\r\n",
            default,
            Err(ChunkedError::MissingCrlf),
        ),
        (
            "trailer without colon",
            b"0\r\nbad\r\n\r\n",
            default,
            Err(ChunkedError::InvalidTrailer),
        ),
        (
            "trailer with space in name",
            b"0\r\nX Y: 1\r\n\r\n",
            default,
            Err(ChunkedError::InvalidTrailer),
        ),
        (
            "trailer with bare CR",
            b"0\r\nX: a\rb\r\n\r\n",
            default,
            Err(ChunkedError::InvalidTrailer),
        ),
        (
            "trailer too large",
            b"0\r\nX-Long: 0123456789\r\n\r\n",
            small,
            Err(ChunkedError::TrailerTooLarge { max: 16 }),
        ),
        ("truncated body", b"5\r\nhel", default, Ok(None)),
        ("missing last chunk", b"5\r\nhello\r\n", default, Ok(None)),
    ];
    for (name, input, limits, want) in cases {
        let want = want.map(|done| done.map(|(body, rest)| (body.to_vec(), rest)));
        for step in [0, 1, 2, 3, 7] {
            assert_eq!(run(input, step, *limits), want, "{name} (step {step})");
        }
    }
}

#[test]
fn consumed_counts_framing_bytes() {
    let mut decoder = ChunkedDecoder::default();
    let input = b"5\r\nhello\r\n0\r\n\r\nrest";
    assert_eq!(decoder.decode(input), Ok((8, Chunk::Data(b"hello"))));
    assert_eq!(decoder.decode(&input[8..]), Ok((7, Chunk::End)));
    assert_eq!(decoder.decode(b"more"), Ok((0, Chunk::End)));
}

#[test]
fn data_is_returned_as_it_arrives() {
    let mut decoder = ChunkedDecoder::default();
    assert_eq!(decoder.decode(b"a\r\nhel"), Ok((6, Chunk::Data(b"hel"))));
    assert_eq!(decoder.decode(b""), Ok((0, Chunk::Incomplete)));
    assert_eq!(decoder.decode(b"lo worl"), Ok((7, Chunk::Data(b"lo worl"))));
    assert_eq!(decoder.decode(b"\r"), Ok((0, Chunk::Incomplete)));
    assert_eq!(decoder.decode(b"\r\n0\r"), Ok((2, Chunk::Incomplete)));
    assert_eq!(decoder.decode(b"0\r\n\r\n"), Ok((5, Chunk::End)));
}
