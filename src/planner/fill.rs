//! Filling a channel's schedule from a point in time until the buffer target: one pick after another, fixed-time
//! slots honoured (the item before a hard start cut at its keyframe nearest the slot time, the gap before a soft
//! start padded with filler), every row with its planned start and the reason it was chosen.
//!
//! Pure like [`super::selection`]: the planner actor feeds it the store's view of the channel, and the simulation feeds
//! it its own, at an accelerated clock.

use super::grid::Grid;
use super::selection::{self, Candidate, Draw, Pick, Recent, Rerank, SelectionRules, Situation};
use crate::config::{SlotConfig, SlotStart};
use crate::store::AssetId;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// Items shorter than this are not worth airing as padding; a smaller gap before a slot is absorbed instead.
pub const MIN_PAD: Duration = Duration::from_secs(2);
/// The tag that marks assets made to fill gaps.
pub const FILLER_TAG: &str = "filler";
/// Bounds one round even if the library holds only very short assets.
const MAX_ROWS_PER_ROUND: usize = 500;

/// What one row of the filled schedule is.
#[derive(Debug, Clone, PartialEq)]
pub enum Planned {
    /// An asset of the library.
    Asset { asset: AssetId, pick: Box<Pick> },
    /// An "up next" card to be made: it announces `next_title` (with `next_asset`'s poster) at `next_at` and lasts
    /// `duration`.
    Card { duration: Duration, next_title: String, next_asset: Option<AssetId>, next_at: DateTime<Utc> },
}

/// One row to append.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub planned: Planned,
    pub start: DateTime<Utc>,
    /// How long it airs (to its cut point when cut).
    pub length: Duration,
    /// Where in the asset it ends when a hard slot start cuts it.
    pub end: Option<Duration>,
    /// `name@start` of the slot it fills.
    pub slot: Option<String>,
    pub filler: bool,
    pub reason: String,
}

/// The channel as the fill sees it.
pub struct Channel<'a> {
    pub id: &'a str,
    pub grid: &'a Grid,
    pub library: &'a [Candidate],
    /// Keyframes of each asset (cut points), by asset.
    pub keyframes: &'a (dyn Fn(AssetId) -> Vec<Duration> + Sync),
    /// The LLM rerank of a weighted pick's shortlist, when `llm.rerank` is on (None: the sampled order).
    pub rerank: Option<&'a Reranker<'a>>,
}

/// Asked with the slot and its weighted pick; answers what the rerank did (None: leave the pick alone).
pub type Reranker<'a> = dyn Fn(&Situation, &Pick) -> Option<Rerank> + Sync + 'a;

/// Where the fill starts and what it must reach.
pub struct Start<'a> {
    /// The end of what is already planned (the first row's start).
    pub at: DateTime<Utc>,
    /// Fill until the last row ends at or after this.
    pub until: DateTime<Utc>,
    /// The index of the first new row on the channel (seeds its draw).
    pub slot_index: u64,
    /// What aired or is planned before `at` (for the separation rules).
    pub history: &'a [Recent],
    /// Labels of slots already filled by planned rows.
    pub filled_slots: &'a [String],
    /// A repeat inside `diversity.window_minutes` (nothing else can air) is planned only to start before this — it
    /// keeps the channel off the slate; past it the fill waits for the library to grow.
    pub repeat_until: DateTime<Utc>,
}

/// A slot occurrence's label in the schedule.
pub fn slot_label(slot: &SlotConfig, at: DateTime<Utc>) -> String {
    format!("{}@{}", slot.name, at.to_rfc3339())
}

/// Fills from `start.at` until `start.until` (or nothing is left to air). Rows come back in airing order.
pub fn fill(channel: &Channel, rules: &SelectionRules, start: &Start) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    let mut history: Vec<Recent> = start.history.to_vec();
    let mut filled: Vec<String> = start.filled_slots.to_vec();
    let mut t = start.at;
    let mut index = start.slot_index;
    while t < start.until && rows.len() < MAX_ROWS_PER_ROUND {
        let Some(row) = next_row(channel, rules, t, index, &history, &filled) else { break };
        let repeat = matches!(&row.planned, Planned::Asset { pick, .. } if pick.relaxed.iter().any(|r| r == "diversity.window_minutes"));
        if repeat && row.start >= start.repeat_until {
            break;
        }
        if let Planned::Asset { asset, .. } = &row.planned {
            let c = channel.library.iter().find(|c| c.asset == *asset);
            history.push(Recent {
                asset: *asset,
                start: row.start,
                tags: c.map(|c| c.tags.clone()).unwrap_or_default(),
                source: c.map(|c| c.source.clone()).unwrap_or_default(),
                series: c.and_then(|c| c.series.clone()),
            });
        }
        if let Some(label) = &row.slot {
            filled.push(label.clone());
        }
        t = row.start + chrono::Duration::from_std(row.length.max(Duration::from_millis(1))).unwrap_or_default();
        index += 1;
        rows.push(row);
    }
    announce_what_follows(&mut rows);
    rows
}

