//! Choosing the next item of a channel: every asset of its library is scored, the separation rules mask what may not
//! air now, and one is drawn by Gumbel-top-k from a seeded RNG — or, with probability ε, from the least aired.
//!
//! Each candidate's weight is `w = exp(Σ weightᵢ · partᵢ)` over its parts (quality, audience, freshness, daypart fit,
//! novelty), each in 0..=1, so a rule weight of 0 switches a part off and the parts trade off in one scale. Masked
//! candidates get `w = 0`. Gumbel-top-k (Kool, van Hoof & Welling, 2019): with `Uᵢ ~ U(0,1)`,
//! `keyᵢ = ln wᵢ − ln(−ln Uᵢ)`; the k largest keys are a sample without replacement with probability ∝ w — the first
//! is the pick, the next ones are the shortlist an LLM may rerank. The RNG is seeded from the schedule seed, the
//! channel and the slot's index, so the same seed, library and history give the same schedule, and a pick can be
//! explained and replayed.
//!
//! This module is pure: no clock, no store. The planner gives it the situation and records what it returns.

use crate::store::AssetId;
use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;

/// How many of the best keys are kept as the shortlist (for the LLM rerank and the explanation).
pub const SHORTLIST: usize = 5;

/// The rule values a pick depends on (from the business logic).
#[derive(Debug, Clone, PartialEq)]
pub struct SelectionRules {
    pub epsilon: f64,
    /// No asset twice within this.
    pub window: Duration,
    /// At most this many items of one tag within an hour (0: no cap).
    pub max_same_tag: u32,
    /// No two items of the same source or series within this.
    pub separation: Duration,
    pub quality_weight: f64,
    pub audience_weight: f64,
    pub freshness_weight: f64,
    pub seed: u64,
}

/// What the audience did with an asset's past airings (none yet: no data).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AudienceFigures {
    /// Average share of the item a viewer watched (0..=1).
    pub completion: f64,
    /// Share of the viewers present at the start who left during the item (0..=1).
    pub drop_off: f64,
    /// Viewer sessions the figures rest on.
    pub sessions: u64,
}

/// One asset of the channel's library, with what the planner knows about it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub asset: AssetId,
    pub title: String,
    pub tags: Vec<String>,
    /// Where it came from (a curator source, a folder, a host): the separation rule keeps these apart.
    pub source: String,
    pub series: Option<String>,
    pub duration: Duration,
    /// The curator's score (0..=1), if it was scored.
    pub curator_score: Option<f64>,
    pub vmaf_mean: Option<f64>,
    pub created: DateTime<Utc>,
    /// Times it went on this channel before.
    pub aired: u32,
    pub audience: Option<AudienceFigures>,
}

/// Something on the channel's schedule before the slot being filled.
#[derive(Debug, Clone)]
pub struct Recent {
    pub asset: AssetId,
    pub start: DateTime<Utc>,
    pub tags: Vec<String>,
    pub source: String,
    pub series: Option<String>,
}

/// Where the slot is: when it starts, what the daypart prefers, and what came before.
#[derive(Debug, Clone)]
pub struct Situation<'a> {
    pub channel: &'a str,
    /// The slot's index on the channel (the count of items scheduled before it): part of the RNG seed.
    pub slot: u64,
    pub at: DateTime<Utc>,
    /// Tags the daypart prefers, and how much (0: no preference).
    pub daypart_tags: &'a [String],
    pub daypart_weight: f64,
    /// Items planned before `at`, any order.
    pub recent: &'a [Recent],
}

// The explanation of a pick is the control API's type (`GET /api/v1/schedule/{id}`, `vvtvctl why` read it as
// stored): one definition, named here as the planner speaks of it.
pub use vvtv_api::epg::{
    PickDraw as Draw, PickExplanation as Pick, PickMask as Mask, PickRerank as Rerank, ScoreBreakdown as Breakdown,
    ShortlistEntry as Scored,
};

