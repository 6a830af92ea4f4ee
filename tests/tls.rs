//! HTTPS: the real binary with certificates made at test time (rcgen), talked to with a rustls client over
//! TCP with timeouts, and with curl where it fits.

mod common;

use common::*;
use rustls::pki_types::ServerName;
use rustls::{
    ClientConfig, ClientConnection, RootCertStore, StreamOwned, SupportedProtocolVersion,
};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A certificate authority and a certificate it signed for `localhost` and 127.0.0.1, as PEM files.
struct Pki {
    ca: String,
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    /// Makes a fresh authority and server pair in `dir`, under `name`.
    fn new(dir: &Path, name: &str) -> Pki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, format!("test CA {name}"));
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        let pki = Pki {
            ca: ca.pem(),
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        std::fs::write(&pki.cert, cert.pem()).unwrap();
        std::fs::write(&pki.key, key.serialize_pem()).unwrap();
        pki
    }

    /// The server arguments that use this pair.
    fn args(&self) -> [&str; 4] {
        ["--tls-cert", self.cert.to_str().unwrap(), "--tls-key", self.key.to_str().unwrap()]
    }

    /// A client that trusts only this authority, speaking `versions` and offering `alpn`.
    fn client(
        &self,
        versions: &[&'static SupportedProtocolVersion],
        alpn: &[&[u8]],
    ) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(self.ca.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    /// A TLS 1.3 client offering ALPN `http/1.1`.
    fn default_client(&self) -> Arc<ClientConfig> {
        self.client(&[&rustls::version::TLS13], &[b"http/1.1"])
    }
}

use rustls::pki_types::pem::PemObject;

type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// A TLS connection to `server` for `localhost`, handshake done.
fn connect_tls(server: &TestServer, config: Arc<ClientConfig>) -> TlsStream {
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(config, name).unwrap();
    let mut stream = StreamOwned::new(conn, server.connect());
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock).expect("TLS handshake");
    }
    stream
}

/// A server speaking HTTPS with a fresh pair; its files live in the server's root (removed with it).
fn tls_server(extra: &[&str]) -> (TestServer, Pki) {
    let root = TestServer::bundled_root();
    let pki = Pki::new(&root, "server");
    let mut args: Vec<&str> = pki.args().to_vec();
    args.extend_from_slice(extra);
    (TestServer::start_in(root, &args), pki)
}

fn get(server: &TestServer, path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", server.host()).into_bytes()
}

#[test]
fn get_and_post_work_over_tls_1_3_and_1_2_with_alpn_http_1_1() {
    let (server, pki) = tls_server(&[]);
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let mut stream = connect_tls(&server, pki.client(&[version], &[b"h2", b"http/1.1"]));
        assert_eq!(stream.conn.protocol_version(), Some(version.version));
        assert_eq!(stream.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
        stream.write_all(&get(&server, "/")).unwrap();
        let response = read_response(&mut stream).expect("a response");
        assert_eq!(response.status, 200);
        assert_eq!(response.body, bundled("index.html"));
        let body = br#"{"over": "tls"}"#;
        let post = format!(
            "POST /upload HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            server.host(),
            body.len()
        );
        stream.write_all(post.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let created = read_response(&mut stream).expect("a response");
        assert_eq!(created.status, 201, "{}", created.head);
        let location = created.header("Location").expect("Location").trim_start_matches('/');
        assert_eq!(std::fs::read(server.root.join(location)).unwrap(), body);
    }
}

#[test]
fn a_client_without_alpn_is_served_and_one_offering_only_h2_is_refused() {
    let (server, pki) = tls_server(&[]);
    let mut plain = connect_tls(&server, pki.client(&[&rustls::version::TLS13], &[]));
    assert_eq!(plain.conn.alpn_protocol(), None);
    plain.write_all(&get(&server, "/sample.txt")).unwrap();
    assert_eq!(read_response(&mut plain).unwrap().status, 200);

    let name = ServerName::try_from("localhost").unwrap();
    let config = pki.client(&[&rustls::version::TLS13], &[b"h2"]);
    let mut conn = ClientConnection::new(config, name).unwrap();
    let mut socket = server.connect();
    let mut failed = None;
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut socket) {
            failed = Some(e);
            break;
        }
    }
    let failed = failed.expect("the handshake fails: we speak no h2");
    assert!(failed.to_string().contains("NoApplicationProtocol"), "{failed}");
}

