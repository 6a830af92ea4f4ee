//! A file body on its way out: the open file, held under `--max-open-files`, and the segments still to send.
//!
//! The loop sends file spans straight from the page cache with `sendfile`. Before a span it asks the page
//! cache, without blocking, whether the span is there (`preadv2` with `RWF_NOWAIT`); a span that is not is
//! read in by a worker first (`warm`), so the loop never waits on the disk. A span found there, or warmed, is
//! sent without asking again for up to `PROBE_TRUST`. Reading spans into memory on a
//! worker (`read_chunk`) is the fallback for a transport that can't send a file and a filesystem that can't
//! answer. The blocking halves here run only on workers.

use crate::budget::HeldFile;
use crate::error::HttpError;
use log::error;
use rustix::io::{preadv2, Errno, ReadWriteFlags};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSliceMut};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

/// Most bytes of a file one `sendfile` call sends, and the span probed in the page cache before it. 2 MiB,
/// nginx's `sendfile_max_chunk` default: one fast reader can't hold the loop for long, and a worker reading a
/// missing span in reads no more than this at once. (At 512 KiB a 10 MiB download took 26 calls and 52
/// probes. With `transport::UNSENT_LOWAT` a call also ends once the client falls behind, so the number of
/// calls depends on the client: about 15 for wrk on loopback, 40 for curl.)
pub const SEND_FILE_MAX_CHUNK: usize = 2 * 1024 * 1024;

/// How long the page cache's answer about a span (or a worker's warming of it) is trusted: the rest of the
/// span goes out without asking again until then. 1 s: a client that keeps up takes a 2 MiB span well within
/// it, however many `sendfile` calls and waits for writability that takes, while one that stalls longer has
/// its next bytes asked about afresh, since the pages may have gone meanwhile.
const PROBE_TRUST: Duration = Duration::from_secs(1);

/// Bytes a worker reads per call while warming a span. 64 KiB.
const WARM_READ_BYTES: usize = 64 * 1024;

/// One piece of a body still to be sent: bytes made for it (multipart boundaries), or a span of the file.
#[derive(Debug, PartialEq, Eq)]
pub enum Segment {
    /// Bytes in memory.
    Bytes(Vec<u8>),
    /// `len` bytes of the file from `offset`.
    File { offset: u64, len: u64 },
}

/// An open file being sent, and the segments of the body still to go.
#[derive(Debug)]
pub struct FileCursor {
    file: HeldFile,
    segments: VecDeque<Segment>,
    /// The bytes of the file last found in the page cache, or just read in by a worker: sent without asking
    /// again until `trusted_until`.
    cached: Range<u64>,
    /// When the page cache is asked about `cached` again; `None` before it was first asked.
    trusted_until: Option<Instant>,
    /// Every span goes through a worker's memory: the transport can't send a file, or the filesystem can't
    /// say what it has cached.
    copied: bool,
}

/// What goes out next.
#[derive(Debug, PartialEq, Eq)]
pub enum Ahead {
    /// Bytes made for the body (multipart boundaries): write them.
    Bytes(Vec<u8>),
    /// `len` bytes of the file from `offset` are in the page cache: send them from there.
    Cached { offset: u64, len: usize },
    /// The next span is not all in the page cache: a worker reads it in first (`warm`).
    Uncached,
    /// A worker reads the next chunk into memory (`read_chunk`).
    Copied,
}

impl FileCursor {
    /// A cursor that sends `segments` from `file`; `None` when nothing is left to send.
    pub fn new(file: HeldFile, segments: impl IntoIterator<Item = Segment>) -> Option<FileCursor> {
        let segments: VecDeque<Segment> = segments
            .into_iter()
            .filter(|s| {
                !matches!(s, Segment::File { len: 0, .. }) && *s != Segment::Bytes(Vec::new())
            })
            .collect();
        (!segments.is_empty()).then_some(FileCursor {
            file,
            segments,
            cached: 0..0,
            trusted_until: None,
            copied: false,
        })
    }

