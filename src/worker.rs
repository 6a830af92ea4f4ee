//! The worker pool: the only code that blocks on the disk. Jobs come in over a bounded queue; each
//! completion goes back over a channel, and the worker wakes the event loop.

use crate::auth;
use crate::budget::{FileBudget, HeldFile, UploadBody};
use crate::cursor::{read_span, FileCursor};
use crate::error::HttpError;
use crate::listing;
use crate::mime::FileKind;
use crate::negotiate::{Coding, Encodings};
use crate::storage::{Leftovers, StoreError, UploadStore};
use log::{debug, error, info, warn};
use mio::Waker;
use rustix::fs::{openat2, statat, AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::fs::{self, File};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

/// Slab key plus a per-accept serial, so a late completion for a closed and reused slot is dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnId {
    /// The connection's slab key (and mio token).
    pub key: usize,
    /// Unique per accepted connection.
    pub serial: u64,
}

/// Work for a worker, on behalf of one connection.
#[derive(Debug)]
pub struct Job {
    /// Who gets the completion.
    pub conn: ConnId,
    /// What to do.
    pub task: Task,
    /// Where the completion goes: the event loop that owns the connection.
    pub reply: Reply,
}

/// The blocking operations the loop hands off.
#[derive(Debug)]
pub enum Task {
    /// Resolve `path` (relative to the root), check it stays inside, open it (or its precompressed variant,
    /// when `accept` takes one that exists), and read it whole if `prefetch` and it is no larger than one
    /// chunk (the response will send it, and the cache keep it; HEAD needs only the length).
    /// A missing index is answered with a listing of `list` when that is set (`--list-dirs`).
    Open {
        path: PathBuf,
        kind: Option<FileKind>,
        prefetch: bool,
        accept: Encodings,
        list: Option<PathBuf>,
    },
    /// Read the next chunk of a file being sent into memory (the fallback when the loop can't send it
    /// from the page cache).
    Read { file: FileCursor },
    /// Read the next span of a file being sent into the page cache, for the loop to send from there.
    Warm { file: FileCursor },
    /// Write an upload's full window to its temporary file (made on the first), and hand the body back.
    Spill { body: UploadBody },
    /// Validate a finished upload as JSON and store it durably under a new name.
    Save { body: UploadBody },
    /// Check a password against an Argon2 hash: slow on purpose, so never on the loop.
    Verify { password: String, hash: String },
}

/// What a response needs to know about a file, whether it comes from a worker or from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMeta {
    /// Its length in bytes: the Content-Length of a full response.
    pub len: u64,
    /// How it is sent.
    pub kind: FileKind,
    /// When it was last modified, to the nanosecond where the filesystem keeps it.
    pub mtime: SystemTime,
    /// Its inode, so a file replaced by another of the same size and time still gets a new ETag.
    pub inode: u64,
    /// The coding of these bytes, when they are a precompressed variant (`NAME.br`, `NAME.gz`).
    pub encoding: Option<Coding>,
    /// The file has precompressed variants, so responses for it vary by `Accept-Encoding`.
    pub varies: bool,
}

#[cfg(any(test, fuzzing))]
impl FileMeta {
    /// A file of `len` bytes and this kind, with fixed validators.
    pub fn sample(len: u64, kind: FileKind) -> FileMeta {
        FileMeta {
            len,
            kind,
            mtime: SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_953_600),
            inode: 1,
            encoding: None,
            varies: false,
        }
    }
}

/// A file a worker opened: what it is, and all of it if it is small and the response will send it.
#[derive(Debug)]
pub struct OpenedFile {
    /// The path asked for, relative to the root.
    pub path: PathBuf,
    /// The codings the request took, which chose the variant: with `path`, the cache key.
    pub accept: Encodings,
    /// Its length, type and validators.
    pub meta: FileMeta,
    /// When the file was read, so a cached copy's age counts from here, not from delivery.
    pub read_at: Instant,
    /// The whole file, when it is small enough to read at once; otherwise empty.
    pub first: Vec<u8>,
    /// The open file, unless `first` is all of it.
    pub file: Option<HeldFile>,
}

/// A finished job's result.
#[derive(Debug)]
pub struct Completion {
    /// The connection that asked.
    pub conn: ConnId,
    /// What came of it.
    pub result: Result<Output, JobError>,
    /// The file a shareable open was for (a whole GET, cacheable): other requests for it wait for this one.
    pub opened: Option<OpenKey>,
}

