//! Fetches media URLs into the factory's work directory, and recognises media files by their first bytes.
//!
//! A download is the station's only contact with arbitrary servers, so it is defensive:
//! - only `http` and `https`; every hop's host is resolved here and refused if any of its addresses points into a
//!   private network (loopback, RFC 1918, link-local, …), and the connection is then pinned to exactly the checked
//!   addresses, so a second DNS answer cannot swap a private address in behind the check (DNS rebinding);
//! - redirects are followed by hand, at most [`MAX_REDIRECTS`], each hop checked the same way;
//! - the size limit is enforced from `Content-Length` before the body and again while streaming; the whole download
//!   has a deadline and a connection that sends nothing for [`STALL_TIMEOUT`] is given up;
//! - the first bytes are sniffed as soon as they arrive, so an HTML error page answered with `200 OK` is rejected after
//!   4 KiB rather than after the whole body.
//!
//! An interrupted download resumes, both within one call (up to [`MAX_RESUMES`] dropped connections) and across calls
//! or processes: the partial file stays in place and a small JSON sidecar (`<part>.meta`) remembers the URL and the
//! server's validator (ETag or Last-Modified), which guards the `Range` request with `If-Range` so the pieces of two
//! different files are never glued together.
//!
//! Every error names the URL (or file) and says what went wrong; [`DownloadError::is_permanent`] tells rejections,
//! for which the partial file is deleted, from transient failures, for which it is kept so that a later attempt resumes.

use std::fmt;
use std::io::{self, Read, SeekFrom};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::header::{
    HeaderMap, ACCEPT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_RANGE, LAST_MODIFIED, LOCATION,
    RANGE,
};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::fs::{File, OpenOptions};
use tokio::io::{AsyncSeekExt, AsyncWriteExt, BufWriter};
use tokio::time::{timeout_at, Instant};
use tracing::{debug, info, warn};
use url::{Host, Url};

/// Redirects followed before giving up; every hop is checked like the first URL.
pub const MAX_REDIRECTS: usize = 10;
/// Dropped connections resumed within one call; the next attempt of the job resumes from the partial file again.
pub const MAX_RESUMES: u32 = 5;
/// A connection that delivers no byte for this long is given up (transient: the next attempt resumes).
pub const STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How many leading bytes [`sniff`] and [`sniff_bytes`] look at; a download is sniffed once it has this many.
pub const SNIFF_LEN: usize = 4096;

/// First pause after a dropped connection; doubled for every further drop up to [`MAX_BACKOFF`].
const BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// Time to establish one TCP/TLS connection (the overall deadline still applies on top).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Minimum time between two progress reports.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);
/// Restarts from zero caused by a server's odd answers to `Range` (not by dropped connections) before giving up.
const MAX_RESTARTS: u32 = 2;
/// Bytes collected before a write to the partial file: few system calls, and little lost to a crash.
const WRITE_BUFFER: usize = 1 << 20;

/// What one download may cost.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Refuse anything larger, whether announced by `Content-Length` or actually sent.
    pub max_bytes: u64,
    /// For the whole download: redirects, resumes and back-off pauses included.
    pub timeout: Duration,
    /// Allow loopback, private, link-local and other non-public addresses (tests, closed networks).
    pub allow_private: bool,
    pub user_agent: String,
}

/// A completed download.
#[derive(Debug, Clone)]
pub struct Downloaded {
    /// The `part` path the caller gave; the file is complete and synced to disk.
    pub path: PathBuf,
    pub size: u64,
    /// SHA-256 of the whole file, lowercase hex.
    pub sha256: String,
    /// The server's `Content-Type`, if it sent one.
    pub content_type: Option<String>,
    /// The URL after redirects.
    pub final_url: String,
    /// What the first bytes look like.
    pub kind: Sniffed,
}

/// Why a download or a sniff failed. Every message starts with the URL (or file) it is about.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("{url}: not a usable URL ({reason})")]
    InvalidUrl { url: String, reason: String },
    /// A URL or redirect the station will not follow, such as a `file:` or `ftp:` scheme.
    #[error("{url}: refused: {reason}")]
    Refused { url: String, reason: String },
    #[error("{url}: refused: {reason} (set factory.allow_private_addresses to allow)")]
    PrivateAddress { url: String, addr: IpAddr, reason: String },
    #[error("{url}: cannot resolve {host}: {reason}")]
    Resolve { url: String, host: String, reason: String },
    #[error("{url}: cannot connect: {reason}")]
    Connect { url: String, reason: String },
    #[error("{url}: the server answered {status}")]
    Status { url: String, status: StatusCode },
    #[error("{url}: {reason}")]
    Redirect { url: String, reason: String },
    /// The server's answers to `Range` kept contradicting themselves.
    #[error("{url}: the server's answers are unusable: {reason}")]
    Protocol { url: String, reason: String },
    #[error("{url}: larger than the {} limit{}", size(*.limit), announced_size(*.announced))]
    TooLarge { url: String, limit: u64, announced: Option<u64> },
    /// `what` says what the bytes look like instead, e.g. "is an HTML page, not a media file".
    #[error("{url}: {what}")]
    NotMedia { url: String, what: String },
    #[error("{url}: timed out after {} s ({} received)", .after.as_secs(), amount(*.done, *.total))]
    Timeout { url: String, after: Duration, done: u64, total: Option<u64> },
    #[error("{url}: stalled: nothing received for {} s ({} received)", .after.as_secs(), amount(*.done, *.total))]
    Stalled { url: String, after: Duration, done: u64, total: Option<u64> },
    #[error("{url}: the connection dropped {drops} times; giving up at {} (last: {reason})", share(*.done, *.total))]
    Dropped { url: String, drops: u32, done: u64, total: Option<u64>, reason: String },
    /// A local file could not be used; `what` names it and, where known, the action ("work/1.download: cannot write").
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

impl DownloadError {
    /// True for rejections that another attempt cannot change (404, private address, too large, not media, …);
    /// false for failures worth retrying later (no connection, 5xx, timeouts, dropped connections, local I/O).
    pub fn is_permanent(&self) -> bool {
        match self {
            DownloadError::InvalidUrl { .. }
            | DownloadError::Refused { .. }
            | DownloadError::PrivateAddress { .. }
            | DownloadError::Redirect { .. }
            | DownloadError::TooLarge { .. }
            | DownloadError::NotMedia { .. } => true,
            // 408, 425 and 429 say "not now" rather than "no".
            DownloadError::Status { status, .. } => {
                !status.is_server_error() && !matches!(status.as_u16(), 408 | 425 | 429)
            }
            DownloadError::Resolve { .. }
            | DownloadError::Connect { .. }
            | DownloadError::Protocol { .. }
            | DownloadError::Timeout { .. }
            | DownloadError::Stalled { .. }
            | DownloadError::Dropped { .. }
            | DownloadError::Io { .. } => false,
        }
    }
}

/// Streams `url` to `part` (a temporary path such as `work/123.download`) and returns its size and SHA-256.
///
/// If `part` already holds bytes from an interrupted attempt, even one made by an earlier process, the download
/// resumes with `Range: bytes=N-` guarded by `If-Range` (the ETag or Last-Modified kept in `part` + `.meta`); a server
/// that answers 200 instead of 206 is followed from zero. Within one call a dropped connection is resumed up to
/// [`MAX_RESUMES`] times after a short back-off. `progress(done_bytes, total_bytes_if_known)` is called at most about
/// four times a second, and once at the end.
///
/// On success `part` holds the file and its `.meta` is gone. On a permanent failure both are deleted; on a transient
/// one both stay so that the next call resumes.
pub async fn download(
    url: &str,
    part: &Path,
    limits: &Limits,
    progress: &(dyn Fn(u64, Option<u64>) + Send + Sync),
) -> Result<Downloaded, DownloadError> {
    download_tuned(url, part, limits, &Tuning::default(), progress).await
}

/// Waits and address exceptions that are fixed in production; the tests shrink the waits, and let a server on
/// 127.0.0.1 stand in for a public one so that redirects into private networks can be tested.
#[derive(Debug, Clone)]
struct Tuning {
    stall: Duration,
    backoff: Duration,
    /// Addresses treated as public whatever their class.
    public_exceptions: Vec<IpAddr>,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning { stall: STALL_TIMEOUT, backoff: BACKOFF, public_exceptions: Vec::new() }
    }
}

async fn download_tuned(
    url: &str,
    part: &Path,
    limits: &Limits,
    tuning: &Tuning,
    progress: &(dyn Fn(u64, Option<u64>) + Send + Sync),
) -> Result<Downloaded, DownloadError> {
    let result = match Transfer::open(url, part, limits, tuning).await {
        Ok(mut transfer) => {
            let result = transfer.run(progress).await;
            if result.is_err() {
                // Whatever arrived is worth keeping for the next attempt.
                transfer.settle().await;
            }
            result
        }
        Err(e) => Err(e),
    };
    match &result {
        Ok(done) => {
            remove_if_present(&meta_path(part)).await;
            debug!(url, size = done.size, sha256 = %done.sha256, "downloaded");
        }
        Err(e) if e.is_permanent() => {
            remove_if_present(part).await;
            remove_if_present(&meta_path(part)).await;
            debug!(url, error = %e, "download refused; partial file removed");
        }
        Err(e) => debug!(url, error = %e, "download interrupted; partial file kept to resume"),
    }
    result
}

