//! Hot files under a stampede: right after start, more clients than the worker queue holds ask for the same
//! file at once, against one worker, and every one of them gets the file. (That their misses share one open
//! is shown deterministically by the connection's unit test
//! `misses_for_one_file_share_one_open_and_the_waiters_are_answered_from_its_result`; here the timing of the
//! first completion decides how many requests miss at all.)

mod common;

use common::{read_response, TestServer, IO_TIMEOUT};
use std::io::Write;
use std::net::TcpStream;

/// Clients asking at once: more than the 1024 jobs the worker queue admits.
const CLIENTS: usize = 1500;

/// Raises this process's descriptor limit so the test can hold every client socket.
fn allow_descriptors(wanted: u64) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let current = limit.current.unwrap_or(u64::MAX);
    if current < wanted {
        let raised = Rlimit {
            current: Some(limit.maximum.map_or(wanted, |max| max.min(wanted))),
            maximum: limit.maximum,
        };
        let _ = setrlimit(Resource::Nofile, raised);
    }
}

#[test]
fn a_stampede_on_one_file_against_one_worker_is_all_200s() {
    allow_descriptors(CLIENTS as u64 + 256);
    let server = TestServer::start_command(
        &[
            "-p",
            "0",
            "-b",
            "127.0.0.1",
            "-t",
            "1",
            "-d",
            "{root}",
            "--log-level",
            "warn",
            "--access-log",
            "off",
        ],
        &[],
    );
    let page = "<p>hot</p>".repeat(200);
    std::fs::write(server.root.join("hot.html"), &page).unwrap();
    let request =
        format!("GET /hot.html HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", server.host());
    // Connect everyone first, then ask all at once.
    let mut clients: Vec<TcpStream> = (0..CLIENTS)
        .map(|_| {
            let stream = TcpStream::connect(server.addr).expect("connect");
            stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            stream
        })
        .collect();
    for stream in &mut clients {
        stream.write_all(request.as_bytes()).unwrap();
    }
    let mut statuses = std::collections::BTreeMap::new();
    for stream in &mut clients {
        let response = read_response(stream).expect("a response");
        if response.status == 200 {
            assert_eq!(response.body, page.as_bytes());
        }
        *statuses.entry(response.status).or_insert(0) += 1;
    }
    assert_eq!(statuses.get(&200), Some(&CLIENTS), "statuses: {statuses:?}");
}
