//! The fixed 24-byte frame header and the incremental frame decoder.
//!
//! A frame is `fixed header | JSON header | body`. The decoder checks the
//! fixed header (magic, version, opcode, lengths against the configured
//! limits) before it allocates anything for the rest.

use crate::opcode::Opcode;
use bytes::{Buf, Bytes, BytesMut};

/// The first two bytes of every frame: "GN".
pub const MAGIC: [u8; 2] = *b"GN";
/// The protocol version this build speaks.
pub const VERSION: u8 = 1;
/// Size of the fixed header, bytes.
pub const FIXED_HEADER_BYTES: usize = 24;
/// Default largest JSON header accepted, bytes.
pub const HEADER_BYTES_MAX_DEFAULT: u32 = 64 * 1024;
/// Default largest body accepted, bytes (the largest payload plus slack).
pub const BODY_BYTES_MAX_DEFAULT: u32 = 16 * 1024 * 1024;

/// The fixed part of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// What the frame is.
    pub opcode: Opcode,
    /// Bit flags (none defined in version 1; must be 0).
    pub flags: u16,
    /// Matches a response (or a push) to its request.
    pub correlation_id: u64,
    /// Length of the JSON header, bytes.
    pub header_bytes: u32,
    /// Length of the body, bytes.
    pub body_bytes: u32,
}

impl FrameHeader {
    /// Writes the fixed header to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(self.opcode.to_u8());
        out.extend_from_slice(&self.flags.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&self.correlation_id.to_le_bytes());
        out.extend_from_slice(&self.header_bytes.to_le_bytes());
        out.extend_from_slice(&self.body_bytes.to_le_bytes());
    }

    /// Fills in the JSON header and body lengths of the fixed header at the
    /// start of `frame` (written by [`FrameHeader::encode`] before the sizes
    /// were known).
    pub fn set_lengths(frame: &mut [u8], header_bytes: usize, body_bytes: usize) {
        assert!(frame.len() >= FIXED_HEADER_BYTES && frame[0..2] == MAGIC);
        let header_bytes = u32::try_from(header_bytes).expect("a JSON header under 4 GiB");
        let body_bytes = u32::try_from(body_bytes).expect("a body under 4 GiB");
        frame[16..20].copy_from_slice(&header_bytes.to_le_bytes());
        frame[20..24].copy_from_slice(&body_bytes.to_le_bytes());
    }

    /// Reads and checks a fixed header.
    pub fn decode(
        b: &[u8; FIXED_HEADER_BYTES],
        limits: &Limits,
    ) -> Result<FrameHeader, FrameError> {
        if b[0..2] != MAGIC {
            return Err(FrameError::BadMagic([b[0], b[1]]));
        }
        if b[2] != VERSION {
            return Err(FrameError::UnsupportedVersion(b[2]));
        }
        let opcode = Opcode::from_u8(b[3]).ok_or(FrameError::UnknownOpcode(b[3]))?;
        let flags = u16::from_le_bytes([b[4], b[5]]);
        if flags != 0 {
            return Err(FrameError::UnknownFlags(flags));
        }
        let reserved = u16::from_le_bytes([b[6], b[7]]);
        if reserved != 0 {
            return Err(FrameError::ReservedNotZero(reserved));
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&b[8..16]);
        let header_bytes = u32::from_le_bytes([b[16], b[17], b[18], b[19]]);
        let body_bytes = u32::from_le_bytes([b[20], b[21], b[22], b[23]]);
        if header_bytes > limits.header_bytes_max {
            return Err(FrameError::HeaderTooLarge {
                header_bytes,
                header_bytes_max: limits.header_bytes_max,
            });
        }
        if body_bytes > limits.body_bytes_max {
            return Err(FrameError::BodyTooLarge {
                body_bytes,
                body_bytes_max: limits.body_bytes_max,
            });
        }
        Ok(FrameHeader {
            opcode,
            flags,
            correlation_id: u64::from_le_bytes(id),
            header_bytes,
            body_bytes,
        })
    }
}

/// The sizes a peer may send, checked before allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest JSON header, bytes.
    pub header_bytes_max: u32,
    /// Largest body, bytes.
    pub body_bytes_max: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_bytes_max: HEADER_BYTES_MAX_DEFAULT,
            body_bytes_max: BODY_BYTES_MAX_DEFAULT,
        }
    }
}

