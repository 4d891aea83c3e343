//! One call of a download: its requests, and the bytes moved into the partial file within the limits, hashed and
//! sniffed on the way.
//!
//! - the size limit is enforced from `Content-Length` before the body and again while streaming; the whole download
//!   has a deadline and a connection that sends nothing for [`STALL_TIMEOUT`](super::STALL_TIMEOUT) is given up;
//! - the first bytes are sniffed as soon as they arrive, so an HTML error page answered with `200 OK` is rejected after
//!   4 KiB rather than after the whole body.
//!
//! A [`Transfer`] is one call of [`download`](super::download). It sends its requests and follows their redirects
//! itself, asking `guard.rs` about every hop (scheme, addresses, the pinned client); what it knows about the partial
//! file, and so how to continue it, is a [`Partial`] from `resume.rs`.

use std::io::{self, Read, SeekFrom};
use std::path::Path;
use std::time::Duration;

use reqwest::header::{ACCEPT_ENCODING, CONTENT_TYPE};
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use tokio::fs::{File, OpenOptions};
use tokio::io::{AsyncSeekExt, AsyncWriteExt, BufWriter};
use tokio::time::{timeout_at, Instant};
use tracing::{debug, info, warn};
use url::Url;

use super::guard::{check_peer, check_scheme, checked_addresses, next_hop, pinned_client};
use super::resume::Partial;
use super::{describe, hex, io_error, DownloadError, Downloaded, Limits, Tuning, MAX_BACKOFF, MAX_RESUMES};
use crate::factory::sniff::{sniff_bytes, Sniffed, SNIFF_LEN};

/// Minimum time between two progress reports.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);
/// Restarts from zero caused by a server's odd answers to `Range` (not by dropped connections) before giving up.
const MAX_RESTARTS: u32 = 2;
/// Bytes collected before a write to the partial file: few system calls, and little lost to a crash.
const WRITE_BUFFER: usize = 1 << 20;

/// How one request ended short of a complete file.
enum Interrupt {
    /// Give up with this error.
    Failed(DownloadError),
    /// The connection failed or dropped: resume (or retry) after a pause.
    Dropped(String),
}

impl From<DownloadError> for Interrupt {
    fn from(e: DownloadError) -> Self {
        Interrupt::Failed(e)
    }
}

/// How one complete request ended.
enum Outcome {
    Complete(Url),
    /// The server's answer to `Range` cannot be trusted: start over from zero, for this reason.
    Restart(String),
}

/// One call of [`download`](super::download): the partial file and everything known about it.
pub(super) struct Transfer<'a> {
    /// The URL as the caller gave it; errors name it.
    url: &'a str,
    start: Url,
    part: &'a Path,
    limits: &'a Limits,
    tuning: &'a Tuning,
    deadline: Instant,
    out: BufWriter<File>,
    /// How many bytes `part` holds (some may still sit in `out`'s buffer), of what, and how many are hashed.
    partial: Partial,
    /// Fed `partial.hashed` bytes.
    hasher: Sha256,
    /// The first `min(partial.done, SNIFF_LEN)` bytes.
    head: Vec<u8>,
    kind: Option<Sniffed>,
    content_type: Option<String>,
    /// Whether any server answered during this call: until then a failure means "cannot connect", not "dropped".
    answered: bool,
    last_progress: Option<Instant>,
}

