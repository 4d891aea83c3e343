//! Probing a source with GStreamer's Discoverer before anything is encoded: what it holds (the facts stored on the
//! asset), and whether the station will take it, with a reason a human understands when it will not.

use super::pipeline;
use crate::config::FactoryConfig;
use gst_pbutils::prelude::*;
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// How long the Discoverer may take to preroll one file.
const DISCOVER_TIMEOUT: Duration = Duration::from_secs(60);

/// What a source holds: stored on the asset as `source_facts`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Facts {
    pub container: Option<String>,
    pub duration_s: f64,
    pub video: VideoFacts,
    pub audio: Option<AudioFacts>,
    pub size_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VideoFacts {
    pub codec: String,
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    pub interlaced: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AudioFacts {
    pub codec: String,
    pub channels: u32,
    pub rate: u32,
}

/// Why a source was not probed into facts.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The station will not take this source; the text is the reason, for humans.
    #[error("{0}")]
    Rejected(String),
    /// Something went wrong on our side (GStreamer could not start); worth retrying.
    #[error("probe failed: {0}")]
    Failed(String),
}

/// Probes `path` and applies the factory's acceptance rules (video present, duration and height limits).
pub fn probe(path: &Path, rules: &FactoryConfig) -> Result<Facts, ProbeError> {
    let facts = discover(path)?;
    accept(&facts, rules).map_err(ProbeError::Rejected)?;
    Ok(facts)
}

/// What the Discoverer finds, or why it cannot read the file.
pub fn discover(path: &Path) -> Result<Facts, ProbeError> {
    let size_bytes =
        std::fs::metadata(path).map_err(|e| ProbeError::Rejected(format!("cannot read the file: {e}")))?.len();
    if size_bytes == 0 {
        return Err(ProbeError::Rejected("the file is empty (0 bytes)".into()));
    }
    pipeline::init(&format!("probe {}", path.display())).map_err(|e| ProbeError::Failed(e.to_string()))?;
    let absolute = std::path::absolute(path).map_err(|e| ProbeError::Failed(e.to_string()))?;
    let uri = gst::glib::filename_to_uri(&absolute, None)
        .map_err(|e| ProbeError::Failed(format!("cannot make a URI of {}: {e}", absolute.display())))?;
    let discoverer = gst_pbutils::Discoverer::new(gst::ClockTime::from_nseconds(DISCOVER_TIMEOUT.as_nanos() as u64))
        .map_err(|e| ProbeError::Failed(format!("cannot start the Discoverer: {e}")))?;
    let info = match discoverer.discover_uri(&uri) {
        Ok(info) => info,
        Err(e) => return Err(ProbeError::Rejected(unreadable(&e.to_string()))),
    };
    match info.result() {
        gst_pbutils::DiscovererResult::Ok => {}
        gst_pbutils::DiscovererResult::MissingPlugins => {
            let missing =
                info.missing_elements_installer_details().iter().map(|d| describe_missing(d)).collect::<Vec<_>>();
            return Err(ProbeError::Rejected(format!(
                "cannot be decoded here: no decoder for {}",
                if missing.is_empty() { "one of its streams".into() } else { missing.join(", ") }
            )));
        }
        gst_pbutils::DiscovererResult::Timeout => {
            return Err(ProbeError::Rejected(format!(
                "could not be read within {} s (corrupt or not a media file)",
                DISCOVER_TIMEOUT.as_secs()
            )))
        }
        other => return Err(ProbeError::Rejected(unreadable(&format!("{other:?}")))),
    }

    let container = info.container_streams().first().and_then(|c| c.caps()).map(|c| codec_name(&c));
    let duration_s = info.duration().map(|d| d.nseconds() as f64 / 1e9).unwrap_or(0.0);
    let video = info.video_streams().into_iter().find(|v| !v.is_image() || info.video_streams().len() == 1);
    let audio = info.audio_streams().into_iter().next().map(|a| AudioFacts {
        codec: a.caps().map(|c| codec_name(&c)).unwrap_or_default(),
        channels: a.channels(),
        rate: a.sample_rate(),
    });
    let Some(v) = video else {
        return Err(ProbeError::Rejected(match audio {
            Some(_) => "it has audio but no video: audio-only files are not aired".into(),
            None => "it has no video stream".into(),
        }));
    };
    if v.is_image() {
        return Err(ProbeError::Rejected("it is a still image, not a video".into()));
    }
    let fps = v.framerate();
    let video = VideoFacts {
        codec: v.caps().map(|c| codec_name(&c)).unwrap_or_default(),
        width: v.width(),
        height: v.height(),
        fps: if fps.denom() > 0 { fps.numer() as f64 / fps.denom() as f64 } else { 0.0 },
        interlaced: v.is_interlaced(),
    };
    Ok(Facts { container, duration_s, video, audio, size_bytes })
}

