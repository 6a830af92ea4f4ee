//! Byte ranges (RFC 9110 §14): which parts of a file a `Range` field asks for, and the body of a
//! `multipart/byteranges` answer as segments.

use crate::cursor::Segment;

/// Most parts a response sends, after overlapping and adjacent ranges are merged. 16: enough for any real
/// client (PDF viewers ask for a handful), and a Range of thousands of tiny parts can't multiply the work
/// or the response size; beyond it the whole file is sent with 200, as RFC 9110 §14.2 allows.
pub const MAX_PARTS: usize = 16;

/// What a `Range` field asks of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ranges {
    /// The whole file: no usable Range (malformed, another unit, too many parts).
    Full,
    /// These inclusive byte spans, sorted and merged: 206.
    Partial(Vec<(u64, u64)>),
    /// Well-formed, but no span lies within the file: 416.
    Unsatisfiable,
}

/// Reads a `Range` value against a file of `len` bytes. Numbers too large for 64 bits count as "to the end".
pub fn parse(value: &str, len: u64) -> Ranges {
    let Some((unit, specs)) = value.split_once('=') else {
        return Ranges::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Ranges::Full;
    }
    let mut spans = Vec::new();
    let mut any = false;
    for spec in specs.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        any = true;
        let Some((first, last)) = spec.split_once('-') else {
            return Ranges::Full;
        };
        let span = match (number(first), number(last)) {
            // `-n`: the last n bytes. An empty file has no byte to name: it is sent whole (200).
            (None, Some(n)) if first.is_empty() => {
                if len == 0 && n > 0 {
                    return Ranges::Full;
                }
                (n > 0).then(|| (len.saturating_sub(n), len - 1))
            }
            // `a-`: from a to the end.
            (Some(a), None) if last.is_empty() => (a < len).then(|| (a, len - 1)),
            (Some(a), Some(b)) if a <= b => (a < len).then(|| (a, b.min(len - 1))),
            _ => return Ranges::Full,
        };
        spans.extend(span);
    }
    if !any {
        return Ranges::Full;
    }
    if spans.is_empty() {
        return Ranges::Unsatisfiable;
    }
    spans.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(spans.len());
    for (start, end) in spans {
        match merged.last_mut() {
            Some((_, last)) if start <= last.saturating_add(1) => *last = (*last).max(end),
            _ => merged.push((start, end)),
        }
    }
    if merged.len() > MAX_PARTS {
        return Ranges::Full;
    }
    Ranges::Partial(merged)
}

/// A run of ASCII digits; saturates rather than overflowing. `None` for anything else, including "".
fn number(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.bytes().fold(0u64, |n, d| n.saturating_mul(10).saturating_add(u64::from(d - b'0'))))
}

/// The `Content-Range` value of one span.
pub fn content_range(start: u64, end: u64, len: u64) -> String {
    format!("bytes {start}-{end}/{len}")
}

/// The body of a `multipart/byteranges` response (RFC 9110 §14.6) as segments, and its length.
pub fn multipart(
    spans: &[(u64, u64)],
    len: u64,
    media_type: &str,
    boundary: &str,
) -> (Vec<Segment>, u64) {
    let mut segments = Vec::with_capacity(spans.len() * 2 + 1);
    for (i, &(start, end)) in spans.iter().enumerate() {
        let lead = if i == 0 { "" } else { "\r\n" };
        let range = content_range(start, end, len);
        let head = format!(
            "{lead}--{boundary}\r\nContent-Type: {media_type}\r\nContent-Range: {range}\r\n\r\n"
        );
        segments.push(Segment::Bytes(head.into_bytes()));
        segments.push(Segment::File { offset: start, len: end - start + 1 });
    }
    segments.push(Segment::Bytes(format!("\r\n--{boundary}--\r\n").into_bytes()));
    let total = segments
        .iter()
        .map(|s| match s {
            Segment::Bytes(bytes) => bytes.len() as u64,
            Segment::File { len, .. } => *len,
        })
        .sum();
    (segments, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_forms_table() {
        use Ranges::*;
        let cases: &[(&str, Ranges)] = &[
            ("bytes=0-499", Partial(vec![(0, 499)])),
            ("bytes=500-999", Partial(vec![(500, 999)])),
            ("bytes=500-", Partial(vec![(500, 999)])),
            ("bytes=-200", Partial(vec![(800, 999)])),
            ("bytes=-5000", Partial(vec![(0, 999)])),
            ("bytes=900-5000", Partial(vec![(900, 999)])),
            ("bytes=0-0", Partial(vec![(0, 0)])),
            ("Bytes = 1-2", Partial(vec![(1, 2)])),
            ("bytes=0-99999999999999999999", Partial(vec![(0, 999)])),
            ("bytes=0-1, 5-6", Partial(vec![(0, 1), (5, 6)])),
            ("bytes=5-6,0-1", Partial(vec![(0, 1), (5, 6)])),
            ("bytes=0-10, 5-20", Partial(vec![(0, 20)])),
            ("bytes=0-9, 10-19", Partial(vec![(0, 19)])),
            ("bytes=0-1,,", Partial(vec![(0, 1)])),
            ("bytes=0-1, 2000-3000", Partial(vec![(0, 1)])),
            ("bytes=1000-", Unsatisfiable),
            ("bytes=1000-2000", Unsatisfiable),
            ("bytes=-0", Unsatisfiable),
            ("bytes=99999999999999999999-", Unsatisfiable),
            ("bytes=5-1", Full),
            ("bytes=a-b", Full),
            ("bytes=1", Full),
            ("bytes=-", Full),
            ("bytes=--1", Full),
            ("bytes=+1-2", Full),
            ("bytes=", Full),
            ("items=0-1", Full),
            ("0-1", Full),
            ("bytes=0-1;x", Full),
        ];
        for (value, want) in cases {
            assert_eq!(parse(value, 1000), *want, "{value}");
        }
    }

    #[test]
    fn an_empty_file_satisfies_no_offset_and_is_sent_whole_for_a_suffix() {
        assert_eq!(parse("bytes=0-", 0), Ranges::Unsatisfiable);
        assert_eq!(parse("bytes=-1", 0), Ranges::Full);
    }

    #[test]
    fn more_parts_than_the_bound_get_the_whole_file_but_merged_ones_count_once() {
        let many: Vec<String> =
            (0..=MAX_PARTS as u64).map(|i| format!("{}-{}", i * 10, i * 10)).collect();
        assert_eq!(parse(&format!("bytes={}", many.join(",")), 1000), Ranges::Full);
        let overlapping: Vec<String> = (0..100).map(|i| format!("{i}-{}", i + 5)).collect();
        assert_eq!(
            parse(&format!("bytes={}", overlapping.join(",")), 1000),
            Ranges::Partial(vec![(0, 104)])
        );
    }

    #[test]
    fn a_multipart_body_frames_each_span_and_counts_its_length() {
        let (segments, total) = multipart(&[(0, 1), (5, 6)], 10, "text/plain", "B");
        let mut text = String::new();
        for segment in &segments {
            match segment {
                Segment::Bytes(bytes) => text.push_str(std::str::from_utf8(bytes).unwrap()),
                Segment::File { offset, len } => text.push_str(&format!("[{offset}+{len}]")),
            }
        }
        assert_eq!(
            text,
            "--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n[0+2]\
             \r\n--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 5-6/10\r\n\r\n[5+2]\
             \r\n--B--\r\n"
        );
        assert_eq!(total, text.len() as u64 - 10 + 4);
    }
}
