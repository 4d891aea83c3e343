//! The media generator: test media is made by GStreamer's own `gst-launch-1.0` (videotestsrc, audiotestsrc), never
//! downloaded.
//!
//! [`launch`] runs any gst-launch description to its end; [`render`] runs a description that ends in raw or encoded
//! data into a file. The named helpers make the clips several tests share: [`test_video`] (an H.264/AAC MP4 at a
//! given size and length) and [`aac_in_mp4`] (a PCM file wrapped in AAC the way the house encoder reads audio).
//! [`command`] gives the process itself, for a caller that measures a pipeline while it runs.
//!
//! Descriptions are split on whitespace into arguments, as a shell would: paths in them must not contain spaces.

use std::io;
use std::path::Path;
use std::process::Command;

/// `gst-launch-1.0 -q -e DESCRIPTION`, not started yet.
pub fn command(description: &str) -> Command {
    let mut command = Command::new("gst-launch-1.0");
    command.args(["-q", "-e"]).args(description.split_whitespace());
    command
}

/// Runs a gst-launch description until it ends; an error names the description.
pub fn launch(description: &str) -> io::Result<()> {
    let status = command(description)
        .status()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run gst-launch-1.0 (gstreamer1.0-tools): {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("gst-launch-1.0 {description}: {status}")))
    }
}

/// Runs `pipeline ! filesink location=PATH`.
pub fn render(pipeline: &str, path: &Path) -> io::Result<()> {
    launch(&format!("{pipeline} ! filesink location={}", path.display()))
}

/// A `seconds` long H.264/AAC MP4 at `width`x`height`, 30 fps, a keyframe every second, showing videotestsrc's
/// `pattern` over a sine tone; written to `path` and returned.
///
/// Panics when it cannot be made: a test cannot go on without its media.
pub fn test_video(path: &Path, (width, height): (u32, u32), seconds: u32, pattern: &str) -> Vec<u8> {
    let description = format!(
        "videotestsrc pattern={pattern} num-buffers={frames} ! \
         video/x-raw,format=I420,width={width},height={height},framerate=30/1 ! \
         x264enc speed-preset=ultrafast key-int-max=30 ! h264parse ! mp4mux name=m faststart=true ! \
         filesink location={out} \
         audiotestsrc wave=sine num-buffers={buffers} samplesperbuffer=1024 ! audio/x-raw,rate=48000,channels=2 ! \
         audioconvert ! avenc_aac ! aacparse ! m.",
        frames = seconds * 30,
        buffers = seconds * 48000 / 1024 + 1,
        out = path.display(),
    );
    launch(&description).unwrap_or_else(|e| panic!("could not make {}: {e}", path.display()));
    std::fs::read(path).unwrap_or_else(|e| panic!("read the generated video {}: {e}", path.display()))
}

/// Wraps a raw PCM file (interleaved F32LE stereo at 48 kHz) into AAC in MP4, the way the house encoder reads audio.
pub fn aac_in_mp4(pcm: &Path, mp4: &Path) -> io::Result<()> {
    launch(&format!(
        "filesrc location={} ! rawaudioparse format=pcm pcm-format=f32le sample-rate=48000 num-channels=2 ! \
         audioconvert ! avenc_aac bitrate=128000 ! mp4mux ! filesink location={}",
        pcm.display(),
        mp4.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_video_is_an_mp4_of_the_asked_length() {
        let dir = tempfile::tempdir().expect("temp dir");
        let bytes = test_video(&dir.path().join("clip.mp4"), (160, 90), 1, "ball");
        assert_eq!(&bytes[4..8], b"ftyp", "an MP4 starts with its ftyp box");
        assert!(bytes.len() > 1000, "{} bytes", bytes.len());
    }

    #[test]
    fn rendered_pcm_wraps_into_aac() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pcm = dir.path().join("tone.pcm");
        render("audiotestsrc num-buffers=20 ! audio/x-raw,format=F32LE,rate=48000,channels=2", &pcm).expect("render");
        assert!(std::fs::metadata(&pcm).expect("pcm").len() > 0);
        let mp4 = dir.path().join("tone.mp4");
        aac_in_mp4(&pcm, &mp4).expect("wrap");
        assert_eq!(&std::fs::read(&mp4).expect("mp4")[4..8], b"ftyp");
    }

    #[test]
    fn a_failing_description_is_an_error_that_names_it() {
        let error = launch("no-such-element ! fakesink").expect_err("no such element");
        assert!(error.to_string().contains("no-such-element"), "{error}");
    }
}
