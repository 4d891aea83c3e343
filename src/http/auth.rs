//! The control API's bearer token: made (mode 0600) in `data_dir/control.token` on first start, required on every
//! `/api/v1` request except where the config lets loopback in without it.

use super::error::ApiError;
use super::AppState;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The token file could not be read or made.
#[derive(Debug, thiserror::Error)]
#[error("token file {}: {source}", path.display())]
pub struct TokenError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// Reads the control API token, creating it (mode 0600) on first start.
pub fn load_or_create_token(path: &Path) -> Result<String, TokenError> {
    let failed = |source| TokenError { path: path.to_owned(), source };
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(failed(e)),
    }
    let token: String = (0..32).map(|_| format!("{:02x}", rand::random::<u8>())).collect();
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path).map_err(failed)?;
    std::io::Write::write_all(&mut file, format!("{token}\n").as_bytes()).map_err(failed)?;
    Ok(token)
}

/// Refuses requests without the bearer token (loopback may be exempt when the config says so).
pub async fn require_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let loopback_ok = state.config.server.allow_loopback_without_token
        && req.extensions().get::<ConnectInfo<SocketAddr>>().is_some_and(|ci| ci.0.ip().is_loopback());
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let valid = presented.is_some_and(|t| constant_time_eq(t.as_bytes(), state.token.as_bytes()));
    if valid || loopback_ok {
        return next.run(req).await;
    }
    let why = if presented.is_some() { "invalid token" } else { "missing bearer token" };
    let mut resp = ApiError::new(
        StatusCode::UNAUTHORIZED,
        format!("{why}: send 'Authorization: Bearer <token>' with the token from data_dir/control.token"),
    )
    .into_response();
    resp.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    resp
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