/// The pick after the rerank: the shortlist entry the model chose (when it is one that may air), else the sampled
/// pick with the reason it stands.
pub fn reranked(mut pick: Pick, rerank: Rerank) -> Pick {
    let chosen = pick.shortlist.get(rerank.chose).filter(|x| x.key.is_some() && rerank.chose > 0).cloned();
    if let (Some(x), Some(by)) = (chosen, &rerank.by) {
        let sampled = std::mem::replace(&mut pick.title, x.title.clone());
        pick.asset = x.asset;
        pick.breakdown = x.breakdown;
        pick.reason = format!(
            "{by} reranked the shortlist: #{} of {} instead of {sampled:?} ({}); {}",
            rerank.chose + 1,
            pick.shortlist.len(),
            rerank.reason,
            pick.reason
        );
    } else if let Some(why) = &rerank.fallback_because {
        pick.reason = format!("{}; sampled order kept: {why}", pick.reason);
    }
    pick.rerank = Some(rerank);
    pick
}

/// The RNG of one slot: the same seed, channel and slot always draw the same numbers.
pub fn slot_rng(seed: u64, channel: &str, slot: u64) -> ChaCha8Rng {
    // FNV-1a over the channel id, mixed with the seed and slot by SplitMix64: stable across runs and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in channel.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = seed ^ h.rotate_left(17) ^ slot.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ChaCha8Rng::seed_from_u64(z ^ (z >> 31))
}

/// The parts of a candidate's score at `at` in this daypart.
pub fn breakdown(c: &Candidate, rules: &SelectionRules, s: &Situation) -> Breakdown {
    let curator = c.curator_score.map(|v| v.clamp(0.0, 1.0));
    let vmaf = c.vmaf_mean.map(|v| ((v - 70.0) / 30.0).clamp(0.0, 1.0));
    let quality = match (curator, vmaf) {
        (Some(a), Some(b)) => (a + b) / 2.0,
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => 0.5,
    };
    // Completion counts for, drop-off against; no audience yet is neutral.
    let audience = c.audience.map(|a| (0.5 + 0.5 * (a.completion - a.drop_off)).clamp(0.0, 1.0)).unwrap_or(0.5);
    let age_days = (s.at - c.created).num_seconds().max(0) as f64 / 86_400.0;
    let freshness = (-age_days / 30.0).exp();
    let daypart = if s.daypart_tags.is_empty() {
        0.5
    } else if c.tags.iter().any(|t| s.daypart_tags.iter().any(|d| d.eq_ignore_ascii_case(t))) {
        1.0
    } else {
        0.0
    };
    let novelty = 1.0 / (1.0 + f64::from(c.aired));
    let log_weight = rules.quality_weight * quality
        + rules.audience_weight * audience
        + rules.freshness_weight * freshness
        + s.daypart_weight * daypart
        + novelty;
    Breakdown { quality, audience, freshness, daypart, novelty, log_weight }
}

/// What the separation rules say about a candidate in this slot (empty: it may air).
pub fn masks(c: &Candidate, rules: &SelectionRules, s: &Situation) -> Vec<Mask> {
    let mut out = Vec::new();
    let minutes_ago = |t: DateTime<Utc>| (s.at - t).num_minutes();
    let within = |t: DateTime<Utc>, d: Duration| t <= s.at && (s.at - t).to_std().is_ok_and(|ago| ago < d);
    if let Some(last) =
        s.recent.iter().filter(|r| r.asset == c.asset && within(r.start, rules.window)).map(|r| r.start).max()
    {
        out.push(Mask::Window { minutes_ago: minutes_ago(last) });
    }
    let near = s.recent.iter().filter(|r| r.asset != c.asset && within(r.start, rules.separation));
    for r in near {
        let same_source = !c.source.is_empty() && r.source == c.source;
        let same_series = c.series.is_some() && r.series == c.series;
        if same_source || same_series {
            let with = if same_series {
                format!("series {}", c.series.as_deref().unwrap_or(""))
            } else {
                format!("source {}", c.source)
            };
            out.push(Mask::Separation { with, minutes_ago: minutes_ago(r.start) });
            break;
        }
    }
    if rules.max_same_tag > 0 {
        let hour = Duration::from_secs(3600);
        for tag in &c.tags {
            let count = s
                .recent
                .iter()
                .filter(|r| within(r.start, hour) && r.tags.iter().any(|t| t.eq_ignore_ascii_case(tag)))
                .count() as u32;
            if count >= rules.max_same_tag {
                out.push(Mask::TagCap { tag: tag.clone(), count });
                break;
            }
        }
    }
    out
}

