mod common;

// POST /upload (issue 3): JSON bodies stored under `<root>/uploads`, over raw TCP and curl.

use common::{
    exchange, exchange_keep, get_request, read_response, read_response_head_only, read_to_eof,
    resource, Response, TestServer,
};
use serde_json::Value;
use std::collections::HashSet;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

/// A JSON document whose exact bytes (spacing, escapes, raw UTF-8, trailing newline) must survive
/// storage.
const DOCUMENT: &[u8] = b"{ \"name\" : \"caf\xc3\xa9\",\n  \"escaped\": \"caf\\u00e9\", \
    \"values\": [1, 2.50, null, true],\n  \"nested\": {\"k\": \"v\"} }\n";

/// Whether `name` is `upload_YYYYMMDD_HHMMSS_<32 lowercase hex>.json`, checked by hand.
fn is_upload_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("upload_").and_then(|r| r.strip_suffix(".json")) else {
        return false;
    };
    let parts: Vec<&str> = rest.split('_').collect();
    let [date, time, id] = parts.as_slice() else {
        return false;
    };
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(date, 8) || !digits(time, 6) {
        return false;
    }
    let hex = id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let num = |s: &str| s.parse::<u32>().unwrap_or(u32::MAX);
    let (month, day) = (num(&date[4..6]), num(&date[6..8]));
    let (hour, minute, second) = (num(&time[0..2]), num(&time[2..4]), num(&time[4..6]));
    hex && (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && hour < 24
        && minute < 60
        && second <= 60
}

