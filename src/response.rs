//! Responses as values: a status, header fields and a body, built by pure functions and encoded into bytes.
//! Nothing here touches a socket or a file; a file body carries an open file that a worker reads.

mod conditional;
mod range;

use crate::budget::HeldFile;
use crate::cursor::{FileCursor, Segment};
use crate::error::{Allow, HttpError};
use crate::html::escape_html;
use crate::http::{self, Conditions, Field, Method, Persistence, Value};
use crate::routes;
use crate::status::Status;
use crate::worker::FileMeta;
use conditional::Precondition;
use range::Ranges;
use std::cell::OnceCell;
use std::path::Path;
use std::rc::Rc;

/// A complete response, before encoding.
#[derive(Debug)]
pub struct Response {
    /// The status line.
    pub status: Status,
    /// Header fields beyond those every response carries (`Date`, `Server`, `Content-Length`, `Connection`).
    pub fields: Vec<Field>,
    /// What follows the head.
    pub body: Body,
}

/// A response body.
#[derive(Debug)]
pub enum Body {
    /// Nothing: 204, 304.
    Empty,
    /// Bytes built for this response.
    Bytes(Vec<u8>),
    /// A whole file, shared with the cache.
    Shared(Rc<Vec<u8>>),
    /// `len` bytes: `first` in memory, then `rest` (if any) for workers to read chunk by chunk.
    File { len: u64, first: Vec<u8>, rest: Option<FileCursor> },
}

impl Body {
    /// The bytes of it already in memory.
    fn in_memory(&self) -> usize {
        match self {
            Body::Empty => 0,
            Body::Bytes(bytes) => bytes.len(),
            Body::Shared(bytes) => bytes.len(),
            Body::File { first, .. } => first.len(),
        }
    }

    /// The body's length: the Content-Length, also of a response to HEAD that omits it.
    pub fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Bytes(bytes) => bytes.len() as u64,
            Body::Shared(bytes) => bytes.len() as u64,
            Body::File { len, .. } => *len,
        }
    }
}

/// Whether a response carries its body: never to HEAD, and never for 1xx, 204 or 304 (RFC 9110 §6.4.1).
pub fn has_body(method: &Method, status: Status) -> bool {
    *method != Method::Head && !matches!(status.code, 100..=199 | 204 | 304)
}

/// Whether the head carries Content-Length: not for 1xx and 204 (RFC 9110 §8.6), nor for 304, which would
/// have to repeat the full length.
fn has_length(status: Status) -> bool {
    !matches!(status.code, 100..=199 | 204 | 304)
}

impl Response {
    /// Appends the head and whatever of the body is in memory to `out`. Returns the rest of a file body, which
    /// the connection streams.
    pub fn encode(
        self,
        out: &mut Vec<u8>,
        date: &str,
        persistence: Persistence,
        method: &Method,
    ) -> Option<FileCursor> {
        let len = has_length(self.status).then(|| self.body.len());
        let sends_body = has_body(method, self.status);
        if sends_body {
            out.reserve(http::HEAD_RESERVE + self.body.in_memory());
        }
        http::write_head(out, self.status, date, &self.fields, len, persistence);
        if !sends_body {
            return None;
        }
        match self.body {
            Body::Empty => None,
            Body::Bytes(bytes) => {
                out.extend_from_slice(&bytes);
                None
            }
            Body::Shared(bytes) => {
                out.extend_from_slice(&bytes);
                None
            }
            Body::File { first, rest, .. } => {
                out.extend_from_slice(&first);
                rest
            }
        }
    }
}

/// Most header fields a file response carries (ETag, Last-Modified, Cache-Control, Vary, Accept-Ranges,
/// Content-Encoding, Content-Disposition, Content-Type, Content-Range), so its list is allocated once.
const FILE_FIELDS: usize = 9;

/// A file's validators as header values, made once per file read and shared by the responses the cache
/// answers with it; and, once the first of those is made, the header lines of its whole `200`.
#[derive(Debug, Clone)]
pub struct Validators {
    /// The strong entity tag.
    pub etag: Rc<str>,
    /// The `Last-Modified` date.
    pub last_modified: Rc<str>,
    /// The fields of a whole `200` from memory, rendered: everything in them is fixed for a cached entry
    /// (its validators, type, coding, name, and the server's `Cache-Control`), so later hits copy one block.
    full_200: OnceCell<Rc<str>>,
}

