//! How times and durations travel in JSON: whole milliseconds (`*_ms` fields), as they always have, while the code on
//! both sides holds `std::time::Duration` and `chrono::DateTime<Utc>`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serializer};
use std::time::Duration;

/// Milliseconds of a duration, saturating at `i64::MAX`.
pub fn duration_to_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A duration from milliseconds; negative counts as zero.
pub fn ms_to_duration(ms: i64) -> Duration {
    Duration::from_millis(ms.max(0) as u64)
}

/// A time from milliseconds since the Unix epoch; out of range counts as the epoch.
pub fn ms_to_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// `Duration` as whole milliseconds.
pub mod duration_ms {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(duration_to_ms(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        i64::deserialize(d).map(ms_to_duration)
    }
}

/// `Option<Duration>` as whole milliseconds or null.
pub mod option_duration_ms {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&duration_to_ms(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<i64>::deserialize(d).map(|v| v.map(ms_to_duration))
    }
}

/// `DateTime<Utc>` as milliseconds since the Unix epoch.
pub mod time_ms {
    use super::*;

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(t.timestamp_millis())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        i64::deserialize(d).map(ms_to_time)
    }
}

/// `Option<DateTime<Utc>>` as milliseconds since the Unix epoch or null.
pub mod option_time_ms {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_some(&t.timestamp_millis()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<i64>::deserialize(d).map(|v| v.map(ms_to_time))
    }
}

/// `Duration` as seconds with a fraction (positions and lengths of what is on air).
pub mod duration_s {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        f64::deserialize(d).map(|v| Duration::try_from_secs_f64(v.max(0.0)).unwrap_or_default())
    }
}

/// `Option<Duration>` as seconds with a fraction or null.
pub mod option_duration_s {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<f64>::deserialize(d).map(|v| v.map(|v| Duration::try_from_secs_f64(v.max(0.0)).unwrap_or_default()))
    }
}
