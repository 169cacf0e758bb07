//! Log lines written through a `tracing` subscriber, kept for a test to
//! read (tests only).

use std::sync::{Arc, Mutex};

/// The lines written so far; clones share them.
#[derive(Clone, Default)]
pub(crate) struct Lines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    /// Makes these lines the current thread's log, at `level` and above,
    /// until the guard drops.
    pub(crate) fn capture(&self, level: tracing::Level) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(level)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    /// Everything written, as text.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Lines that hold both `level` and `text`.
    pub(crate) fn matching(&self, level: &str, text: &str) -> usize {
        self.text()
            .lines()
            .filter(|l| l.contains(level) && l.contains(text))
            .count()
    }
}
