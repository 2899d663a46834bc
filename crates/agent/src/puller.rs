//! The model puller: fetches a `storageUri` into a local model directory.
//!
//! Remote objects are downloaded into a shared cache (`<cache>/entries/<key>/`), keyed by a
//! SHA-256 of the URI and of the store's listing (every object's path, size and ETag), so an
//! unchanged model is downloaded once per machine and a changed one gets a new entry. A
//! download is written under `<cache>/tmp/`, verified (size always; MD5 where the store's
//! ETag is one) and renamed into place only when complete; the model directory is then
//! populated from the cache (hard links, or copies across file systems) in a hidden staging
//! directory next to it and renamed into place. So a crash or a failed download never leaves
//! a partial model where a server would load it.
//!
//! Concurrent pulls of one entry coalesce: within a process through an async mutex per key,
//! across processes (replicas sharing the cache) through an advisory file lock. When the
//! cache grows past its limit, the least recently used entries that no pull holds are
//! evicted.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use futures::{StreamExt, TryStreamExt};
// md-5 0.11 (the version object_store uses) implements the newer `digest` traits, sha2 0.10
// the older ones: both are in scope, and each type finds its own.
use md5::{Digest as _, Md5};
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::progress::{Progress, ProgressCallback, ProgressMode};
use crate::storage::{ArchiveKind, StorageUri, StoreOptions};
use crate::{Error, Result};

const MANIFEST: &str = "manifest.json";
const CONTENT: &str = "content";
/// Objects downloaded at once for a multi-file model.
const PARALLEL_DOWNLOADS: usize = 4;

/// How a [`Puller`] works.
#[derive(Clone)]
pub struct PullerConfig {
    /// The shared cache directory.
    pub cache_dir: PathBuf,
    /// Evict least recently used entries when the cache is larger than this.
    pub cache_limit_bytes: u64,
    /// Where `pvc://` claims are mounted.
    pub pvc_root: PathBuf,
    /// How remote stores are opened.
    pub store: StoreOptions,
    /// How progress is shown.
    pub progress: ProgressMode,
    /// Called as bytes arrive.
    pub on_progress: Option<ProgressCallback>,
}

impl std::fmt::Debug for PullerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullerConfig")
            .field("cache_dir", &self.cache_dir)
            .field("cache_limit_bytes", &self.cache_limit_bytes)
            .field("pvc_root", &self.pvc_root)
            .finish_non_exhaustive()
    }
}

impl PullerConfig {
    /// Defaults: no cache limit, PVCs under `/mnt/pvc`, progress on stderr.
    pub fn new(cache_dir: impl Into<PathBuf>) -> PullerConfig {
        PullerConfig {
            cache_dir: cache_dir.into(),
            cache_limit_bytes: u64::MAX,
            pvc_root: PathBuf::from("/mnt/pvc"),
            store: StoreOptions::default(),
            progress: ProgressMode::Auto,
            on_progress: None,
        }
    }

    /// The default cache directory: `$OXSERVE_CACHE_DIR`, else `$XDG_CACHE_HOME/oxserve/models`,
    /// else `~/.cache/oxserve/models`, else a directory under the system temp dir.
    pub fn default_cache_dir() -> PathBuf {
        if let Some(d) = std::env::var_os("OXSERVE_CACHE_DIR") {
            return PathBuf::from(d);
        }
        if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
            return PathBuf::from(d).join("oxserve/models");
        }
        if let Some(h) = std::env::var_os("HOME") {
            return PathBuf::from(h).join(".cache/oxserve/models");
        }
        std::env::temp_dir().join("oxserve-models")
    }
}

/// What a pull did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullOutcome {
    /// Files in the model directory.
    pub files: usize,
    /// Their total size.
    pub bytes: u64,
    /// True when nothing was downloaded (the cache had the entry).
    pub cache_hit: bool,
}

