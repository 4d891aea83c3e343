//! Property tests of the planner through the simulation: generated libraries and grids, a week each.

use super::*;
use crate::config::{ClockTime, DaypartConfig, Days, SlotConfig, SlotStart};
use chrono::NaiveTime;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const TAGS: [&str; 6] = ["news", "film", "nature", "kids", "music", "sport"];
const ZONES: [&str; 4] = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"];
/// A plain week, the week of the spring DST change in Europe and the week of the autumn one.
const WEEKS: [(i32, u32, u32); 3] = [(2027, 1, 4), (2027, 3, 25), (2027, 10, 28)];

fn clock(h: u32, m: u32) -> ClockTime {
    ClockTime(NaiveTime::from_hms_opt(h % 24, m % 60, 0).unwrap())
}

/// A channel grid from `seed`: one to three dayparts (weight 2–3, one tag each, in separate quarters of the day),
/// one or two hard slots at odd minutes and a soft one, at least an hour apart, in one of four timezones.
fn generated_channel(seed: u64) -> ChannelConfig {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut c = ChannelConfig { timezone: ZONES[rng.gen_range(0..ZONES.len())].into(), ..ChannelConfig::default() };
    for quarter in 0..4u32 {
        if c.dayparts.len() < 3 && rng.gen_bool(0.6) {
            let start = quarter * 6 + rng.gen_range(0..2);
            let hours = rng.gen_range(2..=4);
            c.dayparts.push(DaypartConfig {
                name: format!("part {quarter}"),
                days: if rng.gen_bool(0.3) { Days::Weekdays } else { Days::Daily },
                start: clock(start, 0),
                end: clock(start + hours, 0),
                tags: vec![TAGS[rng.gen_range(0..TAGS.len())].into()],
                weight: rng.gen_range(2.0..3.0),
            });
        }
    }
    if c.dayparts.is_empty() {
        c.dayparts.push(DaypartConfig {
            name: "evening".into(),
            days: Days::Daily,
            start: clock(19, 0),
            end: clock(23, 0),
            tags: vec!["film".into()],
            weight: 2.5,
        });
    }
    let hards = rng.gen_range(1..=2);
    let mut hours: Vec<u32> = Vec::new();
    while hours.len() < hards + 1 {
        let h = rng.gen_range(0..24);
        if hours.iter().all(|&x| x.abs_diff(h) >= 2) {
            hours.push(h);
        }
    }
    for (i, h) in hours.into_iter().enumerate() {
        let hard = i < hards;
        c.slots.push(SlotConfig {
            name: format!("slot {i}"),
            days: Days::Daily,
            at: clock(h, rng.gen_range(0..60)),
            tags: vec![TAGS[rng.gen_range(0..TAGS.len())].into()],
            start: if hard { SlotStart::Hard } else { SlotStart::Soft },
            max_late_minutes: if hard { 0 } else { 10 },
        });
    }
    c
}

/// The default rules with the separation rules on.
fn strict_rules(seed: u64) -> BusinessLogic {
    let mut rules = BusinessLogic::from_config(&Config::default());
    rules.window_minutes = 180;
    rules.separation_minutes = 30;
    rules.max_same_tag = 3;
    rules.seed = seed;
    rules
}

fn monday(week: usize, channel: &ChannelConfig) -> DateTime<Utc> {
    let (y, m, d) = WEEKS[week % WEEKS.len()];
    start_time(channel, None, NaiveDate::from_ymd_opt(y, m, d).unwrap()).unwrap()
}

