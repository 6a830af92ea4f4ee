//! Byte ranges (RFC 9110 §14): single and multipart 206 responses, 416, ignored Range values, If-Range,
//! and curl resuming a download; on small files (from memory and from disk) and on a 10 MiB streamed file.

mod common;

use common::{
    bundled, curl, exchange_with, random_bytes, read_response, read_response_head_only,
    request_with_headers, Response, TestServer,
};
use std::io::Write;
use std::time::{Duration, SystemTime};

/// Size of the generated large download: far over the in-memory cache limit and many worker chunks.
const BIG_LEN: usize = 10 * 1024 * 1024;

/// Writes a 10 MiB random `.png` into the server's root as `big.png` and returns its contents.
fn write_big_png(server: &TestServer) -> Vec<u8> {
    let data = random_bytes(BIG_LEN, 0x5eed_0fb1_6f11);
    std::fs::write(server.root.join("big.png"), &data).expect("write big.png");
    data
}

/// A GET of `path` with this `Range`, on a fresh connection.
fn get_range(server: &TestServer, path: &str, range: &str) -> Response {
    exchange_with(server, "GET", path, &[("Range", range)])
}

/// Whether two byte strings are equal, without printing megabytes when they are not.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a == b
}

/// Asserts a single-part 206 carrying exactly `file[start..=end]`.
fn assert_single_part(response: &Response, file: &[u8], start: usize, end: usize, what: &str) {
    assert_eq!(response.status, 206, "{what}: {}", response.head);
    let content_range = format!("bytes {start}-{end}/{}", file.len());
    assert_eq!(response.header("Content-Range"), Some(content_range.as_str()), "{what}");
    let len = (end - start + 1).to_string();
    assert_eq!(response.header("Content-Length"), Some(len.as_str()), "{what}");
    assert_eq!(response.header("Accept-Ranges"), Some("bytes"), "{what}");
    assert!(
        !response.header("Content-Type").unwrap_or("").starts_with("multipart/"),
        "{what}: one range is not multipart: {}",
        response.head
    );
    assert!(same_bytes(&response.body, &file[start..=end]), "{what}: wrong bytes");
}

/// Asserts a full 200 carrying the whole file and no Content-Range.
fn assert_full(response: &Response, file: &[u8], what: &str) {
    assert_eq!(response.status, 200, "{what}: {}", response.head);
    assert_eq!(response.header("Content-Range"), None, "{what}");
    let len = file.len().to_string();
    assert_eq!(response.header("Content-Length"), Some(len.as_str()), "{what}");
    assert!(same_bytes(&response.body, file), "{what}: body differs from the file");
}

/// Single-range forms and the inclusive span each one names in a file of `len` bytes.
fn single_range_cases(len: usize) -> Vec<(String, usize, usize)> {
    vec![
        ("bytes=0-99".into(), 0, 99),
        ("bytes=100-".into(), 100, len - 1),
        ("bytes=-50".into(), len - 50, len - 1),
        ("bytes=0-0".into(), 0, 0),
        ("bytes=0-".into(), 0, len - 1),
        (format!("bytes={0}-{0}", len - 1), len - 1, len - 1),
        (format!("bytes={}-", len - 1), len - 1, len - 1),
        ("bytes=-1".into(), len - 1, len - 1),
        // A last position past the end is clipped, and a suffix longer than the file is all of it.
        (format!("bytes={}-{}", len - 10, len + 1000), len - 10, len - 1),
        (format!("bytes=-{}", len + 5000), 0, len - 1),
        (format!("bytes=7-{}", len / 2), 7, len / 2),
    ]
}

fn check_single_ranges(
    server: &TestServer,
    path: &str,
    file: &[u8],
    extra: &[(String, usize, usize)],
) {
    for (range, start, end) in single_range_cases(file.len()).iter().chain(extra) {
        let response = get_range(server, path, range);
        assert_single_part(&response, file, *start, *end, &format!("{path} {range}"));
    }
}