/// The media type of the response's `Content-Type`, lower-cased, without parameters.
fn media_type(response: &Response) -> String {
    let value = response.header("Content-Type").unwrap_or("");
    value.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// A Content-Length upload request with this `Content-Type`.
fn upload_request(server: &TestServer, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST /upload HTTP/1.1\r\n\
        Host: {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        server.host(),
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// The head of a chunked upload request.
fn chunked_head(server: &TestServer) -> Vec<u8> {
    format!(
        "POST /upload HTTP/1.1\r\n\
        Host: {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        server.host()
    )
    .into_bytes()
}

/// `parts` framed as chunks, then the last chunk and the empty trailer section.
fn chunked(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// One write, flushed.
fn send(stream: &mut TcpStream, bytes: &[u8]) {
    stream.write_all(bytes).expect("write request bytes");
    stream.flush().expect("flush");
}

fn uploads_dir(server: &TestServer) -> PathBuf {
    server.root.join("uploads")
}

/// Every entry of `dir` (hidden ones too) with its size, sorted; empty when `dir` does not exist.
fn listing(dir: &Path) -> Vec<(String, u64)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<(String, u64)> = entries
        .map(|entry| {
            let entry = entry.expect("directory entry");
            let len = entry.metadata().expect("metadata").len();
            (entry.file_name().to_string_lossy().into_owned(), len)
        })
        .collect();
    names.sort();
    names
}

/// Asserts a 201 for an upload of `sent` and returns its `filepath`, after checking the JSON body,
/// `Location`, the stored name, and that the stored file holds exactly `sent`.
fn check_created(server: &TestServer, response: &Response, sent: &[u8]) -> String {
    let body = String::from_utf8_lossy(&response.body);
    assert_eq!(response.status, 201, "{}{body}", response.head);
    assert_eq!(media_type(response), "application/json", "{}", response.head);
    let json: Value = serde_json::from_slice(&response.body).expect("201 body is JSON");
    assert_eq!(json["status"], "success", "{body}");
    assert_eq!(json["message"], "File created successfully", "{body}");
    let filepath = json["filepath"].as_str().expect("filepath is a string").to_owned();
    assert_eq!(response.header("Location"), Some(filepath.as_str()), "{}", response.head);
    let name = filepath.strip_prefix("/uploads/").expect("filepath under /uploads/");
    assert!(is_upload_name(name), "bad upload name {name:?}");
    let stored = std::fs::read(uploads_dir(server).join(name)).expect("stored upload exists");
    assert_eq!(stored, sent, "stored bytes differ from the bytes sent");
    filepath
}

/// Asserts an error response with this status and a JSON body naming it; returns the body.
fn check_error(response: &Response, status: u16) -> Value {
    let body = String::from_utf8_lossy(&response.body);
    assert_eq!(response.status, status, "{}{body}", response.head);
    assert_eq!(media_type(response), "application/json", "{}", response.head);
    let json: Value = serde_json::from_slice(&response.body).expect("error body is JSON");
    assert_eq!(json["status"], status, "{body}");
    assert!(json["error"].is_string(), "{body}");
    json
}

/// Asserts the server closed the connection after its response, sending nothing more.
fn assert_closed(stream: &mut TcpStream) {
    let rest = read_to_eof(stream);
    assert!(rest.is_empty(), "bytes after the response: {:?}", String::from_utf8_lossy(&rest));
}

/// The body was read in full, so the framing is intact: the connection stays open and serves the next request.
fn assert_still_serves(server: &TestServer, stream: &mut TcpStream, response: &Response) {
    assert_eq!(response.header("Connection"), Some("keep-alive"), "{}", response.head);
    send(stream, get_request(server, "/index.html").as_bytes());
    let next = read_response(stream).expect("a second response");
    assert_eq!(next.status, 200, "{}", next.head);
}

/// A server whose uploads folder already exists and holds one upload, and that folder's listing.
fn server_with_one_upload(extra: &[&str]) -> (TestServer, Vec<(String, u64)>) {
    let server = TestServer::start(extra);
    let response = exchange(&server, &upload_request(&server, "application/json", DOCUMENT));
    check_created(&server, &response, DOCUMENT);
    let before = listing(&uploads_dir(&server));
    assert_eq!(before.len(), 1, "{before:?}");
    (server, before)
}

#[test]
fn the_upload_name_check_rejects_near_misses() {
    assert!(is_upload_name("upload_20240131_235959_0123456789abcdef0123456789abcdef.json"));
    let bad = [
        "upload_20240131_235959_0123456789abcdef0123456789abcde.json",
        "upload_20240131_235959_0123456789ABCDEF0123456789abcdef.json",
        "upload_2024013_235959_0123456789abcdef0123456789abcdef.json",
        "upload_20241331_235959_0123456789abcdef0123456789abcdef.json",
        "upload_20240131_245959_0123456789abcdef0123456789abcdef.json",
        "upload_20240131_235959_0123456789abcdef0123456789abcdef.txt",
        "uploads_20240131_235959_0123456789abcdef0123456789abcdef.json",
        "upload_20240131_235959_0123456789abcdef_0123456789abcdef.json",
    ];
    for name in bad {
        assert!(!is_upload_name(name), "{name}");
    }
}

#[test]
fn an_upload_is_stored_byte_for_byte_and_served_back_as_json() {
    let server = TestServer::start(&[]);
    let response = exchange(&server, &upload_request(&server, "application/json", DOCUMENT));
    let filepath = check_created(&server, &response, DOCUMENT);
    assert_eq!(listing(&uploads_dir(&server)).len(), 1, "one file, no leftovers");

    let served = server.get(&filepath);
    assert_eq!(served.status, 200, "{}", served.head);
    assert_eq!(media_type(&served), "application/json", "{}", served.head);
    assert!(
        !served.header("Content-Disposition").unwrap_or("").contains("attachment"),
        "JSON is served inline: {}",
        served.head
    );
    assert_eq!(served.body, DOCUMENT);
}

#[test]
fn a_content_type_in_mixed_case_with_a_charset_is_accepted() {
    let server = TestServer::start(&[]);
    let request = upload_request(&server, "Application/JSON; charset=utf-8", DOCUMENT);
    let response = exchange(&server, &request);
    check_created(&server, &response, DOCUMENT);
}

#[test]
fn two_hundred_concurrent_uploads_all_get_distinct_complete_files() {
    const CLIENTS: usize = 200;
    let server = TestServer::start(&[]);
    let start = Arc::new(Barrier::new(CLIENTS));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let body =
                format!("{{\"client\": {i}, \"padding\": \"{}\"}}", "x".repeat(200 + i * 13));
            let request = format!(
                "POST /upload HTTP/1.1\r\n\
                Host: {}\r\nContent-Type: application/json\r\n\
                Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                server.host(),
                body.len()
            )
            .into_bytes();
            let mut stream = server.connect();
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                send(&mut stream, &request);
                let response = read_response(&mut stream).expect("a response");
                (body.into_bytes(), response)
            })
        })
        .collect();
    let mut names = HashSet::new();
    for client in clients {
        let (body, response) = client.join().expect("client thread");
        names.insert(check_created(&server, &response, &body));
    }
    assert_eq!(names.len(), CLIENTS, "every upload gets its own name");
    assert_eq!(listing(&uploads_dir(&server)).len(), CLIENTS, "no temporary files left");
}

#[test]
fn a_chunked_upload_in_one_write_is_stored_decoded() {
    let server = TestServer::start(&[]);
    let mut request = chunked_head(&server);
    request.extend(chunked(&[&DOCUMENT[..10], &DOCUMENT[10..11], &DOCUMENT[11..]]));
    let response = exchange(&server, &request);
    check_created(&server, &response, DOCUMENT);
}

#[test]
fn a_chunked_upload_sent_one_chunk_per_write_is_stored_whole() {
    let server = TestServer::start(&[]);
    let mut stream = server.connect_nodelay();
    send(&mut stream, &chunked_head(&server));
    for part in DOCUMENT.chunks(7) {
        let mut chunk = format!("{:x}\r\n", part.len()).into_bytes();
        chunk.extend_from_slice(part);
        chunk.extend_from_slice(b"\r\n");
        send(&mut stream, &chunk);
    }
    send(&mut stream, b"0\r\n\r\n");
    let response = read_response(&mut stream).expect("a response");
    check_created(&server, &response, DOCUMENT);
}

