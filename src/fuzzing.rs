//! Entry points for the fuzz targets in `fuzz/`, built only with `--cfg fuzzing` (cargo-fuzz sets it). Each
//! asserts invariants, not just the absence of a panic. A unit test replays the corpus kept in
//! `fuzz/regressions/`.

use crate::body::BodyDecoder;
use crate::config::Limits;
use crate::connection::{Connection, Readiness};
use crate::context::tests::test_context;
use crate::http::{self, Conditions, Inbox};
use crate::mime::FileKind;
use crate::response::{self, ErrorFormat, FileRequest, Source, Validators};
use crate::transport::Transport;
use crate::worker::{ConnId, FileMeta, JobError, OpenedFile, Output, Task};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

/// A fresh, empty folder under the system's temporary one, for unit tests that touch files.
#[cfg(test)]
pub fn temp_dir(label: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("http-server-{label}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    dir
}

/// A deterministic xorshift stream for the seeded property tests, so a failure reproduces.
#[cfg(test)]
pub fn noise(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

/// Splits `data` into pieces whose lengths come from its own bytes, so the fuzzer controls the split points.
fn pieces(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    std::iter::from_fn(move || {
        let (&len, tail) = rest.split_first()?;
        let take = (usize::from(len) % 64 + 1).min(tail.len());
        let (piece, after) = tail.split_at(take);
        rest = after;
        Some(piece)
    })
}

/// Request heads, whole and split: the parser never panics, and a head found in pieces is the one found whole.
pub fn head(data: &[u8]) {
    let limits = Limits::default();
    let whole = http::parse_head(data, &limits);
    let mut inbox = Inbox::default();
    inbox.bytes.extend_from_slice(data);
    let _ = inbox.take_head(true, &limits);
    if let Ok(Some((head, len))) = whole {
        assert!(len <= data.len() && len <= limits.max_head_bytes);
        for split in [1, len / 2, len.saturating_sub(1)] {
            let mut inbox = Inbox::default();
            inbox.bytes.extend_from_slice(&data[..split.min(len)]);
            let early = inbox.take_head(false, &limits);
            assert!(!matches!(early, Ok(Some(_))) || split >= len, "a head before its end");
            inbox.bytes.extend_from_slice(&data[split.min(len)..]);
            if let Ok(Some(again)) = inbox.take_head(false, &limits) {
                assert_eq!(again, head, "split at {split}");
            }
        }
    }
}

/// Chunked bodies fed in arbitrary pieces into a small window that spills, as uploads spill to disk: never
/// more body than the limit, never more in the window than it holds, and the same body as fed whole.
pub fn chunked(data: &[u8]) {
    const MAX_BODY: usize = 4096;
    const WINDOW: usize = 61;
    let (split_script, body) = data.split_at(data.len() / 4);
    let mut whole = BodyDecoder::new(http::BodyFraming::Chunked);
    let mut all = Vec::new();
    let whole_result = whole.decode(body, &mut all, MAX_BODY, usize::MAX);
    assert!(all.len() <= MAX_BODY);
    let mut parts = BodyDecoder::new(http::BodyFraming::Chunked);
    let (mut pieced, mut window) = (Vec::new(), Vec::new());
    let mut pending = Vec::new();
    let mut offset = 0;
    for piece in pieces(split_script).chain(std::iter::once(&body[offset.min(body.len())..])) {
        let take = piece.len().min(body.len() - offset);
        pending.extend_from_slice(&body[offset..offset + take]);
        offset += take;
        loop {
            match parts.decode(&pending, &mut window, MAX_BODY - pieced.len(), WINDOW) {
                Ok(used) => drop(pending.drain(..used)),
                Err(_) => return,
            }
            assert!(window.len() <= WINDOW);
            if window.len() < WINDOW {
                break;
            }
            pieced.append(&mut window);
        }
        assert!(pieced.len() + window.len() <= MAX_BODY);
    }
    pieced.append(&mut window);
    if whole_result.is_ok() && whole.is_done() {
        assert_eq!(pieced, all, "pieces decode to the same body");
    }
}

/// Conditional and Range fields against a file in memory: the response is well formed, its declared length
/// is what it carries, and every byte it sends comes from the file.
pub fn file_response(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut fields = text.split('\n');
    let mut next = || fields.next().map(str::to_owned);
    let conditions = Conditions {
        range: next(),
        if_range: next().filter(|s| !s.is_empty()),
        if_match: next().filter(|s| !s.is_empty()),
        if_none_match: next().filter(|s| !s.is_empty()),
        if_modified_since: next().filter(|s| !s.is_empty()),
        if_unmodified_since: next().filter(|s| !s.is_empty()),
    };
    let len = data.len() % 300;
    let file: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
    let meta = FileMeta::sample(len as u64, FileKind { media_type: "text/plain", download: false });
    let request = FileRequest {
        conditions: &conditions,
        cache_control: "no-cache",
        errors: ErrorFormat::Json,
    };
    let validators = Validators::of(&meta);
    let body = Rc::new(file);
    let serve = || {
        let response = response::file(
            &request,
            Path::new("a.txt"),
            &meta,
            &validators,
            Source::Memory(Rc::clone(&body)),
        );
        let (declared, status) = (response.body.len(), response.status.code);
        let mut out = Vec::new();
        let rest = response.encode(
            &mut out,
            "Sun, 29 Nov 2026 12:00:00 GMT",
            http::Persistence::Close,
            &http::Method::Get,
        );
        assert!(rest.is_none(), "a file in memory is sent whole");
        (declared, status, out)
    };
    // The first response renders a cached file's fixed head; a later one must be the same, byte for byte.
    let (declared, status, out) = serve();
    assert!(serve() == (declared, status, out.clone()), "a second response differs from the first");
    let head_end = out.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete head") + 4;
    assert!(matches!(status, 200 | 206 | 304 | 412 | 416), "status {status}");
    if !matches!(status, 304) {
        assert_eq!((out.len() - head_end) as u64, declared, "Content-Length matches the body");
    }
    if status == 200 || (status == 206 && !out.windows(9).any(|w| w == b"multipart")) {
        assert!(out[head_end..].iter().all(u8::is_ascii_lowercase), "only file bytes");
    }
}

/// The scripted client of `connection`: input in pieces, output collected, writes after close caught.
#[derive(Default)]
struct Wire {
    input: VecDeque<Vec<u8>>,
    output: Vec<u8>,
    eof: bool,
    closed: bool,
}

struct Scripted(Rc<RefCell<Wire>>);

impl Transport for Scripted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut wire = self.0.borrow_mut();
        match wire.input.pop_front() {
            Some(mut bytes) => {
                let n = bytes.len().min(buf.len());
                buf[..n].copy_from_slice(&bytes[..n]);
                if n < bytes.len() {
                    wire.input.push_front(bytes.split_off(n));
                }
                Ok(n)
            }
            None if wire.eof => Ok(0),
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut wire = self.0.borrow_mut();
        assert!(!wire.closed, "a write after the connection closed");
        let n = buf.len().min(1500);
        wire.output.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn shutdown_write(&mut self) {
        self.0.borrow_mut().closed = true;
    }

    fn local_ip(&self) -> IpAddr {
        IpAddr::from([127, 0, 0, 1])
    }

    fn peer(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 40000))
    }
}

