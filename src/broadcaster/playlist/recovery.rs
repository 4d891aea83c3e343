//! Rebuilds a channel's window after a restart, crash or not, from the playlists and segment files on disk.
//!
//! The most advanced rung playlist that reads back cleanly is the truth; listed segments whose files are gone are
//! dropped, files never listed are removed, and the next segment starts a discontinuity. When no playlist can be
//! trusted, numbering restarts above every segment number seen on disk, so no URL a player may have fetched is ever
//! reused.

use super::render::temp_path;
use super::{ceil_secs, io_error, validate, Garbage, Playlist, PlaylistError, PlaylistSettings, Segment, MAX_SEGMENT};
use crate::broadcaster::layout::{parse_segment_file_name, rung_dir, segment_file_name, PLAYLIST_FILE};
use crate::broadcaster::published::{self, Published, PublishedRung, PublishedSender};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// How [`Playlist::recover`] found the channel's folder; worth an entry in the events table.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Recovery {
    /// Nothing on disk: a new channel, starting at media sequence 0.
    Fresh,
    /// The playlists written before the restart were read back; the next segment follows a discontinuity.
    Resumed { last_seq: u64, segments: usize, discontinuity_sequence: u64 },
    /// The playlists were unusable; numbering starts above everything found on disk, with a discontinuity.
    Restarted { next_seq: u64, reason: String },
}

impl fmt::Display for Recovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Recovery::Fresh => write!(f, "no previous playlists, starting at media sequence 0"),
            Recovery::Resumed { last_seq, segments, discontinuity_sequence } => write!(
                f,
                "resumed after segment {last_seq} with {segments} segments still listed \
                 (discontinuity sequence {discontinuity_sequence}); the next segment starts a discontinuity"
            ),
            Recovery::Restarted { next_seq, reason } => {
                write!(f, "previous playlists unusable ({reason}); restarting at media sequence {next_seq}")
            }
        }
    }
}

impl Playlist {
    /// Opens the channel's HLS folder: restores the window left by a previous run (crash or not), or starts fresh,
    /// and (re)writes the playlists. Call it before the segmenter starts, then have the segmenter number its files
    /// from [`Playlist::next_seq`]. Unusable playlists never fail this call (see [`Recovery`]); only a folder that
    /// cannot be created, listed or written does.
    pub fn recover(settings: PlaylistSettings) -> Result<Playlist, PlaylistError> {
        Playlist::recover_into(settings, published::channel().0)
    }

    /// [`Playlist::recover`], publishing every playlist it writes, from the recovered window on, to `published`.
    pub fn recover_into(settings: PlaylistSettings, published: PublishedSender) -> Result<Playlist, PlaylistError> {
        validate(&settings)?;
        let dir = settings.dir.clone();
        for rung in &settings.rungs {
            let path = rung_dir(&dir, &rung.name);
            std::fs::create_dir_all(&path).map_err(io_error(&path, "create folder"))?;
        }
        remove_stale_temp_files(&settings);

        // What is on disk: segment files per rung, and whatever the playlists say.
        let mut on_disk: Vec<BTreeMap<u64, SystemTime>> = Vec::with_capacity(settings.rungs.len());
        for rung in &settings.rungs {
            on_disk.push(scan_segments(&rung_dir(&dir, &rung.name))?);
        }
        let mut problems: Vec<String> = Vec::new();
        let mut any_playlist = false;
        let mut hinted_seq: Option<u64> = None;
        let mut best: Option<ParsedPlaylist> = None;
        for rung in &settings.rungs {
            let path = rung_dir(&dir, &rung.name).join(PLAYLIST_FILE);
            let text = match std::fs::read(&path) {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    problems.push(format!("{} is missing", path.display()));
                    continue;
                }
                Err(e) => {
                    problems.push(format!("cannot read {}: {e}", path.display()));
                    continue;
                }
            };
            any_playlist = true;
            hinted_seq = hinted_seq.max(highest_seq_mentioned(&text));
            match parse_media_playlist(&path, &text) {
                Ok(parsed) => {
                    // Rungs are written one after the other, so a crash can leave one rung a segment ahead: the
                    // most advanced one is the truth (its segments were closed on every rung before it was written).
                    if best.as_ref().is_none_or(|b| parsed.next_seq() > b.next_seq()) {
                        best = Some(parsed);
                    }
                }
                Err(e) => problems.push(e.to_string()),
            }
        }
        let highest_on_disk = on_disk.iter().filter_map(|files| files.keys().next_back().copied()).max();

