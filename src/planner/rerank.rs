//! The planner's LLM rerank (`llm.rerank`): each weighted pick's shortlist is put to the curator's model, and the
//! fill, pure, is run again with the answer until every pick of the round has one (or the round's budget is spent).
//! The model is reached through the curator's client and breaker; whatever it cannot answer keeps the sampled order,
//! and the pick records why.

use super::fill::{self, Reranker, Row};
use super::grid::Grid;
use super::selection::{Candidate, Pick, Rerank, SelectionRules, Situation};
use crate::curator::score::{RerankQuery, Shortlisted};
use crate::curator::CuratorHandle;
use crate::store::AssetId;
use std::collections::HashMap;
use std::sync::Mutex;

/// At most this many picks a round are put to the model: a round at start-up may plan dozens of short items.
pub const RERANKS_PER_ROUND: usize = 8;

/// Fills like [`fill::fill`], with the model's choice in every weighted pick it answered.
pub async fn fill_reranked(
    curator: &CuratorHandle,
    channel: &fill::Channel<'_>,
    name: &str,
    style: &str,
    rules: &SelectionRules,
    start: &fill::Start<'_>,
) -> Vec<Row> {
    let answers: Mutex<HashMap<u64, Rerank>> = Mutex::new(HashMap::new());
    let mut calls = 0;
    loop {
        let first_unasked: Mutex<Option<(u64, RerankQuery)>> = Mutex::new(None);
        let exhausted = calls >= RERANKS_PER_ROUND;
        let rerank = |s: &Situation, p: &Pick| -> Option<Rerank> {
            if let Some(answer) = answers.lock().unwrap_or_else(|e| e.into_inner()).get(&s.slot) {
                return Some(answer.clone());
            }
            if exhausted {
                let why = format!("at most {RERANKS_PER_ROUND} picks a round are reranked");
                return Some(Rerank { by: None, chose: 0, reason: String::new(), fallback_because: Some(why) });
            }
            let mut first = first_unasked.lock().unwrap_or_else(|e| e.into_inner());
            if first.is_none() {
                *first = Some((s.slot, query(channel.grid, channel.library, name, style, s, p)));
            }
            None
        };
        let view = fill::Channel { rerank: Some(&rerank as &Reranker<'_>), ..*channel };
        let rows = fill::fill(&view, rules, start);
        let Some((slot, q)) = first_unasked.into_inner().unwrap_or_else(|e| e.into_inner()) else {
            return rows;
        };
        let answer = match curator.rerank(&q).await {
            Ok(r) => Rerank { by: Some(r.by), chose: r.choice, reason: r.reason, fallback_because: None },
            Err(why) => Rerank { by: None, chose: 0, reason: String::new(), fallback_because: Some(why) },
        };
        answers.lock().unwrap_or_else(|e| e.into_inner()).insert(slot, answer);
        calls += 1;
    }
}

/// The question for one pick: the channel, the slot's local time and daypart, what came before, the shortlist.
fn query(grid: &Grid, library: &[Candidate], name: &str, style: &str, s: &Situation, p: &Pick) -> RerankQuery {
    let by_id: HashMap<AssetId, &Candidate> = library.iter().map(|c| (c.asset, c)).collect();
    let tz = grid.tz();
    let mut recent: Vec<_> = s.recent.iter().filter(|r| r.start < s.at).collect();
    recent.sort_by_key(|r| r.start);
    RerankQuery {
        channel: name.to_owned(),
        style: style.to_owned(),
        local_time: format!("{} ({tz})", s.at.with_timezone(&tz).format("%a %Y-%m-%d %H:%M")),
        daypart_tags: s.daypart_tags.to_vec(),
        recent: recent
            .iter()
            .map(|r| by_id.get(&r.asset).map_or("(not in the library)", |c| &c.title).to_owned())
            .collect(),
        shortlist: p
            .shortlist
            .iter()
            .map(|x| {
                let c = by_id.get(&x.asset);
                Shortlisted {
                    title: x.title.clone(),
                    tags: c.map(|c| c.tags.clone()).unwrap_or_default(),
                    duration_s: c.map_or(0.0, |c| c.duration.as_secs_f64()),
                }
            })
            .collect(),
    }
}