#[test]
fn a_chunk_split_between_its_size_line_and_its_data_across_writes_is_stored_whole() {
    let server = TestServer::start(&[]);
    let mut stream = server.connect_nodelay();
    let mut head = chunked_head(&server);
    head.extend_from_slice(format!("{:x}\r\n", DOCUMENT.len()).as_bytes());
    send(&mut stream, &head);
    let half = DOCUMENT.len() / 2;
    send(&mut stream, &DOCUMENT[..half]);
    send(&mut stream, &DOCUMENT[half..]);
    send(&mut stream, b"\r");
    send(&mut stream, b"\n0\r\n");
    send(&mut stream, b"\r\n");
    let response = read_response(&mut stream).expect("a response");
    check_created(&server, &response, DOCUMENT);
}

#[test]
fn chunk_extensions_and_trailers_are_accepted_and_a_pipelined_get_is_answered_after_them() {
    let server = TestServer::start(&[]);
    let mut request = chunked_head(&server);
    request.extend_from_slice(format!("{:x};name=value\r\n", 20).as_bytes());
    request.extend_from_slice(&DOCUMENT[..20]);
    request.extend_from_slice(b"\r\n");
    request.extend_from_slice(format!("{:X} ; quoted=\"a;b\"\r\n", DOCUMENT.len() - 20).as_bytes());
    request.extend_from_slice(&DOCUMENT[20..]);
    request.extend_from_slice(b"\r\n0;last\r\nX-Checksum: abc123\r\nX-Other: 1\r\n\r\n");
    request.extend_from_slice(get_request(&server, "/index.html").as_bytes());
    let mut stream = server.connect();
    send(&mut stream, &request);

    let created = read_response(&mut stream).expect("the upload's response");
    let filepath = check_created(&server, &created, DOCUMENT);
    let page = read_response(&mut stream).expect("the pipelined GET's response");
    assert_eq!(page.status, 200, "{}", page.head);
    assert_eq!(page.body, std::fs::read(server.root.join("index.html")).unwrap());

    send(&mut stream, get_request(&server, &filepath).as_bytes());
    let served = read_response(&mut stream).expect("a third response on the connection");
    assert_eq!(served.status, 200, "{}", served.head);
    assert_eq!(served.body, DOCUMENT);
}

#[test]
fn a_content_length_body_arriving_in_many_small_writes_is_stored_whole() {
    let server = TestServer::start(&[]);
    let body = format!("{{\"list\": [{}]}}", vec!["\"item\""; 100].join(", ")).into_bytes();
    let request = upload_request(&server, "application/json", &body);
    let head_len = request.len() - body.len();
    let mut stream = server.connect_nodelay();
    send(&mut stream, &request[..head_len]);
    for piece in body.chunks(16) {
        send(&mut stream, piece);
    }
    let response = read_response(&mut stream).expect("a response");
    check_created(&server, &response, &body);
}

#[test]
fn a_body_and_the_next_pipelined_request_in_one_write_are_both_answered() {
    let server = TestServer::start(&[]);
    let mut request = upload_request(&server, "application/json", DOCUMENT);
    request.extend_from_slice(get_request(&server, "/index.html").as_bytes());
    let mut stream = server.connect();
    send(&mut stream, &request);
    let created = read_response(&mut stream).expect("the upload's response");
    check_created(&server, &created, DOCUMENT);
    let page = read_response(&mut stream).expect("the pipelined GET's response");
    assert_eq!(page.status, 200, "{}", page.head);
    assert_eq!(page.body, std::fs::read(server.root.join("index.html")).unwrap());
}

#[test]
fn expect_100_continue_gets_100_before_the_body_is_sent_and_then_201() {
    let server = TestServer::start(&[]);
    let head = format!(
        "POST /upload HTTP/1.1\r\n\
        Host: {}\r\nContent-Type: application/json\r\n\
        Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        server.host(),
        DOCUMENT.len()
    );
    let mut stream = server.connect();
    send(&mut stream, head.as_bytes());
    let interim = read_response_head_only(&mut stream).expect("an interim response");
    assert!(interim.head.starts_with("HTTP/1.1 100 Continue\r\n"), "{:?}", interim.head);
    send(&mut stream, DOCUMENT);
    let response = read_response(&mut stream).expect("the final response");
    check_created(&server, &response, DOCUMENT);
}

#[test]
fn expect_100_continue_with_a_length_over_max_body_gets_413_without_sending_the_body() {
    let server = TestServer::start(&["--max-body", "1000"]);
    let head = format!(
        "POST /upload HTTP/1.1\r\n\
        Host: {}\r\nContent-Type: application/json\r\n\
        Content-Length: 1001\r\nExpect: 100-continue\r\n\r\n",
        server.host()
    );
    let mut stream = server.connect();
    send(&mut stream, head.as_bytes());
    let response = read_response(&mut stream).expect("a response");
    check_error(&response, 413);
    assert_closed(&mut stream);
    assert!(listing(&uploads_dir(&server)).is_empty());
}

