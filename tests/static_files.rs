//! Static file serving: content types, downloads, large files, HEAD, error statuses and curl interop.

mod common;

use common::{
    bundled, close_request, curl, exchange, get_request, random_bytes, read_response,
    read_response_head_only, read_to_eof, Response, TestServer,
};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Size of the generated large download.
const BIG_LEN: usize = 10 * 1024 * 1024;

/// Writes a 10 MiB random `.png` into the server's root and returns its contents.
fn write_big_png(server: &TestServer, name: &str) -> Vec<u8> {
    let data = random_bytes(BIG_LEN, 0x9e37_79b9_7f4a_7c15);
    std::fs::write(server.root.join(name), &data).expect("write big file");
    data
}

fn assert_json_error(response: &Response, status: u16) {
    assert_eq!(response.status, status, "{}", response.head);
    assert_eq!(response.header("Content-Type"), Some("application/json"), "{}", response.head);
    let json: serde_json::Value = serde_json::from_slice(&response.body)
        .unwrap_or_else(|e| panic!("error body is not JSON ({e}): {:?}", response.body));
    assert_eq!(json["status"], status, "{json}");
    assert!(json["error"].is_string(), "{json}");
}

fn temp_file(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{}-{name}", uuid::Uuid::new_v4().simple()))
}

#[test]
fn root_path_serves_index_html_as_html() {
    let server = TestServer::start(&[]);
    let response = server.get("/");
    assert_eq!(response.status, 200, "{}", response.head);
    assert_eq!(response.header("Content-Type"), Some("text/html; charset=utf-8"));
    assert_eq!(response.body, bundled("index.html"));
}

#[test]
fn html_pages_are_served_inline_with_the_html_content_type() {
    let server = TestServer::start(&[]);
    for name in ["index.html", "about.html", "contact.html"] {
        let response = server.get(&format!("/{name}"));
        assert_eq!(response.status, 200, "{name}: {}", response.head);
        assert_eq!(response.header("Content-Type"), Some("text/html; charset=utf-8"), "{name}");
        assert_eq!(response.header("Content-Disposition"), None, "{name} must be inline");
        assert_eq!(response.body, bundled(name), "{name}");
    }
}

#[test]
fn png_jpg_and_txt_files_download_byte_exact_as_attachments() {
    let server = TestServer::start(&[]);
    for name in ["logo.png", "photo.jpg", "sample.txt"] {
        let response = server.get(&format!("/{name}"));
        assert_eq!(response.status, 200, "{name}: {}", response.head);
        assert_eq!(response.header("Content-Type"), Some("application/octet-stream"), "{name}");
        let disposition = format!("attachment; filename=\"{name}\"");
        assert_eq!(response.header("Content-Disposition"), Some(disposition.as_str()), "{name}");
        let expected = bundled(name);
        assert_eq!(response.header("Content-Length"), Some(expected.len().to_string().as_str()));
        assert!(response.body == expected, "{name}: body differs from resources/{name}");
    }
}

#[test]
fn a_generated_ten_mib_png_downloads_byte_exact_over_raw_tcp() {
    let server = TestServer::start(&[]);
    let expected = write_big_png(&server, "big.png");
    let response = exchange(&server, close_request(&server, "GET", "/big.png").as_bytes());
    assert_eq!(response.status, 200, "{}", response.head);
    assert_eq!(response.header("Content-Length"), Some(BIG_LEN.to_string().as_str()));
    assert_eq!(response.header("Content-Disposition"), Some("attachment; filename=\"big.png\""));
    assert_eq!(response.body.len(), expected.len());
    let first_difference = response.body.iter().zip(&expected).position(|(a, b)| a != b);
    assert_eq!(first_difference, None, "the download differs from the file");
}

