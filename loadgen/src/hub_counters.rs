//! The hub's commit counters, read from its operator API (`GET /info`):
//! group commits and the `fdatasync`s that covered them, summed over every
//! shard's message log and history log, and the receipts the shards signed
//! with the signatures that signed them. A phase reports them per operation
//! (how many syncs an rt exchange or a bulk message costs the disk).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long one read of `/info` may take before it is given up.
const READ_TIMEOUT_MS: u64 = 2_000;
/// Largest `/info` reply read, bytes (a few hundred per shard).
const REPLY_BYTES_MAX: u64 = 1 << 20;

/// Commit counters of every shard's logs, summed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitCounts {
    /// Group commits (batch writes) of the message logs.
    pub message_commits: u64,
    /// `fdatasync`s that covered a message-log batch.
    pub message_fdatasyncs: u64,
    /// Group commits of the history (archive) logs.
    pub history_commits: u64,
    /// `fdatasync`s that covered a history-log batch.
    pub history_fdatasyncs: u64,
    /// Receipts the shards handed out signed.
    pub receipts_signed: u64,
    /// The hub signatures that signed them (one a tree, docs/adr/0023).
    pub receipt_signatures: u64,
}

impl CommitCounts {
    /// What happened between `self` (earlier) and `later`.
    pub fn since(&self, later: &CommitCounts) -> CommitCounts {
        CommitCounts {
            message_commits: later.message_commits.saturating_sub(self.message_commits),
            message_fdatasyncs: later
                .message_fdatasyncs
                .saturating_sub(self.message_fdatasyncs),
            history_commits: later.history_commits.saturating_sub(self.history_commits),
            history_fdatasyncs: later
                .history_fdatasyncs
                .saturating_sub(self.history_fdatasyncs),
            receipts_signed: later.receipts_signed.saturating_sub(self.receipts_signed),
            receipt_signatures: later
                .receipt_signatures
                .saturating_sub(self.receipt_signatures),
        }
    }

    /// `fdatasync`s of both logs.
    pub fn fdatasyncs(&self) -> u64 {
        self.message_fdatasyncs + self.history_fdatasyncs
    }
}

/// Reads the counters from the operator API at `addr` (plain HTTP, loopback).
pub fn read(addr: SocketAddr) -> Result<CommitCounts, String> {
    let timeout = Duration::from_millis(READ_TIMEOUT_MS);
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{addr}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /info HTTP/1.1\r\nHost: gonets\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("{addr}: {e}"))?;
    let mut reply = Vec::new();
    stream
        .take(REPLY_BYTES_MAX)
        .read_to_end(&mut reply)
        .map_err(|e| format!("{addr}: {e}"))?;
    parse_reply(&reply)
}

/// The counters in an HTTP reply to `GET /info` (a `Content-Length` body).
fn parse_reply(reply: &[u8]) -> Result<CommitCounts, String> {
    let text = std::str::from_utf8(reply).map_err(|_| "/info: not UTF-8".to_string())?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or("/info: no end of headers")?;
    let status = head.lines().next().unwrap_or_default();
    if !status.contains(" 200 ") {
        return Err(format!("/info: {status}"));
    }
    let info: serde_json::Value = serde_json::from_str(body).map_err(|e| format!("/info: {e}"))?;
    let logs = info["logs"].as_array().ok_or("/info: no logs")?;
    let mut c = CommitCounts::default();
    for shard in logs {
        let field = |log: &str, name: &str| {
            shard[log][name]
                .as_u64()
                .ok_or_else(|| format!("/info: no {log}.{name}"))
        };
        c.message_commits += field("messages", "commits")?;
        c.message_fdatasyncs += field("messages", "fdatasyncs")?;
        c.history_commits += field("history", "commits")?;
        c.history_fdatasyncs += field("history", "fdatasyncs")?;
        c.receipts_signed += field("receipts", "signed")?;
        c.receipt_signatures += field("receipts", "signatures")?;
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_SHARDS: &str = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1\r\n\r\n\
        {\"logs\":[{\"shard\":0,\"messages\":{\"commits\":10,\"fdatasyncs\":10},\"history\":{\"commits\":2,\"fdatasyncs\":2},\"receipts\":{\"signed\":8,\"signatures\":2}},\
        {\"shard\":1,\"messages\":{\"commits\":5,\"fdatasyncs\":5},\"history\":{\"commits\":1,\"fdatasyncs\":1},\"receipts\":{\"signed\":0,\"signatures\":0}}]}";

    #[test]
    fn given_two_shards_when_parse_then_counts_are_summed() {
        let c = parse_reply(TWO_SHARDS.as_bytes()).unwrap();
        assert_eq!(c.message_commits, 15);
        assert_eq!(c.message_fdatasyncs, 15);
        assert_eq!(c.history_commits, 3);
        assert_eq!(c.fdatasyncs(), 18);
        assert_eq!((c.receipts_signed, c.receipt_signatures), (8, 2));
    }

    #[test]
    fn given_error_status_when_parse_then_error_names_it() {
        let e = parse_reply(b"HTTP/1.1 503 Service Unavailable\r\n\r\n{}").unwrap_err();
        assert!(e.contains("503"), "{e}");
    }

    #[test]
    fn given_missing_field_when_parse_then_error() {
        let r = "HTTP/1.1 200 OK\r\n\r\n{\"logs\":[{\"messages\":{\"commits\":1}}]}";
        assert!(parse_reply(r.as_bytes()).is_err());
    }

    #[test]
    fn given_later_counts_when_since_then_difference() {
        let a = CommitCounts {
            message_commits: 3,
            message_fdatasyncs: 3,
            ..Default::default()
        };
        let b = CommitCounts {
            message_commits: 10,
            message_fdatasyncs: 9,
            history_commits: 1,
            history_fdatasyncs: 1,
            receipts_signed: 12,
            receipt_signatures: 3,
        };
        let d = a.since(&b);
        assert_eq!((d.message_commits, d.fdatasyncs()), (7, 7));
        assert_eq!((d.receipts_signed, d.receipt_signatures), (12, 3));
    }
}
