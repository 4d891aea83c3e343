//! The guide's timeline of a channel: what aired (the airings, as they happened) followed by what will air (the
//! schedule rows from the end of what is on air, one after another), with no overlap and no hole between two
//! consecutive entries. The planner's re-anchoring ([`planned_starts`]) and the guide read the same projection, so
//! the planned starts the planner stores and the starts `/epg.xml` shows are one and the same.
//!
//! Pure except [`open_length`], which reads the store to learn how long the item on air lasts.

use crate::store::{Airing, AiringKind, ScheduleId, Store};
use chrono::{DateTime, Utc};
use std::time::Duration;
use vvtv_api::QueueItem;

/// A hole between two airings up to this long is absorbed into the entry before it (the splice is not exact to
/// the millisecond); a longer one (the station was down) shows as an "off the air" entry.
pub const ABSORBED_GAP: Duration = Duration::from_secs(1);

/// Where a guide entry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `aired[i]` (it went on air).
    Aired(usize),
    /// `queue[i]` (it is planned).
    Planned(usize),
    /// Nothing aired (the station was down).
    OffAir,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub start: DateTime<Utc>,
    pub stop: DateTime<Utc>,
    pub source: Source,
}

fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or_default()
}

/// How long the open airing lasts from its start: for a schedule row, to its cut point or end from where it
/// started; for an emergency item, its asset's length; for a slate, its clip's length. None when it cannot be told.
pub async fn open_length(store: &Store, open: &Airing, queue: &[QueueItem]) -> Option<Duration> {
    if let Some(row) = open.schedule_id.and_then(|id| queue.iter().find(|q| q.id == id)) {
        return Some(row.end.unwrap_or(row.duration).min(row.duration).saturating_sub(open.offset));
    }
    let full = match open.asset_id {
        Some(asset) => store.asset(asset).await.ok().map(|a| a.duration),
        None => store.clip_length(&open.title).await.ok().flatten(),
    }?;
    Some(full.saturating_sub(open.offset))
}

/// The planned start of every row not yet aired (and of the row on air: its airing's start), and when the planned
/// programme ends. `open` is the airing on air with its length from [`open_length`].
pub fn planned_starts(
    queue: &[QueueItem],
    open: Option<(&Airing, Option<Duration>)>,
    now: DateTime<Utc>,
) -> (Vec<(ScheduleId, DateTime<Utc>)>, DateTime<Utc>) {
    let mut t = now;
    let mut starts = Vec::with_capacity(queue.len());
    if let Some((a, length)) = open {
        let row_on_air = a.kind == AiringKind::Scheduled && queue.iter().any(|q| Some(q.id) == a.schedule_id);
        if !row_on_air {
            // An emergency item or the slate is on air (or a row already marked done): the schedule continues
            // after it.
            t = length.map_or(now, |l| (a.start + chrono(l)).max(now));
        }
    }
    for item in queue {
        match open {
            Some((a, length)) if a.kind == AiringKind::Scheduled && a.schedule_id == Some(item.id) => {
                starts.push((item.id, a.start));
                // An item that overran its expected length is still on air: what follows cannot start before now.
                t = (a.start + chrono(length.unwrap_or_else(|| item.remaining()))).max(now);
            }
            _ => {
                starts.push((item.id, t));
                t += chrono(item.remaining());
            }
        }
    }
    (starts, t.max(now))
}

