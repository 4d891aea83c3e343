//! The drop folder: a file copied into `data_dir/inbox` (or `factory.inbox_dir`) becomes a job once it has stopped
//! growing; when the job ends the file is moved to `inbox/done/` or to `inbox/rejected/` next to a `.reason.txt`.

use crate::store::{JobInput, Store};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Names of files still being written by common tools; they are left alone.
const PARTIAL_SUFFIXES: [&str; 6] = [".part", ".tmp", ".crdownload", ".download", ".partial", ".reason.txt"];
const DONE_DIR: &str = "done";
const REJECTED_DIR: &str = "rejected";

pub struct Inbox {
    dir: PathBuf,
    /// Size and modification time of each file at the previous scan: a file is taken once they stop changing.
    seen: HashMap<PathBuf, (u64, SystemTime)>,
    created: bool,
}

impl Inbox {
    pub fn new(dir: PathBuf) -> Inbox {
        Inbox { dir, seen: HashMap::new(), created: false }
    }

    /// Files that have settled since the last scan and are not yet the input of a job.
    pub async fn scan(&mut self, store: &Store) -> Vec<PathBuf> {
        if !self.created {
            if let Err(e) = std::fs::create_dir_all(&self.dir) {
                tracing::warn!("cannot create the inbox {}: {e}", self.dir.display());
                return Vec::new();
            }
            self.created = true;
        }
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return Vec::new() };
        let mut now = HashMap::new();
        let mut ready = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || PARTIAL_SUFFIXES.iter().any(|s| name.ends_with(s)) {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let path = std::path::absolute(entry.path()).unwrap_or_else(|_| entry.path());
            let stamp = (meta.len(), meta.modified().unwrap_or(SystemTime::UNIX_EPOCH));
            if self.seen.get(&path) == Some(&stamp) && !taken(store, &path, stamp.1).await {
                ready.push(path.clone());
            }
            now.insert(path, stamp);
        }
        self.seen = now;
        ready
    }
}

/// Has a job already been made from this file (since it was last modified)?
async fn taken(store: &Store, path: &Path, modified: SystemTime) -> bool {
    let modified: chrono::DateTime<chrono::Utc> = modified.into();
    match store.job_for_input(&JobInput::File(path.to_owned())).await {
        Ok(Some(job)) => job.created >= modified,
        Ok(None) => false,
        Err(_) => true,
    }
}

/// Moves a finished inbox file out of the way; a rejected one gets its reason written next to it.
pub fn file_away(path: &Path, ready: bool, reason: Option<&str>) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else { return };
    let target_dir = dir.join(if ready { DONE_DIR } else { REJECTED_DIR });
    let target = target_dir.join(name);
    let moved = std::fs::create_dir_all(&target_dir).and_then(|_| std::fs::rename(path, &target));
    if let Err(e) = moved {
        tracing::warn!("cannot move {} to {}: {e}", path.display(), target_dir.display());
        return;
    }
    if let (false, Some(reason)) = (ready, reason) {
        let mut note = target.into_os_string();
        note.push(".reason.txt");
        let _ = std::fs::write(note, format!("{reason}\n"));
    }
}
