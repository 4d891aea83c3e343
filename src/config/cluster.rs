//! The keys that make one station out of several machines: which database and object store they share, and what
//! each node runs.

use super::{invalid, ConfigError};
use serde::{Deserialize, Serialize};

/// What a node runs; every node runs all four unless told otherwise.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Claims ingest jobs (downloads, normalizes, gates) and uploads what it makes.
    Factory,
    /// Plays the channels whose lease it holds, and takes over those whose holder died.
    Broadcaster,
    /// Discovers and scores candidates.
    Curator,
    /// Serves viewers: the HLS origin, the player page, the guide. (The control API and `/metrics` are served by
    /// every node.)
    Http,
}

impl Role {
    /// The name in `[node] roles` (and in the `nodes` table and the status API).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Factory => "factory",
            Role::Broadcaster => "broadcaster",
            Role::Curator => "curator",
            Role::Http => "http",
        }
    }
}

pub const ALL_ROLES: [Role; 4] = [Role::Factory, Role::Broadcaster, Role::Curator, Role::Http];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// This process's name among the nodes sharing a database; "" = `{hostname}-{listen port}`.
    pub id: String,
    pub roles: Vec<Role>,
    /// How long a channel lease lasts unrenewed (it is renewed every second): the longest a dead holder keeps its
    /// channels off the air before another node takes them.
    pub lease_seconds: u32,
    /// A node whose heartbeat is older than this is dead: its ingest jobs go back to the queue.
    pub dead_after_seconds: u32,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig { id: String::new(), roles: ALL_ROLES.to_vec(), lease_seconds: 4, dead_after_seconds: 20 }
    }
}

impl NodeConfig {
    pub fn runs(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// The roles by name.
    pub fn role_names(&self) -> Vec<String> {
        self.roles.iter().map(|r| r.as_str().to_owned()).collect()
    }

    /// The configured id, else `{hostname}-{port}`.
    pub fn resolved_id(&self, port: u16) -> String {
        if !self.id.is_empty() {
            return self.id.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "vvtv".into());
        format!("{host}-{port}")
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !self.id.is_empty() && !self.id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(invalid("node.id", format!("{:?} may hold only letters, digits, '-', '_' and '.'", self.id)));
        }
        if self.roles.is_empty() {
            return Err(invalid("node.roles", "a node must run at least one of factory, broadcaster, curator, http"));
        }
        if !(2..=60).contains(&self.lease_seconds) {
            return Err(invalid("node.lease_seconds", format!("{} is outside 2..=60", self.lease_seconds)));
        }
        if self.dead_after_seconds <= self.lease_seconds || self.dead_after_seconds > 3600 {
            return Err(invalid(
                "node.dead_after_seconds",
                format!(
                    "{} must be above lease_seconds ({}) and at most 3600",
                    self.dead_after_seconds, self.lease_seconds
                ),
            ));
        }
        Ok(())
    }
}

/// An S3-compatible object store (`storage.object_url = "s3://…"`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// The service's URL, e.g. `http://10.0.0.5:8333` (SeaweedFS, MinIO, Ceph); "" = AWS itself.
    pub endpoint: String,
    pub region: String,
    /// Credentials; "" = `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` from the environment.
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Plain-HTTP endpoints (a service on a private network).
    pub allow_http: bool,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            endpoint: String::new(),
            region: "us-east-1".into(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
            allow_http: false,
        }
    }
}

/// Checks `storage.database_url` and `storage.object_url`.
pub(super) fn validate_urls(database_url: &str, object_url: &str, s3: &S3Config) -> Result<(), ConfigError> {
    let db_ok = database_url.is_empty()
        || database_url.starts_with("sqlite://")
        || database_url.starts_with("postgres://")
        || database_url.starts_with("postgresql://");
    if !db_ok {
        return Err(invalid(
            "storage.database_url",
            format!(
                "{:?} must be empty (SQLite in data_dir), sqlite://PATH or postgres://…",
                crate::store::redact(database_url)
            ),
        ));
    }
    if !object_url.is_empty() {
        let Some(rest) = object_url.strip_prefix("s3://") else {
            return Err(invalid(
                "storage.object_url",
                format!("{object_url:?} must be empty (data_dir) or s3://bucket/prefix"),
            ));
        };
        if rest.split('/').next().is_none_or(str::is_empty) {
            return Err(invalid("storage.object_url", format!("{object_url:?} names no bucket")));
        }
        if !s3.endpoint.is_empty() && url::Url::parse(&s3.endpoint).is_err() {
            return Err(invalid("storage.s3.endpoint", format!("{:?} is not a URL", s3.endpoint)));
        }
    }
    Ok(())
}