#[test]
fn expect_100_continue_with_text_plain_gets_415_without_sending_the_body() {
    let server = TestServer::start(&[]);
    let head = format!(
        "POST /upload HTTP/1.1\r\n\
        Host: {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        server.host(),
        DOCUMENT.len()
    );
    let mut stream = server.connect();
    send(&mut stream, head.as_bytes());
    let response = read_response(&mut stream).expect("a response");
    check_error(&response, 415);
    assert_closed(&mut stream);
    assert!(listing(&uploads_dir(&server)).is_empty());
}

#[test]
fn curl_uploading_a_2_kib_file_receives_100_continue_and_201() {
    let server = TestServer::start(&[]);
    let items: Vec<String> = (0..200).map(|i| format!("{i:04}")).collect();
    let mut document = format!("{{\"items\": [\"{}\"]", items.join("\", \"")).into_bytes();
    document.resize(2047, b' ');
    document.push(b'}');
    assert_eq!(document.len(), 2048);
    let file = server.root.join("payload.json");
    std::fs::write(&file, &document).unwrap();
    let data = format!("@{}", file.display());
    let url = format!("http://{}/upload", server.addr);
    // curl 7.x sends `Expect: 100-continue` by itself for bodies over 1 KiB; newer curl only over
    // 1 MiB, so ask for it explicitly. A long wait for the 100 keeps curl from sending the body
    // early.
    let args = [
        "-sS",
        "-v",
        "--max-time",
        "10",
        "--expect100-timeout",
        "5",
        "--data-binary",
        &data,
        "-H",
        "Content-Type: application/json",
        "-H",
        "Expect: 100-continue",
        &url,
    ];
    let Some(out) = common::curl(&args) else {
        return;
    };
    let verbose = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "curl failed: {verbose}");
    assert!(verbose.contains("> Expect: 100-continue"), "{verbose}");
    assert!(verbose.contains("< HTTP/1.1 100 Continue"), "no 100 Continue: {verbose}");
    assert!(verbose.contains("< HTTP/1.1 201"), "no 201: {verbose}");
    let json: Value = serde_json::from_slice(&out.stdout).expect("curl got a JSON body");
    let name =
        json["filepath"].as_str().and_then(|p| p.strip_prefix("/uploads/")).expect("filepath");
    assert!(is_upload_name(name), "{name}");
    assert_eq!(std::fs::read(uploads_dir(&server).join(name)).unwrap(), document);
}

#[test]
fn a_text_plain_upload_gets_415_and_writes_nothing() {
    let (server, before) = server_with_one_upload(&[]);
    let response = exchange(&server, &upload_request(&server, "text/plain", DOCUMENT));
    check_error(&response, 415);
    assert_eq!(listing(&uploads_dir(&server)), before);
}

#[test]
fn an_upload_without_content_type_gets_415_and_writes_nothing() {
    let (server, before) = server_with_one_upload(&[]);
    let request = format!(
        "POST /upload HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
        server.host(),
        DOCUMENT.len()
    );
    let mut request = request.into_bytes();
    request.extend_from_slice(DOCUMENT);
    let response = exchange(&server, &request);
    check_error(&response, 415);
    assert_eq!(listing(&uploads_dir(&server)), before);
}

#[test]
fn invalid_json_gets_400_saying_where_and_writes_nothing() {
    let (server, before) = server_with_one_upload(&[]);
    let body = b"{\"a\": 1,\n \"b\": }";
    let (response, mut stream) =
        exchange_keep(&server, &upload_request(&server, "application/json", body));
    let json = check_error(&response, 400);
    let message = json["message"].as_str().expect("a message string");
    assert!(message.contains("line") && message.contains("column"), "{message:?}");
    assert_still_serves(&server, &mut stream, &response);
    assert_eq!(listing(&uploads_dir(&server)), before);
}

#[test]
fn an_empty_body_gets_400_and_writes_nothing() {
    let (server, before) = server_with_one_upload(&[]);
    let (response, mut stream) =
        exchange_keep(&server, &upload_request(&server, "application/json", b""));
    check_error(&response, 400);
    assert_still_serves(&server, &mut stream, &response);
    assert_eq!(listing(&uploads_dir(&server)), before);
}

#[test]
fn an_upload_with_neither_length_nor_chunked_gets_411_and_writes_nothing() {
    let (server, before) = server_with_one_upload(&[]);
    let request = format!(
        "POST /upload HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\r\n",
        server.host()
    );
    let (response, mut stream) = exchange_keep(&server, request.as_bytes());
    check_error(&response, 411);
    // A request without Content-Length or chunked has no body (RFC 9112 §6.3), so the framing is intact.
    assert_still_serves(&server, &mut stream, &response);
    assert_eq!(listing(&uploads_dir(&server)), before);
}

