//! The state machine driven over a scripted in-memory transport, with time passed in by hand: no sockets,
//! no threads, no sleeps.

use super::*;
use crate::budget::WINDOW_BYTES;
use crate::buffers::MAX_KEPT_CAPACITY;
use crate::config::Limits;
use crate::context::tests::test_context;
use crate::fuzzing::noise;
use crate::mime::FileKind;
use crate::negotiate::Encodings;
use crate::worker::{FileMeta, OpenedFile};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::mpsc::Receiver;

/// What the scripted client has sent and not yet had read.
enum Input {
    Bytes(Vec<u8>),
    Eof,
}

/// Both directions of the scripted connection, shared between the test and the transport.
#[derive(Default)]
struct Wire {
    input: VecDeque<Input>,
    /// Everything the server wrote.
    output: Vec<u8>,
    /// How many more bytes the client accepts before writes block; `None` for no limit.
    room: Option<usize>,
    /// Writes fail as they do once the client has reset the connection.
    broken: bool,
    /// The transport holds output of its own (as TLS may) until this is cleared.
    unflushed: bool,
    /// The server shut its writing side.
    shut: bool,
    /// The transport sends files itself, as `Plain` does with sendfile; otherwise they are copied.
    sends_files: bool,
    /// The last write said more follows at once (`write_more`): the kernel would hold it back for a while.
    last_write_more: bool,
    /// A short read takes all the input there is, as from a TCP socket (`short_read_drains`).
    drains: bool,
    /// Reads made, `WouldBlock` included.
    reads: usize,
    /// Some of the transport's own output reached the client (`sent_own_output`).
    own_output_sent: bool,
}

struct Scripted(Rc<RefCell<Wire>>);

impl Transport for Scripted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut wire = self.0.borrow_mut();
        wire.reads += 1;
        match wire.input.pop_front() {
            None => Err(io::ErrorKind::WouldBlock.into()),
            Some(Input::Eof) => {
                wire.input.push_front(Input::Eof);
                Ok(0)
            }
            Some(Input::Bytes(mut bytes)) => {
                let n = bytes.len().min(buf.len());
                buf[..n].copy_from_slice(&bytes[..n]);
                if n < bytes.len() {
                    wire.input.push_front(Input::Bytes(bytes.split_off(n)));
                }
                Ok(n)
            }
        }
    }

    fn short_read_drains(&self) -> bool {
        self.0.borrow().drains
    }

    fn write_more(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.write(buf);
        self.0.borrow_mut().last_write_more = true;
        written
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut wire = self.0.borrow_mut();
        wire.last_write_more = false;
        if wire.broken {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        let n = wire.room.map_or(buf.len(), |room| room.min(buf.len()));
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if let Some(room) = &mut wire.room {
            *room -= n;
        }
        wire.output.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn send_file(&mut self, file: &std::fs::File, offset: u64, len: usize) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        if !self.0.borrow().sends_files {
            return Err(io::ErrorKind::Unsupported.into());
        }
        let mut bytes = vec![0; len];
        match file.read_at(&mut bytes, offset)? {
            0 => Ok(0),
            n => self.write(&bytes[..n]),
        }
    }

    fn sent_own_output(&mut self) -> bool {
        std::mem::take(&mut self.0.borrow_mut().own_output_sent)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.0.borrow().unflushed {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(())
    }

    fn shutdown_write(&mut self) {
        self.0.borrow_mut().shut = true;
    }

    fn local_ip(&self) -> IpAddr {
        IpAddr::from([127, 0, 0, 1])
    }

    fn peer(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 40000))
    }
}

/// One connection, its wire and its loop context.
struct Harness {
    conn: Connection<Scripted>,
    wire: Rc<RefCell<Wire>>,
    ctx: Context,
    /// Jobs submitted to the pool, which has no threads.
    jobs: Receiver<Job>,
}

const PAGE: &[u8] = b"<p>a</p>";

impl Harness {
    fn new() -> Harness {
        Harness::with_limits(Limits::default())
    }

    /// A connection whose cache holds `a.html` and `b.html`, so requests for them are answered at once.
    fn with_limits(limits: Limits) -> Harness {
        let (mut ctx, jobs) = test_context(limits);
        for (name, body) in [("a.html", PAGE), ("b.html", &b"<p>bb</p>"[..])] {
            let meta = FileMeta::sample(
                body.len() as u64,
                FileKind { media_type: "text/html", download: false },
            );
            ctx.cache.insert(
                name.into(),
                Encodings::default(),
                meta,
                Rc::new(body.to_vec()),
                ctx.now,
            );
        }
        let wire = Rc::new(RefCell::new(Wire::default()));
        let id = ConnId { key: 0, serial: 1 };
        let conn = Connection::new(id, Scripted(Rc::clone(&wire)), &ctx);
        Harness { conn, wire, ctx, jobs }
    }

    /// The client sends `bytes`; the connection gets a readiness event.
    fn send(&mut self, bytes: &[u8]) {
        self.wire.borrow_mut().input.push_back(Input::Bytes(bytes.to_vec()));
        self.conn.on_ready(&mut self.ctx, Readiness::INPUT);
    }

    /// The client closes its side.
    fn send_eof(&mut self) {
        self.wire.borrow_mut().input.push_back(Input::Eof);
        self.conn.on_ready(&mut self.ctx, Readiness::INPUT);
    }

    /// Time passes, then the sweep runs.
    fn wait(&mut self, time: Duration) {
        self.ctx.now += time;
        self.conn.on_tick(&mut self.ctx);
    }

    /// The job the connection submitted, which must be the only one.
    fn job(&self) -> Task {
        let job = self.jobs.try_recv().expect("a submitted job");
        assert_eq!(job.conn, self.conn.id);
        assert!(self.jobs.try_recv().is_err(), "one job at a time");
        job.task
    }

    fn complete(&mut self, result: Result<Output, JobError>) {
        self.conn.on_completion(&mut self.ctx, result);
    }

