//! The scorer tests' kit: a channel style, a candidate that fits it, and scorers pointed at the stand-in LLM server.

use std::time::Duration;

use super::{CandidateInfo, LlmConfig, Protocol, Scorer, Style, DEFAULT_COOL_DOWN};
use vvtv_testkit::llm::LlmServer;

pub(super) const MODEL: &str = "test-model";

pub(super) fn style() -> Style {
    Style {
        description: "calm nature, science and culture documentaries".into(),
        min_height: 720,
        min_duration_s: 60.0,
        max_duration_s: 4.0 * 3600.0,
        license_allowlist: vec!["cc-by".into(), "cc-by-sa".into(), "cc0".into(), "public-domain".into()],
    }
}

pub(super) fn nature_documentary() -> CandidateInfo {
    CandidateInfo {
        title: "Forest Birds — a nature documentary".into(),
        description: "Ten minutes among the birds of an old forest.".into(),
        tags: vec!["wildlife".into(), "Documentaries".into()],
        license: Some("CC BY 4.0".into()),
        width: Some(1920),
        height: Some(1080),
        duration_s: Some(600.0),
        page_url: Some("https://example.org/forest-birds".into()),
        media_url: "https://example.org/forest-birds.mp4".into(),
    }
}

pub(super) fn scorer(server: &LlmServer, protocol: Protocol, timeout: Duration, cool_down: Duration) -> Scorer {
    let config = LlmConfig { protocol, url: server.url(), model: MODEL.into(), timeout };
    Scorer::new(Some(config), cool_down)
}

pub(super) fn ollama(server: &LlmServer) -> Scorer {
    scorer(server, Protocol::Ollama, Duration::from_secs(10), DEFAULT_COOL_DOWN)
}
