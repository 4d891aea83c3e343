//! Settings, segments and readers the playlist tests share.

use super::{Playlist, PlaylistSettings, Rung, Segment};
use chrono::{DateTime, TimeDelta, Utc};
use m3u8_rs::{MediaPlaylist, Playlist as M3u8};
use std::path::Path;
use std::time::Duration;

pub(super) const GRACE: Duration = Duration::from_secs(60);

pub(super) fn rung(name: &str, width: u32, height: u32, kbps: u64) -> Rung {
    Rung {
        name: name.into(),
        bandwidth: kbps * 1100,
        average_bandwidth: kbps * 1000,
        width,
        height,
        codecs: "avc1.640028,mp4a.40.2".into(),
        frame_rate: 30.0,
    }
}

pub(super) fn settings(dir: &Path, rungs: Vec<Rung>, window: usize) -> PlaylistSettings {
    PlaylistSettings { dir: dir.to_path_buf(), rungs, window, segment_duration: Duration::from_secs(4), grace: GRACE }
}

pub(super) fn two_rungs(dir: &Path, window: usize) -> PlaylistSettings {
    settings(dir, vec![rung("720p", 1280, 720, 2500), rung("360p", 640, 360, 700)], window)
}

pub(super) fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2030-01-02T03:04:05.678Z").map(|t| t.with_timezone(&Utc)).expect("valid time")
}

pub(super) fn pdt(seq: u64) -> DateTime<Utc> {
    t0() + TimeDelta::seconds(4 * seq as i64)
}

/// Pushes segment `seq` the way the engine does: the segmenter has closed the file on every rung first.
pub(super) fn push(pl: &mut Playlist, seq: u64) {
    for r in &pl.settings().rungs.clone() {
        std::fs::write(pl.segment_path(&r.name, seq), b"ts").expect("write segment");
    }
    pl.push_segment(Segment {
        seq,
        duration: Duration::from_secs(4),
        program_date_time: pdt(seq),
        discontinuity: false,
        epoch: 0,
    })
    .expect("push");
}

pub(super) fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Parses with m3u8-rs, an independent HLS parser: proves the output is valid HLS.
pub(super) fn media(path: &Path) -> MediaPlaylist {
    match m3u8_rs::parse_playlist_res(read(path).as_bytes()) {
        Ok(M3u8::MediaPlaylist(p)) => p,
        other => panic!("{} is not a media playlist: {other:?}", path.display()),
    }
}

pub(super) fn uris(p: &MediaPlaylist) -> Vec<String> {
    p.segments.iter().map(|s| s.uri.clone()).collect()
}