#[test]
fn head_sends_the_get_headers_without_a_body() {
    let server = TestServer::start(&[]);
    for path in ["/", "/about.html", "/logo.png", "/sample.txt"] {
        let get = server.get(path);
        let mut stream = server.connect();
        // HEAD then GET on one connection: if HEAD leaked body bytes, the second response would not parse.
        let head = format!("HEAD {path} HTTP/1.1\r\nHost: {}\r\n\r\n", server.host());
        let then_get = get_request(&server, "/contact.html");
        stream.write_all(head.as_bytes()).unwrap();
        let response = read_response_head_only(&mut stream).expect("a HEAD response");
        assert_eq!(response.status, 200, "{path}: {}", response.head);
        assert_eq!(response.header("Content-Length"), get.header("Content-Length"), "{path}");
        assert_eq!(response.header("Content-Type"), get.header("Content-Type"), "{path}");
        stream.write_all(then_get.as_bytes()).unwrap();
        let next = read_response(&mut stream).expect("the response after HEAD");
        assert_eq!(next.status, 200, "{path}: {}", next.head);
        assert_eq!(next.body, bundled("contact.html"), "HEAD {path} sent body bytes");
    }
}

#[test]
fn head_with_connection_close_is_followed_by_eof_and_no_body() {
    let server = TestServer::start(&[]);
    let mut stream = server.connect();
    stream.write_all(close_request(&server, "HEAD", "/photo.jpg").as_bytes()).unwrap();
    let response = read_response_head_only(&mut stream).expect("a HEAD response");
    assert_eq!(response.status, 200, "{}", response.head);
    let expected_len = bundled("photo.jpg").len().to_string();
    assert_eq!(response.header("Content-Length"), Some(expected_len.as_str()));
    assert_eq!(read_to_eof(&mut stream), b"", "HEAD must not send a body");
}

#[test]
fn a_missing_file_is_404_with_a_json_body() {
    let server = TestServer::start(&[]);
    let response = server.get("/no-such-page.html");
    assert_json_error(&response, 404);
}

#[test]
fn put_delete_and_other_known_methods_are_405_with_allow_get_head() {
    let server = TestServer::start(&[]);
    for method in ["PUT", "DELETE", "PATCH", "TRACE", "CONNECT"] {
        let response = exchange(&server, close_request(&server, method, "/index.html").as_bytes());
        assert_json_error(&response, 405);
        assert_eq!(
            response.header("Allow"),
            Some("GET, HEAD, OPTIONS"),
            "{method}: {}",
            response.head
        );
    }
}

#[test]
fn post_to_a_static_path_is_405_with_allow_get_head() {
    let server = TestServer::start(&[]);
    let raw = format!(
        "POST /index.html HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        server.host()
    );
    let response = exchange(&server, raw.as_bytes());
    assert_json_error(&response, 405);
    assert_eq!(response.header("Allow"), Some("GET, HEAD, OPTIONS"));
}

#[test]
fn an_unknown_method_is_501_and_the_connection_serves_on() {
    let server = TestServer::start(&[]);
    let mut stream = server.connect();
    let raw = format!(
        "BREW /index.html HTTP/1.1\r\nHost: {host}\r\n\r\nGET /sample.txt HTTP/1.1\r\nHost: {host}\r\n\r\n",
        host = server.host()
    );
    stream.write_all(raw.as_bytes()).unwrap();
    let response = read_response(&mut stream).expect("a response");
    assert_json_error(&response, 501);
    // No body, so the framing is intact and the connection carries on.
    assert_eq!(response.header("Connection"), Some("keep-alive"), "{}", response.head);
    assert_eq!(read_response(&mut stream).expect("a second response").status, 200);
}

#[test]
fn an_existing_file_with_an_unknown_extension_is_415_but_a_missing_one_is_404() {
    let server = TestServer::start(&[]);
    std::fs::write(server.root.join("x.xyz"), b"mystery bytes").unwrap();
    let existing = server.get("/x.xyz");
    assert_json_error(&existing, 415);
    let missing = server.get("/missing.xyz");
    assert_json_error(&missing, 404);
}

