//! What the config says about viewers: who may watch (`[access]`) and how their sessions are counted
//! (`[audience]`).

use serde::{Deserialize, Serialize};

/// Who may watch: signed viewer URLs, an age gate on the page, and countries allowed or refused.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AccessConfig {
    /// Viewer URLs (`/hls/…`, and the page's stream URLs) need a path token: `/s/{expiry}/{token}/hls/{channel}/…`
    /// with token = HMAC-SHA256(secret, "{expiry}/hls/{channel}/") in hex. The secret is `data_dir/access.secret`
    /// (made 0600 on first start); a CDN edge holding it can verify the same token.
    pub signed_urls: bool,
    /// How long the URLs the page and `vvtvctl sign-url` make stay valid, by default.
    pub default_ttl_seconds: u64,
    /// The page asks viewers to confirm their age before playing (remembered in the browser).
    pub age_gate: bool,
    pub age_gate_text: String,
    /// The request header the CDN puts the viewer's ISO 3166 country code in.
    pub geo_header: String,
    /// When not empty, only these countries may watch.
    pub geo_allow: Vec<String>,
    /// These countries may not watch.
    pub geo_deny: Vec<String>,
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            signed_urls: false,
            default_ttl_seconds: 6 * 3600,
            age_gate: false,
            age_gate_text: "This channel is for viewers aged 18 and over.".into(),
            geo_header: "CF-IPCountry".into(),
            geo_allow: Vec::new(),
            geo_deny: Vec::new(),
        }
    }
}

/// Viewer sessions counted from the player page's beacons (`POST /api/v1/playback`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AudienceConfig {
    /// The page sends a heartbeat this often.
    pub heartbeat_seconds: u64,
    /// A session with no beacon for this long has ended (the page died or the network went away).
    pub session_timeout_seconds: u64,
    /// Sessions (and their per-airing watch time) are deleted this many days after their last beacon.
    pub retention_days: u32,
    /// Live sessions held at most; beyond it new sessions are refused (503) until some end.
    pub max_sessions: u32,
    /// Beacons one session may send at once, and how many a minute after that (token bucket); more get a 429.
    pub session_burst: u32,
    pub session_beacons_per_minute: u32,
}

impl Default for AudienceConfig {
    fn default() -> Self {
        AudienceConfig {
            heartbeat_seconds: 10,
            session_timeout_seconds: 30,
            retention_days: 90,
            max_sessions: 10_000,
            session_burst: 10,
            session_beacons_per_minute: 30,
        }
    }
}
