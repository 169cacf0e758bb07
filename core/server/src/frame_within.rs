//! Reading a frame that must arrive whole within a time bound (the server
//! cuts off a peer that starts a frame and stalls).

use futures_lite::io::{AsyncRead, AsyncReadExt};
use gonets_engine::runtime::within::within;
use gonets_proto::frame_io::ReadEnd;
use gonets_proto::Frame;
use gonets_proto::{FrameDecoder, FrameError};
use std::time::Instant;

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
        let direct = decoder.direct_buffer();
        let is_direct = direct.is_some();
        let target: &mut [u8] = match direct {
            Some(place) => place,
            None => &mut *chunk,
        };
        let read = match started {
            None => reader.read(target).await,
            Some(t0) => {
                let spent_ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
                let left_ms = frame_timeout_ms.saturating_sub(spent_ms);
                match within(left_ms.max(1), reader.read(target)).await {
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
        if is_direct {
            decoder.direct_filled(n);
        } else {
            decoder.extend(&chunk[..n]);
        }
    }
}