#[test]
fn a_folder_without_its_slash_redirects_and_one_without_an_index_is_404() {
    let server = TestServer::start(&[]);
    std::fs::create_dir(server.root.join("sub")).unwrap();
    std::fs::write(server.root.join("sub").join("page.html"), b"<p>sub</p>").unwrap();
    std::fs::create_dir(server.root.join("dir.html")).unwrap();
    std::fs::create_dir(server.root.join("dir.png")).unwrap();
    for (path, location) in
        [("/sub", "/sub/"), ("/dir.html", "/dir.html/"), ("/dir.png?a=1", "/dir.png/?a=1")]
    {
        let response = server.get(path);
        assert_eq!(response.status, 301, "{path}: {}", response.head);
        assert_eq!(response.header("Location"), Some(location), "{path}");
        assert_eq!(response.body, b"");
    }
    for path in ["/sub/", "/dir.html/", "/dir.png/"] {
        let response = server.get(path);
        assert_json_error(&response, 404);
    }
    // The file inside the directory is still reachable by its full path.
    assert_eq!(server.get("/sub/page.html").body, b"<p>sub</p>");
}

#[test]
fn a_file_name_starting_with_a_dot_is_404() {
    let server = TestServer::start(&[]);
    std::fs::write(server.root.join(".hidden.html"), b"DOTFILE-CONTENT-MARKER").unwrap();
    let response = server.get("/.hidden.html");
    assert_json_error(&response, 404);
    assert!(!String::from_utf8_lossy(&response.body).contains("DOTFILE-CONTENT-MARKER"));
}

#[test]
fn every_response_carries_date_server_and_content_length() {
    let server = TestServer::start(&[]);
    std::fs::write(server.root.join("x.xyz"), b"?").unwrap();
    let cases: &[(&str, &str, u16)] = &[
        ("GET", "/", 200),
        ("GET", "/logo.png", 200),
        ("HEAD", "/sample.txt", 200),
        ("GET", "/missing.html", 404),
        ("DELETE", "/index.html", 405),
        ("GET", "/x.xyz", 415),
        ("GET", "/../etc/passwd", 403),
        ("BREW", "/", 501),
    ];
    for &(method, path, status) in cases {
        let mut stream = server.connect();
        stream.write_all(close_request(&server, method, path).as_bytes()).unwrap();
        let response = if method == "HEAD" {
            read_response_head_only(&mut stream)
        } else {
            read_response(&mut stream)
        }
        .expect("a response");
        let what = format!("{method} {path}: {}", response.head);
        assert_eq!(response.status, status, "{what}");
        assert!(response.head.starts_with("HTTP/1.1 "), "{what}");
        let date = response.header("Date").unwrap_or_else(|| panic!("no Date: {what}"));
        assert!(httpdate::parse_http_date(date).is_ok(), "bad Date {date:?}: {what}");
        assert!(response.header("Server").is_some_and(|s| !s.is_empty()), "no Server: {what}");
        assert!(response.header("Content-Length").is_some(), "no Content-Length: {what}");
    }
}

#[test]
fn curl_downloads_a_file_byte_exact() {
    let server = TestServer::start(&[]);
    let out_file = temp_file("logo.png");
    let url = format!("http://{}/logo.png", server.host());
    let Some(out) = curl(&["-s", "-o", out_file.to_str().unwrap(), &url]) else {
        return;
    };
    let downloaded = std::fs::read(&out_file);
    let _ = std::fs::remove_file(&out_file);
    assert!(out.status.success(), "curl failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(downloaded.expect("curl wrote the file") == bundled("logo.png"));
}

#[test]
fn curl_head_request_shows_status_and_length() {
    let server = TestServer::start(&[]);
    let url = format!("http://{}/index.html", server.host());
    let Some(out) = curl(&["-sI", &url]) else {
        return;
    };
    assert!(out.status.success(), "curl failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 200"), "{text}");
    let length = format!("content-length: {}", bundled("index.html").len());
    assert!(text.contains(&length), "{text}");
    assert!(text.contains("content-type: text/html; charset=utf-8"), "{text}");
}

#[test]
fn curl_reuses_one_connection_for_two_urls() {
    let server = TestServer::start(&[]);
    let first = format!("http://{}/index.html", server.host());
    let second = format!("http://{}/about.html", server.host());
    let args = ["-v", "-s", "-o", "/dev/null", &first, "-o", "/dev/null", &second];
    let Some(out) = curl(&args) else { return };
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "curl failed: {stderr}");
    assert!(stderr.contains("Re-using existing connection"), "{stderr}");
}

