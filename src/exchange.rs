//! Request handling: a parsed head becomes a decision (respond now, hand a job to the workers, or read a
//! body), and a finished job becomes the response. The connection carries the decisions out; nothing here
//! touches a socket or a file. The exchange record kept here is what the access log reports.

use crate::access_log::Entry;
use crate::auth::Check;
use crate::body::BodyDecoder;
use crate::budget::{UploadBody, WINDOW_BYTES};
use crate::cache::CachedFile;
use crate::config::Limits;
use crate::context::Context;
use crate::cursor::FileCursor;
use crate::error::HttpError;
use crate::http::{BodyFraming, Conditions, Method, Persistence, RequestHead};
use crate::mime::FileKind;
use crate::negotiate;
use crate::negotiate::Encodings;
use crate::response::{self, ErrorFormat, FileRequest, Response, Source, Validators};
use crate::routes::{self, Action};
use crate::status::Status;
use crate::worker::{JobError, OpenKey, OpenedFile, Output, Task};
use log::{debug, info};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

/// One request and its response, for the access log and the keep-alive decision.
#[derive(Debug)]
pub struct Exchange {
    /// `METHOD target HTTP/1.x`, or `-` when the head could not be parsed.
    pub request_line: String,
    /// The method, which decides whether a body is sent.
    pub method: Method,
    /// The request target, for the redirect of a folder asked for without its slash.
    pub target: String,
    /// The conditional and range fields, for the file response once a worker has opened the file.
    pub conditions: Conditions,
    /// How error bodies are written for this client.
    pub errors: ErrorFormat,
    /// A 404 for it is routine (browsers ask for `/favicon.ico` unprompted): logged at debug only.
    pub routine_404: bool,
    /// Decided once per request; errors that break framing downgrade it to `Close`.
    pub persistence: Persistence,
    /// The status of the final response head once it is queued; 0 before.
    pub status: u16,
    /// The body bytes of the final response: what the access log reports once it is out.
    pub body_bytes: u64,
    /// The `Referer` and `User-Agent` fields, for the access log.
    pub referer: Option<String>,
    pub user_agent: Option<String>,
    /// The user who authenticated, for the access log.
    pub user: Option<String>,
    /// What happens once a worker has verified the credentials.
    pub pending: Option<Box<Pending>>,
    /// A worker is storing this upload: a stop waits for it.
    pub storing: bool,
    /// The file this request waits for while another request's open of it is under way.
    pub waiting_for: Option<FileAsk>,
}

/// A decision held back until a password hash is verified.
#[derive(Debug)]
pub struct Pending {
    /// What to do if the password matches.
    decision: Decision,
    /// The `Authorization` value, remembered once it passed.
    authorization: String,
    /// The user it names.
    user: String,
    /// The connection's future if the password matches. Until then it is `Close` when a body follows the
    /// head: any failure (a full queue, a wrong password) answers without reading that body.
    persistence: Persistence,
}

impl Exchange {
    /// An exchange for a head that could not be parsed: it always ends the connection.
    pub fn unparsed() -> Exchange {
        Exchange {
            request_line: "-".into(),
            method: Method::Get,
            target: String::new(),
            conditions: Conditions::default(),
            errors: ErrorFormat::Json,
            routine_404: false,
            persistence: Persistence::Close,
            status: 0,
            body_bytes: 0,
            referer: None,
            user_agent: None,
            user: None,
            pending: None,
            storing: false,
            waiting_for: None,
        }
    }

    /// What a file response to this request depends on.
    fn file_request<'a>(&'a self, ctx: &'a Context) -> FileRequest<'a> {
        FileRequest {
            conditions: &self.conditions,
            cache_control: ctx.shared.cache_control,
            errors: self.errors,
        }
    }

    /// A stop that began while this request was under way makes its response the connection's last.
    pub fn settle_persistence(&mut self, ctx: &Context) {
        if ctx.draining {
            self.persistence = Persistence::Close;
        }
    }

    /// Whether the final response head has been queued: after that, an error can only close the connection.
    pub fn head_sent(&self) -> bool {
        self.status != 0
    }

