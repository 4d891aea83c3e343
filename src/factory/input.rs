//! What an ingest request may take in: any http(s) URL (the download is guarded later), or a file under one of the
//! ingest roots. Checked before anything is opened, so a request cannot make the daemon read `/etc/shadow`.

use super::error::IngestRefused;
use crate::config::Config;
use crate::store::JobInput;
use std::path::{Component, Path, PathBuf};

/// The folders whose files may be ingested by path: `factory.ingest_roots`, else the inbox and the data dir.
pub fn ingest_roots(config: &Config) -> Vec<PathBuf> {
    if !config.factory.ingest_roots.is_empty() {
        return config.factory.ingest_roots.clone();
    }
    let data_dir = std::path::absolute(&config.storage.data_dir).unwrap_or_else(|_| config.storage.data_dir.clone());
    let inbox = std::path::absolute(config.inbox_dir()).unwrap_or_else(|_| config.inbox_dir());
    vec![inbox, data_dir]
}

/// Refuses what may not be ingested; for a path, only its name is looked at before it is found under a root, and
/// symlinks are followed before the check (a link in the inbox must not lead out of it).
pub fn admit(input: &JobInput, roots: &[PathBuf]) -> Result<(), IngestRefused> {
    let path = match input {
        JobInput::Url(url) => {
            return match url::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
                Ok(u) => Err(IngestRefused::BadUrl {
                    url: url.clone(),
                    reason: format!("only http and https URLs with a host can be ingested, not {}", u.scheme()),
                }),
                Err(e) => Err(IngestRefused::BadUrl { url: url.clone(), reason: e.to_string() }),
            };
        }
        JobInput::File(path) => path,
    };
    let outside = || IngestRefused::OutsideRoots { path: path.clone(), roots: roots.to_vec() };
    if path.components().any(|c| matches!(c, Component::ParentDir)) || !is_under(path, roots) {
        return Err(outside());
    }
    let real =
        std::fs::canonicalize(path).map_err(|source| IngestRefused::Unreadable { path: path.clone(), source })?;
    let real_roots: Vec<PathBuf> = roots.iter().filter_map(|r| std::fs::canonicalize(r).ok()).collect();
    if !is_under(&real, &real_roots) {
        return Err(outside());
    }
    match std::fs::metadata(&real) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(IngestRefused::NotAFile { path: path.clone() }),
        Err(source) => Err(IngestRefused::Unreadable { path: path.clone(), source }),
    }
}

fn is_under(path: &Path, roots: &[PathBuf]) -> bool {
    roots.iter().any(|root| path.starts_with(root))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_under_a_root_are_admitted_and_nothing_else_is_opened() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("inbox");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("a.mp4"), b"x").unwrap();
        std::fs::write(dir.path().join("secret.txt"), b"x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("link.mp4")).unwrap();
        let roots = [root.clone()];

        admit(&JobInput::File(root.join("a.mp4")), &roots).expect("a file in the inbox");
        for refused in [
            PathBuf::from("/etc/shadow"),
            dir.path().join("secret.txt"),
            root.join("../secret.txt"),
            root.join("link.mp4"),
        ] {
            let e = admit(&JobInput::File(refused.clone()), &roots).unwrap_err();
            assert!(matches!(e, IngestRefused::OutsideRoots { .. }), "{}: {e}", refused.display());
            assert!(e.to_string().contains("factory.ingest_roots"), "{e}");
        }
        let e = admit(&JobInput::File(root.clone()), &roots).unwrap_err();
        assert!(matches!(e, IngestRefused::NotAFile { .. }), "{e}");
        let e = admit(&JobInput::File(root.join("gone.mp4")), &roots).unwrap_err();
        assert!(matches!(e, IngestRefused::Unreadable { .. }), "{e}");
    }

    #[test]
    fn urls_need_http_and_a_host() {
        admit(&JobInput::Url("https://example.org/a.mp4".into()), &[]).unwrap();
        assert!(admit(&JobInput::Url("http://".into()), &[]).is_err());
    }
}
