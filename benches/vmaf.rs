//! `cargo bench --profile dev --bench vmaf`: the wall time of one VMAF score, the factory's quality gate.
//!
//! A 60 s 1080p30 source and its 1080p rendition (the house x264 settings at 4500 kbit/s) are generated, then the
//! rendition is scored against the source with `vmaf::score` at subsample 1, 5 and 10, each run timed.
//!
//! Options (environment): BENCH_KEEP=1 to keep the work dir.

use std::path::{Path, PathBuf};
use std::time::Instant;
use vvtv::media::vmaf::{score, Frame};

/// SMPTE colour bars scrolling sideways by 3 pixels a frame: the whole picture moves, and the sharp edges cost an
/// encoder real bits.
const MOVING: &str = "smpte horizontal-speed=3";
/// The house format's scaling: keep the aspect ratio, box into the frame.
const HOUSE_SCALE: &str = "videoscale add-borders=true";

fn main() {
    let work = tempfile::tempdir().expect("temp dir");
    let dir = work.path().to_path_buf();
    if std::env::var("BENCH_KEEP").is_ok() {
        std::mem::forget(work);
    }
    println!("bench-vmaf: 60 s 1080p30 source and rendition, work dir {}", dir.display());
    let full_hd = Frame { width: 1920, height: 1080, fps: 30 };
    let started = Instant::now();
    // A detailed but not extravagant source (about 2 Mbit/s), decoded at a realistic cost.
    let src = source(&dir, "src.mp4", (1920, 1080), 30, 1800, "speed-preset=veryfast pass=qual quantizer=18");
    let enc = rendition(
        &src,
        "1080p.mp4",
        full_hd,
        HOUSE_SCALE,
        "speed-preset=veryfast pass=qual quantizer=21 bitrate=4500 vbv-buf-capacity=2000 key-int-max=60 bframes=2 \
         b-adapt=false",
    );
    println!("media generated in {:.1} s", started.elapsed().as_secs_f64());
    for subsample in [1, 5, 10] {
        let started = Instant::now();
        let result = score(&src, &enc, &full_hd, subsample, &|_| {}).expect("score");
        println!("subsample {subsample:>2}: {:6.1} s  {result:?}", started.elapsed().as_secs_f64());
    }
}

/// Runs a gst-launch description to EOS; `{out}` is replaced by `out`.
fn make(description: &str, out: &Path) {
    let description = description.replace("{out}", &out.display().to_string());
    vvtv_testkit::media::launch(&description).unwrap_or_else(|e| panic!("{e}"));
}

/// A source: `frames` frames of [`MOVING`] at `w`x`h`, BT.709, H.264 (`x264` settings) in MP4.
fn source(dir: &Path, name: &str, (w, h): (u32, u32), fps: u32, frames: u32, x264: &str) -> PathBuf {
    let path = dir.join(name);
    make(
        &format!(
            "videotestsrc pattern={MOVING} num-buffers={frames} ! \
             video/x-raw,format=I420,width={w},height={h},framerate={fps}/1,colorimetry=bt709 ! \
             x264enc {x264} ! mp4mux ! filesink location={{out}}"
        ),
        &path,
    );
    path
}

/// Encodes `source` into `frame` the way the house-format encoder does: the same preparation chain, with `scale` as
/// the scaling step and `x264` as the encoder settings.
fn rendition(source: &Path, name: &str, frame: Frame, scale: &str, x264: &str) -> PathBuf {
    let path = source.with_file_name(name);
    let Frame { width, height, fps } = frame;
    make(
        &format!(
            "filesrc location={src} ! decodebin ! videoconvert ! deinterlace ! videoflip video-direction=auto ! \
             videorate ! video/x-raw,framerate={fps}/1 ! {scale} ! videoconvert ! \
             video/x-raw,format=I420,width={width},height={height},pixel-aspect-ratio=1/1,\
             interlace-mode=progressive,colorimetry=bt709,chroma-site=mpeg2 ! \
             x264enc {x264} ! video/x-h264,profile=high ! mp4mux ! filesink location={{out}}",
            src = source.display(),
        ),
        &path,
    );
    path
}
