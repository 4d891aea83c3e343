//! Posters: a representative frame of an asset as a 1280x720 JPEG and a 320x180 thumbnail, for the player page, the
//! EPG and the API. Black and flat frames (fades, title cards on black) are skipped.

use crate::media::error::MediaError;
use crate::media::pipeline::{bus_error, init, launch, Inputs, PipelineError};
use gst::prelude::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const POSTER_FILE: &str = "poster.jpg";
pub const THUMB_FILE: &str = "poster_thumb.jpg";
const POSTER_SIZE: (u32, u32) = (1280, 720);
const THUMB_SIZE: (u32, u32) = (320, 180);
/// Where to look, as fractions of the duration; the first frame that is neither dark nor flat wins.
const CANDIDATES: [f64; 7] = [0.2, 0.33, 0.5, 0.1, 0.66, 0.8, 0.05];
const TIMEOUT: Duration = Duration::from_secs(30);

/// Where an asset's poster and thumbnail live.
pub fn poster_paths(asset_dir: &Path) -> (PathBuf, PathBuf) {
    (asset_dir.join(POSTER_FILE), asset_dir.join(THUMB_FILE))
}

/// Writes `poster.jpg` and `poster_thumb.jpg` into `dir` from the video `video` (an MP4 rendition) of `duration`.
pub fn make_posters(video: &Path, duration: Duration, dir: &Path) -> Result<(), MediaError> {
    let what = format!("poster of {}", video.display());
    init(&what)?;
    let sample = pick_frame(video, duration, &what)?;
    let (poster, thumb) = poster_paths(dir);
    for (path, (w, h)) in [(poster, POSTER_SIZE), (thumb, THUMB_SIZE)] {
        let caps = gst::Caps::builder("image/jpeg").field("width", w as i32).field("height", h as i32).build();
        let jpeg = gst_video::convert_sample(&sample, &caps, Some(gst::ClockTime::from_seconds(10)))
            .map_err(|e| build_error(&what, format!("cannot encode JPEG: {e}")))?;
        let buffer = jpeg
            .buffer()
            .ok_or_else(|| build_error(&what, "empty JPEG".into()))?
            .map_readable()
            .map_err(|e| build_error(&what, e.to_string()))?;
        let part = path.with_extension("jpg.part");
        std::fs::write(&part, buffer.as_slice()).map_err(|source| MediaError::io(&what, &part, source))?;
        std::fs::rename(&part, &path).map_err(|source| MediaError::io(&what, &path, source))?;
    }
    Ok(())
}

/// A stand-in poster (colour bars, 1280x720) for when not even the slate has one.
pub fn fallback_jpeg() -> Result<Vec<u8>, MediaError> {
    let what = "fallback poster";
    init(what)?;
    let failed = |reason: String| build_error(what, reason);
    let pipeline = launch(
        what,
        &format!(
            "videotestsrc pattern=smpte num-buffers=1 ! video/x-raw,format=RGB,width={},height={} ! appsink name=sink",
            POSTER_SIZE.0, POSTER_SIZE.1
        ),
    )?;
    let sink = pipeline
        .by_name("sink")
        .and_then(|s| s.downcast::<gst_app::AppSink>().ok())
        .ok_or_else(|| failed("no appsink".into()))?;
    preroll(&pipeline, what, &Inputs::none())?;
    let sample = sink.pull_preroll().map_err(|e| failed(e.to_string()));
    let _ = pipeline.set_state(gst::State::Null);
    let caps = gst::Caps::builder("image/jpeg").build();
    let jpeg = gst_video::convert_sample(&sample?, &caps, Some(gst::ClockTime::from_seconds(10)))
        .map_err(|e| failed(e.to_string()))?;
    let map = jpeg.buffer().ok_or_else(|| failed("empty".into()))?.map_readable().map_err(|e| failed(e.to_string()))?;
    Ok(map.as_slice().to_vec())
}

/// Seeks to each candidate position and keeps the first frame worth showing (else the liveliest one seen).
fn pick_frame(video: &Path, duration: Duration, what: &str) -> Result<gst::Sample, MediaError> {
    let pipeline_error = |reason: String| build_error(what, reason);
    let pipeline = launch(
        what,
        &format!(
            "filesrc name=src ! decodebin name=dec ! videoconvert ! videoscale add-borders=true ! \
             video/x-raw,format=RGB,width={},height={},pixel-aspect-ratio=1/1 ! appsink name=sink sync=false",
            POSTER_SIZE.0, POSTER_SIZE.1
        ),
    )?;
    let by_name = |name: &str| pipeline.by_name(name).ok_or_else(|| pipeline_error(format!("no {name}")));
    let src = by_name("src")?;
    src.set_property("location", video);
    // The rendition's reader and decodebin (with what it adds) read the input.
    let inputs = Inputs::new([src, by_name("dec")?]);
    let sink = pipeline
        .by_name("sink")
        .and_then(|s| s.downcast::<gst_app::AppSink>().ok())
        .ok_or_else(|| pipeline_error("no appsink".into()))?;

    let result = (|| {
        preroll(&pipeline, what, &inputs)?;
        let mut best: Option<(f64, gst::Sample)> = None;
        for fraction in CANDIDATES {
            let at = gst::ClockTime::from_nseconds((duration.as_nanos() as f64 * fraction) as u64);
            if pipeline.seek_simple(gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE, at).is_err() {
                continue;
            }
            preroll(&pipeline, what, &inputs)?;
            let Some(sample) = sink.pull_preroll().ok() else { continue };
            let (mean, spread) = luma_stats(&sample).unwrap_or((0.0, 0.0));
            if (32.0..=224.0).contains(&mean) && spread >= 24.0 {
                return Ok(sample);
            }
            if best.as_ref().is_none_or(|(s, _)| spread > *s) {
                best = Some((spread, sample));
            }
        }
        best.map(|(_, s)| s).ok_or_else(|| pipeline_error("no frame could be decoded".into()))
    })();
    let _ = pipeline.set_state(gst::State::Null);
    result
}

