//! Loading one page in a tab and reading it: the candidate videos it declares (as [`Found`]) and its links.
//!
//! Everything we read is in the markup, so the tab refuses images, fonts and media and loads only what the page needs
//! to render it. The reading itself runs in an isolated world (`extract.js`), out of reach of the page's own scripts.

use std::collections::HashSet;
use std::time::Duration;

use chromiumoxide::cdp::browser_protocol::network::{EventResponseReceived, ResourceType};
use chromiumoxide::cdp::browser_protocol::page::AddScriptToEvaluateOnNewDocumentParams;
use chromiumoxide::cdp::js_protocol::runtime::EvaluateParams;
use chromiumoxide::error::CdpError;
use chromiumoxide::Page;
use futures_util::{FutureExt, StreamExt};
use serde::Deserialize;
use url::Url;

use super::request_guard::RequestGuard;
use super::Found;
use crate::curator::license::{resolve_license, RawLicense};
use crate::curator::politeness::Politeness;

pub(super) enum Visit {
    Page(RawPage),
    HttpError(i64),
}

pub(super) enum VisitError {
    /// This page could not be used; the browser is fine.
    Page(String),
    /// The browser is broken or hung: replace it.
    Browser(String),
}

pub(super) fn browser_failure(e: CdpError) -> VisitError {
    VisitError::Browser(format!("DevTools error: {e}"))
}

pub(super) async fn load_and_read(
    page: &Page,
    url: &Url,
    robots: &Politeness,
    min_gap: Duration,
) -> Result<Visit, VisitError> {
    let mut responses = page.event_listener::<EventResponseReceived>().await.map_err(browser_failure)?;
    // Reading the markup needs the document, scripts, styles and XHR; the rest would only cost the site bandwidth.
    let not_needed = [
        ResourceType::Media,
        ResourceType::Image,
        ResourceType::Font,
        ResourceType::CspViolationReport,
        ResourceType::Ping,
        ResourceType::Other,
    ];
    let mut guard = RequestGuard::install(page, robots, ResourceType::Document, &not_needed, min_gap)
        .await
        .map_err(browser_failure)?;
    let main_frame = page.mainframe().await.map_err(browser_failure)?;
    // Without an icon declared by the page, Chromium fetches /favicon.ico on its own, past the request guard and
    // the pacing. Declaring an inline icon before the page is parsed prevents that. This runs in an isolated world,
    // out of the page scripts' sight.
    let mut no_favicon = AddScriptToEvaluateOnNewDocumentParams::new(NO_FAVICON_JS);
    no_favicon.world_name = Some("vvtv-no-favicon".to_string());
    page.evaluate_on_new_document(no_favicon).await.map_err(browser_failure)?;

    match guard.run(page.goto(url.as_str())).await {
        Ok(_) => {}
        Err(CdpError::ChromeMessage(text)) => return Err(VisitError::Page(guard.explain_failure(&text))),
        Err(CdpError::Timeout) => return Err(VisitError::Browser("the page did not finish loading".to_string())),
        Err(e) => return Err(browser_failure(e)),
    }
    // The main document's final response (redirects do not produce one) carries the status.
    let mut status = None;
    while let Some(Some(event)) = responses.next().now_or_never() {
        if event.r#type == ResourceType::Document && (main_frame.is_none() || event.frame_id == main_frame) {
            status = Some(event.response.status);
        }
    }
    if let Some(status) = status.filter(|s| *s >= 400) {
        return Ok(Visit::HttpError(status));
    }
    // Read the page in an isolated world: the page's own scripts cannot tamper with the extraction code there.
    let mut evaluate = EvaluateParams::new(EXTRACT_JS);
    evaluate.context_id = page.secondary_execution_context().await.ok().flatten();
    evaluate.return_by_value = Some(true);
    match guard.run(page.evaluate_expression(evaluate)).await {
        Ok(result) => {
            let json: String = result
                .into_value()
                .map_err(|e| VisitError::Page(format!("could not read the page: unexpected result ({e})")))?;
            let page: RawPage = serde_json::from_str(&json)
                .map_err(|e| VisitError::Page(format!("could not read the page: unexpected result ({e})")))?;
            Ok(Visit::Page(page))
        }
        Err(CdpError::JavascriptException(e)) => {
            Err(VisitError::Page(format!("could not read the page: script error ({})", e.text)))
        }
        Err(e) => Err(browser_failure(e)),
    }
}

/// Declares an inline (`data:`) favicon as soon as the document has a `<head>`.
const NO_FAVICON_JS: &str = include_str!("no_favicon.js");

