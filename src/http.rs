//! The HTTP/1.1 codec: request heads in, response heads out. Pure functions over bytes; no sockets, files or clocks.

use crate::buffers::BufferPool;
use crate::config::Limits;
use crate::error::HttpError;
use crate::status::Status;
use std::rc::Rc;

/// Most header fields accepted in one request; more gets 431.
pub const MAX_HEADERS: usize = 64;

/// The product name and version: one literal for `SERVER_NAME` and `SERVER_LINE`.
macro_rules! server_name {
    () => {
        concat!("http-server/", env!("CARGO_PKG_VERSION"))
    };
}

/// The name we answer with in `Server`.
pub const SERVER_NAME: &str = server_name!();

/// The `Server` header line every response carries, made at compile time.
const SERVER_LINE: &[u8] = concat!("Server: ", server_name!(), "\r\n").as_bytes();

/// The request method, as far as routing cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// HEAD: a GET without the body.
    Head,
    /// POST.
    Post,
    /// OPTIONS: which methods a resource allows.
    Options,
    /// A standard method we do not serve (405).
    Unsupported(String),
    /// Anything else (501).
    Unknown(String),
}

impl Method {
    fn parse(name: &str) -> Method {
        match name {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "OPTIONS" => Method::Options,
            "PUT" | "DELETE" | "PATCH" | "TRACE" | "CONNECT" => {
                Method::Unsupported(name.to_owned())
            }
            _ => Method::Unknown(name.to_owned()),
        }
    }

    /// The method's name, for logs.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Options => "OPTIONS",
            Method::Unsupported(name) | Method::Unknown(name) => name,
        }
    }
}

/// How the request says its body is framed (RFC 9112 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No Content-Length and no Transfer-Encoding: no body.
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

impl BodyFraming {
    /// Whether body bytes follow the head.
    pub fn has_body(self) -> bool {
        !matches!(self, BodyFraming::None | BodyFraming::Length(0))
    }
}

/// What the server needs from a request head, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// The method.
    pub method: Method,
    /// The request target as sent (origin-form, or the path of an absolute-form target).
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// The authority: the Host header, or the authority of an absolute-form target (RFC 9112 §3.2.2).
    pub host: Option<String>,
    /// How the body is framed.
    pub framing: BodyFraming,
    /// The Content-Type header, if any.
    pub content_type: Option<String>,
    /// `Connection: close` was sent.
    pub close: bool,
    /// `Connection: keep-alive` was sent (matters for HTTP/1.0).
    pub keep_alive: bool,
    /// `Expect: 100-continue` on HTTP/1.1 (ignored on HTTP/1.0, RFC 9110 §10.1.1).
    pub expect_continue: bool,
    /// The conditional and range fields, for file responses.
    pub conditions: Conditions,
    /// `Accept`, which decides the format of an error body.
    pub accept: Option<String>,
    /// `Accept-Encoding`, which decides whether a precompressed variant is sent.
    pub accept_encoding: Option<String>,
    /// `Referer`, for the access log.
    pub referer: Option<String>,
    /// `User-Agent`, for the access log.
    pub user_agent: Option<String>,
    /// `Authorization`, for `--auth`.
    pub authorization: Option<String>,
    /// `Access-Control-Request-Method` and `-Headers`: this OPTIONS is a CORS preflight.
    pub preflight: Option<Preflight>,
}

/// What a CORS preflight asks to be allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preflight {
    /// `Access-Control-Request-Method`.
    pub method: String,
    /// `Access-Control-Request-Headers`, if sent.
    pub headers: Option<String>,
}

/// The fields that make a file request conditional or partial (RFC 9110 §13, §14), as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    /// `If-Match`: entity tags, or `*`.
    pub if_match: Option<String>,
    /// `If-None-Match`: entity tags, or `*`.
    pub if_none_match: Option<String>,
    /// `If-Modified-Since`: an HTTP date.
    pub if_modified_since: Option<String>,
    /// `If-Unmodified-Since`: an HTTP date.
    pub if_unmodified_since: Option<String>,
    /// `Range`.
    pub range: Option<String>,
    /// `If-Range`: an entity tag or an HTTP date.
    pub if_range: Option<String>,
}