/// Pauses the pipeline (or, after a flushing seek, waits for it) until a frame is prerolled.
fn preroll(pipeline: &gst::Pipeline, what: &str, inputs: &Inputs) -> Result<(), MediaError> {
    let failed = |reason: String| build_error(what, reason);
    pipeline.set_state(gst::State::Paused).map_err(|e| failed(format!("cannot pause: {e}")))?;
    let bus = pipeline.bus().ok_or_else(|| failed("no bus".into()))?;
    let timeout = gst::ClockTime::from_nseconds(TIMEOUT.as_nanos() as u64);
    match bus.timed_pop_filtered(timeout, &[gst::MessageType::AsyncDone, gst::MessageType::Error]) {
        Some(msg) => match bus_error(&msg, inputs) {
            Some(failure) => Err(PipelineError::Element { what: what.to_owned(), failure }.into()),
            None => Ok(()),
        },
        None => Err(failed(format!("no frame within {} s", TIMEOUT.as_secs()))),
    }
}

fn build_error(what: &str, reason: String) -> MediaError {
    PipelineError::Build { what: what.to_owned(), reason }.into()
}

/// Mean and standard deviation of the luma of an RGB frame, on a sparse grid (enough to tell black or flat).
fn luma_stats(sample: &gst::Sample) -> Option<(f64, f64)> {
    let caps = sample.caps()?;
    let info = gst_video::VideoInfo::from_caps(caps).ok()?;
    let map = sample.buffer()?.map_readable().ok()?;
    let data = map.as_slice();
    let stride = info.stride()[0] as usize;
    let (mut n, mut sum, mut sum2) = (0f64, 0f64, 0f64);
    for y in (0..info.height() as usize).step_by(8) {
        for x in (0..info.width() as usize).step_by(8) {
            let i = y * stride + x * 3;
            let Some(px) = data.get(i..i + 3) else { continue };
            let l = 0.2126 * px[0] as f64 + 0.7152 * px[1] as f64 + 0.0722 * px[2] as f64;
            n += 1.0;
            sum += l;
            sum2 += l * l;
        }
    }
    (n > 0.0).then(|| {
        let mean = sum / n;
        (mean, (sum2 / n - mean * mean).max(0.0).sqrt())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1 s of black, then 1 s of colour bars, then 1 s of black, as an H.264 MP4.
    fn black_bars_black(path: &Path) {
        vvtv_testkit::media::launch(&format!(
            "concat name=c ! videoconvert ! x264enc key-int-max=10 ! mp4mux ! filesink location={} \
             videotestsrc pattern=black num-buffers=30 ! video/x-raw,width=640,height=360,framerate=30/1 ! c. \
             videotestsrc pattern=smpte num-buffers=30 ! video/x-raw,width=640,height=360,framerate=30/1 ! c. \
             videotestsrc pattern=black num-buffers=30 ! video/x-raw,width=640,height=360,framerate=30/1 ! c.",
            path.display()
        ))
        .expect("black, bars, black");
    }

    #[test]
    fn poster_skips_black_frames_and_has_the_right_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let video = dir.path().join("v.mp4");
        black_bars_black(&video);
        make_posters(&video, Duration::from_secs(3), dir.path()).unwrap();
        let (poster, thumb) = poster_paths(dir.path());
        for (path, size) in [(&poster, "1280x720"), (&thumb, "320x180")] {
            let out = std::process::Command::new("ffprobe")
                .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=codec_name,width,height"])
                .args(["-of", "csv=p=0"])
                .arg(path)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert_eq!(text.trim(), format!("mjpeg,{}", size.replace('x', ",")), "{}", path.display());
        }
        // The chosen frame is the bars, not black: decode the poster and look at its brightness.
        let out = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(&poster)
            .args(["-vf", "scale=64:36,format=gray", "-f", "rawvideo", "-"])
            .output()
            .unwrap();
        let mean = out.stdout.iter().map(|&b| b as f64).sum::<f64>() / out.stdout.len().max(1) as f64;
        assert!(mean > 60.0, "poster looks black (mean luma {mean:.1})");
    }
}
