//! `vvtvctl ingest --wait`: follows a job until it ends, with a progress bar on a terminal (or a line per stage and
//! every 10 % otherwise), and prints the outcome.

use crate::client::{Client, Failure};
use crate::text;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::io::IsTerminal;
use std::time::Duration;

const POLL: Duration = Duration::from_millis(500);

/// Polls the job until it is ready (Ok) or rejected/failed (Refused with the reason).
pub fn follow(client: &Client, job: &Value, json: bool) -> Result<(), Failure> {
    let id = job["id"].as_i64().ok_or_else(|| Failure::Refused("the daemon answered without a job id".into()))?;
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
    let mut last_line = (String::new(), -1i64, None::<String>);
    let job = loop {
        let job = client.get(&format!("/api/v1/jobs/{id}"))?;
        let status = text(&job["status"]);
        let progress = job["progress"].as_f64().unwrap_or(0.0);
        let speed = job["speed"].as_f64().map(|s| format!(" {s:.2}x real time")).unwrap_or_default();
        let retry = (status == "queued" && job["attempts"].as_i64().unwrap_or(0) > 0)
            .then(|| format!(" (retrying after: {})", text(&job["reason"])));
        let message = format!("{status}{speed}{}", retry.clone().unwrap_or_default());
        match &bar {
            Some(bar) => {
                bar.set_message(message);
                bar.set_position((progress * 1000.0) as u64);
            }
            None => {
                let decile = (progress * 10.0).floor() as i64;
                if (status.as_str(), decile, &retry) != (last_line.0.as_str(), last_line.1, &last_line.2) {
                    eprintln!("job {id}: {message} {:.0}%", progress * 100.0);
                    last_line = (status.clone(), decile, retry);
                }
            }
        }
        if matches!(status.as_str(), "ready" | "rejected" | "failed") {
            break job;
        }
        std::thread::sleep(POLL);
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&job).unwrap_or_default());
    } else {
        print_job(&job);
    }
    match text(&job["status"]).as_str() {
        "ready" => Ok(()),
        other => Err(Failure::Refused(format!("job {id} {other}: {}", text(&job["reason"])))),
    }
}

/// A job and, when ready, its asset's figures.
pub fn print_job(job: &Value) {
    println!("job {}: {}  ({})", text(&job["id"]), text(&job["status"]), text(&job["input"]));
    if !job["reason"].is_null() {
        println!("  reason: {}", text(&job["reason"]));
    }
    let a = &job["asset"];
    if a.is_null() {
        return;
    }
    let num = |v: &Value, digits: usize| v.as_f64().map(|x| format!("{x:.digits$}")).unwrap_or_else(|| "-".into());
    println!(
        "  asset {}: {}  {:.1} s",
        text(&a["id"]),
        text(&a["title"]),
        a["duration_ms"].as_f64().unwrap_or(0.0) / 1000.0
    );
    println!(
        "  loudness {} -> {} LUFS  LRA {} LU  true peak {} dBTP",
        num(&a["loudness_in_lufs"], 1),
        num(&a["loudness_out_lufs"], 1),
        num(&a["lra_lu"], 1),
        num(&a["true_peak_dbtp"], 1)
    );
    println!(
        "  VMAF mean {} min {} p5 {}",
        num(&a["vmaf"]["mean"], 1),
        num(&a["vmaf"]["min"], 1),
        num(&a["vmaf"]["p5"], 1)
    );
    for r in a["renditions"].as_array().into_iter().flatten() {
        println!(
            "  {:>6} {}x{} {} kbit/s  {}",
            text(&r["rung"]),
            text(&r["width"]),
            text(&r["height"]),
            text(&r["video_kbps"]),
            text(&r["path"])
        );
    }
    println!("  poster: {}", text(&a["poster"]));
}
