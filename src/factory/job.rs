//! One ingest job from input to asset: download (or take the local file), sniff and hash, probe, prepare the audio
//! (EBU R128), encode every rung, gate on VMAF, make the poster and record the asset — or stop with a rejection (the
//! input will never make it; the reason is for humans) or a failure (our side or the network; retried later).
//!
//! Work files live in `data_dir/work`: `job-{id}.download` (kept across attempts so a download resumes),
//! `job-{id}.pcm`, `job-{id}.norm.pcm` and `job-{id}/` (the renditions while they are made). Only a finished asset
//! is moved into `assets/`, so a crash at any point leaves nothing half-made there.

use super::download::{self, DownloadError, Limits};
use super::sniff;
use crate::config::Config;
use crate::media::house_format::HouseFormat;
use crate::media::pipeline::{Fault, PipelineError};
use crate::media::poster;
use crate::media::probe::{self, Facts, ProbeError};
use crate::media::transcode::{self, Source};
use crate::media::{loudness, scan, vmaf, MediaError};
use crate::metrics::{JobOutcome, Metrics};
use crate::store::{AssetId, AssetStatus, Job, JobId, JobInput, JobOrigin, JobStatus, NewAsset, NewRendition, Store};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How a job ended.
#[derive(Debug)]
pub enum Outcome {
    /// The asset is ready; `reused` when the same content was already an asset.
    Ready { asset: AssetId, reused: bool },
    /// The input will never make it; the reason says why.
    Rejected(String),
    /// It may work later (network, disk, a stuck pipeline); the error says what happened.
    Failed(String),
}

impl Outcome {
    pub fn class(&self) -> JobOutcome {
        match self {
            Outcome::Ready { .. } => JobOutcome::Ready,
            Outcome::Rejected(_) => JobOutcome::Rejected,
            Outcome::Failed(_) => JobOutcome::Failed,
        }
    }
}

impl From<ProbeError> for Outcome {
    fn from(e: ProbeError) -> Self {
        match e {
            ProbeError::Rejected(reason) => Outcome::Rejected(reason),
            ProbeError::Failed(error) => Outcome::Failed(error),
        }
    }
}

/// Everything a job needs from the factory.
#[derive(Clone)]
pub struct Workshop {
    pub store: Store,
    pub config: Arc<Config>,
    pub hf: HouseFormat,
    pub vmaf_min: watch::Receiver<f64>,
    /// Job durations, normalize speed, VMAF and loudness are observed here.
    pub metrics: Arc<Metrics>,
}

/// The gain above which a quiet source is not brought up further (noise would be all one hears).
const MAX_GAIN_DB: f64 = 30.0;
/// The true-peak ceiling of the prepared audio sits below the house limit, leaving room for the overshoot the AAC
/// encoder adds.
const CODEC_HEADROOM_DB: f64 = 1.0;
/// How close to the target the rendition's loudness must be before the audio is prepared again (the house promise
/// is ±0.5 LU).
const LOUDNESS_TOLERANCE_LU: f64 = 0.4;
/// Re-preparations of the audio after a rendition missed the target or the peak limit.
const MAX_AUDIO_ROUNDS: u32 = 2;
/// Extra room taken off the ceiling when the encoded true peak went over the limit.
const PEAK_MARGIN_DB: f64 = 0.3;
/// An encode that ends short of the probed duration by more than this share plus `TRUNCATION_SLACK_S` means the file
/// is cut off or broken midway (the slack allows an audio tail longer than the video).
const TRUNCATION_TOLERANCE: f64 = 0.97;
const TRUNCATION_SLACK_S: f64 = 0.5;

impl Workshop {
    pub fn work_dir(&self) -> PathBuf {
        self.config.storage.data_dir.join("work")
    }

    pub fn download_part(&self, job: JobId) -> PathBuf {
        self.work_dir().join(format!("job-{job}.download"))
    }

