//! The HTTP request-head reader, the framing helpers, the CGI vars
//! builders and the chunked decoder on arbitrary bytes. Invariants: no
//! panic; a complete head is found at the same place in its own prefix and
//! not before; the vars of any head encode into a uwsgi packet that
//! `check` accepts (when small enough); a chunked body decodes to the same
//! bytes and outcome whether fed whole or in random pieces.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ruwsgi::protocol::http::{
    body_framing, check_head, decode_path_info, expects_continue, host_key, http_socket_vars,
    keep_alive, router_vars, Chunk, ChunkedDecoder, ChunkedError, ChunkedLimits, HeadLimits,
    HeadStatus, HttpSocketEnv, RequestHead, RouterEnv,
};
use ruwsgi::protocol::uwsgi::{self, Limits, Status};

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Body bytes and how many input bytes were left after the end.
    End(Vec<u8>, usize),
    Incomplete(Vec<u8>),
    Failed(ChunkedError),
}

/// Feeds `input` in pieces whose sizes come from `seed` (whole at once
/// when `seed` is 0), keeping unconsumed bytes as a caller would.
fn decode_chunked(input: &[u8], mut seed: u64, limits: ChunkedLimits) -> Outcome {
    let mut decoder = ChunkedDecoder::new(limits);
    let mut pending = Vec::new();
    let mut body = Vec::new();
    let mut fed = 0;
    loop {
        let (consumed, chunk) = match decoder.decode(&pending) {
            Ok(step) => step,
            Err(err) => return Outcome::Failed(err),
        };
        assert!(consumed <= pending.len());
        match chunk {
            Chunk::Data(data) => {
                assert!(!data.is_empty());
                body.extend_from_slice(data);
            }
            Chunk::End => return Outcome::End(body, pending.len() - consumed + input.len() - fed),
            Chunk::Incomplete if fed == input.len() => return Outcome::Incomplete(body),
            Chunk::Incomplete => {
                let step = if seed == 0 {
                    input.len()
                } else {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    1 + (seed >> 58) as usize
                };
                let end = (fed + step).min(input.len());
                pending.drain(..consumed);
                pending.extend_from_slice(&input[fed..end]);
                fed = end;
                continue;
            }
        }
        pending.drain(..consumed);
    }
}

fn check_vars_encode(vars: &[(Vec<u8>, Vec<u8>)]) {
    let pairs = vars.iter().map(|(k, v)| (k, v));
    if let Ok(packet) = uwsgi::encode(0, 0, pairs) {
        let limits = Limits {
            buffer_size: 65535,
            max_vars: 32768,
        };
        assert!(matches!(
            uwsgi::check(&packet, &limits),
            Ok(Status::Complete { .. })
        ));
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = HeadLimits {
        max_head_len: 8192,
        max_headers: 32,
    };
    let chunked_limits = ChunkedLimits {
        max_size_line: 64,
        max_trailer_len: 256,
    };
    let seed = data
        .iter()
        .take(8)
        .fold(0u64, |s, &b| s << 8 | u64::from(b));

    match check_head(data, &limits) {
        Ok(HeadStatus::Complete { head_len }) => {
            assert!(head_len <= data.len() && head_len <= limits.max_head_len);
            assert_eq!(
                check_head(&data[..head_len], &limits),
                Ok(HeadStatus::Complete { head_len })
            );
            assert_eq!(
                check_head(&data[..head_len - 1], &limits),
                Ok(HeadStatus::Incomplete)
            );

            let head = RequestHead::parse(&data[..head_len]);
            assert_eq!(head.head_len, head_len);
            let _ = body_framing(&head);
            let _ = keep_alive(&head);
            let _ = expects_continue(&head);
            let _ = host_key(&head);

            let extra = vec![(b"MY_VAR".to_vec(), b"hello".to_vec())];
            let router_env = RouterEnv {
                server_name: b"host",
                server_port: b"8080",
                remote_addr: b"127.0.0.1",
                remote_port: b"50000",
                https: data.len().is_multiple_of(2),
                server_name_as_http_host: data.len().is_multiple_of(3),
                extra: &extra,
            };
            check_vars_encode(&router_vars(&head, &router_env));
            let socket_env = HttpSocketEnv {
                server_name: b"host",
                server_port: Some(b"9090"),
                remote_addr: b"127.0.0.1",
                script_name: true,
                ..HttpSocketEnv::default()
            };
            check_vars_encode(&http_socket_vars(&head, &socket_env));

            let body = &data[head_len..];
            let whole = decode_chunked(body, 0, chunked_limits);
            assert_eq!(decode_chunked(body, seed | 1, chunked_limits), whole);
        }
        Ok(HeadStatus::Incomplete) => assert!(data.len() < limits.max_head_len),
        Err(err) => assert!(matches!(err.status(), 400 | 431)),
    }

    // The decoders on the raw input too, whatever the head did.
    let path = decode_path_info(data);
    assert!(path.len() <= data.len() + 1);
    let whole = decode_chunked(data, 0, chunked_limits);
    assert_eq!(decode_chunked(data, seed | 1, chunked_limits), whole);
});