    /// Takes the responses written so far, as (status, head, body).
    fn responses(&mut self) -> Vec<(u16, String, Vec<u8>)> {
        let output = std::mem::take(&mut self.wire.borrow_mut().output);
        split_responses(&output)
    }

    fn statuses(&mut self) -> Vec<u16> {
        self.responses().into_iter().map(|(status, ..)| status).collect()
    }

    fn state(&self) -> &'static str {
        self.conn.state.name()
    }

    fn shut(&self) -> bool {
        self.wire.borrow().shut
    }
}

/// Splits a byte stream into responses; a 1xx has no body, every other response a Content-Length one.
fn split_responses(mut output: &[u8]) -> Vec<(u16, String, Vec<u8>)> {
    let mut responses = Vec::new();
    while !output.is_empty() {
        let end = output.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete head") + 4;
        let head = String::from_utf8(output[..end].to_vec()).expect("an ASCII head");
        let status: u16 = head[9..12].parse().expect("a status code");
        let len = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .map_or(0, |n| n.parse().expect("a length"));
        let len = if status < 200 { 0 } else { len };
        responses.push((status, head, output[end..end + len].to_vec()));
        output = &output[end + len..];
    }
    responses
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").into_bytes()
}

fn upload_head(len: usize, extra: &str) -> Vec<u8> {
    format!(
        "POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {len}\r\n{extra}\r\n"
    )
    .into_bytes()
}

fn saved() -> Result<Output, JobError> {
    Ok(Output::Saved { name: "upload_x.json".into() })
}

#[test]
fn a_short_read_that_took_all_the_input_is_not_followed_by_a_read_that_would_block() {
    let mut h = Harness::new();
    h.wire.borrow_mut().drains = true;
    h.send(&get("/a.html"));
    assert_eq!(h.statuses(), [200]);
    assert_eq!(h.wire.borrow().reads, 1, "no second read before the next readiness");
    assert_eq!(h.state(), "Idle");
    h.send(&get("/b.html"));
    assert_eq!(h.statuses(), [200]);
    assert_eq!(h.wire.borrow().reads, 2);
}

#[test]
fn a_new_connection_reads_nothing_until_input_is_reported() {
    let mut h = Harness::new();
    h.wire.borrow_mut().drains = true;
    // Registering reports the socket writable at once; that is no reason to read.
    h.conn.on_ready(&mut h.ctx, Readiness::default());
    assert_eq!(h.wire.borrow().reads, 0);
    h.send(&get("/a.html"));
    assert_eq!((h.statuses(), h.wire.borrow().reads), (vec![200], 1));
}

#[test]
fn a_close_with_nothing_unread_skips_lingering_and_one_with_input_pending_lingers() {
    let close = b"GET /a.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let mut drained = Harness::new();
    drained.wire.borrow_mut().drains = true;
    drained.send(close);
    assert_eq!(drained.statuses(), [200]);
    assert!(drained.conn.is_closed(), "{}", drained.state());
    assert!(!drained.shut(), "no shutdown: closing sends the FIN after the response");
    // The scripted transport can't say its reads took everything: there may be more, so it lingers.
    let mut unknown = Harness::new();
    unknown.send(close);
    assert_eq!(unknown.statuses(), [200]);
    assert_eq!(unknown.state(), "Lingering");
    assert!(unknown.shut());
}

#[test]
fn a_reported_end_of_input_is_read_to_even_after_a_short_read() {
    let mut h = Harness::new();
    h.wire.borrow_mut().drains = true;
    h.wire.borrow_mut().input.push_back(Input::Bytes(get("/a.html")));
    h.wire.borrow_mut().input.push_back(Input::Eof);
    h.conn.on_ready(&mut h.ctx, Readiness { read_closed: true, ..Readiness::INPUT });
    assert_eq!(h.statuses(), [200]);
    assert!(h.conn.is_closed(), "the EOF behind the request was read: {}", h.state());
}

#[test]
fn pipelined_requests_in_one_read_are_answered_in_order() {
    let mut h = Harness::new();
    let mut batch = get("/a.html");
    batch.extend(get("/.hidden.html"));
    batch.extend(get("/b.html"));
    h.send(&batch);
    let responses = h.responses();
    let summary: Vec<(u16, &[u8])> = responses.iter().map(|(s, _, b)| (*s, &b[..])).collect();
    assert_eq!(summary[0], (200, PAGE));
    assert_eq!(summary[1].0, 404);
    assert_eq!(summary[2], (200, &b"<p>bb</p>"[..]));
    assert_eq!(summary.len(), 3);
    assert_eq!(h.state(), "Idle");
}

#[test]
fn a_request_behind_one_that_waits_for_a_worker_is_answered_after_it() {
    let mut h = Harness::new();
    let mut batch = get("/c.html");
    batch.extend(get("/a.html"));
    h.send(&batch);
    assert_eq!(h.state(), "AwaitingWorker");
    assert!(matches!(h.job(), Task::Open { path, .. } if path.to_str() == Some("c.html")));
    assert!(h.responses().is_empty());
    let meta = FileMeta::sample(1, FileKind { media_type: "text/html", download: false });
    let opened = OpenedFile {
        path: "c.html".into(),
        accept: Encodings::default(),
        meta,
        read_at: h.ctx.now,
        first: b"c".to_vec(),
        file: None,
    };
    h.complete(Ok(Output::Opened(opened)));
    let bodies: Vec<Vec<u8>> = h.responses().into_iter().map(|(_, _, b)| b).collect();
    assert_eq!(bodies, vec![b"c".to_vec(), PAGE.to_vec()]);
}

#[test]
fn a_head_split_at_every_byte_is_answered_once_complete() {
    let request = get("/a.html");
    for split in 1..request.len() {
        let mut h = Harness::new();
        h.send(&request[..split]);
        assert!(h.responses().is_empty(), "answered after {split} bytes");
        h.send(&request[split..]);
        assert_eq!(h.statuses(), vec![200], "split at {split}");
    }
}