impl RequestHead {
    /// Whether the client wants the connection kept after this exchange (RFC 9112 §9.3).
    pub fn wants_keep_alive(&self) -> bool {
        !self.close && (self.minor_version >= 1 || self.keep_alive)
    }
}

/// Parses one request head from the front of `buf`.
///
/// `Ok(None)`: the head is incomplete, read more. `Ok(Some((head, n)))`: the head took the first `n` bytes;
/// the rest of `buf` is body or the next pipelined request.
pub fn parse_head(buf: &[u8], limits: &Limits) -> Result<Option<(RequestHead, usize)>, HttpError> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut fields);
    let len = match req.parse(buf)? {
        httparse::Status::Partial => {
            if buf.len() > limits.max_head_bytes {
                return Err(oversized_head(buf, limits));
            }
            return Ok(None);
        }
        httparse::Status::Complete(len) if len > limits.max_head_bytes => {
            return Err(oversized_head(buf, limits))
        }
        httparse::Status::Complete(len) => len,
    };
    let (Some(method), Some(target), Some(minor_version)) = (req.method, req.path, req.version)
    else {
        return Err(HttpError::BadRequest);
    };
    if target.len() > limits.max_target_bytes {
        return Err(HttpError::UriTooLong);
    }
    let mut head = RequestHead {
        method: Method::parse(method),
        target: target.to_owned(),
        minor_version,
        host: None,
        framing: BodyFraming::None,
        content_type: None,
        close: false,
        keep_alive: false,
        expect_continue: false,
        conditions: Conditions::default(),
        accept: None,
        accept_encoding: None,
        referer: None,
        user_agent: None,
        authorization: None,
        preflight: None,
    };
    let mut hosts = 0;
    let mut content_length = None;
    let mut transfer_encoding = None;
    for field in req.headers.iter() {
        let name = field.name;
        let value = std::str::from_utf8(field.value).map_err(|_| HttpError::BadRequest);
        if name.eq_ignore_ascii_case("host") {
            hosts += 1;
            head.host = Some(value?.to_owned());
        } else if name.eq_ignore_ascii_case("content-length") {
            // Repeated identical values are allowed; differing ones are a smuggling attempt (RFC 9112 §6.3).
            let len = parse_content_length(value?)?;
            if content_length.is_some_and(|seen| seen != len) {
                return Err(HttpError::BadRequest);
            }
            content_length = Some(len);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            let codings: &mut String = transfer_encoding.get_or_insert_with(String::new);
            if !codings.is_empty() {
                codings.push(',');
            }
            codings.push_str(value?);
        } else if name.eq_ignore_ascii_case("content-type") {
            head.content_type = Some(value?.to_owned());
        } else if name.eq_ignore_ascii_case("connection") {
            for option in tokens(value?) {
                head.close |= option.eq_ignore_ascii_case("close");
                head.keep_alive |= option.eq_ignore_ascii_case("keep-alive");
            }
        } else if let Some((slot, is_list)) = head.conditions.slot(name) {
            let value = value?.trim();
            match slot {
                Some(earlier) if is_list => {
                    earlier.push_str(", ");
                    earlier.push_str(value);
                }
                _ => *slot = Some(value.to_owned()),
            }
        } else if name.eq_ignore_ascii_case("accept") {
            head.accept = Some(value?.to_owned());
        } else if name.eq_ignore_ascii_case("authorization") {
            head.authorization = Some(value?.to_owned());
        } else if name.eq_ignore_ascii_case("access-control-request-method") {
            let method = value?.trim().to_owned();
            head.preflight
                .get_or_insert_with(|| Preflight { method: String::new(), headers: None })
                .method = method;
        } else if name.eq_ignore_ascii_case("access-control-request-headers") {
            let headers = Some(value?.trim().to_owned());
            head.preflight
                .get_or_insert_with(|| Preflight { method: String::new(), headers: None })
                .headers = headers;
        } else if name.eq_ignore_ascii_case("user-agent") {
            head.user_agent = Some(String::from_utf8_lossy(field.value).into_owned());
        } else if name.eq_ignore_ascii_case("referer") {
            head.referer = Some(String::from_utf8_lossy(field.value).into_owned());
        } else if name.eq_ignore_ascii_case("accept-encoding") {
            head.accept_encoding = Some(value?.to_owned());
        } else if name.eq_ignore_ascii_case("expect") {
            head.expect_continue =
                minor_version >= 1 && value?.trim().eq_ignore_ascii_case("100-continue");
        }
    }
    if hosts > 1 {
        return Err(HttpError::BadRequest);
    }
    if let Some((authority, path)) = absolute_form_authority(&head.target) {
        // The target's authority wins, but HTTP/1.1 still requires a valid Host field (RFC 9112 §3.2).
        match &head.host {
            Some(host) => {
                split_authority(host.trim())?;
            }
            None if minor_version >= 1 => return Err(HttpError::BadRequest),
            None => {}
        }
        head.host = Some(authority);
        head.target = path;
    }
    head.framing = match (transfer_encoding, content_length) {
        (None, None) => BodyFraming::None,
        (None, Some(len)) => BodyFraming::Length(len),
        // Both, or chunked on HTTP/1.0: the framing can't be trusted (RFC 9112 §6.1, §6.3).
        (Some(_), Some(_)) => return Err(HttpError::BadRequest),
        (Some(_), None) if minor_version == 0 => return Err(HttpError::BadRequest),
        (Some(codings), None) => transfer_coding(&codings)?,
    };
    Ok(Some((head, len)))
}