impl<'a> Transfer<'a> {
    pub(super) async fn open(
        url: &'a str,
        part: &'a Path,
        limits: &'a Limits,
        tuning: &'a Tuning,
    ) -> Result<Transfer<'a>, DownloadError> {
        let deadline = Instant::now()
            .checked_add(limits.timeout)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600));
        let start =
            Url::parse(url).map_err(|e| DownloadError::InvalidUrl { url: url.to_string(), reason: e.to_string() })?;
        check_scheme(url, &start, false)?;

        if let Some(dir) = part.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await.map_err(io_error(dir, "create the directory"))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(part)
            .await
            .map_err(io_error(part, "open"))?;
        let existing = file.metadata().await.map_err(io_error(part, "inspect"))?.len();
        let resumable = Partial::left_over(url, part, existing).await;
        if resumable.is_some() {
            file.seek(SeekFrom::Start(existing)).await.map_err(io_error(part, "seek in"))?;
        }

        let mut transfer = Transfer {
            url,
            start,
            part,
            limits,
            tuning,
            deadline,
            out: BufWriter::with_capacity(WRITE_BUFFER, file),
            partial: Partial::default(),
            hasher: Sha256::new(),
            head: Vec::with_capacity(SNIFF_LEN),
            kind: None,
            content_type: None,
            answered: false,
            last_progress: None,
        };
        match resumable {
            Some(partial) => {
                debug!(url, bytes = existing, "resuming an earlier attempt");
                transfer.partial = partial;
            }
            None => {
                if existing > 0 {
                    debug!(url, bytes = existing, "discarding a partial file that cannot be resumed");
                }
                transfer.restart().await?;
            }
        }
        Ok(transfer)
    }

    /// Requests until the file is complete, resuming dropped connections.
    pub(super) async fn run(
        &mut self,
        progress: &(dyn Fn(u64, Option<u64>) + Send + Sync),
    ) -> Result<Downloaded, DownloadError> {
        let mut drops = 0u32;
        let mut restarts = 0u32;
        loop {
            match self.attempt(progress).await {
                Ok(Outcome::Complete(final_url)) => return self.finish(final_url, progress).await,
                Ok(Outcome::Restart(reason)) => {
                    restarts += 1;
                    if restarts > MAX_RESTARTS {
                        return Err(DownloadError::Protocol { url: self.url.to_string(), reason });
                    }
                    info!(url = self.url, %reason, "starting the download over");
                    self.restart().await?;
                }
                Err(Interrupt::Failed(e)) => return Err(e),
                Err(Interrupt::Dropped(reason)) if !self.answered => {
                    return Err(DownloadError::Connect { url: self.url.to_string(), reason });
                }
                Err(Interrupt::Dropped(reason)) => {
                    drops += 1;
                    if drops > MAX_RESUMES {
                        return Err(DownloadError::Dropped {
                            url: self.url.to_string(),
                            drops,
                            done: self.partial.done,
                            total: self.partial.total,
                            reason,
                        });
                    }
                    let pause = self.tuning.backoff.saturating_mul(1u32 << (drops - 1).min(16)).min(MAX_BACKOFF);
                    warn!(url = self.url, drops, done = self.partial.done, %reason, ?pause, "connection dropped; resuming");
                    if Instant::now() + pause >= self.deadline {
                        return Err(self.timed_out());
                    }
                    tokio::time::sleep(pause).await;
                    if !self.partial.can_resume() {
                        self.restart().await?;
                    }
                }
            }
        }
    }

    /// One request: its answer checked, its body appended to the partial file.
    async fn attempt(&mut self, progress: &(dyn Fn(u64, Option<u64>) + Send + Sync)) -> Result<Outcome, Interrupt> {
        let (mut response, final_url) = self.request().await?;
        self.answered = true;
        let status = response.status();
        let headers = response.headers();
        if status == StatusCode::PARTIAL_CONTENT {
            if let Err(reason) = self.partial.accept_rest(headers) {
                return Ok(Outcome::Restart(reason));
            }
            self.catch_up_hash().await?;
        } else if status.is_success() {
            if self.partial.done > 0 {
                info!(url = self.url, "the server sent the whole file instead of the rest; starting over");
                self.restart().await?;
            }
            self.partial.accept_whole(headers);
        } else if status == StatusCode::RANGE_NOT_SATISFIABLE && self.partial.done > 0 {
            // A partial file that was in fact complete ends up here too: fetching it again is safer than trusting it.
            return Ok(Outcome::Restart(format!("it cannot resume at byte {}", self.partial.done)));
        } else {
            return Err(DownloadError::Status { url: self.url.to_string(), status }.into());
        }

        self.content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
        if self.content_type.as_deref().is_some_and(is_html) {
            return Err(self.not_media("is an HTML page, not a media file (the server says text/html)").into());
        }
        if let Some(total) = self.partial.total.filter(|&total| total > self.limits.max_bytes) {
            return Err(self.too_large(Some(total)).into());
        }
        self.partial.save_meta(self.url, self.part).await?;
        self.receive(&mut response, progress).await?;
        Ok(Outcome::Complete(final_url))
    }

    /// Sends the request, following redirects by hand so that every hop's address is checked.
    async fn request(&self) -> Result<(reqwest::Response, Url), Interrupt> {
        let mut target = self.start.clone();
        let mut redirects = 0;
        loop {
            let redirected = redirects > 0;
            check_scheme(self.url, &target, redirected)?;
            let checked = checked_addresses(self.url, &target, redirected, self.limits, self.tuning);
            let addrs = match timeout_at(self.wait_limit(), checked).await {
                Err(_) => return Err(self.timeout().into()),
                Ok(addrs) => addrs?,
            };
            let client = pinned_client(&target, &addrs, self.limits)
                .map_err(|e| DownloadError::Connect { url: self.url.to_string(), reason: describe(&e) })?;
            let request = self.partial.with_range(client.get(target.clone()).header(ACCEPT_ENCODING, "identity"));
            let response = match timeout_at(self.wait_limit(), request.send()).await {
                Err(_) => return Err(self.timeout().into()),
                Ok(Err(e)) => return Err(Interrupt::Dropped(describe(&e))),
                Ok(Ok(response)) => response,
            };
            check_peer(self.url, &addrs, response.remote_addr())?;
            match next_hop(self.url, &target, &response, redirects)? {
                None => return Ok((response, target)),
                Some(next) => {
                    redirects += 1;
                    target = next;
                }
            }
        }
    }

    /// Appends the body to the partial file, hashing and sniffing on the way.
    async fn receive(
        &mut self,
        response: &mut reqwest::Response,
        progress: &(dyn Fn(u64, Option<u64>) + Send + Sync),
    ) -> Result<(), Interrupt> {
        loop {
            let chunk = match timeout_at(self.wait_limit(), response.chunk()).await {
                Err(_) => return Err(self.timeout().into()),
                Ok(Err(e)) => return Err(Interrupt::Dropped(describe(&e))),
                Ok(Ok(None)) => break,
                Ok(Ok(Some(chunk))) => chunk,
            };
            let len = chunk.len() as u64;
            if self.partial.done + len > self.limits.max_bytes {
                return Err(self.too_large(None).into());
            }
            if self.head.len() < SNIFF_LEN {
                let take = (SNIFF_LEN - self.head.len()).min(chunk.len());
                self.head.extend_from_slice(&chunk[..take]);
            }
            self.check_head(false)?;
            self.hasher.update(&chunk);
            self.out.write_all(&chunk).await.map_err(io_error(self.part, "write"))?;
            self.partial.done += len;
            self.partial.hashed += len;
            self.report(progress, false);
        }
        if let Some(total) = self.partial.total.filter(|&total| self.partial.done < total) {
            return Err(Interrupt::Dropped(format!("the body ended at byte {} of {total}", self.partial.done)));
        }
        self.check_head(true)?;
        Ok(())
    }

    /// Hashes the bytes an earlier call left in the partial file, now that the server agreed to send the rest.
    async fn catch_up_hash(&mut self) -> Result<(), DownloadError> {
        if self.partial.hashed == self.partial.done {
            return Ok(());
        }
        debug_assert_eq!(self.partial.hashed, 0, "only a partial file from an earlier call is hashed late");
        self.out.flush().await.map_err(io_error(self.part, "write"))?;
        let (path, len) = (self.part.to_path_buf(), self.partial.done);
        let hashed = tokio::task::spawn_blocking(move || hash_prefix(std::fs::File::open(&path)?, len))
            .await
            .unwrap_or_else(|e| Err(io::Error::other(e)));
        let (hasher, head, read) = hashed.map_err(io_error(self.part, "read"))?;
        if read != len {
            let shrunk = io::Error::new(io::ErrorKind::UnexpectedEof, format!("{read} bytes, {len} expected"));
            return Err(io_error(self.part, "resume")(shrunk));
        }
        self.hasher = hasher;
        self.partial.hashed = len;
        self.head = head;
        self.check_head(false)
    }

    /// Empties the partial file, to download from zero.
    async fn restart(&mut self) -> Result<(), DownloadError> {
        self.out.flush().await.map_err(io_error(self.part, "write"))?;
        let file = self.out.get_mut();
        file.set_len(0).await.map_err(io_error(self.part, "truncate"))?;
        file.seek(SeekFrom::Start(0)).await.map_err(io_error(self.part, "seek in"))?;
        self.partial = Partial::default();
        self.hasher = Sha256::new();
        self.head.clear();
        self.kind = None;
        Ok(())
    }

    /// Sniffs the head once it is long enough, or at the end of the file for shorter ones.
    fn check_head(&mut self, at_end: bool) -> Result<(), DownloadError> {
        if self.kind.is_some() || (self.head.len() < SNIFF_LEN && !at_end) {
            return Ok(());
        }
        match sniff_bytes(&self.head) {
            Ok(kind) => {
                debug!(url = self.url, %kind, "sniffed");
                self.kind = Some(kind);
                Ok(())
            }
            Err(what) => Err(self.not_media(what)),
        }
    }

    async fn finish(
        &mut self,
        final_url: Url,
        progress: &(dyn Fn(u64, Option<u64>) + Send + Sync),
    ) -> Result<Downloaded, DownloadError> {
        self.out.flush().await.map_err(io_error(self.part, "write"))?;
        self.out.get_ref().sync_all().await.map_err(io_error(self.part, "sync"))?;
        self.report(progress, true);
        let sha256 = hex(&std::mem::take(&mut self.hasher).finalize());
        Ok(Downloaded {
            path: self.part.to_path_buf(),
            size: self.partial.done,
            sha256,
            content_type: self.content_type.clone(),
            final_url: final_url.to_string(),
            kind: self.kind.unwrap_or(Sniffed::Unknown),
        })
    }

    /// Writes out whatever is buffered, so that a later attempt can resume from it. Errors are left to that attempt.
    pub(super) async fn settle(&mut self) {
        if let Err(e) = self.out.flush().await {
            debug!(url = self.url, error = %e, "could not write the last received bytes");
        }
    }

    fn report(&mut self, progress: &(dyn Fn(u64, Option<u64>) + Send + Sync), last: bool) {
        let now = Instant::now();
        if last || self.last_progress.is_none_or(|at| now.duration_since(at) >= PROGRESS_INTERVAL) {
            self.last_progress = Some(now);
            progress(self.partial.done, if last { Some(self.partial.done) } else { self.partial.total });
        }
    }

    /// How long to wait for the next byte: the stall timeout, cut short by the overall deadline.
    fn wait_limit(&self) -> Instant {
        self.deadline.min(Instant::now() + self.tuning.stall)
    }

    /// The error for a wait bounded by [`Self::wait_limit`] that ran out: the overall deadline, or a stall.
    fn timeout(&self) -> DownloadError {
        if Instant::now() >= self.deadline {
            self.timed_out()
        } else {
            let (url, done, total) = (self.url.to_string(), self.partial.done, self.partial.total);
            DownloadError::Stalled { url, after: self.tuning.stall, done, total }
        }
    }

    fn timed_out(&self) -> DownloadError {
        let (url, done, total) = (self.url.to_string(), self.partial.done, self.partial.total);
        DownloadError::Timeout { url, after: self.limits.timeout, done, total }
    }

    fn too_large(&self, announced: Option<u64>) -> DownloadError {
        DownloadError::TooLarge { url: self.url.to_string(), limit: self.limits.max_bytes, announced }
    }

    fn not_media(&self, what: &str) -> DownloadError {
        DownloadError::NotMedia { url: self.url.to_string(), what: what.to_string() }
    }
}

