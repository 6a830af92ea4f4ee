//! Routing: which resource a request names, whether it may have it, and how it is served. Pure; no I/O.

use crate::config::{Config, UPLOAD_DIR};
use crate::error::{Allow, HttpError};
use crate::http::{split_authority, BodyFraming, Method, RequestHead};
use crate::mime::{FileKind, MimeTable};
use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// The single upload endpoint.
pub const UPLOAD_PATH: &str = "/upload";

/// What to do with a request that passed the Host and path checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send the file at `path` (relative to the root); `kind` is `None` when its extension is outside the
    /// MIME table, which is a 415 if the file exists and a 404 if not, so only the worker can tell. For a
    /// target ending in `/`, `path` is the folder's index and `folder` the folder, which may be listed.
    File { path: PathBuf, kind: Option<FileKind>, folder: Option<PathBuf> },
    /// Read a JSON body and store it in the uploads folder.
    Upload,
    /// Answer OPTIONS with the methods allowed here.
    Options(Allow),
    /// Send the client to this `https://` URL (the `--redirect-http` listener).
    ToHttps(String),
}

/// The file served for `/` and for any path ending in `/`.
const INDEX: &str = "index.html";

/// Decides what a request asks for, given the upload body limit.
pub fn route(
    head: &RequestHead,
    max_body_bytes: usize,
    mime: &MimeTable,
) -> Result<Action, HttpError> {
    if head.target == "*" {
        // The asterisk form is only for OPTIONS, about the server as a whole (RFC 9112 §3.2.4).
        return match head.method {
            Method::Options => Ok(Action::Options(Allow::Any)),
            _ => Err(HttpError::BadRequest),
        };
    }
    // Origin-form has no fragment (RFC 9112 §3.2.1): a `#` in a request is malformed, not ignored.
    if head.target.contains('#') {
        return Err(HttpError::BadRequest);
    }
    let path = safe_path(&head.target)?;
    let is_upload = path_only(&head.target) == UPLOAD_PATH;
    match (&head.method, is_upload) {
        (Method::Get | Method::Head, false) => {
            let folder = is_folder(&head.target).then(|| path.parent().unwrap_or(&path).to_owned());
            Ok(Action::File { kind: mime.kind(&path), path, folder })
        }
        (Method::Post, true) => check_upload(head, max_body_bytes).map(|()| Action::Upload),
        (Method::Options, true) => Ok(Action::Options(Allow::Post)),
        (Method::Options, false) => Ok(Action::Options(Allow::GetHead)),
        (Method::Get | Method::Head | Method::Unsupported(_), true) => {
            Err(HttpError::MethodNotAllowed(Allow::Post))
        }
        (Method::Post | Method::Unsupported(_), false) => {
            Err(HttpError::MethodNotAllowed(Allow::GetHead))
        }
        (Method::Unknown(_), _) => Err(HttpError::NotImplemented),
    }
}

/// Why `route` refused a request, for the log line.
pub fn refusal_reason(err: HttpError) -> &'static str {
    match err {
        HttpError::Forbidden => "the path leaves the document root",
        HttpError::BadRequest => "malformed request target",
        HttpError::NotFound => "hidden names are not served",
        HttpError::MethodNotAllowed(_) => "method not allowed on this resource",
        HttpError::NotImplemented => "unknown method",
        HttpError::UnsupportedMediaType => "upload is not application/json",
        HttpError::LengthRequired => "upload without Content-Length or chunked framing",
        HttpError::PayloadTooLarge => "upload larger than --max-body",
        other => other.status().reason,
    }
}

/// An upload must be JSON with a framed body no larger than the limit; checked before any body byte is read.
fn check_upload(head: &RequestHead, max_body_bytes: usize) -> Result<(), HttpError> {
    let media_type =
        head.content_type.as_deref().and_then(|ct| ct.split(';').next()).map(str::trim);
    if !media_type.is_some_and(|t| t.eq_ignore_ascii_case("application/json")) {
        return Err(HttpError::UnsupportedMediaType);
    }
    match head.framing {
        BodyFraming::None => Err(HttpError::LengthRequired),
        BodyFraming::Length(len) if len > max_body_bytes as u64 => Err(HttpError::PayloadTooLarge),
        BodyFraming::Length(_) | BodyFraming::Chunked => Ok(()),
    }
}