/// The factory's rules: the reason for refusing, or Ok.
pub fn accept(facts: &Facts, rules: &FactoryConfig) -> Result<(), String> {
    let d = facts.duration_s;
    if d <= 0.0 {
        return Err("its duration cannot be determined (a live stream or a damaged file)".into());
    }
    if d < rules.min_duration_seconds as f64 {
        return Err(format!(
            "{d:.1} s long, shorter than the minimum of {} s (factory.min_duration_seconds)",
            rules.min_duration_seconds
        ));
    }
    if d > rules.max_duration_seconds as f64 {
        return Err(format!(
            "{} long, longer than the maximum of {} (factory.max_duration_seconds)",
            hms(d),
            hms(rules.max_duration_seconds as f64)
        ));
    }
    if facts.video.height < rules.min_height {
        return Err(format!(
            "{}x{} is below the minimum height of {} lines (factory.min_height): the station airs HD",
            facts.video.width, facts.video.height, rules.min_height
        ));
    }
    Ok(())
}

fn hms(seconds: f64) -> String {
    let s = seconds.round() as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// A codec or container as a short human name: `video/x-h264` → `h264`, `audio/mpeg` v4 → `aac`.
fn codec_name(caps: &gst::Caps) -> String {
    let Some(s) = caps.structure(0) else { return "unknown".into() };
    let name = s.name().as_str();
    match name {
        "audio/mpeg" => match s.get::<i32>("mpegversion") {
            Ok(1) => "mp3".into(),
            _ => "aac".into(),
        },
        "video/quicktime" => "mp4".into(),
        "video/mpeg" => match s.get::<i32>("mpegversion") {
            Ok(4) => "mpeg4".into(),
            Ok(v) => format!("mpeg{v}"),
            Err(_) => "mpeg".into(),
        },
        other => other.rsplit('/').next().unwrap_or(other).trim_start_matches("x-").to_owned(),
    }
}

/// The Discoverer's error as a reason: it says "Could not determine type of stream." for non-media and mentions
/// the demuxer for broken files.
fn unreadable(detail: &str) -> String {
    let lower = detail.to_lowercase();
    if lower.contains("could not determine type") {
        "not a media file GStreamer can read (its type cannot be determined)".into()
    } else if lower.contains("no playable streams") {
        "corrupt or incomplete: it contains no playable streams (a cut-off MP4 loses its index)".into()
    } else {
        format!("corrupt or undecodable: {}", detail.trim().trim_end_matches('.'))
    }
}

/// A missing-plugin installer detail (`gstreamer|1.0|vvtv|H.265 decoder|decoder-video/x-h265…`) → `H.265 decoder`.
fn describe_missing(detail: &str) -> String {
    detail.split('|').nth(3).unwrap_or(detail).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vvtv_testkit::media::{launch, render};

    fn facts(height: u32, duration_s: f64) -> Facts {
        Facts {
            container: Some("mp4".into()),
            duration_s,
            video: VideoFacts { codec: "h264".into(), width: height * 16 / 9, height, fps: 30.0, interlaced: false },
            audio: None,
            size_bytes: 1,
        }
    }

    #[test]
    fn rules_give_reasons_naming_the_limit() {
        let rules = FactoryConfig::default();
        assert!(accept(&facts(1080, 60.0), &rules).is_ok());
        let low = accept(&facts(360, 60.0), &rules).unwrap_err();
        assert!(low.contains("640x360") && low.contains("720"), "{low}");
        let short = accept(&facts(1080, 2.0), &rules).unwrap_err();
        assert!(short.contains("2.0 s") && short.contains("min_duration"), "{short}");
        let long = accept(&facts(1080, 5.0 * 3600.0), &rules).unwrap_err();
        assert!(long.contains("5:00:00") && long.contains("4:00:00"), "{long}");
        assert!(accept(&facts(1080, 0.0), &rules).unwrap_err().contains("duration"));
    }

    #[test]
    fn files_that_are_not_video_are_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.mp4");
        std::fs::write(&empty, b"").unwrap();
        assert!(discover(&empty).unwrap_err().to_string().contains("empty"));

        let html = dir.path().join("page.mp4");
        std::fs::write(&html, b"<!doctype html><html><body>nothing to see</body></html>\n".repeat(40)).unwrap();
        let err = discover(&html).unwrap_err();
        assert!(matches!(err, ProbeError::Rejected(_)), "{err}");

        let audio = dir.path().join("tone.m4a");
        render("audiotestsrc num-buffers=100 ! audioconvert ! avenc_aac ! mp4mux", &audio).unwrap();
        let err = discover(&audio).unwrap_err().to_string();
        assert!(err.contains("audio-only"), "{err}");
    }

    #[test]
    fn a_video_file_is_described() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("v.mkv");
        launch(&format!(
            "videotestsrc num-buffers=50 ! video/x-raw,width=320,height=240,framerate=25/1 ! x264enc ! \
             matroskamux name=m ! filesink location={} \
             audiotestsrc num-buffers=90 ! audio/x-raw,rate=44100,channels=1 ! vorbisenc ! m.",
            file.display()
        ))
        .unwrap();
        let f = discover(&file).unwrap();
        assert_eq!((f.video.width, f.video.height, f.video.codec.as_str()), (320, 240, "h264"));
        assert!((f.video.fps - 25.0).abs() < 0.01, "{}", f.video.fps);
        assert!((f.duration_s - 2.0).abs() < 0.2, "{}", f.duration_s);
        let a = f.audio.expect("audio");
        assert_eq!((a.channels, a.rate, a.codec.as_str()), (1, 44100, "vorbis"));
    }
}
