//! The MIME table over the wire: inline types with their real Content-Type, the original's downloads,
//! `--inline`, `--unknown-as-octet-stream`, and the query string never changing which file or type is served.

mod common;

use common::{bundled, exchange_with, random_bytes, Response, TestServer};

/// Extension → the Content-Type it is served inline with.
const INLINE: &[(&str, &str)] = &[
    ("htm", "text/html; charset=utf-8"),
    ("css", "text/css; charset=utf-8"),
    ("js", "text/javascript; charset=utf-8"),
    ("mjs", "text/javascript; charset=utf-8"),
    ("json", "application/json; charset=utf-8"),
    ("map", "application/json; charset=utf-8"),
    ("svg", "image/svg+xml; charset=utf-8"),
    ("ico", "image/x-icon"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("avif", "image/avif"),
    ("wasm", "application/wasm"),
    ("pdf", "application/pdf"),
    ("xml", "application/xml"),
    ("md", "text/markdown; charset=utf-8"),
    ("csv", "text/csv; charset=utf-8"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("ttf", "font/ttf"),
    ("mp3", "audio/mpeg"),
    ("mp4", "video/mp4"),
    ("webm", "video/webm"),
    ("ogg", "audio/ogg"),
    ("zip", "application/zip"),
    ("gz", "application/gzip"),
    ("tar", "application/x-tar"),
];

/// Writes `name` into the root with bytes unique to it and returns them.
fn write(server: &TestServer, name: &str) -> Vec<u8> {
    let seed = name.bytes().fold(17u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let data = random_bytes(300 + name.len(), seed);
    std::fs::write(server.root.join(name), &data).unwrap_or_else(|e| panic!("write {name}: {e}"));
    data
}

fn assert_inline(response: &Response, content_type: &str, body: &[u8], what: &str) {
    assert_eq!(response.status, 200, "{what}: {}", response.head);
    assert_eq!(response.header("Content-Type"), Some(content_type), "{what}");
    assert_eq!(response.header("Content-Disposition"), None, "{what} must be inline");
    assert!(response.body == body, "{what}: body differs from the file");
}

fn assert_download(response: &Response, name: &str, body: &[u8], what: &str) {
    assert_eq!(response.status, 200, "{what}: {}", response.head);
    assert_eq!(response.header("Content-Type"), Some("application/octet-stream"), "{what}");
    let disposition = format!("attachment; filename=\"{name}\"");
    assert_eq!(response.header("Content-Disposition"), Some(disposition.as_str()), "{what}");
    assert!(response.body == body, "{what}: body differs from the file");
}

fn assert_json_error(response: &Response, status: u16, what: &str) {
    assert_eq!(response.status, status, "{what}: {}", response.head);
    assert_eq!(response.header("Content-Type"), Some("application/json"), "{what}");
    let json: serde_json::Value = serde_json::from_slice(&response.body)
        .unwrap_or_else(|e| panic!("{what}: error body is not JSON ({e})"));
    assert_eq!(json["status"], status, "{what}: {json}");
}

#[test]
fn every_type_in_the_table_is_served_inline_with_its_content_type() {
    let server = TestServer::start(&[]);
    for (ext, content_type) in INLINE {
        let name = format!("asset.{ext}");
        let body = write(&server, &name);
        let response = server.get(&format!("/{name}"));
        assert_inline(&response, content_type, &body, &name);
        let head = exchange_with(&server, "HEAD", &format!("/{name}"), &[]);
        assert_eq!(head.header("Content-Type"), Some(*content_type), "HEAD {name}");
        assert_eq!(head.header("Content-Disposition"), None, "HEAD {name}");
    }
}

#[test]
fn html_is_inline_with_a_charset() {
    let server = TestServer::start(&[]);
    let response = server.get("/about.html");
    assert_inline(&response, "text/html; charset=utf-8", &bundled("about.html"), "about.html");
}

#[test]
fn an_upper_case_extension_maps_like_a_lower_case_one() {
    let server = TestServer::start(&[]);
    for (name, content_type) in [
        ("STYLE.CSS", "text/css; charset=utf-8"),
        ("Clip.Mp4", "video/mp4"),
        ("PAGE.HTML", "text/html; charset=utf-8"),
    ] {
        let body = write(&server, name);
        assert_inline(&server.get(&format!("/{name}")), content_type, &body, name);
    }
    let body = write(&server, "SHOT.PNG");
    assert_download(&server.get("/SHOT.PNG"), "SHOT.PNG", &body, "SHOT.PNG");
}

#[test]
fn only_the_last_extension_counts() {
    let server = TestServer::start(&[]);
    let body = write(&server, "page.html.gz");
    assert_inline(&server.get("/page.html.gz"), "application/gzip", &body, "page.html.gz");
    let body = write(&server, "archive.tar.html");
    assert_inline(&server.get("/archive.tar.html"), "text/html; charset=utf-8", &body, "tar.html");
}

#[test]
fn png_jpg_jpeg_and_txt_are_octet_stream_attachments_by_default() {
    let server = TestServer::start(&[]);
    for name in ["logo.png", "photo.jpg", "sample.txt"] {
        assert_download(&server.get(&format!("/{name}")), name, &bundled(name), name);
    }
    let body = write(&server, "picture.jpeg");
    assert_download(&server.get("/picture.jpeg"), "picture.jpeg", &body, "picture.jpeg");
    let head = exchange_with(&server, "HEAD", "/logo.png", &[]);
    assert_eq!(head.header("Content-Disposition"), Some("attachment; filename=\"logo.png\""));
}

#[test]
fn inline_serves_png_jpg_and_txt_with_their_real_types() {
    let server = TestServer::start(&["--inline"]);
    let cases = [
        ("logo.png", "image/png"),
        ("photo.jpg", "image/jpeg"),
        ("sample.txt", "text/plain; charset=utf-8"),
    ];
    for (name, content_type) in cases {
        assert_inline(&server.get(&format!("/{name}")), content_type, &bundled(name), name);
    }
    let body = write(&server, "picture.jpeg");
    assert_inline(&server.get("/picture.jpeg"), "image/jpeg", &body, "picture.jpeg");
    // The rest of the table is unchanged, and unknown types are still refused.
    assert_inline(
        &server.get("/index.html"),
        "text/html; charset=utf-8",
        &bundled("index.html"),
        "html",
    );
    let body = write(&server, "anim.gif");
    assert_inline(&server.get("/anim.gif"), "image/gif", &body, "anim.gif");
    write(&server, "x.xyz");
    assert_json_error(&server.get("/x.xyz"), 415, "x.xyz with --inline");
}

#[test]
fn a_range_of_an_inline_type_keeps_its_content_type() {
    let server = TestServer::start(&["--inline"]);
    let logo = bundled("logo.png");
    let response = exchange_with(&server, "GET", "/logo.png", &[("Range", "bytes=4-9")]);
    assert_eq!(response.status, 206, "{}", response.head);
    assert_eq!(response.header("Content-Type"), Some("image/png"));
    assert_eq!(response.header("Content-Disposition"), None);
    assert_eq!(response.body, &logo[4..=9]);
    let clip = write(&server, "clip.mp4");
    let response = exchange_with(&server, "GET", "/clip.mp4", &[("Range", "bytes=-10")]);
    assert_eq!(response.status, 206, "{}", response.head);
    assert_eq!(response.header("Content-Type"), Some("video/mp4"));
    assert_eq!(response.body, &clip[clip.len() - 10..]);
}

#[test]
fn an_unknown_extension_is_415_if_the_file_exists_and_404_if_not() {
    let server = TestServer::start(&[]);
    write(&server, "x.xyz");
    write(&server, "Makefile");
    assert_json_error(&server.get("/x.xyz"), 415, "x.xyz");
    assert_json_error(&server.get("/Makefile"), 415, "Makefile");
    assert_json_error(&server.get("/missing.xyz"), 404, "missing.xyz");
}

#[test]
fn unknown_as_octet_stream_serves_unknown_types_as_downloads() {
    let server = TestServer::start(&["--unknown-as-octet-stream"]);
    for name in ["x.xyz", "Makefile", "data.bin"] {
        let body = write(&server, name);
        assert_download(&server.get(&format!("/{name}")), name, &body, name);
    }
    assert_json_error(&server.get("/missing.xyz"), 404, "missing.xyz");
    // Known types keep their treatment.
    assert_inline(
        &server.get("/index.html"),
        "text/html; charset=utf-8",
        &bundled("index.html"),
        "html",
    );
    let body = write(&server, "style.css");
    assert_inline(&server.get("/style.css"), "text/css; charset=utf-8", &body, "style.css");
    assert_download(&server.get("/logo.png"), "logo.png", &bundled("logo.png"), "logo.png");
}

#[test]
fn with_inline_too_unknown_types_stay_downloads() {
    let server = TestServer::start(&["--inline", "--unknown-as-octet-stream"]);
    let body = write(&server, "x.xyz");
    assert_download(&server.get("/x.xyz"), "x.xyz", &body, "x.xyz");
    assert_inline(&server.get("/logo.png"), "image/png", &bundled("logo.png"), "logo.png");
}

#[test]
fn the_query_string_never_affects_which_file_or_type_is_served() {
    let server = TestServer::start(&[]);
    let html = bundled("index.html");
    for target in
        ["/index.html?x=1", "/index.html?", "/?page=about.html", "/index.html?a=b&c=d.png"]
    {
        assert_inline(&server.get(target), "text/html; charset=utf-8", &html, target);
    }
    let css = write(&server, "style.css");
    assert_inline(&server.get("/style.css?v=3"), "text/css; charset=utf-8", &css, "style.css?v=3");
    // The file name in Content-Disposition is the file's, not the query's.
    let logo = bundled("logo.png");
    assert_download(&server.get("/logo.png?name=evil.html"), "logo.png", &logo, "logo.png?query");
    assert_json_error(&server.get("/missing.html?x"), 404, "missing.html?x");
    assert_json_error(&server.get("/missing.html?/index.html"), 404, "missing.html?/index.html");
    // A known extension in the query does not make an unknown file servable.
    write(&server, "x.xyz");
    assert_json_error(&server.get("/x.xyz?type=.html"), 415, "x.xyz?type=.html");
}
