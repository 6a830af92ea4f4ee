//! The access log: one line per response, in Common or Combined Log Format or as JSON, written by its own
//! thread (`logging::Writer`), so a slow or broken sink costs the loop nothing but a dropped line.

use crate::http::push_decimal;
use crate::logging::{Sink, Writer};
use std::cell::RefCell;
use std::io::{self, Write as _};
use std::net::IpAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::SystemTime;

/// Lines waiting for the writer. 16,384: about a tenth of a second of a saturated server, so a sink that
/// stalls for a moment loses nothing.
const QUEUE: usize = 16 * 1024;

/// The line formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `host ident user [time] "request" status bytes`.
    Common,
    /// Common, then `"referer" "user-agent"`: what goaccess, fail2ban and most tools read by default.
    Combined,
    /// One JSON object per line, with the same fields.
    Json,
}

/// One response, as the access log records it.
#[derive(Debug)]
pub struct Entry {
    /// The client's address, without the port.
    pub client: IpAddr,
    /// The user who authenticated, if any.
    pub user: Option<String>,
    /// When the response was finished.
    pub time: SystemTime,
    /// `METHOD target HTTP/1.x`, or `-`.
    pub request_line: String,
    /// The status sent.
    pub status: u16,
    /// Body bytes sent, without heads.
    pub body_bytes: u64,
    /// The `Referer` field.
    pub referer: Option<String>,
    /// The `User-Agent` field.
    pub user_agent: Option<String>,
}

/// The access log as configured.
pub struct AccessLog {
    writer: Writer<Entry>,
}

impl AccessLog {
    /// Starts writing to `sink` in `format`. `reopen` is raised by SIGHUP.
    pub fn start(sink: Sink, format: Format, reopen: Arc<AtomicBool>) -> io::Result<AccessLog> {
        let format_line = match format {
            Format::Common => common as fn(Entry, &mut Vec<u8>),
            Format::Combined => combined,
            Format::Json => json,
        };
        Ok(AccessLog {
            writer: Writer::start("access log", sink, QUEUE, format_line, reopen, false)?,
        })
    }

    /// Records a response; never waits.
    pub fn record(&self, entry: Entry) {
        self.writer.write(entry);
    }
}

fn common(entry: Entry, out: &mut Vec<u8>) {
    common_part(&entry, out);
    out.push(b'\n');
}

fn combined(entry: Entry, out: &mut Vec<u8>) {
    common_part(&entry, out);
    out.extend_from_slice(b" \"");
    quote_into(out, entry.referer.as_deref().unwrap_or("-"));
    out.extend_from_slice(b"\" \"");
    quote_into(out, entry.user_agent.as_deref().unwrap_or("-"));
    out.extend_from_slice(b"\"\n");
}

fn json(entry: Entry, out: &mut Vec<u8>) {
    let value = serde_json::json!({
        "time": clf_time(entry.time),
        "client": entry.client.to_string(),
        "user": entry.user,
        "request": entry.request_line,
        "status": entry.status,
        "bytes": entry.body_bytes,
        "referer": entry.referer,
        "user_agent": entry.user_agent,
    });
    out.extend_from_slice(value.to_string().as_bytes());
    out.push(b'\n');
}

/// `host - user [time] "request" status bytes`, bytes `-` when there were none (as Apache writes it).
fn common_part(entry: &Entry, out: &mut Vec<u8>) {
    // Written byte by byte: the formatting machinery would cost more than the rest of the line.
    match entry.client {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_decimal(out, u64::from(octet));
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
    out.extend_from_slice(b" - ");
    match entry.user.as_deref() {
        Some(user) if !user.is_empty() => quote_into(out, user),
        _ => out.push(b'-'),
    }
    out.extend_from_slice(b" [");
    with_clf_time(entry.time, |time| out.extend_from_slice(time.as_bytes()));
    out.extend_from_slice(b"] \"");
    quote_into(out, &entry.request_line);
    out.extend_from_slice(b"\" ");
    push_decimal(out, u64::from(entry.status));
    out.push(b' ');
    if entry.body_bytes == 0 {
        out.push(b'-');
    } else {
        push_decimal(out, entry.body_bytes);
    }
}

/// Text from the client, made safe inside a quoted log field: `"` and `\` are escaped, control bytes and
/// anything outside printable ASCII become `\xHH`, so no client can forge a line or break a parser.
fn quote_into(out: &mut Vec<u8>, text: &str) {
    for byte in text.bytes() {
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b' '..=b'~' => out.push(byte),
            _ => {
                let _ = write!(out, "\\x{byte:02x}");
            }
        }
    }
}