/// Bytes received and not yet consumed: part of a head, a body, or several pipelined requests.
#[derive(Debug, Default)]
pub struct Inbox {
    /// The bytes, oldest first.
    pub bytes: Vec<u8>,
    /// Length of `bytes` already known not to hold a complete head, so a trickling head isn't re-parsed per byte.
    scanned: usize,
}

impl Inbox {
    /// Takes the next complete head off the front, if one is there. `between_requests`: no byte of this
    /// request has arrived yet, so empty lines before it are dropped (RFC 9112 §2.2 asks to ignore at least
    /// one); a flood of them is bounded by the idle timeout, which they don't extend, and the read turn.
    pub fn take_head(
        &mut self,
        between_requests: bool,
        limits: &Limits,
    ) -> Result<Option<RequestHead>, HttpError> {
        if between_requests {
            let blank = self.bytes.iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
            self.consume(blank);
        }
        let unscanned = &self.bytes[self.scanned..];
        if !unscanned.contains(&b'\n') && self.bytes.len() <= limits.max_head_bytes {
            return Ok(None);
        }
        match parse_head(&self.bytes, limits)? {
            Some((head, len)) => {
                self.consume(len);
                Ok(Some(head))
            }
            None => {
                self.scanned = self.bytes.len();
                Ok(None)
            }
        }
    }

    /// Drops the first `n` bytes, which were a head or decoded body bytes.
    pub fn consume(&mut self, n: usize) {
        self.bytes.drain(..n);
        self.scanned = 0;
    }

    /// Gives the buffer back to `buffers` when it holds nothing, so idle connections stay small.
    pub fn release_if_empty(&mut self, buffers: &mut BufferPool) {
        if self.bytes.is_empty() {
            buffers.give(std::mem::take(&mut self.bytes));
            self.scanned = 0;
        }
    }
}

impl Conditions {
    /// The field this header fills, if it is one of them. A repeated field keeps its last value, except that
    /// list fields (If-Match, If-None-Match) are one list across lines, as RFC 9110 §5.3 allows.
    fn slot(&mut self, name: &str) -> Option<(&mut Option<String>, bool)> {
        let slot = match name.len() {
            5 if name.eq_ignore_ascii_case("range") => (&mut self.range, false),
            8 if name.eq_ignore_ascii_case("if-match") => (&mut self.if_match, true),
            8 if name.eq_ignore_ascii_case("if-range") => (&mut self.if_range, false),
            13 if name.eq_ignore_ascii_case("if-none-match") => (&mut self.if_none_match, true),
            17 if name.eq_ignore_ascii_case("if-modified-since") => {
                (&mut self.if_modified_since, false)
            }
            19 if name.eq_ignore_ascii_case("if-unmodified-since") => {
                (&mut self.if_unmodified_since, false)
            }
            _ => return None,
        };
        Some(slot)
    }
}