#[test]
fn eight_concurrent_ten_mib_downloads_are_all_byte_exact_and_streamed() {
    let server = TestServer::start(&[]);
    let expected = Arc::new(write_big_png(&server, "big.png"));
    let rss_before = server.memory_kib("VmRSS");
    let raw = close_request(&server, "GET", "/big.png");
    std::thread::scope(|scope| {
        let downloads: Vec<_> = (0..8)
            .map(|i| {
                let (server, raw, expected) = (&server, &raw, Arc::clone(&expected));
                scope.spawn(move || {
                    let response = exchange(server, raw.as_bytes());
                    assert_eq!(response.status, 200, "download {i}: {}", response.head);
                    assert!(response.body == *expected, "download {i} differs from the file");
                })
            })
            .collect();
        for download in downloads {
            download.join().expect("download thread");
        }
    });
    // Reading each file whole would add 80 MiB at the peak; streaming holds a few chunks.
    let peak_growth_mib = server.memory_kib("VmHWM").saturating_sub(rss_before) / 1024;
    assert!(peak_growth_mib < 40, "peak RSS grew by {peak_growth_mib} MiB");
}

#[test]
fn a_changed_or_deleted_file_is_served_fresh_once_the_cache_window_passes() {
    let server = TestServer::start(&["--file-cache-window", "0.2"]);
    let page = server.root.join("news.html");
    std::fs::write(&page, "first").unwrap();
    assert_eq!(server.get("/news.html").body, b"first");
    assert_eq!(server.get("/news.html").body, b"first");
    std::fs::write(&page, "second version").unwrap();
    // Small files may be served from memory for up to the window after a worker read them.
    std::thread::sleep(Duration::from_millis(300));
    let response = server.get("/news.html");
    assert_eq!(response.body, b"second version");
    assert_eq!(response.header("Content-Length"), Some("14"));
    std::fs::remove_file(&page).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.get("/news.html").status, 404);
}

#[test]
fn within_the_cache_window_a_small_file_is_served_from_memory() {
    let server = TestServer::start(&["--file-cache-window", "60"]);
    let page = server.root.join("news.html");
    std::fs::write(&page, "first").unwrap();
    assert_eq!(server.get("/news.html").body, b"first");
    std::fs::remove_file(&page).unwrap();
    assert_eq!(server.get("/news.html").body, b"first", "the cached copy, not the disk");
}

#[test]
fn a_zero_cache_window_reads_every_request_from_disk() {
    let server = TestServer::start(&["--file-cache-window", "0"]);
    let page = server.root.join("news.html");
    std::fs::write(&page, "first").unwrap();
    assert_eq!(server.get("/news.html").body, b"first");
    std::fs::write(&page, "second").unwrap();
    assert_eq!(server.get("/news.html").body, b"second");
}

#[test]
fn a_file_named_as_a_folder_is_404_and_a_fragment_in_the_target_is_400() {
    let server = TestServer::start(&[]);
    assert_json_error(&server.get("/sample.txt/."), 404);
    assert_json_error(&server.get("/sample.txt/"), 404);
    assert_json_error(&server.get("/index.html#top"), 400);
    let upload = format!(
        "POST /upload#x HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\
         Connection: close\r\n\r\n{{}}",
        server.host()
    );
    assert_json_error(&exchange(&server, upload.as_bytes()), 400);
    let stored = std::fs::read_dir(server.root.join("uploads")).map_or(0, |d| d.count());
    assert_eq!(stored, 0, "nothing is stored for a target with a fragment");
}

#[test]
fn a_head_whose_lines_end_in_a_bare_lf_is_served() {
    let server = TestServer::start(&[]);
    let raw = format!("GET /sample.txt HTTP/1.1\nHost: {}\nConnection: close\n\n", server.host());
    let response = exchange(&server, raw.as_bytes());
    assert_eq!(response.status, 200, "{}", response.head);
    assert_eq!(response.body, bundled("sample.txt"));
}
