//! Responses as values: a status, header fields and a body, built by pure functions and encoded into bytes.
//! Nothing here touches a socket or a file; a file body carries an open file that a worker reads.

use crate::error::HttpError;
use crate::http::{self, Field, Method, Persistence};
use crate::mime::FileKind;
use crate::routes;
use crate::status::Status;
use crate::worker::{FileCursor, FileMeta};
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
    /// Bytes built for this response.
    Bytes(Vec<u8>),
    /// A whole file, shared with the cache.
    Shared(Rc<Vec<u8>>),
    /// A file of `len` bytes: `first` from its start, then `rest` (if any) for workers to read chunk by chunk.
    File { len: u64, first: Vec<u8>, rest: Option<FileCursor> },
}

impl Body {
    /// The bytes of it already in memory.
    fn in_memory(&self) -> usize {
        match self {
            Body::Bytes(bytes) => bytes.len(),
            Body::Shared(bytes) => bytes.len(),
            Body::File { first, .. } => first.len(),
        }
    }

    /// The body's length: the Content-Length, also of a response to HEAD that omits it.
    pub fn len(&self) -> u64 {
        match self {
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
        let len = self.body.len();
        let sends_body = has_body(method, self.status);
        if sends_body {
            out.reserve(http::HEAD_RESERVE + self.body.in_memory());
        }
        http::write_head(out, self.status, date, &self.fields, len, persistence);
        if !sends_body {
            return None;
        }
        match self.body {
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

/// `200 OK` with a file: inline with its type, or a download named after the file.
pub fn file(path: &Path, meta: &FileMeta, body: Body) -> Response {
    let fields = match meta.kind {
        FileKind { media_type, download: false } => vec![("Content-Type", media_type.into())],
        FileKind { download: true, .. } => {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let disposition = format!("attachment; filename=\"{}\"", quoted_filename(&name));
            vec![
                ("Content-Type", "application/octet-stream".into()),
                ("Content-Disposition", disposition.into()),
            ]
        }
    };
    Response { status: Status::OK, fields, body }
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

/// The one error response: a small JSON body naming the status and, optionally, why.
pub fn error(err: HttpError, detail: Option<&str>) -> Response {
    let status = err.status();
    let mut body = serde_json::json!({ "status": status.code, "error": status.reason });
    if let Some(detail) = detail {
        body["message"] = detail.into();
    }
    let mut body = body.to_string().into_bytes();
    body.push(b'\n');
    let mut fields = vec![("Content-Type", "application/json".into())];
    if let HttpError::MethodNotAllowed(allow) = err {
        fields.push(("Allow", allow.header_value().into()));
    }
    if err == HttpError::Unavailable {
        fields.push(("Retry-After", "1".into()));
    }
    Response { status, fields, body: Body::Bytes(body) }
}

/// The encoded 503 for a client over the connection limit, which is refused before it has a connection.
pub fn over_capacity(date: &str) -> Vec<u8> {
    let mut reply = Vec::new();
    error(HttpError::Unavailable, None).encode(&mut reply, date, Persistence::Close, &Method::Get);
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
    use crate::error::Allow;

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

    #[test]
    fn file_responses_are_inline_or_downloads_by_kind() {
        let cases = [
            (
                "index.html",
                FileKind { media_type: "text/html; charset=utf-8", download: false },
                vec![("Content-Type", "text/html; charset=utf-8")],
            ),
            (
                "docs/my photo.jpg",
                FileKind { media_type: "image/png", download: true },
                vec![
                    ("Content-Type", "application/octet-stream"),
                    ("Content-Disposition", "attachment; filename=\"my photo.jpg\""),
                ],
            ),
            (
                "caf\u{e9} \"x\".txt",
                FileKind { media_type: "image/png", download: true },
                vec![
                    ("Content-Type", "application/octet-stream"),
                    ("Content-Disposition", "attachment; filename=\"caf_ _x_.txt\""),
                ],
            ),
        ];
        for (path, kind, want) in cases {
            let meta = FileMeta { len: 3, kind };
            let response = file(Path::new(path), &meta, Body::Bytes(b"abc".to_vec()));
            assert_eq!(response.status, Status::OK);
            let fields: Vec<(&str, &str)> =
                response.fields.iter().map(|(n, v)| (*n, v.as_ref())).collect();
            assert_eq!(fields, want, "{path}");
        }
    }

    #[test]
    fn a_file_body_sends_its_first_chunk_and_hands_back_the_rest_only_when_sent() {
        let cursor = || {
            let file = std::fs::File::open("/dev/null").ok()?;
            Some(FileCursor::new(file, 7))
        };
        let meta = FileMeta { len: 10, kind: FileKind { media_type: "image/png", download: true } };
        let body = || Body::File { len: 10, first: b"abc".to_vec(), rest: cursor() };
        let mut out = Vec::new();
        let get = file(Path::new("f.png"), &meta, body());
        let rest = get.encode(&mut out, DATE, Persistence::Close, &Method::Get);
        assert!(rest.is_some());
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("\r\nContent-Length: 10\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\nabc"));
        let mut out = Vec::new();
        let head = file(Path::new("f.png"), &meta, body());
        assert!(head.encode(&mut out, DATE, Persistence::Close, &Method::Head).is_none());
        assert!(String::from_utf8(out)
            .unwrap()
            .ends_with("Content-Length: 10\r\nConnection: close\r\n\r\n"));
    }

    #[test]
    fn errors_have_a_json_body_and_their_extra_fields() {
        let cases = [
            (HttpError::NotFound, 404, None),
            (HttpError::MethodNotAllowed(Allow::GetHead), 405, Some("Allow: GET, HEAD")),
            (HttpError::MethodNotAllowed(Allow::Post), 405, Some("Allow: POST")),
            (HttpError::Unavailable, 503, Some("Retry-After: 1")),
            (HttpError::RequestTimeout, 408, None),
        ];
        for (err, code, extra) in cases {
            let text = encode(error(err, None), Method::Get);
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
        let text = encode(error(HttpError::BadRequest, Some("invalid JSON")), Method::Get);
        let json: serde_json::Value = serde_json::from_str(split(&text).1).unwrap();
        assert_eq!(json["message"], "invalid JSON");
        let head_only = encode(error(HttpError::NotFound, None), Method::Head);
        assert!(head_only.ends_with("\r\n\r\n"));
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
}
