//! Business-logic keys: the rules an operator may change at run time without a restart.
//!
//! Defaults come from the config (`[planner]`, `[factory] vmaf_min`); overrides live in the `settings` table; the
//! station publishes the effective values on a `watch` channel that the planner, factory and curator read before each
//! decision. Keys are the seed's names (`exploration.epsilon`, `diversity.window_minutes`, …); the keys of the
//! previous release are accepted as aliases for one release, with a deprecation event.

use crate::config::{Config, ConfigError};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;
use vvtv_api::station::BusinessLogicValues;

/// The effective rules, after config defaults and stored overrides.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BusinessLogic {
    #[serde(rename = "exploration.epsilon")]
    pub epsilon: f64,
    #[serde(rename = "diversity.window_minutes")]
    pub window_minutes: u32,
    #[serde(rename = "diversity.max_same_tag")]
    pub max_same_tag: u32,
    #[serde(rename = "diversity.separation_minutes")]
    pub separation_minutes: u32,
    #[serde(rename = "quality.weight")]
    pub quality_weight: f64,
    #[serde(rename = "audience.weight")]
    pub audience_weight: f64,
    #[serde(rename = "freshness.weight")]
    pub freshness_weight: f64,
    #[serde(rename = "llm.rerank")]
    pub llm_rerank: bool,
    #[serde(rename = "buffer.target_minutes")]
    pub buffer_target_minutes: u32,
    #[serde(rename = "buffer.emergency_minutes")]
    pub buffer_emergency_minutes: u32,
    #[serde(rename = "schedule.seed")]
    pub seed: u64,
    #[serde(rename = "planner.min_score")]
    pub min_score: f64,
    #[serde(rename = "planner.auto_approve")]
    pub auto_approve: bool,
    #[serde(rename = "factory.vmaf_min")]
    pub vmaf_min: f64,
}

/// Why a key or value was refused; the message is shown to the operator as is.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RuleError {
    #[error("unknown key {key:?}; known keys: {}", KEYS.join(", "))]
    UnknownKey { key: String },
    #[error("{key}: {value:?} {reason}")]
    BadValue { key: String, value: String, reason: String },
}

/// Every key an operator may set, in display order.
pub const KEYS: [&str; 14] = [
    "exploration.epsilon",
    "diversity.window_minutes",
    "diversity.max_same_tag",
    "diversity.separation_minutes",
    "quality.weight",
    "audience.weight",
    "freshness.weight",
    "llm.rerank",
    "buffer.target_minutes",
    "buffer.emergency_minutes",
    "schedule.seed",
    "planner.min_score",
    "planner.auto_approve",
    "factory.vmaf_min",
];

/// Keys of the previous release and the key each became.
pub const ALIASES: [(&str, &str); 3] = [
    ("planner.buffer_minutes", "buffer.target_minutes"),
    ("planner.diversity_window", "diversity.window_minutes"),
    ("planner.exploration_rate", "exploration.epsilon"),
];

/// The key `key` stands for, and whether it is a deprecated alias.
pub fn canonical(key: &str) -> (&str, bool) {
    match ALIASES.iter().find(|(old, _)| *old == key) {
        Some((_, new)) => (new, true),
        None => (key, false),
    }
}

impl BusinessLogic {
    /// The config's values, deprecated config keys applied over the new ones.
    pub fn from_config(config: &Config) -> Self {
        let p = &config.planner;
        BusinessLogic {
            epsilon: p.exploration_rate.unwrap_or(p.exploration.epsilon),
            window_minutes: p.diversity_window.unwrap_or(p.diversity.window_minutes),
            max_same_tag: p.diversity.max_same_tag,
            separation_minutes: p.diversity.separation_minutes,
            quality_weight: p.quality.weight,
            audience_weight: p.audience.weight,
            freshness_weight: p.freshness.weight,
            llm_rerank: p.llm.rerank,
            buffer_target_minutes: p.buffer_minutes.unwrap_or(p.buffer.target_minutes),
            buffer_emergency_minutes: p.buffer.emergency_minutes,
            seed: p.schedule.seed,
            min_score: p.min_score,
            auto_approve: p.auto_approve,
            vmaf_min: config.factory.vmaf_min,
        }
    }

    /// The deprecated keys a config file uses, as (old, new).
    pub fn deprecated_in_config(config: &Config) -> Vec<(&'static str, &'static str)> {
        let p = &config.planner;
        let used = [p.buffer_minutes.is_some(), p.diversity_window.is_some(), p.exploration_rate.is_some()];
        ALIASES.iter().zip(used).filter(|(_, u)| *u).map(|((old, new), _)| (*old, *new)).collect()
    }

