//! One silent AAC-LC frame (48 kHz stereo, ADTS) in the house format: the playout inserts it where an item's audio
//! ends short of its video, keeping A/V within half an AAC frame forever without touching the audio encoder.

use super::error::MediaError;
use super::pipeline::{init, launch, PipelineError};
use gst::prelude::*;

/// How errors name this work.
const WHAT: &str = "silent AAC frame";

fn pipeline_err(reason: impl std::fmt::Display) -> MediaError {
    PipelineError::Build { what: WHAT.into(), reason: reason.to_string() }.into()
}

/// Encodes a little silence and keeps one frame from the middle (past the encoder's priming frames).
pub fn silent_aac_frame(audio_kbps: u32) -> Result<gst::Buffer, MediaError> {
    init(WHAT)?;
    let desc = format!(
        "audiotestsrc wave=silence num-buffers=16 samplesperbuffer=1024 ! audio/x-raw,rate=48000,channels=2 ! \
         audioconvert ! {enc} bitrate={bps} ! aacparse ! audio/mpeg,stream-format=adts ! appsink name=out sync=false",
        enc = "avenc_aac",
        bps = audio_kbps * 1000
    );
    let pipeline = launch(WHAT, &desc)?;
    let sink = pipeline
        .by_name("out")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or_else(|| pipeline_err("appsink missing"))?;
    pipeline.set_state(gst::State::Playing).map_err(pipeline_err)?;
    let mut frames = Vec::new();
    while let Ok(sample) = sink.pull_sample() {
        if let Some(b) = sample.buffer_owned() {
            frames.push(b);
        }
    }
    let _ = pipeline.set_state(gst::State::Null);
    let middle = frames.len() / 2;
    frames.into_iter().nth(middle).filter(|b| b.size() > 0).ok_or_else(|| pipeline_err("encoder produced no frame"))
}
