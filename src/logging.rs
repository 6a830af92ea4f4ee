//! Log output that can't stop the server: lines go through a bounded queue to a writer thread that owns the
//! sink (stdout, stderr or a file), writes in large buffered chunks and flushes at least once a second. The
//! loop never waits for it: when the queue is full, a line is dropped and counted, and the count is reported
//! once the sink takes lines again, and at exit. A closed stdout or a full disk is an error the writer
//! counts, never a panic. SIGHUP makes it reopen a log file, for logrotate.
//!
//! The event log (`log` records: startup, refusals, faults; per-connection detail at debug) is one such
//! writer on stderr, installed as the `log` backend; the access log is another (`access_log.rs`).

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

/// Longest a written line waits in the writer's buffer before it is flushed. 1 s.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// How long a writer sleeps when its queue is empty: the most a line waits before it is taken. 20 ms.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Bytes the writer gathers before it writes. 64 KiB: one write per many lines under load.
const BUFFER_BYTES: usize = 64 * 1024;

/// Longest the process waits at exit for a writer to drain and flush. 2 s: a stalled sink can't hold the exit.
const EXIT_WAIT: Duration = Duration::from_secs(2);

/// Where a log stream goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
    /// A file, appended to and reopened on SIGHUP.
    File(PathBuf),
}

impl Sink {
    fn open(&self) -> io::Result<Output> {
        Ok(match self {
            Sink::Stdout => Output::Stdout(io::stdout()),
            Sink::Stderr => Output::Stderr(io::stderr()),
            Sink::File(path) => {
                Output::File(OpenOptions::new().create(true).append(true).open(path)?)
            }
        })
    }
}

enum Output {
    Stdout(io::Stdout),
    Stderr(io::Stderr),
    File(File),
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Output::Stdout(out) => out.lock().write(buf),
            Output::Stderr(out) => out.lock().write(buf),
            Output::File(file) => file.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::Stdout(out) => out.flush(),
            Output::Stderr(out) => out.flush(),
            Output::File(file) => file.flush(),
        }
    }
}

/// What the writer thread is sent.
enum Message<T> {
    Entry(T),
    /// Flush, then say so.
    Flush(mpsc::Sender<()>),
}

/// A writer thread for entries of type `T`, each formatted by `format` on that thread.
pub struct Writer<T: Send + 'static> {
    queue: Option<SyncSender<Message<T>>>,
    dropped: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl<T: Send + 'static> Writer<T> {
    /// Opens `sink` and starts the thread; at most `capacity` entries wait for it. `name` names the stream in
    /// the messages about dropped lines, which go to stderr. `reopen` is raised by SIGHUP. `eager` flushes
    /// whenever the queue runs dry, for a stream read by people as it happens; otherwise lines are gathered
    /// for up to `FLUSH_INTERVAL`, so a busy stream costs a write per many lines.
    pub fn start(
        name: &'static str,
        sink: Sink,
        capacity: usize,
        format: fn(T, &mut Vec<u8>),
        reopen: Arc<AtomicBool>,
        eager: bool,
    ) -> io::Result<Writer<T>> {
        let output = sink.open()?;
        let (queue, entries) = mpsc::sync_channel(capacity);
        let dropped = Arc::new(AtomicU64::new(0));
        let state = Drain {
            name,
            sink,
            out: BufWriter::with_capacity(BUFFER_BYTES, output),
            format,
            dropped: Arc::clone(&dropped),
            reopen,
            line: Vec::new(),
            failing: false,
            eager,
            unflushed: 0,
            batch: capacity,
        };
        let thread = thread::Builder::new()
            .name(format!("{name}-writer"))
            .spawn(move || state.run(entries))?;
        Ok(Writer { queue: Some(queue), dropped, thread: Some(thread) })
    }

    /// Queues an entry without waiting; a full queue drops it, counted.
    pub fn write(&self, entry: T) {
        let Some(queue) = &self.queue else { return };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            queue.try_send(Message::Entry(entry))
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Asks the thread to flush and waits for it, at most `wait`.
    pub fn flush(&self, wait: Duration) {
        let Some(queue) = &self.queue else { return };
        let (done, flushed) = mpsc::channel();
        if queue.try_send(Message::Flush(done)).is_ok() {
            let _ = flushed.recv_timeout(wait);
        }
    }
}