        let mut playlist = Playlist {
            target_duration: ceil_secs(settings.segment_duration).max(1),
            settings,
            window: VecDeque::new(),
            next_seq: 0,
            discontinuity_sequence: 0,
            pending_discontinuity: false,
            garbage: Vec::new(),
            segments_written: 0,
            last_segment_at: None,
            recovery: Recovery::Fresh,
            published,
            epoch: 0,
            commit: None,
        };
        match best {
            Some(parsed) => playlist.resume_from(parsed, &on_disk, &problems),
            None if !any_playlist && highest_on_disk.is_none() => {
                tracing::info!(dir = %dir.display(), "new HLS output, starting at media sequence 0");
            }
            None => {
                // Nothing trustworthy: number above every segment a player could have seen, so no URL is reused.
                let next_seq = highest_on_disk.max(hinted_seq).map_or(0, |s| s.saturating_add(1));
                let reason = if problems.is_empty() {
                    "segments on disk but no playlist".to_string()
                } else {
                    problems.join("; ")
                };
                tracing::warn!(dir = %dir.display(), next_seq, %reason, "HLS playlists unusable, restarting numbering");
                playlist.next_seq = next_seq;
                playlist.pending_discontinuity = true;
                playlist.recovery = Recovery::Restarted { next_seq, reason };
            }
        }
        playlist.adopt_orphans(on_disk);
        playlist.write_after_recovery()?;
        Ok(playlist)
    }

    fn resume_from(&mut self, parsed: ParsedPlaylist, on_disk: &[BTreeMap<u64, SystemTime>], problems: &[String]) {
        let next_seq = parsed.next_seq();
        let mut segments = parsed.segments;
        // Keep the longest tail whose files exist on every rung: listing a missing file would stall players.
        let keep_from = segments
            .iter()
            .rposition(|s| !on_disk.iter().all(|files| files.contains_key(&s.seq)))
            .map_or(0, |missing| missing + 1);
        let dropped: Vec<Segment> = segments.drain(..keep_from).collect();
        // Dropped segments leave like slid-out ones: their discontinuities move into the sequence number.
        let dropped_discontinuities = dropped.iter().filter(|s| s.discontinuity).count() as u64;
        if !dropped.is_empty() {
            tracing::warn!(
                dir = %self.settings.dir.display(),
                dropped = dropped.len(),
                "listed segments missing on disk, dropped from the recovered window"
            );
        }
        self.discontinuity_sequence = parsed.discontinuity_sequence + dropped_discontinuities;
        self.next_seq = next_seq;
        // Capped: a hand-edited file must not announce a target duration no segment could have.
        self.target_duration = self.target_duration.max(parsed.target_duration.min(MAX_SEGMENT.as_secs()));
        for s in &segments {
            self.target_duration = self.target_duration.max(ceil_secs(s.duration));
        }
        self.window = segments.into();
        while self.window.len() > self.settings.window {
            // The configured window shrank across the restart.
            self.slide_out(Utc::now());
        }
        self.pending_discontinuity = true;
        let last_seq = next_seq.saturating_sub(1);
        self.recovery = Recovery::Resumed {
            last_seq,
            segments: self.window.len(),
            discontinuity_sequence: self.discontinuity_sequence,
        };
        if !problems.is_empty() {
            tracing::warn!(dir = %self.settings.dir.display(), problems = %problems.join("; "), "some rung playlists unusable");
        }
        tracing::info!(dir = %self.settings.dir.display(), %self.recovery, "HLS output recovered");
    }

    /// Files not in the recovered window: unlisted ones at or above the next number were never served and would
    /// be overwritten by the segmenter (go now); older ones may still be fetched by a player (go after grace,
    /// counted from their modification time).
    fn adopt_orphans(&mut self, on_disk: Vec<BTreeMap<u64, SystemTime>>) {
        let first_listed = self.window.front().map_or(self.next_seq, |s| s.seq);
        for (rung, files) in self.settings.rungs.iter().zip(on_disk) {
            for (seq, modified) in files {
                if (first_listed..self.next_seq).contains(&seq) {
                    continue;
                }
                let path = rung_dir(&self.settings.dir, &rung.name).join(segment_file_name(seq));
                if seq >= self.next_seq {
                    match std::fs::remove_file(&path) {
                        Ok(()) => {
                            tracing::info!(path = %path.display(), "removed unlisted segment left by the previous run")
                        }
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot remove unlisted segment"),
                    }
                } else {
                    self.garbage.push(Garbage { path, since: DateTime::<Utc>::from(modified) });
                }
            }
        }
    }

    fn write_after_recovery(&self) -> Result<(), PlaylistError> {
        if !self.window.is_empty() {
            return self.write_media_playlists();
        }
        // An empty live playlist makes some players give up; a 404 until the first segment makes them retry. The
        // channel's playlist goes too: it would list variants that do not exist yet. Also removes unusable
        // playlists so they are never served.
        self.publish_nothing();
        for path in self.playlist_paths() {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(PlaylistError::Io { path, action: "remove stale playlist", source: e }),
            }
        }
        Ok(())
    }
}

