//! The audience aggregation on both backends: sessions with known spans over airings with known times.

use super::*;
use crate::store::test_support::{on_both_backends, test_store, TestStore};
use crate::store::Backend;
use crate::store::{NewAiring, NewAsset};
use chrono::TimeZone;

fn t(s: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(1_700_000_000_000 + s * 1000).unwrap()
}

fn session(id: &str, start: i64, last: i64, ended: Option<SessionEnd>) -> SessionRecord {
    SessionRecord {
        id: SessionId(id.into()),
        channel: ChannelId("main".into()),
        started: t(start),
        last_beacon: t(last),
        first_playhead: t(start),
        last_playhead: t(last),
        ended: ended.map(|why| (t(last), why)),
        totals: SessionTotals { watch: Duration::from_secs((last - start) as u64), ..Default::default() },
    }
}

/// Writes a session the way the room does: its start (a point), then heartbeats of 10 s of watching.
async fn watch(store: &Store, id: &str, start: i64, last: i64, ended: Option<SessionEnd>) {
    let mut at = start;
    let mut spans = vec![WatchSpan { from: t(start), to: t(start) }];
    while at < last {
        let to = (at + 10).min(last);
        spans.push(WatchSpan { from: t(at), to: t(to) });
        at = to;
    }
    for (i, span) in spans.iter().enumerate() {
        let done = i + 1 == spans.len();
        let mut s = session(id, start, codec::time_ms(span.to) / 1000 - 1_700_000_000, None);
        if done {
            s.ended = ended.map(|why| (t(last), why));
        }
        store.audience_write(&[SessionWrite { session: s, spans: vec![*span] }]).await.unwrap();
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    asset: AssetId,
}

async fn fixture(backend: Backend) -> Fixture {
    let TestStore { store, dir } = test_store(backend).await;
    let main = ChannelId("main".into());
    store.upsert_channel(&main, "Main").await.unwrap();
    let asset = store
        .insert_asset(&NewAsset {
            title: "Reef".into(),
            dir: dir.path().into(),
            duration: Duration::from_secs(60),
            ..Default::default()
        })
        .await
        .unwrap();
    Fixture { _dir: dir, store, asset }
}

async fn airing(f: &Fixture, title: &str, asset: Option<AssetId>, start: i64, end: Option<i64>) -> AiringId {
    let channel = ChannelId("main".into());
    let kind = if asset.is_some() { AiringKind::Scheduled } else { AiringKind::Slate };
    let id = f
        .store
        .airing_start(&NewAiring {
            channel: &channel,
            asset,
            schedule_id: None,
            kind,
            title,
            start: t(start),
            offset: Duration::ZERO,
        })
        .await
        .unwrap();
    if let Some(end) = end {
        f.store.airing_end(id, t(end)).await.unwrap();
    }
    id
}

fn span(from: i64, to: i64) -> WatchSpan {
    WatchSpan { from: t(from), to: t(to) }
}

#[test]
fn a_span_is_split_at_the_boundaries_of_the_airings_it_crosses() {
    let ms = |s: i64| codec::time_ms(t(s));
    let airings = [
        AiringSpan { id: AiringId(1), start_ms: ms(0), end_ms: Some(ms(60)) },
        AiringSpan { id: AiringId(2), start_ms: ms(60), end_ms: None },
    ];
    assert_eq!(
        split_span(span(50, 70), &airings),
        [(AiringId(1), ms(50), ms(60), 10_000), (AiringId(2), ms(60), ms(70), 10_000)]
    );
    assert_eq!(split_span(span(10, 20), &airings), [(AiringId(1), ms(10), ms(20), 10_000)]);
    // A start is a point: it belongs to the airing it falls in (the one starting there, at a boundary).
    assert_eq!(split_span(span(60, 60), &airings), [(AiringId(2), ms(60), ms(60), 0)]);
    assert_eq!(split_span(span(-5, -1), &airings), []);
}

async fn an_airings_audience_has_its_peak_average_watch_and_left_during_share(backend: Backend) {
    let f = fixture(backend).await;
    let a = airing(&f, "Reef", Some(f.asset), 0, Some(60)).await;
    let b = airing(&f, "Slate", None, 60, None).await;
    // s1 leaves in the middle of A; s2 watches from A into B and leaves in B; s3 leaves one second before A ends
    // (at the boundary, not during); s4 starts in B and is still watching.
    watch(&f.store, "s1-aaaaaaaaaaaaaaaa", 10, 50, Some(SessionEnd::Closed)).await;
    watch(&f.store, "s2-aaaaaaaaaaaaaaaa", 20, 100, Some(SessionEnd::Timeout)).await;
    watch(&f.store, "s3-aaaaaaaaaaaaaaaa", 30, 59, Some(SessionEnd::Closed)).await;
    watch(&f.store, "s4-aaaaaaaaaaaaaaaa", 70, 110, None).await;

    let report = f.store.audience_by_airing(None, t(-3600)).await.unwrap();
    assert_eq!(report.iter().map(|r| r.airing_id).collect::<Vec<_>>(), [b, a], "newest first");
    let ra = &report[1];
    assert_eq!((ra.starts, ra.viewers, ra.peak_viewers, ra.left_during), (3, 3, 3, 1));
    assert_eq!(ra.watch, Duration::from_secs(40 + 40 + 29));
    assert!((ra.avg_viewers - 109.0 / 60.0).abs() < 1e-9, "{}", ra.avg_viewers);
    assert_eq!(ra.avg_watch, Duration::from_millis(109_000 / 3));
    assert!((ra.left_during_share - 1.0 / 3.0).abs() < 1e-9);
    assert_eq!((ra.start, ra.end), (t(0), Some(t(60))));

    let rb = &report[0];
    assert_eq!((rb.starts, rb.viewers, rb.peak_viewers, rb.left_during), (1, 2, 2, 1));
    assert_eq!(rb.watch, Duration::from_secs(40 + 40));
    assert_eq!(rb.end, None, "still on air");
    assert!((rb.left_during_share - 0.5).abs() < 1e-9);
    // On air: measured up to now, so the average is tiny but positive.
    assert!(rb.avg_viewers > 0.0 && rb.avg_viewers < 0.01, "{}", rb.avg_viewers);

    let assets = f.store.audience_by_asset(None, t(-3600)).await.unwrap();
    assert_eq!(assets.len(), 1, "the slate has no asset: {assets:?}");
    assert_eq!((assets[0].asset_id, assets[0].airings, assets[0].viewers), (f.asset, 1, 3));
    assert!((assets[0].avg_viewers - ra.avg_viewers).abs() < 1e-9);
}

async fn the_peak_counts_only_viewers_watching_at_the_same_moment(backend: Backend) {
    let f = fixture(backend).await;
    let a = airing(&f, "Reef", Some(f.asset), 0, Some(60)).await;
    // Three viewers one after the other: never more than one at once.
    watch(&f.store, "seq1-aaaaaaaaaaaaaa", 0, 15, Some(SessionEnd::Closed)).await;
    watch(&f.store, "seq2-aaaaaaaaaaaaaa", 20, 35, Some(SessionEnd::Closed)).await;
    watch(&f.store, "seq3-aaaaaaaaaaaaaa", 40, 55, Some(SessionEnd::Closed)).await;
    let report = f.store.audience_by_airing(Some(&ChannelId("main".into())), t(-10)).await.unwrap();
    let r = report.iter().find(|r| r.airing_id == a).unwrap();
    assert_eq!((r.viewers, r.peak_viewers, r.left_during), (3, 1, 3));
    assert!((r.avg_viewers - 45.0 / 60.0).abs() < 1e-9, "{}", r.avg_viewers);
    assert!((r.left_during_share - 1.0).abs() < 1e-9);
}

async fn an_asset_sums_its_airings_and_an_airing_left_open_by_a_crash_ends_where_the_next_began(backend: Backend) {
    let f = fixture(backend).await;
    // The first airing was never closed (the process died); the next one began at 60 s.
    let first = airing(&f, "Reef", Some(f.asset), 0, None).await;
    let second = airing(&f, "Reef", Some(f.asset), 60, Some(120)).await;
    watch(&f.store, "crash-aaaaaaaaaaaaa", 0, 90, Some(SessionEnd::Closed)).await;
    let report = f.store.audience_by_airing(None, t(-10)).await.unwrap();
    let r1 = report.iter().find(|r| r.airing_id == first).unwrap();
    let r2 = report.iter().find(|r| r.airing_id == second).unwrap();
    assert_eq!(r1.end, Some(t(60)));
    assert_eq!((r1.watch, r2.watch), (Duration::from_secs(60), Duration::from_secs(30)));
    assert_eq!((r1.left_during, r2.left_during), (0, 1), "it watched A to its end and left during B");
    let assets = f.store.audience_by_asset(None, t(-10)).await.unwrap();
    assert_eq!(assets.len(), 1);
    let a = &assets[0];
    assert_eq!((a.airings, a.viewers, a.starts, a.peak_viewers, a.left_during), (2, 2, 1, 1, 1));
    assert_eq!(a.watch, Duration::from_secs(90));
    assert!((a.avg_viewers - 90.0 / 120.0).abs() < 1e-9, "{}", a.avg_viewers);
    assert_eq!(a.avg_watch, Duration::from_secs(45));
}

async fn sessions_round_trip_and_the_sweep_deletes_old_ones_with_their_watch_rows(backend: Backend) {
    let f = fixture(backend).await;
    airing(&f, "Reef", Some(f.asset), 0, Some(60)).await;
    watch(&f.store, "old-aaaaaaaaaaaaaaa", 0, 20, Some(SessionEnd::Timeout)).await;
    watch(&f.store, "new-aaaaaaaaaaaaaaa", 30, 50, None).await;
    let open = f.store.audience_open_sessions().await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0], session("new-aaaaaaaaaaaaaaa", 30, 50, None));
    let old = f.store.audience_session(&SessionId("old-aaaaaaaaaaaaaaa".into())).await.unwrap().unwrap();
    assert_eq!(old.ended, Some((t(20), SessionEnd::Timeout)));
    assert_eq!(f.store.audience_sweep(t(25)).await.unwrap(), 1);
    assert_eq!(f.store.audience_session(&SessionId("old-aaaaaaaaaaaaaaa".into())).await.unwrap(), None);
    let rows: i64 =
        on_pool!(f.store, |pool| sqlx::query_scalar("SELECT COUNT(*) FROM audience_watch").fetch_one(pool).await)
            .unwrap();
    assert_eq!(rows, 1, "the swept session's watch rows went with it");
}

