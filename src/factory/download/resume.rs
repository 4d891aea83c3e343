//! Continues an interrupted download, and tells when the bytes already received cannot be trusted.
//!
//! An interrupted download resumes, both within one call (up to [`MAX_RESUMES`](super::MAX_RESUMES) dropped
//! connections) and across calls or processes: the partial file stays in place and a small JSON sidecar
//! (`<part>.meta`) remembers the URL and the server's validator (ETag or Last-Modified), which guards the `Range`
//! request with `If-Range` so the pieces of two different files are never glued together.
//!
//! [`Partial`] is what is known about the partial file's bytes; the transfer owns one, writes the bytes and asks it
//! how to ask for the rest and whether an answer continues them.

use std::io;
use std::path::{Path, PathBuf};

use reqwest::header::{HeaderMap, CONTENT_LENGTH, CONTENT_RANGE, ETAG, IF_RANGE, LAST_MODIFIED, RANGE};
use serde::{Deserialize, Serialize};

use super::{io_error, DownloadError};

/// The sidecar that makes a partial file resumable by a later call.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct PartMeta {
    /// The URL the caller asked for: a partial file of another URL is never resumed.
    pub(super) url: String,
    /// Strong ETag or Last-Modified of the representation the partial file holds, for `If-Range`.
    pub(super) validator: Option<String>,
    /// The full size, when the server announced it.
    pub(super) total: Option<u64>,
}

pub(super) fn meta_path(part: &Path) -> PathBuf {
    let mut path = part.as_os_str().to_owned();
    path.push(".meta");
    PathBuf::from(path)
}