impl<T: Send + 'static> Drop for Writer<T> {
    /// Closing the queue makes the thread drain, flush and report what was dropped. The wait is bounded, so
    /// a sink that never takes another byte can't keep the process from exiting.
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let deadline = Instant::now() + EXIT_WAIT;
            while !thread.is_finished() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(5));
            }
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
    }
}

/// The writer thread's side.
struct Drain<T> {
    name: &'static str,
    sink: Sink,
    out: BufWriter<Output>,
    format: fn(T, &mut Vec<u8>),
    dropped: Arc<AtomicU64>,
    reopen: Arc<AtomicBool>,
    /// One formatted entry, reused.
    line: Vec<u8>,
    /// The last write failed; the next one that succeeds reports the recovery.
    failing: bool,
    /// Flush whenever the queue runs dry.
    eager: bool,
    /// Lines in the buffer since the last flush that succeeded: lost if the sink fails.
    unflushed: u64,
    /// Most entries taken in one batch: the queue's capacity.
    batch: usize,
}

impl<T> Drain<T> {
    fn run(mut self, entries: Receiver<Message<T>>) {
        let mut last_flush = Instant::now();
        loop {
            // Take what is waiting in one buffered batch, up to one queue's worth, then sleep: a writer
            // blocked in `recv` would be woken (a futex call) for every single line the loop sends.
            let mut taken = 0;
            while taken < self.batch {
                match entries.try_recv() {
                    Ok(message) => {
                        self.handle(message);
                        taken += 1;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        self.flush();
                        self.report_dropped();
                        return;
                    }
                }
            }
            if (self.eager && taken > 0) || last_flush.elapsed() >= FLUSH_INTERVAL {
                self.flush();
                last_flush = Instant::now();
            }
            if self.reopen.swap(false, Ordering::Relaxed) {
                self.reopen_sink();
            }
            // The queue ran dry: if lines were dropped while it was full, the sink has caught up. Say so.
            if taken < self.batch && !self.failing {
                self.report_dropped();
            }
            if taken < self.batch {
                thread::sleep(POLL_INTERVAL);
            }
        }
    }

    fn handle(&mut self, message: Message<T>) {
        match message {
            Message::Entry(entry) => {
                // Looked at before every line, so nothing written after a SIGHUP goes to the old file.
                if self.reopen.load(Ordering::Relaxed) && self.reopen.swap(false, Ordering::Relaxed)
                {
                    self.reopen_sink();
                }
                let mut line = std::mem::take(&mut self.line);
                line.clear();
                (self.format)(entry, &mut line);
                self.emit(&line);
                self.line = line;
            }
            Message::Flush(done) => {
                self.flush();
                let _ = done.send(());
            }
        }
    }

    fn emit(&mut self, line: &[u8]) {
        match self.out.write_all(line) {
            Ok(()) => self.unflushed += 1,
            Err(_) => self.fail(),
        }
    }

    /// Pushes the buffer to the sink. The first flush that succeeds after a failure reports what was lost.
    fn flush(&mut self) {
        match self.out.flush() {
            Ok(()) => {
                self.unflushed = 0;
                if self.failing {
                    self.failing = false;
                    self.report_dropped();
                }
            }
            Err(_) => self.fail(),
        }
    }

    /// A write failed (a closed pipe, a full disk): the lines the buffer held are lost and counted, and the
    /// server goes on.
    fn fail(&mut self) {
        self.failing = true;
        self.dropped.fetch_add(self.unflushed.max(1), Ordering::Relaxed);
        self.unflushed = 0;
        // Start afresh, discarding the buffer: it would retry the failed sink and could grow without bound.
        if let Ok(output) = self.sink.open() {
            let failed =
                std::mem::replace(&mut self.out, BufWriter::with_capacity(BUFFER_BYTES, output));
            drop(failed.into_parts());
        }
    }

    /// The count of dropped lines, as one line in this stream (or on stderr for the event log itself).
    fn report_dropped(&mut self) {
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let note = format!(
                "{} WARN  [http_server] {}: {dropped} line(s) dropped\n",
                timestamp(SystemTime::now()),
                self.name
            );
            let _ = io::stderr().write_all(note.as_bytes());
        }
    }

    fn reopen_sink(&mut self) {
        self.flush();
        match self.sink.open() {
            Ok(output) => self.out = BufWriter::with_capacity(BUFFER_BYTES, output),
            Err(e) => {
                let note = format!(
                    "{} ERROR [http_server] {}: cannot reopen: {e}\n",
                    timestamp(SystemTime::now()),
                    self.name
                );
                let _ = io::stderr().write_all(note.as_bytes());
            }
        }
    }
}

