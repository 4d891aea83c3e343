//! The circuit breaker in front of the LLM: a failing model is left alone for a while instead of slowing every
//! candidate down.
//!
//! - **closed**: every candidate asks the LLM; [`FAILURES_TO_OPEN`] consecutive failed calls open the breaker;
//! - **open**: no candidate asks the LLM until the cool-down has passed;
//! - **half-open**: after the cool-down exactly one trial call goes through while concurrent candidates fall back;
//!   its success closes the breaker, its failure opens it again for a fresh cool-down.
//!
//! A *call* is one candidate's attempt, including the single retry that an unusable answer gets (see `llm.rs`).

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::{BreakerPhase, BreakerState};
use chrono::{DateTime, Utc};

/// Consecutive failed calls that open the breaker.
pub const FAILURES_TO_OPEN: u32 = 3;
/// How long an open breaker waits before letting a trial call through, unless configured otherwise.
pub const DEFAULT_COOL_DOWN: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Closed,
    Open,
    /// The trial call is in flight.
    HalfOpen,
}

#[derive(Debug)]
struct Breaker {
    phase: Phase,
    cool_down: Duration,
    consecutive_failures: u32,
    opened_at: Option<Instant>,
    /// The same moment on the wall clock, for operators.
    opened_at_wall: Option<DateTime<Utc>>,
    last_error: Option<String>,
    /// Bumped at every change of phase. A call reports with the generation it was admitted in, and a report from
    /// an older generation is ignored: a slow call started while closed must not close a breaker that opened since,
    /// nor count against the trial.
    generation: u64,
}

impl Breaker {
    fn new(cool_down: Duration, last_error: Option<String>) -> Breaker {
        Breaker {
            phase: Phase::Closed,
            cool_down,
            consecutive_failures: 0,
            opened_at: None,
            opened_at_wall: None,
            last_error,
            generation: 0,
        }
    }

    /// Lets a call through (its generation, and whether it is the half-open trial) or says why not.
    fn admit(&mut self, now: Instant) -> Result<(u64, bool), String> {
        let last_error = self.last_error.as_deref().unwrap_or("none");
        match self.phase {
            Phase::Closed => Ok((self.generation, false)),
            Phase::Open if self.cooled_down(now) => {
                tracing::info!(last_error, "LLM breaker half-open: letting one trial call through");
                self.enter(Phase::HalfOpen);
                Ok((self.generation, true))
            }
            Phase::Open => Err(format!("LLM breaker open (last error: {last_error})")),
            Phase::HalfOpen => Err(format!("LLM breaker half-open, trial call in flight (last error: {last_error})")),
        }
    }

    fn succeeded(&mut self, generation: u64) {
        if generation != self.generation {
            return;
        }
        self.consecutive_failures = 0;
        if self.phase != Phase::Closed {
            tracing::info!("LLM breaker closed: the trial call succeeded");
            self.enter(Phase::Closed);
            self.opened_at = None;
            self.opened_at_wall = None;
        }
    }

    fn failed(&mut self, generation: u64, error: String, now: Instant) {
        if generation != self.generation {
            return;
        }
        self.consecutive_failures += 1;
        self.last_error = Some(error);
        let open = match self.phase {
            Phase::Closed => self.consecutive_failures >= FAILURES_TO_OPEN,
            Phase::HalfOpen => true,
            Phase::Open => false,
        };
        if open {
            tracing::warn!(
                failures = self.consecutive_failures,
                cool_down_s = self.cool_down.as_secs_f64(),
                last_error = self.last_error.as_deref().unwrap_or_default(),
                "LLM breaker open: scoring deterministically until the cool-down has passed"
            );
            self.enter(Phase::Open);
            self.opened_at = Some(now);
            self.opened_at_wall = Some(Utc::now());
        }
    }

    /// The trial call ended without a verdict (its task was cancelled): the next candidate makes the trial instead.
    fn trial_abandoned(&mut self, generation: u64) {
        if generation == self.generation && self.phase == Phase::HalfOpen {
            // Still cooled down, so the next admit() starts a new trial at once.
            self.enter(Phase::Open);
        }
    }

    fn enter(&mut self, phase: Phase) {
        self.phase = phase;
        self.generation += 1;
    }

    fn cooled_down(&self, now: Instant) -> bool {
        self.opened_at.is_none_or(|at| now.saturating_duration_since(at) >= self.cool_down)
    }