#[test]
fn keep_alive_and_three_pipelined_requests_in_one_write_over_tls() {
    let (server, pki) = tls_server(&[]);
    let mut stream = connect_tls(&server, pki.default_client());
    let mut batch = Vec::new();
    for path in ["/", "/sample.txt", "/about.html"] {
        batch.extend_from_slice(&get(&server, path));
    }
    stream.write_all(&batch).unwrap();
    for name in ["index.html", "sample.txt", "about.html"] {
        let response = read_response(&mut stream).expect("a response");
        assert_eq!(response.status, 200);
        assert_eq!(response.body, bundled(name), "{name}");
    }
    // Still open for another request, sent a few bytes at a time.
    for piece in get(&server, "/contact.html").chunks(5) {
        stream.write_all(piece).unwrap();
        stream.flush().unwrap();
    }
    assert_eq!(read_response(&mut stream).unwrap().body, bundled("contact.html"));
}

#[test]
fn a_10_mib_download_and_a_range_of_it_are_byte_exact_over_tls() {
    let (server, pki) = tls_server(&[]);
    let body = random_bytes(10 * 1024 * 1024, 11);
    std::fs::write(server.root.join("big.txt"), &body).unwrap();
    let mut stream = connect_tls(&server, pki.default_client());
    stream.write_all(&get(&server, "/big.txt")).unwrap();
    let response = read_response(&mut stream).expect("a response");
    assert_eq!(response.status, 200);
    assert!(response.body == body, "the download differs from the file");
    let range = format!(
        "GET /big.txt HTTP/1.1\r\nHost: {}\r\nRange: bytes=5000000-5999999\r\n\r\n",
        server.host()
    );
    stream.write_all(range.as_bytes()).unwrap();
    let part = read_response(&mut stream).expect("a response");
    assert_eq!(part.status, 206);
    assert!(part.body == body[5_000_000..6_000_000], "the range differs from the file");
}

#[test]
fn tls_sessions_resume_with_tickets_and_with_the_session_cache() {
    let (server, pki) = tls_server(&[]);
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        // The client config carries the client's session store, so the second connection can resume. The
        // TLS 1.2 client takes no tickets, so it resumes only if the server's session cache has its session.
        let mut config = pki.client(&[version], &[b"http/1.1"]);
        if version == &rustls::version::TLS12 {
            Arc::make_mut(&mut config).resumption = rustls::client::Resumption::default()
                .tls12_resumption(rustls::client::Tls12Resumption::SessionIdOnly);
        }
        let mut first = connect_tls(&server, Arc::clone(&config));
        first.write_all(&get(&server, "/")).unwrap();
        read_response(&mut first).expect("a response");
        let second = connect_tls(&server, config);
        assert_eq!(
            second.conn.handshake_kind(),
            Some(rustls::HandshakeKind::Resumed),
            "{version:?}"
        );
    }
}

