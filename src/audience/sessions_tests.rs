//! The live-session rules: watch credit, token buckets, limits, expiry and what is written.

use super::*;
use chrono::TimeZone;
use vvtv_api::BeaconKind;

const LIMITS: Limits = Limits { timeout: Duration::from_secs(30), max_sessions: 3, burst: 4, per_minute: 12 };

fn t(s: f64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(1_700_000_000_000 + (s * 1000.0) as i64).unwrap()
}

fn beacon(session: &str, kind: BeaconKind, at: f64, watched: f64) -> Beacon {
    let detail = match kind {
        BeaconKind::Start => Detail::Start { startup: Some(Duration::from_millis(900)) },
        BeaconKind::Heartbeat => Detail::Heartbeat,
        BeaconKind::Stall => Detail::Stall { stalled: Duration::from_secs(2) },
        BeaconKind::Bitrate => Detail::Bitrate { bits_per_second: 1_000_000 },
        BeaconKind::Error => Detail::Error { code: "fragLoadError".into() },
        BeaconKind::End => Detail::End { reason: SessionEnd::Closed },
    };
    Beacon {
        session: SessionId(format!("{session:-<16}")),
        channel: ChannelId::from("main"),
        kind,
        watched: Duration::from_secs_f64(watched),
        // The viewer is 12 s behind the live edge.
        playhead: t(at - 12.0),
        detail,
    }
}

/// Offers a beacon at second `at` (wall clock and monotonic clock move together), admitting unknown sessions as
/// new ones.
fn send(s: &mut Sessions, base: Instant, b: &Beacon, at: f64) -> Result<(), AudienceError> {
    let now = base + Duration::from_secs_f64(at);
    if s.offer(b, t(at), now)? == Known::Unknown {
        s.admit(b, None, t(at), now)?;
    }
    Ok(())
}

fn main() -> ChannelId {
    ChannelId::from("main")
}

#[test]
fn heartbeats_add_watch_time_no_larger_than_the_time_between_them() {
    let base = Instant::now();
    let mut s = Sessions::new(LIMITS, base);
    send(&mut s, base, &beacon("a", BeaconKind::Start, 0.0, 0.0), 0.0).unwrap();
    send(&mut s, base, &beacon("a", BeaconKind::Heartbeat, 10.0, 10.0), 10.0).unwrap();
    // Claims a minute after 10 s: credited 10 s plus the slack.
    send(&mut s, base, &beacon("a", BeaconKind::Heartbeat, 20.0, 60.0), 20.0).unwrap();
    let w = s.pending();
    assert_eq!(w.len(), 1);
    let r = &w[0].session;
    assert_eq!(r.totals.watch, Duration::from_secs(10 + 15));
    assert_eq!(r.totals.startup, Some(Duration::from_millis(900)));
    assert_eq!((r.first_playhead, r.last_playhead, r.last_beacon), (t(-12.0), t(8.0), t(20.0)));
    assert_eq!(
        w[0].spans,
        [
            WatchSpan { from: t(-12.0), to: t(-12.0) },
            WatchSpan { from: t(-12.0), to: t(-2.0) },
            WatchSpan { from: t(-7.0), to: t(8.0) }
        ]
    );
    s.written();
    assert!(s.pending().is_empty(), "nothing new after a write");
    assert_eq!(s.viewers([&main()]), BTreeMap::from([(main(), 1)]));
}

