//! What connections need while they run, split in two: `Shared`, fixed at startup and shared by every event
//! loop, and `Context`, owned by one loop (its clock, its cache, its way back from the workers).

use crate::access_log::AccessLog;
use crate::auth::{Trusted, Users};
use crate::budget::UploadBudget;
use crate::buffers::BufferPool;
use crate::cache::FileCache;
use crate::config::Limits;
use crate::mime::MimeTable;
use crate::routes::{HostPolicy, ToHttps};
use crate::transport::READ_CHUNK;
use crate::worker::{ConnId, OpenKey, Reply, WorkerPool};
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// Immutable server-wide state (the counters inside are atomic).
pub struct Shared {
    /// The configured limits.
    pub limits: Limits,
    /// Which Host values name us.
    pub hosts: HostPolicy,
    /// What the `--redirect-http` listener answers, when there is one.
    pub to_https: Option<ToHttps>,
    /// How each file type is sent.
    pub mime: MimeTable,
    /// The `Cache-Control` value of file responses; fixed for the life of the process.
    pub cache_control: &'static str,
    /// Folders without an index are listed (`--list-dirs`), instead of 404.
    pub list_dirs: bool,
    /// Where each response is recorded; `None` when the access log is off.
    pub access_log: Option<AccessLog>,
    /// Who may use the server (`--auth`, `--auth-file`); empty: everyone.
    pub users: Users,
    /// Answer CORS preflights (`--cors`).
    pub cors: bool,
    /// Fields every response carries (`--header`, and `Access-Control-Allow-Origin` with `--cors`).
    pub extra_headers: Vec<(&'static str, &'static str)>,
    /// Uploads under way and the disk they hold, across connections and workers.
    pub uploads: Arc<UploadBudget>,
    /// Where blocking work goes.
    pub pool: WorkerPool,
}

/// One event loop's state.
pub struct Context {
    /// The server-wide part.
    pub shared: Arc<Shared>,
    /// The time, cached once per loop pass.
    pub now: Instant,
    /// The wall-clock time, read with `now`.
    pub wall: SystemTime,
    /// The `Date` header value, refreshed when the second changes.
    pub date: String,
    date_second: u64,
    /// Small files recently read, served without a worker round trip.
    pub cache: FileCache,
    /// How workers hand completions back to this loop.
    pub reply: Reply,
    /// Credentials that lately passed a hash check.
    pub trusted: Trusted,
    /// A stop is under way: every response says `Connection: close`.
    pub draining: bool,
    /// The buffer every read goes through first, zeroed once for the life of the loop.
    pub scratch: Box<[u8; READ_CHUNK]>,
    /// Read and write buffers connections gave back, for the next requests.
    pub buffers: BufferPool,
    /// Files a worker is opening for a request whose result the cache will keep, and the connections that
    /// wait for it: a thousand misses for one hot file cost one job, not a thousand.
    pub opening: HashMap<OpenKey, Vec<ConnId>>,
    /// The last `Host` value that passed, and the local address it came in on: nearly every request names
    /// the server as the one before did, and the check parses addresses (6% of a small request's work).
    pub known_host: RefCell<Option<(String, IpAddr)>>,
}

impl Context {
    /// A loop's context over `shared`, with its clock read now.
    pub fn new(shared: Arc<Shared>, reply: Reply) -> Context {
        let mut ctx = Context {
            now: Instant::now(),
            wall: SystemTime::now(),
            date: String::new(),
            date_second: 0,
            cache: FileCache::new(shared.limits.file_cache_window),
            trusted: Trusted::default(),
            draining: false,
            scratch: Box::new([0; READ_CHUNK]),
            buffers: BufferPool::default(),
            opening: HashMap::new(),
            known_host: RefCell::new(None),
            reply,
            shared,
        };
        ctx.tick();
        ctx
    }

    /// The configured limits.
    pub fn limits(&self) -> &Limits {
        &self.shared.limits
    }

    /// Reads the clock: once per loop pass, so every deadline in a pass agrees.
    pub fn tick(&mut self) {
        self.now = Instant::now();
        let wall = SystemTime::now();
        self.wall = wall;
        let second = wall.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if second != self.date_second {
            self.date_second = second;
            self.date = httpdate::fmt_http_date(wall);
        }
    }
}

/// Contexts without a server, for unit tests and fuzz targets.
#[cfg(any(test, fuzzing))]
pub mod tests {
    use super::*;
    use crate::config::Config;
    use crate::worker::Job;
    use std::sync::mpsc::Receiver;

    /// A loop context for unit tests: a server named `localhost` on 127.0.0.1:8080, and a pool without
    /// threads whose jobs wait in the returned queue, so a test delivers their completions by hand.
    pub fn test_context(limits: Limits) -> (Context, Receiver<Job>) {
        let config = Config {
            tls: None,
            redirect_http: None,
            addr: "127.0.0.1:8080".parse().expect("an address"),
            host_name: "localhost".into(),
            root: ".".into(),
            workers: 0,
            allowed_hosts: Vec::new(),
            cache_control: "no-cache".into(),
            list_dirs: false,
            mime: MimeTable::default(),
            access_log: None,
            reopen_logs: Arc::default(),
            users: Default::default(),
            cors: false,
            extra_headers: Vec::new(),
            limits,
        };
        let (pool, jobs) = WorkerPool::without_workers(config.limits.max_queued_jobs);
        let poll = mio::Poll::new().expect("a poller");
        let waker = mio::Waker::new(poll.registry(), mio::Token(0)).expect("a waker");
        let (reply, _completions) = Reply::channel(Arc::new(waker));
        let shared = Shared {
            hosts: HostPolicy::new(&config, config.addr),
            to_https: None,
            mime: MimeTable::default(),
            cache_control: "no-cache",
            list_dirs: false,
            access_log: None,
            users: Users::default(),
            cors: false,
            extra_headers: Vec::new(),
            uploads: UploadBudget::new(
                config.limits.max_uploads,
                config.limits.max_upload_disk_bytes,
            ),
            pool,
            limits: config.limits,
        };
        (Context::new(Arc::new(shared), reply), jobs)
    }
}
