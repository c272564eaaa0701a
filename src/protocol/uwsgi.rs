//! The uwsgi wire protocol: the 4-byte packet header and the vars block.
//!
//! Owns the byte layout (spec `routing-and-protocol.md` §1): header
//! `modifier1 | u16le datasize | modifier2`, then `datasize` bytes of
//! `u16le key_len | key | u16le val_len | val` entries. Decoding is sans-io
//! and in two phases, as in mini-redis: [`check`] looks at whatever bytes
//! have arrived and answers [`Status::Incomplete`] (normal control flow),
//! [`Status::Complete`] or a [`PacketError`] carrying what uWSGI would log;
//! [`Packet::parse`] then walks checked bytes and cannot fail. Encoding is
//! [`VarsWriter`].
//!
//! Not owned here: reading sockets, timeouts, the request body (its length
//! comes from the `CONTENT_LENGTH` var, see [`content_length`]), choosing a
//! plugin from `modifier1` (the caller does it with [`Modifier1`] and logs
//! [`unavailable_modifier_log`] when none fits), the response (a raw HTTP
//! response with no uwsgi header).

/// Persistent connections between ruwsgi's own router and workers, an
/// extension that uWSGI peers never see.
///
/// The uwsgi protocol ends each response by closing the connection. When
/// ruwsgi's router opens a UNIX connection to a backend it attaches one
/// descriptor (`SCM_RIGHTS`) to the first bytes it sends. A uWSGI worker
/// reads with `read(2)`, so the kernel drops the descriptor and nothing
/// changes. A ruwsgi worker sees it and may then keep the connection open
/// after a response whose end the router can find on its own
/// (`Content-Length`, or no body). It says so by adding this header to
/// that response head; the router removes it before the client sees it.
/// A response without it ends with a close, as before.
///
/// On a kept connection the router sends one request at a time, and only
/// requests without a body. If the worker closed the idle connection in
/// the meantime, the router's write fails (`EPIPE`), or its read does
/// (`ECONNRESET`: the request was never read); either way it resends the
/// request on a new connection.
pub const KEEP_HEADER: &[u8] = b"X-Ruwsgi-Keep";

/// Size of the packet header.
pub const HEADER_LEN: usize = 4;

/// Largest vars block the 16-bit `datasize` can announce.
pub const MAX_VARS_LEN: usize = u16::MAX as usize;

/// uWSGI's default `buffer-size`: the largest vars block a server accepts.
pub const DEFAULT_BUFFER_SIZE: usize = 4096;

/// uWSGI's default `max-vars`. The server keeps `4 * max-vars` iovec slots,
/// two per variable, so it accepts up to `2 * max-vars` variables.
pub const DEFAULT_MAX_VARS: usize = 64;

/// Log line of the Python plugin for a packet with an empty vars block.
pub const EMPTY_PYTHON_REQUEST_LOG: &str = "Empty python request. skip.";

/// The `modifier1` values that mean something to ruwsgi or to its peers
/// (spec §1.7). Any byte is valid on the wire; [`Header`] keeps the raw
/// value and [`Modifier1::from_byte`] names it when it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Modifier1 {
    /// Python WSGI (the `python3` plugin); what the HTTP router sends.
    Wsgi = 0,
    /// Perl PSGI.
    Psgi = 5,
    /// Lua WSAPI.
    Lua = 6,
    /// Ruby Rack.
    Rack = 7,
    /// JVM (JWSGI, Ring).
    Jvm = 8,
    /// The CGI plugin.
    Cgi = 9,
    /// PHP.
    Php = 14,
    /// Spooler request.
    Spooler = 17,
    /// `H` of `HTTP/...`: a raw HTTP response read as if it were a packet.
    RawHttpResponse = 72,
    /// Emperor → vassal configuration push (`emperor://`).
    EmperorConfig = 115,
    /// Ping.
    Ping = 100,
    /// uwsgi signal.
    Signal = 110,
    /// Cache operations.
    Cache = 111,
    /// Told to the HTTP router: reset to 0 and forward the body raw.
    RouterRawBody = 123,
    /// RPC.
    Rpc = 173,
    /// Subscription packet (UDP to subscription servers).
    Subscription = 224,
}

