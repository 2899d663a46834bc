//! Storage URIs: parsing `storageUri` values and opening the matching `object_store` backend.
//!
//! Credentials come from the usual environment variables of each cloud (read by the
//! `object_store` builders' `from_env`), plus KServe's `S3_ENDPOINT` / `S3_USE_HTTPS` /
//! `AWS_ENDPOINT_URL` for S3-compatible servers. Explicit options (`key=value`, keys as
//! `object_store` names them, e.g. `aws_endpoint`) override the environment.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, RetryConfig};

use crate::{Error, Result};

/// Where a model comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageUri {
    /// An S3 (or S3-compatible) bucket and key or prefix.
    S3 { bucket: String, key: String },
    /// A Google Cloud Storage bucket and key or prefix.
    Gcs { bucket: String, key: String },
    /// An Azure blob container (account from the URL host or the environment).
    Azure { account: Option<String>, container: String, key: String },
    /// A single file over HTTP(S), possibly an archive (`.tar.gz`, `.tgz`, `.tar`, `.zip`).
    Http { url: url::Url },
    /// A local file or directory (`file://`, `pvc://` mapped to its mount, or a plain path).
    Local { path: PathBuf },
}

/// Archive formats the puller unpacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    /// `.tar.gz` / `.tgz`
    TarGz,
    /// `.tar`
    Tar,
    /// `.zip`
    Zip,
}

impl ArchiveKind {
    /// The archive kind a file name says, if any.
    pub fn from_name(name: &str) -> Option<ArchiveKind> {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".tar.gz") || lower.ends_with(".tgz") {
            Some(ArchiveKind::TarGz)
        } else if lower.ends_with(".tar") {
            Some(ArchiveKind::Tar)
        } else if lower.ends_with(".zip") {
            Some(ArchiveKind::Zip)
        } else {
            None
        }
    }
}

impl StorageUri {
    /// Parses a `storageUri`. `pvc://<claim>/<path>` becomes `<pvc_root>/<path>`, as KServe
    /// mounts the claim at its PVC root.
    pub fn parse(uri: &str, pvc_root: &Path) -> Result<StorageUri> {
        let invalid =
            |reason: &str| Error::InvalidUri { uri: uri.to_owned(), reason: reason.to_owned() };
        let split_bucket = |rest: &str| -> Result<(String, String)> {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(invalid("missing bucket"));
            }
            Ok((bucket.to_owned(), key.trim_matches('/').to_owned()))
        };
        if let Some(rest) = uri.strip_prefix("s3://") {
            let (bucket, key) = split_bucket(rest)?;
            return Ok(StorageUri::S3 { bucket, key });
        }
        if let Some(rest) = uri.strip_prefix("gs://") {
            let (bucket, key) = split_bucket(rest)?;
            return Ok(StorageUri::Gcs { bucket, key });
        }
        if let Some(rest) = uri.strip_prefix("az://") {
            let (container, key) = split_bucket(rest)?;
            return Ok(StorageUri::Azure { account: None, container, key });
        }
        if let Some(rest) = uri.strip_prefix("pvc://") {
            let (claim, path) = rest.split_once('/').unwrap_or((rest, ""));
            if claim.is_empty() {
                return Err(invalid("missing claim name"));
            }
            let rel = safe_relative(path).ok_or_else(|| invalid("path must not contain `..`"))?;
            return Ok(StorageUri::Local { path: pvc_root.join(rel) });
        }
        if uri.starts_with("http://") || uri.starts_with("https://") {
            let url = url::Url::parse(uri).map_err(|e| invalid(&e.to_string()))?;
            let host = url.host_str().unwrap_or_default();
            if let Some(account) = host.strip_suffix(".blob.core.windows.net") {
                let path = url.path().trim_start_matches('/');
                let (container, key) = split_bucket(path)?;
                return Ok(StorageUri::Azure { account: Some(account.to_owned()), container, key });
            }
            if url.path_segments().and_then(|mut s| s.next_back()).is_none_or(str::is_empty) {
                return Err(invalid("an http(s) URI must name a file"));
            }
            return Ok(StorageUri::Http { url });
        }
        if let Some(rest) = uri.strip_prefix("file://") {
            return Ok(StorageUri::Local { path: PathBuf::from(rest) });
        }
        if uri.contains("://") {
            return Err(invalid(
                "unsupported scheme (use s3, gs, az, http(s), file, pvc or a path)",
            ));
        }
        if uri.is_empty() {
            return Err(invalid("empty"));
        }
        Ok(StorageUri::Local { path: PathBuf::from(uri) })
    }

    /// Whether the store's quoted-hex ETags are MD5 digests of single-part objects.
    pub(crate) fn etag_is_md5(&self) -> bool {
        matches!(self, StorageUri::S3 { .. } | StorageUri::Gcs { .. })
    }
}

