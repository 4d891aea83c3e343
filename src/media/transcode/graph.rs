//! The encode's pipeline graph: its gst-launch description, one branch per rung, and the links made once decodebin
//! exposes the source's streams.

use super::{test_card, Source};
use crate::media::error::MediaError;
use crate::media::house_format::{HouseFormat, AUDIO_CHANNELS, AUDIO_RATE, B_FRAMES, CRF, VBV_BUFFER_MS};
use crate::media::pipeline::{discard, post_no_video};
use crate::media::prepare::PREPARE_SOURCE;
use gst::prelude::*;

/// x264 options that have no element property. `scenecut=0`: keyframes only every GOP; `open-gop=0`: every GOP
/// decodes on its own, so a segment or an item can start at any keyframe; `stitchable=1`: headers do not depend on
/// the content, so two assets encoded with the same settings get byte-identical SPS/PPS.
pub(super) const X264_OPTIONS: &str = "scenecut=0:open-gop=0:stitchable=1";
/// The AAC-LC encoder. Debian 12 ships two: `avenc_aac` (FFmpeg's native encoder, gstreamer1.0-libav) and
/// `voaacenc` (VisualOn, plugins-bad); FFmpeg's is the better one at 96–192 kbit/s and takes float input directly.
/// (fdkaacenc is not in Debian's main archive.)
pub(super) const AAC_ENCODER: &str = "avenc_aac";
/// Raw frames buffered per rung: enough for the encoders to run in parallel, small enough for 1080p memory.
const RAW_QUEUE_FRAMES: u32 = 8;
/// Encoded data buffered in front of each muxer, so the muxer's interleaving never stalls the encoders.
const MUX_QUEUE_NS: u64 = 10_000_000_000;
/// Decoded frames each VMAF appsink holds: enough to keep the encoder busy while libvmaf works.
const VMAF_SINK_FRAMES: u32 = 4;

/// The pipeline in gst-launch syntax. Strings that would need quoting (paths, titles, fonts, x264 options) are set as
/// properties afterwards.
///
/// With `vmaf_tap`, that rung's encoder input and its decoded output also go to the appsinks `vmafref` and `vmafout`.
pub(super) fn describe(hf: &HouseFormat, source: &Source, vmaf_tap: Option<usize>) -> Result<String, MediaError> {
    let fps = hf.fps;
    let (video_head, audio_head) = match source {
        Source::File(_) | Source::FileWithPcm { .. } => (
            format!("filesrc name=src ! decodebin name=dec {PREPARE_SOURCE} ! "),
            if matches!(source, Source::FileWithPcm { .. }) {
                format!(
                    "filesrc name=pcm ! rawaudioparse use-sink-caps=false format=pcm pcm-format=f32le \
                     sample-rate={AUDIO_RATE} num-channels={AUDIO_CHANNELS} interleaved=true ! audioconvert name=ain ! "
                )
            } else {
                "audioconvert name=ain ! ".to_owned()
            },
        ),
        Source::TestCard { pattern, tone_hz, duration, pcm, poster, .. } => {
            let canvas = hf.top_rung().ok_or_else(|| MediaError::Settings {
                what: source.describe(),
                reason: "the house format has no rungs".into(),
            })?;
            let (video, tone) = test_card::heads(hf, *pattern, *tone_hz, *duration, canvas, poster.is_some());
            let audio = match pcm {
                Some(_) => format!(
                    "filesrc name=pcm ! rawaudioparse use-sink-caps=false format=pcm pcm-format=f32le \
                     sample-rate={AUDIO_RATE} num-channels={AUDIO_CHANNELS} interleaved=true ! audioconvert name=ain ! "
                ),
                None => tone,
            };
            (video, audio)
        }
    };
    // One videorate for all rungs: every encoder sees the same frames with the same timestamps. The watch probe sits
    // on vcaps' src pad; audiorate fills gaps (and the start) with silence; the audio gate sits on acaps' src pad.
    let mut d = format!(
        "{video_head} videorate name=vrate ! capsfilter name=vcaps caps=video/x-raw,framerate={fps}/1 ! tee name=vtee \
         {audio_head} audioresample ! audiorate ! capsfilter name=acaps \
         caps=audio/x-raw,format=F32LE,layout=interleaved,rate={AUDIO_RATE},channels={AUDIO_CHANNELS} ! \
         {AAC_ENCODER} bitrate={abr} ! aacparse ! tee name=atee ",
        abr = hf.audio_kbps * 1000,
    );
    let gop = hf.gop_frames();
    for (i, r) in hf.rungs.iter().enumerate() {
        let tapped = vmaf_tap == Some(i);
        // The reference queue is unbounded: it holds the frames the encoder has taken but not yet put out (its
        // look-ahead), and cannot grow beyond that because the output side is bounded.
        let (tap_in, tap_out) = if tapped { ("tee name=vmafin ! ", "tee name=vmafenc ! ") } else { ("", "") };
        // Every caps field x264 writes into the SPS/VUI is pinned here, so the source cannot change the headers.
        d += &format!(
            "vtee. ! queue max-size-buffers={RAW_QUEUE_FRAMES} max-size-bytes=0 max-size-time=0 ! \
             videoscale add-borders=true ! videoconvert ! \
             video/x-raw,format=I420,width={w},height={h},pixel-aspect-ratio=1/1,framerate={fps}/1,\
             interlace-mode=progressive,colorimetry=bt709,chroma-site=mpeg2 ! {tap_in}\
             x264enc name=venc{i} speed-preset={preset} pass=qual quantizer={CRF} bitrate={kbps} \
             vbv-buf-capacity={VBV_BUFFER_MS} key-int-max={gop} bframes={B_FRAMES} b-adapt=false b-pyramid=false \
             dct8x8=true cabac=true byte-stream=false insert-vui=true ! \
             video/x-h264,profile=high,stream-format=avc,alignment=au ! {tap_out}\
             queue max-size-buffers=0 max-size-bytes=0 max-size-time={MUX_QUEUE_NS} ! \
             mp4mux name=mux{i} ! filesink name=sink{i} sync=false \
             atee. ! queue max-size-buffers=0 max-size-bytes=0 max-size-time={MUX_QUEUE_NS} ! mux{i}. ",
            w = r.width,
            h = r.height,
            preset = hf.x264_preset,
            kbps = r.video_kbps,
        );
        if tapped {
            d += &format!(
                "vmafin. ! queue max-size-buffers=0 max-size-bytes=0 max-size-time=0 ! \
                 appsink name=vmafref sync=false max-buffers={VMAF_SINK_FRAMES} enable-last-sample=false \
                 vmafenc. ! queue ! avdec_h264 name=vmafdec ! videoconvert ! video/x-raw,format=I420 ! \
                 appsink name=vmafout sync=false max-buffers={VMAF_SINK_FRAMES} enable-last-sample=false "
            );
        }
    }
    Ok(d)
}