async fn a_viewer_whose_first_frame_is_just_before_the_first_airing_starts_there(backend: Backend) {
    let f = fixture(backend).await;
    let a = airing(&f, "Reef", Some(f.asset), 100, None).await;
    let early = |ms: i64| t(100) - chrono::Duration::milliseconds(ms);
    // Two sessions open the channel at its very first segment, their first frames 20 ms before it began; one more
    // starts well inside the airing. A fourth session's first frame is 30 s before anything aired: no start anywhere.
    for (id, before_ms) in [("edge1-aaaaaaaaaaaaa", 20), ("edge2-aaaaaaaaaaaaa", 20), ("late-aaaaaaaaaaaaaa", -5000)] {
        let start = early(before_ms);
        let mut s = session(id, 0, 0, None);
        (s.first_playhead, s.last_playhead, s.started, s.last_beacon) = (start, t(110), start, t(110));
        let spans = vec![WatchSpan { from: start, to: start }, WatchSpan { from: start, to: t(110) }];
        f.store.audience_write(&[SessionWrite { session: s, spans }]).await.unwrap();
    }
    let mut s = session("gap-aaaaaaaaaaaaaaa", 70, 110, None);
    s.first_playhead = t(70);
    let spans = vec![span(70, 70), span(70, 110)];
    f.store.audience_write(&[SessionWrite { session: s, spans }]).await.unwrap();

    let report = f.store.audience_by_airing(None, t(-3600)).await.unwrap();
    let r = report.iter().find(|r| r.airing_id == a).unwrap();
    assert_eq!((r.starts, r.viewers, r.peak_viewers), (3, 4, 4), "{r:?}");
}

on_both_backends!(
    an_airings_audience_has_its_peak_average_watch_and_left_during_share,
    the_peak_counts_only_viewers_watching_at_the_same_moment,
    an_asset_sums_its_airings_and_an_airing_left_open_by_a_crash_ends_where_the_next_began,
    sessions_round_trip_and_the_sweep_deletes_old_ones_with_their_watch_rows,
    a_viewer_whose_first_frame_is_just_before_the_first_airing_starts_there,
);