/// A file as one request takes it: its path and the codings taken, which choose the variant.
pub type OpenKey = (PathBuf, Encodings);

impl Task {
    /// The key of an open whose result others may wait for: a whole-body GET outside a listing.
    pub fn shared_open(&self) -> Option<OpenKey> {
        match self {
            Task::Open { path, prefetch: true, accept, list: None, .. } => {
                Some((path.clone(), *accept))
            }
            _ => None,
        }
    }
}

/// What a successful job produced.
#[derive(Debug)]
pub enum Output {
    /// A file was opened.
    Opened(OpenedFile),
    /// The path is a folder, asked for without its trailing slash.
    Folder,
    /// A folder's listing page, for a folder without an index.
    Listing { page: Vec<u8> },
    /// The next chunk of a file, and the rest if any.
    Chunk { bytes: Vec<u8>, rest: Option<FileCursor> },
    /// An upload's window is on disk; its body comes back to read on into.
    Spilled { body: UploadBody },
    /// An upload was stored under `name` in the uploads folder.
    Saved { name: String },
    /// Whether the password matched the hash.
    Verified(bool),
}

/// The way back to one event loop: its completion channel and the waker that makes it look.
#[derive(Debug, Clone)]
pub struct Reply {
    done: Sender<Completion>,
    waker: Arc<Waker>,
}

impl Reply {
    /// A channel to the loop that `waker` wakes; the loop reads completions from the receiver.
    pub fn channel(waker: Arc<Waker>) -> (Reply, Receiver<Completion>) {
        let (done, completions) = mpsc::channel();
        (Reply { done, waker }, completions)
    }

    /// Hands a completion back; false when the loop is gone, which happens only at exit. Wakes coalesce,
    /// so the loop drains the channel on each wake.
    fn send(&self, completion: Completion) -> bool {
        if self.done.send(completion).is_err() {
            return false;
        }
        if let Err(e) = self.waker.wake() {
            error!("worker: cannot wake the event loop: {e}");
        }
        true
    }
}

/// A failed job: the status to answer with, and a reason the client may see.
#[derive(Debug)]
pub struct JobError {
    /// The status.
    pub error: HttpError,
    /// Why, for the response body.
    pub detail: Option<String>,
}

impl From<io::Error> for JobError {
    fn from(err: io::Error) -> Self {
        let message = err.to_string();
        let error = HttpError::from(err);
        if error == HttpError::Internal {
            error!("file access failed: {message}");
        }
        JobError { error, detail: None }
    }
}

impl From<HttpError> for JobError {
    fn from(error: HttpError) -> Self {
        JobError { error, detail: None }
    }
}

/// What every worker needs to know: fixed at startup.
#[derive(Debug)]
pub struct WorkerConfig {
    /// The canonical document root.
    pub root: PathBuf,
    /// The root, opened once for openat2; `None` where the kernel (or a seccomp filter) refuses openat2.
    pub root_dir: Option<OwnedFd>,
    /// Where uploads are stored; their temporary files draw on `open_files` too.
    pub uploads: UploadStore,
    /// Bytes read per chunk.
    pub chunk_bytes: usize,
    /// Files held open between reads, across all downloads and unfinished uploads.
    pub open_files: Arc<FileBudget>,
}

/// A fixed set of threads taking jobs from one FIFO queue, so uploads and downloads queue fairly.
///
/// New work (opening a file, checking a password) is admitted only while fewer than `capacity` jobs wait;
/// beyond that the request gets 503. Work for a response or an upload already under way is always admitted
/// (the next chunk of a download, an upload's next window, storing it), so overload never cuts one short;
/// each connection has at most one such job, and uploads are bounded by `--max-uploads`.
pub struct WorkerPool {
    jobs: Option<Sender<Job>>,
    leftovers: Arc<Leftovers>,
    capacity: usize,
    threads: Vec<JoinHandle<()>>,
    stats: Arc<PoolStats>,
    /// Whether we last saw every worker busy with jobs waiting.
    saturated: AtomicBool,
    /// When a warning was last logged: overload must not flood the log.
    last_warning: Mutex<Option<Instant>>,
    /// Requests answered 503 since the last warning.
    refused: AtomicU64,
}

/// How long an idle worker waits for a job before it removes what abandoned uploads left anyway. 1 s.
const TIDY_INTERVAL: Duration = Duration::from_secs(1);

/// Least time between two pool warnings. 1 s.
const WARNING_INTERVAL: Duration = Duration::from_secs(1);

