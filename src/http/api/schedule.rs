//! `GET /schedule/{id}`: one schedule row and the full explanation of its pick (what `vvtvctl why` prints).

use super::{ApiError, ApiResult, AppState};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::Json;
use vvtv_api::epg::{PickExplanation, ScheduleDetail};
use vvtv_api::ScheduleId;

/// The row (planned start, status, reason, slot, cut point) and how it was chosen: the draw, the pick's score
/// breakdown, the shortlist with Gumbel keys and masks, the rules relaxed.
#[utoipa::path(get, path = "/api/v1/schedule/{id}", tag = "station", security(("bearer" = [])),
    params(("id" = i64, Path, description = "schedule row id (`vvtvctl queue show` lists them)")),
    responses((status = 200, body = ScheduleDetail), (status = 400, body = vvtv_api::station::ErrorBody),
        (status = 404, body = vvtv_api::station::ErrorBody)))]
pub async fn detail(
    State(s): State<AppState>,
    id: Result<Path<ScheduleId>, PathRejection>,
) -> ApiResult<ScheduleDetail> {
    let Path(id) = id.map_err(|e| ApiError::bad_request(format!("schedule id must be a whole number: {e}")))?;
    let (item, pick) = s.store.schedule_row(id).await?;
    let pick = match pick {
        None => None,
        Some(json) => match serde_json::from_value::<PickExplanation>(json) {
            Ok(p) => Some(p),
            Err(e) => {
                return Err(ApiError::internal(format!("schedule row {id}: its pick is not readable: {e}")));
            }
        },
    };
    let timezone = s.config.channels.iter().find(|c| c.id == item.channel_id.as_str()).map(|c| c.timezone.clone());
    Ok(Json(ScheduleDetail { item, timezone: timezone.unwrap_or_else(|| "UTC".into()), pick }))
}

#[cfg(test)]
mod tests {
    use crate::planner::selection::{Breakdown, Draw, Mask, Pick, Rerank, Scored};
    use vvtv_api::epg::{PickDraw, PickExplanation, PickMask};
    use vvtv_api::AssetId;

    #[test]
    fn the_planners_pick_reads_as_the_apis_explanation() {
        let breakdown =
            Breakdown { quality: 0.7, audience: 0.5, freshness: 0.9, daypart: 1.0, novelty: 0.4, log_weight: 1.25 };
        let pick = Pick {
            asset: AssetId(3),
            title: "Forest".into(),
            draw: Draw::Exploration,
            breakdown,
            shortlist: vec![
                Scored { asset: AssetId(3), title: "Forest".into(), breakdown, key: Some(2.5), masks: vec![] },
                Scored {
                    asset: AssetId(4),
                    title: "Sea".into(),
                    breakdown,
                    key: None,
                    masks: vec![
                        Mask::Window { minutes_ago: 12 },
                        Mask::Separation { with: "source demo".into(), minutes_ago: 3 },
                        Mask::TagCap { tag: "nature".into(), count: 4 },
                    ],
                },
            ],
            candidates: 5,
            masked: 1,
            relaxed: vec!["diversity.window_minutes".into()],
            reason: "explored".into(),
            rerank: Some(Rerank {
                by: None,
                chose: 0,
                reason: String::new(),
                fallback_because: Some("LLM down".into()),
            }),
        };
        let json = serde_json::to_value(&pick).unwrap();
        let read: PickExplanation = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(read.draw, PickDraw::Exploration);
        assert_eq!(read.shortlist[1].masks[1], PickMask::Separation { with: "source demo".into(), minutes_ago: 3 });
        assert_eq!(read.breakdown.log_weight, 1.25);
        assert_eq!(read.rerank.as_ref().and_then(|r| r.fallback_because.as_deref()), Some("LLM down"));
        // Nothing is lost on the way: the explanation serializes back to the very same JSON.
        assert_eq!(serde_json::to_value(&read).unwrap(), json);
    }
}
