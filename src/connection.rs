//! One client connection as an explicit state machine. It reads and writes its socket until `WouldBlock`,
//! hands blocking work to the worker pool, and never touches the poll registry or the slab.

use crate::body::BodyDecoder;
use crate::budget::{UploadBody, INITIAL_BODY_BYTES};
use crate::config::Limits;
use crate::error::HttpError;
use crate::http::{self, BodyFraming, Method, Persistence, RequestHead};
use crate::mime::FileKind;
use crate::routes::{self, Action};
use crate::server::Context;
use crate::status::Status;
use crate::worker::{ConnId, FileCursor, Job, JobError, Output, Task};
use log::{debug, info, trace};
use mio::net::TcpStream;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Bytes asked of the socket per read. 8 KiB: a typical head fits in one read.
const READ_CHUNK: usize = 8 * 1024;

/// Reads one connection may make per turn before the loop serves the others; it gets another turn right after.
/// 16 (up to 128 KiB), so one fast sender can't starve everyone else.
const READS_PER_TURN: u32 = 16;

/// How long a connection we are closing waits for the client to close first. 2 s.
const LINGER_TIMEOUT: Duration = Duration::from_secs(2);

/// Most input discarded while lingering before closing anyway. 1 MiB.
const LINGER_MAX_BYTES: usize = 1024 * 1024;

/// Where this connection is in its request/response cycle.
enum State {
    /// Waiting for the first byte of a request (new or kept alive). EOF or idle timeout: close quietly.
    Idle,
    /// Part of a head is buffered. EOF: close. Timeout (counted from the first byte): 408, then close.
    ReadingHead,
    /// Reading an upload body. EOF: close, nothing stored. A stall past the idle timeout, or a body that
    /// falls behind the minimum rate (`Upload::deadline`): 408.
    ReadingBody { exchange: Exchange, upload: Upload },
    /// A job is with the worker pool: no reads and no deadline until its completion arrives.
    AwaitingWorker { exchange: Exchange },
    /// Flushing `write_buf`, then `next`. A write that stalls past the write timeout drops the client.
    Writing { exchange: Exchange, next: Next },
    /// Our side is shut down; discarding input until the client closes, so unread input can't turn the
    /// close into a reset that destroys the response we just sent (RFC 9112 §9.6).
    Lingering { discarded: usize },
    /// Finished: the server deregisters and drops it.
    Closed,
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            State::Idle => "Idle",
            State::ReadingHead => "ReadingHead",
            State::ReadingBody { .. } => "ReadingBody",
            State::AwaitingWorker { .. } => "AwaitingWorker",
            State::Writing { .. } => "Writing",
            State::Lingering { .. } => "Lingering",
            State::Closed => "Closed",
        }
    }
}

/// What follows once `write_buf` is flushed.
enum Next {
    /// The response is complete.
    Done,
    /// `100 Continue` went out: read the body.
    Body(Upload),
    /// Part of the file remains: a worker reads the next chunk.
    Chunk(FileCursor),
}

/// An upload body on its way in.
struct Upload {
    decoder: BodyDecoder,
    body: UploadBody,
    /// When the body started; with `body_timeout` and the bytes received, it bounds the whole transfer.
    started: Instant,
}

/// The slowest average rate an upload may keep: each KiB received earns one more second beyond
/// `body_timeout`, as in Apache's mod_reqtimeout. A body must keep up at least this much on average.
const MIN_BODY_BYTES_PER_SEC: u64 = 1024;

impl Upload {
    /// When the body times out: after an idle stall, or when it falls behind the minimum rate overall.
    fn deadline(&self, now: Instant, limits: &Limits) -> Instant {
        let earned = Duration::from_secs(self.body.bytes.len() as u64 / MIN_BODY_BYTES_PER_SEC);
        (now + limits.idle_timeout).min(self.started + limits.body_timeout + earned)
    }
}

