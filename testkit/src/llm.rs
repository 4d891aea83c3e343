//! A stand-in LLM server for tests: speaks Ollama's `/api/chat` and the OpenAI-compatible `/v1/chat/completions`
//! on 127.0.0.1, answers according to a [`Mode`] that a test can switch at any time, and records every request.
//!
//! It runs on its own thread with its own tokio runtime, so plain `#[test]`s that drive a daemon and
//! `#[tokio::test]`s can both use it. It speaks just enough HTTP/1.1 for these two endpoints: one request per
//! connection, bodies sized by `Content-Length`, every answer sent with `Connection: close`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::background::Background;

/// How the server answers the next requests.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Answers `{"score": s, "tags": ["nature", "test"], "reason": …}`.
    Good(f64),
    /// Answers with a sentence that holds no JSON object.
    Garbage,
    /// Waits this long, then answers like `Good(0.5)`.
    Slow(Duration),
    /// Reads the request, then closes the connection without answering.
    Down,
    /// Answers with exactly this assistant text (fenced JSON, text around JSON, …).
    Raw(String),
    /// Answers the next requests with these modes in turn, the last one for every request after (a flaky model:
    /// `Sequence(vec![Mode::Garbage, Mode::Good(0.8)])`). A step that is itself a sequence answers like `Garbage`.
    Sequence(Vec<Mode>),
}

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    /// The JSON body, or `Null` when it was not JSON.
    pub body: Value,
}

impl Request {
    /// The `content` of the message with this `role` ("system" or "user"), or "" when there is none.
    pub fn message(&self, role: &str) -> String {
        let messages = self.body["messages"].as_array().cloned().unwrap_or_default();
        let message = messages.iter().find(|m| m["role"] == role);
        message.and_then(|m| m["content"].as_str()).unwrap_or_default().to_string()
    }
}

pub struct LlmServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// Requests still being answered (Mode::Slow) are cancelled when it stops.
    _background: Background,
}

struct Shared {
    mode: Mutex<Mode>,
    requests: Mutex<Vec<Request>>,
}

impl Shared {
    /// The mode for the request just received, taking one step of a sequence.
    fn next_mode(&self) -> Mode {
        let mut mode = self.mode.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut *mode {
            Mode::Sequence(steps) if steps.len() > 1 => steps.remove(0),
            Mode::Sequence(steps) => steps.first().cloned().unwrap_or(Mode::Garbage),
            other => other.clone(),
        }
    }
}

impl LlmServer {
    /// Binds 127.0.0.1 on a free port and serves until dropped.
    pub fn start(mode: Mode) -> LlmServer {
        let shared = Arc::new(Shared { mode: Mutex::new(mode), requests: Mutex::new(Vec::new()) });
        let served = shared.clone();
        let (addr, background) = Background::serve("test-llm-server", move |listener| async move {
            loop {
                if let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(answer(stream, served.clone()));
                }
            }
        });
        LlmServer { addr, shared, _background: background }
    }

    /// Base URL, e.g. `http://127.0.0.1:41234`: the endpoints are under it.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap_or_else(PoisonError::into_inner) = mode;
    }

    /// Requests received so far, including those answered by closing the connection (`Mode::Down`).
    pub fn request_count(&self) -> usize {
        self.shared.requests.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    pub fn requests(&self) -> Vec<Request> {
        self.shared.requests.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

async fn answer(mut stream: TcpStream, shared: Arc<Shared>) {
    let Some((path, body)) = read_request(&mut stream).await else { return };
    let mode = shared.next_mode();
    let model = body["model"].as_str().unwrap_or("test-model").to_string();
    shared.requests.lock().unwrap_or_else(PoisonError::into_inner).push(Request { path: path.clone(), body });

    let content = match mode {
        // Dropping the stream closes the connection with no answer at all.
        Mode::Down => return,
        Mode::Good(score) => good_answer(score),
        Mode::Slow(delay) => {
            tokio::time::sleep(delay).await;
            good_answer(0.5)
        }
        Mode::Garbage | Mode::Sequence(_) => "I think this video is quite lovely, really!".to_string(),
        Mode::Raw(text) => text,
    };
    let (status, reply) = match path.as_str() {
        "/api/chat" => (
            "200 OK",
            json!({
                "model": model,
                "created_at": "2025-01-01T00:00:00Z",
                "message": {"role": "assistant", "content": content},
                "done": true,
            }),
        ),
        "/v1/chat/completions" => (
            "200 OK",
            json!({
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            }),
        ),
        _ => ("404 Not Found", json!({"error": format!("no endpoint {path}")})),
    };
    let body = reply.to_string();
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    // The client may have given up already (timeouts): nothing to do about a failed write.
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn good_answer(score: f64) -> String {
    json!({"score": score, "tags": ["nature", "test"], "reason": "fits the test channel"}).to_string()
}

/// Reads one request: its path and JSON body. `None` when the client closed early or sent no HTTP.
async fn read_request(stream: &mut TcpStream) -> Option<(String, Value)> {
    const MAX_REQUEST_BYTES: usize = 4 << 20;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() > MAX_REQUEST_BYTES {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let path = head.lines().next()?.split_whitespace().nth(1)?.to_string();
    let length = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok())
        .unwrap_or(0)
        .min(MAX_REQUEST_BYTES);
    let mut body = buf.split_off(head_end + 4);
    while body.len() < length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((path, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(server: &LlmServer, path: &str) -> reqwest::Result<Value> {
        let body = json!({"model": "m", "messages": [{"role": "system", "content": "be brief"},
                                                    {"role": "user", "content": "score this"}]});
        reqwest::blocking::Client::new().post(format!("{}{path}", server.url())).json(&body).send()?.json()
    }

    #[test]
    fn speaks_both_protocols_and_records_what_it_was_asked() {
        let server = LlmServer::start(Mode::Good(0.7));
        let ollama = chat(&server, "/api/chat").expect("ollama answer");
        let content: Value =
            serde_json::from_str(ollama["message"]["content"].as_str().expect("content")).expect("json");
        assert_eq!((content["score"].as_f64(), ollama["model"].as_str()), (Some(0.7), Some("m")));
        let openai = chat(&server, "/v1/chat/completions").expect("openai answer");
        assert_eq!(openai["choices"][0]["message"]["role"], "assistant");

        let requests = server.requests();
        assert_eq!(server.request_count(), 2);
        assert_eq!((requests[0].path.as_str(), requests[1].path.as_str()), ("/api/chat", "/v1/chat/completions"));
        assert_eq!(
            (requests[0].message("system"), requests[0].message("user")),
            ("be brief".into(), "score this".into())
        );
        assert_eq!(requests[0].message("tool"), "");
    }

    #[test]
    fn a_sequence_steps_through_its_modes_and_keeps_the_last() {
        let server = LlmServer::start(Mode::Sequence(vec![Mode::Raw("first".into()), Mode::Down, Mode::Garbage]));
        let first = chat(&server, "/api/chat").expect("an answer");
        assert_eq!(first["message"]["content"], "first");
        assert!(chat(&server, "/api/chat").is_err(), "Down closes without answering");
        for _ in 0..2 {
            let garbage = chat(&server, "/api/chat").expect("an answer");
            assert_eq!(garbage["message"]["content"], "I think this video is quite lovely, really!");
        }
        server.set_mode(Mode::Good(0.1));
        assert!(chat(&server, "/api/chat").expect("an answer")["message"]["content"]
            .as_str()
            .unwrap_or("")
            .contains("0.1"));
        assert_eq!(server.request_count(), 5);
    }
}
