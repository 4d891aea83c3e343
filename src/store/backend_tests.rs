//! The store's behaviour, checked on both backends: every table family written and read back, job claims that never
//! hand one job to two workers, leases that fence a zombie holder, and the committed segments.

use super::test_support::{on_both_backends, test_store};
use super::*;
use chrono::{TimeZone, Utc};
use std::collections::HashSet;

fn asset(title: &str, dir: &Path, sha: &str) -> NewAsset {
    NewAsset {
        sha256: Some(sha.into()),
        title: title.into(),
        dir: dir.join(title),
        duration: Duration::from_secs(60),
        keyframes: vec![Duration::ZERO, Duration::from_secs(2)],
        tags: vec!["nature".into()],
        emergency: true,
        renditions: vec![NewRendition {
            rung: "720p".into(),
            path: dir.join(title).join("720p.ts"),
            width: 1280,
            height: 720,
            video_kbps: 2500,
            size_bytes: 4_000_000,
        }],
        ..Default::default()
    }
}

fn job(input: &str) -> NewJob {
    NewJob {
        plan_id: None,
        input: JobInput::parse(input).unwrap(),
        origin: JobOrigin::Cli,
        title: None,
        priority: 0,
        webhook_url: None,
    }
}

async fn every_table_family_round_trips(backend: Backend) {
    let t = test_store(backend).await;
    let store = &t.store;
    let tables = store.table_names().await.unwrap();
    for name in ["airings", "assets", "channel_lease", "jobs", "nodes", "schedule", "segments", "settings"] {
        assert!(tables.iter().any(|x| x == name), "table {name} missing from {tables:?}");
    }
    let shipped: Vec<String> = MIGRATOR.iter().map(|m| m.description.to_string()).collect();
    assert_eq!(store.applied_migrations().await.unwrap(), shipped, "both backends have the same migrations");

    let main = ChannelId("main".into());
    store.upsert_channel(&main, "Main").await.unwrap();
    let id = store.insert_asset(&asset("reef", t.dir.path(), "aa")).await.unwrap();
    let a = store.asset(id).await.unwrap();
    assert_eq!((a.title.as_str(), a.duration, a.emergency), ("reef", Duration::from_secs(60), true));
    assert_eq!(a.keyframes, [Duration::ZERO, Duration::from_secs(2)]);
    let r = store.renditions(id).await.unwrap();
    assert_eq!((r.len(), r[0].width, r[0].size_bytes), (1, 1280, 4_000_000));
    assert_eq!(store.emergency_assets().await.unwrap().len(), 1);
    assert_eq!(store.assets_bytes().await.unwrap(), 4_000_000);
    assert_eq!(store.asset_by_sha256("aa").await.unwrap().map(|a| a.id), Some(id));
    let dup = store.insert_asset(&asset("reef2", t.dir.path(), "aa")).await;
    assert!(dup.is_err(), "the same content twice is one asset");

    let sid = store.schedule_append(&main, id, "test").await.unwrap();
    assert_eq!(store.queued(&main).await.unwrap(), Duration::from_secs(60));
    store.set_schedule_status(sid, ScheduleStatus::Airing, Duration::from_secs(20)).await.unwrap();
    assert_eq!(store.queued(&main).await.unwrap(), Duration::from_secs(40), "what is left of the item on air");
    let start = Utc.timestamp_millis_opt(1_800_000_000_000).unwrap();
    let airing = store
        .airing_start(&NewAiring {
            channel: &main,
            asset: Some(id),
            schedule_id: Some(sid),
            kind: AiringKind::Scheduled,
            title: "reef",
            start,
            offset: Duration::ZERO,
        })
        .await
        .unwrap();
    assert_eq!(store.open_airing(&main).await.unwrap().map(|a| a.id), Some(airing));
    store.airing_end(airing, start + chrono::TimeDelta::seconds(60)).await.unwrap();
    assert_eq!(store.open_airing(&main).await.unwrap(), None);
    let aired = store.airings(&main, start, start + chrono::TimeDelta::hours(1)).await.unwrap();
    assert_eq!(aired.len(), 1);
    assert_eq!(store.asset(id).await.unwrap().air_count, 1);

    let plan = NewPlan::new("manual", SourceKind::Manual, "https://example.org/a.mp4", "https://example.org/a".into());
    assert!(store.insert_plan(&plan).await.unwrap().is_some());
    assert_eq!(store.insert_plan(&plan).await.unwrap(), None, "nothing is planned twice");
    store.set_setting("exploration.epsilon", "0.15").await.unwrap();
    store.set_setting("exploration.epsilon", "0.2").await.unwrap();
    assert_eq!(store.settings().await.unwrap().get("exploration.epsilon").map(String::as_str), Some("0.2"));
    store.event(Actor::Station, Some(&main), EventKind::Started, "hello", serde_json::json!({ "a": 1 })).await;
    assert_eq!(store.recent_events(5).await.unwrap()[0].message, "hello");
    store.set_synopsis(id, "Fish.", "llm:m").await.unwrap();
    assert_eq!(store.synopsis(id).await.unwrap().as_deref(), Some("Fish."));
    assert!(store.guide_assets(&[id]).await.unwrap().contains_key(&id));

    store.mark_asset_bad(id, "broken").await.unwrap();
    assert!(store.emergency_assets().await.unwrap().is_empty(), "a bad asset leaves the emergency pool");
    let err = store.schedule_append(&ChannelId("nope".into()), id, "x").await.unwrap_err();
    assert!(err.is_foreign_key_violation(), "{err:?}");
}

