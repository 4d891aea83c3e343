//! A channel's library: the assets its config says it airs (tags, sources, languages, duration range, ratings), as
//! candidates for the selection.

use super::selection::{AudienceFigures, Candidate};
use crate::config::{ChannelConfig, LibraryConfig};
use crate::store::{Airable, Asset, AssetId, AssetKind};
use std::collections::HashMap;
use std::time::Duration;
use vvtv_api::audience::AssetAudience;

/// Does the channel air this asset? Demo clips only on channels that want them.
pub fn in_library(channel: &ChannelConfig, asset: &Asset) -> bool {
    if asset.kind == AssetKind::Demo && !channel.demo_clips {
        return false;
    }
    accepts(&channel.library, asset)
}

fn accepts(l: &LibraryConfig, a: &Asset) -> bool {
    let has = |list: &[String]| a.tags.iter().any(|t| list.iter().any(|x| x.eq_ignore_ascii_case(t)));
    if !l.tags.is_empty() && !has(&l.tags) {
        return false;
    }
    if has(&l.exclude_tags) {
        return false;
    }
    if !l.sources.is_empty() && !l.sources.iter().any(|s| s.eq_ignore_ascii_case(&a.source_name)) {
        return false;
    }
    let known_and_not_in = |value: &Option<String>, list: &[String]| {
        value.as_deref().is_some_and(|v| !list.is_empty() && !list.iter().any(|x| x.eq_ignore_ascii_case(v)))
    };
    if known_and_not_in(&a.language, &l.languages) || known_and_not_in(&a.rating, &l.ratings) {
        return false;
    }
    let secs = a.duration.as_secs();
    if l.min_duration_seconds > 0 && secs < u64::from(l.min_duration_seconds) {
        return false;
    }
    if l.max_duration_seconds > 0 && secs > u64::from(l.max_duration_seconds) {
        return false;
    }
    true
}

/// What the audience did with each asset, as the selection weighs it: completion is the watch time per viewer over
/// the asset's length, drop-off the share of its viewers who left while it aired. Assets nobody watched have none.
pub fn audience_figures(audience: &[AssetAudience], airable: &[Airable]) -> HashMap<AssetId, AudienceFigures> {
    let lengths: HashMap<AssetId, Duration> = airable.iter().map(|a| (a.asset.id, a.asset.duration)).collect();
    audience
        .iter()
        .filter(|a| a.viewers > 0)
        .filter_map(|a| {
            let length = lengths.get(&a.asset_id).filter(|d| !d.is_zero())?;
            let figures = AudienceFigures {
                completion: (a.avg_watch.as_secs_f64() / length.as_secs_f64()).clamp(0.0, 1.0),
                drop_off: a.left_during_share.clamp(0.0, 1.0),
                sessions: a.viewers,
            };
            Some((a.asset_id, figures))
        })
        .collect()
}

