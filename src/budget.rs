//! What downloads and unfinished uploads may hold across the server: files held open (`--max-open-files`),
//! and, for uploads, their number and their disk. An upload body is held in memory one window at a time
//! (`WINDOW_BYTES`), and each full window goes to the upload's temporary file as it arrives. So the number of
//! uploads under way (`--max-uploads`) bounds their memory, and the disk their temporary files take has a
//! bound of its own (`--max-upload-disk`).

use crate::storage::Spool;
use std::fs::File;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Body bytes one upload holds in memory before they are written to its temporary file. 64 KiB, nginx's
/// `client_body_buffer_size` idea: most JSON documents fit and never touch the disk until they are stored.
pub const WINDOW_BYTES: usize = 64 * 1024;

/// Uploads under way and the disk they hold, across all connections and workers, with their bounds.
#[derive(Debug)]
pub struct UploadBudget {
    uploads: AtomicUsize,
    max_uploads: usize,
    disk: AtomicU64,
    max_disk: u64,
}

/// Which bound refused an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// `--max-uploads` are under way.
    Uploads,
    /// Unfinished uploads would hold more than `--max-upload-disk`.
    Disk,
}

impl Full {
    /// Why, for the log.
    pub fn reason(self) -> &'static str {
        match self {
            Full::Uploads => "as many uploads as allowed are under way (--max-uploads)",
            Full::Disk => "unfinished uploads hold all the disk allowed (--max-upload-disk)",
        }
    }
}

impl UploadBudget {
    /// At most `max_uploads` at once, holding at most `max_disk` bytes in temporary files.
    pub fn new(max_uploads: usize, max_disk: u64) -> Arc<UploadBudget> {
        Arc::new(UploadBudget {
            uploads: AtomicUsize::new(0),
            max_uploads,
            disk: AtomicU64::new(0),
            max_disk,
        })
    }

    /// Admits one more upload. A declared length that doesn't fit in the disk free now is refused at once,
    /// before `100 Continue`; but disk is held only as the body arrives, window by window, so a client that
    /// declares much and sends little holds little (declared lengths held up front let a hundred trickling
    /// clients lock everyone out).
    pub fn admit(self: &Arc<UploadBudget>, declared: Option<u64>) -> Result<UploadBody, Full> {
        if self.uploads.fetch_add(1, Ordering::SeqCst) >= self.max_uploads {
            self.uploads.fetch_sub(1, Ordering::SeqCst);
            return Err(Full::Uploads);
        }
        let free = self.max_disk.saturating_sub(self.disk.load(Ordering::SeqCst));
        if declared.is_some_and(|len| len > free) {
            self.uploads.fetch_sub(1, Ordering::SeqCst);
            return Err(Full::Disk);
        }
        // From here on, dropping the body gives its place back.
        Ok(UploadBody {
            bytes: Vec::new(),
            spool: None,
            spooled: 0,
            reserved: 0,
            budget: Arc::clone(self),
        })
    }
}

/// An upload body on its way to the disk: the window in memory, and the temporary file with what came
/// before it. It holds its place in the budget until it is dropped, on the loop or on a worker.
#[derive(Debug)]
pub struct UploadBody {
    /// The bytes received since the last window went to the file: at most `WINDOW_BYTES`.
    pub bytes: Vec<u8>,
    /// The temporary file, once the body outgrew one window. Boxed: connections carry bodies in their state.
    pub spool: Option<Box<Spool>>,
    spooled: u64,
    /// Disk reserved in the budget.
    reserved: u64,
    budget: Arc<UploadBudget>,
}

impl UploadBody {
    /// Body bytes written to the temporary file so far.
    pub fn spooled(&self) -> u64 {
        self.spooled
    }

    /// Body bytes received so far, in the file and in the window.
    pub fn received(&self) -> u64 {
        self.spooled + self.bytes.len() as u64
    }

    /// Whether the window is full and must go to the file before more is read.
    pub fn window_is_full(&self) -> bool {
        self.bytes.len() >= WINDOW_BYTES
    }

    /// Memory for the rest of the window: a whole window, or less when the body has only `rest` bytes to come
    /// (a declared length). False when the memory can't be had: the caller refuses the upload.
    pub fn make_room(&mut self, rest: Option<u64>) -> bool {
        let window_left = (WINDOW_BYTES - self.bytes.len().min(WINDOW_BYTES)) as u64;
        let more = rest.map_or(window_left, |rest| rest.min(window_left));
        let wanted = self.bytes.len() + more as usize;
        wanted <= self.bytes.capacity()
            || self.bytes.try_reserve_exact(wanted - self.bytes.len()).is_ok()
    }

    /// Disk for everything received so far, refused when unfinished uploads would pass `--max-upload-disk`.
    pub fn reserve_disk(&mut self) -> Result<(), Full> {
        if self.reserve(self.received()) {
            Ok(())
        } else {
            Err(Full::Disk)
        }
    }

    /// The window is in the temporary file now: the next one starts empty.
    pub fn spilled(&mut self) {
        self.spooled += self.bytes.len() as u64;
        self.bytes.clear();
    }