/// Each "up next" card names the row after it, when the same round planned that row.
fn announce_what_follows(rows: &mut [Row]) {
    for i in 1..rows.len() {
        let Planned::Asset { asset, pick } = &rows[i].planned else { continue };
        let (asset, title, at) = (*asset, pick.title.clone(), rows[i].start);
        if let Planned::Card { next_title, next_asset, next_at, .. } = &mut rows[i - 1].planned {
            (*next_title, *next_asset, *next_at) = (title, Some(asset), at);
        }
    }
}

/// The slot the next row must respect: the first one not filled yet that can still start (a soft slot up to its
/// lateness after its time).
fn pending_slot<'g>(grid: &'g Grid, t: DateTime<Utc>, filled: &[String]) -> Option<(DateTime<Utc>, &'g SlotConfig)> {
    let back = chrono::Duration::minutes(120);
    grid.slots_between(t - back, t + chrono::Duration::days(2)).into_iter().find_map(|s| {
        let late = match s.slot.start {
            SlotStart::Soft => chrono::Duration::minutes(i64::from(s.slot.max_late_minutes)),
            SlotStart::Hard => chrono::Duration::zero(),
        };
        let label = slot_label(s.slot, s.at);
        (s.at + late >= t && !filled.contains(&label)).then_some((s.at, s.slot))
    })
}