/// The sidecar that makes a partial file resumable by a later call.
#[derive(Debug, Serialize, Deserialize)]
struct PartMeta {
    /// The URL the caller asked for: a partial file of another URL is never resumed.
    url: String,
    /// Strong ETag or Last-Modified of the representation the partial file holds, for `If-Range`.
    validator: Option<String>,
    /// The full size, when the server announced it.
    total: Option<u64>,
}

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

/// One call of [`download`]: the partial file and everything known about it.
struct Transfer<'a> {
    /// The URL as the caller gave it; errors name it.
    url: &'a str,
    start: Url,
    part: &'a Path,
    limits: &'a Limits,
    tuning: &'a Tuning,
    deadline: Instant,
    out: BufWriter<File>,
    /// Bytes of the current representation in `part` (some may still sit in `out`'s buffer).
    done: u64,
    /// Bytes fed to `hasher`. Behind `done` only between opening a partial file from an earlier call and the server
    /// agreeing to resume it, so that a server that restarts anyway costs no hashing.
    hashed: u64,
    hasher: Sha256,
    /// The first `min(done, SNIFF_LEN)` bytes.
    head: Vec<u8>,
    kind: Option<Sniffed>,
    total: Option<u64>,
    validator: Option<String>,
    content_type: Option<String>,
    /// Whether any server answered during this call: until then a failure means "cannot connect", not "dropped".
    answered: bool,
    last_progress: Option<Instant>,
}

impl<'a> Transfer<'a> {
    async fn open(
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
        // Only bytes whose origin is known can be resumed: same URL, and a validator to guard the `Range` request.
        let resumable = match read_meta(part).await {
            Some(meta)
                if existing > 0
                    && meta.url == url
                    && meta.validator.is_some()
                    && meta.total.is_none_or(|total| existing <= total) =>
            {
                Some(meta)
            }
            _ => None,
        };
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
            done: 0,
            hashed: 0,
            hasher: Sha256::new(),
            head: Vec::with_capacity(SNIFF_LEN),
            kind: None,
            total: None,
            validator: None,
            content_type: None,
            answered: false,
            last_progress: None,
        };
        match resumable {
            Some(meta) => {
                debug!(url, bytes = existing, "resuming an earlier attempt");
                transfer.done = existing;
                transfer.total = meta.total;
                transfer.validator = meta.validator;
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
    async fn run(&mut self, progress: &(dyn Fn(u64, Option<u64>) + Send + Sync)) -> Result<Downloaded, DownloadError> {
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
                            done: self.done,
                            total: self.total,
                            reason,
                        });
                    }
                    let pause = self.tuning.backoff.saturating_mul(1u32 << (drops - 1).min(16)).min(MAX_BACKOFF);
                    warn!(url = self.url, drops, done = self.done, %reason, ?pause, "connection dropped; resuming");
                    if Instant::now() + pause >= self.deadline {
                        return Err(self.timed_out());
                    }
                    tokio::time::sleep(pause).await;
                    if !self.can_resume() {
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
            let range = headers.get(CONTENT_RANGE).and_then(|v| v.to_str().ok()).and_then(parse_content_range);
            let Some((first, total)) = range else {
                return Ok(Outcome::Restart("it answered 206 without a usable Content-Range".into()));
            };
            if first != self.done {
                return Ok(Outcome::Restart(format!("asked to resume at byte {}, it resumed at {first}", self.done)));
            }
            if let (Some(known), Some(now)) = (self.total, total) {
                if known != now {
                    return Ok(Outcome::Restart(format!("the file was {known} bytes and is now {now}")));
                }
            }
            // Without a validator the request carried no If-Range: the announced size is the only evidence that
            // the rest belongs to the same file.
            if self.done > 0 && self.validator.is_none() && (total.is_none() || total != self.total) {
                return Ok(Outcome::Restart("cannot tell whether the file changed".into()));
            }
            self.total = total.or(self.total);
            self.catch_up_hash().await?;
        } else if status.is_success() {
            if self.done > 0 {
                info!(url = self.url, "the server sent the whole file instead of the rest; starting over");
                self.restart().await?;
            }
            self.total = content_length(headers);
            self.validator = validator(headers);
        } else if status == StatusCode::RANGE_NOT_SATISFIABLE && self.done > 0 {
            // A partial file that was in fact complete ends up here too: fetching it again is safer than trusting it.
            return Ok(Outcome::Restart(format!("it cannot resume at byte {}", self.done)));
        } else {
            return Err(DownloadError::Status { url: self.url.to_string(), status }.into());
        }

        self.content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
        if self.content_type.as_deref().is_some_and(is_html) {
            return Err(self.not_media("is an HTML page, not a media file (the server says text/html)").into());
        }
        if let Some(total) = self.total.filter(|&total| total > self.limits.max_bytes) {
            return Err(self.too_large(Some(total)).into());
        }
        self.save_meta().await?;
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
            let addrs = self.checked_addresses(&target, redirected).await?;
            let client = client_for(&target, &addrs, self.limits)
                .map_err(|e| DownloadError::Connect { url: self.url.to_string(), reason: describe(&e) })?;
            let mut request = client.get(target.clone()).header(ACCEPT_ENCODING, "identity");
            if self.done > 0 {
                request = request.header(RANGE, format!("bytes={}-", self.done));
                if let Some(validator) = &self.validator {
                    request = request.header(IF_RANGE, validator.as_str());
                }
            }
            let response = match timeout_at(self.wait_limit(), request.send()).await {
                Err(_) => return Err(self.timeout().into()),
                Ok(Err(e)) => return Err(Interrupt::Dropped(describe(&e))),
                Ok(Ok(response)) => response,
            };
            // The client may only connect to the addresses it was given; check that it did.
            if let Some(peer) = response.remote_addr() {
                if !addrs.iter().any(|addr| addr.ip() == peer.ip()) {
                    return Err(DownloadError::Refused {
                        url: self.url.to_string(),
                        reason: format!("connected to {}, which is not an address that was checked", peer.ip()),
                    }
                    .into());
                }
            }

