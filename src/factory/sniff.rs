//! Recognises media files by their first bytes, so that an HTML error page, a playlist or a JSON answer is refused
//! before anything expensive is done with it.
//!
//! A download sniffs its first [`SNIFF_LEN`] bytes as soon as they arrive (`factory::download`); a local file is
//! sniffed before it is hashed and probed (`factory::job`). This module depends on nothing else in the factory: its
//! errors are its own, and the download's error converts from them with the same messages.

use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// How many leading bytes [`sniff`] and [`sniff_bytes`] look at; a download is sniffed once it has this many.
pub const SNIFF_LEN: usize = 4096;

/// What the first bytes of a file say it is. The prober has the last word; this only catches the obvious early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// ISO base media: MP4, M4A, M4V, 3GP.
    Mp4,
    /// QuickTime MOV, with a `qt  ` brand or without `ftyp` at all.
    QuickTime,
    Matroska,
    WebM,
    Avi,
    Wav,
    Aiff,
    MpegTs,
    /// MPEG-TS with a 4-byte timestamp before every packet (Blu-ray, AVCHD).
    M2ts,
    MpegPs,
    Flv,
    Ogg,
    /// ASF: WMV and WMA.
    Asf,
    Mp3,
    /// AAC in ADTS frames.
    Adts,
    Flac,
    /// Binary data of no recognised kind: the prober decides.
    Unknown,
}

impl Sniffed {
    pub fn name(self) -> &'static str {
        match self {
            Sniffed::Mp4 => "MP4",
            Sniffed::QuickTime => "QuickTime",
            Sniffed::Matroska => "Matroska",
            Sniffed::WebM => "WebM",
            Sniffed::Avi => "AVI",
            Sniffed::Wav => "WAV",
            Sniffed::Aiff => "AIFF",
            Sniffed::MpegTs => "MPEG-TS",
            Sniffed::M2ts => "M2TS",
            Sniffed::MpegPs => "MPEG-PS",
            Sniffed::Flv => "FLV",
            Sniffed::Ogg => "Ogg",
            Sniffed::Asf => "ASF",
            Sniffed::Mp3 => "MP3",
            Sniffed::Adts => "AAC (ADTS)",
            Sniffed::Flac => "FLAC",
            Sniffed::Unknown => "unknown binary data",
        }
    }
}

impl fmt::Display for Sniffed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a file could not be sniffed, or what it is instead of media. Every message starts with the file's path.
#[derive(Debug, thiserror::Error)]
pub enum SniffError {
    /// The file could not be read; `what` names it and the action ("clip.mp4: cannot open").
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    /// `what` says what the bytes look like instead, e.g. "is an HTML page, not a media file".
    #[error("{}: {what}", .path.display())]
    NotMedia { path: PathBuf, what: &'static str },
}

/// Looks at the first [`SNIFF_LEN`] bytes of a file: `Ok(kind)` for a recognised media container, `Ok(Unknown)` for
/// other binary data, and [`SniffError::NotMedia`] for text (HTML, XML, JSON, playlists, plain text) or an empty
/// file, saying what it looks like.
pub fn sniff(path: &Path) -> Result<Sniffed, SniffError> {
    let io_error = |action: &str| {
        let what = format!("{}: cannot {action}", path.display());
        move |source: io::Error| SniffError::Io { what, source }
    };
    let file = std::fs::File::open(path).map_err(io_error("open"))?;
    let mut head = Vec::with_capacity(SNIFF_LEN);
    file.take(SNIFF_LEN as u64).read_to_end(&mut head).map_err(io_error("read"))?;
    sniff_bytes(&head).map_err(|what| SniffError::NotMedia { path: path.to_path_buf(), what })
}

/// [`sniff`] for bytes already in memory (the start of a file); the error says what they look like instead.
pub fn sniff_bytes(head: &[u8]) -> Result<Sniffed, &'static str> {
    if head.is_empty() {
        return Err("is empty (0 bytes)");
    }
    if let Some(kind) = container(head) {
        return Ok(kind);
    }
    match text_kind(head) {
        Some(what) => Err(what),
        None => Ok(Sniffed::Unknown),
    }
}

const ASF_HEADER_GUID: [u8; 16] =
    [0x30, 0x26, 0xB2, 0x75, 0x8E, 0x66, 0xCF, 0x11, 0xA6, 0xD9, 0x00, 0xAA, 0x00, 0x62, 0xCE, 0x6C];