#[test]
fn every_single_range_form_on_a_small_file_served_from_memory_is_byte_exact() {
    let server = TestServer::start(&["--file-cache-window", "60"]);
    let file = bundled("index.html");
    // A plain GET reads the small file whole and keeps it in memory for the requests after it.
    assert_full(&server.get("/index.html"), &file, "priming GET");
    check_single_ranges(&server, "/index.html", &file, &[]);
    assert!(server.log_contains("serving index.html from memory"), "{}", server.log());
}

#[test]
fn every_single_range_form_on_a_small_file_read_from_disk_is_byte_exact() {
    let server = TestServer::start(&["--file-cache-window", "0"]);
    let file = bundled("index.html");
    check_single_ranges(&server, "/index.html", &file, &[]);
    assert!(
        !server.log().contains("from memory"),
        "nothing may come from memory: {}",
        server.log()
    );
}

#[test]
fn every_single_range_form_on_a_ten_mib_file_is_byte_exact() {
    let server = TestServer::start(&[]);
    let file = write_big_png(&server);
    // Spans that start and end inside worker chunks (64 KiB) and cross many of them.
    let extra = [
        ("bytes=65530-65545".to_owned(), 65530, 65545),
        ("bytes=5000000-5300000".to_owned(), 5_000_000, 5_300_000),
        ("bytes=-3000000".to_owned(), BIG_LEN - 3_000_000, BIG_LEN - 1),
        ("bytes=65536-".to_owned(), 65536, BIG_LEN - 1),
    ];
    check_single_ranges(&server, "/big.png", &file, &extra);
}

#[test]
fn a_last_position_too_large_for_64_bits_is_the_whole_file_as_206() {
    let server = TestServer::start(&["--file-cache-window", "60"]);
    let small = bundled("sample.txt");
    let big = write_big_png(&server);
    assert_full(&server.get("/sample.txt"), &small, "priming GET");
    for (path, file) in [("/sample.txt", &small), ("/big.png", &big)] {
        let response = get_range(&server, path, "bytes=0-99999999999999999999");
        assert_single_part(&response, file, 0, file.len() - 1, path);
    }
}

#[test]
fn a_range_that_starts_past_the_end_is_416_with_the_length_in_content_range() {
    let server = TestServer::start(&[]);
    let small_len = bundled("index.html").len();
    write_big_png(&server);
    let cases = [
        ("/index.html", format!("bytes={small_len}-"), small_len),
        ("/index.html", format!("bytes={}-{}", small_len + 10, small_len + 20), small_len),
        ("/index.html", "bytes=-0".to_owned(), small_len),
        ("/index.html", format!("bytes={small_len}-, {}-", small_len + 5), small_len),
        ("/index.html", "bytes=99999999999999999999-".to_owned(), small_len),
        ("/big.png", format!("bytes={BIG_LEN}-"), BIG_LEN),
        ("/big.png", "bytes=20000000-20000099".to_owned(), BIG_LEN),
    ];
    for (path, range, len) in cases {
        let response = get_range(&server, path, &range);
        assert_eq!(response.status, 416, "{path} {range}: {}", response.head);
        let content_range = format!("bytes */{len}");
        assert_eq!(
            response.header("Content-Range"),
            Some(content_range.as_str()),
            "{path} {range}"
        );
        let json: serde_json::Value = serde_json::from_slice(&response.body)
            .unwrap_or_else(|e| panic!("{path} {range}: 416 body is not JSON ({e})"));
        assert_eq!(json["status"], 416, "{json}");
    }
}

#[test]
fn one_satisfiable_range_among_unsatisfiable_ones_is_served_alone() {
    let server = TestServer::start(&[]);
    let file = bundled("about.html");
    let range = format!("bytes=5-9, {}-{}", file.len() + 1, file.len() + 100);
    let response = get_range(&server, "/about.html", &range);
    assert_single_part(&response, &file, 5, 9, &range);
}

