//! The curator end to end, in the real daemon with real Chromium: a fixture web site served by the test (pages
//! declaring videos in different ways, a section robots.txt disallows, a search page and a feed) and a stand-in LLM
//! server that dies in the middle of the run. Exactly the licensed, playable, HD videos must become plans; every other
//! candidate must be rejected with its reason; the disallowed section must never be requested; the breaker must open
//! and the deterministic scorer take over; and no Chromium process may outlive the daemon.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use vvtv_testkit::daemon::{write_config, Daemon, SMALL_LADDER};
use vvtv_testkit::llm::{LlmServer, Mode};
use vvtv_testkit::media;
use vvtv_testkit::site::{Site, SiteBuilder};

fn page(title: &str, head: &str, body: &str) -> String {
    format!("<!doctype html><html><head><title>{title}</title>{head}</head><body><h1>{title}</h1>{body}</body></html>")
}

const CC_BY: &str = "https://creativecommons.org/licenses/by/4.0/";

/// The fixture site. Planned: sunrise, harbour, forest, river, meadow (search) and tide (feed). Rejected: nolicense,
/// noncommercial, small, short, broken. Never requested: anything under /private/.
fn fixture(media_dir: &Path) -> SiteBuilder {
    let hd = (1280, 720);
    let mut site = Site::builder().robots(200, "User-agent: *\nDisallow: /private/\n");
    site = site.page(
        "/",
        page(
            "Open clips",
            "",
            r#"<ul><li><a href="/watch/sunrise.html">Sunrise</a></li>
               <li><a href="/watch/harbour.html">Harbour</a></li>
               <li><a href="/watch/forest.html">Forest</a></li>
               <li><a href="/downloads.html">Downloads</a></li>
               <li><a href="/watch/nolicense.html">No license</a></li>
               <li><a href="/watch/noncommercial.html">Non-commercial</a></li>
               <li><a href="/watch/small.html">Small</a></li>
               <li><a href="/watch/short.html">Short</a></li>
               <li><a href="/watch/broken.html">Broken</a></li>
               <li><a href="/private/gem.html">Members only</a></li>
               <li><a href="/watch/sunrise.html?ref=again">Sunrise again</a></li></ul>
               <form action="/private/subscribe" method="post"><input name="mail"><button>Subscribe</button></form>"#,
        ),
    );
    // A <video> element, licensed with rel=license.
    site = site.page(
        "/watch/sunrise.html",
        page(
            "Sunrise over the bay",
            r#"<meta name="description" content="First light on the water.">"#,
            &format!(
                r#"<video src="/media/sunrise.mp4" controls></video>
                   <p><a rel="license" href="{CC_BY}">CC BY 4.0</a></p>"#
            ),
        ),
    );
    // JSON-LD VideoObject with its license.
    site = site.page(
        "/watch/harbour.html",
        page(
            "Harbour",
            r#"<script type="application/ld+json">{"@context": "https://schema.org", "@type": "VideoObject",
                "name": "Harbour at noon", "description": "Boats coming in.", "contentUrl": "/media/harbour.mp4",
                "license": "https://creativecommons.org/publicdomain/zero/1.0/"}</script>"#,
            "<p>The video is described in the page's metadata.</p>",
        ),
    );
    // Open Graph video with a license link in the head.
    site = site.page(
        "/watch/forest.html",
        page(
            "Forest",
            r#"<meta property="og:title" content="Forest path">
               <meta property="og:video" content="/media/forest.mp4">
               <meta property="og:video:type" content="video/mp4">
               <link rel="license" href="https://creativecommons.org/licenses/by-sa/4.0/">"#,
            "<p>A walk.</p>",
        ),
    );
    // A plain link to the file, the page under CC BY.
    site = site.page(
        "/downloads.html",
        page(
            "Downloads",
            "",
            &format!(
                r#"<p><a href="/media/river.mp4">River (MP4, 720p)</a></p>
                   <footer>All files on this page: <a rel="license" href="{CC_BY}">CC BY 4.0</a></footer>"#
            ),
        ),
    );
    site = site.page(
        "/watch/nolicense.html",
        page("All rights reserved", "", r#"<video src="/media/nolicense.mp4"></video><p>© Somebody.</p>"#),
    );
    site = site.page(
        "/watch/noncommercial.html",
        page(
            "Non-commercial",
            "",
            r#"<video src="/media/noncommercial.mp4"></video>
               <a rel="license" href="https://creativecommons.org/licenses/by-nc/4.0/">CC BY-NC 4.0</a>"#,
        ),
    );
    for (name, title) in [("small", "Small"), ("short", "Short"), ("broken", "Broken")] {
        site = site.page(
            &format!("/watch/{name}.html"),
            page(
                title,
                "",
                &format!(r#"<video src="/media/{name}.mp4"></video><a rel="license" href="{CC_BY}">CC BY</a>"#),
            ),
        );
    }
    site = site.page(
        "/private/gem.html",
        page(
            "Members",
            "",
            &format!(r#"<video src="/private/gem.mp4"></video><a rel="license" href="{CC_BY}">CC BY</a>"#),
        ),
    );
    // The search page answers any query with one result.
    site = site.page("/search", page("Search results", "", r#"<a href="/watch/meadow.html">Meadow</a>"#));
    site = site.page(
        "/watch/meadow.html",
        page(
            "Meadow in the wind",
            "",
            &format!(
                r#"<video controls><source src="/media/meadow.mp4" type="video/mp4"></video>
                   <a rel="license" href="{CC_BY}">CC BY</a>"#
            ),
        ),
    );
    site = site.file(
        "/feed.xml",
        "application/rss+xml",
        br#"<?xml version="1.0"?>
<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"
     xmlns:creativeCommons="http://backend.userland.com/creativeCommonsRssModule">
<channel><title>Clips feed</title><link>/</link><description>New clips</description>
<item><title>Tide pools</title><link>/watch/tide.html</link>
  <media:content url="/media/tide.mp4" type="video/mp4" medium="video"/>
  <creativeCommons:license>https://creativecommons.org/licenses/by/4.0/</creativeCommons:license></item>
</channel></rss>"#
            .to_vec(),
    );

    let clips = [
        ("sunrise", hd, 6, "ball"),
        ("harbour", hd, 6, "smpte"),
        ("forest", hd, 6, "snow"),
        ("river", hd, 6, "circular"),
        ("meadow", hd, 6, "zone-plate"),
        ("tide", hd, 6, "gamut"),
        ("nolicense", hd, 6, "spokes"),
        ("noncommercial", hd, 6, "pinwheel"),
        ("small", (640, 360), 6, "ball"),
        ("short", hd, 2, "bar"),
    ];
    for (name, size, seconds, pattern) in clips {
        let clip = media::test_video(&media_dir.join(format!("{name}.mp4")), size, seconds, pattern);
        site = site.video(&format!("/media/{name}.mp4"), clip);
    }
    site.video("/private/gem.mp4", media::test_video(&media_dir.join("gem.mp4"), hd, 6, "checkers-8"))
        .video("/media/broken.mp4", b"\x00\x00\x00\x18ftypmp42 but nothing playable follows".to_vec())
}

fn plans(daemon: &Daemon) -> Vec<Value> {
    daemon.api_get("/api/v1/plans?limit=500")["plans"].as_array().cloned().unwrap_or_default()
}

/// Media URL path (e.g. `/media/sunrise.mp4`) → plan.
fn by_media(plans: &[Value]) -> BTreeMap<String, Value> {
    plans
        .iter()
        .map(|p| {
            let url = p["media_url"].as_str().unwrap_or_default();
            let path = url.split_once("://").and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_owned()));
            (path.unwrap_or_else(|| url.to_owned()), p.clone())
        })
        .collect()
}

fn chromium_under(dir: &Path) -> String {
    let out = Command::new("pgrep").arg("-af").arg(dir.as_os_str()).output().expect("run pgrep");
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains("chrom")).collect::<Vec<_>>().join("\n")
}

#[test]
fn discovery_plans_exactly_the_good_videos_politely_and_survives_the_llm_dying() {
    let dir = tempfile::tempdir().expect("tempdir");
    let media_dir = dir.path().join("media");
    std::fs::create_dir_all(&media_dir).expect("media dir");
    let site = fixture(&media_dir).start();

    // The model answers twice, then its server dies: connections are refused from then on.
    let llm = LlmServer::start(Mode::Sequence(vec![Mode::Good(0.9), Mode::Good(0.9), Mode::Down]));
    let llm_url = llm.url();
    let (llm_tx, llm_rx) = std::sync::mpsc::channel();
    let killer = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(600);
        while llm.request_count() < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let answered = llm.request_count();
        drop(llm);
        let _ = llm_tx.send(answered);
    });

    // Chromium's throw-away profiles go under the test's own temp dir, so leftovers can be found by path.
    let tmp = dir.path().join("tmp");
    std::fs::create_dir_all(&tmp).expect("tmp dir");
    let config = write_config(
        dir.path(),
        &format!(
            "{SMALL_LADDER}
[factory]
allow_private_addresses = true
vmaf_min = 30.0
[planner]
min_score = 0.6
auto_approve = true
[curator]
min_delay_per_domain_ms = 200
llm_cool_down_seconds = 3600
user_agent_contact = \"https://vvtv.test/contact\"
[curator.llm]
protocol = \"ollama\"
url = \"{llm_url}\"
model = \"test-model\"
timeout_seconds = 5
[[curator.sources]]
name = \"clips\"
kind = \"browser\"
interval_minutes = 0
start_urls = [\"{base}/\"]
search_url = \"{base}/search?q={{query}}\"
depth = 2
page_budget = 30
[[curator.sources]]
name = \"clips-feed\"
kind = \"feed\"
interval_minutes = 60
url = \"{base}/feed.xml\"
[[channels]]
id = \"main\"
name = \"Curator test\"
demo_clips = false
",
            base = site.base()
        ),
    );
    let mut daemon = Daemon::start_with_env(dir.path(), &config, &[("TMPDIR", tmp.as_os_str())]);

    // 1. A discovery now, with a query for the search URL.
    let out = daemon.vvtvctl(&["discover", "--query", "wind meadow", "--max-plans", "20"]);
    let printed = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "vvtvctl discover failed:\n{printed}");
    eprintln!("vvtvctl discover:\n{printed}");

    let after_discovery = by_media(&plans(&daemon));
    let planned: BTreeSet<&str> =
        after_discovery.iter().filter(|(_, p)| p["status"] != "rejected").map(|(path, _)| path.as_str()).collect();
    let browser_good =
        ["/media/forest.mp4", "/media/harbour.mp4", "/media/meadow.mp4", "/media/river.mp4", "/media/sunrise.mp4"];
    assert_eq!(planned, browser_good.into_iter().collect(), "planned after discovery: {after_discovery:#?}");

    // Every rejection carries its reason, and discover printed it.
    let rejected = [
        ("/media/nolicense.mp4", "no license"),
        ("/media/noncommercial.mp4", "not in the allowlist"),
        ("/media/small.mp4", "below the minimum height"),
        ("/media/short.mp4", "shorter than the minimum"),
        ("/media/broken.mp4", "not playable"),
    ];
    for (path, reason) in rejected {
        let plan = after_discovery.get(path).unwrap_or_else(|| panic!("no plan row for {path}: {after_discovery:#?}"));
        assert_eq!(plan["status"], "rejected", "{path}: {plan}");
        let reasons = plan["reasons"].as_str().unwrap_or_default();
        assert!(reasons.contains(reason), "{path}: reason {reasons:?} should say {reason:?}");
        assert!(printed.contains(path.trim_start_matches("/media/")), "discover output does not name {path}");
    }
    assert!(printed.contains("below the minimum height"), "discover output lacks the reasons:\n{printed}");

    // The facts of a planned video come from playing it in Chromium.
    let sunrise = &after_discovery["/media/sunrise.mp4"];
    assert_eq!((sunrise["width"].as_i64(), sunrise["height"].as_i64()), (Some(1280), Some(720)), "{sunrise}");
    assert_eq!(sunrise["license"], "cc-by", "{sunrise}");
    let duration = sunrise["duration_ms"].as_i64().unwrap_or_default();
    assert!((5500..=6500).contains(&duration), "sunrise duration {duration} ms");
    assert_eq!(after_discovery["/media/harbour.mp4"]["license"], "cc0");
    assert_eq!(after_discovery["/media/forest.mp4"]["license"], "cc-by-sa");

    // 2. The LLM scored until it died; then the breaker opened and the deterministic scorer took over.
    let answered = llm_rx.recv_timeout(Duration::from_secs(5)).expect("the LLM server was stopped");
    killer.join().expect("killer thread");
    let scorers: Vec<String> =
        browser_good.iter().map(|p| after_discovery[*p]["scorer"].as_str().unwrap_or_default().to_owned()).collect();
    let by_llm = scorers.iter().filter(|s| s.starts_with("llm:")).count();
    assert_eq!(by_llm, 2.min(answered), "scorers: {scorers:?}");
    assert_eq!(scorers.iter().filter(|s| *s == "deterministic").count(), 5 - by_llm, "scorers: {scorers:?}");
    for (path, plan) in after_discovery.iter().filter(|(_, p)| p["scorer"] == "deterministic") {
        let reasons = plan["reasons"].as_str().unwrap_or_default();
        assert!(reasons.contains("deterministic because"), "{path}: a fallback plan should say why: {reasons:?}");
    }
    let status = daemon.vvtvctl(&["status"]);
    let status_text = String::from_utf8_lossy(&status.stdout);
    assert!(status_text.contains("llm breaker: open"), "vvtvctl status:\n{status_text}");

    // Plans the LLM liked (0.9 ≥ min_score) went to the factory; the deterministic ones (0.57) wait for approval.
    let job_inputs = || -> BTreeSet<String> {
        let jobs = daemon.api_get("/api/v1/jobs")["jobs"].as_array().cloned().unwrap_or_default();
        jobs.iter().filter_map(|j| j["input"].as_str().map(str::to_owned)).collect()
    };
    let inputs = job_inputs();
    for plan in after_discovery.values().filter(|p| p["status"] != "rejected") {
        let media_url = plan["media_url"].as_str().unwrap_or_default();
        if plan["scorer"].as_str().unwrap_or_default().starts_with("llm:") {
            assert_ne!(plan["status"], "pending", "{plan}");
            assert!(inputs.contains(media_url), "no job for {media_url}: {inputs:?}");
        } else {
            assert_eq!(plan["status"], "pending", "{plan}");
            assert!(!inputs.contains(media_url), "a job for the pending plan {media_url}");
        }
    }
    let pending = after_discovery.values().find(|p| p["status"] == "pending").expect("a pending plan").clone();
    let id = pending["id"].as_i64().expect("plan id").to_string();
    let approved = daemon.vvtvctl(&["plans", "approve", &id]);
    assert!(approved.status.success(), "approve: {}", String::from_utf8_lossy(&approved.stderr));
    let media_url = pending["media_url"].as_str().unwrap_or_default();
    assert!(job_inputs().contains(media_url), "no job for {media_url} after approval");

    // 3. Dedupe: a second discovery plans nothing new.
    let again = daemon.vvtvctl(&["discover", "--query", "wind meadow", "--max-plans", "20"]);
    assert!(again.status.success());
    // (The feed source may have run in between: its plan is not the browser's.)
    let mut after_again = by_media(&plans(&daemon));
    after_again.remove("/media/tide.mp4");
    assert_eq!(after_again.len(), after_discovery.len(), "a second discovery made new plans: {after_again:#?}");

    // 4. The feed source runs on its own schedule (its first run comes shortly after start) and plans its clip,
    //    scored by the fallback without asking the dead model.
    let deadline = Instant::now() + Duration::from_secs(180);
    let tide = loop {
        if let Some(plan) = by_media(&plans(&daemon)).remove("/media/tide.mp4") {
            break plan;
        }
        assert!(Instant::now() < deadline, "the feed source planned nothing");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_ne!(tide["status"], "rejected", "{tide}");
    assert_eq!((tide["license"].as_str(), tide["scorer"].as_str()), (Some("cc-by"), Some("deterministic")), "{tide}");

    // 5. Politeness: robots.txt read, the disallowed section never requested (not even the form's target), every
    //    request naming VVTV with the contact URL.
    let hits = site.hits();
    let targets: Vec<&str> = hits.iter().map(|h| h.target.as_str()).collect();
    assert!(targets.contains(&"/robots.txt"), "robots.txt was not read: {targets:?}");
    assert!(!targets.iter().any(|t| t.starts_with("/private/")), "a disallowed path was requested: {targets:?}");
    assert!(targets.iter().any(|t| t.starts_with("/search?q=wind")), "the search URL was not used: {targets:?}");
    for hit in &hits {
        assert!(
            hit.user_agent.contains("VVTV") && hit.user_agent.contains("https://vvtv.test/contact"),
            "{} was requested with User-Agent {:?}",
            hit.target,
            hit.user_agent
        );
    }

    // 6. Shutdown leaves no Chromium behind.
    let exit = daemon.signal_and_wait(libc::SIGTERM, Duration::from_secs(60));
    assert!(exit.is_some(), "the daemon did not stop on SIGTERM");
    std::thread::sleep(Duration::from_millis(500));
    let left = chromium_under(&tmp);
    assert!(left.is_empty(), "Chromium outlived the daemon:\n{left}");
}