            let status = response.status();
            if !matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
                return Ok((response, target));
            }
            redirects += 1;
            if redirects > MAX_REDIRECTS {
                return Err(self.redirect_error(format!("more than {MAX_REDIRECTS} redirects")).into());
            }
            let Some(location) = response.headers().get(LOCATION).and_then(|v| v.to_str().ok()) else {
                return Err(self.redirect_error(format!("the server answered {status} without a Location")).into());
            };
            let next = target.join(location).map_err(|e| {
                self.redirect_error(format!("the server redirected to an unusable address {location:?} ({e})"))
            })?;
            debug!(url = self.url, from = %target, to = %next, %status, "following a redirect");
            target = next;
        }
    }

    /// The addresses `target` may be fetched from, each checked against the private ranges.
    async fn checked_addresses(&self, target: &Url, redirected: bool) -> Result<Vec<SocketAddr>, Interrupt> {
        let port = target.port_or_known_default().unwrap_or(80);
        let host = target.host().ok_or_else(|| DownloadError::InvalidUrl {
            url: self.url.to_string(),
            reason: format!("{target} has no host"),
        })?;
        let addrs: Vec<SocketAddr> = match &host {
            Host::Ipv4(ip) => vec![SocketAddr::new((*ip).into(), port)],
            Host::Ipv6(ip) => vec![SocketAddr::new((*ip).into(), port)],
            Host::Domain(name) => {
                let resolve_error = |reason: String| DownloadError::Resolve {
                    url: self.url.to_string(),
                    host: name.to_string(),
                    reason,
                };
                match timeout_at(self.wait_limit(), tokio::net::lookup_host((*name, port))).await {
                    Err(_) => return Err(self.timeout().into()),
                    Ok(Err(e)) => return Err(resolve_error(e.to_string()).into()),
                    Ok(Ok(found)) => {
                        let found: Vec<SocketAddr> = found.collect();
                        if found.is_empty() {
                            return Err(resolve_error("no addresses".into()).into());
                        }
                        found
                    }
                }
            }
        };
        if self.limits.allow_private {
            return Ok(addrs);
        }
        // One private address is enough to refuse: the connection could go to any of them.
        for addr in &addrs {
            let ip = addr.ip();
            if self.tuning.public_exceptions.contains(&ip) {
                continue;
            }
            if let Some(class) = address_class(ip) {
                let what = match &host {
                    Host::Domain(name) => format!("{name} resolves to {ip}, {}", class.phrase()),
                    _ => format!("{ip} is {}", class.phrase()),
                };
                let reason = if redirected { format!("it redirects to {target}, and {what}") } else { what };
                return Err(DownloadError::PrivateAddress { url: self.url.to_string(), addr: ip, reason }.into());
            }
        }
        Ok(addrs)
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
            if self.done + len > self.limits.max_bytes {
                return Err(self.too_large(None).into());
            }
            if self.head.len() < SNIFF_LEN {
                let take = (SNIFF_LEN - self.head.len()).min(chunk.len());
                self.head.extend_from_slice(&chunk[..take]);
            }
            self.check_head(false)?;
            self.hasher.update(&chunk);
            self.out.write_all(&chunk).await.map_err(io_error(self.part, "write"))?;
            self.done += len;
            self.hashed += len;
            self.report(progress, false);
        }
        if let Some(total) = self.total.filter(|&total| self.done < total) {
            return Err(Interrupt::Dropped(format!("the body ended at byte {} of {total}", self.done)));
        }
        self.check_head(true)?;
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

    /// Hashes the bytes an earlier call left in the partial file, now that the server agreed to send the rest.
    async fn catch_up_hash(&mut self) -> Result<(), DownloadError> {
        if self.hashed == self.done {
            return Ok(());
        }
        debug_assert_eq!(self.hashed, 0, "only a partial file from an earlier call is hashed late");
        self.out.flush().await.map_err(io_error(self.part, "write"))?;
        let (path, len) = (self.part.to_path_buf(), self.done);
        let hashed = tokio::task::spawn_blocking(move || hash_prefix(std::fs::File::open(&path)?, len))
            .await
            .unwrap_or_else(|e| Err(io::Error::other(e)));
        let (hasher, head, read) = hashed.map_err(io_error(self.part, "read"))?;
        if read != len {
            let shrunk = io::Error::new(io::ErrorKind::UnexpectedEof, format!("{read} bytes, {len} expected"));
            return Err(io_error(self.part, "resume")(shrunk));
        }
        self.hasher = hasher;
        self.hashed = len;
        self.head = head;
        self.check_head(false)
    }

    /// Empties the partial file, to download from zero.
    async fn restart(&mut self) -> Result<(), DownloadError> {
        self.out.flush().await.map_err(io_error(self.part, "write"))?;
        let file = self.out.get_mut();
        file.set_len(0).await.map_err(io_error(self.part, "truncate"))?;
        file.seek(SeekFrom::Start(0)).await.map_err(io_error(self.part, "seek in"))?;
        self.done = 0;
        self.hashed = 0;
        self.hasher = Sha256::new();
        self.head.clear();
        self.kind = None;
        self.total = None;
        self.validator = None;
        Ok(())
    }

    /// Whether the bytes so far can be kept after a dropped connection: a validator guards the `Range` request, or
    /// at least the announced size can be compared.
    fn can_resume(&self) -> bool {
        self.done > 0 && (self.validator.is_some() || self.total.is_some())
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
            size: self.done,
            sha256,
            content_type: self.content_type.clone(),
            final_url: final_url.to_string(),
            kind: self.kind.unwrap_or(Sniffed::Unknown),
        })
    }

    /// Writes out whatever is buffered, so that a later attempt can resume from it. Errors are left to that attempt.
    async fn settle(&mut self) {
        if let Err(e) = self.out.flush().await {
            debug!(url = self.url, error = %e, "could not write the last received bytes");
        }
    }

    async fn save_meta(&self) -> Result<(), DownloadError> {
        let meta = PartMeta { url: self.url.to_string(), validator: self.validator.clone(), total: self.total };
        let path = meta_path(self.part);
        let json = serde_json::to_vec(&meta).map_err(|e| io_error(&path, "encode")(io::Error::other(e)))?;
        // Written aside and renamed, so that a crash leaves the old sidecar or the new one, never half of one.
        let mut temporary = path.clone().into_os_string();
        temporary.push(".tmp");
        let temporary = PathBuf::from(temporary);
        tokio::fs::write(&temporary, json).await.map_err(io_error(&temporary, "write"))?;
        tokio::fs::rename(&temporary, &path).await.map_err(io_error(&path, "write"))?;
        Ok(())
    }

    fn report(&mut self, progress: &(dyn Fn(u64, Option<u64>) + Send + Sync), last: bool) {
        let now = Instant::now();
        if last || self.last_progress.is_none_or(|at| now.duration_since(at) >= PROGRESS_INTERVAL) {
            self.last_progress = Some(now);
            progress(self.done, if last { Some(self.done) } else { self.total });
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
            let (url, done, total) = (self.url.to_string(), self.done, self.total);
            DownloadError::Stalled { url, after: self.tuning.stall, done, total }
        }
    }

    fn timed_out(&self) -> DownloadError {
        let (url, done, total) = (self.url.to_string(), self.done, self.total);
        DownloadError::Timeout { url, after: self.limits.timeout, done, total }
    }

    fn too_large(&self, announced: Option<u64>) -> DownloadError {
        DownloadError::TooLarge { url: self.url.to_string(), limit: self.limits.max_bytes, announced }
    }

    fn not_media(&self, what: &str) -> DownloadError {
        DownloadError::NotMedia { url: self.url.to_string(), what: what.to_string() }
    }

    fn redirect_error(&self, reason: String) -> DownloadError {
        DownloadError::Redirect { url: self.url.to_string(), reason }
    }
}

/// A client that connects `target`'s host only to `addrs`, follows no redirects and uses no proxy (a proxy would
/// resolve the host again, out of reach of the address check).
fn client_for(target: &Url, addrs: &[SocketAddr], limits: &Limits) -> reqwest::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(limits.user_agent.as_str())
        .connect_timeout(CONNECT_TIMEOUT)
        .pool_max_idle_per_host(0);
    if let Some(Host::Domain(name)) = target.host() {
        builder = builder.resolve_to_addrs(name, addrs);
    }
    builder.build()
}

fn check_scheme(url: &str, target: &Url, redirected: bool) -> Result<(), DownloadError> {
    match target.scheme() {
        "http" | "https" => Ok(()),
        other => Err(DownloadError::Refused {
            url: url.to_string(),
            reason: if redirected {
                format!("it redirects to {target}, and only http and https are allowed")
            } else {
                format!("only http and https URLs are allowed, not {other}")
            },
        }),
    }
}

/// The part of a reqwest error worth showing: its own message is generic ("error sending request"), the cause at the
/// bottom of the chain says what happened ("Connection refused").
fn describe(error: &reqwest::Error) -> String {
    let mut deepest = None;
    let mut cause = std::error::Error::source(error);
    while let Some(source) = cause {
        deepest = Some(source);
        cause = source.source();
    }
    deepest.map_or_else(|| error.to_string(), ToString::to_string)
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// The validator for `If-Range`: a strong ETag, or else Last-Modified (weak ETags may not be used for ranges).
fn validator(headers: &HeaderMap) -> Option<String> {
    let etag = headers.get(ETAG).and_then(|v| v.to_str().ok()).filter(|etag| !etag.starts_with("W/"));
    let modified = || headers.get(LAST_MODIFIED).and_then(|v| v.to_str().ok());
    etag.or_else(modified).map(str::to_string)
}

/// `bytes 100-999/1000` → (100, Some(1000)); `bytes 100-999/*` → (100, None).
fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let (range, total) = value.trim().strip_prefix("bytes ")?.split_once('/')?;
    let (first, _last) = range.split_once('-')?;
    let total = match total.trim() {
        "*" => None,
        total => Some(total.parse().ok()?),
    };
    Some((first.trim().parse().ok()?, total))
}

fn is_html(content_type: &str) -> bool {
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    media_type.eq_ignore_ascii_case("text/html") || media_type.eq_ignore_ascii_case("application/xhtml+xml")
}

fn meta_path(part: &Path) -> PathBuf {
    let mut path = part.as_os_str().to_owned();
    path.push(".meta");
    PathBuf::from(path)
}

async fn read_meta(part: &Path) -> Option<PartMeta> {
    let bytes = tokio::fs::read(meta_path(part)).await.ok()?;
    serde_json::from_slice(&bytes).ok()
}

async fn remove_if_present(path: &Path) {
    match tokio::fs::remove_file(path).await {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => warn!(path = %path.display(), error = %e, "cannot remove"),
    }
}

fn io_error(path: &Path, action: &'static str) -> impl FnOnce(io::Error) -> DownloadError {
    let what = format!("{}: cannot {action}", path.display());
    move |source| DownloadError::Io { what, source }
}

const MB: u64 = 1 << 20;

/// A size for people: "8192 MB", "1.5 MB", "12 KB", "300 bytes".
fn size(bytes: u64) -> String {
    match bytes {
        _ if bytes >= MB && (bytes.is_multiple_of(MB) || bytes >= 10 * MB) => format!("{} MB", bytes / MB),
        _ if bytes >= MB => format!("{:.1} MB", bytes as f64 / MB as f64),
        _ if bytes >= 10 * 1024 => format!("{} KB", bytes / 1024),
        1 => "1 byte".to_string(),
        _ => format!("{bytes} bytes"),
    }
}

/// "412 MB of 900 MB", or "412 MB" when the total is unknown.
fn amount(done: u64, total: Option<u64>) -> String {
    match total {
        Some(total) => format!("{} of {}", size(done), size(total)),
        None => size(done),
    }
}

/// "40 %", or the amount received when the total is unknown.
fn share(done: u64, total: Option<u64>) -> String {
    match total {
        Some(total) if total > 0 => format!("{} %", u128::from(done) * 100 / u128::from(total)),
        _ => size(done),
    }
}