/// One request and its response, for the access log and the keep-alive decision.
struct Exchange {
    /// `METHOD target HTTP/1.x`, or `-` when the head could not be parsed.
    request_line: String,
    /// HEAD: send the head only.
    head_only: bool,
    /// Decided once per request; errors that break framing downgrade it to `Close`.
    persistence: Persistence,
    /// The status of the final response head once it is queued; 0 before.
    status: u16,
    /// Response bytes written so far.
    sent: u64,
}

impl Exchange {
    /// Whether the final response head has been queued: after that, an error can only close the connection.
    fn head_sent(&self) -> bool {
        self.status != 0
    }

    /// An exchange for a head that could not be parsed: it always ends the connection.
    fn unparsed() -> Exchange {
        Exchange {
            request_line: "-".into(),
            head_only: false,
            persistence: Persistence::Close,
            status: 0,
            sent: 0,
        }
    }
}

/// Whether the state machine can make progress now, or must wait for readiness or a worker.
#[derive(PartialEq, Eq)]
enum Step {
    Continue,
    Wait,
    /// This turn's reads are used up; more input may be waiting, and no new readiness event will say so.
    Yield,
}

/// The result of one read from the socket.
enum Fill {
    Data,
    Blocked,
    Eof,
    Failed(io::Error),
}

/// A client connection.
pub struct Connection {
    /// Slab key and accept serial; completions carry it back.
    pub id: ConnId,
    socket: TcpStream,
    peer: SocketAddr,
    /// The address the client reached us on, for Host checks when bound to 0.0.0.0.
    local_ip: IpAddr,
    state: State,
    /// Received bytes not yet consumed; may hold the next pipelined request.
    read_buf: Vec<u8>,
    /// Length of `read_buf` already known not to hold a complete head, so a trickling head isn't re-parsed per byte.
    scanned: usize,
    write_buf: Vec<u8>,
    written: usize,
    /// Requests started on this connection.
    served: u32,
    /// When the current state times out; `None` while a worker has the request.
    deadline: Option<Instant>,
    /// Reads left in this turn.
    reads_left: u32,
    /// The last turn ended at its read limit, not at `WouldBlock`: the server must run it again.
    yielded: bool,
    /// The server has queued it for another turn; it is queued at most once.
    pub queued: bool,
}