    /// What goes out next; `None` once the body is complete. Made bytes are taken off the cursor; a file span
    /// stays on it until `sent` says how much of it went.
    pub fn ahead(&mut self, now: Instant) -> Option<Ahead> {
        let front = self.segments.front_mut()?;
        let (offset, len) = match front {
            Segment::Bytes(bytes) => {
                let bytes = std::mem::take(bytes);
                self.segments.pop_front();
                return Some(Ahead::Bytes(bytes));
            }
            Segment::File { offset, len } => {
                (*offset, (*len).min(SEND_FILE_MAX_CHUNK as u64) as usize)
            }
        };
        if self.copied {
            return Some(Ahead::Copied);
        }
        if self.cached.contains(&offset) && self.trusted_until.is_some_and(|until| now < until) {
            let len = len.min((self.cached.end - offset) as usize);
            return Some(Ahead::Cached { offset, len });
        }
        Some(match is_cached(self.file.file(), offset, len) {
            Some(true) => {
                self.cached = offset..offset + len as u64;
                self.trusted_until = Some(now + PROBE_TRUST);
                Ahead::Cached { offset, len }
            }
            Some(false) => Ahead::Uncached,
            None => {
                self.copied = true;
                Ahead::Copied
            }
        })
    }

    /// The file, to send from.
    pub fn file(&self) -> &File {
        self.file.file()
    }

    /// `n` bytes of the front span went out.
    pub fn sent(&mut self, n: usize) {
        if let Some(Segment::File { offset, len }) = self.segments.front_mut() {
            let n = (n as u64).min(*len);
            (*offset, *len) = (*offset + n, *len - n);
            if *len == 0 {
                self.segments.pop_front();
            }
        }
    }

    /// Whether a span of the file is next, to follow what is being written at once.
    pub fn file_follows(&self) -> bool {
        matches!(self.segments.front(), Some(Segment::File { .. }))
    }

    /// The transport can't send a file: from now on, spans go through a worker's memory.
    pub fn copy_from_now_on(&mut self) {
        self.copied = true;
    }

    /// Reads the front span into the page cache, dropping the bytes, so the loop can send it without waiting
    /// on the disk. Runs on a worker. A file that ends before the span does is an error: the promised length
    /// can't be met.
    pub fn warm(mut self) -> Result<FileCursor, HttpError> {
        if let Some(&Segment::File { offset, len }) = self.segments.front() {
            let end = offset + len.min(SEND_FILE_MAX_CHUNK as u64);
            let mut buf = vec![0; WARM_READ_BYTES];
            let mut at = offset;
            while at < end {
                let want = ((end - at) as usize).min(buf.len());
                match self.file.file().read_at(&mut buf[..want], at) {
                    Ok(0) => return Err(HttpError::Internal),
                    Ok(n) => at += n as u64,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(read_failed(&e)),
                }
            }
            self.cached = offset..end;
            self.trusted_until = Some(Instant::now() + PROBE_TRUST);
        }
        Ok(self)
    }

    /// Takes up to `chunk_bytes` of the body from the front of the segments into memory; the cursor comes
    /// back only if more remains. Runs on a worker.
    pub fn read_chunk(
        mut self,
        chunk_bytes: usize,
    ) -> Result<(Vec<u8>, Option<FileCursor>), HttpError> {
        let mut bytes = Vec::with_capacity(chunk_bytes);
        while bytes.len() < chunk_bytes {
            let room = chunk_bytes - bytes.len();
            match self.segments.front_mut() {
                None => break,
                Some(Segment::Bytes(made)) => {
                    let take = made.len().min(room);
                    bytes.extend(made.drain(..take));
                    if made.is_empty() {
                        self.segments.pop_front();
                    }
                }
                Some(Segment::File { offset, len }) => {
                    let take = (*len).min(room as u64);
                    read_span(self.file.file(), *offset, take, &mut bytes)?;
                    (*offset, *len) = (*offset + take, *len - take);
                    if *len == 0 {
                        self.segments.pop_front();
                    }
                }
            }
        }
        let rest = (!self.segments.is_empty()).then_some(self);
        Ok((bytes, rest))
    }
}

/// Whether `len` bytes from `offset` are in the page cache, asked without blocking: a `preadv2` with
/// `RWF_NOWAIT` of the span's first and of its last byte. Pages are read in, and evicted, in runs, so the two
/// ends stand for the span; a page evicted alone in between is the worst case, and costs the loop one read
/// from the disk. `None` when the filesystem can't tell.
fn is_cached(file: &File, offset: u64, len: usize) -> Option<bool> {
    let mut byte = [0u8; 1];
    for at in [offset, offset + len.saturating_sub(1) as u64] {
        match preadv2(file, &mut [IoSliceMut::new(&mut byte)], at, ReadWriteFlags::NOWAIT) {
            // 0: the file ends before the span; sendfile will find it short, and the connection closes.
            Ok(_) => {}
            Err(Errno::AGAIN) => return Some(false),
            Err(Errno::INTR) => return Some(false),
            Err(_) => return None,
        }
    }
    Some(true)
}

