//! Conditional requests (RFC 9110 §13): validators on every file response, 304 and 412 and the order the
//! preconditions are evaluated in, Cache-Control, and OPTIONS.

mod common;

use common::{
    bundled, exchange_with, random_bytes, read_response, read_response_optional_length,
    read_to_eof, request_with_headers, Response, TestServer,
};
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The validators of a file, from a plain GET.
fn validators(server: &TestServer, path: &str) -> (String, String) {
    let response = server.get(path);
    assert_eq!(response.status, 200, "{}", response.head);
    let etag = response.header("ETag").expect("ETag").to_owned();
    let last_modified = response.header("Last-Modified").expect("Last-Modified").to_owned();
    (etag, last_modified)
}

fn shifted(date: &str, seconds: i64) -> String {
    let time = httpdate::parse_http_date(date).expect("an HTTP date");
    let shifted = if seconds < 0 {
        time - Duration::from_secs(seconds.unsigned_abs())
    } else {
        time + Duration::from_secs(seconds as u64)
    };
    httpdate::fmt_http_date(shifted)
}

/// Asserts a 304: validators and Cache-Control, no body framing, no body.
fn assert_not_modified(response: &Response, etag: &str, last_modified: &str, what: &str) {
    assert_eq!(response.status, 304, "{what}: {}", response.head);
    assert_eq!(response.header("ETag"), Some(etag), "{what}");
    assert_eq!(response.header("Last-Modified"), Some(last_modified), "{what}");
    assert_eq!(response.header("Cache-Control"), Some("no-cache"), "{what}");
    assert_eq!(response.header("Content-Length"), None, "{what}: a 304 has no Content-Length");
    assert_eq!(response.header("Transfer-Encoding"), None, "{what}");
    assert!(response.body.is_empty(), "{what}");
}

fn assert_ok(response: &Response, body: &[u8], what: &str) {
    assert_eq!(response.status, 200, "{what}: {}", response.head);
    assert!(response.body == body, "{what}: body differs from the file");
}

fn assert_precondition_failed(response: &Response, what: &str) {
    assert_eq!(response.status, 412, "{what}: {}", response.head);
    assert_eq!(response.header("Content-Type"), Some("application/json"), "{what}");
    let json: serde_json::Value = serde_json::from_slice(&response.body)
        .unwrap_or_else(|e| panic!("{what}: 412 body is not JSON ({e})"));
    assert_eq!(json["status"], 412, "{what}: {json}");
}

/// Writes a 10 MiB random `.png` into the root as `big.png` and returns its contents.
fn write_big_png(server: &TestServer) -> Vec<u8> {
    let data = random_bytes(10 * 1024 * 1024, 0xc0de_cafe);
    std::fs::write(server.root.join("big.png"), &data).expect("write big.png");
    data
}

#[test]
fn every_file_response_carries_a_strong_etag_last_modified_cache_control_and_accept_ranges() {
    let server = TestServer::start(&[]);
    write_big_png(&server);
    for path in ["/index.html", "/logo.png", "/sample.txt", "/big.png"] {
        for fields in [vec![], vec![("Range", "bytes=0-9")]] {
            let what = format!("{path} {fields:?}");
            let response = exchange_with(&server, "GET", path, &fields);
            assert!(matches!(response.status, 200 | 206), "{what}: {}", response.head);
            let etag = response.header("ETag").unwrap_or_else(|| panic!("{what}: no ETag"));
            assert!(
                etag.len() > 2 && etag.starts_with('"') && etag.ends_with('"'),
                "{what}: a strong, quoted tag: {etag}"
            );
            assert!(!etag[1..etag.len() - 1].contains('"'), "{what}: {etag}");
            let name = path.trim_start_matches('/');
            let mtime = std::fs::metadata(server.root.join(name)).unwrap().modified().unwrap();
            let whole_seconds = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_secs();
            let last_modified = response.header("Last-Modified").expect("Last-Modified");
            let parsed = httpdate::parse_http_date(last_modified).expect("an HTTP date");
            assert_eq!(whole_seconds(parsed), whole_seconds(mtime), "{what}: the file's mtime");
            assert_eq!(response.header("Cache-Control"), Some("no-cache"), "{what}");
            assert_eq!(response.header("Accept-Ranges"), Some("bytes"), "{what}");
        }
    }
}