async fn two_nodes_never_claim_the_same_job(backend: Backend) {
    let t = test_store(backend).await;
    for i in 0..40 {
        t.store.insert_job(&job(&format!("https://example.org/{i}.mp4"))).await.unwrap();
    }
    let claimer = |node: &str| {
        let store = t.store.clone().for_node(node);
        tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(j) = store.claim_job(JobStatus::Downloading).await.unwrap() {
                got.push(j.id);
            }
            got
        })
    };
    let (a, b) = (claimer("a"), claimer("b"));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let all: HashSet<JobId> = a.iter().chain(&b).copied().collect();
    assert_eq!(a.len() + b.len(), 40, "every job claimed once: a {a:?} b {b:?}");
    assert_eq!(all.len(), 40, "no job claimed twice");
    let owners: Vec<(Option<String>, i64)> =
        on_pool!(t.store, |pool| sqlx::query_as("SELECT node, COUNT(*) FROM jobs GROUP BY node ORDER BY node")
            .fetch_all(pool)
            .await)
        .unwrap();
    let total: i64 = owners.iter().map(|o| o.1).sum();
    assert_eq!(total, 40);
    assert!(owners.iter().all(|(n, _)| n.is_some()), "each claimed job names its node: {owners:?}");
}

async fn a_dead_nodes_job_is_requeued_and_its_late_finish_refused(backend: Backend) {
    let t = test_store(backend).await;
    let (a, b) = (t.store.clone().for_node("a"), t.store.clone().for_node("b"));
    let roles = vec!["factory".to_string()];
    a.node_heartbeat("a", &roles).await.unwrap();
    b.node_heartbeat("b", &roles).await.unwrap();
    let id = a.insert_job(&job("https://example.org/x.mp4")).await.unwrap();
    assert_eq!(a.claim_job(JobStatus::Downloading).await.unwrap().map(|j| j.id), Some(id));
    assert!(b.requeue_jobs_of_dead_nodes(Duration::from_secs(30)).await.unwrap().is_empty(), "a is alive");
    tokio::time::sleep(Duration::from_millis(400)).await;
    b.node_heartbeat("b", &roles).await.unwrap();
    assert_eq!(b.requeue_jobs_of_dead_nodes(Duration::from_millis(300)).await.unwrap(), [id], "a went quiet");
    let live = b.live_nodes(Duration::from_millis(300)).await.unwrap();
    assert_eq!(live.iter().map(|n| n.0.as_str()).collect::<Vec<_>>(), ["b"]);
    assert_eq!(b.claim_job(JobStatus::Downloading).await.unwrap().map(|j| j.id), Some(id));
    // a wakes up: its stage, progress and retry writes change nothing of b's job.
    a.set_job_stage(id, JobStatus::Gating).await.unwrap();
    a.set_job_progress(id, 0.9, Some(3.0)).await.unwrap();
    a.retry_job(id, "broken pipe", Utc::now()).await.unwrap();
    let j = a.job(id).await.unwrap();
    assert_eq!((j.status, j.progress, j.attempts), (JobStatus::Downloading, 0.0, 0), "b's job is untouched: {j:?}");
    assert!(!a.finish_job(id, JobStatus::Ready, None, None).await.unwrap(), "a's late result is refused");
    assert!(b.finish_job(id, JobStatus::Failed, Some("test"), None).await.unwrap());
    assert_eq!(a.job(id).await.unwrap().status, JobStatus::Failed, "b's result stands");
    // A restart requeues only the restarted node's own work.
    let other = a.insert_job(&job("https://example.org/y.mp4")).await.unwrap();
    assert_eq!(b.claim_job(JobStatus::Downloading).await.unwrap().map(|j| j.id), Some(other));
    assert!(a.requeue_in_flight_jobs().await.unwrap().is_empty(), "b's job is not a's to requeue");
    assert_eq!(b.requeue_in_flight_jobs().await.unwrap(), [other]);
}

