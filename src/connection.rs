//! One client connection as an explicit state machine. It reads and writes its transport until `WouldBlock`,
//! carries out what `exchange` decides, and never touches the poll registry, the slab or a file.

use crate::budget::UploadBody;
use crate::context::Context;
use crate::cursor::{Ahead, FileCursor, SEND_FILE_MAX_CHUNK};
use crate::error::HttpError;
use crate::exchange::{self, Decision, Exchange, Origin, Resumption, Upload};
use crate::http::{self, Inbox, Persistence, RequestHead};
use crate::response::{self, Response};
use crate::transport::{self, Drained, Filled, Transport};
use crate::worker::{ConnId, Job, JobError, Output, Task};
use log::{debug, error, info, trace};
use std::io;
use std::time::{Duration, Instant};

/// Reads one connection may make per turn before the loop serves the others; it gets another turn right after.
/// 16 (up to 128 KiB), so one fast sender can't starve everyone else.
const READS_PER_TURN: u32 = 16;

/// Bytes of file one connection may send per turn before the loop serves the others: one span of
/// `cursor::SEND_FILE_MAX_CHUNK` (2 MiB, which a loopback socket takes in a few calls). It gets another
/// turn right after.
const SEND_PER_TURN: usize = SEND_FILE_MAX_CHUNK;

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
    /// Reading an upload body into its window. EOF: close, nothing stored. A stall past the idle timeout, or a
    /// body that falls behind the minimum rate (`Upload::deadline`): 408.
    ReadingBody { exchange: Box<Exchange>, upload: Upload, body: UploadBody },
    /// A worker is writing the body's full window to the upload's temporary file: no reads, and no deadline,
    /// until it is done. Then back to `ReadingBody`.
    Spilling { exchange: Box<Exchange>, upload: Upload },
    /// A job is with the worker pool: no reads and no deadline until its completion arrives.
    AwaitingWorker { exchange: Box<Exchange> },
    /// Flushing `write_buf`, then `next`. A write that stalls past the write timeout drops the client.
    Writing { exchange: Box<Exchange>, next: Next },
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
            State::Spilling { .. } => "Spilling",
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
    Body(Upload, UploadBody),
    /// Part of the file body remains.
    Chunk(FileCursor),
}

/// Whether the state machine can make progress now, or must wait for readiness or a worker.
#[derive(PartialEq, Eq)]
enum Step {
    Continue,
    Wait,
    /// This turn's reads are used up; more input may be waiting, and no new readiness event will say so.
    Yield,
}

/// What a readiness event reported.
#[derive(Debug, Clone, Copy, Default)]
pub struct Readiness {
    /// Input may have arrived.
    pub readable: bool,
    /// The socket has an error: the client is gone.
    pub failed: bool,
    /// The client has shut its side: an end of input waits behind whatever data is queued.
    pub read_closed: bool,
}

impl Readiness {
    /// Input may have arrived, and nothing else: what scripted clients announce.
    #[cfg(any(test, fuzzing))]
    pub const INPUT: Readiness = Readiness { readable: true, failed: false, read_closed: false };
}

/// A client connection over a transport.
pub struct Connection<T> {
    /// Slab key and accept serial; completions carry it back.
    pub id: ConnId,
    transport: T,
    state: State,
    /// Received bytes not yet consumed; may hold the next pipelined request.
    inbox: Inbox,
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
    /// Accepted on the `--redirect-http` listener: every request is sent to its `https://` URL.
    to_https: bool,
    /// The last read took all the input there was, and no readiness has been reported since: another read
    /// would only meet `WouldBlock`, so none is made (a system call saved on every keep-alive request).
    input_drained: bool,
    /// A readiness event reported the client's end of input: reads go on until they meet it.
    input_ends: bool,
}

impl<T: Transport> Connection<T> {
    /// A freshly accepted connection, idle.
    pub fn new(id: ConnId, transport: T, ctx: &Context) -> Connection<T> {
        Connection {
            id,
            transport,
            state: State::Idle,
            inbox: Inbox::default(),
            write_buf: Vec::new(),
            written: 0,
            served: 0,
            deadline: Some(ctx.now + ctx.limits().idle_timeout),
            reads_left: READS_PER_TURN,
            yielded: false,
            queued: false,
            to_https: false,
            // A new socket's first readiness event says whether its request is there yet (registering
            // reports what is already ready), so nothing is read before that.
            input_drained: true,
            input_ends: false,
        }
    }

