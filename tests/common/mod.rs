//! Test harness: runs the real binary on an ephemeral port with its own document root, and speaks raw TCP to it.

#![allow(dead_code)] // each test crate uses a different subset of these helpers

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long any test read or write may block before the test fails instead of hanging.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The bundled site, copied into each test's root so tests can add files freely.
const BUNDLED: &[&str] =
    &["index.html", "about.html", "contact.html", "sample.txt", "logo.png", "photo.jpg"];

/// A running server with its own temporary root. Dropping it kills the child and removes the root.
pub struct TestServer {
    child: Child,
    pub addr: SocketAddr,
    pub root: PathBuf,
    log: Arc<Mutex<String>>,
}

impl TestServer {
    /// Starts the server on port 0 with a fresh copy of the bundled resources and `extra` arguments
    /// (`--log-level debug` unless they set a level).
    pub fn start(extra: &[&str]) -> TestServer {
        TestServer::start_in(TestServer::bundled_root(), extra)
    }

    /// A fresh temporary root holding a copy of the bundled resources.
    pub fn bundled_root() -> PathBuf {
        let root = temp_root();
        for name in BUNDLED {
            let from = resource(name);
            if let Err(e) = std::fs::copy(&from, root.join(name)) {
                let _ = std::fs::remove_dir_all(&root);
                panic!("copy {}: {e}", from.display());
            }
        }
        root
    }

    /// Starts the server on port 0 over an existing root (taken over: it is removed on drop).
    pub fn start_in(root: PathBuf, extra: &[&str]) -> TestServer {
        TestServer::start_on("127.0.0.1", root, extra)
    }

    /// Starts the server bound to `host`, port 0; clients connect over 127.0.0.1.
    pub fn start_on(host: &str, root: PathBuf, extra: &[&str]) -> TestServer {
        let command = Command::new(env!("CARGO_BIN_EXE_http-server"));
        TestServer::launch(command, host, root, extra)
    }

    /// Starts the server (bundled resources, 127.0.0.1) under a file descriptor limit of `fds`.
    pub fn start_with_fd_limit(fds: u32, extra: &[&str]) -> TestServer {
        TestServer::start_with_ulimit("-n", fds, extra)
    }

    /// Starts the server (bundled resources, 127.0.0.1) under `ulimit FLAG VALUE`, such as `-f 8` (files of at
    /// most 8 KiB).
    pub fn start_with_ulimit(flag: &str, value: u32, extra: &[&str]) -> TestServer {
        let root = TestServer::bundled_root();
        let mut command = Command::new("sh");
        // `sh -c SCRIPT ARG0 ARGS...`: the script lowers the limit, then becomes the server with its arguments.
        let script = format!("ulimit {flag} {value} && exec \"$0\" \"$@\"");
        command.args(["-c", &script, env!("CARGO_BIN_EXE_http-server")]);
        TestServer::launch(command, "127.0.0.1", root, extra)
    }

    fn launch(mut command: Command, host: &str, root: PathBuf, extra: &[&str]) -> TestServer {
        command
            .args(["0", host, "4", "--root"])
            .arg(&root)
            .args(extra)
            .args(extra_log_level(extra))
            .env_remove("RUST_LOG");
        // The access log is on stdout, the event log (with the `listening on` line) on stderr: drain both.
        spawn_server(command, root, StdoutMode::Drain)
    }

