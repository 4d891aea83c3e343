//! Recognising and normalising video licenses, so that every source and the channel's allowlist name them alike.
//!
//! Pages, feeds and the config spell a license in many ways: a Creative Commons deed URL, "CC BY-SA 4.0",
//! "Creative Commons Attribution-NonCommercial 4.0 International", a Wikimedia `PD-*` template. They all become one
//! of `cc0`, `public-domain`, `cc-by`, `cc-by-sa`, `cc-by-nd`, `cc-by-nc`, `cc-by-nc-sa` or `cc-by-nc-nd`; anything
//! else is kept lower-cased, so that an allowlist can still name it and a human can still read it.

use serde::Deserialize;

/// One license declaration as a page makes it (a `rel=license` link, JSON-LD `license`, a `<meta>`): an address, a
/// text, or both.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RawLicense {
    pub(super) url: Option<String>,
    pub(super) text: Option<String>,
}

/// The first (most specific) declaration wins, normalized: its URL if that is a known license, else its text if
/// that is, else the raw text (or URL) lower-cased.
pub(super) fn resolve_license(declarations: &[RawLicense]) -> (Option<String>, Option<String>) {
    let present =
        |value: &Option<String>| value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
    for declaration in declarations {
        let (url, text) = (present(&declaration.url), present(&declaration.text));
        let known = url.as_deref().and_then(known_license).or_else(|| text.as_deref().and_then(known_license));
        let license = match known {
            Some(known) => Some(known.to_string()),
            None => text.clone().or_else(|| url.clone()).map(|raw| raw.to_lowercase()),
        };
        if license.is_some() {
            return (license, url);
        }
    }
    (None, None)
}

/// Normalizes a license URL or text: `cc0`, `public-domain` or `cc-by[-nc][-sa|-nd]`, else the raw value
/// lower-cased; `None` when empty.
pub fn normalize_license(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    Some(known_license(raw).map_or_else(|| raw.to_lowercase(), str::to_string))
}

/// The normalized name of a license we recognize.
fn known_license(raw: &str) -> Option<&'static str> {
    let lower = raw.trim().to_ascii_lowercase();
    if let Some(at) = lower.find("creativecommons.org/") {
        let path = &lower[at + "creativecommons.org/".len()..];
        if path.starts_with("publicdomain/zero") {
            return Some("cc0");
        }
        if path.starts_with("publicdomain") {
            return Some("public-domain");
        }
        if let Some(rest) = path.strip_prefix("licenses/") {
            return match rest.split(['/', '?', '#']).next().unwrap_or_default() {
                "by" => Some("cc-by"),
                "by-sa" => Some("cc-by-sa"),
                "by-nd" => Some("cc-by-nd"),
                "by-nc" => Some("cc-by-nc"),
                "by-nc-sa" => Some("cc-by-nc-sa"),
                "by-nc-nd" | "by-nd-nc" => Some("cc-by-nc-nd"),
                _ => None,
            };
        }
    }
    let words: Vec<&str> = lower.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).collect();
    let has = |word: &str| words.contains(&word);
    let has_pair = |a: &str, b: &str| words.windows(2).any(|w| w[0] == a && w[1] == b);
    let creative_commons = has("cc") || has("creativecommons") || has_pair("creative", "commons");
    if has("cc0") || (creative_commons && has("zero")) {
        return Some("cc0");
    }
    // Wikimedia's PD-* templates ("PD-old", "PD-USGov") all mean public domain.
    if has_pair("public", "domain") || has("publicdomain") || words.first() == Some(&"pd") {
        return Some("public-domain");
    }
    if !creative_commons {
        return None;
    }
    let by = has("by") || has("attribution");
    let nc = has("nc") || has("noncommercial") || has_pair("non", "commercial");
    let sa = has("sa") || has("sharealike") || has_pair("share", "alike");
    let nd = has("nd") || has("noderivs") || has("noderivatives") || has_pair("no", "derivatives");
    match (by || nc || sa || nd, nc, sa, nd) {
        (false, ..) | (true, _, true, true) => None,
        (true, false, false, false) => Some("cc-by"),
        (true, false, true, false) => Some("cc-by-sa"),
        (true, false, false, true) => Some("cc-by-nd"),
        (true, true, false, false) => Some("cc-by-nc"),
        (true, true, true, false) => Some("cc-by-nc-sa"),
        (true, true, false, true) => Some("cc-by-nc-nd"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn licenses_are_normalized() {
        let cases = [
            ("https://creativecommons.org/licenses/by/4.0/", Some("cc-by")),
            ("http://creativecommons.org/licenses/by-sa/3.0/deed.en", Some("cc-by-sa")),
            ("https://creativecommons.org/licenses/by-nd/4.0", Some("cc-by-nd")),
            ("https://creativecommons.org/licenses/by-nc/2.0/", Some("cc-by-nc")),
            ("https://creativecommons.org/licenses/by-nc-sa/4.0/", Some("cc-by-nc-sa")),
            ("https://creativecommons.org/licenses/by-nc-nd/4.0/", Some("cc-by-nc-nd")),
            ("https://creativecommons.org/publicdomain/zero/1.0/", Some("cc0")),
            ("https://creativecommons.org/publicdomain/mark/1.0/", Some("public-domain")),
            ("CC BY-SA 4.0", Some("cc-by-sa")),
            ("CC-BY-4.0", Some("cc-by")),
            ("CC0-1.0", Some("cc0")),
            ("cc by nc nd", Some("cc-by-nc-nd")),
            ("Creative Commons Attribution-NonCommercial-ShareAlike 4.0 International", Some("cc-by-nc-sa")),
            ("Public Domain", Some("public-domain")),
            ("PD-USGov", Some("public-domain")),
            ("Creative Commons Zero", Some("cc0")),
            ("CC0 1.0 Universal", Some("cc0")),
            ("cc-by", Some("cc-by")),
            ("All Rights Reserved", Some("all rights reserved")),
            ("https://example.org/Terms", Some("https://example.org/terms")),
            ("  ", None),
        ];
        for (raw, expected) in cases {
            assert_eq!(normalize_license(raw).as_deref(), expected, "{raw}");
        }
    }

    #[test]
    fn the_most_specific_license_declaration_wins() {
        let declaration = |url: Option<&str>, text: Option<&str>| RawLicense {
            url: url.map(str::to_string),
            text: text.map(str::to_string),
        };
        // A link whose address says nothing but whose text names the license.
        let (license, url) = resolve_license(&[declaration(Some("http://h/terms"), Some("CC BY-SA 4.0"))]);
        assert_eq!(license.as_deref(), Some("cc-by-sa"));
        assert_eq!(url.as_deref(), Some("http://h/terms"));
        // An unrecognized but more specific declaration is not overridden by a recognized page-wide one.
        let (license, _) = resolve_license(&[
            declaration(None, Some("All rights reserved")),
            declaration(Some("https://creativecommons.org/licenses/by/4.0/"), None),
        ]);
        assert_eq!(license.as_deref(), Some("all rights reserved"));
        assert_eq!(resolve_license(&[declaration(Some(" "), Some(""))]), (None, None));
    }
}
