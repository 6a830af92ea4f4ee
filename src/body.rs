//! Request body decoding: Content-Length and chunked framing (RFC 9112 §6, §7.1). Pure functions over bytes.

use crate::error::HttpError;
use crate::http::BodyFraming;

/// Longest chunk-size line or trailer line; chunk extensions beyond this are abuse. 4 KiB.
pub const MAX_CHUNK_LINE: usize = 4 * 1024;

/// Total bytes of trailer fields accepted (and discarded) after the last chunk. 16 KiB.
pub const MAX_TRAILER_BYTES: usize = 16 * 1024;

/// Where a body decoder is within the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyDecoder {
    /// `remaining` bytes of a Content-Length body still to come.
    Length { remaining: u64 },
    /// Expecting a chunk-size line.
    ChunkSize,
    /// Inside a chunk's data.
    ChunkData { remaining: u64 },
    /// Expecting the CRLF that ends a chunk's data.
    ChunkEnd,
    /// After the last chunk: trailer lines until an empty one; `seen` bytes so far.
    Trailers { seen: usize },
    /// The body is complete.
    Done,
}

impl BodyDecoder {
    /// A decoder for a request with this framing.
    pub fn new(framing: BodyFraming) -> BodyDecoder {
        match framing {
            BodyFraming::None | BodyFraming::Length(0) => BodyDecoder::Done,
            BodyFraming::Length(len) => BodyDecoder::Length { remaining: len },
            BodyFraming::Chunked => BodyDecoder::ChunkSize,
        }
    }

    /// Body bytes still to come, when the framing says (a Content-Length body).
    pub fn remaining(&self) -> Option<u64> {
        match self {
            BodyDecoder::Length { remaining } => Some(*remaining),
            BodyDecoder::Done => Some(0),
            _ => None,
        }
    }

    /// Whether the whole body has been decoded.
    pub fn is_done(&self) -> bool {
        *self == BodyDecoder::Done
    }

    /// Moves body bytes from the front of `input` into `body`, returning how many input bytes were used.
    /// Stops at the end of the body (the rest of `input` is the next request), when `input` runs out, or
    /// when `body` holds `window` bytes (framing is still consumed then, so a small window can't stall it).
    /// A body growing past `max_body` bytes in `body` is refused as soon as its declared size says so.
    pub fn decode(
        &mut self,
        input: &[u8],
        body: &mut Vec<u8>,
        max_body: usize,
        window: usize,
    ) -> Result<usize, HttpError> {
        let mut used = 0;
        loop {
            let rest = &input[used..];
            match self {
                BodyDecoder::Done => return Ok(used),
                BodyDecoder::Length { remaining } | BodyDecoder::ChunkData { remaining } => {
                    let room = window.saturating_sub(body.len());
                    let take =
                        rest.len().min(usize::try_from(*remaining).unwrap_or(usize::MAX)).min(room);
                    if take == 0 {
                        return Ok(used);
                    }
                    body.extend_from_slice(&rest[..take]);
                    used += take;
                    *remaining -= take as u64;
                    if *remaining == 0 {
                        *self = match self {
                            BodyDecoder::Length { .. } => BodyDecoder::Done,
                            _ => BodyDecoder::ChunkEnd,
                        };
                    }
                }
                BodyDecoder::ChunkSize => {
                    let Some(line) = take_line(rest)? else {
                        return Ok(used);
                    };
                    used += line.len() + 2;
                    let size = chunk_size(line)?;
                    let room = max_body.saturating_sub(body.len()) as u64;
                    if size > room {
                        return Err(HttpError::PayloadTooLarge);
                    }
                    *self = match size {
                        0 => BodyDecoder::Trailers { seen: 0 },
                        size => BodyDecoder::ChunkData { remaining: size },
                    };
                }
                BodyDecoder::ChunkEnd => match rest {
                    [b'\r', b'\n', ..] => {
                        used += 2;
                        *self = BodyDecoder::ChunkSize;
                    }
                    [] | [b'\r'] => return Ok(used),
                    _ => return Err(HttpError::BadRequest),
                },
                BodyDecoder::Trailers { seen } => {
                    let Some(line) = take_line(rest)? else {
                        return Ok(used);
                    };
                    used += line.len() + 2;
                    *seen += line.len() + 2;
                    if line.is_empty() {
                        *self = BodyDecoder::Done;
                    } else if *seen > MAX_TRAILER_BYTES {
                        return Err(HttpError::HeadersTooLarge);
                    } else if !is_field_line(line) {
                        return Err(HttpError::BadRequest);
                    }
                }
            }
        }
    }
}