    /// Runs every stage of `job` (already claimed, in `downloading` or `probing`).
    pub async fn run(&self, job: &Job) -> Outcome {
        let started = Instant::now();
        let outcome = self.stages(job).await;
        self.clean_work_files(job.id, matches!(outcome, Outcome::Failed(_)));
        self.metrics.observe_job(outcome.class(), started.elapsed());
        outcome
    }

    async fn stages(&self, job: &Job) -> Outcome {
        let (source, sha256) = match self.acquire(job).await {
            Ok(got) => got,
            Err(outcome) => return outcome,
        };
        if let Err(outcome) = self.store_ok(self.store.set_job_stage(job.id, JobStatus::Probing).await) {
            return outcome;
        }
        match self.store.asset_by_sha256(&sha256).await {
            Ok(Some(existing)) if existing.status == AssetStatus::Ready => {
                return Outcome::Ready { asset: existing.id, reused: true };
            }
            Ok(Some(gone)) => {
                // Evicted or bad: the same bytes may be made into a new asset.
                if let Err(e) = self.store.forget_asset_source(gone.id).await {
                    return Outcome::Failed(e.to_string());
                }
            }
            Ok(None) => {}
            Err(e) => return Outcome::Failed(e.to_string()),
        }
        let rules = self.config.factory.clone();
        let probe_path = source.clone();
        let facts = match tokio::task::spawn_blocking(move || probe::probe(&probe_path, &rules)).await {
            Ok(Ok(facts)) => facts,
            Ok(Err(e)) => return e.into(),
            Err(e) => return Outcome::Failed(format!("probe crashed: {e}")),
        };
        self.normalize_and_record(job, &source, &sha256, &facts).await
    }

    /// The input as a local file, checked to look like media, with its sha256.
    async fn acquire(&self, job: &Job) -> Result<(PathBuf, String), Outcome> {
        let path = match &job.input {
            JobInput::Url(url) => return self.fetch(job.id, url).await,
            JobInput::File(path) => path.clone(),
        };
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => {}
            Ok(_) => return Err(Outcome::Rejected(format!("{}: not a regular file", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Outcome::Rejected(format!("{}: no such file", path.display())));
            }
            Err(e) => return Err(Outcome::Failed(format!("{}: {e}", path.display()))),
        }
        let sniff_path = path.clone();
        let checked = tokio::task::spawn_blocking(move || -> Result<String, DownloadError> {
            sniff::sniff(&sniff_path)?;
            download::sha256_file(&sniff_path)
                .map_err(|e| DownloadError::Io { what: sniff_path.display().to_string(), source: e })
        })
        .await;
        match checked {
            Ok(Ok(sha)) => Ok((path, sha)),
            Ok(Err(e)) => Err(download_outcome(e)),
            Err(e) => Err(Outcome::Failed(format!("{}: {e}", path.display()))),
        }
    }

    /// Downloads a URL input into the work folder (resuming a partial download of an earlier attempt).
    async fn fetch(&self, job: JobId, input: &str) -> Result<(PathBuf, String), Outcome> {
        let f = &self.config.factory;
        let limits = Limits {
            max_bytes: f.max_download_mb.saturating_mul(1024 * 1024),
            timeout: Duration::from_secs(f.download_timeout_seconds),
            allow_private: f.allow_private_addresses,
            user_agent: self.config.user_agent(),
        };
        let part = self.download_part(job);
        let progress = Progress::new(&self.store, job);
        let report = |done: u64, total: Option<u64>| {
            if let Some(total) = total.filter(|&t| t > 0) {
                progress.set(done as f64 / total as f64, None);
            }
        };
        let got = {
            let reporter = progress.run();
            let result = download::download(input, &part, &limits, &report).await;
            reporter.finish().await;
            result
        };
        match got {
            Ok(d) => Ok((d.path, d.sha256)),
            Err(e) => Err(download_outcome(e)),
        }
    }

