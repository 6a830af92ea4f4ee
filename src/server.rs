//! The event loop: one `mio::Poll` owning the listener, every client socket (in a slab keyed by token) and
//! the waker the worker pool uses to hand back completions.

use crate::access_log::AccessLog;
use crate::budget::{FileBudget, UploadBudget};
use crate::config::Config;
use crate::connection::{Connection, Readiness};
use crate::context::{Context, Shared};
use crate::exchange;
use crate::response;
use crate::routes::{HostPolicy, ToHttps};
use crate::storage::{UploadDir, UploadStore};
use crate::tls::Acceptor;
use crate::transport::sockopt::{self, TcpOption};
use crate::transport::{self, Plain, Stream, Tls};
use crate::worker::{self, Completion, ConnId, Reply, WorkerConfig, WorkerPool};
use log::{debug, error, info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

// Slab keys are the tokens of client sockets; the fixed tokens sit at the top of the range.
const REDIRECT_LISTENER: Token = Token(usize::MAX - 2);
const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX);

/// How often deadlines are checked; the precision of every timeout. 250 ms.
const TICK: Duration = Duration::from_millis(250);

/// Least time between two summaries of refused clients. 1 s.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Readiness events handled per `poll` call. 1024.
const EVENTS_CAPACITY: usize = 1024;

/// How long the kernel holds a new connection whose client has sent nothing, before handing it to `accept`
/// anyway (`TCP_DEFER_ACCEPT`, which h2o sets and nginx's `deferred` asks for). 1 s. Meanwhile the loop
/// wakes once per connection, when its request is there, instead of once for the handshake and again for
/// the request: a fifth of a short connection's server time. A silent client is accepted once it answers the
/// SYN-ACK the kernel sends again after it, and then meets the idle timeout.
const DEFER_ACCEPT_SECS: libc::c_int = 1;

/// Why the server could not start.
#[derive(Debug)]
pub enum StartError {
    /// The address could not be bound (in use, not ours, no permission for the port).
    Listen(io::Error),
    /// Anything after binding: the poller, the document root, the worker threads.
    Setup(io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Listen(e) => write!(f, "cannot listen: {e}"),
            StartError::Setup(e) => write!(f, "cannot start: {e}"),
        }
    }
}

/// The server: bind with [`Server::bind`], then [`Server::run`] forever.
pub struct Server {
    poll: Poll,
    /// `None` once a stop has closed it.
    listener: Option<TcpListener>,
    /// The `--redirect-http` listener; `None` without one, or once a stop has closed it.
    redirect_listener: Option<TcpListener>,
    /// What connections to `listener` speak TLS with; `None` for plain HTTP.
    tls: Option<Arc<Acceptor>>,
    /// Set by a stop: when the grace period ends and what is left is cut.
    drain_until: Option<Instant>,
    conns: Slab<Connection<Stream>>,
    completions: Receiver<Completion>,
    ctx: Context,
    /// Serial for the next accepted connection, so stale completions can be told apart.
    next_serial: u64,
    /// Keys of connections closed during this pass, removed at its end.
    closed: Vec<usize>,
    /// Keys of connections that ended their turn with input possibly waiting; run again next pass.
    runnable: Vec<usize>,
    /// Accepting stopped after an error such as running out of descriptors; retried at the next sweep.
    accept_paused: bool,
    /// An accept error was logged and accepting has not succeeded since.
    accept_failing: bool,
    /// A TLS session could not be started and none has been since.
    tls_failing: bool,
    /// Clients refused over `--max-connections` or `--max-conns-per-ip` since the last summary line.
    refused: u64,
    /// Open connections per client address, counted only under `--max-conns-per-ip`.
    per_ip: HashMap<IpAddr, usize>,
    /// When that summary was last logged: at most one a second, so a flood can't flood the log too.
    refusals_logged: Option<Instant>,
    next_sweep: Instant,
}