fn segment(seq: i64, epoch: i64) -> SegmentRow {
    SegmentRow {
        seq,
        epoch,
        duration_ns: 2_000_000_000,
        start_ns: 1_800_000_000_000_000_000 + seq * 2_000_000_000,
        discontinuity: seq == 0,
        discontinuity_sequence: 0,
    }
}

async fn a_taken_over_channel_fences_its_old_holder(backend: Backend) {
    let t = test_store(backend).await;
    let store = &t.store;
    let main = ChannelId("main".into());
    store.upsert_channel(&main, "Main").await.unwrap();
    let ttl = Duration::from_millis(400);
    assert_eq!(store.lease_acquire(&main, "a", ttl).await.unwrap(), Some(1));
    assert_eq!(store.lease_acquire(&main, "b", ttl).await.unwrap(), None, "a holds it");
    assert!(store.lease_renew(&main, "a", 1, ttl).await.unwrap());
    assert!(store.set_lease_multivariant(&main, "a", 1, "#EXTM3U\n").await.unwrap());
    assert!(store.commit_segment(&main, "a", &segment(0, 1)).await.unwrap());
    assert!(store.commit_segment(&main, "a", &segment(1, 1)).await.unwrap());
    let lease = store.lease(&main).await.unwrap().unwrap();
    assert_eq!((lease.holder.as_str(), lease.epoch), ("a", 1));
    assert!(lease.remaining_ms > 0 && lease.remaining_ms <= 400, "{lease:?}");
    assert_eq!(lease.multivariant.as_deref(), Some("#EXTM3U\n"));

    // a stops renewing (paused); its lease expires on the database clock and b takes over with a new epoch.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!store.commit_segment(&main, "a", &segment(2, 1)).await.unwrap(), "an expired lease publishes nothing");
    assert_eq!(store.lease_acquire(&main, "b", ttl).await.unwrap(), Some(2));
    assert_eq!(store.lease(&main).await.unwrap().unwrap().multivariant, None, "the new holder writes its own");
    assert!(!store.lease_renew(&main, "a", 1, ttl).await.unwrap(), "a learns it lost the channel");
    assert!(store.commit_segment(&main, "b", &segment(2, 2)).await.unwrap());
    // The zombie wakes up and writes again: 0 rows, whatever number it uses.
    for seq in [2, 3, 99] {
        assert!(!store.commit_segment(&main, "a", &segment(seq, 1)).await.unwrap(), "zombie segment {seq}");
    }
    assert!(!store.commit_segment(&main, "a", &segment(3, 2)).await.unwrap(), "a cannot borrow b's epoch");
    let rows = store.segments(&main, 10).await.unwrap();
    assert_eq!(rows.iter().map(|r| (r.seq, r.epoch)).collect::<Vec<_>>(), [(0, 1), (1, 1), (2, 2)]);
    assert_eq!(rows[0], segment(0, 1), "a row reads back as written");
    assert_eq!(store.segments(&main, 1).await.unwrap()[0].seq, 2, "the last n, oldest first");
    // A restarted node takes its own channel back at once; a clean stop frees it for anyone.
    assert_eq!(store.lease_acquire(&main, "b", ttl).await.unwrap(), Some(3));
    store.lease_release(&main, "b", 3).await.unwrap();
    assert_eq!(store.lease_acquire(&main, "a", ttl).await.unwrap(), Some(4));
    assert_eq!(store.prune_segments(&main, 2).await.unwrap().len(), 2);
    assert_eq!(store.segments(&main, 10).await.unwrap().len(), 1);
}

async fn concurrent_takeovers_elect_one_holder(backend: Backend) {
    let t = test_store(backend).await;
    let main = ChannelId("main".into());
    t.store.upsert_channel(&main, "Main").await.unwrap();
    let tries: Vec<_> = (0..8)
        .map(|i| {
            let store = t.store.clone();
            let main = main.clone();
            tokio::spawn(async move { store.lease_acquire(&main, &format!("n{i}"), Duration::from_secs(5)).await })
        })
        .collect();
    let mut won = 0;
    for t in tries {
        if t.await.unwrap().unwrap().is_some() {
            won += 1;
        }
    }
    assert_eq!(won, 1, "one node holds the channel");
}

on_both_backends!(
    every_table_family_round_trips,
    two_nodes_never_claim_the_same_job,
    a_dead_nodes_job_is_requeued_and_its_late_finish_refused,
    a_taken_over_channel_fences_its_old_holder,
    concurrent_takeovers_elect_one_holder,
);
