//! The preparation of a decoded source, shared by the house-format encoder and the VMAF reference so that the gate
//! compares the very frames the encoder was given.

/// The first steps for a decoded source, up to the frame-rate conversion; the VMAF reference repeats them exactly.
/// The conversion to 8-bit 4:2:0 BT.709 comes first, once at the source size, so a 10-bit or 4:4:4 source is not
/// converted again by every rung; deinterlace only acts on interlaced input; videoflip applies the rotation tag of
/// phone videos. The first element is named `vin` (decodebin's video is linked to it).
pub(crate) const PREPARE_SOURCE: &str = "videoconvert name=vin ! \
    video/x-raw,format=I420,colorimetry=bt709,chroma-site=mpeg2 ! deinterlace ! videoflip video-direction=auto";
