//! Access control and added fields: HTTP Basic authentication (`--auth`, `--auth-file`,
//! `--auth-uploads-only`, `--hash-password`), `--header`, and `--cors`, over raw TCP against the real binary.

mod common;

use common::{
    bundled, exchange, exchange_keep, exchange_with, get_request, read_response, read_to_eof,
    request_with_headers, temp_root, Response, TestServer, IO_TIMEOUT,
};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The challenge every 401 carries.
const CHALLENGE: &str = "Basic realm=\"http-server\", charset=\"UTF-8\"";

/// A password distinctive enough that finding it anywhere in the log is certainly a leak.
const PASSWORD: &str = "Tr0ub4dor-s3cret-771";

/// A small JSON upload body.
const JSON: &[u8] = b"{\"ok\": true}";

/// Standard base64 with padding (RFC 4648 §4): the crate's `base64` is not a dev-dependency.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The `Authorization` value for `user:password`.
fn basic(user_password: &str) -> String {
    format!("Basic {}", base64(user_password.as_bytes()))
}

/// One GET with these extra fields and `Connection: close`, on a fresh connection.
fn get_with(server: &TestServer, path: &str, fields: &[(&str, &str)]) -> Response {
    exchange_with(server, "GET", path, fields)
}

/// A Content-Length JSON upload with these extra fields (and `Connection: close` if `close`).
fn upload_request(server: &TestServer, fields: &[(&str, &str)], close: bool) -> Vec<u8> {
    let length = JSON.len().to_string();
    let mut all = vec![("Content-Type", "application/json"), ("Content-Length", length.as_str())];
    all.extend_from_slice(fields);
    let mut raw = request_with_headers(server, "POST", "/upload", &all, close).into_bytes();
    raw.extend_from_slice(JSON);
    raw
}

/// Asserts a 401 with the Basic challenge, `Vary: Accept` and a JSON error body.
fn assert_unauthorized(response: &Response, what: &str) {
    assert_eq!(response.status, 401, "{what}: {}", response.head);
    assert_eq!(response.header("WWW-Authenticate"), Some(CHALLENGE), "{what}: {}", response.head);
    assert_eq!(response.header("Vary"), Some("Accept"), "{what}: {}", response.head);
    assert_eq!(response.header("Content-Type"), Some("application/json"), "{what}");
    let json: serde_json::Value = serde_json::from_slice(&response.body)
        .unwrap_or_else(|e| panic!("{what}: 401 body is not JSON ({e}): {:?}", response.body));
    assert_eq!(json["status"], 401, "{what}: {json}");
    assert!(json["error"].is_string(), "{what}: {json}");
}

/// Whether a folder is empty or missing.
fn dir_is_empty(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).map(|mut d| d.next().is_none()).unwrap_or(true)
}

