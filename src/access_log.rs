//! The access log: one line per response, in Common or Combined Log Format or as JSON, written by its own
//! thread (`logging::Writer`), so a slow or broken sink costs the loop nothing but a dropped line.

use crate::logging::{Sink, Writer};
use std::fmt::Write as _;
use std::io;
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
    let line = common_part(&entry);
    out.extend_from_slice(line.as_bytes());
    out.push(b'\n');
}

fn combined(entry: Entry, out: &mut Vec<u8>) {
    let mut line = common_part(&entry);
    line.push_str(" \"");
    quote_into(&mut line, entry.referer.as_deref().unwrap_or("-"));
    line.push_str("\" \"");
    quote_into(&mut line, entry.user_agent.as_deref().unwrap_or("-"));
    line.push_str("\"\n");
    out.extend_from_slice(line.as_bytes());
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
fn common_part(entry: &Entry) -> String {
    let mut line = String::with_capacity(160);
    let user = entry.user.as_deref().unwrap_or("-");
    let _ = write!(line, "{} - ", entry.client);
    quote_into(&mut line, if user.is_empty() { "-" } else { user });
    let _ = write!(line, " [{}] \"", clf_time(entry.time));
    quote_into(&mut line, &entry.request_line);
    let _ = write!(line, "\" {} ", entry.status);
    if entry.body_bytes == 0 {
        line.push('-');
    } else {
        let _ = write!(line, "{}", entry.body_bytes);
    }
    line
}

/// Text from the client, made safe inside a quoted log field: `"` and `\` are escaped, control bytes and
/// anything outside printable ASCII become `\xHH`, so no client can forge a line or break a parser.
fn quote_into(line: &mut String, text: &str) {
    for byte in text.bytes() {
        match byte {
            b'"' => line.push_str("\\\""),
            b'\\' => line.push_str("\\\\"),
            b' '..=b'~' => line.push(char::from(byte)),
            _ => {
                let _ = write!(line, "\\x{byte:02x}");
            }
        }
    }
}

/// `01/Dec/2026:18:14:31 +0000`.
fn clf_time(at: SystemTime) -> String {
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
