//! Incremental decoder for `Transfer-Encoding: chunked` request bodies.
//!
//! Sans-io: the caller feeds whatever bytes it holds to
//! [`ChunkedDecoder::decode`], drops the `consumed` bytes it reports and
//! acts on the [`Chunk`]: forward `Data`, read more on `Incomplete`, stop
//! on `End` (bytes after that belong to the next request). Size lines and
//! the trailer section are bounded ([`ChunkedLimits`]); trailer fields are
//! validated and discarded. Line ends must be CRLF: a bare LF, a bad size,
//! or a chunk not followed by CRLF is an error (the request is refused
//! with 400 rather than guessed at, to avoid request smuggling).
//!
//! uWSGI itself never decodes chunked requests (the router drops the body,
//! spec `routing-and-protocol.md` §3.4); this exists for ruwsgi's router
//! and `http-socket` workers.

/// Longest size line (hex size plus extensions) accepted.
pub const DEFAULT_MAX_SIZE_LINE: usize = 4096;

/// Largest trailer section accepted, final CRLF included.
pub const DEFAULT_MAX_TRAILER_LEN: usize = 16 * 1024;

/// Bounds on the parts of a chunked body that are not data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkedLimits {
    /// Longest size line, CRLF excluded.
    pub max_size_line: usize,
    /// Largest trailer section, CRLFs included.
    pub max_trailer_len: usize,
}

impl Default for ChunkedLimits {
    fn default() -> Self {
        ChunkedLimits {
            max_size_line: DEFAULT_MAX_SIZE_LINE,
            max_trailer_len: DEFAULT_MAX_TRAILER_LEN,
        }
    }
}

/// What one call to [`ChunkedDecoder::decode`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk<'a> {
    /// Body bytes (part or all of a chunk).
    Data(&'a [u8]),
    /// Feed more bytes.
    Incomplete,
    /// The last chunk and the trailer have been read.
    End,
}

/// A malformed chunked body. Always the client's fault (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkedError {
    #[error("invalid chunk size line")]
    InvalidSize,
    #[error("chunk size overflows 64 bits")]
    SizeOverflow,
    #[error("chunk size line longer than {max} bytes")]
    SizeLineTooLong { max: usize },
    #[error("line feed without carriage return in a chunked body")]
    BareLineFeed,
    #[error("chunk data not followed by CRLF")]
    MissingCrlf,
    #[error("invalid trailer field")]
    InvalidTrailer,
    #[error("trailer section larger than {max} bytes")]
    TrailerTooLarge { max: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    SizeLine,
    Data { remaining: u64 },
    DataEnd,
    Trailer { seen: usize },
    Done,
}

/// Decoder state for one chunked body.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    limits: ChunkedLimits,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder::new(ChunkedLimits::default())
    }
}

impl ChunkedDecoder {
    pub fn new(limits: ChunkedLimits) -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::SizeLine,
            limits,
        }
    }

    /// The whole body, trailer included, has been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from the start of `input`; returns how many bytes of it
    /// were consumed and what they gave. Never returns `Data` of length 0.
    pub fn decode<'a>(&mut self, input: &'a [u8]) -> Result<(usize, Chunk<'a>), ChunkedError> {
        let mut pos = 0;
        loop {
            let rest = &input[pos..];
            match self.state {
                State::SizeLine => {
                    let max = self.limits.max_size_line;
                    let Some(len) = line_len(rest, max)
                        .map_err(|e| e.unwrap_or(ChunkedError::SizeLineTooLong { max }))?
                    else {
                        return Ok((pos, Chunk::Incomplete));
                    };
                    let size = parse_size_line(&rest[..len])?;
                    pos += len + 2;
                    self.state = match size {
                        0 => State::Trailer { seen: 0 },
                        remaining => State::Data { remaining },
                    };
                }
                State::Data { remaining } => {
                    if rest.is_empty() {
                        return Ok((pos, Chunk::Incomplete));
                    }
                    let n = usize::try_from(remaining).map_or(rest.len(), |r| r.min(rest.len()));
                    let left = remaining - n as u64;
                    self.state = match left {
                        0 => State::DataEnd,
                        remaining => State::Data { remaining },
                    };
                    return Ok((pos + n, Chunk::Data(&rest[..n])));
                }
                State::DataEnd => match rest {
                    [b'\r', b'\n', ..] => {
                        pos += 2;
                        self.state = State::SizeLine;
                    }
                    [] | [b'\r'] => return Ok((pos, Chunk::Incomplete)),
                    _ => return Err(ChunkedError::MissingCrlf),
                },
                State::Trailer { seen } => {
                    let max = self.limits.max_trailer_len;
                    let too_large = ChunkedError::TrailerTooLarge { max };
                    let room = max.saturating_sub(seen + 2);
                    let Some(len) = line_len(rest, room).map_err(|e| e.unwrap_or(too_large))?
                    else {
                        return Ok((pos, Chunk::Incomplete));
                    };
                    pos += len + 2;
                    if len == 0 {
                        self.state = State::Done;
                        return Ok((pos, Chunk::End));
                    }
                    check_trailer_field(&rest[..len])?;
                    self.state = State::Trailer {
                        seen: seen + len + 2,
                    };
                }
                State::Done => return Ok((pos, Chunk::End)),
            }
        }
    }
}

/// Length of the CRLF-terminated line at the start of `buf`, CRLF
/// excluded; `Ok(None)` if it has not fully arrived. `Err(None)` means
/// longer than `max` (the caller names the limit), `Err(Some(_))` a bare
/// LF.
fn line_len(buf: &[u8], max: usize) -> Result<Option<usize>, Option<ChunkedError>> {
    let scan = &buf[..buf.len().min(max.saturating_add(2))];
    match scan.iter().position(|&b| b == b'\n') {
        Some(0) => Err(Some(ChunkedError::BareLineFeed)),
        Some(lf) if scan[lf - 1] != b'\r' => Err(Some(ChunkedError::BareLineFeed)),
        Some(lf) if lf - 1 > max => Err(None),
        Some(lf) => Ok(Some(lf - 1)),
        None if buf.len() > max.saturating_add(1) => Err(None),
        None => Ok(None),
    }
}

/// `1*HEXDIG *(SP / HTAB) [ ";" chunk-ext ]`; extensions are ignored but
/// may not hold control bytes other than HTAB.
fn parse_size_line(line: &[u8]) -> Result<u64, ChunkedError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(ChunkedError::InvalidSize);
    }
    let mut size = 0u64;
    for &d in &line[..digits] {
        let value = u64::from((d as char).to_digit(16).unwrap_or(0));
        size = size
            .checked_mul(16)
            .and_then(|s| s.checked_add(value))
            .ok_or(ChunkedError::SizeOverflow)?;
    }
    let rest = &line[digits..];
    let rest = &rest[rest
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count()..];
    match rest.first() {
        None => Ok(size),
        Some(b';') if !rest.iter().any(|&b| is_ctl(b) && b != b'\t') => Ok(size),
        Some(_) => Err(ChunkedError::InvalidSize),
    }
}

/// `name ":" value` with a token name and no control bytes but HTAB.
fn check_trailer_field(line: &[u8]) -> Result<(), ChunkedError> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(ChunkedError::InvalidTrailer)?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty()
        || !name.iter().all(|&b| is_tchar(b))
        || value.iter().any(|&b| is_ctl(b) && b != b'\t')
    {
        return Err(ChunkedError::InvalidTrailer);
    }
    Ok(())
}

fn is_ctl(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
#[path = "chunked_tests.rs"]
mod tests;
