//! Test helpers shared by the media room's test modules: test media made with GStreamer, the small ladder the
//! encoder tests use, and ffprobe/ffmpeg as the independent readers of what was written.

use crate::config::{HouseFormatConfig, RungConfig};
use crate::media::house_format::{HouseFormat, Rung};
use crate::media::transcode::{encode, Encoded, Source, TestPattern};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A two-rung ladder that encodes fast on two cores.
pub(crate) fn small() -> HouseFormat {
    let c = HouseFormatConfig {
        ladder: vec![
            RungConfig { name: "360p".into(), width: 640, height: 360, video_kbps: 700 },
            RungConfig { name: "180p".into(), width: 320, height: 180, video_kbps: 250 },
        ],
        ..Default::default()
    };
    HouseFormat::from_config(&c)
}

pub(crate) fn card(title: &str, pattern: TestPattern, tone_hz: Option<f64>, secs: f64) -> Source {
    Source::TestCard {
        title: title.into(),
        pattern,
        tone_hz,
        duration: Duration::from_secs_f64(secs),
        pcm: None,
        poster: None,
    }
}

pub(crate) fn ffprobe(path: &Path, args: &[&str]) -> Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-print_format", "json"])
        .args(args)
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(out.status.success(), "ffprobe {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("ffprobe json")
}

pub(crate) fn stream(path: &Path, kind: &str) -> Value {
    let v = ffprobe(path, &["-show_streams", "-select_streams", kind]);
    v["streams"][0].clone()
}

pub(crate) fn num(v: &Value) -> f64 {
    v.as_str().and_then(|s| s.parse().ok()).or_else(|| v.as_f64()).unwrap_or(f64::NAN)
}

/// (pts, dts, keyframe) of every video packet, in decode order.
pub(crate) fn video_packets(path: &Path) -> Vec<(f64, f64, bool)> {
    let v =
        ffprobe(path, &["-select_streams", "v", "-show_packets", "-show_entries", "packet=pts_time,dts_time,flags"]);
    v["packets"]
        .as_array()
        .expect("packets")
        .iter()
        .map(|p| (num(&p["pts_time"]), num(&p["dts_time"]), p["flags"].as_str().unwrap_or("").contains('K')))
        .collect()
}

pub(crate) fn keyframe_times(path: &Path) -> Vec<f64> {
    let mut keys: Vec<f64> = video_packets(path).into_iter().filter(|p| p.2).map(|p| p.0).collect();
    keys.sort_by(f64::total_cmp);
    keys
}

/// The avcC box (SPS/PPS) of the first video track, read straight from the MP4 boxes.
pub(crate) fn avcc(path: &Path) -> Vec<u8> {
    fn boxes(data: &[u8]) -> Vec<(&[u8], &[u8])> {
        let mut out = vec![];
        let mut at = 0;
        while at + 8 <= data.len() {
            let size = u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as usize;
            if size < 8 || at + size > data.len() {
                break;
            }
            out.push((&data[at + 4..at + 8], &data[at + 8..at + size]));
            at += size;
        }
        out
    }
    let data = std::fs::read(path).expect("read mp4");
    let child = |parent: &[u8], name: &[u8]| -> Vec<u8> {
        boxes(parent).into_iter().find(|b| b.0 == name).map(|b| b.1.to_vec()).unwrap_or_default()
    };
    let moov = child(&data, b"moov");
    for (kind, trak) in boxes(&moov) {
        if kind != b"trak" {
            continue;
        }
        let stbl = child(&child(&child(&child(trak, b"mdia"), b"minf"), b"stbl"), b"stbl");
        let stbl = if stbl.is_empty() { child(&child(&child(trak, b"mdia"), b"minf"), b"stbl") } else { stbl };
        let stsd = child(&stbl, b"stsd");
        // stsd: version/flags + entry count, then sample entries; avc1 has 78 bytes of fields before its boxes.
        if stsd.len() > 8 {
            for (entry, body) in boxes(&stsd[8..]) {
                if entry == b"avc1" && body.len() > 78 {
                    return child(&body[78..], b"avcC");
                }
            }
        }
    }
    panic!("{}: no avcC", path.display());
}

/// Writes test media with a gst-launch description ending in `filesink location={out}` (the test kit's generator).
pub(crate) fn make_media(description: &str, out: &Path) {
    let description = description.replace("{out}", &out.display().to_string());
    vvtv_testkit::media::launch(&description).unwrap_or_else(|e| panic!("{e}"));
}