    /// A fresh connection with read and write timeouts.
    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).expect("connect");
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream
    }

    /// A fresh connection (as `connect`) that sends every write at once (no Nagle), so split writes
    /// reach the server split.
    pub fn connect_nodelay(&self) -> TcpStream {
        let stream = self.connect();
        stream.set_nodelay(true).expect("TCP_NODELAY");
        stream
    }

    /// The `Host` value that names this server.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Everything the server has logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// A memory figure of the server process from /proc, in KiB (`VmRSS` now, `VmHWM` the peak so far).
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/PID/status");
        let line = status
            .lines()
            .find(|l| l.starts_with(field))
            .unwrap_or_else(|| panic!("{field} missing"));
        let kib = line.split_whitespace().nth(1).expect("a number");
        kib.parse().expect("KiB")
    }

    /// Waits until the log contains `needle` (the log is read by another thread, so a line the server
    /// wrote before answering may not be here yet); false after IO_TIMEOUT.
    pub fn log_contains(&self, needle: &str) -> bool {
        let deadline = std::time::Instant::now() + IO_TIMEOUT;
        while std::time::Instant::now() < deadline {
            if self.log.lock().unwrap().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// Whether the child process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends one GET on a new connection and reads the response.
    pub fn get(&self, path: &str) -> Response {
        exchange(self, close_request(self, "GET", path).as_bytes())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Appends every line of `stream` to `log`, and sends the address of a `listening on` line.
fn drain_into(
    stream: impl Read + Send + 'static,
    log: Arc<Mutex<String>>,
    addr: mpsc::Sender<String>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if let Some(bound) = line.split("listening on ").nth(1) {
                let _ = addr.send(bound.trim().to_owned());
            }
            let mut log = log.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
}

/// Debug logging unless the test chose a level.
fn extra_log_level(extra: &[&str]) -> &'static [&'static str] {
    if extra.contains(&"--log-level") {
        &[]
    } else {
        &["--log-level", "debug"]
    }
}

/// The path of a file in resources/.
pub fn resource(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("resources").join(name)
}

/// A bundled file as committed in resources/.
pub fn bundled(name: &str) -> Vec<u8> {
    let path = resource(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A deterministic xorshift64 stream (a zero seed is made odd: xorshift never leaves zero).
pub fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed | 1;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

/// Deterministic pseudo-random bytes (xorshift64, little-endian words), so every byte position matters.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut next = xorshift(seed);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&next().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A keep-alive `GET` (no Connection header) for this server.
pub fn get_request(server: &TestServer, path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", server.host())
}

/// `METHOD TARGET HTTP/1.1` with this server's Host and `Connection: close`.
pub fn close_request(server: &TestServer, method: &str, target: &str) -> String {
    format!("{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", server.host())
}

/// Sends raw request bytes on a fresh connection and reads one response.
pub fn exchange(server: &TestServer, request: &[u8]) -> Response {
    exchange_keep(server, request).0
}

/// Like `exchange`, but hands back the connection too, for what follows the response.
pub fn exchange_keep(server: &TestServer, request: &[u8]) -> (Response, TcpStream) {
    let mut stream = server.connect();
    stream.write_all(request).expect("write the request");
    let response = read_response(&mut stream).expect("a response");
    (response, stream)
}

/// A unique, empty temporary directory.
pub fn temp_root() -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("http-server-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("create temp root");
    dir
}

/// One parsed response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Reads exactly one response (head, then a Content-Length body) from the stream. `None` on a clean EOF
/// before any byte. A response to HEAD has no body: use `read_response_head_only`.
pub fn read_response(stream: &mut impl Read) -> Option<Response> {
    read_response_inner(stream, false)
}

/// Reads one response head and skips the body (for HEAD requests and 1xx responses).
pub fn read_response_head_only(stream: &mut impl Read) -> Option<Response> {
    read_response_inner(stream, true)
}

fn read_response_inner(stream: &mut impl Read, head_only: bool) -> Option<Response> {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(0) if raw.is_empty() => return None,
            Ok(0) => panic!("EOF inside a response head: {:?}", String::from_utf8_lossy(&raw)),
            Ok(_) => raw.push(byte[0]),
            Err(e) => {
                panic!("reading response head: {e} (got {:?})", String::from_utf8_lossy(&raw))
            }
        }
    }
    let head = String::from_utf8(raw).expect("ASCII head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status code");
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').expect("header line");
            (n.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    let mut response = Response { status, head: head.clone(), headers, body: Vec::new() };
    if head_only || status < 200 {
        return Some(response);
    }
    let len: usize = response.header("Content-Length").expect("Content-Length").parse().unwrap();
    response.body = vec![0; len];
    stream.read_exact(&mut response.body).expect("read body");
    Some(response)
}

/// Reads until EOF and returns what arrived; panics if the peer neither sends nor closes within IO_TIMEOUT.
pub fn read_to_eof(stream: &mut TcpStream) -> Vec<u8> {
    read_to_eof_for(stream, "reading to EOF")
}

/// `read_to_eof`, naming `what` was being read when it panics.
pub fn read_to_eof_for(stream: &mut TcpStream, what: &str) -> Vec<u8> {
    let mut rest = Vec::new();
    match stream.read_to_end(&mut rest) {
        Ok(_) => rest,
        // A reset after the server closed also means the connection is gone.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => rest,
        Err(e) => {
            panic!("{what}: expected EOF, got {e} after {:?}", String::from_utf8_lossy(&rest))
        }
    }
}

/// Runs curl with these arguments; `None` (and a note on stderr) when curl is not installed.
pub fn curl(args: &[&str]) -> Option<std::process::Output> {
    match Command::new("curl").args(args).output() {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("curl not installed: skipped");
            None
        }
        Err(e) => panic!("running curl: {e}"),
    }
}

/// `METHOD TARGET HTTP/1.1` with this server's Host, the extra `fields`, and `Connection: close` if `close`.
pub fn request_with_headers(
    server: &TestServer,
    method: &str,
    target: &str,
    fields: &[(&str, &str)],
    close: bool,
) -> String {
    let mut raw = format!("{method} {target} HTTP/1.1\r\nHost: {}\r\n", server.host());
    for (name, value) in fields {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    if close {
        raw.push_str("Connection: close\r\n");
    }
    raw.push_str("\r\n");
    raw
}

/// Reads one response whose body, if any, is framed by Content-Length; a head without Content-Length (204,
/// 304) is taken to have no body. `None` on a clean EOF before any byte. For HEAD use
/// `read_response_head_only`.
pub fn read_response_optional_length(stream: &mut impl Read) -> Option<Response> {
    let mut response = read_response_head_only(stream)?;
    if let Some(len) = response.header("Content-Length") {
        let len: usize = len.parse().expect("a numeric Content-Length");
        response.body = vec![0; len];
        stream.read_exact(&mut response.body).expect("read body");
    }
    Some(response)
}

/// Sends `method target` with the extra `fields` and `Connection: close` on a fresh connection and reads
/// the response: head only for HEAD, else as `read_response_optional_length`.
pub fn exchange_with(
    server: &TestServer,
    method: &str,
    target: &str,
    fields: &[(&str, &str)],
) -> Response {
    let mut stream = server.connect();
    let raw = request_with_headers(server, method, target, fields, true);
    stream.write_all(raw.as_bytes()).expect("write the request");
    if method == "HEAD" {
        read_response_head_only(&mut stream)
    } else {
        read_response_optional_length(&mut stream)
    }
    .unwrap_or_else(|| panic!("no response to {method} {target} {fields:?}"))
}

/// Where a server started by `spawn_server` writes its stdout.
enum StdoutMode {
    /// Into `log()`, as `launch` does.
    Drain,
    /// A pipe whose read end is closed right after the spawn, so every write to it fails.
    Close,
    /// Wherever the caller's `Stdio` points (a file, say); only stderr reaches `log()`.
    To(Stdio),
}

/// How long a server may take to exit on its own before a test gives up on it.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

impl TestServer {
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends the signal `name` (`HUP`, `TERM`, `INT`, ...) to the server with `kill -s NAME PID`.
    pub fn signal(&self, name: &str) {
        let pid = self.pid().to_string();
        let status = Command::new("kill").args(["-s", name, &pid]).status().expect("run kill");
        assert!(status.success(), "kill -s {name} {pid}: {status}");
    }

    /// Waits up to `within` for the server to exit: its status, or `None` if it is still running.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// As `start`, but stdout is a pipe whose read end is closed at once: every write the server makes
    /// there (the access log) fails. Only stderr reaches `log()`.
    pub fn start_closing_stdout(extra: &[&str]) -> TestServer {
        let root = TestServer::bundled_root();
        let command = harness_command(&root, extra);
        spawn_server(command, root, StdoutMode::Close)
    }

    /// As `start`, but stdout goes to `stdout` (a file, say) instead of `log()`, which has only stderr.
    pub fn start_with_stdout(extra: &[&str], stdout: Stdio) -> TestServer {
        let root = TestServer::bundled_root();
        let command = harness_command(&root, extra);
        spawn_server(command, root, StdoutMode::To(stdout))
    }

    /// Starts the binary with exactly `args` and `envs`, none of the harness's defaults (no port, host,
    /// threads, root or log level: the test names what it needs, port 0 included), with `RUST_LOG` and
    /// every `HTTP_SERVER_*` variable removed first. `{root}` in an argument or a value stands for a fresh
    /// copy of the bundled resources (removed on drop). Waits for the `listening on` line.
    pub fn start_command(args: &[&str], envs: &[(&str, &str)]) -> TestServer {
        let root = TestServer::bundled_root();
        let command = exact_command(&root, args, envs);
        spawn_server(command, root, StdoutMode::Drain)
    }
}

/// `http-server 0 127.0.0.1 4 --root ROOT EXTRA`, as `launch` builds it.
fn harness_command(root: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_http-server"));
    command
        .args(["0", "127.0.0.1", "4", "--root"])
        .arg(root)
        .args(extra)
        .args(extra_log_level(extra))
        .env_remove("RUST_LOG");
    command
}

/// The binary with exactly `args` and `envs` (`{root}` replaced by `root`), RUST_LOG and HTTP_SERVER_*
/// removed.
fn exact_command(root: &Path, args: &[&str], envs: &[(&str, &str)]) -> Command {
    let root = root.to_str().expect("a UTF-8 temporary root");
    let mut command = Command::new(env!("CARGO_BIN_EXE_http-server"));
    command.env_remove("RUST_LOG");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("HTTP_SERVER_") {
            command.env_remove(name);
        }
    }
    command.args(args.iter().map(|a| a.replace("{root}", root)));
    for (name, value) in envs {
        command.env(name, value.replace("{root}", root));
    }
    command
}

/// Spawns `command` over `root` (taken over: removed on drop), drains stderr (and stdout, as `stdout`
/// says) into the log, and waits for the `listening on` line.
fn spawn_server(mut command: Command, root: PathBuf, stdout: StdoutMode) -> TestServer {
    let drain = matches!(stdout, StdoutMode::Drain);
    let stdout_stdio = match stdout {
        StdoutMode::To(stdio) => stdio,
        StdoutMode::Drain | StdoutMode::Close => Stdio::piped(),
    };
    let spawned = command.stdout(stdout_stdio).stderr(Stdio::piped()).spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&root);
            panic!("spawn http-server: {e}");
        }
    };
    let log = Arc::new(Mutex::new(String::new()));
    let (addr_tx, addr_rx) = mpsc::channel();
    // Drained for the server's whole life, so a full pipe never blocks its logging.
    if drain {
        let out = child.stdout.take().expect("piped stdout");
        drain_into(out, Arc::clone(&log), addr_tx.clone());
    } else {
        // Closing the read end (for `Close`; `To` has none): the server's next write to it gets EPIPE.
        drop(child.stdout.take());
    }
    let stderr = child.stderr.take().expect("piped stderr");
    drain_into(stderr, Arc::clone(&log), addr_tx);
    let addr = match addr_rx.recv_timeout(Duration::from_secs(20)) {
        Ok(addr) => {
            let bound: SocketAddr = addr.parse().expect("listening address");
            // Bound to every interface: reach it over loopback.
            if bound.ip().is_unspecified() {
                SocketAddr::from(([127, 0, 0, 1], bound.port()))
            } else {
                bound
            }
        }
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(&root);
            panic!("server did not report its address; log:\n{}", log.lock().unwrap());
        }
    };
    TestServer { child, addr, root, log }
}

