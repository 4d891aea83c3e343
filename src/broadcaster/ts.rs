//! The HLS segmenter of one rung: writes MPEG-TS segments straight from the demuxed MP4 samples.
//!
//! A remux needs no muxer element: H.264 from MP4 (length-prefixed NAL units plus an `avcC`) becomes Annex B by
//! swapping each length for a start code, and raw AAC becomes ADTS by prefixing a 7-byte header. Each sample is one
//! PES packet cut into 188-byte TS packets, written through one buffered file per segment. Per buffer that is a
//! couple of copies and no thread hand-off, which is what keeps a channel at a few hundredths of a core.
//!
//! Video and audio are interleaved by time (video DTS against audio PTS) so each segment holds the audio of its
//! own time span. A segment starts at a keyframe, with PAT and PMT, and is closed at the first keyframe where
//! another whole GOP would not fit in the target duration.

use super::layout::segment_file_name;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::sync::Arc;

const PACKET: usize = 188;
const PMT_PID: u16 = 0x1000;
const VIDEO_PID: u16 = 0x100;
const AUDIO_PID: u16 = 0x101;
/// The PCR sent with a frame is this much earlier than its DTS: the time a decoder has to receive it before decoding.
const PCR_LEAD_TICKS: i64 = 9_000;
/// A stream waits for the other to interleave at most this far ahead of it (an item without audio still airs).
const MAX_AHEAD_NS: i64 = 2_000_000_000;
/// Keyframe times that differ by less than this are the same (timestamps are rounded to whole nanoseconds).
const SLACK_NS: i64 = 1_000_000;
const TS_WRAP: i64 = 1 << 33;

/// H.264 as stored in MP4, and what Annex B needs from its `avcC`.
#[derive(Debug, Clone, PartialEq)]
pub struct Avc {
    nal_length_size: usize,
    /// SPS and PPS, each behind a start code: repeated before every keyframe so each segment decodes alone.
    parameter_sets: Vec<u8>,
}

impl Avc {
    /// Reads an `AVCDecoderConfigurationRecord` (ISO/IEC 14496-15 5.2.4.1).
    pub fn from_avcc(avcc: &[u8]) -> Result<Avc, String> {
        let short = || "avcC record is truncated".to_string();
        if avcc.len() < 7 || avcc[0] != 1 {
            return Err("not an avcC record (version 1)".into());
        }
        let nal_length_size = usize::from(avcc[4] & 0x03) + 1;
        if nal_length_size == 3 {
            return Err("avcC NAL length size 3 is not allowed".into());
        }
        let mut parameter_sets = Vec::new();
        let mut pos = 5;
        for mask in [0x1f, 0xff] {
            let count = *avcc.get(pos).ok_or_else(short)? & mask;
            pos += 1;
            for _ in 0..count {
                let len = usize::from(u16::from_be_bytes([
                    *avcc.get(pos).ok_or_else(short)?,
                    *avcc.get(pos + 1).ok_or_else(short)?,
                ]));
                let nal = avcc.get(pos + 2..pos + 2 + len).ok_or_else(short)?;
                parameter_sets.extend_from_slice(&[0, 0, 0, 1]);
                parameter_sets.extend_from_slice(nal);
                pos += 2 + len;
            }
        }
        if parameter_sets.is_empty() {
            return Err("avcC record has no SPS/PPS".into());
        }
        Ok(Avc { nal_length_size, parameter_sets })
    }

    /// From demuxer caps: `video/x-h264, stream-format=avc|avc3, codec_data=…`.
    pub fn from_caps(caps: &gst::CapsRef) -> Result<Avc, String> {
        let s = caps.structure(0).ok_or("video caps are empty")?;
        if s.name() != "video/x-h264" {
            return Err(format!("video is {}, the house format is H.264", s.name()));
        }
        match s.get::<&str>("stream-format") {
            Ok("avc") | Ok("avc3") => {}
            other => return Err(format!("H.264 stream-format {other:?}, expected avc (MP4)")),
        }
        let data = s.get::<gst::Buffer>("codec_data").map_err(|_| "H.264 caps carry no codec_data (avcC)")?;
        let map = data.map_readable().map_err(|e| e.to_string())?;
        Avc::from_avcc(&map)
    }

