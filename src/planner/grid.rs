//! A channel's grid in wall-clock time: which daypart is in force at an instant, and when its fixed-time slots fall —
//! in the channel's IANA timezone, DST-correct, with date overrides replacing the dayparts on their dates.

use crate::config::{ChannelConfig, DaypartConfig, OverrideConfig, SlotConfig};
use chrono::{DateTime, Datelike, Duration as TimeDelta, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// The grid of one channel (its rules, ready to be asked).
#[derive(Debug, Clone)]
pub struct Grid {
    tz: Tz,
    dayparts: Vec<DaypartConfig>,
    overrides: Vec<OverrideConfig>,
    slots: Vec<SlotConfig>,
}

/// One occurrence of a slot.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotTime<'a> {
    pub at: DateTime<Utc>,
    pub slot: &'a SlotConfig,
}

impl Grid {
    pub fn new(channel: &ChannelConfig) -> Grid {
        Grid {
            tz: channel.tz(),
            dayparts: channel.dayparts.clone(),
            overrides: channel.overrides.clone(),
            slots: channel.slots.clone(),
        }
    }

    pub fn tz(&self) -> Tz {
        self.tz
    }

    /// The dayparts in force on a local date: an override's when one covers it.
    fn dayparts_on(&self, date: NaiveDate) -> (&[DaypartConfig], Option<&str>) {
        match self.overrides.iter().find(|o| o.from <= date && date <= o.to) {
            Some(o) => (&o.dayparts, Some(&o.name)),
            None => (&self.dayparts, None),
        }
    }

    /// The daypart in force at `at`, and the override it comes from (if any).
    pub fn daypart_at(&self, at: DateTime<Utc>) -> Option<(&DaypartConfig, Option<&str>)> {
        let local = at.with_timezone(&self.tz).naive_local();
        let (date, time) = (local.date(), local.time());
        let (today, source) = self.dayparts_on(date);
        let found = today.iter().find(|d| {
            let (start, end) = (d.start.0, d.end.0);
            if start < end {
                d.days.contains(date.weekday()) && start <= time && time < end
            } else {
                // Past midnight: the evening part belongs to today, the early part to yesterday's daypart.
                d.days.contains(date.weekday()) && time >= start
            }
        });
        if let Some(d) = found {
            return Some((d, source));
        }
        let yesterday = date.pred_opt()?;
        let (before, source) = self.dayparts_on(yesterday);
        before
            .iter()
            .find(|d| d.end.0 <= d.start.0 && d.days.contains(yesterday.weekday()) && time < d.end.0)
            .map(|d| (d, source))
    }

