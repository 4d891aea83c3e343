//! A player (or a CDN, which would cache the 404) that opens a channel at the very first moment it exists never gets
//! a 404 for a URI it was given: from the first request after the daemon starts listening, the channel's
//! `live.m3u8` is polled, and every variant playlist it lists and every segment those list must answer 200 — on a
//! fresh start, and again right after a `kill -9` and restart, when the recovered playlists are served at once.

use std::collections::HashSet;
use std::time::{Duration, Instant};
use vvtv_testkit::daemon::{listed_segments, write_config, Daemon, SMALL_LADDER};

/// What a player opening the stream saw.
struct Opened {
    /// Polls of `live.m3u8` answered 404 before the first 200 (nothing listed anything yet).
    not_yet: u32,
    /// Distinct segments fetched, per rung.
    segments: HashSet<(String, u64)>,
    /// URIs fetched (playlists and segments), every one answered 200.
    fetched: u64,
}

fn status_and_body(client: &reqwest::blocking::Client, url: &str) -> (u16, String) {
    match client.get(url).send() {
        Ok(res) => {
            let status = res.status().as_u16();
            (status, res.text().unwrap_or_default())
        }
        Err(e) => panic!("GET {url}: {e}"),
    }
}

/// Polls like an eager player from now until `new_segments` segments numbered from `from_seq` up have been fetched
/// on every rung; panics on any listed URI that does not answer 200.
fn open_at_first_moment(d: &Daemon, from_seq: u64, new_segments: usize) -> Opened {
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().expect("client");
    let mut seen = Opened { not_yet: 0, segments: HashSet::new(), fetched: 0 };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "the channel did not produce {new_segments} segments in time");
        let (status, top) = status_and_body(&client, &d.url("/hls/main/live.m3u8"));
        match status {
            200 => {}
            404 if seen.fetched == 0 => {
                seen.not_yet += 1;
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            _ => panic!("live.m3u8 answered {status} after it had been served"),
        }
        seen.fetched += 1;
        let variants: Vec<&str> = top.lines().filter(|l| !l.starts_with('#') && l.ends_with(".m3u8")).collect();
        assert_eq!(variants.len(), 2, "live.m3u8 lists both rungs:\n{top}");
        let mut complete = true;
        for variant in variants {
            let (status, playlist) = status_and_body(&client, &d.url(&format!("/hls/main/{variant}")));
            assert_eq!(status, 200, "{variant}, listed by live.m3u8, answered {status}");
            seen.fetched += 1;
            let rung = variant.trim_end_matches("/live.m3u8");
            let listed = listed_segments(&playlist);
            assert!(!listed.is_empty(), "{variant} lists no segment:\n{playlist}");
            for seq in listed {
                if !seen.segments.insert((rung.to_string(), seq)) {
                    continue;
                }
                let url = d.url(&format!("/hls/main/{rung}/seg{seq:08}.ts"));
                let res = client.get(&url).send().unwrap_or_else(|e| panic!("GET {url}: {e}"));
                assert_eq!(
                    res.status(),
                    200,
                    "segment {seq} of {rung}, listed by {variant}, answered {}",
                    res.status()
                );
                assert!(!res.bytes().expect("body").is_empty(), "segment {seq} of {rung} is empty");
                seen.fetched += 1;
            }
            let new = seen.segments.iter().filter(|(r, s)| r == rung && *s >= from_seq).count();
            complete &= new >= new_segments;
        }
        if complete {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_player_at_the_first_moment_never_gets_a_404_for_a_listed_uri_fresh_or_after_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let extra = format!("{SMALL_LADDER}\n[[channels]]\nid = \"main\"\nname = \"First moment\"\ndemo_clips = false\n");
    let config = write_config(dir.path(), &extra);

    let mut d = Daemon::start(dir.path(), &config);
    let fresh = open_at_first_moment(&d, 0, 3);
    assert!(fresh.not_yet > 0, "the first poll came after the channel was on air: this run proves nothing");
    eprintln!("fresh start: {} polls before the first playlist, then {} URIs, all 200", fresh.not_yet, fresh.fetched);
    let last = fresh.segments.iter().map(|(_, s)| *s).max().expect("segments");

    assert!(d.signal_and_wait(libc::SIGKILL, Duration::from_secs(10)).is_some(), "kill -9");
    drop(d);
    let d = Daemon::start(dir.path(), &config);
    let again = open_at_first_moment(&d, last + 1, 2);
    eprintln!("after kill -9: {} polls before the first playlist, then {} URIs, all 200", again.not_yet, again.fetched);
    assert!(
        again.segments.iter().any(|(_, s)| *s <= last),
        "the recovered window, listed before the restart, is served again"
    );
}
