//! What a simulation measured, from what aired between its start and end: airtime by daypart and by tag, repeats
//! and separation and tag-cap violations (each saying whether the library allowed avoiding it), slot punctuality,
//! the exploration share, gaps, cards and filler. Printed as text, or as JSON with every row for tests.

use super::{SimRow, Simulation};
use crate::config::SlotStart;
use crate::planner::fill::{slot_label, FILLER_TAG};
use crate::planner::selection::{Candidate, Draw};
use crate::store::AssetId;
use chrono::{DateTime, DurationRound, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The simulation's findings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub channel: String,
    pub timezone: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub seed: u64,
    /// Where the library came from.
    pub library: String,
    /// Assets in the channel's library (its config's filter applied), and how many are filler.
    pub library_assets: usize,
    pub library_filler: usize,
    /// The business-logic values it planned with.
    pub rules: serde_json::Value,
    /// Time with something on air between `from` and `to`.
    pub airtime_seconds: f64,
    pub counts: Counts,
    /// Picks drawn by ε-exploration / all picks.
    pub exploration_share: f64,
    /// The longest time with nothing planned (the slate would air): 0 when the library allows.
    pub longest_gap_seconds: f64,
    pub gaps: usize,
    /// Airtime by the daypart in force while it aired; "none" outside every daypart.
    pub dayparts: Vec<DaypartAirtime>,
    /// Airtime by tag (an item with two tags counts for both), most first.
    pub tags: Vec<TagAirtime>,
    /// The same asset again within `diversity.window_minutes`.
    pub repeats: Vec<Violation>,
    /// Two items of the same source or series within `diversity.separation_minutes`.
    pub separation_violations: Vec<Violation>,
    /// An item whose tag already had `diversity.max_same_tag` items in the hour before it.
    pub tag_cap_violations: Vec<Violation>,
    /// Every slot occurrence between `from` and `to`.
    pub slots: Vec<SlotPunctuality>,
    /// Anything worth knowing about how it ran (stored rules that did not apply, …).
    pub notes: Vec<String>,
    /// Every row that went on air between `from` and `to`.
    pub schedule: Vec<SimRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub rows: usize,
    /// Rows drawn from the library (all but the cards).
    pub picks: usize,
    pub exploration: usize,
    /// "Up next" cards padding soft slot starts.
    pub cards: usize,
    /// Filler assets padding soft slot starts.
    pub filler: usize,
    /// Items cut at a keyframe for a hard slot start.
    pub cuts: usize,
    /// Planning rounds run.
    pub rounds: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaypartAirtime {
    pub name: String,
    /// The date override it belongs to, if any.
    pub override_name: Option<String>,
    pub tags: Vec<String>,
    pub weight: f64,
    pub airtime_seconds: f64,
    /// Share of its airtime with one of its tags (none for "none").
    pub tagged_share: Option<f64>,
    /// Share of the library's programme duration with one of its tags: what a planner blind to dayparts would air.
    pub library_share: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagAirtime {
    pub tag: String,
    pub airtime_seconds: f64,
    /// Share of all airtime.
    pub share: f64,
    /// Share of the library's duration with the tag.
    pub library_share: f64,
}

/// One item that broke a separation rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    /// When it started, and its row.
    pub at: DateTime<Utc>,
    pub index: u64,
    pub asset: AssetId,
    pub title: String,
    /// What it came too close to.
    pub with: String,
    /// Minutes since that.
    pub minutes_apart: f64,
    /// The pick did not relax the rule: the library allowed avoiding it (a planner fault). False when nothing else
    /// could air.
    pub avoidable: bool,
}

/// When one slot occurrence started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotPunctuality {
    pub slot: String,
    pub name: String,
    pub start: SlotStart,
    pub max_late_minutes: u32,
    pub at: DateTime<Utc>,
    /// When its programme started; none: the slot was missed.
    pub started: Option<DateTime<Utc>>,
    /// `started − at`, in seconds (negative: early).
    pub lateness_seconds: Option<f64>,
    /// A hard start exactly on time, a soft one no earlier and at most `max_late_minutes` late.
    pub on_time: bool,
}

