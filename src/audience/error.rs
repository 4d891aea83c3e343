//! The audience room's errors: why a beacon was refused (and so not stored), each naming the field or the limit.

use crate::store::StoreError;
use vvtv_api::{ChannelId, SessionId};

/// A beacon field that is not acceptable, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct BeaconError {
    pub field: &'static str,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AudienceError {
    #[error(transparent)]
    Invalid(#[from] BeaconError),
    #[error("session {session} sends beacons too fast: at most {burst} at once and {per_minute} a minute")]
    RateLimited { session: SessionId, burst: u32, per_minute: u32 },
    #[error("too many new sessions at once; try again in a few seconds")]
    TooManyNew,
    #[error("the station already follows {max} live sessions (audience.max_sessions); try again later")]
    Full { max: u32 },
    #[error("session {0} has ended; a new viewing needs a new session id")]
    Ended(SessionId),
    #[error("session {session} watches channel {channel}; another channel needs a new session id")]
    OtherChannel { session: SessionId, channel: ChannelId },
    #[error("session {0} has already started")]
    AlreadyStarted(SessionId),
    #[error("session {0} is not live: there is nothing to end")]
    NotLive(SessionId),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the audience room has stopped")]
    Stopped,
}

impl AudienceError {
    /// The class of refusal, for the room's summary of what it refused.
    pub fn class(&self) -> &'static str {
        match self {
            AudienceError::Invalid(_) => "invalid",
            AudienceError::RateLimited { .. } => "too fast",
            AudienceError::TooManyNew => "too many new sessions",
            AudienceError::Full { .. } => "session limit",
            AudienceError::Ended(_)
            | AudienceError::OtherChannel { .. }
            | AudienceError::AlreadyStarted(_)
            | AudienceError::NotLive(_) => "conflicting",
            AudienceError::Store(_) | AudienceError::Stopped => "failed",
        }
    }
}