/// A whole frame as read off the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The fixed header.
    pub header: FrameHeader,
    /// The JSON header's bytes (parsed with [`crate::parse_header`]).
    pub json: BytesMut,
    /// The body (a payload, or several back to back), as received.
    pub body: Bytes,
}

/// Why a byte stream is not a valid frame sequence: the connection is closed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The frame does not start with "GN".
    #[error("bad magic {0:02x?}: not a gonets frame")]
    BadMagic([u8; 2]),
    /// A protocol version this build does not speak.
    #[error("unsupported protocol version {0} (this server speaks {VERSION})")]
    UnsupportedVersion(u8),
    /// An opcode no version-1 frame has.
    #[error("unknown opcode 0x{0:02x}")]
    UnknownOpcode(u8),
    /// Flag bits version 1 does not define.
    #[error("unknown flags 0x{0:04x}")]
    UnknownFlags(u16),
    /// The reserved field is not zero.
    #[error("reserved field is 0x{0:04x}, must be 0")]
    ReservedNotZero(u16),
    /// The JSON header is larger than allowed.
    #[error("JSON header of {header_bytes} bytes exceeds the limit of {header_bytes_max}")]
    HeaderTooLarge {
        /// Announced size.
        header_bytes: u32,
        /// Limit.
        header_bytes_max: u32,
    },
    /// The body is larger than allowed.
    #[error("body of {body_bytes} bytes exceeds the limit of {body_bytes_max}")]
    BodyTooLarge {
        /// Announced size.
        body_bytes: u32,
        /// Limit.
        body_bytes_max: u32,
    },
    /// A frame begun was not completed within the frame-read timeout.
    #[error(
        "frame not completed within {timeout_ms} ms of its first byte ({received} of {expected} \
         bytes received)"
    )]
    ReadTimeout {
        /// Bytes of the frame received.
        received: usize,
        /// Bytes the frame announced (24 while the fixed header is incomplete).
        expected: usize,
        /// The timeout, ms.
        timeout_ms: u64,
    },
    /// The stream ended inside a frame.
    #[error("connection closed inside a frame ({received} of {expected} bytes)")]
    Truncated {
        /// Bytes of the frame received.
        received: usize,
        /// Bytes the frame announced.
        expected: usize,
    },
}

/// Cuts frames out of a byte stream, one buffer reused for the whole
/// connection: feed it what the socket gave, take frames while it has one.
#[derive(Debug)]
pub struct FrameDecoder {
    limits: Limits,
    buffer: BytesMut,
    /// The checked fixed header of the frame being received.
    pending: Option<FrameHeader>,
    /// While a large frame is read straight into its place
    /// ([`FrameDecoder::direct_buffer`]): bytes of it received so far (the
    /// buffer then holds exactly the frame's rest, zeroed past these).
    direct_filled: Option<usize>,
}

/// A frame whose rest is at least this large is read straight into its
/// place, not through the caller's chunk: that saves copying every payload
/// byte of a large batch once more.
pub const DIRECT_READ_BYTES_MIN: usize = 32 * 1024;