#[test]
fn the_etag_is_the_same_from_disk_and_from_memory_and_across_requests() {
    let server = TestServer::start(&["--file-cache-window", "60"]);
    let first = server.get("/about.html");
    let second = server.get("/about.html");
    assert!(server.log_contains("serving about.html from memory"), "{}", server.log());
    assert_eq!(first.header("ETag"), second.header("ETag"));
    assert_eq!(first.header("Last-Modified"), second.header("Last-Modified"));
    let ranged = exchange_with(&server, "GET", "/about.html", &[("Range", "bytes=0-0")]);
    assert_eq!(ranged.header("ETag"), first.header("ETag"), "a 206 has the file's tag");
}

#[test]
fn if_none_match_with_the_current_etag_is_304_for_small_and_large_files() {
    let server = TestServer::start(&["--file-cache-window", "60"]);
    write_big_png(&server);
    for path in ["/index.html", "/photo.jpg", "/big.png"] {
        let (etag, last_modified) = validators(&server, path);
        // The second time, small files come from memory.
        for _ in 0..2 {
            let response = exchange_with(&server, "GET", path, &[("If-None-Match", &etag)]);
            assert_not_modified(&response, &etag, &last_modified, path);
        }
    }
}

#[test]
fn a_304_on_a_keep_alive_connection_sends_no_body_and_the_next_request_is_answered() {
    let server = TestServer::start(&[]);
    write_big_png(&server);
    for path in ["/index.html", "/big.png"] {
        let (etag, last_modified) = validators(&server, path);
        let mut stream = server.connect();
        let raw = request_with_headers(&server, "GET", path, &[("If-None-Match", &etag)], false);
        stream.write_all(raw.as_bytes()).unwrap();
        let response = read_response_optional_length(&mut stream).expect("a 304");
        assert_not_modified(&response, &etag, &last_modified, path);
        assert_eq!(response.header("Connection"), Some("keep-alive"), "{}", response.head);
        // Any body byte after the 304 head would be read as the start of this response.
        let then = request_with_headers(&server, "GET", "/contact.html", &[], false);
        stream.write_all(then.as_bytes()).unwrap();
        let next = read_response(&mut stream).expect("the response after the 304");
        assert_ok(&next, &bundled("contact.html"), "after the 304");
        // And a second 304 in a row on the same connection.
        stream.write_all(raw.as_bytes()).unwrap();
        let again = read_response_optional_length(&mut stream).expect("another 304");
        assert_not_modified(&again, &etag, &last_modified, path);
    }
}

#[test]
fn a_304_with_connection_close_is_followed_by_eof_and_nothing_else() {
    let server = TestServer::start(&[]);
    let (etag, _) = validators(&server, "/logo.png");
    let mut stream = server.connect();
    let raw = request_with_headers(&server, "GET", "/logo.png", &[("If-None-Match", &etag)], true);
    stream.write_all(raw.as_bytes()).unwrap();
    let response = common::read_response_head_only(&mut stream).expect("a 304");
    assert_eq!(response.status, 304, "{}", response.head);
    assert_eq!(response.header("Connection"), Some("close"));
    assert_eq!(read_to_eof(&mut stream), b"", "a 304 has no body");
}

#[test]
fn head_with_a_matching_if_none_match_is_304_too() {
    let server = TestServer::start(&[]);
    let (etag, last_modified) = validators(&server, "/sample.txt");
    let response = exchange_with(&server, "HEAD", "/sample.txt", &[("If-None-Match", &etag)]);
    assert_not_modified(&response, &etag, &last_modified, "HEAD");
}

#[test]
fn if_none_match_compares_weakly_and_takes_lists_and_the_asterisk() {
    let server = TestServer::start(&[]);
    let body = bundled("index.html");
    let (etag, last_modified) = validators(&server, "/index.html");
    let matching = [
        format!("W/{etag}"),
        "*".to_owned(),
        format!("\"other\", {etag}"),
        format!("\"a\",{etag},\"b\""),
        format!("W/\"other\", W/{etag}"),
    ];
    for value in &matching {
        let response = exchange_with(&server, "GET", "/index.html", &[("If-None-Match", value)]);
        assert_not_modified(&response, &etag, &last_modified, value);
    }
    let other = [
        "\"other\"".to_owned(),
        "\"a\", \"b\"".to_owned(),
        etag.trim_matches('"').to_owned(),
        format!("\"x{}", &etag[1..]),
    ];
    for value in &other {
        let response = exchange_with(&server, "GET", "/index.html", &[("If-None-Match", value)]);
        assert_ok(&response, &body, value);
    }
}

#[test]
fn if_none_match_lists_on_two_lines_are_one_list() {
    let server = TestServer::start(&[]);
    let (etag, last_modified) = validators(&server, "/about.html");
    let fields = [("If-None-Match", "\"other\""), ("If-None-Match", etag.as_str())];
    let response = exchange_with(&server, "GET", "/about.html", &fields);
    assert_not_modified(&response, &etag, &last_modified, "two lines");
}