#[test]
fn a_head_arriving_one_byte_per_read_is_answered_once() {
    let mut h = Harness::new();
    for byte in get("/a.html") {
        h.send(&[byte]);
    }
    assert_eq!(h.statuses(), vec![200]);
}

#[test]
fn expect_continue_gets_100_then_the_body_is_stored_and_answered_201() {
    let mut h = Harness::new();
    h.send(&upload_head(2, "Expect: 100-continue\r\n"));
    assert_eq!(h.statuses(), vec![100]);
    assert_eq!(h.state(), "ReadingBody");
    h.send(b"{}");
    assert_eq!(h.state(), "AwaitingWorker");
    assert!(matches!(h.job(), Task::Save { body } if body.bytes == b"{}"));
    h.complete(saved());
    let responses = h.responses();
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].0, 201);
    assert!(responses[0].1.contains("Connection: keep-alive"));
    assert_eq!(h.state(), "Idle");
}

#[test]
fn expect_continue_for_a_refused_upload_gets_the_final_status_without_100_and_closes() {
    let mut h = Harness::new();
    let too_long = Limits::default().max_body_bytes + 1;
    h.send(&upload_head(too_long, "Expect: 100-continue\r\n"));
    let responses = h.responses();
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].0, 413);
    assert!(responses[0].1.contains("Connection: close"));
    assert!(h.shut());
    assert_eq!(h.state(), "Lingering");
}

