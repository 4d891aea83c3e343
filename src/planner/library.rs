//! A channel's library: the assets its config says it airs (tags, sources, languages, duration range, ratings), as
//! candidates for the selection.

use super::selection::{AudienceFigures, Candidate};
use crate::config::{ChannelConfig, LibraryConfig};
use crate::store::{Airable, Asset, AssetId, AssetKind};
use std::collections::HashMap;
use std::time::Duration;

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