impl Modifier1 {
    const ALL: [Modifier1; 16] = [
        Self::Wsgi,
        Self::Psgi,
        Self::Lua,
        Self::Rack,
        Self::Jvm,
        Self::Cgi,
        Self::Php,
        Self::Spooler,
        Self::RawHttpResponse,
        Self::EmperorConfig,
        Self::Ping,
        Self::Signal,
        Self::Cache,
        Self::RouterRawBody,
        Self::Rpc,
        Self::Subscription,
    ];

    /// The named value for `byte`, if it has one.
    pub fn from_byte(byte: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.to_byte() == byte)
    }

    /// The wire value.
    pub fn to_byte(self) -> u8 {
        self as u8
    }
}

/// uWSGI's log line when no plugin serves `modifier1`.
pub fn unavailable_modifier_log(modifier1: u8) -> String {
    format!("-- unavailable modifier requested: {modifier1} --")
}

/// The 4-byte packet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    pub modifier1: u8,
    /// Size of the vars block (header and body excluded).
    pub datasize: u16,
    pub modifier2: u8,
}

impl Header {
    /// Reads a header from the first 4 bytes of `buf`; `None` when fewer
    /// have arrived.
    pub fn parse(buf: &[u8]) -> Option<Header> {
        match buf {
            [m1, lo, hi, m2, ..] => Some(Header {
                modifier1: *m1,
                datasize: u16::from_le_bytes([*lo, *hi]),
                modifier2: *m2,
            }),
            _ => None,
        }
    }

    /// The wire bytes.
    pub fn to_bytes(self) -> [u8; HEADER_LEN] {
        let [lo, hi] = self.datasize.to_le_bytes();
        [self.modifier1, lo, hi, self.modifier2]
    }
}

/// Server-side limits (`buffer-size`, `max-vars`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted vars block.
    pub buffer_size: usize,
    /// uWSGI's `max-vars`; the variable cap is twice this.
    pub max_vars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            buffer_size: DEFAULT_BUFFER_SIZE,
            max_vars: DEFAULT_MAX_VARS,
        }
    }
}

impl Limits {
    /// How many variables a packet may carry.
    pub fn max_var_count(&self) -> usize {
        self.max_vars.saturating_mul(2)
    }
}

/// Outcome of [`check`] when the bytes are not (yet) wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// A whole packet is there: `header_len + vars_len` bytes; anything
    /// after them is the start of the body.
    Complete { header_len: usize, vars_len: usize },
    /// At least `needed` more bytes are required.
    Incomplete { needed: usize },
}

/// Why a packet is refused. uWSGI closes the connection without writing
/// anything in every case; [`PacketError::log_line`] is what it logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("vars block of {size} bytes exceeds buffer-size {max}")]
    BlockTooLarge { size: u16, max: usize },
    #[error("zero-length key at offset {offset} of the vars block")]
    NullKey { offset: usize },
    /// A length runs past the end of the block. `strsize` is the last
    /// length read, as uWSGI reports it.
    #[error("truncated var at offset {offset} of the vars block (last length {strsize})")]
    Truncated { offset: usize, strsize: u16 },
    #[error("more than {max} vars")]
    TooManyVars { max: usize },
}

impl PacketError {
    /// The line uWSGI 2.0.21 logs for this error (without newline).
    pub fn log_line(&self) -> String {
        match self {
            PacketError::BlockTooLarge { size, max } => {
                format!("invalid request block size: {size} (max {max})...skip")
            }
            PacketError::NullKey { .. } => "uwsgi key cannot be null. skip this var.".to_owned(),
            PacketError::Truncated { strsize, .. } => {
                format!("invalid uwsgi request (current strsize: {strsize}). skip.")
            }
            PacketError::TooManyVars { .. } => "max vec size reached. skip this var.".to_owned(),
        }
    }
}

