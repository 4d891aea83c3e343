//! The planner alone at an accelerated clock: `vvtv simulate` plans days of one channel in seconds, with no media and
//! no daemon, and reports how it programmed (airtime by daypart and tag, repeats, slot punctuality, exploration,
//! gaps) — so a grid and its rules can be judged before they go on air.
//!
//! It plans exactly as the daemon does: the same library filter ([`super::library::candidates`]), the same round
//! start ([`super::round_start`]), the same fill ([`super::fill::fill`]) and so the same selection and grid. Only what
//! lies outside the planner is replaced. The clock jumps from event to event instead of ticking; a virtual
//! broadcaster airs the rows back to back (an asset for its length, a cut row to its cut point, an "up next" card for
//! the whole seconds the factory makes it), and what it aired is the history, the air counts and the re-anchored
//! planned starts the next round sees — as the store shows them to the live planner.
//!
//! Rounds run when the daemon's would change something: at every item start (the broadcaster nudges the planner),
//! on the planner's 5 s tick once the programme ahead has fallen below `buffer.target_minutes`, and when a rule
//! changes.

mod generated;
mod report;
#[cfg(test)]
mod tests;

pub use generated::{generated_library, GENERATED_START};
pub use report::{Counts, DaypartAirtime, Report, SlotPunctuality, TagAirtime, Violation};

use super::fill::{self, Planned};
use super::grid::Grid;
use super::library;
use super::selection::{Candidate, Draw, Recent};
use super::{card_length, history_since, round_start, selection_rules};
use crate::business_logic::BusinessLogic;
use crate::config::{ChannelConfig, Config};
use crate::store::{Airable, AssetId, ChannelId, Store, StoreError};
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

/// The live planner's tick (`super::TICK`), in milliseconds.
const TICK_MS: i64 = super::TICK.as_millis() as i64;

/// One row of the simulated schedule, as it aired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimRow {
    /// The row's index on the channel (part of its draw's seed).
    pub index: u64,
    /// When it went on air (for a row not aired yet: when it is planned to).
    pub start: DateTime<Utc>,
    #[serde(rename = "length_seconds", with = "seconds")]
    pub length: Duration,
    /// The asset; none for an "up next" card.
    pub asset: Option<AssetId>,
    pub title: String,
    pub tags: Vec<String>,
    pub source: String,
    pub series: Option<String>,
    /// Where a hard slot start cut it (a keyframe).
    #[serde(rename = "cut_seconds", with = "opt_seconds")]
    pub cut: Option<Duration>,
    /// `name@time` of the slot it fills.
    pub slot: Option<String>,
    pub filler: bool,
    /// How the pick was drawn (none for a card).
    pub draw: Option<Draw>,
    /// Rules the pick set aside because nothing else could air.
    pub relaxed: Vec<String>,
    pub reason: String,
    /// When the round that planned it ran.
    pub planned_at: DateTime<Utc>,
}

impl SimRow {
    pub fn end(&self) -> DateTime<Utc> {
        self.start + delta(self.length)
    }

    /// The row as the separation rules see it (cards are not in the library and never mask anything).
    fn recent(&self) -> Option<Recent> {
        Some(Recent {
            asset: self.asset?,
            start: self.start,
            tags: self.tags.clone(),
            source: self.source.clone(),
            series: self.series.clone(),
        })
    }
}

/// One channel's planner, its virtual air and its clock.
pub struct Simulation {
    channel: ChannelConfig,
    grid: Grid,
    rules: BusinessLogic,
    /// The station's assets with their air counts on this channel (counted up as the virtual air plays them).
    assets: Vec<Airable>,
    position: HashMap<AssetId, usize>,
    rows: Vec<SimRow>,
    /// `rows[..aired]` have gone on air.
    aired: usize,
    start: DateTime<Utc>,
    now: DateTime<Utc>,
    last_round: Option<DateTime<Utc>>,
    rounds: u64,
}

impl Simulation {
    /// A channel with an empty schedule at `start`, and the station's airable assets (the channel's library is chosen
    /// from them by its config, as live).
    pub fn new(channel: &ChannelConfig, assets: Vec<Airable>, rules: BusinessLogic, start: DateTime<Utc>) -> Self {
        let position = assets.iter().enumerate().map(|(i, a)| (a.asset.id, i)).collect();
        Simulation {
            channel: channel.clone(),
            grid: Grid::new(channel),
            rules,
            assets,
            position,
            rows: Vec::new(),
            aired: 0,
            start,
            now: start,
            last_round: None,
            rounds: 0,
        }
    }

