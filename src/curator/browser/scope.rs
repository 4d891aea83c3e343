//! Where a crawl may go: its seed URLs, which links are web pages worth a visit, and which sites are in scope.

use url::Url;

use super::{BrowserError, CrawlSpec};

/// Files the curator can take as media: links to these are candidates, never pages to crawl.
const MEDIA_EXTENSIONS: &[&str] = &["mp4", "m4v", "mov", "webm", "mkv", "ogv"];
/// Links to these are not web pages, so the crawler does not navigate to them.
const NOT_PAGE_EXTENSIONS: &[&str] = &[
    "jpg", "jpeg", "png", "gif", "webp", "svg", "ico", "bmp", "tif", "tiff", "avif", "mp3", "m4a", "aac", "ogg", "oga",
    "opus", "flac", "wav", "pdf", "zip", "gz", "tgz", "bz2", "xz", "7z", "rar", "tar", "exe", "dmg", "iso", "apk",
    "deb", "rpm", "msi", "css", "js", "json", "xml", "rss", "atom", "csv", "txt", "doc", "docx", "xls", "xlsx", "ppt",
    "pptx", "epub", "avi", "wmv", "flv", "mpg", "mpeg", "ts", "m3u8", "mpd", "srt", "vtt",
];

/// The start pages plus the search page, validated, fragments stripped.
pub(super) fn seed_urls(spec: &CrawlSpec) -> Result<Vec<Url>, BrowserError> {
    let mut raw: Vec<String> = spec.start_urls.clone();
    if let Some(template) = &spec.search_url {
        let query = spec.query.as_deref().map(str::trim).filter(|q| !q.is_empty());
        let Some(query) = query else { return Err(BrowserError::MissingQuery { template: template.clone() }) };
        let encoded: String = url::form_urlencoded::byte_serialize(query.as_bytes()).collect();
        raw.push(template.replace("{query}", &encoded));
    }
    raw.iter()
        .map(|text| {
            let invalid = |reason: String| BrowserError::InvalidUrl { url: text.clone(), reason };
            let mut url = Url::parse(text.trim()).map_err(|e| invalid(e.to_string()))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(invalid("only http(s) URLs with a host can be crawled".to_string()));
            }
            url.set_fragment(None);
            Ok(url)
        })
        .collect()
}

/// A link worth navigating to: http(s), fragment stripped, not a media or other non-page file.
pub(super) fn page_link(raw: &str) -> Option<Url> {
    let mut url = Url::parse(raw).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return None;
    }
    url.set_fragment(None);
    let extension = url
        .path_segments()
        .and_then(|mut segments| segments.next_back())
        .and_then(|name| name.rsplit_once('.'))
        .map(|(_, ext)| ext.to_ascii_lowercase());
    match extension {
        Some(ext) if MEDIA_EXTENSIONS.contains(&ext.as_str()) || NOT_PAGE_EXTENSIONS.contains(&ext.as_str()) => None,
        _ => Some(url),
    }
}

/// Which hosts a crawl may follow links to.
pub(super) struct SiteScope {
    any: bool,
    domains: Vec<String>,
}

impl SiteScope {
    pub(super) fn new(spec: &CrawlSpec, seeds: &[Url]) -> SiteScope {
        let bare = |host: &str| host.trim().trim_matches('.').trim_start_matches("www.").to_ascii_lowercase();
        let mut domains: Vec<String> = seeds.iter().filter_map(Url::host_str).map(bare).collect();
        domains.extend(spec.allow_domains.iter().map(|d| bare(d)).filter(|d| !d.is_empty()));
        domains.sort();
        domains.dedup();
        SiteScope { any: !spec.same_site, domains }
    }

    pub(super) fn contains(&self, url: &Url) -> bool {
        if self.any {
            return true;
        }
        let Some(host) = url.host_str().map(str::to_ascii_lowercase) else { return false };
        self.domains.iter().any(|d| host == *d || host.strip_suffix(d.as_str()).is_some_and(|rest| rest.ends_with('.')))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_normalized_and_scoped() {
        assert_eq!(page_link("https://a.example/x#frag").map(String::from), Some("https://a.example/x".into()));
        assert_eq!(page_link("https://a.example/video.MP4"), None);
        assert_eq!(page_link("https://a.example/poster.jpg"), None);
        assert_eq!(page_link("mailto:x@a.example"), None);
        assert_eq!(page_link("javascript:void(0)"), None);

        let spec = CrawlSpec {
            start_urls: vec!["https://www.a.example/".into()],
            search_url: Some("https://search.b.example/?q={query}".into()),
            query: Some("test pattern & more".into()),
            allow_domains: vec!["c.example".into()],
            ..CrawlSpec::default()
        };
        let seeds = seed_urls(&spec).expect("valid seeds");
        assert_eq!(seeds[1].as_str(), "https://search.b.example/?q=test+pattern+%26+more");
        let scope = SiteScope::new(&spec, &seeds);
        for (url, inside) in [
            ("https://a.example/page", true),
            ("https://media.a.example/page", true),
            ("https://search.b.example/next", true),
            ("https://b.example/", false),
            ("https://c.example/x", true),
            ("https://evil-a.example/", false),
            ("https://a.example.evil/", false),
        ] {
            assert_eq!(scope.contains(&Url::parse(url).expect("url")), inside, "{url}");
        }
        let open = SiteScope::new(&CrawlSpec { same_site: false, ..spec.clone() }, &seeds);
        assert!(open.contains(&Url::parse("https://anywhere.example/").expect("url")));

        let missing_query = CrawlSpec { query: None, ..spec };
        assert!(matches!(seed_urls(&missing_query), Err(BrowserError::MissingQuery { .. })));
        let bad = CrawlSpec { start_urls: vec!["ftp://a.example/".into()], ..CrawlSpec::default() };
        let error = seed_urls(&bad).expect_err("ftp is refused").to_string();
        assert!(error.contains("ftp://a.example/"), "{error}");
    }
}