/// `2026-12-01T18:14:31.123Z`: UTC, to the millisecond.
pub fn timestamp(at: SystemTime) -> String {
    let at = time::OffsetDateTime::from(at);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

/// The event log: `log` records, timestamped, through a writer on stderr.
pub struct EventLog {
    level: LevelFilter,
    writer: Mutex<Option<Writer<String>>>,
}

/// Event lines waiting for the writer. 4096: a burst of refusals under attack is kept, a flood is cut.
const EVENT_QUEUE: usize = 4096;

impl EventLog {
    /// Installs the event log at `level` as the `log` backend. `reopen` is shared with SIGHUP.
    pub fn install(level: LevelFilter, reopen: Arc<AtomicBool>) -> io::Result<&'static EventLog> {
        let writer =
            Writer::start("event log", Sink::Stderr, EVENT_QUEUE, format_event, reopen, true)?;
        let logger: &'static EventLog =
            Box::leak(Box::new(EventLog { level, writer: Mutex::new(Some(writer)) }));
        log::set_logger(logger).map_err(|e| io::Error::other(e.to_string()))?;
        log::set_max_level(level);
        Ok(logger)
    }

    /// Flushes what is queued and stops the writer: the last thing the process does.
    pub fn close(&self) {
        let writer = match self.writer.lock() {
            Ok(mut writer) => writer.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        drop(writer);
    }
}

fn format_event(line: String, out: &mut Vec<u8>) {
    out.extend_from_slice(line.as_bytes());
}

impl Log for EventLog {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            Level::Error => "ERROR",
            Level::Warn => "WARN ",
            Level::Info => "INFO ",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        };
        let line = format!(
            "{} {level} [{}] {}\n",
            timestamp(SystemTime::now()),
            record.target(),
            record.args()
        );
        if let Ok(writer) = self.writer.lock() {
            if let Some(writer) = writer.as_ref() {
                writer.write(line);
            }
        }
    }

    fn flush(&self) {
        if let Ok(writer) = self.writer.lock() {
            if let Some(writer) = writer.as_ref() {
                writer.flush(EXIT_WAIT);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(line: String, out: &mut Vec<u8>) {
        out.extend_from_slice(line.as_bytes());
    }

    fn temp_file() -> PathBuf {
        std::env::temp_dir().join(format!("http-server-log-{}", uuid::Uuid::new_v4().simple()))
    }

    #[test]
    fn lines_reach_the_file_on_flush_and_at_drop() {
        let path = temp_file();
        let writer =
            Writer::start("test", Sink::File(path.clone()), 16, raw, Arc::default(), false)
                .unwrap();
        writer.write("one\n".into());
        writer.flush(Duration::from_secs(5));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\n");
        writer.write("two\n".into());
        drop(writer);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\n");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn a_reopen_request_moves_lines_to_a_new_file_at_the_same_path() {
        let path = temp_file();
        let rotated = path.with_extension("1");
        let reopen = Arc::new(AtomicBool::new(false));
        let writer =
            Writer::start("test", Sink::File(path.clone()), 16, raw, Arc::clone(&reopen), false)
                .unwrap();
        writer.write("before\n".into());
        writer.flush(Duration::from_secs(5));
        std::fs::rename(&path, &rotated).unwrap();
        reopen.store(true, Ordering::Relaxed);
        writer.write("after\n".into());
        writer.write("and more\n".into());
        drop(writer);
        assert_eq!(std::fs::read_to_string(&rotated).unwrap(), "before\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "after\nand more\n");
        std::fs::remove_file(path).unwrap();
        std::fs::remove_file(rotated).unwrap();
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        // A slow formatter stands for a stalled sink: the queue of two fills at once.
        fn slow(line: String, out: &mut Vec<u8>) {
            thread::sleep(Duration::from_millis(50));
            out.extend_from_slice(line.as_bytes());
        }
        let path = temp_file();
        let writer =
            Writer::start("test", Sink::File(path.clone()), 2, slow, Arc::default(), false)
                .unwrap();
        for i in 0..100 {
            writer.write(format!("{i}\n"));
        }
        assert!(writer.dropped.load(Ordering::Relaxed) >= 90);
        drop(writer);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn timestamps_are_utc_to_the_millisecond() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_953_600_123);
        assert_eq!(timestamp(at), "2026-11-29T12:00:00.123Z");
    }
}
