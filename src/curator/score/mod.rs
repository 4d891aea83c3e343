//! Scores a candidate video for a channel: how well it fits the channel's style, from 0 to 1, with tags and a reason.
//!
//! A local LLM (Ollama, or any OpenAI-compatible server such as llama.cpp's or vLLM's) decides when it answers
//! well; otherwise the deterministic scorer decides, so scoring never fails and never waits long on a dead model.
//! A circuit breaker keeps a failing LLM from slowing every candidate down.
//!
//! # Layout
//! - this file: the [`Scorer`] and its public types (the candidate, the channel's style, the verdict, where the LLM
//!   is, the breaker as the control API shows it);
//! - `breaker.rs`: the circuit breaker in front of the LLM;
//! - `llm.rs`: the LLM client, for both chat protocols;
//! - `prompt.rs`: the prompt the model gets and the reading of its answer;
//! - `deterministic.rs`: the deterministic scorer and its [`weights`];
//! - `rerank.rs`: the planner's shortlist put to the same model, behind the same breaker;
//! - `synopsis.rs`: the one-line programme synopsis for the guide, through the same client and breaker.

mod breaker;
mod deterministic;
mod llm;
mod prompt;
mod rerank;
mod synopsis;
#[cfg(test)]
mod test_support;

pub use breaker::{DEFAULT_COOL_DOWN, FAILURES_TO_OPEN};
pub use deterministic::{deterministic, weights};
pub use rerank::{RerankQuery, Reranked, Shortlisted};
pub use synopsis::{ProgrammeFacts, Synopsis, MAX_SYNOPSIS_CHARS};

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::metrics::{LlmOutcome, Metrics};
use breaker::SharedBreaker;
use llm::Llm;

/// What is known about a candidate when it is scored.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CandidateInfo {
    pub title: String,
    pub description: String,
    pub tags: Vec<String>,
    pub license: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub duration_s: Option<f64>,
    pub page_url: Option<String>,
    pub media_url: String,
}

/// The channel's taste and limits (from config).
#[derive(Debug, Clone)]
pub struct Style {
    /// In plain words, e.g. "calm nature, science and culture documentaries".
    pub description: String,
    pub min_height: u32,
    pub min_duration_s: f64,
    pub max_duration_s: f64,
    /// Licenses the channel may air, e.g. `cc-by`, `cc0`, `public-domain` (compared after
    /// [`normalize_license`](crate::curator::license::normalize_license)).
    pub license_allowlist: Vec<String>,
}

/// The verdict on one candidate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scored {
    /// 0 (does not belong on the channel) ..= 1 (a perfect fit).
    pub score: f64,
    pub tags: Vec<String>,
    pub reason: String,
    /// `llm:<model>` or `deterministic`.
    pub scorer: String,
    /// Why the LLM did not decide, e.g. "LLM breaker open (last error: …)"; `None` when it did, or when no LLM is
    /// configured and the deterministic scorer is the only one.
    pub fallback_because: Option<String>,
}

/// Where and how to reach the LLM.
#[derive(Debug, Clone)]
pub struct LlmConfig {
    pub protocol: Protocol,
    /// Base URL, e.g. `http://127.0.0.1:11434`; the protocol's endpoint path is appended.
    pub url: String,
    pub model: String,
    /// Limit for one HTTP request, answer included; a call that retries may take twice as long.
    pub timeout: Duration,
}

/// The chat API the LLM server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// `POST /api/chat`.
    Ollama,
    /// `POST /v1/chat/completions` (llama.cpp server, vLLM, and others).
    Openai,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Ollama => "ollama",
            Protocol::Openai => "openai",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown LLM protocol {0:?}: expected \"ollama\" or \"openai\"")]
pub struct UnknownProtocol(pub String);

impl FromStr for Protocol {
    type Err = UnknownProtocol;

    fn from_str(s: &str) -> Result<Protocol, UnknownProtocol> {
        match s {
            "ollama" => Ok(Protocol::Ollama),
            "openai" => Ok(Protocol::Openai),
            other => Err(UnknownProtocol(other.to_string())),
        }
    }
}

/// The breaker as the control API shows it.
pub use vvtv_api::curator::{BreakerPhase, BreakerReport as BreakerState};

/// Scores candidates with the LLM behind the breaker, or deterministically. Cheap to clone and share across tasks.
#[derive(Debug, Clone)]
pub struct Scorer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// `None`: no LLM configured (or its HTTP client could not be built); the deterministic scorer decides alone.
    llm: Option<Llm>,
    /// Why an LLM was configured but is not used; reported as every candidate's `fallback_because`.
    unusable_because: Option<String>,
    breaker: SharedBreaker,
    /// Where each LLM call's latency is observed (None in tests of the scorer alone).
    metrics: Option<Arc<Metrics>>,
}

