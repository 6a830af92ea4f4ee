//! Conditional requests (RFC 9110 §13): a file's validators, and the order its preconditions are evaluated in.

use crate::http::Conditions;
use crate::worker::FileMeta;
use std::time::{SystemTime, UNIX_EPOCH};

/// The strong entity tag of a file: inode, length and modification time to the nanosecond, so any change
/// the filesystem can see gives a new tag.
pub fn etag(meta: &FileMeta) -> String {
    let mtime = meta.mtime.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("\"{:x}-{:x}-{:x}.{:x}\"", meta.inode, meta.len, mtime.as_secs(), mtime.subsec_nanos())
}

/// The `Last-Modified` value of a file.
pub fn last_modified(meta: &FileMeta) -> String {
    httpdate::fmt_http_date(meta.mtime)
}

/// What the preconditions of a GET or HEAD say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Send the file (or the parts asked for).
    Proceed,
    /// 304: the client's copy is current.
    NotModified,
    /// 412: a precondition the client set does not hold.
    Failed,
}

/// Evaluates the preconditions of a GET or HEAD in the order of RFC 9110 §13.2.2: If-Match, else
/// If-Unmodified-Since; then If-None-Match, else If-Modified-Since. A date that does not parse is ignored.
pub fn evaluate(conditions: &Conditions, etag: &str, mtime: SystemTime) -> Precondition {
    let modified = seconds(mtime);
    if let Some(list) = &conditions.if_match {
        if !matches_any(list, etag, Comparison::Strong) {
            return Precondition::Failed;
        }
    } else if let Some(date) = conditions.if_unmodified_since.as_deref().and_then(parse_date) {
        if modified > date {
            return Precondition::Failed;
        }
    }
    if let Some(list) = &conditions.if_none_match {
        if matches_any(list, etag, Comparison::Weak) {
            return Precondition::NotModified;
        }
    } else if let Some(date) = conditions.if_modified_since.as_deref().and_then(parse_date) {
        if modified <= date {
            return Precondition::NotModified;
        }
    }
    Precondition::Proceed
}

