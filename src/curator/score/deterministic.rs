//! The deterministic scorer: a score from metadata alone, by documented weights, with a reason that adds up to it.
//!
//! It decides whenever the LLM cannot (none configured, breaker open, a failed call), and its verdict explains itself:
//! each part of the score appears in the reason with its points.

use std::collections::HashSet;

use super::{human_duration, known_duration, CandidateInfo, Scored, Style};
use crate::curator::license::normalize_license;

/// Points for each part of the deterministic score; they add up to 1.
pub mod weights {
    /// Height of 1080 lines or more.
    pub const RESOLUTION_FULL_HD: f64 = 0.30;
    /// 720 lines or more.
    pub const RESOLUTION_HD: f64 = 0.22;
    /// Below 720 lines but not below the channel's minimum height.
    pub const RESOLUTION_LOW: f64 = 0.10;
    /// Height not known yet (probing may tell later).
    pub const RESOLUTION_UNKNOWN: f64 = 0.05;
    /// Inside the channel's duration limits and 2–30 minutes, the length that programmes best.
    pub const DURATION_IDEAL: f64 = 0.25;
    /// Inside the channel's limits but shorter than 2 or longer than 30 minutes.
    pub const DURATION_FITS: f64 = 0.15;
    pub const DURATION_UNKNOWN: f64 = 0.05;
    /// The license is in the channel's allowlist.
    pub const LICENSE_ALLOWED: f64 = 0.20;
    /// No license stated: maybe fine, to be checked by hand.
    pub const LICENSE_UNKNOWN: f64 = 0.05;
    /// At most this much for words of the style found in the title, description or tags. Each distinct word
    /// halves the distance to it: 1 word 0.13, 2 words 0.19, 3 words 0.22, …
    pub const STYLE_MATCH: f64 = 0.25;
    /// The ideal duration range, in seconds.
    pub const IDEAL_DURATION_S: std::ops::RangeInclusive<f64> = 120.0..=1800.0;
}

/// Scores from metadata alone, by the documented [`weights`]: resolution, duration fit, license, and the words of
/// the channel's style found in the candidate's text. Each part appears in the reason with its points, e.g.
/// "1080p (+0.30), 12 min fits (+0.25), cc-by allowed (+0.20), matches style: nature, documentary (+0.19)".
/// The tags are the matched style words.
pub fn deterministic(style: &Style, c: &CandidateInfo) -> Scored {
    use weights::*;
    let mut parts: Vec<(String, f64)> = Vec::new();

    parts.push(match c.height {
        Some(h) if h < style.min_height => (format!("{h}p below the {}p minimum", style.min_height), 0.0),
        Some(h) if h >= 1080 => (format!("{h}p"), RESOLUTION_FULL_HD),
        Some(h) if h >= 720 => (format!("{h}p"), RESOLUTION_HD),
        Some(h) => (format!("{h}p"), RESOLUTION_LOW),
        None => ("resolution unknown".to_string(), RESOLUTION_UNKNOWN),
    });

    parts.push(match known_duration(c.duration_s) {
        Some(d) if d < style.min_duration_s => {
            (format!("{} shorter than the {} minimum", human_duration(d), human_duration(style.min_duration_s)), 0.0)
        }
        Some(d) if d > style.max_duration_s => {
            (format!("{} longer than the {} maximum", human_duration(d), human_duration(style.max_duration_s)), 0.0)
        }
        Some(d) if IDEAL_DURATION_S.contains(&d) => (format!("{} fits", human_duration(d)), DURATION_IDEAL),
        Some(d) => (format!("{} fits, outside 2–30 min", human_duration(d)), DURATION_FITS),
        None => ("duration unknown".to_string(), DURATION_UNKNOWN),
    });

    let license = c.license.as_deref().and_then(normalize_license);
    parts.push(match license {
        Some(l) if style.license_allowlist.iter().any(|a| normalize_license(a).as_ref() == Some(&l)) => {
            (format!("{l} allowed"), LICENSE_ALLOWED)
        }
        Some(l) => (format!("{l} not in the allowlist"), 0.0),
        None => ("license unknown".to_string(), LICENSE_UNKNOWN),
    });

    let matched = style_matches(&style.description, c);
    parts.push(if matched.is_empty() {
        ("no style words matched".to_string(), 0.0)
    } else {
        let points = STYLE_MATCH * (1.0 - 0.5_f64.powi(matched.len() as i32));
        (format!("matches style: {}", matched.join(", ")), points)
    });

    // Each part is rounded as the reason shows it, so the reason adds up to the score.
    let parts: Vec<(String, f64)> = parts.into_iter().map(|(label, points)| (label, hundredths(points))).collect();
    let score = hundredths(parts.iter().map(|(_, points)| points).sum::<f64>()).clamp(0.0, 1.0);
    let reason = parts.iter().map(|(label, points)| format!("{label} (+{points:.2})")).collect::<Vec<_>>().join(", ");
    Scored { score, tags: matched, reason, scorer: "deterministic".to_string(), fallback_because: None }
}