impl Scorer {
    /// `llm: None` scores deterministically only, and the breaker shows `disabled`.
    pub fn new(llm: Option<LlmConfig>, cool_down: Duration) -> Scorer {
        Scorer::observed(llm, cool_down, None)
    }

    /// [`Scorer::new`] that observes the latency of every LLM call in `metrics`.
    pub fn observed(llm: Option<LlmConfig>, cool_down: Duration, metrics: Option<Arc<Metrics>>) -> Scorer {
        let mut unusable_because = None;
        let llm = llm.and_then(|config| match Llm::new(config) {
            Ok(llm) => Some(llm),
            Err(error) => {
                tracing::error!(%error, "LLM scorer unusable; scoring deterministically");
                unusable_because = Some(error);
                None
            }
        });
        let breaker = SharedBreaker::new(cool_down, unusable_because.clone());
        Scorer { inner: Arc::new(Inner { llm, unusable_because, breaker, metrics }) }
    }

    /// Scores one candidate. Never fails: whenever the LLM cannot decide, the deterministic scorer does and
    /// `fallback_because` says why.
    pub async fn score(&self, style: &Style, c: &CandidateInfo) -> Scored {
        let Some(llm) = &self.inner.llm else {
            let scored = deterministic(style, c);
            return match &self.inner.unusable_because {
                Some(why) => fallback(scored, why.clone()),
                None => scored,
            };
        };
        let permit = match self.inner.breaker.admit() {
            Ok(permit) => permit,
            Err(refused) => return fallback(deterministic(style, c), refused),
        };
        let started = Instant::now();
        let asked = llm.ask(style, c).await;
        if let Some(m) = &self.inner.metrics {
            let outcome = asked.as_ref().map_or_else(|e| e.outcome(), |_| LlmOutcome::Ok);
            m.observe_llm_call(outcome, started.elapsed());
        }
        match asked {
            Ok(answer) => {
                permit.succeeded();
                Scored {
                    score: answer.score,
                    tags: answer.tags,
                    reason: answer.reason,
                    scorer: format!("llm:{}", llm.config.model),
                    fallback_because: None,
                }
            }
            Err(error) => {
                let why = error.to_string();
                tracing::warn!(title = %c.title, error = %why, "LLM could not score; scoring deterministically");
                permit.failed(why.clone());
                fallback(deterministic(style, c), why)
            }
        }
    }

    pub fn breaker(&self) -> BreakerState {
        self.inner.breaker.snapshot(self.inner.llm.is_some())
    }
}

fn fallback(scored: Scored, why: String) -> Scored {
    Scored { fallback_because: Some(why), ..scored }
}

// ---------------------------------------------------------------------------------------------------------------
// Durations as the prompt and the deterministic reasons word them

fn known_duration(duration_s: Option<f64>) -> Option<f64> {
    duration_s.filter(|d| d.is_finite() && *d >= 0.0)
}

/// "45 s", "1 min 30 s", "12 min", "1 h 30 min": seconds only where they matter.
fn human_duration(seconds: f64) -> String {
    let seconds = seconds.max(0.0).round() as u64;
    match seconds {
        s if s < 60 => format!("{s} s"),
        s if s < 600 && s % 60 != 0 => format!("{} min {} s", s / 60, s % 60),
        s if s < 3600 => format!("{} min", (s + 30) / 60),
        s => {
            let minutes = (s + 30) / 60;
            match (minutes / 60, minutes % 60) {
                (h, 0) => format!("{h} h"),
                (h, m) => format!("{h} h {m} min"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{nature_documentary, style};
    use super::*;

    #[tokio::test]
    async fn without_llm_the_deterministic_scorer_decides() {
        let s = Scorer::new(None, DEFAULT_COOL_DOWN);
        assert_eq!(
            s.breaker(),
            BreakerState { state: BreakerPhase::Disabled, consecutive_failures: 0, opened_at: None, last_error: None }
        );
        let scored = s.score(&style(), &nature_documentary()).await;
        assert_eq!(scored, deterministic(&style(), &nature_documentary()));
        assert_eq!(scored.fallback_because, None);
    }

    #[test]
    fn durations_read_like_a_person_would_say_them() {
        assert_eq!(human_duration(45.0), "45 s");
        assert_eq!(human_duration(90.0), "1 min 30 s");
        assert_eq!(human_duration(600.0), "10 min");
        assert_eq!(human_duration(5400.0), "1 h 30 min");
        assert_eq!(human_duration(7200.0), "2 h");
    }
}
