//! Operations: the access log (Combined, Common, JSON, off, to a file) parsed back field by field, the event
//! log's lines, SIGHUP rotation, SIGTERM and SIGINT exits, a closed stdout, and every command-line form with
//! its `HTTP_SERVER_*` variable.

mod common;

use common::{bundled, exchange_with, run_to_exit, temp_root, TestServer, IO_TIMEOUT};
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

/// A browser-like User-Agent with every character the log must escape: quotes, backslashes, a tab and
/// non-ASCII text.
const HOSTILE_AGENT: &str = "Mozilla/5.0 (X11; \"quoted\" C:\\path\\) tab\there caf\u{e9}";

/// A Referer with a quote and a query.
const REFERER: &str = "http://example.test/page?q=\"x\"&n=1";

/// A temporary folder for log files, removed when the test ends, however it ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        TempDir(temp_root())
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One field of an access-log line.
#[derive(Debug, PartialEq)]
enum Token {
    /// Up to the next space.
    Bare(String),
    /// `[...]`, without the brackets.
    Bracketed(String),
    /// `"..."`, without the quotes and with `\"`, `\\` and `\xHH` undone.
    Quoted(String),
}

/// Splits a Common or Combined Log Format line into its fields, undoing the escapes of quoted ones. Panics
/// on anything malformed: an unterminated quote, an unknown escape, a raw control byte, a double space.
fn tokens(line: &str) -> Vec<Token> {
    let bytes = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'[' => {
                let end = i + line[i..].find(']').unwrap_or_else(|| panic!("no ] in {line:?}"));
                out.push(Token::Bracketed(line[i + 1..end].to_owned()));
                i = end + 1;
            }
            b'"' => {
                i += 1;
                let mut value = Vec::new();
                loop {
                    match bytes.get(i) {
                        None => panic!("unterminated quote in {line:?}"),
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') => {
                            match bytes.get(i + 1) {
                                Some(b'"') => value.push(b'"'),
                                Some(b'\\') => value.push(b'\\'),
                                Some(b'x') => {
                                    let hex = &line[i + 2..i + 4];
                                    value.push(u8::from_str_radix(hex, 16).expect("\\xHH"));
                                    i += 2;
                                }
                                other => panic!("unknown escape {other:?} in {line:?}"),
                            }
                            i += 2;
                        }
                        Some(&byte) => {
                            assert!(
                                (b' '..=b'~').contains(&byte),
                                "raw byte {byte:#x} in {line:?}"
                            );
                            value.push(byte);
                            i += 1;
                        }
                    }
                }
                out.push(Token::Quoted(String::from_utf8(value).expect("UTF-8 field")));
            }
            _ => {
                let end = line[i..].find(' ').map_or(line.len(), |n| i + n);
                assert!(end > i, "an empty field (double space) in {line:?}");
                out.push(Token::Bare(line[i..end].to_owned()));
                i = end;
            }
        }
        if i < bytes.len() {
            assert_eq!(bytes[i], b' ', "fields must be separated by one space: {line:?}");
            i += 1;
            assert!(i < bytes.len(), "a trailing space in {line:?}");
        }
    }
    out
}

/// An access-log line in Common (no referer or agent) or Combined Log Format.
#[derive(Debug)]
struct Clf {
    host: String,
    ident: String,
    user: String,
    time: String,
    request: String,
    status: u16,
    /// As written: a number, or `-` for none.
    bytes: String,
    referer: Option<String>,
    user_agent: Option<String>,
}

fn bare(token: &Token) -> String {
    match token {
        Token::Bare(text) => text.clone(),
        other => panic!("expected a bare field, got {other:?}"),
    }
}

fn quoted(token: &Token) -> String {
    match token {
        Token::Quoted(text) => text.clone(),
        other => panic!("expected a quoted field, got {other:?}"),
    }
}

