//! Desired state as pure functions: from an InferenceService's revision to the Kubernetes
//! objects that run it ([`Children`]), and the cluster-wide objects the controller keeps (the
//! router's route table, the models config of a multi-model parent).
//!
//! Per revision: a Deployment named after the revision (`oxserve serve /mnt/models`, or the
//! custom container, on port 8080; the storage initializer as an init container running
//! `oxserve pull URI /mnt/models/PATH` into an emptyDir; the agent sidecar on port 9081 when
//! the logger or a container's batcher is on), a Service of the same name in front of it,
//! and an autoscaling/v2 HPA when `scaleMetric` is `cpu` or `memory` (KServe's raw mode);
//! otherwise the KPA sets the Deployment's replicas. Per service with a transformer: the
//! `NAME-predictor` Service, an alias of the router, which the transformer's
//! `--predictor_host=NAME-predictor.NS` reaches.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar as KubeEnvVar, HTTPGetAction, PodSpec, PodTemplateSpec, Probe, Service, ServicePort,
    ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;
use serde_json::Value;

use crate::backend::{ModelAssignment, RevisionSpec, Runner};
use crate::platform::workload::{self, Owner};
use crate::revision::Revision;
use crate::routes::RouteTable;

/// Label: the InferenceService a child belongs to (KServe's label key).
pub const LABEL_SERVICE: &str = "serving.kserve.io/inferenceservice";
/// Label: the component (`predictor`, `transformer`, `explainer`).
pub const LABEL_COMPONENT: &str = "component";
/// Label: the revision a child runs.
pub const LABEL_REVISION: &str = "serving.oxserve.dev/revision";
/// Label on everything the controller manages.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`LABEL_MANAGED_BY`].
pub const MANAGER: &str = "oxserve-controller";
/// Where the storage initializer puts model files (KServe's path).
pub const MODEL_DIR: &str = "/mnt/models";
/// The emptyDir holding the model files (KServe's volume name).
pub const MODEL_VOLUME: &str = "kserve-provision-location";
/// The serving container's name (KServe's).
pub const SERVING_CONTAINER: &str = "kserve-container";
/// The init container's name (KServe's).
pub const STORAGE_INITIALIZER: &str = "storage-initializer";
/// The agent sidecar's name (KServe's).
pub const AGENT_CONTAINER: &str = "agent";
/// The serving container's HTTP port.
pub const HTTP_PORT: i32 = 8080;
/// The agent's port, in front of the serving container when the agent runs.
pub const AGENT_PORT: i32 = 9081;
/// Where the models config ConfigMap is mounted in a multi-model parent's pods.
pub const MODEL_CONFIG_DIR: &str = "/mnt/configs";
/// The key of the models config (KServe's `models.json`).
pub const MODEL_CONFIG_KEY: &str = "models.json";
/// The key of the route table in the routes ConfigMap.
pub const ROUTES_KEY: &str = "routes.yaml";

/// What the desired state is made for: the image and where the parent lives.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Context {
    /// The `oxserve` image (serve, pull and agent are its subcommands).
    pub image: String,
    /// The parent's `apiVersion` (`serving.kserve.io/v1beta1` or the native group).
    pub api_version: String,
    /// The parent's `metadata.uid`.
    pub uid: String,
}

/// Everything one revision owns.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Children {
    /// The backend-neutral workload the Deployment and Service are made from: what the
    /// reconciler hands [`crate::backend::Backend::ensure_revision`].
    #[serde(skip)]
    pub spec: RevisionSpec,
    pub deployment: Deployment,
    pub service: Service,
    /// Only for `scaleMetric: cpu|memory`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hpa: Option<HorizontalPodAutoscaler>,
}

/// The child objects of `revision` of InferenceService `isvc` (its JSON, as stored), with
/// `replicas` replicas (ignored under an HPA, which then owns the count); `multi_model`:
/// TrainedModels name the service as parent, so the predictor's pods run the agent's puller
/// on the models config. The error is the reason the revision cannot run.
pub fn desired(
    isvc: &Value,
    revision: &Revision,
    replicas: u32,
    multi_model: bool,
    ctx: &Context,
) -> Result<Children, String> {
    let name = isvc.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    let namespace =
        isvc.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or("default");
    let component = revision.component.as_str();
    let predictor_host = predictor_host(name, namespace);
    let owner = Owner {
        service: name,
        namespace,
        component,
        endpoint: "default",
        predictor_host: Some(&predictor_host),
    };
    let spec = workload::revision_spec(owner, &revision.name, &revision.spec)?;
    let multi_model = multi_model && revision.component == crate::revision::Component::Predictor;
    let owner_ref = owner_reference(isvc, ctx);
    let metric = revision.spec.get("scaleMetric").and_then(Value::as_str);
    let hpa = match metric {
        Some(m @ ("cpu" | "memory")) => Some(hpa(&spec, &revision.spec, m, &owner_ref)),
        _ => None,
    };
    let replicas = if hpa.is_some() { None } else { Some(replicas) };
    Ok(Children {
        deployment: deployment(&spec, replicas, multi_model, ctx, &owner_ref),
        service: service(&spec, &owner_ref),
        hpa,
        spec,
    })
}

