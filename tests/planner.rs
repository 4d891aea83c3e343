//! The planner on a live daemon with `llm.rerank` on: every weighted pick's shortlist goes to the curator's LLM (the
//! test's stand-in always names the second entry), the model's choice is what is scheduled, and once the model is
//! down the sampled order is kept with the reason recorded in the pick.

use serde_json::Value;
use std::time::{Duration, Instant};
use vvtv::config::Config;
use vvtv::store::{ScheduleId, Store};
use vvtv_testkit::daemon::{write_config, Daemon, SMALL_LADDER};
use vvtv_testkit::llm::{LlmServer, Mode};

/// Every schedule row's pick, oldest first.
fn picks(config: &Config) -> Vec<Value> {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = Store::open_read_only(&config.storage.db_path()).await.unwrap();
        let channel = vvtv::store::ChannelId::from("main");
        let n = store.schedule_count(&channel).await.unwrap();
        let mut out = Vec::new();
        for id in 1..=n as i64 {
            if let Ok((_, Some(pick))) = store.schedule_row(ScheduleId(id)).await {
                out.push(pick);
            }
        }
        store.close().await;
        out
    })
}

fn wait_for_picks(config: &Config, what: &str, want: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let p = picks(config);
        if want(&p) {
            return p;
        }
        assert!(start.elapsed() < Duration::from_secs(150), "never {what}: {p:#?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn with_llm_rerank_the_models_choice_is_scheduled_and_a_dead_model_keeps_the_sampled_order() {
    let dir = tempfile::tempdir().unwrap();
    let llm = LlmServer::start(Mode::Raw("{\"choice\": 2, \"reason\": \"a better sequence\"}".into()));
    let extra = format!(
        "{SMALL_LADDER}\n[curator]\nenabled = false\n\n[curator.llm]\nurl = \"{}\"\nmodel = \"tiny\"\n\n\
         [planner.llm]\nrerank = true\n",
        llm.url()
    );
    let cfg = write_config(dir.path(), &extra);
    let config = Config::load(&cfg).unwrap();
    let _d = Daemon::start(dir.path(), &cfg);

    let reranked = |p: &Value| p["rerank"]["by"] == "llm:tiny";
    let first = wait_for_picks(&config, "a reranked pick", |p| p.iter().any(reranked));
    for p in first.iter().filter(|p| reranked(p)) {
        assert_eq!(p["rerank"]["chose"], 1, "{p:#}");
        assert_eq!(p["asset"], p["shortlist"][1]["asset"], "the model's choice is what is scheduled: {p:#}");
        assert!(p["reason"].as_str().unwrap().contains("llm:tiny reranked the shortlist: #2"), "{p:#}");
    }
    let asked = llm.requests();
    let prompt = asked.iter().map(|r| r.message("user")).find(|m| m.contains("Shortlist")).expect("no rerank asked");
    assert!(prompt.contains("Demo ") && prompt.contains("(UTC)"), "{prompt}");

    // The model goes down: the next picks keep the sampled order and say why.
    llm.set_mode(Mode::Down);
    let before = first.len();
    let later = wait_for_picks(&config, "a pick that kept the sampled order", |p| {
        p.iter().skip(before).any(|p| p["rerank"]["fallback_because"].is_string())
    });
    let kept = later.iter().skip(before).find(|p| p["rerank"]["fallback_because"].is_string()).unwrap();
    assert_eq!(kept["rerank"]["chose"], 0, "{kept:#}");
    assert_eq!(kept["asset"], kept["shortlist"][0]["asset"], "{kept:#}");
    assert!(kept["reason"].as_str().unwrap().contains("sampled order kept"), "{kept:#}");
}
