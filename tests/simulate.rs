//! `vvtv simulate` as a user runs it: the binary on a generated library and on a real station database, its JSON and
//! its refusals.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;
use vvtv::store::{NewAsset, Store};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/simulation.toml");

fn simulate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vvtv")).arg("simulate").args(args).output().unwrap()
}

fn json(args: &[&str]) -> Value {
    let out = simulate(args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn stderr_of(args: &[&str]) -> String {
    let out = simulate(args);
    assert!(!out.status.success(), "vvtv simulate {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_week_on_a_generated_library_reports_as_json_and_repeats_exactly() {
    let args = ["--days", "7", "--seed", "11", "--library", "300", "--config", EXAMPLE, "--json"];
    let report = json(&args);
    assert_eq!(report["channel"], "mix");
    assert_eq!(report["longest_gap_seconds"], 0.0);
    // Repeats only where the library left no choice (the last seconds before a soft slot fit one short filler).
    let repeats = report["repeats"].as_array().unwrap();
    assert!(repeats.iter().all(|v| v["avoidable"] == false), "{repeats:#?}");
    assert!(repeats.len() <= 3, "{repeats:#?}");
    let slots = report["slots"].as_array().unwrap();
    assert!(slots.len() >= 14, "{} slot occurrences", slots.len());
    assert!(slots.iter().all(|s| s["on_time"] == true), "{slots:#?}");
    let evening = report["dayparts"].as_array().unwrap().iter().find(|d| d["name"] == "evening film").unwrap().clone();
    assert!(evening["tagged_share"].as_f64().unwrap() > 1.5 * evening["library_share"].as_f64().unwrap());
    let share = report["exploration_share"].as_f64().unwrap();
    assert!(share > 0.0 && share < 0.3, "{share}");
    // The same arguments print the same bytes; another seed another week.
    assert_eq!(simulate(&args).stdout, simulate(&args).stdout);
    let other = json(&["--days", "7", "--seed", "12", "--library", "300", "--config", EXAMPLE, "--json"]);
    assert_ne!(report["schedule"], other["schedule"]);
    // The text form carries the same findings.
    let text = String::from_utf8(simulate(&args[..args.len() - 1]).stdout).unwrap();
    assert!(text.contains("longest gap: 0.0 s (0 gaps)"), "{text}");
    let line = format!("repeats inside the window (diversity.window_minutes = 180): {} (0 avoidable", repeats.len());
    assert!(text.contains(&line), "{text}");
    assert!(text.contains(&format!("slots: {} of {} on time", slots.len(), slots.len())), "{text}");
}

/// A station database with `n` ready programmes of two tags, two sources and one series, and a stored rule.
fn station(path: &Path, n: usize) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = Store::open(path).await.unwrap();
        for i in 0..n {
            let tag = if i % 3 == 0 { "film" } else { "nature" };
            let minutes = 5 + (i as u64 * 7) % 40;
            store
                .insert_asset(&NewAsset {
                    title: format!("{tag} {i}"),
                    source: format!("manual:{i}"),
                    duration: Duration::from_secs(minutes * 60),
                    keyframes: (0..minutes * 30).map(|k| Duration::from_secs(k * 2)).collect(),
                    tags: vec![tag.into()],
                    source_name: if i % 2 == 0 { "archive".into() } else { "inbox".into() },
                    series: (i % 5 == 0).then(|| "the series".to_owned()),
                    curator_score: Some(0.5 + (i % 5) as f64 / 10.0),
                    ..Default::default()
                })
                .await
                .unwrap();
        }
        store.set_setting("diversity.window_minutes", "240").await.unwrap();
        store.close().await;
    });
}

#[test]
fn from_db_reads_a_station_database_without_writing_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("vvtv.db");
    station(&db, 60);
    let before = std::fs::read(&db).unwrap();
    let db_arg = db.to_str().unwrap();
    let report = json(&["--days", "2", "--seed", "3", "--from-db", db_arg, "--start", "2027-02-01", "--json"]);
    assert_eq!(report["library_assets"], 60);
    assert_eq!(report["rules"]["diversity.window_minutes"], 240, "the stored rule applies");
    assert_eq!(report["longest_gap_seconds"], 0.0);
    assert_eq!(report["repeats"].as_array().unwrap().len(), 0, "60 assets fill 240 minutes without repeats");
    let rows = report["schedule"].as_array().unwrap();
    assert!(rows.iter().all(|r| (1..=60).contains(&r["asset"].as_i64().unwrap())), "only the database's assets");
    assert!(rows.iter().any(|r| r["title"].as_str().unwrap().starts_with("film")));
    assert_eq!(std::fs::read(&db).unwrap(), before, "the database was written to");

    // While a daemon holds the database open too.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let live = rt.block_on(Store::open(&db)).unwrap();
    let again = json(&["--days", "2", "--seed", "3", "--from-db", db_arg, "--start", "2027-02-01", "--json"]);
    assert_eq!(again["schedule"], report["schedule"]);
    rt.block_on(live.close());
}

#[test]
fn bad_input_is_refused_with_the_option_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    let e = stderr_of(&["--from-db", missing.to_str().unwrap()]);
    assert!(e.contains("--from-db") && e.contains("missing.db: no such file"), "{e}");
    assert!(!missing.exists(), "a missing database was created");
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a database at all, just some words").unwrap();
    let e = stderr_of(&["--from-db", text.to_str().unwrap()]);
    assert!(e.contains("--from-db") && e.contains("notes.txt: not a VVTV database"), "{e}");
    assert_eq!(e.matches("file is not a database").count(), 1, "printed once: {e}");
    let e = stderr_of(&["--library", "20", "--channel", "sports"]);
    assert!(e.contains("--channel sports: no such channel") && e.contains("main"), "{e}");
    let e = stderr_of(&["--days", "0"]);
    assert!(e.contains("--days"), "{e}");
    let e = stderr_of(&["--library", "5", "--from-db", text.to_str().unwrap()]);
    assert!(e.contains("cannot be used with"), "{e}");
    let e = stderr_of(&["--start", "next week"]);
    assert!(e.contains("--start \"next week\""), "{e}");
}