/// Where a transformer of service `name` reaches its predictor: `NAME-predictor.NS`,
/// KServe's `--predictor_host`, resolved by the [`predictor_service`] in the service's
/// namespace to the router, which routes that host to the predictor's revisions by weight
/// (and holds requests while they scale from zero).
pub fn predictor_host(name: &str, namespace: &str) -> String {
    format!("{name}-predictor.{namespace}")
}

/// The Service `NAME-predictor` of a service with a transformer: an `ExternalName` alias
/// of the router's Service (`router_host`, its cluster DNS name), so the transformer's
/// [`predictor_host`] resolves to the router. Not a Service selecting the predictor's pods:
/// that would bypass the canary split and find no endpoint while the predictor is scaled
/// to zero.
pub fn predictor_service(
    name: &str,
    namespace: &str,
    router_host: &str,
    owner: &OwnerReference,
) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(format!("{name}-predictor")),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([
                (LABEL_SERVICE.to_owned(), name.to_owned()),
                (LABEL_COMPONENT.to_owned(), "predictor".to_owned()),
                (LABEL_MANAGED_BY.to_owned(), MANAGER.to_owned()),
            ])),
            owner_references: Some(vec![owner.clone()]),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("ExternalName".into()),
            external_name: Some(router_host.to_owned()),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// The owner reference every child of `isvc` carries (controller, blocking deletion).
pub fn owner_reference(isvc: &Value, ctx: &Context) -> OwnerReference {
    OwnerReference {
        api_version: ctx.api_version.clone(),
        kind: "InferenceService".into(),
        name: isvc.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().into(),
        uid: ctx.uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The labels of a revision's objects and pods.
pub fn labels(spec: &RevisionSpec) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_SERVICE.to_owned(), spec.service.clone()),
        (LABEL_COMPONENT.to_owned(), spec.component.clone()),
        (LABEL_REVISION.to_owned(), spec.revision.clone()),
        (LABEL_MANAGED_BY.to_owned(), MANAGER.to_owned()),
    ])
}

fn meta(name: &str, spec: &RevisionSpec, owner: &OwnerReference) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(spec.namespace.clone()),
        labels: Some(labels(spec)),
        owner_references: Some(vec![owner.clone()]),
        ..ObjectMeta::default()
    }
}

fn env(name: &str, value: impl Into<String>) -> KubeEnvVar {
    KubeEnvVar { name: name.to_owned(), value: Some(value.into()), ..KubeEnvVar::default() }
}

/// Whether the agent sidecar runs: the logger, or the batcher of a container (the built-in
/// server batches itself).
pub fn needs_agent(spec: &RevisionSpec) -> bool {
    spec.logger.is_some()
        || spec.batcher.is_some() && matches!(spec.runner, Runner::Container { .. })
}

/// The port the revision's Service targets: the agent's when it runs.
pub fn serving_port(spec: &RevisionSpec) -> i32 {
    if needs_agent(spec) { AGENT_PORT } else { HTTP_PORT }
}