/// Counters shared with the workers, for status lines and admission.
#[derive(Debug, Default)]
struct PoolStats {
    busy: AtomicUsize,
    queued: AtomicUsize,
    /// Password checks queued or running.
    verifying: AtomicUsize,
    /// The last cause of failed upload writes.
    store_failures: Failures,
    /// The pool is being dropped: jobs still queued are skipped, so no upload is stored unacknowledged.
    closing: AtomicBool,
}

/// Password checks queued or running at once; more get 503. 8: each costs about 19 MiB and tens of
/// milliseconds, so a flood of guessed credentials takes at most 8 workers' time and never starves file work.
const MAX_VERIFYING: usize = 8;

impl WorkerPool {
    /// Starts `size` workers that admit new work while fewer than `capacity` jobs wait.
    pub fn new(size: usize, capacity: usize, config: WorkerConfig) -> io::Result<WorkerPool> {
        let (job_tx, job_rx) = mpsc::channel::<Job>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let config = Arc::new(config);
        let stats = Arc::new(PoolStats::default());
        let mut threads = Vec::with_capacity(size);
        for n in 0..size {
            let worker = Worker {
                jobs: Arc::clone(&job_rx),
                config: Arc::clone(&config),
                stats: Arc::clone(&stats),
            };
            threads.push(
                thread::Builder::new().name(format!("worker-{n}")).spawn(move || worker.run())?,
            );
        }
        Ok(WorkerPool {
            jobs: Some(job_tx),
            leftovers: Arc::clone(config.uploads.leftovers()),
            capacity,
            threads,
            stats,
            saturated: AtomicBool::new(false),
            last_warning: Mutex::new(None),
            refused: AtomicU64::new(0),
        })
    }

    /// A pool without threads whose jobs wait in the returned queue, for tests that deliver completions by hand.
    #[cfg(any(test, fuzzing))]
    pub fn without_workers(capacity: usize) -> (WorkerPool, Receiver<Job>) {
        let (jobs, queue) = mpsc::channel();
        let pool = WorkerPool {
            jobs: Some(jobs),
            leftovers: Arc::default(),
            capacity,
            threads: Vec::new(),
            stats: Arc::default(),
            saturated: AtomicBool::new(false),
            last_warning: Mutex::new(None),
            refused: AtomicU64::new(0),
        };
        (pool, queue)
    }

    /// Queues a job without blocking; the loop must never wait. New work beyond the capacity is refused
    /// with `Unavailable` (503).
    pub fn submit(&self, job: Job, now: Instant) -> Result<(), HttpError> {
        let under_way = matches!(
            job.task,
            Task::Read { .. } | Task::Warm { .. } | Task::Spill { .. } | Task::Save { .. }
        );
        let verifies = matches!(job.task, Task::Verify { .. });
        if verifies && self.stats.verifying.load(Ordering::SeqCst) >= MAX_VERIFYING {
            debug!("worker pool: {MAX_VERIFYING} password checks under way; answering 503");
            return Err(HttpError::Unavailable);
        }
        if !under_way && self.stats.queued.load(Ordering::SeqCst) >= self.capacity {
            self.refused.fetch_add(1, Ordering::SeqCst);
            if self.may_warn(now) {
                warn!(
                    "worker pool: queue full ({}); {} request(s) answered 503",
                    self.status(),
                    self.refused.swap(0, Ordering::SeqCst)
                );
            }
            return Err(HttpError::Unavailable);
        }
        let jobs = self.jobs.as_ref().ok_or(HttpError::Unavailable)?;
        self.stats.queued.fetch_add(1, Ordering::SeqCst);
        if verifies {
            self.stats.verifying.fetch_add(1, Ordering::SeqCst);
        }
        if jobs.send(job).is_err() {
            self.stats.queued.fetch_sub(1, Ordering::SeqCst);
            error!("worker pool: all workers have exited");
            return Err(HttpError::Unavailable);
        }
        self.report(now);
        Ok(())
    }

