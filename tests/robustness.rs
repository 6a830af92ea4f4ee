//! The server survives abandoned downloads, malformed input and vanishing clients, and reports bad command
//! lines with the right exit codes.

mod common;

use common::{
    bundled, exchange, exchange_keep, get_request, random_bytes, read_response, read_to_eof,
    read_to_eof_for, temp_root, TestServer,
};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Writes a 10 MiB file of pseudo-random bytes into the root.
fn write_big_file(server: &TestServer, name: &str) {
    let data = random_bytes(10 * 1024 * 1024, 0x2545_f491_4f6c_dd1d);
    std::fs::write(server.root.join(name), data).expect("write big file");
}

/// Asserts the server still answers a fresh client correctly.
fn assert_still_serving(server: &TestServer, after: &str) {
    let response = server.get("/sample.txt");
    assert_eq!(response.status, 200, "after {after}: {}", response.head);
    assert_eq!(response.body, bundled("sample.txt"), "after {after}");
}

/// Asserts the server process is alive and has not logged a panic.
fn assert_alive_without_panics(server: &mut TestServer) {
    assert!(server.is_running(), "the server died; log:\n{}", server.log());
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

/// Reads everything until the server closes; `Some(status)` when it answered, `None` for a bare close.
/// Fails if the server neither answers nor closes within the socket timeout.
fn status_then_close(stream: &mut TcpStream, what: &str) -> Option<u16> {
    let raw = read_to_eof_for(stream, what);
    if raw.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 "), "{what}: not a status line: {text:?}");
    let status = text[9..12].parse().unwrap_or_else(|_| panic!("{what}: bad status in {text:?}"));
    Some(status)
}

#[test]
fn completions_for_clients_that_disconnected_never_reach_new_clients() {
    let mut server = TestServer::start(&[]);
    write_big_file(&server, "big.png");
    let big = get_request(&server, "/big.png");
    let upload = format!(
        "POST /upload HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\
         Expect: 100-continue\r\n\r\n{{}}",
        server.host()
    );
    // Whether a client's reset lands while its job is with a worker is a race, so abandon clients in
    // rounds until the server reports dropping a late completion (bounded: 20 rounds).
    let dropped = "dropping a completion for closed connection";
    for i in (0..50 * 20).take_while(|i| i % 50 != 0 || !server.log().contains(dropped)) {
        let mut stream = server.connect();
        if i % 4 == 3 {
            // An upload whose `100 Continue` is never read: closing with it unread resets the connection
            // while the upload is being stored (an fsync, so the worker takes a while).
            stream.write_all(upload.as_bytes()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(1));
            drop(stream);
            continue;
        }
        stream.write_all(big.as_bytes()).unwrap();
        match i % 3 {
            // Plain close (FIN) right after the request.
            0 => drop(stream),
            1 => stream.shutdown(Shutdown::Both).unwrap(),
            // Read a little, then close with unread data buffered: the kernel answers with a reset.
            _ => {
                let mut byte = [0u8; 1];
                let _ = stream.read(&mut byte);
                drop(stream);
            }
        }
    }
    // New clients, likely reusing the abandoned connections' slots, get exactly their own responses.
    let small = ["/sample.txt", "/about.html", "/index.html", "/contact.html", "/logo.png"];
    for round in 0..4 {
        let clients: Vec<(TcpStream, &str)> = small
            .iter()
            .map(|path| {
                let mut stream = server.connect();
                stream.write_all(get_request(&server, path).as_bytes()).unwrap();
                (stream, *path)
            })
            .collect();
        for (mut stream, path) in clients {
            let response = read_response(&mut stream).expect("a response");
            assert_eq!(response.status, 200, "round {round} {path}: {}", response.head);
            assert!(response.body == bundled(&path[1..]), "round {round} {path}: foreign body");
        }
    }
    // And the big file itself still downloads completely for a client that stays.
    let response = exchange(&server, big.as_bytes());
    assert_eq!(response.body, std::fs::read(server.root.join("big.png")).unwrap());
    assert_alive_without_panics(&mut server);
    // At least one completion found its connection gone (the reset clients) and was dropped, not misdelivered.
    assert!(
        server.log_contains(dropped),
        "no late completion was exercised; log:\n{}",
        server.log()
    );
}

#[test]
fn malformed_input_gets_an_error_status_or_a_clean_close_and_the_server_keeps_serving() {
    let mut server = TestServer::start(&["--idle-timeout", "0.3"]);
    let host = server.host();
    let many_headers: String = (0..65).map(|i| format!("X-Field-{i}: v\r\n")).collect();
    let garbage = random_bytes(512, 0x5eed_6a7b_a6e5);
    let cases: Vec<(&str, Vec<u8>, Option<u16>)> = vec![
        ("garbage bytes", garbage, None),
        ("a TLS hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x00\r\n\r\n".to_vec(), None),
        (
            "a NUL in the request line",
            format!("GET /ind\0ex.html HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes(),
            None,
        ),
        (
            "a huge header",
            format!("GET / HTTP/1.1\r\nHost: {host}\r\nX-Big: {}\r\n\r\n", "a".repeat(20_000))
                .into_bytes(),
            Some(431),
        ),
        (
            "65 header fields",
            format!("GET / HTTP/1.1\r\nHost: {host}\r\n{many_headers}\r\n").into_bytes(),
            Some(431),
        ),
        ("the HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(), None),
        ("lone newlines", b"\n\n".to_vec(), None),
        (
            "a request line without a version",
            format!("GET /index.html\r\nHost: {host}\r\n\r\n").into_bytes(),
            None,
        ),
        (
            "an unsupported version",
            format!("GET / HTTP/3.0\r\nHost: {host}\r\n\r\n").into_bytes(),
            Some(505),
        ),
        (
            "a header without a colon",
            format!("GET / HTTP/1.1\r\nHost: {host}\r\nBroken\r\n\r\n").into_bytes(),
            None,
        ),
    ];
    for (what, bytes, expected) in cases {
        let mut stream = server.connect();
        // The server may close before reading everything; a failed write is fine, a hang is not.
        let _ = stream.write_all(&bytes);
        let status = status_then_close(&mut stream, what);
        match expected {
            Some(code) => assert_eq!(status, Some(code), "{what}"),
            None => assert!(
                status.is_none_or(|s| (400..600).contains(&s)),
                "{what}: got status {status:?}"
            ),
        }
        assert_still_serving(&server, what);
    }
    assert_alive_without_panics(&mut server);
}

#[test]
fn a_client_that_sends_nothing_and_closes_leaves_the_server_serving() {
    let mut server = TestServer::start(&[]);
    for _ in 0..10 {
        drop(server.connect());
    }
    assert_still_serving(&server, "silent clients");
    assert!(server.is_running());
}

#[test]
fn a_client_that_sends_half_a_head_and_closes_leaves_the_server_serving() {
    let mut server = TestServer::start(&[]);
    for _ in 0..10 {
        let mut stream = server.connect();
        let half = format!("GET /index.html HTTP/1.1\r\nHost: {}\r\nAcc", server.host());
        stream.write_all(half.as_bytes()).unwrap();
        drop(stream);
    }
    let mut stream = server.connect();
    stream.write_all(b"GET /about.html HT").unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    // A half-closed client may get an error status or a close, but never a hang.
    let status = status_then_close(&mut stream, "half a head then FIN");
    assert!(status.is_none_or(|s| (400..600).contains(&s)), "got {status:?}");
    assert_still_serving(&server, "half heads");
    assert!(server.is_running());
}

/// Runs the binary with these arguments and waits (at most 10 s) for it to exit.
fn run_binary(args: &[&str]) -> Output {
    let root = temp_root();
    let child = Command::new(env!("CARGO_BIN_EXE_http-server"))
        .args(args)
        .arg("--root")
        .arg(&root)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn http-server");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let result = rx.recv_timeout(Duration::from_secs(10));
    let _ = std::fs::remove_dir_all(&root);
    match result {
        Ok(output) => output.expect("wait for http-server"),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("http-server {args:?} did not exit");
        }
    }
}

fn combined_output(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn invalid_command_lines_exit_with_code_2() {
    let cases: &[&[&str]] = &[
        &["abc"],
        &["99999"],
        &["0", "127.0.0.1", "many"],
        &["0", "127.0.0.1", "4", "--idle-timeout", "x"],
        &["0", "127.0.0.1", "4", "--idle-timeout", "0"],
        &["0", "127.0.0.1", "4", "--idle-timeout", "-1"],
        &["0", "127.0.0.1", "4", "--body-timeout", "NaN"],
        &["0", "127.0.0.1", "4", "--file-cache-window", "1e400"],
        &["0", "127.0.0.1", "4", "--max-requests", "lots"],
        &["0", "127.0.0.1", "4", "--max-body", "-5"],
        &["0", "127.0.0.1", "4", "--no-such-option"],
    ];
    for args in cases {
        let output = run_binary(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", combined_output(&output));
    }
}

#[test]
fn help_exits_successfully() {
    let output = run_binary(&["--help"]);
    assert_eq!(output.status.code(), Some(0), "{}", combined_output(&output));
    assert!(combined_output(&output).contains("--idle-timeout"));
}

#[test]
fn a_port_in_use_exits_with_code_1_and_names_the_port() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let output = run_binary(&[&port, "127.0.0.1", "4"]);
    drop(listener);
    let text = combined_output(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains(&port), "the message does not name port {port}: {text}");
}

#[test]
fn a_fifo_in_the_root_does_not_block_the_workers() {
    let server = TestServer::start(&[]);
    let fifo = server.root.join("pipe.txt");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if !made.is_ok_and(|status| status.success()) {
        eprintln!("mkfifo unavailable: skipped");
        return;
    }
    // More requests than the harness's 4 workers: if opening the FIFO blocked, the pool would be stuck.
    for _ in 0..6 {
        assert_eq!(server.get("/pipe.txt").status, 404);
    }
    assert_eq!(server.get("/sample.txt").status, 200);
}

/// Opens `count` connections, each served `request` once and kept open.
fn hold_connections(server: &TestServer, count: usize, request: &str) -> Vec<TcpStream> {
    (0..count)
        .map(|_| {
            let (response, stream) = exchange_keep(server, request.as_bytes());
            assert_eq!(response.status, 200);
            stream
        })
        .collect()
}

#[test]
fn clients_over_the_connection_limit_get_503_and_the_rest_are_served() {
    let server = TestServer::start(&["--max-connections", "2"]);
    let request = get_request(&server, "/sample.txt");
    let mut held = hold_connections(&server, 2, &request);
    let (refused, mut third) = exchange_keep(&server, request.as_bytes());
    assert_eq!(refused.status, 503, "{}", refused.head);
    assert_eq!(refused.header("Connection"), Some("close"));
    assert!(read_to_eof(&mut third).is_empty());
    // The held connections still work, and a freed slot is given to the next client.
    held[0].write_all(request.as_bytes()).unwrap();
    assert_eq!(read_response(&mut held[0]).expect("a response").status, 200);
    drop(held.pop());
    let mut next = None;
    for _ in 0..50 {
        let response = exchange(&server, request.as_bytes());
        if response.status == 200 {
            next = Some(response);
            break;
        }
        // The server may not have seen the dropped client's close yet.
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(next.is_some(), "no client was served after a slot freed");
}

#[test]
fn names_the_filesystem_refuses_are_404_not_server_errors() {
    let server = TestServer::start(&[]);
    std::os::unix::fs::symlink("loop_b.html", server.root.join("loop_a.html")).unwrap();
    std::os::unix::fs::symlink("loop_a.html", server.root.join("loop_b.html")).unwrap();
    let too_long = format!("/{}.html", "a".repeat(300));
    for path in [too_long.as_str(), "/loop_a.html"] {
        assert_eq!(server.get(path).status, 404, "{path}");
    }
    assert!(!server.log().contains("ERROR"), "{}", server.log());
}

#[test]
fn the_listening_line_is_printed_even_when_info_logging_is_off() {
    // TestServer::start waits for the line and panics without it.
    let server = TestServer::start(&["--log-level", "warn"]);
    assert_eq!(server.get("/sample.txt").status, 200);
    assert!(!server.log().contains("INFO"), "{}", server.log());
}

#[test]
fn refusals_are_logged_with_their_reason() {
    let server = TestServer::start(&[]);
    let host = server.host();
    let requests = [
        format!("GET /../x HTTP/1.1\r\nHost: {host}\r\n\r\n"),
        format!("POST /upload HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{{}}"),
        "GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n".to_owned(),
    ];
    for request in &requests {
        exchange(&server, request.as_bytes());
    }
    for reason in ["leaves the document root", "not application/json", "does not name this server"]
    {
        assert!(server.log_contains(reason), "no {reason:?} in:\n{}", server.log());
    }
}

#[test]
fn a_client_flooding_empty_lines_does_not_starve_the_others() {
    let server = TestServer::start(&[]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = {
        let (mut stream, stop) = (server.connect(), std::sync::Arc::clone(&stop));
        std::thread::spawn(move || {
            let blank = b"\r\n".repeat(32 * 1024);
            // Bounded: the flood ends when the test says so, or after 20 s at most.
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while !stop.load(std::sync::atomic::Ordering::SeqCst)
                && std::time::Instant::now() < deadline
            {
                if stream.write_all(&blank).is_err() {
                    break;
                }
            }
        })
    };
    // Let the flood get going, then ask for pages: each must be answered within the 5 s socket timeout.
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..3 {
        assert_eq!(server.get("/sample.txt").status, 200);
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    flood.join().unwrap();
}

#[test]
fn under_a_low_descriptor_limit_clients_past_it_get_503_not_server_errors() {
    // 100 descriptors, 64 kept in reserve: 36 to share, a quarter (9) for files downloads hold open.
    let server = TestServer::start_with_fd_limit(100, &[]);
    assert!(server.log_contains("allows 27 connections and 9 open files"), "{}", server.log());
    let request = get_request(&server, "/sample.txt");
    let _held = hold_connections(&server, 27, &request);
    assert_eq!(exchange(&server, request.as_bytes()).status, 503);
    assert!(!server.log().contains("ERROR"), "{}", server.log());
}

#[test]
fn a_socket_file_in_the_root_is_404() {
    let server = TestServer::start(&[]);
    let _listener = std::os::unix::net::UnixListener::bind(server.root.join("sock.txt")).unwrap();
    assert_eq!(server.get("/sock.txt").status, 404);
    assert!(!server.log().contains("ERROR"), "{}", server.log());
}

#[test]
fn the_listen_queue_is_as_long_as_backlog_says() {
    let server = TestServer::start(&["--backlog", "77"]);
    let filter = format!("sport = :{}", server.addr.port());
    let Ok(out) = Command::new("ss").args(["-ltn", &filter]).output() else {
        eprintln!("ss not installed: skipped");
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("LISTEN")).expect("the listening socket");
    let send_q: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(send_q[2], "77", "{line}");
}

#[test]
fn many_refused_clients_are_summed_up_in_few_log_lines() {
    let server = TestServer::start(&["--max-connections", "1", "--log-level", "info"]);
    let request = get_request(&server, "/sample.txt");
    let _held = hold_connections(&server, 1, &request);
    for _ in 0..50 {
        assert_eq!(exchange(&server, request.as_bytes()).status, 503);
    }
    assert!(server.log_contains("client(s): 1 connections open, at a limit"), "{}", server.log());
    let summaries = server.log().matches("at a limit (--max-connections").count();
    assert!((1..=10).contains(&summaries), "50 refusals made {summaries} warning lines");
}

#[test]
fn transfer_codings_we_do_not_implement_are_501_and_a_final_coding_other_than_chunked_is_400() {
    let server = TestServer::start(&[]);
    for (codings, status) in [("gzip, chunked", 501), ("gzip", 400), ("chunked, chunked", 400)] {
        let raw = format!(
            "POST /upload HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Transfer-Encoding: {codings}\r\n\r\n2\r\n{{}}\r\n0\r\n\r\n",
            server.host()
        );
        let (response, mut stream) = exchange_keep(&server, raw.as_bytes());
        assert_eq!(response.status, status, "{codings}: {}", response.head);
        assert_eq!(response.header("Connection"), Some("close"), "{codings}");
        assert!(read_to_eof(&mut stream).is_empty(), "{codings}: the connection is closed");
    }
    assert_eq!(std::fs::read_dir(server.root.join("uploads")).map_or(0, |d| d.count()), 0);
}

#[test]
fn a_file_that_shrinks_during_its_download_closes_the_connection_without_sending_more_than_promised(
) {
    let server = TestServer::start(&[]);
    write_big_file(&server, "shrinking.png");
    let mut stream = server.connect();
    stream.write_all(get_request(&server, "/shrinking.png").as_bytes()).unwrap();
    let mut start = vec![0u8; 256 * 1024];
    stream.read_exact(&mut start).unwrap();
    let head_end = start.windows(4).position(|w| w == b"\r\n\r\n").expect("a head") + 4;
    let head = String::from_utf8_lossy(&start[..head_end]).into_owned();
    assert!(head.contains("Content-Length: 10485760"), "{head}");
    // The file loses most of itself while the rest is still to be read.
    std::fs::File::options()
        .write(true)
        .open(server.root.join("shrinking.png"))
        .unwrap()
        .set_len(1024 * 1024)
        .unwrap();
    let rest = read_to_eof(&mut stream);
    let body = start.len() - head_end + rest.len();
    assert!(
        body < 10 * 1024 * 1024,
        "the promised length can't be met, so the connection closes early"
    );
    assert!(server.log_contains("aborted mid-response"), "{}", server.log());
    assert_still_serving(&server, "a shrinking download");
}

#[test]
fn slow_readers_holding_files_never_keep_a_normal_client_from_being_served() {
    // 200 descriptors: 136 to share, 34 for files held open by downloads, 102 for connections.
    let server = TestServer::start_with_fd_limit(200, &[]);
    assert!(server.log_contains("allows 102 connections and 34 open files"), "{}", server.log());
    write_big_file(&server, "big.png");
    let request = get_request(&server, "/big.png");
    // 50 clients ask for the big file and read nothing: 34 downloads hold a file each, the rest get 503.
    let mut slow: Vec<TcpStream> = (0..50).map(|_| server.connect()).collect();
    for stream in &mut slow {
        stream.write_all(request.as_bytes()).unwrap();
    }
    let mut refused = 0;
    for stream in &mut slow {
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).unwrap();
        if head.starts_with(b"HTTP/1.1 503") {
            refused += 1;
        } else {
            assert!(head.starts_with(b"HTTP/1.1 200"), "{:?}", String::from_utf8_lossy(&head));
        }
    }
    assert_eq!(refused, 50 - 34, "downloads past the open-file budget are refused, not failed");
    // A normal client is still served while every slow reader holds on.
    assert_still_serving(&server, "slow readers holding every open file");
    assert!(!server.log().contains("ERROR"), "{}", server.log());
}

#[test]
fn one_address_over_its_connection_cap_gets_503_and_a_freed_place_is_given_again() {
    let server = TestServer::start(&["--max-conns-per-ip", "2"]);
    let request = get_request(&server, "/sample.txt");
    let mut held = hold_connections(&server, 2, &request);
    let (refused, mut third) = exchange_keep(&server, request.as_bytes());
    assert_eq!(refused.status, 503, "{}", refused.head);
    assert!(read_to_eof(&mut third).is_empty());
    drop(held.pop());
    let mut served = false;
    for _ in 0..50 {
        if exchange(&server, request.as_bytes()).status == 200 {
            served = true;
            break;
        }
        // The server may not have seen the dropped client's close yet.
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(served, "the place the closed connection held was given back");
}

#[test]
fn a_burst_of_three_thousand_connects_is_all_answered() {
    // With a listen queue of 128 a burst like this overflowed and hundreds of clients were never answered.
    // The default backlog (4096) queues them all, and the server accepts until WouldBlock.
    const CLIENTS: usize = 3000;
    let server = TestServer::start(&[]);
    let request = get_request(&server, "/sample.txt");
    let mut streams: Vec<TcpStream> = (0..CLIENTS)
        .map(|_| {
            let mut stream =
                TcpStream::connect(server.addr).expect("the kernel queues the connect");
            stream.write_all(request.as_bytes()).unwrap();
            stream
        })
        .collect();
    for (i, stream) in streams.iter_mut().enumerate() {
        stream.set_read_timeout(Some(common::IO_TIMEOUT)).unwrap();
        let response = read_response(stream).unwrap_or_else(|| panic!("client {i} got no answer"));
        assert_eq!(response.status, 200, "client {i}: {}", response.head);
    }
}