impl Connection {
    /// A freshly accepted connection, idle.
    pub fn new(id: ConnId, socket: TcpStream, peer: SocketAddr, ctx: &Context) -> Connection {
        let local_ip = socket
            .local_addr()
            .map(|a| a.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        Connection {
            id,
            socket,
            peer,
            local_ip,
            state: State::Idle,
            read_buf: Vec::new(),
            scanned: 0,
            write_buf: Vec::new(),
            written: 0,
            served: 0,
            deadline: Some(ctx.now + ctx.limits.idle_timeout),
            reads_left: READS_PER_TURN,
            yielded: false,
            queued: false,
        }
    }

    /// The socket, for (de)registration by the server.
    pub fn socket(&mut self) -> &mut TcpStream {
        &mut self.socket
    }

    /// Whether the last turn stopped at its read limit rather than at `WouldBlock`: the server must call
    /// `on_ready` again soon, since edge-triggered readiness won't report the input already waiting.
    pub fn wants_another_turn(&self) -> bool {
        self.yielded && !self.is_closed()
    }

    /// Whether the server should drop this connection.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Readiness changed (or the last turn yielded): make the progress the socket allows. Edges are not
    /// tracked; each state tries its I/O until `WouldBlock` or the end of its turn, which is what
    /// edge-triggered readiness requires.
    pub fn on_ready(&mut self, ctx: &mut Context, failed: bool) {
        if failed {
            debug!("{}: socket error, closing", self.peer);
            self.transition(State::Closed, ctx);
            return;
        }
        self.advance(ctx);
    }

    /// A worker finished this connection's job.
    pub fn on_completion(&mut self, ctx: &mut Context, result: Result<Output, JobError>) {
        let State::AwaitingWorker { .. } = self.state else {
            debug!(
                "{}: dropping a completion it no longer waits for",
                self.peer
            );
            return;
        };
        let State::AwaitingWorker { mut exchange } =
            std::mem::replace(&mut self.state, State::Closed)
        else {
            unreachable!("checked above")
        };
        let step = match result {
            Ok(Output::Opened {
                path,
                name,
                read_at,
                len,
                kind,
                chunk,
                rest,
            }) => {
                exchange.status = Status::OK.code;
                let persistence = exchange.persistence;
                write_file_head(
                    &mut self.write_buf,
                    &ctx.date,
                    persistence,
                    &name,
                    kind,
                    len,
                );
                self.write_buf.extend_from_slice(&chunk);
                if rest.is_none() && !exchange.head_only {
                    ctx.cache.insert(path, name, kind, chunk, read_at);
                }
                self.start_writing(ctx, exchange, rest)
            }
            Ok(Output::Chunk { bytes, rest }) => {
                self.write_buf = bytes;
                self.start_writing(ctx, exchange, rest)
            }
            Ok(Output::Saved { name }) => {
                exchange.status = Status::CREATED.code;
                write_created(&mut self.write_buf, &ctx.date, exchange.persistence, &name);
                self.start_writing(ctx, exchange, None)
            }
            // The head is already out: the promised length can't be met, so the only honest signal is to close.
            Err(_) if exchange.head_sent() => {
                info!(
                    "{}: \"{}\" aborted mid-response",
                    self.peer, exchange.request_line
                );
                self.transition(State::Closed, ctx);
                Step::Wait
            }
            Err(JobError { error, detail }) => {
                self.respond_error(ctx, exchange, error, detail.as_deref())
            }
        };
        if step == Step::Continue {
            self.advance(ctx);
        }
    }

    /// Called on the periodic sweep: acts on an expired deadline.
    pub fn on_tick(&mut self, ctx: &mut Context) {
        if self.deadline.is_none_or(|deadline| deadline > ctx.now) {
            return;
        }
        match std::mem::replace(&mut self.state, State::Closed) {
            State::Idle => {
                info!("{}: idle timeout, closing", self.peer);
                self.transition(State::Closed, ctx);
            }
            State::ReadingHead => {
                info!("{}: request head not received in time", self.peer);
                self.respond_error(ctx, Exchange::unparsed(), HttpError::RequestTimeout, None);
                self.advance(ctx);
            }
            State::ReadingBody { mut exchange, .. } => {
                exchange.persistence = Persistence::Close;
                info!(
                    "{}: \"{}\" body not received in time",
                    self.peer, exchange.request_line
                );
                self.respond_error(ctx, exchange, HttpError::RequestTimeout, None);
                self.advance(ctx);
            }
            State::Writing { exchange, .. } => {
                info!(
                    "{}: \"{}\" client stopped reading, dropping it",
                    self.peer, exchange.request_line
                );
                self.transition(State::Closed, ctx);
            }
            State::Lingering { .. } => {
                debug!(
                    "{}: client did not close after our close; closing anyway",
                    self.peer
                );
                self.transition(State::Closed, ctx);
            }
            // These states have no deadline (the early return above): put the state back untouched.
            state @ (State::AwaitingWorker { .. } | State::Closed) => self.state = state,
        }
    }

    /// Runs state handlers until one has to wait for the socket or a worker, or the turn ends.
    fn advance(&mut self, ctx: &mut Context) {
        self.reads_left = READS_PER_TURN;
        self.yielded = false;
        loop {
            let step = match self.state {
                State::Idle | State::ReadingHead => self.read_head(ctx),
                State::ReadingBody { .. } => self.read_body(ctx),
                State::Writing { .. } => self.write(ctx),
                State::Lingering { .. } => self.linger(ctx),
                State::AwaitingWorker { .. } | State::Closed => Step::Wait,
            };
            match step {
                Step::Continue => {}
                Step::Wait => return,
                Step::Yield => {
                    self.yielded = true;
                    return;
                }
            }
        }
    }

    /// The one place the state changes; it also sets the deadline the new state lives under.
    fn transition(&mut self, state: State, ctx: &Context) {
        trace!("{:?}: {} -> {}", self.id, self.state.name(), state.name());
        let limits = &ctx.limits;
        self.deadline = match &state {
            State::Idle | State::ReadingHead => Some(ctx.now + limits.idle_timeout),
            State::ReadingBody { upload, .. } => Some(upload.deadline(ctx.now, limits)),
            State::Writing { .. } => Some(ctx.now + limits.write_timeout),
            State::Lingering { .. } => Some(ctx.now + LINGER_TIMEOUT),
            State::AwaitingWorker { .. } | State::Closed => None,
        };
        self.state = state;
    }

    /// `Idle` and `ReadingHead`: parse what is buffered, read more, until a head is complete.
    fn read_head(&mut self, ctx: &mut Context) -> Step {
        debug_assert!(matches!(self.state, State::Idle | State::ReadingHead));
        loop {
            if matches!(self.state, State::Idle) {
                // Empty lines before a request line are ignored (RFC 9112 §2.2 asks for at least one); a
                // flood of them is bounded by the idle timeout, which they don't extend, and the read turn.
                let blank = self
                    .read_buf
                    .iter()
                    .take_while(|&&b| b == b'\r' || b == b'\n')
                    .count();
                self.read_buf.drain(..blank);
                self.scanned = 0;
            }
            let unscanned = &self.read_buf[self.scanned..];
            if unscanned.contains(&b'\n') || self.read_buf.len() > ctx.limits.max_head_bytes {
                match http::parse_head(&self.read_buf, &ctx.limits) {
                    Ok(Some((head, len))) => {
                        self.read_buf.drain(..len);
                        self.scanned = 0;
                        return self.start_exchange(ctx, head);
                    }
                    Ok(None) => self.scanned = self.read_buf.len(),
                    Err(err) => {
                        info!(
                            "{}: malformed request head: {}",
                            self.peer,
                            err.status().code
                        );
                        return self.respond_error(ctx, Exchange::unparsed(), err, None);
                    }
                }
            }
            if !self.read_buf.is_empty() && matches!(self.state, State::Idle) {
                self.transition(State::ReadingHead, ctx);
            }
            if !take_read(&mut self.reads_left) {
                return Step::Yield;
            }
            match fill(&mut self.socket, &mut self.read_buf) {
                Fill::Data => {}
                Fill::Blocked => return Step::Wait,
                Fill::Eof => {
                    if !self.read_buf.is_empty() {
                        debug!("{}: client closed mid-head", self.peer);
                    }
                    self.transition(State::Closed, ctx);
                    return Step::Wait;
                }
                Fill::Failed(e) => return self.fail(ctx, e),
            }
        }
    }

    /// A complete head arrived: check it, route it, and start the response or the body.
    fn start_exchange(&mut self, ctx: &mut Context, head: RequestHead) -> Step {
        self.served += 1;
        let request_line = format!(
            "{} {} HTTP/1.{}",
            head.method.as_str(),
            head.target,
            head.minor_version
        );
        let mut exchange = Exchange {
            request_line,
            head_only: head.method == Method::Head,
            persistence: self.persistence(&head, &ctx.limits),
            status: 0,
            sent: 0,
        };
        debug!("{}: request \"{}\"", self.peer, exchange.request_line);
        let action = self.route(ctx, &head, &exchange.request_line);
        let body_unread = head.framing.has_body() && action != Ok(Action::Upload);
        if body_unread {
            // Where the next request starts is unknown.
            exchange.persistence = Persistence::Close;
        }
        match action {
            Err(err) => self.respond_error(ctx, exchange, err, None),
            Ok(Action::File { path, kind }) => self.start_file(ctx, exchange, path, kind),
            Ok(Action::Upload) => self.start_upload(ctx, exchange, &head),
        }
    }

    /// Checks Host, then routes; every refusal is logged here with its reason.
    fn route(&self, ctx: &Context, head: &RequestHead, line: &str) -> Result<Action, HttpError> {
        let peer = self.peer;
        if let Err(err) = ctx
            .hosts
            .check(head.host.as_deref(), head.minor_version, self.local_ip)
        {
            let host = &head.host;
            info!(
                "{peer}: \"{line}\" refused ({}): Host {host:?} does not name this server",
                err.status().code
            );
            return Err(err);
        }
        routes::route(head, ctx.limits.max_body_bytes).inspect_err(|&err| {
            let reason = routes::refusal_reason(err);
            info!(
                "{peer}: \"{line}\" refused ({}): {reason}",
                err.status().code
            );
        })
    }

    /// Answers from the cache when it holds a fresh copy; otherwise a worker opens the file.
    fn start_file(
        &mut self,
        ctx: &mut Context,
        mut exchange: Exchange,
        path: PathBuf,
        kind: Option<FileKind>,
    ) -> Step {
        let Some(file) = ctx.cache.get(&path, ctx.now) else {
            let task = Task::Open {
                path,
                kind,
                head_only: exchange.head_only,
            };
            return self.submit(ctx, exchange, task);
        };
        debug!(
            "{}: serving {} from memory ({} bytes)",
            self.peer,
            path.display(),
            file.body.len()
        );
        exchange.status = Status::OK.code;
        let (persistence, len) = (exchange.persistence, file.body.len() as u64);
        write_file_head(
            &mut self.write_buf,
            &ctx.date,
            persistence,
            &file.name,
            file.kind,
            len,
        );
        if !exchange.head_only {
            self.write_buf.extend_from_slice(&file.body);
        }
        self.start_writing(ctx, exchange, None)
    }

    /// Reserves memory for the body (all of it, when its length is known) before asking for it with
    /// `100 Continue`, so a refusal comes before the client sends anything.
    fn start_upload(
        &mut self,
        ctx: &mut Context,
        mut exchange: Exchange,
        head: &RequestHead,
    ) -> Step {
        let declared = match head.framing {
            BodyFraming::Length(len) => Some(len),
            BodyFraming::None | BodyFraming::Chunked => None,
        };
        let mut body = UploadBody::new(&ctx.uploads, declared);
        if !body.make_room(INITIAL_BODY_BYTES) {
            info!(
                "{}: \"{}\" refused (503): uploads in progress hold all the memory allowed",
                self.peer, exchange.request_line
            );
            exchange.persistence = Persistence::Close;
            return self.respond_error(ctx, exchange, HttpError::Unavailable, None);
        }
        let upload = Upload {
            decoder: BodyDecoder::new(head.framing),
            body,
            started: ctx.now,
        };
        if head.expect_continue {
            self.write_buf.extend_from_slice(http::CONTINUE);
            self.transition(
                State::Writing {
                    exchange,
                    next: Next::Body(upload),
                },
                ctx,
            );
        } else {
            self.transition(State::ReadingBody { exchange, upload }, ctx);
        }
        Step::Continue
    }

    /// Keep-alive is decided here, once per request (RFC 9112 §9.3); errors that break framing may still
    /// downgrade it to `Close`.
    fn persistence(&self, head: &RequestHead, limits: &Limits) -> Persistence {
        if head.wants_keep_alive() && self.served < limits.max_requests {
            Persistence::KeepAlive {
                timeout_secs: limits.idle_timeout.as_secs(),
                remaining: limits.max_requests - self.served,
            }
        } else {
            Persistence::Close
        }
    }

    /// `ReadingBody`: decode buffered and incoming bytes until the body is complete, then store it.
    fn read_body(&mut self, ctx: &mut Context) -> Step {
        let State::ReadingBody { upload, .. } = &mut self.state else {
            unreachable!("read_body outside ReadingBody");
        };
        loop {
            let max_body = ctx.limits.max_body_bytes;
            let decoded = if upload.body.make_room(self.read_buf.len()) {
                upload
                    .decoder
                    .decode(&self.read_buf, &mut upload.body.bytes, max_body)
            } else {
                Err(HttpError::Unavailable)
            };
            match decoded {
                Ok(used) => {
                    self.read_buf.drain(..used);
                }
                Err(err) => {
                    let State::ReadingBody { mut exchange, .. } =
                        std::mem::replace(&mut self.state, State::Closed)
                    else {
                        unreachable!()
                    };
                    info!(
                        "{}: \"{}\" body refused: {}",
                        self.peer,
                        exchange.request_line,
                        err.status().code
                    );
                    exchange.persistence = Persistence::Close;
                    return self.respond_error(ctx, exchange, err, None);
                }
            }
            if upload.decoder.is_done() {
                let State::ReadingBody { exchange, upload } =
                    std::mem::replace(&mut self.state, State::Closed)
                else {
                    unreachable!()
                };
                return self.submit(ctx, exchange, Task::Save { body: upload.body });
            }
            if !take_read(&mut self.reads_left) {
                return Step::Yield;
            }
            match fill(&mut self.socket, &mut self.read_buf) {
                Fill::Data => self.deadline = Some(upload.deadline(ctx.now, &ctx.limits)),
                Fill::Blocked => return Step::Wait,
                Fill::Eof => {
                    info!("{}: client left mid-body; nothing stored", self.peer);
                    self.transition(State::Closed, ctx);
                    return Step::Wait;
                }
                Fill::Failed(e) => return self.fail(ctx, e),
            }
        }
    }

    /// Hands a job to the pool; a full queue is answered with 503 at once.
    fn submit(&mut self, ctx: &mut Context, exchange: Exchange, task: Task) -> Step {
        let job = Job {
            conn: self.id,
            task,
        };
        match ctx.pool.submit(job, ctx.now) {
            Ok(()) => {
                self.transition(State::AwaitingWorker { exchange }, ctx);
                Step::Wait
            }
            Err(err) if exchange.head_sent() => {
                info!(
                    "{}: \"{}\" aborted mid-response: {}",
                    self.peer,
                    exchange.request_line,
                    err.status().code
                );
                self.transition(State::Closed, ctx);
                Step::Wait
            }
            Err(err) => self.respond_error(ctx, exchange, err, None),
        }
    }

    /// Queues the one error reply every failure goes through.
    fn respond_error(
        &mut self,
        ctx: &Context,
        mut exchange: Exchange,
        err: HttpError,
        detail: Option<&str>,
    ) -> Step {
        exchange.status = err.status().code;
        http::write_error(
            &mut self.write_buf,
            err,
            detail,
            &ctx.date,
            exchange.persistence,
            exchange.head_only,
        );
        self.transition(
            State::Writing {
                exchange,
                next: Next::Done,
            },
            ctx,
        );
        Step::Continue
    }

    fn start_writing(
        &mut self,
        ctx: &Context,
        exchange: Exchange,
        rest: Option<FileCursor>,
    ) -> Step {
        let next = rest.map_or(Next::Done, Next::Chunk);
        self.transition(State::Writing { exchange, next }, ctx);
        Step::Continue
    }

    /// `Writing`: flush `write_buf`, then move on to what follows.
    fn write(&mut self, ctx: &mut Context) -> Step {
        let State::Writing { exchange, .. } = &mut self.state else {
            unreachable!("write outside Writing");
        };
        while self.written < self.write_buf.len() {
            match self.socket.write(&self.write_buf[self.written..]) {
                Ok(0) => return self.fail(ctx, io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.written += n;
                    exchange.sent += n as u64;
                    self.deadline = Some(ctx.now + ctx.limits.write_timeout);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Wait,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(ctx, e),
            }
        }
        self.write_buf.clear();
        self.written = 0;
        let State::Writing { exchange, next } = std::mem::replace(&mut self.state, State::Closed)
        else {
            unreachable!()
        };
        match next {
            Next::Done => self.finish_exchange(ctx, exchange),
            Next::Body(upload) => {
                self.transition(State::ReadingBody { exchange, upload }, ctx);
                Step::Continue
            }
            Next::Chunk(file) => self.submit(ctx, exchange, Task::Read { file }),
        }
    }

    /// The response is out: log it, then keep the connection for the next request or close it.
    fn finish_exchange(&mut self, ctx: &mut Context, exchange: Exchange) -> Step {
        let keep_alive = exchange.persistence.keeps_alive();
        let then = if keep_alive { "keep-alive" } else { "close" };
        info!(
            "{} \"{}\" {} {} {then}",
            self.peer, exchange.request_line, exchange.status, exchange.sent
        );
        if keep_alive {
            // Idle connections hold no buffers, so tens of thousands of them stay cheap.
            if self.read_buf.is_empty() {
                self.read_buf = Vec::new();
            }
            self.write_buf = Vec::new();
            self.transition(State::Idle, ctx);
        } else {
            let _ = self.socket.shutdown(Shutdown::Write);
            self.read_buf = Vec::new();
            self.transition(State::Lingering { discarded: 0 }, ctx);
        }
        Step::Continue
    }

    /// `Lingering`: discard input until the client closes, the byte cap or the deadline.
    fn linger(&mut self, ctx: &mut Context) -> Step {
        let State::Lingering { discarded } = &mut self.state else {
            unreachable!("linger outside Lingering");
        };
        let mut scratch = [0u8; READ_CHUNK];
        loop {
            if !take_read(&mut self.reads_left) {
                return Step::Yield;
            }
            match self.socket.read(&mut scratch) {
                Ok(n) if n > 0 && *discarded + n <= LINGER_MAX_BYTES => *discarded += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Wait,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                _ => {
                    self.transition(State::Closed, ctx);
                    return Step::Wait;
                }
            }
        }
    }

    /// A socket error: the client is gone. Not the server's fault, so only `debug`.
    fn fail(&mut self, ctx: &Context, err: io::Error) -> Step {
        debug!("{}: connection error: {err}", self.peer);
        self.transition(State::Closed, ctx);
        Step::Wait
    }
}

/// Spends one read of the turn; false when none are left.
fn take_read(reads_left: &mut u32) -> bool {
    let left = *reads_left > 0;
    *reads_left = reads_left.saturating_sub(1);
    left
}

/// One read from the socket, appended to `buf`. It reads into the stack first, so a connection that is
/// woken with nothing to read never grows a heap buffer: idle connections stay a few hundred bytes each.
fn fill(socket: &mut TcpStream, buf: &mut Vec<u8>) -> Fill {
    let mut scratch = [0u8; READ_CHUNK];
    loop {
        return match socket.read(&mut scratch) {
            Ok(0) => Fill::Eof,
            Ok(n) => {
                buf.extend_from_slice(&scratch[..n]);
                Fill::Data
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Fill::Blocked,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Fill::Failed(e),
        };
    }
}

/// The head of a 200 response carrying a file.
fn write_file_head(
    out: &mut Vec<u8>,
    date: &str,
    persistence: Persistence,
    name: &str,
    kind: FileKind,
    len: u64,
) {
    let disposition;
    let fields: &[(&str, &str)] = match kind {
        FileKind::Inline(content_type) => &[("Content-Type", content_type)],
        FileKind::Download => {
            disposition = format!("attachment; filename=\"{}\"", quoted_filename(name));
            &[
                ("Content-Type", "application/octet-stream"),
                ("Content-Disposition", &disposition),
            ]
        }
    };
    http::write_head(out, Status::OK, date, fields, len, persistence);
}

/// The 201 answer to a stored upload, worded as the original server's.
fn write_created(out: &mut Vec<u8>, date: &str, persistence: Persistence, name: &str) {
    let url = routes::upload_url(name);
    let quoted = serde_json::Value::from(url.as_str());
    let body = format!(
        "{{\"status\": \"success\", \"message\": \"File created successfully\", \"filepath\": {quoted}}}"
    );
    let fields = [
        ("Content-Type", "application/json"),
        ("Location", url.as_str()),
    ];
    http::write_head(
        out,
        Status::CREATED,
        date,
        &fields,
        body.len() as u64,
        persistence,
    );
    out.extend_from_slice(body.as_bytes());
}

/// A file name safe inside a quoted `filename="..."` parameter: printable ASCII without quotes or backslashes.
fn quoted_filename(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_are_made_safe_for_quoting() {
        assert_eq!(quoted_filename("my photo.jpg"), "my photo.jpg");
        assert_eq!(quoted_filename("a\"b\\c\r\n.txt"), "a_b_c__.txt");
        assert_eq!(quoted_filename("café.txt"), "caf_.txt");
    }
}
