//! The one-line programme synopsis the guide shows: asked of the LLM behind the scorer's breaker, once per asset
//! (the curator keeps it in the store). When the LLM is not configured, its breaker is open or it answers badly,
//! there is no synopsis and the guide shows the plan's description instead.

use super::llm::LlmError;
use super::prompt::excerpt;
use super::Scorer;
use crate::metrics::LlmOutcome;
use std::time::Instant;

/// Longest synopsis kept, in characters.
pub const MAX_SYNOPSIS_CHARS: usize = 200;

/// What the LLM is told about the programme.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgrammeFacts {
    pub title: String,
    pub description: String,
    pub tags: Vec<String>,
}

/// A synopsis and who wrote it (`llm:<model>`).
#[derive(Debug, Clone, PartialEq)]
pub struct Synopsis {
    pub text: String,
    pub model: String,
}

pub(super) const SYSTEM: &str = "You write TV guide entries. Given a programme's title, description and tags, \
    write a one-line synopsis for the guide: one sentence of at most 25 words, present tense, no spoilers, nothing \
    that the facts do not say. Answer with one JSON object and nothing else: {\"synopsis\": \"...\"}";

pub(super) fn user_prompt(p: &ProgrammeFacts) -> String {
    format!(
        "Title: {}\nDescription: {}\nTags: {}",
        excerpt(&p.title, 200),
        if p.description.trim().is_empty() { "(none)".to_string() } else { excerpt(&p.description, 1200) },
        if p.tags.is_empty() { "(none)".to_string() } else { p.tags.join(", ") }
    )
}

/// The synopsis in the model's answer: the `synopsis` string of the first JSON object, made one clean line.
pub(super) fn parse_synopsis(answer: &str) -> Result<String, String> {
    let start = answer.find('{').ok_or("no JSON object in the answer")?;
    let end = answer.rfind('}').filter(|&e| e > start).ok_or("no JSON object in the answer")?;
    let value: serde_json::Value =
        serde_json::from_str(&answer[start..=end]).map_err(|e| format!("the answer's JSON does not parse: {e}"))?;
    let text = value["synopsis"].as_str().ok_or("no \"synopsis\" string in the answer")?;
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let line = line.trim_matches(|c: char| c == '"' || c.is_whitespace()).to_string();
    if line.is_empty() {
        return Err("the synopsis is empty".into());
    }
    Ok(match line.char_indices().nth(MAX_SYNOPSIS_CHARS) {
        Some((at, _)) => format!("{}…", line[..at].trim_end()),
        None => line,
    })
}

impl Scorer {
    /// A one-line synopsis written by the LLM, if it is configured, its breaker lets the call through and it
    /// answers usably; `Err` says why there is none.
    pub async fn synopsis(&self, facts: &ProgrammeFacts) -> Result<Synopsis, String> {
        let Some(llm) = &self.inner.llm else {
            return Err(self.inner.unusable_because.clone().unwrap_or_else(|| "no LLM configured".into()));
        };
        let permit = self.inner.breaker.admit()?;
        let started = Instant::now();
        let asked = llm.synopsis(facts).await;
        if let Some(m) = &self.inner.metrics {
            let outcome = asked.as_ref().map_or_else(LlmError::outcome, |_| LlmOutcome::Ok);
            m.observe_llm_call(outcome, started.elapsed());
        }
        match asked {
            Ok(text) => {
                permit.succeeded();
                Ok(Synopsis { text, model: format!("llm:{}", llm.config.model) })
            }
            Err(error) => {
                let why = error.to_string();
                tracing::warn!(title = %facts.title, error = %why, "LLM wrote no synopsis");
                permit.failed(why.clone());
                Err(why)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::curator::score::test_support::ollama;
    use crate::curator::score::{Scorer, DEFAULT_COOL_DOWN};
    use vvtv_testkit::llm::{LlmServer, Mode};

    fn facts() -> ProgrammeFacts {
        ProgrammeFacts {
            title: "Forest Birds".into(),
            description: "Ten minutes among the birds of an old forest.".into(),
            tags: vec!["nature".into(), "birds".into()],
        }
    }

    #[tokio::test]
    async fn the_llm_writes_one_clean_line_from_the_facts() {
        let server =
            LlmServer::start(Mode::Raw("{\"synopsis\": \"  Birds of an old\\nforest sing at dawn. \"}".into()));
        let s = ollama(&server).synopsis(&facts()).await.unwrap();
        assert_eq!(s, Synopsis { text: "Birds of an old forest sing at dawn.".into(), model: "llm:test-model".into() });
        let requests = server.requests();
        assert_eq!(requests.len(), 1);
        assert!(requests[0].message("system").contains("one-line synopsis"));
        let user = requests[0].message("user");
        assert!(
            user.contains("Forest Birds") && user.contains("old forest") && user.contains("nature, birds"),
            "{user}"
        );
    }

    #[tokio::test]
    async fn no_llm_or_a_bad_answer_gives_no_synopsis() {
        let none = Scorer::new(None, DEFAULT_COOL_DOWN).synopsis(&facts()).await;
        assert_eq!(none, Err("no LLM configured".into()));
        let server = LlmServer::start(Mode::Garbage);
        let scorer = ollama(&server);
        let why = scorer.synopsis(&facts()).await.unwrap_err();
        assert!(why.contains("no JSON object"), "{why}");
        assert_eq!(scorer.breaker().consecutive_failures, 1, "a bad answer counts against the breaker");
    }

    #[test]
    fn answers_are_read_leniently_and_bounded() {
        assert_eq!(parse_synopsis("Sure: {\"synopsis\": \"A calm film.\"} Enjoy").unwrap(), "A calm film.");
        assert!(parse_synopsis("{\"score\": 0.5}").unwrap_err().contains("no \"synopsis\""));
        assert!(parse_synopsis("{\"synopsis\": \"  \"}").unwrap_err().contains("empty"));
        let long = format!("{{\"synopsis\": \"{}\"}}", "word ".repeat(100));
        let cut = parse_synopsis(&long).unwrap();
        assert!(cut.ends_with('…') && cut.chars().count() <= MAX_SYNOPSIS_CHARS + 1, "{cut}");
    }
}