fn announced_size(announced: Option<u64>) -> String {
    announced.map(|bytes| format!(" (the server announced {})", size(bytes))).unwrap_or_default()
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    text
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

/// Why an address is not public. Downloads from such addresses are refused unless private addresses are allowed:
/// a URL from the internet must not reach the station's own services or its network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    Unspecified,
    Loopback,
    /// RFC 1918 (10/8, 172.16/12, 192.168/16) and local-use NAT64.
    Private,
    /// 100.64/10, carrier-grade NAT.
    SharedCgnat,
    LinkLocal,
    /// fc00::/7.
    UniqueLocal,
    /// fec0::/10, deprecated but still routed inside some networks.
    SiteLocal,
    Multicast,
    Broadcast,
    Documentation,
    Benchmarking,
    /// Everything else that is not global unicast: 0/8, 240/4, IETF assignments, Teredo, IPv4-compatible, …
    Reserved,
}

impl AddressClass {
    /// "a private address", to finish a sentence.
    pub fn phrase(self) -> &'static str {
        match self {
            AddressClass::Unspecified => "an unspecified address",
            AddressClass::Loopback => "a loopback address",
            AddressClass::Private => "a private address",
            AddressClass::SharedCgnat => "a shared (carrier-grade NAT) address",
            AddressClass::LinkLocal => "a link-local address",
            AddressClass::UniqueLocal => "a unique-local address",
            AddressClass::SiteLocal => "a site-local address",
            AddressClass::Multicast => "a multicast address",
            AddressClass::Broadcast => "a broadcast address",
            AddressClass::Documentation => "a documentation address",
            AddressClass::Benchmarking => "a benchmarking address",
            AddressClass::Reserved => "a reserved address",
        }
    }
}

/// The class of a non-public address, or `None` for a public one. IPv6 forms that carry an IPv4 address (mapped,
/// NAT64, 6to4) are judged by that IPv4 address.
pub fn address_class(ip: IpAddr) -> Option<AddressClass> {
    match ip {
        IpAddr::V4(ip) => ipv4_class(ip),
        IpAddr::V6(ip) => ipv6_class(ip),
    }
}

fn ipv4_class(ip: Ipv4Addr) -> Option<AddressClass> {
    use AddressClass::*;
    if ip.is_broadcast() {
        return Some(Broadcast);
    }
    if ip.is_unspecified() {
        return Some(Unspecified);
    }
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => Reserved, // "this network"
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => Private,
        (100, 64..=127, _) => SharedCgnat,
        (127, _, _) => Loopback,
        (169, 254, _) => LinkLocal,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Documentation,
        (192, 0, 0) | (192, 88, 99) => Reserved, // IETF protocol assignments, retired 6to4 relays
        (198, 18..=19, _) => Benchmarking,
        (224..=239, _, _) => Multicast,
        (240..=255, _, _) => Reserved,
        _ => return None,
    })
}

fn ipv6_class(ip: Ipv6Addr) -> Option<AddressClass> {
    use AddressClass::*;
    if let Some(v4) = ip.to_ipv4_mapped() {
        return ipv4_class(v4);
    }
    if ip.is_unspecified() {
        return Some(Unspecified);
    }
    if ip.is_loopback() {
        return Some(Loopback);
    }
    let embedded = |high: u16, low: u16| Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
    match ip.segments() {
        // The rest of ::/64: IPv4-compatible and IPv4-translated forms, never global unicast.
        [0, 0, 0, 0, ..] => Some(Reserved),
        [0x64, 0xff9b, 0, 0, 0, 0, high, low] => ipv4_class(embedded(high, low)), // NAT64 well-known prefix
        [0x64, 0xff9b, 1, ..] => Some(Private),                                   // local-use NAT64
        [0x100, 0, 0, 0, ..] => Some(Reserved),                                   // discard-only
        [0x2001, 0xdb8, ..] => Some(Documentation),
        [0x2001, 2, 0, ..] => Some(Benchmarking),
        [0x2001, 0, ..] => Some(Reserved),                              // Teredo
        [0x2002, high, low, ..] => ipv4_class(embedded(high, low)),     // 6to4
        [0x3fff, second, ..] if second < 0x1000 => Some(Documentation), // 3fff::/20
        [first, ..] if first & 0xfe00 == 0xfc00 => Some(UniqueLocal),   // fc00::/7
        [first, ..] if first & 0xffc0 == 0xfe80 => Some(LinkLocal),     // fe80::/10
        [first, ..] if first & 0xffc0 == 0xfec0 => Some(SiteLocal),     // fec0::/10
        [first, ..] if first & 0xff00 == 0xff00 => Some(Multicast),     // ff00::/8
        _ => None,
    }
}

/// What the first bytes of a file say it is. The prober has the last word; this only catches the obvious early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// ISO base media: MP4, M4A, M4V, 3GP.
    Mp4,
    /// QuickTime MOV, with a `qt  ` brand or without `ftyp` at all.
    QuickTime,
    Matroska,
    WebM,
    Avi,
    Wav,
    Aiff,
    MpegTs,
    /// MPEG-TS with a 4-byte timestamp before every packet (Blu-ray, AVCHD).
    M2ts,
    MpegPs,
    Flv,
    Ogg,
    /// ASF: WMV and WMA.
    Asf,
    Mp3,
    /// AAC in ADTS frames.
    Adts,
    Flac,
    /// Binary data of no recognised kind: the prober decides.
    Unknown,
}

impl Sniffed {
    pub fn name(self) -> &'static str {
        match self {
            Sniffed::Mp4 => "MP4",
            Sniffed::QuickTime => "QuickTime",
            Sniffed::Matroska => "Matroska",
            Sniffed::WebM => "WebM",
            Sniffed::Avi => "AVI",
            Sniffed::Wav => "WAV",
            Sniffed::Aiff => "AIFF",
            Sniffed::MpegTs => "MPEG-TS",
            Sniffed::M2ts => "M2TS",
            Sniffed::MpegPs => "MPEG-PS",
            Sniffed::Flv => "FLV",
            Sniffed::Ogg => "Ogg",
            Sniffed::Asf => "ASF",
            Sniffed::Mp3 => "MP3",
            Sniffed::Adts => "AAC (ADTS)",
            Sniffed::Flac => "FLAC",
            Sniffed::Unknown => "unknown binary data",
        }
    }
}

impl fmt::Display for Sniffed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Looks at the first [`SNIFF_LEN`] bytes of a file: `Ok(kind)` for a recognised media container, `Ok(Unknown)` for
/// other binary data, and [`DownloadError::NotMedia`] for text (HTML, XML, JSON, playlists, plain text) or an empty
/// file, saying what it looks like.
pub fn sniff(path: &Path) -> Result<Sniffed, DownloadError> {
    let file = std::fs::File::open(path).map_err(io_error(path, "open"))?;
    let mut head = Vec::with_capacity(SNIFF_LEN);
    file.take(SNIFF_LEN as u64).read_to_end(&mut head).map_err(io_error(path, "read"))?;
    sniff_bytes(&head)
        .map_err(|what| DownloadError::NotMedia { url: path.display().to_string(), what: what.to_string() })
}

/// [`sniff`] for bytes already in memory (the start of a file); the error says what they look like instead.
pub fn sniff_bytes(head: &[u8]) -> Result<Sniffed, &'static str> {
    if head.is_empty() {
        return Err("is empty (0 bytes)");
    }
    if let Some(kind) = container(head) {
        return Ok(kind);
    }
    match text_kind(head) {
        Some(what) => Err(what),
        None => Ok(Sniffed::Unknown),
    }
}

const ASF_HEADER_GUID: [u8; 16] =
    [0x30, 0x26, 0xB2, 0x75, 0x8E, 0x66, 0xCF, 0x11, 0xA6, 0xD9, 0x00, 0xAA, 0x00, 0x62, 0xCE, 0x6C];
const EBML_MAGIC: [u8; 4] = [0x1A, 0x45, 0xDF, 0xA3];
const PS_PACK_START: [u8; 4] = [0x00, 0x00, 0x01, 0xBA];

fn container(bytes: &[u8]) -> Option<Sniffed> {
    let at = |offset: usize, signature: &[u8]| bytes.get(offset..offset + signature.len()) == Some(signature);
    if at(4, b"ftyp") {
        return match bytes.get(8..12) {
            Some(b"qt  ") => Some(Sniffed::QuickTime),
            // HEIF and AVIF still images share the box structure.
            Some(b"heic" | b"heix" | b"mif1" | b"msf1" | b"avif" | b"avis") => None,
            _ => Some(Sniffed::Mp4),
        };
    }
    // QuickTime files from before `ftyp` start straight with one of these boxes.
    if [b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot"].iter().any(|tag| at(4, *tag)) {
        return Some(Sniffed::QuickTime);
    }
    if at(0, &EBML_MAGIC) {
        // The DocType sits in the EBML header, within its first few dozen bytes.
        let header = &bytes[..bytes.len().min(64)];
        return Some(if contains(header, b"webm") { Sniffed::WebM } else { Sniffed::Matroska });
    }
    if at(0, b"RIFF") || at(0, b"RF64") {
        return match bytes.get(8..12) {
            Some(b"AVI " | b"AVIX") => Some(Sniffed::Avi),
            Some(b"WAVE") => Some(Sniffed::Wav),
            _ => None,
        };
    }
    if at(0, b"FORM") && (at(8, b"AIFF") || at(8, b"AIFC")) {
        return Some(Sniffed::Aiff);
    }
    if at(0, b"FLV\x01") {
        return Some(Sniffed::Flv);
    }
    if at(0, b"OggS") {
        return Some(Sniffed::Ogg);
    }
    if at(0, &ASF_HEADER_GUID) {
        return Some(Sniffed::Asf);
    }
    if at(0, b"fLaC") {
        return Some(Sniffed::Flac);
    }
    if at(0, &PS_PACK_START) {
        return Some(Sniffed::MpegPs);
    }
    if transport_stream(bytes, 188, 0) {
        return Some(Sniffed::MpegTs);
    }
    if transport_stream(bytes, 192, 4) {
        return Some(Sniffed::M2ts);
    }
    if at(0, b"ID3") {
        // An ID3v2 tag (10-byte header, size in 7-bit bytes) usually precedes MP3, sometimes AAC or FLAC.
        let tag_len =
            bytes.get(6..10).map_or(0, |size| size.iter().fold(0usize, |n, b| (n << 7) | usize::from(b & 0x7f)));
        let after = bytes.get(10 + tag_len..).unwrap_or_default();
        return Some(match container(after) {
            Some(kind @ (Sniffed::Adts | Sniffed::Flac)) => kind,
            _ => Sniffed::Mp3,
        });
    }
    if mpeg_audio_frame(bytes) {
        return Some(Sniffed::Mp3);
    }
    if adts_frame(bytes) {
        return Some(Sniffed::Adts);
    }
    None
}

