//! Keeping the audio exactly as long as the video during an encode: the video's progress is watched after
//! videorate, and the audio is gated behind it, cut at its end and padded with silence up to it.

use crate::media::house_format::{AAC_FRAME_SAMPLES, AUDIO_CHANNELS, AUDIO_RATE};
use gst::prelude::*;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// avenc_aac (FFmpeg's native AAC-LC encoder) starts every stream with one frame of priming samples and does not
/// mark them, and mp4mux 1.22 writes no edit list for them; the audio is therefore fed this many samples early so
/// decoded audio lines up with the video.
const AAC_ENCODER_DELAY_SAMPLES: u64 = AAC_FRAME_SAMPLES as u64;
/// Bytes per audio frame at the gate: interleaved F32 stereo.
const AUDIO_BYTES_PER_FRAME: usize = 4 * AUDIO_CHANNELS as usize;

/// Where the video has got, shared between the video watch and the audio gate.
#[derive(Default)]
pub(super) struct AvSync {
    state: Mutex<AvState>,
    changed: Condvar,
}

#[derive(Default)]
struct AvState {
    /// End (running time, ns) of the last frame that left videorate.
    video_end_ns: u64,
    video_frames: u64,
    video_done: bool,
    /// Next source sample (at 48 kHz, running time) the encoder needs; starts at the encoder delay.
    audio_next: u64,
    cancelled: bool,
}

impl AvSync {
    fn lock(&self) -> MutexGuard<'_, AvState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn video(&self) -> (u64, u64, bool) {
        let s = self.lock();
        (s.video_end_ns, s.video_frames, s.video_done)
    }

    fn update(&self, f: impl FnOnce(&mut AvState)) {
        f(&mut self.lock());
        self.changed.notify_all();
    }

    pub(super) fn cancel(&self) {
        self.update(|s| s.cancelled = true);
    }

    /// Blocks until the video has passed `sample` (or ended, or the encode was cancelled).
    fn wait_for_video(&self, sample: u64) -> MutexGuard<'_, AvState> {
        let guard = self.lock();
        self.changed
            .wait_while(guard, |s| !s.cancelled && !s.video_done && samples_at(s.video_end_ns) < sample)
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn samples_at(ns: u64) -> u64 {
    ((u128::from(ns) * u128::from(AUDIO_RATE) + 500_000_000) / 1_000_000_000) as u64
}

fn ns_at(samples: u64) -> u64 {
    (u128::from(samples) * 1_000_000_000 / u128::from(AUDIO_RATE)) as u64
}

fn clock_segment(pad: &gst::Pad) -> Option<gst::FormattedSegment<gst::ClockTime>> {
    let event = pad.sticky_event::<gst::event::Segment>(0)?;
    event.segment().downcast_ref::<gst::ClockTime>().cloned()
}

/// Records how far the video has got after videorate; this is the clock the audio gate follows.
pub(super) fn watch_video(pad: &gst::Pad, sync: Arc<AvSync>) {
    pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM, move |pad, info| {
        match &info.data {
            Some(gst::PadProbeData::Buffer(buffer)) => {
                let end = clock_segment(pad)
                    .zip(buffer.pts())
                    .and_then(|(segment, pts)| segment.to_running_time(pts))
                    .map(|rt| rt.nseconds() + buffer.duration().map(|d| d.nseconds()).unwrap_or(0));
                sync.update(|s| {
                    s.video_frames += 1;
                    if let Some(end) = end {
                        s.video_end_ns = s.video_end_ns.max(end);
                    }
                });
            }
            Some(gst::PadProbeData::Event(event)) if event.type_() == gst::EventType::Eos => {
                sync.update(|s| s.video_done = true);
            }
            _ => {}
        }
        gst::PadProbeReturn::Ok
    });
}

/// Keeps the audio exactly as long as the video, without knowing the video's length in advance: audio is let through
/// only once the video has passed it, cut at the video's end (then upstream is told EOS), and padded with silence up
/// to it when the source audio ends early. It also shifts the audio by the AAC encoder delay (see
/// [`AAC_ENCODER_DELAY_SAMPLES`]). The muxers never starve: the video is always ahead of the audio here, and the
/// encoded video waits in deep queues in front of them.
pub(super) fn gate_audio(pad: &gst::Pad, sync: Arc<AvSync>) {
    sync.update(|s| s.audio_next = AAC_ENCODER_DELAY_SAMPLES);
    pad.add_probe(gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM, move |pad, info| {
        let Some(segment) = clock_segment(pad) else { return gst::PadProbeReturn::Ok };
        match info.data.take() {
            Some(gst::PadProbeData::Buffer(buffer)) => match gate_buffer(&sync, &segment, buffer) {
                Gated::Pass(buffer) => {
                    info.data = Some(gst::PadProbeData::Buffer(buffer));
                    gst::PadProbeReturn::Ok
                }
                Gated::Drop => gst::PadProbeReturn::Drop,
                Gated::Stop(flow) => {
                    info.flow_res = Err(flow);
                    gst::PadProbeReturn::Handled
                }
            },
            Some(gst::PadProbeData::Event(event)) => {
                if event.type_() == gst::EventType::Eos {
                    pad_with_silence(&sync, &segment, pad);
                }
                info.data = Some(gst::PadProbeData::Event(event));
                gst::PadProbeReturn::Ok
            }
            other => {
                info.data = other;
                gst::PadProbeReturn::Ok
            }
        }
    });
}

enum Gated {
    Pass(gst::Buffer),
    Drop,
    Stop(gst::FlowError),
}

