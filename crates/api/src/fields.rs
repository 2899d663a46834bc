//! Field groups that KServe's Go types embed inline (`PodSpec`, `corev1.Container`,
//! `ComponentExtensionSpec`, `PredictorExtensionSpec`): one macro appends them to a struct, so
//! every field is a plain serde field and type errors keep their exact path (serde's
//! `flatten` would lose it).

/// Defines a struct with the listed inline field groups appended to its own fields.
///
/// Groups: `pod` (KServe's `PodSpec` copy), `runtime_pod` (`ServingRuntimePodSpec`),
/// `container` (`corev1.Container`), `extension` (`ComponentExtensionSpec`),
/// `predictor_ext` (`PredictorExtensionSpec` without the container), `explainer_ext`.
macro_rules! kserve_struct {
    ([$($group:ident)*] $(#[$m:meta])* $vis:vis struct $name:ident { $($body:tt)* }) => {
        kserve_struct!(@munch [] [$($group)*] $(#[$m])* $vis struct $name { $($body)* });
    };
    (@munch [$($acc:tt)*] [] $(#[$m:meta])* $vis:vis struct $name:ident { $($body:tt)* }) => {
        $(#[$m])*
        $vis struct $name { $($body)* $($acc)* }
    };
    (@munch [$($acc:tt)*] [pod $($rest:ident)*] $($def:tt)*) => {
        kserve_struct!(@munch [$($acc)*
            #[serde(skip_serializing_if = "Option::is_none")]
            pub volumes: Option<Vec<core::Volume>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub init_containers: Option<Vec<core::Container>>,
            /// The component's containers (a custom predictor, transformer or explainer).
            #[serde(skip_serializing_if = "Option::is_none")]
            pub containers: Option<Vec<core::Container>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub ephemeral_containers: Option<Vec<core::EphemeralContainer>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub restart_policy: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub termination_grace_period_seconds: Option<i64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub active_deadline_seconds: Option<i64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub dns_policy: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub node_selector: Option<BTreeMap<String, String>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub service_account_name: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub service_account: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub automount_service_account_token: Option<bool>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub node_name: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub host_network: Option<bool>,
            #[serde(rename = "hostPID", skip_serializing_if = "Option::is_none")]
            pub host_pid: Option<bool>,
            #[serde(rename = "hostIPC", skip_serializing_if = "Option::is_none")]
            pub host_ipc: Option<bool>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub share_process_namespace: Option<bool>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub security_context: Option<core::PodSecurityContext>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub image_pull_secrets: Option<Vec<core::LocalObjectReference>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub hostname: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub subdomain: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub affinity: Option<core::Affinity>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub scheduler_name: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub tolerations: Option<Vec<core::Toleration>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub host_aliases: Option<Vec<core::HostAlias>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub priority_class_name: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub priority: Option<i32>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub dns_config: Option<core::PodDNSConfig>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub readiness_gates: Option<Vec<core::PodReadinessGate>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub runtime_class_name: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub enable_service_links: Option<bool>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub preemption_policy: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub overhead: Option<BTreeMap<String, Quantity>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub topology_spread_constraints: Option<Vec<core::TopologySpreadConstraint>>,
            #[serde(rename = "setHostnameAsFQDN", skip_serializing_if = "Option::is_none")]
            pub set_hostname_as_fqdn: Option<bool>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub os: Option<core::PodOS>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub host_users: Option<bool>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub scheduling_gates: Option<Vec<core::PodSchedulingGate>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub resource_claims: Option<Vec<core::PodResourceClaim>>,
        ] [$($rest)*] $($def)*);
    };
    (@munch [$($acc:tt)*] [runtime_pod $($rest:ident)*] $($def:tt)*) => {
        kserve_struct!(@munch [$($acc)*
            /// The runtime's containers (`kserve-container` first).
            #[serde(default)]
            pub containers: Vec<core::Container>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub volumes: Option<Vec<core::Volume>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub node_selector: Option<BTreeMap<String, String>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub affinity: Option<core::Affinity>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub tolerations: Option<Vec<core::Toleration>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub labels: Option<BTreeMap<String, String>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub annotations: Option<BTreeMap<String, String>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub image_pull_secrets: Option<Vec<core::LocalObjectReference>>,
            #[serde(rename = "hostIPC", skip_serializing_if = "Option::is_none")]
            pub host_ipc: Option<bool>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub scheduler_name: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub resource_claims: Option<Vec<core::PodResourceClaim>>,
        ] [$($rest)*] $($def)*);
    };
    (@munch [$($acc:tt)*] [container $($rest:ident)*] $($def:tt)*) => {
        kserve_struct!(@munch [$($acc)*
            /// Container name; KServe names the serving container `kserve-container`.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub name: Option<String>,
            /// Image of the serving container (the framework's server image by default).
            #[serde(skip_serializing_if = "Option::is_none")]
            pub image: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub command: Option<Vec<String>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub args: Option<Vec<String>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub working_dir: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub ports: Option<Vec<core::ContainerPort>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub env_from: Option<Vec<core::EnvFromSource>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub env: Option<Vec<core::EnvVar>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub resources: Option<core::ResourceRequirements>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub resize_policy: Option<Vec<core::ContainerResizePolicy>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub volume_mounts: Option<Vec<core::VolumeMount>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub volume_devices: Option<Vec<core::VolumeDevice>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub liveness_probe: Option<core::Probe>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub readiness_probe: Option<core::Probe>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub startup_probe: Option<core::Probe>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub lifecycle: Option<core::Lifecycle>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub termination_message_path: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub termination_message_policy: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub image_pull_policy: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub security_context: Option<core::SecurityContext>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub stdin: Option<bool>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub stdin_once: Option<bool>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub tty: Option<bool>,
        ] [$($rest)*] $($def)*);
    };
    (@munch [$($acc:tt)*] [extension $($rest:ident)*] $($def:tt)*) => {
        kserve_struct!(@munch [$($acc)*
            /// Minimum number of replicas (KServe's default 1; 0 enables scale to zero).
            #[serde(skip_serializing_if = "Option::is_none")]
            pub min_replicas: Option<i32>,
            /// Maximum number of replicas (0 or unset: no limit).
            #[serde(skip_serializing_if = "Option::is_none")]
            pub max_replicas: Option<i32>,
            /// Autoscaling target for `scaleMetric` (concurrency per replica, rps, % utilisation).
            #[serde(skip_serializing_if = "Option::is_none")]
            pub scale_target: Option<i32>,
            /// The autoscaling metric.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub scale_metric: Option<ScaleMetric>,
            /// How `scaleTarget` is read for cpu / memory (HPA).
            #[serde(skip_serializing_if = "Option::is_none")]
            pub scale_metric_type: Option<MetricTargetType>,
            /// HPA / KEDA autoscaling (raw deployment mode).
            #[serde(skip_serializing_if = "Option::is_none")]
            pub auto_scaling: Option<AutoScalingSpec>,
            /// Hard limit of requests in flight per replica (0: no limit).
            #[serde(skip_serializing_if = "Option::is_none")]
            pub container_concurrency: Option<i64>,
            /// Request timeout in seconds.
            #[serde(rename = "timeout", skip_serializing_if = "Option::is_none")]
            pub timeout: Option<i64>,
            /// Percentage of traffic for the latest ready revision (canary rollout).
            #[serde(skip_serializing_if = "Option::is_none")]
            pub canary_traffic_percent: Option<i64>,
            /// Request/response payload logging.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub logger: Option<LoggerSpec>,
            /// Server-side request batching.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub batcher: Option<Batcher>,
            /// Labels added to the component's replicas.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub labels: Option<BTreeMap<String, String>>,
            /// Annotations added to the component's replicas (Knative autoscaling keys apply).
            #[serde(skip_serializing_if = "Option::is_none")]
            pub annotations: Option<BTreeMap<String, String>>,
            /// Deployment strategy (raw deployment mode).
            #[serde(skip_serializing_if = "Option::is_none")]
            pub deployment_strategy: Option<k8s_openapi::api::apps::v1::DeploymentStrategy>,
        ] [$($rest)*] $($def)*);
    };
    (@munch [$($acc:tt)*] [predictor_ext $($rest:ident)*] $($def:tt)*) => {
        kserve_struct!(@munch [$($acc)*
            /// Where the model is: `s3://`, `gs://`, `https://`, `pvc://`, `file://`, a path, …
            #[serde(rename = "storageUri", skip_serializing_if = "Option::is_none")]
            pub storage_uri: Option<String>,
            /// Version of the framework server image.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub runtime_version: Option<String>,
            /// Inference protocol the model is served with.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub protocol_version: Option<ProtocolVersion>,
            /// Storage by key in a storage secret (alternative to `storageUri`).
            #[serde(skip_serializing_if = "Option::is_none")]
            pub storage: Option<ModelStorageSpec>,
            /// Confidential computing settings.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub confidential: Option<ConfidentialSpec>,
        ] [$($rest)*] $($def)*);
    };
    (@munch [$($acc:tt)*] [explainer_ext $($rest:ident)*] $($def:tt)*) => {
        kserve_struct!(@munch [$($acc)*
            /// Where the explainer's artifacts are.
            #[serde(rename = "storageUri", skip_serializing_if = "Option::is_none")]
            pub storage_uri: Option<String>,
            /// Version of the explainer image.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub runtime_version: Option<String>,
            /// Explainer options passed as `--key value`.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub config: Option<BTreeMap<String, String>>,
            /// Storage by key in a storage secret.
            #[serde(skip_serializing_if = "Option::is_none")]
            pub storage: Option<ModelStorageSpec>,
        ] [$($rest)*] $($def)*);
    };
}

pub(crate) use kserve_struct;
