//! Play-before-download: the browser plays a media URL for a moment, so nothing is downloaded that will not play.
//!
//! The probe runs in a blank tab whose only requests are the media (and its redirects), through the request guard:
//! robots.txt and the pacing apply. What the `<video>` element reports (`probe.js`) and what the network said are
//! turned into a [`PlayProbe`] with a reason a human can act on.

use std::time::Duration;

use chromiumoxide::cdp::browser_protocol::network::{EventLoadingFailed, EventResponseReceivedExtraInfo, ResourceType};
use chromiumoxide::cdp::js_protocol::runtime::EvaluateParams;
use chromiumoxide::error::CdpError;
use chromiumoxide::Page;
use futures_util::{FutureExt, StreamExt};
use serde::Deserialize;
use url::Url;

use super::request_guard::RequestGuard;
use super::{secs, PlayProbe};
use crate::curator::politeness::Politeness;

/// play_probe: how long to wait for `loadedmetadata`.
pub(super) const METADATA_TIMEOUT: Duration = Duration::from_secs(15);
/// play_probe: how long to wait for `play()` to start once metadata is there.
pub(super) const PLAY_START_TIMEOUT: Duration = Duration::from_secs(5);
/// play_probe: how long to let the video play.
pub(super) const PLAY_WINDOW: Duration = Duration::from_secs(2);
/// play_probe: the playhead must move at least this far in [`PLAY_WINDOW`].
const MIN_ADVANCE_S: f64 = 0.5;

/// Plays a URL in a muted, autoplaying `<video>` and reports what happened, as JSON. Called with the URL and the
/// metadata, play-start and play-window timeouts in milliseconds.
const PROBE_JS: &str = include_str!("probe.js");

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawProbe {
    stage: String,
    width: u32,
    height: u32,
    duration: Option<f64>,
    error_code: u32,
    error_message: String,
    advanced: f64,
    ended: bool,
    play_error: String,
}

/// What the network said about the media request, to explain a failure.
#[derive(Debug, Default)]
struct MediaHttp {
    status: Option<i64>,
    failure: Option<String>,
}

pub(super) async fn play_in(
    page: &Page,
    url: &Url,
    robots: &Politeness,
    min_gap: Duration,
) -> Result<PlayProbe, String> {
    // The blank tab requests nothing but the media (and its redirects), so every response status seen here is the
    // media's. The "extra info" event also reports responses the browser then refuses to hand to the page (an HTML
    // error page is blocked as "not media" before the page sees it).
    let mut responses = page.event_listener::<EventResponseReceivedExtraInfo>().await.map_err(|e| e.to_string())?;
    let mut failures = page.event_listener::<EventLoadingFailed>().await.map_err(|e| e.to_string())?;
    let mut guard =
        RequestGuard::install(page, robots, ResourceType::Media, &[], min_gap).await.map_err(|e| e.to_string())?;
    let json_url = serde_json::to_string(url.as_str()).map_err(|e| e.to_string())?;
    let expression = format!(
        "({PROBE_JS})({json_url}, {}, {}, {})",
        METADATA_TIMEOUT.as_millis(),
        PLAY_START_TIMEOUT.as_millis(),
        PLAY_WINDOW.as_millis()
    );
    let mut evaluate = EvaluateParams::new(expression);
    evaluate.await_promise = Some(true);
    evaluate.return_by_value = Some(true);
    let result = match guard.run(page.evaluate_expression(evaluate)).await {
        Ok(result) => result,
        Err(CdpError::JavascriptException(e)) => {
            return Ok(PlayProbe::failed(format!("probe script error ({})", e.text)))
        }
        Err(e) => return Err(e.to_string()),
    };
    let json: String = result.into_value().map_err(|e| format!("unexpected probe result ({e})"))?;
    let raw: RawProbe = serde_json::from_str(&json).map_err(|e| format!("unexpected probe result ({e})"))?;
    if let Some(refusal) = guard.refusal() {
        return Ok(PlayProbe::failed(refusal));
    }
    let mut http = MediaHttp::default();
    while let Some(Some(event)) = responses.next().now_or_never() {
        http.status = Some(event.status_code);
    }
    while let Some(Some(event)) = failures.next().now_or_never() {
        if event.r#type == ResourceType::Media && event.canceled != Some(true) {
            http.failure = Some(event.error_text.clone());
        }
    }
    Ok(interpret_probe(&raw, &http))
}