impl Validators {
    /// The validators of a file.
    pub fn of(meta: &FileMeta) -> Validators {
        Validators {
            etag: conditional::etag(meta).into(),
            last_modified: conditional::last_modified(meta).into(),
            full_200: OnceCell::new(),
        }
    }
}

/// What a file response depends on besides the file: the request, and the configuration. GET and HEAD
/// get the same response; `encode` leaves out the body for HEAD.
#[derive(Debug, Clone, Copy)]
pub struct FileRequest<'a> {
    /// Its conditional and range fields.
    pub conditions: &'a Conditions,
    /// The `Cache-Control` value of file responses (`--cache-control`).
    pub cache_control: &'static str,
    /// How a 412 or 416 is written.
    pub errors: ErrorFormat,
}

/// Where a file's bytes are.
#[derive(Debug)]
pub enum Source {
    /// All of it, in the cache.
    Memory(Rc<Vec<u8>>),
    /// `first` read from its start, and the open file unless `first` is all of it.
    Disk { first: Vec<u8>, file: Option<HeldFile> },
}

/// The response to a GET or HEAD of a file: 200, 206, 304, 412 or 416, after its preconditions (RFC 9110
/// §13.2.2) and its Range (§14). HEAD is answered as GET would be, without the body (§9.3.2).
pub fn file(
    request: &FileRequest,
    path: &Path,
    meta: &FileMeta,
    validators: &Validators,
    source: Source,
) -> Response {
    let etag = &*validators.etag;
    let precondition = conditional::evaluate(request.conditions, etag, meta.mtime);
    // The hot path, a cached file's whole 200: its fields were rendered with its first such response.
    if precondition == Precondition::Proceed && request.conditions.range.is_none() {
        if let (Source::Memory(bytes), Some(lines)) = (&source, validators.full_200.get()) {
            let fields = vec![("", Value::Lines(Rc::clone(lines)))];
            return Response { status: Status::OK, fields, body: Body::Shared(Rc::clone(bytes)) };
        }
    }
    let mut fields = Vec::with_capacity(FILE_FIELDS);
    fields.push(("ETag", Rc::clone(&validators.etag).into()));
    fields.push(("Last-Modified", Rc::clone(&validators.last_modified).into()));
    fields.push(("Cache-Control", request.cache_control.into()));
    if meta.varies {
        fields.push(("Vary", "Accept-Encoding".into()));
    }
    match precondition {
        Precondition::Proceed => {}
        Precondition::NotModified => {
            return Response { status: Status::NOT_MODIFIED, fields, body: Body::Empty };
        }
        Precondition::Failed => return error(HttpError::PreconditionFailed, None, request.errors),
    }
    let conditions = request.conditions;
    let ranges = match &conditions.range {
        Some(range)
            if conditions
                .if_range
                .as_deref()
                .is_none_or(|v| conditional::if_range_holds(v, etag, meta.mtime)) =>
        {
            range::parse(range, meta.len)
        }
        _ => Ranges::Full,
    };
    fields.push(("Accept-Ranges", "bytes".into()));
    if let Some(coding) = meta.encoding {
        fields.push(("Content-Encoding", coding.token().into()));
    }
    let media_type =
        if meta.kind.download { "application/octet-stream" } else { meta.kind.media_type };
    if meta.kind.download {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let disposition = format!("attachment; filename=\"{}\"", quoted_filename(&name));
        fields.push(("Content-Disposition", disposition.into()));
    }
    let spans = match ranges {
        Ranges::Full => {
            fields.push(("Content-Type", media_type.into()));
            let body = match source {
                Source::Memory(bytes) => {
                    let _ = validators.full_200.set(http::render_lines(&fields));
                    Body::Shared(bytes)
                }
                Source::Disk { first, file } => {
                    let rest = [Segment::File {
                        offset: first.len() as u64,
                        len: meta.len - first.len() as u64,
                    }];
                    Body::File {
                        len: meta.len,
                        rest: file.and_then(|f| FileCursor::new(f, rest)),
                        first,
                    }
                }
            };
            return Response { status: Status::OK, fields, body };
        }
        Ranges::Unsatisfiable => {
            return error(HttpError::RangeNotSatisfiable { len: meta.len }, None, request.errors)
        }
        Ranges::Partial(spans) => spans,
    };
    let (segments, len) = match spans.as_slice() {
        &[(start, end)] => {
            fields.push(("Content-Type", media_type.into()));
            fields.push(("Content-Range", range::content_range(start, end, meta.len).into()));
            (vec![Segment::File { offset: start, len: end - start + 1 }], end - start + 1)
        }
        spans => {
            // The boundary must not occur in the parts; one derived from the tag is unique to this file.
            let boundary = format!("byteranges-{}", etag.trim_matches('"'));
            let content_type = format!("multipart/byteranges; boundary={boundary}");
            fields.push(("Content-Type", content_type.into()));
            range::multipart(spans, meta.len, media_type, &boundary)
        }
    };
    let body = match source {
        Source::Memory(bytes) => Body::Bytes(gather(&segments, &bytes)),
        Source::Disk { first, file: None } => Body::Bytes(gather(&segments, &first)),
        Source::Disk { file: Some(file), .. } => {
            Body::File { len, first: Vec::new(), rest: FileCursor::new(file, segments) }
        }
    };
    Response { status: Status::PARTIAL_CONTENT, fields, body }
}