/// Phase one: is there a whole, valid packet at the start of `buf`?
///
/// An oversized `datasize` is refused as soon as the header is in, before
/// the block arrives, as uWSGI does.
pub fn check(buf: &[u8], limits: &Limits) -> Result<Status, PacketError> {
    let Some(header) = Header::parse(buf) else {
        return Ok(Status::Incomplete {
            needed: HEADER_LEN - buf.len(),
        });
    };
    let vars_len = usize::from(header.datasize);
    if vars_len > limits.buffer_size {
        return Err(PacketError::BlockTooLarge {
            size: header.datasize,
            max: limits.buffer_size,
        });
    }
    let total = HEADER_LEN + vars_len;
    if buf.len() < total {
        return Ok(Status::Incomplete {
            needed: total - buf.len(),
        });
    }
    check_vars(&buf[HEADER_LEN..total], limits)?;
    Ok(Status::Complete {
        header_len: HEADER_LEN,
        vars_len,
    })
}

/// Validates a bare vars block and returns its number of variables.
///
/// Errors come in uWSGI's scan order: the first bad entry wins.
pub fn check_vars(block: &[u8], limits: &Limits) -> Result<usize, PacketError> {
    let mut pos = 0;
    let mut count = 0;
    let mut strsize = 0u16;
    while pos < block.len() {
        let offset = pos;
        let truncated = |strsize| PacketError::Truncated { offset, strsize };
        // uWSGI wants the key length plus at least one more byte.
        if block.len() - pos <= 2 {
            return Err(truncated(strsize));
        }
        strsize = read_u16(block, pos);
        if strsize == 0 {
            return Err(PacketError::NullKey { offset });
        }
        pos += 2;
        // The key must leave room for the value length (see `Vars`).
        if pos + usize::from(strsize) >= block.len() {
            return Err(truncated(strsize));
        }
        pos += usize::from(strsize);
        if block.len() - pos < 2 {
            return Err(truncated(strsize));
        }
        strsize = read_u16(block, pos);
        pos += 2;
        if block.len() - pos < usize::from(strsize) {
            return Err(truncated(strsize));
        }
        pos += usize::from(strsize);
        if count >= limits.max_var_count() {
            return Err(PacketError::TooManyVars {
                max: limits.max_var_count(),
            });
        }
        count += 1;
    }
    Ok(count)
}

fn read_u16(buf: &[u8], pos: usize) -> u16 {
    u16::from_le_bytes([buf[pos], buf[pos + 1]])
}

/// A packet borrowed from the receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    pub header: Header,
    /// The vars block (exactly `header.datasize` bytes on checked input).
    pub block: &'a [u8],
}

impl<'a> Packet<'a> {
    /// Phase two: reads the packet [`check`] accepted. On unchecked input
    /// it never panics; the block is cut to what is there and iteration
    /// stops at the first malformed entry.
    pub fn parse(buf: &'a [u8]) -> Packet<'a> {
        let header = Header::parse(buf).unwrap_or_default();
        let rest = buf.get(HEADER_LEN..).unwrap_or_default();
        let len = usize::from(header.datasize).min(rest.len());
        Packet {
            header,
            block: &rest[..len],
        }
    }

    /// Header plus vars block: where the body starts in the buffer.
    pub fn len(&self) -> usize {
        HEADER_LEN + self.block.len()
    }

    /// Always false: a packet has at least its header.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The variables in wire order, duplicates included.
    pub fn vars(&self) -> Vars<'a> {
        Vars::new(self.block)
    }
}

/// Iterator over the `(key, value)` entries of a vars block.
#[derive(Debug, Clone)]
pub struct Vars<'a> {
    block: &'a [u8],
    pos: usize,
}

impl<'a> Vars<'a> {
    pub fn new(block: &'a [u8]) -> Vars<'a> {
        Vars { block, pos: 0 }
    }

    /// The effective value of `key`: its last occurrence, as every uWSGI
    /// consumer reads it (`uwsgi_get_var` scans from the end).
    pub fn get(&self, key: &[u8]) -> Option<&'a [u8]> {
        Vars::new(self.block)
            .filter(|(k, _)| *k == key)
            .last()
            .map(|(_, v)| v)
    }

    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let bytes = self.block.get(self.pos..self.pos.checked_add(len)?)?;
        self.pos += len;
        Some(bytes)
    }

    fn take_u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])))
    }

    fn entry(&mut self) -> Option<(&'a [u8], &'a [u8])> {
        let key_len = self.take_u16().filter(|&n| n > 0)?;
        let key = self.take(key_len)?;
        let value_len = self.take_u16()?;
        Some((key, self.take(value_len)?))
    }
}

