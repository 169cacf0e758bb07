//! The hub clock: wall-clock milliseconds since the Unix epoch (hub
//! timestamps are legal facts, R5), never running backwards within a shard.

use std::time::{SystemTime, UNIX_EPOCH};

/// A shard's view of hub time.
#[derive(Debug, Default)]
pub(crate) struct HubClock {
    last_ms: u64,
}

impl HubClock {
    /// Hub time now, ms; a wall-clock step back is held at the last reading
    /// so timers fire late, never early.
    pub(crate) fn now_ms(&mut self) -> u64 {
        let wall_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.last_ms = self.last_ms.max(wall_ms);
        self.last_ms
    }
}