    fn snapshot(&self, now: Instant, enabled: bool) -> BreakerState {
        let state = match self.phase {
            _ if !enabled => BreakerPhase::Disabled,
            Phase::Closed => BreakerPhase::Closed,
            Phase::Open if self.cooled_down(now) => BreakerPhase::HalfOpen,
            Phase::Open => BreakerPhase::Open,
            Phase::HalfOpen => BreakerPhase::HalfOpen,
        };
        BreakerState {
            state,
            consecutive_failures: self.consecutive_failures,
            opened_at: self.opened_at_wall,
            last_error: self.last_error.clone(),
        }
    }
}

/// The breaker every clone of a scorer shares.
#[derive(Debug)]
pub(super) struct SharedBreaker(Mutex<Breaker>);

impl SharedBreaker {
    pub(super) fn new(cool_down: Duration, last_error: Option<String>) -> SharedBreaker {
        SharedBreaker(Mutex::new(Breaker::new(cool_down, last_error)))
    }

    fn lock(&self) -> MutexGuard<'_, Breaker> {
        // The breaker's state is consistent after every statement, so a panic elsewhere cannot leave it torn.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Lets a call through, or says why not.
    pub(super) fn admit(&self) -> Result<Permit<'_>, String> {
        let (generation, trial) = self.lock().admit(Instant::now())?;
        Ok(Permit { breaker: self, generation, trial, reported: false })
    }

    /// The breaker as the control API shows it; `enabled` is false when no LLM is configured.
    pub(super) fn snapshot(&self, enabled: bool) -> BreakerState {
        self.lock().snapshot(Instant::now(), enabled)
    }
}

/// The breaker's leave for one call. Report the outcome with `succeeded` or `failed`; dropped unreported (the
/// scoring future was cancelled), it gives a trial's turn to the next candidate.
pub(super) struct Permit<'a> {
    breaker: &'a SharedBreaker,
    generation: u64,
    trial: bool,
    reported: bool,
}

