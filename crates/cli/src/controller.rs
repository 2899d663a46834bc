//! `oxserve controller`: the Kubernetes controller (built with the cli's `kubernetes`
//! feature). Reconciles InferenceServices and TrainedModels into Deployments, Services, HPAs
//! and ConfigMaps, publishes the router's route table, scales revisions with the KPA from
//! the router pods' metrics, and holds a Lease so only one replica reconciles at a time
//! (see docs/kubernetes.md).

use std::time::Duration;

use anyhow::{Context, Result};
use oxserve_controller::kubernetes::{Options, reconcile::Config};

#[derive(clap::Args)]
pub struct Args {
    /// Watch only this namespace (default: every namespace).
    #[arg(long, short = 'n', env = "OXSERVE_WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// The oxserve image the revisions' pods run (serve, pull and agent).
    #[arg(long, env = "OXSERVE_IMAGE", default_value = "oxserve:dev")]
    image: String,
    /// The namespace of the router, its routes ConfigMap and the leader Lease.
    #[arg(long, env = "OXSERVE_SYSTEM_NAMESPACE", default_value = "oxserve-system")]
    system_namespace: String,
    /// The ConfigMap holding the router's route table.
    #[arg(long, env = "OXSERVE_ROUTES_CONFIG_MAP", default_value = "oxserve-routes")]
    routes_config_map: String,
    /// Label selector of the router pods, scraped for the autoscaler.
    #[arg(
        long,
        env = "OXSERVE_ROUTER_SELECTOR",
        default_value = "app.kubernetes.io/name=oxserve-router"
    )]
    router_selector: String,
    /// The router's Service in the system namespace: a transformer's `NAME-predictor`
    /// Service is an alias (ExternalName) of it.
    #[arg(long, env = "OXSERVE_ROUTER_SERVICE", default_value = "oxserve-router")]
    router_service: String,
    /// Hosts `NAME.NAMESPACE.DOMAIN` reach a service.
    #[arg(long, env = "OXSERVE_DOMAIN", default_value = "example.com")]
    domain: String,
    /// Also reconcile objects of KServe's group `serving.kserve.io`.
    #[arg(long, env = "OXSERVE_KSERVE_GROUP")]
    kserve_group: bool,
    /// This replica's identity in the leader Lease (default: the host name, i.e. the pod).
    #[arg(long, env = "OXSERVE_CONTROLLER_IDENTITY")]
    identity: Option<String>,
    /// The leader Lease's name.
    #[arg(long, env = "OXSERVE_LEASE_NAME", default_value = "oxserve-controller")]
    lease_name: String,
    /// Seconds a lease lasts unrenewed (renewed every third of it).
    #[arg(long, env = "OXSERVE_LEASE_DURATION", default_value_t = 15)]
    lease_duration: u64,
    /// Seconds between passes over an unchanged service (the autoscaler's tick).
    #[arg(long, env = "OXSERVE_RESYNC", default_value_t = 2.0)]
    resync: f64,
    /// Seconds between scrapes of the router pods' metrics.
    #[arg(long, env = "OXSERVE_SCRAPE_INTERVAL", default_value_t = 2.0)]
    scrape_interval: f64,
}

fn seconds(flag: &str, value: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(value).ok().filter(|d| !d.is_zero()).ok_or_else(|| {
        anyhow::anyhow!("--{flag} must be a positive number of seconds, got {value}")
    })
}

pub fn run(args: Args) -> Result<()> {
    let Args {
        namespace,
        image,
        system_namespace,
        routes_config_map,
        router_selector,
        router_service,
        domain,
        kserve_group,
        identity,
        lease_name,
        lease_duration,
        resync,
        scrape_interval,
    } = args;
    if lease_duration < 3 {
        anyhow::bail!("--lease-duration must be at least 3 seconds, got {lease_duration}");
    }
    let identity = match identity {
        Some(i) if !i.is_empty() => i,
        _ => std::env::var("HOSTNAME")
            .unwrap_or_else(|_| format!("oxserve-controller-{}", std::process::id())),
    };
    let options = Options {
        config: Config {
            namespace,
            image,
            router_namespace: system_namespace.clone(),
            routes_config_map,
            router_selector,
            router_service,
            domain,
            kserve_group,
            resync: seconds("resync", resync)?,
        },
        identity,
        lease_namespace: system_namespace,
        lease_name,
        lease_duration: Duration::from_secs(lease_duration),
        scrape_every: seconds("scrape-interval", scrape_interval)?,
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        tokio::select! {
            result = oxserve_controller::kubernetes::main(options) => result.context("controller"),
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("stopping");
                Ok(())
            }
        }
    })
}