    /// A connection to the `--redirect-http` listener, idle.
    pub fn redirecting(id: ConnId, transport: T, ctx: &Context) -> Connection<T> {
        Connection { to_https: true, ..Connection::new(id, transport, ctx) }
    }

    /// The client's address, for the per-address count the server keeps.
    pub fn peer(&self) -> std::net::SocketAddr {
        self.transport.peer()
    }

    /// Whether the last turn stopped at its read limit rather than at `WouldBlock`: the server must call
    /// `on_ready` again soon, since edge-triggered readiness won't report the input already waiting.
    pub fn wants_another_turn(&self) -> bool {
        self.yielded && !self.is_closed()
    }

    /// Bytes received and not yet consumed: the fuzz targets check their bound.
    #[cfg(any(test, fuzzing))]
    pub fn inbox_len(&self) -> usize {
        self.inbox.bytes.len()
    }

    /// Between requests, with nothing received: a stop closes it at once.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle) && self.inbox.bytes.is_empty()
    }

    /// A worker is storing its upload.
    pub fn is_storing(&self) -> bool {
        matches!(&self.state, State::AwaitingWorker { exchange } if exchange.storing)
    }

    /// Who it is and where it stands, for the log.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.transport.peer(), self.state.name())
    }

    /// Drops it now (a stop): the server deregisters it after this pass. An idle one is told with
    /// `close_notify` (over TLS) that nothing was cut short; one cut mid-response is not, so its client
    /// can tell.
    pub fn abandon(&mut self, ctx: &Context) {
        if self.is_idle() {
            self.transport.shutdown_write();
        }
        self.transition(State::Closed, ctx);
    }

    /// Whether the server should drop this connection.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Readiness changed (or the last turn yielded): make the progress the transport allows. Edges are not
    /// tracked; each state tries its I/O until `WouldBlock` or the end of its turn, which is what
    /// edge-triggered readiness requires.
    pub fn on_ready(&mut self, ctx: &mut Context, readiness: Readiness) {
        // Only input announces input: an event that says the socket is writable leaves a drained one drained.
        if readiness.readable || readiness.read_closed {
            self.input_drained = false;
        }
        self.input_ends |= readiness.read_closed;
        if readiness.failed {
            debug!("{}: socket error, closing", self.transport.peer());
            self.transition(State::Closed, ctx);
            return;
        }
        self.advance(ctx);
    }

    /// A worker finished this connection's job.
    pub fn on_completion(&mut self, ctx: &mut Context, result: Result<Output, JobError>) {
        let (mut exchange, upload) = match self.take_state() {
            State::AwaitingWorker { exchange } => (exchange, None),
            State::Spilling { exchange, upload } => (exchange, Some(upload)),
            state => {
                self.state = state;
                debug!("{}: dropping a completion it no longer waits for", self.transport.peer());
                return;
            }
        };
        let resumption = exchange::resume(&mut exchange, result, self.transport.peer(), ctx);
        let step = match (resumption, upload) {
            (Resumption::ReadBody(body), Some(mut upload)) => {
                upload.restart(ctx.now, body.received());
                self.transition(State::ReadingBody { exchange, upload, body }, ctx);
                Step::Continue
            }
            // An upload's window could not be written: the rest of its body will not be read.
            (Resumption::Respond(response), Some(_)) => {
                exchange.persistence = Persistence::Close;
                self.respond(ctx, exchange, response)
            }
            (Resumption::Proceed(decision), None) => self.carry_out(ctx, exchange, decision),
            (Resumption::Respond(response), None) => self.respond(ctx, exchange, response),
            (Resumption::Stream { bytes, rest }, None) => {
                // The next chunk is asked for only once the last one is out.
                debug_assert!(self.write_buf.is_empty());
                self.write_buf = bytes;
                self.start_writing(ctx, exchange, rest.map_or(Next::Done, Next::Chunk))
            }
            (Resumption::Abort, _) => self.close(ctx),
            // A result that is not what this state waits for: a bug, and nothing sane is left to send.
            (_, _) => {
                error!(
                    "{}: a worker result this connection did not wait for; closing",
                    self.transport.peer()
                );
                self.close(ctx)
            }
        };
        if step == Step::Continue {
            self.advance(ctx);
        }
    }

    /// The open this connection waited for finished: decide again, now that the cache may hold the file.
    pub fn on_wake(&mut self, ctx: &mut Context) {
        if !matches!(&self.state, State::AwaitingWorker { exchange } if exchange.waiting_for.is_some())
        {
            return;
        }
        let State::AwaitingWorker { mut exchange } = self.take_state() else {
            unreachable!("checked above")
        };
        let decision = exchange::rejoin(&mut exchange, self.transport.peer(), ctx);
        if self.carry_out(ctx, exchange, decision) == Step::Continue {
            self.advance(ctx);
        }
    }

    /// Called on the periodic sweep: acts on an expired deadline.
    pub fn on_tick(&mut self, ctx: &mut Context) {
        if self.deadline.is_none_or(|deadline| deadline > ctx.now) {
            return;
        }
        let peer = self.transport.peer();
        match self.take_state() {
            State::Idle => {
                debug!("{peer}: idle timeout, closing");
                // Over TLS this says `close_notify`: the close is ours, not an attack on the stream.
                self.transport.shutdown_write();
                self.close(ctx);
            }
            State::ReadingHead => {
                info!("{peer}: request head not received in time");
                self.respond_error(ctx, Box::new(Exchange::unparsed()), HttpError::RequestTimeout);
                self.advance(ctx);
            }
            State::ReadingBody { exchange, mut upload, body } => {
                if upload.may_continue(ctx.now, body.received(), ctx.limits()) {
                    self.transition(State::ReadingBody { exchange, upload, body }, ctx);
                    return;
                }
                info!("{peer}: \"{}\" body not received in time", exchange.request_line);
                self.refuse_body(ctx, exchange, HttpError::RequestTimeout);
                self.advance(ctx);
            }
            State::Writing { exchange, .. } => {
                info!("{peer}: \"{}\" client stopped reading, dropping it", exchange.request_line);
                self.close(ctx);
            }
            State::Lingering { .. } => {
                debug!("{peer}: client did not close after our close; closing anyway");
                self.close(ctx);
            }
            // These states have no deadline (the early return above): put the state back untouched.
            state @ (State::AwaitingWorker { .. } | State::Spilling { .. } | State::Closed) => {
                self.state = state
            }
        }
    }

    /// Runs state handlers until one has to wait for the transport or a worker, or the turn ends.
    fn advance(&mut self, ctx: &mut Context) {
        self.reads_left = READS_PER_TURN;
        self.yielded = false;
        loop {
            let step = match self.state {
                State::Idle | State::ReadingHead => self.read_head(ctx),
                State::ReadingBody { .. } => self.read_body(ctx),
                State::Writing { .. } => self.write(ctx),
                State::Lingering { .. } => self.linger(ctx),
                State::AwaitingWorker { .. } | State::Spilling { .. } | State::Closed => Step::Wait,
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
        let limits = ctx.limits();
        self.deadline = match &state {
            State::Idle | State::ReadingHead => Some(ctx.now + limits.idle_timeout),
            State::ReadingBody { upload, .. } => Some(upload.deadline(limits)),
            State::Writing { .. } => Some(ctx.now + limits.write_timeout),
            State::Lingering { .. } => Some(ctx.now + LINGER_TIMEOUT),
            State::AwaitingWorker { .. } | State::Spilling { .. } | State::Closed => None,
        };
        self.state = state;
    }

    /// `Idle` and `ReadingHead`: parse what is buffered, read more, until a head is complete.
    fn read_head(&mut self, ctx: &mut Context) -> Step {
        loop {
            let idle = matches!(self.state, State::Idle);
            match self.inbox.take_head(idle, ctx.limits()) {
                Ok(Some(head)) => return self.start_exchange(ctx, head),
                Ok(None) => {}
                Err(err) => {
                    info!(
                        "{}: malformed request head: {}",
                        self.transport.peer(),
                        err.status().code
                    );
                    return self.respond_error(ctx, Box::new(Exchange::unparsed()), err);
                }
            }
            if idle && !self.inbox.bytes.is_empty() {
                self.transition(State::ReadingHead, ctx);
            }
            if self.input_drained {
                return self.wait_for_input(ctx);
            }
            if !take_read(&mut self.reads_left) {
                return Step::Yield;
            }
            match fill_inbox(&mut self.transport, &mut self.inbox, ctx) {
                Filled::Data { drained } => self.input_drained = drained && !self.input_ends,
                Filled::Blocked => return self.wait_for_input(ctx),
                Filled::Eof => {
                    if !self.inbox.bytes.is_empty() {
                        debug!("{}: client closed mid-head", self.transport.peer());
                    }
                    return self.close(ctx);
                }
                Filled::Failed(e) if transport::is_plain_http(&e) => {
                    debug!(
                        "{}: plain HTTP on the TLS port; told to use https",
                        self.transport.peer()
                    );
                    self.transport.reply_in_clear(&response::https_required(&ctx.date));
                    return self.close(ctx);
                }
                Filled::Failed(e) => return self.fail(ctx, e),
            }
        }
    }

    /// Waits for input. An empty inbox gives its buffer back first: a connection waiting holds none.
    fn wait_for_input(&mut self, ctx: &mut Context) -> Step {
        self.inbox.release_if_empty(&mut ctx.buffers);
        Step::Wait
    }

    /// A complete head arrived: `exchange` decides, and the decision is carried out here.
    fn start_exchange(&mut self, ctx: &mut Context, head: RequestHead) -> Step {
        // Nothing else may follow the head: then the inbox's buffer is not held while the response is made and
        // sent, which may take as long as a slow client takes to read it.
        self.inbox.release_if_empty(&mut ctx.buffers);
        self.served += 1;
        let origin = Origin {
            peer: self.transport.peer(),
            local_ip: self.transport.local_ip(),
            served: self.served,
            to_https: self.to_https,
        };
        let (exchange, decision) = exchange::begin(head, origin, ctx);
        // Boxed, so the states that carry it keep idle connections small.
        self.carry_out(ctx, Box::new(exchange), decision)
    }

    /// Does what `exchange` decided.
    fn carry_out(
        &mut self,
        ctx: &mut Context,
        exchange: Box<Exchange>,
        decision: Decision,
    ) -> Step {
        match decision {
            Decision::Respond(response) => self.respond(ctx, exchange, response),
            Decision::Submit(task) => {
                let shared = task.shared_open();
                let step = self.submit(ctx, exchange, task);
                // Submitted: later requests for the same file wait for this open instead of queueing their own.
                if let (Some(key), State::AwaitingWorker { .. }) = (shared, &self.state) {
                    ctx.opening.entry(key).or_default();
                }
                step
            }
            // The open may have finished meanwhile (a password check held this decision back): then decide
            // again rather than wait for a completion that will never come.
            Decision::Join(key) => match ctx.opening.get_mut(&key) {
                Some(waiters) => {
                    waiters.push(self.id);
                    self.transition(State::AwaitingWorker { exchange }, ctx);
                    Step::Wait
                }
                None => {
                    let mut exchange = exchange;
                    let decision = exchange::rejoin(&mut exchange, self.transport.peer(), ctx);
                    self.carry_out(ctx, exchange, decision)
                }
            },
            Decision::ReadBody { upload, body, expect_continue: true } => {
                self.write_buf.extend_from_slice(http::CONTINUE);
                self.start_writing(ctx, exchange, Next::Body(upload, body))
            }
            Decision::ReadBody { upload, body, .. } => {
                self.transition(State::ReadingBody { exchange, upload, body }, ctx);
                Step::Continue
            }
        }
    }

    /// `ReadingBody`: decode buffered and incoming bytes until the window is full or the body complete, then
    /// have it written out.
    fn read_body(&mut self, ctx: &mut Context) -> Step {
        loop {
            let State::ReadingBody { upload, body, .. } = &mut self.state else {
                unreachable!("read_body outside ReadingBody");
            };
            match upload.absorb(body, &self.inbox.bytes, ctx.limits()) {
                Ok(used) => self.inbox.consume(used),
                Err(err) => {
                    let State::ReadingBody { exchange, .. } = self.take_state() else {
                        unreachable!("checked above")
                    };
                    let (peer, code) = (self.transport.peer(), err.status().code);
                    info!("{peer}: \"{}\" body refused: {code}", exchange.request_line);
                    return self.refuse_body(ctx, exchange, err);
                }
            }
            if upload.decoder.is_done() || body.window_is_full() {
                return self.write_out(ctx);
            }
            if self.input_drained {
                return self.wait_for_input(ctx);
            }
            if !take_read(&mut self.reads_left) {
                return Step::Yield;
            }
            match fill_inbox(&mut self.transport, &mut self.inbox, ctx) {
                Filled::Data { drained } => {
                    self.input_drained = drained && !self.input_ends;
                    upload.arrived(ctx.now);
                    self.deadline = Some(upload.deadline(ctx.limits()));
                }
                Filled::Blocked => return self.wait_for_input(ctx),
                Filled::Eof => {
                    info!("{}: client left mid-body; nothing stored", self.transport.peer());
                    return self.close(ctx);
                }
                Filled::Failed(e) => return self.fail(ctx, e),
            }
        }
    }

    /// The body is complete, or its window full: a worker stores it, or adds the window to its temporary
    /// file. Disk for it is reserved first; a chunked body's size is known only as it arrives.
    fn write_out(&mut self, ctx: &mut Context) -> Step {
        let State::ReadingBody { exchange, upload, mut body } = self.take_state() else {
            unreachable!("write_out outside ReadingBody")
        };
        if let Err(full) = body.reserve_disk() {
            let peer = self.transport.peer();
            info!("{peer}: \"{}\" refused (503): {}", exchange.request_line, full.reason());
            return self.refuse_body(ctx, exchange, HttpError::Unavailable);
        }
        if upload.decoder.is_done() {
            return self.submit(ctx, exchange, Task::Save { body });
        }
        match self.send_job(ctx, Task::Spill { body }) {
            Ok(()) => {
                self.transition(State::Spilling { exchange, upload }, ctx);
                Step::Wait
            }
            Err(err) => self.refuse_body(ctx, exchange, err),
        }
    }

    /// An upload body is refused part way (too large, malformed, too slow, out of memory): the rest of it
    /// will not be read, so the connection closes after the answer.
    fn refuse_body(
        &mut self,
        ctx: &mut Context,
        mut exchange: Box<Exchange>,
        err: HttpError,
    ) -> Step {
        exchange.persistence = Persistence::Close;
        self.respond_error(ctx, exchange, err)
    }

    /// Hands a job to the pool and waits for it; a full queue is answered with 503 at once.
    fn submit(&mut self, ctx: &mut Context, mut exchange: Box<Exchange>, task: Task) -> Step {
        exchange.storing = matches!(task, Task::Save { .. });
        match self.send_job(ctx, task) {
            Ok(()) => {
                self.transition(State::AwaitingWorker { exchange }, ctx);
                Step::Wait
            }
            Err(err) if exchange.head_sent() => {
                let (peer, code) = (self.transport.peer(), err.status().code);
                info!("{peer}: \"{}\" aborted mid-response: {code}", exchange.request_line);
                self.close(ctx)
            }
            Err(err) => self.respond_error(ctx, exchange, err),
        }
    }

    fn send_job(&self, ctx: &Context, task: Task) -> Result<(), HttpError> {
        ctx.shared.pool.submit(Job { conn: self.id, task, reply: ctx.reply.clone() }, ctx.now)
    }

    /// Every failure is answered through here.
    fn respond_error(
        &mut self,
        ctx: &mut Context,
        exchange: Box<Exchange>,
        err: HttpError,
    ) -> Step {
        let response = response::error(err, None, exchange.errors);
        self.respond(ctx, exchange, response)
    }

    /// Queues a final response; what remains of a file body streams through the workers afterwards.
    fn respond(
        &mut self,
        ctx: &mut Context,
        mut exchange: Box<Exchange>,
        mut response: Response,
    ) -> Step {
        let fields = match &ctx.shared.to_https {
            Some(to_https) if self.to_https => &to_https.fields,
            _ => &ctx.shared.extra_headers,
        };
        response.add_fields(fields);
        exchange.settle_persistence(ctx);
        exchange.status = response.status.code;
        exchange.body_bytes = if response::has_body(&exchange.method, response.status) {
            response.body.len()
        } else {
            0
        };
        if self.write_buf.capacity() == 0 {
            self.write_buf = ctx.buffers.take();
        }
        let rest =
            response.encode(&mut self.write_buf, &ctx.date, exchange.persistence, &exchange.method);
        self.start_writing(ctx, exchange, rest.map_or(Next::Done, Next::Chunk))
    }

    fn start_writing(&mut self, ctx: &Context, exchange: Box<Exchange>, next: Next) -> Step {
        self.transition(State::Writing { exchange, next }, ctx);
        Step::Continue
    }

    /// `Writing`: flush `write_buf` and the transport, then move on to what follows.
    fn write(&mut self, ctx: &mut Context) -> Step {
        debug_assert!(matches!(self.state, State::Writing { .. }));
        let before = self.written;
        // Only a file span right after lets the head wait for it; the last bytes of a body never wait.
        let more = matches!(&self.state, State::Writing { next: Next::Chunk(file), .. } if file.file_follows());
        let drained =
            transport::drain(&mut self.transport, &self.write_buf, &mut self.written, more);
        // Progress is bytes taken from us, or bytes of the transport's own (TLS records) that reached the
        // socket: a slow reader that keeps taking them is not cut by the write timeout.
        if self.written > before || self.transport.sent_own_output() {
            self.deadline = Some(ctx.now + ctx.limits().write_timeout);
        }
        match drained {
            Drained::All => {}
            Drained::Blocked => {
                // All of it was taken, and only the transport's own output waits (TLS records): our copy of a
                // large chunk is not needed while a slow client takes them.
                if self.written == self.write_buf.len() {
                    self.release_write_buf(ctx);
                }
                return Step::Wait;
            }
            Drained::Failed(e) => return self.fail(ctx, e),
        }
        self.release_write_buf(ctx);
        let State::Writing { exchange, next } = self.take_state() else {
            unreachable!("checked on entry")
        };
        match next {
            Next::Done => self.finish_exchange(ctx, exchange),
            Next::Body(upload, body) => {
                self.transition(State::ReadingBody { exchange, upload, body }, ctx);
                Step::Continue
            }
            Next::Chunk(file) => self.send_rest(ctx, exchange, file),
        }
    }

    /// Gives `write_buf` back to the pool once all of it is out (the pool lets a file's 64 KiB chunk go): a
    /// download that takes its client minutes holds no buffer for the rest of it.
    fn release_write_buf(&mut self, ctx: &mut Context) {
        ctx.buffers.give(std::mem::take(&mut self.write_buf));
        self.written = 0;
    }

    /// What remains of a file body once `write_buf` is out. Spans in the page cache go from there to the
    /// socket (`sendfile`); made bytes (multipart boundaries) are written; a span the page cache lacks is read
    /// in by a worker first, so the loop never waits on the disk.
    fn send_rest(
        &mut self,
        ctx: &mut Context,
        exchange: Box<Exchange>,
        mut file: FileCursor,
    ) -> Step {
        let mut turn_left = SEND_PER_TURN;
        loop {
            if turn_left == 0 {
                self.keep_writing(exchange, file);
                return Step::Yield;
            }
            let (offset, len) = match file.ahead(ctx.now) {
                None => return self.finish_exchange(ctx, exchange),
                Some(Ahead::Bytes(bytes)) => {
                    self.write_buf = bytes;
                    return self.start_writing(ctx, exchange, Next::Chunk(file));
                }
                Some(Ahead::Uncached) => return self.submit(ctx, exchange, Task::Warm { file }),
                Some(Ahead::Copied) => return self.submit(ctx, exchange, Task::Read { file }),
                Some(Ahead::Cached { offset, len }) => (offset, len),
            };
            match self.transport.send_file(file.file(), offset, len) {
                Ok(0) => {
                    let peer = self.transport.peer();
                    let line = &exchange.request_line;
                    info!(
                        "{peer}: \"{line}\" aborted mid-response: the file ended before its length"
                    );
                    return self.close(ctx);
                }
                Ok(n) => {
                    file.sent(n);
                    turn_left = turn_left.saturating_sub(n);
                    self.deadline = Some(ctx.now + ctx.limits().write_timeout);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.keep_writing(exchange, file);
                    return Step::Wait;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::Unsupported => file.copy_from_now_on(),
                Err(e) => return self.fail(ctx, e),
            }
        }
    }

    /// Back to `Writing` the rest of a file body, with the deadline left as it is: only progress moves it, so
    /// a client that stops reading is still dropped at the write timeout, however often it wakes us.
    fn keep_writing(&mut self, exchange: Box<Exchange>, file: FileCursor) {
        debug_assert!(self.write_buf.is_empty());
        self.state = State::Writing { exchange, next: Next::Chunk(file) };
    }

    /// The response is out: log it, then keep the connection for the next request or close it.
    fn finish_exchange(&mut self, ctx: &mut Context, exchange: Box<Exchange>) -> Step {
        let keep_alive = exchange.persistence.keeps_alive();
        (*exchange).log_done(self.transport.peer(), ctx);
        if keep_alive {
            // Idle connections hold no buffers, so tens of thousands of them stay cheap.
            self.inbox.release_if_empty(&mut ctx.buffers);
            ctx.buffers.give(std::mem::take(&mut self.write_buf));
            self.transition(State::Idle, ctx);
        } else if self.input_drained && self.inbox.bytes.is_empty() {
            // Nothing of the client's is unread, so closing now can't turn into a reset that destroys the
            // response (nginx's `lingering_close on` reasons the same way): the kernel sends the rest, then
            // the FIN, without the shutdown, the wait for the client's FIN and its reads.
            return self.close(ctx);
        } else {
            self.transport.shutdown_write();
            self.inbox = Inbox::default();
            self.transition(State::Lingering { discarded: 0 }, ctx);
        }
        Step::Continue
    }

    /// `Lingering`: discard input until the client closes, the byte cap or the deadline.
    fn linger(&mut self, ctx: &mut Context) -> Step {
        let State::Lingering { discarded } = &mut self.state else {
            unreachable!("linger outside Lingering");
        };
        loop {
            if !take_read(&mut self.reads_left) {
                return Step::Yield;
            }
            match self.transport.read(&mut ctx.scratch[..]) {
                Ok(n) if n > 0 && *discarded + n <= LINGER_MAX_BYTES => *discarded += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Wait,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                _ => return self.close(ctx),
            }
        }
    }

    /// A socket error: the client is gone. Not the server's fault, so only `debug`.
    fn fail(&mut self, ctx: &Context, err: io::Error) -> Step {
        debug!("{}: connection error: {err}", self.transport.peer());
        self.close(ctx)
    }

    /// Moves the state out to change it; the caller puts the next one in (through `transition`, unless it
    /// restores the same state).
    fn take_state(&mut self) -> State {
        std::mem::replace(&mut self.state, State::Closed)
    }

    /// Ends the connection: the server deregisters and drops it after this pass.
    fn close(&mut self, ctx: &Context) -> Step {
        self.transition(State::Closed, ctx);
        Step::Wait
    }
}

/// One read into `inbox`, through a buffer from the loop's pool when it has none.
fn fill_inbox(transport: &mut impl Transport, inbox: &mut Inbox, ctx: &mut Context) -> Filled {
    if inbox.bytes.capacity() == 0 {
        inbox.bytes = ctx.buffers.take();
    }
    transport::fill(transport, &mut inbox.bytes, &mut ctx.scratch[..])
}

/// Spends one read of the turn; false when none are left.
fn take_read(reads_left: &mut u32) -> bool {
    let left = *reads_left > 0;
    *reads_left = reads_left.saturating_sub(1);
    left
}

#[cfg(test)]
mod tests;
