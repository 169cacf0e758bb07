//! The writing side of one connection: a task that takes the frames its
//! request tasks queue and hands what is queued to the socket at once.
//!
//! On a plain TCP socket every queued frame, and every part of a message
//! reply (its head and its payloads, each a `Bytes` where the log's read
//! left it), goes into one `sendmsg` ([`crate::vectored`]): at 10,000 rt
//! calls a second a consumer's connection has several answers queued per
//! executor loop, and a system call costs ~30 µs on a virtual machine, so
//! one send a loop instead of one a frame is the saving. Under TLS the
//! frames are copied into one buffer, so they make full TLS records.

use futures_lite::future;
use futures_lite::io::{AsyncWrite, AsyncWriteExt};
use glommio::channels::local_channel::LocalReceiver;
use std::os::fd::RawFd;

/// Bytes gathered from queued frames before one send.
const GATHER_BYTES_MAX: usize = 256 * 1024;
/// Frames gathered before one send.
const GATHER_FRAMES_MAX: usize = 256;
/// Under TLS, a frame at least this large is written on its own, not
/// copied into the gathered buffer.
const TLS_DIRECT_BYTES_MIN: usize = 64 * 1024;

/// What goes to the writer task.
pub(crate) enum Outgoing {
    /// A whole encoded frame.
    Frame(Vec<u8>),
    /// A frame's head (its fixed and JSON headers) and its body's parts,
    /// sent back to back: a fetch's payloads, not copied into the frame.
    Parts(Vec<u8>, Vec<bytes::Bytes>),
    /// Write what is queued, then close the connection.
    Close,
}

impl Outgoing {
    /// The frame's bytes (0 for `Close`).
    fn len(&self) -> usize {
        match self {
            Outgoing::Frame(f) => f.len(),
            Outgoing::Parts(head, payloads) => {
                head.len() + payloads.iter().map(|p| p.len()).sum::<usize>()
            }
            Outgoing::Close => 0,
        }
    }

    /// The frame's slices, in order, appended to `parts`.
    fn slices<'a>(&'a self, parts: &mut Vec<&'a [u8]>) {
        match self {
            Outgoing::Frame(f) => parts.push(f),
            Outgoing::Parts(head, payloads) => {
                parts.push(head);
                parts.extend(payloads.iter().map(|p| &p[..]));
            }
            Outgoing::Close => {}
        }
    }
}

/// The writing side of a connection: its async writer, and under plain
/// TCP the socket itself for gathered sends.
pub(crate) struct Output<W> {
    pub(crate) writer: W,
    /// The plain TCP socket under `writer`; `None` under TLS.
    pub(crate) fd: Option<RawFd>,
}

/// Writes queued frames until the queue closes, a `Close` is written or
/// the socket fails; each round sends what is queued at that moment.
pub(crate) async fn write_loop<W: AsyncWrite + Unpin>(
    mut output: Output<W>,
    outgoing: LocalReceiver<Outgoing>,
) {
    let mut gathered: Vec<Outgoing> = Vec::with_capacity(GATHER_FRAMES_MAX);
    let mut copy: Vec<u8> = Vec::with_capacity(GATHER_BYTES_MAX);
    // Runs until closed; each round writes at least one frame.
    while let Some(first) = outgoing.recv().await {
        let close = gather(first, &outgoing, &mut gathered).await;
        assert!(gathered.len() <= GATHER_FRAMES_MAX);
        let sent = match output.fd {
            Some(fd) => send_gathered(&mut output.writer, fd, &gathered).await,
            None => write_copied(&mut output.writer, &gathered, &mut copy).await,
        };
        gathered.clear();
        if sent.is_err() || output.writer.flush().await.is_err() {
            return;
        }
        if close {
            let _ = output.writer.close().await;
            return;
        }
    }
}

/// Moves `first` and whatever else is queued now into `gathered`, up to
/// the frame and byte bounds; true once a `Close` was taken.
async fn gather(
    first: Outgoing,
    outgoing: &LocalReceiver<Outgoing>,
    gathered: &mut Vec<Outgoing>,
) -> bool {
    assert!(gathered.is_empty());
    let mut bytes = 0;
    let mut next = first;
    // Bounded by GATHER_FRAMES_MAX, GATHER_BYTES_MAX or the queue running dry.
    loop {
        if matches!(next, Outgoing::Close) {
            return true;
        }
        bytes += next.len();
        gathered.push(next);
        if gathered.len() >= GATHER_FRAMES_MAX || bytes >= GATHER_BYTES_MAX {
            return false;
        }
        next = match future::poll_once(outgoing.recv()).await {
            Some(Some(out)) => out,
            Some(None) => return true,
            None => return false,
        };
    }
}

/// Sends every slice of `gathered` on the plain socket `fd`: gathered into
/// `sendmsg`s while the socket takes them at once, the rest of a slice it
/// does not take through `writer` (which waits for room on the reactor).
async fn send_gathered<W: AsyncWrite + Unpin>(
    writer: &mut W,
    fd: RawFd,
    gathered: &[Outgoing],
) -> std::io::Result<()> {
    let mut parts: Vec<&[u8]> = Vec::with_capacity(gathered.len() * 2);
    for out in gathered {
        out.slices(&mut parts);
    }
    let mut at = crate::vectored::Cursor::default();
    at.advance(&parts, 0);
    // Bounded: each round sends at least one byte or one whole part.
    while !at.done(&parts) {
        match crate::vectored::send_now(fd, &parts[at.index..], at.skip) {
            Ok(sent) => at.advance(&parts, sent),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let rest = &parts[at.index][at.skip..];
                writer.write_all(rest).await?;
                at.advance(&parts, rest.len());
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes `gathered` through `writer` (TLS): small frames and message
/// replies copied into `copy` and written at once, a large frame on its own.
async fn write_copied<W: AsyncWrite + Unpin>(
    writer: &mut W,
    gathered: &[Outgoing],
    copy: &mut Vec<u8>,
) -> std::io::Result<()> {
    assert!(copy.is_empty());
    let mut parts: Vec<&[u8]> = Vec::new();
    for out in gathered {
        match out {
            Outgoing::Frame(f) if f.len() >= TLS_DIRECT_BYTES_MIN => {
                write_out(writer, copy).await?;
                writer.write_all(f).await?;
            }
            other => {
                parts.clear();
                other.slices(&mut parts);
                for p in &parts {
                    copy.extend_from_slice(p);
                }
            }
        }
    }
    write_out(writer, copy).await
}

/// Writes the copied frames, if any, and empties `copy`.
async fn write_out<W: AsyncWrite + Unpin>(
    writer: &mut W,
    copy: &mut Vec<u8>,
) -> std::io::Result<()> {
    if copy.is_empty() {
        return Ok(());
    }
    let r = writer.write_all(copy).await;
    copy.clear();
    // A large fetch copied once does not pin its size for the connection's life.
    if copy.capacity() > 2 * GATHER_BYTES_MAX {
        copy.shrink_to(GATHER_BYTES_MAX);
    }
    r
}
