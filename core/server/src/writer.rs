//! A connection's writing side: one task takes the frames queued for the
//! connection and writes each round of them with as few system calls as
//! the transport allows. On plain TCP a round is one gathered `sendmsg`
//! (frames, heads and payloads handed to the kernel where they lie, no
//! copy); under TLS the round is copied into one buffer first, so it makes
//! full TLS records.
//!
//! Why rounds: a shard's step releases many replies at once (a commit's
//! acceptances, a commit's answers, a subscription's pushes); written one
//! `sendmsg` each, a loopback send cost ~22 µs of the hub's CPU apiece at
//! rt 10,000 calls/s (bench/RESULTS.md, 2026-12-04).

use crate::frame_within::between_slices;
use futures_lite::future;
use futures_lite::io::{AsyncWrite, AsyncWriteExt};
use glommio::channels::local_channel::LocalReceiver;
use gonets_engine::runtime::rt_stages::{self, RtOp, Stage};
use std::os::fd::RawFd;
use std::time::Instant;

/// Bytes one round gathers at most before it is written.
const ROUND_BYTES_MAX: usize = 256 * 1024;
/// Frames one round gathers at most.
const ROUND_FRAMES_MAX: usize = 256;
/// Under TLS, a frame at least this large is written on its own, not
/// copied into the round's buffer.
const COPY_BYTES_MAX: usize = 64 * 1024;
/// Most bytes one send of a round hands the kernel. A 4 MiB attachment
/// frame read back by a loopback peer was sent in one `sendmsg`: the kernel
/// copies it and, on loopback, runs the receiver's side too, in the shard's
/// time (a millisecond or more with nothing else running). In slices of
/// this size, with a pause between them while real-time calls come (the
/// mirror of the read side, `frame_within`), an rt call waits at most one
/// slice.
pub(crate) const SEND_SLICE_BYTES_MAX: usize = crate::frame_within::READ_SLICE_BYTES_MAX;

/// What goes to the writer task.
pub(crate) enum Outgoing {
    /// A whole encoded frame.
    Frame(Vec<u8>),
    /// A frame's head (its fixed and JSON headers) and its body's parts,
    /// sent back to back: a fetch's payloads, not copied into the frame.
    Parts(Vec<u8>, Vec<bytes::Bytes>),
    /// Write what is queued, then close the connection.
    Close,
    /// No bytes: once the round that holds it is written, the timed
    /// operation whose reply was queued just before it has its last stages
    /// counted (`rt_stages`).
    Mark(Mark),
}

/// The times of a real-time operation whose reply is queued.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mark {
    pub(crate) op: RtOp,
    /// Its frame read.
    pub(crate) read_at: Instant,
    /// Its reply taken by its operation task.
    pub(crate) replied_at: Instant,
}

impl Outgoing {
    /// Bytes it puts on the wire.
    fn len(&self) -> usize {
        match self {
            Outgoing::Frame(f) => f.len(),
            Outgoing::Parts(head, payloads) => {
                head.len() + payloads.iter().map(|p| p.len()).sum::<usize>()
            }
            Outgoing::Close | Outgoing::Mark(_) => 0,
        }
    }

    /// Its bytes, in order, as slices.
    fn slices<'a>(&'a self, into: &mut Vec<&'a [u8]>) {
        match self {
            Outgoing::Frame(f) => into.push(f),
            Outgoing::Parts(head, payloads) => {
                into.push(head);
                into.extend(payloads.iter().map(|p| &p[..]));
            }
            Outgoing::Close | Outgoing::Mark(_) => {}
        }
    }
}

/// The writing side of a connection: its async writer, and under plain
/// TCP the socket itself for gathered sends ([`crate::vectored`]).
pub(crate) struct Output<W> {
    pub(crate) writer: W,
    pub(crate) fd: Option<RawFd>,
}