/// The 0x47 sync byte at the start of every packet there is room for, at least two of them.
fn transport_stream(bytes: &[u8], packet: usize, offset: usize) -> bool {
    let syncs: Vec<u8> = bytes.iter().skip(offset).step_by(packet).copied().collect();
    syncs.len() >= 2 && syncs.iter().all(|&b| b == 0x47)
}

/// An MPEG-1/2/2.5 audio frame header with no reserved or invalid field.
fn mpeg_audio_frame(bytes: &[u8]) -> bool {
    let Some(&[b0, b1, b2, b3]) = bytes.get(..4) else { return false };
    let header = u32::from_be_bytes([b0, b1, b2, b3]);
    let sync = header >> 21 == 0x7ff;
    let version = (header >> 19) & 3; // 1 is reserved
    let layer = (header >> 17) & 3; // 0 is reserved
    let bitrate = (header >> 12) & 0xf; // 15 is invalid; 0 ("free format") is too rare to count
    let sample_rate = (header >> 10) & 3; // 3 is reserved
    let emphasis = header & 3; // 2 is reserved
    sync && version != 1 && layer != 0 && bitrate != 0 && bitrate != 15 && sample_rate != 3 && emphasis != 2
}

/// An ADTS header: 12-bit sync, layer 0, a valid sampling-frequency index.
fn adts_frame(bytes: &[u8]) -> bool {
    match bytes.get(..3) {
        Some(&[0xff, b1, b2]) => b1 & 0xf6 == 0xf0 && (b2 >> 2) & 0xf < 13,
        _ => false,
    }
}

/// Lowercase tags that make markup HTML; the first two are only ever found in a whole page.
const HTML_MARKERS: [&[u8]; 10] =
    [b"<!doctype html", b"<html", b"<head", b"<body", b"<title", b"<meta", b"<script", b"<div", b"<h1", b"<p>"];

/// What text looks like, or `None` if the bytes are not text. Control bytes other than whitespace (and ESC) mean
/// binary; bytes above 0x7F are allowed so that Latin-1 pages count as text too.
fn text_kind(bytes: &[u8]) -> Option<&'static str> {
    if bytes.iter().any(|&b| matches!(b, 0x00..=0x08 | 0x0e..=0x1a | 0x1c..=0x1f | 0x7f)) {
        return None;
    }
    let text = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let text = &text[text.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(text.len())..];
    let lower = text.to_ascii_lowercase();
    let markup = text.starts_with(b"<");
    // Markup is HTML if any common tag shows; other text only if it holds a whole page (after a PHP warning, say).
    let html = if markup { &HTML_MARKERS[..] } else { &HTML_MARKERS[..2] };
    Some(if html.iter().any(|marker| contains(&lower, marker)) {
        "is an HTML page, not a media file"
    } else if markup {
        "is an XML document, not a media file"
    } else if text.starts_with(b"#EXTM3U") {
        "is an M3U playlist (a stream, not a media file)"
    } else if looks_like_json(text) {
        "is JSON, not a media file"
    } else {
        "is plain text, not a media file"
    })
}

