//! The window of a channel whose segments are rows in a shared database: rebuilt from the committed rows when a node
//! takes the channel over, and rendered from them on every node that does not play it.
//!
//! On one box the files are the truth (`recovery.rs`). When nodes share the station, the committed segment rows
//! are: a segment the holder wrote but could not commit (it lost the lease) was never listed anywhere. So a node
//! that takes a channel over starts from the rows, with its local folder emptied of whatever an earlier tenure
//! left, continues at the next media sequence with exactly one discontinuity, and lists the old holder's segments
//! (served from the object store) until they slide out.

use super::render::write_atomic;
use super::{ceil_secs, io_error, validate, Playlist, PlaylistError, PlaylistSettings, Recovery, Segment, MAX_SEGMENT};
use crate::broadcaster::layout::{rung_dir, PLAYLIST_FILE};
use crate::broadcaster::published::PublishedSender;
use crate::store::SegmentRow;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use std::collections::VecDeque;
use std::time::Duration;

/// Publishes a segment beyond this node before it is listed: uploads its files and commits its row, fenced by the
/// lease epoch. An error (the reason) keeps the segment unlisted.
pub trait Commit: Send + std::fmt::Debug {
    /// `discontinuity_sequence` counts the discontinuities before `segment`.
    fn commit(&mut self, segment: &Segment, discontinuity_sequence: u64) -> Result<(), String>;
}

/// A committed row as a window entry.
pub fn segment_of(row: &SegmentRow) -> Segment {
    Segment {
        seq: row.seq.max(0) as u64,
        duration: Duration::from_nanos(row.duration_ns.max(0) as u64).min(MAX_SEGMENT),
        program_date_time: DateTime::<Utc>::from_timestamp_nanos(row.start_ns),
        discontinuity: row.discontinuity,
        epoch: row.epoch,
    }
}

impl Playlist {
    /// The window of `rows` (committed segments, oldest first), without touching any file: what a node that does
    /// not play the channel publishes. The channel's playlist is `multivariant` (the holder's) with several rungs.
    pub fn from_rows(
        settings: PlaylistSettings,
        published: PublishedSender,
        rows: &[SegmentRow],
        epoch: i64,
    ) -> Result<Playlist, PlaylistError> {
        validate(&settings)?;
        let keep = rows.len().saturating_sub(settings.window);
        let window: VecDeque<Segment> = rows[keep..].iter().map(segment_of).collect();
        let mut target_duration = ceil_secs(settings.segment_duration).max(1);
        for s in &window {
            target_duration = target_duration.max(ceil_secs(s.duration));
        }
        let next_seq = window.back().map_or(0, |s| s.seq + 1);
        let discontinuity_sequence = rows.get(keep).map_or(0, |r| r.discontinuity_sequence.max(0) as u64);
        let recovery = match window.back() {
            None => Recovery::Fresh,
            Some(last) => Recovery::Resumed { last_seq: last.seq, segments: window.len(), discontinuity_sequence },
        };
        Ok(Playlist {
            pending_discontinuity: !window.is_empty(),
            target_duration,
            settings,
            window,
            next_seq,
            discontinuity_sequence,
            garbage: Vec::new(),
            segments_written: 0,
            last_segment_at: None,
            recovery,
            published,
            epoch,
            commit: None,
        })
    }