thread_local! {
    /// The last second formatted, and its text: lines come many to a second, from one writer thread.
    static LAST_SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// `01/Dec/2026:18:14:31 +0000`.
fn clf_time(at: SystemTime) -> String {
    with_clf_time(at, str::to_owned)
}

/// Calls `use_it` with the time's text, formatted once per second.
fn with_clf_time<R>(at: SystemTime, use_it: impl FnOnce(&str) -> R) -> R {
    let second = at.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    LAST_SECOND.with_borrow_mut(|(last, text)| {
        if *last != second {
            *last = second;
            *text = format_clf_time(at);
        }
        use_it(text)
    })
}

fn format_clf_time(at: SystemTime) -> String {
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let at = time::OffsetDateTime::from(at);
    let month = MONTHS[usize::from(u8::from(at.month())) - 1];
    format!(
        "{:02}/{month}/{:04}:{:02}:{:02}:{:02} +0000",
        at.day(),
        at.year(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn entry() -> Entry {
        Entry {
            client: "127.0.0.1".parse().unwrap(),
            user: None,
            time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_953_600),
            request_line: "GET /index.html HTTP/1.1".into(),
            status: 200,
            body_bytes: 1089,
            referer: Some("http://localhost/".into()),
            user_agent: Some("Mozilla/5.0 (X11; \"quoted\")".into()),
        }
    }

    fn line(format: fn(Entry, &mut Vec<u8>), entry: Entry) -> String {
        let mut out = Vec::new();
        format(entry, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn combined_lines_have_every_field_quoted_and_escaped() {
        assert_eq!(
            line(combined, entry()),
            "127.0.0.1 - - [29/Nov/2026:12:00:00 +0000] \"GET /index.html HTTP/1.1\" 200 1089 \
             \"http://localhost/\" \"Mozilla/5.0 (X11; \\\"quoted\\\")\"\n"
        );
        let empty = Entry {
            body_bytes: 0,
            referer: None,
            user_agent: None,
            user: Some("ann".into()),
            ..entry()
        };
        assert_eq!(
            line(combined, empty),
            "127.0.0.1 - ann [29/Nov/2026:12:00:00 +0000] \"GET /index.html HTTP/1.1\" 200 - \"-\" \"-\"\n"
        );
    }

    #[test]
    fn client_text_cannot_forge_a_line() {
        let forged =
            Entry { user_agent: Some("x\"\n127.0.0.1 - - [x] \"GET /\\ \u{e9}".into()), ..entry() };
        let text = line(combined, forged);
        assert_eq!(text.matches('\n').count(), 1);
        assert!(
            text.ends_with("\"x\\\"\\x0a127.0.0.1 - - [x] \\\"GET /\\\\ \\xc3\\xa9\"\n"),
            "{text}"
        );
    }

    #[test]
    fn common_and_json_carry_the_same_fields() {
        assert_eq!(
            line(common, entry()),
            "127.0.0.1 - - [29/Nov/2026:12:00:00 +0000] \"GET /index.html HTTP/1.1\" 200 1089\n"
        );
        let text = line(json, entry());
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["status"], 200);
        assert_eq!(value["bytes"], 1089);
        assert_eq!(value["user_agent"], "Mozilla/5.0 (X11; \"quoted\")");
        assert_eq!(value["user"], serde_json::Value::Null);
    }
}