    /// Runs the clock to `until`: every round and every item start up to it.
    pub fn run_until(&mut self, until: DateTime<Utc>) {
        loop {
            let tick = self.next_tick();
            let t = match self.next_air() {
                Some(air) => air.min(tick),
                None => tick,
            };
            if t > until {
                break;
            }
            self.now = t;
            self.air();
            self.round();
        }
        self.now = self.now.max(until);
    }

    /// Changes the rules at the current time, as `vvtvctl business-logic set` does: a round runs at once, and what
    /// is already planned stays.
    pub fn set_rules(&mut self, rules: BusinessLogic) {
        self.rules = rules;
        self.air();
        self.round();
    }

    /// Every row planned so far, in airing order (the last ones may not have aired yet).
    pub fn rows(&self) -> &[SimRow] {
        &self.rows
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }

    pub fn rules(&self) -> &BusinessLogic {
        &self.rules
    }

    pub fn grid(&self) -> &Grid {
        &self.grid
    }

    pub fn channel(&self) -> &ChannelConfig {
        &self.channel
    }

    /// Rounds run so far.
    pub fn rounds(&self) -> u64 {
        self.rounds
    }

    /// The channel's library as the planner sees it now.
    pub fn candidates(&self) -> Vec<Candidate> {
        library::candidates(&self.channel, &self.assets, &HashMap::new())
    }

    /// When the next row goes on air: when the one before it ends, or when it was planned if the air was empty then.
    fn next_air(&self) -> Option<DateTime<Utc>> {
        let next = self.rows.get(self.aired)?;
        let after = self.aired.checked_sub(1).map(|i| self.rows[i].end());
        Some(after.map_or(next.planned_at, |end| end.max(next.planned_at)))
    }

    /// The planner's next tick that finds less than the buffer target ahead (ticks fall every 5 s from the start).
    fn next_tick(&self) -> DateTime<Utc> {
        let Some(last) = self.last_round else { return self.start };
        let end = self.planned_end();
        let target = chrono::Duration::from_std(self.rules.buffer_target()).unwrap_or_default();
        let after = last.max(end - target);
        let k = (after - self.start).num_milliseconds().div_euclid(TICK_MS) + 1;
        self.start + chrono::Duration::milliseconds(k * TICK_MS)
    }

    /// When everything planned will have aired, on the virtual air.
    fn planned_end(&self) -> DateTime<Utc> {
        let mut end = self.aired.checked_sub(1).map_or(self.start, |i| self.rows[i].end());
        for r in &self.rows[self.aired..] {
            end = end.max(r.planned_at) + delta(r.length);
        }
        end
    }

    /// The virtual broadcaster: every row whose time has come goes on air, back to back.
    fn air(&mut self) {
        while let Some(at) = self.next_air().filter(|&at| at <= self.now) {
            let row = &mut self.rows[self.aired];
            row.start = at;
            if let Some(&i) = row.asset.and_then(|a| self.position.get(&a)) {
                self.assets[i].aired += 1;
            }
            self.aired += 1;
        }
    }

    /// The daemon's re-anchoring on the virtual air: what is on air keeps its real start, everything after follows
    /// it back to back. Returns when the planned programme ends (not before now).
    fn reanchor(&mut self) -> DateTime<Utc> {
        let now = self.now;
        let on_air = self.aired.checked_sub(1).map(|i| self.rows[i].end()).filter(|&end| end > now);
        let mut t = on_air.unwrap_or(now);
        for r in &mut self.rows[self.aired..] {
            r.start = t;
            t += delta(r.length);
        }
        t.max(now)
    }

