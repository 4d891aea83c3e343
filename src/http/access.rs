//! Who may watch: signed viewer URLs and countries allowed or refused, checked in front of every route.
//!
//! **Signed URLs** (`[access] signed_urls`). A query string on the playlist URL would not carry to the relative
//! segment URLs inside it; a token in the path does. A viewer URL is
//!
//! ```text
//! /s/{expiry}/{token}/hls/{channel}/live.m3u8
//! token = lowercase hex of HMAC-SHA256(secret, "{expiry}/hls/{channel}/")
//! ```
//!
//! with `expiry` in Unix seconds and the secret in `data_dir/access.secret`. Everything the playlist names
//! (`720p/live.m3u8`, `seg00000012.ts`) is relative, so it inherits the prefix, and one token covers the channel's
//! whole tree until it expires. A CDN edge that holds the secret verifies the same token with the same formula. With
//! the option on, `/hls/…` without a token, a tampered token, another channel's token or an expired one is refused
//! with 403; a good one is served as if `/hls/…` had been asked for.
//!
//! **Countries** (`[access] geo_allow`, `geo_deny`, `geo_header`). The CDN tells the origin the viewer's country in a
//! header (`CF-IPCountry`, `CloudFront-Viewer-Country`); a refused country gets 451 on the page and the stream, with
//! a page that says why. Without the header (no CDN in front) nobody is refused: the origin cannot know.

use crate::config::AccessConfig;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The path prefix of signed URLs.
const SIGNED_PREFIX: &str = "/s/";

/// The access rules and the signing key, shared by the guard and the API.
#[derive(Clone)]
pub struct Access {
    config: Arc<AccessConfig>,
    secret: Arc<Vec<u8>>,
}

/// The secret file could not be read or made.
#[derive(Debug, thiserror::Error)]
#[error("access secret {}: {source}", path.display())]
pub struct SecretError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// Why a viewer request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this station's streams need a signed URL")]
    Unsigned,
    #[error("the URL's token is not valid for this path")]
    BadToken,
    #[error("the URL expired")]
    Expired,
    #[error("not available in your country ({0})")]
    Country(String),
}

impl Access {
    /// Reads the secret (creating it, 0600, on first start) when signed URLs are on.
    pub fn load(config: &AccessConfig, secret_path: &Path) -> Result<Access, SecretError> {
        let secret = if config.signed_urls { load_or_create_secret(secret_path)? } else { Vec::new() };
        Ok(Access { config: Arc::new(config.clone()), secret: Arc::new(secret) })
    }

    pub fn signed_urls(&self) -> bool {
        self.config.signed_urls
    }

    pub fn default_ttl(&self) -> Duration {
        Duration::from_secs(self.config.default_ttl_seconds)
    }

    /// The token of a channel's tree until `expiry` (Unix seconds).
    pub fn token(&self, channel: &str, expiry: u64) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes a key of any length");
        mac.update(format!("{expiry}/hls/{channel}/").as_bytes());
        mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The path a viewer opens for `channel`: signed for `ttl` from `now` when the option is on.
    pub fn playlist_path(&self, channel: &str, now: u64, ttl: Duration) -> (String, Option<u64>) {
        if !self.config.signed_urls {
            return (format!("/hls/{channel}/live.m3u8"), None);
        }
        let expiry = now + ttl.as_secs();
        (format!("{SIGNED_PREFIX}{expiry}/{}/hls/{channel}/live.m3u8", self.token(channel, expiry)), Some(expiry))
    }

    /// Checks a signed path at `now`; the path it stands for when it is good.
    pub fn verify(&self, path: &str, now: u64) -> Result<String, Refusal> {
        let rest = path.strip_prefix(SIGNED_PREFIX).ok_or(Refusal::Unsigned)?;
        let mut parts = rest.splitn(3, '/');
        let (Some(expiry), Some(token), Some(tail)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(Refusal::BadToken);
        };
        let expiry: u64 = expiry.parse().map_err(|_| Refusal::BadToken)?;
        let channel = tail.strip_prefix("hls/").and_then(|t| t.split('/').next()).ok_or(Refusal::BadToken)?;
        if !self.config.signed_urls || !constant_time_eq(token.as_bytes(), self.token(channel, expiry).as_bytes()) {
            return Err(Refusal::BadToken);
        }
        if expiry < now {
            return Err(Refusal::Expired);
        }
        Ok(format!("/{tail}"))
    }

    /// A country the rules refuse (from the CDN's header), if any.
    pub fn refused_country(&self, country: Option<&str>) -> Option<String> {
        let country = country.map(str::trim).filter(|c| !c.is_empty())?.to_ascii_uppercase();
        let allowed = self.config.geo_allow.is_empty() || self.config.geo_allow.contains(&country);
        let denied = self.config.geo_deny.contains(&country);
        (!allowed || denied).then_some(country)
    }
}

fn now_secs() -> u64 {
    chrono::Utc::now().timestamp().max(0) as u64
}

/// Viewer routes: the page, the stream and the posters it shows.
fn is_viewer_route(path: &str) -> bool {
    path == "/" || ["/watch/", "/hls/", SIGNED_PREFIX, "/posters/"].iter().any(|p| path.starts_with(p))
}

