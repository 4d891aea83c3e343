//! `cargo bench --profile dev --bench simulate`: how fast `vvtv simulate` plans a week, in CPU time.
//!
//! A week of the example grid (`config/simulation.toml`: dayparts, a date override, hard and soft slots, the
//! separation rules on) on generated libraries of 300, 3 000 and 20 000 assets, through the same entry point as the
//! command. CPU time, because wall time is meaningless on a shared machine. Fails if a week of 3 000 assets takes
//! more than 10 s of CPU: the simulation must take seconds for a week.

use std::time::Duration;
use vvtv::config::Config;
use vvtv::planner::simulate::{run, LibrarySource, Options};
use vvtv_testkit::check::{Context, Result};

fn main() -> Result<()> {
    let config = Config::load(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config/simulation.toml")))?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut three_thousand = Duration::ZERO;
    for n in [300usize, 3_000, 20_000] {
        let options =
            Options { days: 7, seed: Some(1), library: LibrarySource::Generated(n), channel: None, start: None };
        let started = cpu_time()?;
        let report = runtime.block_on(run(&config, &options))?;
        let cpu = cpu_time()? - started;
        println!(
            "{n:>6} assets: a week in {:.2} s CPU ({} rows, {} rounds, {:.2} ms CPU per round)",
            cpu.as_secs_f64(),
            report.counts.rows,
            report.counts.rounds,
            cpu.as_secs_f64() * 1000.0 / report.counts.rounds.max(1) as f64
        );
        assert_eq!(report.longest_gap_seconds, 0.0);
        if n == 3_000 {
            three_thousand = cpu;
        }
    }
    assert!(three_thousand < Duration::from_secs(10), "a week of 3 000 assets took {three_thousand:?} of CPU");
    Ok(())
}

/// CPU time this process has used (user + system), from /proc: wall time is meaningless on a shared machine.
fn cpu_time() -> Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let fields: Vec<&str> = stat.rsplit_once(')').context("stat")?.1.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(Duration::from_millis(ticks * 10))
}