/// Fetches models into local directories through the shared cache. Cheap to share behind an
/// `Arc`; concurrent pulls of one URI coalesce.
pub struct Puller {
    config: PullerConfig,
    inflight: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for Puller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Puller").field("config", &self.config).finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
struct RemoteObject {
    location: ObjectPath,
    rel: PathBuf,
    size: u64,
    e_tag: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    uri: String,
    bytes: u64,
    files: Vec<ManifestFile>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ManifestFile {
    path: String,
    size: u64,
    sha256: String,
}

/// Holds an entry: the in-process mutex and the cross-process file lock.
struct EntryGuard {
    _local: tokio::sync::OwnedMutexGuard<()>,
    _file: File,
}

static UNIQUE: AtomicU64 = AtomicU64::new(0);

fn unique_suffix() -> String {
    format!("{}.{}", std::process::id(), UNIQUE.fetch_add(1, Ordering::Relaxed))
}

impl Puller {
    /// Opens (creating) the cache and removes downloads that a crashed pull left behind.
    pub fn new(config: PullerConfig) -> Result<Puller> {
        for sub in ["entries", "tmp", "locks"] {
            let d = config.cache_dir.join(sub);
            std::fs::create_dir_all(&d).map_err(Error::io(&d))?;
        }
        let puller = Puller { config, inflight: Default::default() };
        puller.remove_stale_downloads();
        Ok(puller)
    }

    /// The configuration.
    pub fn config(&self) -> &PullerConfig {
        &self.config
    }

    /// Fetches `uri` into the directory `dest`, which appears complete or not at all; an
    /// existing `dest` is replaced.
    pub async fn pull(&self, uri: &str, dest: &Path) -> Result<PullOutcome> {
        let parsed = StorageUri::parse(uri, &self.config.pvc_root)?;
        if let StorageUri::Local { path } = &parsed {
            let (path, dest) = (path.clone(), dest.to_owned());
            return blocking(move || pull_local(&path, &dest)).await;
        }
        let opened = self.config.store.open(&parsed, uri)?;
        let objects = list(&*opened.store, &opened.path, &parsed, uri).await?;
        let key = cache_key(uri, &objects);
        let guard = self.lock_entry(&key).await?;
        let entry = self.config.cache_dir.join("entries").join(&key);
        let cache_hit = entry.join(MANIFEST).is_file();
        if cache_hit {
            tracing::info!(uri, key = %key, "cache hit");
        } else {
            self.download(uri, &parsed, opened.store, &objects, &key, &entry).await?;
        }
        let (entry2, dest2) = (entry.clone(), dest.to_owned());
        let outcome = blocking(move || {
            let manifest = touch_and_read(&entry2)?;
            let staging = staging_dir(&dest2)?;
            let result =
                link_tree(&entry2.join(CONTENT), &staging).and_then(|()| publish(&staging, &dest2));
            if result.is_err() {
                let _ = std::fs::remove_dir_all(&staging);
            }
            result.map(|()| PullOutcome {
                files: manifest.files.len(),
                bytes: manifest.bytes,
                cache_hit,
            })
        })
        .await?;
        drop(guard);
        self.evict(&key).await;
        Ok(outcome)
    }

    async fn lock_entry(&self, key: &str) -> Result<EntryGuard> {
        let mutex = {
            let mut map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            map.retain(|_, m| Arc::strong_count(m) > 1);
            map.entry(key.to_owned()).or_default().clone()
        };
        let local = mutex.lock_owned().await;
        let path = self.lock_path(key);
        let file = blocking(move || {
            let f = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(Error::io(&path))?;
            f.lock().map_err(Error::io(&path))?;
            Ok(f)
        })
        .await?;
        Ok(EntryGuard { _local: local, _file: file })
    }

    fn lock_path(&self, key: &str) -> PathBuf {
        self.config.cache_dir.join("locks").join(format!("{key}.lock"))
    }

    /// Try-locks `key` without waiting: `Some(file)` when no pull holds it.
    fn try_lock(&self, key: &str) -> Option<File> {
        let path = self.lock_path(key);
        let f = File::options().create(true).truncate(false).write(true).open(path).ok()?;
        f.try_lock().ok()?;
        Some(f)
    }