/// The guide of one channel: `aired` (its airings, oldest first, the open one last if any), then `queue` (the
/// rows not finished, in order) from the end of what is on air. Entries touch: each one stops where the next
/// starts. `open_length` is the length of the open airing.
pub fn timeline(
    aired: &[Airing],
    open_length: Option<Duration>,
    queue: &[QueueItem],
    now: DateTime<Utc>,
) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    let open = aired.last().filter(|a| a.end.is_none());
    for (i, a) in aired.iter().enumerate() {
        if let Some(prev) = entries.last_mut() {
            if a.start > prev.stop + chrono(ABSORBED_GAP) {
                let gap = Entry { start: prev.stop, stop: a.start, source: Source::OffAir };
                entries.push(gap);
            } else {
                prev.stop = a.start;
            }
        }
        let stop = match (a.end, aired.get(i + 1)) {
            (Some(end), _) => end,
            // The process died while it was on air: it lasted until the next one started.
            (None, Some(next)) => next.start,
            (None, None) => a.start + chrono(open_length.unwrap_or_default()),
        };
        let stop = if a.end.is_none() && aired.get(i + 1).is_none() { stop.max(now) } else { stop.max(a.start) };
        entries.push(Entry { start: a.start, stop, source: Source::Aired(i) });
    }
    let (starts, _) = planned_starts(queue, open.map(|a| (a, open_length)), now);
    for (i, (item, (_, start))) in queue.iter().zip(starts).enumerate() {
        if open.is_some_and(|a| a.schedule_id == Some(item.id)) {
            continue;
        }
        let open_entry = Some(Source::Aired(aired.len().saturating_sub(1))).filter(|_| open.is_some());
        if let Some(prev) = entries.last_mut() {
            if Some(prev.source) == open_entry {
                // What is on air lasts until the plan goes on.
                prev.stop = start;
            } else if start > prev.stop + chrono(ABSORBED_GAP) {
                let gap = Entry { start: prev.stop, stop: start, source: Source::OffAir };
                entries.push(gap);
            } else {
                prev.stop = start;
            }
        }
        let stop = start + chrono(item.remaining());
        entries.push(Entry { start, stop, source: Source::Planned(i) });
    }
    // An airing the crash closed the moment it began aired nothing; the entries around it touch all the same.
    entries.retain(|e| e.stop > e.start);
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{AiringId, AssetId, ChannelId, ScheduleStatus};

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn airing(id: i64, kind: AiringKind, schedule: Option<i64>, start: i64, end: Option<i64>) -> Airing {
        Airing {
            id: AiringId(id),
            channel_id: ChannelId("main".into()),
            asset_id: Some(AssetId(1)),
            schedule_id: schedule.map(ScheduleId),
            kind,
            title: format!("airing {id}"),
            start: t(start),
            end: end.map(t),
            offset: Duration::ZERO,
        }
    }

    fn row(id: i64, status: ScheduleStatus, secs: u64) -> QueueItem {
        QueueItem {
            id: ScheduleId(id),
            channel_id: ChannelId("main".into()),
            asset_id: AssetId(id),
            title: format!("row {id}"),
            duration: Duration::from_secs(secs),
            status,
            reason: String::new(),
            resume: Duration::ZERO,
            planned_start: None,
            end: None,
            slot: None,
            filler: false,
        }
    }

    fn assert_touching(entries: &[Entry]) {
        for w in entries.windows(2) {
            assert_eq!(w[0].stop, w[1].start, "{entries:#?}");
            assert!(w[0].start < w[0].stop, "{entries:#?}");
        }
    }

    #[test]
    fn the_future_follows_the_item_on_air_without_gaps() {
        let aired = [
            airing(1, AiringKind::Scheduled, Some(1), 0, Some(10)),
            airing(2, AiringKind::Scheduled, Some(2), 10, None),
        ];
        let queue = [row(2, ScheduleStatus::Airing, 20), row(3, ScheduleStatus::Scheduled, 5)];
        let entries = timeline(&aired, Some(Duration::from_secs(20)), &queue, t(15));
        assert_eq!(
            entries.iter().map(|e| (e.start, e.stop, e.source)).collect::<Vec<_>>(),
            [(t(0), t(10), Source::Aired(0)), (t(10), t(30), Source::Aired(1)), (t(30), t(35), Source::Planned(1)),]
        );
    }

    #[test]
    fn an_emergency_on_air_pushes_the_schedule_back_by_its_length() {
        let aired =
            [airing(1, AiringKind::Scheduled, Some(1), 0, Some(7)), airing(2, AiringKind::Emergency, None, 7, None)];
        let queue = [row(2, ScheduleStatus::Scheduled, 10), row(3, ScheduleStatus::Scheduled, 10)];
        let entries = timeline(&aired, Some(Duration::from_secs(8)), &queue, t(9));
        assert_touching(&entries);
        assert_eq!(entries[1], Entry { start: t(7), stop: t(15), source: Source::Aired(1) });
        assert_eq!(entries[2].start, t(15));
        assert_eq!(entries[3].stop, t(35));
        let (starts, end) = planned_starts(&queue, Some((&aired[1], Some(Duration::from_secs(8)))), t(9));
        assert_eq!(starts, [(ScheduleId(2), t(15)), (ScheduleId(3), t(25))]);
        assert_eq!(end, t(35));
    }

    #[test]
    fn a_restart_shows_as_off_the_air_and_small_splice_gaps_are_absorbed() {
        let aired = [
            airing(1, AiringKind::Scheduled, Some(1), 0, Some(10)),
            // 0.0 s … 10.4 s: within a splice's slack.
            Airing {
                start: t(10) + chrono::Duration::milliseconds(400),
                ..airing(2, AiringKind::Scheduled, Some(2), 0, Some(20))
            },
            // The station was down from 20 to 50.
            airing(3, AiringKind::Slate, None, 50, Some(60)),
        ];
        let entries = timeline(&aired, None, &[], t(70));
        assert_touching(&entries);
        let sources: Vec<Source> = entries.iter().map(|e| e.source).collect();
        assert_eq!(sources, [Source::Aired(0), Source::Aired(1), Source::OffAir, Source::Aired(2)]);
        assert_eq!((entries[2].start, entries[2].stop), (t(20), t(50)));
    }

    #[test]
    fn an_airing_left_open_by_a_crash_lasts_until_the_next_one() {
        let aired =
            [airing(1, AiringKind::Scheduled, Some(1), 0, None), airing(2, AiringKind::Scheduled, Some(2), 12, None)];
        let queue = [row(2, ScheduleStatus::Airing, 10)];
        let entries = timeline(&aired, Some(Duration::from_secs(10)), &queue, t(13));
        assert_eq!((entries[0].start, entries[0].stop), (t(0), t(12)));
        assert_eq!((entries[1].start, entries[1].stop), (t(12), t(22)));
        assert_eq!(entries.len(), 2);
    }

    #[test]
    fn an_item_that_overran_is_on_air_until_now() {
        let aired = [airing(1, AiringKind::Scheduled, Some(1), 0, None)];
        let queue = [row(1, ScheduleStatus::Airing, 10), row(2, ScheduleStatus::Scheduled, 10)];
        let entries = timeline(&aired, Some(Duration::from_secs(10)), &queue, t(12));
        assert_touching(&entries);
        assert_eq!((entries[0].stop, entries[1].start, entries[1].stop), (t(12), t(12), t(22)));
    }

    #[test]
    fn an_airing_closed_as_it_began_leaves_no_entry() {
        let aired = [
            airing(1, AiringKind::Scheduled, Some(1), 0, Some(10)),
            airing(2, AiringKind::Scheduled, Some(2), 10, Some(10)),
            airing(3, AiringKind::Scheduled, Some(2), 10, Some(15)),
        ];
        let entries = timeline(&aired, None, &[], t(20));
        assert_touching(&entries);
        assert_eq!(entries.iter().map(|e| e.source).collect::<Vec<_>>(), [Source::Aired(0), Source::Aired(2)]);
    }

    #[test]
    fn with_nothing_on_air_the_plan_starts_now() {
        let queue = [row(1, ScheduleStatus::Scheduled, 10), row(2, ScheduleStatus::Scheduled, 10)];
        let entries = timeline(&[], None, &queue, t(0));
        assert_touching(&entries);
        assert_eq!((entries[0].start, entries[1].stop), (t(0), t(20)));
    }
}
