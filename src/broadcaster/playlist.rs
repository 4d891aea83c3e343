//! The live HLS playlists of one channel, written by VVTV itself rather than by GStreamer.
//!
//! GStreamer only cuts MPEG-TS segments (`{rung}/seg00000042.ts`, one folder per ABR rung, identical boundaries on
//! every rung). This module owns everything a player reads about them: the sliding window of each rung's media
//! playlist, the media sequence, the discontinuity sequence, the multivariant playlist, and the deletion of segments
//! that left the window. Owning it is what makes crash recovery possible: after a `kill -9` the playlists on disk are
//! whole (every write is a temp file + rename), so [`Playlist::recover`] rebuilds the window from them and the stream
//! continues with a media sequence strictly above anything already served and exactly one `#EXT-X-DISCONTINUITY` at
//! the join — something hlssink3 cannot do.
//!
//! Layout under the channel's HLS folder (`data_dir/hls/{channel}/`):
//! - `live.m3u8`: the multivariant playlist, or, with a single rung, that rung's media playlist;
//! - `{rung}/live.m3u8`: the rung's media playlist;
//! - `{rung}/seg{seq:08}.ts`: the segments, named by their media sequence number.
//!
//! Plain blocking file I/O on purpose: a push writes a few small files every few seconds, cheaper than a
//! `spawn_blocking` round trip.

use crate::config::is_slug;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::fmt::{self, Write as _};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// File name of every playlist (the channel's and each rung's).
pub const PLAYLIST_FILE: &str = "live.m3u8";

/// Longest segment duration believed when reading a playlist back; anything longer is corruption.
const MAX_SEGMENT: Duration = Duration::from_secs(3600);

/// One rung of the ABR ladder, as the multivariant playlist advertises it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rung {
    /// Folder name and URL component: `[a-z0-9-]+`.
    pub name: String,
    /// Peak bits per second (video + audio + TS overhead).
    pub bandwidth: u64,
    /// Average bits per second.
    pub average_bandwidth: u64,
    pub width: u32,
    pub height: u32,
    /// RFC 6381 codecs, e.g. `avc1.640028,mp4a.40.2`.
    pub codecs: String,
    pub frame_rate: f64,
}

/// What the playlists of one channel are made from; fixed for the life of a [`Playlist`].
#[derive(Debug, Clone, PartialEq)]
pub struct PlaylistSettings {
    /// The channel's HLS folder, `data_dir/hls/{channel}`.
    pub dir: PathBuf,
    /// The ladder, highest rung first (the order of the multivariant playlist).
    pub rungs: Vec<Rung>,
    /// Segments listed in each media playlist (`broadcaster.playlist_segments`).
    pub window: usize,
    /// The house segment length; `EXT-X-TARGETDURATION` never goes below it.
    pub segment_duration: Duration,
    /// How long a segment stays on disk after leaving the window (`broadcaster.segment_grace_seconds`), so players
    /// that fetched the playlist just before can still download it.
    pub grace: Duration,
}

/// One closed segment, present on every rung under `{rung}/seg{seq:08}.ts`.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Media sequence number; also the number in the file name.
    pub seq: u64,
    pub duration: Duration,
    /// Wall-clock time of the segment's first frame on the channel's timeline.
    pub program_date_time: DateTime<Utc>,
    /// The segment does not continue the previous one (new pipeline, restart): players must reset their decoder.
    pub discontinuity: bool,
}

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