/// The bytes of `segments` when the whole file is in memory.
fn gather(segments: &[Segment], file: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for segment in segments {
        match segment {
            Segment::Bytes(bytes) => out.extend_from_slice(bytes),
            Segment::File { offset, len } => {
                let start = usize::try_from(*offset).unwrap_or(usize::MAX).min(file.len());
                let end = start
                    .saturating_add(usize::try_from(*len).unwrap_or(usize::MAX))
                    .min(file.len());
                out.extend_from_slice(&file[start..end]);
            }
        }
    }
    out
}

/// `301 Moved Permanently` to `location`.
pub fn redirect(location: String) -> Response {
    Response {
        status: Status::MOVED_PERMANENTLY,
        fields: vec![("Location", location.into())],
        body: Body::Empty,
    }
}

/// `308 Permanent Redirect` to `location`: unlike 301, the client repeats the method and body there.
pub fn permanent_redirect(location: String) -> Response {
    Response {
        status: Status::PERMANENT_REDIRECT,
        fields: vec![("Location", location.into())],
        body: Body::Empty,
    }
}

/// `200 OK` with a folder's listing page, which changes whenever the folder does.
pub fn listing(page: Vec<u8>) -> Response {
    let fields = vec![
        ("Content-Type", "text/html; charset=utf-8".into()),
        ("Cache-Control", "no-cache".into()),
    ];
    Response { status: Status::OK, fields, body: Body::Bytes(page) }
}

/// `204 No Content` to a CORS preflight: the methods of the resource, the headers asked for (or the usual
/// ones), cacheable for a day.
pub fn preflight(allow: Allow, headers: Option<&str>) -> Response {
    let headers = headers
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b == b' ' || b == b',' || b == b'-' || b.is_ascii_alphanumeric())
        })
        .map_or(Value::Static("Content-Type, Authorization"), |h| Value::Owned(h.to_owned()));
    let fields = vec![
        ("Allow", allow.header_value().into()),
        ("Access-Control-Allow-Methods", allow.header_value().into()),
        ("Access-Control-Allow-Headers", headers),
        ("Access-Control-Max-Age", "86400".into()),
    ];
    Response { status: Status::NO_CONTENT, fields, body: Body::Empty }
}

impl Response {
    /// Adds the configured fields (`--header`, `--cors`) every response carries.
    pub fn add_fields(&mut self, extra: &[(&'static str, &'static str)]) {
        self.fields.extend(extra.iter().map(|&(name, value)| (name, Value::Static(value))));
    }
}

/// `204 No Content` to OPTIONS, naming the methods the resource allows.
pub fn options(allow: Allow) -> Response {
    Response {
        status: Status::NO_CONTENT,
        fields: vec![("Allow", allow.header_value().into())],
        body: Body::Empty,
    }
}