/// Whether a target names a folder, whose index is served: it ends in `/` or `/.`.
fn is_folder(target: &str) -> bool {
    names_folder(path_only(target))
}

fn names_folder(path: &str) -> bool {
    path.ends_with('/') || path.ends_with("/.")
}

/// The target without its query.
fn path_only(target: &str) -> &str {
    target.split(['?', '#']).next().unwrap_or(target)
}

/// Maps a request target to a path relative to the root, refusing anything that could leave it.
///
/// Each segment is percent-decoded on its own, so an encoded `/` or `\` can't create a new segment, and `..`
/// is refused outright rather than resolved. Hidden names (leading `.`, such as temporary upload files) are
/// not served. Symlinks are checked by the worker, which may touch the disk.
pub fn safe_path(target: &str) -> Result<PathBuf, HttpError> {
    let path = path_only(target);
    if !path.starts_with('/') {
        return Err(HttpError::BadRequest);
    }
    match plain_path(path) {
        Some(clean) => Ok(clean),
        None => decoded_path(path),
    }
}

/// The path of nearly every request, in one pass: with nothing to decode (`%`), no `\` or NUL, and no
/// segment that starts with a dot (`.`, `..`, hidden names), every check of `decoded_path` passes and
/// cleaning only drops empty segments. `None` for every other path.
fn plain_path(path: &str) -> Option<PathBuf> {
    let bytes = path.as_bytes();
    let suspect =
        |(i, &b): (usize, &u8)| matches!(b, b'%' | b'\\' | 0) || b == b'.' && bytes[i - 1] == b'/';
    // The first byte is the `/` checked by the caller, so every `.` looked at has a byte before it.
    if bytes.iter().enumerate().skip(1).any(suspect) {
        return None;
    }
    let mut clean = String::with_capacity(path.len() + INDEX.len());
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        if !clean.is_empty() {
            clean.push('/');
        }
        clean.push_str(segment);
    }
    if path.ends_with('/') {
        if !clean.is_empty() {
            clean.push('/');
        }
        clean.push_str(INDEX);
    }
    Some(PathBuf::from(clean))
}

/// Every path `plain_path` leaves: segment by segment, decoded and checked.
fn decoded_path(path: &str) -> Result<PathBuf, HttpError> {
    let mut clean = PathBuf::with_capacity(path.len() + INDEX.len());
    for raw in path.split('/') {
        let segment = percent_decode(raw)?;
        if segment.contains(['/', '\\', '\0']) || segment == ".." {
            return Err(HttpError::Forbidden);
        }
        if segment.is_empty() || segment == "." {
            continue;
        }
        if segment.starts_with('.') {
            return Err(HttpError::NotFound);
        }
        clean.push(&*segment);
    }
    // `dir/` and `dir/.` name a folder, whose index is served; `file.txt/.` is then no file (404).
    if names_folder(path) || clean.as_os_str().is_empty() {
        clean.push(INDEX);
    }
    Ok(clean)
}

/// Strict percent-decoding: a `%` must be followed by two hex digits, and the result must be UTF-8.
fn percent_decode(raw: &str) -> Result<Cow<'_, str>, HttpError> {
    if !raw.contains('%') {
        return Ok(Cow::Borrowed(raw));
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            // Both must be hex digits: from_str_radix alone would also take a sign ("%+1").
            let hex = bytes.get(i + 1..i + 3).filter(|h| h.iter().all(u8::is_ascii_hexdigit));
            let hex = hex.and_then(|h| std::str::from_utf8(h).ok());
            let byte =
                hex.and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or(HttpError::BadRequest)?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map(Cow::Owned).map_err(|_| HttpError::BadRequest)
}

/// Which `Host` values name this server (RFC 9112 §3.2).
#[derive(Debug, Clone)]
pub struct HostPolicy {
    /// Lower-case names: `localhost`, the configured host, `--allow-host` values.
    names: Vec<String>,
    /// The address we are bound to; when unspecified (0.0.0.0), the connection's local address counts.
    bound: IpAddr,
    /// The listening port; a port in Host must match it.
    port: u16,
}

impl HostPolicy {
    /// The policy for a server bound to `bound`.
    pub fn new(config: &Config, bound: SocketAddr) -> HostPolicy {
        let mut names = vec!["localhost".to_owned(), config.host_name.to_ascii_lowercase()];
        names.extend(config.allowed_hosts.iter().map(|h| h.to_ascii_lowercase()));
        HostPolicy { names, bound: bound.ip(), port: bound.port() }
    }