/// What the status API shows about a channel's output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlaylistStatus {
    /// Highest media sequence number listed or found (None for a channel that never produced a segment).
    pub last_seq: Option<u64>,
    /// The number the next segment must carry.
    pub next_seq: u64,
    /// Segments pushed by this process (not counting recovered ones).
    pub segments_written: u64,
    /// Wall-clock time of the last push by this process: what a stall detector watches.
    pub last_segment_at: Option<DateTime<Utc>>,
    pub last_program_date_time: Option<DateTime<Utc>>,
    pub window_segments: usize,
    pub discontinuity_sequence: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PlaylistError {
    #[error("playlist settings for {}: {reason}", dir.display())]
    Settings { dir: PathBuf, reason: String },
    #[error("segment {seq} refused for {}: {reason}", dir.display())]
    Segment { dir: PathBuf, seq: u64, reason: String },
    #[error("cannot {action} {}: {source}", path.display())]
    Io { path: PathBuf, action: &'static str, source: io::Error },
    #[error("{} line {line}: {reason}", path.display())]
    Parse { path: PathBuf, line: usize, reason: String },
}

fn io_error<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(io::Error) -> PlaylistError + 'a {
    move |source| PlaylistError::Io { path: path.to_path_buf(), action, source }
}

/// A file waiting for its grace period to end before deletion.
#[derive(Debug, Clone)]
struct Garbage {
    path: PathBuf,
    since: DateTime<Utc>,
}

/// The live playlists of one channel: its sliding window of segments and the files that show it.
#[derive(Debug)]
pub struct Playlist {
    settings: PlaylistSettings,
    /// Consecutive segments, oldest first; the last one is `next_seq - 1`.
    window: VecDeque<Segment>,
    next_seq: u64,
    /// `EXT-X-DISCONTINUITY-SEQUENCE`: discontinuities that slid out of the window (RFC 8216 §6.2.2).
    discontinuity_sequence: u64,
    /// Set by recovery or [`Playlist::mark_discontinuity`]: the next pushed segment gets the tag.
    pending_discontinuity: bool,
    /// Only grows: RFC 8216 §4.3.3.1 forbids changing the target duration of a live playlist.
    target_duration: u64,
    garbage: Vec<Garbage>,
    segments_written: u64,
    last_segment_at: Option<DateTime<Utc>>,
    recovery: Recovery,
}

impl Playlist {
    /// Opens the channel's HLS folder: restores the window left by a previous run (crash or not), or starts fresh,
    /// and (re)writes the playlists. Call it before the segmenter starts, then have the segmenter number its files
    /// from [`Playlist::next_seq`]. Unusable playlists never fail this call (see [`Recovery`]); only a folder that
    /// cannot be created, listed or written does.
    pub fn recover(settings: PlaylistSettings) -> Result<Playlist, PlaylistError> {
        validate(&settings)?;
        let dir = settings.dir.clone();
        for rung in &settings.rungs {
            let rung_dir = dir.join(&rung.name);
            std::fs::create_dir_all(&rung_dir).map_err(io_error(&rung_dir, "create folder"))?;
        }
        remove_stale_temp_files(&settings);

        // What is on disk: segment files per rung, and whatever the playlists say.
        let mut on_disk: Vec<BTreeMap<u64, SystemTime>> = Vec::with_capacity(settings.rungs.len());
        for rung in &settings.rungs {
            on_disk.push(scan_segments(&dir.join(&rung.name))?);
        }
        let mut problems: Vec<String> = Vec::new();
        let mut any_playlist = false;
        let mut hinted_seq: Option<u64> = None;
        let mut best: Option<ParsedPlaylist> = None;
        for rung in &settings.rungs {
            let path = dir.join(&rung.name).join(PLAYLIST_FILE);
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
                let path = self.settings.dir.join(&rung.name).join(segment_file_name(seq));
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
        if self.settings.rungs.len() > 1 {
            let path = self.settings.dir.join(PLAYLIST_FILE);
            write_atomic(&path, &self.render_multivariant())?;
        }
        if self.window.is_empty() {
            // An empty live playlist makes some players give up; a 404 until the first segment makes them retry.
            // Also removes unusable playlists so they are never served.
            for path in self.media_playlist_paths() {
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(PlaylistError::Io { path, action: "remove stale playlist", source: e }),
                }
            }
            Ok(())
        } else {
            self.write_media_playlists()
        }
    }

