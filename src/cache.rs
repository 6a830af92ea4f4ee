//! Small files recently read by a worker, kept in memory for a moment so that repeated requests skip the
//! worker round trip. Workers fill it (the loop still never reads the disk); an entry is served for at most
//! its window (`--file-cache-window`, default `FRESH_FOR`) after it was read, which bounds how stale a
//! response can be.

use crate::negotiate::Encodings;
use crate::response::Validators;
use crate::worker::FileMeta;
use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Largest file kept. 64 KiB: pages, icons and small images, the bulk of requests to a typical site.
pub const MAX_FILE_BYTES: usize = 64 * 1024;

/// Most bytes kept in all. 16 MiB.
pub const MAX_TOTAL_BYTES: usize = 16 * 1024 * 1024;

/// Most files kept, which also bounds the cost of an eviction scan. 4096.
pub const MAX_ENTRIES: usize = 4096;

/// How long an entry is served without the disk being consulted again, by default. 1 s, like a short
/// `open_file_cache_valid` in nginx: a file changed on disk is served fresh within a second.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

/// A cached file: what a response needs.
#[derive(Debug)]
pub struct CachedFile {
    /// Its length and type, as the worker found them.
    pub meta: FileMeta,
    /// The whole file, shared with the responses that send it.
    pub body: Rc<Vec<u8>>,
    /// Its validators, made once.
    pub validators: Validators,
    loaded: Instant,
}

/// The cache, keyed by the path relative to the root and the codings the request took, which decide which
/// variant a worker chose: a client that takes gzip and one that takes nothing may get different bytes.
#[derive(Debug)]
pub struct FileCache {
    /// How long an entry is served after it was read; zero keeps nothing.
    fresh_for: Duration,
    /// Per path, one slot per set of codings taken (`slot`). Keyed by the path's bytes: `safe_path` makes
    /// each path one way only, and hashing a `Path` walks its components (with SipHash, 4% of a small
    /// request's instructions). Only files a worker read are keys, so foldhash's seeded hash is enough.
    entries: Entries,
    /// Entries in insertion order. Every entry lives equally long, so the oldest is (nearly always) at the
    /// front and expiry costs O(1) per entry (lwan's timeout queue). A replaced entry leaves a stale item
    /// behind, recognised by its load time. Reads delivered out of order may leave an expired entry behind
    /// a fresher one for a moment; `get` checks each entry's own age, so it is never served.
    order: VecDeque<(Instant, PathBuf, usize)>,
    /// Entries held, across all paths and slots.
    count: usize,
    total_bytes: usize,
}

type Entries = HashMap<OsString, [Option<CachedFile>; 4], foldhash::fast::RandomState>;

/// The slot of a set of codings.
fn slot(accept: Encodings) -> usize {
    usize::from(accept.br) | usize::from(accept.gzip) << 1
}

impl Default for FileCache {
    fn default() -> Self {
        FileCache::new(FRESH_FOR)
    }
}

impl FileCache {
    /// An empty cache whose entries are served for `fresh_for` after they were read.
    pub fn new(fresh_for: Duration) -> FileCache {
        FileCache {
            fresh_for,
            entries: Entries::default(),
            order: VecDeque::new(),
            count: 0,
            total_bytes: 0,
        }
    }

    /// The entry for `path` as a request taking `accept` gets it, if it was read less than the window ago.
    pub fn get(&self, path: &Path, accept: Encodings, now: Instant) -> Option<&CachedFile> {
        self.aged(path, accept, now, self.fresh_for)
    }

    /// The entry even if it is past its window, up to a second window: while a worker reads the file again,
    /// the copy it replaces is still served, so a hot file's expiry never makes its clients wait.
    pub fn get_stale(&self, path: &Path, accept: Encodings, now: Instant) -> Option<&CachedFile> {
        self.aged(path, accept, now, self.kept_for())
    }

    fn aged(
        &self,
        path: &Path,
        accept: Encodings,
        now: Instant,
        max_age: Duration,
    ) -> Option<&CachedFile> {
        let file = self.entries.get(path.as_os_str())?[slot(accept)].as_ref()?;
        (now.duration_since(file.loaded) < max_age).then_some(file)
    }