/// Writes `name` into the root with its modification time `age` ago.
fn write_dated(server: &TestServer, name: &str, body: &[u8], age: Duration) {
    let path = server.root.join(name);
    std::fs::write(&path, body).unwrap();
    let file = std::fs::File::options().write(true).open(&path).unwrap();
    file.set_modified(SystemTime::now() - age).expect("set the modification time");
}

const TWO_DAYS: Duration = Duration::from_secs(2 * 24 * 3600);

#[test]
fn if_modified_since_is_304_unless_the_file_changed_after_the_date() {
    let server = TestServer::start(&[]);
    std::fs::write(server.root.join("fresh.html"), b"<p>written by the test</p>").unwrap();
    write_dated(&server, "old.html", b"<p>two days old</p>", TWO_DAYS);
    for path in ["/index.html", "/fresh.html", "/old.html"] {
        let body = std::fs::read(server.root.join(path.trim_start_matches('/'))).unwrap();
        let (etag, last_modified) = validators(&server, path);
        let mut not_modified = vec![last_modified.clone()];
        if path == "/old.html" {
            // A date after the change that is still in the past (a future date may count as invalid).
            not_modified.push(shifted(&last_modified, 24 * 3600));
        }
        for date in &not_modified {
            let response = exchange_with(&server, "GET", path, &[("If-Modified-Since", date)]);
            assert_not_modified(&response, &etag, &last_modified, &format!("{path} {date}"));
        }
        for date in
            [shifted(&last_modified, -3600), shifted(&last_modified, -1), "not a date".into()]
        {
            let response = exchange_with(&server, "GET", path, &[("If-Modified-Since", &date)]);
            assert_ok(&response, &body, &format!("{path} If-Modified-Since {date}"));
        }
    }
}

#[test]
fn if_none_match_decides_over_if_modified_since_both_ways() {
    let server = TestServer::start(&[]);
    let body = bundled("contact.html");
    let (etag, last_modified) = validators(&server, "/contact.html");
    // A tag that does not match: 200 although the date alone would give 304.
    let fields = [("If-None-Match", "\"other\""), ("If-Modified-Since", last_modified.as_str())];
    assert_ok(&exchange_with(&server, "GET", "/contact.html", &fields), &body, "other tag");
    // A matching tag: 304 although the date alone would give 200.
    let hour_before = shifted(&last_modified, -3600);
    let fields = [("If-None-Match", etag.as_str()), ("If-Modified-Since", hour_before.as_str())];
    let response = exchange_with(&server, "GET", "/contact.html", &fields);
    assert_not_modified(&response, &etag, &last_modified, "matching tag");
}

#[test]
fn if_match_compares_strongly_and_fails_with_412() {
    let server = TestServer::start(&[]);
    let body = bundled("sample.txt");
    let (etag, _) = validators(&server, "/sample.txt");
    for value in [etag.clone(), "*".into(), format!("\"other\", {etag}")] {
        let response = exchange_with(&server, "GET", "/sample.txt", &[("If-Match", &value)]);
        assert_ok(&response, &body, &format!("If-Match {value}"));
    }
    for value in [format!("W/{etag}"), "\"other\"".into(), "\"a\", W/\"b\"".into()] {
        let response = exchange_with(&server, "GET", "/sample.txt", &[("If-Match", &value)]);
        assert_precondition_failed(&response, &format!("If-Match {value}"));
    }
}

#[test]
fn if_unmodified_since_fails_with_412_only_when_the_file_is_newer() {
    let server = TestServer::start(&[]);
    write_dated(&server, "old.html", b"<p>old</p>", TWO_DAYS);
    let (_, last_modified) = validators(&server, "/old.html");
    let day_after = shifted(&last_modified, 24 * 3600);
    for date in [last_modified.clone(), day_after, "garbage".into()] {
        let response =
            exchange_with(&server, "GET", "/old.html", &[("If-Unmodified-Since", &date)]);
        assert_ok(&response, b"<p>old</p>", &format!("If-Unmodified-Since {date}"));
    }
    for date in [shifted(&last_modified, -3600), shifted(&last_modified, -1)] {
        let response =
            exchange_with(&server, "GET", "/old.html", &[("If-Unmodified-Since", &date)]);
        assert_precondition_failed(&response, &format!("If-Unmodified-Since {date}"));
    }
}