impl Permit<'_> {
    pub(super) fn succeeded(mut self) {
        self.reported = true;
        self.breaker.lock().succeeded(self.generation);
    }

    pub(super) fn failed(mut self, error: String) {
        self.reported = true;
        self.breaker.lock().failed(self.generation, error, Instant::now());
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.trial && !self.reported {
            self.breaker.lock().trial_abandoned(self.generation);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::curator::score::test_support::{nature_documentary, ollama, scorer, style};
    use crate::curator::score::{Protocol, Scorer};
    use vvtv_testkit::llm::{LlmServer, Mode};

    #[tokio::test]
    async fn breaker_opens_after_three_failed_calls_and_stops_calling() {
        let server = LlmServer::start(Mode::Down);
        let s = ollama(&server);
        for failures in 1..=2 {
            let scored = s.score(&style(), &nature_documentary()).await;
            assert_eq!(scored.scorer, "deterministic");
            assert_eq!(s.breaker().state, BreakerPhase::Closed);
            assert_eq!(s.breaker().consecutive_failures, failures);
        }
        s.score(&style(), &nature_documentary()).await;
        let breaker = s.breaker();
        assert_eq!(breaker.state, BreakerPhase::Open);
        assert_eq!(breaker.consecutive_failures, 3);
        assert!(breaker.opened_at.is_some());
        let last_error = breaker.last_error.clone().unwrap_or_default();
        assert!(last_error.contains("unreachable"), "{last_error}");
        assert_eq!(server.request_count(), 3);

        // While open, the LLM is not asked at all, and the fallback says why.
        server.set_mode(Mode::Good(0.9));
        for _ in 0..5 {
            let scored = s.score(&style(), &nature_documentary()).await;
            assert_eq!(scored.scorer, "deterministic");
            assert_eq!(scored.fallback_because, Some(format!("LLM breaker open (last error: {last_error})")));
        }
        assert_eq!(server.request_count(), 3);
        assert_eq!(s.breaker(), breaker);
    }

    #[tokio::test]
    async fn success_resets_the_failure_count() {
        let server = LlmServer::start(Mode::Down);
        let s = ollama(&server);
        for mode in [Mode::Down, Mode::Down, Mode::Good(0.5), Mode::Down, Mode::Down] {
            server.set_mode(mode);
            s.score(&style(), &nature_documentary()).await;
        }
        assert_eq!(s.breaker().state, BreakerPhase::Closed);
        assert_eq!(s.breaker().consecutive_failures, 2);
    }

    /// Opens the breaker of a scorer with a short cool-down and waits until the cool-down has passed.
    async fn cooled_down_breaker(server: &LlmServer) -> Scorer {
        let cool_down = Duration::from_secs(1);
        let s = scorer(server, Protocol::Ollama, Duration::from_secs(10), cool_down);
        server.set_mode(Mode::Down);
        for _ in 0..FAILURES_TO_OPEN {
            s.score(&style(), &nature_documentary()).await;
        }
        assert_eq!(s.breaker().state, BreakerPhase::Open);
        tokio::time::sleep(cool_down + Duration::from_millis(100)).await;
        assert_eq!(s.breaker().state, BreakerPhase::HalfOpen);
        s
    }

    #[tokio::test]
    async fn half_open_lets_exactly_one_trial_through_and_closes_on_success() {
        let server = LlmServer::start(Mode::Down);
        let s = cooled_down_breaker(&server).await;
        let before = server.request_count();

        // The trial is slow, so the other candidates arrive while it is in flight.
        server.set_mode(Mode::Slow(Duration::from_millis(400)));
        let (style, c) = (style(), nature_documentary());
        let (a, b, c3) = tokio::join!(s.score(&style, &c), s.score(&style, &c), s.score(&style, &c));
        let results = [a, b, c3];
        let by_llm: Vec<_> = results.iter().filter(|r| r.scorer == "llm:test-model").collect();
        assert_eq!(by_llm.len(), 1, "{results:?}");
        for other in results.iter().filter(|r| r.scorer == "deterministic") {
            let why = other.fallback_because.as_deref().unwrap_or_default();
            assert!(why.starts_with("LLM breaker half-open, trial call in flight"), "{why}");
        }
        assert_eq!(server.request_count(), before + 1);

        let breaker = s.breaker();
        assert_eq!((breaker.state, breaker.consecutive_failures, breaker.opened_at), (BreakerPhase::Closed, 0, None));
        // Closed again: every candidate asks the LLM.
        server.set_mode(Mode::Good(0.9));
        assert_eq!(s.score(&style, &c).await.scorer, "llm:test-model");
        assert_eq!(server.request_count(), before + 2);
    }

    #[tokio::test]
    async fn half_open_trial_failure_reopens_with_a_fresh_cool_down() {
        let server = LlmServer::start(Mode::Down);
        let s = cooled_down_breaker(&server).await;
        let first_opened = s.breaker().opened_at;
        let before = server.request_count();

        let scored = s.score(&style(), &nature_documentary()).await;
        assert_eq!(scored.scorer, "deterministic");
        assert_eq!(server.request_count(), before + 1);
        let breaker = s.breaker();
        assert_eq!(breaker.state, BreakerPhase::Open);
        assert_eq!(breaker.consecutive_failures, FAILURES_TO_OPEN + 1);
        assert!(breaker.opened_at > first_opened, "{breaker:?} vs {first_opened:?}");

        // The fresh cool-down holds the next candidates back, even with the LLM healthy again.
        server.set_mode(Mode::Good(0.9));
        let scored = s.score(&style(), &nature_documentary()).await;
        assert!(scored.fallback_because.as_deref().unwrap_or_default().starts_with("LLM breaker open"));
        assert_eq!(server.request_count(), before + 1);
    }

    #[tokio::test]
    async fn a_cancelled_trial_hands_the_trial_to_the_next_candidate() {
        let server = LlmServer::start(Mode::Down);
        let s = cooled_down_breaker(&server).await;
        server.set_mode(Mode::Slow(Duration::from_secs(5)));
        let cancelled =
            tokio::time::timeout(Duration::from_millis(100), s.score(&style(), &nature_documentary())).await;
        assert!(cancelled.is_err());

        server.set_mode(Mode::Good(0.9));
        let scored = s.score(&style(), &nature_documentary()).await;
        assert_eq!(scored.scorer, "llm:test-model");
        assert_eq!(s.breaker().state, BreakerPhase::Closed);
    }

    #[test]
    fn a_report_from_before_the_breaker_opened_is_ignored() {
        let mut breaker = Breaker::new(Duration::from_secs(60), None);
        let now = Instant::now();
        let (slow_call, _) = breaker.admit(now).expect("closed admits");
        for _ in 0..FAILURES_TO_OPEN {
            let (generation, _) = breaker.admit(now).expect("closed admits");
            breaker.failed(generation, "down".into(), now);
        }
        assert_eq!(breaker.phase, Phase::Open);
        breaker.succeeded(slow_call);
        assert_eq!(breaker.phase, Phase::Open);
        assert!(breaker.admit(now).is_err());
    }
}
