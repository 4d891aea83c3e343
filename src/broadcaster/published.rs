//! A channel's playlists as the origin serves them: from memory, published by the broadcaster that renders them.
//!
//! The broadcaster writes every playlist to disk (that is what crash recovery reads back) and publishes the same
//! text here, in one [`watch`] value per channel, so the origin answers the requests players make most often without
//! a system call. A value is replaced whole: the channel's `live.m3u8` arrives in the same value as the first media
//! playlists it lists, never before them, so a player (or a CDN, which caches a 404) that opens the stream at its
//! very first moment never sees a listed URI missing. The value also says which segments are complete: the origin
//! serves a segment only once its number has been listed, never while the segmenter may still be writing it.

use bytes::Bytes;
use tokio::sync::watch;

/// What the origin may serve of one channel right now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Published {
    /// The channel's `live.m3u8`: the multivariant playlist, or with one rung that rung's media playlist. None until
    /// every playlist it lists is published.
    pub channel: Option<Bytes>,
    /// The ladder, in the multivariant playlist's order.
    pub rungs: Vec<PublishedRung>,
    /// The number the next segment will carry. Segments numbered from it up are being written (or are leftovers
    /// of a crash that were never listed): not served.
    pub next_seq: u64,
    /// Nodes sharing an object store: the listed segments, each with the lease epoch that names its object, so an
    /// origin that did not write a segment fetches it. Empty on one box.
    pub objects: Vec<SegmentObject>,
    /// When the newest listed segment ended (its PROGRAM-DATE-TIME plus its duration): an origin whose playlist
    /// stopped advancing says so (503) rather than serve a stream that went nowhere.
    pub last_end: Option<std::time::SystemTime>,
}

/// A listed segment's object in the shared store.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmentObject {
    pub seq: u64,
    pub epoch: i64,
    /// When it ended: its `Last-Modified` on every origin.
    pub end: std::time::SystemTime,
}

/// One rung's media playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedRung {
    /// The rung folder and URL component.
    pub name: String,
    /// `{rung}/live.m3u8`; None until the first segment.
    pub playlist: Option<Bytes>,
}

impl Published {
    pub fn rung(&self, name: &str) -> Option<&PublishedRung> {
        self.rungs.iter().find(|r| r.name == name)
    }

    /// True when segment `seq` of `rung` is complete: the rung is on the ladder and the number was listed.
    pub fn serves_segment(&self, rung: &str, seq: u64) -> bool {
        self.rung(rung).is_some() && seq < self.next_seq
    }

    /// Where segment `seq`'s object is, when it is listed and the station shares an object store.
    pub fn object(&self, seq: u64) -> Option<&SegmentObject> {
        self.objects.iter().find(|o| o.seq == seq)
    }
}

/// The broadcaster's end: replaced whole on every change.
pub type PublishedSender = watch::Sender<Published>;
/// The origin's end.
pub type PublishedReceiver = watch::Receiver<Published>;

/// A new channel's pair of ends, publishing nothing yet.
pub fn channel() -> (PublishedSender, PublishedReceiver) {
    watch::channel(Published::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_is_served_only_on_a_known_rung_once_listed() {
        let mut p = Published {
            channel: None,
            rungs: vec![PublishedRung { name: "720p".into(), playlist: None }],
            next_seq: 0,
            ..Default::default()
        };
        assert!(!p.serves_segment("720p", 0), "nothing listed yet");
        p.next_seq = 8;
        assert!(p.serves_segment("720p", 0));
        assert!(p.serves_segment("720p", 7));
        assert!(!p.serves_segment("720p", 8), "still being written");
        assert!(!p.serves_segment("1080p", 7), "not on the ladder");
    }
}
