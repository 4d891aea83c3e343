//! The XMLTV document of a guide, valid against the XMLTV DTD (`xmltv.dtd`, checked in tests by Debian's
//! `tv_validate_file`). Children come in the DTD's order — a channel's `display-name`s then `icon`; a programme's
//! `title`, `desc`, `category`s, then `icon` — which is where other guides fail when a programme has artwork.
//! Times are `YYYYMMDDhhmmss +0000` (UTC), in whole seconds: every time is truncated the same way, so programmes that
//! touch still touch, and one shorter than its second (a splice of a few hundred milliseconds) is left out of this
//! document only — `/api/v1/epg` has it, in milliseconds.

use chrono::{DateTime, Utc};
use std::fmt::Write;
use vvtv_api::epg::EpgReport;

/// An XMLTV time: `20261201183000 +0000`.
pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y%m%d%H%M%S +0000").to_string()
}

/// Text for an XML attribute or element: the five special characters escaped, characters XML 1.0 forbids dropped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

pub fn document(r: &EpgReport) -> String {
    let mut x = String::new();
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE tv SYSTEM \"xmltv.dtd\">\n");
    let _ = writeln!(
        x,
        "<tv date=\"{}\" source-info-name=\"VVTV\" generator-info-name=\"VVTV {}\">",
        time(Utc::now()),
        env!("CARGO_PKG_VERSION")
    );
    for c in &r.channels {
        let _ = writeln!(x, "  <channel id=\"{}\">", escape(&c.xmltv_id));
        let _ = writeln!(x, "    <display-name>{}</display-name>", escape(&c.name));
        let _ = writeln!(x, "    <display-name>{}</display-name>", c.number);
        if let Some(logo) = &c.logo {
            let _ = writeln!(x, "    <icon src=\"{}\"/>", escape(logo));
        }
        x.push_str("  </channel>\n");
    }
    for c in &r.channels {
        let shown: Vec<_> = c.programmes.iter().filter(|p| p.stop.timestamp() > p.start.timestamp()).collect();
        if shown.is_empty() {
            // Nothing aired or planned in the range (a channel starting up): say so, open-ended (`stop` is optional
            // in the DTD), rather than list a channel without programmes, which guide readers reject.
            let at = Utc::now().max(r.from).min(r.to);
            let _ = writeln!(
                x,
                "  <programme start=\"{}\" channel=\"{}\">\n    <title>Off the air</title>\n    \
                 <desc>Nothing has aired or is planned on {} yet.</desc>\n  </programme>",
                time(at),
                escape(&c.xmltv_id),
                escape(&c.name)
            );
        }
        for p in shown {
            let _ = writeln!(
                x,
                "  <programme start=\"{}\" stop=\"{}\" channel=\"{}\">",
                time(p.start),
                time(p.stop),
                escape(&c.xmltv_id)
            );
            let _ = writeln!(x, "    <title>{}</title>", escape(&p.title));
            if !p.description.trim().is_empty() {
                let _ = writeln!(x, "    <desc>{}</desc>", escape(p.description.trim()));
            }
            for category in p.categories.iter().filter(|c| !c.trim().is_empty()) {
                let _ = writeln!(x, "    <category>{}</category>", escape(category));
            }
            if let Some(icon) = &p.icon {
                let _ = writeln!(x, "    <icon src=\"{}\"/>", escape(icon));
            }
            x.push_str("  </programme>\n");
        }
    }
    x.push_str("</tv>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use vvtv_api::epg::{EpgChannel, Programme, ProgrammeKind};
    use vvtv_api::{AssetId, ChannelId, ScheduleId};

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn report() -> EpgReport {
        let programme = |start, stop, title: &str, icon: bool| Programme {
            start: at(start),
            stop: at(stop),
            title: title.into(),
            description: "Birds & <bees> say \"hi\"\u{1}".into(),
            categories: vec!["nature".into(), "birds".into()],
            icon: icon.then(|| "http://h/posters/3.jpg".into()),
            kind: ProgrammeKind::Programme,
            aired: false,
            asset_id: Some(AssetId(3)),
            schedule_id: Some(ScheduleId(9)),
        };
        EpgReport {
            from: at(0),
            to: at(100),
            channels: vec![EpgChannel {
                id: ChannelId("main".into()),
                xmltv_id: "main.vvtv".into(),
                name: "Main & Co".into(),
                number: 4,
                logo: Some("http://h/logo.png".into()),
                timezone: "Europe/Berlin".into(),
                programmes: vec![programme(0, 30, "Forest", true), programme(30, 60, "Up next", false)],
            }],
        }
    }

    #[test]
    fn elements_come_in_the_dtd_order_with_utc_offsets() {
        let x = document(&report());
        let programme = &x[x.find("<programme").unwrap()..x.find("</programme>").unwrap()];
        let order: Vec<usize> = ["<title>", "<desc>", "<category>nature", "<category>birds", "<icon "]
            .iter()
            .map(|t| programme.find(t).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{programme}");
        let channel = &x[x.find("<channel").unwrap()..x.find("</channel>").unwrap()];
        assert!(channel.find("<display-name>4<").unwrap() < channel.find("<icon").unwrap(), "{channel}");
        assert!(
            x.contains("start=\"20270115080000 +0000\" stop=\"20270115080030 +0000\" channel=\"main.vvtv\""),
            "{x}"
        );
        assert!(x.contains("<desc>Birds &amp; &lt;bees&gt; say &quot;hi&quot;</desc>"), "{x}");
        assert!(x.contains("<display-name>Main &amp; Co</display-name>"), "{x}");
        assert_eq!(x.matches("<icon ").count(), 2, "the second programme has no poster: {x}");
    }

    #[test]
    fn a_programme_within_one_second_is_left_out_and_its_neighbours_still_touch() {
        let mut r = report();
        let ms = chrono::Duration::milliseconds;
        let programmes = &mut r.channels[0].programmes;
        programmes[0].stop = at(30) + ms(200);
        programmes.insert(1, Programme { start: at(30) + ms(200), stop: at(30) + ms(700), ..programmes[1].clone() });
        programmes[2].start = at(30) + ms(700);
        let x = document(&r);
        assert_eq!(x.matches("<programme ").count(), 2, "{x}");
        assert!(x.contains("stop=\"20270115080030 +0000\"") && x.contains("start=\"20270115080030 +0000\""), "{x}");
    }

    #[test]
    fn a_channel_with_nothing_yet_says_so_and_stays_valid() {
        let mut r = report();
        (r.from, r.to) = (Utc::now() - chrono::Duration::hours(1), Utc::now() + chrono::Duration::hours(1));
        r.channels[0].programmes.clear();
        let x = document(&r);
        assert_eq!(x.matches("<programme ").count(), 1, "{x}");
        assert!(x.contains("<title>Off the air</title>") && !x.contains("stop="), "{x}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("epg.xml");
        std::fs::write(&file, &x).unwrap();
        vvtv_testkit::xmltv::validate(&file).unwrap();
    }

    #[test]
    fn the_document_is_valid_against_the_xmltv_dtd() {
        // Debian's xmltv-util (scripts/install-deps.sh) ships the DTD and its validator.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("epg.xml");
        std::fs::write(&file, document(&report())).unwrap();
        vvtv_testkit::xmltv::validate(&file).unwrap();
        // A programme element out of the DTD's order is refused: the check can fail.
        let broken = document(&report()).replacen("<title>Forest</title>\n    <desc>", "<desc>", 1).replacen(
            "</desc>\n",
            "</desc>\n    <title>Forest</title>\n",
            1,
        );
        std::fs::write(&file, broken).unwrap();
        let refused = vvtv_testkit::xmltv::validate(&file).unwrap_err();
        assert!(refused.contains("does not follow the DTD"), "{refused}");
    }
}
