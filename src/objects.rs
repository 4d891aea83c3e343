//! The media objects of a station — renditions, posters, generated clips and HLS segments — behind one
//! [`ObjectStore`]: the data folder itself on one box (`LocalFileSystem`), an S3-compatible service when nodes share
//! the station (`storage.object_url = "s3://bucket/prefix"`).
//!
//! A media file's key is its path relative to `data_dir` (`assets/…/720p.ts`), so every node keeps its local copy at
//! the same place under its own data folder: a node makes a file locally, [`Objects::upload`]s it (multipart when
//! large), and any other node [`Objects::fetch`]es it before it needs it. On one box the file already is the object
//! and both calls are no-ops. Segments are different: they are written once under keys that carry the lease epoch
//! ([`segment_key`]), with `PutMode::Create` and cache headers a CDN honours, so a zombie's upload can never replace
//! what the channel's new holder published.

use crate::config::StorageConfig;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::local::LocalFileSystem;
use object_store::path::Path as Key;
use object_store::prefix::PrefixStore;
use object_store::{Attribute, Attributes, ObjectStore, PutMode, PutOptions, PutPayload, WriteMultipart};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Files above this go up in parts (S3's minimum part is 5 MiB).
const MULTIPART_FROM: u64 = 16 * 1024 * 1024;
const PART: usize = 8 * 1024 * 1024;
/// Segment objects never change: a CDN (and the S3 service's own cache) may keep them for a day.
pub const SEGMENT_CACHE_CONTROL: &str = "public, max-age=86400, immutable";

#[derive(Debug, thiserror::Error)]
pub enum ObjectsError {
    #[error("storage.object_url {url}: {reason}")]
    Config { url: String, reason: String },
    #[error("{} is not under data_dir {}: it has no object key", path.display(), root.display())]
    Outside { path: PathBuf, root: PathBuf },
    #[error("object {key}: {source}")]
    Store { key: String, source: object_store::Error },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

impl ObjectsError {
    /// The object does not exist (as opposed to a store that did not answer).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ObjectsError::Store { source: object_store::Error::NotFound { .. }, .. })
    }
}

/// The station's object store and this node's data folder.
#[derive(Debug, Clone)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    /// This node's data folder (absolute): local copies live here, at their key.
    root: PathBuf,
    /// False on one box: the data folder is the object store.
    shared: bool,
    /// What the store is, for messages (`s3://bucket/prefix` or the folder).
    url: String,
}

/// The key of segment `seq` of a channel's rung, as published in lease epoch `epoch`. Never reused: a new holder
/// publishes under its own epoch.
pub fn segment_key(channel: &str, rung: &str, epoch: i64, seq: u64) -> String {
    format!("hls/{channel}/{rung}/e{epoch}/seg{seq:08}.ts")
}

