//! Micro-benchmarks of the pure codec: request-head parsing and chunked body decoding.
//! Run with `cargo bench`; compare numbers only within one run on the same machine.

use http_server::body::BodyDecoder;
use http_server::http::{parse_head, BodyFraming};
use http_server::Limits;
use std::hint::black_box;
use std::time::Instant;

const ITERATIONS: u32 = 200_000;

const CURL_HEAD: &[u8] =
    b"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";

const BROWSER_HEAD: &[u8] = b"GET /about.html HTTP/1.1\r\nHost: localhost:8080\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\nAccept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\nConnection: keep-alive\r\nUpgrade-Insecure-Requests: 1\r\n\
Sec-Fetch-Dest: document\r\nSec-Fetch-Mode: navigate\r\nSec-Fetch-Site: none\r\nSec-Fetch-User: ?1\r\n\
Cookie: session=0123456789abcdef0123456789abcdef; theme=dark\r\nPriority: u=0, i\r\n\r\n";

fn bench(name: &str, bytes: usize, mut f: impl FnMut()) {
    for _ in 0..ITERATIONS / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..ITERATIONS {
        f();
    }
    let per_op = start.elapsed() / ITERATIONS;
    let mib_s = bytes as f64 / per_op.as_secs_f64() / (1024.0 * 1024.0);
    println!("{name:<28} {per_op:>10.2?}/op {mib_s:>10.1} MiB/s");
}

fn main() {
    let limits = Limits::default();
    for (name, head) in [("parse_head curl", CURL_HEAD), ("parse_head browser", BROWSER_HEAD)] {
        bench(name, head.len(), || {
            let parsed = parse_head(black_box(head), &limits);
            assert!(matches!(parsed, Ok(Some(_))));
            black_box(parsed.ok());
        });
    }
    let chunk = vec![b'x'; 4096];
    let mut chunked = Vec::new();
    for _ in 0..16 {
        chunked.extend_from_slice(b"1000\r\n");
        chunked.extend_from_slice(&chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let mut body = Vec::with_capacity(64 * 1024);
    bench("decode chunked 64 KiB", chunked.len(), || {
        body.clear();
        let mut decoder = BodyDecoder::new(BodyFraming::Chunked);
        let used = decoder.decode(black_box(&chunked), &mut body, usize::MAX, usize::MAX);
        assert_eq!(used, Ok(chunked.len()));
        black_box(&body);
    });
}
