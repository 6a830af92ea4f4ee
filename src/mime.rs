//! The MIME table: how each file type is sent, as one table of data.

/// How a file type is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// Shown by the browser, with this Content-Type.
    Inline(&'static str),
    /// Downloaded: `application/octet-stream` with `Content-Disposition: attachment`.
    Download,
}

/// The MIME table: extension (lower case) → how it is sent. Images and text are downloads, as the original
/// server sent them; stylesheets, scripts and icons are inline so that a served site renders.
const FILE_KINDS: &[(&str, FileKind)] = &[
    ("html", FileKind::Inline("text/html; charset=utf-8")),
    ("htm", FileKind::Inline("text/html; charset=utf-8")),
    ("json", FileKind::Inline("application/json")),
    ("css", FileKind::Inline("text/css; charset=utf-8")),
    ("js", FileKind::Inline("text/javascript; charset=utf-8")),
    ("svg", FileKind::Inline("image/svg+xml")),
    ("ico", FileKind::Inline("image/x-icon")),
    ("png", FileKind::Download),
    ("jpg", FileKind::Download),
    ("jpeg", FileKind::Download),
    ("txt", FileKind::Download),
];

/// How a file is sent, from its extension.
pub fn file_kind(path: &std::path::Path) -> Option<FileKind> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    FILE_KINDS.iter().find(|(e, _)| *e == ext).map(|&(_, kind)| kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_kinds_come_from_the_extension() {
        let html = Some(FileKind::Inline("text/html; charset=utf-8"));
        assert_eq!(file_kind("a/INDEX.HTML".as_ref()), html);
        assert_eq!(file_kind("logo.png".as_ref()), Some(FileKind::Download));
        let css = Some(FileKind::Inline("text/css; charset=utf-8"));
        assert_eq!(file_kind("site/style.css".as_ref()), css);
        assert_eq!(file_kind("x.xyz".as_ref()), None);
        assert_eq!(file_kind("Makefile".as_ref()), None);
    }
}
