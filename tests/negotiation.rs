//! Content negotiation: precompressed variants chosen by Accept-Encoding (from disk and from the in-memory
//! cache), error bodies chosen by Accept, and the quiet logging of a missing /favicon.ico.

mod common;

use common::{read_response, read_response_head_only, Response, TestServer};
use std::io::{Read, Write};
use std::net::TcpStream;

/// The three stored forms of `app.js`; their lengths differ so a wrong variant can't pass by length.
const IDENTITY: &[u8] = b"console.log('app.js, as written');\n";
const GZIP: &[u8] = b"\x1f\x8b pretend gzip bytes of app.js";
const BROTLI: &[u8] = b"pretend brotli";

const JS: &str = "text/javascript; charset=utf-8";
const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// Writes app.js and its .gz and .br variants, plus plain.js which has none.
fn write_variants(server: &TestServer) {
    std::fs::write(server.root.join("app.js"), IDENTITY).unwrap();
    std::fs::write(server.root.join("app.js.gz"), GZIP).unwrap();
    std::fs::write(server.root.join("app.js.br"), BROTLI).unwrap();
    std::fs::write(server.root.join("plain.js"), IDENTITY).unwrap();
}

/// A keep-alive `METHOD TARGET` with this server's Host and the extra fields.
fn request(server: &TestServer, method: &str, target: &str, fields: &[(&str, &str)]) -> String {
    let mut raw = format!("{method} {target} HTTP/1.1\r\nHost: {}\r\n", server.host());
    for (name, value) in fields {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    raw.push_str("\r\n");
    raw
}

/// Sends one request on `stream` (kept alive) and reads the response.
fn send(
    server: &TestServer,
    stream: &mut TcpStream,
    method: &str,
    target: &str,
    fields: &[(&str, &str)],
) -> Response {
    stream.write_all(request(server, method, target, fields).as_bytes()).unwrap();
    let mut response = read_response_head_only(stream)
        .unwrap_or_else(|| panic!("no response to {method} {target} {fields:?}"));
    // A 304 has no Content-Length and no body; a response to HEAD has the length but no body.
    if let (false, Some(len)) = (method == "HEAD", response.header("Content-Length")) {
        response.body = vec![0; len.parse().expect("a numeric Content-Length")];
        stream.read_exact(&mut response.body).expect("read the body");
    }
    response
}

/// One request on a fresh connection.
fn fetch(server: &TestServer, method: &str, target: &str, fields: &[(&str, &str)]) -> Response {
    send(server, &mut server.connect(), method, target, fields)
}

/// GET /app.js with this Accept-Encoding (none when `None`).
fn get_app(server: &TestServer, stream: &mut TcpStream, accept_encoding: Option<&str>) -> Response {
    let fields: Vec<(&str, &str)> =
        accept_encoding.map(|v| ("Accept-Encoding", v)).into_iter().collect();
    send(server, stream, "GET", "/app.js", &fields)
}

/// Checks a full response of app.js: these bytes, this coding, the script type, and Vary.
fn assert_variant(response: &Response, body: &[u8], coding: Option<&str>, what: &str) {
    assert_eq!(response.status, 200, "{what}: {}", response.head);
    assert!(
        response.body == body,
        "{what}: got {:?}, want {:?}",
        String::from_utf8_lossy(&response.body),
        String::from_utf8_lossy(body)
    );
    assert_eq!(response.header("Content-Encoding"), coding, "{what}: {}", response.head);
    assert_eq!(response.header("Content-Type"), Some(JS), "{what}");
    assert_eq!(response.header("Vary"), Some("Accept-Encoding"), "{what}: {}", response.head);
}

/// Which stored bytes each Accept-Encoding value gets, and with which Content-Encoding.
const CHOICES: &[(Option<&str>, &[u8], Option<&str>)] = &[
    (Some("gzip, br"), BROTLI, Some("br")),
    (Some("gzip, deflate, br, zstd"), BROTLI, Some("br")),
    (Some("br"), BROTLI, Some("br")),
    (Some("gzip"), GZIP, Some("gzip")),
    (Some("x-gzip"), GZIP, Some("gzip")),
    (Some("br;q=0, gzip"), GZIP, Some("gzip")),
    (Some("gzip;q=0"), IDENTITY, None),
    (Some("identity"), IDENTITY, None),
    (Some("deflate"), IDENTITY, None),
    (None, IDENTITY, None),
    (Some("*"), BROTLI, Some("br")),
    (Some("*, br;q=0"), GZIP, Some("gzip")),
];

#[test]
fn accept_encoding_picks_the_precompressed_variant_and_the_response_varies() {
    let server = TestServer::start(&["--file-cache-window", "0"]);
    write_variants(&server);
    for &(accept, body, coding) in CHOICES {
        let response = get_app(&server, &mut server.connect(), accept);
        assert_variant(&response, body, coding, &format!("Accept-Encoding {accept:?}"));
    }
}

#[test]
fn each_variant_has_its_own_etag_and_head_length() {
    let server = TestServer::start(&[]);
    write_variants(&server);
    let mut etags = Vec::new();
    for (accept, body) in [("br", BROTLI), ("gzip", GZIP), ("identity", IDENTITY)] {
        let fields = [("Accept-Encoding", accept)];
        let head = fetch(&server, "HEAD", "/app.js", &fields);
        assert_eq!(head.status, 200, "HEAD {accept}: {}", head.head);
        let len = body.len().to_string();
        assert_eq!(
            head.header("Content-Length"),
            Some(len.as_str()),
            "HEAD {accept}: {}",
            head.head
        );
        assert_eq!(head.header("Vary"), Some("Accept-Encoding"), "HEAD {accept}");
        let get = fetch(&server, "GET", "/app.js", &fields);
        let etag = get.header("ETag").expect("an ETag").to_owned();
        assert_eq!(head.header("ETag"), Some(etag.as_str()), "HEAD and GET {accept} differ");
        etags.push(etag);
    }
    assert!(etags[0] != etags[1] && etags[1] != etags[2] && etags[0] != etags[2], "{etags:?}");
}

#[test]
fn a_validator_of_one_variant_does_not_match_another() {
    let server = TestServer::start(&[]);
    write_variants(&server);
    let gzip_etag = fetch(&server, "GET", "/app.js", &[("Accept-Encoding", "gzip")])
        .header("ETag")
        .expect("an ETag")
        .to_owned();
    let same = fetch(
        &server,
        "GET",
        "/app.js",
        &[("Accept-Encoding", "gzip"), ("If-None-Match", gzip_etag.as_str())],
    );
    assert_eq!(same.status, 304, "{}", same.head);
    assert_eq!(same.header("Vary"), Some("Accept-Encoding"), "a 304 varies as the 200 did");
    // A client without gzip holding the gzip tag has not got the identity bytes: it must get them.
    let other = fetch(&server, "GET", "/app.js", &[("If-None-Match", gzip_etag.as_str())]);
    assert_variant(&other, IDENTITY, None, "identity with the gzip ETag");
}

#[test]
fn a_range_of_the_gzip_variant_counts_bytes_of_the_gz_file() {
    let server = TestServer::start(&[]);
    write_variants(&server);
    let fields = [("Accept-Encoding", "gzip"), ("Range", "bytes=2-9")];
    let response = fetch(&server, "GET", "/app.js", &fields);
    assert_eq!(response.status, 206, "{}", response.head);
    assert_eq!(response.body, &GZIP[2..10]);
    let range = format!("bytes 2-9/{}", GZIP.len());
    assert_eq!(response.header("Content-Range"), Some(range.as_str()));
    assert_eq!(response.header("Content-Encoding"), Some("gzip"));
    assert_eq!(response.header("Vary"), Some("Accept-Encoding"));
    // The same range without gzip counts bytes of app.js itself.
    let plain = fetch(&server, "GET", "/app.js", &[("Range", "bytes=2-9")]);
    assert_eq!(plain.status, 206, "{}", plain.head);
    assert_eq!(plain.body, &IDENTITY[2..10]);
    let range = format!("bytes 2-9/{}", IDENTITY.len());
    assert_eq!(plain.header("Content-Range"), Some(range.as_str()));
    assert_eq!(plain.header("Content-Encoding"), None);
}

#[test]
fn a_file_without_variants_does_not_vary_and_a_variant_asked_for_by_name_is_itself() {
    let server = TestServer::start(&[]);
    write_variants(&server);
    let plain = fetch(&server, "GET", "/plain.js", &[("Accept-Encoding", "gzip, br")]);
    assert_eq!(plain.status, 200, "{}", plain.head);
    assert_eq!(plain.body, IDENTITY);
    assert_eq!(plain.header("Content-Encoding"), None);
    assert_eq!(plain.header("Vary"), None, "nothing to vary: {}", plain.head);
    for accept in [Some("gzip, br"), None] {
        let fields: Vec<(&str, &str)> =
            accept.map(|v| ("Accept-Encoding", v)).into_iter().collect();
        let gz = fetch(&server, "GET", "/app.js.gz", &fields);
        assert_eq!(gz.status, 200, "{accept:?}: {}", gz.head);
        assert_eq!(gz.body, GZIP, "{accept:?}");
        assert_eq!(gz.header("Content-Type"), Some("application/gzip"), "{accept:?}");
        assert_eq!(gz.header("Content-Encoding"), None, "{accept:?}: {}", gz.head);
    }
}

#[test]
fn alternating_clients_get_their_own_variant_from_the_memory_cache_too() {
    // A long window, so every repeat is served from memory however slow the machine.
    let server = TestServer::start(&["--file-cache-window", "60"]);
    write_variants(&server);
    let order = [
        Some("gzip"),
        None,
        Some("gzip"),
        None,
        Some("gzip, br"),
        Some("br;q=0, gzip"),
        None,
        Some("*"),
    ];
    let mut kept = server.connect();
    for round in 0..2 {
        for accept in order {
            let &(_, body, coding) = CHOICES.iter().find(|(a, ..)| *a == accept).unwrap();
            let what = format!("round {round}, Accept-Encoding {accept:?}, kept-alive connection");
            assert_variant(&get_app(&server, &mut kept, accept), body, coding, &what);
            let what = format!("round {round}, Accept-Encoding {accept:?}, new connection");
            assert_variant(&get_app(&server, &mut server.connect(), accept), body, coding, &what);
        }
    }
    assert!(
        server.log_contains("serving app.js from memory"),
        "the cache was never used:\n{}",
        server.log()
    );
    // A file without variants, from memory, still does not vary.
    for _ in 0..2 {
        let plain = fetch(&server, "GET", "/plain.js", &[("Accept-Encoding", "gzip")]);
        assert_eq!(plain.body, IDENTITY);
        assert_eq!(plain.header("Vary"), None, "{}", plain.head);
    }
    assert!(server.log_contains("serving plain.js from memory"), "{}", server.log());
}

/// Checks an HTML error page.
fn assert_html_error(response: &Response, status: u16, title: &str) {
    assert_eq!(response.status, status, "{}", response.head);
    assert_eq!(
        response.header("Content-Type"),
        Some("text/html; charset=utf-8"),
        "{}",
        response.head
    );
    assert_eq!(response.header("Vary"), Some("Accept"), "{}", response.head);
    let page = String::from_utf8(response.body.clone()).expect("a UTF-8 page");
    assert!(page.contains(title), "{page}");
    assert!(page.to_ascii_lowercase().contains("<html"), "{page}");
}

/// Checks a JSON error body.
fn assert_json_error(response: &Response, status: u16) {
    assert_eq!(response.status, status, "{}", response.head);
    assert_eq!(response.header("Content-Type"), Some("application/json"), "{}", response.head);
    assert_eq!(response.header("Vary"), Some("Accept"), "{}", response.head);
    let json: serde_json::Value = serde_json::from_slice(&response.body).unwrap_or_else(|e| {
        panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&response.body))
    });
    assert_eq!(json["status"], status, "{json}");
    assert!(json["error"].is_string(), "{json}");
}