    async fn normalize_and_record(&self, job: &Job, source: &Path, sha256: &str, facts: &Facts) -> Outcome {
        if let Err(outcome) = self.store_ok(self.store.set_job_stage(job.id, JobStatus::Normalizing).await) {
            return outcome;
        }
        let work = self.work_dir();
        let out_dir = work.join(format!("job-{}", job.id));
        let _ = std::fs::remove_dir_all(&out_dir);
        let hf = self.hf.clone();
        let target = self.hf.target_lufs;
        let ceiling = self.hf.true_peak_dbtp - CODEC_HEADROOM_DB;
        let (src, has_audio) = (source.to_owned(), facts.audio.is_some());
        let (pcm, norm_pcm) = (work.join(format!("job-{}.pcm", job.id)), work.join(format!("job-{}.norm.pcm", job.id)));
        let dir = out_dir.clone();
        let seconds = facts.duration_s;
        let subsample = self.config.factory.vmaf_subsample.max(1);

        let progress = Progress::new(&self.store, job.id);
        let reporter = progress.run();
        let sink = progress.clone();
        let limit = self.hf.true_peak_dbtp;
        let made = tokio::task::spawn_blocking(move || -> Result<Made, Outcome> {
            let started = Instant::now();
            // The audio first: measure, bring to the target, and hand the encoder the prepared PCM (5 % of the work).
            let extracted = if has_audio {
                loudness::extract_pcm(&src, &pcm, &|p| sink.set(p * 0.04, None))
                    .map_err(|e| Outcome::Rejected(format!("the audio cannot be decoded: {e}")))?
            } else {
                None
            };
            // The AAC encoder moves loudness and true peak a little (broadband noise, transients): the rendition is
            // measured, and when it misses the target or the peak limit the audio is prepared again with the
            // error taken off and the asset encoded again.
            let (mut aim, mut ceiling) = (target, ceiling);
            let mut round = 0;
            // The VMAF gate runs inside the first encode; a later round only changes the audio.
            let mut vmaf = None;
            loop {
                let loudness = match extracted {
                    Some(_) => Some(
                        loudness::normalize_pcm(&pcm, &norm_pcm, aim, ceiling, MAX_GAIN_DB)
                            .map_err(|e| Outcome::Failed(e.to_string()))?,
                    ),
                    None => None,
                };
                let source = match loudness {
                    Some(_) => Source::FileWithPcm { path: src.clone(), pcm: norm_pcm.clone() },
                    None => Source::File(src.clone()),
                };
                let encode_started = Instant::now();
                let progress = |p: f64| {
                    let speed = seconds * p / encode_started.elapsed().as_secs_f64().max(0.1);
                    sink.set(0.05 + 0.95 * p, Some(speed));
                };
                let encoded = match vmaf {
                    None => {
                        let (encoded, score) = transcode::encode_scored(&hf, &source, &dir, subsample, &progress)
                            .map_err(media_outcome)?;
                        vmaf = Some(score);
                        encoded
                    }
                    Some(_) => transcode::encode(&hf, &source, &dir, &progress).map_err(media_outcome)?,
                };
                let decoded = encoded.duration.as_secs_f64();
                if seconds > 0.0 && decoded < seconds * TRUNCATION_TOLERANCE - TRUNCATION_SLACK_S {
                    return Err(Outcome::Rejected(format!(
                        "truncated or corrupt: only {decoded:.1} s of its {seconds:.1} s could be decoded"
                    )));
                }
                let top = hf
                    .top_rung_index()
                    .and_then(|i| encoded.renditions.get(i))
                    .ok_or_else(|| Outcome::Failed("no rendition written".into()))?;
                let after = loudness::measure_file(&top.path).map_err(|e| Outcome::Failed(e.to_string()))?;
                let miss = after.zip(loudness.as_ref().and_then(|n| n.after)).and_then(|(got, prepared)| {
                    let loud_off = target - got.integrated_lufs;
                    let peak_over = got.true_peak_dbtp - limit;
                    let reachable = (prepared.integrated_lufs - aim).abs() < LOUDNESS_TOLERANCE_LU;
                    (reachable && (loud_off.abs() > LOUDNESS_TOLERANCE_LU || peak_over > 0.0))
                        .then_some((loud_off, peak_over))
                });
                match miss {
                    Some((loud_off, peak_over)) if round < MAX_AUDIO_ROUNDS => {
                        tracing::info!(
                            round,
                            loud_off,
                            peak_over,
                            "rendition audio missed the target or the peak limit; preparing it again"
                        );
                        aim += loud_off;
                        ceiling -= peak_over.max(0.0) + PEAK_MARGIN_DB;
                        round += 1;
                    }
                    _ => {
                        let scan = scan::scan(&top.path).map_err(|e| Outcome::Failed(e.to_string()))?;
                        let vmaf = vmaf.ok_or_else(|| Outcome::Failed("no VMAF score".into()))?;
                        return Ok(Made { encoded, scan, loudness, after, vmaf, took: started.elapsed() });
                    }
                }
            }
        })
        .await;
        reporter.finish().await;
        let made = match made {
            Ok(Ok(made)) => made,
            Ok(Err(outcome)) => return outcome,
            Err(e) => return Outcome::Failed(format!("encode crashed: {e}")),
        };
        tracing::info!(job = %job.id, seconds, took = made.took.as_secs_f64(), "normalized");
        let deviation = made.after.map(|l| l.integrated_lufs - target);
        self.metrics.observe_normalized(seconds / made.took.as_secs_f64().max(1e-3), made.vmaf.mean, deviation);

        // The quality gate.
        if let Err(outcome) = self.store_ok(self.store.set_job_stage(job.id, JobStatus::Gating).await) {
            return outcome;
        }
        let vmaf_min = *self.vmaf_min.borrow();
        let score = made.vmaf;
        if score.mean < vmaf_min {
            return Outcome::Rejected(format!(
                "quality too low: VMAF {:.1} (min {:.1}, 5th percentile {:.1}) is below the minimum of {vmaf_min} \
                 (factory.vmaf_min)",
                score.mean, score.min, score.p5
            ));
        }
        // The poster: one more (partial) decode of the top rung.
        let top = match self.hf.top_rung_index().and_then(|i| made.encoded.renditions.get(i)) {
            Some(top) => top.path.clone(),
            None => return Outcome::Failed("no rendition written".into()),
        };
        let duration = made.scan.duration();
        let poster = tokio::task::spawn_blocking(move || {
            let dir = top.parent().map(Path::to_owned).unwrap_or_default();
            poster::make_posters(&top, duration, &dir).map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(format!("poster task crashed: {e}")));
        if let Err(e) = poster {
            tracing::warn!(job = %job.id, "no poster: {e}");
        }

        // Record: move the renditions into the library, then insert the asset.
        let assets_dir = self.config.storage.assets_dir();
        let final_dir = assets_dir.join(&sha256[..16.min(sha256.len())]);
        let moved = std::fs::create_dir_all(&assets_dir).and_then(|_| {
            let _ = std::fs::remove_dir_all(&final_dir);
            std::fs::rename(&out_dir, &final_dir)
        });
        if let Err(e) = moved {
            return Outcome::Failed(format!("cannot move the renditions to {}: {e}", final_dir.display()));
        }
        let renditions = made
            .encoded
            .renditions
            .iter()
            .zip(&self.hf.rungs)
            .map(|(r, rung)| NewRendition {
                rung: r.rung.clone(),
                path: final_dir.join(r.path.file_name().unwrap_or_default()),
                width: rung.width,
                height: rung.height,
                video_kbps: rung.video_kbps,
                size_bytes: r.size_bytes,
            })
            .collect();
        let before = made.loudness.as_ref().and_then(|n| n.before);
        let title = self.title_for(job, source).await;
        let content = self.content_of(job).await;
        let facts_json = serde_json::json!({
            "source": facts,
            "audio": made.loudness.as_ref().map(|n| serde_json::json!({
                "gain_db": n.gain_db, "limited": n.limited, "before": n.before, "prepared": n.after,
            })),
            "vmaf_frames": score.frames,
            "normalize_seconds": made.took.as_secs_f64(),
        });
        // Uploaded before the row exists: a row never names a file other nodes cannot fetch.
        if let Some(objects) = self.store.objects() {
            if let Err(e) = objects.upload_dir(&final_dir).await {
                return Outcome::Failed(format!("cannot upload the renditions to {}: {e}", objects.url()));
            }
        }
        let inserted = self
            .store
            .insert_asset(&NewAsset {
                sha256: Some(sha256.to_owned()),
                title,
                source: job.input.to_string(),
                kind: None,
                emergency: false,
                dir: final_dir.clone(),
                duration: Duration::from_nanos(made.scan.video_end_ns.max(0) as u64),
                b_frame_delay: Some(Duration::from_nanos(made.scan.first_dts_ns.saturating_neg().max(0) as u64)),
                keyframes: made.scan.keyframes_ns.iter().map(|&k| Duration::from_nanos(k.max(0) as u64)).collect(),
                loudness_in_lufs: before.map(|l| l.integrated_lufs),
                loudness_out_lufs: made.after.map(|l| l.integrated_lufs),
                lra_lu: made.after.map(|l| l.lra_lu),
                true_peak_dbtp: made.after.map(|l| l.true_peak_dbtp),
                vmaf: Some((score.mean, score.min, score.p5)),
                source_facts: facts_json,
                tags: content.tags,
                description: content.description,
                source_name: content.source_name,
                curator_score: content.score,
                language: None,
                rating: None,
                series: None,
                renditions,
            })
            .await;
        match inserted {
            Ok(asset) => Outcome::Ready { asset, reused: false },
            Err(e) => {
                let _ = std::fs::remove_dir_all(&final_dir);
                Outcome::Failed(e.to_string())
            }
        }
    }

    /// What the curator knew of the content (from the job's plan), or where an operator's ingest came from.
    async fn content_of(&self, job: &Job) -> Content {
        let plan = match job.plan_id {
            Some(id) => self.store.plan(id).await.ok(),
            None => None,
        };
        let source_name = match (&plan, job.origin) {
            (Some(p), _) => p.source.clone(),
            (None, JobOrigin::Inbox) => "inbox".into(),
            (None, JobOrigin::Demo) => "demo".into(),
            (None, _) => "manual".into(),
        };
        match plan {
            Some(p) => Content { tags: p.tags, description: p.description, source_name, score: p.score },
            None => Content { tags: Vec::new(), description: String::new(), source_name, score: None },
        }
    }

    /// The job's title, else its plan's, else the file name.
    async fn title_for(&self, job: &Job, source: &Path) -> String {
        if let Some(t) = job.title.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            return t.to_owned();
        }
        if let Some(plan) = job.plan_id {
            if let Ok(p) = self.store.plan(plan).await {
                if !p.title.trim().is_empty() {
                    return p.title;
                }
            }
        }
        let name = match &job.input {
            JobInput::Url(url) => {
                url.rsplit('/').next().unwrap_or(url).split(['?', '#']).next().unwrap_or_default().to_owned()
            }
            JobInput::File(_) => source.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
        };
        let name = name.rsplit_once('.').map(|(stem, _)| stem.to_owned()).filter(|s| !s.is_empty()).unwrap_or(name);
        if name.is_empty() {
            job.input.to_string()
        } else {
            name
        }
    }