/// Links decodebin's first raw video and first raw audio stream into the encoder; anything else goes to a fakesink.
/// A file without audio gets a silent source instead; one without video is reported on the bus. With `audio_in`
/// `None` the audio comes from elsewhere and every decoded audio stream is discarded.
pub(super) fn link_decoder(
    pipeline: &gst::Pipeline,
    dec: &gst::Element,
    video_in: &gst::Pad,
    audio_in: Option<&gst::Pad>,
) {
    let weak = pipeline.downgrade();
    let (video, audio) = (video_in.clone(), audio_in.cloned());
    dec.connect_pad_added(move |_, pad| {
        let Some(pipeline) = weak.upgrade() else { return };
        let kind = pad.current_caps().and_then(|c| c.structure(0).map(|s| s.name().to_string())).unwrap_or_default();
        let target = match kind.as_str() {
            "video/x-raw" if !video.is_linked() => Some(&video),
            "audio/x-raw" => audio.as_ref().filter(|a| !a.is_linked()),
            _ => None,
        };
        let linked = target.is_some_and(|t| pad.link(t).is_ok());
        if !linked {
            discard(&pipeline, pad);
        }
    });
    let weak = pipeline.downgrade();
    let (video_in, audio_in) = (video_in.clone(), audio_in.cloned());
    dec.connect_no_more_pads(move |dec| {
        let Some(pipeline) = weak.upgrade() else { return };
        if !video_in.is_linked() {
            post_no_video(dec);
            return;
        }
        if let Some(audio_in) = audio_in.as_ref().filter(|a| !a.is_linked()) {
            add_silence(&pipeline, audio_in);
        }
    });
}

/// Feeds silence into the audio chain of a source without audio; the gate ends it at the video's end.
fn add_silence(pipeline: &gst::Pipeline, audio_in: &gst::Pad) {
    let Ok(src) = gst::ElementFactory::make("audiotestsrc")
        .property("is-live", false)
        .property_from_str("wave", "silence")
        .build()
    else {
        return;
    };
    if pipeline.add(&src).is_ok() {
        if let Some(src_pad) = src.static_pad("src") {
            let _ = src_pad.link(audio_in);
        }
        let _ = src.sync_state_with_parent();
    }
}