    fn remove_stale_downloads(&self) {
        let tmp = self.config.cache_dir.join("tmp");
        let Ok(dir) = std::fs::read_dir(&tmp) else { return };
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let key = name.split('.').next().unwrap_or_default();
            if let Some(_lock) = self.try_lock(key) {
                tracing::info!(path = %e.path().display(), "removing an unfinished download");
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    async fn download(
        &self,
        uri: &str,
        parsed: &StorageUri,
        store: Arc<dyn ObjectStore>,
        objects: &[RemoteObject],
        key: &str,
        entry: &Path,
    ) -> Result<()> {
        let tmp = self.config.cache_dir.join("tmp").join(format!("{key}.{}", unique_suffix()));
        let content = tmp.join(CONTENT);
        tokio::fs::create_dir_all(&content).await.map_err(Error::io(&content))?;
        let total = objects.iter().map(|o| o.size).sum();
        let progress = Arc::new(Progress::new(
            uri,
            total,
            self.config.progress,
            self.config.on_progress.clone(),
        ));
        let result = async {
            let check_md5 = parsed.etag_is_md5();
            let use_if_match = !matches!(parsed, StorageUri::Http { .. });
            let mut files: Vec<ManifestFile> = futures::stream::iter(objects.iter().cloned())
                .map(|o| {
                    let (store, content, progress) =
                        (store.clone(), content.clone(), progress.clone());
                    async move {
                        fetch_object(&*store, uri, &o, &content, &progress, check_md5, use_if_match)
                            .await
                    }
                })
                .buffer_unordered(PARALLEL_DOWNLOADS)
                .try_collect()
                .await?;
            // A single archive object is unpacked in place of itself.
            if let [only] = objects
                && let Some(kind) = ArchiveKind::from_name(&only.rel.to_string_lossy())
            {
                let archive = content.join(&only.rel);
                let content2 = content.clone();
                files = blocking(move || {
                    let unpacked = content2.with_file_name("unpacked");
                    std::fs::create_dir(&unpacked).map_err(Error::io(&unpacked))?;
                    crate::archive::extract(&archive, kind, &unpacked)?;
                    std::fs::remove_dir_all(&content2).map_err(Error::io(&content2))?;
                    std::fs::rename(&unpacked, &content2).map_err(Error::io(&content2))?;
                    hash_tree(&content2)
                })
                .await?;
            }
            files.sort_by(|a, b| a.path.cmp(&b.path));
            let manifest =
                Manifest { uri: uri.to_owned(), bytes: files.iter().map(|f| f.size).sum(), files };
            let json =
                serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Invalid(e.to_string()))?;
            let mpath = tmp.join(MANIFEST);
            tokio::fs::write(&mpath, json).await.map_err(Error::io(&mpath))?;
            let (tmp2, entry2) = (tmp.clone(), entry.to_owned());
            blocking(move || {
                sync_tree(&tmp2)?;
                if entry2.exists() {
                    // A manifest-less leftover from an interrupted rename: replace it.
                    std::fs::remove_dir_all(&entry2).map_err(Error::io(&entry2))?;
                }
                std::fs::rename(&tmp2, &entry2).map_err(Error::io(&entry2))
            })
            .await
        }
        .await;
        progress.finish(result.is_ok());
        if result.is_err() {
            let _ = tokio::fs::remove_dir_all(&tmp).await;
        }
        result
    }

    /// Removes least recently used entries, other than `keep` and those some pull holds,
    /// until the cache fits its limit.
    async fn evict(&self, keep: &str) {
        if self.config.cache_limit_bytes == u64::MAX {
            return;
        }
        let entries_dir = self.config.cache_dir.join("entries");
        let Ok(dir) = std::fs::read_dir(&entries_dir) else { return };
        let mut entries: Vec<(SystemTime, u64, String)> = Vec::new();
        for e in dir.flatten() {
            let key = e.file_name().to_string_lossy().into_owned();
            let mpath = e.path().join(MANIFEST);
            let Ok(meta) = std::fs::metadata(&mpath) else { continue };
            let Ok(manifest) = std::fs::read(&mpath)
                .map_err(|_| ())
                .and_then(|b| serde_json::from_slice::<Manifest>(&b).map_err(|_| ()))
            else {
                continue;
            };
            entries.push((meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), manifest.bytes, key));
        }
        let mut total: u64 = entries.iter().map(|e| e.1).sum();
        entries.sort();
        for (_, bytes, key) in entries {
            if total <= self.config.cache_limit_bytes {
                break;
            }
            if key == keep {
                continue;
            }
            let Some(_lock) = self.try_lock(&key) else { continue };
            let path = entries_dir.join(&key);
            if std::fs::remove_dir_all(&path).is_ok() {
                tracing::info!(key = %key, bytes, "evicted from the model cache");
                total = total.saturating_sub(bytes);
            }
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Invalid(format!("blocking task failed: {e}")))?
}

async fn list(
    store: &dyn ObjectStore,
    path: &ObjectPath,
    parsed: &StorageUri,
    uri: &str,
) -> Result<Vec<RemoteObject>> {
    let store_err = |source| Error::Store { uri: uri.to_owned(), source };
    let single = |meta: object_store::ObjectMeta| -> Result<Vec<RemoteObject>> {
        let name = meta.location.filename().unwrap_or("model").to_owned();
        Ok(vec![RemoteObject {
            rel: PathBuf::from(name),
            location: meta.location,
            size: meta.size,
            e_tag: meta.e_tag,
        }])
    };
    if matches!(parsed, StorageUri::Http { .. }) {
        return store.head(path).await.map_err(store_err).and_then(single);
    }
    let prefix = if path.as_ref().is_empty() { None } else { Some(path) };
    let listed: Vec<_> = store.list(prefix).try_collect().await.map_err(store_err)?;
    let mut objects = Vec::with_capacity(listed.len());
    for meta in listed {
        let rel_str = match prefix {
            Some(p) => meta
                .location
                .prefix_match(p)
                .map(|parts| parts.map(|p| p.as_ref().to_owned()).collect::<Vec<_>>().join("/")),
            None => Some(meta.location.as_ref().to_owned()),
        };
        // Directory markers (`key/`) carry no data.
        let Some(rel_str) = rel_str.filter(|r| !r.is_empty()) else { continue };
        let rel = crate::storage::safe_relative(&rel_str).ok_or_else(|| Error::Verify {
            uri: uri.to_owned(),
            location: meta.location.to_string(),
            reason: "unsafe object name".into(),
        })?;
        objects.push(RemoteObject {
            location: meta.location,
            rel,
            size: meta.size,
            e_tag: meta.e_tag,
        });
    }
    if !objects.is_empty() {
        return Ok(objects);
    }
    match store.head(path).await {
        Ok(meta) => single(meta),
        Err(object_store::Error::NotFound { .. }) => Err(Error::NotFound { uri: uri.to_owned() }),
        Err(e) => Err(store_err(e)),
    }
}

fn cache_key(uri: &str, objects: &[RemoteObject]) -> String {
    let mut sorted: Vec<&RemoteObject> = objects.iter().collect();
    sorted.sort_by(|a, b| a.rel.cmp(&b.rel));
    let mut h = Sha256::new();
    h.update(b"oxserve-cache-v1\n");
    h.update(uri.as_bytes());
    h.update(b"\n");
    for o in sorted {
        h.update(o.rel.to_string_lossy().as_bytes());
        h.update(format!("\t{}\t{}\n", o.size, o.e_tag.as_deref().unwrap_or("")).as_bytes());
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The MD5 an ETag states: a quoted 32-hex-digit value (multipart ETags have a `-N` suffix).
fn etag_md5(etag: &str) -> Option<String> {
    let t = etag.trim_start_matches("W/").trim_matches('"');
    (t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit())).then(|| t.to_ascii_lowercase())
}

async fn fetch_object(
    store: &dyn ObjectStore,
    uri: &str,
    o: &RemoteObject,
    content: &Path,
    progress: &Progress,
    check_md5: bool,
    use_if_match: bool,
) -> Result<ManifestFile> {
    let store_err = |source| Error::Store { uri: uri.to_owned(), source };
    let verify = |reason: String| Error::Verify {
        uri: uri.to_owned(),
        location: o.location.to_string(),
        reason,
    };
    let target = content.join(&o.rel);
    if let Some(parent) = target.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(Error::io(parent))?;
    }
    let options = GetOptions {
        if_match: if use_if_match { o.e_tag.clone() } else { None },
        ..Default::default()
    };
    let result = store.get_opts(&o.location, options).await.map_err(store_err)?;
    if result.meta.size != o.size {
        return Err(verify(format!(
            "object changed while pulling: listed {} bytes, now {}",
            o.size, result.meta.size
        )));
    }
    let mut file = tokio::fs::File::create(&target).await.map_err(Error::io(&target))?;
    let mut stream = result.into_stream();
    let (mut sha, mut md5, mut written) = (Sha256::new(), Md5::new(), 0u64);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(store_err)?;
        sha.update(&chunk);
        if check_md5 {
            md5.update(&chunk);
        }
        file.write_all(&chunk).await.map_err(Error::io(&target))?;
        written += chunk.len() as u64;
        progress.advance(chunk.len() as u64);
    }
    file.flush().await.map_err(Error::io(&target))?;
    if written != o.size {
        return Err(verify(format!("expected {} bytes, received {written}", o.size)));
    }
    if check_md5 && let Some(expected) = o.e_tag.as_deref().and_then(etag_md5) {
        let got = hex(&md5.finalize());
        if got != expected {
            return Err(verify(format!("md5 {got} does not match the store's {expected}")));
        }
    }
    Ok(ManifestFile {
        path: o.rel.to_string_lossy().into_owned(),
        size: written,
        sha256: hex(&sha.finalize()),
    })
}

fn hash_tree(root: &Path) -> Result<Vec<ManifestFile>> {
    let mut out = Vec::new();
    walk(root, &mut |path, rel| {
        let mut f = File::open(path).map_err(Error::io(path))?;
        let mut h = Sha256::new();
        let size = std::io::copy(&mut f, &mut h).map_err(Error::io(path))?;
        out.push(ManifestFile {
            path: rel.to_string_lossy().into_owned(),
            size,
            sha256: hex(&h.finalize()),
        });
        Ok(())
    })?;
    Ok(out)
}

/// Calls `f(path, relative_path)` for every regular file under `root`.
fn walk(root: &Path, f: &mut dyn FnMut(&Path, &Path) -> Result<()>) -> Result<()> {
    fn go(root: &Path, dir: &Path, f: &mut dyn FnMut(&Path, &Path) -> Result<()>) -> Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(Error::io(dir))?
            .collect::<Result<_, _>>()
            .map_err(Error::io(dir))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let ft = e.file_type().map_err(Error::io(&path))?;
            if ft.is_dir() {
                go(root, &path, f)?;
            } else if ft.is_file() {
                let rel = path.strip_prefix(root).unwrap_or(&path).to_owned();
                f(&path, &rel)?;
            }
        }
        Ok(())
    }
    go(root, root, f)
}

