//! The HTTP room's error: every failure of a request as a status and one line an operator can act on, mapped from
//! the other rooms' errors in one place.

use crate::audience::AudienceError;
use crate::broadcaster::BroadcasterError;
use crate::curator::CuratorError;
use crate::factory::FactoryError;
use crate::store::StoreError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use vvtv_api::station::ErrorBody;

/// An error answer: a status and one line for the operator.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into() }
    }
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub(crate) fn internal(e: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(ErrorBody { error: self.message })).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            other => ApiError::internal(other),
        }
    }
}

impl From<FactoryError> for ApiError {
    fn from(e: FactoryError) -> Self {
        match e {
            FactoryError::Store(e) => e.into(),
            FactoryError::Refused(e) => ApiError::bad_request(e.to_string()),
            e @ FactoryError::NotReady { .. } => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            e @ FactoryError::Stopped => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            other => ApiError::internal(other),
        }
    }
}

impl From<CuratorError> for ApiError {
    fn from(e: CuratorError) -> Self {
        match e {
            CuratorError::Store(e) => e.into(),
            CuratorError::Factory(e) => e.into(),
            e @ (CuratorError::NoBrowserSource | CuratorError::NotPending { .. }) => {
                ApiError::new(StatusCode::CONFLICT, e.to_string())
            }
            other => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, other.to_string()),
        }
    }
}

impl From<BroadcasterError> for ApiError {
    fn from(e: BroadcasterError) -> Self {
        match e {
            BroadcasterError::Store(e) => e.into(),
            e @ BroadcasterError::NotOnAir(_) => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            e @ BroadcasterError::Stopped(_) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            other => ApiError::internal(other),
        }
    }
}

impl From<AudienceError> for ApiError {
    fn from(e: AudienceError) -> Self {
        let status = match &e {
            AudienceError::Invalid(_) => StatusCode::BAD_REQUEST,
            AudienceError::RateLimited { .. } | AudienceError::TooManyNew => StatusCode::TOO_MANY_REQUESTS,
            AudienceError::Ended(_)
            | AudienceError::OtherChannel { .. }
            | AudienceError::AlreadyStarted(_)
            | AudienceError::NotLive(_) => StatusCode::CONFLICT,
            AudienceError::Full { .. } | AudienceError::Stopped => StatusCode::SERVICE_UNAVAILABLE,
            AudienceError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}
