//! The download tests' stand-in origin: a scriptable HTTP/1.1 server on 127.0.0.1, raw TCP so that it can misbehave
//! on purpose, and the helpers every download test uses (media bytes, limits, a quick [`Tuning`], [`fetch`]).

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::transfer::hex;
use super::{download_tuned, DownloadError, Downloaded, Limits, Tuning, MB};

#[derive(Debug, Clone)]
pub(super) struct Request {
    pub(super) path: String,
    /// Names in lowercase.
    headers: HashMap<String, String>,
}

impl Request {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// One answer; the defaults describe a well-behaved server.
pub(super) struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
    content_length: bool,
    /// Close the connection after this many body bytes.
    cut_at: Option<usize>,
    /// Send the body in pieces of this size with this pause after each.
    pace: Option<(usize, Duration)>,
    /// Keep the connection open, silent, after sending.
    hang: bool,
}

impl Reply {
    pub(super) fn new(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
            content_length: true,
            cut_at: None,
            pace: None,
            hang: false,
        }
    }
    pub(super) fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_string(), value.into()));
        self
    }
    pub(super) fn cut_at(mut self, bytes: usize) -> Reply {
        self.cut_at = Some(bytes);
        self
    }
    pub(super) fn without_length(mut self) -> Reply {
        self.content_length = false;
        self
    }
    pub(super) fn paced(mut self, piece: usize, pause: Duration) -> Reply {
        self.pace = Some((piece, pause));
        self
    }
    pub(super) fn hang(mut self) -> Reply {
        self.hang = true;
        self
    }
}

type Handler = dyn Fn(&Request, usize) -> Reply + Send + Sync;

pub(super) struct Server {
    base: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Server {
    pub(super) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
    pub(super) fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("request log").clone()
    }
}

/// Serves every request with `handler(request, index of the request since the start)`, one per connection.
pub(super) async fn serve(handler: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a test server");
    let addr = listener.local_addr().expect("test server address");
    let requests = Arc::new(Mutex::new(Vec::new()));
    let handler: Arc<Handler> = Arc::new(handler);
    let log = requests.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let (handler, log) = (handler.clone(), log.clone());
            tokio::spawn(async move {
                let _ = answer(socket, &*handler, &log).await;
            });
        }
    });
    Server { base: format!("http://{addr}"), requests }
}

async fn answer(mut socket: TcpStream, handler: &Handler, log: &Mutex<Vec<Request>>) -> io::Result<()> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 2048];
    while !received.windows(4).any(|window| window == b"\r\n\r\n") {
        let n = socket.read(&mut buffer).await?;
        if n == 0 {
            return Ok(());
        }
        received.extend_from_slice(&buffer[..n]);
    }
    let text = String::from_utf8_lossy(&received).into_owned();
    let mut lines = text.split("\r\n");
    let path = lines.next().and_then(|line| line.split(' ').nth(1)).unwrap_or("/").to_string();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    let request = Request { path, headers };
    let index = {
        let mut log = log.lock().expect("request log");
        log.push(request.clone());
        log.len() - 1
    };
    let reply = handler(&request, index);

    let mut head = format!("HTTP/1.1 {} {}\r\nConnection: close\r\n", reply.status, reason(reply.status));
    if reply.content_length {
        head += &format!("Content-Length: {}\r\n", reply.body.len());
    }
    for (name, value) in &reply.headers {
        head += &format!("{name}: {value}\r\n");
    }
    head += "\r\n";
    socket.write_all(head.as_bytes()).await?;
    let body = &reply.body[..reply.cut_at.unwrap_or(usize::MAX).min(reply.body.len())];
    match reply.pace {
        Some((piece, pause)) => {
            for piece in body.chunks(piece) {
                socket.write_all(piece).await?;
                tokio::time::sleep(pause).await;
            }
        }
        None => socket.write_all(body).await?,
    }
    socket.flush().await?;
    if reply.hang {
        tokio::time::sleep(Duration::from_secs(600)).await;
    }
    Ok(())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}

/// Answers like a static file server: `Range: bytes=N-` honoured unless `If-Range` names another version.
pub(super) fn file_reply(request: &Request, content: &[u8], etag: Option<&str>) -> Reply {
    let from = request
        .header("range")
        .and_then(|range| range.strip_prefix("bytes="))
        .and_then(|range| range.strip_suffix('-'))
        .and_then(|from| from.parse::<usize>().ok());
    let same_version = request.header("if-range").is_none_or(|wanted| Some(wanted) == etag);
    let len = content.len();
    let mut reply = match from {
        Some(from) if same_version && from < len => {
            Reply::new(206, &content[from..]).header("Content-Range", format!("bytes {from}-{}/{len}", len - 1))
        }
        Some(_) if same_version => Reply::new(416, "").header("Content-Range", format!("bytes */{len}")),
        _ => Reply::new(200, content),
    };
    if let Some(etag) = etag {
        reply = reply.header("ETag", etag);
    }
    reply.header("Content-Type", "video/mp4").header("Accept-Ranges", "bytes")
}

/// Bytes that sniff as MP4 followed by noise, different for every seed.
pub(in crate::factory) fn media(len: usize, seed: u64) -> Vec<u8> {
    let mut bytes = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2".to_vec();
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while bytes.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

pub(super) fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub(super) fn limits() -> Limits {
    Limits { max_bytes: 64 * MB, timeout: Duration::from_secs(30), allow_private: true, user_agent: "vvtv-test".into() }
}

pub(super) fn quick() -> Tuning {
    Tuning { stall: Duration::from_secs(5), backoff: Duration::from_millis(20), public_exceptions: Vec::new() }
}

type Reports = Arc<Mutex<Vec<(u64, Option<u64>)>>>;

pub(super) async fn fetch(
    url: &str,
    part: &Path,
    limits: &Limits,
    tuning: &Tuning,
) -> (Result<Downloaded, DownloadError>, Vec<(u64, Option<u64>)>) {
    let reports: Reports = Arc::default();
    let sink = reports.clone();
    let progress = move |done: u64, total: Option<u64>| sink.lock().expect("reports").push((done, total));
    let result = download_tuned(url, part, limits, tuning, &progress).await;
    let reports = reports.lock().expect("reports").clone();
    (result, reports)
}

pub(super) fn part_in(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("work").join("123.download")
}