/// The whole state machine: request bytes in arbitrary pieces, jobs completed with canned results, time
/// passing. Every response starts with a valid status line, responses never interleave, and the input it
/// holds stays within the head limit and one turn of reads.
pub fn connection(data: &[u8]) {
    let limits = Limits { max_body_bytes: 2048, ..Limits::default() };
    let (mut ctx, jobs) = test_context(limits.clone());
    let wire = Rc::new(RefCell::new(Wire::default()));
    let mut conn = Connection::new(ConnId { key: 0, serial: 1 }, Scripted(Rc::clone(&wire)), &ctx);
    for (i, piece) in pieces(data).enumerate() {
        match piece.first().copied().unwrap_or(0) % 16 {
            // Time passes: timeouts fire.
            0 => {
                ctx.now += Duration::from_millis(u64::from(piece.len() as u8) * 50);
                conn.on_tick(&mut ctx);
            }
            // A worker finishes whatever the connection asked for.
            1 => {
                if let Ok(job) = jobs.try_recv() {
                    let result = canned(job.task, &ctx);
                    conn.on_completion(&mut ctx, result);
                    // As the server does: the open is over, whoever waited is woken (here, nobody else).
                    ctx.opening.clear();
                }
            }
            2 if i > 4 => wire.borrow_mut().eof = true,
            _ => wire.borrow_mut().input.push_back(piece.to_vec()),
        }
        conn.on_ready(&mut ctx, Readiness::INPUT);
        assert!(conn.inbox_len() <= limits.max_head_bytes + 16 * crate::transport::READ_CHUNK);
        if conn.is_closed() {
            break;
        }
    }
    let output = wire.borrow().output.clone();
    let mut rest = &output[..];
    while !rest.is_empty() {
        assert!(
            rest.starts_with(b"HTTP/1.1 "),
            "a response starts with a status line: {:?}",
            String::from_utf8_lossy(&rest[..rest.len().min(40)])
        );
        let code = std::str::from_utf8(&rest[9..12.min(rest.len())])
            .ok()
            .and_then(|c| c.parse::<u16>().ok());
        assert!(code.is_some_and(|c| (100..600).contains(&c)), "a status code");
        let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") else { break };
        let head = String::from_utf8_lossy(&rest[..end]).into_owned();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        // A response to HEAD has a length but no body: then the next response follows at once (no body the
        // server sends starts with a status line).
        let after = &rest[end + 4..];
        let bodiless = code == Some(100)
            || head.starts_with("HTTP/1.1 304")
            || after.starts_with(b"HTTP/1.1 ");
        let body = if bodiless { 0 } else { len };
        rest = &rest[(end + 4 + body).min(rest.len())..];
    }
}