#[test]
fn a_browser_gets_an_html_404_and_other_clients_json() {
    let server = TestServer::start(&[]);
    let html = fetch(&server, "GET", "/missing.html", &[("Accept", BROWSER_ACCEPT)]);
    assert_html_error(&html, 404, "404 Not Found");
    for accept in [Some("text/html"), Some("text/*, application/json;q=0.5")] {
        let fields: Vec<(&str, &str)> = accept.map(|v| ("Accept", v)).into_iter().collect();
        assert_html_error(&fetch(&server, "GET", "/missing.html", &fields), 404, "404 Not Found");
    }
    for accept in [Some("*/*"), None, Some("application/json"), Some("application/json, text/html")]
    {
        let fields: Vec<(&str, &str)> = accept.map(|v| ("Accept", v)).into_iter().collect();
        let response = fetch(&server, "GET", "/missing.html", &fields);
        assert_json_error(&response, 404);
    }
    // HEAD to a browser: the HTML page's length, no body.
    let head = fetch(&server, "HEAD", "/missing.html", &[("Accept", BROWSER_ACCEPT)]);
    assert_eq!(head.status, 404, "{}", head.head);
    assert_eq!(head.header("Content-Type"), Some("text/html; charset=utf-8"));
    assert_eq!(head.header("Content-Length"), Some(html.body.len().to_string().as_str()));
}

