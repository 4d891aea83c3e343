//! `vvtv-api`: the contract of VVTV's control API (`/api/v1`), shared by the daemon and `vvtvctl`.
//!
//! # Layout
//! - [`ids`]: one identifier type per kind of record (`AssetId`, `JobId`, …).
//! - [`status`]: statuses, kinds and origins of records, and the kinds of decision the station records.
//! - [`assets`], [`jobs`], [`plans`], [`schedule`], [`events`]: the records the station keeps, as the API shows them.
//! - [`station`], [`broadcast`], [`factory`], [`curator`]: the requests and answers of each part of the API.
//! - [`viewer`]: what the player page reads without a token (channels, now and next).
//! - [`audience`]: the player's beacons and the audience per airing and per asset.
//! - [`epg`]: the programme guide and the explanation of one pick.
//! - [`wire_time`]: times and durations on the wire (milliseconds and seconds in JSON, typed in code).
//!
//! A field renamed here is renamed for both programs at once: the CLI never reads the daemon's JSON by string keys.

pub mod assets;
pub mod audience;
pub mod broadcast;
pub mod curator;
pub mod epg;
pub mod events;
pub mod factory;
pub mod ids;
pub mod jobs;
pub mod plans;
pub mod schedule;
pub mod station;
pub mod status;
pub mod viewer;
pub mod wire_time;

pub use assets::{Asset, Rendition};
pub use events::Event;
pub use ids::{AiringId, AssetId, ChannelId, EventId, JobId, PlanId, ScheduleId, SessionId};
pub use jobs::{Job, JobInput};
pub use plans::Plan;
pub use schedule::{Airing, QueueItem};
pub use status::{
    Actor, AiringKind, AssetKind, AssetStatus, BeaconKind, EventKind, JobOrigin, JobStatus, PlanStatus, ScheduleStatus,
    SessionEnd, SourceKind, UnknownName,
};
