//! `vvtvctl why SCHEDULE_ID`: one pick explained in full, and the channel-local times `queue show` prints.

use chrono::{DateTime, Utc};
use vvtv_api::epg::{PickDraw, PickMask, ScheduleDetail, ScoreBreakdown};

/// `2026-12-01 19:30:05 CET`: a time in the channel's timezone (UTC when the name is not one).
pub fn local(t: DateTime<Utc>, timezone: Option<&str>) -> String {
    let tz: chrono_tz::Tz = timezone.and_then(|z| z.parse().ok()).unwrap_or(chrono_tz::UTC);
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S %Z").to_string()
}

fn parts(b: &ScoreBreakdown) -> String {
    format!(
        "quality {:.2}  audience {:.2}  freshness {:.2}  daypart {:.2}  novelty {:.2}  → ln w {:.3}",
        b.quality, b.audience, b.freshness, b.daypart, b.novelty, b.log_weight
    )
}

fn mask(m: &PickMask) -> String {
    match m {
        PickMask::Window { minutes_ago } => format!("diversity.window_minutes (aired {minutes_ago} min ago)"),
        PickMask::Separation { with, minutes_ago } => {
            format!("diversity.separation_minutes ({with}, {minutes_ago} min ago)")
        }
        PickMask::TagCap { tag, count } => format!("diversity.max_same_tag ({count} × {tag} in the last hour)"),
    }
}

pub fn print(d: &ScheduleDetail) {
    let i = &d.item;
    println!("schedule row {} on channel {}: {} (asset {})", i.id, i.channel_id, i.title, i.asset_id);
    println!("  status:        {}", i.status);
    match i.planned_start {
        Some(t) => println!("  planned start: {} ({})", local(t, Some(&d.timezone)), t.format("%H:%M:%S UTC")),
        None => println!("  planned start: -"),
    }
    println!(
        "  airs:          {:.1} s{}",
        i.remaining().as_secs_f64(),
        match i.end {
            Some(end) => format!(" (cut at {:.1} s for a slot)", end.as_secs_f64()),
            None => String::new(),
        }
    );
    if let Some(slot) = &i.slot {
        println!("  slot:          {slot}");
    }
    if i.filler {
        println!("  filler:        padding before a slot");
    }
    println!("  reason:        {}", i.reason);
    let Some(p) = &d.pick else {
        println!("  (no pick recorded: filler cards and rows added by tools have none)");
        return;
    };
    let draw = match p.draw {
        PickDraw::Weighted => "weighted (Gumbel-top-k over the weights)",
        PickDraw::Exploration => "exploration (ε: among the least aired)",
    };
    println!("  draw:          {draw}");
    println!("  score:         {}", parts(&p.breakdown));
    println!("  candidates:    {} in the library, {} masked by the rules", p.candidates, p.masked);
    if p.relaxed.is_empty() {
        println!("  relaxed rules: none");
    } else {
        println!("  relaxed rules: {} (they left nothing to air)", p.relaxed.join(", "));
    }
    match &p.rerank {
        None => {}
        Some(r) => match (&r.by, &r.fallback_because) {
            (Some(by), _) => println!("  LLM rerank:    {by} chose #{} of the shortlist: {}", r.chose + 1, r.reason),
            (None, Some(why)) => println!("  LLM rerank:    drawn order kept: {why}"),
            (None, None) => println!("  LLM rerank:    drawn order kept"),
        },
    }
    println!("  shortlist (best key first):");
    for (n, s) in p.shortlist.iter().enumerate() {
        let key = s.key.map_or_else(|| "masked".to_string(), |k| format!("key {k:.3}"));
        let chosen = if s.asset == p.asset { "  ← picked" } else { "" };
        println!("    {}. asset {} {}: {key}{chosen}", n + 1, s.asset, s.title);
        println!("       {}", parts(&s.breakdown));
        for m in &s.masks {
            println!("       masked by {}", mask(m));
        }
    }
}