/// A path made only of normal components, or `None` if it has `..` or is absolute.
pub(crate) fn safe_relative(path: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for comp in Path::new(path).components() {
        match comp {
            std::path::Component::Normal(c) => out.push(c),
            std::path::Component::CurDir => {}
            std::path::Component::RootDir if out.as_os_str().is_empty() => {}
            _ => return None,
        }
    }
    Some(out)
}

/// How remote stores are opened.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `object_store` config keys and values applied over the environment.
    pub options: Vec<(String, String)>,
    /// Retries per request for transient failures.
    pub max_retries: usize,
    /// Give up retrying a request after this long.
    pub retry_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions { options: Vec::new(), max_retries: 5, retry_timeout: Duration::from_secs(60) }
    }
}

/// An opened remote store and the path (key or prefix) inside it.
pub(crate) struct Opened {
    pub store: Arc<dyn ObjectStore>,
    pub path: ObjectPath,
}

impl StoreOptions {
    fn retry(&self) -> RetryConfig {
        RetryConfig {
            max_retries: self.max_retries,
            retry_timeout: self.retry_timeout,
            ..Default::default()
        }
    }

    fn lookup(&self, key: &str) -> Option<String> {
        self.options.iter().rev().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.clone())
    }

    /// Opens the store of a remote URI.
    pub(crate) fn open(&self, uri: &StorageUri, raw: &str) -> Result<Opened> {
        let store_err = |source| Error::Store { uri: raw.to_owned(), source };
        let bad_key = |k: &str| Error::Invalid(format!("unknown storage option {k:?}"));
        match uri {
            StorageUri::S3 { bucket, key } => {
                use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
                let mut b =
                    AmazonS3Builder::from_env().with_bucket_name(bucket).with_retry(self.retry());
                // KServe's variables for S3-compatible servers.
                let endpoint = std::env::var("AWS_ENDPOINT_URL").ok().or_else(|| {
                    std::env::var("S3_ENDPOINT").ok().map(|e| {
                        if e.contains("://") {
                            e
                        } else {
                            let https =
                                std::env::var("S3_USE_HTTPS").map(|v| v != "0").unwrap_or(true);
                            format!("{}://{e}", if https { "https" } else { "http" })
                        }
                    })
                });
                if let Some(e) = endpoint {
                    b = b.with_allow_http(e.starts_with("http://")).with_endpoint(e);
                }
                if std::env::var("AWS_ANONYMOUS").is_ok_and(|v| v == "true") {
                    b = b.with_skip_signature(true);
                }
                if std::env::var("AWS_REGION").is_err()
                    && std::env::var("AWS_DEFAULT_REGION").is_err()
                {
                    b = b.with_region("us-east-1");
                }
                for (k, v) in &self.options {
                    if let Ok(key) = AmazonS3ConfigKey::from_str(k) {
                        b = b.with_config(key, v);
                    } else if let Ok(key) = object_store::ClientConfigKey::from_str(k) {
                        b = b.with_client_options(ClientOptions::new().with_config(key, v));
                    } else {
                        return Err(bad_key(k));
                    }
                }
                if self.lookup("aws_endpoint").is_some_and(|e| e.starts_with("http://")) {
                    b = b.with_allow_http(true);
                }
                Ok(Opened {
                    store: Arc::new(b.build().map_err(store_err)?),
                    path: ObjectPath::from(key.as_str()),
                })
            }
            StorageUri::Gcs { bucket, key } => {
                use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
                let mut b = GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(bucket)
                    .with_retry(self.retry());
                for (k, v) in &self.options {
                    let key = GoogleConfigKey::from_str(k).map_err(|_| bad_key(k))?;
                    b = b.with_config(key, v);
                }
                Ok(Opened {
                    store: Arc::new(b.build().map_err(store_err)?),
                    path: ObjectPath::from(key.as_str()),
                })
            }
            StorageUri::Azure { account, container, key } => {
                use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
                let mut b = MicrosoftAzureBuilder::from_env()
                    .with_container_name(container)
                    .with_retry(self.retry());
                if let Some(a) = account {
                    b = b.with_account(a);
                }
                for (k, v) in &self.options {
                    let key = AzureConfigKey::from_str(k).map_err(|_| bad_key(k))?;
                    b = b.with_config(key, v);
                }
                Ok(Opened {
                    store: Arc::new(b.build().map_err(store_err)?),
                    path: ObjectPath::from(key.as_str()),
                })
            }
            StorageUri::Http { url } => {
                use object_store::http::HttpBuilder;
                // The store is rooted at the file's directory; the path is the file name.
                let mut base = url.clone();
                let name = url
                    .path_segments()
                    .and_then(|mut s| s.next_back())
                    .unwrap_or_default()
                    .to_owned();
                base.path_segments_mut()
                    .map_err(|()| Error::InvalidUri {
                        uri: raw.to_owned(),
                        reason: "cannot be a base".into(),
                    })?
                    .pop();
                base.set_query(None);
                let options = ClientOptions::new().with_allow_http(url.scheme() == "http");
                let b = HttpBuilder::new()
                    .with_url(base.as_str())
                    .with_client_options(options)
                    .with_retry(self.retry());
                let name = percent_decode(&name);
                Ok(Opened {
                    store: Arc::new(b.build().map_err(store_err)?),
                    path: ObjectPath::from(name.as_str()),
                })
            }
            StorageUri::Local { .. } => {
                Err(Error::Invalid("local paths have no object store".into()))
            }
        }
    }
}

