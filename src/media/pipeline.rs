//! The GStreamer plumbing every media pipeline shares: initialisation, the check that the elements a pipeline needs
//! are installed, running a pipeline to its end under deadlines, and the one conversion of a bus error into a typed
//! error naming the element that failed, the reason, and whose fault it is.
//!
//! Whose fault: each pipeline declares, as it builds itself, the elements that read its input ([`Inputs`]: the
//! `filesrc`, the `decodebin` or `qtdemux` behind it, …). An error posted by one of them, or by anything inside one
//! (decodebin's typefinder, demuxer, parsers and decoders are its children), is the input's: the file is broken or
//! of a kind that cannot be read here, and trying again will not help. Anything else — an encoder, a muxer, a sink,
//! a test source, our own elements — is ours.

use gst::prelude::*;
use std::fmt;
use std::time::Duration;

/// How often [`run_until_eos`] looks at the bus and calls its tick.
const POLL: Duration = Duration::from_millis(500);
/// Name of the bus message an element callback posts when a source turns out to have no usable video.
const NO_VIDEO_MESSAGE: &str = "vvtv-no-video";

/// Whose fault a failed element is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The input is broken or cannot be read here: one of the pipeline's [`Inputs`] (or an element inside one) failed.
    Input,
    /// Our side: an encoder, muxer, sink or any other element the pipeline added for its own work.
    Ours,
}

/// The elements of one pipeline that read its input, declared by the pipeline as it builds itself.
#[derive(Debug, Clone, Default)]
pub struct Inputs(Vec<gst::Element>);

impl Inputs {
    /// These elements (and everything they will contain) read the input.
    pub fn new(elements: impl IntoIterator<Item = gst::Element>) -> Inputs {
        Inputs(elements.into_iter().collect())
    }

    /// A pipeline that reads no input (it generates what it works on): every failure is ours.
    pub fn none() -> Inputs {
        Inputs::default()
    }

    /// Adds one more element that reads the input.
    pub fn push(&mut self, element: gst::Element) {
        self.0.push(element);
    }

    /// The input's fault if `culprit` is one of the inputs or lies inside one; ours otherwise.
    pub fn fault_of(&self, culprit: &gst::Object) -> Fault {
        let reads_input =
            self.0.iter().any(|input| culprit == input.upcast_ref::<gst::Object>() || culprit.has_as_ancestor(input));
        if reads_input {
            Fault::Input
        } else {
            Fault::Ours
        }
    }
}

/// An element that posted an error on the bus: which one, why, and whose fault it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElementFailure {
    /// The element's name (`pipeline` when the error came from no element).
    pub element: String,
    /// GStreamer's message, e.g. "Could not determine type of stream."
    pub reason: String,
    /// The useful tail of GStreamer's debug string, when there is one.
    pub detail: Option<String>,
    pub fault: Fault,
}

impl ElementFailure {
    /// The one conversion of a bus error, for every pipeline of the station.
    pub fn from_bus(err: &gst::message::Error, inputs: &Inputs) -> ElementFailure {
        // The debug string reads "file.c(123): function (): /Gst/Path:\nactual detail"; only the detail helps an
        // operator, and without one the debug string is just the source location.
        let detail = err.debug().and_then(|d| d.split_once('\n').map(|(_, tail)| tail.trim().to_owned()));
        ElementFailure {
            element: err.src().map(|s| s.name().to_string()).unwrap_or_else(|| "pipeline".into()),
            reason: err.error().to_string(),
            detail: detail.filter(|d| !d.is_empty()),
            fault: err.src().map_or(Fault::Ours, |culprit| inputs.fault_of(culprit)),
        }
    }
}

impl fmt::Display for ElementFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.element, self.reason)?;
        match &self.detail {
            Some(detail) => write!(f, " ({detail})"),
            None => Ok(()),
        }
    }
}

/// A pipeline that could not do its work, naming what was being done (`encode /x/y.mov`) and the reason.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("{what}: cannot initialise GStreamer: {reason}")]
    Init { what: String, reason: String },
    #[error("{what}: GStreamer element {element} is missing (install {package})")]
    MissingElement { what: String, element: String, package: String },
    /// The pipeline could not be built, started or stopped, or gave nothing to work with.
    #[error("{what}: cannot build the pipeline: {reason}")]
    Build { what: String, reason: String },
    /// An element posted an error while the pipeline ran.
    #[error("{what}: {failure}")]
    Element { what: String, failure: ElementFailure },
    #[error("{what}: no decodable video stream")]
    NoVideo { what: String },
    #[error("{what}: timed out after {}s ({reason})", elapsed.as_secs())]
    Timeout { what: String, elapsed: Duration, reason: String },
}