    /// One planning round, as the live planner's `top_up`.
    fn round(&mut self) {
        self.rounds += 1;
        self.last_round = Some(self.now);
        let now = self.now;
        let end = self.reanchor();
        let ahead = (end - now).to_std().unwrap_or_default();
        // As live, but the library is only built when the round will fill: the same outcome, less work.
        if ahead >= self.rules.buffer_target() {
            return;
        }
        let candidates = self.candidates();
        if candidates.is_empty() {
            return;
        }
        let since = history_since(&self.rules, end);
        let history: Vec<Recent> = self.rows.iter().filter(|r| r.start >= since).filter_map(SimRow::recent).collect();
        // The slots of the rows not finished yet (the live planner reads them from the queue).
        let filled: Vec<String> = self.rows.iter().filter(|r| r.end() > now).filter_map(|r| r.slot.clone()).collect();
        let start = round_start(&self.rules, now, end, self.rows.len() as u64, &history, &filled);
        let (assets, position) = (&self.assets, &self.position);
        let keyframes_of =
            |id: AssetId| position.get(&id).map(|&i| assets[i].asset.keyframes.clone()).unwrap_or_default();
        let view = fill::Channel {
            id: &self.channel.id,
            grid: &self.grid,
            library: &candidates,
            keyframes: &keyframes_of,
            rerank: None,
        };
        let filled_rows = fill::fill(&view, &selection_rules(&self.rules), &start);
        for row in filled_rows {
            let index = self.rows.len() as u64;
            let tz = self.grid.tz();
            let sim = match &row.planned {
                Planned::Asset { asset, pick } => {
                    let c = candidates.iter().find(|c| c.asset == *asset);
                    SimRow {
                        index,
                        start: row.start,
                        length: row.length,
                        asset: Some(*asset),
                        title: pick.title.clone(),
                        tags: c.map(|c| c.tags.clone()).unwrap_or_default(),
                        source: c.map(|c| c.source.clone()).unwrap_or_default(),
                        series: c.and_then(|c| c.series.clone()),
                        cut: row.end,
                        slot: row.slot,
                        filler: row.filler,
                        draw: Some(pick.draw),
                        relaxed: pick.relaxed.clone(),
                        reason: row.reason,
                        planned_at: now,
                    }
                }
                Planned::Card { duration, next_title, next_at, .. } => SimRow {
                    index,
                    start: row.start,
                    length: card_length(*duration),
                    asset: None,
                    title: format!("Up next at {}: {next_title}", next_at.with_timezone(&tz).format("%H:%M")),
                    tags: Vec::new(),
                    source: "generated".into(),
                    series: None,
                    cut: None,
                    slot: row.slot,
                    filler: row.filler,
                    draw: None,
                    relaxed: Vec::new(),
                    reason: row.reason,
                    planned_at: now,
                },
            };
            self.rows.push(sim);
        }
    }
}

/// Where the simulated library comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum LibrarySource {
    /// N generated assets, from the seed ([`generated_library`]).
    Generated(usize),
    /// The ready assets of a station's database, opened read-only.
    Database(PathBuf),
}

/// What `vvtv simulate` was asked.
#[derive(Debug, Clone)]
pub struct Options {
    pub days: u32,
    /// The schedule seed (`schedule.seed`), also the generated library's; default: the config's.
    pub seed: Option<u64>,
    pub library: LibrarySource,
    /// The channel's id; default: the config's first channel.
    pub channel: Option<String>,
    /// RFC 3339, or a date (midnight in the channel's timezone); default: [`GENERATED_START`] for a generated
    /// library, the coming Monday for a database's.
    pub start: Option<String>,
}

/// A simulation refused before it started; each names the option and the reason.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("--days {0}: must be 1 to 366")]
    Days(u32),
    #[error("--library {0}: must be 1 to 100000 assets")]
    LibrarySize(usize),
    #[error("--channel {id}: no such channel in the config (its channels: {known})")]
    UnknownChannel { id: String, known: String },
    #[error("--start {value:?}: {reason}")]
    Start { value: String, reason: String },
    #[error("--from-db {0}: no such file")]
    NoDatabase(PathBuf),
    #[error("--from-db: {0}")]
    Store(#[from] StoreError),
    #[error("channel {channel} has nothing to air: {reason}")]
    EmptyLibrary { channel: String, reason: String },
}

