//! `vvtvctl ingest --wait`: follows a job until it ends, with a progress bar on a terminal (or a line per stage and
//! every 10 % otherwise), and prints the outcome.

use crate::client::{Answer, Client, Failure};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;
use vvtv_api::factory::JobReport;
use vvtv_api::{JobId, JobStatus};

const POLL: Duration = Duration::from_millis(500);

/// Polls the job until it is ready (Ok) or rejected/failed (Refused with the reason).
pub fn follow(client: &Client, id: JobId, json: bool) -> Result<(), Failure> {
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(1000);
        bar.set_style(
            ProgressStyle::with_template("job {prefix} {wide_msg} [{bar:30}] {percent:>3}%")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(id.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });
    let mut last_line: Option<(JobStatus, i64, Option<String>)> = None;
    let answer: Answer<JobReport> = loop {
        let answer: Answer<JobReport> = client.get(&format!("/api/v1/jobs/{id}"))?;
        let job = &answer.value.job;
        let speed = job.speed.map(|s| format!(" {s:.2}x real time")).unwrap_or_default();
        let retry = (job.status == JobStatus::Queued && job.attempts > 0)
            .then(|| format!(" (retrying after: {})", job.reason.as_deref().unwrap_or("-")));
        let message = format!("{}{speed}{}", job.status, retry.clone().unwrap_or_default());
        match &bar {
            Some(bar) => {
                bar.set_message(message);
                bar.set_position((job.progress * 1000.0) as u64);
            }
            None => {
                let line = (job.status, (job.progress * 10.0).floor() as i64, retry);
                if last_line.as_ref() != Some(&line) {
                    eprintln!("job {id}: {message} {:.0}%", job.progress * 100.0);
                    last_line = Some(line);
                }
            }
        }
        if job.status.is_final() {
            break answer;
        }
        std::thread::sleep(POLL);
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&answer.json).unwrap_or_default());
    } else {
        print_job(&answer.value);
    }
    let job = &answer.value.job;
    match job.status {
        JobStatus::Ready => Ok(()),
        other => Err(Failure::Refused(format!("job {id} {other}: {}", job.reason.as_deref().unwrap_or("-")))),
    }
}

/// A job and, when ready, its asset's figures.
pub fn print_job(report: &JobReport) {
    let job = &report.job;
    println!("job {}: {}  ({})", job.id, job.status, job.input);
    if let Some(reason) = &job.reason {
        println!("  reason: {reason}");
    }
    let Some(a) = &report.asset else { return };
    let num = |v: Option<f64>| v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into());
    println!("  asset {}: {}  {:.1} s", a.id, a.title, a.duration.as_secs_f64());
    println!(
        "  loudness {} -> {} LUFS  LRA {} LU  true peak {} dBTP",
        num(a.loudness_in_lufs),
        num(a.loudness_out_lufs),
        num(a.lra_lu),
        num(a.true_peak_dbtp)
    );
    println!("  VMAF mean {} min {} p5 {}", num(a.vmaf.mean), num(a.vmaf.min), num(a.vmaf.p5));
    for r in &a.renditions {
        println!("  {:>6} {}x{} {} kbit/s  {}", r.rung, r.width, r.height, r.video_kbps, r.path.display());
    }
    println!("  poster: {}", a.poster);
}