async fn read_meta(part: &Path) -> Option<PartMeta> {
    let bytes = tokio::fs::read(meta_path(part)).await.ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// What is known about the bytes in the partial file: how many there are, which representation of the file they
/// belong to, and how many of them have been hashed. The default is an empty file.
#[derive(Debug, Default)]
pub(super) struct Partial {
    /// Bytes of the current representation in the partial file (some may still sit in the transfer's write buffer).
    pub(super) done: u64,
    /// Bytes fed to the hasher. Behind `done` only between opening a partial file from an earlier call and the server
    /// agreeing to resume it, so that a server that restarts anyway costs no hashing.
    pub(super) hashed: u64,
    /// The full size, when the server announced it.
    pub(super) total: Option<u64>,
    /// Strong ETag or Last-Modified of the representation, for `If-Range`.
    pub(super) validator: Option<String>,
}

impl Partial {
    /// The `existing` bytes an earlier call left in `part`, if they can be resumed: only bytes whose origin is known
    /// can be, that is of the same URL, with a validator to guard the `Range` request. None of them is hashed yet.
    pub(super) async fn left_over(url: &str, part: &Path, existing: u64) -> Option<Partial> {
        let meta = read_meta(part).await?;
        let resumable = existing > 0
            && meta.url == url
            && meta.validator.is_some()
            && meta.total.is_none_or(|total| existing <= total);
        resumable.then_some(Partial { done: existing, hashed: 0, total: meta.total, validator: meta.validator })
    }

    /// Asks for the rest of the file when some of it is already here, guarded by `If-Range` when a validator is known.
    pub(super) fn with_range(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        if self.done == 0 {
            return request;
        }
        let request = request.header(RANGE, format!("bytes={}-", self.done));
        match &self.validator {
            Some(validator) => request.header(IF_RANGE, validator.as_str()),
            None => request,
        }
    }

    /// Takes a `206 Partial Content` answer if it continues these bytes (and learns the total it announces);
    /// otherwise the answer cannot be trusted and `Err` says why, to start over from zero.
    pub(super) fn accept_rest(&mut self, headers: &HeaderMap) -> Result<(), String> {
        let range = headers.get(CONTENT_RANGE).and_then(|v| v.to_str().ok()).and_then(parse_content_range);
        let Some((first, total)) = range else {
            return Err("it answered 206 without a usable Content-Range".into());
        };
        if first != self.done {
            return Err(format!("asked to resume at byte {}, it resumed at {first}", self.done));
        }
        if let (Some(known), Some(now)) = (self.total, total) {
            if known != now {
                return Err(format!("the file was {known} bytes and is now {now}"));
            }
        }
        // Without a validator the request carried no If-Range: the announced size is the only evidence that
        // the rest belongs to the same file.
        if self.done > 0 && self.validator.is_none() && (total.is_none() || total != self.total) {
            return Err("cannot tell whether the file changed".into());
        }
        self.total = total.or(self.total);
        Ok(())
    }

    /// Takes what an answer with the whole file says about it: its size, if announced, and its validator.
    pub(super) fn accept_whole(&mut self, headers: &HeaderMap) {
        self.total = content_length(headers);
        self.validator = validator(headers);
    }

    /// Whether the bytes so far can be kept after a dropped connection: a validator guards the `Range` request, or
    /// at least the announced size can be compared.
    pub(super) fn can_resume(&self) -> bool {
        self.done > 0 && (self.validator.is_some() || self.total.is_some())
    }

    /// Writes the sidecar of `part`, so that a later call can resume these bytes of `url`.
    pub(super) async fn save_meta(&self, url: &str, part: &Path) -> Result<(), DownloadError> {
        let meta = PartMeta { url: url.to_string(), validator: self.validator.clone(), total: self.total };
        let path = meta_path(part);
        let json = serde_json::to_vec(&meta).map_err(|e| io_error(&path, "encode")(io::Error::other(e)))?;
        // Written aside and renamed, so that a crash leaves the old sidecar or the new one, never half of one.
        let mut temporary = path.clone().into_os_string();
        temporary.push(".tmp");
        let temporary = PathBuf::from(temporary);
        tokio::fs::write(&temporary, json).await.map_err(io_error(&temporary, "write"))?;
        tokio::fs::rename(&temporary, &path).await.map_err(io_error(&path, "write"))?;
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::factory::download::test_support::*;
    use crate::factory::download::{DownloadError, MAX_RESUMES};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    #[tokio::test]
    async fn resumes_with_range_after_the_connection_drops() {
        for drops in [1, 2] {
            let content = media(400_000, 2);
            let served = content.clone();
            let server = Server::start(move |request, index| {
                let reply = file_reply(request, &served, Some("\"v1\"")).paced(16 * 1024, Duration::from_millis(2));
                // Each of the first answers stops halfway through what it promised.
                if index < drops {
                    let promised = reply.body.len();
                    reply.cut_at(promised / 2)
                } else {
                    reply
                }
            });
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
        let server = Server::start(move |request, index| {
            let reply = file_reply(request, &served, None);
            if index == 0 {
                reply.cut_at(70_000)
            } else {
                reply
            }
        });
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
        let server = Server::start(move |_, index| {
            // Always the whole file with 200, whatever was asked; the first answer drops halfway.
            let reply = Reply::new(200, served.clone()).header("ETag", "\"v1\"");
            if index == 0 {
                reply.cut_at(150_000)
            } else {
                reply
            }
        });
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

    fn flaky_server(state: Arc<Mutex<Flaky>>) -> Server {
        Server::start(move |request, _| {
            let state = state.lock().expect("flaky state");
            let reply = file_reply(request, &state.content, Some(&state.etag));
            match state.cut_at {
                Some(cut) => reply.cut_at(cut),
                None => reply,
            }
        })
    }

    #[tokio::test]
    async fn gives_up_after_repeated_drops_and_the_next_call_resumes() {
        let content = media(500_000, 5);
        let state =
            Arc::new(Mutex::new(Flaky { content: content.clone(), etag: "\"v1\"".into(), cut_at: Some(40_000) }));
        let server = flaky_server(state.clone());
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
        let server = flaky_server(state.clone());
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
        let server = Server::start(move |request, _| file_reply(request, &served, Some("\"v1\"")));
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

    #[test]
    fn parses_content_range() {
        assert_eq!(parse_content_range("bytes 100-999/1000"), Some((100, Some(1000))));
        assert_eq!(parse_content_range("bytes 100-999/*"), Some((100, None)));
        assert_eq!(parse_content_range("bytes */1000"), None);
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }
}