#[test]
fn plain_http_on_the_tls_port_gets_a_readable_400_and_a_close() {
    let (server, _pki) = tls_server(&[]);
    let mut socket = server.connect();
    socket.write_all(&get(&server, "/")).unwrap();
    let reply = String::from_utf8_lossy(&read_to_eof(&mut socket)).into_owned();
    assert!(reply.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{reply}");
    assert!(reply.contains("Content-Type: text/plain"), "{reply}");
    assert!(reply.contains("https://"), "{reply}");
}

#[test]
fn garbage_instead_of_a_client_hello_is_closed_and_the_server_serves_on() {
    let (server, pki) = tls_server(&[]);
    let garbage: [&[u8]; 3] = [
        &random_bytes(600, 3),
        // A handshake record header with nonsense after it.
        b"\x16\x03\x01\x00\x20not a client hello at all, sorry!",
        b"\x00\x00\x00\x00\xff\xff\xff\xff",
    ];
    for bytes in garbage {
        let mut socket = server.connect();
        socket.write_all(bytes).unwrap();
        // An alert at most, then EOF: never a hang.
        let reply = read_to_eof(&mut socket);
        assert!(reply.len() < 64, "{reply:?}");
    }
    let mut stream = connect_tls(&server, pki.default_client());
    stream.write_all(&get(&server, "/")).unwrap();
    assert_eq!(read_response(&mut stream).unwrap().status, 200);
    assert!(server.log_contains("TLS failed"), "{}", server.log());
}

#[test]
fn a_stalled_handshake_is_cut_by_the_timeout() {
    let (server, _pki) = tls_server(&["--idle-timeout", "1"]);
    let mut socket = server.connect();
    // The first bytes of a ClientHello, and then nothing.
    socket.write_all(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03").unwrap();
    // A close_notify alert at most, then EOF: at the idle timeout, not at once.
    let reply = read_to_eof(&mut socket);
    assert!(reply.len() < 16, "{reply:?}");
    assert!(server.log_contains("idle timeout, closing"), "{}", server.log());
}

#[test]
fn a_stop_and_connection_close_end_tls_with_close_notify() {
    let (mut server, pki) = tls_server(&[]);
    let mut closing = connect_tls(&server, pki.default_client());
    let request = format!("GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", server.host());
    closing.write_all(request.as_bytes()).unwrap();
    assert_eq!(read_response(&mut closing).unwrap().status, 200);
    // rustls reports a close without close_notify as UnexpectedEof, so Ok(0) proves it was sent.
    assert_eq!(closing.read(&mut [0u8; 16]).expect("close_notify, then EOF"), 0);

    let mut idle = connect_tls(&server, pki.default_client());
    idle.write_all(&get(&server, "/")).unwrap();
    read_response(&mut idle).expect("a response");
    server.signal("TERM");
    assert_eq!(idle.read(&mut [0u8; 16]).expect("close_notify, then EOF"), 0);
    assert_eq!(server.wait_exit(EXIT_TIMEOUT).and_then(|s| s.code()), Some(0));
}

/// The server's RSS once three readings 100 ms apart agree within 1%, or after IO_TIMEOUT.
fn settled_rss_kib(server: &TestServer) -> u64 {
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut readings = vec![server.memory_kib("VmRSS")];
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        readings.push(server.memory_kib("VmRSS"));
        let last = &readings[readings.len().saturating_sub(3)..];
        let (low, high) = (last.iter().min().unwrap(), last.iter().max().unwrap());
        if last.len() == 3 && (high - low) * 100 <= *high {
            break;
        }
    }
    readings[readings.len() - 1]
}

/// The address of the `--redirect-http` listener, from the server's log.
fn redirect_addr(server: &TestServer) -> std::net::SocketAddr {
    wait_for_log(server, "redirecting to https from ");
    server
        .log()
        .split("redirecting to https from ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .and_then(|addr| addr.trim().parse().ok())
        .expect("the redirect listener's address")
}

/// Waits until the log has `needle` (a reload runs on its own thread), or panics.
fn wait_for_log(server: &TestServer, needle: &str) {
    let deadline = Instant::now() + IO_TIMEOUT;
    while !server.log_contains(needle) {
        assert!(Instant::now() < deadline, "no {needle:?} in the log: {}", server.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sighup_reloads_the_certificate_for_new_connections_and_refuses_a_broken_one() {
    let (server, old) = tls_server(&[]);
    let mut before = connect_tls(&server, old.default_client());
    // The new pair is written over the files the server was started with.
    let staging = temp_root();
    let new = Pki::new(&staging, "new");
    std::fs::copy(&new.cert, &old.cert).unwrap();
    std::fs::copy(&new.key, &old.key).unwrap();
    server.signal("HUP");
    wait_for_log(&server, "TLS: reloaded");
    let mut after = connect_tls(&server, new.default_client());
    after.write_all(&get(&server, "/")).unwrap();
    assert_eq!(read_response(&mut after).unwrap().status, 200);
    // The old certificate is no longer shown to new clients...
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = ClientConnection::new(old.default_client(), name).unwrap();
    let mut socket = server.connect();
    let refused = loop {
        match conn.complete_io(&mut socket) {
            Err(e) => break e,
            Ok(_) if !conn.is_handshaking() => panic!("the old authority still verifies"),
            Ok(_) => {}
        }
    };
    assert!(refused.to_string().contains("UnknownIssuer"), "{refused}");
    // ...but the connection made before the reload keeps its session.
    before.write_all(&get(&server, "/sample.txt")).unwrap();
    assert_eq!(read_response(&mut before).unwrap().status, 200);

    std::fs::write(&old.cert, "-----BEGIN CERTIFICATE-----\nbroken\n").unwrap();
    server.signal("HUP");
    wait_for_log(&server, "TLS: reload refused");
    let mut still = connect_tls(&server, new.default_client());
    still.write_all(&get(&server, "/")).unwrap();
    assert_eq!(read_response(&mut still).unwrap().status, 200);
    let _ = std::fs::remove_dir_all(staging);
}

#[test]
fn redirect_http_answers_308_to_the_https_url_with_the_same_host_path_and_query() {
    let (server, pki) = tls_server(&[
        "--redirect-http",
        "0",
        "--auth",
        "ann:secret",
        "--header",
        "Strict-Transport-Security: max-age=600",
        "--header",
        "X-Frame-Options: DENY",
    ]);
    let redirect = redirect_addr(&server);
    let open = |request: String| {
        let mut socket = TcpStream::connect(redirect).unwrap();
        socket.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        socket.write_all(request.as_bytes()).unwrap();
        let response = read_response(&mut socket).expect("a response");
        (response, socket)
    };
    let ask = |request: String| open(request).0;
    let host = format!("localhost:{}", redirect.port());
    let https = format!("https://localhost:{}", server.addr.port());
    let moved = ask(format!("GET /folder/a%20b.txt?x=1&y=2 HTTP/1.1\r\nHost: {host}\r\n\r\n"));
    assert_eq!(moved.status, 308, "{}", moved.head);
    let location = format!("{https}/folder/a%20b.txt?x=1&y=2");
    assert_eq!(moved.header("Location"), Some(location.as_str()));
    // No credentials are asked for in the clear, and HSTS is never sent there (RFC 6797 §7.2).
    assert_eq!(moved.header("WWW-Authenticate"), None);
    assert_eq!(moved.header("Strict-Transport-Security"), None);
    assert_eq!(moved.header("X-Frame-Options"), Some("DENY"));
    let (post, mut socket) =
        open(format!("POST /upload HTTP/1.1\r\nHost: {host}\r\nContent-Length: 2\r\n\r\n{{}}"));
    assert_eq!(post.status, 308);
    assert_eq!(post.header("Location"), Some(format!("{https}/upload").as_str()));
    // Its body was not read, so the connection can't go on.
    assert!(read_to_eof(&mut socket).is_empty());
    // A name that is not ours is not redirected to: no open redirector.
    let foreign = ask("GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n".to_owned());
    assert_eq!(foreign.status, 403);
    assert_eq!(foreign.header("Location"), None);
    assert_eq!(foreign.header("WWW-Authenticate"), None);
    // The HTTPS port asks for credentials, and sends HSTS.
    let mut stream = connect_tls(&server, pki.default_client());
    stream.write_all(&get(&server, "/")).unwrap();
    let asked = read_response(&mut stream).unwrap();
    assert_eq!(asked.status, 401);
    assert_eq!(asked.header("Strict-Transport-Security"), Some("max-age=600"));
}

#[test]
fn curl_downloads_over_https_with_the_authority_given() {
    let (server, pki) = tls_server(&[]);
    let ca = server.root.join("ca.pem");
    std::fs::write(&ca, &pki.ca).unwrap();
    let url = format!("https://localhost:{}/sample.txt", server.addr.port());
    let resolve = format!("localhost:{}:127.0.0.1", server.addr.port());
    let Some(out) = curl(&["-sS", "--cacert", ca.to_str().unwrap(), "--resolve", &resolve, &url])
    else {
        return;
    };
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, bundled("sample.txt"));
}

#[test]
fn every_tls_startup_error_is_clear_and_exits_2() {
    let dir = temp_root();
    let a = Pki::new(&dir, "a");
    let b = Pki::new(&dir, "b");
    let text = dir.join("text.pem");
    std::fs::write(&text, "just some words\n").unwrap();
    let broken = dir.join("broken.pem");
    std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\n%%%%\n").unwrap();
    let missing = dir.join("missing.pem");
    let path = |p: &PathBuf| p.to_str().unwrap().to_owned();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--tls-cert".into(), path(&a.cert)], "--tls-key"),
        (vec!["--tls-key".into(), path(&a.key)], "--tls-cert"),
        (vec!["--redirect-http".into(), "0".into()], "--tls-cert"),
        (
            vec!["--tls-cert".into(), path(&missing), "--tls-key".into(), path(&a.key)],
            "cannot read",
        ),
        (
            vec!["--tls-cert".into(), path(&text), "--tls-key".into(), path(&a.key)],
            "no certificate",
        ),
        (
            vec!["--tls-cert".into(), path(&broken), "--tls-key".into(), path(&a.key)],
            "not valid PEM",
        ),
        (
            vec!["--tls-cert".into(), path(&a.cert), "--tls-key".into(), path(&text)],
            "no private key",
        ),
        (
            vec!["--tls-cert".into(), path(&a.cert), "--tls-key".into(), path(&b.key)],
            "does not match",
        ),
    ];
    for (tls_args, expected) in cases {
        let mut args = vec!["0", "127.0.0.1", "--root", "{root}"];
        args.extend(tls_args.iter().map(String::as_str));
        let exited = run_to_exit(&args, &[]);
        assert_eq!(exited.code, Some(2), "{args:?}: {exited:?}");
        assert!(exited.stderr.contains(expected), "{args:?}: {}", exited.stderr);
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_tls_client_over_the_connection_limit_is_closed_without_a_reply_in_the_clear() {
    let (server, pki) = tls_server(&["--max-connections", "1"]);
    let mut held = connect_tls(&server, pki.default_client());
    let mut refused = server.connect();
    // The start of a ClientHello: the kernel hands the connection over once it has arrived, and the close
    // must be a FIN after it is read, not a reset.
    refused.write_all(b"\x16\x03\x01\x00\x05hello").unwrap();
    let mut reply = Vec::new();
    let end = refused.read_to_end(&mut reply);
    assert!(end.is_ok(), "{end:?}");
    assert!(reply.is_empty(), "{:?}", String::from_utf8_lossy(&reply));
    held.write_all(&get(&server, "/")).unwrap();
    assert_eq!(read_response(&mut held).unwrap().status, 200);
}

#[test]
fn a_304_and_the_access_log_work_over_tls_as_in_the_clear() {
    let (server, pki) = tls_server(&[]);
    let mut stream = connect_tls(&server, pki.default_client());
    stream.write_all(&get(&server, "/sample.txt")).unwrap();
    let first = read_response(&mut stream).expect("a response");
    let etag = first.header("ETag").expect("an ETag").to_owned();
    let again = format!(
        "GET /sample.txt HTTP/1.1\r\nHost: {}\r\nIf-None-Match: {etag}\r\n\r\n",
        server.host()
    );
    stream.write_all(again.as_bytes()).unwrap();
    let not_modified = read_response_head_only(&mut stream).expect("a response");
    assert_eq!(not_modified.status, 304, "{}", not_modified.head);
    wait_for_log(&server, "\"GET /sample.txt HTTP/1.1\" 304");
}

#[test]
fn slow_tls_readers_of_a_large_file_hold_a_bounded_amount_each() {
    // Under TLS a file can't go by sendfile: each reader holds rustls's 64 KiB of records, and its copy of
    // the worker's chunk only until rustls has taken it, whatever the file's size.
    const READERS: usize = 100;
    let (server, pki) = tls_server(&["--idle-timeout", "60"]);
    std::fs::write(server.root.join("big.png"), random_bytes(10 * 1024 * 1024, 7)).unwrap();
    let config = pki.default_client();
    let mut warm = connect_tls(&server, Arc::clone(&config));
    warm.write_all(&get(&server, "/big.png")).unwrap();
    assert_eq!(read_response(&mut warm).unwrap().status, 200);
    drop(warm);
    let rss_before = server.memory_kib("VmRSS");
    let readers: Vec<TlsStream> = (0..READERS)
        .map(|_| {
            let mut stream = connect_tls(&server, Arc::clone(&config));
            stream.write_all(&get(&server, "/big.png")).unwrap();
            stream.read_exact(&mut [0u8; 1024]).unwrap();
            stream
        })
        .collect();
    // What the server holds grows until each reader's socket and rustls are full: wait for it to settle.
    let per_reader_kib = settled_rss_kib(&server).saturating_sub(rss_before) / READERS as u64;
    // About 40 KiB measured; a chunk held beside rustls's records would be over 128.
    assert!(per_reader_kib <= 80, "{per_reader_kib} KiB per slow TLS reader");
    let mut fresh = connect_tls(&server, config);
    fresh.write_all(&get(&server, "/")).unwrap();
    assert_eq!(read_response(&mut fresh).unwrap().status, 200);
    drop(readers);
}

#[test]
fn a_handshake_past_16_kib_is_refused_instead_of_buffered() {
    let (server, _pki) = tls_server(&["--idle-timeout", "30"]);
    let mut socket = server.connect();
    // A ClientHello announcing 65,520 bytes, of which 20,000 come in two full-size records.
    let mut message = b"\x01\x00\xff\xf0".to_vec();
    message.resize(20_000, 0x41);
    let mut hello = Vec::new();
    for fragment in message.chunks(16 * 1024) {
        hello.extend_from_slice(b"\x16\x03\x01");
        hello.extend_from_slice(&(fragment.len() as u16).to_be_bytes());
        hello.extend_from_slice(fragment);
    }
    let _ = socket.write_all(&hello);
    // Closed long before the idle timeout, with an alert at most.
    let reply = read_to_eof(&mut socket);
    assert!(reply.len() < 64, "{reply:?}");
    assert!(server.log_contains("TLS handshake over 16384 bytes"), "{}", server.log());
}

#[test]
fn an_absolute_https_target_is_served_and_keeps_its_path_in_a_redirect() {
    let (server, pki) = tls_server(&["--redirect-http", "0"]);
    let mut stream = connect_tls(&server, pki.default_client());
    let port = server.addr.port();
    let absolute = format!(
        "GET https://localhost:{port}/sample.txt HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n"
    );
    stream.write_all(absolute.as_bytes()).unwrap();
    let response = read_response(&mut stream).expect("a response");
    assert_eq!(response.status, 200, "{}", response.head);
    assert_eq!(response.body, bundled("sample.txt"));
    let redirect = redirect_addr(&server);
    let redirect_port = redirect.port();
    let mut socket = TcpStream::connect(redirect).unwrap();
    socket.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let request = format!(
        "GET https://localhost:{redirect_port}/p?q=1 HTTP/1.1\r\nHost: localhost:{redirect_port}\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).unwrap();
    let moved = read_response(&mut socket).expect("a response");
    let location = format!("https://localhost:{port}/p?q=1");
    assert_eq!(moved.header("Location"), Some(location.as_str()), "{}", moved.head);
}

#[test]
fn an_idle_timeout_and_a_clients_close_notify_are_answered_with_close_notify() {
    let (server, pki) = tls_server(&["--idle-timeout", "1"]);
    let mut idle = connect_tls(&server, pki.default_client());
    idle.write_all(&get(&server, "/")).unwrap();
    read_response(&mut idle).expect("a response");
    assert_eq!(idle.read(&mut [0u8; 16]).expect("close_notify at the idle timeout"), 0);

    let mut leaving = connect_tls(&server, pki.default_client());
    leaving.conn.send_close_notify();
    leaving.flush().unwrap();
    while leaving.conn.wants_write() {
        leaving.conn.write_tls(&mut leaving.sock).unwrap();
    }
    assert_eq!(leaving.read(&mut [0u8; 16]).expect("our close_notify in reply"), 0);
}