    /// A node taking the channel over: the window of the committed `rows`, numbering on from them with one
    /// discontinuity, each new segment committed through `commit` in lease epoch `epoch`. The local folder is emptied
    /// first (its files are an earlier tenure's, the last of which may never have been committed) and the playlists
    /// written.
    pub fn take_over(
        settings: PlaylistSettings,
        published: PublishedSender,
        rows: &[SegmentRow],
        epoch: i64,
        commit: Box<dyn Commit>,
    ) -> Result<Playlist, PlaylistError> {
        let dir = settings.dir.clone();
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(PlaylistError::Io { path: dir, action: "empty", source: e }),
        }
        for rung in &settings.rungs {
            let path = rung_dir(&dir, &rung.name);
            std::fs::create_dir_all(&path).map_err(io_error(&path, "create folder"))?;
        }
        let mut playlist = Playlist::from_rows(settings, published, rows, epoch)?;
        playlist.commit = Some(commit);
        if playlist.window.is_empty() {
            playlist.publish_nothing();
        } else {
            playlist.write_media_playlists()?;
        }
        Ok(playlist)
    }

    /// Publishes the window in memory only (a node that does not play the channel), with `multivariant` as the
    /// channel's playlist when the ladder has several rungs; nothing while no segment was committed.
    pub fn publish_rows(&self, multivariant: Option<&str>) {
        if self.window.is_empty() {
            self.publish_nothing();
            return;
        }
        let media = Bytes::from(self.render_media(""));
        let channel = match self.settings.rungs.as_slice() {
            [only] => Some(Bytes::from(self.render_media(&format!("{}/", only.name)))),
            _ => multivariant.map(|m| Bytes::from(m.to_owned())),
        };
        self.publish(Some(media), channel);
    }

    /// The channel's multivariant playlist as this holder renders it (for the other origins).
    pub fn multivariant(&self) -> String {
        self.render_multivariant()
    }

    /// Rewrites the channel playlist file after a takeover (the media ones are written with each segment).
    pub fn write_channel_playlist(&self) -> Result<(), PlaylistError> {
        write_atomic(&self.settings.dir.join(PLAYLIST_FILE), self.render_multivariant().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;
    use crate::broadcaster::published;

    fn row(seq: i64, epoch: i64, discontinuity: bool, dseq: i64) -> SegmentRow {
        SegmentRow {
            seq,
            epoch,
            duration_ns: 4_000_000_000,
            start_ns: pdt(seq as u64).timestamp_nanos_opt().unwrap(),
            discontinuity,
            discontinuity_sequence: dseq,
        }
    }

    /// (seq, epoch, discontinuity, discontinuity sequence) of each commit.
    type Commits = std::sync::Arc<std::sync::Mutex<Vec<(u64, i64, bool, u64)>>>;

    #[derive(Debug)]
    struct Recorder(Commits, bool);
    impl Commit for Recorder {
        fn commit(&mut self, s: &Segment, dseq: u64) -> Result<(), String> {
            if self.1 {
                return Err("lease lost".into());
            }
            self.0.lock().unwrap().push((s.seq, s.epoch, s.discontinuity, dseq));
            Ok(())
        }
    }

    #[test]
    fn a_takeover_continues_the_committed_rows_with_one_discontinuity() {
        let tmp = tempfile::tempdir().expect("tempdir");
        // Files an earlier tenure left, the last never committed: gone with the takeover.
        std::fs::create_dir_all(tmp.path().join("720p")).unwrap();
        std::fs::write(tmp.path().join("720p").join("seg00000009.ts"), b"zombie").unwrap();
        let rows: Vec<SegmentRow> = (0..8).map(|s| row(s, 1, s == 5, if s > 5 { 1 } else { 0 })).collect();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = published::channel();
        let commit = Box::new(Recorder(log.clone(), false));
        let mut pl = Playlist::take_over(two_rungs(tmp.path(), 3), tx, &rows, 2, commit).expect("take over");
        assert!(!tmp.path().join("720p").join("seg00000009.ts").exists(), "the uncommitted leftover is gone");
        assert_eq!(pl.next_seq(), 8);
        assert_eq!(pl.window().map(|s| (s.seq, s.epoch)).collect::<Vec<_>>(), [(5, 1), (6, 1), (7, 1)]);
        let p = rx.borrow().clone();
        assert_eq!(p.next_seq, 8);
        assert_eq!(p.object(6).map(|o| o.epoch), Some(1), "the old holder's segments are fetched by epoch");
        let media = String::from_utf8(p.rung("720p").unwrap().playlist.clone().unwrap().to_vec()).unwrap();
        assert!(media.contains("#EXT-X-MEDIA-SEQUENCE:5\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n"), "{media}");
        assert_eq!(media.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{media}");

        push(&mut pl, 8);
        push(&mut pl, 9);
        assert_eq!(*log.lock().unwrap(), [(8, 2, true, 1), (9, 2, false, 2)], "one discontinuity at the join");
        let media = String::from_utf8(rx.borrow().rung("720p").unwrap().playlist.clone().unwrap().to_vec()).unwrap();
        assert!(media.contains("#EXT-X-MEDIA-SEQUENCE:7\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n"), "{media}");
        assert_eq!(media.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{media}");
    }

    #[test]
    fn a_refused_commit_lists_nothing() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let rows = [row(0, 1, false, 0)];
        let (tx, rx) = published::channel();
        let commit = Box::new(Recorder(Default::default(), true));
        let mut pl = Playlist::take_over(two_rungs(tmp.path(), 3), tx, &rows, 2, commit).expect("take over");
        for r in ["720p", "360p"] {
            std::fs::write(pl.segment_path(r, 1), b"ts").unwrap();
        }
        let err = pl.add(Duration::from_secs(4), pdt(1)).expect_err("fenced");
        assert!(err.to_string().contains("lease lost"), "{err}");
        assert_eq!(rx.borrow().next_seq, 1, "segment 1 is not served");
        assert_eq!(pl.next_seq(), 1);
    }

    #[test]
    fn a_mirror_renders_the_rows_it_did_not_write() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let rows: Vec<SegmentRow> = (3..7).map(|s| row(s, 4, false, 2)).collect();
        let (tx, rx) = published::channel();
        let pl = Playlist::from_rows(two_rungs(tmp.path(), 3), tx, &rows, 0).expect("rows");
        pl.publish_rows(Some("#EXTM3U\nmulti\n"));
        let p = rx.borrow().clone();
        assert_eq!(p.channel.as_deref(), Some(&b"#EXTM3U\nmulti\n"[..]));
        assert_eq!((p.next_seq, p.objects.len()), (7, 3));
        assert!(p.last_end.is_some());
        assert!(std::fs::read_dir(tmp.path()).unwrap().next().is_none(), "a mirror writes no file");
        let (tx, rx) = published::channel();
        Playlist::from_rows(two_rungs(tmp.path(), 3), tx, &[], 0).unwrap().publish_rows(None);
        assert_eq!(rx.borrow().channel, None, "nothing committed yet: nothing to serve");
    }
}