    /// Appends one access unit as Annex B: an access unit delimiter, the parameter sets before a keyframe (unless
    /// the sample carries its own), then every NAL unit but delimiters behind a start code.
    fn annex_b(&self, sample: &[u8], keyframe: bool, out: &mut Vec<u8>) -> Result<(), String> {
        let mut has_sps = false;
        for nal in self.nal_units(sample) {
            has_sps |= nal?[0] & 0x1f == 7;
        }
        out.extend_from_slice(&[0, 0, 0, 1, 0x09, 0xf0]);
        if keyframe && !has_sps {
            out.extend_from_slice(&self.parameter_sets);
        }
        // The first pass has validated every length.
        for nal in self.nal_units(sample).flatten().filter(|nal| nal[0] & 0x1f != 9) {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(nal);
        }
        Ok(())
    }

    /// The non-empty NAL units of one length-prefixed sample, in order.
    fn nal_units<'a>(&self, sample: &'a [u8]) -> impl Iterator<Item = Result<&'a [u8], String>> + 'a {
        let n = self.nal_length_size;
        let mut pos = 0;
        std::iter::from_fn(move || {
            while pos < sample.len() {
                let Some(head) = sample.get(pos..pos + n) else {
                    pos = sample.len();
                    return Some(Err("truncated NAL length".to_string()));
                };
                let len = head.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
                let Some(nal) = sample.get(pos + n..pos + n + len) else {
                    pos = sample.len();
                    return Some(Err("NAL unit runs past the sample".to_string()));
                };
                pos += n + len;
                if !nal.is_empty() {
                    return Some(Ok(nal));
                }
            }
            None
        })
    }
}

/// What an ADTS header needs from an AAC `AudioSpecificConfig`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adts {
    profile: u8,
    frequency_index: u8,
    channels: u8,
}

impl Adts {
    /// Reads the first two bytes of an `AudioSpecificConfig` (ISO/IEC 14496-3 1.6.2.1).
    pub fn from_asc(asc: &[u8]) -> Result<Adts, String> {
        let [a, b, ..] = *asc else { return Err("AudioSpecificConfig is truncated".into()) };
        let object_type = a >> 3;
        let frequency_index = ((a & 0x07) << 1) | (b >> 7);
        let channels = (b >> 3) & 0x0f;
        if !(1..=4).contains(&object_type) {
            return Err(format!("AAC object type {object_type} cannot be carried in ADTS"));
        }
        if frequency_index > 12 {
            return Err(format!("AAC sample rate index {frequency_index} cannot be carried in ADTS"));
        }
        Ok(Adts { profile: object_type - 1, frequency_index, channels })
    }

    /// From demuxer caps: `audio/mpeg, mpegversion=4, stream-format=raw, codec_data=…`.
    pub fn from_caps(caps: &gst::CapsRef) -> Result<Adts, String> {
        let s = caps.structure(0).ok_or("audio caps are empty")?;
        if s.name() != "audio/mpeg" || s.get::<i32>("mpegversion").ok() != Some(4) {
            return Err(format!("audio is {s}, the house format is AAC"));
        }
        if s.get::<&str>("stream-format").ok() != Some("raw") {
            return Err("AAC is not raw (MP4) framing".into());
        }
        let data = s.get::<gst::Buffer>("codec_data").map_err(|_| "AAC caps carry no codec_data")?;
        let map = data.map_readable().map_err(|e| e.to_string())?;
        Adts::from_asc(&map)
    }

    /// Reads the header of one ADTS frame; returns the framing and the header's length.
    pub fn from_adts_frame(frame: &[u8]) -> Result<(Adts, usize), String> {
        let [0xff, b1, b2, b3, _, _, _, ..] = *frame else { return Err("not an ADTS frame".into()) };
        if b1 & 0xf6 != 0xf0 {
            return Err("not an ADTS frame".into());
        }
        let adts = Adts { profile: b2 >> 6, frequency_index: (b2 >> 2) & 0x0f, channels: ((b2 & 1) << 2) | (b3 >> 6) };
        let header = if b1 & 1 == 1 { 7 } else { 9 };
        Ok((adts, header))
    }

