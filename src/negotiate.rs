//! Content negotiation (RFC 9110 §12.5): which error format a client prefers (`Accept`), and which content
//! codings it takes (`Accept-Encoding`). Pure functions over header values.

/// The quality a client gives a media type by `Accept`, from the most specific range that matches it
/// (`type/subtype` over `type/*` over `*/*`). Without an `Accept` field everything is acceptable (1.0).
fn media_quality(accept: Option<&str>, media_type: &str) -> f32 {
    let Some(accept) = accept else {
        return 1.0;
    };
    let (kind, _) = media_type.split_once('/').unwrap_or((media_type, ""));
    let mut best: Option<(u8, f32)> = None;
    for (range, q) in elements(accept) {
        let specificity = if range.eq_ignore_ascii_case(media_type) {
            3
        } else if range.strip_suffix("/*").is_some_and(|t| t.eq_ignore_ascii_case(kind)) {
            2
        } else if range == "*/*" {
            1
        } else {
            continue;
        };
        if best.is_none_or(|(s, _)| specificity > s) {
            best = Some((specificity, q));
        }
    }
    best.map_or(0.0, |(_, q)| q)
}

/// Whether an error page should be HTML: the client ranks `text/html` above `application/json`, as every
/// browser's `Accept` does; curl's `*/*` and API clients get JSON.
pub fn prefers_html(accept: Option<&str>) -> bool {
    media_quality(accept, "text/html") > media_quality(accept, "application/json")
}

/// A content coding a file may be stored in beside itself, as `NAME.br` or `NAME.gz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    /// Brotli, preferred: smaller.
    Br,
    /// gzip.
    Gzip,
}

impl Coding {
    /// The `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Gzip => "gzip",
        }
    }

    /// The file name suffix of the variant.
    pub fn suffix(self) -> &'static str {
        match self {
            Coding::Br => ".br",
            Coding::Gzip => ".gz",
        }
    }
}

/// The precompressed variants a client takes, by `Accept-Encoding` (RFC 9110 §12.5.3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Encodings {
    /// `br`.
    pub br: bool,
    /// `gzip` (or its alias `x-gzip`).
    pub gzip: bool,
}

impl Encodings {
    /// Whether the client takes this coding.
    pub fn takes(self, coding: Coding) -> bool {
        match coding {
            Coding::Br => self.br,
            Coding::Gzip => self.gzip,
        }
    }
}

/// Reads `Accept-Encoding`: a coding is taken when it, or `*`, is listed with a q-value above 0; `q=0` refuses
/// it, and an explicit entry wins over `*`. Without the field, no coding is assumed.
pub fn encodings(accept_encoding: Option<&str>) -> Encodings {
    let Some(value) = accept_encoding else {
        return Encodings::default();
    };
    let mut star = None;
    let (mut br, mut gzip) = (None, None);
    for (coding, q) in elements(value) {
        let slot = if coding.eq_ignore_ascii_case("br") {
            &mut br
        } else if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            &mut gzip
        } else if coding == "*" {
            &mut star
        } else {
            continue;
        };
        *slot = Some(q > 0.0);
    }
    let taken = |explicit: Option<bool>| explicit.or(star).unwrap_or(false);
    Encodings { br: taken(br), gzip: taken(gzip) }
}

/// The elements of a list field as (value, q). A q-value that does not parse counts as 0, so a malformed
/// element never wins.
fn elements(value: &str) -> impl Iterator<Item = (&str, f32)> {
    value.split(',').filter_map(|element| {
        let mut params = element.split(';');
        let name = params.next()?.trim();
        if name.is_empty() {
            return None;
        }
        let mut q = 1.0;
        for param in params {
            if let Some((key, v)) = param.split_once('=') {
                if key.trim().eq_ignore_ascii_case("q") {
                    q = v
                        .trim()
                        .parse::<f32>()
                        .ok()
                        .filter(|q| (0.0..=1.0).contains(q))
                        .unwrap_or(0.0);
                }
            }
        }
        Some((name, q))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_get_html_errors_and_other_clients_json() {
        let cases = [
            (Some("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"), true),
            (Some("text/html"), true),
            (Some("text/*, application/json;q=0.5"), true),
            (Some("*/*"), false),
            (Some("application/json"), false),
            (Some("application/json, text/html"), false),
            (Some("text/html;q=0.5, */*"), false),
            (Some("text/html;q=oops"), false),
            (Some(""), false),
            (None, false),
        ];
        for (accept, want) in cases {
            assert_eq!(prefers_html(accept), want, "{accept:?}");
        }
    }

    #[test]
    fn accept_encoding_honours_q_values_and_the_wildcard() {
        let both = Encodings { br: true, gzip: true };
        let gzip = Encodings { br: false, gzip: true };
        let br = Encodings { br: true, gzip: false };
        let none = Encodings::default();
        let cases = [
            (Some("gzip, deflate, br"), both),
            (Some("gzip"), gzip),
            (Some("x-gzip"), gzip),
            (Some("BR;q=0.5"), br),
            (Some("gzip, br;q=0"), gzip),
            (Some("br; q=0.0, gzip;q=1.0"), gzip),
            (Some("*"), both),
            (Some("*;q=0, gzip"), gzip),
            (Some("br, *;q=0"), br),
            (Some("gzip;q=x"), none),
            (Some("identity"), none),
            (Some(""), none),
            (None, none),
        ];
        for (value, want) in cases {
            assert_eq!(encodings(value), want, "{value:?}");
        }
    }
}