    /// The slots starting in `[from, to)`, in order.
    pub fn slots_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<SlotTime<'_>> {
        if self.slots.is_empty() || to <= from {
            return Vec::new();
        }
        let first = from.with_timezone(&self.tz).date_naive().pred_opt().unwrap_or(NaiveDate::MIN);
        let last = to.with_timezone(&self.tz).date_naive();
        let mut out = Vec::new();
        let mut date = first;
        while date <= last {
            for slot in self.slots.iter().filter(|s| s.days.contains(date.weekday())) {
                if let Some(at) = self.instant(date.and_time(slot.at.0)) {
                    if from <= at && at < to {
                        out.push(SlotTime { at, slot });
                    }
                }
            }
            date = match date.succ_opt() {
                Some(d) => d,
                None => break,
            };
        }
        out.sort_by_key(|s| s.at);
        out
    }

    /// The first slot at or after `from` (looking at most two weeks ahead).
    pub fn next_slot(&self, from: DateTime<Utc>) -> Option<SlotTime<'_>> {
        self.slots_between(from, from + TimeDelta::days(15)).into_iter().next()
    }

    /// A local wall-clock time as an instant. In the autumn repeat hour the first occurrence counts; a time that does
    /// not exist (the spring gap) moves forward by the gap.
    fn instant(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        match self.tz.from_local_datetime(&local) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t.with_timezone(&Utc)),
            LocalResult::None => match self.tz.from_local_datetime(&(local + TimeDelta::hours(1))) {
                LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t.with_timezone(&Utc)),
                LocalResult::None => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ClockTime, Days, SlotStart};
    use chrono::{NaiveTime, Weekday};

    fn hm(h: u32, m: u32) -> ClockTime {
        ClockTime(NaiveTime::from_hms_opt(h, m, 0).unwrap())
    }

    fn part(name: &str, days: Days, start: ClockTime, end: ClockTime) -> DaypartConfig {
        DaypartConfig { name: name.into(), days, start, end, tags: vec![name.into()], weight: 1.0 }
    }

    fn berlin() -> ChannelConfig {
        ChannelConfig {
            timezone: "Europe/Berlin".into(),
            dayparts: vec![
                part("morning", Days::Weekdays, hm(6, 0), hm(10, 0)),
                part("late", Days::List(vec![Weekday::Fri, Weekday::Sat]), hm(22, 0), hm(2, 0)),
            ],
            overrides: vec![OverrideConfig {
                name: "christmas".into(),
                from: NaiveDate::from_ymd_opt(2026, 12, 24).unwrap(),
                to: NaiveDate::from_ymd_opt(2026, 12, 26).unwrap(),
                dayparts: vec![part("films", Days::Daily, hm(8, 0), hm(23, 0))],
            }],
            slots: vec![SlotConfig {
                name: "news".into(),
                days: Days::Daily,
                at: hm(20, 0),
                tags: vec!["news".into()],
                start: SlotStart::Hard,
                max_late_minutes: 0,
            }],
            ..ChannelConfig::default()
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn name(g: &Grid, at: &str) -> Option<String> {
        g.daypart_at(utc(at)).map(|(d, _)| d.name.clone())
    }

    #[test]
    fn dayparts_follow_local_time_weekdays_and_midnight() {
        let g = Grid::new(&berlin());
        // Mon 2026-03-02, 06:30 in Berlin is 05:30 UTC (CET, +1).
        assert_eq!(name(&g, "2026-03-02T05:30:00Z").as_deref(), Some("morning"));
        assert_eq!(name(&g, "2026-03-02T04:59:59Z"), None, "05:59:59 local is before the morning");
        assert_eq!(name(&g, "2026-03-07T05:30:00Z"), None, "no morning daypart on a Saturday");
        // Friday 23:30 local, and Saturday 01:30 local (still Friday's late daypart), but not Sunday 01:30.
        assert_eq!(name(&g, "2026-03-06T22:30:00Z").as_deref(), Some("late"));
        assert_eq!(name(&g, "2026-03-07T00:30:00Z").as_deref(), Some("late"));
        assert_eq!(name(&g, "2026-03-07T23:30:00Z").as_deref(), Some("late"), "Saturday's own late daypart");
        assert_eq!(name(&g, "2026-03-09T00:30:00Z"), None, "Sunday has no late daypart");
    }

    #[test]
    fn summer_time_moves_the_utc_time_of_a_local_daypart() {
        let g = Grid::new(&berlin());
        // Mon 2026-03-30 is after the switch to CEST (+2): 06:30 local is 04:30 UTC.
        assert_eq!(name(&g, "2026-03-30T04:30:00Z").as_deref(), Some("morning"));
        assert_eq!(name(&g, "2026-03-30T08:30:00Z"), None, "10:30 local");
    }

    #[test]
    fn an_override_replaces_the_dayparts_on_its_dates() {
        let g = Grid::new(&berlin());
        let (d, source) = g.daypart_at(utc("2026-12-24T09:00:00Z")).unwrap();
        assert_eq!((d.name.as_str(), source), ("films", Some("christmas")));
        assert_eq!(name(&g, "2026-12-24T06:00:00Z"), None, "07:00 local: the weekday morning does not apply");
        assert_eq!(name(&g, "2026-12-28T06:00:00Z").as_deref(), Some("morning"), "Monday after");
    }

    #[test]
    fn slots_fall_at_local_time_across_the_dst_change() {
        let g = Grid::new(&berlin());
        let slots = g.slots_between(utc("2026-03-27T00:00:00Z"), utc("2026-03-31T00:00:00Z"));
        let times: Vec<String> = slots.iter().map(|s| s.at.format("%m-%d %H:%M").to_string()).collect();
        // 20:00 local: 19:00 UTC in winter time, 18:00 UTC from Sunday 29 March (summer time).
        assert_eq!(times, ["03-27 19:00", "03-28 19:00", "03-29 18:00", "03-30 18:00"]);
        assert_eq!(g.next_slot(utc("2026-03-27T19:00:01Z")).unwrap().at, utc("2026-03-28T19:00:00Z"));
    }
}
