//! Turning a source into a recorded house-format asset: encode every rung, scan the top rung for playout facts,
//! record the asset and its renditions. The demo clips, the slates, the emergency and "up next" cards are made this
//! way — and, like every ingest, they meet the house loudness: a card's tone is written as PCM, brought to the
//! target by the same normalizer (`media::loudness`), measured again after the encode, and the figures recorded.

use super::error::FactoryError;
use crate::media::house_format::HouseFormat;
use crate::media::loudness::{self, Loudness, PCM_CHANNELS, PCM_RATE};
use crate::media::transcode::{self, Source};
use crate::store::{Asset, AssetKind, NewAsset, NewRendition, Store};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The tone under a card that asks for none (a slate, an "up next" card): something to measure, kept low-pitched.
const BED_HZ: f64 = 330.0;
/// Fades at both ends of a card's tone, so the splice into the next item does not click.
const FADE: Duration = Duration::from_millis(20);
/// The card's true-peak ceiling sits below the house limit, leaving room for the AAC encoder's overshoot.
const CODEC_HEADROOM_DB: f64 = 1.0;

/// Encodes `source` into `dir` in the house format and records it as an asset of `kind`.
pub async fn make_asset(
    store: &Store,
    hf: &HouseFormat,
    source: Source,
    dir: PathBuf,
    title: &str,
    kind: AssetKind,
    facts: serde_json::Value,
) -> Result<Asset, FactoryError> {
    let (hf2, dir2) = (hf.clone(), dir.clone());
    let what = format!("make {}", dir.display());
    let task = tokio::task::spawn_blocking(move || -> Result<_, FactoryError> {
        let failed = |reason: String| FactoryError::Failed { what: format!("make {}", dir2.display()), reason };
        std::fs::create_dir_all(&dir2).map_err(|e| failed(e.to_string()))?;
        let (source, before) = with_house_loudness(&hf2, source, &dir2).map_err(failed)?;
        let encoded = transcode::encode(&hf2, &source, &dir2, &|_| {})?;
        for pcm in [dir2.join("card.pcm"), dir2.join("card.norm.pcm")] {
            let _ = std::fs::remove_file(pcm);
        }
        let top = hf2.top_rung_index().and_then(|i| encoded.renditions.get(i)).or(encoded.renditions.first());
        let first = top.map(|r| r.path.clone()).ok_or_else(|| failed("no rendition written".into()))?;
        let scan = crate::media::scan::scan(&first)?;
        let after = loudness::measure_file(&first).map_err(|e| failed(e.to_string()))?;
        if let Err(e) = crate::media::poster::make_posters(&first, scan.duration(), &dir2) {
            tracing::warn!("no poster for {}: {e}", dir2.display());
        }
        Ok((encoded, scan, before, after))
    });
    let (encoded, scan, before, after) =
        task.await.map_err(|e| FactoryError::Failed { what, reason: e.to_string() })??;
    let renditions = encoded
        .renditions
        .iter()
        .zip(&hf.rungs)
        .map(|(r, rung)| NewRendition {
            rung: r.rung.clone(),
            path: r.path.clone(),
            width: rung.width,
            height: rung.height,
            video_kbps: rung.video_kbps,
            size_bytes: r.size_bytes,
        })
        .collect();
    // Uploaded before the row exists: a row never names a file other nodes cannot fetch.
    if let Some(objects) = store.objects() {
        objects.upload_dir(&dir).await?;
    }
    let id = store
        .insert_asset(&NewAsset {
            title: title.into(),
            source: "generated".into(),
            kind: Some(kind),
            dir,
            duration: Duration::from_nanos(scan.video_end_ns.max(0) as u64),
            b_frame_delay: Some(Duration::from_nanos(scan.first_dts_ns.saturating_neg().max(0) as u64)),
            keyframes: scan.keyframes_ns.iter().map(|&k| Duration::from_nanos(k.max(0) as u64)).collect(),
            loudness_in_lufs: before.map(|l| l.integrated_lufs),
            loudness_out_lufs: after.map(|l| l.integrated_lufs),
            lra_lu: after.map(|l| l.lra_lu),
            true_peak_dbtp: after.map(|l| l.true_peak_dbtp),
            source_facts: facts,
            source_name: if kind == AssetKind::Demo { "demo".into() } else { "generated".into() },
            renditions,
            ..Default::default()
        })
        .await?;
    Ok(store.asset(id).await?)
}

