//! Folders: the redirect of a folder named without its slash, index pages, and `--list-dirs` listings,
//! whose every link must lead back to what it names, whatever the names hold.

mod common;

use common::{close_request, exchange, read_response_head_only, temp_root, Response, TestServer};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// Names that are hard to show in HTML or to put in a URL. (A name can't hold `/`, so the script tag is
/// opened twice rather than closed.)
const HOSTILE_FILES: &[&str] = &[
    "<script>alert(1)<script>.txt",
    "a b#c.html",
    "100%.txt",
    "q?.txt",
    "quote\"s.txt",
    "it's.txt",
    "a&amp;b.txt",
    "caf\u{e9}.txt",
];

/// Files that a listing must never show.
const DOT_FILES: &[&str] = &[".hidden", ".upload_x.json.tmp"];

/// One link of a listing: the raw `href` and the text shown, unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Link {
    href: String,
    text: String,
}

/// Undoes the HTML escaping of text and attribute values (`&amp;` last, so `&amp;lt;` stays `&lt;`).
fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Every `<a href="...">TEXT</a>` of a page, in order.
fn links(page: &str) -> Vec<Link> {
    let mut found = Vec::new();
    let mut rest = page;
    while let Some(at) = rest.find("<a href=\"") {
        rest = &rest[at + "<a href=\"".len()..];
        let (href, after) = rest.split_once("\">").expect("an href closed by \">");
        let (text, after) = after.split_once("</a>").expect("a link closed by </a>");
        found.push(Link { href: unescape(href), text: unescape(text) });
        rest = after;
    }
    found
}

/// Decodes `%XX` escapes; panics on anything else after a `%` or on non-UTF-8 results.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(
                u8::from_str_radix(hex, 16).unwrap_or_else(|_| panic!("bad escape in {text}")),
            );
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("UTF-8 after decoding")
}

/// A relative `href` resolved against the folder URL `base` (ending in `/`), as a browser would.
fn resolve(base: &str, href: &str) -> String {
    assert!(base.ends_with('/'), "{base}");
    assert!(!href.starts_with('/') && !href.contains("://"), "links must be relative: {href}");
    if href == "../" {
        let trimmed = base.trim_end_matches('/');
        let parent = &trimmed[..trimmed.rfind('/').expect("a parent") + 1];
        return parent.to_owned();
    }
    // Anything a browser would treat specially must have been escaped.
    assert!(!href.contains(['?', '#', ' ', '"', '<', '>']), "unescaped byte in href {href:?}");
    format!("{base}{href}")
}

/// What a listing should show for `folder`: its entries that are not dot-files, folders with a slash.
fn expected_names(folder: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(folder).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if name.starts_with('.') {
            continue;
        }
        let slash = if entry.file_type().unwrap().is_dir() { "/" } else { "" };
        names.push(format!("{name}{slash}"));
    }
    names.sort();
    names
}

fn assert_listing(response: &Response, url: &str) -> String {
    assert_eq!(response.status, 200, "{url}: {}", response.head);
    assert_eq!(response.header("Content-Type"), Some("text/html; charset=utf-8"), "{url}");
    assert_eq!(response.header("Cache-Control"), Some("no-cache"), "{url}");
    let page = String::from_utf8(response.body.clone()).expect("a UTF-8 listing");
    assert!(page.contains(&format!("<title>Index of {url}</title>")), "{url}: {page}");
    page
}

fn assert_not_found(response: &Response, what: &str) {
    assert_eq!(response.status, 404, "{what}: {}", response.head);
    assert_eq!(response.header("Content-Type"), Some("application/json"), "{what}");
}

/// Checks the listing of the folder at URL `url` (on disk at `folder`): each visible name exactly once,
/// folders first, no dot-files, no markup from names, a parent link except at the root, and every link
/// leading to what it names. Returns the links followed into subfolders.
fn check_listing(server: &TestServer, url: &str, folder: &Path) -> Vec<String> {
    let page = assert_listing(&server.get(url), url);
    assert!(!page.contains("<script"), "markup from a name reached the page: {page}");
    for dot in DOT_FILES {
        assert!(!page.contains(&dot[1..]), "{dot} is listed: {page}");
    }
    let all = links(&page);
    let parent = Link { href: "../".into(), text: "../".into() };
    let entries: Vec<Link> = if url == "/" {
        assert!(!all.contains(&parent), "the root listing has a parent link: {page}");
        all.clone()
    } else {
        assert_eq!(all.first(), Some(&parent), "{url}: the parent link comes first: {page}");
        all[1..].to_vec()
    };
    let mut shown: Vec<String> = entries.iter().map(|l| l.text.clone()).collect();
    let first_file = shown.iter().position(|n| !n.ends_with('/')).unwrap_or(shown.len());
    assert!(
        shown[first_file..].iter().all(|n| !n.ends_with('/')),
        "folders after files: {shown:?}"
    );
    shown.sort();
    assert_eq!(shown, expected_names(folder), "{url}: shown names (each exactly once)");

    let mut subfolders = Vec::new();
    for link in &all {
        assert_eq!(percent_decode(&link.href), link.text, "{url}: the link names its text");
        let target = resolve(url, &link.href);
        let response = server.get(&target);
        if link.href == "../" {
            // The parent serves its index if it has one, else its own listing.
            let parent = folder.parent().expect("a parent folder");
            match std::fs::read(parent.join("index.html")) {
                Ok(index) => assert!(response.body == index, "{target}: not the parent's index"),
                Err(_) => drop(assert_listing(&response, &target)),
            }
        } else if link.text.ends_with('/') {
            assert_listing(&response, &format!("{url}{}", link.text));
            subfolders.push(target);
        } else {
            assert_eq!(response.status, 200, "{target} ({:?}): {}", link.text, response.head);
            let expected = std::fs::read(folder.join(&link.text)).unwrap();
            assert!(response.body == expected, "{target}: not the bytes of {:?}", link.text);
        }
    }
    subfolders
}

