//! The playout loop of one channel, on its own OS thread: takes items from a [`Feed`], splices them with the engine,
//! turns finished segments into playlist entries, obeys emergency and stop commands, and rebuilds the output when it
//! fails or stalls (backing off while it keeps failing). It never ends the stream while on air.

use super::engine::{EngineError, EngineSettings, Item, ItemPipeline, Output, Splicer, Stats};
use super::playlist::{Playlist, Segment};
use crate::metrics::ChannelMetrics;
use crate::store::{AiringKind, AssetId, EventKind, ScheduleId};
use chrono::{DateTime, Utc};
use gst::prelude::*;
use std::collections::{BTreeMap, VecDeque};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Identifies what an item is, so the feed can record it.
#[derive(Debug, Clone, PartialEq)]
pub enum Tag {
    Scheduled { schedule_id: ScheduleId, asset_id: AssetId },
    Emergency { asset_id: Option<AssetId>, reason: String },
    Slate,
}

impl Tag {
    pub fn airing_kind(&self) -> AiringKind {
        match self {
            Tag::Scheduled { .. } => AiringKind::Scheduled,
            Tag::Emergency { .. } => AiringKind::Emergency,
            Tag::Slate => AiringKind::Slate,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Next {
    pub item: Item,
    pub tag: Tag,
}

/// How an item left the air.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Complete,
    /// Interrupted at a keyframe (emergency); position reached in the asset.
    Cut {
        at_ns: i64,
    },
    /// Could not be played (demux failure, missing file): skipped.
    Failed {
        reason: String,
    },
    /// Stopped by shutdown or a pipeline rebuild at this position in the asset.
    Interrupted {
        at_ns: i64,
    },
}

/// Where items come from and where what happened to them goes (the actor side: store, events).
pub trait Feed: Send {
    /// The next item to air; the slate when nothing is scheduled. `after` is the item prepared before (skip it).
    fn next(&mut self, after: Option<&Tag>) -> Next;
    fn started(&mut self, tag: &Tag, title: &str, start: DateTime<Utc>, offset_ns: i64);
    fn ended(&mut self, tag: &Tag, end: DateTime<Utc>, outcome: &Outcome);
    /// Something the operator should know (rebuilds, skipped assets); also recorded as an event.
    fn notice(&mut self, kind: EventKind, message: &str);
}

pub enum Command {
    /// Air these items now, cutting the current one at its next keyframe.
    Emergency(Vec<Next>),
    /// Tear down and rebuild the output (stall detected).
    Rebuild(String),
    Stop,
}

/// What the runner shows the world; read by the actor for status and stall detection.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Snapshot {
    pub on_air_title: Option<String>,
    #[serde(skip)]
    pub on_air_tag: Option<Tag>,
    pub on_air_started: Option<DateTime<Utc>>,
    pub on_air_offset_ns: i64,
    pub on_air_duration_ns: i64,
    pub segments_written: u64,
    #[serde(skip)]
    pub last_segment: Option<Instant>,
    pub restarts: u64,
    pub stats: Stats,
}

pub type Shared = Arc<Mutex<Snapshot>>;

/// Pipeline settings plus how long to wait before rebuilding after a failure.
pub struct Runner<F: Feed> {
    pub settings: EngineSettings,
    pub feed: F,
    pub playlist: Playlist,
    pub commands: Receiver<Command>,
    pub shared: Shared,
    pub silence: gst::Buffer,
    /// Segments, gaps, restarts and items aired are counted here as they happen.
    pub metrics: ChannelMetrics,
}

enum Exit {
    Stop,
    Rebuild(String),
}

/// Segments closed per rung, waiting until every rung has closed the same index: (rungs, start, end).
type Fragments = BTreeMap<u64, (usize, i64, i64)>;

impl<F: Feed> Runner<F> {
    /// Runs until a Stop command (or the command channel closes).
    pub fn run(mut self) {
        let mut resume: Option<Next> = None;
        // Emergency items not aired yet: they outlive a rebuild.
        let mut urgent = VecDeque::new();
        let mut quick_failures = 0u32;
        loop {
            let started = Instant::now();
            let reason = match self.session(resume.take(), &mut urgent) {
                Ok((Exit::Stop, _)) => return,
                Ok((Exit::Rebuild(reason), carry)) => {
                    resume = carry;
                    reason
                }
                Err(e) => e.to_string(),
            };
            self.rebuilt(&reason);
            // An output that keeps failing (a full disk, a broken folder) is retried after 0.5, 1, 2 … 30 s instead
            // of in a tight loop that would fill the event log; a session that ran for a minute resets the count.
            quick_failures = if started.elapsed() > Duration::from_secs(60) { 0 } else { quick_failures + 1 };
            if quick_failures > 1 {
                let wait = Duration::from_millis(500 << (quick_failures - 2).min(6)).min(Duration::from_secs(30));
                if !self.back_off(wait, &mut urgent) {
                    return;
                }
            }
        }
    }