#[test]
fn a_416_keeps_the_connection_serving() {
    let server = TestServer::start(&[]);
    let mut stream = server.connect();
    let len = bundled("index.html").len();
    let range = format!("bytes={len}-");
    let raw = request_with_headers(&server, "GET", "/index.html", &[("Range", &range)], false);
    stream.write_all(raw.as_bytes()).unwrap();
    let response = read_response(&mut stream).expect("a 416");
    assert_eq!(response.status, 416, "{}", response.head);
    assert_eq!(response.header("Connection"), Some("keep-alive"), "{}", response.head);
    let again =
        request_with_headers(&server, "GET", "/index.html", &[("Range", "bytes=0-3")], true);
    stream.write_all(again.as_bytes()).unwrap();
    let next = read_response(&mut stream).expect("the response after the 416");
    assert_eq!((next.status, next.body.as_slice()), (206, &bundled("index.html")[..4]));
}

#[test]
fn a_malformed_or_foreign_range_is_ignored_and_the_whole_file_sent() {
    let server = TestServer::start(&[]);
    let small = bundled("contact.html");
    let big = write_big_png(&server);
    let malformed = [
        "bytes=5-1",
        "bytes=a-b",
        "bytes=1",
        "bytes=-",
        "bytes=--1",
        "bytes=+1-2",
        "bytes=",
        "bytes=0-1;x",
        "bytes=0-1,x",
        "items=0-1",
        "0-1",
        "",
    ];
    for range in malformed {
        assert_full(&get_range(&server, "/contact.html", range), &small, range);
    }
    for range in ["bytes=9-2", "lines=1-2"] {
        assert_full(&get_range(&server, "/big.png", range), &big, range);
    }
}

#[test]
fn head_with_or_without_a_range_has_the_get_head_and_no_body() {
    let server = TestServer::start(&[]);
    write_big_png(&server);
    for path in ["/index.html", "/logo.png", "/big.png"] {
        for range in [None, Some("bytes=10-19"), Some("bytes=-100"), Some("bytes=0-1,50-60")] {
            let fields: Vec<(&str, &str)> = range.map(|r| ("Range", r)).into_iter().collect();
            let what = format!("{path} {range:?}");
            let get = exchange_with(&server, "GET", path, &fields);
            let mut stream = server.connect();
            // HEAD, then a GET on the same connection: body bytes after the HEAD would break the second.
            let head = request_with_headers(&server, "HEAD", path, &fields, false);
            stream.write_all(head.as_bytes()).unwrap();
            let response = read_response_head_only(&mut stream).expect("a HEAD response");
            let expected_status = if range.is_some() { 206 } else { 200 };
            assert_eq!(response.status, expected_status, "{what}: {}", response.head);
            assert_eq!(get.status, expected_status, "{what}: {}", get.head);
            for name in ["Content-Length", "Content-Range", "Content-Type", "ETag", "Accept-Ranges"]
            {
                assert_eq!(response.header(name), get.header(name), "{what}: {name}");
            }
            assert_eq!(
                response.header("Content-Length"),
                Some(get.body.len().to_string().as_str()),
                "{what}"
            );
            let then = request_with_headers(&server, "GET", "/sample.txt", &[], true);
            stream.write_all(then.as_bytes()).unwrap();
            let next = read_response(&mut stream).expect("the response after HEAD");
            assert_eq!(next.body, bundled("sample.txt"), "HEAD {what} sent body bytes");
        }
    }
}

/// One part of a `multipart/byteranges` body.
#[derive(Debug)]
struct Part {
    content_type: String,
    /// Inclusive first and last positions, and the file length, from the part's Content-Range.
    range: (usize, usize, usize),
    bytes: Vec<u8>,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The boundary of a multipart/byteranges response.
fn boundary_of(response: &Response) -> String {
    let content_type =
        response.header("Content-Type").unwrap_or_else(|| panic!("{}", response.head));
    let boundary = content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("not multipart/byteranges: {}", response.head));
    assert!(!boundary.is_empty() && boundary.len() <= 70, "boundary {boundary:?}");
    boundary.trim_matches('"').to_owned()
}