/// Draws the slot's item. None only when the library is empty.
pub fn pick(candidates: &[Candidate], rules: &SelectionRules, s: &Situation) -> Option<Pick> {
    if candidates.is_empty() {
        return None;
    }
    // Candidates in a fixed order, so the draws land on the same assets whatever order the store returned.
    let mut order: Vec<&Candidate> = candidates.iter().collect();
    order.sort_by_key(|c| c.asset);
    let mut rng = slot_rng(rules.seed, s.channel, s.slot);
    let explore = rng.gen::<f64>() < rules.epsilon;
    let noise: Vec<f64> = order.iter().map(|_| gumbel(&mut rng)).collect();

    let mut scored: Vec<Scored> = order
        .iter()
        .map(|c| Scored {
            asset: c.asset,
            title: c.title.clone(),
            breakdown: breakdown(c, rules, s),
            key: None,
            masks: masks(c, rules, s),
        })
        .collect();
    let masked = scored.iter().filter(|x| !x.masks.is_empty()).count();
    // A rule that leaves nothing to air is set aside, the weakest first; the reason says so.
    let mut relaxed = Vec::new();
    let allowed = |x: &Scored, relaxed: &[String]| x.masks.iter().all(|m| relaxed.iter().any(|r| r == m.rule()));
    for rule in ["diversity.max_same_tag", "diversity.separation_minutes", "diversity.window_minutes"] {
        if scored.iter().any(|x| allowed(x, &relaxed)) {
            break;
        }
        if scored.iter().any(|x| x.masks.iter().any(|m| m.rule() == rule)) {
            relaxed.push(rule.to_owned());
        }
    }
    for (x, g) in scored.iter_mut().zip(&noise) {
        if allowed(x, &relaxed) {
            x.key = Some(x.breakdown.log_weight + g);
        }
    }
    let open: Vec<usize> = (0..scored.len()).filter(|&i| scored[i].key.is_some()).collect();
    let mut by_key = open.clone();
    by_key.sort_by(|&a, &b| scored[b].key.partial_cmp(&scored[a].key).unwrap_or(std::cmp::Ordering::Equal));

    let (chosen, draw) = if explore {
        let least = open.iter().map(|&i| order[i].aired).min().unwrap_or(0);
        // Among the least aired, the best key (the draw is still random through the noise).
        let i = by_key.iter().copied().find(|&i| order[i].aired == least).unwrap_or(by_key[0]);
        (i, Draw::Exploration)
    } else {
        (by_key[0], Draw::Weighted)
    };
    let mut shortlist_idx: Vec<usize> = vec![chosen];
    shortlist_idx.extend(by_key.iter().copied().filter(|&i| i != chosen).take(SHORTLIST - 1));
    let shortlist: Vec<Scored> = shortlist_idx.iter().map(|&i| scored[i].clone()).collect();
    let c = order[chosen];
    let b = scored[chosen].breakdown;
    let reason = reason_line(c, &b, draw, rules, scored.len(), masked, &relaxed, s);
    Some(Pick {
        asset: c.asset,
        title: c.title.clone(),
        draw,
        breakdown: b,
        shortlist,
        candidates: scored.len(),
        masked,
        relaxed,
        reason,
        rerank: None,
    })
}

/// One Gumbel(0, 1) draw: −ln(−ln U), U in (0, 1).
fn gumbel(rng: &mut impl Rng) -> f64 {
    let u: f64 = rng.gen_range(f64::EPSILON..1.0);
    -(-u.ln()).ln()
}

