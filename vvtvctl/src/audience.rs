//! `vvtvctl audience`: the audience per airing (title, start, starts, peak and average viewers, average watch time,
//! share who left during it) and per asset, from `GET /api/v1/audience`.

use crate::table;
use vvtv_api::audience::AudienceReport;

fn share(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

pub fn print(r: &AudienceReport) {
    println!("since {} (UTC)", r.since.format("%Y-%m-%d %H:%M:%S"));
    let rows: Vec<Vec<String>> = r
        .airings
        .iter()
        .map(|a| {
            vec![
                a.channel_id.to_string(),
                a.start.format("%m-%d %H:%M:%S").to_string(),
                a.title.clone(),
                a.starts.to_string(),
                a.viewers.to_string(),
                a.peak_viewers.to_string(),
                format!("{:.2}", a.avg_viewers),
                format!("{:.0}s", a.avg_watch.as_secs_f64()),
                share(a.left_during_share),
            ]
        })
        .collect();
    table::print(
        &["CHANNEL", "START (UTC)", "TITLE", "STARTS", "VIEWERS", "PEAK", "AVG VIEWERS", "AVG WATCH", "LEFT DURING"],
        &rows,
    );
    println!("per asset:");
    let rows: Vec<Vec<String>> = r
        .assets
        .iter()
        .map(|a| {
            vec![
                a.asset_id.to_string(),
                a.title.clone(),
                a.airings.to_string(),
                a.viewers.to_string(),
                a.peak_viewers.to_string(),
                format!("{:.2}", a.avg_viewers),
                format!("{:.0}s", a.avg_watch.as_secs_f64()),
                share(a.left_during_share),
            ]
        })
        .collect();
    table::print(&["ASSET", "TITLE", "AIRINGS", "VIEWINGS", "PEAK", "AVG VIEWERS", "AVG WATCH", "LEFT DURING"], &rows);
}
