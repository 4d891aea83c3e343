//! What the browser tests share: the fixture site's pages, browser and politeness settings, and a Chromium check.
//!
//! The site itself and the test videos come from `vvtv_testkit`; the pages here are what the crawler is tested on.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use vvtv_testkit::site::{Site, SiteBuilder};

use super::BrowserOptions;
use crate::curator::politeness::Politeness;

const UA: &str = "VVTV/0.1 (+https://vvtv.invalid/contact)";

pub(crate) fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

pub(crate) fn options(page_timeout: Duration) -> BrowserOptions {
    BrowserOptions {
        chromium: PathBuf::from("/usr/bin/chromium"),
        user_agent: UA.to_string(),
        page_timeout,
        min_delay_per_domain: Duration::from_millis(100),
    }
}

pub(crate) fn politeness() -> Politeness {
    Politeness::new(UA, reqwest::Client::new()).with_min_delay(Duration::from_millis(100))
}

/// Chromium processes still running with `profile` on their command line.
pub(crate) fn chromium_processes(profile: &Path) -> String {
    let output = Command::new("pgrep").arg("-f").arg(profile).output().expect("pgrep runs");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

const ROBOTS: &str = "User-agent: *\nDisallow: /private/\nCrawl-delay: 1\n";

const INDEX: &str = r#"<!doctype html><html><head><title>VVTV fixture</title></head><body>
    <h1>Fixture</h1>
    <a href="/cc-by.html">CC BY video</a> <a href="/cc0.html#top">CC0 video</a>
    <a href="/unlicensed.html">Unlicensed</a> <a href="/links.html">Links</a> <a href="/gallery.html">Gallery</a>
    <a href="/og.html">Open Graph</a>
    <a href="/private/secret.html">Private</a> <a href="/redirect-private">Moved</a>
    <a href="/missing.html">Missing</a> <a href="/cc-by.html#again">CC BY again</a>
    <a href="http://elsewhere.invalid/page.html">Elsewhere</a> <a href="mailto:someone@example.org">Mail</a>
    <form action="/private/form-target" method="post"><input name="q" value="x"><button>Go</button></form>
    </body></html>"#;

const CC_BY: &str = r#"<!doctype html><html><head><title>CC BY page</title>
    <meta name="description" content="A test pattern in HD."><meta name="keywords" content="test, pattern, HD">
    </head><body><h1>Test pattern</h1>
    <video src="/media/good.mp4" title="Test pattern in HD" controls></video>
    <script>JSON.stringify = () => "null"; /* page scripts cannot tamper with the extraction */</script>
    <p>Licensed under <a rel="license" href="https://creativecommons.org/licenses/by/4.0/">CC BY 4.0</a>.</p>
    </body></html>"#;

const CC0: &str = r#"<!doctype html><html><head><title>CC0 page</title>
    <script type="application/ld+json">{"@context": "https://schema.org", "@graph": [
      {"@type": "WebPage", "name": "A page"},
      {"@type": "VideoObject", "name": "Zero Rights Clip", "description": "Dedicated to the public domain.",
       "contentUrl": "/media/cc0.mp4", "duration": "PT1M30S", "keywords": "zero, clip",
       "license": "https://creativecommons.org/publicdomain/zero/1.0/"}]}</script>
    </head><body><h1>Nothing to see</h1></body></html>"#;

const UNLICENSED: &str = r#"<!doctype html><html><head><title>Unlicensed page</title>
    <meta property="og:title" content="An unlicensed clip"></head><body>
    <video controls><source src="/media/unlicensed.webm" type="video/webm">
    <source src="/media/unlicensed.mp4" type="video/mp4"></video></body></html>"#;

const LINKS: &str = r#"<!doctype html><html><head><title>Links</title></head><body><h1>Downloads</h1>
    <p><a href="/media/linked.mp4">Linked clip</a> <a href="/media/good.mp4">Same clip again</a></p>
    <a href="/deep.html">Deeper</a> <a href="/deeper1.html">One</a> <a href="/deeper2.html">Two</a>
    </body></html>"#;

const DEEP: &str = r#"<!doctype html><html><head><title>Deep</title></head><body>
    <video src="/media/deep.mp4" aria-label="Deep clip"></video><a href="/deepest.html">Deepest</a>
    </body></html>"#;

const GALLERY: &str = r#"<!doctype html><html><head><title>Gallery</title></head><body><h1>Gallery</h1>
    <figure><video src="/media/low.mp4"></video><figcaption>Low resolution sample</figcaption>
      <a rel="license" href="/terms.html">CC BY-SA 4.0</a></figure>
    <figure><video src="/media/broken.mp4"></video><figcaption>Broken file</figcaption>
      <small><a rel="license" href="https://creativecommons.org/licenses/by-nc-nd/4.0/">license</a></small></figure>
    <figure><video src="/media/bare.mp4"></video><figcaption>No license here</figcaption></figure>
    <footer>Gallery footer</footer></body></html>"#;

const OPEN_GRAPH: &str = r#"<!doctype html><html><head><title>OG page</title>
    <meta property="og:title" content="Open Graph clip">
    <meta property="og:description" content="Declared with Open Graph.">
    <meta property="og:video" content="/media/og.mp4"><meta property="og:video:secure_url" content="/media/og.mp4">
    <meta property="og:video:type" content="video/mp4"><meta property="video:duration" content="42">
    <meta property="article:tag" content="graph"><meta name="dcterms.license" content="CC BY-NC 4.0">
    <script type="application/ld+json">{"@type": "VideoObject", "name": "A player, not a file",
      "embedUrl": "https://player.example/embed/1"}</script>
    </head><body><p>A player would be here.</p></body></html>"#;

const PLAIN: &str = "<!doctype html><html><head><title>Plain</title></head><body><p>Nothing.</p></body></html>";
const HANG: &str = "<!doctype html><html><body><script>for (;;) {}</script></body></html>";
const RECOVER: &str = r#"<!doctype html><html><body><a href="/crash.html">Crash</a> <a href="/hang.html">Hang</a>
    <a href="/cc-by.html">CC BY</a></body></html>"#;

/// The fixture site: a robots.txt with a disallowed section, pages that declare videos in every way the crawler
/// reads, pages that hang or crash the browser, and a redirect into the disallowed section. Its "videos" are not
/// playable; a test that plays one adds a real one.
pub(crate) fn fixture_site() -> SiteBuilder {
    let pages = [
        ("/", INDEX),
        ("/cc-by.html", CC_BY),
        ("/cc0.html", CC0),
        ("/unlicensed.html", UNLICENSED),
        ("/links.html", LINKS),
        ("/deep.html", DEEP),
        ("/deeper1.html", PLAIN),
        ("/deeper2.html", PLAIN),
        ("/deepest.html", PLAIN),
        ("/gallery.html", GALLERY),
        ("/og.html", OPEN_GRAPH),
        ("/terms.html", PLAIN),
        ("/private/secret.html", PLAIN),
        ("/private/trap.html", PLAIN),
        ("/hang.html", HANG),
        ("/crash.html", PLAIN),
        ("/recover.html", RECOVER),
    ];
    let mut site = Site::builder().robots(200, ROBOTS).redirect("/redirect-private", "/private/trap.html");
    for (path, html) in pages {
        site = site.page(path, html);
    }
    for name in ["good", "cc0", "unlicensed", "linked", "deep", "low", "broken", "bare", "og"] {
        site = site.video(&format!("/media/{name}.mp4"), b"not really a video".to_vec());
    }
    site
}
