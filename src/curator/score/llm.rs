//! The LLM client: asks Ollama (`/api/chat`) or an OpenAI-compatible server (`/v1/chat/completions`) for a verdict.
//!
//! A *call* is one candidate's attempt, including the single retry that an unusable answer (no JSON object, no
//! score) gets: small models sometimes ramble once and answer properly when reminded. Timeouts, connection errors,
//! HTTP errors and replies that are not chat answers at all fail the call at once, since asking again would not help.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::prompt::{excerpt, parse_answer, prompt, Answer, RETRY_REMINDER};
use super::{CandidateInfo, LlmConfig, Protocol, Style};
use crate::metrics::LlmOutcome;

/// Tokens the model may generate: the answer is one short JSON object, and a bound stops a runaway generation.
const MAX_ANSWER_TOKENS: u32 = 512;
/// Largest reply body read from the LLM server; a chat answer of a few hundred tokens is far smaller.
const MAX_REPLY_BYTES: usize = 1 << 20;

/// Why one LLM call did not produce a score. Each names the server and what went wrong, for the operator.
#[derive(Debug, thiserror::Error)]
pub(super) enum LlmError {
    #[error("LLM at {url} timed out after {}s", after.as_secs_f64())]
    Timeout { url: String, after: Duration },
    #[error("LLM at {url} unreachable: {reason}")]
    Transport { url: String, reason: String },
    #[error("LLM at {url} answered HTTP {status}: {body}")]
    Status { url: String, status: u16, body: String },
    #[error("LLM at {url} sent no {protocol} chat reply: {problem}")]
    NotAChatReply { url: String, protocol: Protocol, problem: String },
    #[error("LLM answered invalid JSON twice ({problem})")]
    InvalidTwice { problem: String },
}

#[derive(Debug)]
pub(super) struct Llm {
    pub(super) config: LlmConfig,
    endpoint: String,
    client: reqwest::Client,
}

impl LlmError {
    /// The class of the failure, as the call-latency histogram labels it.
    pub(super) fn outcome(&self) -> LlmOutcome {
        match self {
            LlmError::Timeout { .. } => LlmOutcome::Timeout,
            LlmError::Transport { .. } => LlmOutcome::Unreachable,
            LlmError::Status { .. } => LlmOutcome::HttpError,
            LlmError::NotAChatReply { .. } | LlmError::InvalidTwice { .. } => LlmOutcome::BadAnswer,
        }
    }
}

