//! The uwsgi packet codec on arbitrary bytes. Invariants: no panic; what
//! `check` accepts parses into vars that re-encode to the same bytes and
//! pass `check` again; `Incomplete` asks for exactly the missing bytes;
//! parsing unchecked bytes never panics either. The emperor's config-push
//! framing (a uwsgi header too) rides along.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ruwsgi::protocol::emperor::{check_config_push, encode_config_push, ConfigPush};
use ruwsgi::protocol::uwsgi::{
    check, check_vars, encode, Header, Limits, Packet, Status, HEADER_LEN,
};

fuzz_target!(|data: &[u8]| {
    let limit_sets = [
        Limits::default(),
        Limits {
            buffer_size: 65535,
            max_vars: 32768,
        },
        Limits {
            buffer_size: 16,
            max_vars: 1,
        },
    ];
    for limits in limit_sets {
        match check(data, &limits) {
            Ok(Status::Complete {
                header_len,
                vars_len,
            }) => {
                let packet = Packet::parse(data);
                assert_eq!(header_len, HEADER_LEN);
                assert_eq!(packet.len(), header_len + vars_len);
                assert_eq!(packet.block.len(), vars_len);
                let vars: Vec<(&[u8], &[u8])> = packet.vars().collect();
                assert_eq!(Ok(vars.len()), check_vars(packet.block, &limits));
                let header = packet.header;
                let again = encode(header.modifier1, header.modifier2, vars.iter().copied())
                    .expect("checked vars always re-encode");
                assert_eq!(again, &data[..packet.len()]);
                assert_eq!(
                    check(&again, &limits),
                    Ok(Status::Complete {
                        header_len,
                        vars_len
                    })
                );
            }
            Ok(Status::Incomplete { needed }) => {
                assert!(needed > 0);
                if let Some(header) = Header::parse(data) {
                    assert_eq!(
                        data.len() + needed,
                        HEADER_LEN + usize::from(header.datasize)
                    );
                } else {
                    assert_eq!(data.len() + needed, HEADER_LEN);
                }
            }
            Err(err) => {
                assert!(!err.log_line().is_empty());
            }
        }
    }

    // Unchecked input: iteration stops, it never panics.
    let packet = Packet::parse(data);
    let _ = packet.vars().count();
    let _ = packet.vars().get(b"CONTENT_LENGTH");
    if let Some(header) = Header::parse(data) {
        assert_eq!(&header.to_bytes()[..], &data[..HEADER_LEN]);
    }

    if let Ok(ConfigPush::Complete { len }) = check_config_push(data) {
        let config = &data[HEADER_LEN..HEADER_LEN + len];
        let framed = encode_config_push(config).expect("a pushed config re-frames");
        assert_eq!(&framed[HEADER_LEN..], config);
    }
});