#[test]
fn after_an_error_that_closes_the_server_lingers_until_the_client_closes() {
    let mut h = Harness::new();
    h.send(b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n");
    assert_eq!(h.statuses(), vec![400]);
    assert!(h.shut());
    h.send(b"more input the client sent before it saw the 400");
    assert_eq!(h.state(), "Lingering", "input is discarded, not answered");
    assert!(h.responses().is_empty());
    h.send_eof();
    assert!(h.conn.is_closed());
}

#[test]
fn lingering_ends_at_its_deadline_if_the_client_never_closes() {
    let mut h = Harness::new();
    h.send(b"\x01\r\n\r\n");
    assert_eq!(h.statuses(), vec![400]);
    h.wait(LINGER_TIMEOUT - Duration::from_millis(1));
    assert_eq!(h.state(), "Lingering");
    h.wait(Duration::from_millis(1));
    assert!(h.conn.is_closed());
}

#[test]
fn an_idle_connection_closes_silently_at_the_idle_timeout() {
    let mut h = Harness::new();
    let idle = h.ctx.limits().idle_timeout;
    h.wait(idle - Duration::from_millis(1));
    assert_eq!(h.state(), "Idle");
    h.wait(Duration::from_millis(1));
    assert!(h.conn.is_closed());
    assert!(h.responses().is_empty());
}

#[test]
fn a_kept_alive_connection_gets_a_fresh_idle_timeout_after_each_response() {
    let mut h = Harness::new();
    let idle = h.ctx.limits().idle_timeout;
    h.wait(idle / 2);
    h.send(&get("/.hidden.html"));
    assert_eq!(h.statuses(), vec![404]);
    h.wait(idle / 2 + Duration::from_millis(1));
    assert_eq!(h.state(), "Idle");
    h.wait(idle / 2);
    assert!(h.conn.is_closed());
}

#[test]
fn a_head_not_completed_within_the_idle_timeout_gets_408_and_closes() {
    let mut h = Harness::new();
    h.send(b"GET /a.html HT");
    let idle = h.ctx.limits().idle_timeout;
    h.wait(idle);
    let responses = h.responses();
    assert_eq!(responses[0].0, 408);
    assert!(responses[0].1.contains("Connection: close"));
    assert!(h.shut());
}

#[test]
fn a_stalled_body_gets_408_and_nothing_is_stored() {
    let mut h = Harness::new();
    h.send(&upload_head(10, ""));
    h.send(b"{\"a\"");
    let idle = h.ctx.limits().idle_timeout;
    h.wait(idle - Duration::from_millis(1));
    assert_eq!(h.state(), "ReadingBody");
    h.wait(Duration::from_millis(1));
    assert_eq!(h.statuses(), vec![408]);
    assert!(h.shut());
}

#[test]
fn a_body_that_keeps_trickling_still_meets_the_body_timeout() {
    let limits = Limits { body_timeout: Duration::from_secs(10), ..Limits::default() };
    let mut h = Harness::with_limits(limits);
    h.send(&upload_head(1000, ""));
    // A byte every second: never idle for long, but far below the minimum average rate.
    for _ in 0..9 {
        h.wait(Duration::from_secs(1));
        h.send(b" ");
        assert_eq!(h.state(), "ReadingBody");
    }
    h.wait(Duration::from_secs(1));
    assert_eq!(h.statuses(), vec![408]);
}

#[test]
fn a_completion_after_the_client_reset_closes_without_answering() {
    let mut h = Harness::new();
    h.send(&get("/c.html"));
    assert_eq!(h.state(), "AwaitingWorker");
    h.wire.borrow_mut().broken = true;
    h.complete(Err(JobError::from(HttpError::NotFound)));
    assert!(h.conn.is_closed());
}

#[test]
fn a_completion_the_connection_no_longer_waits_for_is_dropped() {
    let mut h = Harness::new();
    h.send(&get("/a.html"));
    assert_eq!(h.statuses(), vec![200]);
    h.complete(saved());
    assert_eq!(h.state(), "Idle");
    assert!(h.responses().is_empty());
}

#[test]
fn a_client_that_stops_reading_is_dropped_at_the_write_timeout() {
    let mut h = Harness::new();
    h.wire.borrow_mut().room = Some(10);
    h.send(&get("/a.html"));
    assert_eq!(h.state(), "Writing");
    let write_timeout = h.ctx.limits().write_timeout;
    h.wait(write_timeout - Duration::from_millis(1));
    assert_eq!(h.state(), "Writing");
    h.wait(Duration::from_millis(1));
    assert!(h.conn.is_closed());
}

#[test]
fn a_slow_reader_gets_the_whole_response_as_room_appears() {
    let mut h = Harness::new();
    h.wire.borrow_mut().room = Some(10);
    h.send(&get("/a.html"));
    for _ in 0..100 {
        if h.state() != "Writing" {
            break;
        }
        h.wire.borrow_mut().room = Some(10);
        h.conn.on_ready(&mut h.ctx, Readiness::INPUT);
    }
    let responses = h.responses();
    assert_eq!((responses[0].0, &responses[0].2[..]), (200, PAGE));
    assert_eq!(h.state(), "Idle");
}

#[test]
fn a_response_is_finished_only_once_the_transport_has_flushed() {
    let mut h = Harness::new();
    h.wire.borrow_mut().unflushed = true;
    h.send(&get("/a.html"));
    assert_eq!(h.state(), "Writing");
    h.wire.borrow_mut().unflushed = false;
    h.conn.on_ready(&mut h.ctx, Readiness::INPUT);
    assert_eq!(h.state(), "Idle");
    assert_eq!(h.statuses(), vec![200]);
}

#[test]
fn a_stop_ends_an_idle_connection_cleanly_but_not_one_it_cuts_mid_response() {
    let mut idle = Harness::new();
    idle.conn.abandon(&idle.ctx);
    assert!(idle.shut(), "an idle connection is told (close_notify over TLS)");
    let mut cut = Harness::new();
    cut.wire.borrow_mut().unflushed = true;
    cut.send(&get("/a.html"));
    assert_eq!(cut.state(), "Writing");
    cut.conn.abandon(&cut.ctx);
    assert!(cut.conn.is_closed());
    assert!(!cut.shut(), "a cut response must not look complete");
}

#[test]
fn a_client_that_keeps_taking_the_transports_own_output_is_not_cut_by_the_write_timeout() {
    let mut h = Harness::new();
    h.wire.borrow_mut().unflushed = true;
    h.send(&get("/a.html"));
    assert_eq!(h.state(), "Writing");
    let most = Limits::default().write_timeout.mul_f32(0.6);
    for _ in 0..3 {
        h.wait(most);
        h.wire.borrow_mut().own_output_sent = true;
        h.conn.on_ready(&mut h.ctx, Readiness::INPUT);
        assert_eq!(h.state(), "Writing", "records still going out count as progress");
    }
    h.wait(most);
    h.wait(most);
    assert!(h.conn.is_closed(), "without progress the write timeout applies: {}", h.state());
}

#[test]
fn a_large_buffer_the_transport_has_taken_is_let_go_while_its_own_output_waits() {
    let mut h = Harness::new();
    let body = vec![b'x'; 3 * MAX_KEPT_CAPACITY];
    let meta =
        FileMeta::sample(body.len() as u64, FileKind { media_type: "text/html", download: false });
    let now = h.ctx.now;
    h.ctx.cache.insert("big.html".into(), Encodings::default(), meta, Rc::new(body.clone()), now);
    h.wire.borrow_mut().unflushed = true;
    h.send(&get("/big.html"));
    assert_eq!(h.state(), "Writing");
    assert_eq!(h.conn.write_buf.capacity(), 0, "the copy the transport already holds is dropped");
    h.wire.borrow_mut().unflushed = false;
    h.conn.on_ready(&mut h.ctx, Readiness::INPUT);
    assert_eq!(h.state(), "Idle");
    let responses = h.responses();
    assert_eq!((responses.len(), &responses[0].2), (1, &body));
}

#[test]
fn a_finished_exchange_gives_its_buffer_to_the_next_one() {
    let mut h = Harness::new();
    h.send(&get("/a.html"));
    assert_eq!(h.state(), "Idle");
    assert_eq!(h.conn.inbox.bytes.capacity(), 0, "an idle connection holds no read buffer");
    assert_eq!(h.conn.write_buf.capacity(), 0, "nor a write buffer");
    // The head's buffer went back once the head was taken, and the response was written through it.
    assert_eq!(h.ctx.buffers.spare(), 1);
    h.send(&get("/b.html"));
    assert_eq!(
        h.ctx.buffers.spare(),
        1,
        "the second exchange read and wrote through the same buffer"
    );
    assert_eq!(h.statuses(), [200, 200]);
}

#[test]
fn a_read_that_brings_nothing_gives_its_buffer_back() {
    let mut h = Harness::new();
    h.ctx.buffers.give(Vec::with_capacity(64));
    h.conn.on_ready(&mut h.ctx, Readiness::INPUT);
    assert_eq!(h.state(), "Idle");
    assert_eq!(h.conn.inbox.bytes.capacity(), 0, "an idle connection holds no read buffer");
    assert_eq!(h.ctx.buffers.spare(), 1, "the buffer taken for the read is back");
}

#[test]
fn blank_lines_between_requests_leave_no_buffer_held() {
    let mut h = Harness::new();
    h.wire.borrow_mut().drains = true;
    h.ctx.buffers.give(Vec::with_capacity(64));
    h.send(b"\r\n\r\n");
    assert_eq!(h.state(), "Idle");
    assert_eq!(h.conn.inbox.bytes.capacity(), 0, "an idle connection holds no read buffer");
    assert_eq!(h.ctx.buffers.spare(), 1);
}

#[test]
fn a_request_being_answered_holds_no_read_buffer() {
    let mut h = Harness::new();
    h.ctx.buffers.give(Vec::with_capacity(4096));
    h.send(&get("/elsewhere.html"));
    assert!(matches!(h.job(), Task::Open { .. }));
    assert_eq!(h.state(), "AwaitingWorker");
    assert_eq!(h.conn.inbox.bytes.capacity(), 0, "the head is taken and nothing follows it");
}

#[test]
fn a_flood_of_input_yields_the_turn_instead_of_starving_others() {
    let mut h = Harness::new();
    for _ in 0..READS_PER_TURN + 1 {
        h.wire.borrow_mut().input.push_back(Input::Bytes(b"\r\n".to_vec()));
    }
    h.conn.on_ready(&mut h.ctx, Readiness::INPUT);
    assert!(h.conn.wants_another_turn());
    h.conn.on_ready(&mut h.ctx, Readiness::INPUT);
    assert!(!h.conn.wants_another_turn());
}

#[test]
fn the_client_closing_mid_body_stores_nothing_and_closes() {
    let mut h = Harness::new();
    h.send(&upload_head(10, ""));
    h.send(b"{\"a\"");
    h.send_eof();
    assert!(h.conn.is_closed());
    assert!(h.responses().is_empty());
}

#[test]
fn head_requests_get_the_length_without_the_body() {
    let mut h = Harness::new();
    h.send(b"HEAD /a.html HTTP/1.1\r\nHost: localhost\r\n\r\nGET /b.html HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let output = std::mem::take(&mut h.wire.borrow_mut().output);
    let text = String::from_utf8(output).unwrap();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.contains(&format!("Content-Length: {}", PAGE.len())));
    assert!(rest.starts_with("HTTP/1.1 200 OK\r\n"), "no body after the HEAD response: {rest}");
}

/// A 10-byte download whose first 3 bytes came with the open; the rest is read by later jobs.
fn opened_large(h: &Harness) -> Result<Output, JobError> {
    let file = std::fs::File::open("/dev/null").expect("/dev/null opens");
    Ok(Output::Opened(OpenedFile {
        path: "big.png".into(),
        accept: Encodings::default(),
        meta: FileMeta::sample(10, FileKind { media_type: "image/png", download: true }),
        read_at: h.ctx.now,
        first: b"abc".to_vec(),
        file: Some(crate::budget::HeldFile::unbounded(file)),
    }))
}

#[test]
fn a_large_file_streams_chunk_by_chunk_through_the_workers() {
    let mut h = Harness::new();
    h.send(&get("/big.png"));
    assert!(matches!(h.job(), Task::Open { .. }));
    let opened = opened_large(&h);
    h.complete(opened);
    assert_eq!(h.state(), "AwaitingWorker");
    assert!(matches!(h.job(), Task::Read { .. }));
    h.complete(Ok(Output::Chunk { bytes: b"defghij".to_vec(), rest: None }));
    let responses = h.responses();
    assert_eq!((responses[0].0, &responses[0].2[..]), (200, &b"abcdefghij"[..]));
    assert!(responses[0].1.contains("Content-Disposition: attachment; filename=\"big.png\""));
    assert_eq!(h.state(), "Idle");
}

#[test]
fn a_download_failing_after_its_head_went_out_closes_instead_of_answering_again() {
    let mut h = Harness::new();
    h.send(&get("/big.png"));
    let opened = opened_large(&h);
    h.complete(opened);
    h.complete(Err(JobError::from(HttpError::Internal)));
    assert!(h.conn.is_closed());
    let output = String::from_utf8(std::mem::take(&mut h.wire.borrow_mut().output)).unwrap();
    assert!(output.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(output.ends_with("\r\n\r\nabc"), "nothing after the first chunk: {output}");
}

#[test]
fn a_full_worker_queue_is_answered_503_and_the_connection_serves_on() {
    let mut h = Harness::with_limits(Limits { max_queued_jobs: 0, ..Limits::default() });
    h.send(&get("/c.html"));
    let responses = h.responses();
    assert_eq!(responses[0].0, 503);
    assert!(responses[0].1.contains("Retry-After: 1"));
    assert_eq!(h.state(), "Idle");
    h.send(&get("/a.html"));
    assert_eq!(h.statuses(), vec![200]);
}

#[test]
fn expect_continue_past_the_upload_disk_budget_gets_503_without_100() {
    let limits = Limits { max_upload_disk_bytes: 1024, ..Limits::default() };
    let mut h = Harness::with_limits(limits);
    h.send(&upload_head(100_000, "Expect: 100-continue\r\n"));
    assert_eq!(h.statuses(), vec![503]);
    assert_eq!(h.state(), "Lingering");
}

#[test]
fn a_completion_after_a_socket_error_is_dropped() {
    let mut h = Harness::new();
    h.send(&get("/c.html"));
    h.conn.on_ready(&mut h.ctx, Readiness { failed: true, ..Readiness::INPUT });
    assert!(h.conn.is_closed());
    h.complete(Err(JobError::from(HttpError::NotFound)));
    assert!(h.conn.is_closed());
    assert!(h.responses().is_empty());
}

#[test]
fn a_client_that_closed_while_its_job_ran_still_gets_the_answer_then_the_close() {
    let mut h = Harness::new();
    h.send(&get("/c.html"));
    h.send_eof();
    assert_eq!(h.state(), "AwaitingWorker", "no reads while a worker has the request");
    h.complete(Err(JobError::from(HttpError::NotFound)));
    assert_eq!(h.statuses(), vec![404]);
    assert!(h.conn.is_closed(), "the EOF is read once the response is out");
}

#[test]
fn head_of_an_uncached_file_asks_the_worker_for_no_bytes_and_streams_nothing() {
    let mut h = Harness::new();
    h.send(b"HEAD /big.png HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert!(matches!(h.job(), Task::Open { prefetch: false, .. }));
    let opened = OpenedFile {
        path: "big.png".into(),
        accept: Encodings::default(),
        meta: FileMeta::sample(10, FileKind { media_type: "image/png", download: true }),
        read_at: h.ctx.now,
        first: Vec::new(),
        file: std::fs::File::open("/dev/null").ok().map(crate::budget::HeldFile::unbounded),
    };
    h.complete(Ok(Output::Opened(opened)));
    let output = String::from_utf8(std::mem::take(&mut h.wire.borrow_mut().output)).unwrap();
    assert!(output.ends_with(
        "Content-Length: 10\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5, max=99\r\n\r\n"
    ));
    assert_eq!(h.state(), "Idle");
    assert!(h.jobs.try_recv().is_err(), "no chunk is read for HEAD");
    assert!(h.ctx.cache.get("big.png".as_ref(), Encodings::default(), h.ctx.now).is_none());
}

#[test]
fn an_idle_connection_stays_small() {
    // Tens of thousands of idle keep-alive connections are a workload: each is this struct and nothing else.
    let size = std::mem::size_of::<Connection<crate::transport::Plain>>();
    assert!(size <= 320, "a connection is {size} bytes");
}

#[test]
fn misses_for_one_file_share_one_open_and_the_waiters_are_answered_from_its_result() {
    let mut h = Harness::new();
    h.send(&get("/hot.html"));
    assert!(matches!(h.job(), Task::Open { .. }));
    // A second connection on the same loop asks for the same file while the first open is under way.
    let wire = Rc::new(RefCell::new(Wire::default()));
    let mut second =
        Connection::new(ConnId { key: 1, serial: 2 }, Scripted(Rc::clone(&wire)), &h.ctx);
    wire.borrow_mut().input.push_back(Input::Bytes(get("/hot.html")));
    second.on_ready(&mut h.ctx, Readiness::INPUT);
    assert_eq!(second.state.name(), "AwaitingWorker");
    assert!(h.jobs.try_recv().is_err(), "the second request queued no job of its own");
    // The first open finishes: its result fills the cache, and the waiter is answered from it.
    let meta = FileMeta::sample(3, FileKind { media_type: "text/html", download: false });
    let read_at = h.ctx.now;
    let path = std::path::PathBuf::from("hot.html");
    let opened = OpenedFile {
        path,
        accept: Encodings::default(),
        meta,
        read_at,
        first: b"hot".to_vec(),
        file: None,
    };
    h.complete(Ok(Output::Opened(opened)));
    let waiters =
        h.ctx.opening.remove(&("hot.html".into(), Encodings::default())).expect("the waiters");
    assert_eq!(waiters, vec![second.id]);
    second.on_wake(&mut h.ctx);
    let output = std::mem::take(&mut wire.borrow_mut().output);
    let responses = split_responses(&output);
    assert_eq!((responses[0].0, &responses[0].2[..]), (200, &b"hot"[..]));
    assert_eq!(h.statuses(), vec![200]);
    assert!(h.jobs.try_recv().is_err(), "still one job in all");
}

#[test]
fn a_join_held_back_until_the_open_it_waited_for_is_over_opens_the_file_itself() {
    let mut h = Harness::new();
    // Another request's open of the file was under way when this one decided to wait for it...
    let key: crate::worker::OpenKey = ("hot.html".into(), Encodings::default());
    h.ctx.opening.insert(key.clone(), Vec::new());
    h.send(&get("/hot.html"));
    assert_eq!(h.state(), "AwaitingWorker");
    assert!(h.jobs.try_recv().is_err(), "it waits for the other open");
    h.ctx.opening.clear();
    // ...and a decision that reaches `carry_out` after that open ended (as one held back by a password
    // check does) opens the file itself instead of waiting forever.
    let wire = Rc::new(RefCell::new(Wire::default()));
    let mut late =
        Connection::new(ConnId { key: 1, serial: 2 }, Scripted(Rc::clone(&wire)), &h.ctx);
    let mut exchange = Box::new(Exchange::unparsed());
    exchange.waiting_for = None;
    let decision = Decision::Join(key.clone());
    let _ = late.carry_out(&mut h.ctx, exchange, decision);
    assert!(
        !h.ctx.opening.get(&key).is_some_and(|w| w.contains(&late.id)),
        "no waiter without an open"
    );
}

#[test]
fn a_body_that_keeps_the_minimum_rate_passes_window_after_window() {
    let limits = Limits { body_timeout: Duration::from_secs(1), ..Limits::default() };
    let mut h = Harness::with_limits(limits);
    let chunk = [b' '; 1500];
    h.send(&upload_head(9 * chunk.len() + 2, ""));
    h.send(b"{}");
    // 1,500 bytes every half second: 3,000 a window, above the 1,024 needed, for more than four windows.
    for _ in 0..9 {
        h.wait(Duration::from_millis(500));
        assert_eq!(h.state(), "ReadingBody", "a body keeping the rate is not cut");
        h.send(&chunk);
    }
    assert!(matches!(h.job(), Task::Save { .. }), "the whole body arrived and is stored");
}

#[test]
fn a_body_that_slows_below_the_rate_in_a_later_window_gets_408() {
    let limits = Limits { body_timeout: Duration::from_secs(1), ..Limits::default() };
    let mut h = Harness::with_limits(limits);
    h.send(&upload_head(100_000, ""));
    h.send(&[b' '; 2000]);
    h.wait(Duration::from_secs(1));
    assert_eq!(h.state(), "ReadingBody", "the first window kept the rate");
    h.send(b" ");
    h.wait(Duration::from_secs(1));
    assert_eq!(h.statuses(), vec![408]);
}

#[test]
fn any_pipelined_stream_split_anywhere_gets_the_responses_it_gets_whole() {
    let requests = [
        "GET /a.html HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "HEAD /b.html HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "GET /.hidden.html HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "DELETE /a.html HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "GET /b.html HTTP/1.1\r\nHost: localhost\r\nRange: bytes=1-3\r\n\r\n",
        "GET /a.html HTTP/1.1\r\nHost: localhost\r\nIf-None-Match: *\r\n\r\n",
        "\r\nGET /a.html?x=1 HTTP/1.1\nHost: localhost\n\n",
    ];
    let mut next = noise(0x51ed_2701_a9b3_4c05);
    for round in 0..200 {
        let count = 1 + next() as usize % 8;
        let stream: Vec<u8> =
            (0..count).flat_map(|_| requests[next() as usize % requests.len()].bytes()).collect();
        let mut whole = Harness::new();
        whole.send(&stream);
        let expected = std::mem::take(&mut whole.wire.borrow_mut().output);
        let mut split = Harness::new();
        // The same Date, even if a second ticked over between the two.
        split.ctx.date = whole.ctx.date.clone();
        let mut at = 0;
        while at < stream.len() {
            let take = (1 + next() as usize % 40).min(stream.len() - at);
            split.send(&stream[at..at + take]);
            at += take;
        }
        let got = std::mem::take(&mut split.wire.borrow_mut().output);
        assert!(got == expected, "round {round}: {:?}", String::from_utf8_lossy(&stream));
        assert!(!expected.is_empty());
    }
}

#[test]
fn while_an_expired_file_is_read_again_its_old_copy_is_served_without_waiting() {
    let mut h = Harness::new();
    // a.html was cached at the start; one and a half windows later it is past its window.
    h.ctx.now += crate::cache::FRESH_FOR + crate::cache::FRESH_FOR / 2;
    h.send(&get("/a.html"));
    assert!(matches!(h.job(), Task::Open { .. }), "the first request reads it again");
    let wire = Rc::new(RefCell::new(Wire::default()));
    let mut second =
        Connection::new(ConnId { key: 1, serial: 2 }, Scripted(Rc::clone(&wire)), &h.ctx);
    wire.borrow_mut().input.push_back(Input::Bytes(get("/a.html")));
    second.on_ready(&mut h.ctx, Readiness::INPUT);
    let output = std::mem::take(&mut wire.borrow_mut().output);
    let responses = split_responses(&output);
    assert_eq!((responses[0].0, &responses[0].2[..]), (200, PAGE), "the old copy, at once");
    assert!(h.jobs.try_recv().is_err(), "and no second read");
}

/// A JSON array of spaces, `len` bytes long.
fn json_of(len: usize) -> Vec<u8> {
    let mut body = vec![b' '; len];
    (body[0], body[len - 1]) = (b'[', b']');
    body
}

/// Completes the spill the connection asked for, as a worker would.
fn spill(h: &mut Harness) -> usize {
    let Task::Spill { mut body } = h.job() else { panic!("a spill") };
    let window = body.bytes.len();
    body.spilled();
    h.complete(Ok(Output::Spilled { body }));
    window
}

#[test]
fn a_body_past_one_window_is_written_out_window_by_window_with_no_reads_in_between() {
    let mut h = Harness::new();
    let len = 2 * WINDOW_BYTES + 100;
    let mut request = upload_head(len, "");
    request.extend(json_of(len));
    request.extend(get("/a.html"));
    h.send(&request);
    for window in 1..=2 {
        assert_eq!(h.state(), "Spilling", "window {window}");
        assert!(h.conn.inbox_len() <= 16 * 1024, "the rest waits unread: {}", h.conn.inbox_len());
        assert_eq!(spill(&mut h), WINDOW_BYTES, "a full window, no more");
    }
    let Task::Save { body } = h.job() else { panic!("the finished body is stored") };
    assert_eq!((body.spooled(), body.received()), (2 * WINDOW_BYTES as u64, len as u64));
    assert_eq!(body.bytes, json_of(len)[2 * WINDOW_BYTES..]);
    h.complete(saved());
    assert_eq!(h.statuses(), vec![201, 200], "the pipelined request after the body is answered");
}

#[test]
fn a_window_that_cannot_be_written_is_answered_with_its_status_and_a_close() {
    let mut h = Harness::new();
    let len = WINDOW_BYTES + 1;
    let mut request = upload_head(len, "");
    request.extend(json_of(len));
    h.send(&request);
    assert!(matches!(h.job(), Task::Spill { .. }));
    h.complete(Err(JobError::from(HttpError::InsufficientStorage)));
    let responses = h.responses();
    assert_eq!(responses[0].0, 507);
    assert!(responses[0].1.contains("Connection: close"), "{}", responses[0].1);
    assert_eq!(h.state(), "Lingering");
}

#[test]
fn a_chunked_body_growing_past_the_disk_budget_gets_503_and_a_close() {
    let limits = Limits { max_upload_disk_bytes: WINDOW_BYTES as u64 + 10, ..Limits::default() };
    let mut h = Harness::with_limits(limits);
    h.send(
        b"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Transfer-Encoding: chunked\r\n\r\n",
    );
    let chunk =
        |bytes: &[u8]| [format!("{:x}\r\n", bytes.len()).as_bytes(), bytes, b"\r\n"].concat();
    h.send(&chunk(&json_of(WINDOW_BYTES)[..WINDOW_BYTES - 1]));
    h.send(&chunk(b" "));
    assert_eq!(spill(&mut h), WINDOW_BYTES, "the first window fits");
    h.send(&chunk(&[b' '; 20]));
    h.send(&chunk(b"]"));
    h.send(b"0\r\n\r\n");
    let responses = h.responses();
    assert_eq!(responses[0].0, 503);
    assert!(responses[0].1.contains("Connection: close"), "{}", responses[0].1);
}

#[test]
fn a_body_spilled_slowly_is_not_charged_for_the_time_the_worker_took() {
    let limits = Limits { body_timeout: Duration::from_secs(1), ..Limits::default() };
    let mut h = Harness::with_limits(limits);
    let len = WINDOW_BYTES + 2000;
    let body = json_of(len);
    let mut request = upload_head(len, "");
    request.extend(&body[..WINDOW_BYTES]);
    h.send(&request);
    assert_eq!(h.state(), "Spilling");
    // The disk is slow: the worker takes longer than a whole rate window and the idle timeout.
    h.wait(Duration::from_secs(30));
    assert_eq!(h.state(), "Spilling", "no deadline while the worker has the window");
    spill(&mut h);
    assert_eq!(h.state(), "ReadingBody");
    h.send(&body[WINDOW_BYTES..]);
    assert!(matches!(h.job(), Task::Save { .. }));
}

/// A file of `len` pseudo-random bytes in a fresh folder, and its bytes.
fn file_on_disk(len: usize) -> (std::path::PathBuf, Vec<u8>) {
    let dir = crate::fuzzing::temp_dir("conn");
    let mut next = noise(len as u64);
    let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
    let path = dir.join("big.png");
    std::fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

/// The worker's answer for `path`, opened with its first 64 KiB read, as a worker does.
fn opened_from_disk(h: &Harness, path: &std::path::Path) -> Result<Output, JobError> {
    let bytes = std::fs::read(path).unwrap();
    Ok(Output::Opened(OpenedFile {
        path: "big.png".into(),
        accept: Encodings::default(),
        meta: FileMeta::sample(
            bytes.len() as u64,
            FileKind { media_type: "image/png", download: true },
        ),
        read_at: h.ctx.now,
        first: bytes[..64 * 1024].to_vec(),
        file: Some(crate::budget::HeldFile::unbounded(std::fs::File::open(path).unwrap())),
    }))
}

/// Runs the connection's turns until it has nothing more to do without an event; returns how many.
fn run_turns(h: &mut Harness) -> usize {
    let mut turns = 0;
    while h.conn.wants_another_turn() {
        h.conn.on_ready(&mut h.ctx, Readiness::INPUT);
        turns += 1;
    }
    turns
}

#[test]
fn a_download_its_client_is_slow_to_take_holds_no_buffer() {
    let (path, _) = file_on_disk(256 * 1024);
    let mut h = Harness::new();
    h.ctx.buffers.give(Vec::with_capacity(MAX_KEPT_CAPACITY));
    h.wire.borrow_mut().sends_files = true;
    h.wire.borrow_mut().room = Some(64 * 1024 + 1000);
    h.send(&get("/big.png"));
    let Ok(Output::Opened(mut opened)) = opened_from_disk(&h, &path) else {
        panic!("an opened file")
    };
    opened.first.clear();
    h.complete(Ok(Output::Opened(opened)));
    assert_eq!(h.state(), "Writing", "the client takes no more for now");
    assert_eq!(h.conn.write_buf.capacity(), 0, "the head is out, and sendfile needs no buffer");
    assert_eq!(h.conn.inbox.bytes.capacity(), 0);
    assert_eq!(h.ctx.buffers.spare(), 1, "the buffer the head went through is back");
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn a_large_file_goes_out_from_the_page_cache_a_capped_turn_at_a_time_without_workers() {
    let (path, bytes) = file_on_disk(3 * SEND_PER_TURN + 17);
    let mut h = Harness::new();
    h.wire.borrow_mut().sends_files = true;
    h.send(&get("/big.png"));
    assert!(matches!(h.job(), Task::Open { .. }));
    let opened = opened_from_disk(&h, &path);
    h.complete(opened);
    let turns = run_turns(&mut h);
    assert!(turns >= 2, "one turn sends at most {SEND_PER_TURN} bytes: {turns} more turns");
    assert!(h.jobs.try_recv().is_err(), "no worker read any of it");
    let responses = h.responses();
    assert_eq!(responses.len(), 1);
    assert!(responses[0].2 == bytes, "the body is the file, byte for byte");
    assert_eq!(h.state(), "Idle");
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn a_client_that_stops_reading_mid_file_is_resumed_and_then_dropped_at_the_write_timeout() {
    let (path, bytes) = file_on_disk(1024 * 1024);
    let mut h = Harness::new();
    h.wire.borrow_mut().sends_files = true;
    h.wire.borrow_mut().room = Some(300 * 1024);
    h.send(&get("/big.png"));
    h.job();
    let opened = opened_from_disk(&h, &path);
    h.complete(opened);
    run_turns(&mut h);
    assert_eq!(h.state(), "Writing", "blocked part way");
    let timeout = h.ctx.limits().write_timeout;
    h.wait(timeout / 2);
    h.wire.borrow_mut().room = Some(200 * 1024);
    h.conn.on_ready(&mut h.ctx, Readiness::INPUT);
    run_turns(&mut h);
    assert_eq!(h.wire.borrow().output.len(), 500 * 1024, "resumed where it stopped");
    // From that progress on, events that bring none (the client sends, it reads nothing) don't move the
    // deadline.
    for _ in 0..3 {
        h.wait(timeout / 4);
        h.send(b"x");
        assert_eq!(h.state(), "Writing");
    }
    h.wait(timeout / 4 + Duration::from_millis(1));
    assert!(h.conn.is_closed(), "no progress for the whole write timeout");
    let output = std::mem::take(&mut h.wire.borrow_mut().output);
    let body_start = output.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(output[body_start..] == bytes[..output.len() - body_start]);
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn a_file_that_ends_before_its_length_closes_the_connection_with_nothing_past_it() {
    let (path, bytes) = file_on_disk(1024 * 1024);
    let mut h = Harness::new();
    h.wire.borrow_mut().sends_files = true;
    h.send(&get("/big.png"));
    h.job();
    let opened = opened_from_disk(&h, &path);
    std::fs::File::options().write(true).open(&path).unwrap().set_len(100 * 1024).unwrap();
    h.complete(opened);
    run_turns(&mut h);
    assert!(h.conn.is_closed());
    let output = std::mem::take(&mut h.wire.borrow_mut().output);
    let body_start = output.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(output.len() - body_start, 100 * 1024, "what the file still had, and no more");
    assert!(output[body_start..] == bytes[..100 * 1024]);
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn a_multipart_range_from_disk_ends_without_holding_its_last_bytes_back() {
    let (path, bytes) = file_on_disk(256 * 1024);
    let mut h = Harness::new();
    h.wire.borrow_mut().sends_files = true;
    h.send(b"GET /big.png HTTP/1.1\r\nHost: localhost\r\nRange: bytes=0-9,200000-200009\r\n\r\n");
    h.job();
    let opened = opened_from_disk(&h, &path);
    h.complete(opened);
    run_turns(&mut h);
    assert_eq!(h.state(), "Idle");
    assert!(
        !h.wire.borrow().last_write_more,
        "the closing boundary went out as the last bytes, not held"
    );
    let output = String::from_utf8_lossy(&h.wire.borrow().output).into_owned();
    assert!(output.starts_with("HTTP/1.1 206 "), "{output}");
    for part in [&bytes[..10], &bytes[200_000..200_010]] {
        assert!(h.wire.borrow().output.windows(10).any(|w| w == part), "a part is missing");
    }
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}