    /// The address the listener is bound to (unspecified for every interface).
    pub fn bound(&self) -> IpAddr {
        self.bound
    }

    /// Checks the Host of a request that arrived on a connection to `local`.
    pub fn check(
        &self,
        host: Option<&str>,
        minor_version: u8,
        local: IpAddr,
    ) -> Result<(), HttpError> {
        let Some(host) = host else {
            // HTTP/1.0 predates Host; HTTP/1.1 requires it.
            return if minor_version == 0 { Ok(()) } else { Err(HttpError::BadRequest) };
        };
        let (name, port) = split_authority(host.trim())?;
        if port.is_some_and(|p| p != self.port) {
            return Err(HttpError::Forbidden);
        }
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        let allowed = match name.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            Ok(ip) => {
                ip == self.bound
                    || (self.bound.is_unspecified() && ip == local.to_canonical())
                    || self.names.iter().any(|n| n.parse() == Ok(ip))
            }
            Err(_) => self.names.contains(&name),
        };
        if allowed {
            Ok(())
        } else {
            Err(HttpError::Forbidden)
        }
    }
}

/// What the `--redirect-http` listener answers: every request goes to the same host and target over HTTPS.
#[derive(Debug, Clone)]
pub struct ToHttps {
    /// The Host values the redirect listener accepts: a redirect to a name that is not ours would make this
    /// server an open redirector.
    pub hosts: HostPolicy,
    /// The port the HTTPS listener is on.
    pub https_port: u16,
    /// The `--header` fields its answers carry: all but `Strict-Transport-Security`, which must not be sent
    /// over plain HTTP (RFC 6797 §7.2).
    pub fields: Vec<(&'static str, &'static str)>,
}

impl ToHttps {
    /// The `Location` for a request that came in on `local`: its Host's name, the HTTPS port unless it is
    /// 443, and its target (`/` for the asterisk form).
    pub fn location(&self, head: &RequestHead, local: IpAddr) -> Result<Action, HttpError> {
        self.hosts.check(head.host.as_deref(), head.minor_version, local)?;
        // Without a Host (HTTP/1.0) there is no name to send the client to.
        let host = head.host.as_deref().ok_or(HttpError::BadRequest)?;
        let (name, _) = split_authority(host.trim())?;
        let target = if head.target.starts_with('/') { head.target.as_str() } else { "/" };
        Ok(Action::ToHttps(match self.https_port {
            443 => format!("https://{name}{target}"),
            port => format!("https://{name}:{port}{target}"),
        }))
    }
}