const EBML_MAGIC: [u8; 4] = [0x1A, 0x45, 0xDF, 0xA3];
const PS_PACK_START: [u8; 4] = [0x00, 0x00, 0x01, 0xBA];

fn container(bytes: &[u8]) -> Option<Sniffed> {
    let at = |offset: usize, signature: &[u8]| bytes.get(offset..offset + signature.len()) == Some(signature);
    if at(4, b"ftyp") {
        return match bytes.get(8..12) {
            Some(b"qt  ") => Some(Sniffed::QuickTime),
            // HEIF and AVIF still images share the box structure.
            Some(b"heic" | b"heix" | b"mif1" | b"msf1" | b"avif" | b"avis") => None,
            _ => Some(Sniffed::Mp4),
        };
    }
    // QuickTime files from before `ftyp` start straight with one of these boxes.
    if [b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot"].iter().any(|tag| at(4, *tag)) {
        return Some(Sniffed::QuickTime);
    }
    if at(0, &EBML_MAGIC) {
        // The DocType sits in the EBML header, within its first few dozen bytes.
        let header = &bytes[..bytes.len().min(64)];
        return Some(if contains(header, b"webm") { Sniffed::WebM } else { Sniffed::Matroska });
    }
    if at(0, b"RIFF") || at(0, b"RF64") {
        return match bytes.get(8..12) {
            Some(b"AVI " | b"AVIX") => Some(Sniffed::Avi),
            Some(b"WAVE") => Some(Sniffed::Wav),
            _ => None,
        };
    }
    if at(0, b"FORM") && (at(8, b"AIFF") || at(8, b"AIFC")) {
        return Some(Sniffed::Aiff);
    }
    if at(0, b"FLV\x01") {
        return Some(Sniffed::Flv);
    }
    if at(0, b"OggS") {
        return Some(Sniffed::Ogg);
    }
    if at(0, &ASF_HEADER_GUID) {
        return Some(Sniffed::Asf);
    }
    if at(0, b"fLaC") {
        return Some(Sniffed::Flac);
    }
    if at(0, &PS_PACK_START) {
        return Some(Sniffed::MpegPs);
    }
    if transport_stream(bytes, 188, 0) {
        return Some(Sniffed::MpegTs);
    }
    if transport_stream(bytes, 192, 4) {
        return Some(Sniffed::M2ts);
    }
    if at(0, b"ID3") {
        // An ID3v2 tag (10-byte header, size in 7-bit bytes) usually precedes MP3, sometimes AAC or FLAC.
        let tag_len =
            bytes.get(6..10).map_or(0, |size| size.iter().fold(0usize, |n, b| (n << 7) | usize::from(b & 0x7f)));
        let after = bytes.get(10 + tag_len..).unwrap_or_default();
        return Some(match container(after) {
            Some(kind @ (Sniffed::Adts | Sniffed::Flac)) => kind,
            _ => Sniffed::Mp3,
        });
    }
    if mpeg_audio_frame(bytes) {
        return Some(Sniffed::Mp3);
    }
    if adts_frame(bytes) {
        return Some(Sniffed::Adts);
    }
    None
}

/// The 0x47 sync byte at the start of every packet there is room for, at least two of them.
fn transport_stream(bytes: &[u8], packet: usize, offset: usize) -> bool {
    let syncs: Vec<u8> = bytes.iter().skip(offset).step_by(packet).copied().collect();
    syncs.len() >= 2 && syncs.iter().all(|&b| b == 0x47)
}

/// An MPEG-1/2/2.5 audio frame header with no reserved or invalid field.
fn mpeg_audio_frame(bytes: &[u8]) -> bool {
    let Some(&[b0, b1, b2, b3]) = bytes.get(..4) else { return false };
    let header = u32::from_be_bytes([b0, b1, b2, b3]);
    let sync = header >> 21 == 0x7ff;
    let version = (header >> 19) & 3; // 1 is reserved
    let layer = (header >> 17) & 3; // 0 is reserved
    let bitrate = (header >> 12) & 0xf; // 15 is invalid; 0 ("free format") is too rare to count
    let sample_rate = (header >> 10) & 3; // 3 is reserved
    let emphasis = header & 3; // 2 is reserved
    sync && version != 1 && layer != 0 && bitrate != 0 && bitrate != 15 && sample_rate != 3 && emphasis != 2
}

