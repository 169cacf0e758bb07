//! Reading a frame that must arrive whole within a time bound (the server
//! cuts off a peer that starts a frame and stalls).

use futures_lite::io::{AsyncRead, AsyncReadExt};
use gonets_engine::runtime::within::within;
use gonets_proto::frame_io::ReadEnd;
use gonets_proto::Frame;
use gonets_proto::{FrameDecoder, FrameError};
use std::time::{Duration, Instant};

/// Most bytes one read of a large frame's rest asks the socket for. A
/// loopback peer can have a whole 4 MiB attachment chunk queued; one `recv`
/// into its whole place copies it in one go (about a millisecond on the
/// shard's core, nothing else running). In slices of this size, with a
/// pause between them while real-time calls come, the copy costs an rt
/// call at most one slice's worth (~60 µs); the syscalls it adds are one per
/// 256 KiB.
pub const READ_SLICE_BYTES_MAX: usize = 256 * 1024;
/// How long a large frame's read pauses after each slice while real-time
/// calls come, µs. What matters is not the time but that the task is not
/// runnable: the executor then polls its rings, finds the rt connections'
/// bytes and runs their tasks before the next slice (a ready read, or
/// `yield_if_needed`, would only let them in once the 1 ms preemption timer
/// fired).
pub const SLICE_PAUSE_US: u64 = 10;

/// Like [`read_frame`], but a frame must arrive whole within
/// `frame_timeout_ms` of the moment its first byte was seen (a peer that
/// starts a frame and stalls is cut off: `FrameError::ReadTimeout`). The
/// wait for the first byte of a frame is not bounded here. A large frame is
/// read in slices ([`READ_SLICE_BYTES_MAX`]), with a pause between them
/// while `rt_calls_recent()` says real-time calls come.
pub async fn read_frame_within<R: AsyncRead + Unpin>(
    reader: &mut R,
    decoder: &mut FrameDecoder,
    chunk: &mut [u8],
    frame_timeout_ms: u64,
    rt_calls_recent: impl Fn() -> bool,
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
            Some(place) => {
                let slice_bytes = place.len().min(READ_SLICE_BYTES_MAX);
                &mut place[..slice_bytes]
            }
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
            assert!(n <= READ_SLICE_BYTES_MAX, "read past the slice asked for");
            decoder.direct_filled(n);
            // A read that was ready at once never yielded: let rt work that
            // came meanwhile run before the next slice is copied.
            between_slices(&rt_calls_recent).await;
        } else {
            decoder.extend(&chunk[..n]);
        }
    }
}

/// Between two slices of a large frame, read or sent: while real-time
/// calls come, a [`SLICE_PAUSE_US`] sleep, so the task is not runnable and
/// the executor polls its rings and runs the rt connections' tasks first
/// (a read or send that is ready at once never yields); else only a yield
/// when the task's time is up.
pub(crate) async fn between_slices(rt_calls_recent: &impl Fn() -> bool) {
    if rt_calls_recent() {
        glommio::timer::sleep(Duration::from_micros(SLICE_PAUSE_US)).await;
    } else {
        glommio::yield_if_needed().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::io::Cursor;
    use gonets_proto::{encode_frame, Limits, Opcode};
    use std::cell::Cell;
    use std::pin::Pin;
    use std::rc::Rc;
    use std::task::{Context, Poll};

    const BODY_BYTES: usize = 4 << 20;

    /// A socket with a whole frame queued: every read is ready at once;
    /// the largest read asked for and the reads done are recorded.
    struct Queued {
        bytes: Cursor<Vec<u8>>,
        read_bytes_max: usize,
        reads: Rc<Cell<usize>>,
    }

    impl AsyncRead for Queued {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<std::io::Result<usize>> {
            self.read_bytes_max = self.read_bytes_max.max(buf.len());
            self.reads.set(self.reads.get() + 1);
            Pin::new(&mut self.bytes).poll_read(cx, buf)
        }
    }

    /// Reads one queued 4 MiB frame with `rt_calls_recent`, beside a task
    /// that wakes from a 1 µs timer; the largest read asked for, and the
    /// reads done when that task ran.
    fn read_4_mib_frame(rt_calls_recent: bool) -> (usize, usize) {
        let body = vec![7u8; BODY_BYTES];
        let mut wire = Vec::new();
        encode_frame(&mut wire, Opcode::SendRequest, 9, b"{}", &[&body]);
        let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .make()
            .unwrap();
        ex.run(async move {
            let reads = Rc::new(Cell::new(0));
            let seen = reads.clone();
            let rt_task = glommio::spawn_local(async move {
                glommio::timer::sleep(Duration::from_micros(1)).await;
                seen.get()
            });
            let mut socket = Queued {
                bytes: Cursor::new(wire),
                read_bytes_max: 0,
                reads,
            };
            let limits = Limits {
                header_bytes_max: 1024,
                body_bytes_max: 8 << 20,
            };
            let mut decoder = FrameDecoder::new(limits);
            let mut chunk = vec![0u8; 64 * 1024];
            let frame = read_frame_within(&mut socket, &mut decoder, &mut chunk, 60_000, || {
                rt_calls_recent
            })
            .await
            .unwrap()
            .expect("a whole frame");
            assert_eq!(frame.header.correlation_id, 9);
            assert_eq!(frame.body.len(), BODY_BYTES);
            assert!(frame.body.iter().all(|&b| b == 7));
            (socket.read_bytes_max, rt_task.await)
        })
    }

    #[test]
    fn given_a_queued_4_mib_frame_when_read_then_no_read_asks_past_a_slice() {
        for rt_calls_recent in [false, true] {
            let (read_bytes_max, _) = read_4_mib_frame(rt_calls_recent);
            assert!(read_bytes_max <= READ_SLICE_BYTES_MAX);
            assert!(read_bytes_max > 64 * 1024, "the frame was read direct");
        }
    }

    #[test]
    fn given_rt_calls_recent_when_a_large_frame_is_read_then_a_waiting_task_runs_between_slices() {
        let slices = BODY_BYTES / READ_SLICE_BYTES_MAX;
        let (_, reads_when_rt_task_ran) = read_4_mib_frame(true);
        assert!(
            reads_when_rt_task_ran < slices,
            "the waiting task ran only after {reads_when_rt_task_ran} reads of {slices} slices"
        );
    }
}
