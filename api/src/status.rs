//! The closed vocabularies of the station: statuses, kinds and origins of its records, and the kinds of decision it
//! records. Each is spelled once here — on the wire, in the database and in messages — and parsed back by the same
//! table, so a misspelt status is an error naming the values that exist instead of a silent mismatch.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A value that is not one of an enum's names; says which names exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a {what}; one of: {known}")]
pub struct UnknownName {
    pub what: &'static str,
    pub value: String,
    pub known: String,
}

/// Declares an enum whose variants have one lowercase name each, used by serde, sqlx, `Display` and `FromStr`.
macro_rules! named_enum {
    ($(#[$doc:meta])* $name:ident ($what:literal) { $($(#[$vdoc:meta])* $variant:ident = $text:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[cfg_attr(feature = "sqlx", derive(sqlx::Type), sqlx(type_name = "TEXT"))]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] #[cfg_attr(feature = "sqlx", sqlx(rename = $text))] $variant),*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),*
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, UnknownName> {
                let s = s.trim();
                $name::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| UnknownName {
                    what: $what,
                    value: s.to_owned(),
                    known: $name::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", "),
                })
            }
        }
    };
}

named_enum! {
    /// What an asset is for.
    AssetKind ("asset kind") {
        /// Media that airs as programme (ingested by the factory).
        Programme = "programme",
        /// A generated clip that fills an empty library on first start.
        Demo = "demo",
        /// A generated card the broadcaster airs when nothing is scheduled (or an emergency without a pool).
        Slate = "slate",
    }
}

named_enum! {
    /// Whether an asset can air.
    AssetStatus ("asset status") {
        Ready = "ready",
        /// It failed on air (cannot be demuxed, files missing): off the air for good, with the reason.
        Bad = "bad",
        /// Its files were deleted to keep the library within its quota.
        Evicted = "evicted",
    }
}

named_enum! {
    /// Where an ingest job is.
    JobStatus ("job status") {
        Queued = "queued",
        Downloading = "downloading",
        Probing = "probing",
        Normalizing = "normalizing",
        Gating = "gating",
        Ready = "ready",
        /// The input will never make it; the reason says why.
        Rejected = "rejected",
        /// It failed after its last retry.
        Failed = "failed",
    }
}

impl JobStatus {
    /// True while a worker owns the job (a crash leaves it here; the factory restarts it).
    pub fn is_in_flight(self) -> bool {
        matches!(self, JobStatus::Downloading | JobStatus::Probing | JobStatus::Normalizing | JobStatus::Gating)
    }

    /// True once the job has ended for good.
    pub fn is_final(self) -> bool {
        matches!(self, JobStatus::Ready | JobStatus::Rejected | JobStatus::Failed)
    }
}

named_enum! {
    /// Who asked for an ingest job.
    JobOrigin ("job origin") {
        /// A curator plan.
        Plan = "plan",
        /// `vvtvctl ingest`.
        Cli = "cli",
        /// `POST /api/v1/ingest` from another client.
        Api = "api",
        /// A file dropped in the inbox folder.
        Inbox = "inbox",
        Demo = "demo",
    }
}

named_enum! {
    /// Where a plan is in its life.
    PlanStatus ("plan status") {
        /// Scored below the bar (or auto-approve is off): waits for `vvtvctl plans approve`.
        Pending = "pending",
        Approved = "approved",
        Rejected = "rejected",
        /// Its job is with the factory.
        Queued = "queued",
        /// Its job made an asset.
        Done = "done",
        Failed = "failed",
    }
}

named_enum! {
    /// Where a plan's candidate was found.
    SourceKind ("source kind") {
        /// Web pages crawled with headless Chromium.
        Browser = "browser",
        /// An RSS, Atom or JSON Feed.
        Feed = "feed",
        /// A local folder of video files.
        Folder = "folder",
        /// Entered by an operator.
        Manual = "manual",
    }
}

named_enum! {
    /// Where a schedule row is.
    ScheduleStatus ("schedule status") {
        Scheduled = "scheduled",
        Airing = "airing",
        Aired = "aired",
        /// Never aired: its asset could not be played.
        Skipped = "skipped",
        /// Interrupted at a keyframe by an emergency.
        Cut = "cut",
    }
}

named_enum! {
    /// Why something went on air.
    AiringKind ("airing kind") {
        Scheduled = "scheduled",
        Emergency = "emergency",
        Slate = "slate",
    }
}

named_enum! {
    /// The part of the station that made a decision.
    Actor ("actor") {
        Station = "station",
        Broadcaster = "broadcaster",
        Factory = "factory",
        Curator = "curator",
        Planner = "planner",
        Http = "http",
        /// The audience room (viewer sessions from the player's beacons).
        Audience = "audience",
    }
}

