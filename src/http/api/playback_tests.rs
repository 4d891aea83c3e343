//! The beacon endpoint over real HTTP on 127.0.0.1, with the real audience room and a real SQLite file: garbage is
//! refused with a 4xx naming the reason, a flood is cut at the session's bucket, and nothing refused is stored.

use super::*;
use crate::actor::Context;
use crate::business_logic::BusinessLogic;
use crate::config::Config;
use crate::shutdown::ShutdownSwitch;
use crate::store::{SessionId, Store};
use axum::routing::post;
use axum::Router;
use vvtv_api::ChannelId;

struct Server {
    url: String,
    audience: AudienceHandle,
    store: Store,
    switch: ShutdownSwitch,
    _dir: tempfile::TempDir,
}

async fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::parse("[audience]\nsession_burst = 5\nsession_beacons_per_minute = 6\n").unwrap();
    let store = Store::open(&dir.path().join("vvtv.db")).await.unwrap();
    store.upsert_channel(&ChannelId::from("main"), "Main").await.unwrap();
    let switch = ShutdownSwitch::new();
    let (_rules_tx, rules) = tokio::sync::watch::channel(BusinessLogic::from_config(&config));
    let metrics = std::sync::Arc::new(crate::metrics::Metrics::new(&config));
    let ctx = Context::new(std::sync::Arc::new(config), store.clone(), rules, metrics, switch.subscriber());
    let audience = AudienceHandle::spawn(&ctx);
    let app = Router::new().route("/api/v1/playback", post(beacon)).with_state(audience.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api/v1/playback", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Server { url, audience, store, switch, _dir: dir }
}

async fn post_json(url: &str, body: String) -> (u16, String) {
    let resp =
        reqwest::Client::new().post(url).header("content-type", "application/json").body(body).send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    // Errors are {"error": "..."}: the reason as the operator reads it.
    let reason = serde_json::from_str::<vvtv_api::station::ErrorBody>(&text).map(|e| e.error).unwrap_or(text);
    (status, reason)
}

fn beacon_json(session: &str, channel: &str, kind: &str) -> String {
    format!(r#"{{"session":"{session}","channel":"{channel}","kind":"{kind}","watched_ms":0}}"#)
}

async fn stored(s: &Server, session: &str) -> Option<crate::store::SessionRecord> {
    s.audience.write_now().await;
    s.store.audience_session(&SessionId(session.into())).await.unwrap()
}

#[tokio::test]
async fn garbage_beacons_get_a_4xx_with_the_reason_and_are_never_stored() {
    let s = server().await;
    let cases = [
        (
            "bad-kind-aaaaaaaaaa",
            beacon_json("bad-kind-aaaaaaaaaa", "main", "like"),
            400,
            "kind: unknown variant `like`",
        ),
        (
            "unknown-channel-aaa",
            beacon_json("unknown-channel-aaa", "sports", "start"),
            400,
            "channel: \"sports\" is not a channel of this station (main)",
        ),
        (
            "extra-field-aaaaaaa",
            r#"{"session":"extra-field-aaaaaaa","channel":"main","kind":"start","ip":"10.0.0.1"}"#.to_string(),
            400,
            "unknown field `ip`",
        ),
        (
            "oversize-aaaaaaaaaa",
            format!(
                r#"{{"session":"oversize-aaaaaaaaaa","channel":"main","kind":"error","error":"{}"}}"#,
                "x".repeat(3000)
            ),
            413,
            "a beacon is at most 2048 bytes",
        ),
        (
            "insane-aaaaaaaaaaaa",
            r#"{"session":"insane-aaaaaaaaaaaa","channel":"main","kind":"heartbeat","watched_ms":86400000}"#.into(),
            400,
            "watched_ms: 86400000 is above 60000",
        ),
        ("not-json-aaaaaaaaaa", "session=not-json-aaaaaaaaaa".into(), 400, "beacon: expected value"),
    ];
    for (session, body, status, reason) in cases {
        let (got, text) = post_json(&s.url, body).await;
        assert_eq!(got, status, "{session}: {text}");
        assert!(text.contains(reason), "{session}: {text:?} does not say {reason:?}");
        assert!(stored(&s, session).await.is_none(), "{session} was stored");
    }
    let resp = reqwest::Client::new()
        .post(&s.url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(beacon_json("form-aaaaaaaaaaaaaa", "main", "start"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 415);
    assert!(resp.text().await.unwrap().contains("send the beacon as application/json"));
    assert_eq!(s.audience.viewers(&ChannelId::from("main")), 0, "no garbage counts as a viewer");
}

#[tokio::test]
async fn a_flood_from_one_session_is_cut_at_its_bucket_and_only_what_was_accepted_is_stored() {
    let s = server().await;
    let session = "flood-aaaaaaaaaaaa";
    let (status, text) = post_json(&s.url, beacon_json(session, "main", "start")).await;
    assert_eq!(status, 204, "{text}");
    let stall = format!(r#"{{"session":"{session}","channel":"main","kind":"stall","stall_ms":500}}"#);
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let (status, text) = post_json(&s.url, stall.clone()).await;
        if status == 429 {
            assert!(text.contains("sends beacons too fast: at most 5 at once and 6 a minute"), "{text}");
        }
        statuses.push(status);
    }
    // The start took one token of five; four stalls pass, then every beacon is refused.
    let accepted = statuses.iter().filter(|&&c| c == 204).count();
    assert_eq!(accepted, 4, "{statuses:?}");
    assert!(statuses[4..].iter().all(|&c| c == 429), "{statuses:?}");
    let record = stored(&s, session).await.expect("the session is stored");
    assert_eq!((record.totals.beacons, record.totals.stalls), (5, 4), "refused beacons left no trace");
    assert_eq!(record.totals.stall, std::time::Duration::from_millis(2000));
    assert_eq!(s.audience.viewers(&ChannelId::from("main")), 1);
    // Its end is a beacon too, and the bucket is empty: refused, the session stays live until it times out.
    let (status, _) = post_json(&s.url, beacon_json(session, "main", "end")).await;
    assert_eq!(status, 429);
    // What was refused is summed up in one event (every minute, and at shutdown).
    let Server { switch, store, .. } = s;
    assert!(switch.trigger_and_wait(std::time::Duration::from_secs(5)).await);
    let events = store.recent_events(10).await.unwrap();
    let refused: Vec<_> = events.iter().filter(|e| e.kind == crate::store::EventKind::AudienceRefused).collect();
    assert_eq!(refused.len(), 1, "{events:?}");
    assert_eq!(refused[0].message, "refused 17 beacon(s) in the last minute: 17 too fast");
}

#[tokio::test]
async fn a_session_that_ended_cannot_come_back_and_a_start_is_not_repeated() {
    let s = server().await;
    let session = "ended-aaaaaaaaaaaa";
    assert_eq!(post_json(&s.url, beacon_json(session, "main", "start")).await.0, 204);
    let (status, text) = post_json(&s.url, beacon_json(session, "main", "start")).await;
    assert_eq!((status, text.contains("has already started")), (409, true), "{text}");
    assert_eq!(post_json(&s.url, beacon_json(session, "main", "end")).await.0, 204);
    assert_eq!(s.audience.viewers(&ChannelId::from("main")), 0);
    let record = stored(&s, session).await.unwrap();
    assert_eq!(record.ended.map(|(_, why)| why), Some(vvtv_api::SessionEnd::Closed));
    let (status, text) = post_json(&s.url, beacon_json(session, "main", "heartbeat")).await;
    assert_eq!((status, text.contains("has ended")), (409, true), "{text}");
}