    fn header(&self, payload: usize) -> [u8; 7] {
        let len = payload + 7;
        [
            0xff,
            0xf1,
            (self.profile << 6) | (self.frequency_index << 2) | (self.channels >> 2),
            ((self.channels & 3) << 6) | ((len >> 11) & 0x03) as u8,
            ((len >> 3) & 0xff) as u8,
            (((len & 0x07) << 5) as u8) | 0x1f,
            0xfc,
        ]
    }
}

/// One video access unit on the output timeline (ns).
pub struct Video {
    pub pts: i64,
    pub dts: i64,
    pub duration: i64,
    pub keyframe: bool,
    pub data: gst::Buffer,
    pub avc: Arc<Avc>,
}

/// One raw AAC frame on the output timeline (ns).
pub struct Audio {
    pub pts: i64,
    pub data: gst::Buffer,
    pub adts: Adts,
}

/// A segment every player may now fetch.
#[derive(Debug, Clone, PartialEq)]
pub struct Closed {
    pub rung: usize,
    pub index: u64,
    /// Timeline of the first keyframe and of the end of the last frame (ns).
    pub start_ns: i64,
    pub end_ns: i64,
}

struct Open {
    index: u64,
    start_ns: i64,
    path: PathBuf,
    file: BufWriter<File>,
}

/// Settings of one rung's segmenter.
pub struct SegmenterSettings {
    pub rung: usize,
    /// The rung's folder; segments are `seg{index:08}.ts` in it.
    pub dir: PathBuf,
    pub first_index: u64,
    pub target_ns: i64,
    /// The longest GOP the house format makes: a segment is closed when one more would not fit.
    pub gop_ns: i64,
}

pub struct Segmenter {
    s: SegmenterSettings,
    next_index: u64,
    open: Option<Open>,
    /// Continuity counters: PAT, PMT, video, audio.
    cc: [u8; 4],
    video: VecDeque<Video>,
    audio: VecDeque<Audio>,
    video_end: i64,
    pes: Vec<u8>,
    /// PAT and PMT sections: the same at the head of every segment.
    pat: Vec<u8>,
    pmt: Vec<u8>,
    closed: Sender<Closed>,
    failure: Option<String>,
}

impl Segmenter {
    pub fn new(s: SegmenterSettings, closed: Sender<Closed>) -> Segmenter {
        let next_index = s.first_index;
        Segmenter {
            s,
            next_index,
            open: None,
            cc: [0; 4],
            video: VecDeque::new(),
            audio: VecDeque::new(),
            video_end: 0,
            pes: Vec::with_capacity(256 * 1024),
            pat: psi_section(0x00, &[0x00, 0x01, 0xe0 | (PMT_PID >> 8) as u8, PMT_PID as u8], 0x0001),
            pmt: pmt_section(),
            closed,
            failure: None,
        }
    }