fn next_row(
    channel: &Channel,
    rules: &SelectionRules,
    t: DateTime<Utc>,
    index: u64,
    history: &[Recent],
    filled: &[String],
) -> Option<Row> {
    let daypart = channel.grid.daypart_at(t);
    let (tags, weight) = daypart.map(|(d, _)| (d.tags.as_slice(), d.weight)).unwrap_or((&[], 0.0));
    let situation = Situation {
        channel: channel.id,
        slot: index,
        at: t,
        daypart_tags: tags,
        daypart_weight: weight,
        recent: history,
    };
    let draw = |pool: &[Candidate]| {
        let pick = selection::pick(pool, rules, &situation)?;
        let answer = match channel.rerank {
            Some(rerank) if pick.draw == Draw::Weighted && pick.shortlist.len() > 1 => rerank(&situation, &pick),
            _ => None,
        };
        Some(match answer {
            Some(r) => selection::reranked(pick, r),
            None => pick,
        })
    };
    let row = |pick: Pick, length: Duration, end: Option<Duration>, slot: Option<String>, filler: bool, note: &str| {
        let reason = if note.is_empty() { pick.reason.clone() } else { format!("{note}; {}", pick.reason) };
        Row {
            planned: Planned::Asset { asset: pick.asset, pick: Box::new(pick) },
            start: t,
            length,
            end,
            slot,
            filler,
            reason,
        }
    };
    let length_of =
        |asset: AssetId| channel.library.iter().find(|c| c.asset == asset).map(|c| c.duration).unwrap_or_default();
    // Filler pads gaps; it is programme only for a library of nothing else.
    let filler_tag = [FILLER_TAG.to_owned()];
    let programme: Vec<Candidate> = channel.library.iter().filter(|c| !has_tag(c, &filler_tag)).cloned().collect();
    let programme: &[Candidate] = if programme.is_empty() { channel.library } else { &programme };

    let Some((slot_at, slot)) = pending_slot(channel.grid, t, filled) else {
        let pick = draw(programme)?;
        let length = length_of(pick.asset);
        return Some(row(pick, length, None, None, false, ""));
    };
    let label = slot_label(slot, slot_at);
    let gap = (slot_at - t).to_std().unwrap_or_default();
    if gap < MIN_PAD {
        // The slot's time has come (or is under two seconds away): its programme, from the slot's tags.
        let tagged: Vec<Candidate> = channel.library.iter().filter(|c| has_tag(c, &slot.tags)).cloned().collect();
        let (pool, note) = if tagged.is_empty() {
            (
                channel.library.to_vec(),
                format!("slot {}: nothing tagged {} in the library", slot.name, slot.tags.join("/")),
            )
        } else {
            let late = (t - slot_at).num_seconds();
            let when = if late > 0 { format!("{late} s late") } else { "on time".to_owned() };
            (
                tagged,
                format!("slot {} at {} ({when})", slot.name, slot_at.with_timezone(&channel.grid.tz()).format("%H:%M")),
            )
        };
        let pick = draw(&pool)?;
        let length = length_of(pick.asset);
        return Some(row(pick, length, None, Some(label), false, &note));
    }
    // Before a slot: whatever airs must end by the slot's time (a hard start cuts what would not).
    let pick = draw(programme)?;
    let length = length_of(pick.asset);
    if length <= gap {
        return Some(row(pick, length, None, None, false, ""));
    }
    let fitting: Vec<Candidate> = programme.iter().filter(|c| c.duration <= gap).cloned().collect();
    let fillers: Vec<Candidate> =
        channel.library.iter().filter(|c| c.duration <= gap && has_tag(c, &filler_tag)).cloned().collect();
    let before = format!("before slot {} at {}", slot.name, slot_at.with_timezone(&channel.grid.tz()).format("%H:%M"));
    match slot.start {
        SlotStart::Hard => {
            if let Some(p) = draw(&fitting) {
                let length = length_of(p.asset);
                return Some(row(
                    p,
                    length,
                    None,
                    None,
                    false,
                    &format!("{before}: fits the {} s left", gap.as_secs()),
                ));
            }
            let keyframes = (channel.keyframes)(pick.asset);
            let cut = keyframes
                .into_iter()
                .filter(|&k| k >= MIN_PAD && k < length)
                .min_by_key(|&k| (k.as_millis() as i64 - gap.as_millis() as i64).abs())
                .unwrap_or(gap);
            let note =
                format!("{before} (hard start): cut at its keyframe {:.1} s, nearest the slot time", cut.as_secs_f64());
            Some(row(pick, cut, Some(cut), None, false, &note))
        }
        SlotStart::Soft => {
            if let Some(p) = draw(&fillers).or_else(|| draw(&fitting)) {
                let length = length_of(p.asset);
                let filler = has_tag(channel.library.iter().find(|c| c.asset == p.asset)?, &filler_tag);
                return Some(row(
                    p,
                    length,
                    None,
                    None,
                    filler,
                    &format!("{before}: padding the {} s left", gap.as_secs()),
                ));
            }
            // A first guess; [`fill`] puts the slot's actual pick on the card once it is drawn.
            let next = channel.library.iter().find(|c| has_tag(c, &slot.tags));
            let next_title = next.map_or_else(|| slot.name.clone(), |c| c.title.clone());
            Some(Row {
                planned: Planned::Card {
                    duration: gap,
                    next_title,
                    next_asset: next.map(|c| c.asset),
                    next_at: slot_at,
                },
                start: t,
                length: gap,
                end: None,
                slot: None,
                filler: true,
                reason: format!("{before} (soft start): an \"up next\" card fills the {} s left", gap.as_secs()),
            })
        }
    }
}