/// The URL path a stored upload is served at.
pub fn upload_url(name: &str) -> String {
    format!("/{UPLOAD_DIR}/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Limits;
    use std::net::Ipv4Addr;

    #[test]
    fn safe_path_table() {
        let ok = [
            ("/", "index.html"),
            ("/about.html", "about.html"),
            ("/a/./b.txt", "a/b.txt"),
            ("//a//b.txt", "a/b.txt"),
            ("/docs/", "docs/index.html"),
            ("/docs/.", "docs/index.html"),
            ("/sample.txt/.", "sample.txt/index.html"),
            ("/hello%20world.txt?x=../..", "hello world.txt"),
            ("/caf%C3%A9.html", "café.html"),
        ];
        for (target, want) in ok {
            assert_eq!(safe_path(target), Ok(PathBuf::from(want)), "{target}");
        }
        let refused = [
            ("/../etc/passwd", HttpError::Forbidden),
            ("/a/../../x", HttpError::Forbidden),
            ("/%2e%2e/x", HttpError::Forbidden),
            ("/%2E%2E/x", HttpError::Forbidden),
            ("/a%2f..%2fx", HttpError::Forbidden),
            ("/a%2Fb", HttpError::Forbidden),
            ("/..%5cx", HttpError::Forbidden),
            ("/a\\b", HttpError::Forbidden),
            ("/a%00.html", HttpError::Forbidden),
            ("/%zz", HttpError::BadRequest),
            ("/%4", HttpError::BadRequest),
            ("/%+1.html", HttpError::BadRequest),
            ("/%ff.html", HttpError::BadRequest),
            ("*", HttpError::BadRequest),
            ("/.hidden.json", HttpError::NotFound),
            ("/uploads/.upload_x.json.tmp", HttpError::NotFound),
        ];
        for (target, want) in refused {
            assert_eq!(safe_path(target), Err(want), "{target}");
        }
    }

    #[test]
    fn the_one_pass_path_agrees_with_the_checked_one_wherever_it_answers() {
        let mut next = crate::fuzzing::noise(0x5afe);
        let alphabet = b"/a.%2eEfF5c\\\0x";
        let mut answered = 0;
        for _ in 0..20_000 {
            let len = 1 + next() % 12;
            let mut path = String::from("/");
            for _ in 0..len {
                path.push(char::from(alphabet[(next() % alphabet.len() as u64) as usize]));
            }
            if let Some(plain) = plain_path(&path) {
                answered += 1;
                assert_eq!(decoded_path(&path), Ok(plain), "{path:?}");
            }
        }
        assert!(answered > 1000, "the one-pass path answered only {answered} of 20,000");
    }

    fn policy(host: &str, bound: &str, allow: &[&str]) -> HostPolicy {
        let config = Config {
            tls: None,
            redirect_http: None,
            addr: bound.parse().unwrap(),
            host_name: host.to_owned(),
            root: PathBuf::from("resources"),
            workers: 1,
            allowed_hosts: allow.iter().map(|s| s.to_string()).collect(),
            cache_control: "no-cache".into(),
            list_dirs: false,
            access_log: None,
            reopen_logs: Default::default(),
            users: Default::default(),
            cors: false,
            extra_headers: Vec::new(),
            mime: MimeTable::default(),
            limits: Limits::default(),
        };
        HostPolicy::new(&config, config.addr)
    }

    #[test]
    fn host_matching_table() {
        let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let p = policy("127.0.0.1", "127.0.0.1:8080", &["Example.test"]);
        let cases: &[(Option<&str>, u8, Result<(), HttpError>)] = &[
            (Some("127.0.0.1:8080"), 1, Ok(())),
            (Some("127.0.0.1"), 1, Ok(())),
            (Some("localhost:8080"), 1, Ok(())),
            (Some("127.0.0.1:"), 1, Ok(())),
            (Some("LocalHost."), 1, Ok(())),
            (Some("example.test:8080"), 1, Ok(())),
            (None, 0, Ok(())),
            (None, 1, Err(HttpError::BadRequest)),
            (Some(""), 1, Err(HttpError::BadRequest)),
            (Some("a b"), 1, Err(HttpError::BadRequest)),
            (Some("localhost:http"), 1, Err(HttpError::BadRequest)),
            (Some("localhost:99999"), 1, Err(HttpError::BadRequest)),
            (Some("evil.example"), 1, Err(HttpError::Forbidden)),
            (Some("localhost:8081"), 1, Err(HttpError::Forbidden)),
            (Some("127.0.0.2:8080"), 1, Err(HttpError::Forbidden)),
            (Some("[::1]:8080"), 1, Err(HttpError::Forbidden)),
        ];
        for (host, minor, want) in cases {
            assert_eq!(p.check(*host, *minor, local), *want, "{host:?}");
        }
    }

    #[test]
    fn unspecified_bind_accepts_the_connections_local_address() {
        let p = policy("0.0.0.0", "0.0.0.0:80", &[]);
        let local: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(p.check(Some("10.1.2.3"), 1, local), Ok(()));
        assert_eq!(p.check(Some("10.1.2.4"), 1, local), Err(HttpError::Forbidden));
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        let dual = policy("::", "[::]:80", &[]);
        assert_eq!(dual.check(Some("10.1.2.3"), 1, mapped), Ok(()));
        let v6 = policy("::1", "[::1]:80", &[]);
        assert_eq!(v6.check(Some("[::1]:80"), 1, local), Ok(()));
    }

    fn request(raw: &str) -> RequestHead {
        match crate::http::parse_head(raw.as_bytes(), &Limits::default()) {
            Ok(Some((head, _))) => head,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_https_location_keeps_the_name_and_target_and_names_the_https_port() {
        let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let to = |https_port, bound| ToHttps {
            hosts: policy("127.0.0.1", bound, &[]),
            https_port,
            fields: Vec::new(),
        };
        let location = |to: &ToHttps, raw: &str| to.location(&request(raw), local);
        let plain = to(8443, "127.0.0.1:8080");
        let cases: &[(&str, Result<Action, HttpError>)] = &[
            (
                "GET /a?b=c HTTP/1.1\r\nHost: localhost:8080\r\n\r\n",
                Ok(Action::ToHttps("https://localhost:8443/a?b=c".into())),
            ),
            (
                "OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                Ok(Action::ToHttps("https://127.0.0.1:8443/".into())),
            ),
            // HTTP/1.0 may leave Host out, but then there is no name to send the client to.
            ("GET / HTTP/1.0\r\n\r\n", Err(HttpError::BadRequest)),
            ("GET / HTTP/1.1\r\nHost: elsewhere.example\r\n\r\n", Err(HttpError::Forbidden)),
            // The HTTPS port is not this listener's.
            ("GET / HTTP/1.1\r\nHost: localhost:8443\r\n\r\n", Err(HttpError::Forbidden)),
        ];
        for (raw, expected) in cases {
            assert_eq!(&location(&plain, raw), expected, "{raw:?}");
        }
        let standard = to(443, "127.0.0.1:80");
        assert_eq!(
            location(&standard, "GET /x HTTP/1.1\r\nHost: localhost\r\n\r\n"),
            Ok(Action::ToHttps("https://localhost/x".into()))
        );
        let v6 =
            ToHttps { hosts: policy("::1", "[::1]:80", &[]), https_port: 443, fields: Vec::new() };
        assert_eq!(
            v6.location(&request("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n"), local),
            Ok(Action::ToHttps("https://[::1]/".into()))
        );
    }

    #[test]
    fn routes_by_method_and_path() {
        let route = |raw: &str| route(&request(raw), 1000, &MimeTable::default());
        let index = Action::File {
            path: "index.html".into(),
            kind: MimeTable::default().kind("index.html".as_ref()),
            folder: Some("".into()),
        };
        assert_eq!(route("GET / HTTP/1.1\r\n\r\n"), Ok(index));
        let folder = |path: &str, folder: Option<&str>| Action::File {
            path: path.into(),
            kind: MimeTable::default().kind(path.as_ref()),
            folder: folder.map(Into::into),
        };
        assert_eq!(
            route("GET /docs/?x HTTP/1.1\r\n\r\n"),
            Ok(folder("docs/index.html", Some("docs")))
        );
        assert_eq!(route("GET /docs HTTP/1.1\r\n\r\n"), Ok(folder("docs", None)));
        assert_eq!(route("OPTIONS * HTTP/1.1\r\n\r\n"), Ok(Action::Options(Allow::Any)));
        assert_eq!(route("OPTIONS /upload HTTP/1.1\r\n\r\n"), Ok(Action::Options(Allow::Post)));
        assert_eq!(route("GET * HTTP/1.1\r\n\r\n"), Err(HttpError::BadRequest));
        assert_eq!(route("POST /upload#x HTTP/1.1\r\n\r\n"), Err(HttpError::BadRequest));
        assert_eq!(route("GET /a.html#top HTTP/1.1\r\n\r\n"), Err(HttpError::BadRequest));
        let json = "POST /upload HTTP/1.1\r\nContent-Type: application/json; charset=utf-8\r\n";
        assert_eq!(route(&format!("{json}Content-Length: 2\r\n\r\n")), Ok(Action::Upload));
        assert_eq!(route(&format!("{json}Transfer-Encoding: chunked\r\n\r\n")), Ok(Action::Upload));
        assert_eq!(
            route(&format!("{json}Content-Length: 1001\r\n\r\n")),
            Err(HttpError::PayloadTooLarge)
        );
        assert_eq!(route(&format!("{json}\r\n")), Err(HttpError::LengthRequired));
        let text = "POST /upload HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(route(text), Err(HttpError::UnsupportedMediaType));
        assert_eq!(
            route("GET /upload HTTP/1.1\r\n\r\n"),
            Err(HttpError::MethodNotAllowed(Allow::Post))
        );
        assert_eq!(
            route("POST /a.html HTTP/1.1\r\n\r\n"),
            Err(HttpError::MethodNotAllowed(Allow::GetHead))
        );
        assert_eq!(
            route("DELETE / HTTP/1.1\r\n\r\n"),
            Err(HttpError::MethodNotAllowed(Allow::GetHead))
        );
        assert_eq!(route("BREW / HTTP/1.1\r\n\r\n"), Err(HttpError::NotImplemented));
    }
}