/// What the extraction script returns.
#[derive(Debug, Deserialize)]
pub(super) struct RawPage {
    pub(super) url: String,
    pub(super) links: Vec<String>,
    pub(super) nofollow: bool,
    pub(super) candidates: Vec<RawCandidate>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawCandidate {
    media_url: String,
    title: String,
    description: String,
    tags: Vec<String>,
    duration: String,
    /// License declarations that apply to this video, most specific first.
    licenses: Vec<RawLicense>,
}

/// Reads a page in one go and returns JSON: candidate videos with their metadata, the page's links, and whether the
/// page asks robots not to follow them. Candidates come from `<video>` (its `src`, else the best `<source>`),
/// `og:video*`, JSON-LD `VideoObject`s and `<a href>` links to media files, merged by absolute URL.
///
/// License links (`rel=license`) are attributed by document structure: each belongs to the video(s) it shares the
/// deepest common ancestor with, so a link inside a video's `<figure>` or `<article>` applies to that video only and
/// a footer link applies to all of them.
const EXTRACT_JS: &str = include_str!("extract.js");

/// Turns what a page declared into a [`Found`], normalizing URL, title, tags, duration and license.
pub(super) fn to_found(page_url: &str, raw: RawCandidate) -> Option<Found> {
    let mut media = Url::parse(&raw.media_url).ok()?;
    if !matches!(media.scheme(), "http" | "https") {
        return None;
    }
    media.set_fragment(None);
    let title = match raw.title.trim() {
        "" => file_name(&media),
        title => title.to_string(),
    };
    let (license, license_url) = resolve_license(&raw.licenses);
    Some(Found {
        page_url: page_url.to_string(),
        media_url: media.to_string(),
        title,
        description: raw.description.trim().to_string(),
        tags: clean_tags(raw.tags),
        duration_s: parse_duration(&raw.duration),
        license,
        license_url,
    })
}

fn file_name(url: &Url) -> String {
    url.path_segments().and_then(|mut segments| segments.next_back()).unwrap_or_default().to_string()
}

/// Trimmed, without empties or case-insensitive duplicates, at most 32.
fn clean_tags(tags: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    tags.into_iter()
        .map(|tag| tag.trim().to_string())
        .filter(|tag| !tag.is_empty() && seen.insert(tag.to_lowercase()))
        .take(32)
        .collect()
}

/// Seconds from an ISO-8601 duration (`PT1M30S`, `P1DT2H`, `PT4.5S`), plain seconds (`90`) or `h:mm:ss`.
pub fn parse_duration(raw: &str) -> Option<f64> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    let seconds = if let Ok(plain) = raw.parse::<f64>() {
        plain
    } else if raw.contains(':') {
        raw.split(':').try_fold(0.0, |acc, part| part.trim().parse::<f64>().ok().map(|v| acc * 60.0 + v))?
    } else {
        let upper = raw.to_ascii_uppercase();
        let rest = upper.strip_prefix('P')?;
        let (date, time) = rest.split_once('T').unwrap_or((rest, ""));
        let date_units: &[(char, f64)] =
            &[('Y', 365.0 * 86400.0), ('M', 30.0 * 86400.0), ('W', 7.0 * 86400.0), ('D', 86400.0)];
        let time_units: &[(char, f64)] = &[('H', 3600.0), ('M', 60.0), ('S', 1.0)];
        iso_part(date, date_units)? + iso_part(time, time_units)?
    };
    (seconds.is_finite() && seconds > 0.0).then_some(seconds)
}

/// Sums `<number><unit>` pairs; `None` on anything else.
fn iso_part(part: &str, units: &[(char, f64)]) -> Option<f64> {
    let mut total = 0.0;
    let mut number = String::new();
    for c in part.chars() {
        if c.is_ascii_digit() || c == '.' || c == ',' {
            number.push(if c == ',' { '.' } else { c });
        } else {
            let (_, scale) = units.iter().find(|(unit, _)| *unit == c)?;
            total += number.parse::<f64>().ok()? * scale;
            number.clear();
        }
    }
    number.is_empty().then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_parsed() {
        let cases = [
            ("PT1M30S", Some(90.0)),
            ("PT1H2M3.5S", Some(3723.5)),
            ("P1DT1S", Some(86401.0)),
            ("pt45s", Some(45.0)),
            ("90", Some(90.0)),
            ("1:02:03", Some(3723.0)),
            ("PT0S", None),
            ("PT1X", None),
            ("soon", None),
            ("", None),
        ];
        for (raw, expected) in cases {
            assert_eq!(parse_duration(raw), expected, "{raw}");
        }
    }
}
