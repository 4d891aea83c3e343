//! `vvtvctl`: the operator's CLI. It talks HTTP to the daemon's control API and never opens the database.
//! Exit codes: 0 success, 1 the daemon refused or failed the request, 2 the daemon cannot be reached.

mod client;
mod ingest;
mod table;

use clap::{Parser, Subcommand};
use client::{Client, Failure};
use serde_json::Value;
use std::process::ExitCode;

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
        id: i64,
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
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Send a waiting plan to the factory.
    Approve { id: i64 },
}

#[derive(Subcommand)]
enum JobsAction {
    List {
        /// queued, downloading, probing, normalizing, gating, ready, rejected or failed.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 0)]
        page: u32,
    },
    Show {
        id: i64,
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

fn run(cli: &Cli, client: &Client) -> Result<(), Failure> {
    let answer = match &cli.command {
        Command::Status => client.get("/api/v1/status")?,
        Command::Queue { action: QueueAction::Show { channel, limit } } => {
            let mut path = format!("/api/v1/queue?limit={limit}");
            if let Some(c) = channel {
                path.push_str(&format!("&channel={c}"));
            }
            client.get(&path)?
        }
        Command::Events { limit } => client.get(&format!("/api/v1/events?limit={limit}"))?,
        Command::Streaming { action: StreamingAction::Status { channel } } => {
            client.get(&format!("/api/v1/channels/{channel}/streaming"))?
        }
        Command::Streaming { action: StreamingAction::Emergency { inject, reason, channel } } => client.post(
            &format!("/api/v1/channels/{channel}/emergency"),
            &serde_json::json!({ "inject": inject, "reason": reason }),
        )?,
        Command::Assets { action: AssetsAction::List { limit } } => {
            client.get(&format!("/api/v1/assets?limit={limit}"))?
        }
        Command::Assets { action: AssetsAction::Emergency { id, state } } => {
            client.put(&format!("/api/v1/assets/{id}/emergency"), &serde_json::json!({ "emergency": state == "on" }))?
        }
        Command::Ingest { input, title, priority, webhook, wait } => {
            let mut body = serde_json::json!({ "priority": priority, "title": title, "webhook": webhook });
            if input.starts_with("http://") || input.starts_with("https://") {
                body["url"] = Value::String(input.clone());
            } else {
                let path = std::path::absolute(input).map_err(|e| Failure::Refused(format!("{input}: {e}")))?;
                if let Err(e) = std::fs::metadata(&path) {
                    return Err(Failure::Refused(format!("{}: {e}", path.display())));
                }
                body["path"] = Value::String(path.to_string_lossy().into_owned());
            }
            let job = client.post("/api/v1/ingest", &body)?;
            if *wait {
                return ingest::follow(client, &job, cli.json);
            }
            job
        }
        Command::Discover { query, max_plans } => {
            client.post_slow("/api/v1/discover", &serde_json::json!({ "query": query, "max_plans": max_plans }))?
        }
        Command::Plans { action: PlansAction::List { status, limit } } => {
            let mut path = format!("/api/v1/plans?limit={limit}");
            if let Some(st) = status {
                path.push_str(&format!("&status={st}"));
            }
            client.get(&path)?
        }
        Command::Plans { action: PlansAction::Approve { id } } => {
            client.post(&format!("/api/v1/plans/{id}/approve"), &serde_json::json!({}))?
        }
        Command::Jobs { action: JobsAction::List { status, page } } => {
            let mut path = format!("/api/v1/jobs?page={page}");
            if let Some(st) = status {
                path.push_str(&format!("&status={st}"));
            }
            client.get(&path)?
        }
        Command::Jobs { action: JobsAction::Show { id } } => client.get(&format!("/api/v1/jobs/{id}"))?,
        Command::BusinessLogic { action: BusinessLogicAction::Show } => client.get("/api/v1/business-logic")?,
        Command::BusinessLogic { action: BusinessLogicAction::Set { pairs } } => {
            let mut body = serde_json::Map::new();
            for pair in pairs {
                let Some((k, v)) = pair.split_once('=') else {
                    return Err(Failure::Refused(format!("{pair:?} is not KEY=VALUE")));
                };
                body.insert(k.trim().to_string(), Value::String(v.trim().to_string()));
            }
            client.put("/api/v1/business-logic", &Value::Object(body))?
        }
    };
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&answer).unwrap_or_default());
        return Ok(());
    }
    match &cli.command {
        Command::Status => print_status(&answer),
        Command::Queue { .. } => print_queue(&answer),
        Command::Events { .. } => print_events(&answer),
        Command::BusinessLogic { .. } => print_rules(&answer),
        Command::Streaming { action: StreamingAction::Status { .. } } => print_streaming(&answer),
        Command::Assets { action: AssetsAction::List { .. } } => print_assets(&answer["assets"]),
        Command::Assets { action: AssetsAction::Emergency { .. } } => print_assets(&Value::Array(vec![answer.clone()])),
        Command::Streaming { action: StreamingAction::Emergency { .. } } => println!("{}", text(&answer["message"])),
        Command::Ingest { .. } => {
            println!(
                "job {} queued: {} (follow it with: vvtvctl jobs show {})",
                text(&answer["id"]),
                text(&answer["input"]),
                text(&answer["id"])
            )
        }
        Command::Jobs { action: JobsAction::List { .. } } => print_jobs(&answer["jobs"]),
        Command::Discover { .. } => print_discovery(&answer),
        Command::Plans { action: PlansAction::List { .. } } => print_plans(&answer["plans"]),
        Command::Plans { action: PlansAction::Approve { .. } } => {
            println!("plan {} approved: job {}", text(&answer["plan_id"]), text(&answer["job_id"]))
        }
        Command::Jobs { action: JobsAction::Show { .. } } => ingest::print_job(&answer),
    }
    Ok(())
}

