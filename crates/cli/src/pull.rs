//! `oxserve pull`: fetches a model from a storage URI into a local directory through the
//! shared model cache.

use std::path::PathBuf;

use anyhow::{Context, Result};
use oxserve_agent::puller::{Puller, PullerConfig};

#[derive(clap::Args)]
pub struct Args {
    /// Storage URI: s3://, gs://, az:// or https://<account>.blob.core.windows.net/…,
    /// http(s):// (a file or a .tar.gz/.tgz/.tar/.zip archive), file://, pvc:// or a path.
    uri: String,
    /// Destination directory; it appears complete or not at all (an existing one is replaced).
    dir: PathBuf,
    #[command(flatten)]
    cache: CacheArgs,
}

/// Flags shared with `oxserve agent`.
#[derive(clap::Args)]
pub struct CacheArgs {
    /// Shared model cache directory [default: $XDG_CACHE_HOME/oxserve/models].
    #[arg(long, env = "OXSERVE_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Cache size limit in bytes; least recently used entries beyond it are evicted.
    #[arg(long, env = "OXSERVE_CACHE_SIZE")]
    pub cache_size: Option<u64>,
    /// Where pvc:// claims are mounted.
    #[arg(long, env = "OXSERVE_PVC_ROOT", default_value = "/mnt/pvc")]
    pub pvc_root: PathBuf,
    /// Extra object store option KEY=VALUE (e.g. aws_endpoint=http://127.0.0.1:9000); repeatable.
    #[arg(long = "storage-option", env = "OXSERVE_STORAGE_OPTIONS", value_delimiter = ',')]
    pub storage_options: Vec<String>,
}

impl CacheArgs {
    /// The puller configuration these flags describe.
    pub fn config(self) -> Result<PullerConfig> {
        let CacheArgs { cache_dir, cache_size, pvc_root, storage_options } = self;
        let mut c = PullerConfig::new(cache_dir.unwrap_or_else(PullerConfig::default_cache_dir));
        c.cache_limit_bytes = cache_size.unwrap_or(u64::MAX);
        c.pvc_root = pvc_root;
        for o in storage_options {
            let (k, v) = o
                .split_once('=')
                .with_context(|| format!("storage option {o:?}: expected KEY=VALUE"))?;
            c.store.options.push((k.trim().to_owned(), v.to_owned()));
        }
        Ok(c)
    }
}

pub fn run(args: Args) -> Result<()> {
    let Args { uri, dir, cache } = args;
    let config = cache.config()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let puller = Puller::new(config).context("opening the model cache")?;
        let out = puller.pull(&uri, &dir).await.with_context(|| format!("pulling {uri}"))?;
        println!(
            "pulled {uri} into {}: {} files, {} bytes{}",
            dir.display(),
            out.files,
            out.bytes,
            if out.cache_hit { " (from cache)" } else { "" }
        );
        Ok(())
    })
}
