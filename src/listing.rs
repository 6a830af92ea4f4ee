//! Directory listings (`--list-dirs`): the HTML page for a folder's entries. Pure; a worker reads the folder.

use crate::html::escape_html;
use std::time::SystemTime;

/// Most entries a listing shows. 10,000: a page still a browser renders at once; a folder with more is
/// listed in part, with a note saying how many were left out.
pub const MAX_ENTRIES: usize = 10_000;

/// One visible entry of a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its name, which is valid UTF-8 and does not start with a dot.
    pub name: String,
    /// A folder: linked with a trailing slash, listed first.
    pub is_dir: bool,
    /// Its size in bytes, for files.
    pub size: Option<u64>,
    /// When it was last modified.
    pub modified: Option<SystemTime>,
}

/// Whether a name is shown at all: never dot-files (which also hides the uploads' temporary files), and
/// never names that are not UTF-8, which no request can name.
pub fn is_listed(name: &str) -> bool {
    !name.starts_with('.')
}

/// The listing page of the folder at URL path `url_path` (ending in `/`). `left_out` counts entries beyond
/// `MAX_ENTRIES`.
pub fn render(url_path: &str, mut entries: Vec<Entry>, left_out: usize) -> Vec<u8> {
    entries.sort_by(|a, b| {
        b.is_dir
            .cmp(&a.is_dir)
            .then_with(|| a.name.to_lowercase().cmp(&b.name.to_lowercase()))
            .then(a.name.cmp(&b.name))
    });
    let title = format!("Index of {}", escape_html(url_path));
    let mut page = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n<body>\n\
         <h1>{title}</h1>\n<table>\n<tr><th>Name</th><th>Size</th><th>Modified</th></tr>\n"
    );
    if url_path != "/" {
        page.push_str("<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n");
    }
    for entry in &entries {
        let slash = if entry.is_dir { "/" } else { "" };
        let size = entry.size.map(|s| s.to_string()).unwrap_or_else(|| "-".into());
        let modified = entry.modified.map(httpdate::fmt_http_date).unwrap_or_else(|| "-".into());
        page.push_str(&format!(
            "<tr><td><a href=\"{}{slash}\">{}{slash}</a></td><td>{size}</td><td>{modified}</td></tr>\n",
            escape_html(&percent_encode(&entry.name)),
            escape_html(&entry.name),
        ));
    }
    page.push_str("</table>\n");
    if left_out > 0 {
        page.push_str(&format!("<p>{left_out} more entries are not shown.</p>\n"));
    }
    page.push_str("</body></html>\n");
    page.into_bytes()
}

/// A name as one path segment: every byte but the unreserved ones (RFC 3986 §2.3) is percent-encoded, so
/// `#`, `?`, `%`, `/`-free names with spaces or quotes all link to themselves.
pub fn percent_encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, is_dir: bool) -> Entry {
        Entry { name: name.into(), is_dir, size: (!is_dir).then_some(5), modified: None }
    }

    #[test]
    fn names_are_escaped_for_html_and_encoded_for_links() {
        let page =
            render("/docs/", vec![entry("<script>.txt", false), entry("a b#c?.html", false)], 0);
        let page = String::from_utf8(page).unwrap();
        assert!(page.contains("<a href=\"%3Cscript%3E.txt\">&lt;script&gt;.txt</a>"), "{page}");
        assert!(page.contains("<a href=\"a%20b%23c%3F.html\">a b#c?.html</a>"), "{page}");
        assert!(!page.contains("<script>"));
        assert!(page.contains("<title>Index of /docs/</title>"));
        assert!(page.contains("<a href=\"../\">"));
    }

    #[test]
    fn folders_come_first_then_names_in_order() {
        let page = render(
            "/",
            vec![
                entry("b.txt", false),
                entry("zoo", true),
                entry("A.txt", false),
                entry("art", true),
            ],
            0,
        );
        let page = String::from_utf8(page).unwrap();
        let at = |name: &str| page.find(&format!(">{name}<")).unwrap();
        assert!(at("art/") < at("zoo/") && at("zoo/") < at("A.txt") && at("A.txt") < at("b.txt"));
        assert!(!page.contains("../"), "the root has no parent link");
    }

    #[test]
    fn a_truncated_listing_says_so() {
        let page = String::from_utf8(render("/", vec![], 3)).unwrap();
        assert!(page.contains("3 more entries are not shown"));
    }

    #[test]
    fn percent_encoding_keeps_only_unreserved_bytes() {
        assert_eq!(percent_encode("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(percent_encode("caf\u{e9} 100%"), "caf%C3%A9%20100%25");
        assert!(is_listed("a.txt") && !is_listed(".upload_x.json.tmp") && !is_listed(".hidden"));
    }
}
