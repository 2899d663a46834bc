//! Tests of the Kubernetes backend (feature `kubernetes`): the desired state as YAML
//! snapshots, the reconciler and leader election against a fake API server (a
//! `tower_test` mock pair), the manifests and workflows, and the kind e2e suite (ignored
//! here; `cargo xtask kind e2e` runs it).

mod desired;
mod e2e;
mod fake;
mod lease;
mod manifests;
mod rbac;
mod reconcile;
mod tls;