/// The channel's candidates, with their audience figures where there are some.
pub fn candidates(
    channel: &ChannelConfig,
    airable: &[Airable],
    audience: &HashMap<AssetId, AudienceFigures>,
) -> Vec<Candidate> {
    airable
        .iter()
        .filter(|a| in_library(channel, &a.asset))
        .map(|a| {
            let asset = &a.asset;
            Candidate {
                asset: asset.id,
                title: asset.title.clone(),
                tags: asset.tags.clone(),
                source: if asset.source_name.is_empty() { asset.source.clone() } else { asset.source_name.clone() },
                series: asset.series.clone(),
                duration: asset.duration.max(Duration::from_millis(1)),
                curator_score: asset.curator_score,
                vmaf_mean: asset.vmaf_mean,
                created: asset.created,
                aired: a.aired,
                audience: audience.get(&asset.id).copied(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AssetStatus;
    use chrono::Utc;

    fn asset(kind: AssetKind, tags: &[&str], source: &str, minutes: u64) -> Asset {
        Asset {
            id: AssetId(1),
            sha256: None,
            title: "a".into(),
            source: "/x".into(),
            kind,
            emergency: false,
            status: AssetStatus::Ready,
            bad_reason: None,
            dir: "/x".into(),
            duration: Duration::from_secs(minutes * 60),
            keyframes: Vec::new(),
            loudness_in_lufs: None,
            loudness_out_lufs: None,
            lra_lu: None,
            true_peak_dbtp: None,
            vmaf_mean: None,
            vmaf_min: None,
            vmaf_p5: None,
            source_facts: serde_json::Value::Null,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            description: String::new(),
            source_name: source.into(),
            language: Some("en".into()),
            rating: None,
            series: None,
            curator_score: None,
            last_aired: None,
            air_count: 0,
            created: Utc::now(),
        }
    }

    #[test]
    fn the_audience_becomes_completion_and_drop_off_of_the_assets_length() {
        let mut watched = asset(AssetKind::Programme, &["news"], "a", 10);
        watched.id = AssetId(7);
        let unwatched = Asset { id: AssetId(8), ..watched.clone() };
        let airable: Vec<Airable> = [watched, unwatched].into_iter().map(|asset| Airable { asset, aired: 2 }).collect();
        let row = |id: i64, viewers: u64, avg_watch_s: u64, left: f64| AssetAudience {
            asset_id: AssetId(id),
            title: "a".into(),
            airings: 2,
            starts: viewers,
            viewers,
            peak_viewers: viewers,
            avg_viewers: 1.0,
            avg_watch: Duration::from_secs(avg_watch_s),
            watch: Duration::from_secs(avg_watch_s * viewers),
            left_during: 0,
            left_during_share: left,
        };
        // Asset 9 is not in the library any more; asset 8 had airings nobody watched.
        let figures = audience_figures(&[row(7, 4, 450, 0.25), row(8, 0, 0, 0.0), row(9, 3, 60, 0.0)], &airable);
        assert_eq!(figures.len(), 1, "{figures:?}");
        let f = figures[&AssetId(7)];
        assert!((f.completion - 0.75).abs() < 1e-9 && (f.drop_off - 0.25).abs() < 1e-9 && f.sessions == 4, "{f:?}");
        let long = audience_figures(&[row(7, 1, 3600, 0.0)], &airable);
        assert_eq!(long[&AssetId(7)].completion, 1.0, "a rewatch past the end counts as complete");
    }

    #[test]
    fn a_channel_airs_only_its_library() {
        let mut news = ChannelConfig { demo_clips: false, ..ChannelConfig::default() };
        news.library.tags = vec!["news".into()];
        news.library.exclude_tags = vec!["graphic".into()];
        news.library.max_duration_seconds = 30 * 60;
        news.library.languages = vec!["en".into(), "de".into()];
        assert!(in_library(&news, &asset(AssetKind::Programme, &["News"], "wire", 10)));
        assert!(!in_library(&news, &asset(AssetKind::Programme, &["nature"], "wire", 10)), "not its tags");
        assert!(!in_library(&news, &asset(AssetKind::Programme, &["news", "graphic"], "wire", 10)), "excluded tag");
        assert!(!in_library(&news, &asset(AssetKind::Programme, &["news"], "wire", 45)), "too long");
        assert!(!in_library(&news, &asset(AssetKind::Demo, &["news"], "demo", 1)), "no demo clips here");
        let mut french = asset(AssetKind::Programme, &["news"], "wire", 10);
        french.language = Some("fr".into());
        assert!(!in_library(&news, &french), "not its languages");
        french.language = None;
        assert!(in_library(&news, &french), "unknown language is kept");
        let mut docs = ChannelConfig::default();
        docs.library.sources = vec!["archive".into()];
        assert!(in_library(&docs, &asset(AssetKind::Programme, &[], "Archive", 50)));
        assert!(!in_library(&docs, &asset(AssetKind::Programme, &[], "wire", 50)));
        assert!(in_library(&ChannelConfig::default(), &asset(AssetKind::Demo, &[], "demo", 1)), "default: everything");
    }
}
