//! A durable batch's records handed to the tail cache without a copy.
//!
//! Why: the cache used to copy every durable batch out of its write buffer
//! (a 1 MiB copy per commit in the bulk benchmark, 5 % of the hub's CPU),
//! and then the buffer was freed. Now the buffer itself becomes the cached
//! bytes: `Bytes` that readers slice payloads from, freed when the cache
//! and the last reader let go of it.
//!
//! Soundness: a `DmaBuffer` is not `Send` because its storage may be the
//! reactor's registered memory, which only that reactor may free. Batch
//! buffers come from `glommio::allocate_dma_buffer_global`: plain memory
//! from the global allocator (aligned, `alloc`/`dealloc`), which any thread
//! may read and free. That is the one case [`SentBatch`] wraps.

use bytes::Bytes;
use glommio::io::DmaBuffer;
use std::rc::Rc;

/// A new batch buffer of `size_bytes`: the only kind [`records_of`] takes.
pub(crate) fn batch_buffer(size_bytes: usize) -> DmaBuffer {
    glommio::allocate_dma_buffer_global(size_bytes)
}

/// A batch buffer allocated by [`batch_buffer`],
/// whose writes are over: read-only from here on.
struct SentBatch(DmaBuffer);

// SAFETY: see the module comment: the storage is the global allocator's
// (only `records_of` makes one, from a buffer of `batch_buffer`), nothing
// writes it any more, and reading or freeing such memory from another
// thread is sound.
unsafe impl Send for SentBatch {}
// SAFETY: shared access only reads the bytes; there is no interior mutability.
unsafe impl Sync for SentBatch {}

impl AsRef<[u8]> for SentBatch {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// The first `records_bytes` of a durable batch's buffer (made by
/// [`batch_buffer`] with `allocated_bytes`) as `Bytes`: the buffer itself when the write returned it
/// and the records fill at least half of it, else a copy (a small batch
/// would pin a whole batch allocation for a few records in the cache).
pub(crate) fn records_of(
    buf: Rc<DmaBuffer>,
    records_bytes: usize,
    allocated_bytes: usize,
) -> Bytes {
    assert!(records_bytes <= buf.len(), "records within the batch");
    let worth_keeping = records_bytes.saturating_mul(2) >= allocated_bytes;
    match Rc::try_unwrap(buf) {
        Ok(owned) if worth_keeping => Bytes::from_owner(SentBatch(owned)).slice(..records_bytes),
        Ok(owned) => Bytes::copy_from_slice(&owned.as_bytes()[..records_bytes]),
        Err(shared) => Bytes::copy_from_slice(&shared.as_bytes()[..records_bytes]),
    }
}
