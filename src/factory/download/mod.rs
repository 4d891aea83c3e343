//! Fetches media URLs into the factory's work directory.
//!
//! A download is the station's only contact with arbitrary servers, so it is defensive. [`download`] is the one
//! entry; the work is split by concern:
//! - `transfer.rs`: one call, which drives the others: the requests and their redirects, the bytes (size and time
//!   limits, hashing, and sniffing the first bytes with [`crate::factory::sniff`] as soon as they arrive);
//! - `guard.rs`: which addresses may be contacted (only `http` and `https`, nothing in a private network, every
//!   redirect hop checked, the connection pinned to the checked addresses);
//! - `resume.rs`: what is known about the partial file, so that an interrupted download continues, within one call or
//!   across calls and processes, without ever gluing together the pieces of two different files.
//!
//! `guard.rs` and `resume.rs` know nothing of the transfer: they are plain functions and a state type that
//! `transfer.rs` uses, never the other way round.
//!
//! Every error names the URL (or file) and says what went wrong; [`DownloadError::is_permanent`] tells rejections,
//! for which the partial file is deleted, from transient failures, for which it is kept so that a later attempt resumes.

mod guard;
mod resume;
#[cfg(test)]
pub(super) mod test_support;
mod transfer;

pub use guard::{address_class, AddressClass};
pub use transfer::sha256_file;

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use tracing::{debug, warn};

use super::sniff::{SniffError, Sniffed};
use resume::meta_path;
use transfer::Transfer;

/// Redirects followed before giving up; every hop is checked like the first URL.
pub const MAX_REDIRECTS: usize = 10;
/// Dropped connections resumed within one call; the next attempt of the job resumes from the partial file again.
pub const MAX_RESUMES: u32 = 5;
/// A connection that delivers no byte for this long is given up (transient: the next attempt resumes).
pub const STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// First pause after a dropped connection; doubled for every further drop up to [`MAX_BACKOFF`].
const BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(8);

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

/// A local file that cannot be sniffed, or is not media, fails as a download would, with the same message.
impl From<SniffError> for DownloadError {
    fn from(e: SniffError) -> Self {
        match e {
            SniffError::Io { what, source } => DownloadError::Io { what, source },
            SniffError::NotMedia { path, what } => {
                DownloadError::NotMedia { url: path.display().to_string(), what: what.to_string() }
            }
        }
    }
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

async fn remove_if_present(path: &Path) {
    match tokio::fs::remove_file(path).await {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => warn!(path = %path.display(), error = %e, "cannot remove"),
    }
}

pub(super) fn io_error(path: &Path, action: &'static str) -> impl FnOnce(io::Error) -> DownloadError {
    let what = format!("{}: cannot {action}", path.display());
    move |source| DownloadError::Io { what, source }
}

/// Lowercase hex, as SHA-256 digests are shown.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    text
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

#[cfg(test)]
mod tests {
    use super::resume::PartMeta;
    use super::test_support::*;
    use super::*;

    #[tokio::test]
    async fn downloads_a_file_with_the_right_hash_and_size() {
        let content = media(300_000, 1);
        let served = content.clone();
        let server = Server::start(move |request, _| file_reply(request, &served, Some("\"v1\"")));
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
    async fn not_found_is_permanent_and_removes_the_partial_file() {
        let server = Server::start(|_, _| Reply::new(404, "no such clip"));
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
        let server = Server::start(|_, _| Reply::new(503, "busy"));
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

    #[test]
    fn a_download_can_run_on_any_thread() {
        fn assert_send<T: Send>(_: &T) {}
        let limits = limits();
        let future = download("http://example.com/a.mp4", Path::new("a.download"), &limits, &|_, _| {});
        assert_send(&future);
    }

    #[test]
    fn a_local_file_that_is_not_media_fails_like_a_download() {
        let dir = tempfile::tempdir().expect("temp dir");
        let page = dir.path().join("page.mp4");
        std::fs::write(&page, b"<html><body>Not found</body></html>").expect("write");

        let not_media = DownloadError::from(crate::factory::sniff::sniff(&page).expect_err("HTML"));
        assert!(not_media.is_permanent());
        assert!(matches!(not_media, DownloadError::NotMedia { .. }), "{not_media:?}");
        assert_eq!(not_media.to_string(), format!("{}: is an HTML page, not a media file", page.display()));

        let missing = dir.path().join("missing.mp4");
        let unreadable = DownloadError::from(crate::factory::sniff::sniff(&missing).expect_err("missing"));
        assert!(!unreadable.is_permanent());
        assert!(matches!(unreadable, DownloadError::Io { .. }), "{unreadable:?}");
        assert!(unreadable.to_string().starts_with(&format!("{}: cannot open: ", missing.display())), "{unreadable}");
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