named_enum! {
    /// Every kind of decision the station records in its event log, with a reason a human can read.
    EventKind ("event kind") {
        /// The station started (version and address).
        Started = "started",
        /// A shutdown was requested.
        Stopping = "stopping",
        /// A stored business-logic value no longer validates and was ignored.
        SettingIgnored = "setting_ignored",
        /// An operator changed business-logic keys.
        BusinessLogicSet = "business_logic_set",
        /// A deprecated business-logic key was used (it still works for one release).
        DeprecatedKey = "deprecated_key",
        /// The playlists on disk were read back at start (fresh, continued or reset).
        PlaylistRecovered = "playlist_recovered",
        /// The channel's playout could not start.
        PlayoutFailed = "playout_failed",
        /// This node took a channel's lease (a new epoch) and plays it.
        LeaseAcquired = "lease_acquired",
        /// This node lost a channel's lease (another node took it over) and stopped playing it.
        LeaseLost = "lease_lost",
        /// An item that was on air at a crash resumes where it was.
        Resumed = "resumed",
        /// An unscheduled item that was on air at a crash is not resumed.
        NotResumed = "not_resumed",
        /// A scheduled asset could not be aired: skipped and taken off the air.
        AssetSkipped = "asset_skipped",
        /// An unscheduled item (slate, emergency) could not be aired.
        ItemFailed = "item_failed",
        /// The channel's slate changed: the full one replaced the short one a first start went on air with, or
        /// could not be made.
        Slate = "slate",
        /// The playout output was rebuilt (stall or write error).
        PipelineRebuilt = "pipeline_rebuilt",
        /// An emergency interrupted the schedule.
        Emergency = "emergency",
        /// An asset entered or left the emergency pool.
        EmergencyPool = "emergency_pool",
        /// The planner appended items to a schedule.
        Scheduled = "scheduled",
        /// A channel's programme ahead fell below `buffer.emergency_minutes`: the emergency loop started.
        BufferLow = "buffer_low",
        /// A channel's programme ahead is back at `buffer.target_minutes`.
        BufferRecovered = "buffer_recovered",
        /// The curator was asked to run every source now.
        UrgentDiscovery = "urgent_discovery",
        /// A fixed-time slot could not get what it asked for (nothing tagged), or started late.
        SlotMissed = "slot_missed",
        /// A demo clip was made for an empty library.
        DemoClip = "demo_clip",
        /// The demo clips could not be made.
        DemoFailed = "demo_failed",
        /// A file in the inbox became a job.
        Inbox = "inbox",
        /// An ingest job was queued through the API.
        Ingest = "ingest",
        /// Jobs that were in flight at a restart, or on a node that stopped sending heartbeats, went back to the queue.
        JobsRequeued = "jobs_requeued",
        /// A job's attempt failed; it is retried later.
        JobRetry = "job_retry",
        /// A job made an asset.
        JobReady = "job_ready",
        /// A job's input was rejected for good.
        JobRejected = "job_rejected",
        /// A job failed after its last attempt.
        JobFailed = "job_failed",
        /// A job's webhook could not be notified.
        WebhookFailed = "webhook_failed",
        /// An asset was deleted to keep the library within its quota.
        AssetEvicted = "asset_evicted",
        /// The factory stopped taking jobs (low disk, full quota).
        FactoryPaused = "factory_paused",
        /// The factory takes jobs again.
        FactoryResumed = "factory_resumed",
        /// A discovery run ended (planned, rejected, errors).
        Discovery = "discovery",
        /// An operator approved a plan.
        PlanApproved = "plan_approved",
        /// Viewer sessions older than the retention were deleted.
        AudienceSwept = "audience_swept",
        /// New viewer sessions were refused: the live-session limit was reached.
        AudienceFull = "audience_full",
        /// Beacons were refused in the last minute (invalid, too fast, conflicting), counted by reason.
        AudienceRefused = "audience_refused",
    }
}

named_enum! {
    /// What a player's beacon reports (`POST /api/v1/playback`).
    BeaconKind ("beacon kind") {
        /// Playback began: the first frame is on screen (`startup_ms` says how long it took).
        Start = "start",
        /// Still watching (every ~10 s), with the playback time since the last beacon.
        Heartbeat = "heartbeat",
        /// Playback stalled and resumed after `stall_ms`.
        Stall = "stall",
        /// The player switched to another rung (`bitrate`, bits per second).
        Bitrate = "bitrate",
        /// The player hit an error (`error`: the player's short error code).
        Error = "error",
        /// The viewer left (page closed or hidden for good).
        End = "end",
    }
}

named_enum! {
    /// How a viewer session ended.
    SessionEnd ("session end") {
        /// The page sent its end beacon.
        Closed = "closed",
        /// The player gave up after an error it could not recover from.
        Error = "error",
        /// No beacon for the session timeout (the page died, the network went away).
        Timeout = "timeout",
    }
}

impl EventKind {
    /// The event for a job that ended with `status` (None while it is not final).
    pub fn job_ended(status: JobStatus) -> Option<EventKind> {
        match status {
            JobStatus::Ready => Some(EventKind::JobReady),
            JobStatus::Rejected => Some(EventKind::JobRejected),
            JobStatus::Failed => Some(EventKind::JobFailed),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_text_and_json() {
        for s in JobStatus::ALL {
            assert_eq!(s.as_str().parse::<JobStatus>().unwrap(), *s);
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::Value::String(s.to_string()));
        }
        assert_eq!(EventKind::PipelineRebuilt.to_string(), "pipeline_rebuilt");
        assert_eq!(serde_json::from_str::<EventKind>("\"job_retry\"").unwrap(), EventKind::JobRetry);
    }

    #[test]
    fn an_unknown_name_lists_the_known_ones() {
        let e = "waiting".parse::<PlanStatus>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"waiting\" is not a plan status; one of: pending, approved, rejected, queued, done, failed"
        );
    }

    #[test]
    fn every_event_kind_has_its_own_name() {
        let mut names: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), EventKind::ALL.len());
    }
}