/// One table row per element of a JSON array (none when it is missing).
fn rows(list: &Value, row: impl Fn(&Value) -> Vec<String>) -> Vec<Vec<String>> {
    list.as_array().into_iter().flatten().map(row).collect()
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn print_status(s: &Value) {
    println!("VVTV {}  up {}s", text(&s["version"]), text(&s["uptime_seconds"]));
    let rows: Vec<Vec<String>> = rows(&s["channels"], |c| {
        let on_air = &c["on_air"];
        let now = if on_air.is_null() {
            "-".to_string()
        } else {
            format!(
                "{} ({:.0}/{:.0}s)",
                text(&on_air["title"]),
                on_air["position_seconds"].as_f64().unwrap_or(0.0),
                on_air["duration_seconds"].as_f64().unwrap_or(0.0)
            )
        };
        vec![text(&c["id"]), text(&c["state"]), now, format!("{:.1}", c["queue_minutes"].as_f64().unwrap_or(0.0))]
    });
    table::print(&["CHANNEL", "STATE", "ON AIR", "QUEUE MIN"], &rows);
    let f = &s["factory"];
    let jobs = f["jobs"].as_object().map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "));
    println!(
        "factory: {}{}",
        text(&f["state"]),
        jobs.filter(|j| !j.is_empty()).map(|j| format!("  jobs: {j}")).unwrap_or_default()
    );
    let c = &s["curator"];
    println!("curator: {}  sources: {}  llm breaker: {}", text(&c["state"]), text(&c["sources"]), text(&c["breaker"]));
}

fn print_queue(q: &Value) {
    for c in q["channels"].as_array().into_iter().flatten() {
        println!("channel {}: {:.1} min queued", text(&c["id"]), c["queue_minutes"].as_f64().unwrap_or(0.0));
        let rows: Vec<Vec<String>> = rows(&c["items"], |i| {
            vec![
                text(&i["id"]),
                text(&i["status"]),
                text(&i["asset_id"]),
                text(&i["title"]),
                format!("{:.0}s", i["duration_ms"].as_f64().unwrap_or(0.0) / 1000.0),
                text(&i["reason"]),
            ]
        });
        table::print(&["ID", "STATUS", "ASSET", "TITLE", "LENGTH", "WHY"], &rows);
    }
}

fn print_events(e: &Value) {
    let rows: Vec<Vec<String>> = rows(&e["events"], |ev| {
        let at = ev["at_ms"].as_i64().unwrap_or(0);
        vec![format_ms(at), text(&ev["actor"]), text(&ev["channel_id"]), text(&ev["kind"]), text(&ev["message"])]
    });
    table::print(&["AT (UTC)", "ACTOR", "CHANNEL", "KIND", "MESSAGE"], &rows);
}

fn print_streaming(s: &Value) {
    println!("channel {}: {}", text(&s["channel"]), text(&s["state"]));
    let on_air = &s["on_air"];
    if on_air.is_null() {
        println!("on air: -");
    } else {
        println!(
            "on air: {} [{}] {:.1}/{:.1} s",
            text(&on_air["title"]),
            text(&on_air["kind"]),
            on_air["position_seconds"].as_f64().unwrap_or(0.0),
            on_air["duration_seconds"].as_f64().unwrap_or(0.0)
        );
    }
    let since = s["seconds_since_last_segment"].as_f64().map(|v| format!("{v:.1} s")).unwrap_or_else(|| "-".into());
    println!(
        "last segment: {since} ago  segments written: {}  gaps detected: {}  restarts: {}  items aired: {}",
        text(&s["segments_written"]),
        text(&s["gaps_detected"]),
        text(&s["restarts"]),
        text(&s["items_aired"])
    );
    let rows: Vec<Vec<String>> = rows(&s["next"], |i| {
        vec![text(&i["id"]), text(&i["title"]), format!("{:.0}s", i["duration_ms"].as_f64().unwrap_or(0.0) / 1000.0)]
    });
    println!("next:");
    table::print(&["ID", "TITLE", "LENGTH"], &rows);
}

fn print_assets(list: &Value) {
    let rows: Vec<Vec<String>> = rows(list, |a| {
        vec![
            text(&a["id"]),
            text(&a["kind"]),
            text(&a["status"]),
            if a["emergency"].as_bool().unwrap_or(false) { "yes".into() } else { "".into() },
            format!("{:.0}s", a["duration_ms"].as_f64().unwrap_or(0.0) / 1000.0),
            text(&a["title"]),
        ]
    });
    table::print(&["ID", "KIND", "STATUS", "EMERGENCY", "LENGTH", "TITLE"], &rows);
}

fn print_jobs(list: &Value) {
    let rows: Vec<Vec<String>> = rows(list, |j| {
        vec![
            text(&j["id"]),
            text(&j["status"]),
            format!("{:.0}%", j["progress"].as_f64().unwrap_or(0.0) * 100.0),
            text(&j["origin"]),
            text(&j["asset_id"]),
            text(&j["input"]),
            text(&j["reason"]),
        ]
    });
    table::print(&["ID", "STATUS", "PROGRESS", "FROM", "ASSET", "INPUT", "REASON"], &rows);
}

fn print_discovery(r: &Value) {
    println!("planned:");
    let planned = rows(&r["planned"], |p| {
        vec![
            text(&p["plan_id"]),
            format!("{:.2}", p["score"].as_f64().unwrap_or(0.0)),
            text(&p["scorer"]),
            text(&p["status"]),
            text(&p["title"]),
            text(&p["media_url"]),
        ]
    });
    table::print(&["PLAN", "SCORE", "SCORER", "STATUS", "TITLE", "MEDIA"], &planned);
    println!("rejected:");
    let rejected = rows(&r["rejected"], |x| vec![text(&x["url"]), text(&x["reason"])]);
    table::print(&["URL", "REASON"], &rejected);
    let skipped = rows(&r["skipped"], |x| vec![text(&x["url"]), text(&x["reason"])]);
    if !skipped.is_empty() {
        println!("pages not visited:");
        table::print(&["URL", "REASON"], &skipped);
    }
    for e in r["errors"].as_array().into_iter().flatten() {
        println!("error: {}", text(e));
    }
}

fn print_plans(list: &Value) {
    let rows: Vec<Vec<String>> = rows(list, |p| {
        vec![
            text(&p["id"]),
            text(&p["status"]),
            p["score"].as_f64().map(|s| format!("{s:.2}")).unwrap_or_else(|| "-".into()),
            text(&p["scorer"]),
            text(&p["license"]),
            text(&p["title"]),
            text(&p["reasons"]),
        ]
    });
    table::print(&["ID", "STATUS", "SCORE", "SCORER", "LICENSE", "TITLE", "REASONS"], &rows);
}

fn print_rules(r: &Value) {
    let rows: Vec<Vec<String>> = r.as_object().into_iter().flatten().map(|(k, v)| vec![k.clone(), text(v)]).collect();
    table::print(&["KEY", "VALUE"], &rows);
}

/// `HH:MM:SS` of a unix-ms time (UTC); enough to read a recent event log.
fn format_ms(ms: i64) -> String {
    let s = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}
