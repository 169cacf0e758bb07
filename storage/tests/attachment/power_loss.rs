//! Power loss during uploads, finishes and references: the storage layer's
//! test-only journal records every create, write, fdatasync, directory
//! fsync, rename and remove the store completed; for every prefix of it we
//! build disks a power loss at that moment may leave (docs/storage.md,
//! "What a sync covers", the model of tests/tests/power_loss.rs, here with
//! subdirectories): every synced write; each 512-byte sector of an unsynced
//! write kept or lost on its own; each name change (create, rename, remove)
//! not yet covered by a sync of its directory (a rename: of its target's)
//! kept or lost on its own, a rename whole or not at all. Then the store
//! opens it, and every acknowledged chunk, blob, owner and reader must be
//! there byte-exact, no blob may hold wrong bytes, and every surviving
//! upload must resume and finish.

use super::*;
use gonets_storage::journal::replay::{describe, FileImage};
use gonets_storage::journal::{self, IoEvent};
use std::collections::HashMap;
use std::path::PathBuf;

/// Disks built at every crash point.
const VARIANTS: usize = 3;

/// A step of the workload that was acknowledged to its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Milestone {
    /// `begin` of upload n returned.
    Begun(usize),
    /// `put_chunk` of upload n returned with this many durable bytes.
    Chunk(usize, u64),
    /// `finish` of upload n returned.
    Finished(usize),
    /// `reference` of the first blob for "carol" returned.
    Referenced,
    /// `abort` of upload n returned.
    Aborted(usize),
}

/// One upload of the workload.
struct Planned {
    owner: &'static str,
    id: UploadId,
    bytes: Vec<u8>,
    /// Aborted after its one chunk.
    aborts: bool,
}

struct Workload {
    uploads: Vec<Planned>,
    milestones: Vec<Milestone>,
    events: Vec<IoEvent>,
}

impl Workload {
    fn ack(&mut self, m: Milestone) {
        self.milestones.push(m);
        journal::acknowledged(self.milestones.len() as u64);
    }
}

/// alice uploads A and finishes it, gives it to carol; bob uploads the same
/// bytes (content-addressed: joins the owners); alice uploads C, unfinished;
/// dave sends a chunk of D and aborts.
fn record_workload(live: &Path) -> Workload {
    let mut store = open(live);
    journal::start();
    let mut w = Workload {
        uploads: vec![],
        milestones: vec![],
        events: vec![],
    };
    let a = payload(4100, 31);
    let plan = [
        ("alice", a.clone(), 1300, true),
        ("bob", a, 2200, true),
        ("alice", payload(2600, 32), 1700, false),
        ("dave", payload(3000, 33), 1100, false),
    ];
    for (u, (owner, bytes, chunk, finish)) in plan.into_iter().enumerate() {
        let s = store.begin(owner, bytes.len() as u64, KIND_MAX, 0).unwrap();
        w.ack(Milestone::Begun(u));
        let sent = if u == 3 { chunk } else { bytes.len() };
        for (i, piece) in bytes[..sent].chunks(chunk).enumerate() {
            let at = (i * chunk) as u64;
            let st = store
                .put_chunk(owner, s.id, at, piece, crc32c::crc32c(piece), 0)
                .unwrap();
            w.ack(Milestone::Chunk(u, st.durable_bytes));
        }
        if finish {
            store.finish(owner, s.id, digest(&bytes), 0).unwrap();
            w.ack(Milestone::Finished(u));
        }
        if u == 3 {
            store.abort(owner, s.id).unwrap();
            w.ack(Milestone::Aborted(u));
        }
        if u == 0 {
            store
                .reference("alice", &digest(&bytes), bytes.len() as u64, "carol", 9_999)
                .unwrap();
            w.ack(Milestone::Referenced);
        }
        w.uploads.push(Planned {
            owner,
            id: s.id,
            bytes,
            aborts: u == 3,
        });
    }
    w.events = journal::take();
    w
}

/// A small deterministic random source (xorshift64).
struct Rng(u64);

impl Rng {
    fn coin(&mut self) -> bool {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 & 1 == 1
    }
}

/// A change of names, relative to the store's directory.
#[derive(Debug)]
enum NameOp {
    Link(PathBuf, usize),
    Unlink(PathBuf),
    Rename(PathBuf, PathBuf),
}