#[test]
fn a_flood_from_one_session_is_refused_beyond_its_bucket_and_accepted_again_after_refill() {
    let base = Instant::now();
    let mut s = Sessions::new(LIMITS, base);
    let mut accepted = 0;
    let mut refused = 0;
    for _ in 0..20 {
        match send(&mut s, base, &beacon("flood", BeaconKind::Stall, 1.0, 0.0), 1.0) {
            Ok(()) => accepted += 1,
            Err(AudienceError::RateLimited { burst: 4, per_minute: 12, .. }) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((accepted, refused), (4, 16), "the burst, then nothing");
    assert_eq!(s.pending()[0].session.totals.stalls, 4, "refused beacons are not counted");
    // 12 a minute: one token every 5 s.
    assert!(send(&mut s, base, &beacon("flood", BeaconKind::Stall, 6.5, 0.0), 6.5).is_ok());
    assert!(send(&mut s, base, &beacon("flood", BeaconKind::Stall, 6.6, 0.0), 6.6).is_err());
}

#[test]
fn sessions_beyond_the_limit_are_refused_and_silent_ones_expire() {
    let base = Instant::now();
    let mut s = Sessions::new(LIMITS, base);
    for (i, id) in ["one", "two", "three"].iter().enumerate() {
        send(&mut s, base, &beacon(id, BeaconKind::Start, i as f64, 0.0), i as f64).unwrap();
    }
    let err = send(&mut s, base, &beacon("four", BeaconKind::Start, 3.0, 0.0), 3.0).unwrap_err();
    assert!(matches!(err, AudienceError::Full { max: 3 }), "{err}");
    send(&mut s, base, &beacon("three", BeaconKind::Heartbeat, 25.0, 10.0), 25.0).unwrap();
    // At 31.5 s "one" (last heard at 0 s) and "two" (1 s) have been silent for more than 30 s.
    assert_eq!(s.expire(t(31.5)), 2);
    assert_eq!(s.viewers([&main()])[&main()], 1);
    let ended: Vec<_> = s.pending().into_iter().filter_map(|w| w.session.ended).collect();
    assert_eq!(ended.len(), 2);
    assert!(ended.iter().all(|(_, why)| *why == SessionEnd::Timeout));
    assert!(ended.contains(&(t(0.0), SessionEnd::Timeout)), "ended when last heard: {ended:?}");
    s.written();
    assert_eq!(s.len(), 1, "ended sessions leave the table once written");
    send(&mut s, base, &beacon("four", BeaconKind::Start, 32.0, 0.0), 32.0).unwrap();
}

#[test]
fn an_end_beacon_ends_the_session_for_good() {
    let base = Instant::now();
    let mut s = Sessions::new(LIMITS, base);
    send(&mut s, base, &beacon("bye", BeaconKind::Start, 0.0, 0.0), 0.0).unwrap();
    send(&mut s, base, &beacon("bye", BeaconKind::End, 4.0, 4.0), 4.0).unwrap();
    assert_eq!(s.viewers([&main()])[&main()], 0);
    let w = s.pending();
    assert_eq!(w[0].session.ended, Some((t(4.0), SessionEnd::Closed)));
    assert_eq!(w[0].session.totals.watch, Duration::from_secs(4));
    assert!(matches!(
        send(&mut s, base, &beacon("bye", BeaconKind::Heartbeat, 5.0, 1.0), 5.0),
        Err(AudienceError::Ended(_))
    ));
    s.written();
    // Once written, the store says how it ended: closed is refused, a timeout is taken up again.
    let stored = w[0].session.clone();
    let hb = beacon("bye", BeaconKind::Heartbeat, 6.0, 1.0);
    assert_eq!(s.offer(&hb, t(6.0), base + Duration::from_secs(6)).unwrap(), Known::Unknown);
    assert!(matches!(s.admit(&hb, Some(stored.clone()), t(6.0), base), Err(AudienceError::Ended(_))));
    let timed_out = SessionRecord { ended: Some((t(4.0), SessionEnd::Timeout)), ..stored };
    s.admit(&hb, Some(timed_out), t(6.0), base).unwrap();
    let w = s.pending();
    assert_eq!((w[0].session.ended, w[0].session.totals.beacons), (None, 3));
    assert_eq!(w[0].session.first_playhead, t(-12.0), "taken up where it was, not restarted");
    assert!(matches!(
        send(&mut s, base, &beacon("never", BeaconKind::End, 7.0, 0.0), 7.0),
        Err(AudienceError::NotLive(_))
    ));
}

#[test]
fn switches_count_only_real_changes_and_a_session_stays_on_its_channel() {
    let base = Instant::now();
    let mut s = Sessions::new(LIMITS, base);
    send(&mut s, base, &beacon("abr", BeaconKind::Start, 0.0, 0.0), 0.0).unwrap();
    let mut rate = beacon("abr", BeaconKind::Bitrate, 1.0, 0.0);
    send(&mut s, base, &rate, 1.0).unwrap();
    rate.detail = Detail::Bitrate { bits_per_second: 2_000_000 };
    send(&mut s, base, &rate, 2.0).unwrap();
    let t0 = &s.pending()[0].session.totals;
    assert_eq!((t0.bitrate_switches, t0.last_bitrate), (1, Some(2_000_000)), "the first level is not a switch");
    let mut other = beacon("abr", BeaconKind::Heartbeat, 3.0, 1.0);
    other.channel = ChannelId::from("news");
    assert!(matches!(send(&mut s, base, &other, 3.0), Err(AudienceError::OtherChannel { .. })));
    assert!(matches!(
        send(&mut s, base, &beacon("abr", BeaconKind::Start, 3.0, 0.0), 3.0),
        Err(AudienceError::AlreadyStarted(_))
    ));
}

#[test]
fn a_start_that_arrives_after_the_beacons_sent_with_it_is_still_counted_once() {
    let base = Instant::now();
    let mut s = Sessions::new(LIMITS, base);
    // The page sends start and bitrate together; the bitrate beacon wins the race.
    send(&mut s, base, &beacon("race", BeaconKind::Bitrate, 0.0, 0.0), 0.0).unwrap();
    send(&mut s, base, &beacon("race", BeaconKind::Start, 0.1, 0.0), 0.1).unwrap();
    let w = s.pending();
    assert_eq!(w[0].session.totals.startup, Some(Duration::from_millis(900)), "the late start's startup time");
    assert_eq!(w[0].session.totals.beacons, 2);
    assert!(matches!(
        send(&mut s, base, &beacon("race", BeaconKind::Start, 0.2, 0.0), 0.2),
        Err(AudienceError::AlreadyStarted(_))
    ));
}

#[test]
fn a_storm_of_new_session_ids_is_held_back() {
    let limits = Limits { max_sessions: 100_000, ..LIMITS };
    let base = Instant::now();
    let mut s = Sessions::new(limits, base);
    let mut refused = 0;
    for i in 0..300 {
        match send(&mut s, base, &beacon(&format!("made-up-{i}"), BeaconKind::Heartbeat, 0.0, 0.0), 0.0) {
            Ok(()) => {}
            Err(AudienceError::TooManyNew) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(refused, 100, "200 new sessions at once, then none until the bucket refills");
}
