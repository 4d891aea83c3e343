//! Writes the playlist text: each rung's media playlist and the channel's multivariant playlist, published in memory
//! for the origin and written atomically to disk for recovery.

use super::{io_error, Playlist, PlaylistError, Segment};
use crate::broadcaster::layout::{rung_dir, segment_file_name, PLAYLIST_FILE};
use crate::broadcaster::published::{Published, PublishedRung, SegmentObject};
use bytes::Bytes;
use chrono::SecondsFormat;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

impl Playlist {
    /// Every playlist file of the channel: each rung's, then the channel's.
    pub(super) fn playlist_paths(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> =
            self.settings.rungs.iter().map(|r| rung_dir(&self.settings.dir, &r.name).join(PLAYLIST_FILE)).collect();
        paths.push(self.settings.dir.join(PLAYLIST_FILE));
        paths
    }

    /// Publishes the window: in memory first (what the origin serves), then on disk (what recovery reads), where the
    /// media playlists are replaced before the channel's playlist that lists them.
    pub(super) fn write_media_playlists(&self) -> Result<(), PlaylistError> {
        let body = Bytes::from(self.render_media(""));
        let channel = match self.settings.rungs.as_slice() {
            // With one rung the channel's playlist is the media playlist itself: one fetch less for players.
            [only] => self.render_media(&format!("{}/", only.name)),
            _ => self.render_multivariant(),
        };
        let channel = Bytes::from(channel);
        self.publish(Some(body.clone()), Some(channel.clone()));
        for rung in &self.settings.rungs {
            write_atomic(&rung_dir(&self.settings.dir, &rung.name).join(PLAYLIST_FILE), &body)?;
        }
        write_atomic(&self.settings.dir.join(PLAYLIST_FILE), &channel)
    }

    /// No playlist to serve (no segment yet), but the ladder and the numbers already used.
    pub(super) fn publish_nothing(&self) {
        self.publish(None, None);
    }

    pub(super) fn publish(&self, media: Option<Bytes>, channel: Option<Bytes>) {
        let rungs = self.settings.rungs.iter().map(|r| PublishedRung { name: r.name.clone(), playlist: media.clone() });
        let shared = self.epoch != 0 || self.window.iter().any(|s| s.epoch != 0);
        let objects = if shared {
            let end = |s: &Segment| std::time::SystemTime::from(s.end());
            self.window.iter().map(|s| SegmentObject { seq: s.seq, epoch: s.epoch, end: end(s) }).collect()
        } else {
            Vec::new()
        };
        let last_end = self.window.back().map(|s| std::time::SystemTime::from(s.end()));
        self.published.send_replace(Published {
            channel,
            rungs: rungs.collect(),
            next_seq: self.next_seq,
            objects,
            last_end,
        });
    }

    /// A media playlist; `prefix` is prepended to segment URIs (the rung folder when served from the channel root).
    pub(super) fn render_media(&self, prefix: &str) -> String {
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

    pub(super) fn render_multivariant(&self) -> String {
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

/// Temp name beside the target (same file system, so the rename is atomic); hidden and never whitelisted by the
/// origin, so it is never served.
pub(super) fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map_or_else(|| "playlist".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.tmp"))
}

/// Readers see the old file or the new one, never a mix, and a `kill -9` mid-write leaves the old one. No fsync:
/// process crashes are covered by the page cache, and after a power loss recovery copes with a bad playlist anyway.
pub(super) fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), PlaylistError> {
    let tmp = temp_path(path);
    if let Err(e) = std::fs::write(&tmp, contents) {
        let _ = std::fs::remove_file(&tmp);
        return Err(PlaylistError::Io { path: tmp, action: "write", source: e });
    }
    std::fs::rename(&tmp, path).map_err(io_error(path, "replace"))
}

#[cfg(test)]
mod tests {
    use super::super::recovery::parse_media_playlist;
    use super::super::test_support::*;
    use super::*;
    use crate::broadcaster::published;
    use m3u8_rs::Playlist as M3u8;
    use std::process::Command;
    use std::time::Duration;

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
    fn the_channel_playlist_appears_with_its_variants_in_memory_and_on_disk() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (tx, rx) = published::channel();
        let mut pl = Playlist::recover_into(two_rungs(tmp.path(), 3), tx).expect("recover");
        assert!(!tmp.path().join(PLAYLIST_FILE).exists(), "no multivariant playlist before its variants exist");
        {
            let p = rx.borrow();
            assert_eq!(p.channel, None);
            let rungs: Vec<_> = p.rungs.iter().map(|r| (r.name.as_str(), r.playlist.is_some())).collect();
            assert_eq!(rungs, [("720p", false), ("360p", false)]);
            assert_eq!(p.next_seq, 0);
        }
        push(&mut pl, 0);
        push(&mut pl, 1);
        let p = rx.borrow().clone();
        assert_eq!(p.channel.as_deref(), Some(read(&tmp.path().join(PLAYLIST_FILE)).as_bytes()));
        for r in ["720p", "360p"] {
            let on_disk = read(&tmp.path().join(r).join(PLAYLIST_FILE));
            assert_eq!(p.rung(r).and_then(|r| r.playlist.as_deref()), Some(on_disk.as_bytes()), "{r}");
            assert!(on_disk.contains("seg00000001.ts"), "{r}");
        }
        assert_eq!(p.next_seq, 2);
    }

    #[test]
    fn a_restart_publishes_the_recovered_window_at_once_and_an_empty_one_nothing() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut pl = Playlist::recover(two_rungs(tmp.path(), 3)).expect("recover");
        push(&mut pl, 0);
        push(&mut pl, 1);
        drop(pl);
        let (tx, rx) = published::channel();
        let _pl = Playlist::recover_into(two_rungs(tmp.path(), 3), tx).expect("recover");
        let p = rx.borrow().clone();
        assert!(p.channel.is_some(), "players are served the recovered window before the next segment");
        assert!(p.rung("360p").and_then(|r| r.playlist.as_ref()).is_some());
        assert_eq!(p.next_seq, 2);

        // Segments but no usable playlist: numbering restarts above them, and no playlist is left to list them, the
        // channel's one included.
        for r in ["720p", "360p"] {
            std::fs::remove_file(tmp.path().join(r).join(PLAYLIST_FILE)).expect("remove");
        }
        let (tx, rx) = published::channel();
        let _pl = Playlist::recover_into(two_rungs(tmp.path(), 3), tx).expect("recover");
        assert!(!tmp.path().join(PLAYLIST_FILE).exists(), "the old multivariant playlist would list missing variants");
        let p = rx.borrow().clone();
        assert_eq!((p.channel.is_none(), p.next_seq), (true, 2));
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