/// Appends `len` bytes of `file` from `offset` to `out`. Blocks: workers only.
///
/// The bytes are read into spare capacity, never zeroed first: zeroing cost as much as the copy itself, a
/// fifth of a TLS download's instructions.
pub fn read_span(file: &File, offset: u64, len: u64, out: &mut Vec<u8>) -> Result<(), HttpError> {
    let need = usize::try_from(len).map_err(|_| HttpError::Internal)?;
    out.reserve_exact(need);
    if out.capacity() - out.len() == need {
        return fill_spare(file, offset, out);
    }
    // More room than the span (a chunk's buffer, for a small part of a multipart range): a read into all of
    // it would take bytes past the span, so the span gets a buffer of its own size.
    let mut span = Vec::with_capacity(need);
    fill_spare(file, offset, &mut span)?;
    out.extend_from_slice(&span);
    Ok(())
}

/// Fills `buf`'s spare capacity from `file` at `offset`.
fn fill_spare(file: &File, offset: u64, buf: &mut Vec<u8>) -> Result<(), HttpError> {
    let start = buf.len();
    while buf.len() < buf.capacity() {
        let at = offset + (buf.len() - start) as u64;
        match rustix::io::pread(file, rustix::buffer::spare_capacity(buf), at) {
            // The file shrank under us: the promised Content-Length can't be met, so the connection must drop.
            Ok(0) => return Err(HttpError::Internal),
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(read_failed(&e.into())),
        }
    }
    Ok(())
}

