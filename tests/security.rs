//! Path traversal, malformed encodings, symlinks escaping the root, and Host validation.

mod common;

use common::{close_request, exchange, resource, temp_root, Response, TestServer};
use std::path::PathBuf;

/// A temporary directory holding the server's root (`www/`) and, next to it, a secret file the server must
/// never send. Removed on drop.
struct Sandbox {
    outer: PathBuf,
    marker: String,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.outer);
    }
}

/// Starts a server whose root is `<outer>/www`, with `<outer>/secret.txt` holding a unique marker.
fn server_beside_a_secret(args: &[&str]) -> (TestServer, Sandbox) {
    let outer = temp_root();
    let marker = format!("TOP-SECRET-{}", uuid::Uuid::new_v4().simple());
    std::fs::write(outer.join("secret.txt"), &marker).unwrap();
    std::fs::write(outer.join("secret.html"), &marker).unwrap();
    let root = outer.join("www");
    std::fs::create_dir(&root).unwrap();
    for name in ["index.html", "about.html", "sample.txt"] {
        std::fs::copy(resource(name), root.join(name)).unwrap();
    }
    std::fs::create_dir(root.join("a")).unwrap();
    let server = TestServer::start_in(root, args);
    (server, Sandbox { outer, marker })
}

/// A GET of this raw target with a valid Host.
fn get_target(server: &TestServer, target: &str) -> Response {
    exchange(server, close_request(server, "GET", target).as_bytes())
}

/// A GET of `/` with these header lines (each ending in CRLF) and this version.
fn get_with_headers(server: &TestServer, version: &str, headers: &str) -> Response {
    let raw = format!("GET / HTTP/{version}\r\n{headers}Connection: close\r\n\r\n");
    exchange(server, raw.as_bytes())
}

fn assert_no_secret(response: &Response, sandbox: &Sandbox, what: &str) {
    let body = String::from_utf8_lossy(&response.body);
    assert!(!body.contains(&sandbox.marker), "{what}: the outside file leaked: {body}");
    assert!(!response.head.contains(&sandbox.marker), "{what}: the outside file leaked");
}

#[test]
fn the_secret_next_to_the_root_exists_but_is_not_served_directly() {
    let (server, sandbox) = server_beside_a_secret(&[]);
    assert!(server.root.parent().unwrap().join("secret.txt").is_file());
    let response = get_target(&server, "/secret.txt");
    assert_eq!(response.status, 404, "{}", response.head);
    assert_no_secret(&response, &sandbox, "/secret.txt");
}

#[test]
fn every_traversal_form_is_403_and_never_leaks_the_outside_file() {
    let (server, sandbox) = server_beside_a_secret(&[]);
    let targets = [
        "/../secret.txt",
        "/../secret.html",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/a/%2e%2e/%2e%2e/secret.txt",
        "/a/../../secret.txt",
        "/%2f..%2fsecret.txt",
        "/%2f../secret.txt",
        "/..%2fsecret.txt",
        "/..%2Fsecret.txt",
        "/a%2findex.html",
        "/a%2Findex.html",
        "/..%5csecret.txt",
        "/..%5Csecret.txt",
        "/..\\secret.txt",
        "/a\\index.html",
        "/index.html%00",
        "/secret.txt%00.html",
        "/%00",
    ];
    for target in targets {
        let response = get_target(&server, target);
        assert_eq!(response.status, 403, "{target}: {}", response.head);
        assert_no_secret(&response, &sandbox, target);
    }
}

#[test]
fn malformed_percent_encodings_are_400() {
    let (server, sandbox) = server_beside_a_secret(&[]);
    for target in ["/%zz", "/index%zz.html", "/%4", "/index.html%4", "/%4g.html", "/%"] {
        let response = get_target(&server, target);
        assert_eq!(response.status, 400, "{target}: {}", response.head);
        assert_eq!(response.header("Connection"), Some("close"), "{target}: {}", response.head);
        assert_no_secret(&response, &sandbox, target);
    }
}

#[test]
fn a_symlink_inside_the_root_to_a_file_outside_is_403() {
    let (server, sandbox) = server_beside_a_secret(&[]);
    let outside = server.root.parent().unwrap().join("secret.txt");
    std::os::unix::fs::symlink(&outside, server.root.join("link.txt")).unwrap();
    std::os::unix::fs::symlink(&outside, server.root.join("link.html")).unwrap();
    for target in ["/link.txt", "/link.html"] {
        let response = get_target(&server, target);
        assert_eq!(response.status, 403, "{target}: {}", response.head);
        assert_no_secret(&response, &sandbox, target);
    }
}