fn looks_like_json(text: &[u8]) -> bool {
    let next = |rest: &[u8]| rest.iter().copied().find(|b| !b.is_ascii_whitespace());
    match text.split_first() {
        Some((b'{', rest)) => matches!(next(rest), Some(b'"' | b'}') | None),
        Some((b'[', rest)) => {
            matches!(next(rest), Some(b'{' | b'[' | b'"' | b']' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n') | None)
        }
        _ => false,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::process::Command;
    use std::sync::{Arc, Mutex};
    use tokio::io::AsyncReadExt;
    use tokio::net::{TcpListener, TcpStream};

    // ---- A scriptable HTTP/1.1 server on 127.0.0.1, raw TCP so that it can misbehave on purpose ----

    #[derive(Debug, Clone)]
    struct Request {
        path: String,
        /// Names in lowercase.
        headers: HashMap<String, String>,
    }

    impl Request {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers.get(name).map(String::as_str)
        }
    }

    /// One answer; the defaults describe a well-behaved server.
    struct Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        content_length: bool,
        /// Close the connection after this many body bytes.
        cut_at: Option<usize>,
        /// Send the body in pieces of this size with this pause after each.
        pace: Option<(usize, Duration)>,
        /// Keep the connection open, silent, after sending.
        hang: bool,
    }

    impl Reply {
        fn new(status: u16, body: impl Into<Vec<u8>>) -> Reply {
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
        fn header(mut self, name: &str, value: impl Into<String>) -> Reply {
            self.headers.push((name.to_string(), value.into()));
            self
        }
        fn cut_at(mut self, bytes: usize) -> Reply {
            self.cut_at = Some(bytes);
            self
        }
        fn without_length(mut self) -> Reply {
            self.content_length = false;
            self
        }
        fn paced(mut self, piece: usize, pause: Duration) -> Reply {
            self.pace = Some((piece, pause));
            self
        }
        fn hang(mut self) -> Reply {
            self.hang = true;
            self
        }
    }

    type Handler = dyn Fn(&Request, usize) -> Reply + Send + Sync;

    struct Server {
        base: String,
        requests: Arc<Mutex<Vec<Request>>>,
    }

    impl Server {
        fn url(&self, path: &str) -> String {
            format!("{}{path}", self.base)
        }
        fn requests(&self) -> Vec<Request> {
            self.requests.lock().expect("request log").clone()
        }
    }

    /// Serves every request with `handler(request, index of the request since the start)`, one per connection.
    async fn serve(handler: impl Fn(&Request, usize) -> Reply + Send + Sync + 'static) -> Server {
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
        while !contains(&received, b"\r\n\r\n") {
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
    fn file_reply(request: &Request, content: &[u8], etag: Option<&str>) -> Reply {
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
    fn media(len: usize, seed: u64) -> Vec<u8> {
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

    fn sha256(bytes: &[u8]) -> String {
        hex(&Sha256::digest(bytes))
    }

    fn limits() -> Limits {
        Limits {
            max_bytes: 64 * MB,
            timeout: Duration::from_secs(30),
            allow_private: true,
            user_agent: "vvtv-test".into(),
        }
    }

    fn quick() -> Tuning {
        Tuning { stall: Duration::from_secs(5), backoff: Duration::from_millis(20), public_exceptions: Vec::new() }
    }

    type Reports = Arc<Mutex<Vec<(u64, Option<u64>)>>>;

    async fn fetch(
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

    fn part_in(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join("work").join("123.download")
    }

    // ---- Downloads ----

    #[tokio::test]
    async fn downloads_a_file_with_the_right_hash_and_size() {
        let content = media(300_000, 1);
        let served = content.clone();
        let server = serve(move |request, _| file_reply(request, &served, Some("\"v1\""))).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let part = part_in(&dir);

        let (result, reports) = fetch(&server.url("/clip.mp4"), &part, &limits(), &quick()).await;
        let done = result.expect("download");

        assert_eq!(done.size, content.len() as u64);
        assert_eq!(done.sha256, sha256(&content));
        assert_eq!(done.sha256, sha256_file(&part).expect("hash the file"));
        assert_eq!(std::fs::read(&part).expect("read the file"), content);
        assert_eq!(done.path, part);
        assert_eq!(done.final_url, server.url("/clip.mp4"));
        assert_eq!(done.content_type.as_deref(), Some("video/mp4"));
        assert_eq!(done.kind, Sniffed::Mp4);
        assert!(!meta_path(&part).exists(), "the sidecar is removed after success");
        assert_eq!(reports.last(), Some(&(content.len() as u64, Some(content.len() as u64))));
        let request = &server.requests()[0];
        assert_eq!(request.header("user-agent"), Some("vvtv-test"));
        assert_eq!(request.header("range"), None);
    }

    #[tokio::test]
    async fn resumes_with_range_after_the_connection_drops() {
        for drops in [1, 2] {
            let content = media(400_000, 2);
            let served = content.clone();
            let server = serve(move |request, index| {
                let reply = file_reply(request, &served, Some("\"v1\"")).paced(16 * 1024, Duration::from_millis(2));
                // Each of the first answers stops halfway through what it promised.
                if index < drops {
                    let promised = reply.body.len();
                    reply.cut_at(promised / 2)
                } else {
                    reply
                }
            })
            .await;
            let dir = tempfile::tempdir().expect("temp dir");
            let part = part_in(&dir);

            let (result, _) = fetch(&server.url("/clip.mp4"), &part, &limits(), &quick()).await;
            let done = result.expect("download");

            assert_eq!(done.sha256, sha256(&content), "{drops} drop(s)");
            assert_eq!(done.size, content.len() as u64);
            let requests = server.requests();
            assert_eq!(requests.len(), drops + 1);
            assert_eq!(requests[0].header("range"), None);
            let mut resumed_at = 0;
            for request in &requests[1..] {
                let from: u64 = request
                    .header("range")
                    .and_then(|range| range.strip_prefix("bytes="))
                    .and_then(|range| range.strip_suffix('-'))
                    .and_then(|from| from.parse().ok())
                    .expect("a resumed request asks for the rest");
                assert!(from > resumed_at, "each resume starts further on");
                resumed_at = from;
                assert_eq!(request.header("if-range"), Some("\"v1\""));
            }
        }
    }

    #[tokio::test]
    async fn resumes_without_a_validator_when_the_size_matches() {
        let content = media(200_000, 3);
        let served = content.clone();
        let server = serve(move |request, index| {
            let reply = file_reply(request, &served, None);
            if index == 0 {
                reply.cut_at(70_000)
            } else {
                reply
            }
        })
        .await;
        let dir = tempfile::tempdir().expect("temp dir");
        let part = part_in(&dir);

        let (result, _) = fetch(&server.url("/clip.mp4"), &part, &limits(), &quick()).await;

        assert_eq!(result.expect("download").sha256, sha256(&content));
        let requests = server.requests();
        assert_eq!(requests[1].header("range"), Some("bytes=70000-"));
        assert_eq!(requests[1].header("if-range"), None);
    }

    #[tokio::test]
    async fn starts_over_when_the_server_ignores_range() {
        let content = media(300_000, 4);
        let served = content.clone();
        let server = serve(move |_, index| {
            // Always the whole file with 200, whatever was asked; the first answer drops halfway.
            let reply = Reply::new(200, served.clone()).header("ETag", "\"v1\"");
            if index == 0 {
                reply.cut_at(150_000)
            } else {
                reply
            }
        })
        .await;
        let dir = tempfile::tempdir().expect("temp dir");
        let part = part_in(&dir);

        let (result, _) = fetch(&server.url("/clip.mp4"), &part, &limits(), &quick()).await;
        let done = result.expect("download");

        assert_eq!(done.size, content.len() as u64, "the partial bytes were not kept in front");
        assert_eq!(done.sha256, sha256(&content));
        assert_eq!(std::fs::read(&part).expect("read the file"), content);
        assert_eq!(server.requests()[1].header("range"), Some("bytes=150000-"));
    }

    /// A server whose file can be replaced, and which can be told to drop every answer after some bytes.
    struct Flaky {
        content: Vec<u8>,
        etag: String,
        cut_at: Option<usize>,
    }

    async fn flaky_server(state: Arc<Mutex<Flaky>>) -> Server {
        serve(move |request, _| {
            let state = state.lock().expect("flaky state");
            let reply = file_reply(request, &state.content, Some(&state.etag));
            match state.cut_at {
                Some(cut) => reply.cut_at(cut),
                None => reply,
            }
        })
        .await
    }

    #[tokio::test]
    async fn gives_up_after_repeated_drops_and_the_next_call_resumes() {
        let content = media(500_000, 5);
        let state =
            Arc::new(Mutex::new(Flaky { content: content.clone(), etag: "\"v1\"".into(), cut_at: Some(40_000) }));
        let server = flaky_server(state.clone()).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let part = part_in(&dir);
        let url = server.url("/clip.mp4");

        let (first, _) = fetch(&url, &part, &limits(), &quick()).await;
        let error = first.expect_err("every answer drops");
        assert!(!error.is_permanent(), "{error}");
        assert!(matches!(error, DownloadError::Dropped { drops: 6, .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.starts_with(&url), "{message}");
        assert!(message.contains("dropped 6 times; giving up at 48 %"), "{message}");
        assert_eq!(server.requests().len(), 1 + MAX_RESUMES as usize);
        let kept = std::fs::metadata(&part).expect("the partial file is kept").len();
        assert_eq!(kept, 6 * 40_000);
        let meta: PartMeta =
            serde_json::from_slice(&std::fs::read(meta_path(&part)).expect("the sidecar is kept")).expect("json");
        assert_eq!(meta.validator.as_deref(), Some("\"v1\""));
        assert_eq!(meta.total, Some(content.len() as u64));

        state.lock().expect("flaky state").cut_at = None;
        let (second, _) = fetch(&url, &part, &limits(), &quick()).await;
        let done = second.expect("the second call completes");

        assert_eq!(done.sha256, sha256(&content));
        let requests = server.requests();
        let resumed = &requests[1 + MAX_RESUMES as usize];
        assert_eq!(resumed.header("range"), Some(format!("bytes={kept}-").as_str()));
        assert_eq!(resumed.header("if-range"), Some("\"v1\""));
        assert_eq!(requests.len(), 2 + MAX_RESUMES as usize, "one request finished the job");
    }

    #[tokio::test]
    async fn starts_over_when_the_file_changed_between_calls() {
        let old = media(300_000, 6);
        let state = Arc::new(Mutex::new(Flaky { content: old, etag: "\"v1\"".into(), cut_at: Some(30_000) }));
        let server = flaky_server(state.clone()).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let part = part_in(&dir);
        let url = server.url("/clip.mp4");

        let (first, _) = fetch(&url, &part, &limits(), &quick()).await;
        assert!(!first.expect_err("every answer drops").is_permanent());
        assert!(std::fs::metadata(&part).expect("partial file").len() > 0);

        let new = media(250_000, 7);
        *state.lock().expect("flaky state") = Flaky { content: new.clone(), etag: "\"v2\"".into(), cut_at: None };
        let (second, _) = fetch(&url, &part, &limits(), &quick()).await;
        let done = second.expect("the second call completes");

        assert_eq!(done.size, new.len() as u64);
        assert_eq!(done.sha256, sha256(&new));
        let last = server.requests().pop().expect("a request");
        assert_eq!(last.header("if-range"), Some("\"v1\""), "the resume was guarded by the old ETag");
    }

    #[tokio::test]
    async fn a_partial_file_of_another_url_is_not_resumed() {
        let content = media(100_000, 8);
        let served = content.clone();
        let server = serve(move |request, _| file_reply(request, &served, Some("\"v1\""))).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let part = part_in(&dir);
        std::fs::create_dir_all(part.parent().expect("parent")).expect("work dir");
        std::fs::write(&part, b"left over from another job").expect("stale part");
        let stale = PartMeta { url: "http://elsewhere/x.mp4".into(), validator: Some("\"v1\"".into()), total: None };
        std::fs::write(meta_path(&part), serde_json::to_vec(&stale).expect("json")).expect("stale meta");

        let (result, _) = fetch(&server.url("/clip.mp4"), &part, &limits(), &quick()).await;

        assert_eq!(result.expect("download").sha256, sha256(&content));
        assert_eq!(server.requests()[0].header("range"), None);
    }

    #[tokio::test]
    async fn not_found_is_permanent_and_removes_the_partial_file() {
        let server = serve(|_, _| Reply::new(404, "no such clip")).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let part = part_in(&dir);
        std::fs::create_dir_all(part.parent().expect("parent")).expect("work dir");
        std::fs::write(&part, media(1000, 9)).expect("old part");
        let url = server.url("/gone.mp4");
        let meta = PartMeta { url: url.clone(), validator: Some("\"v1\"".into()), total: Some(5000) };
        std::fs::write(meta_path(&part), serde_json::to_vec(&meta).expect("json")).expect("old meta");

        let (result, _) = fetch(&url, &part, &limits(), &quick()).await;
        let error = result.expect_err("404");

        assert!(error.is_permanent());
        assert_eq!(error.to_string(), format!("{url}: the server answered 404 Not Found"));
        assert!(!part.exists(), "partial file removed");
        assert!(!meta_path(&part).exists(), "sidecar removed");
    }

    #[tokio::test]
    async fn service_unavailable_is_transient_and_keeps_the_partial_file() {
        let server = serve(|_, _| Reply::new(503, "busy")).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let part = part_in(&dir);
        std::fs::create_dir_all(part.parent().expect("parent")).expect("work dir");
        let earlier = media(1000, 10);
        std::fs::write(&part, &earlier).expect("old part");
        let url = server.url("/busy.mp4");
        let meta = PartMeta { url: url.clone(), validator: Some("\"v1\"".into()), total: Some(5000) };
        std::fs::write(meta_path(&part), serde_json::to_vec(&meta).expect("json")).expect("old meta");

        let (result, _) = fetch(&url, &part, &limits(), &quick()).await;
        let error = result.expect_err("503");

        assert!(!error.is_permanent());
        assert_eq!(error.to_string(), format!("{url}: the server answered 503 Service Unavailable"));
        assert_eq!(std::fs::read(&part).expect("partial file kept"), earlier);
        assert!(meta_path(&part).exists(), "sidecar kept");
        assert_eq!(server.requests()[0].header("range"), Some("bytes=1000-"));
    }

    #[tokio::test]
    async fn an_html_page_is_refused_after_its_first_bytes_and_removed() {
        let mut page = b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>".to_vec();
        page.resize(SNIFF_LEN + 10, b' ');
        // Announces a megabyte but sends only the first bytes and then nothing: the download must not wait for more.
        let server = serve(move |_, _| {
            let mut body = page.clone();
            body.resize(1 << 20, b' ');
            Reply::new(200, body).header("Content-Type", "application/octet-stream").cut_at(SNIFF_LEN + 10).hang()
        })
        .await;
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
            serve(|_, _| Reply::new(200, media(10_000, 11)).header("Content-Type", "text/html; charset=utf-8")).await;
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
        let server = serve(|_, _| Reply::new(200, vec![0; 10 << 20]).cut_at(0).hang()).await;
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
        let server = serve(|_, _| Reply::new(200, media(3 << 20, 12)).without_length()).await;
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
        let server = serve(move |request, _| file_reply(request, &content, Some("\"v1\"")).cut_at(50_000).hang()).await;
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
            serve(move |request, _| file_reply(request, &content, None).paced(4096, Duration::from_millis(20))).await;
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
    async fn follows_a_chain_of_redirects() {
        let content = media(50_000, 15);
        let server = serve(move |request, _| match request.path.as_str() {
            "/start" => Reply::new(302, "").header("Location", "/hop/one"),
            "/hop/one" => Reply::new(301, "").header("Location", "two"),
            "/hop/two" => {
                let host = request.header("host").unwrap_or_default().to_string();
                Reply::new(307, "").header("Location", format!("http://{host}/final.mp4"))
            }
            "/final.mp4" => file_reply(request, &content, Some("\"v1\"")),
            _ => Reply::new(404, ""),
        })
        .await;
        let dir = tempfile::tempdir().expect("temp dir");
        let part = part_in(&dir);

        let (result, _) = fetch(&server.url("/start"), &part, &limits(), &quick()).await;
        let done = result.expect("download");

        assert_eq!(done.final_url, server.url("/final.mp4"));
        assert_eq!(done.size, 50_000);
        let paths: Vec<String> = server.requests().into_iter().map(|request| request.path).collect();
        assert_eq!(paths, ["/start", "/hop/one", "/hop/two", "/final.mp4"]);
    }

    #[tokio::test]
    async fn stops_after_too_many_redirects() {
        let server = serve(|_, index| Reply::new(302, "").header("Location", format!("/loop/{index}"))).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let url = server.url("/loop");

        let (result, _) = fetch(&url, &part_in(&dir), &limits(), &quick()).await;
        let error = result.expect_err("redirect loop");

        assert!(error.is_permanent());
        assert_eq!(error.to_string(), format!("{url}: more than 10 redirects"));
        assert_eq!(server.requests().len(), MAX_REDIRECTS + 1);
    }

    #[tokio::test]
    async fn a_redirect_into_a_private_network_is_refused() {
        let server = serve(|request, _| match request.path.as_str() {
            "/to-private" => Reply::new(302, "").header("Location", "http://10.1.2.3/admin.mp4"),
            "/to-loopback" => Reply::new(302, "").header("Location", "http://[::1]:9/x.mp4"),
            "/to-ftp" => Reply::new(302, "").header("Location", "ftp://example.com/x.mp4"),
            _ => Reply::new(200, media(10_000, 16)),
        })
        .await;
        let dir = tempfile::tempdir().expect("temp dir");
        let part = part_in(&dir);
        // The test server stands in for a public one; everything else private stays refused.
        let tuning = Tuning { public_exceptions: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)], ..quick() };
        let limits = Limits { allow_private: false, ..limits() };

        let (direct, _) = fetch(&server.url("/fine.mp4"), &part, &limits, &tuning).await;
        assert_eq!(direct.expect("the stand-in origin itself is allowed").size, 10_000);

        let url = server.url("/to-private");
        let (result, _) = fetch(&url, &part, &limits, &tuning).await;
        let error = result.expect_err("redirect to 10.1.2.3");
        assert!(error.is_permanent());
        assert_eq!(
            error.to_string(),
            format!(
                "{url}: refused: it redirects to http://10.1.2.3/admin.mp4, and 10.1.2.3 is a private address \
                 (set factory.allow_private_addresses to allow)"
            )
        );

        let (result, _) = fetch(&server.url("/to-loopback"), &part, &limits, &tuning).await;
        let error = result.expect_err("redirect to ::1");
        assert!(matches!(error, DownloadError::PrivateAddress { addr, .. } if addr == IpAddr::V6(Ipv6Addr::LOCALHOST)));
        assert!(error.to_string().contains("::1 is a loopback address"), "{error}");

        let (result, _) = fetch(&server.url("/to-ftp"), &part, &limits, &tuning).await;
        let error = result.expect_err("redirect to ftp");
        assert!(error.is_permanent());
        assert!(error.to_string().contains("refused: it redirects to ftp://example.com/x.mp4"), "{error}");

        let paths: Vec<String> = server.requests().into_iter().map(|request| request.path).collect();
        assert_eq!(paths, ["/fine.mp4", "/to-private", "/to-loopback", "/to-ftp"], "no refused hop was fetched");
    }

    #[tokio::test]
    async fn loopback_is_refused_unless_private_addresses_are_allowed() {
        let server = serve(|_, _| Reply::new(200, media(10_000, 17))).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let part = part_in(&dir);
        let limits = Limits { allow_private: false, ..limits() };
        let url = server.url("/clip.mp4");

        let (result, _) = fetch(&url, &part, &limits, &quick()).await;
        let error = result.expect_err("loopback");
        assert!(error.is_permanent());
        assert_eq!(
            error.to_string(),
            format!("{url}: refused: 127.0.0.1 is a loopback address (set factory.allow_private_addresses to allow)")
        );

        // A name is resolved here and judged by its addresses.
        let port = url.split(':').nth(2).and_then(|rest| rest.split('/').next()).expect("port");
        let by_name = format!("http://localhost:{port}/clip.mp4");
        let (result, _) = fetch(&by_name, &part, &limits, &quick()).await;
        let error = result.expect_err("localhost");
        assert!(error.to_string().contains("refused: localhost resolves to "), "{error}");
        assert!(error.to_string().contains("a loopback address"), "{error}");
        assert!(server.requests().is_empty(), "nothing reached the server");

        let (allowed, _) = fetch(&url, &part, &Limits { allow_private: true, ..limits }, &quick()).await;
        assert_eq!(allowed.expect("allowed").size, 10_000);
    }

    #[tokio::test]
    async fn only_http_and_https_are_fetched() {
        let dir = tempfile::tempdir().expect("temp dir");
        let part = part_in(&dir);
        for (url, expected) in [
            (
                "ftp://example.com/a.mp4",
                "ftp://example.com/a.mp4: refused: only http and https URLs are allowed, not ftp",
            ),
            ("file:///etc/passwd", "file:///etc/passwd: refused: only http and https URLs are allowed, not file"),
            ("not a url", "not a url: not a usable URL (relative URL without a base)"),
        ] {
            let (result, _) = fetch(url, &part, &limits(), &quick()).await;
            let error = result.expect_err(url);
            assert!(error.is_permanent(), "{url}");
            assert_eq!(error.to_string(), expected);
        }
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
        let server = serve(move |request, _| file_reply(request, &content, Some("\"v1\"")).cut_at(10_000)).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let limits = Limits { timeout: Duration::from_millis(500), ..limits() };
        let tuning = Tuning { backoff: Duration::from_secs(2), ..quick() };

        let started = std::time::Instant::now();
        let (result, _) = fetch(&server.url("/clip.mp4"), &part_in(&dir), &limits, &tuning).await;

        assert!(started.elapsed() < Duration::from_secs(2), "gave up instead of sleeping past the deadline");
        assert!(matches!(result, Err(DownloadError::Timeout { done: 10_000, .. })), "{result:?}");
    }

    #[test]
    fn a_download_can_run_on_any_thread() {
        fn assert_send<T: Send>(_: &T) {}
        let limits = limits();
        let future = download("http://example.com/a.mp4", Path::new("a.download"), &limits, &|_, _| {});
        assert_send(&future);
    }

    // ---- Addresses ----

    #[test]
    fn classifies_addresses() {
        use AddressClass::*;
        let cases: &[(&str, Option<AddressClass>)] = &[
            ("8.8.8.8", None),
            ("1.1.1.1", None),
            ("93.184.216.34", None),
            ("0.0.0.0", Some(Unspecified)),
            ("0.1.2.3", Some(Reserved)),
            ("10.0.0.5", Some(Private)),
            ("10.255.255.255", Some(Private)),
            ("100.63.255.255", None),
            ("100.64.0.1", Some(SharedCgnat)),
            ("100.127.255.254", Some(SharedCgnat)),
            ("100.128.0.1", None),
            ("127.0.0.1", Some(Loopback)),
            ("127.255.0.9", Some(Loopback)),
            ("169.254.169.254", Some(LinkLocal)),
            ("172.15.255.255", None),
            ("172.16.0.1", Some(Private)),
            ("172.31.255.255", Some(Private)),
            ("172.32.0.1", None),
            ("192.0.0.8", Some(Reserved)),
            ("192.0.2.1", Some(Documentation)),
            ("192.168.1.1", Some(Private)),
            ("192.169.0.1", None),
            ("198.18.0.1", Some(Benchmarking)),
            ("198.20.0.1", None),
            ("198.51.100.7", Some(Documentation)),
            ("203.0.113.9", Some(Documentation)),
            ("224.0.0.1", Some(Multicast)),
            ("239.255.255.250", Some(Multicast)),
            ("240.0.0.1", Some(Reserved)),
            ("255.255.255.255", Some(Broadcast)),
            ("2606:4700:4700::1111", None),
            ("2a00:1450:4001:80b::200e", None),
            ("::", Some(Unspecified)),
            ("::1", Some(Loopback)),
            ("::ffff:10.0.0.5", Some(Private)),
            ("::ffff:127.0.0.1", Some(Loopback)),
            ("::ffff:8.8.8.8", None),
            ("::127.0.0.1", Some(Reserved)),
            ("64:ff9b::7f00:1", Some(Loopback)),
            ("64:ff9b::808:808", None),
            ("64:ff9b:1::1", Some(Private)),
            ("100::1", Some(Reserved)),
            ("2001::1", Some(Reserved)),
            ("2001:2::1", Some(Benchmarking)),
            ("2001:db8::1", Some(Documentation)),
            ("2002:c0a8:0101::1", Some(Private)),
            ("2002:0808:0808::1", None),
            ("3fff::1", Some(Documentation)),
            ("fc00::1", Some(UniqueLocal)),
            ("fd12:3456:789a::1", Some(UniqueLocal)),
            ("fe80::1", Some(LinkLocal)),
            ("febf::1", Some(LinkLocal)),
            ("fec0::1", Some(SiteLocal)),
            ("ff02::1", Some(Multicast)),
        ];
        for &(text, expected) in cases {
            let ip: IpAddr = text.parse().expect(text);
            assert_eq!(address_class(ip), expected, "{text}");
        }
    }

    // ---- Sniffing and hashing ----

    /// Runs a gst-launch pipeline that ends in a file sink writing `name` in `dir`.
    fn generate(dir: &Path, name: &str, pipeline: &str) -> PathBuf {
        let path = dir.join(name);
        let description = format!("{pipeline} ! filesink location={}", path.display());
        let status = Command::new("gst-launch-1.0")
            .arg("-q")
            .args(description.split_whitespace())
            .status()
            .expect("run gst-launch-1.0");
        assert!(status.success(), "{description}");
        path
    }

    #[test]
    fn sniffs_media_made_by_gstreamer() {
        let dir = tempfile::tempdir().expect("temp dir");
        let video = "videotestsrc num-buffers=5 ! video/x-raw,width=64,height=48,framerate=25/1";
        let h264 = format!("{video} ! x264enc ! h264parse");
        let audio = "audiotestsrc num-buffers=5";
        let cases = [
            ("a.mp4", format!("{h264} ! mp4mux"), Sniffed::Mp4),
            ("a.mov", format!("{h264} ! qtmux"), Sniffed::QuickTime),
            ("a.mkv", format!("{h264} ! matroskamux"), Sniffed::Matroska),
            ("a.webm", format!("{video} ! vp8enc ! webmmux"), Sniffed::WebM),
            ("a.ts", format!("{h264} ! mpegtsmux"), Sniffed::MpegTs),
            ("a.m2ts", format!("{h264} ! mpegtsmux m2ts-mode=true"), Sniffed::M2ts),
            ("a.mpg", format!("{h264} ! mpegpsmux"), Sniffed::MpegPs),
            ("a.flv", format!("{h264} ! flvmux"), Sniffed::Flv),
            ("a.avi", format!("{video} ! avenc_mpeg4 ! avimux"), Sniffed::Avi),
            ("a.wmv", format!("{video} ! avenc_wmv2 ! asfmux"), Sniffed::Asf),
            ("a.ogg", format!("{audio} ! vorbisenc ! oggmux"), Sniffed::Ogg),
            ("a.wav", format!("{audio} ! wavenc"), Sniffed::Wav),
            ("a.aiff", format!("{audio} ! aiffmux"), Sniffed::Aiff),
            ("a.flac", format!("{audio} ! flacenc"), Sniffed::Flac),
            ("a.mp3", format!("{audio} ! lamemp3enc"), Sniffed::Mp3),
            ("a.aac", format!("{audio} ! avenc_aac ! aacparse ! audio/mpeg,stream-format=adts"), Sniffed::Adts),
        ];
        for (name, pipeline, expected) in cases {
            let path = generate(dir.path(), name, &pipeline);
            assert_eq!(sniff(&path).expect(name), expected, "{name}");
        }
    }

    #[test]
    fn sniff_refuses_text_and_empty_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cases: [(&str, &[u8], &str); 8] = [
            ("empty.mp4", b"", "is empty (0 bytes)"),
            (
                "page.mp4",
                b"\n\n<!doctype html><html><body>Not found</body></html>",
                "is an HTML page, not a media file",
            ),
            ("error.mp4", b"<h1>502 Bad Gateway</h1>", "is an HTML page, not a media file"),
            ("feed.mp4", b"<?xml version=\"1.0\"?><rss><channel/></rss>", "is an XML document, not a media file"),
            ("api.mp4", b"{\"error\": \"token expired\"}", "is JSON, not a media file"),
            ("list.mp4", b"[{\"id\": 1}]", "is JSON, not a media file"),
            ("live.mp4", b"#EXTM3U\n#EXT-X-VERSION:3\nseg0.ts\n", "is an M3U playlist (a stream, not a media file)"),
            ("note.mp4", "Ce fichier a été déplacé.\n".as_bytes(), "is plain text, not a media file"),
        ];
        for (name, bytes, what) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).expect("write");
            let error = sniff(&path).expect_err(name);
            assert!(error.is_permanent());
            assert_eq!(error.to_string(), format!("{}: {what}", path.display()));
        }
    }

    #[test]
    fn sniff_leaves_unknown_binary_to_the_prober() {
        let mut random = media(5000, 18);
        random[..24].copy_from_slice(&[0x13; 24]);
        assert_eq!(sniff_bytes(&random), Ok(Sniffed::Unknown));
        assert_eq!(sniff_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"), Ok(Sniffed::Unknown), "JPEG");
        assert_eq!(sniff_bytes(b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00"), Ok(Sniffed::Unknown), "AVIF still");
        assert!(sniff(Path::new("/nonexistent/clip.mp4")).is_err_and(|e| matches!(e, DownloadError::Io { .. })));
    }

    #[test]
    fn sniffs_signatures_in_memory() {
        let mut ts = vec![0u8; 188 * 3];
        ts.iter_mut().step_by(188).for_each(|b| *b = 0x47);
        assert_eq!(sniff_bytes(&ts), Ok(Sniffed::MpegTs));
        ts[188 * 2] = 0;
        assert_ne!(sniff_bytes(&ts), Ok(Sniffed::MpegTs), "every packet must start with the sync byte");
        assert_eq!(sniff_bytes(b"G\nG"), Err("is plain text, not a media file"), "one sync byte is not a stream");
        assert_eq!(sniff_bytes(b"\x00\x00\x00\x08wide\x00\x00\x00\x00mdat"), Ok(Sniffed::QuickTime));
        assert_eq!(sniff_bytes(b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00"), Ok(Sniffed::QuickTime));
        assert_eq!(sniff_bytes(b"\x00\x00\x00\x14ftyp3gp4\x00\x00\x02\x00"), Ok(Sniffed::Mp4));
        assert_eq!(sniff_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x00\xff\xfb\x90\x64"), Ok(Sniffed::Mp3));
        assert_eq!(sniff_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x02\x00\x00\xff\xf1\x50\x80"), Ok(Sniffed::Adts));
        assert_eq!(sniff_bytes(b"\xff\xfb\xf0\x64\x00\x00"), Ok(Sniffed::Unknown), "bitrate index 15 is invalid");
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

    #[test]
    fn parses_content_range() {
        assert_eq!(parse_content_range("bytes 100-999/1000"), Some((100, Some(1000))));
        assert_eq!(parse_content_range("bytes 100-999/*"), Some((100, None)));
        assert_eq!(parse_content_range("bytes */1000"), None);
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }

    #[test]
    fn describes_sizes() {
        assert_eq!(size(8192 * MB), "8192 MB");
        assert_eq!(size(412 * MB + 5), "412 MB");
        assert_eq!(size(MB + MB / 2), "1.5 MB");
        assert_eq!(size(20_000), "19 KB");
        assert_eq!(size(1), "1 byte");
        assert_eq!(share(360, Some(900)), "40 %");
        assert_eq!(amount(412 * MB, Some(900 * MB)), "412 MB of 900 MB");
    }
}