fn read_failed(e: &io::Error) -> HttpError {
    error!("reading a file being sent: {e}");
    HttpError::Internal
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::PathBuf;

    fn temp_dir() -> PathBuf {
        crate::fuzzing::temp_dir("cursor")
    }

    /// `bytes` written to `dir/f`, opened and held as a download holds its file.
    fn held_file(dir: &std::path::Path, bytes: impl AsRef<[u8]>) -> HeldFile {
        fs::write(dir.join("f"), bytes).unwrap();
        HeldFile::unbounded(File::open(dir.join("f")).unwrap())
    }

    fn read_chunk(
        cursor: FileCursor,
        n: usize,
    ) -> Result<(Vec<u8>, Option<FileCursor>), HttpError> {
        cursor.read_chunk(n)
    }

    #[test]
    fn chunks_are_read_until_the_file_ends() {
        let dir = temp_dir();
        let file = held_file(&dir, b"0123456789");
        let cursor = FileCursor::new(file, [Segment::File { offset: 0, len: 10 }]).unwrap();
        let (first, rest) = read_chunk(cursor, 4).unwrap();
        let (second, rest) = read_chunk(rest.unwrap(), 4).unwrap();
        let (third, rest) = read_chunk(rest.unwrap(), 4).unwrap();
        assert_eq!(
            (first.as_slice(), second.as_slice(), third.as_slice()),
            (&b"0123"[..], &b"4567"[..], &b"89"[..])
        );
        assert!(rest.is_none());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_span_read_into_roomy_capacity_takes_exactly_its_bytes() {
        let dir = temp_dir();
        let file = held_file(&dir, b"0123456789");
        let mut out = Vec::with_capacity(1 << 16);
        out.extend_from_slice(b"head:");
        read_span(file.file(), 2, 3, &mut out).unwrap();
        assert_eq!(out, b"head:234");
        assert_eq!(read_span(file.file(), 8, 5, &mut Vec::new()), Err(HttpError::Internal));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn segments_mix_made_bytes_and_file_spans_across_chunk_boundaries() {
        let dir = temp_dir();
        let file = held_file(&dir, b"0123456789");
        let segments = [
            Segment::Bytes(b"<a>".to_vec()),
            Segment::File { offset: 2, len: 3 },
            Segment::Bytes(b"<b>".to_vec()),
            Segment::File { offset: 8, len: 2 },
            Segment::File { offset: 0, len: 0 },
        ];
        let mut cursor = FileCursor::new(file, segments);
        let mut sent = Vec::new();
        while let Some(rest) = cursor {
            let (bytes, next) = read_chunk(rest, 4).unwrap();
            assert!(bytes.len() <= 4);
            sent.extend(bytes);
            cursor = next;
        }
        assert_eq!(sent, b"<a>234<b>89");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_span_past_the_end_of_a_shrunk_file_is_an_error_not_short_data() {
        let dir = temp_dir();
        let file = held_file(&dir, b"0123");
        let cursor = FileCursor::new(file, [Segment::File { offset: 2, len: 5 }]).unwrap();
        assert!(read_chunk(cursor, 64).is_err());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_file_just_written_is_in_the_page_cache_and_is_sent_span_by_span() {
        let dir = temp_dir();
        let len = SEND_FILE_MAX_CHUNK + 1000;
        let file = held_file(&dir, vec![b'x'; len]);
        let segments =
            [Segment::Bytes(b"--b".to_vec()), Segment::File { offset: 10, len: len as u64 - 10 }];
        let mut cursor = FileCursor::new(file, segments).unwrap();
        let now = Instant::now();
        assert_eq!(cursor.ahead(now), Some(Ahead::Bytes(b"--b".to_vec())));
        assert_eq!(cursor.ahead(now), Some(Ahead::Cached { offset: 10, len: SEND_FILE_MAX_CHUNK }));
        cursor.sent(100);
        // The rest of the span found cached goes without another probe; the next span is probed.
        let rest_of_span = SEND_FILE_MAX_CHUNK - 100;
        assert_eq!(cursor.ahead(now), Some(Ahead::Cached { offset: 110, len: rest_of_span }));
        cursor.sent(rest_of_span);
        let next = 10 + SEND_FILE_MAX_CHUNK as u64;
        assert_eq!(cursor.ahead(now), Some(Ahead::Cached { offset: next, len: 990 }));
        assert_eq!(cursor.cached, next..next + 990);
        cursor.sent(990);
        assert_eq!(cursor.ahead(now), None);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_page_caches_answer_is_trusted_for_a_while_then_asked_again() {
        let dir = temp_dir();
        let file = held_file(&dir, vec![b'x'; 3 * 4096]);
        let mut cursor =
            FileCursor::new(file, [Segment::File { offset: 0, len: 3 * 4096 }]).unwrap();
        let start = Instant::now();
        assert_eq!(cursor.ahead(start), Some(Ahead::Cached { offset: 0, len: 3 * 4096 }));
        cursor.sent(4096);
        let within = start + PROBE_TRUST / 2;
        assert_eq!(cursor.ahead(within), Some(Ahead::Cached { offset: 4096, len: 2 * 4096 }));
        assert_eq!(cursor.cached, 0..3 * 4096, "not asked again");
        cursor.sent(4096);
        let past = start + PROBE_TRUST;
        assert_eq!(cursor.ahead(past), Some(Ahead::Cached { offset: 2 * 4096, len: 4096 }));
        assert_eq!(cursor.cached, 2 * 4096..3 * 4096, "asked again");
        cursor.sent(4096);
        assert_eq!(cursor.ahead(past), None);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_span_dropped_from_the_page_cache_is_warmed_by_a_worker_then_sent_without_asking_again() {
        let dir = temp_dir();
        let path = dir.join("f");
        fs::write(&path, vec![b'y'; 3 * 4096]).unwrap();
        let file = File::open(&path).unwrap();
        file.sync_all().unwrap();
        // Ask the kernel to drop the clean pages; where it won't (some filesystems keep them), the span
        // simply stays cached.
        let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed);
        let mut cursor = FileCursor::new(
            HeldFile::unbounded(file),
            [Segment::File { offset: 0, len: 3 * 4096 }],
        )
        .unwrap();
        match cursor.ahead(Instant::now()) {
            Some(Ahead::Uncached) => {
                let mut warmed = cursor.warm().unwrap();
                let now = Instant::now();
                assert_eq!(warmed.ahead(now), Some(Ahead::Cached { offset: 0, len: 3 * 4096 }));
            }
            other => assert_eq!(other, Some(Ahead::Cached { offset: 0, len: 3 * 4096 })),
        }
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn warming_a_span_of_a_shrunk_file_is_an_error() {
        let dir = temp_dir();
        let file = held_file(&dir, b"0123");
        let cursor = FileCursor::new(file, [Segment::File { offset: 0, len: 10 }]).unwrap();
        assert_eq!(cursor.warm().unwrap_err(), HttpError::Internal);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_transport_that_cannot_send_files_gets_every_span_copied() {
        let dir = temp_dir();
        let file = held_file(&dir, b"0123");
        let mut cursor = FileCursor::new(file, [Segment::File { offset: 0, len: 4 }]).unwrap();
        cursor.copy_from_now_on();
        assert_eq!(cursor.ahead(Instant::now()), Some(Ahead::Copied));
        let (bytes, rest) = cursor.read_chunk(64).unwrap();
        assert_eq!((bytes.as_slice(), rest.is_none()), (&b"0123"[..], true));
        fs::remove_dir_all(dir).unwrap();
    }
}