    /// How long an entry is kept: its window, and as long again as a stale copy.
    fn kept_for(&self) -> Duration {
        self.fresh_for * 2
    }

    /// Keeps a file a worker read at `read_at`, if it is small enough, there is room, and no newer read of the
    /// same file is already kept (two reads may finish out of order). The entry's validators come back when
    /// it is kept, so the response that brought the file need not make its own.
    pub fn insert(
        &mut self,
        path: PathBuf,
        accept: Encodings,
        meta: FileMeta,
        body: Rc<Vec<u8>>,
        read_at: Instant,
    ) -> Option<&Validators> {
        let slot = slot(accept);
        let newer_kept = |entries: &Entries| {
            entries
                .get(path.as_os_str())
                .and_then(|slots| slots[slot].as_ref())
                .is_some_and(|old| old.loaded >= read_at)
        };
        if self.fresh_for.is_zero() || body.len() > MAX_FILE_BYTES || newer_kept(&self.entries) {
            return None;
        }
        self.expire(read_at);
        self.remove(&path, slot);
        if self.count >= MAX_ENTRIES || self.total_bytes + body.len() > MAX_TOTAL_BYTES {
            return None;
        }
        self.total_bytes += body.len();
        self.count += 1;
        self.order.push_back((read_at, path.clone(), slot));
        let validators = Validators::of(&meta);
        let kept = self.entries.entry(path.into_os_string()).or_default()[slot]
            .insert(CachedFile { meta, body, validators, loaded: read_at });
        Some(&kept.validators)
    }

    /// Drops the entries older than they are kept, oldest first.
    pub fn expire(&mut self, now: Instant) {
        let kept_for = self.kept_for();
        while let Some((loaded, ..)) = self.order.front() {
            if now.duration_since(*loaded) < kept_for {
                return;
            }
            let Some((loaded, path, slot)) = self.order.pop_front() else {
                return;
            };
            let current = self.entries.get(path.as_os_str()).and_then(|slots| slots[slot].as_ref());
            if current.is_some_and(|file| file.loaded == loaded) {
                self.remove(&path, slot);
            }
        }
    }

    fn remove(&mut self, path: &Path, slot: usize) {
        let Some(slots) = self.entries.get_mut(path.as_os_str()) else {
            return;
        };
        if let Some(old) = slots[slot].take() {
            self.total_bytes -= old.body.len();
            self.count -= 1;
        }
        if slots.iter().all(Option::is_none) {
            self.entries.remove(path.as_os_str());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mime::FileKind;

    fn meta(len: usize) -> FileMeta {
        FileMeta::sample(len as u64, FileKind { media_type: "image/png", download: true })
    }

    fn get<'a>(cache: &'a FileCache, path: &str, now: Instant) -> Option<&'a CachedFile> {
        cache.get(Path::new(path), Encodings::default(), now)
    }

    fn insert(cache: &mut FileCache, path: &str, len: usize, now: Instant) {
        cache.insert(path.into(), Encodings::default(), meta(len), Rc::new(vec![0; len]), now);
    }

    #[test]
    fn entries_are_served_only_while_fresh() {
        let mut cache = FileCache::default();
        let t0 = Instant::now();
        insert(&mut cache, "a.txt", 10, t0);
        assert_eq!(get(&cache, "a.txt", t0).map(|f| f.body.len()), Some(10));
        assert!(get(&cache, "a.txt", t0 + FRESH_FOR).is_none());
        assert!(get(&cache, "b.txt", t0).is_none());
    }

    #[test]
    fn a_zero_window_keeps_nothing() {
        let mut cache = FileCache::new(Duration::ZERO);
        let t0 = Instant::now();
        insert(&mut cache, "a.txt", 10, t0);
        assert!(get(&cache, "a.txt", t0).is_none());
        assert_eq!(cache.entries.len(), 0);
    }