/// Checks one rendition against the house format and returns its keyframe times.
pub(crate) fn check_rendition(hf: &HouseFormat, rung: &Rung, path: &Path, expect_secs: f64) -> Vec<f64> {
    let v = stream(path, "v");
    assert_eq!(v["codec_name"], "h264", "{v}");
    assert_eq!(v["profile"], "High", "{v}");
    assert_eq!(v["pix_fmt"], "yuv420p", "{v}");
    assert_eq!(v["r_frame_rate"], format!("{}/1", hf.fps), "{v}");
    assert_eq!(v["avg_frame_rate"], format!("{}/1", hf.fps), "{v}");
    assert_eq!((v["width"].as_u64(), v["height"].as_u64()), (Some(rung.width.into()), Some(rung.height.into())));
    assert_eq!(v["sample_aspect_ratio"], "1:1", "{v}");
    assert_eq!(v["color_space"], "bt709", "{v}");
    let a = stream(path, "a");
    assert_eq!(a["codec_name"], "aac", "{a}");
    assert_eq!(a["profile"], "LC", "{a}");
    assert_eq!(a["sample_rate"], "48000", "{a}");
    assert_eq!(a["channels"], 2, "{a}");
    let (vdur, adur) = (num(&v["duration"]), num(&a["duration"]));
    let frame = 1.0 / f64::from(hf.fps);
    assert!((vdur - expect_secs).abs() < 1e-6, "{}: video {vdur}s, expected {expect_secs}s", path.display());
    assert!((adur - vdur).abs() <= frame, "{}: audio {adur}s vs video {vdur}s", path.display());

    let packets = video_packets(path);
    assert_eq!(packets.len() as f64, (expect_secs * f64::from(hf.fps)).round(), "{}", path.display());
    // Fixed B-frame delay: decoding starts exactly one frame before the first picture.
    assert!((packets[0].1 + frame).abs() < 1e-3, "first dts {} in {}", packets[0].1, path.display());
    // Closed GOPs: nothing decoded after a keyframe is shown before it, so every keyframe starts a clean cut.
    for (i, key) in packets.iter().enumerate().filter(|(_, p)| p.2) {
        let early = packets[i + 1..].iter().find(|p| p.0 < key.0 - 1e-6);
        assert!(early.is_none(), "{}: open GOP at {}: {early:?}", path.display(), key.0);
    }
    let keys = keyframe_times(path);
    let gop = f64::from(hf.gop_seconds);
    let expected: Vec<f64> = (0..).map(|k| k as f64 * gop).take_while(|t| *t < vdur - 1e-6).collect();
    assert_eq!(keys.len(), expected.len(), "{}: keyframes at {keys:?}", path.display());
    for (k, e) in keys.iter().zip(&expected) {
        assert!((k - e).abs() < 1e-3, "{}: keyframes at {keys:?}, expected {expected:?}", path.display());
    }
    keys
}

/// Decoded audio of a rendition as interleaved f32 stereo at 48 kHz (ffmpeg as the independent decoder).
pub(crate) fn decoded_audio(path: &Path) -> Vec<[f32; 2]> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:a", "-f", "f32le", "-ac", "2", "-ar", "48000", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
        .chunks_exact(8)
        .map(|c| {
            let l = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            let r = f32::from_le_bytes([c[4], c[5], c[6], c[7]]);
            [l, r]
        })
        .collect()
}

pub(crate) fn encode_quietly(hf: &HouseFormat, source: &Source, dir: &Path) -> Encoded {
    encode(hf, source, dir, &|_| {}).unwrap_or_else(|e| panic!("encode failed: {e}"))
}

/// 25 fps 640x360 H.264 with mono 44.1 kHz Vorbis ticks (one per second) in Matroska.
pub(crate) fn odd_mkv(dir: &Path, video_secs: u32, audio_secs: u32) -> PathBuf {
    let path = dir.join(format!("odd-{video_secs}-{audio_secs}.mkv"));
    make_media(
        &format!(
            "videotestsrc pattern=ball num-buffers={frames} ! video/x-raw,width=640,height=360,framerate=25/1 ! \
             x264enc speed-preset=ultrafast ! h264parse ! matroskamux name=m ! filesink location={{out}} \
             audiotestsrc wave=ticks freq=2000 num-buffers={buffers} samplesperbuffer=441 ! \
             audio/x-raw,rate=44100,channels=1 ! audioconvert ! vorbisenc ! m.",
            frames = video_secs * 25,
            buffers = audio_secs * 100,
        ),
        &path,
    );
    path
}