impl Server {
    /// Binds the listener, prepares the uploads folder and starts the workers.
    pub fn bind(config: Config) -> Result<Server, StartError> {
        let backlog = config.limits.listen_backlog;
        let listener = listen(config.addr, backlog).map_err(StartError::Listen)?;
        let redirect_listener = match config.redirect_http {
            Some(port) => Some(
                listen(SocketAddr::new(config.addr.ip(), port), backlog)
                    .map_err(StartError::Listen)?,
            ),
            None => None,
        };
        Server::start(config, listener, redirect_listener).map_err(StartError::Setup)
    }

    fn start(
        mut config: Config,
        mut listener: TcpListener,
        mut redirect_listener: Option<TcpListener>,
    ) -> io::Result<Server> {
        let poll = Poll::new()?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let https_port = listener.local_addr()?.port();
        let extra_headers = static_fields(std::mem::take(&mut config.extra_headers), config.cors);
        let to_https = match &mut redirect_listener {
            Some(redirect) => {
                poll.registry().register(redirect, REDIRECT_LISTENER, Interest::READABLE)?;
                let in_the_clear = extra_headers
                    .iter()
                    .filter(|(name, _)| !name.eq_ignore_ascii_case("strict-transport-security"))
                    .copied()
                    .collect();
                Some(ToHttps {
                    hosts: HostPolicy::new(&config, redirect.local_addr()?),
                    https_port,
                    fields: in_the_clear,
                })
            }
            None => None,
        };
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let root = config.root.canonicalize()?;
        let (upload_dir, prepared) = UploadDir::prepare(root.join(crate::config::UPLOAD_DIR));
        let shown = upload_dir.path().display();
        match prepared {
            Ok(0) => {}
            Ok(n) => info!("removed {n} unfinished upload(s) from {shown}"),
            // Downloads still work; uploads answer 500.
            Err(e) => error!("uploads folder {shown} is unusable: {e}"),
        }
        let root_dir = worker::open_root(&root)?;
        let open_files = FileBudget::new(config.limits.max_open_files);
        let worker_config = WorkerConfig {
            root,
            root_dir,
            uploads: UploadStore::new(upload_dir, Arc::clone(&open_files)),
            chunk_bytes: config.limits.file_chunk_bytes,
            open_files,
        };
        let pool = WorkerPool::new(config.workers, config.limits.max_queued_jobs, worker_config)?;
        let shared = Shared {
            hosts: HostPolicy::new(&config, listener.local_addr()?),
            to_https,
            mime: config.mime,
            // Set once and sent on every file response: leaked, so responses borrow it without a copy.
            cache_control: Box::leak(config.cache_control.into_boxed_str()),
            list_dirs: config.list_dirs,
            users: config.users,
            cors: config.cors,
            extra_headers,
            access_log: match config.access_log {
                Some((sink, format)) => Some(AccessLog::start(sink, format, config.reopen_logs)?),
                None => None,
            },
            uploads: UploadBudget::new(
                config.limits.max_uploads,
                config.limits.max_upload_disk_bytes,
            ),
            pool,
            limits: config.limits,
        };
        let (reply, completions) = Reply::channel(waker);
        let ctx = Context::new(Arc::new(shared), reply);
        let now = ctx.now;
        Ok(Server {
            poll,
            listener: Some(listener),
            redirect_listener,
            tls: config.tls,
            drain_until: None,
            conns: Slab::new(),
            completions,
            ctx,
            next_serial: 0,
            closed: Vec::new(),
            runnable: Vec::new(),
            accept_paused: false,
            refused: 0,
            per_ip: HashMap::new(),
            refusals_logged: None,
            accept_failing: false,
            tls_failing: false,
            next_sweep: now + TICK,
        })
    }

