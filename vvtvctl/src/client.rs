//! The HTTP client of the control API: bearer token, JSON in and out, failures turned into one-line reasons.

use serde_json::Value;
use std::time::Duration;

pub enum Failure {
    /// The daemon did not answer at all (exit 2).
    Unreachable(String),
    /// The daemon answered with an error (exit 1).
    Refused(String),
}

pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::blocking::Client,
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

    pub fn get(&self, path: &str) -> Result<Value, Failure> {
        self.send(self.http.get(self.url(path)))
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        self.send(self.http.post(self.url(path)).json(body))
    }

    /// A POST that may take minutes (a discovery run).
    pub fn post_slow(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        self.send(self.http.post(self.url(path)).json(body).timeout(Duration::from_secs(30 * 60)))
    }

    pub fn put(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        self.send(self.http.put(self.url(path)).json(body))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn send(&self, mut req: reqwest::blocking::RequestBuilder) -> Result<Value, Failure> {
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req
            .send()
            .map_err(|e| Failure::Unreachable(format!("cannot reach vvtv at {}: {}", self.base, root_cause(&e))))?;
        let status = resp.status();
        let body = resp
            .text()
            .map_err(|e| Failure::Unreachable(format!("cannot reach vvtv at {}: {}", self.base, root_cause(&e))))?;
        let value: Value = serde_json::from_str(&body).unwrap_or(Value::String(body.trim().to_string()));
        if status.is_success() {
            return Ok(value);
        }
        let message = value["error"].as_str().map(str::to_string).unwrap_or_else(|| value.to_string());
        Err(Failure::Refused(format!("{} ({})", message, status.as_u16())))
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