    /// Adds a segment closed on every rung, slides the window, and rewrites the media playlists. The segment must
    /// carry [`Playlist::next_seq`]. If writing fails the segment is still in the window and the next push writes it.
    pub fn push_segment(&mut self, segment: Segment) -> Result<(), PlaylistError> {
        let refuse =
            |reason: String| PlaylistError::Segment { dir: self.settings.dir.clone(), seq: segment.seq, reason };
        if segment.seq != self.next_seq {
            return Err(refuse(format!("expected media sequence {}", self.next_seq)));
        }
        if segment.duration.is_zero() || segment.duration > MAX_SEGMENT {
            return Err(refuse(format!("duration {:?} is outside (0, {:?}]", segment.duration, MAX_SEGMENT)));
        }
        let mut segment = segment;
        segment.discontinuity |= std::mem::take(&mut self.pending_discontinuity);
        self.target_duration = self.target_duration.max(ceil_secs(segment.duration));
        let now = Utc::now();
        self.window.push_back(segment);
        self.next_seq += 1;
        while self.window.len() > self.settings.window {
            self.slide_out(now);
        }
        self.segments_written += 1;
        self.last_segment_at = Some(now);
        self.write_media_playlists()
    }

    /// Pushes the next segment (numbered [`Playlist::next_seq`]) and returns its number.
    pub fn add(&mut self, duration: Duration, program_date_time: DateTime<Utc>) -> Result<u64, PlaylistError> {
        let seq = self.next_seq;
        self.push_segment(Segment { seq, duration, program_date_time, discontinuity: false })?;
        Ok(seq)
    }

    /// The next pushed segment gets `#EXT-X-DISCONTINUITY` (e.g. the output was rebuilt).
    pub fn mark_discontinuity(&mut self) {
        self.pending_discontinuity = true;
    }

    fn slide_out(&mut self, now: DateTime<Utc>) {
        if let Some(old) = self.window.pop_front() {
            if old.discontinuity {
                self.discontinuity_sequence += 1;
            }
            for rung in &self.settings.rungs {
                let path = self.settings.dir.join(&rung.name).join(segment_file_name(old.seq));
                self.garbage.push(Garbage { path, since: now });
            }
        }
    }