#[test]
fn if_match_decides_over_if_unmodified_since() {
    let server = TestServer::start(&[]);
    let (etag, last_modified) = validators(&server, "/about.html");
    let hour_before = shifted(&last_modified, -3600);
    let fields = [("If-Match", etag.as_str()), ("If-Unmodified-Since", hour_before.as_str())];
    let response = exchange_with(&server, "GET", "/about.html", &fields);
    assert_ok(&response, &bundled("about.html"), "matching If-Match");
}

#[test]
fn a_failed_if_match_or_if_unmodified_since_beats_a_304() {
    let server = TestServer::start(&[]);
    let (etag, last_modified) = validators(&server, "/index.html");
    let fields = [("If-Match", "\"other\""), ("If-None-Match", etag.as_str())];
    let response = exchange_with(&server, "GET", "/index.html", &fields);
    assert_precondition_failed(&response, "If-Match fails, If-None-Match matches");
    let hour_before = shifted(&last_modified, -3600);
    let fields = [
        ("If-Unmodified-Since", hour_before.as_str()),
        ("If-Modified-Since", last_modified.as_str()),
    ];
    let response = exchange_with(&server, "GET", "/index.html", &fields);
    assert_precondition_failed(&response, "If-Unmodified-Since fails, If-Modified-Since holds");
}

#[test]
fn a_412_keeps_the_connection_serving() {
    let server = TestServer::start(&[]);
    let mut stream = server.connect();
    let raw =
        request_with_headers(&server, "GET", "/index.html", &[("If-Match", "\"other\"")], false);
    stream.write_all(raw.as_bytes()).unwrap();
    let response = read_response(&mut stream).expect("a 412");
    assert_precondition_failed(&response, "If-Match");
    assert_eq!(response.header("Connection"), Some("keep-alive"), "{}", response.head);
    stream
        .write_all(request_with_headers(&server, "GET", "/sample.txt", &[], true).as_bytes())
        .unwrap();
    let next = read_response(&mut stream).expect("the response after the 412");
    assert_ok(&next, &bundled("sample.txt"), "after the 412");
}

#[test]
fn preconditions_are_checked_before_the_range() {
    let server = TestServer::start(&[]);
    write_big_png(&server);
    for path in ["/index.html", "/big.png"] {
        let (etag, last_modified) = validators(&server, path);
        let fields = [("Range", "bytes=0-9"), ("If-None-Match", etag.as_str())];
        let response = exchange_with(&server, "GET", path, &fields);
        assert_not_modified(&response, &etag, &last_modified, path);
        let fields = [("Range", "bytes=0-9"), ("If-Match", "\"other\"")];
        assert_precondition_failed(&exchange_with(&server, "GET", path, &fields), path);
        // A range past the end with a failing If-Match: the precondition is answered, not the range.
        let fields = [("Range", "bytes=99999999-"), ("If-Match", "\"other\"")];
        assert_precondition_failed(&exchange_with(&server, "GET", path, &fields), path);
        let fields = [("Range", "bytes=0-9"), ("If-Match", etag.as_str())];
        let response = exchange_with(&server, "GET", path, &fields);
        assert_eq!(response.status, 206, "{path}: {}", response.head);
        assert_eq!(response.body.len(), 10);
    }
}

#[test]
fn the_etag_changes_when_the_file_changes_and_old_tags_stop_matching() {
    let server = TestServer::start(&["--file-cache-window", "0"]);
    let page = server.root.join("news.html");
    std::fs::write(&page, b"first").unwrap();
    let (old_tag, _) = validators(&server, "/news.html");
    assert_not_modified(
        &exchange_with(&server, "GET", "/news.html", &[("If-None-Match", &old_tag)]),
        &old_tag,
        &validators(&server, "/news.html").1,
        "before the change",
    );
    // A different length changes the tag whatever the clock's resolution.
    std::fs::write(&page, b"second version").unwrap();
    let (new_tag, new_date) = validators(&server, "/news.html");
    assert_ne!(new_tag, old_tag);
    let response = exchange_with(&server, "GET", "/news.html", &[("If-None-Match", &old_tag)]);
    assert_ok(&response, b"second version", "the old tag");
    assert_eq!(response.header("ETag"), Some(new_tag.as_str()));
    let response = exchange_with(&server, "GET", "/news.html", &[("If-None-Match", &new_tag)]);
    assert_not_modified(&response, &new_tag, &new_date, "the new tag");
    let response = exchange_with(&server, "GET", "/news.html", &[("If-Match", &old_tag)]);
    assert_precondition_failed(&response, "If-Match with the old tag");
}