impl FrameDecoder {
    /// A decoder enforcing `limits`.
    pub fn new(limits: Limits) -> FrameDecoder {
        FrameDecoder {
            limits,
            buffer: BytesMut::with_capacity(64 * 1024),
            pending: None,
            direct_filled: None,
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The buffer to read socket bytes into: appended bytes are taken by
    /// [`FrameDecoder::next_frame`].
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        &mut self.buffer
    }

    /// Appends received bytes.
    pub fn extend(&mut self, bytes: &[u8]) {
        assert!(self.direct_filled.is_none(), "a direct read is under way");
        self.buffer.extend_from_slice(bytes);
    }

    /// Where to read the rest of the frame being received, when that rest
    /// is large ([`DIRECT_READ_BYTES_MIN`]): its place in the buffer; read
    /// into it, then call [`FrameDecoder::direct_filled`]. `None`: read into
    /// a chunk and [`FrameDecoder::extend`].
    pub fn direct_buffer(&mut self) -> Option<&mut [u8]> {
        let h = self.pending?;
        let rest = h.header_bytes as usize + h.body_bytes as usize;
        if self.direct_filled.is_none() {
            if rest.saturating_sub(self.buffer.len()) < DIRECT_READ_BYTES_MIN {
                return None;
            }
            // Zeroed once per frame; checked limits bound `rest`.
            self.direct_filled = Some(self.buffer.len());
            self.buffer.resize(rest, 0);
        }
        let filled = self.direct_filled.expect("set above");
        assert_eq!(self.buffer.len(), rest);
        assert!(filled < rest, "a whole frame is taken by next_frame");
        Some(&mut self.buffer[filled..])
    }

    /// `n` bytes were read into [`FrameDecoder::direct_buffer`].
    pub fn direct_filled(&mut self, n: usize) {
        let filled = self
            .direct_filled
            .as_mut()
            .expect("a direct read is under way");
        *filled += n;
        assert!(*filled <= self.buffer.len(), "read past the frame");
    }

    /// Bytes still needed to finish the frame being received (at least 1
    /// when the buffer holds no whole frame).
    pub fn wanted_bytes(&self) -> usize {
        let total = match &self.pending {
            None => FIXED_HEADER_BYTES,
            Some(h) => h.header_bytes as usize + h.body_bytes as usize,
        };
        total.saturating_sub(self.buffer.len()).max(1)
    }

    /// The next whole frame, `None` if more bytes are needed, or why the
    /// stream is invalid (the decoder is then unusable).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.pending.is_none() {
            if self.buffer.len() < FIXED_HEADER_BYTES {
                return Ok(None);
            }
            let mut fixed = [0u8; FIXED_HEADER_BYTES];
            fixed.copy_from_slice(&self.buffer[..FIXED_HEADER_BYTES]);
            let header = FrameHeader::decode(&fixed, &self.limits)?;
            self.buffer.advance(FIXED_HEADER_BYTES);
            let rest = header.header_bytes as usize + header.body_bytes as usize;
            // Checked limits bound this reservation.
            self.buffer.reserve(rest.saturating_sub(self.buffer.len()));
            self.pending = Some(header);
        }
        let header = self.pending.expect("set above");
        let rest = header.header_bytes as usize + header.body_bytes as usize;
        let received = self.direct_filled.unwrap_or(self.buffer.len());
        if received < rest {
            return Ok(None);
        }
        self.pending = None;
        self.direct_filled = None;
        let json = self.buffer.split_to(header.header_bytes as usize);
        let body = self.buffer.split_to(header.body_bytes as usize).freeze();
        Ok(Some(Frame { header, json, body }))
    }

    /// Of a frame begun and not yet whole: (bytes received, bytes it
    /// announced, or 24 while its fixed header is incomplete). `None`
    /// between frames.
    pub fn partial(&self) -> Option<(usize, usize)> {
        match (
            &self.pending,
            self.direct_filled.unwrap_or(self.buffer.len()),
        ) {
            (None, 0) => None,
            (None, n) => Some((n, FIXED_HEADER_BYTES)),
            (Some(h), n) => Some((
                FIXED_HEADER_BYTES + n,
                FIXED_HEADER_BYTES + h.header_bytes as usize + h.body_bytes as usize,
            )),
        }
    }

    /// Called when the stream ended: an error if a frame was cut short.
    pub fn finish(&self) -> Result<(), FrameError> {
        match self.partial() {
            None => Ok(()),
            Some((received, expected)) => Err(FrameError::Truncated { received, expected }),
        }
    }
}

/// Appends a whole frame (`json` already serialised) to `out`.
pub fn encode_frame(
    out: &mut Vec<u8>,
    opcode: Opcode,
    correlation_id: u64,
    json: &[u8],
    body: &[&[u8]],
) {
    let body_bytes: usize = body.iter().map(|b| b.len()).sum();
    assert!(json.len() <= u32::MAX as usize && body_bytes <= u32::MAX as usize);
    FrameHeader {
        opcode,
        flags: 0,
        correlation_id,
        header_bytes: json.len() as u32,
        body_bytes: body_bytes as u32,
    }
    .encode(out);
    out.extend_from_slice(json);
    for b in body {
        out.extend_from_slice(b);
    }
}