    /// Logs the pool status, and a warning when it becomes saturated (every worker busy, jobs waiting).
    pub fn report(&self, now: Instant) {
        let queued = self.stats.queued.load(Ordering::SeqCst);
        let busy = self.stats.busy.load(Ordering::SeqCst);
        let saturated = queued > 0 && busy >= self.threads.len();
        let was_saturated = self.saturated.swap(saturated, Ordering::SeqCst);
        if saturated && !was_saturated && self.may_warn(now) {
            warn!("worker pool saturated: {}; jobs are queueing", self.status());
        } else if self.refused.load(Ordering::SeqCst) > 0 && self.may_warn(now) {
            // 503s counted while warnings were rate-limited would otherwise go unreported.
            warn!(
                "worker pool: {} request(s) answered 503 ({})",
                self.refused.swap(0, Ordering::SeqCst),
                self.status()
            );
        } else {
            debug!("worker pool: {}", self.status());
        }
    }

    fn may_warn(&self, now: Instant) -> bool {
        let mut last = match self.last_warning.lock() {
            Ok(last) => last,
            Err(poisoned) => poisoned.into_inner(),
        };
        let due = last.is_none_or(|at| now.duration_since(at) >= WARNING_INTERVAL);
        if due {
            *last = Some(now);
        }
        due
    }

    fn status(&self) -> String {
        let busy = self.stats.busy.load(Ordering::SeqCst);
        let queued = self.stats.queued.load(Ordering::SeqCst);
        format!("busy {busy}/{}, queued {queued}", self.threads.len())
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        // Closing the queue ends each worker's `recv`, then we wait for them to finish their current job;
        // jobs still queued are skipped: their connections are gone.
        self.stats.closing.store(true, Ordering::SeqCst);
        drop(self.jobs.take());
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        // The skipped jobs' uploads were dropped with the queue: their files go now.
        self.leftovers.sweep();
    }
}

struct Worker {
    jobs: Arc<Mutex<Receiver<Job>>>,
    config: Arc<WorkerConfig>,
    stats: Arc<PoolStats>,
}

