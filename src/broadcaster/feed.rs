//! The playout thread's view of the store: what to air next (schedule, else the slate), what went on and off air
//! (airings, schedule statuses, events), the slate itself and emergency items.

use super::engine::Item;
use super::runner::{Feed, Next, Outcome, Tag};
use crate::config::{ChannelConfig, Config};
use crate::factory::produce::make_asset;
use crate::media::house_format::HouseFormat;
use crate::media::transcode::{Source, TestPattern};
use crate::planner::PlannerHandle;
use crate::store::{AiringKind, Asset, AssetId, AssetKind, ChannelId, NewAiring, ScheduleStatus, Store};
use chrono::{DateTime, Utc};
use std::path::PathBuf;
use std::time::Duration;

const SLATE_SECONDS: u64 = 10;
const EMERGENCY_SLATE_SECONDS: u64 = 8;

pub struct StoreFeed {
    rt: tokio::runtime::Handle,
    store: Store,
    channel: ChannelId,
    hf: HouseFormat,
    slate: Next,
    planner: PlannerHandle,
    /// Airing rows open per tag (closed when the item ends).
    open: Vec<(Tag, i64)>,
}

impl StoreFeed {
    /// Also repairs what a crash left: an item still `airing` goes back to the head of the queue with the position
    /// it had reached, and its open airing is closed at the end of the last segment that was published.
    pub async fn new(
        rt: tokio::runtime::Handle,
        store: Store,
        channel: ChannelId,
        hf: HouseFormat,
        slate: Next,
        planner: PlannerHandle,
        last_published: Option<DateTime<Utc>>,
    ) -> anyhow::Result<StoreFeed> {
        let crash_end = last_published.unwrap_or_else(Utc::now).timestamp_millis();
        if let Some(open) = store.open_airing(&channel).await? {
            let reached = (crash_end - open.start_ms).max(0) + open.offset_ms;
            store.airing_end(open.id, crash_end.max(open.start_ms)).await?;
            if open.schedule_id.is_none() {
                store
                    .event(
                        "broadcaster",
                        Some(&channel),
                        "not_resumed",
                        &format!(
                            "{} ({:?}) was on air when the station stopped; it is not resumed",
                            open.title, open.kind
                        ),
                        serde_json::json!({}),
                    )
                    .await;
            }
            if let Some(sid) = open.schedule_id {
                store.set_schedule_status(sid, ScheduleStatus::Scheduled, reached).await?;
                store
                    .event(
                        "broadcaster",
                        Some(&channel),
                        "resumed",
                        &format!(
                            "{} was on air when the station stopped; resuming it at {:.1} s",
                            open.title,
                            reached as f64 / 1000.0
                        ),
                        serde_json::json!({ "schedule_id": sid }),
                    )
                    .await;
            }
        }
        // Anything else left `airing` (no airing row) simply starts again.
        for item in store.upcoming(&channel, 100).await? {
            if item.status == ScheduleStatus::Airing {
                store.set_schedule_status(item.id, ScheduleStatus::Scheduled, item.resume_ms).await?;
            }
        }
        Ok(StoreFeed { rt, store, channel, hf, slate, planner, open: Vec::new() })
    }

    fn block<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.rt.block_on(f)
    }

    /// An asset that cannot be aired: off the air for good (with its other scheduled rows), this row skipped, and
    /// the reason recorded. Whether it failed while being prepared or while on air, the outcome is the same.
    async fn skip_bad_asset(&self, asset: AssetId, schedule_id: i64, reason: &str) {
        let _ = self.store.mark_asset_bad(asset, reason).await;
        let _ = self.store.set_schedule_status(schedule_id, ScheduleStatus::Skipped, 0).await;
        self.store
            .event(
                "broadcaster",
                Some(&self.channel),
                "asset_skipped",
                &format!("skipped asset {asset} and marked it bad: {reason}"),
                serde_json::json!({ "asset_id": asset }),
            )
            .await;
    }
}