/// The revision's Deployment.
pub fn deployment(
    spec: &RevisionSpec,
    replicas: Option<u32>,
    multi_model: bool,
    ctx: &Context,
    owner: &OwnerReference,
) -> Deployment {
    let model_mount = VolumeMount {
        name: MODEL_VOLUME.into(),
        mount_path: MODEL_DIR.into(),
        ..VolumeMount::default()
    };
    let mut volumes = vec![Volume {
        name: MODEL_VOLUME.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }];
    let init_containers: Vec<Container> = spec
        .sources
        .iter()
        .enumerate()
        .map(|(i, source)| {
            let dir = if source.path.is_empty() {
                MODEL_DIR.to_owned()
            } else {
                format!("{MODEL_DIR}/{}", source.path.trim_start_matches('/'))
            };
            Container {
                name: if i == 0 {
                    STORAGE_INITIALIZER.to_owned()
                } else {
                    format!("{STORAGE_INITIALIZER}-{i}")
                },
                image: Some(ctx.image.clone()),
                args: Some(vec!["pull".into(), source.uri.clone(), dir]),
                volume_mounts: Some(vec![model_mount.clone()]),
                ..Container::default()
            }
        })
        .collect();
    let mut env_vars: Vec<KubeEnvVar> =
        spec.env.iter().map(|e| env(&e.name, e.value.clone())).collect();
    let (image, command, args) = match &spec.runner {
        Runner::Server { args } => {
            let mut all = vec![
                "serve".to_owned(),
                MODEL_DIR.to_owned(),
                "--host".into(),
                "0.0.0.0".into(),
                "--http-port".into(),
                HTTP_PORT.to_string(),
            ];
            all.extend(args.iter().cloned());
            (ctx.image.clone(), None, all)
        }
        Runner::Container { image, command, args, predictor_host } => {
            let mut all = args.clone();
            all.push(format!("--http_port={HTTP_PORT}"));
            if let Some(host) = predictor_host {
                all.push(format!("--predictor_host={host}"));
            }
            env_vars.push(env("PORT", HTTP_PORT.to_string()));
            let command = (!command.is_empty()).then(|| command.clone());
            (image.clone().unwrap_or_else(|| ctx.image.clone()), command, all)
        }
    };
    let mut containers = vec![Container {
        name: SERVING_CONTAINER.into(),
        image: Some(image),
        command,
        args: Some(args),
        env: (!env_vars.is_empty()).then_some(env_vars),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: HTTP_PORT,
            ..ContainerPort::default()
        }]),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some(format!("/v2/models/{}/ready", spec.model_name)),
                port: IntOrString::Int(HTTP_PORT),
                ..HTTPGetAction::default()
            }),
            period_seconds: Some(2),
            ..Probe::default()
        }),
        volume_mounts: Some(vec![model_mount.clone()]),
        ..Container::default()
    }];
    if needs_agent(spec) || multi_model {
        let mut args = vec![
            "agent".to_owned(),
            "--agent-host".into(),
            "0.0.0.0".into(),
            "--agent-port".into(),
            AGENT_PORT.to_string(),
            "--component-port".into(),
            HTTP_PORT.to_string(),
            "--inference-service".into(),
            spec.service.clone(),
            "--namespace".into(),
            spec.namespace.clone(),
            "--component".into(),
            spec.component.clone(),
        ];
        if let Some(logger) = &spec.logger {
            args.extend([
                "--log-url".into(),
                logger.url.clone(),
                "--log-mode".into(),
                logger.mode.clone(),
                "--endpoint".into(),
                logger.endpoint.clone(),
            ]);
        }
        if let (Some(b), Runner::Container { .. }) = (&spec.batcher, &spec.runner) {
            args.push("--enable-batcher".into());
            if let Some(n) = b.max_batch_size {
                args.extend(["--max-batchsize".into(), n.to_string()]);
            }
            if let Some(ms) = b.max_latency {
                args.extend(["--max-latency".into(), ms.to_string()]);
            }
            if let Some(s) = b.timeout {
                args.extend(["--timeout".into(), s.to_string()]);
            }
        }
        let mut mounts = vec![model_mount];
        if multi_model {
            args.extend([
                "--enable-puller".into(),
                "--config-dir".into(),
                MODEL_CONFIG_DIR.into(),
                "--model-dir".into(),
                MODEL_DIR.into(),
            ]);
            mounts.push(VolumeMount {
                name: "model-config".into(),
                mount_path: MODEL_CONFIG_DIR.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            });
            volumes.push(Volume {
                name: "model-config".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: model_config_name(&spec.service),
                    optional: Some(true),
                    ..ConfigMapVolumeSource::default()
                }),
                ..Volume::default()
            });
        }
        containers.push(Container {
            name: AGENT_CONTAINER.into(),
            image: Some(ctx.image.clone()),
            args: Some(args),
            ports: Some(vec![ContainerPort {
                name: Some("agent".into()),
                container_port: AGENT_PORT,
                ..ContainerPort::default()
            }]),
            volume_mounts: Some(mounts),
            ..Container::default()
        });
    }
    let labels = labels(spec);
    Deployment {
        metadata: meta(&spec.revision, spec, owner),
        spec: DeploymentSpec {
            replicas: replicas.map(|r| r as i32),
            selector: LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    LABEL_REVISION.to_owned(),
                    spec.revision.clone(),
                )])),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels), ..ObjectMeta::default() }),
                spec: Some(PodSpec {
                    init_containers: (!init_containers.is_empty()).then_some(init_containers),
                    containers,
                    volumes: Some(volumes),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        },
        status: None,
    }
}