/// Fills `folder` with the hostile names, a subfolder with one file, and dot-files.
fn populate(folder: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::create_dir_all(folder.join("sub")).unwrap();
    let mut files = BTreeMap::new();
    for (n, name) in HOSTILE_FILES.iter().enumerate() {
        let body = format!("file {n}: {name}\n").into_bytes();
        std::fs::write(folder.join(name), &body).unwrap();
        files.insert(name.to_string(), body);
    }
    std::fs::write(folder.join("sub").join("inner.txt"), b"inside sub\n").unwrap();
    for dot in DOT_FILES {
        std::fs::write(folder.join(dot), b"secret").unwrap();
    }
    files
}

#[test]
fn a_folder_without_its_slash_redirects_to_it_and_keeps_the_query() {
    let server = TestServer::start(&[]);
    std::fs::create_dir(server.root.join("dir")).unwrap();
    std::fs::write(server.root.join("dir").join("index.html"), b"<p>dir index</p>").unwrap();
    for (target, location) in [("/dir", "/dir/"), ("/dir?x=1&y", "/dir/?x=1&y")] {
        let response = server.get(target);
        assert_eq!(response.status, 301, "{target}: {}", response.head);
        assert_eq!(response.header("Location"), Some(location), "{target}");
        assert_eq!(response.body, b"", "{target}");
    }
}

#[test]
fn a_folder_with_its_slash_serves_its_index_html() {
    for args in [&[][..], &["--list-dirs"][..]] {
        let server = TestServer::start(args);
        std::fs::create_dir(server.root.join("dir")).unwrap();
        std::fs::write(server.root.join("dir").join("index.html"), b"<p>dir index</p>").unwrap();
        std::fs::write(server.root.join("dir").join("other.html"), b"<p>other</p>").unwrap();
        for target in ["/dir/", "/dir/?x=1"] {
            let response = server.get(target);
            assert_eq!(response.status, 200, "{args:?} {target}: {}", response.head);
            assert_eq!(response.header("Content-Type"), Some("text/html; charset=utf-8"));
            assert_eq!(
                response.body, b"<p>dir index</p>",
                "{args:?} {target}: the index, not a listing"
            );
        }
    }
}

#[test]
fn a_folder_without_an_index_is_404_unless_listings_are_on() {
    let plain = TestServer::start(&[]);
    std::fs::create_dir(plain.root.join("box")).unwrap();
    std::fs::write(plain.root.join("box").join("a.html"), b"<p>a</p>").unwrap();
    assert_not_found(&plain.get("/box/"), "/box/ without --list-dirs");

    let listing = TestServer::start(&["--list-dirs"]);
    std::fs::create_dir(listing.root.join("box")).unwrap();
    std::fs::write(listing.root.join("box").join("a.html"), b"<p>a</p>").unwrap();
    let page = assert_listing(&listing.get("/box/"), "/box/");
    let shown: Vec<String> = links(&page).into_iter().map(|l| l.text).collect();
    assert_eq!(shown, ["../", "a.html"]);
    // The redirect still comes first for a folder named without its slash.
    let redirect = listing.get("/box");
    assert_eq!(redirect.status, 301, "{}", redirect.head);
    assert_eq!(redirect.header("Location"), Some("/box/"));
    // A folder that does not exist is not listed.
    assert_not_found(&listing.get("/nothing-here/"), "a missing folder with --list-dirs");
}