impl PipelineError {
    /// Whose fault the failure is, when an element failed.
    pub fn fault(&self) -> Option<Fault> {
        match self {
            PipelineError::Element { failure, .. } => Some(failure.fault),
            _ => None,
        }
    }

    fn build(what: &str, reason: impl Into<String>) -> PipelineError {
        PipelineError::Build { what: what.to_owned(), reason: reason.into() }
    }
}

/// Initialises GStreamer (idempotent); `what` names the work that needs it.
pub fn init(what: &str) -> Result<(), PipelineError> {
    gst::init().map_err(|e| PipelineError::Init { what: what.to_owned(), reason: e.to_string() })
}

/// Initialises GStreamer and checks that every `(element, Debian package)` is installed; the error names the package
/// to install.
pub fn require_elements(what: &str, elements: &[(&str, &str)]) -> Result<(), PipelineError> {
    init(what)?;
    match elements.iter().find(|(element, _)| gst::ElementFactory::find(element).is_none()) {
        Some((element, package)) => Err(PipelineError::MissingElement {
            what: what.to_owned(),
            element: (*element).to_owned(),
            package: (*package).to_owned(),
        }),
        None => Ok(()),
    }
}

/// Builds a pipeline from a gst-launch description.
pub(crate) fn launch(what: &str, description: &str) -> Result<gst::Pipeline, PipelineError> {
    gst::parse::launch(description)
        .map_err(|e| PipelineError::build(what, e.to_string()))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| PipelineError::build(what, "not a pipeline"))
}

/// Posts, from `element`, the message that tells the pipeline's runner the source has no usable video.
pub(crate) fn post_no_video(element: &gst::Element) {
    let msg = gst::message::Application::builder(gst::Structure::new_empty(NO_VIDEO_MESSAGE)).src(element).build();
    let _ = element.post_message(msg);
}

/// Whether `msg` is the one [`post_no_video`] posts.
pub(crate) fn is_no_video(msg: &gst::Message) -> bool {
    match msg.view() {
        gst::MessageView::Application(app) => app.structure().is_some_and(|s| s.name() == NO_VIDEO_MESSAGE),
        _ => false,
    }
}

/// The bus error in `msg`, converted, if it is one.
pub(crate) fn bus_error(msg: &gst::Message, inputs: &Inputs) -> Option<ElementFailure> {
    match msg.view() {
        gst::MessageView::Error(err) => Some(ElementFailure::from_bus(err, inputs)),
        _ => None,
    }
}

/// Runs `pipeline` to EOS. `tick` is called about every 500 ms (and once at the end) to report progress and enforce
/// deadlines; an error from it, or from the bus, stops the pipeline. `release` is called before the pipeline is
/// stopped, to wake streaming threads parked in the caller's own code (stopping waits for every streaming thread).
/// The pipeline is always left in `Null`.
pub(crate) fn run_until_eos(
    pipeline: &gst::Pipeline,
    what: &str,
    inputs: &Inputs,
    tick: &mut dyn FnMut() -> Result<(), PipelineError>,
    release: &dyn Fn(),
) -> Result<(), PipelineError> {
    let result = drive(pipeline, what, inputs, tick);
    release();
    let stopped = pipeline.set_state(gst::State::Null);
    match (result, stopped) {
        (Err(e), _) => Err(e),
        (Ok(()), Err(e)) => Err(PipelineError::build(what, format!("cannot stop: {e}"))),
        (Ok(()), Ok(_)) => Ok(()),
    }
}

fn drive(
    pipeline: &gst::Pipeline,
    what: &str,
    inputs: &Inputs,
    tick: &mut dyn FnMut() -> Result<(), PipelineError>,
) -> Result<(), PipelineError> {
    let element_error = |failure| PipelineError::Element { what: what.to_owned(), failure };
    let bus = pipeline.bus().ok_or_else(|| PipelineError::build(what, "pipeline has no bus"))?;
    if pipeline.set_state(gst::State::Playing).is_err() {
        // The reason is on the bus; a failed state change without one is reported as such.
        let posted = bus.timed_pop_filtered(gst::ClockTime::from_seconds(1), &[gst::MessageType::Error]);
        return match posted.as_ref().and_then(|msg| bus_error(msg, inputs)) {
            Some(failure) => Err(element_error(failure)),
            None => Err(PipelineError::build(what, "cannot start")),
        };
    }
    let poll = gst::ClockTime::from_nseconds(POLL.as_nanos() as u64);
    let types = [gst::MessageType::Eos, gst::MessageType::Error, gst::MessageType::Application];
    loop {
        if let Some(msg) = bus.timed_pop_filtered(poll, &types) {
            if let Some(failure) = bus_error(&msg, inputs) {
                return Err(element_error(failure));
            }
            if is_no_video(&msg) {
                return Err(PipelineError::NoVideo { what: what.to_owned() });
            }
            if let gst::MessageView::Eos(_) = msg.view() {
                break;
            }
        }
        tick()?;
    }
    tick()
}