impl NameOp {
    /// True when a sync of `dir` makes this change durable.
    fn covered_by(&self, dir: &Path) -> bool {
        let parent = |p: &PathBuf| p.parent().map(Path::to_path_buf).unwrap_or_default();
        match self {
            NameOp::Link(p, _) | NameOp::Unlink(p) => parent(p) == dir,
            NameOp::Rename(_, to) => parent(to) == dir,
        }
    }
}

/// The store's directory as the journal says, up to a crash point.
struct Disk {
    root: PathBuf,
    files: Vec<FileImage>,
    /// Names as the running process saw them.
    names: HashMap<PathBuf, usize>,
    /// Every name change, and whether a directory sync covered it.
    ops: Vec<(NameOp, bool)>,
    /// Milestones acknowledged.
    acked: usize,
}

impl Disk {
    fn rel(&self, p: &Path) -> PathBuf {
        p.strip_prefix(&self.root)
            .unwrap_or_else(|_| panic!("{} outside the store", p.display()))
            .to_path_buf()
    }

    fn apply(&mut self, e: &IoEvent) {
        match e {
            IoEvent::Create { path, size } => {
                self.files.push(FileImage::new(*size));
                let (rel, id) = (self.rel(path), self.files.len() - 1);
                self.names.insert(rel.clone(), id);
                self.ops.push((NameOp::Link(rel, id), false));
            }
            IoEvent::Write {
                path,
                position,
                bytes,
            } => {
                let id = self.names[&self.rel(path)];
                self.files[id].write(*position, bytes);
            }
            IoEvent::Sync { path } => {
                let id = self.names[&self.rel(path)];
                self.files[id].sync();
            }
            IoEvent::SyncDir { dir } => {
                let dir = self.rel(dir);
                for (op, durable) in &mut self.ops {
                    *durable |= op.covered_by(&dir);
                }
            }
            IoEvent::Rename { from, to } => {
                let (from, to) = (self.rel(from), self.rel(to));
                let id = self.names.remove(&from).expect("rename of a known name");
                self.names.insert(to.clone(), id);
                self.ops.push((NameOp::Rename(from, to), false));
            }
            IoEvent::Remove { path } => {
                let rel = self.rel(path);
                self.names.remove(&rel);
                self.ops.push((NameOp::Unlink(rel), false));
            }
            IoEvent::CreateDir { .. } => {} // made by the open before the journal started
            IoEvent::Acknowledged { end_offset } => {
                self.acked = self.acked.max(*end_offset as usize)
            }
        }
    }