    /// The first write error, naming the file; the segmenter writes nothing more after it.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    pub fn push_video(&mut self, v: Video) {
        self.video.push_back(v);
        self.interleave(false);
    }

    pub fn push_audio(&mut self, a: Audio) {
        self.audio.push_back(a);
        self.interleave(false);
    }

    /// Writes everything queued and closes the open segment (end of the stream).
    pub fn finish(&mut self) {
        self.interleave(true);
        let end = self.video_end;
        self.close(end);
    }

    /// Writes queued samples in time order while both streams have one queued; one stream alone goes on when the
    /// stream ends (`all`) or when it is too far ahead of the other.
    fn interleave(&mut self, all: bool) {
        loop {
            let alone = |queued_span: i64| all || queued_span > MAX_AHEAD_NS;
            let video_next = match (self.video.front(), self.audio.front()) {
                (Some(v), Some(a)) => v.dts <= a.pts,
                (Some(v), None) if alone(self.video.back().map_or(0, |b| b.dts) - v.dts) => true,
                (None, Some(a)) if alone(self.audio.back().map_or(0, |b| b.pts) - a.pts) => false,
                _ => return,
            };
            if video_next {
                let Some(v) = self.video.pop_front() else { return };
                self.write_video(v);
            } else {
                let Some(a) = self.audio.pop_front() else { return };
                self.write_audio(a);
            }
        }
    }

    fn write_video(&mut self, v: Video) {
        let cut = match &self.open {
            // A segment must open with a keyframe: whatever comes before the first one cannot be decoded anyway.
            None if !v.keyframe => return,
            None => true,
            Some(o) => v.keyframe && v.pts - o.start_ns + self.s.gop_ns > self.s.target_ns + SLACK_NS,
        };
        if cut {
            self.close(v.pts);
            self.start_segment(v.pts);
        }
        self.video_end = self.video_end.max(v.pts + v.duration);
        let mut pes = std::mem::take(&mut self.pes);
        pes.clear();
        let (pts, dts) = (ticks(v.pts), ticks(v.dts));
        pes_header(&mut pes, 0xe0, pts, (dts != pts).then_some(dts));
        let converted = match v.data.map_readable() {
            Ok(map) => v.avc.annex_b(&map, v.keyframe, &mut pes),
            Err(e) => Err(e.to_string()),
        };
        match converted {
            Ok(()) => {
                let pcr = (dts - PCR_LEAD_TICKS).rem_euclid(TS_WRAP);
                self.packets(VIDEO_PID, 2, &pes, Some(pcr), v.keyframe);
            }
            Err(e) => tracing::warn!(rung = self.s.rung, pts = v.pts, "video frame dropped: {e}"),
        }
        self.pes = pes;
    }

    fn write_audio(&mut self, a: Audio) {
        if self.open.is_none() {
            // A segment starts with a keyframe; audio before the first one has no segment to go to.
            return;
        }
        let Ok(map) = a.data.map_readable() else { return };
        let mut pes = std::mem::take(&mut self.pes);
        pes.clear();
        pes_header(&mut pes, 0xc0, ticks(a.pts), None);
        pes.extend_from_slice(&a.adts.header(map.len()));
        pes.extend_from_slice(&map);
        // Audio PES packets carry their length (the payload after the length field).
        let len = u16::try_from(pes.len() - 6).unwrap_or(0);
        pes[4..6].copy_from_slice(&len.to_be_bytes());
        self.packets(AUDIO_PID, 3, &pes, None, false);
        self.pes = pes;
    }

    fn start_segment(&mut self, start_ns: i64) {
        if self.failure.is_some() {
            return;
        }
        let index = self.next_index;
        self.next_index += 1;
        let path = self.s.dir.join(segment_file_name(index));
        match File::create(&path) {
            Ok(f) => {
                self.open = Some(Open { index, start_ns, path, file: BufWriter::with_capacity(128 * 1024, f) });
                let pat = psi_packet(0x0000, self.next_cc(0), &self.pat);
                let pmt = psi_packet(PMT_PID, self.next_cc(1), &self.pmt);
                self.write(&pat);
                self.write(&pmt);
            }
            Err(e) => self.fail(&path, e),
        }
    }

    /// Closes the open segment at `end_ns` and announces it.
    fn close(&mut self, end_ns: i64) {
        let Some(mut o) = self.open.take() else { return };
        if let Err(e) = o.file.flush() {
            self.fail(&o.path, e);
            return;
        }
        let closed = Closed { rung: self.s.rung, index: o.index, start_ns: o.start_ns, end_ns };
        // The runner is gone only when the channel is being torn down; the file is complete either way.
        let _ = self.closed.send(closed);
    }

    fn fail(&mut self, path: &std::path::Path, e: std::io::Error) {
        if self.failure.is_none() {
            self.failure = Some(format!("{}: {e}", path.display()));
        }
        self.open = None;
    }

    /// Cuts one PES packet into TS packets. The first carries the PCR and the random-access flag when asked; the
    /// last is filled up with adaptation-field stuffing.
    fn packets(&mut self, pid: u16, counter: usize, pes: &[u8], pcr: Option<i64>, random_access: bool) {
        let mut pos = 0;
        let mut first = true;
        while pos < pes.len() {
            let mut pkt = [0xffu8; PACKET];
            let pcr = pcr.filter(|_| first);
            let flags = first && (pcr.is_some() || random_access);
            let fixed = if pcr.is_some() {
                8
            } else if flags {
                2
            } else {
                0
            };
            let room = PACKET - 4 - fixed;
            let take = (pes.len() - pos).min(room);
            let adaptation = if take < room { PACKET - 4 - take } else { fixed };
            pkt[0] = 0x47;
            pkt[1] = if first { 0x40 } else { 0 } | (pid >> 8) as u8;
            pkt[2] = pid as u8;
            pkt[3] = if adaptation > 0 { 0x30 } else { 0x10 } | self.next_cc(counter);
            if adaptation > 0 {
                pkt[4] = (adaptation - 1) as u8;
                if adaptation > 1 {
                    pkt[5] = if first && random_access { 0x40 } else { 0 } | if pcr.is_some() { 0x10 } else { 0 };
                    if let Some(pcr) = pcr {
                        pkt[6..12].copy_from_slice(&pcr_bytes(pcr));
                    }
                }
            }
            pkt[4 + adaptation..].copy_from_slice(&pes[pos..pos + take]);
            pos += take;
            first = false;
            self.write(&pkt);
        }
    }

    fn next_cc(&mut self, counter: usize) -> u8 {
        let cc = self.cc[counter];
        self.cc[counter] = (cc + 1) & 0x0f;
        cc
    }

    fn write(&mut self, pkt: &[u8; PACKET]) {
        let Some(o) = self.open.as_mut() else { return };
        if let Err(e) = o.file.write_all(pkt) {
            let path = o.path.clone();
            self.fail(&path, e);
        }
    }
}