fn hundredths(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Words that carry no taste: dropped from the style before matching.
const STOP_WORDS: &[&str] = &[
    "a", "about", "all", "also", "an", "and", "any", "are", "as", "at", "be", "but", "by", "can", "do", "for", "from",
    "has", "have", "how", "in", "into", "is", "it", "its", "just", "less", "like", "more", "most", "no", "nor", "not",
    "of", "on", "only", "or", "our", "over", "so", "some", "such", "than", "that", "the", "their", "them", "then",
    "these", "they", "this", "those", "to", "too", "under", "very", "was", "we", "were", "what", "which", "who",
    "with", "without", "you", "your",
];

/// The style's words (stemmed, stop words dropped, in the style's order) found in the candidate's title,
/// description or tags.
fn style_matches(style: &str, c: &CandidateInfo) -> Vec<String> {
    let mut text_words: HashSet<String> = words(&c.title).chain(words(&c.description)).collect();
    for tag in &c.tags {
        text_words.extend(words(tag));
    }
    let mut matched: Vec<String> = Vec::new();
    for word in words(style).filter(|w| !STOP_WORDS.contains(&w.as_str())) {
        if text_words.contains(&word) && !matched.contains(&word) {
            matched.push(word);
        }
    }
    matched
}

/// Lowercased, stemmed words of at least two characters.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|ch: char| !ch.is_alphanumeric()).filter(|w| w.chars().count() >= 2).map(|w| stem(&w.to_lowercase()))
}

/// Folds the common English plural forms onto the singular ("documentaries" → "documentary", "beaches" → "beach",
/// "birds" → "bird"), so that a style and a title that word a topic differently still meet. It does not need to
/// produce real words: both sides go through the same folding.
fn stem(word: &str) -> String {
    let long = word.chars().count() > 4;
    if long && word.ends_with("ies") {
        format!("{}y", &word[..word.len() - 3])
    } else if word.ends_with("sses")
        || (long && ["ches", "shes", "xes", "zzes"].iter().any(|suffix| word.ends_with(suffix)))
    {
        word[..word.len() - 2].to_string()
    } else if word.chars().count() > 3 && word.ends_with('s') && !["ss", "us", "is"].iter().any(|s| word.ends_with(s)) {
        word[..word.len() - 1].to_string()
    } else {
        word.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::curator::score::test_support::{nature_documentary, style};

    #[test]
    fn deterministic_ranks_a_fitting_documentary_above_a_poor_clip() {
        let good = deterministic(&style(), &nature_documentary());
        let clip = CandidateInfo {
            title: "lol watch this".into(),
            description: "funny moment".into(),
            width: Some(854),
            height: Some(480),
            duration_s: Some(30.0),
            media_url: "https://example.org/clip.mp4".into(),
            ..CandidateInfo::default()
        };
        let poor = deterministic(&style(), &clip);
        assert!(good.score > poor.score + 0.5, "{good:?} vs {poor:?}");
        assert_eq!(good.scorer, "deterministic");
        assert_eq!(
            good.reason,
            "1080p (+0.30), 10 min fits (+0.25), cc-by allowed (+0.20), matches style: nature, documentary (+0.19)"
        );
        assert_eq!(good.score, 0.94);
        assert_eq!(good.tags, ["nature", "documentary"]);
        assert_eq!(
            poor.reason,
            "480p below the 720p minimum (+0.00), 30 s shorter than the 1 min minimum (+0.00), \
             license unknown (+0.05), no style words matched (+0.00)"
        );
        assert_eq!(poor.score, 0.05);
        assert!(poor.tags.is_empty());
    }

    #[test]
    fn deterministic_parts() {
        let base = nature_documentary();
        let score = |c: CandidateInfo| deterministic(&style(), &c);
        let hd = score(CandidateInfo { height: Some(720), ..base.clone() });
        assert!(hd.reason.starts_with("720p (+0.22)"), "{}", hd.reason);
        let long = score(CandidateInfo { duration_s: Some(3.0 * 3600.0), ..base.clone() });
        assert!(long.reason.contains("3 h fits, outside 2–30 min (+0.15)"), "{}", long.reason);
        let too_long = score(CandidateInfo { duration_s: Some(5.5 * 3600.0), ..base.clone() });
        assert!(too_long.reason.contains("5 h 30 min longer than the 4 h maximum (+0.00)"), "{}", too_long.reason);
        let nc = score(CandidateInfo { license: Some("CC BY-NC 4.0".into()), ..base.clone() });
        assert!(nc.reason.contains("cc-by-nc not in the allowlist (+0.00)"), "{}", nc.reason);
        let unknown = score(CandidateInfo { height: None, duration_s: None, license: None, ..base });
        assert!(
            unknown.reason.starts_with("resolution unknown (+0.05), duration unknown (+0.05), license unknown (+0.05)"),
            "{}",
            unknown.reason
        );
    }

    #[test]
    fn style_words_are_stemmed_and_stop_words_dropped() {
        let c = CandidateInfo {
            title: "Cultures of the sea".into(),
            tags: vec!["Science".into()],
            ..CandidateInfo::default()
        };
        assert_eq!(style_matches("science and the culture of the seas", &c), ["science", "culture", "sea"]);
        assert_eq!(stem("documentaries"), "documentary");
        assert_eq!(stem("beaches"), "beach");
        assert_eq!(stem("birds"), "bird");
        assert_eq!(stem("glass"), "glass");
        assert_eq!(stem("virus"), "virus");
    }
}