/// Writes queued frames a round at a time until the queue closes, a
/// `Close` is written, or the connection fails.
/// A round larger than a slice ([`SEND_SLICE_BYTES_MAX`]) is sent in
/// slices, pausing between them while `rt_calls_recent()` says real-time
/// calls come.
pub(crate) async fn write_loop<W: AsyncWrite + Unpin>(
    mut output: Output<W>,
    outgoing: LocalReceiver<Outgoing>,
    rt_calls_recent: impl Fn() -> bool,
) {
    let mut round: Vec<Outgoing> = Vec::with_capacity(ROUND_FRAMES_MAX);
    // Under TLS only: the round copied into one buffer.
    let mut copied: Vec<u8> = Vec::new();
    while let Some(first) = outgoing.recv().await {
        let close = gather(first, &outgoing, &mut round).await;
        assert!(round.len() <= ROUND_FRAMES_MAX);
        let written = match output.fd {
            Some(fd) => send_gathered(&mut output.writer, fd, &round, &rt_calls_recent).await,
            None => write_copied(&mut output.writer, &round, &mut copied, &rt_calls_recent).await,
        };
        if written.is_err() || output.writer.flush().await.is_err() {
            return;
        }
        note_marks(&round);
        round.clear();
        if close {
            let _ = output.writer.close().await;
            return;
        }
    }
}

/// Counts the last stages of the timed operations whose replies `round`
/// wrote.
fn note_marks(round: &[Outgoing]) {
    for out in round {
        if let Outgoing::Mark(m) = out {
            rt_stages::note(m.op, Stage::Out, m.replied_at);
            rt_stages::note(m.op, Stage::Hub, m.read_at);
        }
    }
}

/// Puts `first` and what else is queued now into `round`, within
/// [`ROUND_BYTES_MAX`] and [`ROUND_FRAMES_MAX`]; true when the connection
/// is to close after the round.
async fn gather(
    first: Outgoing,
    outgoing: &LocalReceiver<Outgoing>,
    round: &mut Vec<Outgoing>,
) -> bool {
    let mut bytes = 0;
    let mut next = first;
    // Bounded by ROUND_FRAMES_MAX.
    loop {
        if matches!(next, Outgoing::Close) {
            return true;
        }
        bytes += next.len();
        round.push(next);
        if bytes >= ROUND_BYTES_MAX || round.len() >= ROUND_FRAMES_MAX {
            return false;
        }
        match future::poll_once(outgoing.recv()).await {
            Some(Some(out)) => next = out,
            Some(None) => return true,
            None => return false,
        }
    }
}

/// Sends the round on a plain socket: gathered `sendmsg`s of every part
/// where it lies, at most [`SEND_SLICE_BYTES_MAX`] a send; what the socket
/// does not take at once goes through `writer`, which waits for room on
/// the reactor. After each slice's worth of bytes, [`between_slices`].
async fn send_gathered<W: AsyncWrite + Unpin>(
    writer: &mut W,
    fd: RawFd,
    round: &[Outgoing],
    rt_calls_recent: &impl Fn() -> bool,
) -> std::io::Result<()> {
    let mut parts: Vec<&[u8]> = Vec::with_capacity(round.len() * 2);
    round.iter().for_each(|out| out.slices(&mut parts));
    let mut at = crate::vectored::Cursor::default();
    at.advance(&parts, 0);
    let mut since_pause_bytes = 0;
    // Bounded: each round sends at least one byte or one whole part.
    while !at.done(&parts) {
        let sent = match crate::vectored::send_now(
            fd,
            &parts[at.index..],
            at.skip,
            SEND_SLICE_BYTES_MAX,
        ) {
            Ok(sent) => sent,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => 0,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let rest = &parts[at.index][at.skip..];
                let slice = &rest[..rest.len().min(SEND_SLICE_BYTES_MAX)];
                writer.write_all(slice).await?;
                slice.len()
            }
            Err(e) => return Err(e),
        };
        assert!(sent <= SEND_SLICE_BYTES_MAX, "sent past the slice");
        at.advance(&parts, sent);
        since_pause_bytes += sent;
        if since_pause_bytes >= SEND_SLICE_BYTES_MAX && !at.done(&parts) {
            between_slices(rt_calls_recent).await;
            since_pause_bytes = 0;
        }
    }
    Ok(())
}

/// Writes `bytes` through `writer` a slice ([`SEND_SLICE_BYTES_MAX`]) at a
/// time, [`between_slices`] after each but the last.
async fn write_sliced<W: AsyncWrite + Unpin>(
    writer: &mut W,
    bytes: &[u8],
    rt_calls_recent: &impl Fn() -> bool,
) -> std::io::Result<()> {
    let mut slices = bytes.chunks(SEND_SLICE_BYTES_MAX).peekable();
    // Bounded by the number of slices.
    while let Some(slice) = slices.next() {
        writer.write_all(slice).await?;
        if slices.peek().is_some() {
            between_slices(rt_calls_recent).await;
        }
    }
    Ok(())
}