#[test]
fn a_symlinked_directory_escaping_the_root_is_403() {
    let (server, sandbox) = server_beside_a_secret(&[]);
    let outer = server.root.parent().unwrap().to_path_buf();
    std::os::unix::fs::symlink(&outer, server.root.join("escape")).unwrap();
    for target in ["/escape/secret.txt", "/escape/secret.html"] {
        let response = get_target(&server, target);
        assert_eq!(response.status, 403, "{target}: {}", response.head);
        assert_no_secret(&response, &sandbox, target);
    }
}

#[test]
fn host_header_is_validated() {
    let (server, _sandbox) = server_beside_a_secret(&[]);
    let port = server.addr.port();
    let host = server.host();
    let cases: Vec<(&str, String, String, u16)> = vec![
        ("missing on HTTP/1.1", "1.1".into(), String::new(), 400),
        ("duplicate", "1.1".into(), format!("Host: {host}\r\nHost: {host}\r\n"), 400),
        ("foreign name", "1.1".into(), "Host: evil.example\r\n".into(), 403),
        ("foreign name with our port", "1.1".into(), format!("Host: evil.example:{port}\r\n"), 403),
        ("wrong port", "1.1".into(), "Host: 127.0.0.1:1\r\n".into(), 403),
        ("ip with port", "1.1".into(), format!("Host: 127.0.0.1:{port}\r\n"), 200),
        ("ip without port", "1.1".into(), "Host: 127.0.0.1\r\n".into(), 200),
        ("localhost with port", "1.1".into(), format!("Host: localhost:{port}\r\n"), 200),
        ("localhost without port", "1.1".into(), "Host: localhost\r\n".into(), 200),
        ("upper-case localhost", "1.1".into(), "Host: LOCALHOST\r\n".into(), 200),
        ("unlisted name", "1.1".into(), "Host: example.test\r\n".into(), 403),
        ("HTTP/1.0 without Host", "1.0".into(), String::new(), 200),
        ("HTTP/1.0 with a foreign Host", "1.0".into(), "Host: evil.example\r\n".into(), 403),
    ];
    for (what, version, headers, status) in cases {
        let response = get_with_headers(&server, &version, &headers);
        assert_eq!(response.status, status, "{what}: {headers:?} -> {}", response.head);
    }
}

#[test]
fn allow_host_accepts_the_named_host_with_and_without_port() {
    let (server, _sandbox) = server_beside_a_secret(&["--allow-host", "example.test"]);
    let port = server.addr.port();
    let cases = [
        ("Host: example.test\r\n".to_string(), 200),
        (format!("Host: example.test:{port}\r\n"), 200),
        (format!("Host: {}\r\n", server.host()), 200),
        (format!("Host: other.test:{port}\r\n"), 403),
    ];
    for (headers, status) in cases {
        let response = get_with_headers(&server, "1.1", &headers);
        assert_eq!(response.status, status, "{headers:?} -> {}", response.head);
    }
}

#[test]
fn an_absolute_form_target_supplies_the_host() {
    let (server, _sandbox) = server_beside_a_secret(&[]);
    let port = server.addr.port();
    let cases = [
        (
            format!(
                "GET http://localhost:{port}/about.html HTTP/1.1\r\nHost: localhost:{port}\r\n"
            ),
            200,
        ),
        (format!("GET http://localhost:{port}/about.html HTTP/1.1\r\nHost: evil.example\r\n"), 200),
        (format!("GET http://evil.example/about.html HTTP/1.1\r\nHost: localhost:{port}\r\n"), 403),
    ];
    let about = std::fs::read(server.root.join("about.html")).unwrap();
    for (head, status) in cases {
        let raw = format!("{head}Connection: close\r\n\r\n");
        let response = exchange(&server, raw.as_bytes());
        assert_eq!(response.status, status, "{head:?} -> {}", response.head);
        if status == 200 {
            assert_eq!(response.body, about, "{head:?}");
        }
    }
}

#[test]
fn a_rejected_host_does_not_leak_file_contents() {
    let (server, _sandbox) = server_beside_a_secret(&[]);
    let response = exchange(
        &server,
        b"GET /sample.txt HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(response.status, 403, "{}", response.head);
    let sample = std::fs::read(server.root.join("sample.txt")).unwrap();
    assert_ne!(response.body, sample);
    assert_eq!(response.header("Content-Type"), Some("application/json"));
}

#[test]
fn bound_to_every_interface_the_address_a_client_used_is_accepted_as_host() {
    let root = temp_root();
    std::fs::copy(resource("index.html"), root.join("index.html")).unwrap();
    let server = TestServer::start_on("0.0.0.0", root, &[]);
    let port = server.addr.port();
    let cases = [
        (format!("127.0.0.1:{port}"), 200),
        ("localhost".to_owned(), 200),
        (format!("127.0.0.2:{port}"), 403),
    ];
    for (host, status) in cases {
        let raw = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        let response = exchange(&server, raw.as_bytes());
        assert_eq!(response.status, status, "Host {host}");
    }
}
