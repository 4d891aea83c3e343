//! `vvtvctl`: the operator's CLI. It talks HTTP to the daemon's control API and never opens the database.
//! Exit codes: 0 success, 1 the daemon refused or failed the request, 2 the daemon cannot be reached.

mod audience;
mod client;
mod ingest;
mod table;
mod why;

use clap::{Parser, Subcommand};
use client::{Answer, Client, Failure};
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;
use vvtv_api::broadcast::{EmergencyRequest, Message, SignRequest, SignedUrl, StreamingStatus};
use vvtv_api::curator::{Approved, DiscoverRequest, DiscoveryReport};
use vvtv_api::factory::{EmergencyFlag, IngestRequest, JobReport};
use vvtv_api::station::{AssetList, BusinessLogicValues, EventList, JobList, PlanList, QueueReport, StatusReport};
use vvtv_api::{Asset, AssetId, Job, JobStatus, Plan, PlanId, PlanStatus};

#[derive(Parser)]
#[command(name = "vvtvctl", version, about = "Drive a running VVTV station")]
struct Cli {
    /// Base URL of the daemon.
    #[arg(long, global = true, default_value = "http://127.0.0.1:8080", env = "VVTV_API")]
    api: String,
    /// Control API token (default: $VVTV_TOKEN, else ./var/control.token).
    #[arg(long, global = true, env = "VVTV_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print the daemon's JSON answer instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Version, uptime, every channel with what is on air, factory and curator state.
    Status,
    /// The schedule ahead.
    Queue {
        #[command(subcommand)]
        action: QueueAction,
    },
    /// Recent decisions the station made, with reasons.
    Events {
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Playout: what is on air, and emergency interruption.
    Streaming {
        #[command(subcommand)]
        action: StreamingAction,
    },
    /// The library: normalized assets.
    Assets {
        #[command(subcommand)]
        action: AssetsAction,
    },
    /// Queue a media file or URL for the factory (probe, normalize, quality gate) and follow it.
    Ingest {
        /// A local file (read by the daemon, so on its machine) or an http(s) URL.
        input: String,
        #[arg(long)]
        title: Option<String>,
        /// Higher runs first.
        #[arg(long, default_value_t = 0)]
        priority: i64,
        /// URL that gets a POST with the outcome when the job ends.
        #[arg(long)]
        webhook: Option<String>,
        /// Follow the job with a progress bar until it ends; exit 1 if it is rejected or fails.
        #[arg(long)]
        wait: bool,
    },
    /// Run the browser sources now and print what was planned and rejected, with reasons.
    Discover {
        /// Search query for sources with a search URL.
        #[arg(long)]
        query: Option<String>,
        #[arg(long, default_value_t = 10)]
        max_plans: u32,
    },
    /// Candidates found by the curator, with scores and reasons.
    Plans {
        #[command(subcommand)]
        action: PlansAction,
    },
    /// Ingest jobs and their progress.
    Jobs {
        #[command(subcommand)]
        action: JobsAction,
    },
    /// Print a viewer URL for a channel's stream (signed when the station's access.signed_urls is on).
    SignUrl {
        #[arg(long, default_value = "main")]
        channel: String,
        /// How long it stays valid: 90s, 30m, 6h, 2d (default: the station's access.default_ttl_seconds).
        #[arg(long, value_parser = parse_ttl)]
        ttl: Option<u64>,
    },
    /// Who watched: per airing (starts, peak and average viewers, average watch, share who left) and per asset.
    Audience {
        #[arg(long)]
        channel: Option<String>,
        /// How far back: 90m, 24h, 7d, …
        #[arg(long, default_value = "24h", value_name = "DURATION")]
        since: String,
    },
    /// Explain one schedule row in full: planned start, reason, and the pick (draw, score breakdown, masks, the
    /// shortlist with its keys, rules relaxed).
    Why {
        /// The row's id (`vvtvctl queue show` lists them).
        schedule_id: vvtv_api::ScheduleId,
    },
    /// Rules that can change at run time.
    BusinessLogic {
        #[command(subcommand)]
        action: BusinessLogicAction,
    },
}

#[derive(Subcommand)]
enum QueueAction {
    Show {
        #[arg(long)]
        channel: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

#[derive(Subcommand)]
enum AssetsAction {
    List {
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Put an asset in the emergency pool (on) or take it out (off).
    Emergency {
        id: AssetId,
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
}

#[derive(Subcommand)]
enum StreamingAction {
    /// On-air item and position, next items, seconds since the last segment, segments, gaps, restarts.
    Status {
        #[arg(long, default_value = "main")]
        channel: String,
    },
    /// Air N items from the emergency pool (or a slate showing the reason) from the next keyframe on.
    Emergency {
        #[arg(long, value_name = "N")]
        inject: u32,
        #[arg(long, value_name = "TEXT")]
        reason: String,
        #[arg(long, default_value = "main")]
        channel: String,
    },
}

#[derive(Subcommand)]
enum PlansAction {
    List {
        /// pending, approved, rejected, queued, done or failed.
        #[arg(long)]
        status: Option<PlanStatus>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Send a waiting plan to the factory.
    Approve { id: PlanId },
}

#[derive(Subcommand)]
enum JobsAction {
    List {
        /// queued, downloading, probing, normalizing, gating, ready, rejected or failed.
        #[arg(long)]
        status: Option<JobStatus>,
        #[arg(long, default_value_t = 0)]
        page: u32,
    },
    Show {
        id: vvtv_api::JobId,
    },
}

#[derive(Subcommand)]
enum BusinessLogicAction {
    Show,
    /// Set one or more KEY=VALUE pairs (validated together; nothing is stored if one is refused).
    Set {
        #[arg(required = true, value_name = "KEY=VALUE")]
        pairs: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let client = Client::new(&cli.api, cli.token.clone().or_else(client::token_from_default_file));
    match run(&cli, &client) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Unreachable(msg)) => {
            eprintln!("{msg}");
            ExitCode::from(2)
        }
        Err(Failure::Refused(msg)) => {
            eprintln!("vvtvctl: {msg}");
            ExitCode::from(1)
        }
    }
}

/// Prints an answer: the daemon's JSON with `--json`, else the table `human` makes of its typed value.
fn show<T>(cli: &Cli, answer: Answer<T>, human: impl FnOnce(&T)) -> Result<(), Failure> {
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&answer.json).unwrap_or_default());
    } else {
        human(&answer.value);
    }
    Ok(())
}

fn run(cli: &Cli, client: &Client) -> Result<(), Failure> {
    match &cli.command {
        Command::Status => show(cli, client.get("/api/v1/status")?, print_status),
        Command::Queue { action: QueueAction::Show { channel, limit } } => {
            let mut path = format!("/api/v1/queue?limit={limit}");
            if let Some(c) = channel {
                path.push_str(&format!("&channel={c}"));
            }
            show(cli, client.get(&path)?, print_queue)
        }
        Command::Events { limit } => show(cli, client.get(&format!("/api/v1/events?limit={limit}"))?, print_events),
        Command::Streaming { action: StreamingAction::Status { channel } } => {
            show(cli, client.get(&format!("/api/v1/channels/{channel}/streaming"))?, print_streaming)
        }
        Command::Streaming { action: StreamingAction::Emergency { inject, reason, channel } } => {
            let body = EmergencyRequest { inject: *inject, reason: reason.clone() };
            let answer: Answer<Message> = client.post(&format!("/api/v1/channels/{channel}/emergency"), &body)?;
            show(cli, answer, |m| println!("{}", m.message))
        }
        Command::Assets { action: AssetsAction::List { limit } } => {
            show(cli, client.get(&format!("/api/v1/assets?limit={limit}"))?, |list: &AssetList| {
                print_assets(&list.assets)
            })
        }
        Command::Assets { action: AssetsAction::Emergency { id, state } } => {
            let body = EmergencyFlag { emergency: state == "on" };
            let answer: Answer<Asset> = client.put(&format!("/api/v1/assets/{id}/emergency"), &body)?;
            show(cli, answer, |a| print_assets(std::slice::from_ref(a)))
        }
        Command::Ingest { input, title, priority, webhook, wait } => {
            let mut body = IngestRequest {
                title: title.clone(),
                priority: *priority,
                webhook: webhook.clone(),
                ..Default::default()
            };
            if input.starts_with("http://") || input.starts_with("https://") {
                body.url = Some(input.clone());
            } else {
                let path = std::path::absolute(input).map_err(|e| Failure::Refused(format!("{input}: {e}")))?;
                if let Err(e) = std::fs::metadata(&path) {
                    return Err(Failure::Refused(format!("{}: {e}", path.display())));
                }
                body.path = Some(path.to_string_lossy().into_owned());
            }
            let answer: Answer<JobReport> = client.post("/api/v1/ingest", &body)?;
            if *wait {
                return ingest::follow(client, answer.value.job.id, cli.json);
            }
            show(cli, answer, |r| {
                let id = r.job.id;
                println!("job {id} queued: {} (follow it with: vvtvctl jobs show {id})", r.job.input)
            })
        }
        Command::Discover { query, max_plans } => {
            let body = DiscoverRequest { query: query.clone(), max_plans: Some(*max_plans) };
            let answer: Answer<DiscoveryReport> = client.post_slow("/api/v1/discover", &body)?;
            let failed =
                !answer.value.errors.is_empty() && answer.value.planned.is_empty() && answer.value.rejected.is_empty();
            let errors = answer.value.errors.join("; ");
            show(cli, answer, print_discovery)?;
            if failed {
                return Err(Failure::Refused(format!("the discovery found nothing: {errors}")));
            }
            Ok(())
        }
        Command::Plans { action: PlansAction::List { status, limit } } => {
            let mut path = format!("/api/v1/plans?limit={limit}");
            if let Some(st) = status {
                path.push_str(&format!("&status={st}"));
            }
            show(cli, client.get(&path)?, |list: &PlanList| print_plans(&list.plans))
        }
        Command::Plans { action: PlansAction::Approve { id } } => {
            let answer: Answer<Approved> =
                client.post(&format!("/api/v1/plans/{id}/approve"), &serde_json::json!({}))?;
            show(cli, answer, |a| println!("plan {} approved: job {}", a.plan_id, a.job_id))
        }
        Command::Jobs { action: JobsAction::List { status, page } } => {
            let mut path = format!("/api/v1/jobs?page={page}");
            if let Some(st) = status {
                path.push_str(&format!("&status={st}"));
            }
            show(cli, client.get(&path)?, |list: &JobList| print_jobs(&list.jobs))
        }
        Command::Jobs { action: JobsAction::Show { id } } => {
            show(cli, client.get(&format!("/api/v1/jobs/{id}"))?, ingest::print_job)
        }
        Command::SignUrl { channel, ttl } => {
            let body = SignRequest { ttl_seconds: *ttl };
            let answer: Answer<SignedUrl> = client.post(&format!("/api/v1/channels/{channel}/sign-url"), &body)?;
            show(cli, answer, |u| println!("{}{}", cli.api.trim_end_matches('/'), u.path))
        }
        Command::Audience { channel, since } => {
            vvtv_api::audience::parse_span(since).map_err(|e| Failure::Refused(format!("--since: {e}")))?;
            let mut path = format!("/api/v1/audience?since={since}");
            if let Some(c) = channel {
                path.push_str(&format!("&channel={c}"));
            }
            show(cli, client.get(&path)?, audience::print)
        }
        Command::Why { schedule_id } => show(cli, client.get(&format!("/api/v1/schedule/{schedule_id}"))?, why::print),
        Command::BusinessLogic { action: BusinessLogicAction::Show } => {
            show(cli, client.get("/api/v1/business-logic")?, print_rules)
        }
        Command::BusinessLogic { action: BusinessLogicAction::Set { pairs } } => {
            let mut body = BTreeMap::new();
            for pair in pairs {
                let Some((k, v)) = pair.split_once('=') else {
                    return Err(Failure::Refused(format!("{pair:?} is not KEY=VALUE")));
                };
                body.insert(k.trim().to_string(), serde_json::Value::String(v.trim().to_string()));
            }
            show(cli, client.put("/api/v1/business-logic", &body)?, print_rules)
        }
    }
}

/// Seconds from `90s`, `30m`, `6h`, `2d` or a plain number of seconds.
fn parse_ttl(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration like 90s, 30m, 6h or 2d"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => return Err(format!("{other:?} is not a unit: use s, m, h or d")),
    };
    Ok(n * scale)
}

/// A cell for an optional value: "-" when there is none.
fn cell(v: Option<impl ToString>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

fn seconds(d: Duration) -> String {
    format!("{:.0}s", d.as_secs_f64())
}

fn print_status(s: &StatusReport) {
    println!("VVTV {}  up {}s", s.version, s.uptime_seconds);
    let rows: Vec<Vec<String>> = s
        .channels
        .iter()
        .map(|c| {
            let now = c
                .on_air
                .as_ref()
                .map(|a| format!("{} ({:.0}/{:.0}s)", a.title, a.position.as_secs_f64(), a.duration.as_secs_f64()));
            let holder = c.holder.as_ref().map(|h| format!("{h} (epoch {})", c.epoch.unwrap_or_default()));
            vec![
                c.id.to_string(),
                c.state.to_string(),
                cell(now),
                format!("{:.1}", c.queue_minutes),
                c.viewers.to_string(),
                cell(holder),
            ]
        })
        .collect();
    table::print(&["CHANNEL", "STATE", "ON AIR", "QUEUE MIN", "VIEWERS", "PLAYED BY"], &rows);
    if let Some(n) = &s.node {
        let peers: Vec<String> = n.nodes.iter().map(|p| format!("{} [{}]", p.id, p.roles.join(","))).collect();
        println!("node: {} ({}, media in {})  nodes: {}", n.id, n.database, n.objects, peers.join("  "));
    }
    if let Some(f) = &s.factory {
        let jobs: Vec<String> = f.jobs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let state = serde_json::to_value(f.state).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        let jobs = if jobs.is_empty() { String::new() } else { format!("  jobs: {}", jobs.join(" ")) };
        println!("factory: {state}{jobs}");
    }
    if let Some(c) = &s.curator {
        let state = serde_json::to_value(c.state).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        let source = c.source.as_deref().map(|s| format!(" {s}")).unwrap_or_default();
        println!("curator: {state}{source}  sources: {}  llm breaker: {}", c.sources, c.breaker);
    }
}

fn print_queue(q: &QueueReport) {
    for c in &q.channels {
        println!("channel {}: {:.1} min queued", c.id, c.queue_minutes);
        let rows: Vec<Vec<String>> = c
            .items
            .iter()
            .map(|i| {
                vec![
                    i.id.to_string(),
                    i.status.to_string(),
                    cell(i.planned_start.map(|t| why::local(t, c.timezone.as_deref()))),
                    i.asset_id.to_string(),
                    i.title.clone(),
                    seconds(i.remaining()),
                    i.reason.clone(),
                ]
            })
            .collect();
        table::print(&["ID", "STATUS", "PLANNED START", "ASSET", "TITLE", "LENGTH", "WHY"], &rows);
    }
}

fn print_events(e: &EventList) {
    let rows: Vec<Vec<String>> = e
        .events
        .iter()
        .map(|ev| {
            vec![
                ev.at.format("%H:%M:%S").to_string(),
                ev.actor.to_string(),
                cell(ev.channel_id.as_ref()),
                ev.kind.to_string(),
                ev.message.clone(),
            ]
        })
        .collect();
    table::print(&["AT (UTC)", "ACTOR", "CHANNEL", "KIND", "MESSAGE"], &rows);
}

fn print_streaming(s: &StreamingStatus) {
    let detail = s.detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default();
    println!("channel {}: {}{detail}", s.channel, s.state);
    match &s.on_air {
        None => println!("on air: -"),
        Some(a) => println!(
            "on air: {} [{}] {:.1}/{:.1} s",
            a.title,
            a.kind,
            a.position.as_secs_f64(),
            a.duration.as_secs_f64()
        ),
    }
    let since = s.since_last_segment.map(|d| format!("{:.1} s", d.as_secs_f64())).unwrap_or_else(|| "-".into());
    println!(
        "last segment: {since} ago  segments written: {}  gaps detected: {}  restarts: {}  items aired: {}",
        s.segments_written, s.gaps_detected, s.restarts, s.items_aired
    );
    let rows: Vec<Vec<String>> =
        s.next.iter().map(|i| vec![i.id.to_string(), i.title.clone(), seconds(i.duration)]).collect();
    println!("next:");
    table::print(&["ID", "TITLE", "LENGTH"], &rows);
}

fn print_assets(list: &[Asset]) {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|a| {
            vec![
                a.id.to_string(),
                a.kind.to_string(),
                a.status.to_string(),
                if a.emergency { "yes".into() } else { String::new() },
                seconds(a.duration),
                a.title.clone(),
            ]
        })
        .collect();
    table::print(&["ID", "KIND", "STATUS", "EMERGENCY", "LENGTH", "TITLE"], &rows);
}

fn print_jobs(list: &[Job]) {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|j| {
            vec![
                j.id.to_string(),
                j.status.to_string(),
                format!("{:.0}%", j.progress * 100.0),
                j.origin.to_string(),
                cell(j.asset_id),
                j.input.to_string(),
                cell(j.reason.as_ref()),
            ]
        })
        .collect();
    table::print(&["ID", "STATUS", "PROGRESS", "FROM", "ASSET", "INPUT", "REASON"], &rows);
}