impl Llm {
    pub(super) fn new(config: LlmConfig) -> Result<Llm, String> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| format!("cannot build the HTTP client for the LLM at {}: {}", config.url, error_chain(&e)))?;
        Ok(Llm { endpoint: endpoint(config.protocol, &config.url), config, client })
    }

    /// One call: a request, and a second one with a reminder when the first answer was unusable. The reminder is
    /// what makes the retry worth it: at temperature 0 the very same request would get the very same answer.
    pub(super) async fn ask(&self, style: &Style, c: &CandidateInfo) -> Result<Answer, LlmError> {
        let (system, user) = prompt(style, c);
        let first = self.complete(&system, &user).await?;
        let problem = match parse_answer(&first) {
            Ok(answer) => return Ok(answer),
            Err(problem) => problem,
        };
        tracing::debug!(%problem, "LLM answer unusable; asking once more");
        let second = self.complete(&system, &format!("{user}\n\n{RETRY_REMINDER}")).await?;
        parse_answer(&second).map_err(|problem| LlmError::InvalidTwice { problem })
    }

    /// A one-line synopsis for the guide (no retry: the guide shows the description until a later call succeeds).
    pub(super) async fn synopsis(&self, facts: &super::ProgrammeFacts) -> Result<String, LlmError> {
        let answer = self.complete(super::synopsis::SYSTEM, &super::synopsis::user_prompt(facts)).await?;
        super::synopsis::parse_synopsis(&answer).map_err(|problem| self.not_a_chat_reply(problem))
    }

    /// Sends one chat request and returns the assistant's text.
    pub(super) async fn complete(&self, system: &str, user: &str) -> Result<String, LlmError> {
        let messages = json!([
            {"role": "system", "content": system},
            {"role": "user", "content": user},
        ]);
        // Temperature 0: the same candidate should get the same score on every run.
        let body = match self.config.protocol {
            Protocol::Ollama => json!({
                "model": self.config.model,
                "messages": messages,
                "format": "json",
                "stream": false,
                "options": {"temperature": 0, "num_predict": MAX_ANSWER_TOKENS},
            }),
            Protocol::Openai => json!({
                "model": self.config.model,
                "messages": messages,
                "response_format": {"type": "json_object"},
                "stream": false,
                "temperature": 0,
                "max_tokens": MAX_ANSWER_TOKENS,
            }),
        };
        let started = Instant::now();
        let mut response =
            self.client.post(&self.endpoint).json(&body).send().await.map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        let mut reply = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport_error(&e))? {
            if reply.len() + chunk.len() > MAX_REPLY_BYTES {
                return Err(self.not_a_chat_reply(format!("reply larger than {MAX_REPLY_BYTES} bytes")));
            }
            reply.extend_from_slice(&chunk);
        }
        tracing::debug!(url = %self.endpoint, status = status.as_u16(), elapsed_ms = started.elapsed().as_millis(), "LLM replied");
        if !status.is_success() {
            let body = excerpt(&String::from_utf8_lossy(&reply), 200);
            return Err(LlmError::Status { url: self.endpoint.clone(), status: status.as_u16(), body });
        }
        let reply: Value =
            serde_json::from_slice(&reply).map_err(|e| self.not_a_chat_reply(format!("not JSON: {e}")))?;
        assistant_text(&reply).ok_or_else(|| {
            self.not_a_chat_reply(format!("no assistant message in {}", excerpt(&reply.to_string(), 200)))
        })
    }

    fn transport_error(&self, error: &reqwest::Error) -> LlmError {
        let url = self.endpoint.clone();
        if error.is_timeout() {
            LlmError::Timeout { url, after: self.config.timeout }
        } else {
            LlmError::Transport { url, reason: error_chain(error) }
        }
    }

    fn not_a_chat_reply(&self, problem: String) -> LlmError {
        LlmError::NotAChatReply { url: self.endpoint.clone(), protocol: self.config.protocol, problem }
    }
}

/// The chat endpoint under a base URL. A base that already ends in the API prefix (`…/v1`, as OpenAI clients are
/// often configured, or `…/api`) is not given it twice.
fn endpoint(protocol: Protocol, base: &str) -> String {
    let base = base.trim_end_matches('/');
    let (prefix, path) = match protocol {
        Protocol::Ollama => ("/api", "/chat"),
        Protocol::Openai => ("/v1", "/chat/completions"),
    };
    if base.ends_with(prefix) {
        format!("{base}{path}")
    } else {
        format!("{base}{prefix}{path}")
    }
}

/// The assistant's text from either protocol's reply: servers that speak one protocol at the other's path exist,
/// and the shape tells them apart without doubt.
fn assistant_text(reply: &Value) -> Option<String> {
    let content = ["/message/content", "/choices/0/message/content", "/choices/0/text", "/response"]
        .iter()
        .find_map(|pointer| reply.pointer(pointer).filter(|v| !v.is_null()))?;
    Some(match content {
        Value::String(text) => text.clone(),
        // A server that already parsed the JSON for us.
        other => other.to_string(),
    })
}