impl Worker {
    fn run(self) {
        loop {
            // Hold the lock only while taking a job, never while running it. An idle pool still removes what
            // abandoned uploads left, within a tidy interval.
            let job = match self.jobs.lock() {
                Ok(jobs) => jobs.recv_timeout(TIDY_INTERVAL),
                Err(poisoned) => poisoned.into_inner().recv_timeout(TIDY_INTERVAL),
            };
            let Job { conn, task, reply } = match job {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => {
                    self.config.uploads.leftovers().sweep();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            self.stats.queued.fetch_sub(1, Ordering::SeqCst);
            if self.stats.closing.load(Ordering::SeqCst) {
                continue;
            }
            self.stats.busy.fetch_add(1, Ordering::SeqCst);
            let verifies = matches!(task, Task::Verify { .. });
            let opened = task.shared_open();
            // A bug in one job must not leave its connection waiting forever or shrink the pool.
            let result = panic::catch_unwind(AssertUnwindSafe(|| self.perform(task)))
                .unwrap_or_else(|_| {
                    error!("worker: a job panicked");
                    Err(HttpError::Internal.into())
                });
            if verifies {
                self.stats.verifying.fetch_sub(1, Ordering::SeqCst);
            }
            self.stats.busy.fetch_sub(1, Ordering::SeqCst);
            self.config.uploads.leftovers().sweep();
            // Nobody waits for the rest of the queue once the loop has gone.
            if !reply.send(Completion { conn, result, opened }) {
                return;
            }
        }
    }

    fn perform(&self, task: Task) -> Result<Output, JobError> {
        match task {
            Task::Open { path, kind, prefetch, accept, list } => {
                match (self.open(path, kind, prefetch, accept), list) {
                    (Err(JobError { error: HttpError::NotFound, .. }), Some(folder)) => {
                        Ok(Output::Listing { page: self.list(&folder)? })
                    }
                    (opened, _) => opened,
                }
            }
            Task::Read { file } => {
                let (bytes, rest) = file.read_chunk(self.config.chunk_bytes)?;
                Ok(Output::Chunk { bytes, rest })
            }
            Task::Warm { file } => {
                Ok(Output::Chunk { bytes: Vec::new(), rest: Some(file.warm()?) })
            }
            Task::Spill { mut body } => {
                let spilled = self.config.uploads.spill(&mut body.spool, &body.bytes);
                spilled.map_err(|e| self.store_failed(e))?;
                body.spilled();
                Ok(Output::Spilled { body })
            }
            Task::Save { body } => self.save(body),
            Task::Verify { password, hash } => Ok(Output::Verified(auth::verify(&password, &hash))),
        }
    }

    fn open(
        &self,
        path: PathBuf,
        kind: Option<FileKind>,
        prefetch: bool,
        accept: Encodings,
    ) -> Result<Output, JobError> {
        let read_at = Instant::now();
        let mut file = self.open_inside_root(&path)?;
        let mut stat = file.metadata()?;
        if stat.is_dir() {
            return Ok(Output::Folder);
        }
        if !stat.is_file() {
            return Err(HttpError::NotFound.into());
        }
        let kind = kind.ok_or(HttpError::UnsupportedMediaType)?;
        // Every variant is looked for, taken or not: its mere existence makes responses vary.
        let (mut encoding, mut varies) = (None, false);
        for coding in [Coding::Br, Coding::Gzip] {
            let Some((variant, variant_stat)) = self.variant(&path, coding) else {
                continue;
            };
            varies = true;
            if encoding.is_none() && accept.takes(coding) {
                (file, stat, encoding) = (variant, variant_stat, Some(coding));
            }
        }
        let mtime = http_time(stat.modified().unwrap_or(SystemTime::UNIX_EPOCH));
        let meta = FileMeta { len: stat.len(), kind, mtime, inode: stat.ino(), encoding, varies };
        debug!("serving {:?} ({} bytes, {:?})", path, meta.len, encoding);
        // A small file is read whole (and cached); a larger one is sent from the page cache by the loop, so
        // nothing of it is read here: a client that stalls at once holds no chunk for its write timeout.
        let whole = prefetch && meta.len <= self.config.chunk_bytes as u64;
        let ahead = if whole { meta.len } else { 0 };
        let mut first = Vec::new();
        read_span(&file, 0, ahead, &mut first)?;
        let file = if first.len() as u64 == meta.len {
            None
        } else {
            match self.config.open_files.hold(file) {
                Some(held) => Some(held),
                None => {
                    debug!(
                        "{path:?}: {} files held open already (--max-open-files): 503",
                        self.config.open_files.limit
                    );
                    return Err(HttpError::Unavailable.into());
                }
            }
        };
        Ok(Output::Opened(OpenedFile { path, accept, meta, read_at, first, file }))
    }

    /// The listing page of `folder` (relative to the root), at most `listing::MAX_ENTRIES` entries.
    fn list(&self, folder: &Path) -> Result<Vec<u8>, JobError> {
        let at = if folder.as_os_str().is_empty() { Path::new(".") } else { folder };
        let dir = self.open_inside_root(at)?;
        let mut entries = Vec::new();
        let mut left_out = 0;
        let mut reader = Dir::read_from(&dir).map_err(io::Error::from)?;
        while let Some(entry) = reader.read() {
            let entry = entry.map_err(io::Error::from)?;
            let Ok(name) = entry.file_name().to_str() else {
                continue;
            };
            if name == "." || name == ".." || !listing::is_listed(name) {
                continue;
            }
            if entries.len() == listing::MAX_ENTRIES {
                left_out += 1;
                continue;
            }
            // Symlinks are not followed: their targets' sizes and times are nobody's business here.
            let stat = statat(&dir, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW).ok();
            let kind = stat.as_ref().map(|s| FileType::from_raw_mode(s.st_mode));
            let is_dir = kind == Some(FileType::Directory);
            let size = stat
                .as_ref()
                .filter(|_| kind == Some(FileType::RegularFile))
                .map(|s| s.st_size as u64);
            let modified = stat.as_ref().map(|s| {
                let nanos = u32::try_from(s.st_mtime_nsec).unwrap_or(0);
                let secs = u64::try_from(s.st_mtime).unwrap_or(0);
                http_time(SystemTime::UNIX_EPOCH + Duration::new(secs.min(LATEST_HTTP_DATE), nanos))
            });
            entries.push(listing::Entry { name: name.to_owned(), is_dir, size, modified });
        }
        let mut url = String::from("/");
        for part in folder.iter() {
            url.push_str(&part.to_string_lossy());
            url.push('/');
        }
        Ok(listing::render(&url, entries, left_out))
    }

    /// The precompressed variant of `path` in this coding, if it exists as a regular file.
    fn variant(&self, path: &Path, coding: Coding) -> Option<(File, fs::Metadata)> {
        let mut name = path.as_os_str().to_owned();
        name.push(coding.suffix());
        let file = self.open_inside_root(Path::new(&name)).ok()?;
        let stat = file.metadata().ok()?;
        stat.is_file().then_some((file, stat))
    }

    /// Opens `path` (relative, already free of `..`) inside the root, refusing symlinks that lead out.
    ///
    /// openat2 with RESOLVE_BENEATH resolves and opens in one step in the kernel, so nothing can be swapped
    /// in between a check and the open; it also refuses absolute symlinks. O_NONBLOCK keeps a FIFO from
    /// blocking the worker (reads of regular files ignore it).
    fn open_inside_root(&self, path: &Path) -> Result<File, JobError> {
        let Some(root_dir) = &self.config.root_dir else {
            return open_resolved(&self.config.root, path);
        };
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
        // EAGAIN: a rename somewhere on the system raced a lookup through `..`; the kernel asks us to retry.
        for _ in 0..OPENAT2_RETRIES {
            match openat2(root_dir, path, flags, Mode::empty(), ResolveFlags::BENEATH) {
                Ok(fd) => return Ok(File::from(fd)),
                Err(Errno::XDEV) => return Err(escaped(path)),
                Err(Errno::AGAIN) => continue,
                Err(e) => return Err(io::Error::from(e).into()),
            }
        }
        open_resolved(&self.config.root, path)
    }

    fn save(&self, mut body: UploadBody) -> Result<Output, JobError> {
        let started = Instant::now();
        let len = body.received();
        match self.config.uploads.store(body.spool.take(), &body.bytes) {
            Ok(name) => {
                self.stats.store_failures.clear();
                info!("upload stored: {name} ({len} bytes in {:?})", started.elapsed());
                Ok(Output::Saved { name })
            }
            Err(e) => Err(self.store_failed(e)),
        }
    }

    /// An upload could not be written or stored. Invalid JSON is 400 with the reason. No room (ENOSPC,
    /// EDQUOT) or over the file size limit (EFBIG, with SIGXFSZ ignored) is 507. No descriptor for its
    /// temporary file (`--max-open-files`, EMFILE, ENFILE) is overload, 503. Anything else is our fault, 500.
    /// Either way its temporary file is swept after the job.
    fn store_failed(&self, e: StoreError) -> JobError {
        let e = match e {
            StoreError::Invalid(reason) => {
                info!("upload rejected: {reason}");
                return JobError { error: HttpError::BadRequest, detail: Some(reason) };
            }
            StoreError::Busy => {
                debug!(
                    "upload: {} files held open already (--max-open-files): 503",
                    self.config.open_files.limit
                );
                return HttpError::Unavailable.into();
            }
            StoreError::Io(e) => e,
        };
        let errno =
            |errnos: &[Errno]| errnos.iter().any(|n| e.raw_os_error() == Some(n.raw_os_error()));
        if errno(&[Errno::MFILE, Errno::NFILE]) {
            warn!("upload: out of file descriptors: {e}; answering 503");
            return HttpError::Unavailable.into();
        }
        let error = if errno(&[Errno::NOSPC, Errno::DQUOT, Errno::FBIG]) {
            HttpError::InsufficientStorage
        } else {
            HttpError::Internal
        };
        self.stats.store_failures.note(&e, || {
            format!(
                "upload failed: cannot store in {}: {e}",
                self.config.uploads.dir().path().display()
            )
        });
        error.into()
    }
}

/// The last cause of failed upload writes, shared by the workers: a full disk is logged once, not once per
/// request, until an upload succeeds again or the cause changes.
#[derive(Debug, Default)]
struct Failures {
    last: Mutex<Option<(io::ErrorKind, Option<i32>)>>,
}

impl Failures {
    /// Logs `message` if `err` is a new cause.
    fn note(&self, err: &io::Error, message: impl FnOnce() -> String) {
        let mut last = match self.last.lock() {
            Ok(last) => last,
            Err(poisoned) => poisoned.into_inner(),
        };
        let cause = (err.kind(), err.raw_os_error());
        if *last != Some(cause) {
            *last = Some(cause);
            error!("{} (logged once until it changes or an upload succeeds)", message());
        }
    }

    fn clear(&self) {
        if let Ok(mut last) = self.last.lock() {
            *last = None;
        }
    }
}

/// The last second an HTTP date can name: 9999-12-31T23:59:59Z.
const LATEST_HTTP_DATE: u64 = 253_402_300_799;

/// A file time as an HTTP date can carry it: before 1970 is 1970, after 9999 is 9999. Filesystems keep
/// both (`touch -d 1960-01-01`), and a validator must never fail to format.
fn http_time(time: SystemTime) -> SystemTime {
    let latest = SystemTime::UNIX_EPOCH + Duration::from_secs(LATEST_HTTP_DATE);
    time.clamp(SystemTime::UNIX_EPOCH, latest)
}

/// Times openat2 is retried when a concurrent rename makes it answer EAGAIN. 4.
const OPENAT2_RETRIES: usize = 4;

/// Opens the root for openat2 and checks that openat2 works here: `None` on kernels before 5.6, or where a
/// seccomp filter refuses it, so the worker falls back to resolving and checking paths itself.
pub fn open_root(root: &Path) -> io::Result<Option<OwnedFd>> {
    // O_PATH: searching the root needs only execute permission, not read.
    let dir =
        rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    match openat2(&dir, ".", OFlags::PATH | OFlags::CLOEXEC, Mode::empty(), ResolveFlags::BENEATH) {
        Ok(_) => Ok(Some(dir)),
        Err(Errno::NOSYS | Errno::PERM) => {
            warn!("openat2 is unavailable: paths are resolved and checked before opening instead");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// The fallback for `open_inside_root`: resolve, check, then open. A symlink swapped in between the check and
/// the open could still escape; openat2 closes that window where the kernel has it.
fn open_resolved(root: &Path, path: &Path) -> Result<File, JobError> {
    let full = fs::canonicalize(root.join(path))?;
    if !full.starts_with(root) {
        return Err(escaped(path));
    }
    let nonblocking = OFlags::NONBLOCK.bits() as i32;
    Ok(File::options().read(true).custom_flags(nonblocking).open(&full)?)
}

/// A path whose resolution leaves the root: logged as the security refusal it is.
fn escaped(path: &Path) -> JobError {
    info!("rejected {path:?}: resolves outside the root (symlink)");
    HttpError::Forbidden.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cursor::Segment;

    fn temp_dir() -> PathBuf {
        crate::fuzzing::temp_dir("unit")
    }

    fn worker_config(dir: &Path) -> WorkerConfig {
        let open_files = FileBudget::new(2);
        let uploads = crate::storage::UploadDir::prepare(dir.join("uploads")).0;
        WorkerConfig {
            root: dir.to_path_buf(),
            root_dir: open_root(dir).unwrap(),
            uploads: UploadStore::new(uploads, Arc::clone(&open_files)),
            chunk_bytes: 4,
            open_files,
        }
    }

    #[test]
    fn symlinks_leading_out_of_the_root_are_refused_by_both_open_paths() {
        let outside = temp_dir();
        fs::write(outside.join("secret.txt"), b"secret").unwrap();
        let root = temp_dir().canonicalize().unwrap();
        fs::write(root.join("inside.txt"), b"inside").unwrap();
        std::os::unix::fs::symlink(outside.join("secret.txt"), root.join("out.txt")).unwrap();
        std::os::unix::fs::symlink("inside.txt", root.join("alias.txt")).unwrap();
        let worker = Worker {
            jobs: Arc::new(Mutex::new(mpsc::channel().1)),
            config: Arc::new(worker_config(&root)),
            stats: Arc::default(),
        };
        let status = |result: Result<File, JobError>| {
            result.map(|_| 200).unwrap_or_else(|e| e.error.status().code)
        };
        assert_eq!(status(worker.open_inside_root(Path::new("out.txt"))), 403);
        assert_eq!(status(open_resolved(&root, Path::new("out.txt"))), 403);
        assert_eq!(status(worker.open_inside_root(Path::new("alias.txt"))), 200);
        assert_eq!(status(open_resolved(&root, Path::new("alias.txt"))), 200);
        assert_eq!(status(worker.open_inside_root(Path::new("missing.txt"))), 404);
        fs::remove_dir_all(root).unwrap();
        fs::remove_dir_all(outside).unwrap();
    }

    #[test]
    fn a_full_queue_refuses_new_work_but_admits_the_next_chunk_of_a_download() {
        let dir = temp_dir();
        fs::write(dir.join("f.txt"), b"0123456789").unwrap();
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), mio::Token(0)).unwrap());
        let (reply, done) = Reply::channel(waker);
        let pool = WorkerPool::new(1, 0, worker_config(&dir)).unwrap();
        let conn = ConnId { key: 0, serial: 1 };
        let open = Task::Open {
            path: "f.txt".into(),
            kind: Some(FileKind { media_type: "image/png", download: true }),
            prefetch: true,
            accept: Encodings::default(),
            list: None,
        };
        let now = Instant::now();
        let job = |task| Job { conn, task, reply: reply.clone() };
        assert_eq!(pool.submit(job(open), now), Err(HttpError::Unavailable));
        let file = HeldFile::unbounded(File::open(dir.join("f.txt")).unwrap());
        let file = FileCursor::new(file, [Segment::File { offset: 0, len: 10 }]).unwrap();
        assert_eq!(pool.submit(job(Task::Read { file }), now), Ok(()));
        let completion = done.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(
            matches!(completion.result, Ok(Output::Chunk { ref bytes, .. }) if bytes == b"0123")
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_listing_hides_dot_files_and_marks_folders() {
        let root = temp_dir().canonicalize().unwrap();
        fs::create_dir_all(root.join("docs/sub")).unwrap();
        fs::write(root.join("docs/<b>.txt"), b"12345").unwrap();
        fs::write(root.join("docs/.hidden"), b"x").unwrap();
        fs::write(root.join("docs/.upload_x.json.tmp"), b"x").unwrap();
        let worker = Worker {
            jobs: Arc::new(Mutex::new(mpsc::channel().1)),
            config: Arc::new(worker_config(&root)),
            stats: Arc::default(),
        };
        let page = String::from_utf8(worker.list(Path::new("docs")).unwrap()).unwrap();
        assert!(page.contains("<title>Index of /docs/</title>"), "{page}");
        assert!(page.contains("<a href=\"sub/\">sub/</a>"), "{page}");
        assert!(
            page.contains("<a href=\"%3Cb%3E.txt\">&lt;b&gt;.txt</a></td><td>5</td>"),
            "{page}"
        );
        assert!(!page.contains("hidden") && !page.contains("upload_x"), "{page}");
        let root_page = String::from_utf8(worker.list(Path::new("")).unwrap()).unwrap();
        assert!(root_page.contains("<a href=\"docs/\">docs/</a>"), "{root_page}");
        assert_eq!(
            worker.list(Path::new("missing")).map(|_| ()).map_err(|e| e.error),
            Err(HttpError::NotFound)
        );
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn file_times_outside_what_http_dates_carry_are_clamped() {
        let before = SystemTime::UNIX_EPOCH - Duration::from_secs(1000);
        assert_eq!(http_time(before), SystemTime::UNIX_EPOCH);
        let after = SystemTime::UNIX_EPOCH + Duration::from_secs(LATEST_HTTP_DATE + 10);
        assert_eq!(httpdate::fmt_http_date(http_time(after)), "Fri, 31 Dec 9999 23:59:59 GMT");
        let now = SystemTime::now();
        assert_eq!(http_time(now), now);
    }

    #[test]
    fn password_checks_are_capped_so_guessing_cannot_starve_file_work() {
        let (pool, _queue) = WorkerPool::without_workers(1024);
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), mio::Token(0)).unwrap());
        let (reply, _done) = Reply::channel(waker);
        let conn = ConnId { key: 0, serial: 1 };
        let verify = || Job {
            conn,
            task: Task::Verify { password: "x".into(), hash: "y".into() },
            reply: reply.clone(),
        };
        let now = Instant::now();
        for _ in 0..MAX_VERIFYING {
            assert_eq!(pool.submit(verify(), now), Ok(()));
        }
        assert_eq!(pool.submit(verify(), now), Err(HttpError::Unavailable));
        let open = Task::Open {
            path: "f".into(),
            kind: None,
            prefetch: true,
            accept: Encodings::default(),
            list: None,
        };
        assert_eq!(pool.submit(Job { conn, task: open, reply: reply.clone() }, now), Ok(()));
    }

    #[test]
    fn downloads_past_the_open_file_budget_get_503_and_a_finished_one_gives_its_place_back() {
        let root = temp_dir().canonicalize().unwrap();
        fs::write(root.join("big.txt"), vec![b'x'; 100]).unwrap();
        let worker = Worker {
            jobs: Arc::new(Mutex::new(mpsc::channel().1)),
            config: Arc::new(worker_config(&root)),
            stats: Arc::default(),
        };
        let open = || {
            let kind = Some(FileKind { media_type: "text/plain", download: true });
            worker.open("big.txt".into(), kind, true, Encodings::default())
        };
        // Chunks of 4 bytes: the file stays open after the first. The budget is 2.
        let first = open().unwrap();
        let second = open().unwrap();
        assert!(matches!(open(), Err(JobError { error: HttpError::Unavailable, .. })));
        drop(first);
        assert!(open().is_ok(), "a closed download gave its place back");
        drop(second);
        fs::remove_dir_all(root).unwrap();
    }
}
