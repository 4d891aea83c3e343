//! The HLS origin: serves `GET /hls/{channel}/live.m3u8`, `…/{rung}/live.m3u8` and `…/{rung}/seg00000012.ts` to
//! players and to the CDN that pulls from us, as fast as nginx serves the same files.
//!
//! Playlists, tiny and asked for every few seconds by every player, come from memory: the broadcaster publishes each
//! one it renders ([`crate::broadcaster::published`]), so answering one touches no file. Segments come from
//! `data_dir/hls` in four system calls (open, fstat, pread, close; see `files.rs`), and the ones players are fetching
//! right now from memory after their first read (`cache.rs`).
//!
//! It is the only part of VVTV that turns a URL into a file path, so it trusts nothing in the URL: each path
//! component must match a whitelist (`[a-z0-9-]+` for channel and rung, `live.m3u8` or `seg<digits>.ts` for the
//! file), the channel must be one the station runs, the rung one of its ladder, the segment one that has been listed
//! (higher numbers may still be being written, and a CDN would keep a truncated copy for a year), and the file is
//! opened below the HLS root without following any symlink. Caching is what a CDN needs: playlists change every
//! segment (`max-age=1`, and never a 304: `Last-Modified` has one-second resolution), segments never change once
//! written (their number is never reused, see `broadcaster::playlist`), so they are `immutable`. Every answer,
//! errors included, carries `Access-Control-Allow-Origin: *` so web players on any origin can play. Range requests
//! (206/416), HEAD and conditional requests on segments are in `ranges.rs`.

mod cache;
mod files;
mod ranges;
#[cfg(test)]
mod tests;

use crate::broadcaster::layout::{parse_segment_file_name, PLAYLIST_FILE};
use crate::broadcaster::published::{PublishedReceiver, SegmentObject};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use cache::{Cached, SegmentCache};
use files::Root;
use ranges::{Precondition, Validators};
use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
const SEGMENT_TYPE: &str = "video/mp2t";
/// Players reload the playlist every target duration; one second keeps a CDN from hammering us without making
/// anyone late.
const PLAYLIST_CACHE: &str = "max-age=1";
const SEGMENT_CACHE: &str = "public, max-age=31536000, immutable";
/// Errors may turn into successes a moment later (the first segment of a starting channel).
const ERROR_CACHE: &str = "max-age=1";

#[derive(Clone)]
struct Origin {
    root: Arc<Root>,
    cache: Arc<SegmentCache>,
    /// The configured channels, each with what its broadcaster published.
    channels: Arc<HashMap<String, PublishedReceiver>>,
    shared: Option<Shared>,
}

/// Nodes sharing the station: where the segments this node did not write are, and when a playlist that stopped
/// advancing is no longer worth serving.
#[derive(Clone)]
pub struct Shared {
    pub objects: crate::objects::Objects,
    /// A channel whose newest segment ended longer ago than this answers 503 for its playlists, so a CDN or a
    /// player fails over to another origin. Longer than a takeover takes, so a takeover is not a failure.
    pub stale_after: std::time::Duration,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Playlist,
    Segment,
}

impl Kind {
    fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Kind::Playlist => PLAYLIST_TYPE,
            Kind::Segment => SEGMENT_TYPE,
        })
    }

    fn cache(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Kind::Playlist => PLAYLIST_CACHE,
            Kind::Segment => SEGMENT_CACHE,
        })
    }
}

/// The origin's routes, ready to `.merge()` into the main router whatever its state type. `hls_root` is
/// `data_dir/hls`; `cache_bytes` is the segment cache's budget (`server.segment_cache_mb`); only `channels` (the
/// configured channel ids, each with its broadcaster's published playlists) are served, so folders left by removed
/// channels are not.
pub fn router<S>(
    hls_root: PathBuf,
    cache_bytes: u64,
    channels: impl IntoIterator<Item = (String, PublishedReceiver)>,
    shared: Option<Shared>,
) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let origin = Origin {
        root: Arc::new(Root::new(hls_root)),
        cache: Arc::new(SegmentCache::new(cache_bytes)),
        channels: Arc::new(channels.into_iter().collect()),
        shared,
    };
    // One catch-all route: matchit cannot mix it with `{channel}/{file}` routes, and answering every /hls path
    // here (too deep, raw `..`) gives those answers the CORS header too.
    Router::new()
        .route("/hls/{*path}", get(hls_file).options(preflight))
        .layer(middleware::map_response(allow_any_origin))
        .with_state(origin)
}

