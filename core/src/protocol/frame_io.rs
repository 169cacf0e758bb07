//! Reading whole frames from an async byte stream (server and client).

use crate::protocol::frame::{Frame, FrameDecoder, FrameError};
use crate::runtime::within::within;
use futures_lite::io::{AsyncRead, AsyncReadExt};
use std::time::Instant;

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
        let n = reader.read(chunk).await.map_err(ReadEnd::Io)?;
        if n == 0 {
            return match decoder.finish() {
                Ok(()) => Ok(None),
                Err(e) => Err(ReadEnd::Frame(e)),
            };
        }
        decoder.extend(&chunk[..n]);
    }
}

/// Like [`read_frame`], but a frame must arrive whole within
/// `frame_timeout_ms` of the moment its first byte was seen (a peer that
/// starts a frame and stalls is cut off: `FrameError::ReadTimeout`). The
/// wait for the first byte of a frame is not bounded here.
pub async fn read_frame_within<R: AsyncRead + Unpin>(
    reader: &mut R,
    decoder: &mut FrameDecoder,
    chunk: &mut [u8],
    frame_timeout_ms: u64,
) -> Result<Option<Frame>, ReadEnd> {
    assert!(!chunk.is_empty() && frame_timeout_ms > 0);
    let mut started: Option<Instant> = None;
    // Bounded: every round reads at least one byte, times out or returns.
    loop {
        if let Some(f) = decoder.next_frame().map_err(ReadEnd::Frame)? {
            return Ok(Some(f));
        }
        if started.is_none() && decoder.partial().is_some() {
            started = Some(Instant::now());
        }
        let read = match started {
            None => reader.read(chunk).await,
            Some(t0) => {
                let spent_ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
                let left_ms = frame_timeout_ms.saturating_sub(spent_ms);
                match within(left_ms.max(1), reader.read(chunk)).await {
                    Some(r) => r,
                    None => {
                        let (received, expected) = decoder.partial().expect("a frame was begun");
                        return Err(ReadEnd::Frame(FrameError::ReadTimeout {
                            received,
                            expected,
                            timeout_ms: frame_timeout_ms,
                        }));
                    }
                }
            }
        };
        let n = read.map_err(ReadEnd::Io)?;
        if n == 0 {
            return match decoder.finish() {
                Ok(()) => Ok(None),
                Err(e) => Err(ReadEnd::Frame(e)),
            };
        }
        decoder.extend(&chunk[..n]);
    }
}
