//! The station as a whole: its status, the schedule ahead, lists of records, business logic and error bodies.

use crate::broadcast::{BroadcastState, OnAir};
use crate::curator::CuratorStatus;
use crate::factory::FactoryStatus;
use crate::{Asset, ChannelId, Event, Job, Plan, QueueItem};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `GET /api/v1/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatusReport {
    pub version: String,
    pub uptime_seconds: u64,
    pub channels: Vec<ChannelStatus>,
    pub factory: Option<FactoryStatus>,
    pub curator: Option<CuratorStatus>,
    pub planner: Option<PlannerStatus>,
    /// The node that answered, and the station's other nodes.
    #[serde(default)]
    pub node: Option<NodeStatus>,
}

/// The node that answered a status request, and every node the station has heard from lately.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeStatus {
    /// `[node] id`.
    pub id: String,
    pub roles: Vec<String>,
    /// `SQLite` or `PostgreSQL`.
    pub database: String,
    /// Where media is kept: the data folder, or `s3://bucket/prefix` shared by the nodes.
    pub objects: String,
    /// Nodes whose heartbeat is at most a minute old, with their roles.
    pub nodes: Vec<PeerNode>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PeerNode {
    pub id: String,
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChannelStatus {
    pub id: ChannelId,
    pub name: String,
    pub state: BroadcastState,
    pub on_air: Option<OnAir>,
    /// Minutes of programme scheduled ahead.
    pub queue_minutes: f64,
    /// URL path of the channel's playlist.
    pub playlist: String,
    /// Viewer sessions watching it now (counted from the player's beacons).
    #[serde(default)]
    pub viewers: u64,
    /// Nodes sharing the station: the node playing the channel (its lease holder) and the lease epoch.
    #[serde(default)]
    pub holder: Option<String>,
    #[serde(default)]
    pub epoch: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlannerStatus {
    pub rounds: u64,
    pub scheduled_total: u64,
    pub last_error: Option<String>,
}

/// `GET /api/v1/queue`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueueReport {
    pub channels: Vec<ChannelQueue>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChannelQueue {
    pub id: ChannelId,
    pub queue_minutes: f64,
    /// IANA timezone of the channel's grid (for showing planned starts in local time).
    #[serde(default)]
    pub timezone: Option<String>,
    pub items: Vec<QueueItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventList {
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AssetList {
    pub assets: Vec<Asset>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlanList {
    pub plans: Vec<Plan>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobList {
    pub page: i64,
    pub per_page: i64,
    pub jobs: Vec<Job>,
}

/// The effective business-logic rules, key → value (`GET`/`PUT /api/v1/business-logic`; a `PUT` sends the keys to
/// change, values as strings, numbers or booleans).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = Object)]
pub struct BusinessLogicValues(pub BTreeMap<String, serde_json::Value>);

/// Every error answer: one line an operator can act on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: String,
}