    /// Deletes the segments that left the window at least `grace` before `now` (and old orphans found at
    /// recovery); returns the files deleted. A file that cannot be deleted is logged and forgotten.
    pub fn collect_garbage(&mut self, now: DateTime<Utc>) -> Vec<PathBuf> {
        let grace = TimeDelta::from_std(self.settings.grace).unwrap_or(TimeDelta::MAX);
        let mut deleted = Vec::new();
        self.garbage.retain(|g| {
            if now.signed_duration_since(g.since) < grace {
                return true;
            }
            match std::fs::remove_file(&g.path) {
                Ok(()) => deleted.push(g.path.clone()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(path = %g.path.display(), error = %e, "cannot delete old segment"),
            }
            false
        });
        deleted
    }

    /// The number the next segment must carry (the segmenter's next file index).
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Where the segmenter must write segment `seq` of `rung`.
    pub fn segment_path(&self, rung: &str, seq: u64) -> PathBuf {
        self.settings.dir.join(rung).join(segment_file_name(seq))
    }

    pub fn settings(&self) -> &PlaylistSettings {
        &self.settings
    }

    /// How [`Playlist::recover`] found the folder.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// The segments currently listed, oldest first.
    pub fn window(&self) -> impl Iterator<Item = &Segment> {
        self.window.iter()
    }

    pub fn status(&self) -> PlaylistStatus {
        PlaylistStatus {
            last_seq: self.next_seq.checked_sub(1),
            next_seq: self.next_seq,
            segments_written: self.segments_written,
            last_segment_at: self.last_segment_at,
            last_program_date_time: self.window.back().map(|s| s.program_date_time),
            window_segments: self.window.len(),
            discontinuity_sequence: self.discontinuity_sequence,
        }
    }

    fn media_playlist_paths(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> =
            self.settings.rungs.iter().map(|r| self.settings.dir.join(&r.name).join(PLAYLIST_FILE)).collect();
        if self.settings.rungs.len() == 1 {
            paths.push(self.settings.dir.join(PLAYLIST_FILE));
        }
        paths
    }

    fn write_media_playlists(&self) -> Result<(), PlaylistError> {
        let body = self.render_media("");
        for rung in &self.settings.rungs {
            write_atomic(&self.settings.dir.join(&rung.name).join(PLAYLIST_FILE), &body)?;
        }
        if let [only] = self.settings.rungs.as_slice() {
            // With one rung the channel's playlist is the media playlist itself: one fetch less for players.
            let prefix = format!("{}/", only.name);
            write_atomic(&self.settings.dir.join(PLAYLIST_FILE), &self.render_media(&prefix))?;
        }
        Ok(())
    }

    /// A media playlist; `prefix` is prepended to segment URIs (the rung folder when served from the channel root).
    fn render_media(&self, prefix: &str) -> String {
        let media_sequence = self.window.front().map_or(self.next_seq, |s| s.seq);
        let mut out = String::with_capacity(256 + self.window.len() * 96);
        // Writing into a String cannot fail.
        let _ = write!(
            out,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:{media_sequence}\n\
             #EXT-X-DISCONTINUITY-SEQUENCE:{}\n#EXT-X-INDEPENDENT-SEGMENTS\n",
            self.target_duration, self.discontinuity_sequence
        );
        for s in &self.window {
            if s.discontinuity {
                out.push_str("#EXT-X-DISCONTINUITY\n");
            }
            let _ = write!(
                out,
                "#EXT-X-PROGRAM-DATE-TIME:{}\n#EXTINF:{:.6},\n{prefix}{}\n",
                s.program_date_time.to_rfc3339_opts(SecondsFormat::Millis, true),
                s.duration.as_secs_f64(),
                segment_file_name(s.seq)
            );
        }
        out
    }

    fn render_multivariant(&self) -> String {
        let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n");
        for r in &self.settings.rungs {
            let _ = write!(
                out,
                "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},RESOLUTION={}x{},CODECS=\"{}\",FRAME-RATE={:.3}\n\
                 {}/{PLAYLIST_FILE}\n",
                r.bandwidth, r.average_bandwidth, r.width, r.height, r.codecs, r.frame_rate, r.name
            );
        }
        out
    }
}

/// `seg00000042.ts`: zero-padded so a directory listing sorts in playout order.
pub fn segment_file_name(seq: u64) -> String {
    format!("seg{seq:08}.ts")
}

/// The media sequence number in a segment file name, if it is one.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("seg")?.strip_suffix(".ts")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn validate(settings: &PlaylistSettings) -> Result<(), PlaylistError> {
    let refuse = |reason: String| Err(PlaylistError::Settings { dir: settings.dir.clone(), reason });
    if settings.rungs.is_empty() {
        return refuse("needs at least one rung".into());
    }
    if settings.window == 0 {
        return refuse("the window must list at least one segment".into());
    }
    if settings.segment_duration.is_zero() || settings.segment_duration > MAX_SEGMENT {
        return refuse(format!("segment duration {:?} is outside (0, {:?}]", settings.segment_duration, MAX_SEGMENT));
    }
    for (i, r) in settings.rungs.iter().enumerate() {
        if !is_slug(&r.name) {
            return refuse(format!("rung name {:?} must match [a-z0-9-]+", r.name));
        }
        if settings.rungs[..i].iter().any(|o| o.name == r.name) {
            return refuse(format!("rung name {:?} is used twice", r.name));
        }
        if r.bandwidth == 0 || r.average_bandwidth == 0 {
            return refuse(format!("rung {:?} needs a non-zero bandwidth and average bandwidth", r.name));
        }
        if r.codecs.is_empty() || r.codecs.contains(['"', '\n', '\r']) {
            return refuse(format!("rung {:?} has an unusable CODECS value {:?}", r.name, r.codecs));
        }
        if !(r.frame_rate.is_finite() && r.frame_rate > 0.0) {
            return refuse(format!("rung {:?} has an unusable frame rate {}", r.name, r.frame_rate));
        }
    }
    Ok(())
}