fn gate_buffer(sync: &AvSync, segment: &gst::FormattedSegment<gst::ClockTime>, buffer: gst::Buffer) -> Gated {
    // Audio outside the segment (before its start) has no place on the timeline.
    let Some(start) = buffer.pts().and_then(|pts| segment.to_running_time(pts)) else { return Gated::Drop };
    let first = samples_at(start.nseconds());
    let count = (buffer.size() / AUDIO_BYTES_PER_FRAME) as u64;
    let end = first + count;
    let mut state = sync.wait_for_video(end);
    if state.cancelled {
        return Gated::Stop(gst::FlowError::Flushing);
    }
    let limit = if state.video_done { samples_at(state.video_end_ns) } else { u64::MAX };
    if first >= limit {
        // Past the video's end: tell upstream to stop (a tone or silence source would otherwise run forever).
        return Gated::Stop(gst::FlowError::Eos);
    }
    let keep_from = first.max(AAC_ENCODER_DELAY_SAMPLES);
    let keep_to = end.min(limit);
    if keep_to <= keep_from {
        return Gated::Drop;
    }
    state.audio_next = state.audio_next.max(keep_to);
    drop(state);
    let bytes = |samples: u64| samples as usize * AUDIO_BYTES_PER_FRAME;
    let copy = gst::BufferCopyFlags::FLAGS | gst::BufferCopyFlags::META | gst::BufferCopyFlags::MEMORY;
    let Ok(mut out) = buffer.copy_region(copy, bytes(keep_from - first)..bytes(keep_to - first)) else {
        return Gated::Stop(gst::FlowError::Error);
    };
    stamp(out.make_mut(), segment, keep_from, keep_to);
    Gated::Pass(out)
}

/// Timestamps audio covering source samples `from..to` on the encoder's timeline (shifted by the encoder delay).
fn stamp(buffer: &mut gst::BufferRef, segment: &gst::FormattedSegment<gst::ClockTime>, from: u64, to: u64) {
    let shifted = from - AAC_ENCODER_DELAY_SAMPLES;
    let rt = gst::ClockTime::from_nseconds(ns_at(shifted));
    buffer.set_pts(segment.position_from_running_time(rt));
    buffer.set_dts(gst::ClockTime::NONE);
    buffer.set_duration(gst::ClockTime::from_nseconds(ns_at(to - AAC_ENCODER_DELAY_SAMPLES) - ns_at(shifted)));
    buffer.set_offset(gst::format::Buffers::OFFSET_NONE);
    buffer.set_offset_end(gst::format::Buffers::OFFSET_NONE);
}

/// At the end of the source audio: push silence as the video advances until the audio reaches the video's end.
fn pad_with_silence(sync: &AvSync, segment: &gst::FormattedSegment<gst::ClockTime>, pad: &gst::Pad) {
    let Some(peer) = pad.peer() else { return };
    // Chunks of a tenth of a second keep the muxers fed while the video is still being encoded.
    const CHUNK: u64 = AUDIO_RATE as u64 / 10;
    loop {
        let next = sync.lock().audio_next;
        let mut state = sync.wait_for_video(next + 1);
        if state.cancelled {
            return;
        }
        let video_end = samples_at(state.video_end_ns);
        let from = state.audio_next;
        if from >= video_end {
            if state.video_done {
                return;
            }
            continue;
        }
        let to = video_end.min(from + CHUNK);
        state.audio_next = to;
        drop(state);
        let mut silence = gst::Buffer::from_mut_slice(vec![0u8; (to - from) as usize * AUDIO_BYTES_PER_FRAME]);
        stamp(silence.make_mut(), segment, from, to);
        // Bypasses this pad's own probe on purpose: this audio is already gated.
        if peer.chain(silence).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::media::test_support::{check_rendition, decoded_audio, encode_quietly, odd_mkv, small};
    use crate::media::transcode::Source;

    #[test]
    fn odd_file_is_normalized_and_stays_in_sync() {
        let hf = small();
        let dir = tempfile::tempdir().expect("tempdir");
        let source = odd_mkv(dir.path(), 4, 4);
        let out = dir.path().join("out");
        let encoded = encode_quietly(&hf, &Source::File(source.clone()), &out);
        assert_eq!(encoded.video_frames, 120);
        let mut keys = vec![];
        for (rung, r) in hf.rungs.iter().zip(&encoded.renditions) {
            keys.push(check_rendition(&hf, rung, &r.path, 4.0));
        }
        assert_eq!(keys[0], keys[1]);
        // The decoded AAC must put each tick where the decoded source has it (within 2 ms); without compensating the
        // encoder's priming delay every tick would come 21 ms late.
        let onset = |audio: &[[f32; 2]], near: usize| {
            let from = near - 4800;
            audio[from..].iter().position(|s| s[0].abs() > 0.2).map(|i| from + i).expect("a tick")
        };
        let (theirs, ours) = (decoded_audio(&source), decoded_audio(&encoded.renditions[0].path));
        for second in 1..4 {
            let (expected, heard) = (onset(&theirs, second * 48_000), onset(&ours, second * 48_000));
            let error_ms = (heard as f64 - expected as f64) / 48.0;
            assert!(error_ms.abs() < 2.0, "tick {second} heard {error_ms:+.2} ms off");
            assert!((ours[heard][0] - ours[heard][1]).abs() < 1e-3, "mono is spread to both channels");
        }
    }

    #[test]
    fn short_audio_is_padded_and_long_audio_is_cut_to_the_video() {
        let mut hf = small();
        hf.rungs.truncate(1);
        let dir = tempfile::tempdir().expect("tempdir");
        for (video, audio) in [(3, 1), (2, 4)] {
            let source = odd_mkv(dir.path(), video, audio);
            let out = dir.path().join(format!("out-{video}-{audio}"));
            let encoded = encode_quietly(&hf, &Source::File(source), &out);
            check_rendition(&hf, &hf.rungs[0], &encoded.renditions[0].path, f64::from(video));
        }
    }
}