#[test]
fn a_405_in_html_keeps_its_allow_header() {
    let server = TestServer::start(&[]);
    let raw = format!(
        "POST /index.html HTTP/1.1\r\nHost: {}\r\nAccept: {BROWSER_ACCEPT}\r\nContent-Length: 0\r\n\
         Connection: close\r\n\r\n",
        server.host()
    );
    let mut stream = server.connect();
    stream.write_all(raw.as_bytes()).unwrap();
    let response = read_response(&mut stream).expect("a response");
    assert_html_error(&response, 405, "405 Method Not Allowed");
    assert_eq!(response.header("Allow"), Some("GET, HEAD, OPTIONS"), "{}", response.head);
    // The JSON form says the same.
    let raw = raw.replace(BROWSER_ACCEPT, "*/*");
    let mut stream = server.connect();
    stream.write_all(raw.as_bytes()).unwrap();
    let json = read_response(&mut stream).expect("a response");
    assert_json_error(&json, 405);
    assert_eq!(json.header("Allow"), Some("GET, HEAD, OPTIONS"), "{}", json.head);
}

/// The access line of a 404 for `path`, as the log writes it.
fn access_line(path: &str) -> String {
    format!("\"GET {path} HTTP/1.1\" 404")
}

#[test]
fn a_missing_favicon_stays_out_of_the_access_log_and_the_info_event_log() {
    let server = TestServer::start(&["--log-level", "info"]);
    let favicon = fetch(&server, "GET", "/favicon.ico", &[]);
    assert_json_error(&favicon, 404);
    let missing = fetch(&server, "GET", "/missing.html", &[]);
    assert_json_error(&missing, 404);
    // One event loop records the responses in the order they finished, so once the second is here the
    // first would be too.
    assert!(
        server.log_contains(&access_line("/missing.html")),
        "no access line:\n{}",
        server.log()
    );
    let log = server.log();
    let noisy: Vec<&str> = log.lines().filter(|l| l.contains("GET /favicon.ico")).collect();
    assert!(noisy.is_empty(), "a missing favicon was logged: {noisy:?}");
    let line = log.lines().find(|l| l.contains(&access_line("/missing.html"))).unwrap();
    assert!(line.starts_with("127.0.0.1 - - ["), "other 404s are in the access log: {line}");
}

#[test]
fn a_missing_favicon_is_noted_at_debug() {
    let server = TestServer::start(&["--log-level", "debug"]);
    assert_eq!(fetch(&server, "GET", "/favicon.ico", &[]).status, 404);
    let note = "\"GET /favicon.ico HTTP/1.1\" 404 (not in the access log)";
    assert!(server.log_contains(note), "no debug note:\n{}", server.log());
    let log = server.log();
    let line = log.lines().find(|l| l.contains(note)).unwrap();
    assert!(line.contains("DEBUG"), "the favicon line is not at debug: {line}");
}
