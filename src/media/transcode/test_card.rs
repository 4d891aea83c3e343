//! Test cards: a generated picture (a `videotestsrc` pattern, the title burnt in, a running clock) and tone, encoded
//! like any source. The slate and the demo clips are made of them.

use crate::media::house_format::{HouseFormat, Rung};
use gst::prelude::*;
use std::time::Duration;

/// A `videotestsrc` pattern for test cards; each demo clip uses a different one so they are easy to tell apart.
/// (videotestsrc's plain "smpte" is left out on purpose: its noise patch costs the encoder its whole bit budget.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestPattern {
    /// SMPTE RP 219 HD bars.
    HdBars,
    /// 75 % colour bars.
    Bars75,
    /// 100 % colour bars.
    Bars100,
    Ball,
    Pinwheel,
    Spokes,
    Circular,
    Gradient,
    Colors,
    Black,
}

impl TestPattern {
    /// Patterns that look clearly different from each other, for cycling through demo clips.
    pub const DISTINCT: [TestPattern; 8] = [
        TestPattern::HdBars,
        TestPattern::Ball,
        TestPattern::Pinwheel,
        TestPattern::Bars75,
        TestPattern::Spokes,
        TestPattern::Gradient,
        TestPattern::Colors,
        TestPattern::Circular,
    ];

    /// The `videotestsrc pattern` nick.
    pub fn nick(self) -> &'static str {
        match self {
            TestPattern::HdBars => "smpte-rp-219",
            TestPattern::Bars75 => "smpte75",
            TestPattern::Bars100 => "smpte100",
            TestPattern::Ball => "ball",
            TestPattern::Pinwheel => "pinwheel",
            TestPattern::Spokes => "spokes",
            TestPattern::Circular => "circular",
            TestPattern::Gradient => "gradient",
            TestPattern::Colors => "colors",
            TestPattern::Black => "black",
        }
    }
}

/// The video and audio heads of a test card's pipeline, up to where a decoded file's would join: the picture drawn at
/// the `canvas` size (the top rung's; scaled down for the others), then the `poster` overlay when there is one, and
/// the `title` and `clock` overlays.
pub(super) fn heads(
    hf: &HouseFormat,
    pattern: TestPattern,
    tone_hz: Option<f64>,
    duration: Duration,
    canvas: &Rung,
    poster: bool,
) -> (String, String) {
    let fps = hf.fps;
    // The tone source never ends by itself: the audio gate stops it at the video's end.
    let wave = match tone_hz {
        Some(hz) if hz.is_finite() && hz > 0.0 => format!("wave=sine freq={hz} volume=0.1"),
        _ => "wave=silence".to_owned(),
    };
    (
        format!(
            "videotestsrc is-live=false pattern={pattern} num-buffers={frames} ! \
             video/x-raw,width={w},height={h},framerate={fps}/1,pixel-aspect-ratio=1/1 ! {poster}\
             textoverlay name=title valignment=center halignment=center shaded-background=true \
             auto-resize=false ! \
             timeoverlay name=clock valignment=bottom halignment=right shaded-background=true \
             auto-resize=false ! ",
            pattern = pattern.nick(),
            frames = hf.frames_in(duration),
            w = canvas.width,
            h = canvas.height,
            poster = if poster { "videoconvert ! gdkpixbufoverlay name=poster ! videoconvert ! " } else { "" },
        ),
        format!("audiotestsrc is-live=false {wave} ! audioconvert name=ain ! "),
    )
}

/// Where a card's poster sits on a `width`×`height` canvas: its left, top, width and height in pixels — the left
/// 42 % of the picture, 16:9, centred vertically; the title takes the right side.
pub fn poster_box(width: u32, height: u32) -> (u32, u32, u32, u32) {
    let w = width * 42 / 100;
    let h = (w * 9 / 16).min(height * 9 / 10);
    (width * 5 / 100, (height - h) / 2, w, h)
}

/// Puts the title (and the poster, when the card has one) on the card and sizes the fonts for the `canvas`.
pub(super) fn dress(
    title_overlay: &gst::Element,
    clock: &gst::Element,
    poster: Option<(&gst::Element, &std::path::Path)>,
    title: &str,
    canvas: &Rung,
) {
    // textoverlay reads its text as Pango markup: a title like "Q&A <live>" must be escaped to show at all.
    title_overlay.set_property("text", gst::glib::markup_escape_text(title));
    clock.set_property("font-desc", format!("Monospace {}px", (canvas.height / 16).max(8)));
    let Some((overlay, path)) = poster else {
        title_overlay.set_property("font-desc", format!("Sans Bold {}px", (canvas.height / 10).max(8)));
        return;
    };
    let (x, y, w, h) = poster_box(canvas.width, canvas.height);
    overlay.set_property("location", path);
    overlay.set_property("offset-x", x as i32);
    overlay.set_property("offset-y", y as i32);
    overlay.set_property("overlay-width", w as i32);
    overlay.set_property("overlay-height", h as i32);
    // The title on the right half, beside the poster: "Up next at 20:15: Title" on two lines.
    title_overlay.set_property("text", gst::glib::markup_escape_text(&title.replacen(": ", "\n", 1)));
    title_overlay.set_property("font-desc", format!("Sans Bold {}px", (canvas.height / 16).max(8)));
    title_overlay.set_property_from_str("halignment", "left");
    title_overlay.set_property("xpad", (x + w + canvas.width * 4 / 100) as i32);
    title_overlay.set_property_from_str("wrap-mode", "word");
}

#[cfg(test)]
mod tests {
    use crate::media::test_support::{card, decoded_audio, encode_quietly, small};
    use crate::media::transcode::TestPattern;

    #[test]
    fn test_card_tone_is_a_moderate_sine_and_silence_is_silent() {
        let hf = small();
        let dir = tempfile::tempdir().expect("tempdir");
        let tone = encode_quietly(&hf, &card("Tone", TestPattern::Pinwheel, Some(1000.0), 2.0), dir.path());
        let audio = decoded_audio(&tone.renditions[1].path);
        // Skip the encoder's priming frame; look at one whole second.
        let second = &audio[4800..52_800];
        for ch in 0..2 {
            let peak = second.iter().map(|s| s[ch].abs()).fold(0.0f32, f32::max);
            assert!((0.08..0.13).contains(&peak), "channel {ch} peaks at {peak}, expected about 0.1 (-20 dBFS)");
            let crossings = second.windows(2).filter(|w| (w[0][ch] < 0.0) != (w[1][ch] < 0.0)).count();
            assert!((1990..=2010).contains(&crossings), "channel {ch}: {crossings} zero crossings in 1 s, not 1 kHz");
        }
        let quiet_dir = tempfile::tempdir().expect("tempdir");
        let quiet = encode_quietly(&hf, &card("Quiet", TestPattern::Bars75, None, 2.0), quiet_dir.path());
        let audio = decoded_audio(&quiet.renditions[1].path);
        let peak = audio.iter().flatten().map(|s| s.abs()).fold(0.0f32, f32::max);
        assert!(peak < 1e-4, "silence peaks at {peak}");
    }
}