fn remove_stale_temp_files(settings: &PlaylistSettings) {
    let mut paths = vec![temp_path(&settings.dir.join(PLAYLIST_FILE))];
    paths.extend(settings.rungs.iter().map(|r| temp_path(&rung_dir(&settings.dir, &r.name).join(PLAYLIST_FILE))));
    for path in paths {
        if std::fs::remove_file(&path).is_ok() {
            tracing::info!(path = %path.display(), "removed a playlist temp file left by a crash");
        }
    }
}

/// Segment files in a rung folder, by number, with their modification time.
fn scan_segments(dir: &Path) -> Result<BTreeMap<u64, SystemTime>, PlaylistError> {
    let mut found = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(io_error(dir, "list"))? {
        let entry = entry.map_err(io_error(dir, "list"))?;
        let Some(seq) = entry.file_name().to_str().and_then(parse_segment_file_name) else { continue };
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_file() {
            found.insert(seq, meta.modified().unwrap_or(SystemTime::UNIX_EPOCH));
        }
    }
    Ok(found)
}

/// The highest `seg<digits>.ts` mentioned anywhere in a (possibly corrupt) playlist: a player may have seen it.
fn highest_seq_mentioned(text: &str) -> Option<u64> {
    text.split(|c: char| c.is_whitespace() || c == '/').filter_map(parse_segment_file_name).max()
}

/// What the previous run left on disk, for the origin to serve at once when the broadcaster starts: players and CDNs
/// fetching the channel across a restart get its last playlists and segments in the seconds before
/// [`Playlist::recover`] has rebuilt the window (whose publication replaces this). Served only if every rung's
/// playlist reads back cleanly and every segment it lists is on disk, so nothing listed is missing; else nothing.
pub fn left_on_disk(dir: &Path, rungs: &[String]) -> Published {
    let nothing = Published {
        channel: None,
        rungs: rungs.iter().map(|name| PublishedRung { name: name.clone(), playlist: None }).collect(),
        ..Default::default()
    };
    let mut published = nothing.clone();
    for rung in &mut published.rungs {
        let path = rung_dir(dir, &rung.name).join(PLAYLIST_FILE);
        let Ok(text) = std::fs::read_to_string(&path) else { return nothing };
        let Ok(parsed) = parse_media_playlist(&path, &text) else { return nothing };
        let on_disk = |seq: u64| rungs.iter().all(|r| rung_dir(dir, r).join(segment_file_name(seq)).is_file());
        if !parsed.segments.iter().all(|s| on_disk(s.seq)) {
            return nothing;
        }
        published.next_seq = published.next_seq.max(parsed.next_seq());
        rung.playlist = Some(Bytes::from(text));
    }
    match std::fs::read(dir.join(PLAYLIST_FILE)) {
        Ok(channel) if !rungs.is_empty() => published.channel = Some(Bytes::from(channel)),
        _ => return nothing,
    }
    published
}

/// A media playlist read back from disk.
#[derive(Debug)]
pub(super) struct ParsedPlaylist {
    media_sequence: u64,
    discontinuity_sequence: u64,
    target_duration: u64,
    segments: Vec<Segment>,
}

impl ParsedPlaylist {
    fn next_seq(&self) -> u64 {
        self.media_sequence + self.segments.len() as u64
    }
}

