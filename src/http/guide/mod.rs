//! The programme guide: `GET /epg.xml` (XMLTV), `GET /channels.m3u` (the channel list players import with it) and
//! `GET /api/v1/epg` (the same guide as JSON). All three are public, like the stream.
//!
//! A channel's guide is [`crate::planner::epg::timeline`]: what aired, from the airings, then what is planned, from
//! the end of what is on air — the projection the planner stores as planned starts. Every entry is in it (filler,
//! "up next" cards, the slate, emergencies, and "off the air" while the station was down), so consecutive
//! programmes touch. Times are UTC (`+0000` in XMLTV, milliseconds in JSON).
//!
//! Titles come from the asset; descriptions are the LLM-written synopsis when there is one (the guide asks the
//! curator for those it lacks, and shows the plan's description meanwhile); categories are the asset's tags; icons
//! its poster, absolute when the request names its host.

mod m3u;
mod programmes;
mod xmltv;

use super::api::ApiError;
use super::AppState;
use crate::config::ChannelConfig;
use crate::curator::synopses::SynopsisRequest;
use crate::planner::epg;
use crate::store::{AssetId, ChannelId};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::HashMap;
use vvtv_api::epg::{EpgChannel, EpgReport};

/// The longest range one request may ask for.
pub const MAX_RANGE: chrono::Duration = chrono::Duration::days(14);
/// Without `from`, the guide starts this long ago.
pub const DEFAULT_PAST: chrono::Duration = chrono::Duration::hours(6);
/// Without `to`, the guide ends this far ahead (in practice: where the plan ends).
pub const DEFAULT_AHEAD: chrono::Duration = chrono::Duration::days(2);
/// The suffix that makes a channel id an XMLTV channel id (`main` → `main.vvtv`): XMLTV ids are dotted names.
pub const XMLTV_ID_SUFFIX: &str = ".vvtv";

/// The public routes (outside the control API's token).
pub fn router() -> Router<AppState> {
    Router::new().route("/epg.xml", get(epg_xml)).route("/channels.m3u", get(channels_m3u))
}

/// The XMLTV id of a channel, used by `/epg.xml` and as `tvg-id` in `/channels.m3u`.
pub fn xmltv_id(channel: &str) -> String {
    format!("{channel}{XMLTV_ID_SUFFIX}")
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct EpgQuery {
    /// One channel id (default: all).
    channel: Option<String>,
    /// Start of the range: RFC 3339 (`2026-12-01T18:00:00Z`) or Unix milliseconds (default: 6 hours ago).
    from: Option<String>,
    /// End of the range, same forms (default: 2 days after `from` or now, at most 14 days after `from`).
    to: Option<String>,
}

/// A time parameter: RFC 3339 or Unix milliseconds; the error names it and the forms accepted.
fn parse_time(name: &str, value: &str) -> Result<DateTime<Utc>, ApiError> {
    let v = value.trim();
    if let Ok(ms) = v.parse::<i64>() {
        return DateTime::from_timestamp_millis(ms)
            .ok_or_else(|| ApiError::bad_request(format!("{name}={v:?}: milliseconds out of range")));
    }
    DateTime::parse_from_rfc3339(v).map(|t| t.with_timezone(&Utc)).map_err(|e| {
        ApiError::bad_request(format!(
            "{name}={v:?} is not a time: use RFC 3339 (2026-12-01T18:00:00Z) or Unix milliseconds ({e})"
        ))
    })
}

/// The channels a query asks for, and its range.
type Asked<'a> = (Vec<&'a ChannelConfig>, DateTime<Utc>, DateTime<Utc>);

/// The channels and range a query asks for, checked.
fn range<'a>(s: &'a AppState, q: &EpgQuery, now: DateTime<Utc>) -> Result<Asked<'a>, ApiError> {
    let channels: Vec<&ChannelConfig> = match q.channel.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        None => s.config.channels.iter().collect(),
        Some(c) => {
            let found = s.config.channels.iter().find(|ch| ch.id == c || xmltv_id(&ch.id) == c);
            let known: Vec<&str> = s.config.channels.iter().map(|c| c.id.as_str()).collect();
            vec![found.ok_or_else(|| {
                ApiError::not_found(format!("channel={c:?} is not a channel of this station ({})", known.join(", ")))
            })?]
        }
    };
    let from = q.from.as_deref().map(|v| parse_time("from", v)).transpose()?.unwrap_or(now - DEFAULT_PAST);
    let default_to = (from.max(now) + DEFAULT_AHEAD).min(from + MAX_RANGE);
    let to = q.to.as_deref().map(|v| parse_time("to", v)).transpose()?.unwrap_or(default_to);
    if to <= from {
        return Err(ApiError::bad_request(format!("to ({to}) must be after from ({from})")));
    }
    if to - from > MAX_RANGE {
        return Err(ApiError::bad_request(format!(
            "the range from {from} to {to} is longer than {} days; ask for less",
            MAX_RANGE.num_days()
        )));
    }
    Ok((channels, from, to))
}

/// `http://host` from the request, when its Host header is a plain host name (what goes into absolute URLs).
fn base_url(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?.trim();
    let plain = |c: char| c.is_ascii_alphanumeric() || ".-:[]".contains(c);
    if host.is_empty() || !host.chars().all(plain) {
        return None;
    }
    let scheme = match headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).map(str::trim) {
        Some("https") => "https",
        _ => "http",
    };
    Some(format!("{scheme}://{host}"))
}

/// A path made absolute on `base` when known; URLs stay as they are.
fn absolute(base: Option<&str>, path_or_url: &str) -> String {
    match base {
        Some(b) if path_or_url.starts_with('/') => format!("{b}{path_or_url}"),
        _ => path_or_url.to_string(),
    }
}

