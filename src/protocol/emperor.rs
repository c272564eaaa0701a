//! Bytes on the emperor ⇄ vassal pipe (spec `emperor-and-master.md` §1.9,
//! §1.10).
//!
//! Each vassal shares one `socketpair` with its emperor (`UWSGI_EMPEROR_FD`)
//! and every message is a single byte, with different meanings in the two
//! directions: [`ToVassal`] and [`FromVassal`]. Unknown bytes are not
//! errors on the wire: both sides ignore them (the vassal still logs
//! [`received_log`]), so decoding returns [`UnknownByte`] for the caller to
//! drop. A second pair (`UWSGI_EMPEROR_FD_CONFIG`) carries pushed
//! configurations framed by a uwsgi header with `modifier1 = 115`
//! ([`encode_config_push`], [`check_config_push`]).
//!
//! Not owned here: the socketpairs, reading one byte per readiness event,
//! and what each side does about a message.

use super::uwsgi::{Header, Modifier1, HEADER_LEN, MAX_VARS_LEN};

/// A byte that names no message in its direction. Ignored by both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown emperor pipe byte {0}")]
pub struct UnknownByte(pub u8);

/// Emperor → vassal commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ToVassal {
    /// Stop now (`kill_them_all`).
    Stop = 0,
    /// Graceful reload: the vassal re-execs itself.
    Reload = 1,
    /// Graceful shutdown (`emperor-graceful-shutdown`).
    GracefulStop = 2,
}

impl ToVassal {
    /// Decodes a byte read by the vassal.
    pub fn from_byte(byte: u8) -> Result<Self, UnknownByte> {
        match byte {
            0 => Ok(Self::Stop),
            1 => Ok(Self::Reload),
            2 => Ok(Self::GracefulStop),
            other => Err(UnknownByte(other)),
        }
    }

    /// The wire byte.
    pub fn to_byte(self) -> u8 {
        self as u8
    }
}

/// Vassal → emperor notifications (sent by the master or by workers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FromVassal {
    /// The master is initialised; sent once, on first start only.
    Spawned = 1,
    /// Push the configuration again (sent at each reload with a config fd).
    ConfigRequest = 2,
    /// Worker 1 accepts requests; sent every time it is (re)spawned.
    Accepting = 5,
    /// A worker served its first request.
    Loyal = 17,
    /// Idle with `die-on-idle`: back to on-demand, or stop.
    StopRequest = 22,
    /// Worker heartbeat (`heartbeat = N`).
    Heartbeat = 26,
    /// Broodlord SOS: spawn a zerg.
    Sos = 30,
}

impl FromVassal {
    /// Decodes a byte read by the emperor.
    pub fn from_byte(byte: u8) -> Result<Self, UnknownByte> {
        match byte {
            1 => Ok(Self::Spawned),
            2 => Ok(Self::ConfigRequest),
            5 => Ok(Self::Accepting),
            17 => Ok(Self::Loyal),
            22 => Ok(Self::StopRequest),
            26 => Ok(Self::Heartbeat),
            30 => Ok(Self::Sos),
            other => Err(UnknownByte(other)),
        }
    }

    /// The wire byte.
    pub fn to_byte(self) -> u8 {
        self as u8
    }
}

/// What a vassal logs for every byte it reads from its emperor, known or
/// not: `received message N from emperor`.
pub fn received_log(byte: u8) -> String {
    format!("received message {byte} from emperor")
}

/// A pushed configuration cannot be framed or read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConfigPushError {
    #[error("configuration of {len} bytes exceeds the 65535-byte push limit")]
    TooLarge { len: usize },
    /// uWSGI: `[uwsgi-vassal] invalid config from ...`.
    #[error("empty configuration push")]
    Empty,
}

/// Outcome of [`check_config_push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigPush {
    /// The configuration text is `buf[HEADER_LEN..HEADER_LEN + len]`.
    Complete {
        len: usize,
    },
    Incomplete {
        needed: usize,
    },
}

/// Frames a configuration for `UWSGI_EMPEROR_FD_CONFIG`.
pub fn encode_config_push(config: &[u8]) -> Result<Vec<u8>, ConfigPushError> {
    let too_large = ConfigPushError::TooLarge { len: config.len() };
    if config.len() > MAX_VARS_LEN {
        return Err(too_large);
    }
    if config.is_empty() {
        return Err(ConfigPushError::Empty);
    }
    let header = Header {
        modifier1: Modifier1::EmperorConfig.to_byte(),
        datasize: u16::try_from(config.len()).map_err(|_| too_large)?,
        modifier2: 0,
    };
    let mut out = Vec::with_capacity(HEADER_LEN + config.len());
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(config);
    Ok(out)
}