/// An ADTS header: 12-bit sync, layer 0, a valid sampling-frequency index.
fn adts_frame(bytes: &[u8]) -> bool {
    match bytes.get(..3) {
        Some(&[0xff, b1, b2]) => b1 & 0xf6 == 0xf0 && (b2 >> 2) & 0xf < 13,
        _ => false,
    }
}

/// Lowercase tags that make markup HTML; the first two are only ever found in a whole page.
const HTML_MARKERS: [&[u8]; 10] =
    [b"<!doctype html", b"<html", b"<head", b"<body", b"<title", b"<meta", b"<script", b"<div", b"<h1", b"<p>"];

/// What text looks like, or `None` if the bytes are not text. Control bytes other than whitespace (and ESC) mean
/// binary; bytes above 0x7F are allowed so that Latin-1 pages count as text too.
fn text_kind(bytes: &[u8]) -> Option<&'static str> {
    if bytes.iter().any(|&b| matches!(b, 0x00..=0x08 | 0x0e..=0x1a | 0x1c..=0x1f | 0x7f)) {
        return None;
    }
    let text = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let text = &text[text.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(text.len())..];
    let lower = text.to_ascii_lowercase();
    let markup = text.starts_with(b"<");
    // Markup is HTML if any common tag shows; other text only if it holds a whole page (after a PHP warning, say).
    let html = if markup { &HTML_MARKERS[..] } else { &HTML_MARKERS[..2] };
    Some(if html.iter().any(|marker| contains(&lower, marker)) {
        "is an HTML page, not a media file"
    } else if markup {
        "is an XML document, not a media file"
    } else if text.starts_with(b"#EXTM3U") {
        "is an M3U playlist (a stream, not a media file)"
    } else if looks_like_json(text) {
        "is JSON, not a media file"
    } else {
        "is plain text, not a media file"
    })
}