/// Nanoseconds to 90 kHz ticks, rounded, wrapped to 33 bits as MPEG-TS carries them.
fn ticks(ns: i64) -> i64 {
    ((ns * 9 + 50_000).div_euclid(100_000)).rem_euclid(TS_WRAP)
}

/// A PES header with PTS (and DTS when it differs); the length is 0 (unbounded) until the caller sets it.
fn pes_header(out: &mut Vec<u8>, stream_id: u8, pts: i64, dts: Option<i64>) {
    out.extend_from_slice(&[0, 0, 1, stream_id, 0, 0, 0x84]);
    match dts {
        Some(dts) => {
            out.extend_from_slice(&[0xc0, 10]);
            out.extend_from_slice(&timestamp(0x3, pts));
            out.extend_from_slice(&timestamp(0x1, dts));
        }
        None => {
            out.extend_from_slice(&[0x80, 5]);
            out.extend_from_slice(&timestamp(0x2, pts));
        }
    }
}

fn timestamp(prefix: u8, ts: i64) -> [u8; 5] {
    let ts = ts as u64;
    [
        (prefix << 4) | ((ts >> 29) & 0x0e) as u8 | 1,
        (ts >> 22) as u8,
        ((ts >> 14) & 0xfe) as u8 | 1,
        (ts >> 7) as u8,
        ((ts << 1) & 0xfe) as u8 | 1,
    ]
}

fn pcr_bytes(base: i64) -> [u8; 6] {
    let b = base as u64;
    [(b >> 25) as u8, (b >> 17) as u8, (b >> 9) as u8, (b >> 1) as u8, (((b & 1) << 7) as u8) | 0x7e, 0]
}

/// One TS packet holding a whole PSI section.
fn psi_packet(pid: u16, cc: u8, section: &[u8]) -> [u8; PACKET] {
    let mut pkt = [0xffu8; PACKET];
    pkt[0] = 0x47;
    pkt[1] = 0x40 | (pid >> 8) as u8;
    pkt[2] = pid as u8;
    pkt[3] = 0x10 | cc;
    pkt[4] = 0; // pointer field
    pkt[5..5 + section.len()].copy_from_slice(section);
    pkt
}