    /// The address actually bound (port 0 resolved).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.listener {
            Some(listener) => listener.local_addr(),
            None => Err(io::Error::other("the listener is closed")),
        }
    }

    /// The address the `--redirect-http` listener actually bound.
    pub fn redirect_addr(&self) -> Option<SocketAddr> {
        self.redirect_listener.as_ref().and_then(|listener| listener.local_addr().ok())
    }

    /// Runs the event loop until `stop` is raised (by SIGTERM or SIGINT), or polling itself fails.
    pub fn run(mut self, stop: &AtomicBool) -> io::Result<()> {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        loop {
            // The signal handler only raises the flag; a poll wakes at least every TICK to see it.
            if self.drain_until.is_none() && stop.load(Ordering::Relaxed) {
                self.begin_drain();
            }
            if self.drain_until.is_some() && self.drained() {
                return Ok(());
            }
            // Connections that used up their turn have input waiting that no event will announce again.
            let timeout = if self.runnable.is_empty() { TICK } else { Duration::ZERO };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            self.ctx.tick();
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_all(false),
                    REDIRECT_LISTENER => self.accept_all(true),
                    WAKER => self.deliver_completions(),
                    // Only an error is fatal at once: a hang-up still leaves input to read and, in Lingering,
                    // is exactly what we wait for.
                    Token(key) => {
                        let readiness = Readiness {
                            readable: event.is_readable(),
                            failed: event.is_error(),
                            read_closed: event.is_read_closed(),
                        };
                        self.drive(key, readiness)
                    }
                }
            }
            for key in std::mem::take(&mut self.runnable) {
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.queued = false;
                }
                self.drive(key, Readiness::default());
            }
            if self.ctx.now >= self.next_sweep {
                self.sweep();
                self.next_sweep = self.ctx.now + TICK;
            }
            // Only now, after the whole batch: a slot freed mid-batch and reused by an accept would receive the
            // old socket's remaining events.
            self.reap();
        }
    }

    /// SIGTERM or SIGINT: stop accepting at once, close idle connections, and let the rest finish their
    /// responses (with `Connection: close`) within the grace period.
    fn begin_drain(&mut self) {
        for mut listener in
            [self.listener.take(), self.redirect_listener.take()].into_iter().flatten()
        {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.ctx.draining = true;
        let grace = self.ctx.limits().shutdown_grace;
        self.drain_until = Some(self.ctx.now + grace);
        info!("stopping: no new connections; {} open, {grace:?} to finish", self.conns.len());
    }

    /// One pass of a drain: idle connections are closed; at the end of the grace period the rest are cut,
    /// except uploads a worker is storing: their 201 is owed once the file is there, and the workers finish
    /// their jobs before the process exits anyway. True when nothing is left.
    fn drained(&mut self) -> bool {
        let Some(until) = self.drain_until else { return false };
        let now = self.ctx.now;
        for (key, conn) in self.conns.iter_mut() {
            let expired = now >= until && !conn.is_storing();
            if conn.is_idle() || expired {
                if !conn.is_idle() {
                    warn!("stopping: cut {} at the end of the grace period", conn.describe());
                }
                conn.abandon(&self.ctx);
                self.closed.push(key);
            }
        }
        self.reap();
        if self.conns.is_empty() {
            info!("stopped: drained");
            return true;
        }
        false
    }

    /// One warning a second at most for the clients refused over the connection limit.
    fn report_refusals(&mut self) {
        let due = self
            .refusals_logged
            .is_none_or(|at| self.ctx.now.duration_since(at) >= REFUSAL_LOG_INTERVAL);
        if self.refused > 0 && due {
            warn!(
                "refused {} client(s): {} connections open, at a limit (--max-connections, --max-conns-per-ip)",
                self.refused,
                self.conns.len()
            );
            self.refused = 0;
            self.refusals_logged = Some(self.ctx.now);
        }
    }

    /// Accepts until `WouldBlock`: with edge-triggered readiness, a connection left in the backlog may never
    /// be announced again. `to_https`: from the `--redirect-http` listener.
    fn accept_all(&mut self, to_https: bool) {
        while !self.accept_paused {
            let listener = if to_https { &self.redirect_listener } else { &self.listener };
            let Some(listener) = listener else { return };
            let (socket, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) =>
                {
                    continue
                }
                // Out of descriptors or memory: retrying at once would spin, so wait for the next sweep.
                Err(e) => {
                    // Retried every sweep while it lasts: log once per episode, not four times a second.
                    if !self.accept_failing {
                        error!("accept: {e}; pausing new connections until it succeeds again");
                        self.accept_failing = true;
                    }
                    self.accept_paused = true;
                    return;
                }
            };
            if self.accept_failing {
                info!("accepting new connections again");
                self.accept_failing = false;
            }
            let ip = peer.ip().to_canonical();
            let per_ip = self.per_ip.get(&ip).copied().unwrap_or(0);
            let over_ip_cap = self.ctx.limits().max_conns_per_ip.is_some_and(|cap| per_ip >= cap);
            if over_ip_cap || self.conns.len() >= self.ctx.limits().max_connections {
                debug!("{peer}: refused, {} connections open (the limit)", self.conns.len());
                self.refused += 1;
                self.report_refusals();
                // A TLS client can't read a 503 in the clear, and a handshake would cost what the limit
                // saves: it gets no reply, only a close (a FIN, since its ClientHello is read first).
                let reply = if self.tls.is_none() || to_https {
                    response::over_capacity(&self.ctx.date)
                } else {
                    Vec::new()
                };
                Plain::refuse(socket, &reply);
                continue;
            }
            self.register(socket, peer, to_https);
        }
    }

    fn register(&mut self, socket: TcpStream, peer: SocketAddr, to_https: bool) {
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        let interest = Interest::READABLE | Interest::WRITABLE;
        let local_ip = transport::prepare(&socket, self.ctx.shared.hosts.bound());
        let mut transport = match &self.tls {
            Some(acceptor) if !to_https => {
                match Tls::new(socket, peer, local_ip, acceptor.config()) {
                    Ok(tls) => {
                        self.tls_failing = false;
                        Stream::Tls(Box::new(tls))
                    }
                    // rustls refuses only settings it accepted at startup, so this is never expected: logged
                    // once, not once per client.
                    Err(e) => {
                        if !self.tls_failing {
                            error!("{peer}: cannot start TLS: {e}; refusing connections while it lasts");
                            self.tls_failing = true;
                        }
                        return;
                    }
                }
            }
            _ => Stream::Plain(Plain::new(socket, peer, local_ip)),
        };
        if let Err(e) = self.poll.registry().register(&mut transport, Token(key), interest) {
            error!("{peer}: cannot register socket: {e}");
            return;
        }
        self.next_serial += 1;
        let id = ConnId { key, serial: self.next_serial };
        debug!("{peer}: new connection");
        entry.insert(if to_https {
            Connection::redirecting(id, transport, &self.ctx)
        } else {
            Connection::new(id, transport, &self.ctx)
        });
        if self.ctx.limits().max_conns_per_ip.is_some() {
            *self.per_ip.entry(peer.ip().to_canonical()).or_default() += 1;
        }
    }

    fn drive(&mut self, key: usize, readiness: Readiness) {
        // An unknown key is a stale or spurious event: ignore it.
        if let Some(conn) = self.conns.get_mut(key) {
            conn.on_ready(&mut self.ctx, readiness);
            self.after_turn(key);
        }
    }

    /// Wakes coalesce, so one event may stand for many completions: drain them all.
    fn deliver_completions(&mut self) {
        while let Ok(done) = self.completions.try_recv() {
            match self.conns.get_mut(done.conn.key) {
                Some(conn) if conn.id == done.conn && !conn.is_closed() => {
                    conn.on_completion(&mut self.ctx, done.result);
                    self.after_turn(done.conn.key);
                }
                // Its client left meanwhile (the slot may even hold a newer connection); dropping the result
                // closes any file it carries. A small file read whole is still worth keeping for the others.
                _ => {
                    debug!("dropping a completion for closed connection {:?}", done.conn);
                    exchange::keep_orphan(done.result, &mut self.ctx);
                }
            }
            // Whoever waited for this open decides again: most find the file in the cache now. Even when its
            // own client left, the wait is over.
            let waiters =
                done.opened.and_then(|key| self.ctx.opening.remove(&key)).unwrap_or_default();
            for id in waiters {
                if let Some(conn) = self.conns.get_mut(id.key).filter(|conn| conn.id == id) {
                    conn.on_wake(&mut self.ctx);
                    self.after_turn(id.key);
                }
            }
        }
        self.ctx.shared.pool.report(self.ctx.now);
    }

    fn sweep(&mut self) {
        for (key, conn) in self.conns.iter_mut() {
            conn.on_tick(&mut self.ctx);
            if conn.is_closed() {
                self.closed.push(key);
            }
        }
        self.ctx.cache.expire(self.ctx.now);
        self.report_refusals();
        if self.accept_paused {
            self.accept_paused = false;
            self.accept_all(false);
            self.accept_all(true);
        }
    }

    /// Notes what a connection needs after running: removal, or another turn.
    fn after_turn(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.is_closed() {
            self.closed.push(key);
        } else if conn.wants_another_turn() && !conn.queued {
            conn.queued = true;
            self.runnable.push(key);
        }
    }

    /// Drops the connections that closed during this pass.
    fn reap(&mut self) {
        for key in self.closed.drain(..) {
            if self.conns.get(key).is_some_and(Connection::is_closed) {
                // Dropped without a deregister: closing the socket takes it out of the epoll set, and the
                // system call saved is one per connection.
                let conn = self.conns.remove(key);
                let ip = conn.peer().ip().to_canonical();
                if let Some(count) = self.per_ip.get_mut(&ip) {
                    *count -= 1;
                    if *count == 0 {
                        self.per_ip.remove(&ip);
                    }
                }
            }
        }
    }
}