/// Writes the round through `writer` (TLS): copied into `copied`, written
/// each time it passes [`ROUND_BYTES_MAX`] and at the end, except a whole
/// frame of [`COPY_BYTES_MAX`] or more, written where it lies.
async fn write_copied<W: AsyncWrite + Unpin>(
    writer: &mut W,
    round: &[Outgoing],
    copied: &mut Vec<u8>,
    rt_calls_recent: &impl Fn() -> bool,
) -> std::io::Result<()> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for out in round {
        match out {
            Outgoing::Frame(f) if f.len() >= COPY_BYTES_MAX => {
                write_buffer(writer, copied).await?;
                write_sliced(writer, f, rt_calls_recent).await?;
            }
            out => {
                parts.clear();
                out.slices(&mut parts);
                parts.iter().for_each(|p| copied.extend_from_slice(p));
                if copied.len() >= ROUND_BYTES_MAX {
                    write_buffer(writer, copied).await?;
                }
            }
        }
    }
    write_buffer(writer, copied).await
}

/// Writes and empties `copied`, if it holds anything.
async fn write_buffer<W: AsyncWrite + Unpin>(
    writer: &mut W,
    copied: &mut Vec<u8>,
) -> std::io::Result<()> {
    if copied.is_empty() {
        return Ok(());
    }
    let written = writer.write_all(copied).await;
    copied.clear();
    // A fetch's frame may have grown it far past a round; give that back.
    if copied.capacity() > 2 * ROUND_BYTES_MAX {
        copied.shrink_to(ROUND_BYTES_MAX);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use glommio::channels::local_channel;
    use std::cell::Cell;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::pin::Pin;
    use std::rc::Rc;
    use std::task::{Context, Poll};

    /// A round as the connection queues it: frames, a frame in parts, a
    /// frame over the copy bound, then `Close`, and one frame after it.
    fn queued() -> (Vec<Outgoing>, Vec<u8>) {
        let big = vec![b'B'; COPY_BYTES_MAX + 10];
        let queue = vec![
            Outgoing::Frame(b"one|".to_vec()),
            Outgoing::Parts(
                b"head|".to_vec(),
                vec![
                    bytes::Bytes::from_static(b"p1|"),
                    bytes::Bytes::from_static(b"p2|"),
                ],
            ),
            Outgoing::Frame(big.clone()),
            Outgoing::Frame(b"two|".to_vec()),
            Outgoing::Close,
            Outgoing::Frame(b"after close".to_vec()),
        ];
        let mut want = b"one|head|p1|p2|".to_vec();
        want.extend_from_slice(&big);
        want.extend_from_slice(b"two|");
        (queue, want)
    }

    /// Runs `write_loop` over `queue` on a glommio executor; the writer back.
    fn run(queue: Vec<Outgoing>, fd: Option<RawFd>) -> Vec<u8> {
        let ex = glommio::LocalExecutor::default();
        ex.run(async move {
            let (tx, rx) = local_channel::new_bounded(queue.len());
            for out in queue {
                assert!(tx.try_send(out).is_ok(), "room for the whole queue");
            }
            let mut sink = futures_lite::io::Cursor::new(Vec::new());
            let output = Output {
                writer: &mut sink,
                fd,
            };
            write_loop(output, rx, || false).await;
            sink.into_inner()
        })
    }

    #[test]
    fn given_queued_frames_when_written_under_tls_then_bytes_arrive_in_order_until_close() {
        let (queue, want) = queued();
        let got = run(queue, None);
        assert_eq!(got.len(), want.len());
        assert!(got == want, "order kept, nothing after Close");
    }

    #[test]
    fn given_queued_frames_when_sent_gathered_then_peer_reads_them_in_order_until_close() {
        let (queue, want) = queued();
        let (mut peer, ours) = std::os::unix::net::UnixStream::pair().unwrap();
        // The reader drains as the writer sends, so the socket takes every
        // byte without waiting and nothing goes through the fallback writer.
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            peer.read_to_end(&mut got).unwrap();
            got
        });
        let fallback = run(queue, Some(ours.as_raw_fd()));
        drop(ours);
        assert!(fallback.is_empty(), "the socket took every byte at once");
        let got = reader.join().unwrap();
        assert_eq!(got.len(), want.len());
        assert!(got == want, "order kept, nothing after Close");
    }

    #[test]
    fn given_more_queued_than_a_round_holds_when_gathered_then_the_round_stops_at_its_bound() {
        let ex = glommio::LocalExecutor::default();
        ex.run(async {
            let (tx, rx) = local_channel::new_bounded(ROUND_FRAMES_MAX + 5);
            for _ in 0..ROUND_FRAMES_MAX + 5 {
                assert!(tx.try_send(Outgoing::Frame(vec![1])).is_ok());
            }
            let mut round = Vec::new();
            let first = rx.recv().await.unwrap();
            assert!(!gather(first, &rx, &mut round).await);
            assert_eq!(round.len(), ROUND_FRAMES_MAX);
            round.clear();
            let first = rx.recv().await.unwrap();
            drop(tx);
            assert!(
                gather(first, &rx, &mut round).await,
                "a closed queue closes"
            );
            assert_eq!(round.len(), 5);
        });
    }

    /// A blocking socket as the connection's async writer: what `sendmsg`
    /// does not take at once is written here, in order, and counted.
    struct Blocking {
        socket: std::os::unix::net::UnixStream,
        write_bytes_max: Rc<Cell<usize>>,
    }

    impl AsyncWrite for Blocking {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let max = self.write_bytes_max.get().max(buf.len());
            self.write_bytes_max.set(max);
            Poll::Ready((&self.socket).write(buf))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(self.socket.shutdown(std::net::Shutdown::Write))
        }
    }

    /// Writes one 4 MiB frame (gathered when `gathered`, else as under
    /// TLS) with real-time calls said to come, beside a task that wakes
    /// from a 1 µs timer; the bytes the peer read, the largest write the
    /// async writer was asked for, the pauses between slices, and the
    /// pauses made when that task ran.
    fn write_4_mib_frame(gathered: bool) -> (Vec<u8>, usize, usize, usize) {
        let frame: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8).collect();
        let (mut peer, ours) = std::os::unix::net::UnixStream::pair().unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            peer.read_to_end(&mut got).unwrap();
            got
        });
        let fd = gathered.then(|| ours.as_raw_fd());
        let write_bytes_max = Rc::new(Cell::new(0));
        let writer = Blocking {
            socket: ours.try_clone().unwrap(),
            write_bytes_max: write_bytes_max.clone(),
        };
        let ex = glommio::LocalExecutor::default();
        let queued = frame.clone();
        let (pauses, pauses_when_ran) = ex.run(async move {
            let pauses = Rc::new(Cell::new(0));
            let seen = pauses.clone();
            let rt_task = glommio::spawn_local(async move {
                glommio::timer::sleep(std::time::Duration::from_micros(1)).await;
                seen.get()
            });
            let (tx, rx) = local_channel::new_bounded(2);
            assert!(tx.try_send(Outgoing::Frame(queued)).is_ok());
            assert!(tx.try_send(Outgoing::Close).is_ok());
            let counted = pauses.clone();
            let rt_calls_recent = move || {
                counted.set(counted.get() + 1);
                true
            };
            write_loop(Output { writer, fd }, rx, rt_calls_recent).await;
            (pauses.get(), rt_task.await)
        });
        drop(ours);
        let got = reader.join().unwrap();
        assert!(got == frame, "the frame arrived whole and in order");
        (got, write_bytes_max.get(), pauses, pauses_when_ran)
    }

    #[test]
    fn given_rt_calls_recent_when_a_4_mib_frame_is_written_then_it_goes_in_slices_and_a_waiting_task_runs_between_them(
    ) {
        for gathered in [true, false] {
            let (got, write_bytes_max, pauses, pauses_when_ran) = write_4_mib_frame(gathered);
            assert_eq!(got.len(), 4 << 20);
            assert!(
                write_bytes_max <= SEND_SLICE_BYTES_MAX,
                "gathered {gathered}: a write of {write_bytes_max} bytes"
            );
            // At most two slices' worth between pauses.
            assert!(pauses >= (4 << 20) / (2 * SEND_SLICE_BYTES_MAX) - 1);
            assert!(
                pauses_when_ran < pauses,
                "gathered {gathered}: the waiting task ran after {pauses_when_ran} of {pauses} pauses"
            );
        }
    }
}