impl Feed for StoreFeed {
    fn next(&mut self, after: Option<&Tag>) -> Next {
        let skip = match after {
            Some(Tag::Scheduled { schedule_id, .. }) => Some(*schedule_id),
            _ => None,
        };
        for _ in 0..20 {
            let upcoming = self.block(self.store.upcoming(&self.channel, 4)).unwrap_or_default();
            let Some(row) = upcoming.into_iter().find(|i| i.status == ScheduleStatus::Scheduled && Some(i.id) != skip)
            else {
                self.planner.nudge();
                return self.slate.clone();
            };
            let built = self.block(async {
                let asset = self.store.asset(row.asset_id).await?;
                item_for(&self.store, &self.hf, &asset, row.resume_ms * 1_000_000).await
            });
            match built {
                Ok(item) => {
                    return Next { item, tag: Tag::Scheduled { schedule_id: row.id, asset_id: row.asset_id.0 } }
                }
                Err(e) => self.block(self.skip_bad_asset(row.asset_id, row.id, &e.to_string())),
            }
        }
        self.slate.clone()
    }

    fn started(&mut self, tag: &Tag, title: &str, start: DateTime<Utc>, offset_ns: i64) {
        let (asset, schedule_id, kind) = match tag {
            Tag::Scheduled { schedule_id, asset_id } => {
                (Some(AssetId(*asset_id)), Some(*schedule_id), AiringKind::Scheduled)
            }
            Tag::Emergency { asset_id, .. } => (asset_id.map(AssetId), None, AiringKind::Emergency),
            Tag::Slate => (None, None, AiringKind::Slate),
        };
        let result = self.block(async {
            if let Some(sid) = schedule_id {
                self.store.set_schedule_status(sid, ScheduleStatus::Airing, offset_ns / 1_000_000).await?;
            }
            self.store
                .airing_start(&NewAiring {
                    channel: &self.channel,
                    asset,
                    schedule_id,
                    kind,
                    title,
                    start_ms: start.timestamp_millis(),
                    offset_ms: offset_ns / 1_000_000,
                })
                .await
        });
        match result {
            Ok(id) => self.open.push((tag.clone(), id)),
            Err(e) => tracing::error!("channel {}: cannot record airing of {title}: {e}", self.channel),
        }
        self.planner.nudge();
    }

    fn ended(&mut self, tag: &Tag, end: DateTime<Utc>, outcome: &Outcome) {
        let airing = self.open.iter().position(|(t, _)| t == tag).map(|i| self.open.remove(i).1);
        self.block(async {
            if let Some(id) = airing {
                let _ = self.store.airing_end(id, end.timestamp_millis()).await;
            }
            let Tag::Scheduled { schedule_id, asset_id } = tag else {
                if let Outcome::Failed { reason } = outcome {
                    self.store
                        .event(
                            "broadcaster",
                            Some(&self.channel),
                            "item_failed",
                            &format!("could not air {tag:?}: {reason}"),
                            serde_json::json!({}),
                        )
                        .await;
                }
                return;
            };
            let (status, resume) = match outcome {
                Outcome::Complete => (ScheduleStatus::Aired, 0),
                Outcome::Cut { at_ns } => (ScheduleStatus::Cut, at_ns / 1_000_000),
                // Shutdown or rebuild: it stays at the head of the queue and resumes where it was.
                Outcome::Interrupted { at_ns } => (ScheduleStatus::Scheduled, at_ns / 1_000_000),
                Outcome::Failed { reason } => {
                    return self.skip_bad_asset(AssetId(*asset_id), *schedule_id, reason).await;
                }
            };
            let _ = self.store.set_schedule_status(*schedule_id, status, resume).await;
        });
    }

    fn notice(&mut self, kind: &str, message: &str) {
        self.block(self.store.event("broadcaster", Some(&self.channel), kind, message, serde_json::json!({})));
    }
}

/// The playout item of an asset: its renditions in ladder order, starting at the last keyframe ≤ `resume_ns`.
async fn item_for(store: &Store, hf: &HouseFormat, asset: &Asset, resume_ns: i64) -> anyhow::Result<Item> {
    if asset.status != "ready" {
        anyhow::bail!(
            "asset {} is {}: {}",
            asset.id,
            asset.status,
            asset.bad_reason.as_deref().unwrap_or("no reason recorded")
        );
    }
    let renditions = store.renditions(asset.id).await?;
    let mut files = Vec::new();
    for rung in &hf.rungs {
        let r = renditions
            .iter()
            .find(|r| r.rung == rung.name)
            .ok_or_else(|| anyhow::anyhow!("asset {} has no rendition for rung {}", asset.id, rung.name))?;
        let path = PathBuf::from(&r.path);
        if !path.is_file() {
            anyhow::bail!("rendition {} of asset {} is missing", path.display(), asset.id);
        }
        files.push(path);
    }
    let keyframes_ns: Vec<i64> = serde_json::from_str::<Vec<i64>>(&asset.keyframes_ms)
        .unwrap_or_default()
        .into_iter()
        .map(|ms| ms * 1_000_000)
        .collect();
    let duration_ns = asset.duration_ms * 1_000_000;
    let start_ns =
        keyframes_ns.iter().copied().filter(|&k| k <= resume_ns && duration_ns - k > 1_000_000_000).max().unwrap_or(0);
    Ok(Item { title: asset.title.clone(), files, duration_ns, keyframes_ns, start_ns })
}

