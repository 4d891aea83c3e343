//! Disk housekeeping for the factory: free space, the assets quota (evicting the least recently aired assets that
//! are not scheduled), and the work folder cleaned at start.

use crate::store::{AssetId, JobId, Store};
use std::collections::HashSet;
use std::path::Path;

pub const GB: f64 = 1024.0 * 1024.0 * 1024.0;

/// Bytes available to us on the file system holding `path`.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid NUL-terminated path and `st` points to writable memory of the right size; statvfs
    // fully initialises it when it returns 0.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so the struct is initialised.
    let st = unsafe { st.assume_init() };
    Ok(st.f_bavail * st.f_frsize)
}

/// Deletes everything in the work folder except the partial downloads of jobs in `keep` (they resume). Returns what
/// was removed, for the log.
pub fn clean_work_dir(work: &Path, keep: &HashSet<JobId>) -> Vec<String> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(work) else { return removed };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let job = name
            .strip_prefix("job-")
            .and_then(|rest| rest.strip_suffix(".download").or_else(|| rest.strip_suffix(".download.meta")))
            .and_then(|id| id.parse::<JobId>().ok());
        if job.is_some_and(|id| keep.contains(&id)) {
            continue;
        }
        let path = entry.path();
        let gone = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        if gone.is_ok() {
            removed.push(name);
        }
    }
    removed
}

/// Evicts assets (least recently aired, never scheduled ones) until the library fits `quota_bytes`. Returns the
/// evicted ids and the bytes still in use.
pub async fn enforce_quota(store: &Store, quota_bytes: u64) -> crate::store::Result<(Vec<(AssetId, String)>, u64)> {
    let mut used = store.assets_bytes().await?;
    let mut evicted = Vec::new();
    if used <= quota_bytes {
        return Ok((evicted, used));
    }
    for (asset, bytes) in store.eviction_candidates(1000).await? {
        if used <= quota_bytes {
            break;
        }
        // The row first: if we die between the two, a missing folder of an evicted asset is harmless.
        store.mark_asset_evicted(asset.id).await?;
        if let Err(e) = std::fs::remove_dir_all(&asset.dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(asset = %asset.id, dir = %asset.dir.display(), "cannot delete evicted asset: {e}");
            }
        }
        // Nodes sharing an object store: the asset's objects go too (other nodes' local copies are never aired).
        if let Some(objects) = store.objects() {
            if let Err(e) = objects.remove_dir(&asset.dir).await {
                tracing::warn!(asset = %asset.id, "cannot delete the evicted asset's objects: {e}");
            }
        }
        used = used.saturating_sub(bytes);
        evicted.push((asset.id, asset.title));
    }
    Ok((evicted, used))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_is_reported() {
        let free = free_bytes(Path::new("/")).unwrap();
        assert!(free > 0);
        assert!(free_bytes(Path::new("/no/such/dir")).is_err());
    }

    #[test]
    fn work_dir_keeps_only_resumable_downloads_of_unfinished_jobs() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["job-1.download", "job-1.download.meta", "job-2.download", "job-3.pcm", "stray.tmp"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join("job-4")).unwrap();
        std::fs::write(dir.path().join("job-4/1080p.mp4.part"), b"x").unwrap();
        let mut removed = clean_work_dir(dir.path(), &HashSet::from([JobId(1)]));
        removed.sort();
        assert_eq!(removed, ["job-2.download", "job-3.pcm", "job-4", "stray.tmp"]);
        let mut left: Vec<_> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, ["job-1.download", "job-1.download.meta"]);
    }
}
