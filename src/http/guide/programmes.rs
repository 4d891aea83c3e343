//! A channel's guide entries as programmes: kind, title, description, categories and icon from the airing or row
//! and its asset, and the synopses still to ask for.

use super::absolute;
use crate::curator::score::ProgrammeFacts;
use crate::curator::synopses::SynopsisRequest;
use crate::planner::epg::{Entry, Source};
use crate::store::{AiringKind, AssetId, AssetKind, GuideAiring, GuideAsset};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use vvtv_api::epg::{Programme, ProgrammeKind};
use vvtv_api::QueueItem;

/// The title of a time nothing aired.
pub const OFF_AIR: &str = "Off the air";

/// What the entries of one channel point into.
pub struct ChannelView<'a> {
    pub name: &'a str,
    pub aired: &'a [GuideAiring],
    pub queue: &'a [QueueItem],
    pub assets: &'a HashMap<AssetId, GuideAsset>,
}

/// The programmes of the entries overlapping [from, to). Assets shown without a synopsis (generated cards aside)
/// are added to `missing`.
pub fn programmes(
    c: &ChannelView,
    entries: &[Entry],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    base: Option<&str>,
    missing: &mut HashMap<AssetId, SynopsisRequest>,
) -> Vec<Programme> {
    let mut out = Vec::new();
    for e in entries.iter().filter(|e| e.stop > from && e.start < to) {
        let (kind, asset, schedule_id, own_title, aired) = match e.source {
            Source::Aired(i) => {
                let (a, filler) = (&c.aired[i].airing, c.aired[i].filler);
                let kind = match a.kind {
                    AiringKind::Scheduled if filler => ProgrammeKind::Filler,
                    AiringKind::Scheduled => ProgrammeKind::Programme,
                    AiringKind::Emergency => ProgrammeKind::Emergency,
                    AiringKind::Slate => ProgrammeKind::Slate,
                };
                (kind, a.asset_id, a.schedule_id, Some(a.title.clone()), true)
            }
            Source::Planned(i) => {
                let q = &c.queue[i];
                let kind = if q.filler { ProgrammeKind::Filler } else { ProgrammeKind::Programme };
                (kind, Some(q.asset_id), Some(q.id), Some(q.title.clone()), false)
            }
            Source::OffAir => (ProgrammeKind::Slate, None, None, None, true),
        };
        let info: Option<&GuideAsset> = asset.and_then(|a| c.assets.get(&a));
        let title = match (info, own_title) {
            (Some(a), _) if !a.title.trim().is_empty() => a.title.clone(),
            (_, Some(t)) if !t.trim().is_empty() => t,
            _ if e.source == Source::OffAir => OFF_AIR.to_string(),
            _ => c.name.to_string(),
        };
        let description = match (info, e.source) {
            (Some(a), _) => a.synopsis.clone().unwrap_or_else(|| a.description.trim().to_string()),
            (None, Source::OffAir) => "The station was not broadcasting.".to_string(),
            (None, _) => String::new(),
        };
        // Generated cards (slates, "up next") say what they are in their title: no synopsis to write.
        if let Some(a) = info.filter(|a| a.synopsis.is_none() && a.kind != AssetKind::Slate) {
            missing.entry(a.id).or_insert_with(|| SynopsisRequest {
                asset: a.id,
                facts: ProgrammeFacts {
                    title: a.title.clone(),
                    description: a.description.clone(),
                    tags: a.tags.clone(),
                },
            });
        }
        out.push(Programme {
            start: e.start,
            stop: e.stop,
            title,
            description,
            categories: info.map(|a| a.tags.clone()).unwrap_or_default(),
            icon: asset.map(|a| absolute(base, &format!("/posters/{a}.jpg"))),
            kind,
            aired,
            asset_id: asset,
            schedule_id,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::planner::epg::timeline;
    use crate::store::{Airing, AiringId, ChannelId, ScheduleId, ScheduleStatus};
    use std::time::Duration;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn asset(id: i64, title: &str, kind: AssetKind, synopsis: Option<&str>) -> GuideAsset {
        GuideAsset {
            id: AssetId(id),
            title: title.into(),
            kind,
            description: format!("about {title}"),
            tags: vec!["nature".into()],
            duration: Duration::from_secs(10),
            synopsis: synopsis.map(String::from),
        }
    }

    fn airing(id: i64, kind: AiringKind, asset: Option<i64>, title: &str, start: i64, end: i64) -> GuideAiring {
        GuideAiring {
            airing: Airing {
                id: AiringId(id),
                channel_id: ChannelId("main".into()),
                asset_id: asset.map(AssetId),
                schedule_id: (kind == AiringKind::Scheduled).then_some(ScheduleId(id)),
                kind,
                title: title.into(),
                start: t(start),
                end: Some(t(end)),
                offset: Duration::ZERO,
            },
            filler: false,
        }
    }

    fn row(id: i64, asset: i64, title: &str, filler: bool) -> QueueItem {
        QueueItem {
            id: ScheduleId(id),
            channel_id: ChannelId("main".into()),
            asset_id: AssetId(asset),
            title: title.into(),
            duration: Duration::from_secs(10),
            status: ScheduleStatus::Scheduled,
            reason: String::new(),
            resume: Duration::ZERO,
            planned_start: None,
            end: None,
            slot: None,
            filler,
        }
    }

    #[test]
    fn slate_emergency_filler_cards_and_downtime_are_all_in_the_guide() {
        let assets: HashMap<AssetId, GuideAsset> = [
            asset(1, "Forest", AssetKind::Programme, Some("Birds sing.")),
            asset(2, "Sea", AssetKind::Programme, None),
            asset(3, "Up next at 12:00: Forest", AssetKind::Slate, None),
        ]
        .into_iter()
        .map(|a| (a.id, a))
        .collect();
        let mut filler = airing(2, AiringKind::Scheduled, Some(2), "Sea", 10, 20);
        filler.filler = true;
        let aired = [
            airing(1, AiringKind::Slate, None, "Main — back soon", 0, 10),
            filler,
            airing(3, AiringKind::Emergency, None, "Main: storm", 20, 28),
            // Down from 28 to 40.
            airing(4, AiringKind::Scheduled, Some(1), "Forest", 40, 50),
        ];
        let queue = [row(5, 3, "Up next at 12:00: Forest", true), row(6, 2, "Sea", false)];
        let airings: Vec<Airing> = aired.iter().map(|a| a.airing.clone()).collect();
        let entries = timeline(&airings, None, &queue, t(50));
        let view = ChannelView { name: "Main", aired: &aired, queue: &queue, assets: &assets };
        let mut missing = HashMap::new();
        let list = programmes(&view, &entries, t(0), t(100), Some("http://h"), &mut missing);
        let seen: Vec<(ProgrammeKind, &str, bool)> = list.iter().map(|p| (p.kind, p.title.as_str(), p.aired)).collect();
        assert_eq!(
            seen,
            [
                (ProgrammeKind::Slate, "Main — back soon", true),
                (ProgrammeKind::Filler, "Sea", true),
                (ProgrammeKind::Emergency, "Main: storm", true),
                (ProgrammeKind::Slate, OFF_AIR, true),
                (ProgrammeKind::Programme, "Forest", true),
                (ProgrammeKind::Filler, "Up next at 12:00: Forest", false),
                (ProgrammeKind::Programme, "Sea", false),
            ]
        );
        for w in list.windows(2) {
            assert_eq!(w[0].stop, w[1].start, "{list:#?}");
        }
        assert_eq!((list[3].start, list[3].stop), (t(28), t(40)));
        assert_eq!(list[4].description, "Birds sing.", "the synopsis when there is one");
        assert_eq!(list[1].description, "about Sea", "else the plan's description");
        assert_eq!(list[0].icon, None, "the slate airs under no asset");
        assert_eq!(list[5].icon.as_deref(), Some("http://h/posters/3.jpg"), "the card has its poster");
        assert_eq!(list[4].categories, ["nature"]);
        assert_eq!(missing.keys().copied().collect::<Vec<_>>(), [AssetId(2)], "no synopsis asked for cards");
        let window = programmes(&view, &entries, t(25), t(45), None, &mut HashMap::new());
        assert_eq!(window.iter().map(|p| p.title.as_str()).collect::<Vec<_>>(), ["Main: storm", OFF_AIR, "Forest"]);
        assert_eq!(window[2].icon.as_deref(), Some("/posters/1.jpg"), "relative without a host");
    }
}