fn looks_like_json(text: &[u8]) -> bool {
    let next = |rest: &[u8]| rest.iter().copied().find(|b| !b.is_ascii_whitespace());
    match text.split_first() {
        Some((b'{', rest)) => matches!(next(rest), Some(b'"' | b'}') | None),
        Some((b'[', rest)) => {
            matches!(next(rest), Some(b'{' | b'[' | b'"' | b']' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n') | None)
        }
        _ => false,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

/// Test bytes that sniff as media, shared with the download tests.
#[cfg(test)]
pub(super) mod test_bytes {
    /// Bytes that sniff as MP4 followed by noise, different for every seed.
    pub(in crate::factory) fn media(len: usize, seed: u64) -> Vec<u8> {
        let mut bytes = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2".to_vec();
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        while bytes.len() < len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            bytes.extend_from_slice(&state.to_le_bytes());
        }
        bytes.truncate(len);
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::test_bytes::media;
    use super::*;
    use vvtv_testkit::media::render;

    #[test]
    fn sniffs_media_made_by_gstreamer() {
        let dir = tempfile::tempdir().expect("temp dir");
        let video = "videotestsrc num-buffers=5 ! video/x-raw,width=64,height=48,framerate=25/1";
        let h264 = format!("{video} ! x264enc ! h264parse");
        let audio = "audiotestsrc num-buffers=5";
        let cases = [
            ("a.mp4", format!("{h264} ! mp4mux"), Sniffed::Mp4),
            ("a.mov", format!("{h264} ! qtmux"), Sniffed::QuickTime),
            ("a.mkv", format!("{h264} ! matroskamux"), Sniffed::Matroska),
            ("a.webm", format!("{video} ! vp8enc ! webmmux"), Sniffed::WebM),
            ("a.ts", format!("{h264} ! mpegtsmux"), Sniffed::MpegTs),
            ("a.m2ts", format!("{h264} ! mpegtsmux m2ts-mode=true"), Sniffed::M2ts),
            ("a.mpg", format!("{h264} ! mpegpsmux"), Sniffed::MpegPs),
            ("a.flv", format!("{h264} ! flvmux"), Sniffed::Flv),
            ("a.avi", format!("{video} ! avenc_mpeg4 ! avimux"), Sniffed::Avi),
            ("a.wmv", format!("{video} ! avenc_wmv2 ! asfmux"), Sniffed::Asf),
            ("a.ogg", format!("{audio} ! vorbisenc ! oggmux"), Sniffed::Ogg),
            ("a.wav", format!("{audio} ! wavenc"), Sniffed::Wav),
            ("a.aiff", format!("{audio} ! aiffmux"), Sniffed::Aiff),
            ("a.flac", format!("{audio} ! flacenc"), Sniffed::Flac),
            ("a.mp3", format!("{audio} ! lamemp3enc"), Sniffed::Mp3),
            ("a.aac", format!("{audio} ! avenc_aac ! aacparse ! audio/mpeg,stream-format=adts"), Sniffed::Adts),
        ];
        for (name, pipeline, expected) in cases {
            let path = dir.path().join(name);
            render(&pipeline, &path).expect(name);
            assert_eq!(sniff(&path).expect(name), expected, "{name}");
        }
    }

    #[test]
    fn sniff_refuses_text_and_empty_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cases: [(&str, &[u8], &str); 8] = [
            ("empty.mp4", b"", "is empty (0 bytes)"),
            (
                "page.mp4",
                b"\n\n<!doctype html><html><body>Not found</body></html>",
                "is an HTML page, not a media file",
            ),
            ("error.mp4", b"<h1>502 Bad Gateway</h1>", "is an HTML page, not a media file"),
            ("feed.mp4", b"<?xml version=\"1.0\"?><rss><channel/></rss>", "is an XML document, not a media file"),
            ("api.mp4", b"{\"error\": \"token expired\"}", "is JSON, not a media file"),
            ("list.mp4", b"[{\"id\": 1}]", "is JSON, not a media file"),
            ("live.mp4", b"#EXTM3U\n#EXT-X-VERSION:3\nseg0.ts\n", "is an M3U playlist (a stream, not a media file)"),
            ("note.mp4", "Ce fichier a été déplacé.\n".as_bytes(), "is plain text, not a media file"),
        ];
        for (name, bytes, what) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).expect("write");
            let error = sniff(&path).expect_err(name);
            assert!(matches!(error, SniffError::NotMedia { .. }), "{name}: {error:?}");
            assert_eq!(error.to_string(), format!("{}: {what}", path.display()));
        }
    }

    #[test]
    fn sniff_leaves_unknown_binary_to_the_prober() {
        let mut random = media(5000, 18);
        random[..24].copy_from_slice(&[0x13; 24]);
        assert_eq!(sniff_bytes(&random), Ok(Sniffed::Unknown));
        assert_eq!(sniff_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"), Ok(Sniffed::Unknown), "JPEG");
        assert_eq!(sniff_bytes(b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00"), Ok(Sniffed::Unknown), "AVIF still");
        assert!(sniff(Path::new("/nonexistent/clip.mp4")).is_err_and(|e| matches!(e, SniffError::Io { .. })));
    }

    #[test]
    fn sniffs_signatures_in_memory() {
        let mut ts = vec![0u8; 188 * 3];
        ts.iter_mut().step_by(188).for_each(|b| *b = 0x47);
        assert_eq!(sniff_bytes(&ts), Ok(Sniffed::MpegTs));
        ts[188 * 2] = 0;
        assert_ne!(sniff_bytes(&ts), Ok(Sniffed::MpegTs), "every packet must start with the sync byte");
        assert_eq!(sniff_bytes(b"G\nG"), Err("is plain text, not a media file"), "one sync byte is not a stream");
        assert_eq!(sniff_bytes(b"\x00\x00\x00\x08wide\x00\x00\x00\x00mdat"), Ok(Sniffed::QuickTime));
        assert_eq!(sniff_bytes(b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00"), Ok(Sniffed::QuickTime));
        assert_eq!(sniff_bytes(b"\x00\x00\x00\x14ftyp3gp4\x00\x00\x02\x00"), Ok(Sniffed::Mp4));
        assert_eq!(sniff_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x00\xff\xfb\x90\x64"), Ok(Sniffed::Mp3));
        assert_eq!(sniff_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x02\x00\x00\xff\xf1\x50\x80"), Ok(Sniffed::Adts));
        assert_eq!(sniff_bytes(b"\xff\xfb\xf0\x64\x00\x00"), Ok(Sniffed::Unknown), "bitrate index 15 is invalid");
    }
}
