//! The index from message id to archived history: immutable sorted runs on
//! disk, binary-searched through a read-only map. Their file format, writing,
//! validation and opening after a crash live below the runtime, in
//! `gonets_storage::index_run` (format and crash analysis in
//! docs/storage.md §12); the in-memory table and the jobs that flush and
//! merge it are the archive's (`super`).

pub(crate) use gonets_storage::index_run::{
    merge_entries, open_runs, remove_run, sync_dir, write_run, IndexRun, IndexRunError,
};
