//! Run-time configuration: what the command line sets, and the limits every buffer, queue and wait obeys.

use crate::access_log::Format;
use crate::auth::Users;
use crate::logging::Sink;
use crate::mime::MimeTable;
use crate::tls::Acceptor;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// Everything the server needs to know before it binds.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on; port 0 picks an ephemeral port.
    pub addr: SocketAddr,
    /// The host name given on the command line (`localhost`, `127.0.0.1`, ...), accepted in `Host`.
    pub host_name: String,
    /// Document root; uploads go to `<root>/uploads`.
    pub root: PathBuf,
    /// Number of worker threads doing blocking file work (the original server's MAX_THREADS).
    pub workers: usize,
    /// Extra names accepted in the `Host` header (`--allow-host`), lower-cased.
    pub allowed_hosts: Vec<String>,
    /// How each file type is sent (`--inline`, `--unknown-as-octet-stream`).
    pub mime: MimeTable,
    /// Where the access log goes and in which format; `None` turns it off.
    pub access_log: Option<(Sink, Format)>,
    /// Raised by SIGHUP: the access log reopens its file.
    pub reopen_logs: Arc<AtomicBool>,
    /// Who may use the server; empty: everyone.
    pub users: Users,
    /// Answer CORS preflights and allow every origin (`--cors`).
    pub cors: bool,
    /// Fields added to every response (`--header`), already validated.
    pub extra_headers: Vec<(String, String)>,
    /// The `Cache-Control` value of file responses (`--cache-control`).
    pub cache_control: String,
    /// Folders without an index are listed (`--list-dirs`), instead of 404.
    pub list_dirs: bool,
    /// The certificate the listening port speaks HTTPS with (`--tls-cert`, `--tls-key`); `None`: plain HTTP.
    pub tls: Option<Arc<Acceptor>>,
    /// A second, plain listener on this port whose only answer is a redirect to HTTPS (`--redirect-http`).
    pub redirect_http: Option<u16>,
    /// Bounds on memory, time and concurrency.
    pub limits: Limits,
}

/// Name of the uploads folder inside the root, and the URL path prefix of stored uploads.
pub const UPLOAD_DIR: &str = "uploads";

/// Every bound the server enforces. Defaults are documented on each field.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest request head (request line plus headers). Default 16 KiB, enough for large cookies;
    /// a longer head gets 431 (or 414 when the request line alone is too long).
    pub max_head_bytes: usize,
    /// Longest request target. Default 8 KiB, the size RFC 9112 §3 recommends supporting at least.
    pub max_target_bytes: usize,
    /// Largest accepted upload body. Default 10 MiB; beyond it 413.
    pub max_body_bytes: usize,
    /// Uploads under way at once (`--max-uploads`); more get 503. Each holds at most one window of its body
    /// in memory (`budget::WINDOW_BYTES`, 64 KiB), so this bounds their memory. Default 1024 (64 MiB).
    pub max_uploads: usize,
    /// Disk the temporary files of unfinished uploads may hold together (`--max-upload-disk`); an upload that
    /// would pass it gets 503 (before `100 Continue` when its length is declared). Default 1 GiB; never less
    /// than `max_body_bytes`.
    pub max_upload_disk_bytes: u64,
    /// The window of the minimum upload rate: every `body_timeout`, a body must have brought at least 1 KiB/s
    /// of it, or it gets 408. Default 10 s, so a trickle is cut in seconds.
    pub body_timeout: Duration,
    /// How long a connection may sit between requests, or take to send one. Default 5 s.
    pub idle_timeout: Duration,
    /// How long a response write may make no progress before the client is dropped. Default 30 s.
    pub write_timeout: Duration,
    /// Requests served on one connection before it is closed. Default 100.
    pub max_requests: u32,
    /// Open client connections; beyond it new clients get 503 and are closed. Default 16384.
    pub max_connections: usize,
    /// Connections one client address may hold at once (`--max-conns-per-ip`); more get 503. Off by default
    /// (benchmarks and proxies come from one address).
    pub max_conns_per_ip: Option<usize>,
    /// Files held open between reads by downloads under way (`--max-open-files`); more downloads get 503.
    /// Each is a descriptor beside its connection's socket. Default 4096; at startup it and
    /// `max_connections` are fitted together to the descriptor limit.
    pub max_open_files: usize,
    /// How long a stop (SIGTERM, SIGINT) lets responses and uploads under way finish (`--shutdown-grace`).
    /// Default 10 s.
    pub shutdown_grace: Duration,
    /// Connections the kernel queues for `accept` (`--backlog`). Default 4096, so a burst of connects is not
    /// dropped; the kernel caps it at `net.core.somaxconn`.
    pub listen_backlog: u32,
    /// Jobs waiting for a worker; when full, new requests get 503. Default 1024.
    pub max_queued_jobs: usize,
    /// How long a small file a worker read is served from memory before the disk is consulted again; zero
    /// turns the cache off. Default 1 s (`cache::FRESH_FOR`).
    pub file_cache_window: Duration,
    /// Bytes a worker reads from a file per job; also the most a download holds in memory, even when its
    /// client stops reading. Default 64 KiB: larger chunks measured no faster (sendfile-free copies dominate).
    pub file_chunk_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: 16 * 1024,
            max_target_bytes: 8 * 1024,
            max_body_bytes: 10 * 1024 * 1024,
            max_uploads: 1024,
            max_upload_disk_bytes: 1024 * 1024 * 1024,
            body_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(30),
            max_requests: 100,
            max_connections: 16 * 1024,
            max_queued_jobs: 1024,
            listen_backlog: 4096,
            max_open_files: 4096,
            max_conns_per_ip: None,
            shutdown_grace: Duration::from_secs(10),
            file_chunk_bytes: 64 * 1024,
            file_cache_window: crate::cache::FRESH_FOR,
        }
    }
}