fn is_html(content_type: &str) -> bool {
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    media_type.eq_ignore_ascii_case("text/html") || media_type.eq_ignore_ascii_case("application/xhtml+xml")
}

/// SHA-256 of a file, lowercase hex, read in blocks.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let (hasher, _, _) = hash_prefix(std::fs::File::open(path)?, u64::MAX)?;
    Ok(hex(&hasher.finalize()))
}

/// Hashes up to `limit` bytes; returns the hasher, the first [`SNIFF_LEN`] bytes and how many bytes were read.
fn hash_prefix(reader: impl Read, limit: u64) -> io::Result<(Sha256, Vec<u8>, u64)> {
    let mut reader = reader.take(limit);
    let mut hasher = Sha256::new();
    let mut head = Vec::with_capacity(SNIFF_LEN);
    let mut buffer = vec![0; 256 * 1024];
    let mut read = 0u64;
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buffer[..n]);
        if head.len() < SNIFF_LEN {
            head.extend_from_slice(&buffer[..n.min(SNIFF_LEN - head.len())]);
        }
        read += n as u64;
    }
    Ok((hasher, head, read))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::factory::download::resume::meta_path;
    use crate::factory::download::test_support::*;
    use crate::factory::download::MB;

    #[tokio::test]
    async fn an_html_page_is_refused_after_its_first_bytes_and_removed() {
        let mut page = b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>".to_vec();
        page.resize(SNIFF_LEN + 10, b' ');
        // Announces a megabyte but sends only the first bytes and then nothing: the download must not wait for more.
        let server = Server::start(move |_, _| {
            let mut body = page.clone();
            body.resize(1 << 20, b' ');
            Reply::new(200, body).header("Content-Type", "application/octet-stream").cut_at(SNIFF_LEN + 10).hang()
        });
        let dir = tempfile::tempdir().expect("temp dir");
        let part = part_in(&dir);
        let url = server.url("/movie.mp4");

        let (result, _) = fetch(&url, &part, &limits(), &quick()).await;
        let error = result.expect_err("HTML");

        assert!(error.is_permanent());
        assert_eq!(error.to_string(), format!("{url}: is an HTML page, not a media file"));
        assert!(!part.exists(), "partial file removed");
        assert!(!meta_path(&part).exists(), "sidecar removed");
    }

    #[tokio::test]
    async fn a_text_html_answer_is_refused() {
        let server =
            Server::start(|_, _| Reply::new(200, media(10_000, 11)).header("Content-Type", "text/html; charset=utf-8"));
        let dir = tempfile::tempdir().expect("temp dir");
        let part = part_in(&dir);

        let (result, _) = fetch(&server.url("/movie.mp4"), &part, &limits(), &quick()).await;
        let error = result.expect_err("text/html");

        assert!(error.is_permanent());
        assert!(error.to_string().contains("is an HTML page"), "{error}");
        assert!(!part.exists());
    }

    #[tokio::test]
    async fn an_announced_size_over_the_limit_is_refused_before_the_body() {
        // Announces 10 MB, then sends nothing at all: only the header can have decided.
        let server = Server::start(|_, _| Reply::new(200, vec![0; 10 << 20]).cut_at(0).hang());
        let dir = tempfile::tempdir().expect("temp dir");
        let part = part_in(&dir);
        let url = server.url("/big.mp4");
        let limits = Limits { max_bytes: MB, ..limits() };

        let started = std::time::Instant::now();
        let (result, _) = fetch(&url, &part, &limits, &quick()).await;
        let error = result.expect_err("too large");

        assert!(started.elapsed() < Duration::from_secs(4), "did not wait for the body");
        assert!(error.is_permanent());
        assert_eq!(error.to_string(), format!("{url}: larger than the 1 MB limit (the server announced 10 MB)"));
        assert!(!part.exists());
    }

    #[tokio::test]
    async fn an_unannounced_body_over_the_limit_is_aborted() {
        let server = Server::start(|_, _| Reply::new(200, media(3 << 20, 12)).without_length());
        let dir = tempfile::tempdir().expect("temp dir");
        let part = part_in(&dir);
        let url = server.url("/endless.mp4");
        let limits = Limits { max_bytes: MB, ..limits() };

        let (result, _) = fetch(&url, &part, &limits, &quick()).await;
        let error = result.expect_err("too large");

        assert!(error.is_permanent());
        assert_eq!(error.to_string(), format!("{url}: larger than the 1 MB limit"));
        assert!(!part.exists());
    }

    #[tokio::test]
    async fn a_silent_server_is_a_transient_stall() {
        let content = media(200_000, 13);
        let server =
            Server::start(move |request, _| file_reply(request, &content, Some("\"v1\"")).cut_at(50_000).hang());
        let dir = tempfile::tempdir().expect("temp dir");
        let part = part_in(&dir);
        let url = server.url("/slow.mp4");
        let tuning = Tuning { stall: Duration::from_millis(500), ..quick() };

        let (result, _) = fetch(&url, &part, &limits(), &tuning).await;
        let error = result.expect_err("stalled");

        assert!(!error.is_permanent());
        assert!(matches!(error, DownloadError::Stalled { done: 50_000, total: Some(200_000), .. }), "{error:?}");
        assert_eq!(std::fs::metadata(&part).expect("partial file kept").len(), 50_000);
        assert!(meta_path(&part).exists());
    }

    #[tokio::test]
    async fn the_overall_timeout_is_transient_and_says_how_far_it_got() {
        let content = media(1 << 20, 14);
        let server =
            Server::start(move |request, _| file_reply(request, &content, None).paced(4096, Duration::from_millis(20)));
        let dir = tempfile::tempdir().expect("temp dir");
        let part = part_in(&dir);
        let url = server.url("/slow.mp4");
        let limits = Limits { timeout: Duration::from_secs(1), ..limits() };

        let (result, reports) = fetch(&url, &part, &limits, &quick()).await;
        let error = result.expect_err("timed out");

        assert!(!error.is_permanent());
        let message = error.to_string();
        assert!(message.starts_with(&format!("{url}: timed out after 1 s (")), "{message}");
        assert!(message.ends_with(" of 1 MB received)"), "{message}");
        // About 1 s of transfer: progress at most ~4 times a second (plus the first report).
        assert!((2..=6).contains(&reports.len()), "{} progress reports", reports.len());
        assert!(reports.windows(2).all(|pair| pair[0].0 <= pair[1].0));
        assert!(reports.iter().all(|&(_, total)| total == Some(1 << 20)));
    }

    #[tokio::test]
    async fn a_refused_connection_is_transient() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        drop(listener);
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("http://{addr}/clip.mp4");

        let (result, _) = fetch(&url, &part_in(&dir), &limits(), &quick()).await;
        let error = result.expect_err("nobody listens");

        assert!(!error.is_permanent());
        assert!(matches!(error, DownloadError::Connect { .. }), "{error:?}");
        assert!(error.to_string().starts_with(&format!("{url}: cannot connect: ")), "{error}");
    }

    #[tokio::test]
    async fn the_deadline_also_bounds_the_pause_before_a_resume() {
        let content = media(200_000, 20);
        let server = Server::start(move |request, _| file_reply(request, &content, Some("\"v1\"")).cut_at(10_000));
        let dir = tempfile::tempdir().expect("temp dir");
        let limits = Limits { timeout: Duration::from_millis(500), ..limits() };
        let tuning = Tuning { backoff: Duration::from_secs(2), ..quick() };

        let started = std::time::Instant::now();
        let (result, _) = fetch(&server.url("/clip.mp4"), &part_in(&dir), &limits, &tuning).await;

        assert!(started.elapsed() < Duration::from_secs(2), "gave up instead of sleeping past the deadline");
        assert!(matches!(result, Err(DownloadError::Timeout { done: 10_000, .. })), "{result:?}");
    }

    #[test]
    fn hashes_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("abc");
        std::fs::write(&path, b"abc").expect("write");
        assert_eq!(
            sha256_file(&path).expect("hash"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let big = media(3 << 20, 19);
        std::fs::write(&path, &big).expect("write");
        assert_eq!(sha256_file(&path).expect("hash"), sha256(&big));
    }
}