/// Runs in front of routing: refuses what the rules refuse and turns a good signed path into the `/hls/…` path.
pub async fn guard(State(access): State<Access>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if !is_viewer_route(&path) {
        return next.run(req).await;
    }
    let country = req.headers().get(access.config.geo_header.as_str()).and_then(|v| v.to_str().ok());
    if let Some(country) = access.refused_country(country) {
        return refuse(StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS, &Refusal::Country(country), &req);
    }
    if path.starts_with(SIGNED_PREFIX) {
        match access.verify(&path, now_secs()) {
            Ok(inner) => {
                let target = match req.uri().query() {
                    Some(q) => format!("{inner}?{q}"),
                    None => inner,
                };
                match target.parse::<Uri>() {
                    Ok(uri) => *req.uri_mut() = uri,
                    Err(_) => return refuse(StatusCode::FORBIDDEN, &Refusal::BadToken, &req),
                }
            }
            Err(why) => return refuse(StatusCode::FORBIDDEN, &why, &req),
        }
    } else if access.config.signed_urls && path.starts_with("/hls/") {
        return refuse(StatusCode::FORBIDDEN, &Refusal::Unsigned, &req);
    }
    next.run(req).await
}

/// A refusal a player can read (CORS) and a person understands (a page when a browser asks for one).
fn refuse(status: StatusCode, why: &Refusal, req: &Request) -> Response {
    let wants_page =
        req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"));
    let mut resp = if wants_page {
        let title =
            if status == StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS { "Not available here" } else { "Access refused" };
        let html = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
             <style>body{{font:18px system-ui,sans-serif;background:#111;color:#eee;display:grid;place-items:center;\
             height:100vh;margin:0}}</style></head><body><main><h1>{title}</h1><p>{why}.</p></main></body></html>"
        );
        (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
    } else {
        (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{why}\n")).into_response()
    };
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=1"));
    resp
}

fn load_or_create_secret(path: &Path) -> Result<Vec<u8>, SecretError> {
    let failed = |source| SecretError { path: path.to_owned(), source };
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => return Ok(text.trim().as_bytes().to_vec()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(failed(e)),
    }
    let secret: String = (0..32).map(|_| format!("{:02x}", rand::random::<u8>())).collect();
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path).map_err(failed)?;
    std::io::Write::write_all(&mut file, format!("{secret}\n").as_bytes()).map_err(failed)?;
    Ok(secret.into_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Wraps `app` so the guard runs before routing (a rewritten path is routed as the path it stands for).
pub fn layer(app: axum::Router, access: Access) -> axum::Router {
    axum::Router::new().fallback_service(app).layer(axum::middleware::from_fn_with_state(access, guard))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(signed: bool, allow: &[&str], deny: &[&str]) -> Access {
        let config = AccessConfig {
            signed_urls: signed,
            geo_allow: allow.iter().map(|s| s.to_string()).collect(),
            geo_deny: deny.iter().map(|s| s.to_string()).collect(),
            ..AccessConfig::default()
        };
        Access { config: Arc::new(config), secret: Arc::new(b"test secret".to_vec()) }
    }

    #[test]
    fn the_token_is_the_documented_hmac() {
        // HMAC-SHA256("test secret", "1700000000/hls/main/"), computed independently with openssl:
        // printf '1700000000/hls/main/' | openssl dgst -sha256 -hmac 'test secret'
        let expected = std::process::Command::new("openssl")
            .args(["dgst", "-sha256", "-hmac", "test secret", "-r"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().expect("stdin").write_all(b"1700000000/hls/main/")?;
                child.wait_with_output()
            })
            .expect("openssl runs");
        let expected = String::from_utf8_lossy(&expected.stdout).split_whitespace().next().unwrap_or("").to_owned();
        assert_eq!(expected.len(), 64, "openssl printed a digest");
        assert_eq!(access(true, &[], &[]).token("main", 1_700_000_000), expected);
    }

    #[test]
    fn a_signed_path_covers_the_channel_tree_until_it_expires() {
        let a = access(true, &[], &[]);
        let (path, expiry) = a.playlist_path("main", 1000, Duration::from_secs(60));
        assert_eq!(expiry, Some(1060));
        assert_eq!(a.verify(&path, 1000).unwrap(), "/hls/main/live.m3u8");
        let segment = path.replace("live.m3u8", "720p/seg00000012.ts");
        assert_eq!(a.verify(&segment, 1059).unwrap(), "/hls/main/720p/seg00000012.ts");
        assert_eq!(a.verify(&path, 1061), Err(Refusal::Expired));
        let other = path.replace("/hls/main/", "/hls/news/");
        assert_eq!(a.verify(&other, 1000), Err(Refusal::BadToken), "a token is for one channel");
        let tampered = path.replace("/1060/", "/9999999999/");
        assert_eq!(a.verify(&tampered, 1000), Err(Refusal::BadToken), "a longer expiry needs a new token");
        let mut flipped = path.clone().into_bytes();
        let at = SIGNED_PREFIX.len() + "1060/".len();
        flipped[at] = if flipped[at] == b'0' { b'1' } else { b'0' };
        assert_eq!(a.verify(&String::from_utf8(flipped).unwrap(), 1000), Err(Refusal::BadToken));
        assert_eq!(a.verify("/s/1060/", 1000), Err(Refusal::BadToken));
        assert_eq!(access(false, &[], &[]).verify(&path, 1000), Err(Refusal::BadToken), "off: nothing verifies");
    }

    #[test]
    fn countries_are_refused_by_the_lists() {
        let allow = access(false, &["DE", "AT"], &[]);
        assert_eq!(allow.refused_country(Some("de")), None);
        assert_eq!(allow.refused_country(Some("US")), Some("US".into()));
        assert_eq!(allow.refused_country(None), None, "no header, no CDN: the origin cannot know");
        let deny = access(false, &[], &["RU"]);
        assert_eq!(deny.refused_country(Some("RU")), Some("RU".into()));
        assert_eq!(deny.refused_country(Some("FR")), None);
    }
}