/// A test card gets its tone (or the bed) as PCM normalized to the house target; other sources pass unchanged.
fn with_house_loudness(hf: &HouseFormat, source: Source, dir: &Path) -> Result<(Source, Option<Loudness>), String> {
    let Source::TestCard { title, pattern, tone_hz, duration, pcm: None, poster } = source else {
        return Ok((source, None));
    };
    let raw = dir.join("card.pcm");
    let norm = dir.join("card.norm.pcm");
    write_tone(&raw, tone_hz.unwrap_or(BED_HZ), duration).map_err(|e| format!("{}: {e}", raw.display()))?;
    let normalized = loudness::normalize_pcm(&raw, &norm, hf.target_lufs, hf.true_peak_dbtp - CODEC_HEADROOM_DB, 30.0)
        .map_err(|e| e.to_string())?;
    let source = Source::TestCard { title, pattern, tone_hz, duration, pcm: Some(norm), poster };
    Ok((source, normalized.before))
}

/// A sine at `hz`, −20 dBFS, on both channels of 48 kHz F32LE, with short fades at both ends.
fn write_tone(path: &Path, hz: f64, duration: Duration) -> std::io::Result<()> {
    let frames = (duration.as_secs_f64() * f64::from(PCM_RATE)).round() as usize;
    let fade = (FADE.as_secs_f64() * f64::from(PCM_RATE)) as usize;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for n in 0..frames {
        let edge = n.min(frames - 1 - n).min(fade) as f64 / fade.max(1) as f64;
        let v = (0.1 * edge * (std::f64::consts::TAU * hz * n as f64 / f64::from(PCM_RATE)).sin()) as f32;
        for _ in 0..PCM_CHANNELS {
            out.write_all(&v.to_le_bytes())?;
        }
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::factory::clips::{self, ClipRequest};
    use crate::media::test_support::small;
    use crate::media::transcode::TestPattern;

    /// Integrated loudness and true peak as ffmpeg's ebur128 filter reads them (an independent meter).
    fn ffmpeg_loudness(path: &Path) -> (f64, f64) {
        let out = std::process::Command::new("ffmpeg")
            .args(["-nostats", "-hide_banner", "-i"])
            .arg(path)
            .args(["-af", "ebur128=peak=true", "-f", "null", "-"])
            .output()
            .expect("ffmpeg runs");
        let log = String::from_utf8_lossy(&out.stderr);
        let summary = log.rsplit_once("Summary:").map(|(_, s)| s.to_owned()).unwrap_or_default();
        let value = |key: &str| -> f64 {
            summary
                .lines()
                .find(|l| l.trim_start().starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {key} in ffmpeg's summary: {log}"))
        };
        (value("I:"), value("Peak:"))
    }

    /// Frame `n` of a rendition as RGB24, decoded by ffmpeg (an independent decoder), with its width and height.
    fn ffmpeg_frame(path: &Path, n: u32) -> (Vec<u8>, usize, usize) {
        let probe = std::process::Command::new("ffprobe")
            .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height", "-of", "csv=p=0"])
            .arg(path)
            .output()
            .expect("ffprobe runs");
        let size = String::from_utf8_lossy(&probe.stdout).trim().to_owned();
        let (w, h) = size.split_once(',').map(|(w, h)| (w.parse().unwrap(), h.parse().unwrap())).expect(&size);
        let out = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(path)
            .args(["-vf", &format!("select=eq(n\\,{n})"), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
            .output()
            .expect("ffmpeg runs");
        assert_eq!(out.stdout.len(), w * h * 3, "{}", String::from_utf8_lossy(&out.stderr));
        (out.stdout, w, h)
    }

    #[tokio::test]
    async fn an_up_next_card_shows_the_poster_beside_its_title_and_a_missing_one_is_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("vvtv.db")).await.unwrap();
        let hf = small();
        // A pure red poster on a black card: where the poster should be is red, the margin beside it black.
        let poster = dir.path().join("poster.jpg");
        vvtv_testkit::media::render(
            "videotestsrc pattern=red num-buffers=1 ! video/x-raw,width=320,height=180 ! jpegenc",
            &poster,
        )
        .expect("a poster JPEG");
        let source = Source::TestCard {
            title: "Up next at 20:15: Forest at night".into(),
            pattern: TestPattern::Black,
            tone_hz: None,
            duration: Duration::from_secs(3),
            pcm: None,
            poster: Some(poster),
        };
        let asset =
            make_asset(&store, &hf, source, dir.path().join("card"), "card", AssetKind::Slate, serde_json::json!({}))
                .await
                .unwrap();
        for r in store.renditions(asset.id).await.unwrap() {
            let (rgb, w, h) = ffmpeg_frame(&r.path, 10);
            let at = |x: usize, y: usize| {
                let i = (y * w + x) * 3;
                (rgb[i], rgb[i + 1], rgb[i + 2])
            };
            let (px, py, pw, ph) = crate::media::transcode::poster_box(w as u32, h as u32);
            let centre = at((px + pw / 2) as usize, (py + ph / 2) as usize);
            assert!(centre.0 > 150 && centre.1 < 80 && centre.2 < 80, "{}: poster centre is {centre:?}", r.rung);
            let margin = at((px / 3) as usize, (py + ph / 2) as usize);
            assert!(margin.0 < 40 && margin.1 < 40 && margin.2 < 40, "{}: margin is {margin:?}", r.rung);
            let (i, _) = ffmpeg_loudness(&r.path);
            assert!((i - hf.target_lufs).abs() <= 1.0, "{}: {i} LUFS", r.rung);
        }
        // The factory's clip: a poster that is not an image is left out (the card is still made).
        let storage = crate::config::StorageConfig { data_dir: dir.path().join("data"), ..Default::default() };
        let config = crate::config::Config { storage, ..Default::default() };
        let not_an_image = dir.path().join("poster.txt");
        std::fs::write(&not_an_image, b"<html>").unwrap();
        let request = |poster: Option<PathBuf>| ClipRequest {
            title: "Up next at 21:00: News".into(),
            pattern: TestPattern::Black,
            duration: Duration::from_secs(2),
            dir_name: "card-test".into(),
            poster,
        };
        let without = clips::clip(&store, &config, &hf, request(Some(not_an_image))).await.unwrap();
        assert_eq!(without.source_facts["format"], clips::format_key(&hf).as_str());
    }

    #[tokio::test]
    async fn every_card_the_station_makes_meets_the_house_loudness() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("vvtv.db")).await.unwrap();
        let hf = small();
        // A demo clip's tone, a slate and an "up next" card without one: each brought to the target.
        for (name, kind, tone) in [
            ("demo", AssetKind::Demo, Some(440.0)),
            ("slate", AssetKind::Slate, None),
            ("card", AssetKind::Slate, None),
        ] {
            let source = Source::TestCard {
                title: name.into(),
                pattern: TestPattern::Colors,
                tone_hz: tone,
                duration: Duration::from_secs(6),
                pcm: None,
                poster: None,
            };
            let asset = make_asset(&store, &hf, source, dir.path().join(name), name, kind, serde_json::json!({}))
                .await
                .unwrap();
            let stored = asset.loudness_out_lufs.expect("the card's loudness is measured and recorded");
            for r in store.renditions(asset.id).await.unwrap() {
                let (i, tp) = ffmpeg_loudness(&r.path);
                assert!((i - hf.target_lufs).abs() <= 1.0, "{name} {}: {i} LUFS, want {}", r.rung, hf.target_lufs);
                assert!(tp <= hf.true_peak_dbtp, "{name} {}: true peak {tp} dBTP", r.rung);
                assert!((stored - i).abs() < 1.0, "{name}: stored {stored} vs measured {i}");
            }
            assert!(!dir.path().join(name).join("card.pcm").exists(), "the work PCM is removed");
        }
    }
}
