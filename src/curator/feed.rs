//! Feed sources: RSS, Atom, JSON Feed and Media RSS (parsed by feed-rs). Each entry with a video enclosure or
//! `media:content` becomes a candidate; its license comes from a `rel="license"` link, the entry's rights text, or
//! a Creative Commons / Media RSS license element in the entry's XML.

use super::browser::Found;
use super::error::CuratorError;
use super::license::normalize_license;
use super::politeness::Politeness;

/// Media types and file endings taken as video.
const VIDEO_EXTENSIONS: [&str; 6] = [".mp4", ".m4v", ".mov", ".webm", ".mkv", ".ogv"];

/// Fetches and parses a feed (robots.txt and the per-domain delay apply), returning its video entries.
pub async fn fetch(url: &str, politeness: &Politeness, client: &reqwest::Client) -> Result<Vec<Found>, CuratorError> {
    let failed = |reason: String| CuratorError::Feed { url: url.to_owned(), reason };
    politeness.allowed(url).await.map_err(failed)?;
    politeness.wait_turn(url).await;
    let resp = client.get(url).send().await.map_err(|e| failed(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(failed(format!("the server answered {}", resp.status())));
    }
    let body = resp.bytes().await.map_err(|e| failed(e.to_string()))?;
    parse(url, &body)
}

/// The video entries of a feed document.
pub fn parse(url: &str, body: &[u8]) -> Result<Vec<Found>, CuratorError> {
    let feed = feed_rs::parser::Builder::new()
        .base_uri(Some(url))
        .build()
        .parse(body)
        .map_err(|e| CuratorError::Feed { url: url.to_owned(), reason: format!("not a feed: {e}") })?;
    let raw = String::from_utf8_lossy(body);
    let item_licenses = raw_item_licenses(&raw);
    let feed_license = feed.rights.as_ref().and_then(|r| normalize_license(&r.content));
    let mut found = Vec::new();
    for (i, entry) in feed.entries.iter().enumerate() {
        let mut media: Vec<(String, Option<f64>)> = Vec::new();
        for m in &entry.media {
            for c in &m.content {
                let Some(u) = c.url.as_ref().map(|u| String::from(u.as_str())) else { continue };
                let is_video =
                    c.content_type.as_ref().is_some_and(|t| t.to_string().starts_with("video/")) || is_video_url(&u);
                if is_video {
                    let d = c.duration.or(m.duration).map(|d| d.as_secs_f64());
                    media.push((u, d));
                }
            }
        }
        for l in &entry.links {
            let typed_video = l.media_type.as_deref().is_some_and(|t| t.starts_with("video/"));
            let enclosure = l.rel.as_deref() == Some("enclosure") || l.rel.is_none();
            if (typed_video || (enclosure && is_video_url(&l.href))) && !media.iter().any(|(u, _)| *u == l.href) {
                media.push((l.href.clone(), None));
            }
        }
        let Some((media_url, duration_s)) = media.into_iter().next() else { continue };
        let page_url = entry
            .links
            .iter()
            .find(|l| l.rel.as_deref().is_none_or(|r| r == "alternate") && !is_video_url(&l.href))
            .map(|l| l.href.clone())
            .unwrap_or_else(|| url.to_owned());
        let license = entry
            .links
            .iter()
            .find(|l| l.rel.as_deref() == Some("license"))
            .and_then(|l| normalize_license(&l.href))
            .or_else(|| entry.rights.as_ref().and_then(|r| normalize_license(&r.content)))
            .or_else(|| item_licenses.get(i).cloned().flatten())
            .or_else(|| feed_license.clone());
        let title = entry
            .title
            .as_ref()
            .map(|t| t.content.trim().to_owned())
            .or_else(|| entry.media.iter().find_map(|m| m.title.as_ref().map(|t| t.content.trim().to_owned())))
            .unwrap_or_default();
        let description = entry
            .summary
            .as_ref()
            .map(|t| t.content.clone())
            .or_else(|| entry.media.iter().find_map(|m| m.description.as_ref().map(|t| t.content.clone())))
            .unwrap_or_default();
        found.push(Found {
            page_url,
            media_url,
            title,
            description: strip_tags(&description),
            tags: entry.categories.iter().map(|c| c.term.clone()).collect(),
            duration_s,
            license,
            license_url: None,
        });
    }
    Ok(found)
}

fn is_video_url(u: &str) -> bool {
    let path = u.split(['?', '#']).next().unwrap_or(u).to_lowercase();
    VIDEO_EXTENSIONS.iter().any(|e| path.ends_with(e))
}

/// License elements feed-rs does not model (`creativeCommons:license`, `cc:license`, `media:license`,
/// `dc:rights`), one per `<item>`/`<entry>` in document order.
fn raw_item_licenses(xml: &str) -> Vec<Option<String>> {
    let lower = xml.to_lowercase();
    let mut starts: Vec<usize> =
        lower.match_indices("<item").chain(lower.match_indices("<entry")).map(|(i, _)| i).collect();
    starts.sort();
    starts
        .iter()
        .enumerate()
        .map(|(n, &start)| {
            let end = starts.get(n + 1).copied().unwrap_or(lower.len());
            let chunk = &xml[start..end];
            let chunk_lower = &lower[start..end];
            ["creativecommons:license", "cc:license", "media:license", "dc:rights", "dcterms:license"].iter().find_map(
                |tag| {
                    let at = chunk_lower.find(&format!("<{tag}"))?;
                    let rest = &chunk[at..];
                    let close = rest.find('>')?;
                    let (open, after) = rest.split_at(close);
                    let href = open
                        .split("href=")
                        .nth(1)
                        .map(|h| h.trim_start_matches(['"', '\'']).split(['"', '\'']).next().unwrap_or(""));
                    let text = after[1..].split('<').next().unwrap_or("");
                    href.and_then(normalize_license).or_else(|| normalize_license(text.trim()))
                },
            )
        })
        .collect()
}

/// Plain text of an HTML description.
fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSS: &str = r#"<?xml version="1.0"?>
<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/" xmlns:creativeCommons="http://backend.userland.com/creativeCommonsRssModule">
<channel><title>Films</title><link>https://films.example/</link><description>d</description>
<item><title>Forest at dawn</title><link>https://films.example/forest</link>
  <description>&lt;p&gt;A calm &lt;b&gt;nature&lt;/b&gt; film.&lt;/p&gt;</description>
  <category>nature</category>
  <enclosure url="https://cdn.films.example/forest.mp4" length="1000" type="video/mp4"/>
  <creativeCommons:license>http://creativecommons.org/licenses/by/4.0/</creativeCommons:license></item>
<item><title>Song</title><link>https://films.example/song</link>
  <enclosure url="https://cdn.films.example/song.mp3" length="1000" type="audio/mpeg"/></item>
<item><title>Ocean</title><link>https://films.example/ocean</link>
  <media:content url="https://cdn.films.example/ocean.webm" type="video/webm" duration="95"/>
  <media:license type="text/html" href="https://creativecommons.org/publicdomain/zero/1.0/">CC0</media:license></item>
<item><title>Unlicensed</title><enclosure url="https://cdn.films.example/x.mp4" length="1" type="video/mp4"/></item>
</channel></rss>"#;

    #[test]
    fn rss_items_with_video_become_candidates_with_their_licenses() {
        let found = parse("https://films.example/feed.xml", RSS.as_bytes()).unwrap();
        let urls: Vec<&str> = found.iter().map(|f| f.media_url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "https://cdn.films.example/forest.mp4",
                "https://cdn.films.example/ocean.webm",
                "https://cdn.films.example/x.mp4"
            ]
        );
        assert_eq!(found[0].title, "Forest at dawn");
        assert_eq!(found[0].page_url, "https://films.example/forest");
        assert_eq!(found[0].description, "A calm nature film.");
        assert_eq!(found[0].tags, ["nature"]);
        assert_eq!(found[0].license.as_deref(), Some("cc-by"));
        assert_eq!(found[1].license.as_deref(), Some("cc0"));
        assert_eq!(found[1].duration_s, Some(95.0));
        assert_eq!(found[2].license, None);
    }

    #[test]
    fn atom_and_json_feeds_are_read_too() {
        let atom = r#"<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>t</title><id>x</id><updated>2024-01-01T00:00:00Z</updated>
<entry><title>Reef</title><id>r</id><updated>2024-01-01T00:00:00Z</updated><link rel="alternate" href="https://a.example/reef"/>
<link rel="enclosure" type="video/mp4" href="https://a.example/reef.mp4"/><link rel="license" href="https://creativecommons.org/licenses/by-sa/4.0/"/></entry></feed>"#;
        let found = parse("https://a.example/atom", atom.as_bytes()).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].media_url.as_str(), found[0].license.as_deref()),
            ("https://a.example/reef.mp4", Some("cc-by-sa"))
        );
        let json = r#"{"version":"https://jsonfeed.org/version/1.1","title":"j","items":[{"id":"1","title":"Hills","url":"https://j.example/hills",
"attachments":[{"url":"https://j.example/hills.mp4","mime_type":"video/mp4"}]}]}"#;
        let found = parse("https://j.example/feed.json", json.as_bytes()).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].media_url, "https://j.example/hills.mp4");
        assert!(parse("https://x.example/", b"<html>no feed</html>").is_err());
    }
}
