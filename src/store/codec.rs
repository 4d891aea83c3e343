//! How the store writes times and durations: whole milliseconds in INTEGER columns named `*_ms` (UTC for times).
//! Only the store sees milliseconds; everything it hands out is a `Duration` or a `DateTime<Utc>`.

use chrono::{DateTime, Utc};
use std::time::Duration;

pub use vvtv_api::wire_time::{duration_to_ms as ms, ms_to_duration as duration, ms_to_time as time};

/// Milliseconds since the Unix epoch of a time.
pub fn time_ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// Now, in the column unit.
pub fn now_ms() -> i64 {
    time_ms(Utc::now())
}

/// Optional variants of the above, for nullable columns.
pub fn opt_ms(d: Option<Duration>) -> Option<i64> {
    d.map(ms)
}

pub fn opt_duration(ms: Option<i64>) -> Option<Duration> {
    ms.map(duration)
}

pub fn opt_time(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.map(time)
}

/// A JSON array column (tags) read leniently: a damaged value reads as empty rather than failing the row.
pub(super) fn json_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

pub fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}
