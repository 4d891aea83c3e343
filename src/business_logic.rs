//! Business-logic keys: the rules an operator may change at run time without a restart.
//!
//! Defaults come from the config; overrides live in the `settings` table; the station publishes the effective values
//! on a `watch` channel that the planner, factory and curator read before each decision.

use crate::config::Config;
use serde::Serialize;
use std::collections::BTreeMap;
use vvtv_api::station::BusinessLogicValues;

/// The effective rules, after config defaults and stored overrides.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BusinessLogic {
    #[serde(rename = "planner.buffer_minutes")]
    pub buffer_minutes: u32,
    #[serde(rename = "planner.diversity_window")]
    pub diversity_window: u32,
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
pub const KEYS: [&str; 5] = [
    "planner.buffer_minutes",
    "planner.diversity_window",
    "planner.min_score",
    "planner.auto_approve",
    "factory.vmaf_min",
];

impl BusinessLogic {
    pub fn from_config(config: &Config) -> Self {
        BusinessLogic {
            buffer_minutes: config.planner.buffer_minutes,
            diversity_window: config.planner.diversity_window,
            min_score: config.planner.min_score,
            auto_approve: config.planner.auto_approve,
            vmaf_min: config.factory.vmaf_min,
        }
    }

    /// Applies stored overrides; a stored value that no longer validates is skipped and reported.
    pub fn with_overrides(mut self, stored: &BTreeMap<String, String>) -> (Self, Vec<RuleError>) {
        let mut problems = Vec::new();
        for (key, value) in stored {
            if let Err(e) = self.set(key, value) {
                problems.push(e);
            }
        }
        (self, problems)
    }

    /// Validates and applies one `KEY=VALUE`. The value is text, as typed by an operator.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), RuleError> {
        let bad = |reason: &str| RuleError::BadValue { key: key.into(), value: value.into(), reason: reason.into() };
        let value = value.trim();
        let whole = |lo: u32, hi: u32| -> Result<u32, RuleError> {
            value
                .parse::<u32>()
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
        match key {
            "planner.buffer_minutes" => self.buffer_minutes = whole(1, 1440)?,
            "planner.diversity_window" => self.diversity_window = whole(0, 1000)?,
            "planner.min_score" => self.min_score = real(0.0, 1.0)?,
            "planner.auto_approve" => {
                self.auto_approve = match value {
                    "true" | "on" | "yes" | "1" => true,
                    "false" | "off" | "no" | "0" => false,
                    _ => return Err(bad("must be true or false")),
                }
            }
            "factory.vmaf_min" => self.vmaf_min = real(0.0, 100.0)?,
            _ => return Err(RuleError::UnknownKey { key: key.into() }),
        }
        Ok(())
    }

    /// The effective values as a key → JSON value map (what the API shows).
    pub fn values(&self) -> BusinessLogicValues {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(map)) => BusinessLogicValues(map.into_iter().collect()),
            _ => BusinessLogicValues::default(),
        }
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
        bl.set("planner.buffer_minutes", "45").unwrap();
        bl.set("planner.auto_approve", "off").unwrap();
        bl.set("factory.vmaf_min", "90.5").unwrap();
        assert_eq!((bl.buffer_minutes, bl.auto_approve, bl.vmaf_min), (45, false, 90.5));
    }

    #[test]
    fn bad_values_and_keys_are_refused_with_reasons() {
        let mut bl = BusinessLogic::from_config(&Config::default());
        let before = bl.clone();
        let e = bl.set("planner.buffer_minutes", "0").unwrap_err();
        assert_eq!(e.to_string(), "planner.buffer_minutes: \"0\" must be a whole number in 1..=1440");
        assert!(bl.set("planner.min_score", "1.5").is_err());
        assert!(bl.set("planner.auto_approve", "maybe").is_err());
        let e = bl.set("planner.colour", "blue").unwrap_err();
        assert!(e.to_string().starts_with("unknown key \"planner.colour\"; known keys: planner.buffer_minutes"));
        assert_eq!(bl, before, "refused values must not change anything");
    }

    #[test]
    fn stored_overrides_apply_and_stale_ones_are_reported() {
        let stored: BTreeMap<String, String> =
            [("planner.min_score".to_string(), "0.8".to_string()), ("gone.key".to_string(), "1".to_string())]
                .into_iter()
                .collect();
        let (bl, problems) = BusinessLogic::from_config(&Config::default()).with_overrides(&stored);
        assert_eq!(bl.min_score, 0.8);
        assert_eq!(problems.len(), 1);
    }
}