impl<'a> Iterator for Vars<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.entry();
        if item.is_none() {
            // Fused: a malformed tail ends the iteration for good.
            self.pos = self.block.len();
        }
        item
    }
}

/// The body length a `CONTENT_LENGTH` value announces, read as uWSGI does:
/// leading decimal digits, stopping at the first other byte (so `""` and
/// `"abc"` are 0). Saturates instead of wrapping.
pub fn content_length(value: &[u8]) -> u64 {
    value
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0u64, |n, b| {
            n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
        })
}

/// Why a packet cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("uwsgi var key is empty")]
    EmptyKey,
    #[error("uwsgi var of {len} bytes does not fit a 16-bit length")]
    FieldTooLong { len: usize },
    #[error("uwsgi vars block would be {len} bytes (max 65535)")]
    BlockTooLarge { len: usize },
}

/// Builds a packet: reserves the header, appends vars, then writes the
/// header with the final size. Every push is checked, so a failed push
/// leaves the packet unchanged and [`VarsWriter::finish`] cannot fail.
#[derive(Debug, Clone)]
pub struct VarsWriter {
    out: Vec<u8>,
    start: usize,
    modifier1: u8,
    modifier2: u8,
}

impl VarsWriter {
    pub fn new(modifier1: u8, modifier2: u8) -> VarsWriter {
        VarsWriter::append_to(Vec::new(), modifier1, modifier2)
    }

    /// Writes the packet after whatever `out` already holds.
    pub fn append_to(mut out: Vec<u8>, modifier1: u8, modifier2: u8) -> VarsWriter {
        let start = out.len();
        out.extend_from_slice(&[0; HEADER_LEN]);
        VarsWriter {
            out,
            start,
            modifier1,
            modifier2,
        }
    }

    /// Size of the vars block so far.
    pub fn vars_len(&self) -> usize {
        self.out.len() - self.start - HEADER_LEN
    }

    /// Appends one `(key, value)` entry.
    pub fn push(&mut self, key: &[u8], value: &[u8]) -> Result<(), EncodeError> {
        if key.is_empty() {
            return Err(EncodeError::EmptyKey);
        }
        let key_len =
            u16::try_from(key.len()).map_err(|_| EncodeError::FieldTooLong { len: key.len() })?;
        let value_len = u16::try_from(value.len())
            .map_err(|_| EncodeError::FieldTooLong { len: value.len() })?;
        let len = self.vars_len() + 4 + key.len() + value.len();
        if len > MAX_VARS_LEN {
            return Err(EncodeError::BlockTooLarge { len });
        }
        self.out.extend_from_slice(&key_len.to_le_bytes());
        self.out.extend_from_slice(key);
        self.out.extend_from_slice(&value_len.to_le_bytes());
        self.out.extend_from_slice(value);
        Ok(())
    }

    /// Appends every entry of `vars`, stopping at the first error.
    pub fn extend<K, V, I>(&mut self, vars: I) -> Result<(), EncodeError>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
        I: IntoIterator<Item = (K, V)>,
    {
        vars.into_iter()
            .try_for_each(|(k, v)| self.push(k.as_ref(), v.as_ref()))
    }

    /// Writes the header and returns the buffer.
    pub fn finish(mut self) -> Vec<u8> {
        let header = Header {
            modifier1: self.modifier1,
            // `push` keeps the block within u16.
            datasize: u16::try_from(self.vars_len()).unwrap_or(u16::MAX),
            modifier2: self.modifier2,
        };
        self.out[self.start..self.start + HEADER_LEN].copy_from_slice(&header.to_bytes());
        self.out
    }
}

/// Encodes a whole packet from `vars`.
pub fn encode<K, V, I>(modifier1: u8, modifier2: u8, vars: I) -> Result<Vec<u8>, EncodeError>
where
    K: AsRef<[u8]>,
    V: AsRef<[u8]>,
    I: IntoIterator<Item = (K, V)>,
{
    let mut writer = VarsWriter::new(modifier1, modifier2);
    writer.extend(vars)?;
    Ok(writer.finish())
}

#[cfg(test)]
#[path = "uwsgi_tests.rs"]
pub(crate) mod tests;