/// The program's one PMT: H.264 video (which carries the PCR) and ADTS AAC audio.
fn pmt_section() -> Vec<u8> {
    let mut body = vec![0xe0 | (VIDEO_PID >> 8) as u8, VIDEO_PID as u8, 0xf0, 0x00];
    for (stream_type, pid) in [(0x1b, VIDEO_PID), (0x0f, AUDIO_PID)] {
        body.extend_from_slice(&[stream_type, 0xe0 | (pid >> 8) as u8, pid as u8, 0xf0, 0x00]);
    }
    psi_section(0x02, &body, 0x0001)
}

/// A PSI section (PAT or PMT) with version 0 and its CRC.
fn psi_section(table_id: u8, body: &[u8], id: u16) -> Vec<u8> {
    let length = 5 + body.len() + 4;
    let mut s = vec![table_id, 0xb0 | (length >> 8) as u8, length as u8];
    s.extend_from_slice(&id.to_be_bytes());
    s.extend_from_slice(&[0xc1, 0x00, 0x00]);
    s.extend_from_slice(body);
    let crc = crc32_mpeg2(&s);
    s.extend_from_slice(&crc.to_be_bytes());
    s
}

fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in data {
        crc ^= u32::from(byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 { (crc << 1) ^ 0x04c1_1db7 } else { crc << 1 };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    const AVCC: [u8; 19] = [1, 0x64, 0, 0x28, 0xff, 0xe1, 0, 4, 0x67, 0x64, 0, 0x28, 1, 0, 2, 0x68, 0xee, 0x3c, 0x80];

    fn avc() -> Arc<Avc> {
        Arc::new(Avc::from_avcc(&AVCC[..17]).expect("avcC"))
    }

    #[test]
    fn pat_matches_the_common_single_program_table() {
        // The PAT every single-program muxer with TSID 1 and PMT PID 0x1000 writes, CRC included.
        let pat = psi_section(0x00, &[0x00, 0x01, 0xf0, 0x00], 0x0001);
        assert_eq!(
            pat,
            [0x00, 0xb0, 0x0d, 0x00, 0x01, 0xc1, 0x00, 0x00, 0x00, 0x01, 0xf0, 0x00, 0x2a, 0xb1, 0x04, 0xb2]
        );
        // A section followed by its CRC has a CRC of 0.
        let pmt = psi_section(0x02, &[0xe1, 0x00, 0xf0, 0x00, 0x1b, 0xe1, 0x00, 0xf0, 0x00], 1);
        assert_eq!(crc32_mpeg2(&pmt), 0);
    }

    #[test]
    fn avc_samples_become_annex_b_with_parameter_sets_before_keyframes() {
        let avc = avc();
        assert_eq!(avc.nal_length_size, 4);
        assert_eq!(avc.parameter_sets, [0, 0, 0, 1, 0x67, 0x64, 0, 0x28, 0, 0, 0, 1, 0x68, 0xee]);
        // An access unit delimiter (dropped: we write our own), an SEI and an IDR slice, 4-byte lengths.
        let sample = [0, 0, 0, 2, 0x09, 0x10, 0, 0, 0, 2, 0x06, 0xaa, 0, 0, 0, 3, 0x65, 0x88, 0x84];
        let mut out = Vec::new();
        avc.annex_b(&sample, true, &mut out).unwrap();
        let mut expected = vec![0, 0, 0, 1, 0x09, 0xf0];
        expected.extend_from_slice(&avc.parameter_sets);
        expected.extend_from_slice(&[0, 0, 0, 1, 0x06, 0xaa, 0, 0, 0, 1, 0x65, 0x88, 0x84]);
        assert_eq!(out, expected);
        out.clear();
        avc.annex_b(&[0, 0, 0, 2, 0x41, 0x9a], false, &mut out).unwrap();
        assert_eq!(out, [0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x41, 0x9a]);
        assert!(avc.annex_b(&[0, 0, 0, 9, 0x41], false, &mut out).is_err(), "a NAL running past the sample");
        assert!(Avc::from_avcc(&AVCC[..12]).is_err(), "a truncated record");
        assert!(Avc::from_avcc(&[0, 1, 2, 3, 4, 5, 6]).is_err(), "a wrong version");
    }

    #[test]
    fn adts_headers_carry_the_audio_config_and_frame_length() {
        // AAC-LC, 48 kHz, stereo.
        let adts = Adts::from_asc(&[0x11, 0x90]).unwrap();
        assert_eq!(adts, Adts { profile: 1, frequency_index: 3, channels: 2 });
        let header = adts.header(500);
        assert_eq!(Adts::from_adts_frame(&header), Ok((adts, 7)));
        let len = (usize::from(header[3] & 3) << 11) | (usize::from(header[4]) << 3) | usize::from(header[5] >> 5);
        assert_eq!(len, 507);
        assert!(Adts::from_asc(&[0x29, 0x90]).is_err(), "HE-AAC (object type 5) is not ADTS-able");
        assert!(Adts::from_adts_frame(&[0x47, 0, 0, 0, 0, 0, 0]).is_err());
    }

    /// What a TS reader sees of one file: per PID the continuity counters, PES timestamps and whether the PES
    /// started with the random-access flag.
    struct Parsed {
        pids: Vec<u16>,
        pes: Vec<(u16, i64, bool)>,
    }

    fn parse(bytes: &[u8]) -> Parsed {
        assert_eq!(bytes.len() % PACKET, 0, "whole packets only");
        let mut cc: std::collections::HashMap<u16, u8> = Default::default();
        let mut parsed = Parsed { pids: Vec::new(), pes: Vec::new() };
        for pkt in bytes.chunks(PACKET) {
            assert_eq!(pkt[0], 0x47, "sync byte");
            let pid = (u16::from(pkt[1] & 0x1f) << 8) | u16::from(pkt[2]);
            let counter = pkt[3] & 0x0f;
            if let Some(prev) = cc.insert(pid, counter) {
                assert_eq!(counter, (prev + 1) & 0x0f, "continuity on PID {pid:#x}");
            }
            let payload_at = if pkt[3] & 0x20 != 0 { 5 + usize::from(pkt[4]) } else { 4 };
            assert!(payload_at <= PACKET);
            let random_access = pkt[3] & 0x20 != 0 && pkt[4] > 0 && pkt[5] & 0x40 != 0;
            parsed.pids.push(pid);
            if pkt[1] & 0x40 != 0 && pid != 0 && pid != PMT_PID {
                let pes = &pkt[payload_at..];
                assert_eq!(&pes[..3], [0, 0, 1], "PES start code");
                let t = &pes[9..14];
                let pts = (i64::from(t[0] & 0x0e) << 29)
                    | (i64::from(t[1]) << 22)
                    | (i64::from(t[2] >> 1) << 15)
                    | (i64::from(t[3]) << 7)
                    | i64::from(t[4] >> 1);
                parsed.pes.push((pid, pts, random_access));
            }
        }
        parsed
    }

    #[test]
    fn segments_hold_whole_gops_up_to_the_target_and_their_own_audio() {
        gst::init().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let settings = SegmenterSettings {
            rung: 0,
            dir: dir.path().to_path_buf(),
            first_index: 7,
            target_ns: 4_000_000_000,
            gop_ns: 2_000_000_000,
        };
        let mut seg = Segmenter::new(settings, tx);
        let frame = 1_000_000_000 / 30;
        let adts = Adts::from_asc(&[0x11, 0x90]).unwrap();
        let avc = avc();
        let origin = 1_000_000_000;
        let (mut v, mut a) = (0i64, 0i64);
        // A frame before the first keyframe cannot open a segment: it is dropped.
        seg.push_video(Video {
            pts: origin - 2 * frame,
            dts: origin - 3 * frame,
            duration: frame,
            keyframe: false,
            data: gst::Buffer::from_slice([0, 0, 0, 2, 0x41, 0x9a]),
            avc: avc.clone(),
        });
        // 10 s: audio runs up to 80 ms ahead of video, as MP4 interleaving hands it over.
        while v < 300 {
            let pts = origin + v * 1_000_000_000 / 30;
            let key = v % 60 == 0;
            let nal: &[u8] = if key { &[0, 0, 0, 2, 0x65, 0x88] } else { &[0, 0, 0, 2, 0x41, 0x9a] };
            let mut data = nal.to_vec();
            data.resize(900 + (v as usize % 7) * 100, 0x5a);
            data[3] = (data.len() - 4) as u8;
            data[2] = ((data.len() - 4) >> 8) as u8;
            seg.push_video(Video {
                pts,
                dts: origin + (v - 1) * 1_000_000_000 / 30,
                duration: origin + (v + 1) * 1_000_000_000 / 30 - pts,
                keyframe: key,
                data: gst::Buffer::from_slice(data),
                avc: avc.clone(),
            });
            let audio_pts = |a: i64| origin + a * 1024 * 1_000_000_000 / 48_000;
            while audio_pts(a) < pts + 80_000_000 && audio_pts(a) < origin + 10_000_000_000 {
                seg.push_audio(Audio { pts: audio_pts(a), data: gst::Buffer::from_slice(vec![0x21; 300]), adts });
                a += 1;
            }
            v += 1;
        }
        seg.finish();
        assert!(seg.failure().is_none());
        let closed: Vec<Closed> = rx.try_iter().collect();
        let spans: Vec<(u64, i64, i64)> = closed.iter().map(|c| (c.index, c.start_ns, c.end_ns)).collect();
        let at = |s: i64| origin + s * 1_000_000_000;
        assert_eq!(spans, [(7, at(0), at(4)), (8, at(4), at(8)), (9, at(8), at(10))]);
        for c in &closed {
            let bytes = std::fs::read(dir.path().join(segment_file_name(c.index))).unwrap();
            let parsed = parse(&bytes);
            assert_eq!(parsed.pids[..2], [0, PMT_PID], "PAT and PMT open {}", c.index);
            let first = parsed.pes.first().unwrap();
            assert_eq!((first.0, first.1, first.2), (VIDEO_PID, ticks(c.start_ns), true), "starts on a keyframe");
            let video: Vec<i64> = parsed.pes.iter().filter(|p| p.0 == VIDEO_PID).map(|p| p.1).collect();
            assert_eq!(video.len() as i64, (c.end_ns - c.start_ns) / frame, "every frame once");
            // Each audio frame lies in the segment's span, give or take the one frame of B-frame delay.
            for (_, pts, _) in parsed.pes.iter().filter(|p| p.0 == AUDIO_PID) {
                assert!(*pts >= ticks(c.start_ns - frame) && *pts < ticks(c.end_ns), "audio {pts} in {c:?}");
            }
        }
        let audio_total: usize = closed
            .iter()
            .map(|c| {
                let bytes = std::fs::read(dir.path().join(segment_file_name(c.index))).unwrap();
                parse(&bytes).pes.iter().filter(|p| p.0 == AUDIO_PID).count()
            })
            .sum();
        assert_eq!(audio_total as i64, a, "no audio frame lost or repeated");
    }

    #[test]
    fn a_write_error_names_the_file() {
        gst::init().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("gone");
        let (tx, _rx) = std::sync::mpsc::channel();
        let settings = SegmenterSettings { rung: 0, dir: missing.clone(), first_index: 0, target_ns: 4, gop_ns: 2 };
        let mut seg = Segmenter::new(settings, tx);
        seg.push_video(Video {
            pts: 0,
            dts: 0,
            duration: 1,
            keyframe: true,
            data: gst::Buffer::from_slice([0, 0, 0, 1, 0x65]),
            avc: avc(),
        });
        seg.finish();
        let failure = seg.failure().expect("failure reported");
        assert!(failure.contains("gone/seg00000000.ts"), "{failure}");
    }
}