#[allow(clippy::too_many_arguments)]
fn reason_line(
    c: &Candidate,
    b: &Breakdown,
    draw: Draw,
    rules: &SelectionRules,
    candidates: usize,
    masked: usize,
    relaxed: &[String],
    s: &Situation,
) -> String {
    let how = match draw {
        Draw::Weighted => "weighted draw".to_owned(),
        Draw::Exploration => {
            format!("exploration (ε = {:.2}): among the least aired ({} before)", rules.epsilon, c.aired)
        }
    };
    let daypart = if s.daypart_tags.is_empty() { String::new() } else { format!(", daypart {:.0}", b.daypart) };
    let mut line = format!(
        "{how} from {} of {candidates} (masked {masked}): quality {:.2}, audience {:.2}, freshness {:.2}{daypart}, \
         novelty {:.2}",
        candidates - masked,
        b.quality,
        b.audience,
        b.freshness,
        b.novelty
    );
    if !relaxed.is_empty() {
        line += &format!("; relaxed {} (nothing else could air)", relaxed.join(", "));
    }
    line
}

/// How often each asset was picked — a small helper for tests and the simulation's report.
pub fn counts(picks: &[AssetId]) -> HashMap<AssetId, usize> {
    let mut out = HashMap::new();
    for p in picks {
        *out.entry(*p).or_insert(0) += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> SelectionRules {
        SelectionRules {
            epsilon: 0.0,
            window: Duration::from_secs(3600),
            max_same_tag: 0,
            separation: Duration::ZERO,
            quality_weight: 1.0,
            audience_weight: 1.0,
            freshness_weight: 0.0,
            seed: 7,
        }
    }

    fn candidate(id: i64, tags: &[&str]) -> Candidate {
        Candidate {
            asset: AssetId(id),
            title: format!("asset {id}"),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            source: format!("source-{id}"),
            series: None,
            duration: Duration::from_secs(600),
            curator_score: None,
            vmaf_mean: None,
            created: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            aired: 0,
            audience: None,
        }
    }

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + minutes * 60, 0).unwrap()
    }

    fn situation<'a>(slot: u64, recent: &'a [Recent], tags: &'a [String]) -> Situation<'a> {
        Situation { channel: "main", slot, at: at(600), daypart_tags: tags, daypart_weight: 2.0, recent }
    }

    #[test]
    fn the_same_seed_and_history_give_the_same_pick_and_another_seed_can_differ() {
        let library: Vec<Candidate> = (1..=20).map(|i| candidate(i, &[])).collect();
        let s = situation(3, &[], &[]);
        let a = pick(&library, &rules(), &s).unwrap();
        let mut shuffled = library.clone();
        shuffled.reverse();
        assert_eq!(pick(&shuffled, &rules(), &s).unwrap(), a, "the store's order must not matter");
        let differs =
            (0..20).any(|seed| pick(&library, &SelectionRules { seed, ..rules() }, &s).unwrap().asset != a.asset);
        assert!(differs, "the seed must change the draw");
    }

    #[test]
    fn gumbel_top_k_draws_in_proportion_to_the_weights() {
        // Two assets whose log-weights differ by ln 3: the heavier must win about 3 draws in 4.
        let mut heavy = candidate(1, &[]);
        heavy.curator_score = Some(1.0);
        let mut light = candidate(2, &[]);
        light.curator_score = Some(0.0);
        let library = [heavy, light];
        let r = SelectionRules { quality_weight: 3f64.ln(), audience_weight: 0.0, ..rules() };
        let wins = (0..4000)
            .filter(|&slot| pick(&library, &r, &situation(slot, &[], &[])).unwrap().asset == AssetId(1))
            .count();
        let share = wins as f64 / 4000.0;
        assert!((share - 0.75).abs() < 0.03, "heavier won {share:.3} of the draws, want 0.75");
    }

    #[test]
    fn the_window_separation_and_tag_cap_mask_and_are_relaxed_only_when_nothing_is_left() {
        let mut a = candidate(1, &["news"]);
        let b = candidate(2, &["news"]);
        let mut c = candidate(3, &["nature"]);
        a.source = "feed-x".into();
        c.source = "feed-x".into();
        let recent = vec![
            Recent {
                asset: AssetId(2),
                start: at(590),
                tags: vec!["news".into()],
                source: "other".into(),
                series: None,
            },
            Recent {
                asset: AssetId(9),
                start: at(595),
                tags: vec!["news".into()],
                source: "feed-x".into(),
                series: None,
            },
        ];
        let r = SelectionRules { separation: Duration::from_secs(1800), max_same_tag: 2, ..rules() };
        let s = situation(0, &recent, &[]);
        assert_eq!(
            masks(&b, &r, &s),
            vec![Mask::Window { minutes_ago: 10 }, Mask::TagCap { tag: "news".into(), count: 2 }]
        );
        assert!(matches!(masks(&a, &r, &s)[0], Mask::Separation { .. }));
        assert!(matches!(masks(&c, &r, &s)[0], Mask::Separation { .. }));
        // Everything is masked: the tag cap goes first, then separation; the window is kept while it can be.
        let p = pick(&[a.clone(), b.clone(), c.clone()], &r, &s).unwrap();
        assert_eq!(p.relaxed, ["diversity.max_same_tag", "diversity.separation_minutes"]);
        assert_ne!(p.asset, AssetId(2), "the asset inside the window stays masked while others can air");
        assert!(p.reason.contains("relaxed"), "{}", p.reason);
        // With a free candidate nothing is relaxed and only it can be picked.
        let free = candidate(4, &["film"]);
        let p = pick(&[a, b, c, free], &r, &s).unwrap();
        assert_eq!((p.asset, p.relaxed.len(), p.masked), (AssetId(4), 0, 3));
    }

    #[test]
    fn exploration_picks_among_the_least_aired_at_the_rate_of_epsilon() {
        let mut library: Vec<Candidate> = (1..=6).map(|i| candidate(i, &[])).collect();
        for c in &mut library[..5] {
            c.aired = 10;
            c.curator_score = Some(1.0);
        }
        library[5].curator_score = Some(0.0);
        let r = SelectionRules { epsilon: 0.25, quality_weight: 5.0, ..rules() };
        let picks: Vec<Pick> = (0..2000).map(|slot| pick(&library, &r, &situation(slot, &[], &[])).unwrap()).collect();
        let explored: Vec<&Pick> = picks.iter().filter(|p| p.draw == Draw::Exploration).collect();
        let share = explored.len() as f64 / picks.len() as f64;
        assert!((share - 0.25).abs() < 0.03, "explored {share:.3}, want 0.25");
        assert!(explored.iter().all(|p| p.asset == AssetId(6)), "exploration takes the least aired");
        assert!(explored[0].reason.starts_with("exploration (ε = 0.25)"), "{}", explored[0].reason);
    }

    #[test]
    fn dayparts_and_the_audience_move_the_weights() {
        let tags = vec!["news".to_string()];
        let s = situation(0, &[], &tags);
        let mut news = candidate(1, &["News"]);
        let film = candidate(2, &["film"]);
        assert!(breakdown(&news, &rules(), &s).log_weight > breakdown(&film, &rules(), &s).log_weight + 1.9);
        news.audience = Some(AudienceFigures { completion: 0.9, drop_off: 0.1, sessions: 40 });
        let liked = breakdown(&news, &rules(), &s);
        news.audience = Some(AudienceFigures { completion: 0.2, drop_off: 0.7, sessions: 40 });
        let left = breakdown(&news, &rules(), &s);
        assert!(liked.audience > 0.85 && left.audience < 0.3, "{liked:?} {left:?}");
        let off = SelectionRules { audience_weight: 0.0, ..rules() };
        assert_eq!(breakdown(&news, &off, &s).log_weight, breakdown(&film, &off, &s).log_weight + 2.0);
    }
}
