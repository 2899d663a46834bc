//! The state directory: every applied object and every revision as one JSON file each,
//! written atomically, and the lock that keeps a second `oxserve up` away.
//!
//! ```text
//! STATE/
//!   lock                                   flock'ed for the life of the process; holds its PID
//!   objects/COLLECTION/NAMESPACE/NAME.json e.g. objects/inferenceservices/default/iris.json
//!   cache/                                 the puller's content-addressed cache
//!   revisions/REVISION/                    per-revision model directory and settings
//!   logs/REVISION/REPLICA.log              each replica's stdout and stderr
//! ```
//! A write goes to a hidden temporary file beside its target, is fsynced, renamed over the
//! target and the directory fsynced, so after a crash at any moment a file holds either its
//! old or its new content. Loading ignores hidden files, and opening the store removes the
//! temporary files a crashed write left.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::{Error, Result};

/// The lock file's name in the state directory.
pub const LOCK_FILE: &str = "lock";

/// Names the store accepts for collections, namespaces and objects: Kubernetes' DNS-1123
/// subdomain shape, so a name can never climb out of its directory.
pub fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{what} \"{name}\": must be lowercase letters, digits, '-' or '.', start and end \
             with a letter or digit, at most 253 characters"
        )))
    }
}

/// Where one stored object lives.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// `inferenceservices`, `trainedmodels`, `revisions`, …
    pub collection: String,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    /// A key, its parts checked with [`check_name`].
    pub fn new(collection: &str, namespace: &str, name: &str) -> Result<ObjectKey> {
        check_name("collection", collection)?;
        check_name("namespace", namespace)?;
        check_name("name", name)?;
        Ok(ObjectKey {
            collection: collection.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }
}

/// The opened, locked state directory.
#[derive(Debug)]
pub struct StateStore {
    dir: PathBuf,
    /// Held open (and so locked) until the store is dropped.
    _lock: File,
}

impl StateStore {
    /// Creates (if needed) and locks `dir`. A directory another live process holds is
    /// refused with an error naming that process.
    pub fn open(dir: impl Into<PathBuf>) -> Result<StateStore> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let mut lock = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(Error::io(&lock_path))?;
        // SAFETY: flock on a file descriptor this function owns; no memory is shared.
        let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let holder = std::fs::read_to_string(&lock_path).unwrap_or_default();
                let holder = holder.trim();
                let who = if holder.is_empty() {
                    "another process".to_owned()
                } else {
                    format!("process {holder}")
                };
                return Err(Error::Locked(format!(
                    "state dir {} is in use by {who} (another `oxserve up`?); stop it or use \
                     another --state-dir",
                    dir.display()
                )));
            }
            return Err(Error::Io { path: lock_path, source: err });
        }
        lock.set_len(0).map_err(Error::io(&lock_path))?;
        writeln!(lock, "{}", std::process::id()).map_err(Error::io(&lock_path))?;
        lock.sync_all().map_err(Error::io(&lock_path))?;
        let store = StateStore { dir, _lock: lock };
        store.remove_stale_temp_files(&store.dir.join("objects"));
        Ok(store)
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The puller's cache.
    pub fn cache_dir(&self) -> PathBuf {
        self.dir.join("cache")
    }

    /// Per-revision working files (the model directory the replicas serve).
    pub fn revisions_dir(&self) -> PathBuf {
        self.dir.join("revisions")
    }

    /// Replica logs, one directory per revision.
    pub fn logs_dir(&self) -> PathBuf {
        self.dir.join("logs")
    }

    fn path_of(&self, key: &ObjectKey) -> PathBuf {
        self.dir
            .join("objects")
            .join(&key.collection)
            .join(&key.namespace)
            .join(format!("{}.json", key.name))
    }

    /// Stores `value` under `key`, replacing what was there, atomically.
    pub fn put<T: Serialize>(&self, key: &ObjectKey, value: &T) -> Result<()> {
        let path = self.path_of(key);
        let bytes = serde_json::to_vec_pretty(value)
            .map_err(|source| Error::Json { path: path.clone(), source })?;
        write_atomic(&path, &bytes)
    }

    /// The object stored under `key`, if any.
    pub fn get<T: DeserializeOwned>(&self, key: &ObjectKey) -> Result<Option<T>> {
        let path = self.path_of(key);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| Error::Json { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Io { path, source: e }),
        }
    }

    /// Removes the object under `key`; false when there was none.
    pub fn delete(&self, key: &ObjectKey) -> Result<bool> {
        let path = self.path_of(key);
        match std::fs::remove_file(&path) {
            Ok(()) => {
                if let Some(parent) = path.parent() {
                    sync_dir(parent)?;
                }
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::Io { path, source: e }),
        }
    }

    /// Every object of `collection` in every namespace, sorted by namespace and name.
    /// Hidden files (unfinished writes) and files that are not `*.json` are skipped; a file
    /// that does not parse is an error naming it.
    pub fn list<T: DeserializeOwned>(&self, collection: &str) -> Result<Vec<(ObjectKey, T)>> {
        check_name("collection", collection)?;
        let root = self.dir.join("objects").join(collection);
        let mut out = Vec::new();
        for ns in read_dir_sorted(&root)? {
            let Some(namespace) = visible_name(&ns) else { continue };
            if !ns.is_dir() {
                continue;
            }
            for file in read_dir_sorted(&ns)? {
                let Some(file_name) = visible_name(&file) else { continue };
                let Some(name) = file_name.strip_suffix(".json") else { continue };
                if check_name("name", name).is_err() || check_name("namespace", &namespace).is_err()
                {
                    continue;
                }
                let bytes = std::fs::read(&file).map_err(Error::io(&file))?;
                let value = serde_json::from_slice(&bytes)
                    .map_err(|source| Error::Json { path: file.clone(), source })?;
                out.push((
                    ObjectKey {
                        collection: collection.to_owned(),
                        namespace: namespace.clone(),
                        name: name.to_owned(),
                    },
                    value,
                ));
            }
        }
        Ok(out)
    }

    fn remove_stale_temp_files(&self, dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                self.remove_stale_temp_files(&path);
            } else if name.starts_with('.') && name.contains(TEMP_MARK) {
                tracing::info!(path = %path.display(), "removing an unfinished write");
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

const TEMP_MARK: &str = ".tmp.";

static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` so that it holds its old or its new content, whatever happens.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = stage(path, bytes)?;
    commit(&tmp, path)
}

/// The first half of [`write_atomic`]: the content, fsynced, in a hidden temporary file
/// beside `path`. Until [`commit`], `path` is untouched.
pub(crate) fn stage(path: &Path, bytes: &[u8]) -> Result<PathBuf> {
    let parent = path
        .parent()
        .ok_or_else(|| Error::Invalid(format!("{}: no parent directory", path.display())))?;
    std::fs::create_dir_all(parent).map_err(Error::io(parent))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = parent.join(format!(
        ".{name}{TEMP_MARK}{}.{}",
        std::process::id(),
        UNIQUE.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = File::create(&tmp).map_err(Error::io(&tmp))?;
        f.write_all(bytes).map_err(Error::io(&tmp))?;
        f.sync_all().map_err(Error::io(&tmp))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map(|()| tmp)
}

/// The second half of [`write_atomic`]: renames the staged file over `path` and fsyncs the
/// directory so the rename itself survives a crash.
pub(crate) fn commit(tmp: &Path, path: &Path) -> Result<()> {
    std::fs::rename(tmp, path).map_err(Error::io(path))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(Error::io(dir))
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            let mut v: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
            v.sort();
            Ok(v)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::Io { path: dir.to_owned(), source: e }),
    }
}

fn visible_name(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    (!name.starts_with('.')).then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new("inferenceservices", "default", name).unwrap()
    }

    #[test]
    fn objects_round_trip_and_list_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        store.put(&key("b"), &json!({"v": 2})).unwrap();
        store.put(&key("a"), &json!({"v": 1})).unwrap();
        store.put(&ObjectKey::new("inferenceservices", "prod", "a").unwrap(), &json!(3)).unwrap();
        assert_eq!(store.get::<Value>(&key("a")).unwrap(), Some(json!({"v": 1})));
        assert_eq!(store.get::<Value>(&key("zz")).unwrap(), None);
        let all: Vec<(ObjectKey, Value)> = store.list("inferenceservices").unwrap();
        let names: Vec<String> =
            all.iter().map(|(k, _)| format!("{}/{}", k.namespace, k.name)).collect();
        assert_eq!(names, ["default/a", "default/b", "prod/a"]);
        assert!(store.delete(&key("a")).unwrap());
        assert!(!store.delete(&key("a")).unwrap());
        assert_eq!(store.list::<Value>("inferenceservices").unwrap().len(), 2);
        assert!(store.list::<Value>("trainedmodels").unwrap().is_empty());
    }

    #[test]
    fn reopening_loads_everything_written() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = StateStore::open(dir.path()).unwrap();
            store.put(&key("iris"), &json!({"spec": {"x": 1}})).unwrap();
            store.put(&key("iris"), &json!({"spec": {"x": 2}})).unwrap();
        }
        let store = StateStore::open(dir.path()).unwrap();
        assert_eq!(store.get::<Value>(&key("iris")).unwrap(), Some(json!({"spec": {"x": 2}})));
    }

    #[test]
    fn a_write_interrupted_before_rename_leaves_the_old_file_and_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = StateStore::open(dir.path()).unwrap();
            store.put(&key("iris"), &json!({"generation": 1})).unwrap();
            // The process dies between writing the temporary file and renaming it.
            let tmp = stage(&store.path_of(&key("iris")), br#"{"generation": 2}"#).unwrap();
            assert!(tmp.exists());
            // And one dies in the middle of writing: a truncated temporary file.
            let ns_dir = store.path_of(&key("iris")).parent().unwrap().to_owned();
            std::fs::write(ns_dir.join(".other.json.tmp.1.0"), b"{\"gen").unwrap();
            assert_eq!(store.get::<Value>(&key("iris")).unwrap(), Some(json!({"generation": 1})));
            let listed = store.list::<Value>("inferenceservices").unwrap();
            assert_eq!(listed.len(), 1, "{listed:?}");
        }
        let store = StateStore::open(dir.path()).unwrap();
        let listed = store.list::<Value>("inferenceservices").unwrap();
        assert_eq!(listed, vec![(key("iris"), json!({"generation": 1}))]);
        let ns_dir = store.path_of(&key("iris")).parent().unwrap().to_owned();
        let left: Vec<String> = std::fs::read_dir(&ns_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, ["iris.json"], "opening removes unfinished writes");
    }

    #[test]
    fn a_corrupt_object_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        store.put(&key("good"), &json!(1)).unwrap();
        std::fs::write(store.path_of(&key("bad")), b"{not json").unwrap();
        let e = store.list::<Value>("inferenceservices").unwrap_err().to_string();
        assert!(e.contains("bad.json"), "{e}");
    }

    #[test]
    fn a_second_open_of_a_locked_dir_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateStore::open(dir.path()).unwrap();
        let e = StateStore::open(dir.path()).unwrap_err().to_string();
        assert!(e.contains(&format!("in use by process {}", std::process::id())), "{e}");
        assert!(e.contains(&dir.path().display().to_string()), "{e}");
        drop(first);
        StateStore::open(dir.path()).unwrap();
    }

    #[test]
    fn names_that_could_escape_the_directory_are_refused() {
        for bad in ["", "..", "a/b", "../x", "A", "-a", "a-", ".hidden", "a b"] {
            let e = ObjectKey::new("inferenceservices", "default", bad).unwrap_err().to_string();
            assert!(e.contains(&format!("name \"{bad}\"")), "{e}");
        }
        ObjectKey::new("inferenceservices", "default", "iris-v2.1").unwrap();
    }
}