/// "reqwest error: outer; cause; root cause", since reqwest's own message hides the cause (refused, reset, DNS).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::curator::score::test_support::{nature_documentary, ollama, scorer, style, MODEL};
    use crate::curator::score::{deterministic, Scored, Scorer, DEFAULT_COOL_DOWN};
    use vvtv_testkit::llm::{LlmServer, Mode};

    #[tokio::test]
    async fn ollama_good_answer_decides() {
        let server = LlmServer::start(Mode::Good(0.8));
        let scored = ollama(&server).score(&style(), &nature_documentary()).await;
        assert_eq!(scored.score, 0.8);
        assert_eq!(scored.scorer, "llm:test-model");
        assert_eq!(scored.tags, ["nature", "test"]);
        assert_eq!(scored.reason, "fits the test channel");
        assert_eq!(scored.fallback_because, None);

        let requests = server.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].path, "/api/chat");
        assert_eq!(requests[0].body["model"], MODEL);
        assert_eq!(requests[0].body["format"], "json");
        assert_eq!(requests[0].body["stream"], false);
        assert!(requests[0].message("system").contains("\"score\""));
        assert!(requests[0].message("user").contains("Forest Birds"));
    }

    #[tokio::test]
    async fn openai_good_answer_decides() {
        let server = LlmServer::start(Mode::Good(0.35));
        // A base URL given with its /v1 prefix, as OpenAI clients are often configured, is not doubled.
        let config = LlmConfig {
            protocol: Protocol::Openai,
            url: format!("{}/v1/", server.url()),
            model: MODEL.into(),
            timeout: Duration::from_secs(10),
        };
        let scored = Scorer::new(Some(config), DEFAULT_COOL_DOWN).score(&style(), &nature_documentary()).await;
        assert_eq!(scored.score, 0.35);
        assert_eq!(scored.scorer, "llm:test-model");
        assert_eq!(scored.fallback_because, None);

        let requests = server.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].path, "/v1/chat/completions");
        assert_eq!(requests[0].body["response_format"]["type"], "json_object");
        assert_eq!(requests[0].body["messages"][0]["role"], "system");
        assert_eq!(requests[0].body["messages"][1]["role"], "user");
    }

    #[tokio::test]
    async fn fenced_json_with_string_score_is_accepted() {
        let server = LlmServer::start(Mode::Raw("```json\n{\"score\": \"0.7\", \"reason\": \"calm\"}\n```".into()));
        let scored = ollama(&server).score(&style(), &nature_documentary()).await;
        assert_eq!((scored.score, scored.scorer.as_str()), (0.7, "llm:test-model"));
        assert!(scored.tags.is_empty());
        assert_eq!(server.request_count(), 1);
    }

    #[tokio::test]
    async fn text_around_json_is_accepted_and_score_clamped() {
        let answer = "Sure! {\"score\": 1.4, \"tags\": [\"Nature\", \"nature\"], \"reason\": \"a {great} fit\"} Enjoy.";
        let server = LlmServer::start(Mode::Raw(answer.into()));
        let scored = scorer(&server, Protocol::Openai, Duration::from_secs(10), DEFAULT_COOL_DOWN)
            .score(&style(), &nature_documentary())
            .await;
        assert_eq!(scored.score, 1.0);
        assert_eq!(scored.tags, ["nature"]);
        assert_eq!(scored.reason, "a {great} fit");
        assert_eq!(scored.fallback_because, None);
    }

    #[tokio::test]
    async fn garbage_is_retried_once_then_falls_back() {
        let server = LlmServer::start(Mode::Garbage);
        let s = ollama(&server);
        let scored = s.score(&style(), &nature_documentary()).await;
        assert_eq!(scored.scorer, "deterministic");
        let why = scored.fallback_because.as_deref().unwrap_or_default();
        assert!(why.contains("invalid JSON twice"), "{why}");
        assert_eq!(server.request_count(), 2);
        let requests = server.requests();
        assert!(!requests[0].message("user").contains(RETRY_REMINDER));
        assert!(requests[1].message("user").contains(RETRY_REMINDER));
        // The fallback is the deterministic verdict itself.
        assert_eq!(Scored { fallback_because: None, ..scored }, deterministic(&style(), &nature_documentary()));
        assert_eq!(s.breaker().consecutive_failures, 1);
    }

    #[tokio::test]
    async fn a_missing_score_is_retried_and_a_good_retry_decides() {
        let server =
            LlmServer::start(Mode::Sequence(vec![Mode::Raw("{\"rating\": \"high\"}".into()), Mode::Good(0.6)]));
        let s = ollama(&server);
        let scored = s.score(&style(), &nature_documentary()).await;
        assert_eq!((scored.score, scored.scorer.as_str()), (0.6, "llm:test-model"));
        assert_eq!(server.request_count(), 2);
        assert_eq!(s.breaker().consecutive_failures, 0);
    }

    #[tokio::test]
    async fn a_missing_score_twice_falls_back() {
        let server = LlmServer::start(Mode::Raw("{\"rating\": \"high\"}".into()));
        let scored = ollama(&server).score(&style(), &nature_documentary()).await;
        let why = scored.fallback_because.unwrap_or_default();
        assert!(why.starts_with("LLM answered invalid JSON twice (no JSON object with a \"score\""), "{why}");
        assert_eq!(server.request_count(), 2);
    }

    #[tokio::test]
    async fn timeout_falls_back_quickly() {
        let server = LlmServer::start(Mode::Slow(Duration::from_secs(5)));
        let s = scorer(&server, Protocol::Ollama, Duration::from_millis(300), DEFAULT_COOL_DOWN);
        let started = Instant::now();
        let scored = s.score(&style(), &nature_documentary()).await;
        assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
        assert_eq!(scored.scorer, "deterministic");
        let why = scored.fallback_because.as_deref().unwrap_or_default();
        assert!(why.contains("timed out after 0.3s"), "{why}");
        // A timeout is not retried.
        assert_eq!(server.request_count(), 1);
        assert_eq!(s.breaker().last_error.as_deref(), Some(why));
    }

    #[tokio::test]
    async fn http_error_and_refused_connection_fall_back() {
        // A base URL with a path the server does not serve gets 404.
        let server = LlmServer::start(Mode::Good(0.9));
        let wrong_path = LlmConfig {
            protocol: Protocol::Ollama,
            url: format!("{}/elsewhere", server.url()),
            model: MODEL.into(),
            timeout: Duration::from_secs(5),
        };
        let scored = Scorer::new(Some(wrong_path), DEFAULT_COOL_DOWN).score(&style(), &nature_documentary()).await;
        let why = scored.fallback_because.unwrap_or_default();
        assert!(why.contains("HTTP 404"), "{why}");

        let url = server.url();
        drop(server);
        let gone = LlmConfig { protocol: Protocol::Ollama, url, model: MODEL.into(), timeout: Duration::from_secs(5) };
        let scored = Scorer::new(Some(gone), DEFAULT_COOL_DOWN).score(&style(), &nature_documentary()).await;
        let why = scored.fallback_because.unwrap_or_default();
        assert!(why.contains("unreachable"), "{why}");
    }

    #[test]
    fn endpoints_and_replies_of_both_protocols() {
        assert_eq!(endpoint(Protocol::Ollama, "http://h:11434/"), "http://h:11434/api/chat");
        assert_eq!(endpoint(Protocol::Openai, "http://h:8000"), "http://h:8000/v1/chat/completions");
        assert_eq!(endpoint(Protocol::Openai, "http://h:8000/v1"), "http://h:8000/v1/chat/completions");
        assert_eq!(assistant_text(&json!({"message": {"content": "a"}})).as_deref(), Some("a"));
        assert_eq!(assistant_text(&json!({"choices": [{"message": {"content": "b"}}]})).as_deref(), Some("b"));
        assert_eq!(assistant_text(&json!({"choices": [{"message": {"content": null}}]})), None);
        assert_eq!("openai".parse::<Protocol>(), Ok(Protocol::Openai));
        assert!("vllm".parse::<Protocol>().is_err());
    }
}