/// `201 Created` for a stored upload, worded as the original server's.
pub fn created(name: &str) -> Response {
    let url = routes::upload_url(name);
    let quoted = serde_json::Value::from(url.as_str());
    let body = format!(
        "{{\"status\": \"success\", \"message\": \"File created successfully\", \"filepath\": {quoted}}}"
    );
    Response {
        status: Status::CREATED,
        fields: vec![("Content-Type", "application/json".into()), ("Location", url.into())],
        body: Body::Bytes(body.into_bytes()),
    }
}

/// How an error body is written, by what the client accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorFormat {
    /// `{"status":404,"error":"Not Found"}`: for curl, scripts and API clients.
    Json,
    /// A small HTML page: for browsers.
    Html,
}

/// The one error response: a small body naming the status and, optionally, why, as JSON or HTML. Either
/// way it varies by `Accept`.
pub fn error(err: HttpError, detail: Option<&str>, format: ErrorFormat) -> Response {
    let status = err.status();
    let (content_type, body) = match format {
        ErrorFormat::Json => {
            let mut body = serde_json::json!({ "status": status.code, "error": status.reason });
            if let Some(detail) = detail {
                body["message"] = detail.into();
            }
            let mut body = body.to_string().into_bytes();
            body.push(b'\n');
            ("application/json", body)
        }
        ErrorFormat::Html => {
            let title = format!("{} {}", status.code, status.reason);
            let message =
                detail.map(|d| format!("<p>{}</p>\n", escape_html(d))).unwrap_or_default();
            let page = format!(
                "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
                 <body><h1>{title}</h1>\n{message}</body></html>\n"
            );
            ("text/html; charset=utf-8", page.into_bytes())
        }
    };
    let mut fields = vec![("Content-Type", content_type.into()), ("Vary", "Accept".into())];
    match err {
        HttpError::MethodNotAllowed(allow) => fields.push(("Allow", allow.header_value().into())),
        HttpError::Unavailable => fields.push(("Retry-After", "1".into())),
        HttpError::Unauthorized => fields
            .push(("WWW-Authenticate", "Basic realm=\"http-server\", charset=\"UTF-8\"".into())),
        HttpError::RangeNotSatisfiable { len } => {
            fields.push(("Content-Range", format!("bytes */{len}").into()))
        }
        _ => {}
    }
    Response { status, fields, body: Body::Bytes(body) }
}

/// The encoded 503 for a client over the connection limit, which is refused before it has a connection.
pub fn over_capacity(date: &str) -> Vec<u8> {
    let mut reply = Vec::new();
    error(HttpError::Unavailable, None, ErrorFormat::Json).encode(
        &mut reply,
        date,
        Persistence::Close,
        &Method::Get,
    );
    reply
}

/// The encoded answer to plain HTTP sent to the TLS port, written in the clear before closing (nginx does
/// the same): a TLS alert would mean nothing to the client that sent it.
pub fn https_required(date: &str) -> Vec<u8> {
    let mut reply = Vec::new();
    let response = Response {
        status: Status::BAD_REQUEST,
        fields: vec![("Content-Type", "text/plain; charset=utf-8".into())],
        body: Body::Bytes(b"This port speaks HTTPS: use an https:// URL.\n".to_vec()),
    };
    response.encode(&mut reply, date, Persistence::Close, &Method::Get);
    reply
}

