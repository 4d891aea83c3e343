//! `cargo bench --profile dev --bench loudness`: what the loudness pass costs, in CPU time.
//!
//! Ten minutes of the tests' synthetic programme — once with inter-sample peaks that keep the limiter working (a
//! worst case, not music), once without peaks, so one linear gain does — are measured, normalized to the tests'
//! settings and, the peaky one wrapped in AAC, extracted again. Each figure is how many times real time one CPU runs
//! the step: CPU time, because wall time is meaningless on a shared machine. Fails if the limited normalize runs
//! under 60× real time: an hour must normalize in under a minute of CPU.

use std::time::Duration;
use vvtv::media::loudness::test_signal::{programme, write_pcm, Peaks};
use vvtv::media::loudness::{extract_pcm, measure_pcm, normalize_pcm};
use vvtv_testkit::check::{Context, Result};
use vvtv_testkit::media::aac_in_mp4;

/// The loudness target, true-peak ceiling and gain cap the loudness tests normalize with.
const TARGET: f64 = -14.0;
const CEILING: f64 = -1.0;
const MAX_GAIN: f64 = 30.0;

fn main() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let seconds = 600.0;
    let speed = |cpu: Duration| seconds / cpu.as_secs_f64();
    let long = dir.path().join("long.pcm");
    write_pcm(&long, &programme(seconds, 0.1, Peaks::Synthetic))?;
    let linear = dir.path().join("linear.pcm");
    write_pcm(&linear, &programme(seconds, 0.1, Peaks::None))?;

    let started = cpu_time()?;
    measure_pcm(&long)?;
    let measure = speed(cpu_time()? - started);
    let started = cpu_time()?;
    let plain = normalize_pcm(&linear, &dir.path().join("linear.norm.pcm"), TARGET, CEILING, MAX_GAIN)?;
    let normalize_linear = speed(cpu_time()? - started);
    let started = cpu_time()?;
    let limited = normalize_pcm(&long, &dir.path().join("long.norm.pcm"), TARGET, CEILING, MAX_GAIN)?;
    let normalize_limited = speed(cpu_time()? - started);
    // GStreamer loads its plugin registry once per process: done before the clock starts, so the extract does not
    // pay for it.
    gst::init()?;
    let mp4 = dir.path().join("long.mp4");
    // Wrapped into AAC in MP4 the way the house encoder will read it (the tests' pipeline).
    aac_in_mp4(&long, &mp4).with_context(|| format!("{}: could not encode it to AAC", long.display()))?;
    let started = cpu_time()?;
    extract_pcm(&mp4, &dir.path().join("long.extracted.pcm"), &|_| {})?;
    let extract = speed(cpu_time()? - started);
    println!(
        "10 min, x real time per CPU: measure {measure:.0}, normalize linear {normalize_linear:.0} ({plain:?}), \
         normalize limited {normalize_limited:.0} ({limited:?}), extract AAC {extract:.0}"
    );
    assert!(!plain.limited && limited.limited);
    assert!(normalize_limited > 60.0, "an hour must normalize in under a minute of CPU");
    Ok(())
}

/// CPU time this process has used (user + system), from /proc: wall time is meaningless on a shared machine.
fn cpu_time() -> Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let fields: Vec<&str> = stat.rsplit_once(')').context("stat")?.1.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(Duration::from_millis(ticks * 10))
}