/// `tvg-chno`: the configured number, else the position from 1.
fn channel_number(s: &AppState, c: &ChannelConfig) -> u32 {
    if c.number > 0 {
        return c.number;
    }
    s.config.channels.iter().position(|x| x.id == c.id).map_or(1, |i| i as u32 + 1)
}

/// The guide of `channels` over [from, to), and asks the curator for the synopses it lacks.
async fn build(
    s: &AppState,
    channels: &[&ChannelConfig],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    base: Option<&str>,
) -> Result<EpgReport, ApiError> {
    let now = Utc::now();
    let mut out = Vec::new();
    let mut missing: HashMap<AssetId, SynopsisRequest> = HashMap::new();
    for c in channels {
        let id = ChannelId(c.id.clone());
        let aired = s.store.guide_airings(&id, from, to).await?;
        let queue = s.store.upcoming(&id, 1000).await?;
        let airings: Vec<_> = aired.iter().map(|g| g.airing.clone()).collect();
        let open_length = match airings.last().filter(|a| a.end.is_none()) {
            Some(open) => epg::open_length(&s.store, open, &queue).await,
            None => None,
        };
        let entries = epg::timeline(&airings, open_length, &queue, now);
        let mut ids: Vec<AssetId> =
            airings.iter().filter_map(|a| a.asset_id).chain(queue.iter().map(|q| q.asset_id)).collect();
        ids.sort();
        ids.dedup();
        let assets = s.store.guide_assets(&ids).await?;
        let view = programmes::ChannelView { name: &c.name, aired: &aired, queue: &queue, assets: &assets };
        let programmes = programmes::programmes(&view, &entries, from, to, base, &mut missing);
        let logo = Some(c.logo.trim()).filter(|l| !l.is_empty()).map(|l| absolute(base, l));
        out.push(EpgChannel {
            id,
            xmltv_id: xmltv_id(&c.id),
            name: c.name.clone(),
            number: channel_number(s, c),
            logo,
            timezone: c.timezone.clone(),
            programmes,
        });
    }
    s.handles.curator.synopses(missing.into_values().collect());
    Ok(EpgReport { from, to, channels: out })
}

/// The guide as JSON: every channel (or one), from `from` to `to` (at most 14 days).
#[utoipa::path(get, path = "/api/v1/epg", tag = "guide", params(EpgQuery),
    responses((status = 200, body = EpgReport), (status = 400, body = vvtv_api::station::ErrorBody),
        (status = 404, body = vvtv_api::station::ErrorBody)))]
pub async fn epg_json(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<EpgQuery>,
) -> Result<Json<EpgReport>, ApiError> {
    let (channels, from, to) = range(&s, &q, Utc::now())?;
    Ok(Json(build(&s, &channels, from, to, base_url(&headers).as_deref()).await?))
}

async fn epg_xml(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<EpgQuery>) -> Response {
    let report = match range(&s, &q, Utc::now()) {
        Ok((channels, from, to)) => build(&s, &channels, from, to, base_url(&headers).as_deref()).await,
        Err(e) => Err(e),
    };
    match report {
        Ok(r) => text(xmltv::document(&r), "application/xml; charset=utf-8"),
        Err(e) => e.into_response(),
    }
}

async fn channels_m3u(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let base = base_url(&headers);
    let now = Utc::now().timestamp().max(0) as u64;
    let entries: Vec<m3u::Entry> = s
        .config
        .channels
        .iter()
        .map(|c| {
            let (path, _) = s.access.playlist_path(&c.id, now, s.access.default_ttl());
            m3u::Entry {
                tvg_id: xmltv_id(&c.id),
                name: c.name.clone(),
                logo: Some(c.logo.trim()).filter(|l| !l.is_empty()).map(|l| absolute(base.as_deref(), l)),
                number: channel_number(&s, c),
                group: c.group.clone(),
                url: absolute(base.as_deref(), &path),
            }
        })
        .collect();
    let guide = absolute(base.as_deref(), "/epg.xml");
    text(m3u::playlist(&guide, &entries), "audio/x-mpegurl; charset=utf-8")
}

fn text(body: String, content_type: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Guides are fetched every few minutes; the plan changes every item.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=10"));
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_milliseconds_and_errors_say_which() {
        let t = parse_time("from", "2026-12-01T18:00:00+01:00").unwrap();
        assert_eq!(t, DateTime::parse_from_rfc3339("2026-12-01T17:00:00Z").unwrap());
        assert_eq!(parse_time("to", "1800000000000").unwrap().timestamp(), 1_800_000_000);
        let e = format!("{:?}", parse_time("from", "yesterday").unwrap_err());
        assert!(e.contains("from=\\\"yesterday\\\"") && e.contains("RFC 3339"), "{e}");
    }

    #[test]
    fn absolute_urls_need_a_plain_host() {
        let mut h = HeaderMap::new();
        assert_eq!(base_url(&h), None);
        h.insert(header::HOST, HeaderValue::from_static("tv.example.org:8080"));
        assert_eq!(base_url(&h).as_deref(), Some("http://tv.example.org:8080"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert_eq!(base_url(&h).as_deref(), Some("https://tv.example.org:8080"));
        h.insert(header::HOST, HeaderValue::from_static("evil\"><x"));
        assert_eq!(base_url(&h), None);
        assert_eq!(absolute(Some("http://h"), "/posters/1.jpg"), "http://h/posters/1.jpg");
        assert_eq!(absolute(Some("http://h"), "https://cdn/logo.png"), "https://cdn/logo.png");
        assert_eq!(absolute(None, "/posters/1.jpg"), "/posters/1.jpg");
    }
}