    fn store_ok<T>(&self, r: crate::store::Result<T>) -> Result<T, Outcome> {
        r.map_err(|e| Outcome::Failed(e.to_string()))
    }

    /// Removes the job's work files; a failed download is kept so the next attempt resumes it.
    fn clean_work_files(&self, job: JobId, keep_download: bool) {
        let work = self.work_dir();
        for name in [format!("job-{job}.pcm"), format!("job-{job}.norm.pcm")] {
            let _ = std::fs::remove_file(work.join(name));
        }
        let _ = std::fs::remove_dir_all(work.join(format!("job-{job}")));
        if !keep_download {
            let part = self.download_part(job);
            let _ = std::fs::remove_file(&part);
            let _ = std::fs::remove_file(part.with_extension("download.meta"));
        }
    }
}

/// What is known of an asset's content when it is recorded.
struct Content {
    tags: Vec<String>,
    description: String,
    source_name: String,
    score: Option<f64>,
}

struct Made {
    encoded: transcode::Encoded,
    scan: scan::ScanInfo,
    loudness: Option<loudness::Normalized>,
    after: Option<loudness::Loudness>,
    vmaf: vmaf::VmafScore,
    took: Duration,
}

fn download_outcome(e: DownloadError) -> Outcome {
    if e.is_permanent() {
        Outcome::Rejected(e.to_string())
    } else {
        Outcome::Failed(e.to_string())
    }
}