/// A file name safe inside a quoted `filename="..."` parameter: printable ASCII without quotes or backslashes.
fn quoted_filename(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mime::FileKind;

    const DATE: &str = "Sun, 29 Nov 2026 12:00:00 GMT";

    fn encode(response: Response, method: Method) -> String {
        let mut out = Vec::new();
        let rest = response.encode(&mut out, DATE, Persistence::Close, &method);
        assert!(rest.is_none());
        String::from_utf8(out).unwrap()
    }

    fn split(text: &str) -> (&str, &str) {
        text.split_once("\r\n\r\n").unwrap()
    }

    #[test]
    fn body_presence_follows_the_method_and_the_status() {
        let cases = [
            (Method::Get, Status::OK, true),
            (Method::Post, Status::CREATED, true),
            (Method::Head, Status::OK, false),
            (Method::Head, Status::NOT_FOUND, false),
            (Method::Get, Status::NOT_FOUND, true),
            (Method::Get, Status { code: 100, reason: "Continue" }, false),
            (Method::Get, Status { code: 204, reason: "No Content" }, false),
            (Method::Get, Status { code: 304, reason: "Not Modified" }, false),
        ];
        for (method, status, want) in cases {
            assert_eq!(has_body(&method, status), want, "{method:?} {}", status.code);
        }
    }

    const PAGE: &[u8] = b"0123456789";

    fn fields(response: &Response) -> Vec<(&str, &str)> {
        response.fields.iter().map(|(n, v)| (*n, v.as_ref())).collect()
    }

    fn field<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
        response.fields.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_ref())
    }

    /// The response to a request with these conditional and range fields for the 10-byte PAGE, in memory.
    fn respond(conditions: Conditions) -> Response {
        let request = FileRequest {
            conditions: &conditions,
            cache_control: "no-cache",
            errors: ErrorFormat::Json,
        };
        let meta = FileMeta::sample(10, FileKind { media_type: "text/plain", download: false });
        let source = Source::Memory(Rc::new(PAGE.to_vec()));
        file(&request, Path::new("a.txt"), &meta, &Validators::of(&meta), source)
    }

    fn body(response: Response) -> Vec<u8> {
        let mut out = Vec::new();
        assert!(response.encode(&mut out, DATE, Persistence::Close, &Method::Get).is_none());
        let text = String::from_utf8(out).unwrap();
        split(&text).1.as_bytes().to_vec()
    }

    #[test]
    fn file_responses_are_inline_or_downloads_by_kind_with_validators() {
        let cases = [
            (
                "index.html",
                FileKind { media_type: "text/html; charset=utf-8", download: false },
                None,
            ),
            (
                "docs/my photo.jpg",
                FileKind { media_type: "image/jpeg", download: true },
                Some("attachment; filename=\"my photo.jpg\""),
            ),
            (
                "caf\u{e9} \"x\".txt",
                FileKind { media_type: "text/plain", download: true },
                Some("attachment; filename=\"caf_ _x_.txt\""),
            ),
        ];
        let conditions = Conditions::default();
        let request = FileRequest {
            conditions: &conditions,
            cache_control: "max-age=60",
            errors: ErrorFormat::Json,
        };
        for (path, kind, disposition) in cases {
            let meta = FileMeta::sample(3, kind);
            let source = Source::Memory(Rc::new(b"abc".to_vec()));
            let response = file(&request, Path::new(path), &meta, &Validators::of(&meta), source);
            assert_eq!(response.status, Status::OK);
            let media_type =
                if kind.download { "application/octet-stream" } else { kind.media_type };
            assert_eq!(field(&response, "Content-Type"), Some(media_type), "{path}");
            assert_eq!(field(&response, "Content-Disposition"), disposition, "{path}");
            assert_eq!(field(&response, "ETag"), Some(conditional::etag(&meta).as_str()));
            assert_eq!(field(&response, "Last-Modified"), Some("Sun, 29 Nov 2026 12:00:00 GMT"));
            assert_eq!(field(&response, "Cache-Control"), Some("max-age=60"));
            assert_eq!(field(&response, "Accept-Ranges"), Some("bytes"));
        }
    }

    #[test]
    fn a_304_carries_the_validators_and_no_body_or_length() {
        let meta = FileMeta::sample(10, FileKind { media_type: "text/plain", download: false });
        let tag = conditional::etag(&meta);
        let response =
            respond(Conditions { if_none_match: Some(tag.clone()), ..Conditions::default() });
        assert_eq!(response.status, Status::NOT_MODIFIED);
        assert_eq!(
            fields(&response),
            vec![
                ("ETag", tag.as_str()),
                ("Last-Modified", "Sun, 29 Nov 2026 12:00:00 GMT"),
                ("Cache-Control", "no-cache")
            ]
        );
        let mut out = Vec::new();
        response.encode(&mut out, DATE, Persistence::Close, &Method::Get);
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("Content-Length"), "{text}");
        assert!(text.ends_with("\r\n\r\n"));
    }

    #[test]
    fn a_failed_precondition_is_412() {
        let response =
            respond(Conditions { if_match: Some("\"other\"".into()), ..Conditions::default() });
        assert_eq!(response.status, Status::PRECONDITION_FAILED);
    }

    #[test]
    fn ranges_become_206_416_or_the_whole_file() {
        let range = |value: &str| Conditions { range: Some(value.into()), ..Conditions::default() };
        let one = respond(range("bytes=2-4"));
        assert_eq!(one.status, Status::PARTIAL_CONTENT);
        assert_eq!(field(&one, "Content-Range"), Some("bytes 2-4/10"));
        assert_eq!(field(&one, "Content-Type"), Some("text/plain"));
        assert_eq!(body(one), b"234");
        let suffix = respond(range("bytes=-3"));
        assert_eq!(body(suffix), b"789");
        let none = respond(range("bytes=10-"));
        assert_eq!(none.status, Status::RANGE_NOT_SATISFIABLE);
        assert_eq!(field(&none, "Content-Range"), Some("bytes */10"));
        let malformed = respond(range("bytes=4-2"));
        assert_eq!((malformed.status, body(malformed)), (Status::OK, PAGE.to_vec()));
    }

    #[test]
    fn if_range_applies_the_range_only_while_the_validator_is_current() {
        let meta = FileMeta::sample(10, FileKind { media_type: "text/plain", download: false });
        let with = |if_range: &str| Conditions {
            range: Some("bytes=0-1".into()),
            if_range: Some(if_range.into()),
            ..Conditions::default()
        };
        assert_eq!(respond(with(&conditional::etag(&meta))).status, Status::PARTIAL_CONTENT);
        assert_eq!(respond(with("Sun, 29 Nov 2026 12:00:00 GMT")).status, Status::PARTIAL_CONTENT);
        assert_eq!(respond(with("\"stale\"")).status, Status::OK);
        assert_eq!(respond(with("Sun, 29 Nov 2026 11:00:00 GMT")).status, Status::OK);
    }

    #[test]
    fn several_ranges_are_a_multipart_body_that_parses_back() {
        let response =
            respond(Conditions { range: Some("bytes=0-1,8-".into()), ..Conditions::default() });
        assert_eq!(response.status, Status::PARTIAL_CONTENT);
        let content_type = field(&response, "Content-Type").unwrap().to_owned();
        let boundary =
            content_type.strip_prefix("multipart/byteranges; boundary=").unwrap().to_owned();
        let declared = response.body.len();
        let body = String::from_utf8(body(response)).unwrap();
        assert_eq!(body.len() as u64, declared);
        let parts: Vec<&str> = body.split(&format!("--{boundary}")).collect();
        assert_eq!(parts.len(), 4, "{body}");
        assert_eq!(parts[0], "");
        assert_eq!(
            parts[1],
            "\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n01\r\n"
        );
        assert_eq!(
            parts[2],
            "\r\nContent-Type: text/plain\r\nContent-Range: bytes 8-9/10\r\n\r\n89\r\n"
        );
        assert_eq!(parts[3], "--\r\n");
    }

    #[test]
    fn a_range_of_a_file_on_disk_streams_from_its_offset() {
        let conditions = Conditions { range: Some("bytes=5-".into()), ..Conditions::default() };
        let request = FileRequest {
            conditions: &conditions,
            cache_control: "no-cache",
            errors: ErrorFormat::Json,
        };
        let meta =
            FileMeta::sample(1_000_000, FileKind { media_type: "image/png", download: true });
        let source = || Source::Disk {
            first: Vec::new(),
            file: std::fs::File::open("/dev/null").ok().map(crate::budget::HeldFile::unbounded),
        };
        let validators = Validators::of(&meta);
        let response = file(&request, Path::new("big.png"), &meta, &validators, source());
        assert_eq!(response.status, Status::PARTIAL_CONTENT);
        assert_eq!(field(&response, "Content-Range"), Some("bytes 5-999999/1000000"));
        assert!(matches!(response.body, Body::File { len: 999_995, rest: Some(_), .. }));
        let full = file(
            &FileRequest { conditions: &Conditions::default(), ..request },
            Path::new("big.png"),
            &meta,
            &validators,
            source(),
        );
        assert!(matches!(full.body, Body::File { len: 1_000_000, rest: Some(_), .. }));
    }

    #[test]
    fn options_is_204_with_allow_and_no_length() {
        let text = encode(options(Allow::GetHead), Method::Options);
        assert!(text.starts_with("HTTP/1.1 204 No Content\r\n"));
        assert!(text.contains("\r\nAllow: GET, HEAD, OPTIONS\r\n"));
        assert!(!text.contains("Content-Length"));
    }

    #[test]
    fn errors_have_a_json_body_and_their_extra_fields() {
        let cases = [
            (HttpError::NotFound, 404, None),
            (HttpError::MethodNotAllowed(Allow::GetHead), 405, Some("Allow: GET, HEAD, OPTIONS")),
            (HttpError::MethodNotAllowed(Allow::Post), 405, Some("Allow: POST, OPTIONS")),
            (HttpError::RangeNotSatisfiable { len: 7 }, 416, Some("Content-Range: bytes */7")),
            (HttpError::Unavailable, 503, Some("Retry-After: 1")),
            (HttpError::RequestTimeout, 408, None),
        ];
        for (err, code, extra) in cases {
            let text = encode(error(err, None, ErrorFormat::Json), Method::Get);
            let (head, body) = split(&text);
            assert!(head.starts_with(&format!("HTTP/1.1 {code} ")), "{head}");
            assert!(head.contains("\r\nContent-Type: application/json\r\n"));
            assert!(head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())));
            if let Some(extra) = extra {
                assert!(head.contains(extra), "{head}");
            }
            let json: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(json["status"], code);
            assert!(json.get("message").is_none());
        }
        let text = encode(
            error(HttpError::BadRequest, Some("invalid JSON"), ErrorFormat::Json),
            Method::Get,
        );
        let json: serde_json::Value = serde_json::from_str(split(&text).1).unwrap();
        assert_eq!(json["message"], "invalid JSON");
        let head_only = encode(error(HttpError::NotFound, None, ErrorFormat::Json), Method::Head);
        assert!(head_only.ends_with("\r\n\r\n"));
    }

    #[test]
    fn html_errors_carry_the_same_status_an_escaped_message_and_vary() {
        let response =
            error(HttpError::BadRequest, Some("<script>x</script> & co"), ErrorFormat::Html);
        let text = encode(response, Method::Get);
        let (head, body) = split(&text);
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(
            head.contains("\r\nContent-Type: text/html; charset=utf-8\r\nVary: Accept\r\n"),
            "{head}"
        );
        assert!(body.contains("<title>400 Bad Request</title>"));
        assert!(body.contains("<p>&lt;script&gt;x&lt;/script&gt; &amp; co</p>"), "{body}");
        let json = encode(error(HttpError::NotFound, None, ErrorFormat::Json), Method::Get);
        assert!(json.contains("\r\nVary: Accept\r\n"));
    }

    #[test]
    fn created_names_the_stored_upload() {
        let text = encode(created("upload_x.json"), Method::Post);
        let (head, body) = split(&text);
        assert!(head.starts_with("HTTP/1.1 201 Created\r\n"));
        assert!(head.contains("\r\nLocation: /uploads/upload_x.json\r\n"));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["filepath"], "/uploads/upload_x.json");
        assert_eq!(json["status"], "success");
    }

    #[test]
    fn a_cached_files_later_whole_200s_are_its_first_byte_for_byte_from_one_rendered_block() {
        let conditions = Conditions::default();
        let request = FileRequest {
            conditions: &conditions,
            cache_control: "no-cache",
            errors: ErrorFormat::Json,
        };
        let kind = FileKind { media_type: "image/png", download: true };
        let meta = FileMeta {
            varies: true,
            encoding: Some(crate::negotiate::Coding::Gzip),
            ..FileMeta::sample(3, kind)
        };
        let validators = Validators::of(&meta);
        let body = Rc::new(b"abc".to_vec());
        let serve = || {
            let source = Source::Memory(Rc::clone(&body));
            file(&request, Path::new("dir/a \"b\".png"), &meta, &validators, source)
        };
        let first = serve();
        assert!(first.fields.len() > 1, "the first is built field by field");
        let second = serve();
        assert_eq!(second.fields.len(), 1, "later ones copy one block");
        assert_eq!(encode(first, Method::Get), encode(second, Method::Get));
        // A conditional or ranged request still gets its own head.
        let ranged = Conditions { range: Some("bytes=0-0".into()), ..Conditions::default() };
        let request = FileRequest { conditions: &ranged, ..request };
        let part = file(&request, Path::new("a.png"), &meta, &validators, Source::Memory(body));
        assert_eq!(part.status, Status::PARTIAL_CONTENT);
    }
}
