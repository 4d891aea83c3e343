//! What a channel airs and when: its library (which assets are its own), its timezone, dayparts (weekday/weekend time
//! ranges with preferred tags), date overrides (holidays, marathons) and fixed-time slots with hard or soft starts.

use chrono::{NaiveDate, NaiveTime, Weekday};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Which assets a channel airs. Every list empty (the default): everything.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct LibraryConfig {
    /// Assets with at least one of these tags.
    pub tags: Vec<String>,
    /// Never assets with one of these tags.
    pub exclude_tags: Vec<String>,
    /// Assets from these curator sources (`[[curator.sources]]` names; `manual` for ingests, `demo` for demo clips).
    pub sources: Vec<String>,
    /// Assets in these languages (ISO 639-1, e.g. `en`); assets of unknown language are kept.
    pub languages: Vec<String>,
    /// Shortest and longest asset, in seconds (0: no bound).
    pub min_duration_seconds: u32,
    pub max_duration_seconds: u32,
    /// Assets with one of these ratings (e.g. `G`, `PG`); assets without a rating are kept.
    pub ratings: Vec<String>,
}

/// Days of the week: `daily`, `weekdays`, `weekend`, or a list such as `["sat", "sun"]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Days {
    #[default]
    Daily,
    Weekdays,
    Weekend,
    List(Vec<Weekday>),
}

impl Days {
    pub fn contains(&self, day: Weekday) -> bool {
        match self {
            Days::Daily => true,
            Days::Weekdays => !matches!(day, Weekday::Sat | Weekday::Sun),
            Days::Weekend => matches!(day, Weekday::Sat | Weekday::Sun),
            Days::List(days) => days.contains(&day),
        }
    }
}

fn day_name(d: Weekday) -> &'static str {
    match d {
        Weekday::Mon => "mon",
        Weekday::Tue => "tue",
        Weekday::Wed => "wed",
        Weekday::Thu => "thu",
        Weekday::Fri => "fri",
        Weekday::Sat => "sat",
        Weekday::Sun => "sun",
    }
}

impl Serialize for Days {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Days::Daily => s.serialize_str("daily"),
            Days::Weekdays => s.serialize_str("weekdays"),
            Days::Weekend => s.serialize_str("weekend"),
            Days::List(days) => days.iter().map(|d| day_name(*d)).collect::<Vec<_>>().serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Days {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Days, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(String),
            Many(Vec<String>),
        }
        let parse_day = |name: &str| -> Result<Weekday, D::Error> {
            name.trim().parse::<Weekday>().map_err(|_| {
                serde::de::Error::custom(format!("{name:?} is not a day (mon, tue, wed, thu, fri, sat, sun)"))
            })
        };
        match Raw::deserialize(d)? {
            Raw::One(s) => match s.trim() {
                "daily" => Ok(Days::Daily),
                "weekdays" => Ok(Days::Weekdays),
                "weekend" => Ok(Days::Weekend),
                other => Ok(Days::List(vec![parse_day(other).map_err(|_| {
                    serde::de::Error::custom(format!("{other:?} is not daily, weekdays, weekend or a day (mon … sun)"))
                })?])),
            },
            Raw::Many(list) => list.iter().map(|n| parse_day(n)).collect::<Result<Vec<_>, _>>().map(Days::List),
        }
    }
}

/// A wall-clock time of day, written `HH:MM` in the channel's timezone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ClockTime(pub NaiveTime);

impl Default for ClockTime {
    fn default() -> Self {
        ClockTime(NaiveTime::MIN)
    }
}

impl Serialize for ClockTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0.format("%H:%M"))
    }
}

impl<'de> Deserialize<'de> for ClockTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ClockTime, D::Error> {
        let text = String::deserialize(d)?;
        let t = text.trim();
        if t == "24:00" {
            return Ok(ClockTime(NaiveTime::MIN));
        }
        NaiveTime::parse_from_str(t, "%H:%M")
            .map(ClockTime)
            .map_err(|_| serde::de::Error::custom(format!("{text:?} is not a time of day like \"06:30\"")))
    }
}

/// A part of the day with its preferred tags: `start` to `end` (past midnight when `end` ≤ `start`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct DaypartConfig {
    pub name: String,
    pub days: Days,
    pub start: ClockTime,
    pub end: ClockTime,
    /// Assets with one of these tags are preferred here.
    pub tags: Vec<String>,
    /// How strongly (added to the log-weight of an asset that fits; 0..=10).
    pub weight: f64,
}

/// Dates (inclusive, in the channel's timezone) on which other dayparts apply: holidays, one-off marathons.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OverrideConfig {
    pub name: String,
    #[serde(deserialize_with = "local_date")]
    pub from: NaiveDate,
    #[serde(deserialize_with = "local_date")]
    pub to: NaiveDate,
    #[serde(default)]
    pub dayparts: Vec<DaypartConfig>,
}

/// A date: a TOML date (`from = 2026-12-24`, as `config/vvtv.toml` shows it) or the same in a string.
fn local_date<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Toml(toml::value::Datetime),
        Text(String),
    }
    let text = match Raw::deserialize(d)? {
        Raw::Toml(t) => t.to_string(),
        Raw::Text(s) => s,
    };
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|_| serde::de::Error::custom(format!("{text:?} is not a date like 2026-12-24")))
}

/// How a fixed-time slot starts.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SlotStart {
    /// On the minute: the item before is cut at its keyframe nearest the slot time.
    #[default]
    Hard,
    /// When the item before ends, at most `max_late_minutes` late; the gap before it is padded with filler.
    Soft,
}

/// A programme at a fixed time: an asset with one of `tags` starts at `at` on `days`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct SlotConfig {
    pub name: String,
    pub days: Days,
    pub at: ClockTime,
    pub tags: Vec<String>,
    pub start: SlotStart,
    pub max_late_minutes: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Dates {
        o: OverrideConfig,
    }

    #[test]
    fn override_dates_are_toml_dates_or_strings() {
        let bare: Dates = toml::from_str("[o]\nname = \"x\"\nfrom = 2026-12-24\nto = \"2026-12-26\"\n").unwrap();
        assert_eq!((bare.o.from.to_string(), bare.o.to.to_string()), ("2026-12-24".into(), "2026-12-26".into()));
        let e = toml::from_str::<Dates>("[o]\nname = \"x\"\nfrom = 2026-12-24T10:00:00\nto = 2026-12-26\n").err();
        assert!(e.is_some_and(|e| e.to_string().contains("is not a date like 2026-12-24")));
    }
}
