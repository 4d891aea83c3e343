//! Decoding a file into the I420 frames the scorer pairs: one pipeline per file, each ending in an appsink that is
//! pulled from the scoring thread.

use super::ffi::{Plane, VmafFailure};
use super::{pull_slice, Frame, Side, VmafError};
use crate::media::pipeline::{bus_error, discard, is_no_video, post_no_video, Inputs};
use crate::media::prepare::PREPARE_SOURCE;
use gst::prelude::*;
use gst_video::prelude::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A side that delivers no frame for this long (and neither ends nor fails) is declared stuck.
const STALL_LIMIT: Duration = Duration::from_secs(60);
/// Decoded frames queued in each appsink: enough to keep both decoders busy while libvmaf works.
const SINK_BUFFERS: u32 = 4;
/// Every element the two pipelines use, with the Debian package that ships it, so a missing one is named.
pub(super) const REQUIRED_ELEMENTS: [(&str, &str); 10] = [
    ("decodebin", "gstreamer1.0-plugins-base"),
    ("videoconvert", "gstreamer1.0-plugins-base"),
    ("videorate", "gstreamer1.0-plugins-base"),
    ("videoscale", "gstreamer1.0-plugins-base"),
    ("appsink", "gstreamer1.0-plugins-base"),
    ("deinterlace", "gstreamer1.0-plugins-good"),
    ("videoflip", "gstreamer1.0-plugins-good"),
    ("qtdemux", "gstreamer1.0-plugins-good"),
    ("h264parse", "gstreamer1.0-plugins-bad"),
    ("avdec_h264", "gstreamer1.0-libav"),
];

/// One file being decoded into I420 frames.
pub(super) struct Reader {
    pub(super) side: Side,
    pub(super) path: PathBuf,
    pipeline: gst::Pipeline,
    /// The file's reader, demuxer, parser and decoder: their errors are the file's.
    inputs: Inputs,
    sink: gst_app::AppSink,
    bus: gst::Bus,
    /// Frames pulled so far.
    pub(super) frames: u64,
}

impl Reader {
    /// The source, prepared exactly as the house-format encoder prepares its input (media/transcode/): same
    /// elements, same order, same output caps, so it yields the same frames the encoder was given.
    pub(super) fn reference(path: &Path, frame: &Frame) -> Result<Reader, VmafError> {
        let Frame { width, height, fps } = *frame;
        let description = format!(
            "filesrc name=src ! decodebin name=demux {PREPARE_SOURCE} ! \
             videorate ! video/x-raw,framerate={fps}/1 ! \
             videoscale add-borders=true ! videoconvert ! \
             video/x-raw,format=I420,width={width},height={height},pixel-aspect-ratio=1/1,\
             interlace-mode=progressive,colorimetry=bt709,chroma-site=mpeg2 ! \
             appsink name=sink sync=false max-buffers={SINK_BUFFERS} drop=false enable-last-sample=false"
        );
        Reader::start(Side::Source, path, &description, "video/x-raw", &["src", "demux"])
    }

    /// The rendition as it is: an MP4 with H.264, decoded to I420 without any scaling.
    pub(super) fn rendition(path: &Path) -> Result<Reader, VmafError> {
        let description = format!(
            "filesrc name=src ! qtdemux name=demux \
             h264parse name=vin ! avdec_h264 name=dec ! videoconvert ! video/x-raw,format=I420 ! \
             appsink name=sink sync=false max-buffers={SINK_BUFFERS} drop=false enable-last-sample=false"
        );
        Reader::start(Side::Rendition, path, &description, "video/x-h264", &["src", "demux", "vin", "dec"])
    }

