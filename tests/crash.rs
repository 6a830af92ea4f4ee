//! Crash consistency: `kill -9` in the middle of a flood of concurrent uploads. Every upload that was
//! acknowledged with 201 is there, complete and byte-identical; no partial or temporary file is ever served;
//! the restart removes the temporary leftovers. A few bounded rounds.

mod common;

use common::{read_response, TestServer, IO_TIMEOUT};
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Clients uploading at once.
const CLIENTS: usize = 8;

/// Rounds of flood, kill and restart.
const ROUNDS: usize = 3;

/// One client's uploads until the server dies: each acknowledged one, with its bytes, goes into `stored`.
fn flood(
    addr: std::net::SocketAddr,
    client: usize,
    stop: &AtomicBool,
    stored: &Mutex<Vec<(String, Vec<u8>)>>,
) {
    for n in 0.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        // Odd clients send bodies past one 64 KiB window, which stream to their temporary files as they arrive.
        let pad = if client % 2 == 1 { 150_000 } else { 4096 } + n % 512;
        let body =
            format!("{{\"client\": {client}, \"n\": {n}, \"pad\": \"{}\"}}", "p".repeat(pad));
        let Ok(mut stream) = TcpStream::connect(addr) else { return };
        let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
        let head = format!(
            "POST /upload HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n",
            body.len()
        );
        if stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(body.as_bytes()))
            .is_err()
        {
            return;
        }
        // A crash mid-response reads as an error or EOF; only a complete 201 counts as acknowledged.
        let Ok(Some(response)) =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_response(&mut stream)))
        else {
            return;
        };
        if response.status == 201 {
            if let Some(location) = response.header("Location") {
                stored.lock().unwrap().push((location.to_owned(), body.into_bytes()));
            }
        }
    }
}

fn temp_files(uploads: &Path) -> Vec<String> {
    std::fs::read_dir(uploads)
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn kill_9_during_an_upload_flood_loses_no_acknowledged_upload_and_serves_no_partial_one() {
    let mut server = TestServer::start(&["--log-level", "info"]);
    let mut acknowledged: Vec<(String, Vec<u8>)> = Vec::new();
    for round in 0..ROUNDS {
        let stop = Arc::new(AtomicBool::new(false));
        let stored = Arc::new(Mutex::new(Vec::new()));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let (addr, stop, stored) = (server.addr, Arc::clone(&stop), Arc::clone(&stored));
                std::thread::spawn(move || flood(addr, client + round * CLIENTS, &stop, &stored))
            })
            .collect();
        // Let uploads pile up, then crash while they are in every stage: bodies arriving, stores under way.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while stored.lock().unwrap().len() < 20 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let root = server.kill_keeping_root();
        stop.store(true, Ordering::Relaxed);
        for client in clients {
            client.join().unwrap();
        }
        acknowledged.extend(std::mem::take(&mut *stored.lock().unwrap()));
        assert!(
            !acknowledged.is_empty(),
            "round {round}: no upload was acknowledged before the kill"
        );
        // Every acknowledged upload survived the crash, byte for byte.
        for (location, body) in &acknowledged {
            let on_disk = std::fs::read(root.join(location.trim_start_matches('/')))
                .unwrap_or_else(|e| {
                    panic!("round {round}: {location} was acknowledged but is gone: {e}")
                });
            assert!(on_disk == *body, "round {round}: {location} differs from what was sent");
        }
        // The restart removes what the crash left half-written, and serves the survivors.
        server = TestServer::start_in(root, &["--log-level", "info"]);
        assert!(
            temp_files(&server.root.join("uploads")).is_empty(),
            "round {round}: temporary files left"
        );
        let (location, body) = &acknowledged[acknowledged.len() / 2];
        let served = server.get(location);
        assert_eq!((served.status, &served.body), (200, body), "round {round}: {location}");
    }
    // No file under a final name is anything but a complete, valid upload.
    for entry in std::fs::read_dir(server.root.join("uploads")).unwrap() {
        let entry = entry.unwrap();
        let bytes = std::fs::read(entry.path()).unwrap();
        serde_json::from_slice::<serde_json::Value>(&bytes)
            .unwrap_or_else(|e| panic!("{:?} is not a complete upload: {e}", entry.file_name()));
    }
}
