//! Drops messages already seen, by message id, in a bounded store that can
//! persist across app restarts.

use std::collections::{HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// The last `capacity` message ids seen, oldest forgotten first.
///
/// With a file, every new id is appended to it (one per line) and the file
/// is rewritten with only the remembered ids when it grows past twice the
/// capacity, so a restarted app still drops what it had already handled.
#[derive(Debug)]
pub struct Dedup {
    capacity: usize,
    order: VecDeque<String>,
    seen: HashSet<String>,
    file: Option<(PathBuf, File, usize)>,
}

impl Dedup {
    /// An in-memory store of `capacity` ids.
    pub fn new(capacity: usize) -> Dedup {
        Dedup {
            capacity: capacity.max(1),
            order: VecDeque::new(),
            seen: HashSet::new(),
            file: None,
        }
    }

    /// A store kept in `path` (created if missing; its last ids are loaded).
    pub fn open(path: &Path, capacity: usize) -> std::io::Result<Dedup> {
        let mut d = Dedup::new(capacity);
        if let Ok(f) = File::open(path) {
            for line in BufReader::new(f).lines() {
                let line = line?;
                if !line.is_empty() {
                    d.remember(line);
                }
            }
        }
        let lines = d.order.len();
        let mut d = d;
        d.file = Some((path.to_path_buf(), append(path)?, lines));
        d.compact()?;
        Ok(d)
    }

    /// True the first time `id` is offered, false for a duplicate.
    pub fn first(&mut self, id: &str) -> bool {
        if self.seen.contains(id) {
            return false;
        }
        self.remember(id.to_string());
        if let Some((_, f, lines)) = &mut self.file {
            // A failed write only weakens dedup across restarts; the message
            // is still handled now.
            if writeln!(f, "{id}").is_ok() {
                *lines += 1;
            }
            if *lines > self.capacity * 2 {
                if let Err(e) = self.compact() {
                    tracing::warn!("dedup store not compacted: {e}");
                }
            }
        }
        true
    }

    /// Ids remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Nothing remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    fn remember(&mut self, id: String) {
        if self.seen.insert(id.clone()) {
            self.order.push_back(id);
        }
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
    }

    /// Rewrites the file with only the remembered ids (atomically, by rename).
    fn compact(&mut self) -> std::io::Result<()> {
        let Some((path, _, _)) = &self.file else {
            return Ok(());
        };
        let path = path.clone();
        let tmp = path.with_extension("tmp");
        {
            let mut f = File::create(&tmp)?;
            for id in &self.order {
                writeln!(f, "{id}")?;
            }
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        self.file = Some((path.clone(), append(&path)?, self.order.len()));
        Ok(())
    }
}

fn append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_duplicates_and_forgets_the_oldest() {
        let mut d = Dedup::new(3);
        assert!(d.first("a"));
        assert!(!d.first("a"));
        assert!(d.first("b") && d.first("c") && d.first("d"));
        assert_eq!(d.len(), 3);
        assert!(d.first("a"), "the oldest id was forgotten");
        assert!(!d.first("d"));
    }

    #[test]
    fn persists_across_restarts_and_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seen");
        {
            let mut d = Dedup::open(&path, 4).unwrap();
            for i in 0..20 {
                assert!(d.first(&format!("m{i}")));
            }
        }
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!(
            lines <= 8,
            "compacted to at most twice the capacity, got {lines}"
        );
        let mut d = Dedup::open(&path, 4).unwrap();
        assert!(!d.first("m19"), "seen before the restart");
        assert!(!d.first("m16"));
        assert!(d.first("m15"), "older than the capacity: forgotten");
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 5);
    }
}
