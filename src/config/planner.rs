//! The planner's rules in the config: the defaults of the business-logic keys (`[planner.*]`).

use serde::{Deserialize, Serialize};

/// The planner's rules. Each value is the default of a business-logic key an operator may change at run time: the
/// key is the path under `[planner]` (`[planner.exploration] epsilon` is `exploration.epsilon`), except
/// `planner.min_score` and `planner.auto_approve`, which keep their names.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PlannerConfig {
    /// Plans scoring at least this go to the factory without approval.
    pub min_score: f64,
    pub auto_approve: bool,
    pub exploration: ExplorationConfig,
    pub diversity: DiversityConfig,
    pub quality: WeightConfig,
    pub audience: WeightConfig,
    pub freshness: WeightConfig,
    pub llm: RerankConfig,
    pub buffer: BufferConfig,
    pub schedule: ScheduleConfig,
    /// Deprecated (one release): `buffer.target_minutes`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buffer_minutes: Option<u32>,
    /// Deprecated (one release): `diversity.window_minutes` (the value is read as minutes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diversity_window: Option<u32>,
    /// Deprecated (one release): `exploration.epsilon`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exploration_rate: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ExplorationConfig {
    /// Share of picks drawn from the least aired assets instead of by weight (0..=1).
    pub epsilon: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DiversityConfig {
    /// No asset twice within this many minutes.
    pub window_minutes: u32,
    /// At most this many items of one tag per hour (0: no cap).
    pub max_same_tag: u32,
    /// No two items of the same source or series within this many minutes.
    pub separation_minutes: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WeightConfig {
    /// How much this part of an asset's score counts (0 switches it off; 0..=10).
    pub weight: f64,
}

impl Default for WeightConfig {
    fn default() -> Self {
        WeightConfig { weight: 1.0 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct RerankConfig {
    /// Ask the curator's LLM to reorder the shortlist of each pick (falls back to the drawn order).
    pub rerank: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BufferConfig {
    /// Minutes of programme kept scheduled ahead of the air.
    pub target_minutes: u32,
    /// Below this many minutes ahead the emergency loop starts and the curator is asked for urgent discovery.
    pub emergency_minutes: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Seed of the planner's draws: the same seed, library and history give the same schedule.
    pub seed: u64,
}

impl Default for ExplorationConfig {
    fn default() -> Self {
        ExplorationConfig { epsilon: 0.1 }
    }
}

impl Default for DiversityConfig {
    fn default() -> Self {
        DiversityConfig { window_minutes: 120, max_same_tag: 0, separation_minutes: 0 }
    }
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig { target_minutes: 30, emergency_minutes: 2 }
    }
}

impl Default for PlannerConfig {
    fn default() -> Self {
        PlannerConfig {
            min_score: 0.6,
            auto_approve: true,
            exploration: ExplorationConfig::default(),
            diversity: DiversityConfig::default(),
            quality: WeightConfig { weight: 1.0 },
            audience: WeightConfig { weight: 1.0 },
            freshness: WeightConfig { weight: 0.5 },
            llm: RerankConfig::default(),
            buffer: BufferConfig::default(),
            schedule: ScheduleConfig::default(),
            buffer_minutes: None,
            diversity_window: None,
            exploration_rate: None,
        }
    }
}