    /// The response is out: its access-log line. A routine 404 is left out of the access log and noted in
    /// the event log at debug, as servers are usually configured for `/favicon.ico`.
    pub fn log_done(self, peer: SocketAddr, ctx: &Context) {
        if self.routine_404 && self.status == 404 {
            debug!("{peer}: \"{}\" 404 (not in the access log)", self.request_line);
            return;
        }
        let Some(access_log) = &ctx.shared.access_log else {
            return;
        };
        // Client text is cut to a bound, so a stalled sink's full queue can't hold much memory.
        access_log.record(Entry {
            client: peer.ip().to_canonical(),
            user: self.user.map(|u| truncated(u, MAX_LOGGED_FIELD)),
            time: ctx.wall,
            request_line: truncated(self.request_line, MAX_LOGGED_REQUEST_LINE),
            status: self.status,
            body_bytes: self.body_bytes,
            referer: self.referer.map(|r| truncated(r, MAX_LOGGED_FIELD)),
            user_agent: self.user_agent.map(|u| truncated(u, MAX_LOGGED_FIELD)),
        });
    }
}

/// Longest Referer, User-Agent or user name the access log keeps. 1 KiB.
const MAX_LOGGED_FIELD: usize = 1024;

/// Longest request line the access log keeps. 2 KiB.
const MAX_LOGGED_REQUEST_LINE: usize = 2048;

/// `text` cut to at most `max` bytes, at a character boundary.
fn truncated(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// Where an upload body stands while it comes in: its framing, and how fast it arrives. The bytes travel
/// apart from it, in an `UploadBody`, to the workers that write them out.
#[derive(Debug)]
pub struct Upload {
    /// Where the decoder is within the framing.
    pub decoder: BodyDecoder,
    /// The current rate window: when it began, and the body bytes received by then.
    window: (Instant, u64),
    /// When body bytes last arrived.
    last_data: Instant,
}

/// The slowest rate an upload may keep, in every window of `body_timeout` (10 s by default): 1 KiB/s. A body
/// that trickles in a byte at a time is cut at the end of its first window, not hours later.
const MIN_BODY_BYTES_PER_SEC: f64 = 1024.0;

impl Upload {
    /// A body starting now.
    pub fn new(decoder: BodyDecoder, now: Instant) -> Upload {
        Upload { decoder, window: (now, 0), last_data: now }
    }

    /// Takes body bytes from the front of `input` into `body`'s window, returning how many it used. It stops
    /// when the window is full: the connection then has it written out before reading on. Refused when the
    /// body grows past `max_body_bytes` (413), its framing is malformed (400), or memory is short (503).
    pub fn absorb(
        &mut self,
        body: &mut UploadBody,
        input: &[u8],
        limits: &Limits,
    ) -> Result<usize, HttpError> {
        if input.is_empty() {
            return Ok(0);
        }
        if !body.make_room(self.decoder.remaining()) {
            return Err(HttpError::Unavailable);
        }
        let spooled = usize::try_from(body.spooled()).unwrap_or(usize::MAX);
        let max_body = limits.max_body_bytes.saturating_sub(spooled);
        self.decoder.decode(input, &mut body.bytes, max_body, WINDOW_BYTES)
    }

    /// Body bytes arrived.
    pub fn arrived(&mut self, now: Instant) {
        self.last_data = now;
    }

    /// The body's clock starts again now: the time it spent waiting on us (a password check, a window being
    /// written out) is not the client's.
    pub fn restart(&mut self, now: Instant, received: u64) {
        (self.window, self.last_data) = ((now, received), now);
    }

    /// The next moment to look at the body: an idle stall, or the end of the current rate window.
    pub fn deadline(&self, limits: &Limits) -> Instant {
        (self.last_data + limits.idle_timeout).min(self.window.0 + limits.body_timeout)
    }

    /// At a deadline, with `received` body bytes so far: whether the body may go on. A stall may not, nor a
    /// window that brought less than the minimum rate; a window that kept it starts the next (a sliding
    /// check, not an average over the whole).
    pub fn may_continue(&mut self, now: Instant, received: u64, limits: &Limits) -> bool {
        if now >= self.last_data + limits.idle_timeout {
            return false;
        }
        let brought = received.saturating_sub(self.window.1) as f64;
        if brought < MIN_BODY_BYTES_PER_SEC * limits.body_timeout.as_secs_f64() {
            return false;
        }
        self.window = (now, received);
        true
    }
}

/// What the connection does next for a request.
#[derive(Debug)]
pub enum Decision {
    /// Send this response.
    Respond(Response),
    /// Hand this job to the workers and wait for its completion.
    Submit(Task),
    /// Read the body first, after `100 Continue` when the client asked for it.
    ReadBody { upload: Upload, body: UploadBody, expect_continue: bool },
    /// Wait for the open of this file that a worker is doing for another request.
    Join(OpenKey),
}

/// What a finished job means for the exchange that waits for it.
#[derive(Debug)]
pub enum Resumption {
    /// Send this response.
    Respond(Response),
    /// The next chunk of a file being sent, and the rest if any.
    Stream { bytes: Vec<u8>, rest: Option<FileCursor> },
    /// The head is already out and the body can't be finished: only closing tells the client.
    Abort,
    /// Credentials passed: carry out the decision they held back.
    Proceed(Decision),
    /// A window of the upload is on disk: read on into the body's emptied window.
    ReadBody(UploadBody),
}

/// Where the request came from, for Host checks, keep-alive and the log.
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    /// The client.
    pub peer: SocketAddr,
    /// The address it reached us on.
    pub local_ip: IpAddr,
    /// Requests started on this connection, this one included.
    pub served: u32,
    /// It came to the `--redirect-http` listener.
    pub to_https: bool,
}