/// An encode error: what the source cannot give (undecodable data, no video) is a rejection; a timeout or a problem
/// of ours is a failure worth retrying. Whose fault an element's failure is, the encode's pipeline knows: it
/// declared the elements that read the source.
fn media_outcome(e: MediaError) -> Outcome {
    match e {
        MediaError::Pipeline(PipelineError::NoVideo { .. }) => Outcome::Rejected("no decodable video stream".into()),
        _ if e.fault() == Some(Fault::Input) => Outcome::Rejected(format!("corrupt or undecodable: {e}")),
        other => Outcome::Failed(other.to_string()),
    }
}

/// Progress of the current stage, set from any thread and written to the job row about once a second.
#[derive(Clone)]
struct Progress {
    store: Store,
    job: JobId,
    value: Arc<std::sync::Mutex<(f64, Option<f64>)>>,
}

struct Reporter {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    fn new(store: &Store, job: JobId) -> Progress {
        Progress { store: store.clone(), job, value: Arc::new(std::sync::Mutex::new((0.0, None))) }
    }

    fn set(&self, progress: f64, speed: Option<f64>) {
        if let Ok(mut v) = self.value.lock() {
            *v = (progress, speed.or(v.1));
        }
    }

    fn get(&self) -> (f64, Option<f64>) {
        self.value.lock().map(|v| *v).unwrap_or((0.0, None))
    }