#[test]
fn a_content_length_over_max_body_gets_413_before_the_body_then_close() {
    let (server, before) = server_with_one_upload(&["--max-body", "1000"]);
    let head = format!(
        "POST /upload HTTP/1.1\r\n\
        Host: {}\r\nContent-Type: application/json\r\nContent-Length: 1001\r\n\r\n",
        server.host()
    );
    let (response, mut stream) = exchange_keep(&server, head.as_bytes());
    check_error(&response, 413);
    assert_closed(&mut stream);
    assert_eq!(listing(&uploads_dir(&server)), before);
}

#[test]
fn a_chunked_body_growing_over_max_body_gets_413_then_close() {
    let (server, before) = server_with_one_upload(&["--max-body", "1000"]);
    let part = [b' '; 600];
    let mut request = chunked_head(&server);
    request.extend(chunked(&[b"[", &part, &part, b"]"]));
    let (response, mut stream) = exchange_keep(&server, &request);
    check_error(&response, 413);
    assert_closed(&mut stream);
    assert_eq!(listing(&uploads_dir(&server)), before);
}

#[test]
fn get_on_the_upload_endpoint_gets_405_allowing_post() {
    let (server, before) = server_with_one_upload(&[]);
    let response = exchange(&server, get_request(&server, "/upload").as_bytes());
    check_error(&response, 405);
    assert_eq!(response.header("Allow"), Some("POST, OPTIONS"), "{}", response.head);
    assert_eq!(listing(&uploads_dir(&server)), before);
}

#[test]
fn post_to_a_static_page_gets_405_allowing_get_and_head() {
    let (server, before) = server_with_one_upload(&[]);
    let page = std::fs::read(server.root.join("index.html")).unwrap();
    let mut request = format!(
        "POST /index.html HTTP/1.1\r\n\
        Host: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        server.host(),
        DOCUMENT.len()
    )
    .into_bytes();
    request.extend_from_slice(DOCUMENT);
    let response = exchange(&server, &request);
    check_error(&response, 405);
    assert_eq!(response.header("Allow"), Some("GET, HEAD, OPTIONS"), "{}", response.head);
    assert_eq!(listing(&uploads_dir(&server)), before);
    assert_eq!(std::fs::read(server.root.join("index.html")).unwrap(), page);
}

#[test]
fn a_client_dropping_mid_body_leaves_no_file_and_the_server_keeps_serving() {
    let (mut server, before) = server_with_one_upload(&[]);
    let head = format!(
        "POST /upload HTTP/1.1\r\n\
        Host: {}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
        server.host()
    );
    let mut stream = server.connect();
    send(&mut stream, head.as_bytes());
    // Valid JSON on its own, so a server that stored a truncated body would leave a file.
    let partial = format!("{{\"partial\": \"{}\"}}", "x".repeat(85));
    assert_eq!(partial.len(), 100);
    send(&mut stream, partial.as_bytes());
    drop(stream);

    let page = server.get("/");
    assert_eq!(page.status, 200, "{}", page.head);
    let response = exchange(&server, &upload_request(&server, "application/json", DOCUMENT));
    let filepath = check_created(&server, &response, DOCUMENT);
    let mut expected = before;
    expected.push((filepath["/uploads/".len()..].to_owned(), DOCUMENT.len() as u64));
    expected.sort();
    assert_eq!(listing(&uploads_dir(&server)), expected, "only the completed uploads remain");
    assert!(server.is_running());
}

#[test]
fn an_unwritable_uploads_folder_gives_500_and_the_server_keeps_serving() {
    let root = common::temp_root();
    std::fs::copy(resource("index.html"), root.join("index.html")).unwrap();
    std::fs::write(root.join("uploads"), b"not a folder").unwrap();
    let before = listing(&root);
    let mut server = TestServer::start_in(root, &[]);

    let response = exchange(&server, &upload_request(&server, "application/json", DOCUMENT));
    check_error(&response, 500);
    let page = server.get("/");
    assert_eq!(page.status, 200, "{}", page.head);
    assert_eq!(std::fs::read(server.root.join("uploads")).unwrap(), b"not a folder");
    assert_eq!(listing(&server.root), before, "nothing written beside it either");
    assert!(server.is_running());
}

#[test]
fn an_upload_over_the_file_size_limit_gets_507_leaves_no_file_and_the_server_keeps_serving() {
    // `ulimit -f 8`: no file the server writes may pass 8 KiB. Without a SIGXFSZ handler the write would kill
    // the process; with one it fails with EFBIG.
    let mut server = TestServer::start_with_ulimit("-f", 8, &[]);
    let big = format!("{{\"data\": \"{}\"}}", "x".repeat(20 * 1024));
    let response = exchange(&server, &upload_request(&server, "application/json", big.as_bytes()));
    check_error(&response, 507);
    assert!(server.is_running(), "the server survived the file size limit");
    assert!(listing(&uploads_dir(&server)).is_empty(), "no file and no temporary file are left");
    // A small upload still fits and is stored.
    let small = exchange(&server, &upload_request(&server, "application/json", DOCUMENT));
    check_created(&server, &small, DOCUMENT);
    assert!(server.log_contains("File too large"), "the cause is logged");
}

