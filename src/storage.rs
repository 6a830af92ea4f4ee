//! Uploads on disk. Each body is written to a hidden temporary file in the uploads folder as it arrives,
//! then synced and renamed to its final name only once it is complete and valid JSON. So neither a failure
//! nor a crash leaves a partial file under a name GET serves. Runs on the workers, and once at startup.

use crate::budget::{FileBudget, HeldFile};
use log::warn;
use serde::de::IgnoredAny;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Prefix and suffix of in-progress upload files: hidden, so GET never serves them, and removed at startup.
const TEMP_PREFIX: &str = ".upload_";
const TEMP_SUFFIX: &str = ".tmp";

/// Read buffer for checking a spooled body. 64 KiB, one upload window.
const VALIDATE_BUFFER_BYTES: usize = 64 * 1024;

/// Why an upload could not be stored.
#[derive(Debug)]
pub enum StoreError {
    /// The body is not one JSON document; why, for the client.
    Invalid(String),
    /// Files held open are at `--max-open-files`: a temporary file would take a descriptor that isn't there.
    Busy,
    /// The disk refused.
    Io(io::Error),
}

impl From<io::Error> for StoreError {
    fn from(err: io::Error) -> Self {
        StoreError::Io(err)
    }
}

/// The uploads folder as it was at startup: its path, and the folder itself, held open. A folder removed, or
/// replaced by another (made again, swapped for a link), is refused with 500 rather than written to behind the
/// operator's back. Holding it open keeps its inode number from being reused by a folder made in its place.
#[derive(Debug)]
pub struct UploadDir {
    path: PathBuf,
    held: Option<(File, (u64, u64))>,
}

impl UploadDir {
    /// Creates the folder if needed and removes the temporary files a crash left behind (how many, for the
    /// log). Runs once, before serving. The folder is made here and never again.
    pub fn prepare(path: PathBuf) -> (UploadDir, io::Result<usize>) {
        let removed = remove_leftovers(&path);
        let held = File::open(&path).ok().and_then(|folder| {
            let meta = folder.metadata().ok().filter(|m| m.is_dir())?;
            Some((folder, (meta.dev(), meta.ino())))
        });
        (UploadDir { path, held }, removed)
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The folder, if it is still the one that was there at startup.
    fn folder(&self) -> io::Result<&File> {
        let meta = fs::metadata(&self.path)?;
        match &self.held {
            Some((folder, identity)) if *identity == (meta.dev(), meta.ino()) => Ok(folder),
            _ => Err(io::Error::other("it is not the folder that was there at startup")),
        }
    }
}

/// Where uploads are stored, and what their temporary files draw on.
#[derive(Debug)]
pub struct UploadStore {
    dir: UploadDir,
    leftovers: Arc<Leftovers>,
    files: Arc<FileBudget>,
}

impl UploadStore {
    /// Uploads stored in `dir`, their temporary files held open under `files`.
    pub fn new(dir: UploadDir, files: Arc<FileBudget>) -> UploadStore {
        UploadStore { dir, leftovers: Arc::default(), files }
    }

    /// The folder.
    pub fn dir(&self) -> &UploadDir {
        &self.dir
    }

    /// Temporary files waiting to be removed.
    pub fn leftovers(&self) -> &Arc<Leftovers> {
        &self.leftovers
    }

    /// Adds `window` to the upload's temporary file, made on the first call.
    pub fn spill(&self, spool: &mut Option<Box<Spool>>, window: &[u8]) -> Result<(), StoreError> {
        let spool = match spool {
            Some(spool) => spool,
            None => spool.insert(Box::new(self.create()?)),
        };
        Ok(spool.append(window)?)
    }

    /// Stores a finished body under a new name and returns the name. The body is `tail` after what `spool`
    /// holds, if anything. A body in memory is checked before anything is written; a spooled one is checked
    /// from its file.
    pub fn store(&self, spool: Option<Box<Spool>>, tail: &[u8]) -> Result<String, StoreError> {
        let spool = match spool {
            Some(mut spool) => {
                spool.append(tail)?;
                spool.validate()?;
                spool
            }
            None => {
                validate_json(tail).map_err(StoreError::Invalid)?;
                let mut spool = self.create()?;
                spool.append(tail)?;
                Box::new(spool)
            }
        };
        let name = upload_name();
        spool.keep(&self.dir, &name)?;
        Ok(name)
    }