/// Splits `host[:port]` or `[v6]:port`, refusing anything that is not a plausible authority.
pub fn split_authority(host: &str) -> Result<(&str, Option<u16>), HttpError> {
    let valid = |c: char| c.is_ascii_alphanumeric() || "-._~:[]".contains(c);
    if host.is_empty() || !host.chars().all(valid) {
        return Err(HttpError::BadRequest);
    }
    let (name, port) = match host.rfind(':') {
        Some(colon) if !host[colon..].contains(']') => (&host[..colon], Some(&host[colon + 1..])),
        _ => (host, None),
    };
    // Brackets hold exactly an IPv6 address, and appear nowhere else. RFC 3986 §3.2.2 also allows an
    // IPvFuture there, which no client sends to an origin server: refused on purpose.
    let bracketed = name.strip_prefix('[').and_then(|n| n.strip_suffix(']'));
    let well_formed = match bracketed {
        Some(inner) => inner.parse::<std::net::Ipv6Addr>().is_ok(),
        None => !name.is_empty() && !name.contains([':', '[', ']']),
    };
    if !well_formed {
        return Err(HttpError::BadRequest);
    }
    // `port = *DIGIT` (RFC 3986 §3.2.3): an empty port is the same as none.
    let port = port
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<u16>().map_err(|_| HttpError::BadRequest))
        .transpose()?;
    Ok((name, port))
}

/// 414 when the request line alone is over the limit, else 431.
fn oversized_head(buf: &[u8], limits: &Limits) -> HttpError {
    let line_end = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    if line_end > limits.max_target_bytes {
        HttpError::UriTooLong
    } else {
        HttpError::HeadersTooLarge
    }
}

fn parse_content_length(value: &str) -> Result<u64, HttpError> {
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HttpError::BadRequest);
    }
    value.parse().map_err(|_| HttpError::BadRequest)
}

/// Only `chunked` is supported. It must be the last coding, or the length is unknowable (RFC 9112 §6.3).
fn transfer_coding(codings: &str) -> Result<BodyFraming, HttpError> {
    let codings: Vec<&str> = tokens(codings).collect();
    match codings.as_slice() {
        [only] if only.eq_ignore_ascii_case("chunked") => Ok(BodyFraming::Chunked),
        // Chunked must not be applied twice (RFC 9112 §7); another coding under it we just don't support.
        [earlier @ .., last] if last.eq_ignore_ascii_case("chunked") => {
            if earlier.iter().any(|c| c.eq_ignore_ascii_case("chunked")) {
                Err(HttpError::BadRequest)
            } else {
                Err(HttpError::NotImplemented)
            }
        }
        _ => Err(HttpError::BadRequest),
    }
}

/// The comma-separated, trimmed, non-empty elements of a list header.
fn tokens(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|t| !t.is_empty())
}

/// Splits `http://authority/path` (or `https://`) into its authority and path (RFC 9112 §3.2.2).
fn absolute_form_authority(target: &str) -> Option<(String, String)> {
    let starts = |scheme: &str| {
        target
            .as_bytes()
            .get(..scheme.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(scheme.as_bytes()))
    };
    let scheme_len = ["http://", "https://"].into_iter().find(|s| starts(s))?.len();
    let rest = &target[scheme_len..];
    let path_start = rest.find(['/', '?']).unwrap_or(rest.len());
    let path = match &rest[path_start..] {
        "" => "/".to_owned(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_owned(),
    };
    Some((rest[..path_start].to_owned(), path))
}

/// What a response says about the connection's future (RFC 9112 §9.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// `Connection: keep-alive` with the idle timeout and the requests left.
    KeepAlive {
        /// Idle timeout in whole seconds.
        timeout_secs: u64,
        /// Requests this connection may still make.
        remaining: u32,
    },
    /// `Connection: close`: the server closes after this response.
    Close,
}

impl Persistence {
    /// Whether the connection stays open.
    pub fn keeps_alive(self) -> bool {
        matches!(self, Persistence::KeepAlive { .. })
    }
}

/// One response header field: a fixed name and its value.
pub type Field = (&'static str, Value);

/// A header field value: fixed text, text made for this response, or text shared with the cache (a file's
/// validators), so that a cached file's response allocates nothing for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Fixed text.
    Static(&'static str),
    /// Made for this response.
    Owned(String),
    /// Shared with the cache.
    Shared(Rc<str>),
    /// Whole header lines rendered once and shared with the cache (a cached file's fixed fields), written as
    /// they are; the field's name is not used.
    Lines(Rc<str>),
}

impl AsRef<str> for Value {
    fn as_ref(&self) -> &str {
        match self {
            Value::Static(text) => text,
            Value::Owned(text) => text,
            Value::Shared(text) => text,
            Value::Lines(text) => text,
        }
    }
}

impl From<&'static str> for Value {
    fn from(text: &'static str) -> Value {
        Value::Static(text)
    }
}