    /// Builds the pipeline (the path is set as a property, so it needs no quoting), links the demuxer's first stream
    /// of type `wanted_caps` to the element named `vin`, and starts it. The elements named in `inputs` read the file.
    fn start(
        side: Side,
        path: &Path,
        description: &str,
        wanted_caps: &'static str,
        inputs: &[&str],
    ) -> Result<Reader, VmafError> {
        let failed = |reason: String| VmafError::Pipeline { side, path: path.to_owned(), reason };
        let pipeline = gst::parse::launch(description)
            .map_err(|e| failed(e.to_string()))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| failed("not a pipeline".into()))?;
        let by_name = |name: &str| pipeline.by_name(name).ok_or_else(|| failed(format!("no element {name}")));
        by_name("src")?.set_property("location", path);
        let input = by_name("vin")?.static_pad("sink").ok_or_else(|| failed("vin has no sink pad".into()))?;
        link_first_stream(&pipeline, &by_name("demux")?, &input, wanted_caps);
        let sink =
            by_name("sink")?.downcast::<gst_app::AppSink>().map_err(|_| failed("the sink is not an appsink".into()))?;
        let bus = pipeline.bus().ok_or_else(|| failed("the pipeline has no bus".into()))?;
        let inputs = Inputs::new(inputs.iter().map(|name| by_name(name)).collect::<Result<Vec<_>, _>>()?);
        let reader = Reader { side, path: path.to_owned(), pipeline, inputs, sink, bus, frames: 0 };
        if reader.pipeline.set_state(gst::State::Playing).is_err() {
            // The reason is on the bus (a file that cannot be opened fails right here).
            if let Some(msg) = reader.bus.timed_pop_filtered(gst::ClockTime::SECOND, &[gst::MessageType::Error]) {
                reader.check_message(&msg)?;
            }
            return Err(failed("the pipeline refused to start".into()));
        }
        Ok(reader)
    }

    /// The next frame, or `None` at the end of the file. Fails on a decoding error, or if nothing arrives for
    /// [`STALL_LIMIT`].
    pub(super) fn next(&mut self) -> Result<Option<gst::Sample>, VmafError> {
        let started = Instant::now();
        loop {
            if let Some(sample) = self.sink.try_pull_sample(pull_slice()) {
                self.frames += 1;
                return Ok(Some(sample));
            }
            // Errors first: a demuxer that fails still sends EOS downstream after posting its error.
            self.check_bus()?;
            if self.sink.is_eos() {
                return Ok(None);
            }
            if started.elapsed() > STALL_LIMIT {
                return Err(VmafError::Timeout {
                    side: self.side,
                    path: self.path.clone(),
                    waited: started.elapsed(),
                    frames: self.frames,
                });
            }
        }
    }

    /// Turns an error or "no video" message waiting on the bus into an error; drops every other message.
    fn check_bus(&self) -> Result<(), VmafError> {
        while let Some(msg) = self.bus.pop() {
            self.check_message(&msg)?;
        }
        Ok(())
    }

    fn check_message(&self, msg: &gst::Message) -> Result<(), VmafError> {
        if let Some(failure) = bus_error(msg, &self.inputs) {
            return Err(VmafError::Decode { side: self.side, path: self.path.clone(), failure });
        }
        if is_no_video(msg) {
            let wanted = match self.side {
                Side::Source => "decodable",
                Side::Rendition => "H.264",
            };
            return Err(VmafError::NoVideo { side: self.side, path: self.path.clone(), wanted });
        }
        match msg.view() {
            gst::MessageView::Warning(warning) => {
                tracing::debug!(side = %self.side, path = %self.path.display(), "{}", warning.error());
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The file's duration, once the demuxer knows it.
    pub(super) fn duration(&self) -> Option<Duration> {
        self.pipeline
            .query_duration::<gst::ClockTime>()
            .filter(|d| d.nseconds() > 0)
            .map(|d| Duration::from_nanos(d.nseconds()))
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        // Stopping also unblocks a streaming thread waiting for room in the appsink.
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Links the demuxer's first stream whose caps are `wanted_caps` to `input`; every other stream goes to a fakesink,
/// so the demuxer does not stop on "not linked". If no such stream exists, "no video" is posted on the bus.
fn link_first_stream(pipeline: &gst::Pipeline, demux: &gst::Element, input: &gst::Pad, wanted_caps: &'static str) {
    let weak = pipeline.downgrade();
    let video = input.clone();
    demux.connect_pad_added(move |_, pad| {
        let Some(pipeline) = weak.upgrade() else { return };
        let kind = pad
            .current_caps()
            .or_else(|| Some(pad.query_caps(None)))
            .and_then(|c| c.structure(0).map(|s| s.name().to_string()))
            .unwrap_or_default();
        let linked = kind == wanted_caps && !video.is_linked() && pad.link(&video).is_ok();
        if !linked {
            discard(&pipeline, pad);
        }
    });
    let video = input.clone();
    demux.connect_no_more_pads(move |demux| {
        if !video.is_linked() {
            post_no_video(demux);
        }
    });
}

/// Maps a sample's buffer as a video frame (honouring the strides and offsets of its video meta).
pub(super) fn map<'a>(
    sample: &'a gst::Sample,
    what: &str,
) -> Result<gst_video::VideoFrameRef<&'a gst::BufferRef>, VmafFailure> {
    let failure = |reason: String| VmafFailure { call: "reading a frame", reason: format!("{what}: {reason}") };
    let caps = sample.caps().ok_or_else(|| failure("a frame without caps".into()))?;
    let info = gst_video::VideoInfo::from_caps(caps).map_err(|e| failure(e.to_string()))?;
    let buffer = sample.buffer().ok_or_else(|| failure("a sample without a buffer".into()))?;
    gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info).map_err(|e| failure(e.to_string()))
}

/// The three planes of a mapped I420 frame.
pub(super) fn planes<'a>(
    frame: &'a gst_video::VideoFrameRef<&gst::BufferRef>,
    what: &str,
) -> Result<[Plane<'a>; 3], VmafFailure> {
    let failure = |reason: String| VmafFailure { call: "reading a frame", reason: format!("{what}: {reason}") };
    if frame.format() != gst_video::VideoFormat::I420 {
        return Err(failure(format!("frame format {:?}, expected I420", frame.format())));
    }
    let plane = |i: u32| -> Result<Plane<'a>, VmafFailure> {
        let stride = frame.plane_stride().get(i as usize).copied().unwrap_or(0);
        Ok(Plane {
            data: frame.plane_data(i).map_err(|e| failure(e.to_string()))?,
            stride: usize::try_from(stride).map_err(|_| failure(format!("plane {i} has stride {stride}")))?,
            // In I420 component i is plane i.
            width: frame.comp_width(i) as usize,
            height: frame.comp_height(i) as usize,
        })
    };
    Ok([plane(0)?, plane(1)?, plane(2)?])
}