    /// A new, empty temporary file in the folder, held under the open-file budget.
    fn create(&self) -> Result<Spool, StoreError> {
        self.dir.folder()?;
        let name = format!("{TEMP_PREFIX}{}{TEMP_SUFFIX}", uuid::Uuid::new_v4().simple());
        let path = self.dir.path.join(name);
        let file = File::options().read(true).write(true).create_new(true).open(&path)?;
        let Some(file) = self.files.hold(file) else {
            let _ = fs::remove_file(&path);
            return Err(StoreError::Busy);
        };
        Ok(Spool { file, path, leftovers: Arc::clone(&self.leftovers), kept: false })
    }
}

/// The temporary file of an upload whose body outgrew one window: written a window at a time.
#[derive(Debug)]
pub struct Spool {
    file: HeldFile,
    path: PathBuf,
    leftovers: Arc<Leftovers>,
    /// Renamed to its final name: nothing is left to remove.
    kept: bool,
}

impl Spool {
    /// Appends `bytes` to the file.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.file().write_all(bytes)
    }

    /// Checks the whole file as one JSON document, reading it back rather than holding it in memory: first
    /// that it is UTF-8, then that it parses.
    fn validate(&mut self) -> Result<(), StoreError> {
        let mut file = self.file.file();
        file.seek(SeekFrom::Start(0))?;
        check_utf8(&mut file)?;
        file.seek(SeekFrom::Start(0))?;
        let reader = BufReader::with_capacity(VALIDATE_BUFFER_BYTES, file);
        match serde_json::from_reader::<_, IgnoredAny>(reader) {
            Ok(_) => Ok(()),
            Err(e) if e.is_io() => Err(StoreError::Io(e.into())),
            Err(e) => Err(StoreError::Invalid(format!("invalid JSON: {e}"))),
        }
    }

    /// Syncs the file, renames it to `name` in `dir`, then syncs the folder so the name survives a crash.
    /// Nothing is left under `name` unless all of it succeeds.
    fn keep(mut self, dir: &UploadDir, name: &str) -> io::Result<()> {
        self.file.file().sync_all()?;
        let folder = dir.folder()?;
        let path = dir.path.join(name);
        fs::rename(&self.path, &path)?;
        self.kept = true;
        // Until the folder is synced the rename may not survive a crash; if that fails, answer 500 and take the
        // file back, so a retrying client doesn't end up with two copies.
        let synced = folder.sync_all();
        if synced.is_err() {
            let _ = fs::remove_file(&path);
        }
        synced
    }
}

impl Drop for Spool {
    /// An unfinished upload's file is removed by a worker, never here: this may run on the event loop, which
    /// must not touch the disk.
    fn drop(&mut self) {
        if !self.kept {
            self.leftovers.add(std::mem::take(&mut self.path));
        }
    }
}

/// Temporary files of uploads that ended unfinished, waiting for a worker to remove them. A worker sweeps
/// after each job and, when the pool is idle, at least once a second (`worker::TIDY_INTERVAL`), and the pool
/// once more when it stops; each entry was an upload admitted under `--max-uploads`, so the list stays that
/// short.
#[derive(Debug, Default)]
pub struct Leftovers {
    paths: Mutex<Vec<PathBuf>>,
}

impl Leftovers {
    fn add(&self, path: PathBuf) {
        match self.paths.lock() {
            Ok(mut paths) => paths.push(path),
            Err(poisoned) => poisoned.into_inner().push(path),
        }
    }

