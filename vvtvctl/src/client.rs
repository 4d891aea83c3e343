//! The HTTP client of the control API: bearer token, typed JSON in and out (the `vvtv-api` types), failures turned
//! into one-line reasons.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;

pub enum Failure {
    /// The daemon did not answer at all (exit 2).
    Unreachable(String),
    /// The daemon answered with an error, or with something this vvtvctl cannot read (exit 1).
    Refused(String),
}

pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::blocking::Client,
}

/// An answer: the typed value for tables, and the JSON as the daemon sent it for `--json`.
pub struct Answer<T> {
    pub value: T,
    pub json: Value,
}

/// The token the daemon writes on first start, when run from the same working directory with default storage.
pub fn token_from_default_file() -> Option<String> {
    std::fs::read_to_string("var/control.token").ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty())
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> Client {
        let http = reqwest::blocking::Client::builder()
            .user_agent(concat!("vvtvctl/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_else(|_| reqwest::blocking::Client::new());
        Client { base: base.trim_end_matches('/').to_string(), token, http }
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<Answer<T>, Failure> {
        self.send("GET", path, self.http.get(self.url(path)))
    }

    pub fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<Answer<T>, Failure> {
        self.send("POST", path, self.http.post(self.url(path)).json(body))
    }

    /// A POST that may take minutes (a discovery run).
    pub fn post_slow<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<Answer<T>, Failure> {
        self.send("POST", path, self.http.post(self.url(path)).json(body).timeout(Duration::from_secs(30 * 60)))
    }

    pub fn put<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<Answer<T>, Failure> {
        self.send("PUT", path, self.http.put(self.url(path)).json(body))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn send<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        mut req: reqwest::blocking::RequestBuilder,
    ) -> Result<Answer<T>, Failure> {
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let unreachable =
            |e: reqwest::Error| Failure::Unreachable(format!("cannot reach vvtv at {}: {}", self.base, root_cause(&e)));
        let resp = req.send().map_err(unreachable)?;
        let status = resp.status();
        let body = resp.text().map_err(unreachable)?;
        let json: Value = serde_json::from_str(&body).unwrap_or(Value::String(body.trim().to_string()));
        if !status.is_success() {
            let message = json["error"].as_str().map(str::to_string).unwrap_or_else(|| json.to_string());
            return Err(Failure::Refused(format!("{} ({})", message, status.as_u16())));
        }
        let value = serde_json::from_value(json.clone()).map_err(|e| {
            Failure::Refused(format!(
                "the daemon's answer to {method} {path} does not match this vvtvctl ({}): {e}",
                env!("CARGO_PKG_VERSION")
            ))
        })?;
        Ok(Answer { value, json })
    }
}

/// reqwest wraps the useful part ("Connection refused") several levels down.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