/// Parses a `multipart/byteranges` body (RFC 9110 §14.6, RFC 2046 §5.1) into its parts: each part's data is
/// exactly as long as its Content-Range says, followed by the next delimiter, and the body ends with the
/// close delimiter. Also checks the boundary occurs nowhere but in the delimiters.
fn parse_multipart(body: &[u8], boundary: &str) -> Vec<Part> {
    let dash_boundary = format!("--{boundary}");
    let delimiter = format!("\r\n--{boundary}");
    let mut rest = body.strip_prefix(b"\r\n").unwrap_or(body);
    rest = rest
        .strip_prefix(format!("{dash_boundary}\r\n").as_bytes())
        .unwrap_or_else(|| panic!("body does not open with the boundary: {:?}", lossy(body)));
    let mut parts = Vec::new();
    loop {
        let head_end = find(rest, b"\r\n\r\n").expect("a part head");
        let head = std::str::from_utf8(&rest[..head_end]).expect("ASCII part head");
        let mut content_type = None;
        let mut content_range = None;
        for line in head.split("\r\n") {
            let (name, value) = line.split_once(':').expect("a part header line");
            if name.eq_ignore_ascii_case("Content-Type") {
                content_type = Some(value.trim().to_owned());
            } else if name.eq_ignore_ascii_case("Content-Range") {
                content_range = Some(value.trim().to_owned());
            }
        }
        let content_range =
            content_range.unwrap_or_else(|| panic!("part without Content-Range: {head}"));
        let range = parse_content_range(&content_range);
        let data = &rest[head_end + 4..];
        let n = range.1 - range.0 + 1;
        assert!(data.len() >= n, "part {content_range} cut short");
        parts.push(Part {
            content_type: content_type
                .unwrap_or_else(|| panic!("part without Content-Type: {head}")),
            range,
            bytes: data[..n].to_vec(),
        });
        rest = data[n..]
            .strip_prefix(delimiter.as_bytes())
            .unwrap_or_else(|| panic!("no delimiter after part {content_range}"));
        if let Some(after) = rest.strip_prefix(b"--") {
            assert_eq!(lossy(after), "\r\n", "after the close delimiter");
            break;
        }
        rest = rest.strip_prefix(b"\r\n").expect("CRLF after a delimiter");
    }
    let mut occurrences = 0;
    let mut scan = body;
    while let Some(at) = find(scan, dash_boundary.as_bytes()) {
        occurrences += 1;
        scan = &scan[at + dash_boundary.len()..];
    }
    assert_eq!(occurrences, parts.len() + 1, "the boundary also occurs inside the data");
    parts
}

/// `bytes a-b/len` → (a, b, len).
fn parse_content_range(value: &str) -> (usize, usize, usize) {
    let spec = value.strip_prefix("bytes ").unwrap_or_else(|| panic!("Content-Range {value:?}"));
    let (span, len) = spec.split_once('/').unwrap_or_else(|| panic!("Content-Range {value:?}"));
    let (a, b) = span.split_once('-').unwrap_or_else(|| panic!("Content-Range {value:?}"));
    let number = |s: &str| s.parse::<usize>().unwrap_or_else(|_| panic!("Content-Range {value:?}"));
    (number(a), number(b), number(len))
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(400)]).into_owned()
}

