//! The disk a power loss may leave, built from the storage layer's journal
//! of I/O events (`gonets_storage::journal`): every directory and file under
//! a root, what a sync covered, and of the rest any subset, each 512-byte
//! sector of an unsynced write and each unsynced name change kept or lost
//! on its own. Shared by the power-loss tests that span directories
//! (`power_loss_startup.rs`, `power_loss_rt_journal.rs`).

use gonets_storage::journal::replay::FileImage;
use gonets_storage::journal::IoEvent;
use gonets_storage::{Durability, LogConfig, QUARANTINE_DIR};
use rand::rngs::StdRng;
use rand::Rng;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The log settings of the power-loss tests that run a log's workload:
/// small segments, batches and checkpoint intervals, so that a short
/// workload rolls segments and writes checkpoints.
pub fn crash_log_config(durability: Durability) -> LogConfig {
    LogConfig {
        durability,
        segment_size_bytes: 64 << 10,
        batch_bytes_max: 16 << 10,
        checkpoint_interval_bytes: 48 << 10,
        ..LogConfig::small_for_tests()
    }
}

/// A directory entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node {
    /// A file: its index in the disk's images.
    File(usize),
    /// A directory.
    Dir,
}

/// A directory's entries by name.
pub type Entries = BTreeMap<String, Node>;

/// What a power loss keeps of what was not synced.
pub enum Loss<'a> {
    /// Any subset, drawn.
    Random(&'a mut StdRng),
    /// Nothing: the disk holds only what a sync covered.
    Everything,
    /// No loss: the disk as the running process sees it.
    Nothing,
}

impl Loss<'_> {
    /// Whether one unsynced piece survives.
    pub fn keeps(&mut self) -> bool {
        match self {
            Loss::Random(rng) => rng.gen_bool(0.5),
            Loss::Everything => false,
            Loss::Nothing => true,
        }
    }
}

/// The filesystem under `root` as the journal says, up to a crash point.
#[derive(Clone)]
pub struct Disk {
    root: PathBuf,
    files: Vec<FileImage>,
    /// Entries of each directory (relative to `root`) as the process saw them.
    names: BTreeMap<PathBuf, Entries>,
    /// Entries as the last sync of the directory made durable.
    durable: BTreeMap<PathBuf, Entries>,
}

impl Disk {
    /// An empty disk whose root directory `root` exists before the journal starts.
    pub fn new(root: &Path) -> Disk {
        let top = || BTreeMap::from([(PathBuf::new(), Entries::new())]);
        Disk {
            root: root.to_path_buf(),
            files: Vec::new(),
            names: top(),
            durable: top(),
        }
    }

    /// The disk as the files and directories under `root` hold it now, all
    /// of it durable (a crash disk before a recovery runs on it, whose own
    /// journal then applies on top). Lock files are left out.
    pub fn from_tree(root: &Path) -> Disk {
        let mut disk = Disk::new(root);
        disk.add_tree(Path::new(""));
        disk.durable = disk.names.clone();
        disk
    }