    /// Validates the config's values with the same rules as `set`, naming the config key.
    pub fn check_config(config: &Config) -> Result<(), ConfigError> {
        let defaults = BusinessLogic::from_config(&Config { planner: Default::default(), ..Config::default() });
        let wanted = BusinessLogic::from_config(config);
        let mut check = defaults;
        // Key by key (so the error names one), the cross-key rule once all are in.
        check.buffer_emergency_minutes = 0;
        for (key, value) in wanted.values().0 {
            let text = match value {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            check.set(&key, &text).map_err(|e| {
                let config_key = match key.as_str() {
                    "factory.vmaf_min" | "planner.min_score" | "planner.auto_approve" => key.clone(),
                    other => format!("planner.{other}"),
                };
                let reason = match e {
                    RuleError::BadValue { value, reason, .. } => format!("{value:?} {reason}"),
                    other => other.to_string(),
                };
                ConfigError::Invalid { key: config_key, reason }
            })?;
        }
        let (emergency, target) = (wanted.buffer_emergency_minutes, wanted.buffer_target_minutes);
        if emergency >= target {
            return Err(ConfigError::Invalid {
                key: "planner.buffer.emergency_minutes".into(),
                reason: format!("{emergency} must be below buffer.target_minutes ({target})"),
            });
        }
        Ok(())
    }

    /// Applies stored overrides; a stored value that no longer validates is skipped and reported, and so is a
    /// deprecated key (which still applies).
    pub fn with_overrides(mut self, stored: &BTreeMap<String, String>) -> (Self, Vec<String>) {
        let mut problems = Vec::new();
        for (key, value) in stored {
            match self.set(key, value) {
                Ok(Some(new)) => problems.push(format!("{key} is deprecated: it is now {new}")),
                Ok(None) => {}
                Err(e) => problems.push(e.to_string()),
            }
        }
        (self, problems)
    }

    /// Validates and applies one `KEY=VALUE`, the value as an operator typed it. A deprecated key is applied to the
    /// key it became, which is returned so the caller can say so.
    pub fn set(&mut self, key: &str, value: &str) -> Result<Option<&'static str>, RuleError> {
        let (name, deprecated) = canonical(key);
        let bad = |reason: &str| RuleError::BadValue { key: key.into(), value: value.into(), reason: reason.into() };
        let value = value.trim();
        let whole = |lo: u64, hi: u64| -> Result<u64, RuleError> {
            value
                .parse::<u64>()
                .ok()
                .filter(|v| (lo..=hi).contains(v))
                .ok_or_else(|| bad(&format!("must be a whole number in {lo}..={hi}")))
        };
        let real = |lo: f64, hi: f64| -> Result<f64, RuleError> {
            value
                .parse::<f64>()
                .ok()
                .filter(|v| (lo..=hi).contains(v))
                .ok_or_else(|| bad(&format!("must be a number in {lo}..={hi}")))
        };
        let flag = || match value {
            "true" | "on" | "yes" | "1" => Ok(true),
            "false" | "off" | "no" | "0" => Ok(false),
            _ => Err(bad("must be true or false")),
        };
        let mut next = self.clone();
        match name {
            "exploration.epsilon" => next.epsilon = real(0.0, 1.0)?,
            "diversity.window_minutes" => next.window_minutes = whole(0, 7 * 24 * 60)? as u32,
            "diversity.max_same_tag" => next.max_same_tag = whole(0, 100)? as u32,
            "diversity.separation_minutes" => next.separation_minutes = whole(0, 24 * 60)? as u32,
            "quality.weight" => next.quality_weight = real(0.0, 10.0)?,
            "audience.weight" => next.audience_weight = real(0.0, 10.0)?,
            "freshness.weight" => next.freshness_weight = real(0.0, 10.0)?,
            "llm.rerank" => next.llm_rerank = flag()?,
            "buffer.target_minutes" => next.buffer_target_minutes = whole(1, 24 * 60)? as u32,
            "buffer.emergency_minutes" => next.buffer_emergency_minutes = whole(0, 24 * 60)? as u32,
            "schedule.seed" => next.seed = whole(0, u64::MAX)?,
            "planner.min_score" => next.min_score = real(0.0, 1.0)?,
            "planner.auto_approve" => next.auto_approve = flag()?,
            "factory.vmaf_min" => next.vmaf_min = real(0.0, 100.0)?,
            _ => return Err(RuleError::UnknownKey { key: key.into() }),
        }
        let moved_buffer = matches!(name, "buffer.target_minutes" | "buffer.emergency_minutes");
        if moved_buffer && next.buffer_emergency_minutes >= next.buffer_target_minutes {
            return Err(RuleError::BadValue {
                key: key.into(),
                value: value.into(),
                reason: format!(
                    "leaves buffer.emergency_minutes ({}) not below buffer.target_minutes ({})",
                    next.buffer_emergency_minutes, next.buffer_target_minutes
                ),
            });
        }
        *self = next;
        Ok(deprecated.then(|| KEYS.iter().copied().find(|k| *k == name).unwrap_or("")))
    }