fn print_discovery(r: &DiscoveryReport) {
    println!("planned:");
    let planned: Vec<Vec<String>> = r
        .planned
        .iter()
        .map(|p| {
            vec![
                p.plan_id.to_string(),
                format!("{:.2}", p.score),
                p.scorer.clone(),
                p.status.to_string(),
                p.title.clone(),
                p.media_url.clone(),
            ]
        })
        .collect();
    table::print(&["PLAN", "SCORE", "SCORER", "STATUS", "TITLE", "MEDIA"], &planned);
    println!("rejected:");
    let rejected: Vec<Vec<String>> = r.rejected.iter().map(|x| vec![x.url.clone(), x.reason.clone()]).collect();
    table::print(&["URL", "REASON"], &rejected);
    if !r.skipped.is_empty() {
        println!("pages not visited:");
        let skipped: Vec<Vec<String>> = r.skipped.iter().map(|x| vec![x.url.clone(), x.reason.clone()]).collect();
        table::print(&["URL", "REASON"], &skipped);
    }
    for e in &r.errors {
        println!("error: {e}");
    }
}

fn print_plans(list: &[Plan]) {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|p| {
            vec![
                p.id.to_string(),
                p.status.to_string(),
                cell(p.score.map(|s| format!("{s:.2}"))),
                cell(p.scorer.as_ref()),
                cell(p.license.as_ref()),
                p.title.clone(),
                p.reasons.clone(),
            ]
        })
        .collect();
    table::print(&["ID", "STATUS", "SCORE", "SCORER", "LICENSE", "TITLE", "REASONS"], &rows);
}

fn print_rules(r: &BusinessLogicValues) {
    let rows: Vec<Vec<String>> =
        r.0.iter()
            .map(|(k, v)| {
                let v = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                vec![k.clone(), v]
            })
            .collect();
    table::print(&["KEY", "VALUE"], &rows);
}
