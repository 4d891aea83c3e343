//! What every download test uses: media bytes, limits, a quick [`Tuning`], [`fetch`], and the stand-in origin.
//!
//! The origin is the test kit's misbehaving HTTP server (`vvtv_testkit::flaky`), and the media bytes are the
//! sniffer's (`factory::sniff`, which the download builds on); both are re-exported here so a test module's one glob
//! import brings them along.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
pub(super) use vvtv_testkit::flaky::{file_reply, Reply, Server};

pub(super) use crate::factory::sniff::test_bytes::media;

use super::{download_tuned, hex, DownloadError, Downloaded, Limits, Tuning, MB};

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