/// Fingerprint of the house format: a cached slate made under another format must be made again.
fn format_key(hf: &HouseFormat) -> String {
    let rungs: Vec<String> =
        hf.rungs.iter().map(|r| format!("{}:{}x{}@{}", r.name, r.width, r.height, r.video_kbps)).collect();
    format!(
        "fps={} gop={} audio={} preset={} {}",
        hf.fps,
        hf.gop_seconds,
        hf.audio_kbps,
        hf.x264_preset,
        rungs.join(",")
    )
}

/// Finds a cached generated clip (slate or emergency card) by title, or encodes and records it.
async fn generated_clip(
    store: &Store,
    config: &Config,
    hf: &HouseFormat,
    title: &str,
    source: Source,
    dir_name: &str,
) -> anyhow::Result<Asset> {
    // Channels start together; the first makes a clip, the others must find it instead of encoding it again.
    static MAKING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _making = MAKING.lock().await;
    let key = format_key(hf);
    for a in store.assets(Some(AssetKind::Slate), Some("ready"), 1000).await? {
        let facts: serde_json::Value = serde_json::from_str(&a.source_facts).unwrap_or_default();
        if a.title == title && facts["format"] == key.as_str() && item_for(store, hf, &a, 0).await.is_ok() {
            return Ok(a);
        }
    }
    let dir = config.storage.cache_dir().join(dir_name);
    make_asset(store, hf, source, dir, title, AssetKind::Slate, serde_json::json!({ "format": key })).await
}

/// The channel's slate (made on first start, then cached): what airs whenever nothing is scheduled.
pub async fn ensure_slate(
    store: &Store,
    config: &Config,
    channel: &ChannelConfig,
    hf: &HouseFormat,
) -> anyhow::Result<Next> {
    let title = format!("{} — back soon", channel.name);
    let source = Source::TestCard {
        title: title.clone(),
        pattern: TestPattern::HdBars,
        tone_hz: None,
        duration: Duration::from_secs(SLATE_SECONDS),
    };
    let asset = generated_clip(store, config, hf, &title, source, &format!("slate-{}", channel.id)).await?;
    Ok(Next { item: item_for(store, hf, &asset, 0).await?, tag: Tag::Slate })
}

/// `count` items from the emergency pool; when the pool is empty, a slate showing the reason.
pub async fn emergency_items(
    store: &Store,
    config: &Config,
    channel: &ChannelConfig,
    hf: &HouseFormat,
    count: u32,
    reason: &str,
) -> anyhow::Result<Vec<Next>> {
    let pool = store.emergency_assets().await?;
    let mut out = Vec::new();
    for asset in pool.iter().cycle().take(if pool.is_empty() { 0 } else { count as usize }) {
        out.push(Next {
            item: item_for(store, hf, asset, 0).await?,
            tag: Tag::Emergency { asset_id: Some(asset.id.0), reason: reason.into() },
        });
    }
    if out.is_empty() {
        let title = format!("{}: {reason}", channel.name);
        let digest = title.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
        let source = Source::TestCard {
            title: title.clone(),
            pattern: TestPattern::Colors,
            tone_hz: None,
            duration: Duration::from_secs(EMERGENCY_SLATE_SECONDS),
        };
        let asset = generated_clip(store, config, hf, &title, source, &format!("emergency-{digest:016x}")).await?;
        let next = Next {
            item: item_for(store, hf, &asset, 0).await?,
            tag: Tag::Emergency { asset_id: None, reason: reason.into() },
        };
        out = std::iter::repeat_n(next, count.max(1) as usize).collect();
    }
    Ok(out)
}