#[cfg(test)]
mod tests {
    use crate::media::test_support::{
        avcc, card, check_rendition, decoded_audio, encode_quietly, make_media, odd_mkv, small, stream,
    };
    use crate::media::transcode::{Source, TestPattern};
    use std::path::Path;
    use std::process::Command;

    /// One decoded frame of a rendition as 8-bit luma rows.
    fn luma_frame(path: &Path, at_secs: f64, width: usize) -> Vec<Vec<u8>> {
        let out = Command::new("ffmpeg")
            .args(["-v", "error", "-ss", &at_secs.to_string(), "-i"])
            .arg(path)
            .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-"])
            .output()
            .expect("ffmpeg runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        out.stdout.chunks_exact(width).map(|row| row.to_vec()).collect()
    }

    #[test]
    fn same_settings_give_identical_sps_pps_whatever_the_source() {
        let hf = small();
        let dir = tempfile::tempdir().expect("tempdir");
        let from_card = encode_quietly(&hf, &card("A", TestPattern::HdBars, Some(440.0), 2.0), &dir.path().join("a"));
        let source = odd_mkv(dir.path(), 2, 2);
        let from_file = encode_quietly(&hf, &Source::File(source), &dir.path().join("b"));
        for (a, b) in from_card.renditions.iter().zip(&from_file.renditions) {
            let (a_avcc, b_avcc) = (avcc(&a.path), avcc(&b.path));
            assert!(a_avcc.len() > 10 && a_avcc[1] == 100, "avcC of a High profile stream: {a_avcc:02x?}");
            assert_eq!(a_avcc, b_avcc, "rung {}: SPS/PPS differ between a test card and a file", a.rung);
        }
        assert_ne!(avcc(&from_card.renditions[0].path), avcc(&from_card.renditions[1].path));
    }

    #[test]
    fn vertical_video_without_audio_is_pillarboxed_and_gets_silence() {
        let hf = small();
        let dir = tempfile::tempdir().expect("tempdir");
        let source = dir.path().join("vertical.mp4");
        make_media(
            "videotestsrc pattern=white num-buffers=60 ! video/x-raw,width=1080,height=1920,framerate=30/1 ! \
             x264enc speed-preset=ultrafast ! mp4mux ! filesink location={out}",
            &source,
        );
        let encoded = encode_quietly(&hf, &Source::File(source), &dir.path().join("out"));
        for (rung, r) in hf.rungs.iter().zip(&encoded.renditions) {
            check_rendition(&hf, rung, &r.path, 2.0);
            let rows = luma_frame(&r.path, 1.0, rung.width as usize);
            let row = &rows[rung.height as usize / 2];
            // A 9:16 picture in a 16:9 frame fills the middle 9/16 × 9/16 ≈ 32 % of the width.
            let lit = row.iter().filter(|&&y| y > 128).count() as f64 / row.len() as f64;
            assert!((0.30..0.34).contains(&lit), "{}: {:.3} of the width is picture", r.rung, lit);
            assert!(row[2] < 24 && row[row.len() - 3] < 24, "{}: borders are not black", r.rung);
            assert!(row[row.len() / 2] > 200, "{}: centre is not the picture", r.rung);
            let peak = decoded_audio(&r.path).iter().flatten().map(|s| s.abs()).fold(0.0f32, f32::max);
            assert!(peak < 1e-4, "{}: added audio is not silent ({peak})", r.rung);
        }
    }

    #[test]
    fn interlaced_source_is_deinterlaced() {
        let mut hf = small();
        hf.rungs.truncate(1);
        let dir = tempfile::tempdir().expect("tempdir");
        let source = dir.path().join("interlaced.mp4");
        make_media(
            "videotestsrc pattern=ball num-buffers=100 ! video/x-raw,width=720,height=576,framerate=50/1 ! \
             interlace field-pattern=1:1 ! x264enc speed-preset=ultrafast interlaced=true ! mp4mux ! \
             filesink location={out}",
            &source,
        );
        let probed = stream(&source, "v");
        assert_ne!(probed["field_order"], "progressive", "the test source must be interlaced: {probed}");
        let encoded = encode_quietly(&hf, &Source::File(source), &dir.path().join("out"));
        let path = &encoded.renditions[0].path;
        check_rendition(&hf, &hf.rungs[0], path, 2.0);
        assert_eq!(stream(path, "v")["field_order"], "progressive");
    }
}