#[test]
fn cache_control_sets_the_header_of_200_206_and_304() {
    let server = TestServer::start(&["--cache-control", "max-age=60"]);
    let response = server.get("/index.html");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("Cache-Control"), Some("max-age=60"));
    let etag = response.header("ETag").unwrap().to_owned();
    let partial = exchange_with(&server, "GET", "/index.html", &[("Range", "bytes=0-4")]);
    assert_eq!(partial.status, 206, "{}", partial.head);
    assert_eq!(partial.header("Cache-Control"), Some("max-age=60"));
    let not_modified = exchange_with(&server, "GET", "/index.html", &[("If-None-Match", &etag)]);
    assert_eq!(not_modified.status, 304, "{}", not_modified.head);
    assert_eq!(not_modified.header("Cache-Control"), Some("max-age=60"));
    let head = exchange_with(&server, "HEAD", "/logo.png", &[]);
    assert_eq!(head.header("Cache-Control"), Some("max-age=60"));
}

/// Sends OPTIONS `target` on a keep-alive connection, checks the 204, then that the connection still serves.
fn assert_options(server: &TestServer, target: &str, allow: &str) {
    let mut stream = server.connect();
    let raw = request_with_headers(server, "OPTIONS", target, &[], false);
    stream.write_all(raw.as_bytes()).unwrap();
    let response = read_response_optional_length(&mut stream).expect("a response to OPTIONS");
    assert_eq!(response.status, 204, "OPTIONS {target}: {}", response.head);
    assert_eq!(response.header("Allow"), Some(allow), "OPTIONS {target}");
    assert_eq!(response.header("Content-Length"), None, "OPTIONS {target}: a 204 has none");
    assert_eq!(response.header("Connection"), Some("keep-alive"), "OPTIONS {target}");
    stream
        .write_all(request_with_headers(server, "GET", "/sample.txt", &[], true).as_bytes())
        .unwrap();
    let next = read_response(&mut stream).expect("the response after OPTIONS");
    assert_ok(&next, &bundled("sample.txt"), &format!("after OPTIONS {target}"));
}

#[test]
fn options_on_a_file_is_204_allowing_get_head_and_options() {
    let server = TestServer::start(&[]);
    for target in ["/index.html", "/", "/logo.png", "/index.html?x=1"] {
        assert_options(&server, target, "GET, HEAD, OPTIONS");
    }
}

#[test]
fn options_on_the_upload_endpoint_is_204_allowing_post_and_options() {
    let server = TestServer::start(&[]);
    assert_options(&server, "/upload", "POST, OPTIONS");
}

#[test]
fn options_asterisk_is_204_allowing_every_method_and_other_methods_may_not_use_it() {
    let server = TestServer::start(&[]);
    assert_options(&server, "*", "GET, HEAD, POST, OPTIONS");
    let response = exchange_with(&server, "GET", "*", &[]);
    assert_eq!(response.status, 400, "GET *: {}", response.head);
}

#[test]
fn method_not_allowed_lists_options_in_allow() {
    let server = TestServer::start(&[]);
    let cases = [
        ("DELETE", "/index.html", "GET, HEAD, OPTIONS"),
        ("PUT", "/logo.png", "GET, HEAD, OPTIONS"),
        ("GET", "/upload", "POST, OPTIONS"),
        ("HEAD", "/upload", "POST, OPTIONS"),
        ("DELETE", "/upload", "POST, OPTIONS"),
    ];
    for (method, target, allow) in cases {
        let response = exchange_with(&server, method, target, &[]);
        assert_eq!(response.status, 405, "{method} {target}: {}", response.head);
        assert_eq!(response.header("Allow"), Some(allow), "{method} {target}");
    }
}

#[test]
fn a_file_dated_before_1970_is_served_with_the_earliest_http_date() {
    let server = TestServer::start(&[]);
    let page = server.root.join("old.html");
    std::fs::write(&page, "old").unwrap();
    let file = std::fs::File::options().write(true).open(&page).unwrap();
    let before_epoch =
        std::time::SystemTime::UNIX_EPOCH - std::time::Duration::from_secs(10 * 365 * 86_400);
    file.set_modified(before_epoch).unwrap();
    for _ in 0..2 {
        // The second request is answered from the cache, whose validators are made on the loop.
        let response = server.get("/old.html");
        assert_eq!(response.status, 200, "{}", response.head);
        assert_eq!(response.header("Last-Modified"), Some("Thu, 01 Jan 1970 00:00:00 GMT"));
        assert_eq!(response.body, b"old");
    }
    assert_eq!(server.get("/index.html").status, 200, "the server is still up");
}
