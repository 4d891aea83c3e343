//! `/channels.m3u`: the channel list IPTV players import with the guide. One `#EXTINF` line per channel with
//! `tvg-id` (the XMLTV channel id), `tvg-name`, `tvg-logo` (when the channel has a logo), `tvg-chno` and
//! `group-title`, then the stream URL (signed when `[access] signed_urls` is on). The header names the guide
//! (`url-tvg`).

use std::fmt::Write;

/// One channel of the list.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub tvg_id: String,
    pub name: String,
    pub logo: Option<String>,
    pub number: u32,
    pub group: String,
    pub url: String,
}

/// Attribute values are quoted: a quote or line break would end them (config validation refuses those; the
/// stand-in here keeps a bad value from breaking the list all the same).
fn attr(v: &str) -> String {
    v.chars().map(|c| if matches!(c, '"' | '\n' | '\r') { '\'' } else { c }).collect()
}

pub fn playlist(guide_url: &str, entries: &[Entry]) -> String {
    let mut m = format!("#EXTM3U url-tvg=\"{}\" x-tvg-url=\"{}\"\n", attr(guide_url), attr(guide_url));
    for e in entries {
        let logo = e.logo.as_deref().map(|l| format!(" tvg-logo=\"{}\"", attr(l))).unwrap_or_default();
        let _ = writeln!(
            m,
            "#EXTINF:-1 tvg-id=\"{}\" tvg-name=\"{}\"{logo} tvg-chno=\"{}\" group-title=\"{}\",{}",
            attr(&e.tvg_id),
            attr(&e.name),
            e.number,
            attr(&e.group),
            attr(&e.name).replace(',', " ")
        );
        let _ = writeln!(m, "{}", e.url.trim());
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_channel_has_its_attributes_then_its_url() {
        let entries = [
            Entry {
                tvg_id: "main.vvtv".into(),
                name: "VVTV".into(),
                logo: Some("http://h/logo.png".into()),
                number: 1,
                group: "VVTV".into(),
                url: "http://h/hls/main/live.m3u8".into(),
            },
            Entry {
                tvg_id: "news.vvtv".into(),
                name: "News, \"live\"".into(),
                logo: None,
                number: 7,
                group: "News".into(),
                url: "http://h/s/1/ab/hls/news/live.m3u8".into(),
            },
        ];
        let m = playlist("http://h/epg.xml", &entries);
        let lines: Vec<&str> = m.lines().collect();
        assert_eq!(lines[0], "#EXTM3U url-tvg=\"http://h/epg.xml\" x-tvg-url=\"http://h/epg.xml\"");
        assert_eq!(
            lines[1],
            "#EXTINF:-1 tvg-id=\"main.vvtv\" tvg-name=\"VVTV\" tvg-logo=\"http://h/logo.png\" tvg-chno=\"1\" \
             group-title=\"VVTV\",VVTV"
        );
        assert_eq!(lines[2], "http://h/hls/main/live.m3u8");
        assert_eq!(
            lines[3],
            "#EXTINF:-1 tvg-id=\"news.vvtv\" tvg-name=\"News, 'live'\" tvg-chno=\"7\" group-title=\"News\",News  'live'"
        );
        assert_eq!(lines.len(), 5);
    }
}