#[test]
fn a_head_request_for_a_listing_has_the_get_length_and_no_body() {
    let server = TestServer::start(&["--list-dirs"]);
    std::fs::create_dir(server.root.join("box")).unwrap();
    std::fs::write(server.root.join("box").join("a.html"), b"<p>a</p>").unwrap();
    let get = server.get("/box/");
    assert_listing(&get, "/box/");
    let mut stream = server.connect();
    let raw = format!(
        "HEAD /box/ HTTP/1.1\r\nHost: {host}\r\n\r\nGET /box/a.html HTTP/1.1\r\nHost: {host}\r\n\r\n",
        host = server.host()
    );
    stream.write_all(raw.as_bytes()).unwrap();
    let head = read_response_head_only(&mut stream).expect("a HEAD response");
    assert_eq!(head.status, 200, "{}", head.head);
    assert_eq!(head.header("Content-Length"), Some(get.body.len().to_string().as_str()));
    assert_eq!(head.header("Content-Type"), Some("text/html; charset=utf-8"));
    // Had HEAD sent the page, this would read its bytes instead of the next response.
    let next = common::read_response(&mut stream).expect("the response after HEAD");
    assert_eq!(next.status, 200, "{}", next.head);
    assert_eq!(next.body, b"<p>a</p>");
}

#[test]
fn a_listing_of_hostile_names_escapes_them_and_every_link_leads_to_its_file() {
    let server = TestServer::start(&["--list-dirs"]);
    let folder = server.root.join("box");
    let files = populate(&folder);
    let subfolders = check_listing(&server, "/box/", &folder);
    assert_eq!(subfolders, ["/box/sub/"]);
    // Every hostile file was linked (check_listing compared the shown names with the folder).
    let page = String::from_utf8(server.get("/box/").body).unwrap();
    let texts: Vec<String> = links(&page).into_iter().map(|l| l.text).collect();
    for name in files.keys() {
        assert_eq!(texts.iter().filter(|t| *t == name).count(), 1, "{name:?} in {texts:?}");
    }
    assert!(page.contains("&lt;script&gt;alert(1)&lt;script&gt;.txt"), "{page}");
    // The subfolder's own listing: a parent link, its file, and links that resolve too.
    let inner = check_listing(&server, "/box/sub/", &folder.join("sub"));
    assert!(inner.is_empty());
    let sub_page = String::from_utf8(server.get("/box/sub/").body).unwrap();
    let texts: Vec<String> = links(&sub_page).into_iter().map(|l| l.text).collect();
    assert_eq!(texts, ["../", "inner.txt"]);
}

#[test]
fn the_root_is_listed_when_it_has_no_index_html() {
    let root = temp_root();
    populate(&root);
    std::fs::write(root.join("page.html"), b"<p>page</p>").unwrap();
    let server = TestServer::start_in(root, &["--list-dirs"]);
    let subfolders = check_listing(&server, "/", &server.root);
    assert!(subfolders.contains(&"/sub/".to_owned()), "{subfolders:?}");
    for sub in &subfolders {
        let on_disk = server.root.join(sub.trim_matches('/'));
        check_listing(&server, sub, &on_disk);
    }
    // The same root without --list-dirs has nothing to serve at `/`.
    let root = temp_root();
    std::fs::write(root.join("page.html"), b"<p>page</p>").unwrap();
    let plain = TestServer::start_in(root, &[]);
    assert_not_found(&plain.get("/"), "/ without an index or --list-dirs");
    assert_eq!(plain.get("/page.html").body, b"<p>page</p>");
}

#[test]
fn dot_files_and_dot_folders_are_never_served_even_with_listings() {
    for args in [&[][..], &["--list-dirs"][..]] {
        let server = TestServer::start(args);
        let folder = server.root.join("box");
        populate(&folder);
        std::fs::write(server.root.join(".hidden"), b"secret").unwrap();
        std::fs::write(server.root.join(".secret.html"), b"secret").unwrap();
        std::fs::create_dir(server.root.join(".git")).unwrap();
        std::fs::write(server.root.join(".git").join("config.txt"), b"secret").unwrap();
        std::fs::write(server.root.join(".git").join("index.html"), b"secret").unwrap();
        for target in [
            "/.hidden",
            "/.secret.html",
            "/%2Esecret.html",
            "/box/.hidden",
            "/box/.upload_x.json.tmp",
            "/.git/",
            "/.git",
            "/.git/config.txt",
        ] {
            let response = server.get(target);
            assert_not_found(&response, &format!("{args:?} {target}"));
            assert!(!response.body.windows(6).any(|w| w == b"secret"), "{target} leaked");
        }
    }
}

#[test]
fn a_listing_is_fresh_after_the_folder_changes() {
    let server = TestServer::start(&["--list-dirs"]);
    std::fs::create_dir(server.root.join("box")).unwrap();
    std::fs::write(server.root.join("box").join("first.html"), b"1").unwrap();
    let before = assert_listing(&server.get("/box/"), "/box/");
    assert!(before.contains(">first.html<") && !before.contains("second.html"), "{before}");
    std::fs::write(server.root.join("box").join("second.html"), b"2").unwrap();
    let after = assert_listing(&server.get("/box/"), "/box/");
    assert!(after.contains(">second.html<"), "a listing must not be served stale: {after}");
    // And a listing is never cached in place of an index added later.
    std::fs::write(server.root.join("box").join("index.html"), b"<p>now an index</p>").unwrap();
    let response = exchange(&server, close_request(&server, "GET", "/box/").as_bytes());
    assert_eq!(response.body, b"<p>now an index</p>");
}
