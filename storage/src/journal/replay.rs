//! What the power-loss tests share when they replay a journal: one file's
//! bytes up to a crash point, and what a power loss there may leave of
//! them (docs/storage.md, "What a sync covers"): everything a sync
//! covered; of each write since, every 512-byte sector kept or lost on its
//! own; an unsynced preallocation kept or lost. How names change (and
//! which directory sync covers which) differs between the tests' models
//! and stays in each test.

use super::IoEvent;

/// The unit a device writes whole or not at all, as the tests model it.
pub const SECTOR: usize = 512;

/// One file as the journal says, up to a crash point.
#[derive(Clone, Debug, Default)]
pub struct FileImage {
    /// Content as of the last sync.
    synced: Vec<u8>,
    /// Size the file will have once its preallocation is synced.
    allocated: usize,
    /// Writes since the last sync: position and bytes.
    pending: Vec<(usize, Vec<u8>)>,
}

impl FileImage {
    /// A file created and preallocated to `size` bytes ([`IoEvent::Create`]).
    pub fn new(size: u64) -> FileImage {
        FileImage {
            allocated: size as usize,
            ..FileImage::default()
        }
    }

    /// Applies a completed write ([`IoEvent::Write`]): not durable yet.
    pub fn write(&mut self, position: u64, bytes: &[u8]) {
        self.pending.push((position as usize, bytes.to_vec()));
    }

    /// Applies a sync of the file ([`IoEvent::Sync`]): its preallocation
    /// and every write so far are durable.
    pub fn sync(&mut self) {
        if self.synced.len() < self.allocated {
            self.synced.resize(self.allocated, 0);
        }
        for (pos, bytes) in std::mem::take(&mut self.pending) {
            put(&mut self.synced, pos, &bytes);
        }
    }

    /// The bytes a power loss now may leave: what was synced, then the
    /// unsynced preallocation and each sector of each unsynced write, in
    /// that order, kept where `keeps` says so (asked only where there is
    /// something to lose).
    pub fn content(&self, keeps: &mut impl FnMut() -> bool) -> Vec<u8> {
        let mut content = self.synced.clone();
        if content.len() < self.allocated && keeps() {
            content.resize(self.allocated, 0); // the preallocation may have reached the disk
        }
        for (pos, bytes) in &self.pending {
            for (i, sector) in bytes.chunks(SECTOR).enumerate() {
                if keeps() {
                    put(&mut content, pos + i * SECTOR, sector);
                }
            }
        }
        content
    }
}

/// Writes `bytes` at `at` into `content`, growing it with zeros as needed.
fn put(content: &mut Vec<u8>, at: usize, bytes: &[u8]) {
    if content.len() < at + bytes.len() {
        content.resize(at + bytes.len(), 0);
    }
    content[at..at + bytes.len()].copy_from_slice(bytes);
}

/// An event without its bytes, for messages.
pub fn describe(e: &IoEvent) -> String {
    match e {
        IoEvent::Write {
            path,
            position,
            bytes,
        } => format!("write {} @{position} len {}", path.display(), bytes.len()),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_synced_and_unsynced_writes_when_content_taken_then_sectors_kept_or_lost_alone() {
        let mut f = FileImage::new(4);
        f.write(0, b"ab");
        f.sync();
        f.write(1, &[7u8; SECTOR + 1]);
        assert_eq!(f.content(&mut || false), b"ab\0\0");
        let all = f.content(&mut || true);
        assert_eq!(all.len(), SECTOR + 2);
        assert_eq!((all[0], all[1], all[SECTOR + 1]), (b'a', 7, 7));
        // Only the second sector of the write kept.
        let mut coins = [false, true].into_iter();
        let some = FileImage {
            pending: vec![(1, vec![7u8; SECTOR + 1])],
            ..FileImage::new(0)
        }
        .content(&mut || coins.next().unwrap());
        assert_eq!(some.len(), SECTOR + 2);
        assert_eq!((some[1], some[SECTOR], some[SECTOR + 1]), (0, 0, 7));
    }
}
