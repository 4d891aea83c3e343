//! The programme guide (`GET /api/v1/epg`, the same data as `/epg.xml`) and the full explanation of one schedule
//! row's pick (`GET /api/v1/schedule/{id}`, `vvtvctl why`).

use crate::wire_time::time_ms;
use crate::{AssetId, ChannelId, QueueItem, ScheduleId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a guide entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProgrammeKind {
    /// A programme of the channel's library.
    Programme,
    /// Padding before a fixed-time slot: a filler asset or an "up next" card.
    Filler,
    /// The channel's slate (nothing was scheduled).
    Slate,
    /// An emergency interruption.
    Emergency,
}

/// One entry of a channel's guide. Consecutive entries touch: each one's `stop` is the next one's `start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Programme {
    #[serde(rename = "start_ms", with = "time_ms")]
    #[schema(value_type = i64)]
    pub start: DateTime<Utc>,
    #[serde(rename = "stop_ms", with = "time_ms")]
    #[schema(value_type = i64)]
    pub stop: DateTime<Utc>,
    pub title: String,
    /// The one-line synopsis (LLM-written when the curator's LLM was up), else the plan's description; may be empty.
    pub description: String,
    /// From the asset's tags.
    pub categories: Vec<String>,
    /// The poster's URL (absolute when the request named its host).
    pub icon: Option<String>,
    pub kind: ProgrammeKind,
    /// True once it went on air (the entry comes from the airings), false while planned.
    pub aired: bool,
    pub asset_id: Option<AssetId>,
    pub schedule_id: Option<ScheduleId>,
}

/// One channel of the guide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EpgChannel {
    pub id: ChannelId,
    /// The XMLTV channel id (`/epg.xml`), equal to `tvg-id` in `/channels.m3u`.
    pub xmltv_id: String,
    pub name: String,
    /// `tvg-chno`: `channels[].number`, or the position in `[[channels]]` from 1.
    pub number: u32,
    pub logo: Option<String>,
    /// IANA timezone of the channel's grid.
    pub timezone: String,
    pub programmes: Vec<Programme>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EpgReport {
    #[serde(rename = "from_ms", with = "time_ms")]
    #[schema(value_type = i64)]
    pub from: DateTime<Utc>,
    #[serde(rename = "to_ms", with = "time_ms")]
    #[schema(value_type = i64)]
    pub to: DateTime<Utc>,
    pub channels: Vec<EpgChannel>,
}

/// The parts of a candidate's score (each 0..=1) and the log-weight they sum to.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScoreBreakdown {
    pub quality: f64,
    pub audience: f64,
    pub freshness: f64,
    pub daypart: f64,
    pub novelty: f64,
    /// `ln w`: the weighted sum of the parts.
    pub log_weight: f64,
}

/// A separation rule that kept a candidate out of a slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum PickMask {
    /// It aired (or is planned) within `diversity.window_minutes`.
    Window { minutes_ago: i64 },
    /// An item of the same source or series within `diversity.separation_minutes`.
    Separation { with: String, minutes_ago: i64 },
    /// `diversity.max_same_tag` items of this tag within the last hour.
    TagCap { tag: String, count: u32 },
}

impl PickMask {
    /// The business-logic key of the rule that masks.
    pub fn rule(&self) -> &'static str {
        match self {
            PickMask::Window { .. } => "diversity.window_minutes",
            PickMask::Separation { .. } => "diversity.separation_minutes",
            PickMask::TagCap { .. } => "diversity.max_same_tag",
        }
    }
}

/// How a pick was drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PickDraw {
    /// Gumbel-top-k over the weights.
    Weighted,
    /// ε-exploration: among the least aired.
    Exploration,
}

/// One candidate of the shortlist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ShortlistEntry {
    pub asset: AssetId,
    pub title: String,
    pub breakdown: ScoreBreakdown,
    /// The Gumbel key `ln w + G`; none when masked.
    pub key: Option<f64>,
    pub masks: Vec<PickMask>,
}

/// How the planner chose one row: the draw, the pick's breakdown, the shortlist with keys and masks, the rules it
/// had to relax.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PickExplanation {
    pub asset: AssetId,
    pub title: String,
    pub draw: PickDraw,
    pub breakdown: ScoreBreakdown,
    /// The best keys, best first.
    pub shortlist: Vec<ShortlistEntry>,
    /// Candidates in the library, and how many the rules masked.
    pub candidates: usize,
    pub masked: usize,
    /// Rules set aside because they left nothing to air.
    pub relaxed: Vec<String>,
    pub reason: String,
    /// What the LLM rerank did (absent when `llm.rerank` was off or the draw was exploration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerank: Option<PickRerank>,
}

/// The LLM rerank of a pick's shortlist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PickRerank {
    /// `llm:<model>` when the model answered.
    pub by: Option<String>,
    /// The shortlist position the pick came from (0: the drawn pick stands).
    pub chose: usize,
    pub reason: String,
    /// Why the drawn order stands.
    pub fallback_because: Option<String>,
}

/// One schedule row with everything about why it is there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScheduleDetail {
    pub item: QueueItem,
    /// IANA timezone of the channel (planned start in local time).
    pub timezone: String,
    /// None for rows without a pick (filler cards, rows added by tools).
    pub pick: Option<PickExplanation>,
}