#[test]
fn created_keeps_the_connection_open_and_413_closes_it() {
    let server = TestServer::start(&["--max-body", "1000"]);
    let mut stream = server.connect();
    let request = upload_request(&server, "application/json", DOCUMENT);
    send(&mut stream, &request);
    let first = read_response(&mut stream).expect("first response");
    let first_path = check_created(&server, &first, DOCUMENT);
    assert_eq!(first.header("Connection"), Some("keep-alive"), "{}", first.head);

    send(&mut stream, &request);
    let second = read_response(&mut stream).expect("second response on the same connection");
    let second_path = check_created(&server, &second, DOCUMENT);
    assert_ne!(first_path, second_path);

    let too_large = format!(
        "POST /upload HTTP/1.1\r\n\
        Host: {}\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n",
        server.host()
    );
    send(&mut stream, too_large.as_bytes());
    let refused = read_response(&mut stream).expect("third response on the same connection");
    check_error(&refused, 413);
    assert_eq!(refused.header("Connection"), Some("close"), "{}", refused.head);
    assert_closed(&mut stream);
}

/// A JSON document of exactly `len` bytes: one string of pseudo-random letters, so every byte position
/// matters when it is compared.
fn large_document(len: usize, seed: u64) -> Vec<u8> {
    let letters = common::random_bytes(len, seed).into_iter().map(|b| b'a' + b % 26);
    let mut doc: Vec<u8> = b"[\"".iter().copied().chain(letters).take(len - 2).collect();
    doc.extend_from_slice(b"\"]");
    doc
}

/// The head of a Content-Length upload that asks for `100 Continue`, and the connection it went out on
/// with the status that came back.
fn ask_to_upload(server: &TestServer, len: usize) -> (u16, TcpStream) {
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {len}\r\nExpect: 100-continue\r\n\r\n",
        server.host()
    );
    let mut stream = server.connect_nodelay();
    send(&mut stream, head.as_bytes());
    let response = read_response_head_only(&mut stream).expect("a response");
    (response.status, stream)
}

#[test]
fn a_10_mib_upload_streams_to_disk_and_is_stored_byte_for_byte() {
    let server = TestServer::start(&[]);
    let doc = large_document(10 * 1024 * 1024, 7);
    let response = exchange(&server, &upload_request(&server, "application/json", &doc));
    check_created(&server, &response, &doc);
    assert_eq!(listing(&uploads_dir(&server)).len(), 1, "no temporary file is left");
}

#[test]
fn a_large_chunked_upload_in_many_small_chunks_is_stored_whole() {
    let server = TestServer::start(&[]);
    let doc = large_document(1024 * 1024 + 7, 8);
    let parts: Vec<&[u8]> = doc.chunks(1000).collect();
    let mut request = chunked_head(&server);
    request.extend(chunked(&parts));
    let response = exchange(&server, &request);
    check_created(&server, &response, &doc);
}

#[test]
fn a_large_body_that_stops_being_utf8_deep_inside_gets_400_and_leaves_nothing() {
    let (server, before) = server_with_one_upload(&[]);
    let mut doc = large_document(300_000, 9);
    doc[200_001] = 0xff;
    let (response, mut stream) =
        exchange_keep(&server, &upload_request(&server, "application/json", &doc));
    let json = check_error(&response, 400);
    let message = json["message"].as_str().expect("a message string");
    assert!(message.contains("not UTF-8 at byte 200001"), "{message:?}");
    assert_still_serves(&server, &mut stream, &response);
    assert_eq!(listing(&uploads_dir(&server)), before, "the temporary file is gone");
}

#[test]
fn a_large_upload_over_the_file_size_limit_gets_507_mid_body_and_leaves_nothing() {
    // `ulimit -f 8`: the first 64 KiB window written to the temporary file already fails with EFBIG.
    let mut server = TestServer::start_with_ulimit("-f", 8, &[]);
    let doc = large_document(1024 * 1024, 10);
    let response = exchange(&server, &upload_request(&server, "application/json", &doc));
    check_error(&response, 507);
    assert_eq!(response.header("Connection"), Some("close"), "the rest of the body is not read");
    assert!(server.is_running());
    assert!(listing(&uploads_dir(&server)).is_empty(), "no file and no temporary file are left");
}