/// The result a worker would give for `task`, made up.
fn canned(task: Task, ctx: &crate::context::Context) -> Result<Output, JobError> {
    match task {
        Task::Open { path, .. } if path.ends_with("missing.html") => {
            Err(JobError::from(crate::error::HttpError::NotFound))
        }
        Task::Open { path, accept, .. } => {
            let meta = FileMeta::sample(5, FileKind { media_type: "text/html", download: false });
            Ok(Output::Opened(OpenedFile {
                path,
                accept,
                meta,
                read_at: ctx.now,
                first: b"hello".to_vec(),
                file: None,
            }))
        }
        Task::Read { .. } => Ok(Output::Chunk { bytes: Vec::new(), rest: None }),
        Task::Warm { file } => Ok(Output::Chunk { bytes: Vec::new(), rest: Some(file) }),
        Task::Spill { mut body } => {
            body.spilled();
            Ok(Output::Spilled { body })
        }
        Task::Save { .. } => Ok(Output::Saved { name: "upload_x.json".into() }),
        Task::Verify { .. } => Ok(Output::Verified(false)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inputs the fuzz targets found interesting, kept in `fuzz/regressions/TARGET/`, plus a few seeds.
    fn corpus(target: &str) -> Vec<Vec<u8>> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions").join(target);
        let mut inputs: Vec<Vec<u8>> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .filter_map(|e| std::fs::read(e.path()).ok())
                    .collect()
            })
            .unwrap_or_default();
        inputs.push(Vec::new());
        inputs.push(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec());
        inputs.push(b"\x05POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\x032\r\n{}\r\n0\r\n\r\n\x01".to_vec());
        inputs.push(b"bytes=0-1,5-\n\"x\"\n\n*\n".to_vec());
        inputs
    }

    #[test]
    fn the_fuzz_corpus_replays_without_a_failed_invariant() {
        for input in corpus("head") {
            head(&input);
        }
        for input in corpus("chunked") {
            chunked(&input);
        }
        for input in corpus("file_response") {
            file_response(&input);
        }
        for input in corpus("connection") {
            connection(&input);
        }
    }
}