    /// Starts writing the progress to the job row every second until `finish`.
    fn run(&self) -> Reporter {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let me = self.clone();
        let task = tokio::spawn(async move {
            let mut last = (-1.0, None);
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tick.tick() => {}
                }
                let now = me.get();
                if now != last {
                    let _ = me.store.set_job_progress(me.job, now.0, now.1).await;
                    last = now;
                }
            }
            let now = me.get();
            if now != last {
                let _ = me.store.set_job_progress(me.job, now.0, now.1).await;
            }
        });
        Reporter { stop, task }
    }
}

impl Reporter {
    async fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::pipeline::ElementFailure;

    fn element_failure(element: &str, fault: Fault) -> MediaError {
        let failure = ElementFailure { element: element.into(), reason: "it failed".into(), detail: None, fault };
        PipelineError::Element { what: "encode /in/clip.mov".into(), failure }.into()
    }

    #[test]
    fn the_inputs_failures_are_rejections_and_ours_are_retried() {
        let rejected = media_outcome(element_failure("qtdemux0", Fault::Input));
        let expected = "corrupt or undecodable: encode /in/clip.mov: qtdemux0: it failed";
        assert!(matches!(&rejected, Outcome::Rejected(r) if r == expected), "{rejected:?}");
        // The name does not decide: our own decoder of our output is ours, whatever it is called.
        let failed = media_outcome(element_failure("vmafdec", Fault::Ours));
        assert!(matches!(&failed, Outcome::Failed(r) if r == "encode /in/clip.mov: vmafdec: it failed"), "{failed:?}");
        let no_video = media_outcome(PipelineError::NoVideo { what: "encode /in/a.ogg".into() }.into());
        assert!(matches!(&no_video, Outcome::Rejected(r) if r == "no decodable video stream"), "{no_video:?}");
        let timeout = PipelineError::Timeout {
            what: "encode x".into(),
            elapsed: Duration::from_secs(61),
            reason: "stuck".into(),
        };
        assert!(matches!(media_outcome(timeout.into()), Outcome::Failed(_)));
    }
}