/// `METHOD target HTTP/1.x`, for the logs: built by hand, since `format!` was 4% of a small request's
/// instructions.
fn request_line(head: &RequestHead) -> String {
    let (method, version) = (head.method.as_str(), head.minor_version);
    let mut line = String::with_capacity(method.len() + head.target.len() + 10);
    line.push_str(method);
    line.push(' ');
    line.push_str(&head.target);
    line.push_str(" HTTP/1.");
    // httparse accepts only HTTP/1.0 and HTTP/1.1.
    line.push(char::from_digit(u32::from(version), 10).unwrap_or('?'));
    line
}

/// A complete head arrived: check it, route it, and decide what happens.
pub fn begin(mut head: RequestHead, origin: Origin, ctx: &Context) -> (Exchange, Decision) {
    let request_line = request_line(&head);
    debug!("{}: request \"{request_line}\"", origin.peer);
    let action = route(&head, origin, &request_line, ctx);
    let mut persistence = persistence(&head, origin.served, ctx.limits());
    if ctx.draining || head.framing.has_body() && action != Ok(Action::Upload) {
        // Stopping; or the body won't be read, so where the next request starts is unknown.
        persistence = Persistence::Close;
    }
    let mut exchange = Exchange {
        request_line,
        method: head.method.clone(),
        target: String::new(),
        conditions: Conditions::default(),
        errors: if negotiate::prefers_html(head.accept.as_deref()) {
            ErrorFormat::Html
        } else {
            ErrorFormat::Json
        },
        routine_404: head.target == "/favicon.ico",
        persistence,
        status: 0,
        body_bytes: 0,
        referer: head.referer.take(),
        user_agent: head.user_agent.take(),
        user: None,
        pending: None,
        storing: false,
        waiting_for: None,
    };
    let preflight = ctx.shared.cors
        && matches!(action, Ok(Action::Options(_)))
        && head.preflight.as_ref().is_some_and(|p| !p.method.is_empty());
    // Never on the redirect port: credentials asked for there would travel in the clear.
    let needs_credentials = !ctx.shared.users.is_empty()
        && !preflight
        && !origin.to_https
        && (!ctx.shared.users.uploads_only || action == Ok(Action::Upload));
    let authorization = head.authorization.take();
    let decision = match action {
        Err(err) => Decision::Respond(response::error(err, None, exchange.errors)),
        Ok(Action::Options(allow)) if preflight => {
            let headers = head.preflight.as_ref().and_then(|p| p.headers.as_deref());
            Decision::Respond(response::preflight(allow, headers))
        }
        Ok(Action::Options(allow)) => Decision::Respond(response::options(allow)),
        Ok(Action::ToHttps(location)) => Decision::Respond(response::permanent_redirect(location)),
        Ok(Action::Upload) => start_upload(&head, &mut exchange, origin.peer, ctx),
        Ok(Action::File { path, kind, folder }) => {
            exchange.conditions = head.conditions;
            exchange.target = head.target;
            let accept = negotiate::encodings(head.accept_encoding.as_deref());
            let list = folder.filter(|_| ctx.shared.list_dirs);
            let ask = FileAsk { path, kind, accept, list, waited: false };
            file_decision(&mut exchange, ask, origin.peer, ctx)
        }
    };
    if !needs_credentials {
        return (exchange, decision);
    }
    let decision = authenticate(
        &mut exchange,
        authorization,
        decision,
        head.framing.has_body(),
        origin.peer,
        ctx,
    );
    (exchange, decision)
}