#[test]
fn memory_stays_at_a_window_per_upload_while_large_bodies_arrive() {
    // Twenty uploads each send 4 MiB of a 10 MiB body and wait. Held in memory, that would be 80 MiB; spilled
    // a window at a time, it is about 64 KiB each.
    const UPLOADS: usize = 20;
    let server = TestServer::start(&["--idle-timeout", "60", "--body-timeout", "60"]);
    let doc = large_document(10 * 1024 * 1024, 11);
    let rss_before = server.memory_kib("VmRSS");
    let mut held = Vec::new();
    for _ in 0..UPLOADS {
        let (status, mut stream) = ask_to_upload(&server, doc.len());
        assert_eq!(status, 100);
        send(&mut stream, &doc[..4 * 1024 * 1024]);
        held.push(stream);
    }
    // The kernel buffers part of what was sent; wait until the server has taken it (its temporary files
    // have grown), so the measure sees the bodies, not the socket buffers.
    let spooled = || -> u64 { listing(&uploads_dir(&server)).iter().map(|(_, len)| len).sum() };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while spooled() < (UPLOADS as u64) * 3 * 1024 * 1024 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(spooled() >= (UPLOADS as u64) * 3 * 1024 * 1024, "spooled only {} bytes", spooled());
    let growth_mib = server.memory_kib("VmHWM").saturating_sub(rss_before) / 1024;
    assert!(growth_mib < 16, "{UPLOADS} large uploads under way took {growth_mib} MiB");
    // Their files are temporary: hidden, and gone once the clients leave.
    assert!(listing(&uploads_dir(&server)).iter().all(|(name, _)| name.starts_with('.')));
    drop(held);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !listing(&uploads_dir(&server)).is_empty() && std::time::Instant::now() < deadline {
        // A sweep runs after the next job: give the workers one.
        server.get("/index.html");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(listing(&uploads_dir(&server)).is_empty(), "{:?}", listing(&uploads_dir(&server)));
}

/// The bytes the uploads folder holds, temporary files included.
fn bytes_in_uploads(server: &TestServer) -> u64 {
    listing(&uploads_dir(server)).iter().map(|(_, len)| len).sum()
}

/// Waits (bounded) until `ready` holds.
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !ready() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn uploads_past_the_disk_budget_get_503_before_their_body_and_a_small_one_still_fits() {
    let server = TestServer::start(&["--max-body", "600000", "--max-upload-disk", "1000000"]);
    let (first, mut arriving) = ask_to_upload(&server, 600_000);
    assert_eq!(first, 100, "600,000 of the 1,000,000 bytes allowed");
    send(&mut arriving, &large_document(600_000, 14)[..500_000]);
    // Seven 64 KiB windows (458,752 bytes) on disk: the rest of the budget can't take another 600,000.
    wait_until("the first upload's windows are on disk", || bytes_in_uploads(&server) >= 458_752);
    let (second, mut refused) = ask_to_upload(&server, 600_000);
    assert_eq!(second, 503, "another 600,000 would pass the bound");
    assert!(!read_to_eof(&mut refused).is_empty(), "the 503 comes with its body, then a close");
    let small = exchange(&server, &upload_request(&server, "application/json", DOCUMENT));
    check_created(&server, &small, DOCUMENT);
    // Once the first upload is gone, its disk comes back (the server notices the close soon, but not at
    // once: ask a bounded number of times).
    drop(arriving);
    let accepted = (0..100).any(|_| {
        ask_to_upload(&server, 600_000).0 == 100 || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            false
        }
    });
    assert!(accepted, "the disk was not given back");
}

#[test]
fn an_abandoned_upload_leaves_no_temporary_file_even_on_an_idle_server() {
    let server = TestServer::start(&[]);
    let (status, mut stream) = ask_to_upload(&server, 1_000_000);
    assert_eq!(status, 100);
    send(&mut stream, &large_document(1_000_000, 15)[..300_000]);
    wait_until("windows are on disk", || bytes_in_uploads(&server) >= 262_144);
    drop(stream);
    // Nothing else happens on the server: its idle workers still tidy up.
    wait_until("the temporary file is gone", || listing(&uploads_dir(&server)).is_empty());
}

#[test]
fn uploads_past_one_window_hold_a_file_under_max_open_files_and_past_it_get_503() {
    let server = TestServer::start(&["--max-open-files", "2", "--idle-timeout", "30"]);
    let doc = large_document(1_000_000, 16);
    let held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let (status, mut stream) = ask_to_upload(&server, doc.len());
            assert_eq!(status, 100);
            send(&mut stream, &doc[..100_000]);
            stream
        })
        .collect();
    wait_until("both uploads hold a temporary file", || listing(&uploads_dir(&server)).len() == 2);
    let (status, mut third) = ask_to_upload(&server, doc.len());
    assert_eq!(status, 100, "admitted: its first window is still in memory");
    send(&mut third, &doc[..100_000]);
    let refused = read_response(&mut third).expect("an answer once its first window needs a file");
    check_error(&refused, 503);
    assert_eq!(refused.header("Connection"), Some("close"));
    let small = exchange(&server, &upload_request(&server, "application/json", DOCUMENT));
    check_error(&small, 503);
    drop(held);
    wait_until("the files are given back", || listing(&uploads_dir(&server)).is_empty());
    let small = exchange(&server, &upload_request(&server, "application/json", DOCUMENT));
    check_created(&server, &small, DOCUMENT);
}