/// The revision's Service: port 80 to the serving port of its pods.
pub fn service(spec: &RevisionSpec, owner: &OwnerReference) -> Service {
    Service {
        metadata: meta(&spec.revision, spec, owner),
        spec: Some(ServiceSpec {
            selector: Some(BTreeMap::from([(LABEL_REVISION.to_owned(), spec.revision.clone())])),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                target_port: Some(IntOrString::Int(serving_port(spec))),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// KServe's raw-mode HPA for `scaleMetric: cpu|memory` (`scaleTarget` percent, default 80).
pub fn hpa(
    spec: &RevisionSpec,
    component: &Value,
    metric: &str,
    owner: &OwnerReference,
) -> HorizontalPodAutoscaler {
    let min = component.get("minReplicas").and_then(Value::as_i64).unwrap_or(1).max(1) as i32;
    let max = component.get("maxReplicas").and_then(Value::as_i64).unwrap_or(0) as i32;
    let target = component.get("scaleTarget").and_then(Value::as_i64).unwrap_or(80) as i32;
    HorizontalPodAutoscaler {
        metadata: meta(&spec.revision, spec, owner),
        spec: HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: spec.revision.clone(),
            },
            min_replicas: Some(min),
            max_replicas: max.max(min),
            metrics: Some(vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: metric.to_owned(),
                    target: MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: Some(target),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            }]),
            ..HorizontalPodAutoscalerSpec::default()
        },
        status: None,
    }
}

/// The router's route table as a ConfigMap (`routes.yaml`), mounted into the router pods,
/// whose routes-file mode reloads it on change.
pub fn routes_config_map(name: &str, namespace: &str, table: &RouteTable) -> ConfigMap {
    let yaml = serde_yaml_ng::to_string(table).expect("a route table serializes");
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([(LABEL_MANAGED_BY.to_owned(), MANAGER.to_owned())])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(ROUTES_KEY.to_owned(), yaml)])),
        ..ConfigMap::default()
    }
}

/// KServe's models config ConfigMap name of a parent: `modelconfig-<isvc>-0`.
pub fn model_config_name(service: &str) -> String {
    format!("modelconfig-{service}-0")
}

/// One entry of `models.json` (KServe's `modelconfig.ModelConfig`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelConfig {
    pub model_name: String,
    pub model_spec: ModelConfigSpec,
}

/// `modelSpec` of a models.json entry.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelConfigSpec {
    #[serde(rename = "storageUri")]
    pub storage_uri: String,
    pub framework: String,
    pub memory: String,
}

/// The TrainedModels (their JSON) that name `service` as parent, as the backend's
/// [`ModelAssignment`]s, sorted by name.
pub fn assignments(service: &str, trained_models: &[Value]) -> Vec<ModelAssignment> {
    let mut models: Vec<ModelAssignment> = trained_models
        .iter()
        .filter(|tm| tm.pointer("/spec/inferenceService").and_then(Value::as_str) == Some(service))
        .map(|tm| {
            let s = |p: &str| tm.pointer(p).and_then(Value::as_str).map(str::to_owned);
            ModelAssignment {
                name: s("/metadata/name").unwrap_or_default(),
                storage_uri: s("/spec/model/storageUri").unwrap_or_default(),
                framework: s("/spec/model/framework"),
                memory: s("/spec/model/memory"),
            }
        })
        .collect();
    models.sort_by(|a, b| a.name.cmp(&b.name));
    models
}

/// The models config ConfigMap of parent `service` from its TrainedModels (their JSON),
/// sorted by name, owned by the parent.
pub fn model_config_map(
    service: &str,
    namespace: &str,
    trained_models: &[Value],
    owner: &OwnerReference,
) -> ConfigMap {
    model_config_map_of(service, namespace, &assignments(service, trained_models), owner)
}

/// The models config ConfigMap of parent `service` serving `models`, owned by the parent.
pub fn model_config_map_of(
    service: &str,
    namespace: &str,
    models: &[ModelAssignment],
    owner: &OwnerReference,
) -> ConfigMap {
    let mut models: Vec<ModelConfig> = models
        .iter()
        .map(|m| ModelConfig {
            model_name: m.name.clone(),
            model_spec: ModelConfigSpec {
                storage_uri: m.storage_uri.clone(),
                framework: m.framework.clone().unwrap_or_default(),
                memory: m.memory.clone().unwrap_or_default(),
            },
        })
        .collect();
    models.sort_by(|a, b| a.model_name.cmp(&b.model_name));
    let json = serde_json::to_string(&models).expect("a models config serializes");
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(model_config_name(service)),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([
                (LABEL_SERVICE.to_owned(), service.to_owned()),
                (LABEL_MANAGED_BY.to_owned(), MANAGER.to_owned()),
            ])),
            owner_references: Some(vec![owner.clone()]),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(MODEL_CONFIG_KEY.to_owned(), json)])),
        ..ConfigMap::default()
    }
}
