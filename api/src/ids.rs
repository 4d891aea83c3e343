//! Identifiers of the station's records: one type per kind of row, so an asset id can never be passed where a job id
//! is meant. On the wire each is a bare number (or, for channels, a string).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A channel's id as used in URLs (`/hls/{channel}/live.m3u8`) and rows: `[a-z0-9-]+`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(transparent))]
#[serde(transparent)]
pub struct ChannelId(pub String);

impl ChannelId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ChannelId {
    fn from(s: &str) -> Self {
        ChannelId(s.to_owned())
    }
}

/// A viewer session's id: random, made by the player page (16 to 64 characters of `[A-Za-z0-9_-]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(transparent))]
#[serde(transparent)]
pub struct SessionId(pub String);

impl SessionId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Row ids: a number each, typed by the table it names.
macro_rules! row_id {
    ($(#[$doc:meta] $name:ident => $what:literal),* $(,)?) => {$(
        #[$doc]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(transparent))]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                s.trim().parse().map($name).map_err(|_| format!("{s:?} is not {} id (a whole number)", $what))
            }
        }
    )*};
}

row_id! {
    /// An asset: media in the house format.
    AssetId => "an asset",
    /// A plan: a candidate found by the curator.
    PlanId => "a plan",
    /// An ingest job of the factory.
    JobId => "a job",
    /// A row of a channel's schedule.
    ScheduleId => "a schedule",
    /// Something that went on air.
    AiringId => "an airing",
    /// A recorded decision.
    EventId => "an event",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_bare_numbers_on_the_wire_and_parse_back() {
        assert_eq!(serde_json::to_string(&AssetId(7)).unwrap(), "7");
        assert_eq!(serde_json::from_str::<JobId>("12").unwrap(), JobId(12));
        assert_eq!(serde_json::to_string(&ChannelId("main".into())).unwrap(), "\"main\"");
        assert_eq!("42".parse::<ScheduleId>().unwrap(), ScheduleId(42));
        assert_eq!("x".parse::<PlanId>().unwrap_err(), "\"x\" is not a plan id (a whole number)");
    }
}
