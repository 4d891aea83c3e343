//! The misbehaving HTTP server: a scriptable HTTP/1.1 server on 127.0.0.1, raw TCP so that it can misbehave on
//! purpose — cut a body short, send it slowly, go silent, lie about its length — and log every request.
//!
//! A test gives [`Server::start`] a handler that gets each request and its index since the start and returns a
//! [`Reply`]; the reply's defaults describe a well-behaved server, and its builder methods add the misbehaviour.
//! [`file_reply`] answers like a static file server (Range, If-Range, ETag), the usual starting point. One request
//! per connection, every answer sent with `Connection: close`.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::background::Background;

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Request {
    /// The request target: path and query.
    pub path: String,
    /// Names in lowercase.
    headers: HashMap<String, String>,
}

impl Request {
    /// The value of header `name` (lowercase), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// One answer; the defaults describe a well-behaved server.
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    /// What the answer promises (its Content-Length), whether or not all of it is sent.
    pub body: Vec<u8>,
    content_length: bool,
    /// Close the connection after this many body bytes.
    cut_at: Option<usize>,
    /// Send the body in pieces of this size with this pause after each.
    pace: Option<(usize, Duration)>,
    /// Keep the connection open, silent, after sending.
    hang: bool,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Reply {
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

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// Closes the connection after `bytes` of the body, though the head announced all of it.
    pub fn cut_at(mut self, bytes: usize) -> Reply {
        self.cut_at = Some(bytes);
        self
    }

    /// Sends no Content-Length: the body ends when the connection closes.
    pub fn without_length(mut self) -> Reply {
        self.content_length = false;
        self
    }

    /// Sends the body in pieces of `piece` bytes with `pause` after each.
    pub fn paced(mut self, piece: usize, pause: Duration) -> Reply {
        self.pace = Some((piece, pause));
        self
    }

    /// Keeps the connection open and silent after sending (until the server is dropped).
    pub fn hang(mut self) -> Reply {
        self.hang = true;
        self
    }
}

type Handler = dyn Fn(&Request, usize) -> Reply + Send + Sync;

/// A running server; it stops when dropped.
pub struct Server {
    base: String,
    requests: Arc<Mutex<Vec<Request>>>,
    _background: Background,
}

impl Server {
    /// Serves every request with `handler(request, index of the request since the start)`, one per connection.
    pub fn start(handler: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static) -> Server {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let log = requests.clone();
        let (addr, background) = Background::serve("flaky-server", move |listener| async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (handler, log) = (handler.clone(), log.clone());
                tokio::spawn(async move {
                    let _ = answer(socket, &*handler, &log).await;
                });
            }
        });
        Server { base: format!("http://{addr}"), requests, _background: background }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
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
        let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
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
pub fn file_reply(request: &Request, content: &[u8], etag: Option<&str>) -> Reply {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Instant;

    /// Sends one raw request and reads until the server closes: (head, body).
    fn exchange(server: &Server, request: &str) -> (String, Vec<u8>) {
        let addr = server.base.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream.write_all(request.as_bytes()).expect("send");
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).expect("read");
        let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").expect("a head") + 4;
        (String::from_utf8_lossy(&bytes[..end]).into_owned(), bytes[end..].to_vec())
    }

    #[test]
    fn file_replies_honour_range_unless_if_range_names_another_version() {
        let content: Vec<u8> = (0..100u8).collect();
        let served = content.clone();
        let server = Server::start(move |request, _| file_reply(request, &served, Some("\"v1\"")));

        let (head, body) = exchange(&server, "GET /f HTTP/1.1\r\nRange: bytes=40-\r\nIf-Range: \"v1\"\r\n\r\n");
        assert!(head.starts_with("HTTP/1.1 206 Partial Content\r\n"), "{head}");
        assert!(head.contains("Content-Range: bytes 40-99/100\r\n") && head.contains("ETag: \"v1\"\r\n"), "{head}");
        assert_eq!(body, content[40..]);
        let (head, body) = exchange(&server, "GET /f HTTP/1.1\r\nRange: bytes=40-\r\nIf-Range: \"v0\"\r\n\r\n");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert_eq!(body, content);
        let (head, _) = exchange(&server, "GET /f HTTP/1.1\r\nRange: bytes=100-\r\n\r\n");
        assert!(head.starts_with("HTTP/1.1 416 ") && head.contains("Content-Range: bytes */100"), "{head}");

        let requests = server.requests();
        assert_eq!(requests.len(), 3);
        assert_eq!((requests[0].path.as_str(), requests[0].header("if-range")), ("/f", Some("\"v1\"")));
    }

    #[test]
    fn a_cut_reply_announces_everything_and_sends_part_of_it_slowly() {
        let server = Server::start(|_, index| {
            let reply = Reply::new(200, vec![7u8; 1000]).paced(100, Duration::from_millis(20));
            if index == 0 {
                reply.cut_at(300)
            } else {
                reply.without_length()
            }
        });
        let started = Instant::now();
        let (head, body) = exchange(&server, "GET /a HTTP/1.1\r\n\r\n");
        assert!(head.contains("Content-Length: 1000\r\n"), "{head}");
        assert_eq!(body.len(), 300);
        assert!(started.elapsed() >= Duration::from_millis(60), "{:?}", started.elapsed());
        let (head, body) = exchange(&server, "GET /b HTTP/1.1\r\n\r\n");
        assert!(!head.contains("Content-Length"), "{head}");
        assert_eq!(body.len(), 1000);
    }

    #[test]
    fn a_hanging_reply_keeps_the_connection_open_until_the_server_stops() {
        let server = Server::start(|_, _| Reply::new(200, "abc").hang());
        let addr = server.base.trim_start_matches("http://").to_owned();
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream.write_all(b"GET / HTTP/1.1\r\n\r\n").expect("send");
        stream.set_read_timeout(Some(Duration::from_millis(300))).expect("timeout");
        let mut bytes = Vec::new();
        let error = stream.read_to_end(&mut bytes).expect_err("the connection stays open");
        assert!(matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut), "{error}");
        assert!(bytes.ends_with(b"\r\n\r\nabc"));
        drop(server);
        stream.set_read_timeout(None).expect("no timeout");
        let mut rest = Vec::new();
        assert_eq!(stream.read_to_end(&mut rest).expect("closed"), 0, "dropping the server closes the connection");
    }
}
