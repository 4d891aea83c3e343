//! A generated library for the simulation: N ready assets with a documented spread of tags, durations, sources and
//! series — the same N and seed always give the same library.
//!
//! | tag    | share | duration     | series                  |
//! |--------|-------|--------------|-------------------------|
//! | news   | 20 %  | 2–15 min     | 40 % in a news series   |
//! | film   | 15 %  | 30–60 min    | none                    |
//! | nature | 20 %  | 10–50 min    | 40 % in a nature series |
//! | kids   | 15 %  | 5–25 min     | 40 % in a kids series   |
//! | music  | 10 %  | 2–8 min      | none                    |
//! | sport  | 10 %  | 10–45 min    | 40 % in a sport series  |
//! | filler | 10 %  | 15 s–2 min   | none                    |
//!
//! A quarter of the programme assets (not filler) carry a second programme tag. Each has one of
//! `clamp(N / 12, 3, 24)` sources (`source-01` …), a series of its tag out of `max(1, N / 40)` per tag, a curator
//! score in 0.3–1.0, a VMAF mean in 80–98, English, and was made up to 60 days before the start. Lengths are whole
//! GOPs and keyframes fall on every GOP, as in the house format.

use crate::store::{Airable, Asset, AssetId, AssetKind, AssetStatus};
use chrono::{DateTime, NaiveDate, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::PathBuf;
use std::time::Duration;

/// The default start of a simulation on a generated library: a Monday, so a seed always gives the same week.
pub const GENERATED_START: NaiveDate = match NaiveDate::from_ymd_opt(2027, 1, 4) {
    Some(d) => d,
    None => NaiveDate::MIN,
};

/// Each tag with its share of the library (in 1/20) and its length range in seconds.
pub(super) const SPREAD: [(&str, u32, u64, u64); 7] = [
    ("news", 4, 120, 900),
    ("film", 3, 1800, 3600),
    ("nature", 4, 600, 3000),
    ("kids", 3, 300, 1500),
    ("music", 2, 120, 480),
    ("sport", 2, 600, 2700),
    ("filler", 2, 15, 120),
];

/// Tags whose assets may belong to a series.
const SERIAL: [&str; 4] = ["news", "nature", "kids", "sport"];

/// `n` ready programme assets (ids 1..=n) made before `start`, from `seed`, never aired.
pub fn generated_library(n: usize, seed: u64, start: DateTime<Utc>, gop: Duration) -> Vec<Airable> {
    // Its own stream, so the library does not move with the schedule's draws.
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6c69_6272_6172_7921);
    let gop = gop.max(Duration::from_secs(1)).as_secs();
    let sources = (n / 12).clamp(3, 24);
    let series_per_tag = (n / 40).max(1);
    let total: u32 = SPREAD.iter().map(|s| s.1).sum();
    (1..=n)
        .map(|i| {
            let mut roll = rng.gen_range(0..total);
            let (tag, _, lo, hi) = *SPREAD
                .iter()
                .find(|s| {
                    let hit = roll < s.1;
                    roll = roll.saturating_sub(s.1);
                    hit
                })
                .unwrap_or(&SPREAD[0]);
            let mut tags = vec![tag.to_owned()];
            if tag != "filler" && rng.gen_bool(0.25) {
                let other = SPREAD[rng.gen_range(0..SPREAD.len() - 1)].0;
                if other != tag {
                    tags.push(other.to_owned());
                }
            }
            let seconds = rng.gen_range(lo..=hi).div_ceil(gop) * gop;
            let series = (SERIAL.contains(&tag) && rng.gen_bool(0.4))
                .then(|| format!("{tag} series {}", rng.gen_range(1..=series_per_tag)));
            let source = format!("source-{:02}", rng.gen_range(1..=sources));
            let age = Duration::from_secs(rng.gen_range(0..60 * 86_400));
            let mut title = tag.to_owned();
            title[..1].make_ascii_uppercase();
            let asset = Asset {
                id: AssetId(i as i64),
                sha256: None,
                title: format!("{title} {i}"),
                source: format!("generated:{i}"),
                kind: AssetKind::Programme,
                emergency: false,
                status: AssetStatus::Ready,
                bad_reason: None,
                dir: PathBuf::new(),
                duration: Duration::from_secs(seconds),
                keyframes: (0..seconds).step_by(gop as usize).map(Duration::from_secs).collect(),
                loudness_in_lufs: None,
                loudness_out_lufs: None,
                lra_lu: None,
                true_peak_dbtp: None,
                vmaf_mean: Some(rng.gen_range(80.0..98.0)),
                vmaf_min: None,
                vmaf_p5: None,
                source_facts: serde_json::Value::Null,
                tags,
                description: format!("{title} programme number {i}"),
                source_name: source,
                language: Some("en".into()),
                rating: None,
                series,
                curator_score: Some(rng.gen_range(0.3..1.0)),
                last_aired: None,
                air_count: 0,
                created: start - chrono::Duration::from_std(age).unwrap_or_default(),
            };
            Airable { asset, aired: 0 }
        })
        .collect()
}