/// Reads back a media playlist as this module writes it. Strict where a mistake would mislead players (numbering,
/// durations, timestamps, a file cut short), lenient about tags it does not use.
pub(super) fn parse_media_playlist(path: &Path, text: &str) -> Result<ParsedPlaylist, PlaylistError> {
    let fail = |line: usize, reason: String| PlaylistError::Parse { path: path.to_path_buf(), line, reason };
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())).filter(|(_, l)| !l.is_empty());
    match lines.next() {
        Some((_, "#EXTM3U")) => {}
        Some((n, _)) => return Err(fail(n, "does not start with #EXTM3U".into())),
        None => return Err(fail(0, "is empty".into())),
    }
    let mut parsed =
        ParsedPlaylist { media_sequence: 0, discontinuity_sequence: 0, target_duration: 0, segments: Vec::new() };
    let mut discontinuity = false;
    let mut pdt: Option<DateTime<Utc>> = None;
    let mut duration: Option<Duration> = None;
    let mut last_line = 0;
    let number = |n: usize, v: &str| v.parse::<u64>().map_err(|_| fail(n, format!("{v:?} is not a number")));
    for (n, line) in lines {
        last_line = n;
        if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            parsed.media_sequence = number(n, v)?;
        } else if let Some(v) = line.strip_prefix("#EXT-X-DISCONTINUITY-SEQUENCE:") {
            parsed.discontinuity_sequence = number(n, v)?;
        } else if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            parsed.target_duration = number(n, v)?;
        } else if line == "#EXT-X-DISCONTINUITY" {
            discontinuity = true;
        } else if let Some(v) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            let t =
                DateTime::parse_from_rfc3339(v).map_err(|e| fail(n, format!("bad PROGRAM-DATE-TIME {v:?}: {e}")))?;
            pdt = Some(t.with_timezone(&Utc));
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            let secs = v.split(',').next().unwrap_or_default();
            let d = secs
                .parse::<f64>()
                .ok()
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
                .filter(|d| !d.is_zero() && *d <= MAX_SEGMENT)
                .ok_or_else(|| fail(n, format!("bad EXTINF duration {secs:?}")))?;
            duration = Some(d);
        } else if line.starts_with("#EXT-X-STREAM-INF") {
            return Err(fail(n, "is a multivariant playlist, not a media playlist".into()));
        } else if line.starts_with('#') {
            // Other tags (VERSION, INDEPENDENT-SEGMENTS, comments) carry nothing to restore.
        } else {
            let name = line.rsplit('/').next().unwrap_or(line);
            let seq =
                parse_segment_file_name(name).ok_or_else(|| fail(n, format!("{line:?} is not a segment name")))?;
            let expected = parsed.next_seq();
            if seq != expected {
                return Err(fail(n, format!("{line:?} should be media sequence {expected}")));
            }
            let duration = duration.take().ok_or_else(|| fail(n, format!("{line:?} has no EXTINF")))?;
            let program_date_time = pdt.take().ok_or_else(|| fail(n, format!("{line:?} has no PROGRAM-DATE-TIME")))?;
            parsed.segments.push(Segment {
                seq,
                duration,
                program_date_time,
                discontinuity: std::mem::take(&mut discontinuity),
                epoch: 0,
            });
        }
    }
    if duration.is_some() || pdt.is_some() || discontinuity {
        return Err(fail(last_line, "ends inside a segment's tags (cut short?)".into()));
    }
    if parsed.segments.is_empty() {
        return Err(fail(last_line, "lists no segment".into()));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn recover_continues_numbering_with_one_discontinuity_that_slides_out() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("720p").join(PLAYLIST_FILE);
        let before = {
            let mut pl = Playlist::recover(two_rungs(tmp.path(), 3)).expect("recover");
            for seq in 0..5 {
                push(&mut pl, seq);
            }
            read(&path)
            // Dropped without any shutdown step: what a kill -9 leaves.
        };
        let mut pl = Playlist::recover(two_rungs(tmp.path(), 3)).expect("recover");
        assert_eq!(pl.recovery(), &Recovery::Resumed { last_seq: 4, segments: 3, discontinuity_sequence: 0 });
        assert_eq!(read(&path), before, "the recovered window is the one players saw");
        assert_eq!(pl.next_seq(), 5);
        assert_eq!(pl.status().segments_written, 0);
        for seq in 2..5 {
            assert!(pl.segment_path("360p", seq).exists(), "listed segments stay fetchable");
        }

        push(&mut pl, 5);
        push(&mut pl, 6);
        let p = media(&path);
        assert_eq!((p.media_sequence, p.discontinuity_sequence), (4, 0));
        let flags: Vec<bool> = p.segments.iter().map(|s| s.discontinuity).collect();
        assert_eq!(flags, [false, true, false], "exactly one discontinuity, before the first new segment");
        assert_eq!(uris(&p), ["seg00000004.ts", "seg00000005.ts", "seg00000006.ts"]);

        // A second crash while the discontinuity is still listed: it must be restored, not doubled or lost.
        drop(pl);
        let mut pl = Playlist::recover(two_rungs(tmp.path(), 3)).expect("recover");
        push(&mut pl, 7);
        let p = media(&path);
        assert_eq!((p.media_sequence, p.discontinuity_sequence), (5, 0));
        let flags: Vec<bool> = p.segments.iter().map(|s| s.discontinuity).collect();
        assert_eq!(flags, [true, false, true]);

        // Slide both out: each one that leaves bumps DISCONTINUITY-SEQUENCE.
        push(&mut pl, 8);
        let p = media(&path);
        assert_eq!((p.media_sequence, p.discontinuity_sequence), (6, 1));
        push(&mut pl, 9);
        push(&mut pl, 10);
        let p = media(&path);
        assert_eq!((p.media_sequence, p.discontinuity_sequence), (8, 2));
        assert!(p.segments.iter().all(|s| !s.discontinuity));
        assert_eq!(media(&tmp.path().join("360p").join(PLAYLIST_FILE)).media_sequence, 8);
    }

    #[test]
    fn recover_takes_the_most_advanced_rung_and_drops_unlisted_files() {
        let tmp = tempfile::tempdir().expect("tempdir");
        {
            let mut pl = Playlist::recover(two_rungs(tmp.path(), 4)).expect("recover");
            for seq in 0..4 {
                push(&mut pl, seq);
            }
        }
        // The crash came after 720p's playlist listed segment 4 but before 360p's did, while both segmenters were
        // already writing segment 5.
        let p720 = tmp.path().join("720p");
        let p360 = tmp.path().join("360p");
        std::fs::copy(p720.join(PLAYLIST_FILE), p360.join(PLAYLIST_FILE)).expect("copy");
        for dir in [&p720, &p360] {
            std::fs::write(dir.join("seg00000004.ts"), b"ts").expect("write");
            std::fs::write(dir.join("seg00000005.ts"), b"partial").expect("write");
        }
        let mut text = read(&p720.join(PLAYLIST_FILE));
        text.push_str("#EXT-X-PROGRAM-DATE-TIME:2030-01-02T03:04:21.678Z\n#EXTINF:4.000000,\nseg00000004.ts\n");
        std::fs::write(p720.join(PLAYLIST_FILE), text).expect("write");

        let pl = Playlist::recover(two_rungs(tmp.path(), 4)).expect("recover");
        assert_eq!(pl.next_seq(), 5);
        assert!(!p720.join("seg00000005.ts").exists() && !p360.join("seg00000005.ts").exists(), "never listed");
        assert!(p360.join("seg00000004.ts").exists());
        assert_eq!(read(&p720.join(PLAYLIST_FILE)), read(&p360.join(PLAYLIST_FILE)), "rungs agree again");
        assert_eq!(media(&p360.join(PLAYLIST_FILE)).segments.len(), 4);
    }

    #[test]
    fn recover_drops_listed_segments_missing_on_disk() {
        let tmp = tempfile::tempdir().expect("tempdir");
        {
            let mut pl = Playlist::recover(two_rungs(tmp.path(), 4)).expect("recover");
            pl.mark_discontinuity();
            for seq in 0..4 {
                push(&mut pl, seq);
            }
        }
        std::fs::remove_file(tmp.path().join("360p").join("seg00000001.ts")).expect("remove");
        let mut pl = Playlist::recover(two_rungs(tmp.path(), 4)).expect("recover");
        assert_eq!(pl.recovery(), &Recovery::Resumed { last_seq: 3, segments: 2, discontinuity_sequence: 1 });
        push(&mut pl, 4);
        let p = media(&tmp.path().join("720p").join(PLAYLIST_FILE));
        assert_eq!((p.media_sequence, p.discontinuity_sequence), (2, 1));
        assert_eq!(uris(&p), ["seg00000002.ts", "seg00000003.ts", "seg00000004.ts"]);
    }

    #[test]
    fn recover_from_garbage_or_truncated_playlists_starts_above_everything_seen() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let s = || settings(tmp.path(), vec![rung("720p", 1280, 720, 2500)], 3);
        let rung_dir = tmp.path().join("720p");
        std::fs::create_dir_all(&rung_dir).expect("mkdir");
        for seq in 38..41 {
            std::fs::write(rung_dir.join(segment_file_name(seq)), b"ts").expect("write");
        }
        std::fs::write(rung_dir.join(PLAYLIST_FILE), b"\x00\xffnot a playlist at all").expect("write");
        let mut pl = Playlist::recover(s()).expect("garbage must not stop the channel");
        match pl.recovery() {
            Recovery::Restarted { next_seq: 41, reason } => assert!(reason.contains("#EXTM3U"), "{reason}"),
            other => panic!("{other:?}"),
        }
        assert!(!rung_dir.join(PLAYLIST_FILE).exists(), "an unusable playlist is never served");
        push(&mut pl, 41);
        push(&mut pl, 42);
        let p = media(&tmp.path().join(PLAYLIST_FILE));
        assert_eq!((p.media_sequence, p.discontinuity_sequence), (41, 0));
        assert!(p.segments[0].discontinuity && !p.segments[1].discontinuity);
        assert_eq!(uris(&p), ["720p/seg00000041.ts", "720p/seg00000042.ts"]);

        // Cut mid-segment (a torn write after a power loss).
        let full = read(&rung_dir.join(PLAYLIST_FILE));
        let cut = format!("{full}#EXT-X-PROGRAM-DATE-TIME:2030-01-02T03:04:21.678Z\n#EXTINF:4.0000");
        std::fs::write(rung_dir.join(PLAYLIST_FILE), &cut).expect("write");
        let pl = Playlist::recover(s()).expect("recover");
        match pl.recovery() {
            Recovery::Restarted { next_seq: 43, reason } => assert!(reason.contains("cut short"), "{reason}"),
            other => panic!("{other:?}"),
        }

        // A number a broken playlist mentions counts even past the files: a player may have seen that URL.
        std::fs::write(rung_dir.join(PLAYLIST_FILE), full.replace("seg00000042.ts", "seg00000099.ts")).expect("write");
        let pl = Playlist::recover(s()).expect("recover");
        match pl.recovery() {
            Recovery::Restarted { next_seq: 100, reason } => assert!(reason.contains("media sequence 42"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parser_refuses_what_would_mislead_players() {
        let path = Path::new("x/live.m3u8");
        let head = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:7\n";
        let seg =
            |name: &str| format!("#EXT-X-PROGRAM-DATE-TIME:2030-01-02T03:04:05.678Z\n#EXTINF:4.000000,\n{name}\n");
        let ok = parse_media_playlist(path, &format!("{head}{}{}", seg("seg00000007.ts"), seg("a/seg00000008.ts")));
        assert_eq!(ok.expect("valid").next_seq(), 9);
        for bad in [
            String::new(),
            format!("{head}{}", seg("seg00000008.ts")),
            format!("{head}{}", seg("../../etc/passwd")),
            format!("{head}#EXTINF:NaN,\nseg00000007.ts\n"),
            format!("{head}#EXTINF:4,\nseg00000007.ts\n"),
            format!("{head}{}", seg("seg00000007.ts").replace("2030-01-02T03:04:05.678Z", "yesterday")),
            format!("{head}#EXT-X-STREAM-INF:BANDWIDTH=1\n720p/live.m3u8\n"),
            head.to_string(),
        ] {
            assert!(parse_media_playlist(path, &bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn what_a_crash_left_is_published_before_recovery_only_if_whole() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let names = vec!["720p".to_string(), "360p".to_string()];
        assert_eq!(left_on_disk(tmp.path(), &names).next_seq, 0, "a new channel: nothing");
        let mut pl = Playlist::recover(two_rungs(tmp.path(), 3)).expect("recover");
        for seq in 0..4 {
            push(&mut pl, seq);
        }
        drop(pl);
        let left = left_on_disk(tmp.path(), &names);
        assert_eq!(left.next_seq, 4);
        assert_eq!(left.channel.as_deref(), Some(read(&tmp.path().join(PLAYLIST_FILE)).as_bytes()));
        let rung = read(&tmp.path().join("360p").join(PLAYLIST_FILE));
        assert_eq!(left.rung("360p").and_then(|r| r.playlist.as_deref()), Some(rung.as_bytes()));

        // A listed segment gone from one rung: the playlists would send players to a 404.
        std::fs::remove_file(tmp.path().join("360p/seg00000003.ts")).expect("remove");
        let left = left_on_disk(tmp.path(), &names);
        assert_eq!((left.channel, left.next_seq), (None, 0));
    }
}