impl Report {
    /// Measures what aired on the simulation's virtual air between `from` and `to`.
    pub fn new(sim: &Simulation, from: DateTime<Utc>, to: DateTime<Utc>, library: String) -> Report {
        let rules = sim.rules();
        let aired: Vec<&SimRow> = sim.rows().iter().filter(|r| r.start >= from && r.start < to).collect();
        let candidates = sim.candidates();
        let clip = |r: &SimRow| seconds(r.end().min(to) - r.start.max(from));
        let picks: Vec<&&SimRow> = aired.iter().filter(|r| r.draw.is_some()).collect();
        let exploration = picks.iter().filter(|r| r.draw == Some(Draw::Exploration)).count();
        let counts = Counts {
            rows: aired.len(),
            picks: picks.len(),
            exploration,
            cards: aired.iter().filter(|r| r.asset.is_none()).count(),
            filler: aired.iter().filter(|r| r.asset.is_some() && r.filler).count(),
            cuts: aired.iter().filter(|r| r.cut.is_some()).count(),
            rounds: sim.rounds(),
        };
        let (longest_gap_seconds, gaps) = gaps(&aired, from, to);
        let window = chrono::Duration::minutes(i64::from(rules.window_minutes));
        let separation = chrono::Duration::minutes(i64::from(rules.separation_minutes));
        Report {
            channel: sim.channel().id.clone(),
            timezone: sim.grid().tz().name().to_owned(),
            from,
            to,
            seed: rules.seed,
            library,
            library_assets: candidates.len(),
            library_filler: candidates.iter().filter(|c| is_filler(c)).count(),
            rules: serde_json::to_value(rules).unwrap_or_default(),
            airtime_seconds: aired.iter().map(|r| clip(r)).sum(),
            exploration_share: if picks.is_empty() { 0.0 } else { exploration as f64 / picks.len() as f64 },
            counts,
            longest_gap_seconds,
            gaps,
            dayparts: dayparts(sim, &aired, &candidates, from, to),
            tags: tags(&aired, &candidates, &clip),
            repeats: repeats(&aired, window),
            separation_violations: separations(&aired, separation),
            tag_cap_violations: tag_caps(&aired, rules.max_same_tag),
            slots: slots(sim, &aired, from, to),
            notes: Vec::new(),
            schedule: aired.into_iter().cloned().collect(),
        }
    }

    /// Violations the library allowed avoiding (each one a planner fault).
    pub fn avoidable(&self) -> usize {
        [&self.repeats, &self.separation_violations, &self.tag_cap_violations]
            .iter()
            .map(|v| v.iter().filter(|x| x.avoidable).count())
            .sum()
    }
}

fn seconds(d: chrono::Duration) -> f64 {
    d.num_milliseconds().max(0) as f64 / 1000.0
}

fn is_filler(c: &Candidate) -> bool {
    c.tags.iter().any(|t| t.eq_ignore_ascii_case(FILLER_TAG))
}

fn has_any(tags: &[String], wanted: &[String]) -> bool {
    tags.iter().any(|t| wanted.iter().any(|w| w.eq_ignore_ascii_case(t)))
}

/// The longest stretch with nothing on air, and how many there were.
fn gaps(aired: &[&SimRow], from: DateTime<Utc>, to: DateTime<Utc>) -> (f64, usize) {
    let mut end = from;
    let mut longest = 0.0f64;
    let mut count = 0;
    let ends = aired.iter().map(|r| (r.start, r.end())).chain(std::iter::once((to, to)));
    for (start, stop) in ends {
        let gap = seconds(start.min(to) - end);
        if gap > 0.0 {
            longest = longest.max(gap);
            count += 1;
        }
        end = end.max(stop);
    }
    (longest, count)
}

