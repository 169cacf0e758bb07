//! Gathered sends on a plain TCP socket: a frame's head and its payloads
//! (each a `Bytes` held where the log's read left it) handed to the kernel
//! in one `sendmsg`, so a fetch's payloads are not first copied into one
//! contiguous frame (~430 KB for 100 messages of 4 KiB).
//!
//! Only the immediate, non-waiting attempt is here (`MSG_DONTWAIT`, like
//! glommio's own first try of every send): what the socket does not take
//! now is written through the connection's async writer, which waits for
//! room on the reactor. Nothing here blocks the thread.

use std::io::{self, IoSlice};
use std::os::fd::RawFd;

/// Slices one `sendmsg` takes at most (Linux's `IOV_MAX`).
const SLICES_PER_SEND_MAX: usize = 1024;

/// Sends what the socket `fd` takes of `parts` now, the first of them
/// starting `skip` bytes in; the bytes sent. `WouldBlock` when it takes
/// nothing without waiting.
pub(crate) fn send_now(fd: RawFd, parts: &[&[u8]], skip: usize) -> io::Result<usize> {
    let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(parts.len().min(SLICES_PER_SEND_MAX));
    for (i, part) in parts.iter().take(SLICES_PER_SEND_MAX).enumerate() {
        let part = if i == 0 { &part[skip..] } else { part };
        if !part.is_empty() {
            slices.push(IoSlice::new(part));
        }
    }
    if slices.is_empty() {
        return Ok(0);
    }
    // SAFETY: `IoSlice` is ABI-compatible with `struct iovec` on Unix (std
    // guarantees it); the message header points at `slices`, which outlives
    // the call, and names no address (a connected socket) and no control data.
    let sent = unsafe {
        let mut header: libc::msghdr = std::mem::zeroed();
        header.msg_iov = slices.as_ptr() as *mut libc::iovec;
        header.msg_iovlen = slices.len() as _;
        libc::sendmsg(fd, &header, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sent as usize)
}

/// Where the next byte to send is: part `index`, `skip` bytes in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub(crate) index: usize,
    pub(crate) skip: usize,
}

impl Cursor {
    /// Moves past `sent` bytes of `parts`.
    pub(crate) fn advance(&mut self, parts: &[&[u8]], mut sent: usize) {
        // Bounded by the number of parts.
        while sent > 0 {
            let left = parts[self.index].len() - self.skip;
            if sent < left {
                self.skip += sent;
                return;
            }
            sent -= left;
            self.index += 1;
            self.skip = 0;
        }
        // Empty parts are skipped too, so `index` names one with bytes left.
        while self.index < parts.len() && parts[self.index].len() == self.skip {
            self.index += 1;
            self.skip = 0;
        }
    }

    /// True once every part is sent.
    pub(crate) fn done(&self, parts: &[&[u8]]) -> bool {
        self.index >= parts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsRawFd;

    #[test]
    fn given_parts_when_advanced_past_their_bytes_then_cursor_names_the_next_byte() {
        let parts: [&[u8]; 4] = [b"abc", b"", b"de", b"f"];
        let mut c = Cursor::default();
        c.advance(&parts, 2);
        assert_eq!(c, Cursor { index: 0, skip: 2 });
        c.advance(&parts, 1);
        assert_eq!(c, Cursor { index: 2, skip: 0 }, "the empty part is passed");
        c.advance(&parts, 3);
        assert!(c.done(&parts));
    }

    #[test]
    fn given_a_connected_socket_when_parts_sent_now_then_peer_reads_them_in_order() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let parts: [&[u8]; 3] = [b"head|", b"one|", b"two"];
        let mut c = Cursor { index: 0, skip: 2 };
        // Bounded: loopback takes these few bytes at once.
        while !c.done(&parts) {
            let n = send_now(client.as_raw_fd(), &parts[c.index..], c.skip).unwrap();
            c.advance(&parts, n);
        }
        drop(client);
        let mut got = String::new();
        server.read_to_string(&mut got).unwrap();
        assert_eq!(got, "ad|one|two");
    }
}