fn interpret_probe(raw: &RawProbe, http: &MediaHttp) -> PlayProbe {
    let mut probe = PlayProbe {
        playable: false,
        width: raw.width,
        height: raw.height,
        duration_s: raw.duration.filter(|d| d.is_finite() && *d > 0.0),
        advanced_s: raw.advanced.max(0.0),
        error: None,
    };
    let network = || match (http.status.filter(|s| *s >= 400), &http.failure) {
        (Some(status), _) => format!("network error (HTTP {status})"),
        (None, Some(failure)) if failure.contains("ERR_BLOCKED_BY_ORB") => {
            "the server did not send a video (the browser blocked the response as not media)".to_string()
        }
        (None, Some(failure)) => format!("network error ({failure})"),
        (None, None) => "network error".to_string(),
    };
    let detail = if raw.error_message.is_empty() { String::new() } else { format!(" ({})", raw.error_message) };
    let error = if raw.error_code != 0 {
        // HTMLMediaElement error codes; Chromium reports a failed HTTP request as "source not supported", so the
        // network events decide between the two.
        Some(match raw.error_code {
            1 => "the browser cannot play it: loading was aborted".to_string(),
            2 => format!("the browser cannot play it: {}", network()),
            3 => format!("the browser cannot play it: decode error{detail}"),
            _ if http.status.is_some_and(|s| s >= 400) || http.failure.is_some() => {
                format!("the browser cannot play it: {}", network())
            }
            _ => format!("the browser cannot play it: format not supported{detail}"),
        })
    } else if raw.stage == "timeout" {
        Some(format!("no metadata within {}", secs(METADATA_TIMEOUT)))
    } else if raw.stage != "played" {
        Some(format!("the browser cannot play it ({})", raw.stage))
    } else if raw.width == 0 || raw.height == 0 {
        Some("the browser cannot play it: no video track".to_string())
    } else if !raw.play_error.is_empty() {
        Some(format!("the browser would not play it ({})", raw.play_error))
    } else if raw.advanced < MIN_ADVANCE_S && !raw.ended {
        Some(format!("playback stalled: {:.1} s played in {}", raw.advanced.max(0.0), secs(PLAY_WINDOW)))
    } else {
        None
    };
    probe.playable = error.is_none();
    probe.error = error;
    probe
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::curator::browser::test_support::{init_tracing, options, politeness};
    use crate::curator::browser::Browser;
    use vvtv_testkit::media::test_video;
    use vvtv_testkit::site::Site;

    #[test]
    fn probe_failures_are_explained() {
        let raw = |code: u32| RawProbe { stage: "error".into(), error_code: code, ..RawProbe::default() };
        let not_found = MediaHttp { status: Some(404), failure: None };
        let probe = interpret_probe(&raw(4), &not_found);
        assert_eq!(probe.error.as_deref(), Some("the browser cannot play it: network error (HTTP 404)"));
        let probe = interpret_probe(&raw(4), &MediaHttp { status: Some(200), failure: None });
        assert!(probe.error.as_deref().is_some_and(|e| e.contains("format not supported")), "{probe:?}");
        let timeout = RawProbe { stage: "timeout".into(), ..RawProbe::default() };
        assert_eq!(interpret_probe(&timeout, &MediaHttp::default()).error.as_deref(), Some("no metadata within 15 s"));
        let stalled = RawProbe { stage: "played".into(), width: 2, height: 2, advanced: 0.1, ..RawProbe::default() };
        assert!(interpret_probe(&stalled, &MediaHttp::default()).error.is_some_and(|e| e.contains("stalled")));
        let good = RawProbe {
            stage: "played".into(),
            width: 640,
            height: 360,
            duration: Some(f64::INFINITY),
            advanced: 2.0,
            ..RawProbe::default()
        };
        let probe = interpret_probe(&good, &MediaHttp::default());
        assert!(probe.playable && probe.error.is_none() && probe.duration_s.is_none(), "{probe:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn play_probe_reports_what_the_browser_can_play() {
        init_tracing();
        let media = tempfile::tempdir().expect("temp dir");
        let noise: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let site = Site::builder()
            .robots(200, "User-agent: *\nDisallow: /private/\n")
            .video("/media/good.mp4", test_video(&media.path().join("good.mp4"), (1280, 720), 3, "smpte"))
            .video("/media/low.mp4", test_video(&media.path().join("low.mp4"), (320, 240), 3, "smpte"))
            .video("/media/broken.mp4", noise)
            .video("/private/clip.mp4", Vec::new())
            .redirect("/media/moved.mp4", "/private/clip.mp4")
            .start();
        let base = site.base();
        let robots = politeness();
        let mut browser = Browser::launch(&options(Duration::from_secs(30))).await.expect("Chromium starts");

        let good = browser.play_probe(&format!("{base}/media/good.mp4"), &robots).await;
        assert!(good.playable, "{good:?}");
        assert_eq!((good.width, good.height), (1280, 720));
        assert!(good.duration_s.is_some_and(|d| (d - 3.0).abs() < 0.2), "{good:?}");
        assert!(good.advanced_s > MIN_ADVANCE_S, "{good:?}");

        let low = browser.play_probe(&format!("{base}/media/low.mp4"), &robots).await;
        assert!(low.playable, "{low:?}");
        assert_eq!((low.width, low.height), (320, 240));

        let broken = browser.play_probe(&format!("{base}/media/broken.mp4"), &robots).await;
        assert!(!broken.playable, "{broken:?}");
        let reason = broken.error.clone().unwrap_or_default();
        assert!(reason.starts_with("the browser cannot play it"), "{reason}");
        eprintln!("good: {good:?}\nlow: {low:?}\nbroken: {broken:?}");

        let missing = browser.play_probe(&format!("{base}/media/missing.mp4"), &robots).await;
        assert!(!missing.playable);
        assert_eq!(missing.error.as_deref(), Some("the browser cannot play it: network error (HTTP 404)"));

        let private = browser.play_probe(&format!("{base}/private/clip.mp4"), &robots).await;
        assert_eq!(private.error.as_deref(), Some("disallowed by robots.txt"));
        let moved = browser.play_probe(&format!("{base}/media/moved.mp4"), &robots).await;
        let expected = format!("redirected to {base}/private/clip.mp4, which is disallowed by robots.txt");
        assert_eq!(moved.error, Some(expected));
        let not_web = browser.play_probe("file:///etc/passwd", &robots).await;
        assert!(!not_web.playable);

        let paths = site.paths();
        assert!(!paths.iter().any(|p| p.starts_with("/private/")), "{paths:?}");
        browser.close().await;
    }
}