/// Runs `vvtv simulate`: loads the library, plans `days` from the start and reports.
pub async fn run(config: &Config, options: &Options) -> Result<Report, SimulateError> {
    if !(1..=366).contains(&options.days) {
        return Err(SimulateError::Days(options.days));
    }
    let channel = match &options.channel {
        None => config.channels.first(),
        Some(id) => config.channels.iter().find(|c| &c.id == id),
    }
    .ok_or_else(|| SimulateError::UnknownChannel {
        id: options.channel.clone().unwrap_or_default(),
        known: config.channels.iter().map(|c| c.id.as_str()).collect::<Vec<_>>().join(", "),
    })?;
    let mut rules = BusinessLogic::from_config(config);
    let mut notes = Vec::new();
    let (assets, start, description) = match &options.library {
        LibrarySource::Generated(n) => {
            if !(1..=100_000).contains(n) {
                return Err(SimulateError::LibrarySize(*n));
            }
            let seed = options.seed.unwrap_or(rules.seed);
            let start = start_time(channel, options.start.as_deref(), GENERATED_START)?;
            let gop = Duration::from_secs(u64::from(config.house_format.gop_seconds.max(1)));
            (generated_library(*n, seed, start, gop), start, format!("{n} generated assets (seed {seed})"))
        }
        LibrarySource::Database(path) => {
            if !path.is_file() {
                return Err(SimulateError::NoDatabase(path.clone()));
            }
            let store = Store::open_read_only(path).await?;
            let assets = store.airable_assets(&ChannelId(channel.id.clone())).await?;
            // The station's rules as its operator set them, as the daemon would apply them.
            let (stored, problems) = rules.with_overrides(&store.settings().await?);
            rules = stored;
            notes.extend(problems.into_iter().map(|p| format!("stored rule: {p}")));
            store.close().await;
            let start = start_time(channel, options.start.as_deref(), coming_monday(channel))?;
            let n = assets.len();
            (assets, start, format!("{n} ready assets of {}", path.display()))
        }
    };
    if let Some(seed) = options.seed {
        rules.seed = seed;
    }
    let mut sim = Simulation::new(channel, assets, rules, start);
    let ready = sim.assets.len();
    if sim.candidates().is_empty() {
        let reason = if ready == 0 {
            "the library holds no ready assets".to_owned()
        } else {
            format!(
                "none of the {ready} ready assets is in its [channels.library] (tags, sources, languages, durations)"
            )
        };
        return Err(SimulateError::EmptyLibrary { channel: channel.id.clone(), reason });
    }
    let end = days_later(channel, start, options.days);
    sim.run_until(end);
    let mut report = Report::new(&sim, start, end, description);
    report.notes.extend(notes);
    Ok(report)
}

/// The start asked for (RFC 3339, or a date at local midnight), or `default` (a date, at local midnight).
fn start_time(
    channel: &ChannelConfig,
    asked: Option<&str>,
    default: NaiveDate,
) -> Result<DateTime<Utc>, SimulateError> {
    let bad = |value: &str, reason: &str| SimulateError::Start { value: value.into(), reason: reason.into() };
    let date = match asked {
        None => default,
        Some(text) => {
            if let Ok(t) = DateTime::parse_from_rfc3339(text.trim()) {
                return Ok(t.with_timezone(&Utc));
            }
            NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
                .map_err(|_| bad(text, "is neither an RFC 3339 time (2027-01-04T06:00:00Z) nor a date (2027-01-04)"))?
        }
    };
    let tz = channel.tz();
    let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
    // Midnight can fall in a DST gap (a few zones switch at 00:00): then the first instant of the day.
    tz.from_local_datetime(&midnight)
        .earliest()
        .or_else(|| tz.from_local_datetime(&(midnight + chrono::Duration::hours(1))).earliest())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| bad(&date.to_string(), "has no midnight in the channel's timezone"))
}

/// `days` later on the channel's wall clock (a week from Monday 00:00 ends at Monday 00:00 across a DST change too).
fn days_later(channel: &ChannelConfig, start: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    let tz = channel.tz();
    let local = start.with_timezone(&tz).naive_local() + chrono::Duration::days(i64::from(days));
    tz.from_local_datetime(&local)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(start + chrono::Duration::days(i64::from(days)))
}

/// The next Monday in the channel's timezone (today if it is Monday).
fn coming_monday(channel: &ChannelConfig) -> NaiveDate {
    let today = Utc::now().with_timezone(&channel.tz()).date_naive();
    today + chrono::Duration::days(i64::from((7 - today.weekday().num_days_from_monday()) % 7))
}

fn delta(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or_default()
}

/// A duration as seconds (millisecond precision) in the report's JSON.
mod seconds {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_millis() as f64 / 1000.0)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Ok(Duration::from_millis((secs * 1000.0).round().max(0.0) as u64))
    }
}

mod opt_seconds {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_millis() as f64 / 1000.0)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let secs = Option::<f64>::deserialize(d)?;
        Ok(secs.map(|s| Duration::from_millis((s * 1000.0).round().max(0.0) as u64)))
    }
}