/// Whole seconds, rounding up, at millisecond precision: 4.0000004 s (timestamp noise) is 4, 4.001 s is 5.
fn ceil_secs(d: Duration) -> u64 {
    let ms = (d.as_nanos() + 500_000) / 1_000_000;
    u64::try_from(ms.div_ceil(1000)).unwrap_or(u64::MAX)
}

/// Temp name beside the target (same file system, so the rename is atomic); hidden and never whitelisted by the
/// origin, so it is never served.
fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map_or_else(|| "playlist".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.tmp"))
}

/// Readers see the old file or the new one, never a mix, and a `kill -9` mid-write leaves the old one. No fsync:
/// process crashes are covered by the page cache, and after a power loss recovery copes with a bad playlist anyway.
fn write_atomic(path: &Path, contents: &str) -> Result<(), PlaylistError> {
    let tmp = temp_path(path);
    if let Err(e) = std::fs::write(&tmp, contents) {
        let _ = std::fs::remove_file(&tmp);
        return Err(PlaylistError::Io { path: tmp, action: "write", source: e });
    }
    std::fs::rename(&tmp, path).map_err(io_error(path, "replace"))
}

fn remove_stale_temp_files(settings: &PlaylistSettings) {
    let mut paths = vec![temp_path(&settings.dir.join(PLAYLIST_FILE))];
    paths.extend(settings.rungs.iter().map(|r| temp_path(&settings.dir.join(&r.name).join(PLAYLIST_FILE))));
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

/// A media playlist read back from disk.
#[derive(Debug)]
struct ParsedPlaylist {
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
fn parse_media_playlist(path: &Path, text: &str) -> Result<ParsedPlaylist, PlaylistError> {
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
    use super::*;
    use m3u8_rs::{MediaPlaylist, Playlist as M3u8};
    use std::process::Command;

    const GRACE: Duration = Duration::from_secs(60);

    fn rung(name: &str, width: u32, height: u32, kbps: u64) -> Rung {
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

    fn settings(dir: &Path, rungs: Vec<Rung>, window: usize) -> PlaylistSettings {
        PlaylistSettings {
            dir: dir.to_path_buf(),
            rungs,
            window,
            segment_duration: Duration::from_secs(4),
            grace: GRACE,
        }
    }

    fn two_rungs(dir: &Path, window: usize) -> PlaylistSettings {
        settings(dir, vec![rung("720p", 1280, 720, 2500), rung("360p", 640, 360, 700)], window)
    }

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2030-01-02T03:04:05.678Z").map(|t| t.with_timezone(&Utc)).expect("valid time")
    }

    fn pdt(seq: u64) -> DateTime<Utc> {
        t0() + TimeDelta::seconds(4 * seq as i64)
    }

    /// Pushes segment `seq` the way the engine does: the segmenter has closed the file on every rung first.
    fn push(pl: &mut Playlist, seq: u64) {
        for r in &pl.settings().rungs.clone() {
            std::fs::write(pl.segment_path(&r.name, seq), b"ts").expect("write segment");
        }
        pl.push_segment(Segment {
            seq,
            duration: Duration::from_secs(4),
            program_date_time: pdt(seq),
            discontinuity: false,
        })
        .expect("push");
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Parses with m3u8-rs, an independent HLS parser: proves the output is valid HLS.
    fn media(path: &Path) -> MediaPlaylist {
        match m3u8_rs::parse_playlist_res(read(path).as_bytes()) {
            Ok(M3u8::MediaPlaylist(p)) => p,
            other => panic!("{} is not a media playlist: {other:?}", path.display()),
        }
    }

    fn uris(p: &MediaPlaylist) -> Vec<String> {
        p.segments.iter().map(|s| s.uri.clone()).collect()
    }

    #[test]
    fn window_slides_and_media_sequence_follows() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut pl = Playlist::recover(two_rungs(tmp.path(), 3)).expect("recover");
        assert_eq!(pl.recovery(), &Recovery::Fresh);
        for seq in 0..5 {
            push(&mut pl, seq);
        }
        for r in ["720p", "360p"] {
            let p = media(&tmp.path().join(r).join(PLAYLIST_FILE));
            assert_eq!(p.media_sequence, 2);
            assert_eq!(p.discontinuity_sequence, 0);
            assert_eq!(p.target_duration, 4);
            assert!(!p.end_list);
            assert_eq!(uris(&p), ["seg00000002.ts", "seg00000003.ts", "seg00000004.ts"]);
            for (s, seq) in p.segments.iter().zip(2..) {
                assert_eq!(s.duration, 4.0);
                assert!(!s.discontinuity);
                assert_eq!(s.program_date_time.map(|t| t.with_timezone(&Utc)), Some(pdt(seq)));
            }
        }
        let text = read(&tmp.path().join("720p").join(PLAYLIST_FILE));
        assert!(text.contains("#EXT-X-PROGRAM-DATE-TIME:2030-01-02T03:04:13.678Z\n#EXTINF:4.000000,\nseg00000002.ts\n"));
        assert!(!text.contains("ENDLIST"));
        let status = pl.status();
        assert_eq!((status.last_seq, status.next_seq, status.segments_written), (Some(4), 5, 5));
        assert_eq!(status.window_segments, 3);
        assert_eq!(status.last_program_date_time, Some(pdt(4)));
        assert!(status.last_segment_at.is_some());
    }

    #[test]
    fn refuses_out_of_order_and_empty_segments() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut pl = Playlist::recover(two_rungs(tmp.path(), 3)).expect("recover");
        let seg = |seq, secs| Segment {
            seq,
            duration: Duration::from_secs(secs),
            program_date_time: pdt(seq),
            discontinuity: false,
        };
        let err = pl.push_segment(seg(1, 4)).expect_err("gap");
        assert!(err.to_string().contains("expected media sequence 0"), "{err}");
        assert!(pl.push_segment(seg(0, 0)).is_err());
        assert_eq!(pl.add(Duration::from_secs(4), pdt(0)).expect("add"), 0);
        assert_eq!(pl.add(Duration::from_secs(4), pdt(1)).expect("add"), 1);
        assert!(pl.push_segment(seg(1, 4)).is_err(), "a number is never reused");
    }

    #[test]
    fn target_duration_covers_long_segments_and_never_shrinks() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut pl = Playlist::recover(settings(tmp.path(), vec![rung("720p", 1280, 720, 2500)], 3)).expect("recover");
        pl.add(Duration::from_nanos(4_000_000_400), t0()).expect("add");
        assert_eq!(media(&tmp.path().join(PLAYLIST_FILE)).target_duration, 4, "timestamp noise is not a second");
        pl.add(Duration::from_millis(5200), t0()).expect("add");
        for _ in 0..4 {
            pl.add(Duration::from_secs(4), t0()).expect("add");
        }
        let p = media(&tmp.path().join(PLAYLIST_FILE));
        assert_eq!(p.target_duration, 6);
        assert!(p.segments.iter().all(|s| s.duration == 4.0), "the long one slid out, the target stays");
    }

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
    fn writes_are_atomic() {
        let tmp = tempfile::tempdir().expect("tempdir");
        // A temp file left by a kill -9 in the middle of a write is cleaned up.
        std::fs::create_dir_all(tmp.path().join("720p")).expect("mkdir");
        std::fs::write(tmp.path().join("720p").join(".live.m3u8.tmp"), b"#EXTM3U\n#EXTI").expect("write");
        let mut pl = Playlist::recover(two_rungs(tmp.path(), 5)).expect("recover");
        push(&mut pl, 0);

        // A reader polling while segments are pushed only ever sees whole playlists.
        let path = tmp.path().join("720p").join(PLAYLIST_FILE);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (path, stop) = (path.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut reads = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let text = std::fs::read_to_string(&path).expect("the playlist always exists");
                    assert!(parse_media_playlist(&path, &text).is_ok(), "partial playlist seen: {text:?}");
                    reads += 1;
                }
                reads
            })
        };
        for seq in 1..300 {
            push(&mut pl, seq);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(reader.join().expect("reader") > 0);

        for dir in [tmp.path().to_path_buf(), tmp.path().join("720p"), tmp.path().join("360p")] {
            let leftovers: Vec<String> = std::fs::read_dir(&dir)
                .expect("list")
                .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                .filter(|n| n.ends_with(".tmp"))
                .collect();
            assert!(leftovers.is_empty(), "{}: {leftovers:?}", dir.display());
        }
    }

    #[test]
    fn multivariant_lists_every_rung() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut pl = Playlist::recover(two_rungs(tmp.path(), 3)).expect("recover");
        push(&mut pl, 0);
        let text = read(&tmp.path().join(PLAYLIST_FILE));
        let master = match m3u8_rs::parse_playlist_res(text.as_bytes()) {
            Ok(M3u8::MasterPlaylist(m)) => m,
            other => panic!("not a multivariant playlist: {other:?}"),
        };
        assert!(master.independent_segments);
        let got: Vec<_> = master
            .variants
            .iter()
            .map(|v| {
                let res = v.resolution.map(|r| (r.width, r.height));
                (v.uri.as_str(), v.bandwidth, v.average_bandwidth, res, v.codecs.as_deref(), v.frame_rate)
            })
            .collect();
        let codecs = Some("avc1.640028,mp4a.40.2");
        assert_eq!(
            got,
            [
                ("720p/live.m3u8", 2_750_000, Some(2_500_000), Some((1280, 720)), codecs, Some(30.0)),
                ("360p/live.m3u8", 770_000, Some(700_000), Some((640, 360)), codecs, Some(30.0)),
            ]
        );
        assert!(text.contains("FRAME-RATE=30.000"));
    }

    #[test]
    fn single_rung_channel_playlist_is_the_media_playlist() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut pl = Playlist::recover(settings(tmp.path(), vec![rung("720p", 1280, 720, 2500)], 3)).expect("recover");
        assert!(!tmp.path().join(PLAYLIST_FILE).exists(), "no playlist before the first segment");
        push(&mut pl, 0);
        push(&mut pl, 1);
        let top = media(&tmp.path().join(PLAYLIST_FILE));
        assert_eq!(uris(&top), ["720p/seg00000000.ts", "720p/seg00000001.ts"]);
        assert_eq!(uris(&media(&tmp.path().join("720p").join(PLAYLIST_FILE))), ["seg00000000.ts", "seg00000001.ts"]);
    }

    #[test]
    fn garbage_collection_honours_grace() {
        let tmp = tempfile::tempdir().expect("tempdir");
        // Orphans of an older run: one long past its grace, one recent.
        let rung_dir = tmp.path().join("720p");
        std::fs::create_dir_all(&rung_dir).expect("mkdir");
        let old = rung_dir.join("seg00000001.ts");
        let recent = rung_dir.join("seg00000002.ts");
        for path in [&old, &recent] {
            std::fs::write(path, b"ts").expect("write");
        }
        let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options().write(true).open(&old).and_then(|f| f.set_modified(an_hour_ago)).expect("mtime");

        let mut pl = Playlist::recover(two_rungs(tmp.path(), 3)).expect("recover");
        assert_eq!(pl.next_seq(), 3);
        for seq in 3..8 {
            push(&mut pl, seq);
        }
        let now = Utc::now();
        assert_eq!(pl.collect_garbage(now), std::slice::from_ref(&old), "only the orphan past its grace goes now");
        assert!(pl.segment_path("720p", 3).exists(), "slid out, but still within grace");

        let later = now + TimeDelta::from_std(GRACE).expect("grace") + TimeDelta::seconds(1);
        let mut deleted = pl.collect_garbage(later);
        deleted.sort();
        let mut expected = vec![recent.clone()];
        for seq in 3..5 {
            expected.push(pl.segment_path("720p", seq));
            expected.push(pl.segment_path("360p", seq));
        }
        expected.sort();
        assert_eq!(deleted, expected);
        for seq in 5..8 {
            assert!(pl.segment_path("720p", seq).exists() && pl.segment_path("360p", seq).exists(), "listed");
        }
        assert!(pl.collect_garbage(later).is_empty(), "each file is deleted once");
    }

    #[test]
    fn rejects_unusable_settings() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut s = two_rungs(tmp.path(), 3);
        s.rungs[1].name = "../x".into();
        let err = Playlist::recover(s).expect_err("bad rung name");
        assert!(err.to_string().contains("must match"), "{err}");
        assert!(Playlist::recover(two_rungs(tmp.path(), 0)).is_err());
        assert!(Playlist::recover(settings(tmp.path(), Vec::new(), 3)).is_err());
    }

    /// ffprobe, an independent player stack, opens a playlist over real TS segments.
    #[test]
    fn ffprobe_reads_the_playlist() {
        // ffprobe is a declared test dependency (scripts/install-deps.sh); its absence is a failure, not a skip.
        assert!(
            Command::new("ffprobe").arg("-version").output().is_ok(),
            "ffprobe missing: run scripts/install-deps.sh"
        );
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut pl = Playlist::recover(settings(tmp.path(), vec![rung("160p", 160, 90, 200)], 3)).expect("recover");
        for seq in 0..2 {
            let out = pl.segment_path("160p", seq);
            let status = Command::new("ffmpeg")
                .args(["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=d=2:s=160x90:r=30"])
                .args(["-c:v", "libx264", "-g", "30", "-pix_fmt", "yuv420p", "-output_ts_offset"])
                .arg((seq * 2).to_string())
                .args(["-f", "mpegts"])
                .arg(&out)
                .status()
                .expect("run ffmpeg");
            assert!(status.success(), "ffmpeg failed to make {}", out.display());
            pl.add(Duration::from_secs(2), pdt(seq)).expect("add");
        }
        // A live playlist has no end: read 3.5 s (into the second segment) and stop; `timeout` so a hang fails.
        let output = Command::new("timeout")
            .args(["60", "ffprobe", "-v", "error", "-count_packets", "-read_intervals", "%+3.5"])
            .args(["-select_streams", "v:0", "-show_entries", "stream=codec_name,width,nb_read_packets"])
            .args(["-of", "csv=p=0"])
            .arg(tmp.path().join(PLAYLIST_FILE))
            .output()
            .expect("run ffprobe");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "ffprobe: {}", String::from_utf8_lossy(&output.stderr));
        let line = stdout.lines().find(|l| !l.trim().is_empty()).unwrap_or_default();
        let fields: Vec<&str> = line.trim().split(',').collect();
        assert_eq!(fields[..2], ["h264", "160"], "{stdout}");
        let packets: u32 = fields.get(2).and_then(|n| n.parse().ok()).unwrap_or(0);
        assert!(packets > 60, "only {packets} frames read: the second segment was not reached");
    }
}