/// Reads the raw path: no name the origin serves needs percent-encoding, so a `%` is refused outright (and
/// `%2e%2e` or `%2f` never get the chance to mean anything).
async fn hls_file(State(origin): State<Origin>, req: Request) -> Response {
    let Some(path) = req.uri().path().strip_prefix("/hls/") else { return not_found() };
    if path.contains(['%', '\\']) || path.split('/').any(is_hostile) {
        tracing::debug!(path, "refused a path that tries to leave the HLS folder");
        return refuse(StatusCode::BAD_REQUEST, "bad path");
    }
    let mut components = path.split('/');
    match (components.next(), components.next(), components.next(), components.next()) {
        (Some(channel), Some(file), None, _) => origin.serve(channel, None, file, req.method(), req.headers()).await,
        (Some(channel), Some(rung), Some(file), None) => {
            origin.serve(channel, Some(rung), file, req.method(), req.headers()).await
        }
        _ => not_found(),
    }
}

impl Origin {
    async fn serve(
        &self,
        channel: &str,
        rung: Option<&str>,
        file: &str,
        method: &Method,
        headers: &HeaderMap,
    ) -> Response {
        let Some(published) = self.channels.get(channel) else { return not_found() };
        if file == PLAYLIST_FILE {
            if let Some(shared) = &self.shared {
                let last_end = published.borrow().last_end;
                let stale = last_end.and_then(|t| t.elapsed().ok()).is_some_and(|age| age > shared.stale_after);
                if stale {
                    return refuse(StatusCode::SERVICE_UNAVAILABLE, "the channel's playlist stopped advancing");
                }
            }
            let body = {
                let p = published.borrow();
                match rung {
                    None => p.channel.clone(),
                    Some(rung) => p.rung(rung).and_then(|r| r.playlist.clone()),
                }
            };
            let Some(body) = body else { return not_found() };
            // No validators: a playlist is always sent whole and fresh (If-Range then never holds).
            let len = body.len() as u64;
            let if_range_holds = !headers.contains_key(header::IF_RANGE);
            return send(Kind::Playlist, method, headers, len, None, if_range_holds, |start, count| {
                Ok(body.slice(start as usize..(start + count) as usize))
            });
        }
        let (Some(rung), Some(seq)) = (rung, parse_segment_file_name(file)) else { return not_found() };
        // The rung is on the ladder, so its name is a slug (checked by the playlist settings).
        if !published.borrow().serves_segment(rung, seq) {
            return not_found();
        }
        let path = format!("{channel}/{rung}/{file}");
        if let Some(hit) = self.cache.get(&path) {
            let len = hit.body.len() as u64;
            return segment(method, headers, hit.validators, len, |start, count| {
                Ok(hit.body.slice(start as usize..(start + count) as usize))
            });
        }
        let opened = match self.root.open(&path) {
            Ok(opened) => opened,
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.shared.is_some() => {
                let object = published.borrow().object(seq).copied();
                return match object {
                    Some(o) => self.serve_object(channel, rung, &path, o, method, headers).await,
                    None => not_found(),
                };
            }
            Err(e) => return open_failed(&path, &e),
        };
        let (len, validators) = (opened.len, Validators::new(opened.modified, opened.len));
        let keep = self.cache.keeps(len).then(|| (self.cache.clone(), validators.clone()));
        segment(method, headers, validators, len, |start, count| match keep {
            // The first read of a segment reads it whole, for every request after it.
            Some((cache, validators)) => {
                let body = Bytes::from(opened.read(0, len)?);
                cache.insert(&path, Cached { body: body.clone(), validators });
                Ok(body.slice(start as usize..(start + count) as usize))
            }
            None => opened.read(start, count).map(Bytes::from),
        })
    }
}

impl Origin {
    /// A listed segment another node wrote: fetched whole from the shared object store (by the epoch that names
    /// it), kept in the cache like a local one, with validators every origin computes alike (its end time).
    async fn serve_object(
        &self,
        channel: &str,
        rung: &str,
        path: &str,
        object: SegmentObject,
        method: &Method,
        headers: &HeaderMap,
    ) -> Response {
        let Some(shared) = &self.shared else { return not_found() };
        let key = crate::objects::segment_key(channel, rung, object.epoch, object.seq);
        let body = match shared.objects.get(&key).await {
            Ok(body) => body,
            Err(e) => {
                tracing::warn!("cannot fetch segment {key} from {}: {e}", shared.objects.url());
                return refuse(StatusCode::BAD_GATEWAY, "cannot fetch the segment from the object store");
            }
        };
        let len = body.len() as u64;
        let validators = Validators::new(object.end, len);
        self.cache.insert(path, Cached { body: body.clone(), validators: validators.clone() });
        segment(method, headers, validators, len, |start, count| {
            Ok(body.slice(start as usize..(start + count) as usize))
        })
    }
}