/// A file a request asks for, as the worker would be asked to open it.
#[derive(Debug, Clone)]
pub struct FileAsk {
    path: PathBuf,
    kind: Option<FileKind>,
    accept: Encodings,
    /// The folder to list if the index is missing (`--list-dirs`).
    list: Option<PathBuf>,
    /// This request already waited once: if the file was not cached (too large, or an error), it opens
    /// its own, rather than queueing behind the next request one by one.
    waited: bool,
}

/// Serves a file from the cache; or waits for an open of it that is under way for another request; or asks
/// a worker to open it.
fn file_decision(
    exchange: &mut Exchange,
    ask: FileAsk,
    peer: SocketAddr,
    ctx: &Context,
) -> Decision {
    if let Some(file) = ctx.cache.get(&ask.path, ask.accept, ctx.now) {
        debug!("{peer}: serving {} from memory", ask.path.display());
        return Decision::Respond(from_memory(exchange, &ask, file, ctx));
    }
    // The first chunk is read ahead only when a full body is likely to be sent: not for HEAD, a range, or a
    // revalidation that will probably be a 304.
    let c = &exchange.conditions;
    let prefetch = response::has_body(&exchange.method, Status::OK)
        && c.range.is_none()
        && c.if_none_match.is_none()
        && c.if_modified_since.is_none();
    let FileAsk { path, kind, accept, list, waited } = ask.clone();
    let task = Task::Open { path, kind, prefetch, accept, list };
    match task.shared_open() {
        Some(key) if !waited && ctx.opening.contains_key(&key) => {
            // The file is being read again: the copy it replaces is good for one more window.
            if let Some(file) = ctx.cache.get_stale(&ask.path, ask.accept, ctx.now) {
                debug!("{peer}: serving {} from memory while it is read again", ask.path.display());
                return Decision::Respond(from_memory(exchange, &ask, file, ctx));
            }
            exchange.waiting_for = Some(FileAsk { waited: true, ..ask });
            Decision::Join(key)
        }
        _ => Decision::Submit(task),
    }
}

fn from_memory(exchange: &Exchange, ask: &FileAsk, file: &CachedFile, ctx: &Context) -> Response {
    let source = Source::Memory(Rc::clone(&file.body));
    let request = exchange.file_request(ctx);
    response::file(&request, &ask.path, &file.meta, &file.validators, source)
}

/// The open another request was waiting for has finished (its result is in the cache, unless the file was
/// too large or failed): decide again.
pub fn rejoin(exchange: &mut Exchange, peer: SocketAddr, ctx: &Context) -> Decision {
    match exchange.waiting_for.take() {
        Some(ask) => file_decision(exchange, ask, peer, ctx),
        None => Decision::Respond(response::error(HttpError::Internal, None, exchange.errors)),
    }
}

/// Lets `decision` through only with valid credentials (`--auth`): at once for a plain password or one that
/// passed lately, after a worker's hash check otherwise; else 401.
fn authenticate(
    exchange: &mut Exchange,
    authorization: Option<String>,
    decision: Decision,
    has_body: bool,
    peer: SocketAddr,
    ctx: &Context,
) -> Decision {
    match ctx.shared.users.check(authorization.as_deref()) {
        Check::Passed(user) => {
            exchange.user = Some(user);
            decision
        }
        Check::Verify { user, password, hash } => {
            let authorization = authorization.unwrap_or_default();
            if let Some(known) = ctx.trusted.get(&authorization, ctx.now) {
                exchange.user = Some(known.to_owned());
                return decision;
            }
            let persistence = exchange.persistence;
            if has_body {
                exchange.persistence = Persistence::Close;
            }
            exchange.pending =
                Some(Box::new(Pending { decision, authorization, user, persistence }));
            Decision::Submit(Task::Verify { password, hash })
        }
        Check::Failed { user } => {
            // The password is never logged; the user name helps find a misconfigured client.
            let who = user.map_or_else(
                || "no credentials".to_owned(),
                |u| format!("wrong credentials for user {u:?}"),
            );
            info!("{peer}: \"{}\" refused (401): {who}", exchange.request_line);
            if has_body {
                // The body won't be read.
                exchange.persistence = Persistence::Close;
            }
            Decision::Respond(response::error(HttpError::Unauthorized, None, exchange.errors))
        }
    }
}