    fn add_tree(&mut self, rel: &Path) {
        let mut entries: Vec<_> = std::fs::read_dir(self.root.join(rel))
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "LOCK" {
                continue;
            }
            let path = rel.join(&name);
            let node = if entry.file_type().unwrap().is_dir() {
                self.names.entry(path.clone()).or_default();
                self.add_tree(&path);
                Node::Dir
            } else {
                let bytes = std::fs::read(self.root.join(&path)).unwrap();
                let mut image = FileImage::new(bytes.len() as u64);
                image.write(0, &bytes);
                image.sync();
                self.files.push(image);
                Node::File(self.files.len() - 1)
            };
            self.names
                .get_mut(rel)
                .expect("listed before")
                .insert(name, node);
        }
    }

    /// The directory (relative) and name of `path`; panics outside the root.
    fn split(&self, path: &Path) -> (PathBuf, String) {
        let rel = path
            .strip_prefix(&self.root)
            .unwrap_or_else(|_| panic!("{} is outside {}", path.display(), self.root.display()));
        let dir = rel.parent().map(Path::to_path_buf).unwrap_or_default();
        let name = rel
            .file_name()
            .expect("a name")
            .to_string_lossy()
            .into_owned();
        (dir, name)
    }

    fn dir(&mut self, dir: &Path, event: &IoEvent) -> &mut Entries {
        // Recovery's quarantine is made with a plain `create_dir_all`; its
        // entry is durable once the log's directory is synced after the
        // rename into it (a file moved there holds no committed data).
        let quarantine = dir.file_name().is_some_and(|n| n == QUARANTINE_DIR);
        if quarantine && !self.names.contains_key(dir) {
            if let Some(parent) = dir.parent().filter(|p| self.names.contains_key(*p)) {
                self.names
                    .get_mut(parent)
                    .expect("known")
                    .insert(QUARANTINE_DIR.to_string(), Node::Dir);
                self.names.insert(dir.to_path_buf(), Entries::new());
                self.durable.insert(dir.to_path_buf(), Entries::new());
            }
        }
        self.names.get_mut(dir).unwrap_or_else(|| {
            panic!(
                "{event:?}: in directory {:?}, which the journal never saw created \
                 (made without durable_file?)",
                dir
            )
        })
    }

    fn file(&mut self, path: &Path, event: &IoEvent) -> &mut FileImage {
        let (dir, name) = self.split(path);
        match self.dir(&dir, event).get(&name) {
            Some(Node::File(id)) => {
                let id = *id;
                &mut self.files[id]
            }
            other => panic!("{event:?}: {name} is {other:?}"),
        }
    }

    /// Applies one journaled event.
    pub fn apply(&mut self, e: &IoEvent) {
        match e {
            IoEvent::CreateDir { path } => {
                let (dir, name) = self.split(path);
                self.dir(&dir, e).insert(name.clone(), Node::Dir);
                let rel = dir.join(name);
                self.names.entry(rel.clone()).or_default();
                self.durable.entry(rel).or_default();
            }
            IoEvent::Create { path, size } => {
                let (dir, name) = self.split(path);
                self.files.push(FileImage::new(*size));
                let id = self.files.len() - 1;
                self.dir(&dir, e).insert(name, Node::File(id));
            }
            IoEvent::Write {
                path,
                position,
                bytes,
            } => {
                self.file(path, e).write(*position, bytes);
            }
            IoEvent::Sync { path } => self.file(path, e).sync(),
            IoEvent::SyncDir { dir } => {
                let rel = dir.strip_prefix(&self.root).expect("inside the root");
                let now = self.dir(rel, e).clone();
                self.durable.insert(rel.to_path_buf(), now);
            }
            IoEvent::Rename { from, to } => {
                let (dir, from_name) = self.split(from);
                let (to_dir, to_name) = self.split(to);
                let node = self
                    .dir(&dir, e)
                    .remove(&from_name)
                    .expect("renamed file exists");
                self.dir(&to_dir, e).insert(to_name, node);
            }
            IoEvent::Remove { path } => {
                let (dir, name) = self.split(path);
                self.dir(&dir, e).remove(&name);
            }
            IoEvent::Acknowledged { .. } => {}
        }
    }

    /// Writes into `out` the disk a power loss now may leave, `loss` deciding.
    pub fn materialize(&self, out: &Path, loss: &mut Loss<'_>) {
        self.materialize_dir(Path::new(""), out, loss);
    }

    fn materialize_dir(&self, rel: &Path, out: &Path, loss: &mut Loss<'_>) {
        std::fs::create_dir_all(out).unwrap();
        let (now, durable) = (&self.names[rel], &self.durable[rel]);
        let mut all: Vec<&String> = now.keys().chain(durable.keys()).collect();
        all.sort();
        all.dedup();
        for name in all {
            let (n, d) = (now.get(name), durable.get(name));
            // An unsynced name change may or may not have reached the disk.
            let node = if n == d || loss.keeps() { n } else { d };
            match node {
                None => {}
                Some(Node::Dir) => self.materialize_dir(&rel.join(name), &out.join(name), loss),
                Some(Node::File(id)) => {
                    let content = self.files[*id].content(&mut || loss.keeps());
                    std::fs::write(out.join(name), content).unwrap()
                }
            }
        }
    }
}
