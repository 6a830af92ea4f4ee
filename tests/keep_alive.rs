//! Persistent connections: pipelining, slow clients, Connection handling, idle timeout and max requests.

mod common;

use common::{
    bundled, close_request, get_request, read_response, read_to_eof, Response, TestServer,
};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn next_response(stream: &mut TcpStream) -> Response {
    read_response(stream).expect("a response, not EOF")
}

fn assert_keep_alive(response: &Response, max: u32) {
    assert_eq!(response.header("Connection"), Some("keep-alive"), "{}", response.head);
    let expected = format!("timeout=5, max={max}");
    assert_eq!(response.header("Keep-Alive"), Some(expected.as_str()), "{}", response.head);
}

fn assert_closes(response: &Response, stream: &mut TcpStream) {
    assert_eq!(response.header("Connection"), Some("close"), "{}", response.head);
    assert_eq!(response.header("Keep-Alive"), None, "{}", response.head);
    assert_eq!(read_to_eof(stream), b"", "bytes after a Connection: close response");
}

/// Asserts the server sends nothing for a short while (the request is not complete yet).
fn assert_no_answer_yet(stream: &mut TcpStream) {
    stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("the server answered an incomplete request: {other:?} {byte:?}"),
    }
    stream.set_read_timeout(Some(common::IO_TIMEOUT)).unwrap();
}

#[test]
fn ten_pipelined_requests_in_one_write_are_answered_in_order() {
    let server = TestServer::start(&[]);
    let paths = [
        "/",
        "/about.html",
        "/sample.txt",
        "/contact.html",
        "/missing.html",
        "/logo.png",
        "/index.html",
        "/photo.jpg",
        "/about.html",
        "/sample.txt",
    ];
    let expected = |path: &str| match path {
        "/" => Some(bundled("index.html")),
        "/missing.html" => None,
        p => Some(bundled(&p[1..])),
    };
    let batch: String = paths.iter().map(|p| get_request(&server, p)).collect();
    let mut stream = server.connect();
    stream.write_all(batch.as_bytes()).unwrap();
    for (i, path) in paths.iter().enumerate() {
        let response = next_response(&mut stream);
        match expected(path) {
            Some(body) => {
                assert_eq!(response.status, 200, "#{i} {path}: {}", response.head);
                assert!(response.body == body, "#{i} {path}: wrong body (out of order?)");
            }
            None => assert_eq!(response.status, 404, "#{i} {path}: {}", response.head),
        }
        assert_keep_alive(&response, 99 - i as u32);
    }
}

#[test]
fn a_request_written_one_byte_at_a_time_is_answered_once_complete() {
    let server = TestServer::start(&[]);
    let raw = get_request(&server, "/about.html").into_bytes();
    let mut stream = server.connect_nodelay();
    let (last, head) = raw.split_last().unwrap();
    for byte in head {
        stream.write_all(std::slice::from_ref(byte)).unwrap();
        stream.flush().unwrap();
    }
    assert_no_answer_yet(&mut stream);
    stream.write_all(&[*last]).unwrap();
    let response = next_response(&mut stream);
    assert_eq!(response.status, 200, "{}", response.head);
    assert_eq!(response.body, bundled("about.html"));
    // Exactly one response: the connection is idle afterwards and serves the next request.
    assert_no_answer_yet(&mut stream);
    stream.write_all(get_request(&server, "/contact.html").as_bytes()).unwrap();
    assert_eq!(next_response(&mut stream).body, bundled("contact.html"));
}

#[test]
fn one_connection_serves_several_sequential_requests() {
    let server = TestServer::start(&[]);
    let mut stream = server.connect();
    let paths = ["/index.html", "/sample.txt", "/about.html", "/logo.png", "/contact.html"];
    for (i, path) in paths.iter().enumerate() {
        stream.write_all(get_request(&server, path).as_bytes()).unwrap();
        let response = next_response(&mut stream);
        assert_eq!(response.status, 200, "#{i} {path}: {}", response.head);
        assert_eq!(response.body, bundled(&path[1..]), "#{i} {path}");
        assert_keep_alive(&response, 99 - i as u32);
    }
}

#[test]
fn the_first_response_advertises_the_default_timeout_and_max() {
    let server = TestServer::start(&[]);
    let mut stream = server.connect();
    stream.write_all(get_request(&server, "/").as_bytes()).unwrap();
    let response = next_response(&mut stream);
    assert_eq!(response.status, 200, "{}", response.head);
    assert_eq!(response.header("Keep-Alive"), Some("timeout=5, max=99"));
}

#[test]
fn connection_close_gets_a_close_response_then_eof() {
    let server = TestServer::start(&[]);
    let mut stream = server.connect();
    stream.write_all(close_request(&server, "GET", "/").as_bytes()).unwrap();
    let response = next_response(&mut stream);
    assert_eq!(response.status, 200, "{}", response.head);
    assert_closes(&response, &mut stream);
}