/// Keep-alive is decided here, once per request (RFC 9112 §9.3); errors that break framing may still
/// downgrade it to `Close`.
fn persistence(head: &RequestHead, served: u32, limits: &Limits) -> Persistence {
    if head.wants_keep_alive() && served < limits.max_requests {
        Persistence::KeepAlive {
            timeout_secs: limits.idle_timeout.as_secs(),
            remaining: limits.max_requests - served,
        }
    } else {
        Persistence::Close
    }
}

/// Checks Host, then routes; every refusal is logged here with its reason.
fn route(
    head: &RequestHead,
    origin: Origin,
    line: &str,
    ctx: &Context,
) -> Result<Action, HttpError> {
    let peer = origin.peer;
    let shared = &ctx.shared;
    if origin.to_https {
        // A connection from the redirect listener with no redirect configured is a bug: fail closed rather
        // than serve files in the clear.
        let to_https = shared.to_https.as_ref().ok_or(HttpError::Internal)?;
        return to_https.location(head, origin.local_ip).inspect_err(|err| {
            info!("{peer}: \"{line}\" not redirected ({})", err.status().code);
        });
    }
    if let Err(err) = check_host(head, origin.local_ip, ctx) {
        let host = head.host.as_deref().unwrap_or("(none)");
        info!(
            "{peer}: \"{line}\" refused ({}): Host {host:?} does not name this server",
            err.status().code
        );
        return Err(err);
    }
    routes::route(head, shared.limits.max_body_bytes, &shared.mime).inspect_err(|&err| {
        let reason = routes::refusal_reason(err);
        info!("{peer}: \"{line}\" refused ({}): {reason}", err.status().code);
    })
}

/// The Host check, skipped when the value is the one that last passed on the same local address.
fn check_host(head: &RequestHead, local: IpAddr, ctx: &Context) -> Result<(), HttpError> {
    let host = head.host.as_deref();
    let known = ctx.known_host.borrow();
    if known.as_ref().is_some_and(|(seen, ip)| Some(seen.as_str()) == host && *ip == local) {
        return Ok(());
    }
    drop(known);
    ctx.shared.hosts.check(host, head.minor_version, local)?;
    if let Some(host) = host {
        *ctx.known_host.borrow_mut() = Some((host.to_owned(), local));
    }
    Ok(())
}

/// Admits the upload under the upload budget (a declared length must fit in the disk free now) before asking
/// for the body with `100 Continue`: a refusal comes before the client sends anything.
fn start_upload(
    head: &RequestHead,
    exchange: &mut Exchange,
    peer: SocketAddr,
    ctx: &Context,
) -> Decision {
    let declared = match head.framing {
        BodyFraming::Length(len) => Some(len),
        BodyFraming::None | BodyFraming::Chunked => None,
    };
    match ctx.shared.uploads.admit(declared) {
        Ok(body) => Decision::ReadBody {
            upload: Upload::new(BodyDecoder::new(head.framing), ctx.now),
            body,
            expect_continue: head.expect_continue,
        },
        Err(full) => {
            info!("{peer}: \"{}\" refused (503): {}", exchange.request_line, full.reason());
            exchange.persistence = Persistence::Close;
            Decision::Respond(response::error(HttpError::Unavailable, None, exchange.errors))
        }
    }
}