/// A run of the binary that ended by itself.
#[derive(Debug)]
pub struct Exited {
    /// The exit code; `None` if a signal ended it.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the binary with exactly `args` and `envs` (as `TestServer::start_command`, `{root}` included) for a
/// command line that should make it exit by itself, and returns how it ended and all it wrote. Panics if it
/// is still running after EXIT_TIMEOUT.
pub fn run_to_exit(args: &[&str], envs: &[(&str, &str)]) -> Exited {
    let root = TestServer::bundled_root();
    let mut command = exact_command(&root, args, envs);
    let spawned = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&root);
            panic!("spawn http-server: {e}");
        }
    };
    fn read_all(mut stream: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = stream.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    }
    let stdout = read_all(child.stdout.take().expect("piped stdout"));
    let stderr = read_all(child.stderr.take().expect("piped stderr"));
    let deadline = std::time::Instant::now() + EXIT_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = std::fs::remove_dir_all(&root);
    let exited = Exited {
        code: status.and_then(|s| s.code()),
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    };
    match status {
        Some(_) => exited,
        None => panic!("http-server {args:?} did not exit within {EXIT_TIMEOUT:?}: {exited:?}"),
    }
}

impl TestServer {
    /// Kills the server with SIGKILL, as a crash would, and hands back its root (no longer removed on drop),
    /// so a test can inspect it and start a new server on it.
    pub fn kill_keeping_root(mut self) -> PathBuf {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::take(&mut self.root)
    }
}