impl Objects {
    /// The object store `storage` names. The data folder is created if missing.
    pub fn open(storage: &StorageConfig) -> Result<Objects, ObjectsError> {
        let root = &storage.data_dir;
        std::fs::create_dir_all(root).map_err(|source| ObjectsError::Io { path: root.clone(), source })?;
        let root = std::fs::canonicalize(root).map_err(|source| ObjectsError::Io { path: root.clone(), source })?;
        if storage.object_url.is_empty() {
            let local = LocalFileSystem::new_with_prefix(&root)
                .map_err(|e| ObjectsError::Config { url: root.display().to_string(), reason: e.to_string() })?;
            let url = root.display().to_string();
            return Ok(Objects { store: Arc::new(local), root, shared: false, url });
        }
        let url = storage.object_url.clone();
        let config_err = |reason: String| ObjectsError::Config { url: url.clone(), reason };
        let rest = url.strip_prefix("s3://").ok_or_else(|| config_err("must start with s3://".into()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let s3 = &storage.s3;
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_region(&s3.region)
            .with_allow_http(s3.allow_http)
            .with_virtual_hosted_style_request(false)
            .with_conditional_put(S3ConditionalPut::ETagMatch);
        if !s3.endpoint.is_empty() {
            builder = builder.with_endpoint(&s3.endpoint);
        }
        if !s3.access_key_id.is_empty() {
            builder = builder.with_access_key_id(&s3.access_key_id).with_secret_access_key(&s3.secret_access_key);
        }
        let s3store = builder.build().map_err(|e| config_err(e.to_string()))?;
        let store: Arc<dyn ObjectStore> = match prefix.trim_matches('/') {
            "" => Arc::new(s3store),
            p => Arc::new(PrefixStore::new(s3store, p)),
        };
        Ok(Objects { store, root, shared: true, url })
    }

    /// True when nodes share the store (S3): files must be uploaded and fetched.
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// This node's data folder (absolute).
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn key_of(&self, local: &Path) -> Result<Key, ObjectsError> {
        let outside = || ObjectsError::Outside { path: local.to_owned(), root: self.root.clone() };
        let relative = local.strip_prefix(&self.root).map_err(|_| outside())?;
        Ok(Key::from_iter(relative.iter().map(|c| c.to_string_lossy().into_owned())))
    }

    /// Makes the local file `local` (under the data folder) an object other nodes can fetch. Large files go up in
    /// parts. A no-op on one box.
    pub async fn upload(&self, local: &Path) -> Result<(), ObjectsError> {
        if !self.shared {
            return Ok(());
        }
        let key = self.key_of(local)?;
        let io = |source| ObjectsError::Io { path: local.to_owned(), source };
        let store_err = |source| ObjectsError::Store { key: key.to_string(), source };
        let size = tokio::fs::metadata(local).await.map_err(io)?.len();
        if size < MULTIPART_FROM {
            let bytes = tokio::fs::read(local).await.map_err(io)?;
            self.store.put(&key, PutPayload::from(bytes)).await.map_err(store_err)?;
            return Ok(());
        }
        let upload = self.store.put_multipart(&key).await.map_err(store_err)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
        let mut file = tokio::fs::File::open(local).await.map_err(io)?;
        let mut buf = vec![0u8; PART];
        loop {
            let n = tokio::io::AsyncReadExt::read(&mut file, &mut buf).await.map_err(io)?;
            if n == 0 {
                break;
            }
            writer.wait_for_capacity(4).await.map_err(store_err)?;
            writer.write(&buf[..n]);
        }
        writer.finish().await.map_err(store_err)?;
        Ok(())
    }

    /// Uploads every file of a folder under the data folder (an asset's renditions and posters).
    pub async fn upload_dir(&self, dir: &Path) -> Result<usize, ObjectsError> {
        if !self.shared {
            return Ok(0);
        }
        let io = |source| ObjectsError::Io { path: dir.to_owned(), source };
        let mut entries = tokio::fs::read_dir(dir).await.map_err(io)?;
        let mut n = 0;
        while let Some(entry) = entries.next_entry().await.map_err(io)? {
            let path = entry.path();
            let hidden = path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if !hidden && entry.file_type().await.map_err(io)?.is_file() {
                self.upload(&path).await?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Makes sure `local` exists on this node, downloading its object when it does not (written to a temp file and
    /// renamed, so a reader never sees half of it). Returns true when it was downloaded. On one box a missing file
    /// stays missing (false).
    pub async fn fetch(&self, local: &Path) -> Result<bool, ObjectsError> {
        if !self.shared || tokio::fs::try_exists(local).await.unwrap_or(false) {
            return Ok(false);
        }
        let key = self.key_of(local)?;
        let io = |source| ObjectsError::Io { path: local.to_owned(), source };
        let store_err = |source| ObjectsError::Store { key: key.to_string(), source };
        if let Some(parent) = local.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(io)?;
        }
        // Unique per download: two readers fetching the same file at once each write their own and rename it.
        static DOWNLOADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = DOWNLOADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = local.with_file_name(format!(
            ".{}.{}-{n}.part",
            local.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            std::process::id()
        ));
        let mut stream = self.store.get(&key).await.map_err(store_err)?.into_stream();
        let mut out = tokio::fs::File::create(&tmp).await.map_err(io)?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(store_err)?;
            tokio::io::AsyncWriteExt::write_all(&mut out, &chunk).await.map_err(io)?;
        }
        tokio::io::AsyncWriteExt::flush(&mut out).await.map_err(io)?;
        drop(out);
        tokio::fs::rename(&tmp, local).await.map_err(io)?;
        Ok(true)
    }

    /// Writes a segment once under `key` with cache headers; a second write of the same key (a retry by the same
    /// holder) is accepted, nothing is ever overwritten.
    pub async fn put_segment(&self, key: &str, bytes: Bytes) -> Result<(), ObjectsError> {
        let k = Key::from(key);
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::CacheControl, SEGMENT_CACHE_CONTROL.into());
        attributes.insert(Attribute::ContentType, "video/mp2t".into());
        let options = PutOptions { mode: PutMode::Create, attributes, ..Default::default() };
        match self.store.put_opts(&k, PutPayload::from(bytes), options).await {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(source) => Err(ObjectsError::Store { key: key.into(), source }),
        }
    }

    /// The whole object `key`.
    pub async fn get(&self, key: &str) -> Result<Bytes, ObjectsError> {
        let store_err = |source| ObjectsError::Store { key: key.into(), source };
        let k = Key::from(key);
        self.store.get(&k).await.map_err(store_err)?.bytes().await.map_err(store_err)
    }

    /// Deletes the objects of a folder under the data folder (an evicted asset); returns how many. A no-op on one
    /// box, where deleting the folder deletes them.
    pub async fn remove_dir(&self, local_dir: &Path) -> Result<usize, ObjectsError> {
        if !self.shared {
            return Ok(0);
        }
        let prefix = self.key_of(local_dir)?;
        let store_err = |source| ObjectsError::Store { key: prefix.to_string(), source };
        let keys: Vec<Key> =
            self.store.list(Some(&prefix)).map_ok(|m| m.location).try_collect().await.map_err(store_err)?;
        for key in &keys {
            self.delete(key.as_ref()).await?;
        }
        Ok(keys.len())
    }

    /// Deletes `key`; a missing object is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), ObjectsError> {
        match self.store.delete(&Key::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(ObjectsError::Store { key: key.into(), source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::S3Config;
    use vvtv_testkit::seaweed::Seaweed;

    fn storage(data: &Path, weed: &Seaweed) -> StorageConfig {
        StorageConfig {
            data_dir: data.to_owned(),
            database_url: "postgres://unused".into(),
            object_url: "s3://media/station".into(),
            s3: S3Config {
                endpoint: weed.endpoint(),
                region: weed.region().into(),
                access_key_id: weed.access_key().into(),
                secret_access_key: weed.secret_key().into(),
                allow_http: true,
            },
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_file_one_node_uploads_is_fetched_whole_by_another() {
        let tmp = tempfile::tempdir().unwrap();
        let weed = tokio::task::spawn_blocking({
            let dir = tmp.path().join("weed");
            move || Seaweed::start(&dir)
        })
        .await
        .unwrap();
        weed.create_bucket("media");
        let a = Objects::open(&storage(&tmp.path().join("a"), &weed)).unwrap();
        let b = Objects::open(&storage(&tmp.path().join("b"), &weed)).unwrap();
        assert!(a.is_shared());
        // One small file and one that goes up in parts.
        let dir = a.root().join("assets").join("x");
        std::fs::create_dir_all(&dir).unwrap();
        let small: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let large: Vec<u8> = (0..(MULTIPART_FROM as u32 + 3_000_000)).map(|i| (i % 253) as u8).collect();
        std::fs::write(dir.join("small.mp4"), &small).unwrap();
        std::fs::write(dir.join("large.mp4"), &large).unwrap();
        std::fs::write(dir.join(".hidden.part"), b"x").unwrap();
        assert_eq!(a.upload_dir(&dir).await.unwrap(), 2, "hidden temp files stay local");
        let there = b.root().join("assets").join("x");
        for (name, bytes) in [("small.mp4", &small), ("large.mp4", &large)] {
            let local = there.join(name);
            assert!(b.fetch(&local).await.unwrap(), "{name} downloaded");
            assert_eq!(&std::fs::read(&local).unwrap(), bytes, "{name} arrives whole");
            assert!(!b.fetch(&local).await.unwrap(), "{name} is fetched once");
        }
        // Two readers fetching the same file at once both end with it whole.
        let again = there.join("again").join("small.mp4");
        std::fs::create_dir_all(a.root().join("assets/x/again")).unwrap();
        std::fs::write(a.root().join("assets/x/again/small.mp4"), &small).unwrap();
        a.upload(&a.root().join("assets/x/again/small.mp4")).await.unwrap();
        let (x, y) = tokio::join!(b.fetch(&again), b.fetch(&again));
        assert!(x.is_ok() && y.is_ok(), "{x:?} {y:?}");
        assert_eq!(std::fs::read(&again).unwrap(), small);
        // An evicted asset's objects go with it.
        assert_eq!(a.remove_dir(&dir).await.unwrap(), 3);
        assert!(b.get("assets/x/small.mp4").await.is_err());
        let err = b.fetch(&there.join("missing.mp4")).await.unwrap_err().to_string();
        assert!(err.contains("assets/x/missing.mp4"), "{err}");
        let outside = b.fetch(&tmp.path().join("elsewhere.mp4")).await.unwrap_err().to_string();
        assert!(outside.contains("not under data_dir"), "{outside}");

        // Segments: written once under their epoch's key; a retry is accepted and changes nothing.
        let key = segment_key("main", "720p", 3, 42);
        assert_eq!(key, "hls/main/720p/e3/seg00000042.ts");
        a.put_segment(&key, Bytes::from_static(b"first")).await.unwrap();
        a.put_segment(&key, Bytes::from_static(b"second")).await.unwrap();
        assert_eq!(&b.get(&key).await.unwrap()[..], b"first", "a segment object is never overwritten");
        let head = weed.request("HEAD", &format!("/media/station/{key}"), b"");
        assert_eq!(head.status, 200);
        a.delete(&key).await.unwrap();
        a.delete(&key).await.unwrap();
        assert!(b.get(&key).await.is_err());
    }

    #[test]
    fn one_box_keeps_media_in_the_data_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let local = Objects::open(&StorageConfig { data_dir: tmp.path().join("d"), ..Default::default() }).unwrap();
        assert!(!local.is_shared());
        let rt = tokio::runtime::Runtime::new().unwrap();
        let missing = local.root().join("assets").join("a.mp4");
        assert!(!rt.block_on(local.fetch(&missing)).unwrap(), "nothing to fetch from");
        rt.block_on(local.upload(&missing)).expect("a no-op on one box");
    }
}