/// A segment's answer: 304 or 412 when its validators say so, else its bytes (`read`, not called for HEAD).
fn segment(
    method: &Method,
    headers: &HeaderMap,
    validators: Validators,
    len: u64,
    read: impl FnOnce(u64, u64) -> io::Result<Bytes>,
) -> Response {
    match validators.evaluate(method, headers) {
        Precondition::Proceed => {}
        Precondition::NotModified => {
            let mut res = StatusCode::NOT_MODIFIED.into_response();
            let h = res.headers_mut();
            h.insert(header::CACHE_CONTROL, Kind::Segment.cache());
            h.insert(header::LAST_MODIFIED, validators.last_modified);
            h.insert(header::ETAG, validators.etag);
            return res;
        }
        Precondition::Failed => return refuse(StatusCode::PRECONDITION_FAILED, "precondition failed"),
    }
    let if_range_holds = validators.if_range_holds(headers);
    send(Kind::Segment, method, headers, len, Some(validators), if_range_holds, read)
}

/// The answer to a GET or HEAD for a body of `len` bytes that `read(start, count)` produces (not called for HEAD).
fn send(
    kind: Kind,
    method: &Method,
    headers: &HeaderMap,
    len: u64,
    validators: Option<Validators>,
    if_range_holds: bool,
    read: impl FnOnce(u64, u64) -> io::Result<Bytes>,
) -> Response {
    let (status, start, count, content_range) = match ranges::requested(headers, len, if_range_holds) {
        ranges::Bytes::Whole => (StatusCode::OK, 0, len, None),
        ranges::Bytes::Part { start, end } => {
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1, Some(format!("bytes {start}-{end}/{len}")))
        }
        ranges::Bytes::Unsatisfiable => {
            let mut res = refuse(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable");
            let h = res.headers_mut();
            h.insert(header::CONTENT_TYPE, kind.content_type());
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                h.insert(header::CONTENT_RANGE, v);
            }
            return res;
        }
    };
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        match read(start, count) {
            Ok(bytes) => Body::from(bytes),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read an HLS file");
                return refuse(StatusCode::INTERNAL_SERVER_ERROR, "cannot read file");
            }
        }
    };
    let mut res = Response::new(body);
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, kind.content_type());
    h.insert(header::CACHE_CONTROL, kind.cache());
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    if let Some(v) = validators {
        h.insert(header::LAST_MODIFIED, v.last_modified);
        h.insert(header::ETAG, v.etag);
    }
    if let Some(range) = content_range.and_then(|r| HeaderValue::from_str(&r).ok()) {
        h.insert(header::CONTENT_RANGE, range);
    }
    res
}

/// A segment that is listed but cannot be opened: gone (slid out past its grace), or something under the root that
/// is not a plain file (a symlink is refused by the kernel: `ELOOP`, `EXDEV`).
fn open_failed(path: &str, e: &io::Error) -> Response {
    match e.raw_os_error() {
        Some(libc::ELOOP | libc::EXDEV | libc::ENOTDIR) => {
            tracing::warn!(path, error = %e, "refused a symlink under the HLS folder");
            not_found()
        }
        _ if e.kind() == io::ErrorKind::NotFound => not_found(),
        _ => {
            tracing::warn!(path, error = %e, "cannot open an HLS segment");
            refuse(StatusCode::INTERNAL_SERVER_ERROR, "cannot read file")
        }
    }
}

/// A component that could only be meant to climb out of the folder, or reach a hidden (temp) file.
fn is_hostile(component: &str) -> bool {
    component.contains("..") || component.contains('\0') || component.starts_with('.')
}

fn not_found() -> Response {
    refuse(StatusCode::NOT_FOUND, "not found")
}

fn refuse(status: StatusCode, message: &'static str) -> Response {
    (status, [(header::CACHE_CONTROL, ERROR_CACHE)], message).into_response()
}

/// CORS preflight: players on any page may GET (with Range) from us.
async fn preflight(headers: HeaderMap) -> Response {
    let requested = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS).cloned();
    let allow_headers = requested.unwrap_or_else(|| HeaderValue::from_static("range"));
    (
        StatusCode::NO_CONTENT,
        [
            (header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, HEAD, OPTIONS")),
            (header::ACCESS_CONTROL_ALLOW_HEADERS, allow_headers),
            (header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400")),
        ],
    )
        .into_response()
}

async fn allow_any_origin(mut res: Response) -> Response {
    let headers = res.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    // Range-reading players (hls.js byte ranges) need to see these from script.
    headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("Content-Length, Content-Range"));
    res
}