/// Decodes `%XX` escapes of a URL path segment (invalid escapes are kept as they are).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(v);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(uri: &str) -> Result<StorageUri> {
        StorageUri::parse(uri, Path::new("/mnt/pvc"))
    }

    #[test]
    fn parses_every_scheme() {
        assert_eq!(
            parse("s3://b/a/m").unwrap(),
            StorageUri::S3 { bucket: "b".into(), key: "a/m".into() }
        );
        assert_eq!(
            parse("gs://b/m/").unwrap(),
            StorageUri::Gcs { bucket: "b".into(), key: "m".into() }
        );
        assert_eq!(
            parse("https://acct.blob.core.windows.net/c/p/m").unwrap(),
            StorageUri::Azure {
                account: Some("acct".into()),
                container: "c".into(),
                key: "p/m".into()
            }
        );
        assert_eq!(
            parse("az://c/m").unwrap(),
            StorageUri::Azure { account: None, container: "c".into(), key: "m".into() }
        );
        assert!(matches!(parse("http://h:1/x/m.tar.gz").unwrap(), StorageUri::Http { .. }));
        assert_eq!(
            parse("pvc://claim/a/b").unwrap(),
            StorageUri::Local { path: "/mnt/pvc/a/b".into() }
        );
        assert_eq!(parse("file:///x/y").unwrap(), StorageUri::Local { path: "/x/y".into() });
        assert_eq!(parse("./rel").unwrap(), StorageUri::Local { path: "./rel".into() });
    }

    #[test]
    fn rejects_bad_uris() {
        for bad in ["s3://", "s3:///key", "ftp://h/x", "pvc://c/../etc", "http://h/", ""] {
            assert!(parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn archive_kinds() {
        assert_eq!(ArchiveKind::from_name("m.TGZ"), Some(ArchiveKind::TarGz));
        assert_eq!(ArchiveKind::from_name("m.tar"), Some(ArchiveKind::Tar));
        assert_eq!(ArchiveKind::from_name("m.zip"), Some(ArchiveKind::Zip));
        assert_eq!(ArchiveKind::from_name("m.onnx"), None);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b"), "a b");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
