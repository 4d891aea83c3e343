//! The XMLTV checker: Debian's `tv_validate_file` (package `xmltv-util`) against the DTD it ships, offline.

use std::path::Path;
use std::process::Command;

/// Where Debian's `xmltv-util` puts the DTD (without `--dtd-file` the validator tries to download it).
pub const DTD: &str = "/usr/share/xmltv/xmltv.dtd";

/// Validates an XMLTV file: Ok, or what `tv_validate_file` said.
pub fn validate(file: &Path) -> Result<(), String> {
    assert!(Path::new(DTD).is_file(), "{DTD} missing: install xmltv-util (scripts/install-deps.sh)");
    let out = Command::new("tv_validate_file")
        .arg("--dtd-file")
        .arg(DTD)
        .arg(file)
        .output()
        .map_err(|e| format!("cannot run tv_validate_file (install xmltv-util): {e}"))?;
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("tv_validate_file: {}: {said}", out.status))
    }
}

/// A `<programme>` as a guide reader sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Programme {
    pub channel: String,
    /// Unix milliseconds, from `YYYYMMDDhhmmss ±hhmm`.
    pub start_ms: i64,
    /// None: open-ended (the DTD makes `stop` optional).
    pub stop_ms: Option<i64>,
    pub title: String,
    pub desc: Option<String>,
    pub categories: Vec<String>,
    pub icon: Option<String>,
}

/// A `<channel>`: its id, display names and icon.
#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    pub id: String,
    pub names: Vec<String>,
    pub icon: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Guide {
    pub channels: Vec<Channel>,
    pub programmes: Vec<Programme>,
}

/// Unix milliseconds of an XMLTV time (`20261201183000 +0100`); the offset is required.
pub fn parse_time(text: &str) -> Result<i64, String> {
    let (stamp, offset) = text.trim().split_once(' ').ok_or_else(|| format!("{text:?} has no UTC offset"))?;
    let t = chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%d%H%M%S").map_err(|e| format!("{text:?}: {e}"))?;
    let sign = match offset.as_bytes().first() {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => return Err(format!("{text:?}: offset {offset:?} is not ±hhmm")),
    };
    let digits = &offset[1..];
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{text:?}: offset {offset:?} is not ±hhmm"));
    }
    let minutes = digits[..2].parse::<i64>().unwrap_or(0) * 60 + digits[2..].parse::<i64>().unwrap_or(0);
    Ok(t.and_utc().timestamp_millis() - sign * minutes * 60_000)
}

/// Reads an XMLTV document with an XML parser of its own (not the daemon's code).
pub fn parse(text: &str) -> Result<Guide, String> {
    use quick_xml::events::{BytesStart, Event};
    use quick_xml::XmlVersion;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut guide = Guide::default();
    let mut path: Vec<String> = Vec::new();
    let mut buf = String::new();
    let attrs = |e: &BytesStart| -> Result<Vec<(String, String)>, String> {
        e.attributes()
            .map(|a| {
                let a = a.map_err(|e| e.to_string())?;
                let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
                let value = a.normalized_value(XmlVersion::Implicit1_0).map_err(|e| e.to_string())?.into_owned();
                Ok((key, value))
            })
            .collect()
    };
    let get = |attrs: &[(String, String)], k: &str| attrs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    loop {
        let event = reader.read_event().map_err(|e| format!("XML at {}: {e}", reader.buffer_position()))?;
        let (e, empty) = match event {
            Event::Eof => break,
            Event::Start(e) => (e, false),
            Event::Empty(e) => (e, true),
            Event::Text(t) => {
                buf.push_str(&t.xml_content(XmlVersion::Implicit1_0).map_err(|e| e.to_string())?);
                continue;
            }
            Event::GeneralRef(r) => {
                let name = r.decode().map_err(|e| e.to_string())?.into_owned();
                match r.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => buf.push(c),
                    None => buf.push_str(
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(|| format!("undefined entity &{name};"))?,
                    ),
                }
                continue;
            }
            Event::End(_) => {
                let name = path.pop().unwrap_or_default();
                let text = std::mem::take(&mut buf).trim().to_string();
                match (name.as_str(), path.last().map(String::as_str)) {
                    ("display-name", Some("channel")) => {
                        if let Some(c) = guide.channels.last_mut() {
                            c.names.push(text);
                        }
                    }
                    (field @ ("title" | "desc" | "category"), Some("programme")) => {
                        if let Some(p) = guide.programmes.last_mut() {
                            match field {
                                "title" => p.title = text,
                                "desc" => p.desc = Some(text),
                                _ => p.categories.push(text),
                            }
                        }
                    }
                    _ => {}
                }
                continue;
            }
            _ => continue,
        };
        let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
        let a = attrs(&e)?;
        match (name.as_str(), path.last().map(String::as_str)) {
            ("channel", Some("tv")) => guide.channels.push(Channel {
                id: get(&a, "id").ok_or("a channel without id")?,
                names: Vec::new(),
                icon: None,
            }),
            ("programme", Some("tv")) => {
                let time = |k: &str| get(&a, k).ok_or(format!("a programme without {k}")).and_then(|t| parse_time(&t));
                guide.programmes.push(Programme {
                    channel: get(&a, "channel").ok_or("a programme without channel")?,
                    start_ms: time("start")?,
                    stop_ms: get(&a, "stop").map(|t| parse_time(&t)).transpose()?,
                    title: String::new(),
                    desc: None,
                    categories: Vec::new(),
                    icon: None,
                });
            }
            ("icon", Some("channel")) => {
                if let Some(c) = guide.channels.last_mut() {
                    c.icon = get(&a, "src");
                }
            }
            ("icon", Some("programme")) => {
                if let Some(p) = guide.programmes.last_mut() {
                    p.icon = get(&a, "src");
                }
            }
            _ => {}
        }
        buf.clear();
        if !empty {
            path.push(name);
        }
    }
    Ok(guide)
}