    /// The effective values as a key → JSON value map (what the API shows).
    pub fn values(&self) -> BusinessLogicValues {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(map)) => BusinessLogicValues(map.into_iter().collect()),
            _ => BusinessLogicValues::default(),
        }
    }

    pub fn buffer_target(&self) -> Duration {
        Duration::from_secs(u64::from(self.buffer_target_minutes) * 60)
    }

    pub fn buffer_emergency(&self) -> Duration {
        Duration::from_secs(u64::from(self.buffer_emergency_minutes) * 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_settable_and_shown() {
        let mut bl = BusinessLogic::from_config(&Config::default());
        let map = bl.values().0;
        assert_eq!(map.len(), KEYS.len());
        for key in KEYS {
            assert!(map.contains_key(key), "{key} missing from {map:?}");
        }
        bl.set("exploration.epsilon", "0.15").unwrap();
        bl.set("buffer.target_minutes", "45").unwrap();
        bl.set("llm.rerank", "on").unwrap();
        bl.set("planner.auto_approve", "off").unwrap();
        bl.set("factory.vmaf_min", "90.5").unwrap();
        bl.set("schedule.seed", "18446744073709551615").unwrap();
        assert_eq!(
            (bl.epsilon, bl.buffer_target_minutes, bl.llm_rerank, bl.auto_approve, bl.vmaf_min, bl.seed),
            (0.15, 45, true, false, 90.5, u64::MAX)
        );
    }

    #[test]
    fn bad_values_and_keys_are_refused_with_reasons() {
        let mut bl = BusinessLogic::from_config(&Config::default());
        let before = bl.clone();
        let e = bl.set("buffer.target_minutes", "0").unwrap_err();
        assert_eq!(e.to_string(), "buffer.target_minutes: \"0\" must be a whole number in 1..=1440");
        assert!(bl.set("exploration.epsilon", "1.5").is_err());
        assert!(bl.set("planner.auto_approve", "maybe").is_err());
        let e = bl.set("buffer.emergency_minutes", "30").unwrap_err();
        assert!(e.to_string().contains("not below buffer.target_minutes (30)"), "{e}");
        let e = bl.set("planner.colour", "blue").unwrap_err();
        assert!(e.to_string().starts_with("unknown key \"planner.colour\"; known keys: exploration.epsilon"));
        assert_eq!(bl, before, "refused values must not change anything");
    }

    #[test]
    fn old_keys_still_work_and_say_what_they_became() {
        let mut bl = BusinessLogic::from_config(&Config::default());
        assert_eq!(bl.set("planner.buffer_minutes", "50").unwrap(), Some("buffer.target_minutes"));
        assert_eq!(bl.set("planner.exploration_rate", "0.2").unwrap(), Some("exploration.epsilon"));
        assert_eq!((bl.buffer_target_minutes, bl.epsilon), (50, 0.2));
        assert_eq!(bl.set("exploration.epsilon", "0.3").unwrap(), None);
        let config = Config::parse("[planner]\nbuffer_minutes = 40\n").unwrap();
        assert_eq!(BusinessLogic::from_config(&config).buffer_target_minutes, 40);
        assert_eq!(BusinessLogic::deprecated_in_config(&config), [("planner.buffer_minutes", "buffer.target_minutes")]);
    }

    #[test]
    fn stored_overrides_apply_and_stale_ones_are_reported() {
        let stored: BTreeMap<String, String> = [
            ("planner.min_score".to_string(), "0.8".to_string()),
            ("gone.key".to_string(), "1".to_string()),
            ("planner.diversity_window".to_string(), "90".to_string()),
        ]
        .into_iter()
        .collect();
        let (bl, problems) = BusinessLogic::from_config(&Config::default()).with_overrides(&stored);
        assert_eq!((bl.min_score, bl.window_minutes), (0.8, 90));
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("deprecated")), "{problems:?}");
    }

    #[test]
    fn the_config_is_checked_with_the_same_rules_naming_its_key() {
        let e = Config::parse("[planner.exploration]\nepsilon = 2.0\n").unwrap_err();
        assert_eq!(e.to_string(), "planner.exploration.epsilon: \"2.0\" must be a number in 0..=1");
        let e = Config::parse("[planner.buffer]\ntarget_minutes = 5\nemergency_minutes = 5\n").unwrap_err();
        assert!(e.to_string().starts_with("planner.buffer."), "{e}");
    }
}