/// The line at the front of `input`, without its CRLF; `None` if it is not complete yet.
/// Control characters (a bare CR included) are refused, so no other parser can split the line differently.
fn take_line(input: &[u8]) -> Result<Option<&[u8]>, HttpError> {
    let window = &input[..input.len().min(MAX_CHUNK_LINE + 2)];
    let is_control = |b: &u8| (b.is_ascii_control() && *b != b'\t') || *b == 0x7f;
    match window.iter().position(|&b| b == b'\n') {
        Some(lf) if lf > 0 && window[lf - 1] == b'\r' => {
            let line = &window[..lf - 1];
            if line.iter().any(is_control) {
                return Err(HttpError::BadRequest);
            }
            Ok(Some(line))
        }
        Some(_) => Err(HttpError::BadRequest),
        None if window.len() > MAX_CHUNK_LINE => Err(HttpError::BadRequest),
        None => Ok(None),
    }
}

/// `name: value` with a non-empty token name (RFC 9110 §5.1), as a trailer field must be.
fn is_field_line(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return false;
    };
    let is_tchar = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
    colon > 0 && line[..colon].iter().all(is_tchar)
}

/// Parses `chunk-size [ BWS ; chunk-ext ]`, ignoring the extensions and refusing sizes that overflow.
fn chunk_size(line: &[u8]) -> Result<u64, HttpError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let extension = line[digits..].iter().find(|&&b| b != b' ' && b != b'\t');
    if digits == 0 || !matches!(extension, None | Some(b';')) {
        return Err(HttpError::BadRequest);
    }
    line[..digits].iter().try_fold(0u64, |size, &b| {
        let digit = (b as char).to_digit(16).ok_or(HttpError::BadRequest)?;
        size.checked_mul(16)
            .and_then(|s| s.checked_add(u64::from(digit)))
            .ok_or(HttpError::PayloadTooLarge)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1024;

    /// Feeds `input` in pieces of `step` bytes the way the connection does: unused bytes stay buffered.
    fn decode_in_steps(
        framing: BodyFraming,
        input: &[u8],
        step: usize,
    ) -> Result<(Vec<u8>, usize), HttpError> {
        decode_in_windows(framing, input, step, usize::MAX)
    }

    /// Like `decode_in_steps`, with the body taken out whenever it fills `window`, as uploads spill to disk.
    fn decode_in_windows(
        framing: BodyFraming,
        input: &[u8],
        step: usize,
        window: usize,
    ) -> Result<(Vec<u8>, usize), HttpError> {
        let mut decoder = BodyDecoder::new(framing);
        let mut whole = Vec::new();
        let mut body = Vec::new();
        let mut buffered = Vec::new();
        let mut fed = 0;
        while !decoder.is_done() {
            if fed == input.len() {
                return Err(HttpError::BadRequest);
            }
            let end = (fed + step).min(input.len());
            buffered.extend_from_slice(&input[fed..end]);
            fed = end;
            loop {
                let used = decoder.decode(&buffered, &mut body, MAX - whole.len(), window)?;
                buffered.drain(..used);
                assert!(body.len() <= window, "the window holds at most {window} bytes");
                if body.len() < window {
                    break;
                }
                whole.append(&mut body);
            }
        }
        whole.append(&mut body);
        Ok((whole, buffered.len() + input.len() - fed))
    }

    #[test]
    fn a_body_decoded_a_small_window_at_a_time_is_the_same_body() {
        let chunked =
            b"4;name=value\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\n\r\nGET /next";
        for (window, step) in [(1, 1), (1, 7), (3, 2), (5, 64), (7, 1)] {
            let (body, left) =
                decode_in_windows(BodyFraming::Chunked, chunked, step, window).unwrap();
            assert_eq!(body, b"Wikipedia in\r\n\r\nchunks.", "window {window}, step {step}");
            assert_eq!(left, b"GET /next".len(), "window {window}, step {step}");
            let (body, left) =
                decode_in_windows(BodyFraming::Length(5), b"hello world", step, window).unwrap();
            assert_eq!((body.as_slice(), left), (&b"hello"[..], 6), "window {window}, step {step}");
        }
    }

    #[test]
    fn chunked_body_decodes_at_any_split() {
        let input = b"4;name=value\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: 1\r\n\r\nGET /next";
        for step in 1..=input.len() {
            let (body, left) = decode_in_steps(BodyFraming::Chunked, input, step).unwrap();
            assert_eq!(body, b"Wikipedia in\r\n\r\nchunks.", "step {step}");
            assert_eq!(left, b"GET /next".len(), "step {step}");
        }
    }

    #[test]
    fn length_body_stops_at_its_end() {
        let (body, left) = decode_in_steps(BodyFraming::Length(5), b"hello world", 3).unwrap();
        assert_eq!((body.as_slice(), left), (&b"hello"[..], 6));
    }

    #[test]
    fn chunk_sizes_that_overflow_are_refused() {
        let mut decoder = BodyDecoder::new(BodyFraming::Chunked);
        let result =
            decoder.decode(b"10000000000000000\r\n", &mut Vec::new(), usize::MAX, usize::MAX);
        assert_eq!(result, Err(HttpError::PayloadTooLarge));
    }

    #[test]
    fn chunked_body_over_the_limit_is_refused_when_declared() {
        let mut decoder = BodyDecoder::new(BodyFraming::Chunked);
        let mut body = Vec::new();
        assert_eq!(decoder.decode(b"400\r\n", &mut body, MAX, usize::MAX), Ok(5));
        let mut decoder = BodyDecoder::new(BodyFraming::Chunked);
        assert_eq!(
            decoder.decode(b"401\r\n", &mut body, MAX, usize::MAX),
            Err(HttpError::PayloadTooLarge)
        );
    }

    #[test]
    fn a_huge_chunk_after_a_small_one_is_refused_not_wrapped() {
        let mut decoder = BodyDecoder::new(BodyFraming::Chunked);
        let input = b"1\r\n[\r\nFFFFFFFFFFFFFFFF\r\n";
        assert_eq!(
            decoder.decode(input, &mut Vec::new(), MAX, usize::MAX),
            Err(HttpError::PayloadTooLarge)
        );
    }

    #[test]
    fn malformed_chunks_are_bad_requests() {
        let bad: &[&[u8]] = &[
            b"\r\n",
            b"zz\r\n",
            b"4 x\r\n",
            b"4\nWiki",
            b"2\r\nabX\r\n",
            b"-1\r\n",
            b"2;a\rb\r\n",
            b"0\r\n\x01\x02 no colon\r\n\r\n",
            b"0\r\nno colon\r\n\r\n",
            b"0\r\n: empty name\r\n\r\n",
        ];
        for input in bad {
            let mut decoder = BodyDecoder::new(BodyFraming::Chunked);
            let result = decoder.decode(input, &mut Vec::new(), MAX, usize::MAX);
            assert_eq!(result, Err(HttpError::BadRequest), "{}", String::from_utf8_lossy(input));
        }
        let long_line = vec![b'1'; MAX_CHUNK_LINE + 3];
        let mut decoder = BodyDecoder::new(BodyFraming::Chunked);
        assert!(decoder.decode(&long_line, &mut Vec::new(), MAX, usize::MAX).is_err());
    }

    #[test]
    fn random_input_never_panics_or_overruns() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"0123456789abcdefABCDEF;= \t\r\nxX";
        for _ in 0..20_000 {
            let len = (next() % 64) as usize;
            let input: Vec<u8> =
                (0..len).map(|_| alphabet[(next() as usize) % alphabet.len()]).collect();
            let mut decoder = BodyDecoder::new(BodyFraming::Chunked);
            let mut body = Vec::new();
            if let Ok(used) = decoder.decode(&input, &mut body, MAX, usize::MAX) {
                assert!(used <= input.len() && body.len() <= MAX);
            }
        }
    }

    #[test]
    fn chunk_extensions_with_whitespace_are_ignored() {
        assert_eq!(chunk_size(b"1a ; ext=\"v\""), Ok(26));
        assert_eq!(chunk_size(b"0"), Ok(0));
    }
}
