//! Large files go from the page cache to the socket with sendfile, a capped span at a time, after a
//! non-blocking probe of the page cache. What must hold: every byte is the file's (whole, ranges,
//! precompressed variants), never more than promised when the file changes, and a slow reader costs a few
//! KiB of user-space memory, not a chunk buffer.

mod common;

use common::{
    exchange_with, random_bytes, read_response, request_with_headers, Response, TestServer,
};
use std::io::{Read, Write};
use std::net::TcpStream;

const MIB: usize = 1024 * 1024;

/// Writes `len` pseudo-random bytes to `name` under the server's root and returns them.
fn write_file(server: &TestServer, name: &str, len: usize, seed: u64) -> Vec<u8> {
    let bytes = random_bytes(len, seed);
    std::fs::write(server.root.join(name), &bytes).expect("write the file");
    bytes
}

fn body_of(response: &Response, status: u16) -> &[u8] {
    assert_eq!(response.status, status, "{}", response.head);
    &response.body
}

#[test]
fn whole_files_ranges_and_precompressed_variants_are_byte_exact() {
    let server = TestServer::start(&[]);
    let plain = write_file(&server, "big.txt", 5 * MIB + 3, 1);
    let gzipped = write_file(&server, "big.txt.gz", 3 * MIB + 5, 2);
    let whole = exchange_with(&server, "GET", "/big.txt", &[]);
    assert!(body_of(&whole, 200) == plain, "the whole file");
    let variant = exchange_with(&server, "GET", "/big.txt", &[("Accept-Encoding", "gzip")]);
    assert_eq!(variant.header("Content-Encoding"), Some("gzip"), "{}", variant.head);
    assert!(body_of(&variant, 200) == gzipped, "the precompressed variant");
    // Ranges that start and end inside sendfile spans, across them, and at the very end.
    for (first, last) in [(1, 1), (65_536, 2 * MIB + 7), (MIB - 1, 4 * MIB), (5 * MIB, 5 * MIB + 2)]
    {
        let range = format!("bytes={first}-{last}");
        let part = exchange_with(&server, "GET", "/big.txt", &[("Range", &range)]);
        assert!(body_of(&part, 206) == &plain[first..=last], "{range}");
    }
    let range = "bytes=100-200,3000000-3000100";
    let parts = exchange_with(&server, "GET", "/big.txt", &[("Range", range)]);
    let body = body_of(&parts, 206);
    for (first, last) in [(100, 200), (3_000_000, 3_000_100)] {
        let wanted = &plain[first..=last];
        assert!(body.windows(wanted.len()).any(|w| w == wanted), "part {first}-{last} of {range}");
    }
    let tail = exchange_with(
        &server,
        "GET",
        "/big.txt",
        &[("Accept-Encoding", "gzip"), ("Range", "bytes=-1000")],
    );
    assert!(body_of(&tail, 206) == &gzipped[gzipped.len() - 1000..], "a range of the variant");
}

#[test]
fn a_file_that_grows_during_its_download_sends_exactly_the_promised_bytes_and_the_connection_goes_on(
) {
    let server = TestServer::start(&[]);
    let bytes = write_file(&server, "growing.png", 4 * MIB, 3);
    let mut stream = server.connect();
    stream.set_read_timeout(Some(common::IO_TIMEOUT)).unwrap();
    let get = request_with_headers(&server, "GET", "/growing.png", &[], false);
    stream.write_all(get.as_bytes()).unwrap();
    // Read the head and a little, then let the file grow by a lot while the rest is on its way.
    let mut start = vec![0u8; 128 * 1024];
    stream.read_exact(&mut start).unwrap();
    let mut file =
        std::fs::File::options().append(true).open(server.root.join("growing.png")).unwrap();
    file.write_all(&vec![b'!'; 2 * MIB]).unwrap();
    let mut rest = Vec::new();
    let head_end = start.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let promised = 4 * MIB - (start.len() - head_end);
    rest.resize(promised, 0);
    stream.read_exact(&mut rest).unwrap();
    let mut body = start[head_end..].to_vec();
    body.extend_from_slice(&rest);
    assert!(body == bytes, "the file as it was when its length was promised");
    // Nothing came after the promised length: the next response starts right there.
    stream
        .write_all(request_with_headers(&server, "GET", "/sample.txt", &[], false).as_bytes())
        .unwrap();
    let next = read_response(&mut stream).expect("the next response on the connection");
    assert_eq!(next.status, 200, "{}", next.head);
    assert_eq!(next.body, common::bundled("sample.txt"));
}

#[test]
fn slow_readers_of_a_large_file_hold_a_few_kib_each_not_a_chunk() {
    // Each reader takes the head and a little, then stops reading. Chunks read into memory would hold
    // 64 KiB each (about 30 MiB for these 500); sent from the page cache, a reader holds its connection's
    // state and nothing more.
    const READERS: usize = 500;
    let server = TestServer::start_with_fd_limit(4096, &["--idle-timeout", "60"]);
    write_file(&server, "big.png", 10 * MIB, 4);
    // One download first, so the file is in the page cache and the server's own buffers exist already.
    assert_eq!(server.get("/big.png").status, 200);
    let rss_before = server.memory_kib("VmRSS");
    let get = request_with_headers(&server, "GET", "/big.png", &[], false);
    let readers: Vec<TcpStream> = (0..READERS)
        .map(|_| {
            let mut stream = server.connect();
            stream.write_all(get.as_bytes()).unwrap();
            let mut head = [0u8; 1024];
            stream.read_exact(&mut head).unwrap();
            stream
        })
        .collect();
    let per_reader_kib = server.memory_kib("VmRSS").saturating_sub(rss_before) / READERS as u64;
    assert!(per_reader_kib <= 8, "{per_reader_kib} KiB per slow reader");
    // And they are being served, not refused: a normal client still gets its page.
    assert_eq!(server.get("/index.html").status, 200);
    drop(readers);
}

#[test]
fn a_file_replaced_during_its_download_sends_the_file_it_promised_and_the_next_request_gets_the_new_one(
) {
    let server = TestServer::start(&["--file-cache-window", "0"]);
    let old = write_file(&server, "replaced.png", 4 * MIB, 5);
    let mut stream = server.connect();
    stream.set_read_timeout(Some(common::IO_TIMEOUT)).unwrap();
    let get = request_with_headers(&server, "GET", "/replaced.png", &[], false);
    stream.write_all(get.as_bytes()).unwrap();
    let mut start = vec![0u8; 128 * 1024];
    stream.read_exact(&mut start).unwrap();
    // A deploy swaps the file atomically: a new one renamed over the old.
    let new = random_bytes(MIB, 6);
    std::fs::write(server.root.join("replaced.png.new"), &new).unwrap();
    std::fs::rename(server.root.join("replaced.png.new"), server.root.join("replaced.png"))
        .unwrap();
    let head_end = start.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mut rest = vec![0u8; 4 * MIB - (start.len() - head_end)];
    stream.read_exact(&mut rest).unwrap();
    let mut body = start[head_end..].to_vec();
    body.extend_from_slice(&rest);
    assert!(body == old, "the open file is the old one, sent whole");
    stream.write_all(get.as_bytes()).unwrap();
    let next = read_response(&mut stream).expect("the next response on the connection");
    assert!(body_of(&next, 200) == new, "the new file");
}
