//! Signed viewer URLs and country rules on a real daemon: without a token, with a tampered, another channel's or an
//! expired one the stream is refused (403, readable by a player: CORS); a URL from `vvtvctl sign-url` plays its
//! whole tree (multivariant, variant, segment); a refused country gets 451 and a page that says why. Tokens for the
//! tampering cases are computed with `openssl` from the documented formula, not with the daemon's code.

use reqwest::blocking::Client;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vvtv_testkit::daemon::{write_config, Daemon, SMALL_LADDER};

fn hmac_hex(secret: &str, message: &str) -> String {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", secret, "-r"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl runs");
    child.stdin.take().expect("stdin").write_all(message.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("openssl output");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_owned()
}

fn get(client: &Client, url: &str, headers: &[(&str, &str)]) -> (u16, String, reqwest::header::HeaderMap) {
    let mut req = client.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().expect("request");
    let status = resp.status().as_u16();
    let h = resp.headers().clone();
    (status, resp.text().unwrap_or_default(), h)
}

#[test]
fn signed_urls_and_country_rules_guard_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "{SMALL_LADDER}\n[access]\nsigned_urls = true\ngeo_deny = [\"RU\"]\n[[channels]]\nid = \"main\"\nname = \"Main\"\n\
         demo_clips = false\n[[channels]]\nid = \"news\"\nname = \"News\"\ndemo_clips = false\n"
    );
    let d = Daemon::start(dir.path(), &write_config(dir.path(), &extra));
    let client = Client::new();

    // The URL the operator hands out, and the whole tree it opens.
    let out = d.vvtvctl(&["sign-url", "--channel", "main", "--ttl", "6h"]);
    assert!(out.status.success(), "sign-url: {}", String::from_utf8_lossy(&out.stderr));
    let url = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(url.starts_with(&format!("{}/s/", d.base)) && url.ends_with("/hls/main/live.m3u8"), "{url}");
    let deadline = Instant::now() + Duration::from_secs(90);
    let multivariant = loop {
        let (status, body, _) = get(&client, &url, &[]);
        if status == 200 {
            break body;
        }
        assert!(Instant::now() < deadline, "the signed playlist never answered 200 (last {status})");
        std::thread::sleep(Duration::from_millis(250));
    };
    let variant = multivariant.lines().find(|l| l.ends_with(".m3u8")).expect("a variant").to_owned();
    let base = url.trim_end_matches("live.m3u8");
    let deadline = Instant::now() + Duration::from_secs(60);
    let media = loop {
        let (status, body, _) = get(&client, &format!("{base}{variant}"), &[]);
        if status == 200 && body.contains(".ts") {
            break body;
        }
        assert!(Instant::now() < deadline, "the signed variant never listed a segment (last {status})");
        std::thread::sleep(Duration::from_millis(250));
    };
    let segment = media.lines().find(|l| l.ends_with(".ts")).expect("a segment").to_owned();
    let rung = variant.trim_end_matches("live.m3u8");
    let (status, _, _) = get(&client, &format!("{base}{rung}{segment}"), &[]);
    assert_eq!(status, 200, "a segment under the signed prefix");

    // Refused: no token, tampered, another channel's, expired. Each with CORS so a player can read it.
    let unsigned = d.url("/hls/main/live.m3u8");
    let (status, body, h) = get(&client, &unsigned, &[]);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("signed URL"), "{body}");
    assert_eq!(h.get("access-control-allow-origin").and_then(|v| v.to_str().ok()), Some("*"));

    let secret = std::fs::read_to_string(d.data_dir().join("access.secret")).expect("access.secret");
    let secret = secret.trim();
    let now = chrono::Utc::now().timestamp() as u64;
    let signed =
        |channel: &str, expiry: u64, token: &str| d.url(&format!("/s/{expiry}/{token}/hls/{channel}/live.m3u8"));
    // The documented formula, computed independently, is accepted...
    let expiry = now + 600;
    let good = hmac_hex(secret, &format!("{expiry}/hls/main/"));
    assert_eq!(get(&client, &signed("main", expiry, &good), &[]).0, 200, "a token from the documented formula");
    // ...and every variation of it is not.
    let mut tampered = good.clone().into_bytes();
    tampered[0] = if tampered[0] == b'a' { b'b' } else { b'a' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(get(&client, &signed("main", expiry, &tampered), &[]).0, 403, "tampered token");
    assert_eq!(get(&client, &signed("main", expiry + 1, &good), &[]).0, 403, "expiry moved");
    assert_eq!(get(&client, &signed("news", expiry, &good), &[]).0, 403, "another channel's token");
    let past = now - 10;
    let expired = hmac_hex(secret, &format!("{past}/hls/main/"));
    let (status, body, _) = get(&client, &signed("main", past, &expired), &[]);
    assert_eq!(status, 403, "expired token");
    assert!(body.contains("expired"), "{body}");

    // Countries: refused with 451 on the stream and the page; others and no header (no CDN) pass.
    let (status, body, h) = get(&client, &url, &[("CF-IPCountry", "RU")]);
    assert_eq!(status, 451, "{body}");
    assert!(body.contains("RU"), "{body}");
    assert_eq!(h.get("access-control-allow-origin").and_then(|v| v.to_str().ok()), Some("*"));
    let (status, page, _) = get(&client, &d.url("/"), &[("CF-IPCountry", "RU"), ("Accept", "text/html")]);
    assert_eq!(status, 451);
    assert!(page.contains("<h1>Not available here</h1>"), "{page}");
    assert_eq!(get(&client, &url, &[("CF-IPCountry", "FR")]).0, 200, "an allowed country");

    // The control API is not a viewer route: the token guards it, not the country rules.
    let status = client
        .get(d.url("/api/v1/status"))
        .bearer_auth(d.token())
        .header("CF-IPCountry", "RU")
        .send()
        .expect("status")
        .status();
    assert_eq!(status.as_u16(), 200);

    // A TTL the daemon refuses, with the reason and a non-zero exit.
    let out = d.vvtvctl(&["sign-url", "--channel", "main", "--ttl", "10s"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ttl_seconds 10"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
