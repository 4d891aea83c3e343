//! `GET`/`PUT /business-logic`: the rules an operator may change at run time, validated before anything is stored.

use super::{json_body, ApiError, ApiResult, AppState};
use crate::business_logic::BusinessLogic;
use crate::store::{Actor, EventKind};
use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::Json;
use serde_json::Value;
use vvtv_api::station::BusinessLogicValues;

/// The effective rules (config defaults with the stored overrides).
#[utoipa::path(get, path = "/api/v1/business-logic", tag = "rules", security(("bearer" = [])),
    responses((status = 200, body = BusinessLogicValues)))]
pub async fn show(State(s): State<AppState>) -> ApiResult<BusinessLogicValues> {
    Ok(Json(s.handles.rules.borrow().values()))
}

/// Sets keys (`{"exploration.epsilon": 0.15}`); all are validated before any is stored, effective at once.
#[utoipa::path(put, path = "/api/v1/business-logic", tag = "rules", security(("bearer" = [])),
    request_body = BusinessLogicValues,
    responses((status = 200, body = BusinessLogicValues), (status = 400, body = vvtv_api::station::ErrorBody)))]
pub async fn set(
    State(s): State<AppState>,
    body: Result<Json<Value>, JsonRejection>,
) -> ApiResult<BusinessLogicValues> {
    let body = json_body(body, "a JSON object of key → value")?;
    let Value::Object(changes) = body else {
        return Err(ApiError::bad_request("body must be a JSON object of key → value"));
    };
    if changes.is_empty() {
        return Err(ApiError::bad_request("no key given"));
    }
    let mut next: BusinessLogic = s.handles.rules.borrow().clone();
    let mut texts = Vec::new();
    for (key, value) in &changes {
        let text = match value {
            Value::String(t) => t.clone(),
            Value::Number(_) | Value::Bool(_) => value.to_string(),
            _ => return Err(ApiError::bad_request(format!("{key}: value must be a string, number or boolean"))),
        };
        let became = next.set(key, &text).map_err(|e| ApiError::bad_request(e.to_string()))?;
        texts.push((key.clone(), became, text));
    }
    for (key, became, text) in &texts {
        // A deprecated key is stored under the key it became; the operator is told once, in the event log.
        s.store.set_setting(became.unwrap_or(key), text).await?;
        if let Some(new) = became {
            let message = format!("{key} is deprecated and will go in the next release: use {new} (set {new}={text})");
            let data = serde_json::json!({ "old": key, "new": new });
            s.store.event(Actor::Http, None, EventKind::DeprecatedKey, &message, data).await;
        }
    }
    let summary = texts.iter().map(|(k, _, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ");
    let message = format!("business logic changed: {summary}");
    s.store.event(Actor::Http, None, EventKind::BusinessLogicSet, &message, Value::Object(changes)).await;
    s.handles.rules.send_replace(next.clone());
    Ok(Json(next.values()))
}