    /// Writes one disk a power loss now may leave into `dir`.
    fn materialize(&self, dir: &Path, rng: &mut Rng) {
        for sub in ["uploads", "blobs"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let mut names: HashMap<&PathBuf, usize> = HashMap::new();
        for (op, durable) in &self.ops {
            if !*durable && rng.coin() {
                continue; // this change never reached the disk
            }
            match op {
                NameOp::Link(p, id) => {
                    names.insert(p, *id);
                }
                NameOp::Unlink(p) => {
                    names.remove(p);
                }
                NameOp::Rename(from, to) => {
                    if let Some(id) = names.remove(from) {
                        names.insert(to, id);
                    }
                }
            }
        }
        for (name, id) in names {
            let content = self.files[id].content(&mut || rng.coin());
            std::fs::write(dir.join(name), content).unwrap();
        }
    }
}

/// Checks what the store recovered from one crashed disk against what was
/// acknowledged, then resumes and finishes every upload that survived.
fn check(dir: &Path, w: &Workload, acked: usize, at: &str) {
    let mut store = AttachmentStore::open(dir, limits(), 1)
        .unwrap_or_else(|e| panic!("{at}: recovery failed: {e}"));
    let done = &w.milestones[..acked];
    let a = &w.uploads[0].bytes;
    let da = digest(a);
    // Only A was ever finished: no other blob, and A's bytes exact.
    let hex_a = blake3::hash(a).to_hex().to_string();
    for e in std::fs::read_dir(dir.join("blobs")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(name.starts_with(&hex_a), "{at}: stray blob file {name}");
    }
    if let Ok(info) = store.blob(&da) {
        store
            .verify_blob(&da)
            .unwrap_or_else(|e| panic!("{at}: {e}"));
        assert_eq!(&read_blob(&store, &info.owners[0], &da), a, "{at}");
    }
    if done.contains(&Milestone::Referenced) {
        let info = store.blob(&da).unwrap_or_else(|e| panic!("{at}: {e}"));
        assert!(info.readers.iter().any(|r| r == "carol"), "{at}: {info:?}");
        assert_eq!(read_blob(&store, "carol", &da), *a, "{at}");
    }
    for (u, p) in w.uploads.iter().enumerate() {
        check_upload(&store, dir, done, u, p, at);
    }
    for p in &w.uploads {
        if let Ok(s) = store.status(p.owner, p.id) {
            put_from(
                &mut store,
                p.owner,
                p.id,
                &p.bytes,
                s.durable_bytes as usize,
                1000,
            );
            let info = store
                .finish(p.owner, p.id, digest(&p.bytes), 2)
                .unwrap_or_else(|e| panic!("{at}: resumed finish: {e}"));
            assert_eq!(read_blob(&store, p.owner, &info.digest), p.bytes, "{at}");
        }
    }
}

/// One upload after recovery: a finished one is a blob with its owner; an
/// unfinished one holds at least its acknowledged bytes, exact, unless a
/// finish in flight already made it a blob.
fn check_upload(
    store: &AttachmentStore,
    dir: &Path,
    done: &[Milestone],
    u: usize,
    p: &Planned,
    at: &str,
) {
    let owner_of_blob = || {
        store
            .blob(&digest(&p.bytes))
            .is_ok_and(|b| b.owners.iter().any(|o| o == p.owner))
    };
    if done.contains(&Milestone::Finished(u)) {
        assert!(
            owner_of_blob(),
            "{at}: finished upload {u} is no blob of {}",
            p.owner
        );
        return;
    }
    let acked_bytes = done
        .iter()
        .filter_map(|m| match m {
            Milestone::Chunk(n, b) if *n == u => Some(*b),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    match store.status(p.owner, p.id) {
        Ok(s) => {
            assert!(
                s.durable_bytes >= acked_bytes,
                "{at}: upload {u}: {} < {acked_bytes}",
                s.durable_bytes
            );
            let data = std::fs::read(dir.join("uploads").join(format!("{}.data", p.id))).unwrap();
            assert_eq!(
                data,
                p.bytes[..s.durable_bytes as usize],
                "{at}: upload {u}"
            );
        }
        // Gone: never begun, or a finish or (after its last chunk) an abort
        // was in flight.
        Err(AttachmentError::UnknownUpload { .. }) => assert!(
            !done.contains(&Milestone::Begun(u))
                || owner_of_blob()
                || (p.aborts && acked_bytes > 0),
            "{at}: acknowledged upload {u} lost"
        ),
        Err(e) => panic!("{at}: upload {u}: {e}"),
    }
}

#[test]
fn given_power_loss_at_every_step_when_reopened_then_acknowledged_chunks_and_blobs_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let live = tmp.path().join("live");
    let w = record_workload(&live);
    let syncs = w
        .events
        .iter()
        .filter(|e| matches!(e, IoEvent::Sync { .. }))
        .count();
    assert!(syncs > 20, "workload too small: {syncs} syncs");
    let mut disk = Disk {
        root: live,
        files: vec![],
        names: HashMap::new(),
        ops: vec![],
        acked: 0,
    };
    let mut rng = Rng(0x5eed_a77a);
    let mut points = 0;
    for (k, e) in w.events.iter().enumerate() {
        disk.apply(e);
        for variant in 0..VARIANTS {
            let dir = tmp.path().join(format!("crash-{k}-{variant}"));
            disk.materialize(&dir, &mut rng);
            check(
                &dir,
                &w,
                disk.acked,
                &format!("crash point {k}/{variant} ({})", describe(e)),
            );
            std::fs::remove_dir_all(&dir).unwrap();
            points += 1;
        }
    }
    assert_eq!(disk.acked, w.milestones.len());
    println!(
        "attachment power-loss crash points: {points}, events {}",
        w.events.len()
    );
}