/// A worker finished the job this exchange waited for.
pub fn resume(
    exchange: &mut Exchange,
    result: Result<Output, JobError>,
    peer: SocketAddr,
    ctx: &mut Context,
) -> Resumption {
    match result {
        Ok(Output::Opened(file)) => Resumption::Respond(opened(exchange, file, ctx)),
        Ok(Output::Chunk { bytes, rest }) => Resumption::Stream { bytes, rest },
        Ok(Output::Saved { name }) => Resumption::Respond(response::created(&name)),
        Ok(Output::Spilled { body }) => Resumption::ReadBody(body),
        Ok(Output::Verified(passed)) => match exchange.pending.take() {
            Some(pending) if passed => {
                let Pending { mut decision, authorization, user, persistence } = *pending;
                ctx.trusted.insert(authorization, user.clone(), ctx.now);
                exchange.user = Some(user);
                exchange.persistence = persistence;
                // The body's time starts now, not while the password was being checked.
                if let Decision::ReadBody { upload, .. } = &mut decision {
                    upload.restart(ctx.now, 0);
                }
                Resumption::Proceed(decision)
            }
            _ => {
                info!("{peer}: \"{}\" refused (401): wrong password", exchange.request_line);
                Resumption::Respond(response::error(HttpError::Unauthorized, None, exchange.errors))
            }
        },
        Ok(Output::Listing { page }) => Resumption::Respond(response::listing(page)),
        // A folder named without its trailing slash: send the client to the folder, so relative links in
        // its index resolve inside it. (With the slash, the index itself was a folder: nothing to serve.)
        Ok(Output::Folder) => match folder_location(&exchange.target) {
            Some(location) => Resumption::Respond(response::redirect(location)),
            None => {
                Resumption::Respond(response::error(HttpError::NotFound, None, exchange.errors))
            }
        },
        Err(_) if exchange.head_sent() => {
            info!("{peer}: \"{}\" aborted mid-response", exchange.request_line);
            Resumption::Abort
        }
        Err(JobError { error, detail }) => {
            Resumption::Respond(response::error(error, detail.as_deref(), exchange.errors))
        }
    }
}

/// Where a folder asked for without its slash lives: the same path with one leading slash (so `//name`
/// can't become a link to another host) and a trailing one, and the query kept. `None` when the target already
/// ends in a slash (its index was a folder: nothing to serve).
fn folder_location(target: &str) -> Option<String> {
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    let path = path.split('#').next().unwrap_or(path);
    if path.ends_with('/') {
        return None;
    }
    let query = query.map(|q| format!("?{}", q.split('#').next().unwrap_or(q))).unwrap_or_default();
    Some(format!("/{}/{query}", path.trim_start_matches('/')))
}

/// The response to a file a worker opened; a file read whole is kept in the cache for the next requests.
fn opened(exchange: &Exchange, file: OpenedFile, ctx: &mut Context) -> Response {
    let OpenedFile { path, accept, meta, read_at, first, file } = file;
    let (source, validators) = match file {
        None => {
            let whole = Rc::new(first);
            let kept = ctx.cache.insert(path.clone(), accept, meta, Rc::clone(&whole), read_at);
            (Source::Memory(whole), kept.cloned())
        }
        Some(file) => (Source::Disk { first, file: Some(file) }, None),
    };
    let validators = validators.unwrap_or_else(|| Validators::of(&meta));
    response::file(&exchange.file_request(ctx), &path, &meta, &validators, source)
}