fn dayparts(
    sim: &Simulation,
    aired: &[&SimRow],
    candidates: &[Candidate],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<DaypartAirtime> {
    let programme: Vec<&Candidate> = candidates.iter().filter(|c| !is_filler(c)).collect();
    let total: f64 = programme.iter().map(|c| c.duration.as_secs_f64()).sum();
    let library_share = |tags: &[String]| {
        let tagged: f64 = programme.iter().filter(|c| has_any(&c.tags, tags)).map(|c| c.duration.as_secs_f64()).sum();
        if total > 0.0 {
            tagged / total
        } else {
            0.0
        }
    };
    // (name, override) → (entry, tagged airtime). Dayparts change on local minutes: a row is split per UTC minute.
    let mut parts: BTreeMap<(String, Option<String>), (DaypartAirtime, f64)> = BTreeMap::new();
    let minute = chrono::Duration::minutes(1);
    for r in aired {
        let (mut t, end) = (r.start.max(from), r.end().min(to));
        while t < end {
            let next = (t.duration_trunc(minute).unwrap_or(t) + minute).min(end);
            let piece = seconds(next - t);
            let (key, entry) = match sim.grid().daypart_at(t) {
                Some((d, o)) => (
                    (d.name.clone(), o.map(str::to_owned)),
                    DaypartAirtime {
                        name: d.name.clone(),
                        override_name: o.map(str::to_owned),
                        tags: d.tags.clone(),
                        weight: d.weight,
                        airtime_seconds: 0.0,
                        tagged_share: Some(0.0),
                        library_share: Some(library_share(&d.tags)),
                    },
                ),
                None => (
                    ("none".to_owned(), None),
                    DaypartAirtime {
                        name: "none".into(),
                        override_name: None,
                        tags: Vec::new(),
                        weight: 0.0,
                        airtime_seconds: 0.0,
                        tagged_share: None,
                        library_share: None,
                    },
                ),
            };
            let slot = parts.entry(key).or_insert((entry, 0.0));
            slot.0.airtime_seconds += piece;
            if !slot.0.tags.is_empty() && has_any(&r.tags, &slot.0.tags) {
                slot.1 += piece;
            }
            t = next;
        }
    }
    let mut out: Vec<DaypartAirtime> = parts
        .into_values()
        .map(|(mut d, tagged)| {
            if d.tagged_share.is_some() && d.airtime_seconds > 0.0 {
                d.tagged_share = Some(tagged / d.airtime_seconds);
            }
            d
        })
        .collect();
    // "none" last, the others by airtime.
    out.sort_by(|a, b| {
        (a.name == "none", b.airtime_seconds)
            .partial_cmp(&(b.name == "none", a.airtime_seconds))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    out
}

fn tags(aired: &[&SimRow], candidates: &[Candidate], clip: &dyn Fn(&SimRow) -> f64) -> Vec<TagAirtime> {
    let total: f64 = aired.iter().map(|r| clip(r)).sum();
    let library: f64 = candidates.iter().map(|c| c.duration.as_secs_f64()).sum();
    let mut by_tag: BTreeMap<String, f64> = BTreeMap::new();
    for r in aired {
        for t in &r.tags {
            *by_tag.entry(t.to_lowercase()).or_default() += clip(r);
        }
    }
    let mut out: Vec<TagAirtime> = by_tag
        .into_iter()
        .map(|(tag, airtime)| {
            let in_library: f64 = candidates
                .iter()
                .filter(|c| c.tags.iter().any(|t| t.eq_ignore_ascii_case(&tag)))
                .map(|c| c.duration.as_secs_f64())
                .sum();
            TagAirtime {
                share: if total > 0.0 { airtime / total } else { 0.0 },
                library_share: if library > 0.0 { in_library / library } else { 0.0 },
                tag,
                airtime_seconds: airtime,
            }
        })
        .collect();
    out.sort_by(|a, b| b.airtime_seconds.partial_cmp(&a.airtime_seconds).unwrap_or(std::cmp::Ordering::Equal));
    out
}

fn violation(r: &SimRow, before: &SimRow, with: String, rule: &str) -> Option<Violation> {
    Some(Violation {
        at: r.start,
        index: r.index,
        asset: r.asset?,
        title: r.title.clone(),
        with,
        minutes_apart: seconds(r.start - before.start) / 60.0,
        avoidable: !r.relaxed.iter().any(|x| x == rule),
    })
}

/// The rows before `aired[j]` that started less than `within` before it, latest first.
fn before<'a>(aired: &'a [&'a SimRow], j: usize, within: chrono::Duration) -> impl Iterator<Item = &'a SimRow> + 'a {
    let at = aired[j].start;
    aired[..j].iter().rev().take_while(move |r| at - r.start < within).copied()
}

fn repeats(aired: &[&SimRow], window: chrono::Duration) -> Vec<Violation> {
    (0..aired.len())
        .filter_map(|j| {
            let r = aired[j];
            let asset = r.asset?;
            let prev = before(aired, j, window).find(|p| p.asset == Some(asset))?;
            violation(r, prev, format!("itself at {}", prev.start.to_rfc3339()), "diversity.window_minutes")
        })
        .collect()
}

fn separations(aired: &[&SimRow], separation: chrono::Duration) -> Vec<Violation> {
    (0..aired.len())
        .filter_map(|j| {
            let r = aired[j];
            r.asset?;
            let prev = before(aired, j, separation).find(|p| {
                let same_source = !r.source.is_empty() && p.source == r.source;
                let same_series = r.series.is_some() && p.series == r.series;
                p.asset.is_some() && p.asset != r.asset && (same_source || same_series)
            })?;
            let with = match (&r.series, &prev.series) {
                (Some(a), Some(b)) if a == b => format!("series {a} ({})", prev.title),
                _ => format!("source {} ({})", r.source, prev.title),
            };
            violation(r, prev, with, "diversity.separation_minutes")
        })
        .collect()
}

fn tag_caps(aired: &[&SimRow], cap: u32) -> Vec<Violation> {
    if cap == 0 {
        return Vec::new();
    }
    let hour = chrono::Duration::hours(1);
    (0..aired.len())
        .filter_map(|j| {
            let r = aired[j];
            r.asset?;
            r.tags.iter().find_map(|tag| {
                let same: Vec<&SimRow> =
                    before(aired, j, hour).filter(|p| p.tags.iter().any(|t| t.eq_ignore_ascii_case(tag))).collect();
                let last = same.first()?;
                (same.len() as u32 >= cap).then(|| {
                    let with = format!("tag {tag}: {} in the hour before", same.len());
                    violation(r, last, with, "diversity.max_same_tag")
                })?
            })
        })
        .collect()
}

fn slots(sim: &Simulation, aired: &[&SimRow], from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<SlotPunctuality> {
    let by_label: BTreeMap<&str, &SimRow> = aired.iter().filter_map(|r| Some((r.slot.as_deref()?, *r))).collect();
    sim.grid()
        .slots_between(from, to)
        .into_iter()
        .map(|s| {
            let label = slot_label(s.slot, s.at);
            let started = by_label.get(label.as_str()).map(|r| r.start);
            let lateness = started.map(|t| (t - s.at).num_milliseconds() as f64 / 1000.0);
            let on_time = match (s.slot.start, lateness) {
                (_, None) => false,
                (SlotStart::Hard, Some(l)) => l == 0.0,
                (SlotStart::Soft, Some(l)) => (0.0..=f64::from(s.slot.max_late_minutes) * 60.0).contains(&l),
            };
            SlotPunctuality {
                slot: label,
                name: s.slot.name.clone(),
                start: s.slot.start,
                max_late_minutes: s.slot.max_late_minutes,
                at: s.at,
                started,
                lateness_seconds: lateness,
                on_time,
            }
        })
        .collect()
}

fn hours(s: f64) -> String {
    format!("{:.1} h", s / 3600.0)
}

fn pct(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let local = |t: DateTime<Utc>| t.with_timezone(&self.timezone.parse().unwrap_or(chrono_tz::UTC));
        let c = &self.counts;
        writeln!(
            f,
            "channel {} ({}), {} to {}, seed {}",
            self.channel,
            self.timezone,
            local(self.from).format("%a %Y-%m-%d %H:%M"),
            local(self.to).format("%a %Y-%m-%d %H:%M"),
            self.seed
        )?;
        writeln!(
            f,
            "library: {}; {} in the channel's library ({} filler)",
            self.library, self.library_assets, self.library_filler
        )?;
        writeln!(
            f,
            "aired {} in {} rows: {} picks, {} filler, {} \"up next\" cards, {} cut for a hard slot ({} rounds)",
            hours(self.airtime_seconds),
            c.rows,
            c.picks,
            c.filler,
            c.cards,
            c.cuts,
            c.rounds
        )?;
        writeln!(f, "exploration share: {} ({} of {} picks)", pct(self.exploration_share), c.exploration, c.picks)?;
        writeln!(f, "longest gap: {:.1} s ({} gaps)", self.longest_gap_seconds, self.gaps)?;
        writeln!(f, "\ndayparts (airtime, share with its tags, library share):")?;
        for d in &self.dayparts {
            let name = match &d.override_name {
                Some(o) => format!("{} [{o}]", d.name),
                None => d.name.clone(),
            };
            let share = |x: Option<f64>| x.map(pct).unwrap_or_else(|| "-".into());
            writeln!(
                f,
                "  {name:<24} {:>9}  {:>8}  {:>8}  {}",
                hours(d.airtime_seconds),
                share(d.tagged_share),
                share(d.library_share),
                if d.tags.is_empty() { String::new() } else { format!("{} (weight {})", d.tags.join(", "), d.weight) }
            )?;
        }
        writeln!(f, "\ntags (airtime, share of airtime, library share):")?;
        for t in &self.tags {
            writeln!(
                f,
                "  {:<24} {:>9}  {:>8}  {:>8}",
                t.tag,
                hours(t.airtime_seconds),
                pct(t.share),
                pct(t.library_share)
            )?;
        }
        writeln!(f)?;
        let rule = |key: &str| self.rules.get(key).map(|v| v.to_string()).unwrap_or_default();
        for (what, key, list) in [
            ("repeats inside the window", "diversity.window_minutes", &self.repeats),
            ("separation violations", "diversity.separation_minutes", &self.separation_violations),
            ("tag-cap violations", "diversity.max_same_tag", &self.tag_cap_violations),
        ] {
            let avoidable = list.iter().filter(|v| v.avoidable).count();
            writeln!(
                f,
                "{what} ({key} = {}): {} ({avoidable} avoidable, {} forced by the library)",
                rule(key),
                list.len(),
                list.len() - avoidable
            )?;
            for v in list.iter().take(5) {
                let how = if v.avoidable { "AVOIDABLE" } else { "forced" };
                writeln!(
                    f,
                    "  {} {} ({}) {:.0} min after {}: {how}",
                    local(v.at).format("%a %H:%M"),
                    v.title,
                    v.asset,
                    v.minutes_apart,
                    v.with
                )?;
            }
            if list.len() > 5 {
                writeln!(f, "  … {} more", list.len() - 5)?;
            }
        }
        let on_time = self.slots.iter().filter(|s| s.on_time).count();
        writeln!(f, "\nslots: {on_time} of {} on time", self.slots.len())?;
        for s in &self.slots {
            let when = match s.lateness_seconds {
                None => "MISSED".to_owned(),
                Some(0.0) => "on the minute".to_owned(),
                Some(l) if l < 0.0 => format!("{:.1} s early", -l),
                Some(l) => format!("{:.1} s late", l),
            };
            let kind = match s.start {
                SlotStart::Hard => "hard".to_owned(),
                SlotStart::Soft => format!("soft, up to {} min late", s.max_late_minutes),
            };
            let flag = if s.on_time { "" } else { "  <- off" };
            writeln!(f, "  {} {} ({kind}): {when}{flag}", local(s.at).format("%a %Y-%m-%d %H:%M"), s.name)?;
        }
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        Ok(())
    }
}
