//! `make bench-factory`: what normalizing one source costs, and how it compares with the ffmpeg CLI doing the same.
//!
//! A 60 s 1080p30 source with stereo pink noise is generated, then normalized to the default 4-rung ladder the way a
//! job does it — loudness pass (decode the audio, measure, gain/limit), one-decode encode of every rung — each stage
//! timed. The encode is run a second time with the VMAF gate inside it, as a job runs it; the difference is the gate's
//! cost. In the same run the ffmpeg CLI encodes the same source to the same four rungs with the same x264
//! settings (preset, capped CRF, GOP, B-frames, no scene cut, closed GOP) and AAC, decoding once too; the ratio of the
//! two encode times is printed (goal ≤ 1.1), with the VMAF gate's share of the transcode (goal ≤ 25 %) and the
//! loudness pass's.
//!
//! Options (environment): BENCH_SECONDS=60 (source length), BENCH_VMAF_SUBSAMPLE (default: the config's),
//! BENCH_KEEP=1 to keep the work dir.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use vvtv::config::Config;
use vvtv::media::house_format::{HouseFormat, CRF, VBV_BUFFER_MS};
use vvtv::media::loudness;
use vvtv::media::transcode::{self, Source};
use vvtv_testkit::media;

fn main() {
    let seconds: u32 = std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let work = tempfile::tempdir().expect("temp dir");
    let dir = work.path().to_path_buf();
    if std::env::var("BENCH_KEEP").is_ok() {
        std::mem::forget(work);
    }
    let config = Config::default();
    let subsample: u32 = std::env::var("BENCH_VMAF_SUBSAMPLE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(config.factory.vmaf_subsample);
    let hf = HouseFormat::from_config(&config.house_format);
    println!(
        "bench-factory: {seconds} s 1080p30 source → {} rungs, preset {}, work dir {}",
        hf.rungs.len(),
        hf.x264_preset,
        dir.display()
    );

    let source = dir.join("source.mp4");
    let t = Instant::now();
    media::launch(&format!(
        "videotestsrc pattern=ball motion=wavy num-buffers={frames} ! \
         video/x-raw,width=1920,height=1080,framerate=30/1 ! videoconvert ! video/x-raw,format=I420 ! \
         x264enc speed-preset=ultrafast bitrate=20000 key-int-max=60 ! h264parse ! mp4mux name=m ! \
         filesink location={src} \
         audiotestsrc wave=pink-noise volume=0.3 num-buffers={abufs} ! audio/x-raw,rate=48000,channels=2 ! \
         audioconvert ! avenc_aac bitrate=192000 ! aacparse ! m.",
        frames = seconds * 30,
        abufs = seconds * 48000 / 1024 + 1,
        src = source.display()
    ))
    .expect("could not generate the source");
    println!("source generated in {:.1} s", t.elapsed().as_secs_f64());

    // 1. Loudness pass.
    let t = Instant::now();
    let pcm = dir.join("audio.pcm");
    let norm = dir.join("audio.norm.pcm");
    loudness::extract_pcm(&source, &pcm, &|_| {}).expect("extract audio");
    let n = loudness::normalize_pcm(&pcm, &norm, hf.target_lufs, hf.true_peak_dbtp - 1.0, 30.0).expect("normalize");
    let loud = t.elapsed();

    // 2. The house encode (one decode, four rungs), without the gate: the like of what ffmpeg does below.
    let source_pcm = Source::FileWithPcm { path: source.clone(), pcm: norm };
    let (t, cpu) = (Instant::now(), cpu_seconds(libc::RUSAGE_SELF));
    let encoded = transcode::encode(&hf, &source_pcm, &dir.join("vvtv"), &|_| {}).expect("encode");
    let (encode, encode_cpu) = (t.elapsed(), cpu_seconds(libc::RUSAGE_SELF) - cpu);

    // 3. The same encode with the VMAF gate inside it, as a job runs it: the gate's cost is the difference.
    let t = Instant::now();
    let (_, score) = transcode::encode_scored(&hf, &source_pcm, &dir.join("vvtv-gated"), subsample, &|_| {})
        .expect("encode with the VMAF gate");
    let gated = t.elapsed();
    let gate = gated.saturating_sub(encode);

    // 4. The same encode by the ffmpeg CLI.
    let (t, cpu) = (Instant::now(), cpu_seconds(libc::RUSAGE_CHILDREN));
    ffmpeg_ladder(&hf, &source, &dir.join("ffmpeg"));
    let (ffmpeg, ffmpeg_cpu) = (t.elapsed(), cpu_seconds(libc::RUSAGE_CHILDREN) - cpu);

    let s = |d: Duration| d.as_secs_f64();
    let transcode = s(loud) + s(encode);
    println!(
        "loudness pass: {:.1} s ({:.1}x real time) — {:.1} LUFS → gain {:+.1} dB, limited: {}",
        s(loud),
        seconds as f64 / s(loud),
        n.before.map(|l| l.integrated_lufs).unwrap_or(f64::NAN),
        n.gain_db,
        n.limited
    );
    println!(
        "house encode:  {:.1} s ({:.2}x real time), {} frames, {encode_cpu:.1} s CPU",
        s(encode),
        seconds as f64 / s(encode),
        encoded.video_frames
    );
    println!(
        "with VMAF:     {:.1} s, so the gate costs {:.1} s (subsample {}), mean {:.1} min {:.1} p5 {:.1} over {} frames",
        s(gated),
        s(gate),
        subsample,
        score.mean,
        score.min,
        score.p5,
        score.frames
    );
    println!("ffmpeg CLI:    {:.1} s ({:.2}x real time), {ffmpeg_cpu:.1} s CPU", s(ffmpeg), seconds as f64 / s(ffmpeg));
    println!(
        "RESULT encode/ffmpeg = {:.2} wall, {:.2} CPU (goal ≤ 1.1); VMAF gate = {:.0} % of transcode (goal ≤ 25 %); loudness = {:.0} % of transcode; whole job {:.2}x real time",
        s(encode) / s(ffmpeg),
        encode_cpu / ffmpeg_cpu,
        100.0 * s(gate) / transcode,
        100.0 * s(loud) / transcode,
        seconds as f64 / (transcode + s(gate))
    );
}

/// ffmpeg with the house x264 settings: decode once, split, scale and pad each rung, x264 capped CRF, AAC once per
/// output as ffmpeg must.
fn ffmpeg_ladder(hf: &HouseFormat, source: &Path, out: &Path) {
    std::fs::create_dir_all(out).expect("ffmpeg out dir");
    let n = hf.rungs.len();
    let mut graph = format!("[0:v]fps={},split={n}", hf.fps);
    for i in 0..n {
        graph += &format!("[s{i}]");
    }
    for (i, r) in hf.rungs.iter().enumerate() {
        graph += &format!(
            ";[s{i}]scale={w}:{h}:force_original_aspect_ratio=decrease,pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p[v{i}]",
            w = r.width,
            h = r.height
        );
    }
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-y", "-i"]).arg(source).args(["-filter_complex", &graph]);
    let gop = hf.gop_frames().to_string();
    for (i, r) in hf.rungs.iter().enumerate() {
        let kbps = r.video_kbps;
        cmd.args(["-map", &format!("[v{i}]"), "-map", "0:a:0"]);
        cmd.args(["-c:v", "libx264", "-preset", &hf.x264_preset, "-profile:v", "high", "-crf", &CRF.to_string()]);
        cmd.args(["-maxrate", &format!("{kbps}k"), "-bufsize", &format!("{}k", kbps * VBV_BUFFER_MS / 1000)]);
        cmd.args([
            "-g",
            &gop,
            "-keyint_min",
            &gop,
            "-sc_threshold",
            "0",
            "-bf",
            "2",
            "-b_strategy",
            "0",
            "-flags",
            "+cgop",
        ]);
        cmd.args(["-c:a", "aac", "-b:a", &format!("{}k", hf.audio_kbps), "-ar", "48000", "-ac", "2"]);
        cmd.arg(out.join(format!("{}.mp4", r.name)));
    }
    let status = cmd.status().expect("ffmpeg");
    assert!(status.success(), "ffmpeg ladder failed");
}

/// CPU time (user + system) used so far by this process (`RUSAGE_SELF`) or its waited-for children
/// (`RUSAGE_CHILDREN`), in seconds: on a shared machine a steadier measure than wall time.
fn cpu_seconds(who: libc::c_int) -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` is valid writable memory for one rusage, which getrusage fills in.
    let rc = unsafe { libc::getrusage(who, usage.as_mut_ptr()) };
    assert_eq!(rc, 0, "getrusage");
    // SAFETY: getrusage succeeded, so the struct is initialised (and all-zero was valid to begin with).
    let usage = unsafe { usage.assume_init() };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}
