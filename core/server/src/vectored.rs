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
/// starting `skip` bytes in, at most `bytes_max` bytes; the bytes sent.
/// `WouldBlock` when it takes nothing without waiting.
pub(crate) fn send_now(
    fd: RawFd,
    parts: &[&[u8]],
    skip: usize,
    bytes_max: usize,
) -> io::Result<usize> {
    assert!(bytes_max > 0);
    let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(parts.len().min(SLICES_PER_SEND_MAX));
    let mut left = bytes_max;
    for (i, part) in parts.iter().take(SLICES_PER_SEND_MAX).enumerate() {
        let part = if i == 0 { &part[skip..] } else { part };
        let part = &part[..part.len().min(left)];
        if !part.is_empty() {
            slices.push(IoSlice::new(part));
            left -= part.len();
        }
        if left == 0 {
            break;
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
            let n = send_now(client.as_raw_fd(), &parts[c.index..], c.skip, usize::MAX).unwrap();
            c.advance(&parts, n);
        }
        drop(client);
        let mut got = String::new();
        server.read_to_string(&mut got).unwrap();
        assert_eq!(got, "ad|one|two");
    }

    #[test]
    fn given_a_bound_when_parts_sent_now_then_no_send_passes_it_and_all_arrive_in_order() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let parts: [&[u8]; 4] = [b"head|", b"", b"one|", b"two"];
        let mut c = Cursor::default();
        let mut sends = 0;
        // Bounded: 12 bytes, at least one a send.
        while !c.done(&parts) {
            let n = send_now(client.as_raw_fd(), &parts[c.index..], c.skip, 3).unwrap();
            assert!((1..=3).contains(&n), "a send of {n} bytes");
            c.advance(&parts, n);
            sends += 1;
        }
        assert_eq!(sends, 4, "12 bytes in sends of 3, across parts");
        drop(client);
        let mut got = String::new();
        server.read_to_string(&mut got).unwrap();
        assert_eq!(got, "head|one|two");
    }
}