/// Asserts a multipart 206 whose parts are exactly `spans` of `file`, in order, each typed `part_type`.
fn assert_multipart(
    response: &Response,
    file: &[u8],
    spans: &[(usize, usize)],
    part_type: &str,
    what: &str,
) {
    assert_eq!(response.status, 206, "{what}: {}", response.head);
    assert_eq!(response.header("Content-Range"), None, "{what}: a multipart 206 has none");
    let declared = response.header("Content-Length").expect("Content-Length");
    assert_eq!(declared, response.body.len().to_string(), "{what}");
    let parts = parse_multipart(&response.body, &boundary_of(response));
    let got: Vec<(usize, usize)> = parts.iter().map(|p| (p.range.0, p.range.1)).collect();
    assert_eq!(got, spans, "{what}: parts");
    for part in &parts {
        let (start, end, len) = part.range;
        assert_eq!(len, file.len(), "{what}: length in Content-Range");
        assert_eq!(part.content_type, part_type, "{what}: part {start}-{end}");
        assert!(same_bytes(&part.bytes, &file[start..=end]), "{what}: part {start}-{end} bytes");
    }
}

#[test]
fn several_ranges_are_a_multipart_body_whose_parts_parse_back_byte_exact() {
    let server = TestServer::start(&["--file-cache-window", "60"]);
    let index = bundled("index.html");
    let big = write_big_png(&server);
    assert_full(&server.get("/index.html"), &index, "priming GET");
    let n = index.len();
    let small_cases = [
        ("bytes=0-9,100-199,-10".to_owned(), vec![(0, 9), (100, 199), (n - 10, n - 1)]),
        ("bytes=500-,0-0".to_owned(), vec![(0, 0), (500, n - 1)]),
        (format!("bytes=1-2, {}-{}", n - 2, n + 50), vec![(1, 2), (n - 2, n - 1)]),
    ];
    for (range, spans) in &small_cases {
        let response = get_range(&server, "/index.html", range);
        assert_multipart(&response, &index, spans, "text/html; charset=utf-8", range);
    }
    assert!(server.log_contains("serving index.html from memory"), "{}", server.log());
    let big_cases = [
        (
            "bytes=0-9,65530-65545,-10".to_owned(),
            vec![(0, 9), (65530, 65545), (BIG_LEN - 10, BIG_LEN - 1)],
        ),
        (
            "bytes=1000000-1999999,8000000-8099999".to_owned(),
            vec![(1_000_000, 1_999_999), (8_000_000, 8_099_999)],
        ),
    ];
    for (range, spans) in &big_cases {
        let response = get_range(&server, "/big.png", range);
        assert_multipart(&response, &big, spans, "application/octet-stream", range);
    }
}

#[test]
fn multipart_ranges_of_a_small_file_read_from_disk_parse_back_byte_exact() {
    let server = TestServer::start(&["--file-cache-window", "0"]);
    let file = bundled("photo.jpg");
    let n = file.len();
    let response = get_range(&server, "/photo.jpg", "bytes=-100,0-99,1000-1099");
    let spans = [(0, 99), (1000, 1099), (n - 100, n - 1)];
    assert_multipart(&response, &file, &spans, "application/octet-stream", "photo.jpg");
}

/// A Range of `count` one-byte parts `spacing` apart, starting at `first`.
fn spaced_parts(count: usize, first: usize, spacing: usize) -> (String, Vec<(usize, usize)>) {
    let spans: Vec<(usize, usize)> =
        (0..count).map(|i| (first + i * spacing, first + i * spacing)).collect();
    let specs: Vec<String> = spans.iter().map(|(a, b)| format!("{a}-{b}")).collect();
    (format!("bytes={}", specs.join(",")), spans)
}

#[test]
fn sixteen_parts_are_served_but_seventeen_separate_ones_get_the_whole_file() {
    let server = TestServer::start(&[]);
    let small = bundled("index.html");
    let big = write_big_png(&server);
    for (path, file, spacing, part_type) in [
        ("/index.html", &small, 60, "text/html; charset=utf-8"),
        ("/big.png", &big, 600_000, "application/octet-stream"),
    ] {
        let (sixteen, spans) = spaced_parts(16, 3, spacing);
        assert_multipart(&get_range(&server, path, &sixteen), file, &spans, part_type, path);
        let (seventeen, _) = spaced_parts(17, 3, spacing);
        let response = get_range(&server, path, &seventeen);
        assert_full(&response, file, &format!("{path} 17 parts"));
        assert_eq!(
            response.header("Content-Type").map(|t| t.starts_with("multipart/")),
            Some(false)
        );
    }
}