/// A week of `channel` on `n` generated assets: the simulation and its report.
fn week(channel: &ChannelConfig, n: usize, rules: BusinessLogic, start: DateTime<Utc>) -> (Simulation, Report) {
    let library = generated_library(n, rules.seed, start, Duration::from_secs(2));
    let mut sim = Simulation::new(channel, library, rules, start);
    let end = start + chrono::Duration::days(7);
    sim.run_until(end);
    let report = Report::new(&sim, start, end, format!("{n} generated"));
    (sim, report)
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

fn example_config() -> Config {
    Config::parse(include_str!("../../../config/simulation.toml")).unwrap()
}

fn options(seed: u64, n: usize) -> Options {
    Options { days: 7, seed: Some(seed), library: LibrarySource::Generated(n), channel: None, start: None }
}

#[test]
fn separation_rules_hold_whenever_the_library_allows() {
    for seed in 1..=6u64 {
        let channel = generated_channel(seed);
        let (_, report) = week(&channel, 400, strict_rules(seed), monday(seed as usize, &channel));
        assert!(report.counts.picks > 300, "seed {seed}: only {} picks in a week", report.counts.picks);
        assert!(report.repeats.is_empty(), "seed {seed}: repeats inside the window: {:#?}", report.repeats);
        let avoidable: Vec<&Violation> = [&report.separation_violations, &report.tag_cap_violations]
            .into_iter()
            .flatten()
            .filter(|v| v.avoidable)
            .collect();
        assert!(avoidable.is_empty(), "seed {seed}: violations the library allowed avoiding: {avoidable:#?}");
    }
}

#[test]
fn a_library_too_small_for_the_window_repeats_and_says_it_was_forced() {
    let channel = generated_channel(3);
    let (_, report) = week(&channel, 8, strict_rules(3), monday(0, &channel));
    assert!(!report.repeats.is_empty(), "8 assets cannot fill 180 minutes without repeats");
    assert!(report.repeats.iter().all(|v| !v.avoidable), "{:#?}", report.repeats);
    assert_eq!(report.longest_gap_seconds, 0.0);
}

#[test]
fn dayparts_are_honoured() {
    for seed in 1..=6u64 {
        let channel = generated_channel(seed);
        let mut rules = strict_rules(seed);
        rules.max_same_tag = 0;
        let (_, report) = week(&channel, 400, rules.clone(), monday(seed as usize, &channel));
        // The same grid with no weight: what the library alone gives.
        let mut flat = channel.clone();
        flat.dayparts.iter_mut().for_each(|d| d.weight = 0.0);
        let (_, blind) = week(&flat, 400, rules, monday(seed as usize, &channel));
        let mut checked = 0;
        for d in report.dayparts.iter().filter(|d| d.name != "none" && d.airtime_seconds >= 4.0 * 3600.0) {
            let (share, library) = (d.tagged_share.unwrap(), d.library_share.unwrap());
            assert!(library < 0.5, "seed {seed}: {} library share {library}", d.name);
            assert!(
                share >= (2.0 * library).min(0.9),
                "seed {seed}: daypart {} ({:?}, weight {:.1}): {share:.3} of its airtime with its tags, library {library:.3}",
                d.name,
                d.tags,
                d.weight
            );
            let without = blind.dayparts.iter().find(|b| b.name == d.name).and_then(|b| b.tagged_share).unwrap();
            assert!(
                share > without + 0.15,
                "seed {seed}: daypart {}: {share:.3} with weight, {without:.3} without",
                d.name
            );
            checked += 1;
        }
        assert!(checked > 0, "seed {seed}: no daypart aired four hours");
    }
}

#[test]
fn the_same_seed_gives_the_same_week() {
    let config = example_config();
    let a = block_on(run(&config, &options(7, 300))).unwrap();
    let b = block_on(run(&config, &options(7, 300))).unwrap();
    assert!(a.schedule.len() > 300);
    assert_eq!(a.schedule, b.schedule);
    assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
}

#[test]
fn a_different_seed_gives_a_different_week() {
    let config = example_config();
    let a = block_on(run(&config, &options(7, 300))).unwrap();
    let b = block_on(run(&config, &options(8, 300))).unwrap();
    assert_ne!(a.schedule, b.schedule);
    // The schedule seed alone, on the same library, changes the picks too.
    let channel = &config.channels[0];
    let start = monday(0, channel);
    let (sa, _) = week(channel, 300, strict_rules(7), start);
    let library = generated_library(300, 7, start, Duration::from_secs(2));
    let mut sb = Simulation::new(channel, library, strict_rules(9), start);
    sb.run_until(start + chrono::Duration::days(7));
    let assets = |s: &Simulation| s.rows().iter().map(|r| r.asset).collect::<Vec<_>>();
    let (x, y) = (assets(&sa), assets(&sb));
    let same = x.iter().zip(&y).filter(|(a, b)| a == b).count();
    assert!(same * 2 < x.len().min(y.len()), "{same} of {} rows alike", x.len());
}

#[test]
fn a_changed_rule_changes_only_the_future() {
    let config = example_config();
    let channel = &config.channels[0];
    let start = monday(0, channel);
    let three = start + chrono::Duration::days(3);
    let library = generated_library(300, 5, start, Duration::from_secs(2));
    let mut rules = BusinessLogic::from_config(&config);
    rules.seed = 5;
    let mut kept = Simulation::new(channel, library.clone(), rules.clone(), start);
    kept.run_until(start + chrono::Duration::days(7));
    let mut changed = Simulation::new(channel, library, rules.clone(), start);
    changed.run_until(three);
    let before: Vec<SimRow> = changed.rows().to_vec();
    rules.epsilon = 0.6;
    rules.window_minutes = 600;
    changed.set_rules(rules);
    changed.run_until(start + chrono::Duration::days(7));
    let aired = |s: &Simulation| s.rows().iter().filter(|r| r.start < three).cloned().collect::<Vec<_>>();
    assert!(aired(&kept).len() > 100);
    assert_eq!(aired(&kept), aired(&changed), "the first three days differ");
    // What was planned before the change stays as planned.
    assert_eq!(&changed.rows()[..before.len()], &before[..]);
    assert_eq!(&kept.rows()[..before.len()], &before[..]);
    let later = |s: &Simulation| s.rows().iter().filter(|r| r.planned_at >= three).map(|r| r.asset).collect::<Vec<_>>();
    assert_ne!(later(&kept), later(&changed), "the change did not change the future");
    let explored = changed.rows().iter().filter(|r| r.planned_at >= three && r.draw == Some(Draw::Exploration)).count();
    assert!(explored * 4 > later(&changed).len(), "ε = 0.6 explored only {explored} times");
}

#[test]
fn hard_slots_start_exactly_on_time() {
    for seed in 1..=9u64 {
        let channel = generated_channel(seed);
        let start = monday(seed as usize, &channel);
        let (sim, report) = week(&channel, 300, strict_rules(seed), start);
        let expected = 7 * channel.slots.len();
        assert!(
            (expected - 1..=expected + 1).contains(&report.slots.len()),
            "seed {seed}: {} slot occurrences in a week of {} daily slots",
            report.slots.len(),
            channel.slots.len()
        );
        for s in &report.slots {
            assert!(s.on_time, "seed {seed} ({}): {s:#?}", channel.timezone);
            if s.start == SlotStart::Hard {
                // From the rows themselves: one starts on the instant, labelled with the slot.
                let row = sim.rows().iter().find(|r| r.slot.as_deref() == Some(s.slot.as_str())).unwrap();
                assert_eq!(row.start, s.at, "seed {seed}: {}", s.slot);
                assert_eq!(s.at.timestamp_subsec_millis(), 0);
                assert_eq!(s.at.with_timezone(&channel.tz()).format("%H:%M").to_string(), {
                    let slot = channel.slots.iter().find(|x| x.name == s.name).unwrap();
                    slot.at.0.format("%H:%M").to_string()
                });
            }
        }
    }
}

#[test]
fn there_are_no_gaps() {
    for (seed, n) in [(1u64, 300usize), (2, 40), (3, 5), (4, 1)] {
        let channel = generated_channel(seed);
        let start = monday(seed as usize, &channel);
        let (sim, report) = week(&channel, n, strict_rules(seed), start);
        assert_eq!(report.longest_gap_seconds, 0.0, "seed {seed}, {n} assets");
        assert_eq!(report.gaps, 0);
        let rows = sim.rows();
        assert_eq!(rows[0].start, start);
        for pair in rows.windows(2) {
            assert_eq!(pair[1].start, pair[0].end(), "seed {seed}, {n} assets: a hole before row {}", pair[1].index);
        }
        assert!(rows.last().unwrap().end() >= start + chrono::Duration::days(7));
        assert!((report.airtime_seconds - 7.0 * 86_400.0).abs() < 0.01, "{}", report.airtime_seconds);
    }
}

#[test]
fn the_generated_library_follows_its_spread() {
    let start = monday(0, &ChannelConfig::default());
    let a = generated_library(1000, 3, start, Duration::from_secs(2));
    let b = generated_library(1000, 3, start, Duration::from_secs(2));
    let ids = |l: &[Airable]| l.iter().map(|x| (x.asset.title.clone(), x.asset.duration)).collect::<Vec<_>>();
    assert_eq!(ids(&a), ids(&b));
    assert_ne!(ids(&a), ids(&generated_library(1000, 4, start, Duration::from_secs(2))));
    let share = |tag: &str| a.iter().filter(|x| x.asset.tags[0] == tag).count() as f64 / 1000.0;
    for (tag, twentieths, lo, hi) in generated::SPREAD {
        let s = share(tag);
        assert!((s - f64::from(twentieths) / 20.0).abs() < 0.05, "{tag}: {s}");
        for x in a.iter().filter(|x| x.asset.tags[0] == tag) {
            let d = x.asset.duration.as_secs();
            assert!(d >= lo && d <= hi + 1, "{tag}: {d} s");
            assert_eq!(d % 2, 0);
        }
    }
    assert!(a.iter().any(|x| x.asset.series.is_some()));
    assert!(a.iter().map(|x| &x.asset.source_name).collect::<std::collections::BTreeSet<_>>().len() >= 12);
}

#[test]
fn bad_options_are_refused_with_the_option_named() {
    let config = example_config();
    let err = |o: Options| block_on(run(&config, &o)).unwrap_err().to_string();
    assert!(err(Options { days: 0, ..options(1, 10) }).starts_with("--days 0"));
    assert!(err(options(1, 0)).starts_with("--library 0"));
    let e = err(Options { channel: Some("nope".into()), ..options(1, 10) });
    assert!(e.contains("--channel nope") && e.contains("mix"), "{e}");
    let e = err(Options { start: Some("monday".into()), ..options(1, 10) });
    assert!(e.starts_with("--start \"monday\""), "{e}");
    let missing = Options { library: LibrarySource::Database("/nonexistent/vvtv.db".into()), ..options(1, 10) };
    assert!(err(missing).starts_with("--from-db"));
}

#[test]
fn a_week_across_a_dst_change_runs_from_local_midnight_to_local_midnight() {
    let config = example_config();
    let report = block_on(run(&config, &Options { start: Some("2027-03-22".into()), ..options(2, 200) })).unwrap();
    assert_eq!(report.to - report.from, chrono::Duration::hours(7 * 24 - 1), "Berlin springs forward on 28 March");
    let tz = config.channels[0].tz();
    for t in [report.from, report.to] {
        assert_eq!(t.with_timezone(&tz).format("%a %H:%M").to_string(), "Mon 00:00");
    }
    assert!((report.airtime_seconds - (report.to - report.from).num_seconds() as f64).abs() < 0.01);
    assert!(report.slots.iter().all(|s| s.on_time), "{:#?}", report.slots);
}
