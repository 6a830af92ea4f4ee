//! The upload page in a real browser: headless Chromium driven over the WebDriver protocol (plain HTTP to
//! chromedriver, no client crate). It skips, saying so, where Chromium or chromedriver is missing; `.ci/run`
//! installs both, so in CI it runs.

mod common;

use common::TestServer;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long the page may take to do what a test waits for.
const PAGE_TIMEOUT: Duration = Duration::from_secs(20);

/// The WebDriver name of an element reference (W3C WebDriver §12.1).
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process, killed on drop.
struct Driver {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    /// Starts chromedriver on a free port, or `None` (with a note) when it or Chromium is not installed.
    fn start() -> Option<Driver> {
        if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
            eprintln!("chromium or chromedriver not installed: browser test skipped");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).ok()?.port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let driver = Driver { child, addr: SocketAddr::from(([127, 0, 0, 1], port)) };
        let deadline = Instant::now() + PAGE_TIMEOUT;
        while Instant::now() < deadline {
            if driver.call("GET", "/status", None).is_some_and(|v| v["value"]["ready"] == true) {
                return Some(driver);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("chromedriver did not become ready: browser test skipped");
        None
    }

    /// One WebDriver command; `None` if chromedriver can't be reached.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Option<Value> {
        let mut stream = TcpStream::connect(self.addr).ok()?;
        stream.set_read_timeout(Some(PAGE_TIMEOUT)).ok()?;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        stream.write_all(request.as_bytes()).ok()?;
        // chromedriver keeps the connection open: read the head, then exactly the body it announces.
        let mut raw = Vec::new();
        let mut byte = [0u8; 1];
        while !raw.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).ok()?;
            raw.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&raw).to_ascii_lowercase();
        let len: usize =
            head.lines().find_map(|l| l.strip_prefix("content-length:"))?.trim().parse().ok()?;
        let mut body = vec![0; len];
        stream.read_exact(&mut body).ok()?;
        serde_json::from_slice(&body).ok()
    }
}

/// A browser session, closed on drop.
struct Session<'a> {
    driver: &'a Driver,
    id: String,
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        let _ = self.driver.call("DELETE", &format!("/session/{}", self.id), None);
    }
}

impl<'a> Session<'a> {
    /// A headless Chromium with a fresh profile and no background traffic (this machine has no network).
    fn open(driver: &'a Driver, profile: &Path) -> Option<Session<'a>> {
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ];
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}});
        let created = driver.call("POST", "/session", Some(capabilities))?;
        match created["value"]["sessionId"].as_str() {
            Some(id) => Some(Session { driver, id: id.to_owned() }),
            None => {
                eprintln!(
                    "Chromium could not be started ({}): browser test skipped",
                    created["value"]["message"]
                );
                None
            }
        }
    }

    fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.id);
        let answer = self.driver.call(method, &path, body).expect("chromedriver answers");
        assert!(answer["value"].get("error").is_none(), "{method} {path}: {answer}");
        answer["value"].clone()
    }

    fn go(&self, url: &str) {
        self.command("POST", "/url", Some(json!({ "url": url })));
    }

    fn find(&self, css: &str) -> String {
        let found =
            self.command("POST", "/element", Some(json!({"using": "css selector", "value": css})));
        found[ELEMENT].as_str().expect("an element reference").to_owned()
    }

    /// Runs a script in the page and returns its value.
    fn script(&self, script: &str) -> Value {
        self.command("POST", "/execute/sync", Some(json!({"script": script, "args": []})))
    }

    fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css);
        self.command("POST", &format!("/element/{element}/clear"), Some(json!({})));
        self.command("POST", &format!("/element/{element}/value"), Some(json!({ "text": text })));
    }

    fn click(&self, css: &str) {
        let element = self.find(css);
        self.command("POST", &format!("/element/{element}/click"), Some(json!({})));
    }

    /// Waits until `script` returns something other than null or false, and returns it.
    fn wait_for(&self, script: &str) -> Value {
        let deadline = Instant::now() + PAGE_TIMEOUT;
        loop {
            let value = self.script(script);
            if !value.is_null() && value != false {
                return value;
            }
            assert!(Instant::now() < deadline, "timed out waiting for: {script}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The upload page and its stylesheet, copied into a test server's root.
fn server_with_upload_page() -> TestServer {
    let server = TestServer::start(&[]);
    for name in ["upload.html", "site.css"] {
        let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("resources").join(name);
        std::fs::copy(&from, server.root.join(name)).expect("copy the upload page");
    }
    server
}

#[test]
fn the_upload_page_stores_a_document_links_to_it_and_shows_errors() {
    let Some(driver) = Driver::start() else { return };
    let profile = common::temp_root();
    let Some(session) = Session::open(&driver, &profile) else { return };
    let server = server_with_upload_page();
    let page = format!("http://{}/upload.html", server.addr);

    session.go(&page);
    let document = r#"{"from": "a browser", "list": [1, 2, 3], "text": "café \"quoted\""}"#;
    session.type_into("#json", document);
    session.click("#send");
    let href = session.wait_for("const a = document.querySelector('#result:not([hidden]) a'); return a && a.getAttribute('href');");
    let href = href.as_str().expect("the link's href").to_owned();
    assert!(href.starts_with("/uploads/upload_") && href.ends_with(".json"), "{href}");
    // What was stored is exactly what was typed.
    let stored =
        std::fs::read(server.root.join(href.trim_start_matches('/'))).expect("the stored upload");
    assert_eq!(String::from_utf8(stored).unwrap(), document);
    // Following the link shows it.
    session.click("#link");
    let shown = session
        .wait_for("return location.pathname.startsWith('/uploads/') && document.body.innerText;");
    let shown: Value =
        serde_json::from_str(shown.as_str().expect("page text")).expect("the page shows JSON");
    assert_eq!(shown["from"], "a browser");

    // An invalid document shows the server's message, and stores nothing.
    session.go(&page);
    session.type_into("#json", "{\"unterminated\": ");
    session.click("#send");
    let error = session.wait_for(
        "const e = document.querySelector('#error:not([hidden])'); return e && e.textContent;",
    );
    let error = error.as_str().expect("the error text");
    assert!(error.starts_with("400 Bad Request: invalid JSON"), "{error}");
    let uploads: Vec<_> = std::fs::read_dir(server.root.join("uploads")).unwrap().collect();
    assert_eq!(uploads.len(), 1, "only the valid document was stored");
    drop(session);
    let _ = std::fs::remove_dir_all(profile);
}