#[test]
fn seventeen_ranges_that_merge_into_sixteen_parts_are_served() {
    let server = TestServer::start(&[]);
    let file = bundled("index.html");
    let (sixteen, mut spans) = spaced_parts(16, 3, 60);
    // One more range adjacent to the first part: still sixteen parts once merged.
    let range = format!("{sixteen},4-6");
    spans[0] = (3, 6);
    let response = get_range(&server, "/index.html", &range);
    assert_multipart(&response, &file, &spans, "text/html; charset=utf-8", &range);
}

#[test]
fn overlapping_and_adjacent_ranges_are_merged_and_sorted() {
    let server = TestServer::start(&[]);
    let small = bundled("index.html");
    let big = write_big_png(&server);
    for (path, file) in [("/index.html", &small), ("/big.png", &big)] {
        // Merged into one span, so a plain 206 rather than multipart.
        for (range, start, end) in [
            ("bytes=0-99,50-149", 0, 149),
            ("bytes=0-9,10-19", 0, 19),
            ("bytes=100-199,0-150", 0, 199),
            ("bytes=20-30,20-30,25-26", 20, 30),
        ] {
            assert_single_part(
                &get_range(&server, path, range),
                file,
                start,
                end,
                &format!("{path} {range}"),
            );
        }
        let range = "bytes=500-599,0-9,5-20,550-700";
        let response = get_range(&server, path, range);
        let part_type = if path == "/big.png" {
            "application/octet-stream"
        } else {
            "text/html; charset=utf-8"
        };
        assert_multipart(&response, file, &[(0, 20), (500, 700)], part_type, range);
    }
}

#[test]
fn a_range_of_a_download_keeps_its_content_disposition() {
    let server = TestServer::start(&[]);
    let logo = bundled("logo.png");
    let big = write_big_png(&server);
    for (path, name, file) in [("/logo.png", "logo.png", &logo), ("/big.png", "big.png", &big)] {
        let disposition = format!("attachment; filename=\"{name}\"");
        let single = get_range(&server, path, "bytes=10-20");
        assert_single_part(&single, file, 10, 20, path);
        assert_eq!(single.header("Content-Type"), Some("application/octet-stream"), "{path}");
        assert_eq!(single.header("Content-Disposition"), Some(disposition.as_str()), "{path}");
        let multi = get_range(&server, path, "bytes=0-1,100-101");
        assert_multipart(&multi, file, &[(0, 1), (100, 101)], "application/octet-stream", path);
        assert_eq!(multi.header("Content-Disposition"), Some(disposition.as_str()), "{path}");
    }
}

#[test]
fn range_responses_from_disk_keep_their_framing_on_one_keep_alive_connection() {
    let server = TestServer::start(&[]);
    let big = write_big_png(&server);
    let mut stream = server.connect();
    let requests = [
        ("bytes=100-70099", 100, 70_099),
        ("bytes=-65537", BIG_LEN - 65_537, BIG_LEN - 1),
        ("bytes=0-0", 0, 0),
    ];
    for (range, start, end) in requests {
        let raw = request_with_headers(&server, "GET", "/big.png", &[("Range", range)], false);
        stream.write_all(raw.as_bytes()).unwrap();
        let response = read_response(&mut stream).expect("a 206");
        assert_single_part(&response, &big, start, end, range);
    }
    let raw = request_with_headers(&server, "GET", "/big.png", &[("Range", "bytes=0-1,-2")], true);
    stream.write_all(raw.as_bytes()).unwrap();
    let response = read_response(&mut stream).expect("a multipart 206");
    assert_multipart(
        &response,
        &big,
        &[(0, 1), (BIG_LEN - 2, BIG_LEN - 1)],
        "application/octet-stream",
        "last",
    );
}