    /// Removes the files left so far.
    pub fn sweep(&self) {
        let paths = match self.paths.lock() {
            Ok(paths) if paths.is_empty() => return,
            Ok(mut paths) => std::mem::take(&mut *paths),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for path in paths {
            if let Err(e) = fs::remove_file(&path) {
                if e.kind() != io::ErrorKind::NotFound {
                    warn!("cannot remove unfinished upload {}: {e}", path.display());
                }
            }
        }
    }
}

/// One JSON document in UTF-8, or why not. JSON text is UTF-8 (RFC 8259 §8.1), which serde_json does not
/// check inside strings it skips, so the text is checked first.
fn validate_json(body: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(body).map_err(|e| not_utf8(e.valid_up_to() as u64))?;
    serde_json::from_str::<IgnoredAny>(text).map(|_| ()).map_err(|e| format!("invalid JSON: {e}"))
}

fn not_utf8(at: u64) -> String {
    format!("invalid JSON: not UTF-8 at byte {at}")
}

/// Reads `file` to its end, checking that it is UTF-8, a buffer at a time.
fn check_utf8(file: &mut &File) -> Result<(), StoreError> {
    let mut buf = vec![0; VALIDATE_BUFFER_BYTES];
    // Bytes of a sequence cut by the end of the last read, moved to the front; and where they start.
    let (mut carried, mut offset) = (0, 0u64);
    loop {
        let n = match file.read(&mut buf[carried..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        let filled = carried + n;
        let valid = match std::str::from_utf8(&buf[..filled]) {
            Ok(_) => filled,
            Err(e) if e.error_len().is_none() && n > 0 => e.valid_up_to(),
            Err(e) => return Err(StoreError::Invalid(not_utf8(offset + e.valid_up_to() as u64))),
        };
        if n == 0 {
            return Ok(());
        }
        buf.copy_within(valid..filled, 0);
        carried = filled - valid;
        offset += valid as u64;
    }
}

/// `upload_YYYYMMDD_HHMMSS_<uuid>.json`: sortable by time, unique by the v4 uuid.
fn upload_name() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "upload_{:04}{:02}{:02}_{:02}{:02}{:02}_{}.json",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Creates the uploads folder and removes temporary files a crash left behind.
fn remove_leftovers(dir: &Path) -> io::Result<usize> {
    fs::create_dir_all(dir)?;
    let mut removed = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX) {
            fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> PathBuf {
        crate::fuzzing::temp_dir("storage")
    }

    /// Uploads stored in the folder at `path`, as the server would know it, without preparing it (which
    /// sweeps temporary files).
    fn store_in(path: &Path) -> UploadStore {
        UploadStore::new(upload_dir(path), FileBudget::new(usize::MAX))
    }

    fn upload_dir(path: &Path) -> UploadDir {
        let held = File::open(path).ok().map(|folder| {
            let meta = folder.metadata().unwrap();
            (folder, (meta.dev(), meta.ino()))
        });
        UploadDir { path: path.to_path_buf(), held }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn json_validation_requires_utf8_and_one_document() {
        assert_eq!(validate_json(b"{\"k\": [1, \"caf\xc3\xa9\"]}"), Ok(()));
        let not_utf8 = validate_json(b"{\"k\": \"\xff\xfe\"}").unwrap_err();
        assert!(not_utf8.contains("not UTF-8 at byte 7"), "{not_utf8}");
        let trailing = validate_json(b"{} {}").unwrap_err();
        assert!(trailing.contains("line 1 column 4"), "{trailing}");
        assert!(validate_json(b"").is_err());
    }

    #[test]
    fn upload_names_are_unique_and_well_formed() {
        let names: std::collections::HashSet<String> = (0..500).map(|_| upload_name()).collect();
        assert_eq!(names.len(), 500);
        let name = names.iter().next().unwrap();
        let parts: Vec<&str> = name.trim_end_matches(".json").split('_').collect();
        assert_eq!(parts[0], "upload");
        assert_eq!((parts[1].len(), parts[2].len(), parts[3].len()), (8, 6, 32));
    }

    #[test]
    fn a_body_in_memory_is_stored_exactly_and_leaves_no_temp_file() {
        let dir = temp_dir();
        let uploads = store_in(&dir);
        let name = uploads.store(None, b"{\"a\": 1}").unwrap();
        assert_eq!(names(&dir), vec![name.clone()]);
        assert_eq!(fs::read(dir.join(name)).unwrap(), b"{\"a\": 1}");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_spooled_body_is_stored_whole_and_checked_from_its_file() {
        let dir = temp_dir();
        let uploads = store_in(&dir);
        let mut spool = None;
        uploads.spill(&mut spool, b"{\"a\": [1,").unwrap();
        uploads.spill(&mut spool, b" 2,").unwrap();
        assert_eq!(names(&dir).len(), 1, "one temporary file");
        assert!(names(&dir)[0].starts_with(TEMP_PREFIX));
        let name = uploads.store(spool, b" 3]}").unwrap();
        assert_eq!(names(&dir), vec![name.clone()]);
        assert_eq!(fs::read(dir.join(name)).unwrap(), b"{\"a\": [1, 2, 3]}");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_invalid_spooled_body_says_why_and_its_file_is_swept() {
        let dir = temp_dir();
        let uploads = store_in(&dir);
        let mut spool = None;
        uploads.spill(&mut spool, b"{\"a\": ").unwrap();
        let refused = uploads.store(spool, b"}");
        assert!(
            matches!(&refused, Err(StoreError::Invalid(why)) if why.contains("column")),
            "{refused:?}"
        );
        assert_eq!(names(&dir).len(), 1, "removed by a sweep, not on drop");
        uploads.leftovers().sweep();
        assert!(names(&dir).is_empty());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_spooled_body_is_checked_for_utf8_across_its_windows() {
        let dir = temp_dir();
        let uploads = store_in(&dir);
        // "é" split between two windows is fine; a lone continuation byte far into the body is not.
        let mut spool = None;
        uploads.spill(&mut spool, b"[\"caf\xc3").unwrap();
        let name = uploads.store(spool, b"\xa9\"]").unwrap();
        assert_eq!(fs::read(dir.join(name)).unwrap(), "[\"café\"]".as_bytes());
        let mut spool = None;
        let mut long = b"[\"".to_vec();
        long.resize(VALIDATE_BUFFER_BYTES + 10, b'a');
        uploads.spill(&mut spool, &long).unwrap();
        let refused = uploads.store(spool, b"\xa9\"]");
        let at = format!("not UTF-8 at byte {}", long.len());
        assert!(
            matches!(&refused, Err(StoreError::Invalid(why)) if why.contains(&at)),
            "{refused:?}"
        );
        let mut spool = None;
        uploads.spill(&mut spool, b"[\"\xc3").unwrap();
        let cut = uploads.store(spool, b"");
        assert!(
            matches!(&cut, Err(StoreError::Invalid(why)) if why.contains("at byte 2")),
            "{cut:?}"
        );
        uploads.leftovers().sweep();
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_abandoned_spool_is_removed_by_the_next_sweep() {
        let dir = temp_dir();
        let uploads = store_in(&dir);
        let mut spool = None;
        uploads.spill(&mut spool, b"[1, 2").unwrap();
        drop(spool);
        assert_eq!(names(&dir).len(), 1);
        uploads.leftovers().sweep();
        assert!(names(&dir).is_empty());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_folder_removed_or_made_again_after_startup_is_refused_and_left_alone() {
        let dir = temp_dir();
        let uploads = dir.join("uploads");
        let prepared = UploadStore::new(UploadDir::prepare(uploads.clone()).0, FileBudget::new(10));
        fs::remove_dir(&uploads).unwrap();
        let missing = prepared.store(None, b"{}");
        assert!(matches!(missing, Err(StoreError::Io(_))), "a missing folder is not made");
        assert!(!uploads.exists());
        fs::create_dir(&uploads).unwrap();
        let replaced = prepared.store(None, b"{}");
        assert!(matches!(&replaced, Err(StoreError::Io(e)) if e.to_string().contains("startup")));
        assert!(names(&uploads).is_empty(), "nothing written into the new folder");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_temporary_file_past_the_open_file_budget_is_busy_and_leaves_nothing() {
        let dir = temp_dir();
        let uploads = UploadStore::new(upload_dir(&dir), FileBudget::new(1));
        let mut first = None;
        uploads.spill(&mut first, b"[1,").unwrap();
        let mut second = None;
        assert!(matches!(uploads.spill(&mut second, b"[2,"), Err(StoreError::Busy)));
        assert!(matches!(uploads.store(None, b"{}"), Err(StoreError::Busy)));
        assert_eq!(names(&dir).len(), 1, "only the first upload's file");
        drop(first);
        uploads.leftovers().sweep();
        assert!(uploads.store(None, b"{}").is_ok(), "its place came back");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn storing_into_a_file_instead_of_a_folder_fails_cleanly() {
        let dir = temp_dir();
        fs::write(dir.join("uploads"), b"not a folder").unwrap();
        assert!(store_in(&dir.join("uploads")).store(None, b"{}").is_err());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn prepare_removes_only_temporary_files() {
        let dir = temp_dir();
        fs::write(dir.join(".upload_a.json.tmp"), b"{").unwrap();
        fs::write(dir.join("upload_b.json"), b"{}").unwrap();
        assert_eq!(UploadDir::prepare(dir.clone()).1.unwrap(), 1);
        assert_eq!(names(&dir), vec!["upload_b.json"]);
        fs::remove_dir_all(dir).unwrap();
    }
}
