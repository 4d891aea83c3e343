//! `vvtv`: parse arguments, load the config, start the station, wait for a signal — nothing else.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use vvtv::config::{Config, LogFormat};

#[derive(Parser)]
#[command(name = "vvtv", version, about = "VVTV: an autonomous 24/7 TV station")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the station (with no --config: the embedded default demo station).
    Run {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Check a config file and say what is wrong with it.
    CheckConfig { file: PathBuf },
    /// Run the planner alone at an accelerated clock (no media, no daemon) and report how it programs a channel.
    Simulate(SimulateArgs),
}

#[derive(clap::Args)]
struct SimulateArgs {
    /// Days to plan.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=366))]
    days: u32,
    /// The schedule seed (schedule.seed), also the generated library's; default: the config's.
    #[arg(long)]
    seed: Option<u64>,
    /// A generated library of N assets (the default, with 300).
    #[arg(long, value_name = "N", conflicts_with = "from_db")]
    library: Option<usize>,
    /// The ready assets (and stored rules) of a station's database, opened read-only.
    #[arg(long, value_name = "FILE")]
    from_db: Option<PathBuf>,
    /// The station's config (default: the embedded demo station).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// The channel to plan (default: the config's first).
    #[arg(long)]
    channel: Option<String>,
    /// When to start: RFC 3339, or a date (local midnight); default: Monday 2027-01-04 for a generated library, the
    /// coming Monday for a database's.
    #[arg(long)]
    start: Option<String>,
    /// Print the report as JSON, with every row.
    #[arg(long)]
    json: bool,
}

/// Actors get this long to record in-flight work; the process exits within 10 s of the signal.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(8);

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => match Config::load(&file) {
            Ok(_) => {
                println!("{}: ok", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                ExitCode::FAILURE
            }
        },
        Command::Simulate(args) => match simulate(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("vvtv simulate: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Run { config } => {
            let config = match load(config.as_deref()) {
                Ok(config) => config,
                Err(e) => {
                    eprintln!("vvtv: {e:#}");
                    return ExitCode::FAILURE;
                }
            };
            init_tracing(config.log.format);
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("vvtv: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let result = runtime.block_on(run(config));
            // An encode still running on a blocking thread (slate, demo clip) is abandoned, not awaited: it writes
            // aside and renames, so nothing half-written is left for the next start to trust.
            runtime.shutdown_timeout(Duration::from_millis(500));
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("vvtv: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// The config file, or the embedded default demo station without one.
fn load(path: Option<&Path>) -> anyhow::Result<Config> {
    match path {
        Some(path) => Config::load(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()).context("bad config")),
        None => Ok(Config::default()),
    }
}

/// `vvtv simulate`: load, simulate, print.
fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    use vvtv::planner::simulate::{self, LibrarySource, Options};
    let config = load(args.config.as_deref())?;
    let library = match args.from_db {
        Some(path) => LibrarySource::Database(path),
        None => LibrarySource::Generated(args.library.unwrap_or(300)),
    };
    let options = Options { days: args.days, seed: args.seed, library, channel: args.channel, start: args.start };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("runtime")?;
    // Its message names the option and the reason, with the database's own error in it: printed once.
    let report = runtime.block_on(simulate::run(&config, &options)).map_err(|e| anyhow::anyhow!("{e}"))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(())
}

async fn run(config: Config) -> anyhow::Result<()> {
    // Installed before anything starts: a SIGTERM that arrives during start-up stops the station cleanly too.
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("SIGTERM handler")?;
    let running = vvtv::station::start(config).await?;
    tracing::info!("listening on http://{}/", running.local_addr);
    for channel in &running.channels {
        tracing::info!("channel {channel}: watch http://{}/hls/{channel}/live.m3u8", running.local_addr);
    }
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    spawn_watchdog();

    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping"),
    }
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    running.shutdown(SHUTDOWN_LIMIT).await;
    Ok(())
}

/// Under systemd with WatchdogSec=, ping at half the interval so a hung runtime gets the service restarted.
fn spawn_watchdog() {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return;
    }
    let period = Duration::from_micros(usec / 2);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        loop {
            tick.tick().await;
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
        }
    });
}

/// Logs to stdout (the journal under systemd): colour only on a terminal, JSON lines when the config asks for them.
fn init_tracing(format: LogFormat) {
    let spec = std::env::var("VVTV_LOG").unwrap_or_else(|_| "info,sqlx=warn".to_owned());
    let mut filter = tracing_subscriber::EnvFilter::try_new(&spec)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    // The CDP client warns about every browser event it has no type for (a warning per page, nothing wrong);
    // unless asked for, only its errors are shown.
    if !spec.contains("chromiumoxide") {
        if let Ok(quiet) = "chromiumoxide::conn=error".parse() {
            filter = filter.add_directive(quiet);
        }
    }
    let ansi = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).init(),
    }
}