/// The validators of a file, from a plain GET.
fn validators(server: &TestServer, path: &str) -> (String, String) {
    let response = exchange_with(server, "HEAD", path, &[]);
    assert_eq!(response.status, 200, "{}", response.head);
    let etag = response.header("ETag").expect("ETag").to_owned();
    let last_modified = response.header("Last-Modified").expect("Last-Modified").to_owned();
    (etag, last_modified)
}

fn an_hour_before(date: &str) -> String {
    let time = httpdate::parse_http_date(date).expect("an HTTP date");
    httpdate::fmt_http_date(time - Duration::from_secs(3600))
}

#[test]
fn if_range_with_the_current_etag_or_date_gets_the_range_and_a_stale_one_the_whole_file() {
    let server = TestServer::start(&["--file-cache-window", "60"]);
    let small = bundled("sample.txt");
    let big = write_big_png(&server);
    assert_full(&server.get("/sample.txt"), &small, "priming GET");
    for (path, file) in [("/sample.txt", &small), ("/big.png", &big)] {
        let (etag, last_modified) = validators(&server, path);
        let fresh = [etag.clone(), last_modified.clone()];
        for if_range in &fresh {
            let response = exchange_with(
                &server,
                "GET",
                path,
                &[("Range", "bytes=3-12"), ("If-Range", if_range)],
            );
            assert_single_part(&response, file, 3, 12, &format!("{path} If-Range {if_range}"));
        }
        let weak = format!("W/{etag}");
        let stale = [
            "\"not-the-current-tag\"".to_owned(),
            weak,
            an_hour_before(&last_modified),
            httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3600)),
        ];
        for if_range in &stale {
            let response = exchange_with(
                &server,
                "GET",
                path,
                &[("Range", "bytes=3-12"), ("If-Range", if_range)],
            );
            assert_full(&response, file, &format!("{path} If-Range {if_range}"));
        }
        // If-Range without a Range changes nothing.
        let response = exchange_with(&server, "GET", path, &[("If-Range", &etag)]);
        assert_full(&response, file, &format!("{path} If-Range alone"));
    }
}

#[test]
fn if_range_with_an_etag_from_before_the_file_changed_gets_the_new_whole_file() {
    let server = TestServer::start(&["--file-cache-window", "0"]);
    let path = server.root.join("notes.txt");
    std::fs::write(&path, b"the first version of the notes").unwrap();
    let (old_tag, _) = validators(&server, "/notes.txt");
    let new = b"the second, longer version of the notes".to_vec();
    std::fs::write(&path, &new).unwrap();
    let response = exchange_with(
        &server,
        "GET",
        "/notes.txt",
        &[("Range", "bytes=0-2"), ("If-Range", &old_tag)],
    );
    assert_full(&response, &new, "stale If-Range");
    assert_ne!(response.header("ETag"), Some(old_tag.as_str()));
}

#[test]
fn curl_resumes_a_half_downloaded_ten_mib_file_to_a_byte_identical_copy() {
    let server = TestServer::start(&[]);
    let big = write_big_png(&server);
    let out_file = std::env::temp_dir().join(format!("{}-big.png", uuid::Uuid::new_v4().simple()));
    std::fs::write(&out_file, &big[..BIG_LEN / 2]).expect("write the first half");
    let url = format!("http://{}/big.png", server.host());
    let out_path = out_file.to_str().unwrap();
    let result = curl(&["-s", "-C", "-", "-w", "%{http_code}", "-o", out_path, &url]);
    let downloaded = std::fs::read(&out_file);
    let _ = std::fs::remove_file(&out_file);
    let Some(out) = result else {
        eprintln!("curl not installed: the resume test was skipped");
        return;
    };
    assert!(out.status.success(), "curl failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "206", "curl must have resumed with a range");
    let downloaded = downloaded.expect("curl left the file");
    assert_eq!(downloaded.len(), BIG_LEN);
    let first_difference = downloaded.iter().zip(&big).position(|(a, b)| a != b);
    assert_eq!(first_difference, None, "the resumed copy differs from the file");
}