/// Whether an `If-Range` value still names this file (RFC 9110 §13.1.5): an entity tag by strong comparison,
/// or a date equal to its Last-Modified.
pub fn if_range_holds(value: &str, etag: &str, mtime: SystemTime) -> bool {
    if value.starts_with('"') || value.starts_with("W/") {
        return matches_any(value, etag, Comparison::Strong) && value != "*";
    }
    parse_date(value) == Some(seconds(mtime))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Comparison {
    /// Both tags strong and equal: for If-Match and If-Range.
    Strong,
    /// Equal ignoring `W/`: for If-None-Match.
    Weak,
}

/// Whether `list` (`*` or comma-separated entity tags) matches our tag. A malformed list matches nothing.
fn matches_any(list: &str, etag: &str, comparison: Comparison) -> bool {
    if list.trim() == "*" {
        return true;
    }
    let mut rest = list.trim_start();
    while !rest.is_empty() {
        let (weak, tagged) = match rest.strip_prefix("W/") {
            Some(after) => (true, after),
            None => (false, rest),
        };
        // An entity tag is a quoted string without quotes inside it (RFC 9110 §8.8.3).
        let Some(end) = tagged.strip_prefix('"').and_then(|t| t.find('"')) else {
            return false;
        };
        let tag = &tagged[..end + 2];
        if tag == etag && (comparison == Comparison::Weak || !weak) {
            return true;
        }
        rest = tagged[end + 2..].trim_start();
        match rest.strip_prefix(',') {
            Some(after) => rest = after.trim_start(),
            None if rest.is_empty() => {}
            None => return false,
        }
    }
    false
}

fn parse_date(value: &str) -> Option<u64> {
    httpdate::parse_http_date(value).ok().map(seconds)
}

/// HTTP dates have whole seconds, so a file is compared at that precision.
fn seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const TAG: &str = "\"1-2-3.4\"";
    const OTHER: &str = "\"9-9-9.9\"";
    /// The file's time: Sun, 29 Nov 2026 12:00:00 GMT, half a second in.
    fn mtime() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_795_953_600_500)
    }
    const AT: &str = "Sun, 29 Nov 2026 12:00:00 GMT";
    const BEFORE: &str = "Sun, 29 Nov 2026 11:59:59 GMT";
    const AFTER: &str = "Sun, 29 Nov 2026 12:00:01 GMT";

    fn conditions(fields: &[(&str, &str)]) -> Conditions {
        let mut c = Conditions::default();
        for (name, value) in fields {
            let slot = match *name {
                "If-Match" => &mut c.if_match,
                "If-None-Match" => &mut c.if_none_match,
                "If-Modified-Since" => &mut c.if_modified_since,
                "If-Unmodified-Since" => &mut c.if_unmodified_since,
                other => panic!("{other}"),
            };
            *slot = Some(value.to_string());
        }
        c
    }

    #[test]
    fn preconditions_are_evaluated_in_the_order_of_rfc_9110_13_2_2() {
        use Precondition::*;
        let weak_tag = format!("W/{TAG}");
        let list = format!("{OTHER}, {TAG}");
        let cases: &[(&[(&str, &str)], Precondition)] = &[
            (&[], Proceed),
            // Step 1: If-Match, by strong comparison.
            (&[("If-Match", TAG)], Proceed),
            (&[("If-Match", "*")], Proceed),
            (&[("If-Match", &list)], Proceed),
            (&[("If-Match", OTHER)], Failed),
            (&[("If-Match", &weak_tag)], Failed),
            // If-Match decides; If-Unmodified-Since is then not looked at.
            (&[("If-Match", TAG), ("If-Unmodified-Since", BEFORE)], Proceed),
            // Step 2: If-Unmodified-Since without If-Match.
            (&[("If-Unmodified-Since", AT)], Proceed),
            (&[("If-Unmodified-Since", BEFORE)], Failed),
            (&[("If-Unmodified-Since", "yesterday")], Proceed),
            // Step 3: If-None-Match, by weak comparison.
            (&[("If-None-Match", TAG)], NotModified),
            (&[("If-None-Match", &weak_tag)], NotModified),
            (&[("If-None-Match", "*")], NotModified),
            (&[("If-None-Match", OTHER)], Proceed),
            // If-None-Match wins over If-Modified-Since, either way.
            (&[("If-None-Match", OTHER), ("If-Modified-Since", AFTER)], Proceed),
            (&[("If-None-Match", TAG), ("If-Modified-Since", BEFORE)], NotModified),
            // Step 4: If-Modified-Since without If-None-Match.
            (&[("If-Modified-Since", AT)], NotModified),
            (&[("If-Modified-Since", AFTER)], NotModified),
            (&[("If-Modified-Since", BEFORE)], Proceed),
            (&[("If-Modified-Since", "not a date")], Proceed),
            // A failed step 1 or 2 comes before any 304.
            (&[("If-Match", OTHER), ("If-None-Match", TAG)], Failed),
            (&[("If-Unmodified-Since", BEFORE), ("If-Modified-Since", AT)], Failed),
        ];
        for (fields, want) in cases {
            assert_eq!(evaluate(&conditions(fields), TAG, mtime()), *want, "{fields:?}");
        }
    }

    #[test]
    fn entity_tag_lists_are_parsed_and_malformed_ones_match_nothing() {
        let cases = [
            ("\"a\", \"1-2-3.4\"", true),
            ("\"a\",\"1-2-3.4\"", true),
            (" \"1-2-3.4\" ", true),
            ("\"a,b\", \"1-2-3.4\"", true),
            ("\"a\"", false),
            ("1-2-3.4", false),
            ("\"1-2-3.4", false),
            ("\"a\" \"1-2-3.4\"", false),
            ("", false),
        ];
        for (list, want) in cases {
            assert_eq!(matches_any(list, TAG, Comparison::Weak), want, "{list:?}");
        }
    }

    #[test]
    fn if_range_needs_a_strong_tag_or_the_exact_date() {
        assert!(if_range_holds(TAG, TAG, mtime()));
        assert!(!if_range_holds(&format!("W/{TAG}"), TAG, mtime()));
        assert!(!if_range_holds(OTHER, TAG, mtime()));
        assert!(if_range_holds(AT, TAG, mtime()));
        assert!(!if_range_holds(AFTER, TAG, mtime()));
        assert!(!if_range_holds(BEFORE, TAG, mtime()));
        assert!(!if_range_holds("*", TAG, mtime()));
    }

    #[test]
    fn a_new_inode_size_or_time_gives_a_new_tag() {
        use crate::mime::FileKind;
        let kind = FileKind { media_type: "text/plain", download: false };
        let meta =
            FileMeta { len: 10, kind, mtime: mtime(), inode: 7, encoding: None, varies: false };
        let tags = [
            etag(&meta),
            etag(&FileMeta { inode: 8, ..meta }),
            etag(&FileMeta { len: 11, ..meta }),
            etag(&FileMeta { mtime: mtime() + Duration::from_nanos(1), ..meta }),
        ];
        for (i, a) in tags.iter().enumerate() {
            assert!(a.starts_with('"') && a.ends_with('"'));
            for b in &tags[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(last_modified(&meta), AT);
    }
}