    /// Waits before the next rebuild while still obeying commands; false when told to stop.
    fn back_off(&mut self, wait: Duration, urgent: &mut VecDeque<Next>) -> bool {
        let until = Instant::now() + wait;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            match self.commands.recv_timeout(left) {
                Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => return false,
                Ok(Command::Emergency(items)) => urgent.extend(items),
                Ok(Command::Rebuild(_)) | Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    fn rebuilt(&mut self, reason: &str) {
        self.playlist.mark_discontinuity();
        let restarts = {
            let mut s = self.lock();
            s.restarts += 1;
            s.restarts
        };
        self.metrics.restarted();
        self.feed.notice(EventKind::PipelineRebuilt, &format!("output rebuilt (restart {restarts}): {reason}"));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Snapshot> {
        super::engine::relock(&self.shared)
    }

    /// One output's life: from a fresh timeline until stop or a failure that needs a rebuild.
    /// Returns the item to resume with after a rebuild.
    fn session(
        &mut self,
        mut resume: Option<Next>,
        urgent: &mut VecDeque<Next>,
    ) -> Result<(Exit, Option<Next>), EngineError> {
        let s = self.settings.clone();
        let output = Output::start(&s, self.playlist.next_seq())?;
        let splicer = Splicer::new(output.rungs(), &self.silence, s.origin_ns, s.frame_ns)?;
        splicer.lead_in(&output);
        let clock = gst::SystemClock::obtain();
        // Timeline 0 airs a little in the future so the first item can preroll without being late, minus the head
        // start: the first segments are released as fast as the demuxer reads them.
        let lead = Duration::from_millis(300);
        let now = Utc::now() + chrono::Duration::from_std(lead).unwrap_or_default();
        let published_until = self.playlist.window().last().map(|seg| seg.end());
        let head =
            if s.sync { head_start(s.segment * HEAD_START_SEGMENTS, now, published_until) } else { Duration::ZERO };
        let base = (clock.time() + gst::ClockTime::from_nseconds(lead.as_nanos() as u64))
            .saturating_sub(gst::ClockTime::from_nseconds(head.as_nanos() as u64));
        let wall0 = now - chrono::Duration::from_std(head).unwrap_or_default();
        let mut fragments = Fragments::default();
        // The splicer's gap count of this output already reported to the metrics.
        let mut gaps_counted = 0;

        let mut next = self.prepare_next(&splicer, &output, &clock, urgent, resume.take(), None);
        loop {
            let Some((current, tag)) = next.take() else {
                return Ok((Exit::Stop, None));
            };
            let placement = match splicer.activate(&current, s.sync.then_some(base)) {
                Ok(p) => p,
                Err(e) => {
                    self.feed.ended(&tag, wall(wall0, splicer.video_end()), &Outcome::Failed { reason: e.to_string() });
                    next = self.prepare_next(&splicer, &output, &clock, urgent, None, Some(&tag));
                    continue;
                }
            };
            let start = wall(wall0, placement.video_start);
            self.feed.started(&tag, &current.item.title, start, current.item.start_ns);
            self.metrics.item_aired(tag.airing_kind());
            {
                let mut snap = self.lock();
                snap.on_air_title = Some(current.item.title.clone());
                snap.on_air_tag = Some(tag.clone());
                snap.on_air_started = Some(start);
                snap.on_air_offset_ns = current.item.start_ns;
                snap.on_air_duration_ns = current.item.duration_ns;
            }
            next = self.prepare_next(&splicer, &output, &clock, urgent, None, Some(&tag));
            // A planned end (a hard slot start) is a cut at that keyframe that the schedule asked for.
            let planned_end = current.item.end_ns.filter(|&e| e > current.item.start_ns).and_then(|e| {
                splicer.cut(&current.item, placement, placement.video_start + (e - 1) - current.item.start_ns)
            });
            let mut cut_requested = planned_end.is_some();
            let mut emergency_cut = false;
            // Position reached in the asset: where a cut, a stop or a rebuild leaves it.
            let reached = || current.item.start_ns + (splicer.video_end() - placement.video_start).max(0);
            let outcome = loop {
                // Stop and rebuild both take the item off the air where it is; only a rebuild carries it over. A
                // segment that cannot be written is a rebuild too.
                let written = self.drain_segments(&output, &mut fragments, wall0, s.origin_ns);
                self.count_gaps(&splicer, &mut gaps_counted);
                let interrupt = match written.map(|()| self.commands.try_recv()) {
                    Err(e) => Some(Some(e.to_string())),
                    Ok(Ok(Command::Stop) | Err(TryRecvError::Disconnected)) => Some(None),
                    Ok(Ok(Command::Rebuild(reason))) => Some(Some(reason)),
                    Ok(Ok(Command::Emergency(items))) => {
                        urgent.extend(items);
                        // The prepared item yields to the emergency; it stays scheduled and airs afterwards.
                        drop(next.take());
                        if splicer.cut(&current.item, placement, splicer.video_end()).is_some() {
                            cut_requested = true;
                            emergency_cut = true;
                        }
                        next = self.prepare_next(&splicer, &output, &clock, urgent, None, Some(&tag));
                        None
                    }
                    Ok(Err(TryRecvError::Empty)) => None,
                };
                if let Some(rebuild) = interrupt {
                    let at = reached();
                    current.stop();
                    self.feed.ended(&tag, wall(wall0, splicer.video_end()), &Outcome::Interrupted { at_ns: at });
                    if let Some(reason) = rebuild {
                        let carry = resume_point(&current, at).map(|item| Next { item, tag: tag.clone() });
                        return Ok((Exit::Rebuild(reason), carry));
                    }
                    output.finish();
                    self.drain_segments(&output, &mut fragments, wall0, s.origin_ns)?;
                    return Ok((Exit::Stop, None));
                }
                if cut_requested && splicer.past_cut() {
                    break if emergency_cut { Outcome::Cut { at_ns: reached() } } else { Outcome::Complete };
                }
                match current.poll_end(Duration::from_millis(20)) {
                    Ok(true) => break Outcome::Complete,
                    Ok(false) => {}
                    Err(e) => break Outcome::Failed { reason: e.to_string() },
                }
            };
            current.stop();
            splicer.finish_item(&output);
            self.feed.ended(&tag, wall(wall0, splicer.video_end()), &outcome);
            self.lock().stats = splicer.stats();
            self.count_gaps(&splicer, &mut gaps_counted);
        }
    }

    /// Reports the gaps the splicer found since the last call (its count starts at 0 with every output).
    fn count_gaps(&self, splicer: &Splicer, counted: &mut u64) {
        let gaps = splicer.stats().gaps;
        if gaps > *counted {
            self.metrics.gaps(gaps - *counted);
            *counted = gaps;
        }
    }

    /// Prepares the next item: an urgent (emergency) one first, else what the feed offers. An item that cannot be
    /// demuxed is reported failed and the next one is tried, so a bad asset never stops the channel.
    fn prepare_next(
        &mut self,
        splicer: &Splicer,
        output: &Output,
        clock: &gst::Clock,
        urgent: &mut VecDeque<Next>,
        resume: Option<Next>,
        after: Option<&Tag>,
    ) -> Option<(ItemPipeline, Tag)> {
        let mut candidate = resume;
        for _attempt in 0..20 {
            let n = match candidate.take().or_else(|| urgent.pop_front()) {
                Some(n) => n,
                None => self.feed.next(after),
            };
            match splicer.prepare(n.item.clone(), output, self.settings.sync, clock) {
                Ok(p) => return Some((p, n.tag)),
                Err(e) => {
                    self.feed.ended(&n.tag, Utc::now(), &Outcome::Failed { reason: e.to_string() });
                }
            }
        }
        None
    }

    /// Turns closed segments into playlist entries once every rung closed the same one; a write error ends the
    /// session (the output is rebuilt).
    fn drain_segments(
        &mut self,
        output: &Output,
        fragments: &mut Fragments,
        wall0: DateTime<Utc>,
        origin: i64,
    ) -> Result<(), EngineError> {
        if let Some(e) = output.failure() {
            return Err(e);
        }
        for closed in output.closed() {
            if let Some(rung) = self.settings.rungs.get(closed.rung) {
                self.metrics.segment_written(rung);
            }
            let entry = fragments.entry(closed.index).or_insert((0, closed.start_ns, closed.end_ns));
            entry.0 += 1;
            entry.1 = entry.1.min(closed.start_ns);
            entry.2 = entry.2.max(closed.end_ns);
            if entry.0 < output.rungs() {
                continue;
            }
            let (_, start, end) = fragments.remove(&closed.index).unwrap_or_default();
            let duration = Duration::from_nanos(end.saturating_sub(start).max(0) as u64);
            let pdt = wall(wall0, start - origin);
            let segment =
                Segment { seq: closed.index, duration, program_date_time: pdt, discontinuity: false, epoch: 0 };
            if let Err(e) = self.playlist.push_segment(segment) {
                tracing::error!("playlist: {e}");
            }
            let removed = self.playlist.collect_garbage(Utc::now());
            if !removed.is_empty() {
                tracing::debug!("deleted {} old segment file(s)", removed.len());
            }
            let mut snap = self.lock();
            snap.segments_written += 1;
            snap.last_segment = Some(Instant::now());
        }
        Ok(())
    }
}

/// Segments a new timeline has made as soon as it starts (see [`head_start`]): the live distance players keep from
/// the edge (hls.js `liveSyncDurationCount`, Apple's three target durations).
const HEAD_START_SEGMENTS: u32 = 3;

/// How far in the past a new timeline starts: `most` (three segments), so they are made as fast as the demuxer reads
/// them instead of in real time. A player (or a CDN) opening the channel then finds a playable stream within a
/// second, and a live playlist as long as the distance it keeps from the edge: it need not wait at the edge for the
/// next segment. Every later segment is paced as before and closes when its last frame is due, as a live encoder's
/// would, so each is published at its `PROGRAM-DATE-TIME` plus its duration. Less after a quick restart: the new
/// timeline never starts before the end of what was already published, so wall-clock times (airings,
/// PROGRAM-DATE-TIME) never go backwards.
fn head_start(most: Duration, now: DateTime<Utc>, published_until: Option<DateTime<Utc>>) -> Duration {
    match published_until {
        None => most,
        Some(end) => (now - end).to_std().unwrap_or_default().min(most),
    }
}

/// Wall-clock time of a point on the timeline.
fn wall(wall0: DateTime<Utc>, timeline_ns: i64) -> DateTime<Utc> {
    wall0 + chrono::Duration::nanoseconds(timeline_ns)
}

/// The item again, from the last keyframe at or before `at_ns` (None when it was nearly over).
fn resume_point(p: &ItemPipeline, at_ns: i64) -> Option<Item> {
    let key = p.item.keyframes_ns.iter().copied().filter(|&k| k <= at_ns).max()?;
    if p.item.duration_ns - key < 1_000_000_000 {
        return None;
    }
    Some(Item { start_ns: key, ..p.item.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_timeline_starts_early_but_never_before_what_was_published() {
        let most = Duration::from_secs(12);
        let now = Utc::now();
        let ago = |ms: i64| now - chrono::Duration::milliseconds(ms);
        assert_eq!(head_start(most, now, None), most, "a fresh channel");
        assert_eq!(head_start(most, now, Some(ago(60_000))), most, "a restart long after the last segment");
        assert_eq!(head_start(most, now, Some(ago(1500))), Duration::from_millis(1500), "a quick restart");
        assert_eq!(head_start(most, now, Some(ago(-2000))), Duration::ZERO, "published ahead of the clock");
    }
}