/// Vassal side: is a whole pushed configuration there? The modifiers are
/// not checked, as in uWSGI; an empty one is refused.
pub fn check_config_push(buf: &[u8]) -> Result<ConfigPush, ConfigPushError> {
    let Some(header) = Header::parse(buf) else {
        return Ok(ConfigPush::Incomplete {
            needed: HEADER_LEN - buf.len(),
        });
    };
    let len = usize::from(header.datasize);
    if len == 0 {
        return Err(ConfigPushError::Empty);
    }
    match (HEADER_LEN + len).checked_sub(buf.len()) {
        Some(needed) if needed > 0 => Ok(ConfigPush::Incomplete { needed }),
        _ => Ok(ConfigPush::Complete { len }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_vassal_bytes() {
        let cases: &[(&str, u8, Result<ToVassal, UnknownByte>)] = &[
            ("stop", 0, Ok(ToVassal::Stop)),
            ("reload", 1, Ok(ToVassal::Reload)),
            ("graceful stop", 2, Ok(ToVassal::GracefulStop)),
            ("vassal-only byte 5 is unknown here", 5, Err(UnknownByte(5))),
            ("unknown", 255, Err(UnknownByte(255))),
        ];
        for (name, byte, want) in cases {
            assert_eq!(ToVassal::from_byte(*byte), *want, "{name}");
            if let Ok(msg) = want {
                assert_eq!(msg.to_byte(), *byte, "{name}");
            }
        }
    }

    #[test]
    fn from_vassal_bytes() {
        let cases: &[(&str, u8, Result<FromVassal, UnknownByte>)] = &[
            ("spawned", 1, Ok(FromVassal::Spawned)),
            ("config request", 2, Ok(FromVassal::ConfigRequest)),
            ("accepting", 5, Ok(FromVassal::Accepting)),
            ("loyal", 17, Ok(FromVassal::Loyal)),
            ("stop request", 22, Ok(FromVassal::StopRequest)),
            ("heartbeat", 26, Ok(FromVassal::Heartbeat)),
            ("sos", 30, Ok(FromVassal::Sos)),
            (
                "emperor-only byte 0 is unknown here",
                0,
                Err(UnknownByte(0)),
            ),
            ("unknown", 3, Err(UnknownByte(3))),
        ];
        for (name, byte, want) in cases {
            assert_eq!(FromVassal::from_byte(*byte), *want, "{name}");
            if let Ok(msg) = want {
                assert_eq!(msg.to_byte(), *byte, "{name}");
            }
        }
    }

    #[test]
    fn every_byte_decodes_without_panic() {
        for byte in 0..=u8::MAX {
            if let Ok(msg) = ToVassal::from_byte(byte) {
                assert_eq!(msg.to_byte(), byte);
            }
            if let Ok(msg) = FromVassal::from_byte(byte) {
                assert_eq!(msg.to_byte(), byte);
            }
        }
        assert_eq!(received_log(7), "received message 7 from emperor");
    }

    #[test]
    fn config_push_framing() {
        let framed = encode_config_push(b"[uwsgi]\n").unwrap();
        assert_eq!(&framed[..4], &[115, 8, 0, 0]);
        let cases: &[(&str, &[u8], Result<ConfigPush, ConfigPushError>)] = &[
            ("complete", &framed, Ok(ConfigPush::Complete { len: 8 })),
            (
                "header only",
                &framed[..4],
                Ok(ConfigPush::Incomplete { needed: 8 }),
            ),
            (
                "partial header",
                &framed[..1],
                Ok(ConfigPush::Incomplete { needed: 3 }),
            ),
            ("empty config", &[115, 0, 0, 0], Err(ConfigPushError::Empty)),
        ];
        for (name, buf, want) in cases {
            assert_eq!(check_config_push(buf), *want, "{name}");
        }
        assert_eq!(encode_config_push(b""), Err(ConfigPushError::Empty));
        assert_eq!(
            encode_config_push(&vec![b'x'; 65536]),
            Err(ConfigPushError::TooLarge { len: 65536 })
        );
    }
}