/// Binds `addr` with a listen queue of `backlog` connections (the kernel caps it at `net.core.somaxconn`):
/// std and mio pick the queue length themselves, too short for a burst of thousands of connects.
fn listen(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    use rustix::net::{self as sys, AddressFamily, SocketFlags, SocketType};
    let family = if addr.is_ipv4() { AddressFamily::INET } else { AddressFamily::INET6 };
    let socket = sys::socket_with(
        family,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )?;
    sys::sockopt::set_socket_reuseaddr(&socket, true)?;
    sys::bind(&socket, &addr)?;
    // Only an optimisation: a kernel without it accepts as usual.
    if let Err(e) = sockopt::set(&socket, TcpOption::DeferAccept, DEFER_ACCEPT_SECS) {
        warn!("{addr}: cannot set TCP_DEFER_ACCEPT: {e}");
    }
    sys::listen(&socket, i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(TcpListener::from_std(std::net::TcpListener::from(socket)))
}

/// The configured fields as the `'static` text responses borrow: set once, kept for the life of the process.
fn static_fields(fields: Vec<(String, String)>, cors: bool) -> Vec<(&'static str, &'static str)> {
    let mut fields: Vec<(&'static str, &'static str)> = fields
        .into_iter()
        .map(|(name, value)| {
            (&*Box::leak(name.into_boxed_str()), &*Box::leak(value.into_boxed_str()))
        })
        .collect();
    if cors {
        fields.push(("Access-Control-Allow-Origin", "*"));
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Read back from the kernel, which keeps it as a count of SYN-ACK retransmissions and answers in seconds.
    #[test]
    fn the_listener_defers_accept_until_a_request_arrives() {
        let listener = listen(SocketAddr::from(([127, 0, 0, 1], 0)), 16).unwrap();
        let value = sockopt::get(&listener, TcpOption::DeferAccept).unwrap();
        assert!(value >= DEFER_ACCEPT_SECS, "TCP_DEFER_ACCEPT is {value}");

        // The kernel holds a silent client for at least the option's second, then hands it over once it
        // sends.
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let silent = listener.accept().map(|_| ()).map_err(|e| e.kind());
        assert_eq!(silent, Err(io::ErrorKind::WouldBlock));
        std::io::Write::write_all(&mut client, b"G").unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Err(e) = listener.accept() {
            assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
            assert!(Instant::now() < deadline, "not accepted after it sent a byte");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