fn has_tag(c: &Candidate, tags: &[String]) -> bool {
    c.tags.iter().any(|t| tags.iter().any(|x| x.eq_ignore_ascii_case(t)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ChannelConfig, ClockTime, Days};
    use chrono::NaiveTime;

    fn candidate(id: i64, minutes: u64, tags: &[&str]) -> Candidate {
        Candidate {
            asset: AssetId(id),
            title: format!("asset {id}"),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            source: format!("s{id}"),
            series: None,
            duration: Duration::from_secs(minutes * 60),
            curator_score: None,
            vmaf_mean: None,
            created: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            aired: 0,
            audience: None,
        }
    }

    fn rules() -> SelectionRules {
        SelectionRules {
            epsilon: 0.0,
            window: Duration::from_secs(60 * 60),
            max_same_tag: 0,
            separation: Duration::ZERO,
            quality_weight: 1.0,
            audience_weight: 1.0,
            freshness_weight: 0.0,
            seed: 1,
        }
    }

    fn channel_with(slot: Option<(u32, u32, SlotStart)>) -> ChannelConfig {
        let mut c = ChannelConfig::default();
        if let Some((h, m, start)) = slot {
            c.slots.push(SlotConfig {
                name: "news".into(),
                days: Days::Daily,
                at: ClockTime(NaiveTime::from_hms_opt(h, m, 0).unwrap()),
                tags: vec!["news".into()],
                start,
                max_late_minutes: 5,
            });
        }
        c
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn keyframes_every_2s(_: AssetId) -> Vec<Duration> {
        (0..3600).map(|i| Duration::from_secs(i * 2)).collect()
    }

    fn run(cfg: &ChannelConfig, library: &[Candidate], from: &str, hours: i64) -> Vec<Row> {
        let grid = Grid::new(cfg);
        let channel = Channel { id: "main", grid: &grid, library, keyframes: &keyframes_every_2s, rerank: None };
        let at = utc(from);
        let start = Start {
            at,
            until: at + chrono::Duration::hours(hours),
            slot_index: 0,
            history: &[],
            filled_slots: &[],
            repeat_until: at + chrono::Duration::minutes(1),
        };
        fill(&channel, &rules(), &start)
    }

    #[test]
    fn rows_follow_each_other_without_gaps_until_the_target() {
        let library: Vec<Candidate> = (1..=6).map(|i| candidate(i, 10 + i as u64, &[])).collect();
        let rows = run(&channel_with(None), &library, "2026-05-04T10:00:00Z", 2);
        let end = rows.last().map(|r| r.start + chrono::Duration::from_std(r.length).unwrap()).unwrap();
        assert!(end >= utc("2026-05-04T12:00:00Z"));
        for w in rows.windows(2) {
            assert_eq!(w[1].start, w[0].start + chrono::Duration::from_std(w[0].length).unwrap(), "no gap, no overlap");
        }
        assert!(rows.iter().all(|r| !r.reason.is_empty()));
    }

    #[test]
    fn the_rerank_puts_the_shortlist_entry_it_names_on_air_and_a_failed_one_keeps_the_sampled_pick() {
        let library: Vec<Candidate> = (1..=6).map(|i| candidate(i, 10, &[])).collect();
        let grid = Grid::new(&channel_with(None));
        let at = utc("2026-05-04T10:00:00Z");
        let start = Start {
            at,
            until: at + chrono::Duration::minutes(30),
            slot_index: 0,
            history: &[],
            filled_slots: &[],
            repeat_until: at,
        };
        let fill_with = |rerank: Option<&Reranker>| {
            let channel =
                Channel { id: "main", grid: &grid, library: &library, keyframes: &keyframes_every_2s, rerank };
            fill(&channel, &rules(), &start)
        };
        let asset = |r: &Row| match &r.planned {
            Planned::Asset { asset, pick } => (*asset, pick.clone()),
            Planned::Card { .. } => panic!("a card"),
        };
        let sampled = fill_with(None);
        // The model always names the last of the shortlist.
        let last = |_: &Situation, p: &Pick| {
            Some(Rerank {
                by: Some("llm:test".into()),
                chose: p.shortlist.len() - 1,
                reason: "fits".into(),
                fallback_because: None,
            })
        };
        let reranked = fill_with(Some(&last));
        assert_eq!(sampled.len(), reranked.len());
        for (s, r) in sampled.iter().zip(&reranked).take(1) {
            let ((s_asset, s_pick), (r_asset, r_pick)) = (asset(s), asset(r));
            assert_eq!(s_pick.rerank, None);
            assert_eq!(r_asset, r_pick.shortlist.last().unwrap().asset, "{r_pick:?}");
            assert_ne!(r_asset, s_asset, "the shortlist's last is not the sampled pick");
            assert!(r.reason.contains("llm:test reranked the shortlist"), "{}", r.reason);
        }
        // What aired before feeds the next pick: the reranked history, so every row differs from the sampled one's
        // or at least the first does; nothing repeats inside the window either way.
        let picks: Vec<AssetId> = reranked.iter().map(|r| asset(r).0).collect();
        let mut unique = picks.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), picks.len(), "{picks:?}");
        // A model that failed, or named something out of range: the sampled pick stands, with the reason.
        let failed = |_: &Situation, _: &Pick| {
            Some(Rerank { by: None, chose: 0, reason: String::new(), fallback_because: Some("LLM down".into()) })
        };
        let out_of_range = |_: &Situation, _: &Pick| {
            Some(Rerank { by: Some("llm:test".into()), chose: 99, reason: "?".into(), fallback_because: None })
        };
        for rerank in [&failed as &Reranker, &out_of_range] {
            let rows = fill_with(Some(rerank));
            let kept: Vec<AssetId> = rows.iter().map(|r| asset(r).0).collect();
            let before: Vec<AssetId> = sampled.iter().map(|r| asset(r).0).collect();
            assert_eq!(kept, before);
            assert!(asset(&rows[0]).1.rerank.is_some());
        }
        assert!(fill_with(Some(&failed))[0].reason.contains("sampled order kept: LLM down"));
    }

    #[test]
    fn a_lone_asset_is_repeated_only_to_stay_off_the_slate() {
        let library = vec![candidate(1, 0, &[])];
        let mut library = library;
        library[0].duration = Duration::from_secs(20);
        let rows = run(&channel_with(None), &library, "2026-05-04T10:00:00Z", 1);
        // 20 s items: the first is not a repeat; repeats are planned while they start within the first minute.
        assert_eq!(rows.len(), 3, "{rows:?}");
        assert!(rows[1].reason.contains("relaxed diversity.window_minutes"), "{}", rows[1].reason);
    }

    #[test]
    fn no_asset_twice_within_the_window_when_the_library_allows() {
        let library: Vec<Candidate> = (1..=8).map(|i| candidate(i, 10, &[])).collect();
        let rows = run(&channel_with(None), &library, "2026-05-04T10:00:00Z", 3);
        for (i, a) in rows.iter().enumerate() {
            for b in &rows[i + 1..] {
                let (Planned::Asset { asset: x, .. }, Planned::Asset { asset: y, .. }) = (&a.planned, &b.planned)
                else {
                    continue;
                };
                if x == y {
                    assert!(
                        b.start - a.start >= chrono::Duration::minutes(60),
                        "{x} again after {}",
                        b.start - a.start
                    );
                }
            }
        }
    }

    #[test]
    fn a_hard_slot_starts_on_time_with_the_item_before_cut_at_a_keyframe() {
        // 25-minute items only: at 10:00 + 25 + 25 = 10:50 the next would cross the 11:00 slot.
        let library =
            vec![candidate(1, 25, &[]), candidate(2, 25, &[]), candidate(3, 25, &["news"]), candidate(4, 25, &[])];
        let rows = run(&channel_with(Some((11, 0, SlotStart::Hard))), &library, "2026-05-04T10:00:00Z", 2);
        let slot_row = rows.iter().find(|r| r.slot.is_some()).expect("the slot is filled");
        assert_eq!(slot_row.start, utc("2026-05-04T11:00:00Z"), "a hard start is on the minute");
        assert!(matches!(slot_row.planned, Planned::Asset { asset: AssetId(3), .. }), "the slot airs what is tagged");
        let cut = rows.iter().find(|r| r.end.is_some()).expect("the item before is cut");
        assert_eq!(cut.end, Some(Duration::from_secs(10 * 60)), "cut at the keyframe nearest the slot time");
        assert!(cut.reason.contains("hard start"), "{}", cut.reason);
    }

    #[test]
    fn a_soft_slot_is_padded_with_filler_or_an_up_next_card() {
        let mut library = vec![candidate(1, 25, &[]), candidate(2, 25, &[]), candidate(3, 25, &["news"])];
        let rows = run(&channel_with(Some((11, 0, SlotStart::Soft))), &library, "2026-05-04T10:00:00Z", 2);
        let at = rows.iter().position(|r| matches!(r.planned, Planned::Card { .. })).expect("a card pads the gap");
        let card = &rows[at];
        assert!(card.filler);
        // It announces what follows it: the slot's pick, its poster, its start.
        let (Planned::Card { next_title, next_asset, next_at, .. }, Planned::Asset { asset, pick }) =
            (&card.planned, &rows[at + 1].planned)
        else {
            panic!("the slot's programme follows the card: {rows:?}");
        };
        assert_eq!((next_title, *next_asset, *next_at), (&pick.title, Some(*asset), rows[at + 1].start));
        assert_eq!(card.length, Duration::from_secs(10 * 60));
        let slot_row = rows.iter().find(|r| r.slot.is_some()).unwrap();
        assert_eq!(slot_row.start, utc("2026-05-04T11:00:00Z"));
        // With a filler asset of the right length, that pads instead of a card.
        library.push(candidate(9, 5, &["filler"]));
        let rows = run(&channel_with(Some((11, 0, SlotStart::Soft))), &library, "2026-05-04T10:00:00Z", 2);
        assert!(rows.iter().any(|r| r.filler && matches!(r.planned, Planned::Asset { asset: AssetId(9), .. })));
    }
}