fn parse_clf(line: &str) -> Clf {
    let fields = tokens(line);
    assert!(fields.len() == 7 || fields.len() == 9, "7 or 9 fields: {fields:?} in {line:?}");
    let Token::Bracketed(time) = &fields[3] else { panic!("no [time] in {line:?}") };
    let clf = Clf {
        host: bare(&fields[0]),
        ident: bare(&fields[1]),
        user: bare(&fields[2]),
        time: time.clone(),
        request: quoted(&fields[4]),
        status: bare(&fields[5]).parse().expect("a numeric status"),
        bytes: bare(&fields[6]),
        referer: fields.get(7).map(quoted),
        user_agent: fields.get(8).map(quoted),
    };
    assert!(clf.bytes == "-" || clf.bytes.parse::<u64>().is_ok_and(|n| n > 0), "{line:?}");
    clf
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn unix_secs(year: i64, month: i64, day: i64, h: i64, m: i64, s: i64) -> i64 {
    days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s
}

fn now_secs() -> i64 {
    let since = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap();
    i64::try_from(since.as_secs()).unwrap()
}

/// `01/Dec/2026:19:03:17 +0000` as Unix seconds, checking every part of its shape.
fn clf_time_secs(text: &str) -> i64 {
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let b = text.as_bytes();
    assert_eq!(text.len(), 26, "{text:?}");
    assert!(b[2] == b'/' && b[6] == b'/' && b[11] == b':' && b[14] == b':' && b[17] == b':');
    assert_eq!(&text[20..], " +0000", "{text:?}");
    let num = |range: std::ops::Range<usize>| -> i64 {
        let part = &text[range];
        assert!(part.bytes().all(|c| c.is_ascii_digit()), "{text:?}");
        part.parse().unwrap()
    };
    let month = MONTHS.iter().position(|m| *m == &text[3..6]).expect("a month name") as i64 + 1;
    unix_secs(num(7..11), month, num(0..2), num(12..14), num(15..17), num(18..20))
}

/// `2026-12-01T19:03:16.818Z` as Unix seconds (the milliseconds checked, then dropped).
fn event_time_secs(text: &str) -> i64 {
    let b = text.as_bytes();
    assert_eq!(text.len(), 24, "{text:?}");
    assert!(b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':' && b[16] == b':');
    assert!(b[19] == b'.' && b[23] == b'Z', "{text:?}");
    let num = |range: std::ops::Range<usize>| -> i64 {
        let part = &text[range];
        assert!(part.bytes().all(|c| c.is_ascii_digit()), "{text:?}");
        part.parse().unwrap()
    };
    let _millis = num(20..23);
    unix_secs(num(0..4), num(5..7), num(8..10), num(11..13), num(14..16), num(17..19))
}

/// Asserts `secs` lies within the test's run (a second of slack either side).
fn assert_during(secs: i64, started: i64, what: &str) {
    let now = now_secs();
    assert!((started - 1..=now + 1).contains(&secs), "{what}: {secs} not within {started}..={now}");
}

/// Polls `text()` until one of its lines satisfies `wanted`, for up to IO_TIMEOUT (the access log is flushed
/// within a second of a line).
fn wait_for_line(text: impl Fn() -> String, wanted: impl Fn(&str) -> bool) -> Option<String> {
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        if let Some(line) = text().lines().find(|l| wanted(l)) {
            return Some(line.to_owned());
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The access-log line (Common or Combined, on stdout) whose request line contains `needle`.
fn access_line(server: &TestServer, needle: &str) -> String {
    let wanted = |l: &str| l.starts_with("127.0.0.1 - ") && l.contains(needle);
    wait_for_line(|| server.log(), wanted)
        .unwrap_or_else(|| panic!("no access line with {needle:?}; log:\n{}", server.log()))
}

/// Access-log lines (Common or Combined) in `text`.
fn access_lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with("127.0.0.1 - ")).collect()
}

fn read_or_empty(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The line of the file at `path` containing `needle`, once it is there (the file may not exist yet).
fn file_line(path: &Path, needle: &str) -> String {
    wait_for_line(|| read_or_empty(path), |l| l.contains(needle)).unwrap_or_else(|| {
        panic!("no line with {needle:?} in {}: {:?}", path.display(), read_or_empty(path))
    })
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// Sends SIGTERM (or another stopping signal) and expects a prompt exit with status 0.
fn stop(server: &mut TestServer, signal: &str) {
    server.signal(signal);
    let status = server
        .wait_exit(common::EXIT_TIMEOUT)
        .unwrap_or_else(|| panic!("no exit after SIG{signal}; log:\n{}", server.log()));
    assert_eq!(status.code(), Some(0), "exit after SIG{signal}: {status}; log:\n{}", server.log());
}

/// Stops the server with SIGTERM (exit 0), which flushes the access log at once: quicker than waiting
/// for the flush interval. Lines still reach `log()` through its reader thread, so look with a deadline.
fn finish(server: &mut TestServer) {
    stop(server, "TERM");
}

/// A port some other socket is listening on, with that socket (keep it alive while the port must stay taken).
fn taken_port() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a port to occupy");
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

/// The server reported `listening on 127.0.0.1:PORT`, a real port.
fn assert_listening_on_loopback(server: &TestServer) {
    assert!(server.log_contains("listening on 127.0.0.1:"), "{}", server.log());
    assert_eq!(server.addr.ip().to_string(), "127.0.0.1");
    assert_ne!(server.addr.port(), 0);
}

/// GET / answers with the bundled index page.
fn assert_serves_index(server: &TestServer) {
    let response = server.get("/");
    assert_eq!(response.status, 200, "{}", response.head);
    assert_eq!(response.body, bundled("index.html"));
}

// ---------------------------------------------------------------------------------------------------------
// The access log.

#[test]
fn a_combined_line_parses_back_field_by_field_with_quotes_backslashes_and_control_bytes_escaped() {
    let started = now_secs();
    let mut server = TestServer::start(&[]);
    let fields = [("Referer", REFERER), ("User-Agent", HOSTILE_AGENT)];
    let response = exchange_with(&server, "GET", "/sample.txt?combined=1", &fields);
    assert_eq!(response.status, 200, "{}", response.head);
    finish(&mut server);
    let line = access_line(&server, "/sample.txt?combined=1");
    // The raw line: each quote and backslash escaped, the tab and the é as \xHH, nothing raw.
    assert!(line.contains(r#"(X11; \"quoted\" C:\\path\\) tab\x09here caf\xc3\xa9""#), "{line}");
    assert!(line.contains(r#""http://example.test/page?q=\"x\"&n=1""#), "{line}");
    let clf = parse_clf(&line);
    assert_eq!(clf.host, "127.0.0.1", "{line}");
    assert_eq!(clf.ident, "-", "{line}");
    assert_eq!(clf.user, "-", "{line}");
    assert_during(clf_time_secs(&clf.time), started, &line);
    assert_eq!(clf.request, "GET /sample.txt?combined=1 HTTP/1.1", "{line}");
    assert_eq!(clf.status, 200, "{line}");
    // Body bytes only, without the head.
    assert_eq!(clf.bytes, bundled("sample.txt").len().to_string(), "{line}");
    assert_eq!(clf.referer.as_deref(), Some(REFERER), "{line}");
    assert_eq!(clf.user_agent.as_deref(), Some(HOSTILE_AGENT), "{line}");
}

#[test]
fn a_line_without_body_referer_or_agent_has_dashes_and_an_error_counts_its_body() {
    let mut server = TestServer::start(&[]);
    let head = exchange_with(&server, "HEAD", "/index.html?head=1", &[]);
    assert_eq!(head.status, 200, "{}", head.head);
    let missing = exchange_with(&server, "GET", "/no-such-page.html", &[]);
    assert_eq!(missing.status, 404, "{}", missing.head);
    assert!(!missing.body.is_empty(), "a 404 has an error body");
    finish(&mut server);

    let line = access_line(&server, "/index.html?head=1");
    assert!(line.ends_with(r#"" 200 - "-" "-""#), "{line}");
    let clf = parse_clf(&line);
    assert_eq!((clf.request.as_str(), clf.status), ("HEAD /index.html?head=1 HTTP/1.1", 200));
    assert_eq!(clf.bytes, "-", "a HEAD sends no body bytes: {line}");
    assert_eq!((clf.referer.as_deref(), clf.user_agent.as_deref()), (Some("-"), Some("-")));

    let line = access_line(&server, "/no-such-page.html");
    let clf = parse_clf(&line);
    assert_eq!((clf.request.as_str(), clf.status), ("GET /no-such-page.html HTTP/1.1", 404));
    assert_eq!(clf.bytes, missing.body.len().to_string(), "{line}");
}

#[test]
fn each_request_on_a_keep_alive_connection_gets_its_own_line_in_order() {
    use std::io::Write;
    let mut server = TestServer::start(&[]);
    let mut stream = server.connect();
    for n in 0..3 {
        let request = common::get_request(&server, &format!("/about.html?keep={n}"));
        stream.write_all(request.as_bytes()).unwrap();
        let response = common::read_response(&mut stream).expect("a response");
        assert_eq!(response.status, 200, "{}", response.head);
    }
    drop(stream);
    finish(&mut server);
    access_line(&server, "/about.html?keep=2");
    let log = server.log();
    let lines: Vec<&str> =
        access_lines(&log).into_iter().filter(|l| l.contains("?keep=")).collect();
    assert_eq!(lines.len(), 3, "{log}");
    for (n, line) in lines.iter().enumerate() {
        let clf = parse_clf(line);
        assert_eq!(clf.request, format!("GET /about.html?keep={n} HTTP/1.1"), "{log}");
        assert_eq!(clf.bytes, bundled("about.html").len().to_string(), "{line}");
    }
}

#[test]
fn the_common_format_ends_at_the_byte_count() {
    let started = now_secs();
    let mut server = TestServer::start(&["--access-log-format", "common"]);
    let fields = [("Referer", REFERER), ("User-Agent", HOSTILE_AGENT)];
    let response = exchange_with(&server, "GET", "/contact.html?common=1", &fields);
    assert_eq!(response.status, 200, "{}", response.head);
    finish(&mut server);
    let line = access_line(&server, "/contact.html?common=1");
    assert_eq!(tokens(&line).len(), 7, "{line}");
    assert!(!line.contains("Mozilla") && !line.contains("example.test"), "{line}");
    let clf = parse_clf(&line);
    assert_eq!((clf.host.as_str(), clf.ident.as_str(), clf.user.as_str()), ("127.0.0.1", "-", "-"));
    assert_during(clf_time_secs(&clf.time), started, &line);
    assert_eq!((clf.request.as_str(), clf.status), ("GET /contact.html?common=1 HTTP/1.1", 200));
    assert_eq!(clf.bytes, bundled("contact.html").len().to_string(), "{line}");
    assert!(line.ends_with(&format!("\" 200 {}", clf.bytes)), "{line}");
}

#[test]
fn the_json_format_writes_one_object_per_line_with_every_field() {
    let started = now_secs();
    let mut server = TestServer::start(&["--access-log-format", "json"]);
    let fields = [("Referer", REFERER), ("User-Agent", HOSTILE_AGENT)];
    assert_eq!(exchange_with(&server, "GET", "/sample.txt?json=1", &fields).status, 200);
    assert_eq!(exchange_with(&server, "HEAD", "/sample.txt?json=2", &[]).status, 200);
    finish(&mut server);
    let json_line = |needle: &'static str| {
        let wanted = move |l: &str| l.starts_with('{') && l.contains(needle);
        let line = wait_for_line(|| server.log(), wanted)
            .unwrap_or_else(|| panic!("no JSON line with {needle}; log:\n{}", server.log()));
        serde_json::from_str::<serde_json::Value>(&line)
            .unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}"))
    };

    let first = json_line("json=1");
    let keys: Vec<&str> =
        first.as_object().expect("an object").keys().map(|k| k.as_str()).collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    let expected =
        ["bytes", "client", "referer", "request", "status", "time", "user", "user_agent"];
    assert_eq!(sorted, expected, "{first}");
    assert_during(clf_time_secs(first["time"].as_str().expect("a time string")), started, "time");
    assert_eq!(first["client"], "127.0.0.1", "{first}");
    assert_eq!(first["user"], serde_json::Value::Null, "{first}");
    assert_eq!(first["request"], "GET /sample.txt?json=1 HTTP/1.1", "{first}");
    assert_eq!(first["status"], 200, "{first}");
    assert_eq!(first["bytes"], bundled("sample.txt").len(), "{first}");
    assert_eq!(first["referer"], REFERER, "{first}");
    assert_eq!(first["user_agent"], HOSTILE_AGENT, "{first}");

    let second = json_line("json=2");
    assert_eq!(second["request"], "HEAD /sample.txt?json=2 HTTP/1.1", "{second}");
    assert_eq!(second["bytes"], 0, "{second}");
    assert_eq!(second["referer"], serde_json::Value::Null, "{second}");
    assert_eq!(second["user_agent"], serde_json::Value::Null, "{second}");
    assert!(access_lines(&server.log()).is_empty(), "no CLF lines in JSON mode");
}

#[test]
fn a_favicon_404_is_left_out_of_the_access_log_but_other_404s_are_in() {
    let mut server = TestServer::start(&[]);
    assert_eq!(exchange_with(&server, "GET", "/favicon.ico", &[]).status, 404);
    assert_eq!(exchange_with(&server, "GET", "/favicon.png", &[]).status, 404);
    assert_eq!(exchange_with(&server, "GET", "/index.html?after-favicon", &[]).status, 200);
    finish(&mut server);
    // One writer, in order: once the last request's line is out, the earlier ones would be too.
    access_line(&server, "/index.html?after-favicon");
    access_line(&server, "GET /favicon.png ");
    let log = server.log();
    assert!(!access_lines(&log).iter().any(|l| l.contains("/favicon.ico")), "{log}");
    // The event log notes it at debug instead.
    assert!(server.log_contains("(not in the access log)"), "{log}");
}

#[test]
fn access_log_off_leaves_stdout_empty_while_the_default_writes_every_request_there() {
    let dir = TempDir::new();
    let mut runs = Vec::new();
    for (name, extra) in [("default", &[][..]), ("off", &["--access-log", "off"][..])] {
        let out = dir.join(&format!("{name}.stdout"));
        let file = File::create(&out).expect("create the stdout file");
        let mut server = TestServer::start_with_stdout(extra, Stdio::from(file));
        assert_eq!(exchange_with(&server, "GET", "/", &[]).status, 200);
        assert_eq!(exchange_with(&server, "GET", "/missing", &[]).status, 404);
        // Exiting flushes the access log, so the file is complete once the process is gone.
        stop(&mut server, "TERM");
        runs.push((name, std::fs::read_to_string(&out).expect("read stdout"), server.log()));
    }
    let (_, default_out, default_log) = &runs[0];
    let lines = access_lines(default_out);
    assert_eq!(lines.len(), 2, "default stdout: {default_out:?}");
    assert_eq!(lines.iter().map(|l| parse_clf(l).status).collect::<Vec<_>>(), [200, 404]);
    assert!(access_lines(default_log).is_empty(), "the access log is not on stderr");
    let (_, off_out, off_log) = &runs[1];
    assert_eq!(off_out, "", "--access-log off wrote to stdout");
    assert!(access_lines(off_log).is_empty(), "--access-log off wrote to stderr: {off_log}");
}

#[test]
fn an_access_log_file_is_appended_to_not_truncated() {
    let dir = TempDir::new();
    let path = dir.join("access.log");
    std::fs::write(&path, "an earlier line\n").unwrap();
    let server = TestServer::start(&["--access-log", path_str(&path)]);
    assert_eq!(exchange_with(&server, "GET", "/about.html?file=1", &[]).status, 200);
    let line = file_line(&path, "/about.html?file=1");
    assert_eq!(parse_clf(&line).status, 200);
    let text = read_or_empty(&path);
    assert!(text.starts_with("an earlier line\n"), "{text:?}");
    assert!(access_lines(&server.log()).is_empty(), "a file access log also went to stdout");
}

// ---------------------------------------------------------------------------------------------------------
// The event log, signals and a closed stdout.

#[test]
fn event_log_lines_carry_a_utc_millisecond_timestamp_a_level_and_a_target() {
    let started = now_secs();
    let server = TestServer::start(&["--log-level", "info"]);
    // The address reaches the harness a moment before the line reaches `log()`.
    assert!(server.log_contains("listening on"), "{}", server.log());
    let log = server.log();
    let line = log.lines().find(|l| l.contains("listening on")).expect("the listening line");
    let (time, rest) = line.split_once(' ').expect("a timestamp");
    assert_during(event_time_secs(time), started, line);
    assert_eq!(rest, format!("INFO  [http_server] listening on {}", server.addr), "{line}");
    assert!(!log.contains(" DEBUG "), "debug lines at info: {log}");
}

#[test]
fn sighup_moves_later_lines_to_a_new_file_at_the_original_path() {
    let dir = TempDir::new();
    let path = dir.join("access.log");
    let rotated = dir.join("access.log.1");
    let mut server = TestServer::start(&["--access-log", path_str(&path)]);
    assert_eq!(exchange_with(&server, "GET", "/index.html?before-hup", &[]).status, 200);
    file_line(&path, "/index.html?before-hup");

    std::fs::rename(&path, &rotated).expect("rotate the log");
    server.signal("HUP");
    assert_eq!(exchange_with(&server, "GET", "/about.html?after-hup", &[]).status, 200);
    assert_eq!(exchange_with(&server, "GET", "/contact.html?after-hup", &[]).status, 200);
    assert!(server.is_running(), "SIGHUP stopped the server: {}", server.log());
    // Stopping flushes at once, rather than within the interval.
    finish(&mut server);

    let new = read_or_empty(&path);
    let lines = access_lines(&new);
    assert_eq!(lines.len(), 2, "the new file: {new:?}");
    assert!(lines[0].contains("/about.html?after-hup") && lines[1].contains("/contact.html"));
    let old = read_or_empty(&rotated);
    assert_eq!(access_lines(&old).len(), 1, "the rotated file: {old:?}");
    assert!(old.contains("/index.html?before-hup"), "{old:?}");
}

#[test]
fn sigterm_exits_zero_with_the_last_line_flushed_to_the_log_file() {
    let dir = TempDir::new();
    let path = dir.join("access.log");
    let mut server = TestServer::start(&["--access-log", path_str(&path)]);
    assert_eq!(exchange_with(&server, "GET", "/index.html?first", &[]).status, 200);
    assert_eq!(exchange_with(&server, "GET", "/sample.txt?last", &[]).status, 200);
    // At once, most likely inside the flush interval: the exit must write what is still buffered.
    stop(&mut server, "TERM");
    let text = std::fs::read_to_string(&path).expect("the access log file");
    let lines = access_lines(&text);
    assert_eq!(lines.len(), 2, "{text:?}");
    let last = parse_clf(lines[1]);
    assert_eq!((last.request.as_str(), last.status), ("GET /sample.txt?last HTTP/1.1", 200));
    assert!(text.ends_with('\n'), "the last line is complete: {text:?}");
    assert!(server.log_contains("stopped"), "{}", server.log());
}

#[test]
fn sigint_also_exits_zero_and_logs_that_it_stopped() {
    let mut server = TestServer::start(&[]);
    assert_eq!(exchange_with(&server, "GET", "/?before-int", &[]).status, 200);
    stop(&mut server, "INT");
    assert!(server.log_contains("] stopped: drained"), "{}", server.log());
    access_line(&server, "/?before-int");
}

#[test]
fn a_closed_stdout_never_stops_the_server() {
    let mut server = TestServer::start_closing_stdout(&[]);
    // Past the flush interval, so the access log really writes (and fails) while requests go on.
    let until = Instant::now() + Duration::from_millis(1500);
    let mut served = 0;
    while served < 10 || Instant::now() < until {
        let response = exchange_with(&server, "GET", &format!("/sample.txt?n={served}"), &[]);
        assert_eq!(response.status, 200, "request {served}: {}", response.head);
        assert_eq!(response.body, bundled("sample.txt"), "request {served}");
        served += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(server.is_running(), "the server stopped: {}", server.log());
    assert_serves_index(&server);
    // The failed writes were counted, and reported at exit, which is still clean.
    stop(&mut server, "TERM");
    assert!(server.log_contains("line(s) dropped"), "{}", server.log());
    assert!(server.log_contains("stopped"), "{}", server.log());
    let log = server.log();
    assert!(!log.contains("panicked"), "{log}");
}

// ---------------------------------------------------------------------------------------------------------
// The command line and the environment.

#[test]
fn positional_port_host_and_threads_start_the_server() {
    let server = TestServer::start_command(&["0", "127.0.0.1", "3", "-d", "{root}"], &[]);
    assert_listening_on_loopback(&server);
    assert!(server.log_contains(", 3 workers,"), "{}", server.log());
    assert_serves_index(&server);
}

#[test]
fn short_flags_name_the_port_bind_address_threads_and_root() {
    let args = ["-p", "0", "-b", "127.0.0.1", "-t", "2", "-d", "{root}"];
    let server = TestServer::start_command(&args, &[]);
    assert_listening_on_loopback(&server);
    assert!(server.log_contains(", 2 workers,"), "{}", server.log());
    assert_serves_index(&server);
}

#[test]
fn long_flags_name_the_port_bind_address_threads_and_root() {
    let args = ["--port", "0", "--bind", "127.0.0.1", "--threads", "5", "--root", "{root}"];
    let server = TestServer::start_command(&args, &[]);
    assert_listening_on_loopback(&server);
    assert!(server.log_contains(", 5 workers,"), "{}", server.log());
    assert!(server.log_contains(&format!("root {},", server.root.display())), "{}", server.log());
    assert_serves_index(&server);
}

#[test]
fn the_host_defaults_to_loopback_when_only_the_port_is_given() {
    let server = TestServer::start_command(&["-p", "0", "-d", "{root}"], &[]);
    assert_listening_on_loopback(&server);
    assert!(server.log_contains(", 10 workers,"), "the default pool: {}", server.log());
    assert_serves_index(&server);
}

#[test]
fn every_setting_can_come_from_an_http_server_variable() {
    let envs = [
        ("HTTP_SERVER_PORT", "0"),
        ("HTTP_SERVER_BIND", "127.0.0.1"),
        ("HTTP_SERVER_THREADS", "6"),
        ("HTTP_SERVER_ROOT", "{root}"),
        ("HTTP_SERVER_LOG_LEVEL", "debug"),
        ("HTTP_SERVER_INLINE", "1"),
        ("HTTP_SERVER_ACCESS_LOG_FORMAT", "json"),
    ];
    let mut server = TestServer::start_command(&[], &envs);
    assert_listening_on_loopback(&server);
    assert!(server.log_contains(", 6 workers,"), "{}", server.log());
    assert!(server.log_contains(&format!("root {},", server.root.display())), "{}", server.log());
    let logo = exchange_with(&server, "GET", "/logo.png", &[]);
    assert_eq!(logo.status, 200, "{}", logo.head);
    assert_eq!(logo.header("Content-Type"), Some("image/png"), "inline: {}", logo.head);
    assert_eq!(logo.header("Content-Disposition"), None, "inline: {}", logo.head);
    assert_eq!(logo.body, bundled("logo.png"));
    // Debug logging: the favicon 404 is noted at debug.
    assert_eq!(exchange_with(&server, "GET", "/favicon.ico", &[]).status, 404);
    assert!(server.log_contains(" DEBUG "), "{}", server.log());
    finish(&mut server);
    let json = |l: &str| l.starts_with('{') && l.contains("/logo.png");
    let line = wait_for_line(|| server.log(), json).expect("a JSON access line");
    let value: serde_json::Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(value["request"], "GET /logo.png HTTP/1.1", "{line}");
}

#[test]
fn a_boolean_variable_of_zero_leaves_the_option_off() {
    let envs = [("HTTP_SERVER_INLINE", "0")];
    let server = TestServer::start_command(&["-p", "0", "-d", "{root}"], &envs);
    let logo = exchange_with(&server, "GET", "/logo.png", &[]);
    assert_eq!(logo.status, 200, "{}", logo.head);
    assert_eq!(logo.header("Content-Type"), Some("application/octet-stream"), "{}", logo.head);
}

#[test]
fn a_positional_and_its_flag_on_the_command_line_exit_2_with_a_message() {
    for (args, flag) in [
        (&["0", "-p", "0"][..], "--port"),
        (&["0", "127.0.0.1", "-b", "127.0.0.1"], "--bind"),
        (&["0", "127.0.0.1", "2", "--threads", "2"], "--threads"),
    ] {
        let args: Vec<&str> = args.iter().copied().chain(["-d", "{root}"]).collect();
        let run = run_to_exit(&args, &[]);
        assert_eq!(run.code, Some(2), "{args:?}: {run:?}");
        let message = format!("the positional argument and {flag} name the same setting");
        assert!(run.stderr.contains(&message), "{args:?}: {run:?}");
        assert!(!run.stderr.contains("listening on"), "{args:?}: {run:?}");
    }
}

#[test]
fn a_variable_yields_to_the_positional_or_the_flag_on_the_command_line() {
    // Each variable names something that could not work: a taken port, an address not on this host, a
    // missing root, another pool size and level.
    let (_taken, port) = taken_port();
    let port = port.to_string();
    let envs = [
        ("HTTP_SERVER_PORT", port.as_str()),
        ("HTTP_SERVER_BIND", "192.0.2.1"),
        ("HTTP_SERVER_THREADS", "9"),
        ("HTTP_SERVER_ROOT", "/nonexistent/http-server-root"),
        ("HTTP_SERVER_LOG_LEVEL", "error"),
    ];
    let positional = ["0", "127.0.0.1", "3", "-d", "{root}", "--log-level", "info"];
    let flags =
        ["-p", "0", "-b", "127.0.0.1", "-t", "2", "--root", "{root}", "--log-level", "info"];
    for (args, workers) in [(&positional[..], 3), (&flags[..], 2)] {
        let server = TestServer::start_command(args, &envs);
        assert_listening_on_loopback(&server);
        assert_ne!(server.addr.port().to_string(), port, "{args:?}");
        // The INFO line at all shows --log-level beat the variable's `error`.
        assert!(server.log_contains(&format!(", {workers} workers,")), "{}", server.log());
        assert!(server.log_contains(&format!("root {},", server.root.display())), "{args:?}");
        assert_serves_index(&server);
    }
    // With nothing on the command line, the variable is used: here, the taken port.
    let run = run_to_exit(&["-d", "{root}"], &[("HTTP_SERVER_PORT", &port)]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains(&format!("(port {port})")), "{run:?}");
}

#[test]
fn the_log_level_comes_from_the_option_then_rust_log_then_info() {
    // RUST_LOG alone: warn hides the INFO lines, yet the listening line is still printed.
    let server = TestServer::start_command(&["-p", "0", "-d", "{root}"], &[("RUST_LOG", "warn")]);
    assert!(server.log_contains("listening on 127.0.0.1:"), "{}", server.log());
    assert!(!server.log().contains(" INFO "), "{}", server.log());
    // The variable beats RUST_LOG.
    let envs = [("RUST_LOG", "warn"), ("HTTP_SERVER_LOG_LEVEL", "info")];
    let server = TestServer::start_command(&["-p", "0", "-d", "{root}"], &envs);
    assert!(server.log_contains("INFO  [http_server] listening on"), "{}", server.log());
    // Neither: info.
    let server = TestServer::start_command(&["-p", "0", "-d", "{root}"], &[]);
    assert!(server.log_contains("INFO  [http_server] listening on"), "{}", server.log());
    assert!(!server.log().contains(" DEBUG "), "{}", server.log());
}

#[test]
fn a_wrong_log_level_exits_2_and_lists_the_valid_ones() {
    let levels = "off, error, warn, info, debug, trace";
    let run = run_to_exit(&["-p", "0", "-d", "{root}", "--log-level", "loud"], &[]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("loud") && run.stderr.contains(levels), "{run:?}");
    let run = run_to_exit(&["-p", "0", "-d", "{root}"], &[("HTTP_SERVER_LOG_LEVEL", "loud")]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains(levels), "{run:?}");
}

#[test]
fn a_port_in_use_exits_1_and_says_so_once() {
    let (_taken, port) = taken_port();
    let run = run_to_exit(&["-p", &port.to_string(), "-d", "{root}"], &[]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(run.stderr.matches("cannot listen").count(), 1, "{run:?}");
    assert!(run.stderr.contains(&format!("127.0.0.1:{port}")), "{run:?}");
    assert!(!run.stderr.contains("listening on"), "{run:?}");
    assert_eq!(run.stdout, "", "{run:?}");
}

#[test]
fn a_root_that_is_not_a_folder_exits_2() {
    let run = run_to_exit(&["-p", "0", "-d", "/nonexistent/http-server-root"], &[]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("/nonexistent/http-server-root"), "{run:?}");
    assert!(run.stderr.contains("is not a folder"), "{run:?}");
}