impl From<String> for Value {
    fn from(text: String) -> Value {
        Value::Owned(text)
    }
}

impl From<Rc<str>> for Value {
    fn from(text: Rc<str>) -> Value {
        Value::Shared(text)
    }
}

/// `fields` as header lines, to be written later as one `Value::Lines`.
pub fn render_lines(fields: &[Field]) -> Rc<str> {
    let mut out = Vec::new();
    for (name, value) in fields {
        push_field(&mut out, name, value.as_ref());
    }
    String::from_utf8_lossy(&out).into()
}

fn push_field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Room reserved for a response head before it is written, so a head costs at most one allocation. 512
/// bytes: a file's 200 with its validators and keep-alive fields is about 330; long download names and
/// `--header` fields may need more.
pub const HEAD_RESERVE: usize = 512;

/// Appends a response head: status line, `Date`, `Server`, the given fields, `Content-Length` (when the
/// status allows one) and the connection fields, then the blank line.
pub fn write_head(
    out: &mut Vec<u8>,
    status: Status,
    date: &str,
    fields: &[Field],
    content_length: Option<u64>,
    persistence: Persistence,
) {
    out.reserve(HEAD_RESERVE);
    let code = status.code;
    // Status codes have three digits (RFC 9110 §15).
    let digits =
        [b'0' + (code / 100 % 10) as u8, b'0' + (code / 10 % 10) as u8, b'0' + (code % 10) as u8];
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(&digits);
    out.push(b' ');
    out.extend_from_slice(status.reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    push_field(out, "Date", date);
    out.extend_from_slice(SERVER_LINE);
    for (name, value) in fields {
        match value {
            Value::Lines(lines) => out.extend_from_slice(lines.as_bytes()),
            _ => push_field(out, name, value.as_ref()),
        }
    }
    if let Some(len) = content_length {
        out.extend_from_slice(b"Content-Length: ");
        push_decimal(out, len);
        out.extend_from_slice(b"\r\n");
    }
    match persistence {
        Persistence::KeepAlive { timeout_secs, remaining } => {
            out.extend_from_slice(b"Connection: keep-alive\r\nKeep-Alive: timeout=");
            push_decimal(out, timeout_secs);
            out.extend_from_slice(b", max=");
            push_decimal(out, u64::from(remaining));
        }
        Persistence::Close => out.extend_from_slice(b"Connection: close"),
    }
    out.extend_from_slice(b"\r\n\r\n");
}

/// Appends `n` in decimal: the formatting machinery costs more than the whole rest of a head.
pub fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// The interim response to `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::noise;

    fn parse(raw: &[u8]) -> Result<Option<(RequestHead, usize)>, HttpError> {
        parse_head(raw, &Limits::default())
    }

    fn head(raw: &[u8]) -> RequestHead {
        match parse(raw) {
            Ok(Some((head, _))) => head,
            other => panic!("expected a complete head, got {other:?}"),
        }
    }

    const GET: &[u8] =
        b"GET /index.html HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n";

    #[test]
    fn every_prefix_of_a_valid_head_needs_more() {
        for end in 0..GET.len() {
            assert_eq!(parse(&GET[..end]), Ok(None), "prefix of {end} bytes");
        }
        assert!(matches!(parse(GET), Ok(Some((_, n))) if n == GET.len()));
    }

    #[test]
    fn pipelined_buffer_reports_the_first_heads_length() {
        let mut buf = GET.to_vec();
        buf.extend_from_slice(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
        let (head, consumed) = parse(&buf).unwrap().unwrap();
        assert_eq!(consumed, GET.len());
        assert_eq!(head.target, "/index.html");
        assert_eq!(head.host.as_deref(), Some("localhost:8080"));
    }

    #[test]
    fn http11_keeps_alive_unless_told_to_close() {
        assert!(head(GET).wants_keep_alive());
        assert!(!head(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n").wants_keep_alive());
        assert!(!head(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n")
            .wants_keep_alive());
    }

    #[test]
    fn http10_closes_unless_asked_to_keep_alive() {
        assert!(!head(b"GET / HTTP/1.0\r\n\r\n").wants_keep_alive());
        assert!(head(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").wants_keep_alive());
    }

    #[test]
    fn body_framing_is_read_from_the_head() {
        let h = head(b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n");
        assert_eq!(h.framing, BodyFraming::Length(12));
        let h = head(
            b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\ncontent-length: 12\r\n\r\n",
        );
        assert_eq!(h.framing, BodyFraming::Length(12));
        let h = head(b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n");
        assert_eq!(h.framing, BodyFraming::Chunked);
        assert_eq!(head(GET).framing, BodyFraming::None);
    }

    #[test]
    fn ambiguous_framing_is_rejected() {
        let bad: &[&[u8]] = &[
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1,1\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        ];
        for raw in bad {
            assert_eq!(parse(raw), Err(HttpError::BadRequest), "{}", String::from_utf8_lossy(raw));
        }
        let gzip = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
        assert_eq!(parse(gzip), Err(HttpError::NotImplemented));
    }

    #[test]
    fn duplicate_host_is_rejected() {
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n";
        assert_eq!(parse(raw), Err(HttpError::BadRequest));
    }

    #[test]
    fn absolute_form_target_supplies_the_host() {
        let h = head(b"GET http://localhost:8080/a.html?x=1 HTTP/1.1\r\nHost: other\r\n\r\n");
        assert_eq!(h.host.as_deref(), Some("localhost:8080"));
        assert_eq!(h.target, "/a.html?x=1");
        let no_host = b"GET http://localhost/ HTTP/1.1\r\n\r\n";
        assert_eq!(parse(no_host), Err(HttpError::BadRequest));
        let bad_host = b"GET http://localhost/ HTTP/1.1\r\nHost: x@evil\r\n\r\n";
        assert_eq!(parse(bad_host), Err(HttpError::BadRequest));
        let h = head(b"GET HTTP://example HTTP/1.1\r\nHost: other\r\n\r\n");
        assert_eq!((h.host.as_deref(), h.target.as_str()), (Some("example"), "/"));
        let h = head(b"GET hTTpS://localhost:8443/p?q HTTP/1.1\r\nHost: other\r\n\r\n");
        assert_eq!((h.host.as_deref(), h.target.as_str()), (Some("localhost:8443"), "/p?q"));
    }

    #[test]
    fn brackets_in_an_authority_hold_exactly_an_ipv6_address() {
        let good =
            ["[::1]", "[::1]:80", "[::FFFF:7F00:1]", "[::ffff:127.0.0.1]:8", "localhost", "a.b-c"];
        for good in good.into_iter().chain(["127.0.0.1:8080"]) {
            assert!(split_authority(good).is_ok(), "{good}");
        }
        for bad in
            ["[127.0.0.1]", "[127.0.0.1", "127.0.0.1]", "[[::1]]", "[::1", "::1", "a]b", "[]", ""]
        {
            assert_eq!(split_authority(bad), Err(HttpError::BadRequest), "{bad}");
        }
    }

    #[test]
    fn expect_continue_only_counts_on_http11() {
        assert!(
            head(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n\r\n").expect_continue
        );
        assert!(!head(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").expect_continue);
    }

    #[test]
    fn oversized_heads_get_414_or_431() {
        let limits = Limits::default();
        let long_target =
            format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(limits.max_target_bytes));
        assert_eq!(parse(long_target.as_bytes()), Err(HttpError::UriTooLong));
        let endless_line = vec![b'a'; limits.max_head_bytes + 1];
        let mut endless = b"GET /".to_vec();
        endless.extend_from_slice(&endless_line);
        assert_eq!(parse(&endless), Err(HttpError::UriTooLong));
        let big_field =
            format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n", "b".repeat(limits.max_head_bytes));
        assert_eq!(parse(big_field.as_bytes()), Err(HttpError::HeadersTooLarge));
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(parse(many.as_bytes()), Err(HttpError::HeadersTooLarge));
    }

    #[test]
    fn malformed_heads_are_bad_requests() {
        let bad: &[&[u8]] = &[
            b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
            b"\x01GET / HTTP/1.1\r\n\r\n",
            b"GET  HTTP/1.1\r\n\r\n",
        ];
        for raw in bad {
            assert_eq!(parse(raw), Err(HttpError::BadRequest), "{}", String::from_utf8_lossy(raw));
        }
        assert_eq!(parse(b"GET / HTTP/2.0\r\n\r\n"), Err(HttpError::VersionNotSupported));
    }

    #[test]
    fn methods_are_classified() {
        assert_eq!(
            head(b"PUT / HTTP/1.1\r\nHost: a\r\n\r\n").method,
            Method::Unsupported("PUT".into())
        );
        assert_eq!(
            head(b"BREW / HTTP/1.1\r\nHost: a\r\n\r\n").method,
            Method::Unknown("BREW".into())
        );
    }

    #[test]
    fn non_ascii_targets_do_not_break_the_scheme_check() {
        let raw = "GET /aaaaé HTTP/1.1\r\nHost: a\r\n\r\n".as_bytes();
        assert!(matches!(parse(raw), Ok(Some(_))));
    }

    #[test]
    fn mutated_heads_never_panic() {
        let mut next = noise(0x9e37_79b9_7f4a_7c15);
        let alphabet = b"GET /ht:p\r\n %2e.\xc3\xa9\0\t,;=chunked-Length0123456789aAHost";
        for _ in 0..100_000 {
            let mut raw = GET.to_vec();
            for _ in 0..(next() % 8) {
                let at = (next() as usize) % raw.len();
                let byte = alphabet[(next() as usize) % alphabet.len()];
                match next() % 3 {
                    0 => raw[at] = byte,
                    1 => raw.insert(at, byte),
                    _ => {
                        raw.remove(at);
                    }
                }
            }
            let _ = parse(&raw);
        }
    }

    #[test]
    fn response_head_carries_the_standard_fields() {
        let mut out = Vec::new();
        let keep = Persistence::KeepAlive { timeout_secs: 5, remaining: 99 };
        write_head(
            &mut out,
            Status::OK,
            "Sun, 29 Nov 2026 12:00:00 GMT",
            &[("Content-Type", "text/plain".into())],
            Some(3),
            keep,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 200 OK\r\nDate: Sun, 29 Nov 2026 12:00:00 GMT\r\nServer: ")
        );
        assert!(text.contains("\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n"));
        assert!(text.ends_with("Connection: keep-alive\r\nKeep-Alive: timeout=5, max=99\r\n\r\n"));
    }

    #[test]
    fn an_inbox_yields_pipelined_heads_in_order_and_keeps_what_follows() {
        let limits = Limits::default();
        let mut inbox = Inbox::default();
        inbox
            .bytes
            .extend_from_slice(b"\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHo");
        let first = inbox.take_head(true, &limits).unwrap().unwrap();
        assert_eq!(first.target, "/a");
        assert_eq!(inbox.take_head(true, &limits), Ok(None));
        inbox.bytes.extend_from_slice(b"st: x\r\n\r\nbody");
        let second = inbox.take_head(false, &limits).unwrap().unwrap();
        assert_eq!(second.target, "/b");
        assert_eq!(inbox.bytes, b"body");
    }

    #[test]
    fn an_inbox_split_at_every_byte_yields_the_head_only_when_complete() {
        let limits = Limits::default();
        let mut inbox = Inbox::default();
        for (i, byte) in GET.iter().enumerate() {
            inbox.bytes.push(*byte);
            let head = inbox.take_head(i == 0, &limits).unwrap();
            assert_eq!(head.is_some(), i == GET.len() - 1, "after byte {i}");
        }
        assert!(inbox.bytes.is_empty());
    }

    #[test]
    fn blank_lines_between_requests_are_dropped() {
        let limits = Limits::default();
        let mut inbox = Inbox::default();
        inbox.bytes.extend_from_slice(b"\r\n\n");
        assert_eq!(inbox.take_head(true, &limits), Ok(None));
        assert!(inbox.bytes.is_empty());
    }

    #[test]
    fn decimals_are_written_exactly() {
        for n in [0, 7, 10, 99, 100, 65_535, u64::MAX] {
            let mut out = b"x".to_vec();
            push_decimal(&mut out, n);
            assert_eq!(out, format!("x{n}").into_bytes());
        }
    }
}
