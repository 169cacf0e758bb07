//! Reading whole frames from an async byte stream (server and client);
//! runtime-free: any `futures` `AsyncRead` will do.

use crate::frame::{Frame, FrameDecoder, FrameError};
use futures_lite::io::{AsyncRead, AsyncReadExt};

/// Why reading stopped.
#[derive(Debug)]
pub enum ReadEnd {
    /// The bytes are not a valid frame sequence.
    Frame(FrameError),
    /// The socket failed.
    Io(std::io::Error),
}

impl std::fmt::Display for ReadEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadEnd::Frame(e) => write!(f, "{e}"),
            ReadEnd::Io(e) => write!(f, "{e}"),
        }
    }
}

/// The next frame from `reader`, reading through `chunk` (reused);
/// `Ok(None)` at a clean end of stream.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    decoder: &mut FrameDecoder,
    chunk: &mut [u8],
) -> Result<Option<Frame>, ReadEnd> {
    assert!(!chunk.is_empty());
    // Bounded: every round reads at least one byte or returns.
    loop {
        if let Some(f) = decoder.next_frame().map_err(ReadEnd::Frame)? {
            return Ok(Some(f));
        }
        // A large frame's rest is read straight into its place.
        let (n, direct) = match decoder.direct_buffer() {
            Some(place) => (reader.read(place).await, true),
            None => (reader.read(chunk).await, false),
        };
        let n = n.map_err(ReadEnd::Io)?;
        if n == 0 {
            return match decoder.finish() {
                Ok(()) => Ok(None),
                Err(e) => Err(ReadEnd::Frame(e)),
            };
        }
        if direct {
            decoder.direct_filled(n);
        } else {
            decoder.extend(&chunk[..n]);
        }
    }
}
