//! Readers of the Prometheus text format and of PromQL queries, and the `promtool check metrics` runner (Debian
//! package `prometheus`), for tests that check what `/metrics` exports.
//!
//! The readers parse the exposition themselves: they check the daemon's output, not its registry.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};

/// One sample line: `name{label="value",…} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Runs `promtool check metrics` on `exposition` (classic text format). `Err` holds everything promtool said when
/// it complained about anything or exited non-zero.
pub fn promtool_check(exposition: &str) -> Result<(), String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run promtool (Debian package prometheus, scripts/install-deps.sh): {e}"))?;
    let mut stdin = child.stdin.take().ok_or("promtool has no stdin")?;
    stdin.write_all(exposition.as_bytes()).map_err(|e| format!("writing to promtool: {e}"))?;
    drop(stdin);
    let out = child.wait_with_output().map_err(|e| format!("waiting for promtool: {e}"))?;
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() && said.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("promtool check metrics ({}): {said}", out.status))
    }
}

/// Every sample of a classic-format exposition, in order.
pub fn samples(exposition: &str) -> Vec<Sample> {
    exposition.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).filter_map(parse_sample).collect()
}

fn parse_sample(line: &str) -> Option<Sample> {
    let (series, value) = line.trim().rsplit_once(' ')?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    let (name, labels) = match series.split_once('{') {
        None => (series, Vec::new()),
        Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}')?)?),
    };
    Some(Sample { name: name.to_owned(), labels, value })
}

/// `a="x",b="y \"q\""` → pairs (escapes `\\`, `\"` and `\n` undone).
fn parse_labels(text: &str) -> Option<Vec<(String, String)>> {
    let mut labels = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break i,
                c => value.push(c),
            }
        };
        labels.push((key.trim_start_matches(',').to_owned(), value));
        rest = after[end + 1..].trim_start_matches(',');
    }
    Some(labels)
}

/// The first sample named `name` whose labels include every pair of `labels`.
pub fn sample(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples(exposition)
        .into_iter()
        .find(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(*v)))
        .map(|s| s.value)
}

/// Every series name a query may use: those declared by `# TYPE` lines (a histogram `h` as `h_bucket`, `h_sum` and
/// `h_count`) and those of the samples.
pub fn exported_names(exposition: &str) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = samples(exposition).into_iter().map(|s| s.name).collect();
    for line in exposition.lines() {
        let mut words = line.split_whitespace();
        if let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
            (words.next(), words.next(), words.next(), words.next())
        {
            if kind == "histogram" {
                names.extend(["_bucket", "_sum", "_count"].map(|s| format!("{name}{s}")));
            } else {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

/// The metric names a PromQL expression reads: identifiers starting with `prefix` outside string literals
/// (label names, functions and keywords never start with the station's prefix).
pub fn query_metric_names(expr: &str, prefix: &str) -> Vec<String> {
    let mut outside = String::new();
    let mut quote = None;
    let mut escaped = false;
    for c in expr.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
                outside.push(' ');
            }
            None if matches!(c, '"' | '\'' | '`') => {
                quote = Some(c);
                outside.push(' ');
            }
            None => outside.push(c),
        }
    }
    outside
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| w.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP up_total Ups.\n# TYPE up_total counter\nup_total{job=\"a \\\"b\\\"\",code=\"200\"} 3\n\
        # HELP lat Latency.\n# TYPE lat histogram\nlat_bucket{le=\"+Inf\"} 2\nlat_sum 0.5\nlat_count 2\n\
        # HELP idle An empty family.\n# TYPE idle gauge\n";

    #[test]
    fn samples_are_read_with_their_labels_and_values() {
        let all = samples(TEXT);
        assert_eq!(all.len(), 4);
        assert_eq!(all[0].name, "up_total");
        assert_eq!(all[0].label("job"), Some("a \"b\""));
        assert_eq!(all[0].label("code"), Some("200"));
        assert_eq!(all[1].value, 2.0);
        assert_eq!(sample(TEXT, "up_total", &[("code", "200")]), Some(3.0));
        assert_eq!(sample(TEXT, "up_total", &[("code", "500")]), None);
        assert_eq!(sample(TEXT, "lat_bucket", &[("le", "+Inf")]), Some(2.0));
    }

    #[test]
    fn exported_names_include_empty_families_and_every_histogram_series() {
        let names = exported_names(TEXT);
        for n in ["up_total", "lat_bucket", "lat_sum", "lat_count", "idle"] {
            assert!(names.contains(n), "{n} missing from {names:?}");
        }
        assert!(!names.contains("lat"), "{names:?}");
    }

    #[test]
    fn promtool_complains_about_names_off_the_rules() {
        assert_eq!(promtool_check(TEXT), Ok(()));
        let bad =
            "# HELP vvtv_x_milliseconds Not a base unit.\n# TYPE vvtv_x_milliseconds counter\nvvtv_x_milliseconds 1\n";
        let complaint = promtool_check(bad).expect_err("promtool must complain");
        assert!(complaint.contains("_total") && complaint.contains("seconds"), "{complaint}");
    }

    #[test]
    fn query_names_skip_functions_labels_and_strings() {
        let expr = "histogram_quantile(0.95, sum by (le, route) (rate(vvtv_http_request_duration_seconds_bucket\
            {channel=~\"$channel\", note=\"vvtv_not_a_metric\"}[5m]))) / vvtv_up";
        assert_eq!(query_metric_names(expr, "vvtv_"), ["vvtv_http_request_duration_seconds_bucket", "vvtv_up"]);
        assert!(query_metric_names("sum(rate(x[1m]))", "vvtv_").is_empty());
    }
}
