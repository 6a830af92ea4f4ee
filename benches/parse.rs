//! Micro-benchmarks of the pure codec: request-head parsing (alone, and as the connection does it for a
//! pipelined batch), response-head building, and chunked body decoding.
//! Run with `cargo bench`; compare numbers only within one run on the same machine.

use http_server::body::BodyDecoder;
use http_server::http::{parse_head, write_head, BodyFraming, Field, Inbox, Persistence, Value};
use http_server::status::Status;
use http_server::Limits;
use std::hint::black_box;
use std::rc::Rc;
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
    // Sixteen pipelined requests in one read, taken off the inbox one head at a time.
    let batch: Vec<u8> = CURL_HEAD.repeat(16);
    bench("Inbox 16 pipelined heads", batch.len(), || {
        let mut inbox = Inbox::default();
        inbox.bytes.extend_from_slice(black_box(&batch));
        for _ in 0..16 {
            let head = inbox.take_head(true, &limits);
            assert!(matches!(head, Ok(Some(_))));
            black_box(head.ok());
        }
    });
    // The head of a cached file's 200: validators shared with the cache, the rest fixed text.
    let etag: Rc<str> = "\"a1b2c3-800-17d4f0e9a3b\"".into();
    let modified: Rc<str> = "Sun, 29 Nov 2026 12:00:00 GMT".into();
    let fields: Vec<Field> = vec![
        ("Content-Type", Value::Static("text/html; charset=utf-8")),
        ("ETag", Value::Shared(etag)),
        ("Last-Modified", Value::Shared(modified)),
        ("Cache-Control", Value::Static("no-cache")),
        ("Accept-Ranges", Value::Static("bytes")),
    ];
    let keep_alive = Persistence::KeepAlive { timeout_secs: 5, remaining: 99 };
    let mut out = Vec::with_capacity(1024);
    bench("write_head cached file 200", 300, || {
        out.clear();
        write_head(
            &mut out,
            Status::OK,
            "Tue, 01 Dec 2026 12:00:00 GMT",
            &fields,
            Some(2048),
            keep_alive,
        );
        black_box(&out);
    });
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