#[test]
fn http10_without_keep_alive_gets_a_close_response_then_eof() {
    let server = TestServer::start(&[]);
    let mut stream = server.connect();
    stream.write_all(b"GET /sample.txt HTTP/1.0\r\n\r\n").unwrap();
    let response = next_response(&mut stream);
    assert_eq!(response.status, 200, "{}", response.head);
    assert!(response.head.starts_with("HTTP/1.1 200"), "{}", response.head);
    assert_eq!(response.body, bundled("sample.txt"));
    assert_closes(&response, &mut stream);
}

#[test]
fn http10_with_connection_keep_alive_keeps_the_connection() {
    let server = TestServer::start(&[]);
    let mut stream = server.connect();
    stream.write_all(b"GET /about.html HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap();
    let first = next_response(&mut stream);
    assert_eq!(first.status, 200, "{}", first.head);
    assert_keep_alive(&first, 99);
    stream.write_all(b"GET /contact.html HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap();
    let second = next_response(&mut stream);
    assert_eq!(second.status, 200, "{}", second.head);
    assert_eq!(second.body, bundled("contact.html"));
    assert_keep_alive(&second, 98);
}

#[test]
fn an_idle_connection_is_closed_silently_after_the_idle_timeout() {
    let server = TestServer::start(&["--idle-timeout", "0.3"]);
    let mut stream = server.connect();
    // The kernel hands a silent client to accept only after TCP_DEFER_ACCEPT's second. read_to_eof fails the
    // test if nothing happens within the 5 s socket timeout.
    assert_eq!(read_to_eof(&mut stream), b"", "an idle close must send no bytes");
}

#[test]
fn a_kept_alive_connection_is_closed_silently_once_idle() {
    let server = TestServer::start(&["--idle-timeout", "1"]);
    let mut stream = server.connect();
    stream.write_all(get_request(&server, "/").as_bytes()).unwrap();
    let response = next_response(&mut stream);
    assert_eq!(response.header("Keep-Alive"), Some("timeout=1, max=99"), "{}", response.head);
    assert_eq!(read_to_eof(&mut stream), b"", "an idle close must send no bytes");
}

#[test]
fn a_partial_head_stalled_past_the_idle_timeout_gets_408_then_eof() {
    let server = TestServer::start(&["--idle-timeout", "0.3"]);
    let mut stream = server.connect();
    let partial = format!("GET /index.html HTTP/1.1\r\nHost: {}\r\n", server.host());
    stream.write_all(partial.as_bytes()).unwrap();
    let response = next_response(&mut stream);
    assert_eq!(response.status, 408, "{}", response.head);
    assert_closes(&response, &mut stream);
}

#[test]
fn max_requests_counts_down_and_closes_after_the_last_one() {
    let server = TestServer::start(&["--max-requests", "3"]);
    let mut stream = server.connect();
    for (i, max) in [2, 1].into_iter().enumerate() {
        stream.write_all(get_request(&server, "/sample.txt").as_bytes()).unwrap();
        let response = next_response(&mut stream);
        assert_eq!(response.status, 200, "#{i}: {}", response.head);
        assert_keep_alive(&response, max);
    }
    stream.write_all(get_request(&server, "/sample.txt").as_bytes()).unwrap();
    let third = next_response(&mut stream);
    assert_eq!(third.status, 200, "{}", third.head);
    assert_eq!(third.body, bundled("sample.txt"));
    assert_closes(&third, &mut stream);
}

#[test]
fn max_requests_applies_to_pipelined_requests_too() {
    let server = TestServer::start(&["--max-requests", "2"]);
    let mut stream = server.connect();
    let batch = [
        get_request(&server, "/"),
        get_request(&server, "/about.html"),
        get_request(&server, "/contact.html"),
    ];
    stream.write_all(batch.concat().as_bytes()).unwrap();
    let first = next_response(&mut stream);
    assert_keep_alive(&first, 1);
    let second = next_response(&mut stream);
    assert_eq!(second.body, bundled("about.html"));
    assert_closes(&second, &mut stream);
}

#[test]
fn empty_lines_between_requests_are_ignored() {
    let server = TestServer::start(&["--idle-timeout", "1"]);
    let mut stream = server.connect();
    let request = get_request(&server, "/sample.txt");
    let raw = format!("{request}\r\n\r\n{request}\r\n");
    stream.write_all(raw.as_bytes()).unwrap();
    for max in [99, 98] {
        let response = next_response(&mut stream);
        let expected = format!("timeout=1, max={max}");
        assert_eq!(response.header("Keep-Alive"), Some(expected.as_str()), "{}", response.head);
    }
    // The trailing CRLF is not the start of a request: the idle close stays silent, no 408.
    assert_eq!(read_to_eof(&mut stream), b"");
}