impl Guide {
    /// A channel's programmes in start order.
    pub fn of(&self, channel: &str) -> Vec<&Programme> {
        let mut list: Vec<&Programme> = self.programmes.iter().filter(|p| p.channel == channel).collect();
        list.sort_by_key(|p| p.start_ms);
        list
    }

    /// Every channel's programmes start before they stop, and each one stops exactly where the next starts (no
    /// overlap, no gap); only the last may be open-ended. The checks `tv_validate_file` does not make.
    pub fn check_timeline(&self) -> Result<(), String> {
        for c in &self.channels {
            let list = self.of(&c.id);
            for (i, p) in list.iter().enumerate() {
                match p.stop_ms {
                    None if i + 1 < list.len() => {
                        return Err(format!("{}: {:?} has no stop but is not the last programme", c.id, p.title));
                    }
                    Some(stop) if p.start_ms >= stop => {
                        return Err(format!("{}: {:?} starts at {} but stops at {stop}", c.id, p.title, p.start_ms));
                    }
                    _ => {}
                }
            }
            for w in list.windows(2) {
                let stop = w[0].stop_ms.unwrap_or(i64::MAX);
                if stop != w[1].start_ms {
                    let what = if stop > w[1].start_ms { "overlaps" } else { "leaves a gap before" };
                    return Err(format!(
                        "{}: {:?} ({}..{stop}) {what} {:?} (from {})",
                        c.id, w[0].title, w[0].start_ms, w[1].title, w[1].start_ms
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<tv><channel id=\"a.tv\"><display-name>A &amp; B\
        </display-name><icon src=\"http://h/l.png\"/></channel><programme start=\"20261201180000 +0100\" \
        stop=\"20261201171000 +0000\" channel=\"a.tv\"><title>One &lt;1&gt;</title><desc>d&#233;j&#xe0;</desc>\
        <category>x</category><icon src=\"http://h/p.jpg\"/></programme><programme start=\"20261201171000 +0000\" \
        stop=\"20261201172000 +0000\" channel=\"a.tv\"><title>Two</title></programme></tv>";

    #[test]
    fn reads_channels_and_programmes_with_their_offsets() {
        let g = parse(DOC).unwrap();
        assert_eq!(
            g.channels,
            [Channel { id: "a.tv".into(), names: vec!["A & B".into()], icon: Some("http://h/l.png".into()) }]
        );
        let p = &g.programmes[0];
        assert_eq!(p.start_ms, parse_time("20261201170000 +0000").unwrap());
        assert_eq!(p.stop_ms.unwrap() - p.start_ms, 600_000);
        assert_eq!((p.title.as_str(), p.desc.as_deref()), ("One <1>", Some("déjà")));
        assert_eq!((p.categories.clone(), p.icon.clone()), (vec!["x".to_string()], Some("http://h/p.jpg".into())));
        g.check_timeline().unwrap();
    }

    #[test]
    fn overlaps_gaps_and_missing_offsets_are_found() {
        let overlap = DOC.replace(
            "stop=\"20261201171000 +0000\" channel=\"a.tv\"><title>One",
            "stop=\"20261201171500 +0000\" channel=\"a.tv\"><title>One",
        );
        assert!(parse(&overlap).unwrap().check_timeline().unwrap_err().contains("overlaps"));
        let gap = DOC.replace("start=\"20261201171000 +0000\"", "start=\"20261201171001 +0000\"");
        assert!(parse(&gap).unwrap().check_timeline().unwrap_err().contains("gap"));
        let open_middle =
            DOC.replace("stop=\"20261201171000 +0000\" channel=\"a.tv\"><title>One", "channel=\"a.tv\"><title>One");
        assert!(parse(&open_middle).unwrap().check_timeline().unwrap_err().contains("no stop but is not the last"));
        let open_last = DOC.replace("stop=\"20261201172000 +0000\" ", "");
        let g = parse(&open_last).unwrap();
        assert_eq!(g.programmes[1].stop_ms, None);
        g.check_timeline().unwrap();
        assert!(parse_time("20261201171000").unwrap_err().contains("no UTC offset"));
        assert!(parse_time("20261201171000 CET").is_err());
    }
}