    fn reserve(&mut self, total: u64) -> bool {
        let Some(more) = total.checked_sub(self.reserved).filter(|&more| more > 0) else {
            return true;
        };
        let before = self.budget.disk.fetch_add(more, Ordering::SeqCst);
        if before.saturating_add(more) > self.budget.max_disk {
            self.budget.disk.fetch_sub(more, Ordering::SeqCst);
            return false;
        }
        self.reserved = total;
        true
    }
}

impl Drop for UploadBody {
    fn drop(&mut self) {
        self.budget.uploads.fetch_sub(1, Ordering::SeqCst);
        self.budget.disk.fetch_sub(self.reserved, Ordering::SeqCst);
    }
}

/// Files held open beside the sockets: a slow download keeps its file (a descriptor) for as long as its client
/// takes to read it, and an upload past one window its temporary file until it is stored. Bounded
/// (`--max-open-files`), so neither can take the descriptors that new clients need; past the bound a download
/// or an upload gets 503.
#[derive(Debug)]
pub struct FileBudget {
    held: AtomicUsize,
    /// The most held at once.
    pub limit: usize,
}

impl FileBudget {
    /// A budget of `limit` files.
    pub fn new(limit: usize) -> Arc<FileBudget> {
        Arc::new(FileBudget { held: AtomicUsize::new(0), limit })
    }

    /// Holds `file` under the budget, or gives it back (to be closed) when the budget is spent.
    pub fn hold(self: &Arc<FileBudget>, file: File) -> Option<HeldFile> {
        if self.held.fetch_add(1, Ordering::SeqCst) >= self.limit {
            self.held.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(HeldFile { file, budget: Arc::clone(self) })
    }
}

/// A file held open under the budget; dropping it (closing the file) gives its place back.
#[derive(Debug)]
pub struct HeldFile {
    file: File,
    budget: Arc<FileBudget>,
}

impl HeldFile {
    /// The file.
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl Drop for HeldFile {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
impl HeldFile {
    /// A file held under a budget of its own, for tests.
    pub fn unbounded(file: File) -> HeldFile {
        FileBudget::new(usize::MAX).hold(file).expect("an unbounded budget")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(budget: &UploadBudget) -> (usize, u64) {
        (budget.uploads.load(Ordering::SeqCst), budget.disk.load(Ordering::SeqCst))
    }

    #[test]
    fn uploads_past_the_count_are_refused_and_their_places_come_back() {
        let budget = UploadBudget::new(2, u64::MAX);
        let first = budget.admit(None).unwrap();
        let second = budget.admit(Some(10)).unwrap();
        assert_eq!(budget.admit(None).unwrap_err(), Full::Uploads);
        drop(first);
        let third = budget.admit(None).unwrap();
        drop((second, third));
        assert_eq!(held(&budget), (0, 0));
    }

    #[test]
    fn a_declared_length_past_the_free_disk_is_refused_but_disk_is_held_only_as_bytes_arrive() {
        let budget = UploadBudget::new(10, 1000);
        assert_eq!(budget.admit(Some(1001)).unwrap_err(), Full::Disk, "can never fit");
        let mut first = budget.admit(Some(600)).unwrap();
        assert_eq!(held(&budget), (1, 0), "declaring holds nothing");
        first.bytes.extend_from_slice(&[b' '; 500]);
        assert_eq!(first.reserve_disk(), Ok(()));
        assert_eq!(held(&budget), (1, 500));
        assert_eq!(budget.admit(Some(600)).unwrap_err(), Full::Disk, "500 of 1000 are free");
        assert_eq!(held(&budget), (1, 500), "a refusal holds nothing");
        let small = budget.admit(Some(400)).unwrap();
        drop((first, small));
        assert_eq!(held(&budget), (0, 0));
    }

    #[test]
    fn a_chunked_body_reserves_disk_as_it_grows() {
        let budget = UploadBudget::new(10, 100);
        let mut body = budget.admit(None).unwrap();
        body.bytes.extend_from_slice(&[b' '; 60]);
        assert_eq!(body.reserve_disk(), Ok(()));
        body.spilled();
        assert_eq!((body.spooled(), body.received()), (60, 60));
        body.bytes.extend_from_slice(&[b' '; 60]);
        assert_eq!(body.reserve_disk(), Err(Full::Disk), "120 bytes against a bound of 100");
        assert_eq!(held(&budget), (1, 60));
    }

    #[test]
    fn memory_is_one_window_at_most_and_never_past_what_is_still_to_come() {
        let budget = UploadBudget::new(10, u64::MAX);
        let mut small = budget.admit(Some(100)).unwrap();
        assert!(small.make_room(Some(100)));
        assert_eq!(small.bytes.capacity(), 100);
        let mut large = budget.admit(Some(10 * 1024 * 1024)).unwrap();
        assert!(large.make_room(Some(10 * 1024 * 1024)));
        assert_eq!(large.bytes.capacity(), WINDOW_BYTES);
        large.bytes.resize(WINDOW_BYTES, b' ');
        assert!(large.window_is_full());
        large.spilled();
        assert!(large.make_room(None));
        assert_eq!(large.bytes.capacity(), WINDOW_BYTES, "the window is reused, never grown");
        let mut chunked = budget.admit(None).unwrap();
        chunked.bytes.extend_from_slice(b"[1,");
        assert!(chunked.make_room(None));
        assert_eq!(chunked.bytes.capacity(), WINDOW_BYTES);
    }
}