fn sync_tree(root: &Path) -> Result<()> {
    walk(root, &mut |path, _| File::open(path).and_then(|f| f.sync_all()).map_err(Error::io(path)))
}

fn touch_and_read(entry: &Path) -> Result<Manifest> {
    let mpath = entry.join(MANIFEST);
    let bytes = std::fs::read(&mpath).map_err(Error::io(&mpath))?;
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Config { path: mpath.clone(), reason: e.to_string() })?;
    // The manifest's mtime is the entry's last use, for LRU eviction.
    if let Ok(f) = File::options().write(true).open(&mpath) {
        let _ = f.set_modified(SystemTime::now());
    }
    Ok(manifest)
}

/// A fresh hidden directory next to `dest`, on the same file system so the final rename is
/// atomic. Leftovers of earlier crashed pulls into `dest` are removed first.
fn staging_dir(dest: &Path) -> Result<PathBuf> {
    let name = dest
        .file_name()
        .ok_or_else(|| Error::Invalid(format!("destination {} has no name", dest.display())))?;
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(Error::io(&parent))?;
    let stem = format!(".{}.oxserve-", name.to_string_lossy());
    if let Ok(dir) = std::fs::read_dir(&parent) {
        for e in dir.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            // Only leftovers of dead processes: our own pid's in-flight ones are skipped.
            if let Some(rest) = n.strip_prefix(&stem)
                && let Some(pid) = rest.split('.').nth(1).and_then(|p| p.parse::<u32>().ok())
                && pid != std::process::id()
                && !Path::new(&format!("/proc/{pid}")).exists()
            {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let staging = parent.join(format!("{stem}partial.{}", unique_suffix()));
    std::fs::create_dir(&staging).map_err(Error::io(&staging))?;
    Ok(staging)
}

/// Hard-links (or copies, across file systems) every file of `src` into `dst`.
fn link_tree(src: &Path, dst: &Path) -> Result<()> {
    walk(src, &mut |path, rel| {
        let target = dst.join(rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(Error::io(parent))?;
        }
        if std::fs::hard_link(path, &target).is_err() {
            std::fs::copy(path, &target).map_err(Error::io(&target))?;
        }
        Ok(())
    })
}

/// Renames the complete `staging` directory to `dest`, replacing what was there.
fn publish(staging: &Path, dest: &Path) -> Result<()> {
    if let Ok(meta) = std::fs::symlink_metadata(dest) {
        let empty_dir = meta.is_dir()
            && std::fs::read_dir(dest).map(|mut d| d.next().is_none()).unwrap_or(false);
        if empty_dir {
            std::fs::remove_dir(dest).map_err(Error::io(dest))?;
        } else {
            let old = staging.with_file_name(format!(
                ".{}.oxserve-old.{}",
                dest.file_name().unwrap_or_default().to_string_lossy(),
                unique_suffix()
            ));
            std::fs::rename(dest, &old).map_err(Error::io(dest))?;
            let r = std::fs::rename(staging, dest).map_err(Error::io(dest));
            if r.is_err() {
                let _ = std::fs::rename(&old, dest);
            } else if meta.is_dir() {
                let _ = std::fs::remove_dir_all(&old);
            } else {
                let _ = std::fs::remove_file(&old);
            }
            return r;
        }
    }
    std::fs::rename(staging, dest).map_err(Error::io(dest))
}

/// Copies a local file or directory into `dest` (staged, verified by size, renamed).
fn pull_local(src: &Path, dest: &Path) -> Result<PullOutcome> {
    let meta = std::fs::metadata(src).map_err(Error::io(src))?;
    let staging = staging_dir(dest)?;
    let result = (|| {
        let mut files = 0;
        let mut bytes = 0;
        let mut copy = |from: &Path, to: &Path| -> Result<()> {
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).map_err(Error::io(parent))?;
            }
            let expected = std::fs::metadata(from).map_err(Error::io(from))?.len();
            let n = std::fs::copy(from, to).map_err(Error::io(to))?;
            if n != expected {
                return Err(Error::Verify {
                    uri: src.display().to_string(),
                    location: from.display().to_string(),
                    reason: format!("expected {expected} bytes, copied {n}"),
                });
            }
            files += 1;
            bytes += n;
            Ok(())
        };
        if meta.is_dir() {
            walk(src, &mut |path, rel| copy(path, &staging.join(rel)))?;
        } else {
            let name = src
                .file_name()
                .ok_or_else(|| Error::Invalid(format!("{} has no file name", src.display())))?;
            copy(src, &staging.join(name))?;
        }
        sync_tree(&staging)?;
        publish(&staging, dest)?;
        Ok(PullOutcome { files, bytes, cache_hit: false })
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_md5_only_for_single_part_etags() {
        assert_eq!(
            etag_md5("\"9E107D9D372BB6826BD81D3542A419D6\"").as_deref(),
            Some("9e107d9d372bb6826bd81d3542a419d6")
        );
        assert_eq!(etag_md5("\"9e107d9d372bb6826bd81d3542a419d6-2\""), None);
        assert_eq!(etag_md5("0x8DB1234"), None);
    }

    #[test]
    fn cache_key_changes_with_content_identity() {
        let o = |size, tag: &str| RemoteObject {
            location: ObjectPath::from("m/a"),
            rel: "a".into(),
            size,
            e_tag: Some(tag.into()),
        };
        let k1 = cache_key("s3://b/m", &[o(1, "x")]);
        assert_eq!(k1, cache_key("s3://b/m", &[o(1, "x")]));
        assert_ne!(k1, cache_key("s3://b/m", &[o(2, "x")]));
        assert_ne!(k1, cache_key("s3://b/m", &[o(1, "y")]));
        assert_ne!(k1, cache_key("s3://b/n", &[o(1, "x")]));
        assert_eq!(k1.len(), 64);
    }

    #[tokio::test]
    async fn local_pull_copies_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("1")).unwrap();
        std::fs::write(src.join("1/model.onnx"), b"abcd").unwrap();
        std::fs::write(src.join("settings.json"), b"{}").unwrap();
        let puller = Puller::new(PullerConfig::new(dir.path().join("cache"))).unwrap();
        let dest = dir.path().join("models/m");
        std::fs::create_dir_all(&dest).unwrap();
        std::fs::write(dest.join("stale"), b"old").unwrap();
        let out = puller.pull(&format!("file://{}", src.display()), &dest).await.unwrap();
        assert_eq!(out, PullOutcome { files: 2, bytes: 6, cache_hit: false });
        assert_eq!(std::fs::read(dest.join("1/model.onnx")).unwrap(), b"abcd");
        assert!(!dest.join("stale").exists());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("models"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("m")]);
    }

    #[tokio::test]
    async fn missing_local_source_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let puller = Puller::new(PullerConfig::new(dir.path().join("cache"))).unwrap();
        let dest = dir.path().join("models/m");
        assert!(puller.pull(&dir.path().join("nope").display().to_string(), &dest).await.is_err());
        assert!(!dest.exists());
    }
}
