//! Graceful shutdown: SIGTERM stops accepting, closes idle connections, lets responses and uploads under way
//! finish (with `Connection: close`), and exits 0; the grace period cuts what is left; a second signal exits
//! at once.

mod common;

use common::{random_bytes, read_response, read_to_eof, TestServer, EXIT_TIMEOUT};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A 10 MiB file, far more than the socket buffers hold, so its download is under way when the signal comes.
fn write_big_file(server: &TestServer) -> Vec<u8> {
    let bytes = random_bytes(10 * 1024 * 1024, 0x5107);
    std::fs::write(server.root.join("big.png"), &bytes).unwrap();
    bytes
}

fn get(server: &TestServer, path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", server.host())
}

/// Reads a response head and then `len` body bytes, which the caller knows.
fn read_exactly(stream: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut body = vec![0; len];
    stream.read_exact(&mut body).expect("the whole body");
    body
}

#[test]
fn sigterm_lets_a_download_finish_closes_the_connection_after_it_and_exits_zero() {
    let mut server = TestServer::start(&[]);
    let bytes = write_big_file(&server);
    let mut stream = server.connect();
    // The download, and a second request pipelined behind it.
    stream
        .write_all(
            format!("{}{}", get(&server, "/big.png"), get(&server, "/sample.txt")).as_bytes(),
        )
        .unwrap();
    let mut first = [0u8; 4096];
    stream.read_exact(&mut first).unwrap();
    server.signal("TERM");
    assert!(server.log_contains("stopping: no new connections"), "{}", server.log());
    // New clients are refused at once.
    let deadline = Instant::now() + EXIT_TIMEOUT;
    while TcpStream::connect(server.addr).is_ok() {
        assert!(Instant::now() < deadline, "the listener was not closed");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The download under way completes byte for byte.
    let mut received = first.to_vec();
    let head_end = received.windows(4).position(|w| w == b"\r\n\r\n").expect("a head") + 4;
    let head = String::from_utf8_lossy(&received[..head_end]).into_owned();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    received.drain(..head_end);
    let rest = read_exactly(&mut stream, bytes.len() - received.len());
    received.extend(rest);
    assert!(received == bytes, "the download is byte-exact");
    // The pipelined request is answered, and that answer closes the connection.
    let second = read_response(&mut stream).expect("the pipelined response");
    assert_eq!(second.status, 200);
    assert_eq!(second.header("Connection"), Some("close"), "{}", second.head);
    assert_eq!(read_to_eof(&mut stream), b"");
    let status = server.wait_exit(EXIT_TIMEOUT).expect("the server exits once drained");
    assert_eq!(status.code(), Some(0));
    assert!(server.log_contains("stopped: drained"), "{}", server.log());
}

#[test]
fn sigterm_closes_an_idle_keep_alive_connection_at_once() {
    let mut server = TestServer::start(&["--idle-timeout", "60"]);
    let mut stream = server.connect();
    stream.write_all(get(&server, "/sample.txt").as_bytes()).unwrap();
    let response = read_response(&mut stream).expect("a response");
    assert_eq!(response.header("Connection"), Some("keep-alive"));
    server.signal("TERM");
    // Far sooner than the 60 s idle timeout: read_to_eof fails the test after its 5 s socket timeout.
    assert_eq!(read_to_eof(&mut stream), b"", "an idle connection is closed without a word");
    assert_eq!(server.wait_exit(EXIT_TIMEOUT).and_then(|s| s.code()), Some(0));
}

#[test]
fn sigterm_during_an_upload_still_stores_and_acknowledges_it() {
    let mut server = TestServer::start(&[]);
    let body = br#"{"sent": "in two halves", "across": "a SIGTERM"}"#;
    let head = format!(
        "POST /upload HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        server.host(),
        body.len()
    );
    let mut stream = server.connect_nodelay();
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body[..10]).unwrap();
    // Let the server take the head and the first half before the signal.
    assert!(server.log_contains("request \"POST /upload HTTP/1.1\""), "{}", server.log());
    server.signal("TERM");
    assert!(server.log_contains("stopping: no new connections"), "{}", server.log());
    stream.write_all(&body[10..]).unwrap();
    let response = read_response(&mut stream).expect("the upload's answer");
    assert_eq!(response.status, 201, "{}", response.head);
    assert_eq!(response.header("Connection"), Some("close"));
    let location = response.header("Location").expect("where it was stored").to_owned();
    let stored =
        std::fs::read(server.root.join(location.trim_start_matches('/'))).expect("the stored file");
    assert_eq!(stored, body);
    assert_eq!(server.wait_exit(EXIT_TIMEOUT).and_then(|s| s.code()), Some(0));
}

#[test]
fn the_grace_period_cuts_a_client_that_stopped_reading_and_still_exits_zero() {
    let mut server = TestServer::start(&["--shutdown-grace", "0.3"]);
    write_big_file(&server);
    let mut stalled = server.connect();
    // Ask for the big file and never read it: the response can't finish.
    stalled.write_all(get(&server, "/big.png").as_bytes()).unwrap();
    assert!(server.log_contains("\"GET /big.png HTTP/1.1\""), "{}", server.log());
    server.signal("TERM");
    assert_eq!(server.wait_exit(EXIT_TIMEOUT).and_then(|s| s.code()), Some(0));
    assert!(server.log_contains("cut 127.0.0.1"), "what was cut is logged: {}", server.log());
    drop(stalled);
}

#[test]
fn a_second_sigterm_exits_at_once_with_a_failure_status() {
    let mut server = TestServer::start(&["--shutdown-grace", "600"]);
    write_big_file(&server);
    let mut stalled = server.connect();
    stalled.write_all(get(&server, "/big.png").as_bytes()).unwrap();
    assert!(server.log_contains("\"GET /big.png HTTP/1.1\""), "{}", server.log());
    server.signal("TERM");
    assert!(server.log_contains("stopping: no new connections"), "{}", server.log());
    assert!(server.is_running(), "the stalled download holds the drain");
    server.signal("TERM");
    let status = server.wait_exit(EXIT_TIMEOUT).expect("the second signal ends it");
    assert_eq!(status.code(), Some(1));
    drop(stalled);
}