/// Waits until one log line contains every one of `parts`, and returns it; panics after IO_TIMEOUT.
fn log_line(server: &TestServer, parts: &[&str]) -> String {
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        let log = server.log();
        if let Some(line) = log.lines().find(|l| parts.iter().all(|p| l.contains(p))) {
            return line.to_owned();
        }
        if Instant::now() >= deadline {
            panic!("no log line with all of {parts:?}; log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How a run of the binary ended.
#[derive(Debug)]
struct Run {
    /// The exit code; `None` if it was killed.
    code: Option<i32>,
    /// It started serving (a `listening on` line) and was killed for it.
    started_serving: bool,
    stdout: String,
    stderr: String,
}

/// Runs the binary with exactly `args` (none of the harness's defaults), `stdin` on its standard input, and
/// RUST_LOG and every HTTP_SERVER_* variable removed, for a command line that should make it exit by itself.
/// A run that starts serving instead is killed at once (`started_serving`); one still running after ten
/// seconds is killed and fails the test.
fn run(args: &[&str], stdin: &[u8]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_http-server"));
    command.env_remove("RUST_LOG");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("HTTP_SERVER_") {
            command.env_remove(name);
        }
    }
    let mut child = command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn http-server");
    /// Collects everything `stream` yields into `into` until EOF.
    fn collect(
        mut stream: impl Read + Send + 'static,
        into: Arc<Mutex<Vec<u8>>>,
    ) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = stream.read(&mut buf) {
                into.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    }
    let (stdout, stderr) = (Arc::default(), Arc::<Mutex<Vec<u8>>>::default());
    let readers = [
        collect(child.stdout.take().expect("piped stdout"), Arc::clone(&stdout)),
        collect(child.stderr.take().expect("piped stderr"), Arc::clone(&stderr)),
    ];
    {
        // Dropped at the end of the block: the child sees EOF after `stdin`. A child that exits without
        // reading makes the write fail, which is no concern here.
        let mut input = child.stdin.take().expect("piped stdin");
        let _ = input.write_all(stdin);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let serving = |log: &Mutex<Vec<u8>>| {
        log.lock().unwrap().windows(b"listening on".len()).any(|w| w == b"listening on")
    };
    let (status, started_serving) = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break (Some(status), false);
        }
        let started = serving(&stderr);
        if started || Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break (None, started);
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    for reader in readers {
        reader.join().expect("an output reader");
    }
    let text = |out: &Mutex<Vec<u8>>| String::from_utf8_lossy(&out.lock().unwrap()).into_owned();
    let result = Run {
        code: status.and_then(|s| s.code()),
        started_serving,
        stdout: text(&stdout),
        stderr: text(&stderr),
    };
    if status.is_none() && !started_serving {
        panic!("http-server {args:?} did not exit within 10 s: {result:?}");
    }
    result
}

/// The Argon2 hash `--hash-password` prints for `password`.
fn hash_password(password: &str) -> String {
    let out = run(&["--hash-password"], format!("{password}\n").as_bytes());
    assert_eq!(out.code, Some(0), "{out:?}");
    out.stdout.trim().to_owned()
}

/// A temporary folder for auth files, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        Scratch(temp_root())
    }

    /// Writes `text` to `name` inside it and returns the path as text.
    fn file(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write a scratch file");
        path.to_str().expect("a UTF-8 temporary path").to_owned()
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temporary path")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server command line (port 0, one worker, `root`) plus `extra`, that should exit by itself.
fn server_args<'a>(root: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["0", "127.0.0.1", "1", "--root", root];
    args.extend_from_slice(extra);
    args
}

#[test]
fn the_test_base64_encoder_matches_rfc_7617s_example() {
    assert_eq!(basic("Aladdin:open sesame"), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foo"), "Zm9v");
    assert_eq!(base64(&[0xfb, 0xff, 0xfe]), "+//+");
}

#[test]
fn a_request_without_credentials_is_401_with_a_basic_challenge() {
    let pair = format!("ann:{PASSWORD}");
    let server = TestServer::start(&["--auth", &pair]);
    for path in ["/", "/about.html", "/no-such-page.html", "/logo.png"] {
        assert_unauthorized(&get_with(&server, path, &[]), path);
    }
    // A browser gets the same refusal as a page.
    let accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let html = get_with(&server, "/", &[("Accept", accept)]);
    assert_eq!(html.status, 401, "{}", html.head);
    assert_eq!(html.header("WWW-Authenticate"), Some(CHALLENGE), "{}", html.head);
    assert_eq!(html.header("Vary"), Some("Accept"), "{}", html.head);
    assert_eq!(html.header("Content-Type"), Some("text/html; charset=utf-8"), "{}", html.head);
    let page = String::from_utf8_lossy(&html.body);
    assert!(page.contains("401 Unauthorized"), "{page}");
    assert!(!page.contains(PASSWORD));
}

#[test]
fn wrong_unknown_and_malformed_credentials_are_all_401() {
    let pair = format!("ann:{PASSWORD}");
    let server = TestServer::start(&["--auth", &pair]);
    let wrong_scheme = format!("Bearer {}", base64(pair.as_bytes()));
    let cases = [
        basic("ann:wrong"),
        basic(&format!("ann:{PASSWORD}x")),
        basic(&format!("ann:{}", &PASSWORD[..PASSWORD.len() - 1])),
        basic(&format!("bob:{PASSWORD}")),
        basic(&format!("Ann:{PASSWORD}")),
        basic("ann"),
        basic(""),
        "Basic".to_owned(),
        "Basic !!!not-base64!!!".to_owned(),
        wrong_scheme,
        base64(pair.as_bytes()),
    ];
    for authorization in &cases {
        let response = get_with(&server, "/", &[("Authorization", authorization)]);
        assert_unauthorized(&response, authorization);
    }
    // Nothing the server refused is let through afterwards.
    assert_eq!(get_with(&server, "/", &[("Authorization", &basic(&pair))]).status, 200);
}

#[test]
fn the_right_credentials_serve_the_file_and_name_the_user_in_the_access_log() {
    let ann = format!("ann:{PASSWORD}");
    // A password may itself contain colons; --auth repeats for more users.
    let bob = "bob:pa:ss:word";
    let server = TestServer::start(&["--auth", &ann, "--auth", bob]);
    let response = get_with(&server, "/", &[("Authorization", &basic(&ann))]);
    assert_eq!(response.status, 200, "{}", response.head);
    assert_eq!(response.header("WWW-Authenticate"), None, "{}", response.head);
    assert_eq!(response.body, bundled("index.html"));
    let response = get_with(&server, "/about.html", &[("Authorization", &basic(bob))]);
    assert_eq!(response.status, 200, "{}", response.head);
    assert_eq!(response.body, bundled("about.html"));

    // The scheme name is case-insensitive (RFC 9110 §11.1).
    let lower = basic(&ann).replace("Basic", "basic");
    assert_eq!(get_with(&server, "/contact.html", &[("Authorization", &lower)]).status, 200);
    // A refused request names nobody in the access log.
    assert_eq!(get_with(&server, "/sample.txt", &[]).status, 401);
    // The access log is flushed in batches: the lines are looked for once all requests are done.
    log_line(&server, &["127.0.0.1 - - [", "\"GET /sample.txt HTTP/1.1\" 401 "]);
    let line = log_line(&server, &["127.0.0.1 - ann [", "\"GET / HTTP/1.1\" 200 "]);
    assert!(line.starts_with("127.0.0.1 - ann ["), "{line}");
    log_line(&server, &["127.0.0.1 - bob [", "\"GET /about.html HTTP/1.1\" 200 "]);
    log_line(&server, &["127.0.0.1 - ann [", "\"GET /contact.html HTTP/1.1\" 200 "]);
}

#[test]
fn a_refusal_is_logged_with_the_user_name_but_never_the_password() {
    let pair = format!("ann:{PASSWORD}");
    let server = TestServer::start(&["--auth", &pair]);
    let guess = "guessed-Pa55word-913";
    let wrong = basic(&format!("ann:{guess}"));
    assert_eq!(get_with(&server, "/about.html", &[("Authorization", &wrong)]).status, 401);
    let line = log_line(&server, &["\"GET /about.html HTTP/1.1\"", "refused (401)"]);
    assert!(line.contains("ann"), "{line}");
    assert_eq!(get_with(&server, "/contact.html", &[]).status, 401);
    log_line(&server, &["\"GET /contact.html HTTP/1.1\"", "refused (401)", "no credentials"]);
    assert_eq!(get_with(&server, "/", &[("Authorization", &basic(&pair))]).status, 200);
    // Every line of the three exchanges is in once the last access-log line is.
    log_line(&server, &["127.0.0.1 - ann [", "\"GET / HTTP/1.1\" 200 "]);
    let log = server.log();
    for secret in [PASSWORD, guess, &base64(pair.as_bytes()), &wrong["Basic ".len()..]] {
        assert!(!log.contains(secret), "the log shows {secret:?}:\n{log}");
    }
}

#[test]
fn a_401_to_a_get_keeps_the_connection_open_for_the_next_request() {
    let pair = format!("ann:{PASSWORD}");
    let server = TestServer::start(&["--auth", &pair]);
    let (refused, mut stream) = exchange_keep(&server, get_request(&server, "/").as_bytes());
    assert_unauthorized(&refused, "keep-alive GET without credentials");
    assert_ne!(refused.header("Connection"), Some("close"), "{}", refused.head);
    let retry =
        request_with_headers(&server, "GET", "/", &[("Authorization", &basic(&pair))], false);
    stream.write_all(retry.as_bytes()).expect("write the retry");
    let served = read_response(&mut stream).expect("a response on the same connection");
    assert_eq!(served.status, 200, "{}", served.head);
    assert_eq!(served.body, bundled("index.html"));
}

#[test]
fn a_refused_upload_with_a_body_closes_the_connection() {
    let pair = format!("ann:{PASSWORD}");
    let server = TestServer::start(&["--auth", &pair]);
    let (refused, mut stream) = exchange_keep(&server, &upload_request(&server, &[], false));
    assert_unauthorized(&refused, "upload without credentials");
    assert_eq!(refused.header("Connection"), Some("close"), "{}", refused.head);
    assert_eq!(read_to_eof(&mut stream), b"", "nothing may follow the 401");
    let wrong = basic("ann:nope");
    let (refused, mut stream) =
        exchange_keep(&server, &upload_request(&server, &[("Authorization", &wrong)], false));
    assert_unauthorized(&refused, "upload with a wrong password");
    assert_eq!(refused.header("Connection"), Some("close"), "{}", refused.head);
    assert_eq!(read_to_eof(&mut stream), b"", "nothing may follow the 401");
    assert!(!server.root.join("uploads").exists() || dir_is_empty(&server.root.join("uploads")));
    // With the credentials the same upload is stored.
    let authorization = basic(&pair);
    let stored =
        exchange(&server, &upload_request(&server, &[("Authorization", &authorization)], true));
    assert_eq!(stored.status, 201, "{}", stored.head);
}

#[test]
fn uploads_only_leaves_reads_public_and_guards_uploads() {
    let pair = format!("ann:{PASSWORD}");
    let server = TestServer::start(&["--auth", &pair, "--auth-uploads-only"]);
    let page = get_with(&server, "/", &[]);
    assert_eq!(page.status, 200, "{}", page.head);
    assert_eq!(page.body, bundled("index.html"));
    let head = exchange_with(&server, "HEAD", "/logo.png", &[]);
    assert_eq!(head.status, 200, "{}", head.head);
    assert_eq!(get_with(&server, "/no-such-page.html", &[]).status, 404);
    let refused = exchange(&server, &upload_request(&server, &[], true));
    assert_unauthorized(&refused, "upload without credentials");
    let wrong = basic("ann:wrong");
    let refused = exchange(&server, &upload_request(&server, &[("Authorization", &wrong)], true));
    assert_unauthorized(&refused, "upload with a wrong password");
    let authorization = basic(&pair);
    let stored =
        exchange(&server, &upload_request(&server, &[("Authorization", &authorization)], true));
    assert_eq!(stored.status, 201, "{}", stored.head);
    let location = stored.header("Location").expect("Location").to_owned();
    log_line(&server, &["127.0.0.1 - ann [", "\"POST /upload HTTP/1.1\" 201 "]);
    // The stored upload is public too.
    let fetched = get_with(&server, &location, &[]);
    assert_eq!((fetched.status, fetched.body.as_slice()), (200, JSON), "{}", fetched.head);
}

#[test]
fn uploads_only_without_any_user_is_a_usage_error() {
    let scratch = Scratch::new();
    let out = run(&server_args(scratch.path(), &["--auth-uploads-only"]), b"");
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("--auth-uploads-only"), "{out:?}");
}

#[test]
fn hash_password_prints_an_argon2id_hash_of_the_line_on_stdin() {
    let out = run(&["--hash-password"], format!("{PASSWORD}\n").as_bytes());
    assert_eq!(out.code, Some(0), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{out:?}");
    assert!(lines[0].starts_with("$argon2id$"), "{out:?}");
    assert!(!out.stdout.contains(PASSWORD) && !out.stderr.contains(PASSWORD), "{out:?}");
    // A fresh salt each time: the same password hashes differently.
    assert_ne!(hash_password(PASSWORD), lines[0]);
}

#[test]
fn an_auth_file_user_is_verified_on_a_worker_and_then_trusted() {
    let hash = hash_password(PASSWORD);
    let scratch = Scratch::new();
    let text = format!("# users of this server\n\n  carol:{hash}\ndave:{hash}\n   \n# the end\n");
    let file = scratch.file("users", &text);
    let server = TestServer::start(&["--auth-file", &file]);
    let carol = basic(&format!("carol:{PASSWORD}"));

    // Verified on a worker, then remembered: both on one connection and on a fresh one.
    let (first, mut stream) = exchange_keep(
        &server,
        request_with_headers(&server, "GET", "/", &[("Authorization", &carol)], false).as_bytes(),
    );
    assert_eq!(first.status, 200, "{}", first.head);
    assert_eq!(first.body, bundled("index.html"));
    let again =
        request_with_headers(&server, "GET", "/about.html", &[("Authorization", &carol)], false);
    stream.write_all(again.as_bytes()).expect("write the second request");
    let second = read_response(&mut stream).expect("a second response");
    assert_eq!(second.status, 200, "{}", second.head);
    assert_eq!(second.body, bundled("about.html"));
    let third = get_with(&server, "/contact.html", &[("Authorization", &carol)]);
    assert_eq!(third.status, 200, "{}", third.head);

    // Wrong password, unknown user, no credentials.
    let wrong = basic("carol:not-the-password");
    assert_unauthorized(&get_with(&server, "/", &[("Authorization", &wrong)]), "wrong password");
    log_line(&server, &["\"GET / HTTP/1.1\"", "refused (401)"]);
    let stranger = basic(&format!("erin:{PASSWORD}"));
    assert_unauthorized(&get_with(&server, "/", &[("Authorization", &stranger)]), "unknown user");
    assert_unauthorized(&get_with(&server, "/", &[]), "no credentials");
    // A credential that failed is not trusted on a second try either.
    assert_unauthorized(&get_with(&server, "/", &[("Authorization", &wrong)]), "wrong again");

    // An upload waits for the hash check with its body already sent, then is stored.
    let dave = basic(&format!("dave:{PASSWORD}"));
    let stored = exchange(&server, &upload_request(&server, &[("Authorization", &dave)], true));
    assert_eq!(stored.status, 201, "{}", stored.head);
    // One whose hash check fails is refused and, its body unread, ends the connection.
    let (refused, mut stream) =
        exchange_keep(&server, &upload_request(&server, &[("Authorization", &wrong)], false));
    assert_unauthorized(&refused, "upload with a wrong password");
    assert_eq!(refused.header("Connection"), Some("close"), "{}", refused.head);
    assert_eq!(read_to_eof(&mut stream), b"");

    // The access log is flushed in batches: the lines are looked for once all requests are done.
    log_line(&server, &["127.0.0.1 - - [", "\"POST /upload HTTP/1.1\" 401 "]);
    log_line(&server, &["\"POST /upload HTTP/1.1\"", "refused (401)"]);
    for path in ["/", "/about.html", "/contact.html"] {
        let request = format!("\"GET {path} HTTP/1.1\" 200 ");
        log_line(&server, &["127.0.0.1 - carol [", &request]);
    }
    log_line(&server, &["127.0.0.1 - dave [", "\"POST /upload HTTP/1.1\" 201 "]);
    let log = server.log();
    assert!(!log.contains(PASSWORD), "the log shows the password:\n{log}");
    assert!(!log.contains("not-the-password"), "the log shows a guess:\n{log}");
}

#[test]
fn a_malformed_auth_file_is_refused_at_startup_naming_the_line() {
    let hash = hash_password(PASSWORD);
    let scratch = Scratch::new();
    let cases = [
        ("no-colon", format!("# ok\ncarol:{hash}\n\njustaname\n"), "line 4"),
        ("empty-user", format!(":{hash}\n"), "line 1"),
        ("empty-hash", "# header\ncarol:\n".to_owned(), "line 2"),
        ("plain-password", format!("carol:{hash}\ndave:hunter2\n"), "line 2"),
        ("truncated", format!("carol:{}\n", &hash[..hash.rfind('$').unwrap() + 1]), "line 1"),
    ];
    for (name, text, line) in cases {
        let file = scratch.file(name, &text);
        let out = run(&server_args(scratch.path(), &["--auth-file", &file]), b"");
        assert_eq!(out.code, Some(2), "{name}: {out:?}");
        assert!(out.stderr.contains(line), "{name}: expected {line:?} in {out:?}");
        assert!(out.stderr.contains("--auth-file"), "{name}: {out:?}");
    }
    let missing = format!("{}/no-such-file", scratch.path());
    let out = run(&server_args(scratch.path(), &["--auth-file", &missing]), b"");
    assert_eq!(out.code, Some(2), "missing file: {out:?}");
}

#[test]
fn an_auth_file_hash_of_another_algorithm_is_refused_at_startup() {
    // Well-formed PHC strings, but not Argon2: no password could ever match them.
    let scratch = Scratch::new();
    let cases = [
        ("bcrypt", "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"),
        ("scrypt", "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E"),
        ("pbkdf2", "$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXo"),
    ];
    let mut failures = Vec::new();
    for (name, hash) in cases {
        let file = scratch.file(name, &format!("# one user\nerin:{hash}\n"));
        let out = run(&server_args(scratch.path(), &["--auth-file", &file]), b"");
        if out.started_serving || out.code != Some(2) || !out.stderr.contains("line 2") {
            failures.push(format!("{name}: {out:?}"));
        }
    }
    assert!(failures.is_empty(), "accepted:\n{}", failures.join("\n"));
}

#[test]
fn extra_headers_are_on_every_response() {
    let pair = format!("ann:{PASSWORD}");
    let server = TestServer::start(&[
        "--header",
        "X-Frame-Options: DENY",
        "--header",
        "X-Extra: 1",
        "--auth",
        &pair,
        "--auth-uploads-only",
    ]);
    let check = |what: &str, response: &Response, status: u16| {
        assert_eq!(response.status, status, "{what}: {}", response.head);
        assert_eq!(response.header("X-Frame-Options"), Some("DENY"), "{what}: {}", response.head);
        assert_eq!(response.header("X-Extra"), Some("1"), "{what}: {}", response.head);
        let copies = response.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("X-Extra"));
        assert_eq!(copies.count(), 1, "{what}: {}", response.head);
    };
    let page = get_with(&server, "/sample.txt", &[]);
    check("200", &page, 200);
    let etag = page.header("ETag").expect("an ETag").to_owned();
    check("404", &get_with(&server, "/no-such-page.html", &[]), 404);
    check("304", &get_with(&server, "/sample.txt", &[("If-None-Match", &etag)]), 304);
    let partial = get_with(&server, "/sample.txt", &[("Range", "bytes=0-3")]);
    check("206", &partial, 206);
    assert_eq!(partial.body, bundled("sample.txt")[..4]);
    check("HEAD", &exchange_with(&server, "HEAD", "/", &[]), 200);
    check("OPTIONS", &exchange_with(&server, "OPTIONS", "/", &[]), 204);
    check("405", &exchange_with(&server, "DELETE", "/", &[]), 405);
    check("401", &exchange(&server, &upload_request(&server, &[], true)), 401);
    let authorization = basic(&pair);
    let stored =
        exchange(&server, &upload_request(&server, &[("Authorization", &authorization)], true));
    check("201", &stored, 201);
    // Served from the in-memory cache, not a worker: still there.
    check("cached 200", &get_with(&server, "/sample.txt", &[]), 200);
}

#[test]
fn invalid_header_options_are_usage_errors() {
    let scratch = Scratch::new();
    for bad in [
        "NoColon",
        ": no-name",
        "Bad Name: x",
        "Content-Length: 5",
        "content-type: text/plain",
        "Connection: close",
        "X-Control: a\u{1}b",
        "X-Escape: a\u{1b}b",
        "X-Empty:",
        "X-Unicode: caf\u{e9}",
    ] {
        let out = run(&server_args(scratch.path(), &["--header", bad]), b"");
        assert_eq!(out.code, Some(2), "--header {bad:?}: {out:?}");
        assert!(!out.started_serving, "--header {bad:?}: {out:?}");
    }
}

#[test]
fn cors_adds_allow_origin_to_every_response() {
    let server = TestServer::start(&["--cors"]);
    let origin = [("Origin", "https://example.com")];
    for (path, status) in [("/", 200), ("/logo.png", 200), ("/no-such-page.html", 404)] {
        for fields in [&origin[..], &[]] {
            let response = get_with(&server, path, fields);
            assert_eq!(response.status, status, "{path}: {}", response.head);
            assert_eq!(
                response.header("Access-Control-Allow-Origin"),
                Some("*"),
                "{path} {fields:?}: {}",
                response.head
            );
        }
    }
    let stored = exchange(&server, &upload_request(&server, &origin, true));
    assert_eq!(stored.status, 201, "{}", stored.head);
    assert_eq!(stored.header("Access-Control-Allow-Origin"), Some("*"), "{}", stored.head);
}

/// The preflight a browser sends before a cross-origin JSON upload.
const PREFLIGHT: &[(&str, &str)] = &[
    ("Origin", "https://example.com"),
    ("Access-Control-Request-Method", "POST"),
    ("Access-Control-Request-Headers", "content-type"),
];

fn assert_upload_preflight(response: &Response) {
    assert_eq!(response.status, 204, "{}", response.head);
    assert_eq!(response.header("Access-Control-Allow-Origin"), Some("*"), "{}", response.head);
    assert_eq!(
        response.header("Access-Control-Allow-Methods"),
        Some("POST, OPTIONS"),
        "{}",
        response.head
    );
    assert_eq!(
        response.header("Access-Control-Allow-Headers"),
        Some("content-type"),
        "{}",
        response.head
    );
    assert_eq!(response.header("Access-Control-Max-Age"), Some("86400"), "{}", response.head);
    assert!(response.body.is_empty());
}

#[test]
fn a_cors_preflight_for_uploads_is_204_with_the_allowed_methods_and_headers() {
    let server = TestServer::start(&["--cors"]);
    let response = exchange_with(&server, "OPTIONS", "/upload", PREFLIGHT);
    assert_upload_preflight(&response);
    assert_eq!(response.header("Allow"), Some("POST, OPTIONS"), "{}", response.head);
}

#[test]
fn with_cors_and_auth_a_preflight_needs_no_credentials_but_a_get_does() {
    let server = TestServer::start(&["--cors", "--auth", "a:b"]);
    let preflight = exchange_with(&server, "OPTIONS", "/upload", PREFLIGHT);
    assert_upload_preflight(&preflight);
    assert_eq!(preflight.header("WWW-Authenticate"), None, "{}", preflight.head);
    let refused = get_with(&server, "/", &[("Origin", "https://example.com")]);
    assert_unauthorized(&refused, "cross-origin GET without credentials");
    assert_eq!(refused.header("Access-Control-Allow-Origin"), Some("*"), "{}", refused.head);
    // A plain OPTIONS (not a preflight) is an ordinary request: it needs credentials.
    let options = exchange_with(&server, "OPTIONS", "/upload", &[]);
    assert_unauthorized(&options, "OPTIONS without a preflight");
    let served = get_with(&server, "/", &[("Authorization", &basic("a:b"))]);
    assert_eq!(served.status, 200, "{}", served.head);
    assert_eq!(served.header("Access-Control-Allow-Origin"), Some("*"), "{}", served.head);
}

#[test]
fn without_cors_a_preflight_is_a_plain_options_answer() {
    let server = TestServer::start(&[]);
    let response = exchange_with(&server, "OPTIONS", "/upload", PREFLIGHT);
    assert_eq!(response.status, 204, "{}", response.head);
    assert_eq!(response.header("Allow"), Some("POST, OPTIONS"), "{}", response.head);
    for name in [
        "Access-Control-Allow-Origin",
        "Access-Control-Allow-Methods",
        "Access-Control-Allow-Headers",
        "Access-Control-Max-Age",
    ] {
        assert_eq!(response.header(name), None, "{name}: {}", response.head);
    }
    let page = get_with(&server, "/", &[("Origin", "https://example.com")]);
    assert_eq!(page.status, 200, "{}", page.head);
    assert_eq!(page.header("Access-Control-Allow-Origin"), None, "{}", page.head);
}
