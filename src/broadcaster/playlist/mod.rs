//! The live HLS playlists of one channel, written by VVTV itself.
//!
//! The MPEG-TS segments are written by VVTV as well, in `broadcaster::ts` (`{rung}/seg00000042.ts`, one folder per
//! ABR rung, identical boundaries on every rung). This module owns everything a player reads about them: the sliding
//! window of each rung's media playlist, the media sequence, the discontinuity sequence, the multivariant playlist,
//! and the deletion of segments that left the window. Owning it is what makes crash recovery possible: after a
//! `kill -9` the playlists on disk are whole (every write is a temp file + rename), so [`Playlist::recover`] rebuilds
//! the window from them and the stream continues with a media sequence strictly above anything already served and
//! exactly one `#EXT-X-DISCONTINUITY` at the join — something hlssink3 cannot do.
//!
//! Here: the window and what changes it (pushing segments, sliding, garbage collection). Rebuilding it after a
//! restart is in `recovery.rs`, the playlist text in `render.rs`, and the file names in [`super::layout`]. Every
//! playlist written is also published in memory ([`super::published`]), which is what the origin serves.
//!
//! Plain blocking file I/O on purpose: a push writes a few small files every few seconds, cheaper than a
//! `spawn_blocking` round trip.

mod recovery;
mod render;
mod shared;
#[cfg(test)]
mod test_support;

pub use recovery::{left_on_disk, Recovery};
pub use shared::Commit;

use super::layout::{rung_dir, segment_file_name};
use super::published::PublishedSender;
use crate::config::is_slug;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// The channel lease epoch it was published in, which names its object (nodes sharing an object store); 0 on
    /// one box. Set by [`Playlist::push_segment`].
    pub epoch: i64,
}

impl Segment {
    /// Wall-clock time just after its last frame.
    pub fn end(&self) -> DateTime<Utc> {
        self.program_date_time + TimeDelta::from_std(self.duration).unwrap_or_default()
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
    /// The segment could not be published to the shared store, or the channel was taken over (fenced).
    #[error("segment {seq} not published: {reason}")]
    Commit { seq: u64, reason: String },
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
    /// Where every playlist written is published for the origin.
    published: PublishedSender,
    /// The lease epoch this playlist publishes in (0 on one box).
    epoch: i64,
    /// Nodes sharing the station: each segment is uploaded and committed (fenced by the epoch) before it is listed.
    commit: Option<Box<dyn Commit>>,
}

impl Playlist {
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
        segment.discontinuity |= self.pending_discontinuity;
        segment.epoch = self.epoch;
        if let Some(commit) = &mut self.commit {
            let before = self.discontinuity_sequence + self.window.iter().filter(|s| s.discontinuity).count() as u64;
            commit.commit(&segment, before).map_err(|reason| PlaylistError::Commit { seq: segment.seq, reason })?;
        }
        self.pending_discontinuity = false;
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
        self.push_segment(Segment { seq, duration, program_date_time, discontinuity: false, epoch: 0 })?;
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
                let path = rung_dir(&self.settings.dir, &rung.name).join(segment_file_name(old.seq));
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
        rung_dir(&self.settings.dir, rung).join(segment_file_name(seq))
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

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use crate::broadcaster::layout::PLAYLIST_FILE;
    use std::time::SystemTime;

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
            epoch: 0,
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
}
