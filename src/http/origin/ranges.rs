//! Range and conditional requests (RFC 9110 §13 and §14) for the origin: which bytes to send, or which status instead.
//!
//! One byte range is honoured (`bytes=a-b`, `bytes=a-`, `bytes=-n`); a request for several, or a Range header that
//! does not parse, gets the whole body, which the RFC allows. A segment is validated by its `Last-Modified` time
//! (whole seconds, as the header carries it) and an `ETag` made of that time and the length, the way nginx makes
//! one: a segment is never rewritten, so both are stable. Playlists are never validated (see the origin).

use axum::http::{header, HeaderMap, HeaderValue, Method};
use std::time::{Duration, SystemTime};

/// What to send of a body of known length.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Bytes {
    Whole,
    /// `start..=end`, both within the body.
    Part {
        start: u64,
        end: u64,
    },
    /// 416: the range starts beyond the end.
    Unsatisfiable,
}

/// The range `headers` ask for in a body of `len` bytes; `validator_holds` is the outcome of `If-Range`.
pub(super) fn requested(headers: &HeaderMap, len: u64, validator_holds: bool) -> Bytes {
    let Some(value) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else { return Bytes::Whole };
    if !validator_holds {
        return Bytes::Whole;
    }
    let Some(spec) = value.trim().strip_prefix("bytes=") else { return Bytes::Whole };
    if spec.contains(',') {
        return Bytes::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else { return Bytes::Whole };
    let number = |s: &str| -> Option<u64> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    match (first.trim().is_empty(), last.trim().is_empty()) {
        // bytes=-n: the last n bytes.
        (true, false) => match number(last) {
            Some(0) => Bytes::Unsatisfiable,
            Some(_) if len == 0 => Bytes::Unsatisfiable,
            Some(n) => Bytes::Part { start: len.saturating_sub(n), end: len - 1 },
            None => Bytes::Whole,
        },
        // bytes=a-
        (false, true) => match number(first) {
            Some(start) if start >= len => Bytes::Unsatisfiable,
            Some(start) => Bytes::Part { start, end: len - 1 },
            None => Bytes::Whole,
        },
        // bytes=a-b
        (false, false) => match (number(first), number(last)) {
            (Some(start), Some(end)) if start > end => Bytes::Whole,
            (Some(start), Some(_)) if start >= len => Bytes::Unsatisfiable,
            (Some(start), Some(end)) => Bytes::Part { start, end: end.min(len - 1) },
            _ => Bytes::Whole,
        },
        (true, true) => Bytes::Whole,
    }
}

/// The validators of one segment file.
#[derive(Debug, Clone)]
pub(super) struct Validators {
    /// Whole seconds since the epoch.
    modified_secs: u64,
    pub last_modified: HeaderValue,
    pub etag: HeaderValue,
}

impl Validators {
    pub fn new(modified: SystemTime, len: u64) -> Validators {
        let modified_secs = modified.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let whole = SystemTime::UNIX_EPOCH + Duration::from_secs(modified_secs);
        let last_modified = HeaderValue::from_str(&httpdate::fmt_http_date(whole))
            .unwrap_or_else(|_| HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"));
        let etag = HeaderValue::from_str(&format!("\"{modified_secs:x}-{len:x}\""))
            .unwrap_or_else(|_| HeaderValue::from_static("\"0-0\""));
        Validators { modified_secs, last_modified, etag }
    }

    fn modified_since(&self, value: &HeaderValue) -> Option<bool> {
        let date = httpdate::parse_http_date(value.to_str().ok()?).ok()?;
        let secs = date.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Some(self.modified_secs > secs)
    }

    /// Whether an entity-tag list (`If-Match`, `If-None-Match`) names this file; `weak` allows `W/` tags.
    fn listed(&self, value: &HeaderValue, weak: bool) -> bool {
        let Ok(list) = value.to_str() else { return false };
        let ours = self.etag.as_bytes();
        list.split(',').map(str::trim).any(|tag| {
            tag == "*"
                || tag.as_bytes() == ours
                || (weak && tag.strip_prefix("W/").is_some_and(|t| t.as_bytes() == ours))
        })
    }

    /// `If-Range`: the range is honoured only if the validator still names this file (a date must be exact).
    pub fn if_range_holds(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers.get(header::IF_RANGE) else { return true };
        if value.as_bytes().starts_with(b"\"") {
            return value.as_bytes() == self.etag.as_bytes();
        }
        httpdate::parse_http_date(value.to_str().unwrap_or(""))
            .ok()
            .and_then(|d| d.duration_since(SystemTime::UNIX_EPOCH).ok())
            .is_some_and(|d| d.as_secs() == self.modified_secs)
    }

    /// The preconditions in the RFC's order: 412, 304, or go on.
    pub fn evaluate(&self, method: &Method, headers: &HeaderMap) -> Precondition {
        if let Some(v) = headers.get(header::IF_MATCH) {
            if !self.listed(v, false) {
                return Precondition::Failed;
            }
        } else if let Some(v) = headers.get(header::IF_UNMODIFIED_SINCE) {
            if self.modified_since(v) == Some(true) {
                return Precondition::Failed;
            }
        }
        let read = method == Method::GET || method == Method::HEAD;
        if let Some(v) = headers.get(header::IF_NONE_MATCH) {
            if self.listed(v, true) {
                return if read { Precondition::NotModified } else { Precondition::Failed };
            }
        } else if let Some(v) = headers.get(header::IF_MODIFIED_SINCE) {
            if read && self.modified_since(v) == Some(false) {
                return Precondition::NotModified;
            }
        }
        Precondition::Proceed
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Precondition {
    Proceed,
    NotModified,
    Failed,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.insert(name.clone(), HeaderValue::from_str(value).expect("header value"));
        }
        h
    }

    fn range(value: &str, len: u64) -> Bytes {
        requested(&headers(&[(header::RANGE, value)]), len, true)
    }

    #[test]
    fn one_range_is_honoured_and_the_rest_gets_the_whole_body() {
        assert_eq!(range("bytes=0-9", 100), Bytes::Part { start: 0, end: 9 });
        assert_eq!(range("bytes=90-", 100), Bytes::Part { start: 90, end: 99 });
        assert_eq!(range("bytes=-5", 100), Bytes::Part { start: 95, end: 99 });
        assert_eq!(range("bytes=-500", 100), Bytes::Part { start: 0, end: 99 }, "a suffix longer than the body");
        assert_eq!(range("bytes=50-500", 100), Bytes::Part { start: 50, end: 99 }, "an end past the end is cut");
        assert_eq!(range("bytes=100-", 100), Bytes::Unsatisfiable);
        assert_eq!(range("bytes=200-300", 100), Bytes::Unsatisfiable);
        assert_eq!(range("bytes=-0", 100), Bytes::Unsatisfiable);
        assert_eq!(range("bytes=0-", 0), Bytes::Unsatisfiable);
        assert_eq!(range("bytes=-3", 0), Bytes::Unsatisfiable);
        for ignored in ["bytes=0-1,5-6", "bytes=9-3", "items=0-1", "bytes=a-b", "bytes=-", "bytes=+1-2", "bytes"] {
            assert_eq!(range(ignored, 100), Bytes::Whole, "{ignored}");
        }
        assert_eq!(requested(&HeaderMap::new(), 100, true), Bytes::Whole);
        assert_eq!(requested(&headers(&[(header::RANGE, "bytes=0-9")]), 100, false), Bytes::Whole, "If-Range failed");
    }

    #[test]
    fn validators_give_304_412_and_if_range_as_the_rfc_orders_them() {
        let modified = SystemTime::UNIX_EPOCH + Duration::from_millis(1_800_000_000_750);
        let v = Validators::new(modified, 1000);
        assert_eq!(v.last_modified, "Fri, 15 Jan 2027 08:00:00 GMT");
        assert_eq!(v.etag, "\"6b49d200-3e8\"");
        let get = |pairs: &[(header::HeaderName, &str)]| v.evaluate(&Method::GET, &headers(pairs));
        let (same, before, after) =
            ("Fri, 15 Jan 2027 08:00:00 GMT", "Fri, 15 Jan 2027 07:59:59 GMT", "Fri, 15 Jan 2027 08:00:01 GMT");
        assert_eq!(get(&[]), Precondition::Proceed);
        assert_eq!(get(&[(header::IF_MODIFIED_SINCE, same)]), Precondition::NotModified);
        assert_eq!(get(&[(header::IF_MODIFIED_SINCE, after)]), Precondition::NotModified);
        assert_eq!(get(&[(header::IF_MODIFIED_SINCE, before)]), Precondition::Proceed);
        assert_eq!(get(&[(header::IF_MODIFIED_SINCE, "yesterday")]), Precondition::Proceed);
        assert_eq!(get(&[(header::IF_NONE_MATCH, "\"6b49d200-3e8\"")]), Precondition::NotModified);
        assert_eq!(get(&[(header::IF_NONE_MATCH, "W/\"6b49d200-3e8\"")]), Precondition::NotModified);
        assert_eq!(
            get(&[(header::IF_NONE_MATCH, "\"other\""), (header::IF_MODIFIED_SINCE, same)]),
            Precondition::Proceed
        );
        assert_eq!(get(&[(header::IF_UNMODIFIED_SINCE, before)]), Precondition::Failed);
        assert_eq!(get(&[(header::IF_UNMODIFIED_SINCE, same)]), Precondition::Proceed);
        assert_eq!(get(&[(header::IF_MATCH, "\"other\"")]), Precondition::Failed);
        assert_eq!(get(&[(header::IF_MATCH, "*")]), Precondition::Proceed);
        assert_eq!(get(&[(header::IF_MATCH, "W/\"6b49d200-3e8\"")]), Precondition::Failed, "If-Match is strong");

        assert!(v.if_range_holds(&HeaderMap::new()));
        assert!(v.if_range_holds(&headers(&[(header::IF_RANGE, same)])));
        assert!(!v.if_range_holds(&headers(&[(header::IF_RANGE, after)])), "a date must match exactly");
        assert!(v.if_range_holds(&headers(&[(header::IF_RANGE, "\"6b49d200-3e8\"")])));
        assert!(!v.if_range_holds(&headers(&[(header::IF_RANGE, "\"other\"")])));
    }
}
