//! Small files recently read by a worker, kept in memory for a moment so that repeated requests skip the
//! worker round trip. Workers fill it (the loop still never reads the disk); an entry is served for at most
//! `FRESH_FOR` after it was read, which bounds how stale a response can be.

use crate::routes::FileKind;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Largest file kept. 64 KiB: pages, icons and small images, the bulk of requests to a typical site.
pub const MAX_FILE_BYTES: usize = 64 * 1024;

/// Most bytes kept in all. 16 MiB.
pub const MAX_TOTAL_BYTES: usize = 16 * 1024 * 1024;

/// Most files kept, which also bounds the cost of an eviction scan. 4096.
pub const MAX_ENTRIES: usize = 4096;

/// How long an entry is served without the disk being consulted again. 1 s, like a short
/// `open_file_cache_valid` in nginx: a file changed on disk is served fresh within a second.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

/// A cached file: what a response needs.
#[derive(Debug)]
pub struct CachedFile {
    /// The requested name, for `Content-Disposition`.
    pub name: String,
    /// How it is sent.
    pub kind: FileKind,
    /// The whole file.
    pub body: Vec<u8>,
    loaded: Instant,
}

/// The cache, keyed by the path relative to the root.
#[derive(Debug, Default)]
pub struct FileCache {
    entries: HashMap<PathBuf, CachedFile>,
    total_bytes: usize,
}

impl FileCache {
    /// The entry for `path`, if it was read less than `FRESH_FOR` ago.
    pub fn get(&self, path: &Path, now: Instant) -> Option<&CachedFile> {
        self.entries
            .get(path)
            .filter(|file| now.duration_since(file.loaded) < FRESH_FOR)
    }

    /// Keeps a file a worker just read, if it is small enough and there is room once stale entries are dropped.
    pub fn insert(
        &mut self,
        path: PathBuf,
        name: String,
        kind: FileKind,
        body: Vec<u8>,
        now: Instant,
    ) {
        if body.len() > MAX_FILE_BYTES {
            return;
        }
        if let Some(old) = self.entries.remove(&path) {
            self.total_bytes -= old.body.len();
        }
        if self.entries.len() >= MAX_ENTRIES || self.total_bytes + body.len() > MAX_TOTAL_BYTES {
            self.evict_stale(now);
        }
        if self.entries.len() >= MAX_ENTRIES || self.total_bytes + body.len() > MAX_TOTAL_BYTES {
            return;
        }
        self.total_bytes += body.len();
        self.entries.insert(
            path,
            CachedFile {
                name,
                kind,
                body,
                loaded: now,
            },
        );
    }

    fn evict_stale(&mut self, now: Instant) {
        let total = &mut self.total_bytes;
        self.entries.retain(|_, file| {
            let fresh = now.duration_since(file.loaded) < FRESH_FOR;
            if !fresh {
                *total -= file.body.len();
            }
            fresh
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insert(cache: &mut FileCache, path: &str, len: usize, now: Instant) {
        cache.insert(
            path.into(),
            path.into(),
            FileKind::Download,
            vec![0; len],
            now,
        );
    }

    #[test]
    fn entries_are_served_only_while_fresh() {
        let mut cache = FileCache::default();
        let t0 = Instant::now();
        insert(&mut cache, "a.txt", 10, t0);
        assert_eq!(
            cache.get(Path::new("a.txt"), t0).map(|f| f.body.len()),
            Some(10)
        );
        assert!(cache.get(Path::new("a.txt"), t0 + FRESH_FOR).is_none());
        assert!(cache.get(Path::new("b.txt"), t0).is_none());
    }

    #[test]
    fn large_files_are_not_kept() {
        let mut cache = FileCache::default();
        insert(&mut cache, "big.png", MAX_FILE_BYTES + 1, Instant::now());
        assert!(cache.get(Path::new("big.png"), Instant::now()).is_none());
    }

    #[test]
    fn a_full_cache_makes_room_only_by_dropping_stale_entries() {
        let mut cache = FileCache::default();
        let t0 = Instant::now();
        let per_file = MAX_TOTAL_BYTES / 4;
        for name in ["a", "b", "c", "d"] {
            insert(&mut cache, name, per_file.min(MAX_FILE_BYTES), t0);
        }
        for i in 0..MAX_ENTRIES {
            insert(&mut cache, &format!("f{i}"), 1, t0);
        }
        assert!(cache.entries.len() <= MAX_ENTRIES);
        assert!(cache.get(Path::new("late"), t0).is_none());
        insert(&mut cache, "late", 1, t0);
        assert!(
            cache.get(Path::new("late"), t0).is_none(),
            "no room while everything is fresh"
        );
        let later = t0 + FRESH_FOR;
        insert(&mut cache, "late", 1, later);
        assert!(cache.get(Path::new("late"), later).is_some());
        assert_eq!(cache.total_bytes, 1);
    }

    #[test]
    fn replacing_an_entry_keeps_the_byte_count_right() {
        let mut cache = FileCache::default();
        let t0 = Instant::now();
        insert(&mut cache, "a", 100, t0);
        insert(&mut cache, "a", 40, t0);
        assert_eq!(cache.total_bytes, 40);
    }
}
