//! The MIME table: how each file type is sent, as one table of data, and the two switches that change it.

use std::path::Path;

/// How a file is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileKind {
    /// Its media type, with `charset=utf-8` for text.
    pub media_type: &'static str,
    /// Sent as `application/octet-stream` with `Content-Disposition: attachment`, so browsers save it.
    pub download: bool,
}

/// Whether a type is shown or saved by default.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Disposition {
    Inline,
    /// The original server's downloads: images and text files are saved, not shown.
    Download,
}

use Disposition::{Download, Inline};

/// Extension (lower case) → media type and disposition. Text, scripts, JSON and SVG carry a charset.
const TABLE: &[(&str, &str, Disposition)] = &[
    ("html", "text/html; charset=utf-8", Inline),
    ("htm", "text/html; charset=utf-8", Inline),
    ("css", "text/css; charset=utf-8", Inline),
    ("js", "text/javascript; charset=utf-8", Inline),
    ("mjs", "text/javascript; charset=utf-8", Inline),
    ("json", "application/json; charset=utf-8", Inline),
    ("map", "application/json; charset=utf-8", Inline),
    ("svg", "image/svg+xml; charset=utf-8", Inline),
    ("ico", "image/x-icon", Inline),
    ("gif", "image/gif", Inline),
    ("webp", "image/webp", Inline),
    ("avif", "image/avif", Inline),
    ("wasm", "application/wasm", Inline),
    ("pdf", "application/pdf", Inline),
    ("xml", "application/xml", Inline),
    ("md", "text/markdown; charset=utf-8", Inline),
    ("csv", "text/csv; charset=utf-8", Inline),
    ("woff", "font/woff", Inline),
    ("woff2", "font/woff2", Inline),
    ("ttf", "font/ttf", Inline),
    ("mp3", "audio/mpeg", Inline),
    ("mp4", "video/mp4", Inline),
    ("webm", "video/webm", Inline),
    ("ogg", "audio/ogg", Inline),
    ("zip", "application/zip", Inline),
    ("gz", "application/gzip", Inline),
    ("tar", "application/x-tar", Inline),
    ("png", "image/png", Download),
    ("jpg", "image/jpeg", Download),
    ("jpeg", "image/jpeg", Download),
    ("txt", "text/plain; charset=utf-8", Download),
];

/// The type of a file outside the table, with `--unknown-as-octet-stream`.
const OCTET_STREAM: FileKind = FileKind { media_type: "application/octet-stream", download: true };

/// The table as configured.
#[derive(Debug, Clone, Copy, Default)]
pub struct MimeTable {
    /// `--inline`: the original's download types are shown with their real types too, as a file share would.
    pub inline_all: bool,
    /// `--unknown-as-octet-stream`: a file outside the table is a download instead of 415.
    pub unknown_as_octet_stream: bool,
}

impl MimeTable {
    /// How a file is sent, from its extension; `None` (415) for a type outside the table.
    pub fn kind(&self, path: &Path) -> Option<FileKind> {
        let ext = extension(path);
        let known = ext.and_then(|ext| TABLE.iter().find(|(e, ..)| e.eq_ignore_ascii_case(ext)));
        match known {
            Some(&(_, media_type, disposition)) => {
                Some(FileKind { media_type, download: disposition == Download && !self.inline_all })
            }
            None if self.unknown_as_octet_stream => Some(OCTET_STREAM),
            None => None,
        }
    }
}

/// The extension of a path's last name (none for `.hidden`), found in its bytes without parsing the path into
/// components, which was most of a cache hit's routing cost. The same as `Path::extension` for every path
/// `safe_path` makes (no trailing `/`, `.` or `..`).
fn extension(path: &Path) -> Option<&str> {
    let name = path.as_os_str().as_encoded_bytes().rsplit(|&b| b == b'/').next()?;
    match name.iter().rposition(|&b| b == b'.')? {
        0 => None,
        dot => std::str::from_utf8(&name[dot + 1..]).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_are_found_as_path_finds_them() {
        for path in [
            "a.html",
            "dir/b.tar.gz",
            "dir.d/none",
            ".hidden",
            "d/.hidden",
            "x.",
            "plain",
            "a/b/c.Txt",
        ] {
            let path = Path::new(path);
            assert_eq!(extension(path), path.extension().and_then(|e| e.to_str()), "{path:?}");
        }
    }

    fn kind(table: MimeTable, path: &str) -> Option<(&'static str, bool)> {
        table.kind(path.as_ref()).map(|k| (k.media_type, k.download))
    }

    #[test]
    fn the_originals_types_keep_their_treatment_and_the_rest_are_inline() {
        let table = MimeTable::default();
        let cases = [
            ("a/INDEX.HTML", Some(("text/html; charset=utf-8", false))),
            ("logo.png", Some(("image/png", true))),
            ("photo.JPEG", Some(("image/jpeg", true))),
            ("notes.txt", Some(("text/plain; charset=utf-8", true))),
            ("site/style.css", Some(("text/css; charset=utf-8", false))),
            ("app.mjs", Some(("text/javascript; charset=utf-8", false))),
            ("font.woff2", Some(("font/woff2", false))),
            ("movie.mp4", Some(("video/mp4", false))),
            ("data.json", Some(("application/json; charset=utf-8", false))),
            ("page.html.gz", Some(("application/gzip", false))),
            ("x.xyz", None),
            ("Makefile", None),
            (".png", None),
        ];
        for (path, want) in cases {
            assert_eq!(kind(table, path), want, "{path}");
        }
    }

    #[test]
    fn inline_shows_downloads_with_their_real_types() {
        let table = MimeTable { inline_all: true, ..MimeTable::default() };
        assert_eq!(kind(table, "logo.png"), Some(("image/png", false)));
        assert_eq!(kind(table, "notes.txt"), Some(("text/plain; charset=utf-8", false)));
        assert_eq!(kind(table, "x.xyz"), None);
    }

    #[test]
    fn unknown_types_can_be_served_as_octet_stream_downloads() {
        let table = MimeTable { unknown_as_octet_stream: true, ..MimeTable::default() };
        assert_eq!(kind(table, "x.xyz"), Some(("application/octet-stream", true)));
        assert_eq!(kind(table, "Makefile"), Some(("application/octet-stream", true)));
        assert_eq!(kind(table, "a.html"), Some(("text/html; charset=utf-8", false)));
    }

    #[test]
    fn every_text_type_carries_a_charset() {
        for (ext, media_type, _) in TABLE {
            let textual = media_type.starts_with("text/")
                || ["js", "mjs", "json", "map", "svg"].contains(ext);
            assert_eq!(media_type.ends_with("; charset=utf-8"), textual, "{ext}");
        }
    }
}
