//! A channel played by one node among several: the lease it holds (renewed every second), the committer that
//! uploads each segment and inserts its row fenced by the lease epoch, and the mirror every other node renders the
//! channel's playlists from.

use super::playlist::{Commit, Playlist, PlaylistSettings, Segment};
use super::published::PublishedSender;
use crate::objects::segment_key;
use crate::store::{ChannelId, SegmentRow, Store};
use bytes::Bytes;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Rows and objects of segments this many numbers behind the newest are deleted (long after any player or CDN
/// could still ask for them).
const KEEP_SEGMENTS: u64 = 60;

/// Attempts at publishing one segment before the tenure is given up (each after a short pause).
const COMMIT_ATTEMPTS: u32 = 3;
const COMMIT_RETRY: Duration = Duration::from_millis(300);

/// This node's hold on a channel.
#[derive(Debug, Clone)]
pub struct Tenure {
    pub epoch: i64,
    /// Set when a commit was refused or a renewal failed: the channel is someone else's now.
    pub lost: Arc<AtomicBool>,
    /// Why, when this node gave the tenure up itself (a segment it could not publish).
    why: Arc<std::sync::Mutex<Option<String>>>,
}

impl Tenure {
    pub fn new(epoch: i64) -> Tenure {
        Tenure { epoch, lost: Arc::new(AtomicBool::new(false)), why: Arc::default() }
    }

    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    pub fn lose(&self) {
        self.lost.store(true, Ordering::SeqCst);
    }

    /// Gives the tenure up because of `reason` (the playout could not go on in it): the broadcaster stops and takes
    /// the channel again in a new epoch, from the committed rows.
    pub fn give_up(&self, reason: String) {
        *self.why.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(reason);
        self.lose();
    }

    pub fn given_up_because(&self) -> Option<String> {
        self.why.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Whether the channel is still ours right now (asked before the feed writes what went on air, so a holder
    /// that was paused and woke up after a takeover records nothing).
    pub async fn still_held(&self, store: &Store, channel: &ChannelId) -> bool {
        if self.is_lost() {
            return false;
        }
        let held = match store.lease(channel).await {
            Ok(Some(l)) => l.holder == store.node() && l.epoch == self.epoch && l.remaining_ms > 0,
            Ok(None) => false,
            // A database that does not answer cannot be written to either.
            Err(_) => true,
        };
        if !held {
            self.lose();
        }
        held
    }
}

/// Uploads each closed segment (every rung) and commits its row, from the playout thread.
#[derive(Debug)]
pub struct SegmentCommitter {
    pub rt: tokio::runtime::Handle,
    pub store: Store,
    pub channel: ChannelId,
    pub tenure: Tenure,
    /// The channel's local HLS folder and its rungs.
    pub dir: PathBuf,
    pub rungs: Vec<String>,
}

impl Commit for SegmentCommitter {
    fn commit(&mut self, segment: &Segment, discontinuity_sequence: u64) -> Result<(), String> {
        if self.tenure.is_lost() {
            return Err(format!("channel {} was taken over (lease epoch {} lost)", self.channel, self.tenure.epoch));
        }
        let Some(objects) = self.store.objects().cloned() else { return Err("no object store".into()) };
        let epoch = self.tenure.epoch;
        let files: Vec<(String, PathBuf)> = self
            .rungs
            .iter()
            .map(|r| {
                let path = self.dir.join(r).join(super::layout::segment_file_name(segment.seq));
                (segment_key(self.channel.as_str(), r, epoch, segment.seq), path)
            })
            .collect();
        let row = SegmentRow {
            seq: segment.seq as i64,
            epoch,
            duration_ns: i64::try_from(segment.duration.as_nanos()).unwrap_or(i64::MAX),
            start_ns: segment.program_date_time.timestamp_nanos_opt().unwrap_or_default(),
            discontinuity: segment.discontinuity,
            discontinuity_sequence: discontinuity_sequence as i64,
        };
        let (store, channel, tenure) = (self.store.clone(), self.channel.clone(), self.tenure.clone());
        let rungs = self.rungs.clone();
        let objects = &objects;
        self.rt.block_on(async move {
            let mut last_error = String::new();
            for attempt in 0..COMMIT_ATTEMPTS {
                if attempt > 0 {
                    tokio::time::sleep(COMMIT_RETRY).await;
                }
                match publish(objects, &store, &channel, &files, &row).await {
                    Ok(true) => {
                        if (row.seq as u64).is_multiple_of(16) && row.seq as u64 > KEEP_SEGMENTS {
                            prune(&store, &channel, &rungs, row.seq as u64 - KEEP_SEGMENTS).await;
                        }
                        return Ok(());
                    }
                    Ok(false) => {
                        tenure.lose();
                        return Err(format!(
                            "channel {channel} was taken over: segment {} of lease epoch {epoch} refused",
                            row.seq
                        ));
                    }
                    Err(e) => last_error = e,
                }
            }
            // A store that does not answer: give the tenure up rather than go on writing segments nobody can
            // list; the broadcaster takes the channel again, from the rows, once the store answers.
            let reason = format!("cannot publish segment {} ({COMMIT_ATTEMPTS} attempts): {last_error}", row.seq);
            tenure.give_up(reason.clone());
            Err(reason)
        })
    }
}

/// Uploads a segment's files and commits its row: Ok(false) when the lease refused it (taken over), Err when the
/// object store or the database failed (worth another attempt: both steps can be repeated).
async fn publish(
    objects: &crate::objects::Objects,
    store: &Store,
    channel: &ChannelId,
    files: &[(String, PathBuf)],
    row: &SegmentRow,
) -> Result<bool, String> {
    let uploads = files.iter().map(|(key, path)| async move {
        let bytes = tokio::fs::read(path).await.map_err(|e| format!("{}: {e}", path.display()))?;
        objects.put_segment(key, Bytes::from(bytes)).await.map_err(|e| e.to_string())
    });
    for result in futures_util::future::join_all(uploads).await {
        result?;
    }
    match store.commit_segment(channel, store.node(), row).await {
        Ok(true) => Ok(true),
        // The row may be there already: an earlier attempt committed it but its answer was lost.
        Ok(false) => match store.segment_epoch(channel, row.seq).await {
            Ok(Some(epoch)) if epoch == row.epoch => Ok(true),
            Ok(_) => Ok(false),
            Err(e) => Err(format!("cannot read back segment {}: {e}", row.seq)),
        },
        Err(e) => Err(format!("cannot commit segment {}: {e}", row.seq)),
    }
}

/// Deletes the rows and objects of a channel's segments numbered below `below`.
async fn prune(store: &Store, channel: &ChannelId, rungs: &[String], below: u64) {
    let Some(objects) = store.objects() else { return };
    match store.prune_segments(channel, below as i64).await {
        Ok(gone) => {
            for (seq, epoch) in gone {
                for r in rungs {
                    if let Err(e) = objects.delete(&segment_key(channel.as_str(), r, epoch, seq as u64)).await {
                        tracing::debug!("cannot delete an old segment object: {e}");
                    }
                }
            }
        }
        Err(e) => tracing::warn!("cannot prune old segment rows of {channel}: {e}"),
    }
}

/// The playlists of a channel another node plays, rendered from its committed rows.
pub struct Mirror {
    settings: PlaylistSettings,
    published: PublishedSender,
    /// The last rows rendered (newest seq, epoch), to skip identical refreshes.
    last: Option<(i64, i64)>,
    /// The last multivariant playlist seen: the ladder is the same whoever holds the channel, and a new holder
    /// writes its own only once it has started.
    multivariant: Option<String>,
}

impl Mirror {
    pub fn new(settings: PlaylistSettings, published: PublishedSender) -> Mirror {
        Mirror { settings, published, last: None, multivariant: None }
    }

    /// Keeps `text` as the channel's multivariant playlist until the lease row has one.
    pub fn remember(&mut self, text: String) {
        self.multivariant = Some(text);
        self.last = None;
    }

    /// Reads the channel's newest rows and publishes them if they changed.
    pub async fn refresh(&mut self, store: &Store, channel: &ChannelId) {
        let rows = match store.segments(channel, self.settings.window as i64 + 1).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!("cannot read the segments of {channel}: {e}");
                return;
            }
        };
        let newest = rows.last().map(|r| (r.seq, r.epoch));
        if newest.is_some() && newest == self.last {
            return;
        }
        if let Some(m) = store.lease(channel).await.ok().flatten().and_then(|l| l.multivariant) {
            self.multivariant = Some(m);
        }
        let multivariant = self.multivariant.clone();
        match Playlist::from_rows(self.settings.clone(), self.published.clone(), &rows, 0) {
            Ok(p) => {
                p.publish_rows(multivariant.as_deref());
                // Without the ladder's playlist a several-rung channel is not served yet: try again next time.
                if multivariant.is_some() || self.settings.rungs.len() == 1 {
                    self.last = newest;
                }
            }
            Err(e) => tracing::warn!("cannot render the playlists of {channel}: {e}"),
        }
    }
}

/// How often a holder renews its leases and a follower looks for free channels and new segments.
pub const LEASE_TICK: Duration = Duration::from_secs(1);

/// Renews `tenure`'s lease every second until it is lost (refused, or given up by the holder). A renewal the
/// database does not answer is retried; the lease expires on its own if that goes on.
pub async fn renew(store: Store, channel: ChannelId, tenure: Tenure, ttl: Duration) {
    let mut tick = tokio::time::interval(LEASE_TICK);
    loop {
        tick.tick().await;
        if tenure.is_lost() {
            return;
        }
        match store.lease_renew(&channel, store.node(), tenure.epoch, ttl).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!("channel {channel}: lease epoch {} was taken over", tenure.epoch);
                tenure.lose();
                return;
            }
            Err(e) => tracing::warn!("channel {channel}: cannot renew its lease: {e}"),
        }
    }
}