/// A file opened for a client that left before it came back: kept in the cache all the same when it was read
/// whole, so the requests that waited for that open find it.
pub fn keep_orphan(result: Result<Output, JobError>, ctx: &mut Context) {
    if let Ok(Output::Opened(OpenedFile { path, accept, meta, read_at, first, file: None })) =
        result
    {
        ctx.cache.insert(path, accept, meta, Rc::new(first), read_at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::tests::test_context;
    use crate::mime::FileKind;
    use crate::negotiate::Encodings;
    use crate::status::Status;
    use crate::worker::FileMeta;

    fn head(raw: &str) -> RequestHead {
        match crate::http::parse_head(raw.as_bytes(), &Limits::default()) {
            Ok(Some((head, _))) => head,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_request_line_is_method_target_and_version() {
        let line = |raw: &str| request_line(&head(raw));
        assert_eq!(line("GET /a%20b?c=d HTTP/1.1\r\nHost: a\r\n\r\n"), "GET /a%20b?c=d HTTP/1.1");
        assert_eq!(line("HEAD / HTTP/1.0\r\n\r\n"), "HEAD / HTTP/1.0");
        assert_eq!(line("BREW /pot HTTP/1.1\r\nHost: a\r\n\r\n"), "BREW /pot HTTP/1.1");
    }

    fn origin(served: u32) -> Origin {
        Origin {
            peer: "127.0.0.1:40000".parse().unwrap(),
            local_ip: "127.0.0.1".parse().unwrap(),
            served,
            to_https: false,
        }
    }

    /// The decision for one request, in a few words.
    fn decide(raw: &str, served: u32, ctx: &Context) -> (String, Persistence) {
        let (exchange, decision) = begin(head(raw), origin(served), ctx);
        let what = match decision {
            Decision::Respond(r) => format!("respond {}", r.status.code),
            Decision::Submit(Task::Open { path, .. }) => format!("open {}", path.display()),
            Decision::Submit(other) => format!("submit {other:?}"),
            Decision::ReadBody { expect_continue, .. } => {
                format!("read body, continue: {expect_continue}")
            }
            Decision::Join((path, _)) => format!("wait for {}", path.display()),
        };
        (what, exchange.persistence)
    }

    #[test]
    fn requests_become_decisions() {
        let (ctx, _jobs) = test_context(Limits::default());
        let host = "Host: localhost\r\n";
        let keep = |remaining| Persistence::KeepAlive { timeout_secs: 5, remaining };
        let json = "Content-Type: application/json\r\nContent-Length: 2\r\n";
        let cases = [
            (format!("GET / HTTP/1.1\r\n{host}\r\n"), "open index.html", keep(99)),
            (format!("HEAD /a.png HTTP/1.1\r\n{host}\r\n"), "open a.png", keep(99)),
            ("GET / HTTP/1.1\r\n\r\n".to_owned(), "respond 400", keep(99)),
            ("GET / HTTP/1.1\r\nHost: evil\r\n\r\n".to_owned(), "respond 403", keep(99)),
            (format!("GET /../x HTTP/1.1\r\n{host}\r\n"), "respond 403", keep(99)),
            (
                format!("GET / HTTP/1.1\r\n{host}Connection: close\r\n\r\n"),
                "open index.html",
                Persistence::Close,
            ),
            ("GET / HTTP/1.0\r\n\r\n".to_owned(), "open index.html", Persistence::Close),
            (format!("POST /upload HTTP/1.1\r\n{host}{json}\r\n"), "read body, continue: false", keep(99)),
            (
                format!("POST /upload HTTP/1.1\r\n{host}{json}Expect: 100-continue\r\n\r\n"),
                "read body, continue: true",
                keep(99),
            ),
            // A body that will not be read leaves the next request's start unknown.
            (format!("POST /a.html HTTP/1.1\r\n{host}{json}\r\n"), "respond 405", Persistence::Close),
            (
                format!(
                    "POST /upload HTTP/1.1\r\n{host}Content-Type: text/plain\r\nContent-Length: 2\r\n\r\n"
                ),
                "respond 415",
                Persistence::Close,
            ),
        ];
        for (raw, want, persistence) in cases {
            assert_eq!(decide(&raw, 1, &ctx), (want.to_owned(), persistence), "{raw}");
        }
    }

    #[test]
    fn a_folder_redirect_stays_on_this_host_and_keeps_the_query() {
        let cases = [
            ("/docs", Some("/docs/")),
            ("/docs?x=1&y", Some("/docs/?x=1&y")),
            ("//evil.example", Some("/evil.example/")),
            ("///a//b", Some("/a//b/")),
            ("/docs#frag", Some("/docs/")),
            ("/docs/", None),
            ("/docs/?x", None),
        ];
        for (target, want) in cases {
            assert_eq!(folder_location(target).as_deref(), want, "{target}");
        }
    }

    #[test]
    fn a_small_file_opened_for_a_client_that_left_is_cached_for_the_others() {
        let (mut ctx, _jobs) = test_context(Limits::default());
        let meta = FileMeta::sample(3, FileKind { media_type: "text/html", download: false });
        let file = OpenedFile {
            path: "hot.html".into(),
            accept: Encodings::default(),
            meta,
            read_at: ctx.now,
            first: b"hot".to_vec(),
            file: None,
        };
        keep_orphan(Ok(Output::Opened(file)), &mut ctx);
        assert!(ctx.cache.get("hot.html".as_ref(), Encodings::default(), ctx.now).is_some());
        keep_orphan(Err(JobError::from(HttpError::NotFound)), &mut ctx);
    }

    #[test]
    fn the_last_allowed_request_closes() {
        let (ctx, _jobs) = test_context(Limits::default());
        let raw = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
        let keep = Persistence::KeepAlive { timeout_secs: 5, remaining: 1 };
        assert_eq!(decide(raw, 99, &ctx).1, keep);
        assert_eq!(decide(raw, 100, &ctx).1, Persistence::Close);
    }

    #[test]
    fn a_cached_file_is_answered_without_a_job() {
        let (mut ctx, _jobs) = test_context(Limits::default());
        let meta = FileMeta::sample(
            2,
            FileKind { media_type: "text/html; charset=utf-8", download: false },
        );
        ctx.cache.insert(
            "index.html".into(),
            Encodings::default(),
            meta,
            Rc::new(b"hi".to_vec()),
            ctx.now,
        );
        let raw = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
        assert_eq!(decide(raw, 1, &ctx).0, "respond 200");
    }

    #[test]
    fn an_upload_past_the_disk_budget_is_refused_before_its_body() {
        let limits = Limits { max_upload_disk_bytes: 99_999, ..Limits::default() };
        let (ctx, _jobs) = test_context(limits);
        let raw = "POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
                   Content-Length: 100000\r\nExpect: 100-continue\r\n\r\n";
        assert_eq!(decide(raw, 1, &ctx), ("respond 503".to_owned(), Persistence::Close));
    }

    #[test]
    fn the_host_check_remembers_only_a_value_that_passed() {
        let (ctx, _jobs) = test_context(Limits::default());
        let get =
            |host: &str| decide(&format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n"), 1, &ctx).0;
        assert_eq!(get("localhost"), "open index.html");
        assert_eq!(get("localhost"), "open index.html", "remembered");
        assert_eq!(get("evil.example"), "respond 403");
        assert_eq!(get("evil.example"), "respond 403", "a refusal is never remembered");
        assert_eq!(get("LOCALHOST."), "open index.html", "checked, not compared");
        assert_eq!(get("localhost:1"), "respond 403", "a port is part of the value");
    }

    #[test]
    fn finished_jobs_become_responses() {
        let (mut ctx, _jobs) = test_context(Limits::default());
        let peer = origin(1).peer;
        let mut exchange = Exchange::unparsed();
        let saved = Ok(Output::Saved { name: "upload_x.json".into() });
        assert!(matches!(
            resume(&mut exchange, saved, peer, &mut ctx),
            Resumption::Respond(Response { status: Status::CREATED, .. })
        ));
        let failed = || Err(JobError::from(HttpError::NotFound));
        assert!(matches!(
            resume(&mut exchange, failed(), peer, &mut ctx),
            Resumption::Respond(Response { status: Status::NOT_FOUND, .. })
        ));
        exchange.status = 200;
        assert!(matches!(resume(&mut exchange, failed(), peer, &mut ctx), Resumption::Abort));
    }

    #[test]
    fn a_file_read_whole_is_cached_and_a_larger_one_is_not() {
        let (mut ctx, _jobs) = test_context(Limits::default());
        let meta =
            |len| FileMeta::sample(len, FileKind { media_type: "image/png", download: true });
        let small = OpenedFile {
            path: "a.txt".into(),
            accept: Encodings::default(),
            meta: meta(3),
            read_at: ctx.now,
            first: b"abc".to_vec(),
            file: None,
        };
        let response = opened(&Exchange::unparsed(), small, &mut ctx);
        assert_eq!(response.body.len(), 3);
        assert!(ctx.cache.get("a.txt".as_ref(), Encodings::default(), ctx.now).is_some());
        let file = std::fs::File::open("/dev/null").ok().map(crate::budget::HeldFile::unbounded);
        let large = OpenedFile {
            path: "b.txt".into(),
            accept: Encodings::default(),
            meta: meta(10),
            read_at: ctx.now,
            first: b"abc".to_vec(),
            file,
        };
        let response = opened(&Exchange::unparsed(), large, &mut ctx);
        assert_eq!(response.body.len(), 10);
        assert!(ctx.cache.get("b.txt".as_ref(), Encodings::default(), ctx.now).is_none());
    }
}
