//! Request failures as HTTP status codes: every error the server answers is one of these.

use crate::status::Status;
use std::io;

/// A reason to answer a request with an error status instead of what it asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// Malformed request line, headers, framing or encoding.
    BadRequest,
    /// Credentials are required (`--auth`) and missing or wrong.
    Unauthorized,
    /// Host names another server, or the path leaves the document root.
    Forbidden,
    /// No such file.
    NotFound,
    /// A known method this resource does not support; the reply carries `Allow`.
    MethodNotAllowed(Allow),
    /// The head did not arrive within the idle timeout.
    RequestTimeout,
    /// A body without Content-Length or chunked framing.
    LengthRequired,
    /// `If-Match` or `If-Unmodified-Since` does not hold for the file.
    PreconditionFailed,
    /// No range asked for lies within the file, `len` bytes long.
    RangeNotSatisfiable { len: u64 },
    /// The body is over `Limits::max_body_bytes`.
    PayloadTooLarge,
    /// The request target is over `Limits::max_target_bytes`.
    UriTooLong,
    /// A file type outside the MIME table, or an upload that is not JSON.
    UnsupportedMediaType,
    /// The head is over `Limits::max_head_bytes` or has too many fields.
    HeadersTooLarge,
    /// The server failed (disk, permissions on our own folders).
    Internal,
    /// A method or transfer coding this server does not know.
    NotImplemented,
    /// The worker queue or the connection table is full.
    Unavailable,
    /// An upload does not fit: the disk or a quota is full, or it is over the file size limit.
    InsufficientStorage,
    /// Not HTTP/1.0 or HTTP/1.1.
    VersionNotSupported,
}

/// The methods a resource answers, for the `Allow` header of a 405 or an OPTIONS response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allow {
    /// Static files.
    GetHead,
    /// The upload endpoint.
    Post,
    /// The server as a whole (`OPTIONS *`).
    Any,
}

impl Allow {
    /// The `Allow` header value.
    pub fn header_value(self) -> &'static str {
        match self {
            Allow::GetHead => "GET, HEAD, OPTIONS",
            Allow::Post => "POST, OPTIONS",
            Allow::Any => "GET, HEAD, POST, OPTIONS",
        }
    }
}

impl HttpError {
    /// The status line this error is answered with.
    pub fn status(self) -> Status {
        match self {
            HttpError::BadRequest => Status::BAD_REQUEST,
            HttpError::Unauthorized => Status::UNAUTHORIZED,
            HttpError::Forbidden => Status::FORBIDDEN,
            HttpError::NotFound => Status::NOT_FOUND,
            HttpError::MethodNotAllowed(_) => Status::METHOD_NOT_ALLOWED,
            HttpError::RequestTimeout => Status::REQUEST_TIMEOUT,
            HttpError::LengthRequired => Status::LENGTH_REQUIRED,
            HttpError::PreconditionFailed => Status::PRECONDITION_FAILED,
            HttpError::RangeNotSatisfiable { .. } => Status::RANGE_NOT_SATISFIABLE,
            HttpError::PayloadTooLarge => Status::PAYLOAD_TOO_LARGE,
            HttpError::UriTooLong => Status::URI_TOO_LONG,
            HttpError::UnsupportedMediaType => Status::UNSUPPORTED_MEDIA_TYPE,
            HttpError::HeadersTooLarge => Status::HEADERS_TOO_LARGE,
            HttpError::Internal => Status::INTERNAL_SERVER_ERROR,
            HttpError::NotImplemented => Status::NOT_IMPLEMENTED,
            HttpError::Unavailable => Status::SERVICE_UNAVAILABLE,
            HttpError::InsufficientStorage => Status::INSUFFICIENT_STORAGE,
            HttpError::VersionNotSupported => Status::VERSION_NOT_SUPPORTED,
        }
    }
}

/// ELOOP on Linux: a symlink cycle, which `io::ErrorKind` has no stable name for yet.
const ELOOP: i32 = 40;
/// ENXIO and ENODEV on Linux: opening a socket file or a device without a driver.
const ENXIO: i32 = 6;
const ENODEV: i32 = 19;
/// EMFILE and ENFILE on Linux: the process or the system is out of file descriptors.
const EMFILE: i32 = 24;
const ENFILE: i32 = 23;

impl From<io::Error> for HttpError {
    /// Errors a client can cause with the name it asks for (too long, a symlink loop) are its 404, not our 500.
    fn from(err: io::Error) -> Self {
        match err.kind() {
            io::ErrorKind::NotFound
            | io::ErrorKind::NotADirectory
            | io::ErrorKind::InvalidFilename => HttpError::NotFound,
            io::ErrorKind::PermissionDenied => HttpError::Forbidden,
            // A symlink loop, or a socket or device file: nothing a GET can be given.
            _ if matches!(err.raw_os_error(), Some(ELOOP | ENXIO | ENODEV)) => HttpError::NotFound,
            // Out of descriptors: a moment of overload, not a fault in this request.
            _ if matches!(err.raw_os_error(), Some(EMFILE | ENFILE)) => HttpError::Unavailable,
            _ => HttpError::Internal,
        }
    }
}

impl From<httparse::Error> for HttpError {
    fn from(err: httparse::Error) -> Self {
        match err {
            httparse::Error::TooManyHeaders => HttpError::HeadersTooLarge,
            httparse::Error::Version => HttpError::VersionNotSupported,
            _ => HttpError::BadRequest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_map_to_statuses() {
        let cases = [
            (io::ErrorKind::NotFound, 404),
            (io::ErrorKind::InvalidFilename, 404),
            (io::ErrorKind::PermissionDenied, 403),
            (io::ErrorKind::Other, 500),
            (io::ErrorKind::StorageFull, 500),
        ];
        for (kind, code) in cases {
            assert_eq!(HttpError::from(io::Error::from(kind)).status().code, code, "{kind:?}");
        }
        assert_eq!(HttpError::from(io::Error::from_raw_os_error(ELOOP)), HttpError::NotFound);
        let socket_file = io::Error::from_raw_os_error(ENXIO);
        assert_eq!(HttpError::from(socket_file), HttpError::NotFound);
        let out_of_fds = io::Error::from_raw_os_error(EMFILE);
        assert_eq!(HttpError::from(out_of_fds), HttpError::Unavailable);
    }

    #[test]
    fn too_many_headers_is_431() {
        assert_eq!(HttpError::from(httparse::Error::TooManyHeaders).status().code, 431);
        assert_eq!(HttpError::from(httparse::Error::Token).status().code, 400);
    }
}