/// Sends a stream nobody wants to a fakesink, so the demuxer does not stop on "not linked".
pub(crate) fn discard(pipeline: &gst::Pipeline, pad: &gst::Pad) {
    let Ok(sink) = gst::ElementFactory::make("fakesink").property("sync", false).property("async", false).build()
    else {
        return;
    };
    if pipeline.add(&sink).is_ok() {
        if let Some(sink_pad) = sink.static_pad("sink") {
            let _ = pad.link(&sink_pad);
        }
        let _ = sink.sync_state_with_parent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `description` to EOS with the elements named in `inputs` declared as reading the input.
    fn run(description: &str, inputs: &[&str]) -> Result<(), PipelineError> {
        init("test").expect("gst init");
        let pipeline = launch("test", description).expect("test pipeline");
        let inputs = Inputs::new(inputs.iter().map(|name| pipeline.by_name(name).expect("a named input")));
        run_until_eos(&pipeline, "test", &inputs, &mut || Ok(()), &|| {})
    }

    fn failure(result: Result<(), PipelineError>) -> ElementFailure {
        match result {
            Err(PipelineError::Element { failure, .. }) => failure,
            other => panic!("expected an element failure, got {other:?}"),
        }
    }

    #[test]
    fn garbage_read_through_a_declared_decodebin_is_the_inputs_fault() {
        let dir = tempfile::tempdir().expect("tempdir");
        let garbage = dir.path().join("garbage.mp4");
        std::fs::write(&garbage, b"not a movie, just some text pretending to be one").expect("write");
        let description = format!("filesrc name=src location={} ! decodebin name=dec ! fakesink", garbage.display());
        let err = run(&description, &["src", "dec"]).expect_err("garbage must fail");
        assert!(err.to_string().starts_with("test: "), "{err}");
        assert_eq!(err.fault(), Some(Fault::Input), "{err}");
        // The typefinder that failed is decodebin's child, not decodebin itself: the ancestry decides.
        let failure = failure(Err(err));
        assert_ne!(failure.element, "dec", "{failure}");
        assert!(!failure.reason.is_empty(), "{failure}");

        // The same pipeline without declared inputs blames itself.
        let err = run(&description, &[]).expect_err("garbage must fail");
        assert_eq!(err.fault(), Some(Fault::Ours), "{err}");
    }

    #[test]
    fn a_missing_input_file_is_the_inputs_fault_and_a_failing_sink_is_ours() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing.mp4");
        let err = run(&format!("filesrc name=src location={} ! fakesink", missing.display()), &["src"]);
        let failed = failure(err);
        assert_eq!((failed.element.as_str(), failed.fault), ("src", Fault::Input), "{failed}");

        // A sink that cannot write is ours, even when the input is declared and fine.
        let source = dir.path().join("bytes.bin");
        std::fs::write(&source, [0u8; 4096]).expect("write");
        let unwritable = dir.path().join("no-such-dir").join("out.bin");
        let description = format!(
            "filesrc name=src location={} ! filesink name=out location={}",
            source.display(),
            unwritable.display()
        );
        let failed = failure(run(&description, &["src"]));
        assert_eq!((failed.element.as_str(), failed.fault), ("out", Fault::Ours), "{failed}");
        assert!(failed.to_string().starts_with("out: "), "{failed}");
    }

    #[test]
    fn an_element_failure_reads_element_reason_and_detail() {
        let failure = ElementFailure {
            element: "qtdemux0".into(),
            reason: "This file is invalid and cannot be played.".into(),
            detail: Some("no 'moov' atom".into()),
            fault: Fault::Input,
        };
        assert_eq!(failure.to_string(), "qtdemux0: This file is invalid and cannot be played. (no 'moov' atom)");
        let err = PipelineError::Element {
            what: "encode /x.mov".into(),
            failure: ElementFailure { detail: None, ..failure },
        };
        assert_eq!(err.to_string(), "encode /x.mov: qtdemux0: This file is invalid and cannot be played.");
    }
}