    #[test]
    fn a_stale_copy_is_kept_one_more_window_and_no_longer() {
        let mut cache = FileCache::default();
        let t0 = Instant::now();
        insert(&mut cache, "a", 10, t0);
        let past_window = t0 + FRESH_FOR + FRESH_FOR / 2;
        assert!(get(&cache, "a", past_window).is_none(), "not fresh");
        assert!(cache.get_stale(Path::new("a"), Encodings::default(), past_window).is_some());
        assert!(cache
            .get_stale(Path::new("a"), Encodings::default(), t0 + FRESH_FOR * 2)
            .is_none());
        cache.expire(t0 + FRESH_FOR * 2);
        assert_eq!(cache.count, 0);
    }

    #[test]
    fn large_files_are_not_kept() {
        let mut cache = FileCache::default();
        insert(&mut cache, "big.png", MAX_FILE_BYTES + 1, Instant::now());
        assert!(get(&cache, "big.png", Instant::now()).is_none());
    }

    #[test]
    fn a_full_cache_makes_room_only_by_dropping_stale_entries() {
        let mut cache = FileCache::default();
        let t0 = Instant::now();
        for i in 0..MAX_ENTRIES {
            insert(&mut cache, &format!("f{i}"), 1, t0);
        }
        insert(&mut cache, "late", 1, t0);
        assert!(get(&cache, "late", t0).is_none(), "no room while everything is fresh");
        let later = t0 + FRESH_FOR * 2;
        insert(&mut cache, "late", 1, later);
        assert!(get(&cache, "late", later).is_some());
        assert_eq!((cache.count, cache.total_bytes), (1, 1));
    }

    #[test]
    fn expiry_frees_memory_without_an_insert() {
        let mut cache = FileCache::default();
        let t0 = Instant::now();
        insert(&mut cache, "a", 100, t0);
        insert(&mut cache, "b", 100, t0 + FRESH_FOR);
        cache.expire(t0 + FRESH_FOR * 2);
        assert_eq!((cache.count, cache.total_bytes), (1, 100));
        assert!(get(&cache, "b", t0 + FRESH_FOR * 3 / 2).is_some());
    }

    #[test]
    fn a_replaced_entry_is_not_expired_by_its_predecessors_queue_item() {
        let mut cache = FileCache::default();
        let t0 = Instant::now();
        insert(&mut cache, "a", 10, t0);
        let t1 = t0 + FRESH_FOR / 2;
        insert(&mut cache, "a", 20, t1);
        cache.expire(t0 + FRESH_FOR);
        assert_eq!(get(&cache, "a", t0 + FRESH_FOR).map(|f| f.body.len()), Some(20));
        assert_eq!(cache.total_bytes, 20);
    }

    #[test]
    fn an_older_read_never_replaces_a_newer_one() {
        let mut cache = FileCache::default();
        let t0 = Instant::now();
        let newer = t0 + FRESH_FOR / 2;
        cache.insert("a".into(), Encodings::default(), meta(3), Rc::new(b"new".to_vec()), newer);
        cache.insert("a".into(), Encodings::default(), meta(3), Rc::new(b"old".to_vec()), t0);
        assert_eq!(get(&cache, "a", newer).map(|f| &f.body[..]), Some(&b"new"[..]));
    }

    #[test]
    fn replacing_an_entry_keeps_the_byte_count_right() {
        let mut cache = FileCache::default();
        let t0 = Instant::now();
        insert(&mut cache, "a", 100, t0);
        insert(&mut cache, "a", 40, t0 + Duration::from_millis(1));
        assert_eq!(cache.total_bytes, 40);
    }

    #[test]
    fn each_set_of_codings_has_its_own_entry() {
        let mut cache = FileCache::default();
        let t0 = Instant::now();
        let gzip = Encodings { br: false, gzip: true };
        cache.insert("a".into(), gzip, meta(2), Rc::new(b"gz".to_vec()), t0);
        assert!(
            get(&cache, "a", t0).is_none(),
            "a client taking no coding must not get the gzip bytes"
        );
        insert(&mut cache, "a", 5, t0);
        assert_eq!(cache.get(Path::new("a"), gzip, t0).map(|f| f.body.len()), Some(2));
        assert_eq!(get(&cache, "a", t0).map(|f| f.body.len()), Some(5));
        cache.expire(t0 + FRESH_FOR * 2);
        assert_eq!((cache.count, cache.total_bytes, cache.entries.len()), (0, 0, 0));
    }
}