#[test]
fn uploads_past_max_uploads_get_503_while_downloads_go_on() {
    let server = TestServer::start(&["--max-uploads", "2"]);
    let held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let (status, stream) = ask_to_upload(&server, 1000);
            assert_eq!(status, 100);
            stream
        })
        .collect();
    assert_eq!(ask_to_upload(&server, 1000).0, 503);
    assert_eq!(server.get("/index.html").status, 200);
    drop(held);
}

#[test]
fn slow_uploads_holding_their_places_never_stop_a_normal_upload() {
    // 26 clients trickling 10 MiB bodies once held 265 MB of memory and made a 100 KB upload get 503. Now
    // each holds a window at most, and its declared size in disk reserved.
    let server = TestServer::start(&["--idle-timeout", "60", "--body-timeout", "60"]);
    let held: Vec<TcpStream> = (0..26)
        .map(|_| {
            let (status, mut stream) = ask_to_upload(&server, 10 * 1024 * 1024);
            assert_eq!(status, 100);
            send(&mut stream, b"[\"");
            stream
        })
        .collect();
    let doc = large_document(100_000, 12);
    let response = exchange(&server, &upload_request(&server, "application/json", &doc));
    check_created(&server, &response, &doc);
    drop(held);
}

#[test]
fn slow_uploads_declaring_the_whole_disk_budget_hold_none_of_it_and_are_cut_by_the_minimum_rate() {
    // Two trickling uploads declare all of the disk allowed. Disk is held as bytes arrive, so the normal upload
    // gets in at once; the minimum rate (1 KiB/s over each 0.5 s window) cuts the trickles with 408.
    let server = TestServer::start(&[
        "--max-body",
        "1000000",
        "--max-upload-disk",
        "2000000",
        "--body-timeout",
        "0.5",
        "--idle-timeout",
        "30",
    ]);
    let mut held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let (status, stream) = ask_to_upload(&server, 1_000_000);
            assert_eq!(status, 100);
            stream
        })
        .collect();
    let doc = large_document(100_000, 13);
    let response = exchange(&server, &upload_request(&server, "application/json", &doc));
    check_created(&server, &response, &doc);
    for stream in &mut held {
        let _ = stream.write_all(b" ");
        let cut = read_response(stream).expect("the trickle's answer");
        assert_eq!(cut.status, 408, "{}", cut.head);
    }
}

#[test]
fn a_body_trickling_past_the_body_timeout_gets_408() {
    let server = TestServer::start(&["--body-timeout", "0.3", "--idle-timeout", "30"]);
    let mut stream = server.connect_nodelay();
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n",
        server.host()
    );
    send(&mut stream, head.as_bytes());
    // One byte every 100 ms keeps the idle timeout from firing, but not the body timeout.
    for _ in 0..10 {
        if stream.write_all(b" ").is_err() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let response = read_response(&mut stream).expect("a 408");
    check_error(&response, 408);
    assert_eq!(response.header("Connection"), Some("close"));
}

#[test]
fn a_body_that_is_not_utf8_gets_400_and_writes_nothing() {
    let (server, before) = server_with_one_upload(&[]);
    let body = b"{\"k\": \"\xff\xfe\"}";
    let (response, mut stream) =
        exchange_keep(&server, &upload_request(&server, "application/json", body));
    let json = check_error(&response, 400);
    let message = json["message"].as_str().expect("a message string");
    assert!(message.contains("UTF-8"), "{message:?}");
    assert_still_serves(&server, &mut stream, &response);
    assert_eq!(listing(&uploads_dir(&server)), before);
}

#[test]
fn a_removed_uploads_folder_gives_500_logged_once_and_nothing_is_recreated() {
    let mut server = TestServer::start(&["--log-level", "info"]);
    std::fs::remove_dir_all(uploads_dir(&server)).unwrap();
    for _ in 0..3 {
        let response = exchange(&server, &upload_request(&server, "application/json", DOCUMENT));
        check_error(&response, 500);
    }
    assert!(
        !uploads_dir(&server).exists(),
        "the folder is not made again behind the operator's back"
    );
    assert!(server.log_contains("upload failed"), "{}", server.log());
    assert_eq!(server.log().matches("upload failed").count(), 1, "logged once per cause");
    assert!(server.is_running());
}

#[test]
fn a_replaced_uploads_folder_gives_500_logged_once_and_the_new_one_is_left_alone() {
    let mut server = TestServer::start(&["--log-level", "info"]);
    let elsewhere = server.root.join("moved-away");
    std::fs::rename(uploads_dir(&server), &elsewhere).unwrap();
    std::fs::create_dir(uploads_dir(&server)).unwrap();
    for _ in 0..3 {
        let response = exchange(&server, &upload_request(&server, "application/json", DOCUMENT));
        check_error(&response, 500);
    }
    assert!(listing(&uploads_dir(&server)).is_empty(), "nothing written into the new folder");
    assert!(listing(&elsewhere).is_empty(), "nor into the old one, wherever it went");
    assert!(server.log_contains("not the folder that was there at startup"), "{}", server.log());
    assert_eq!(server.log().matches("upload failed").count(), 1, "logged once per cause");
    assert!(server.is_running());
}
