//! oxserve-controller: the control plane's brain and its reconcile loop.
//!
//! The pure parts — [`split`] (the deterministic weighted splitter), [`routes`] (the route
//! table the control plane hands the router), [`metrics`] (what the router reports to the
//! autoscaler), [`revision`] and [`traffic`] (revisions, traffic plans, derived status) and
//! [`autoscaler`] (Knative's KPA) — do no I/O and are shared by the local and Kubernetes
//! backends and the router. [`local`] is the local backend: replicas as child processes.

pub mod autoscaler;
pub mod backend;
#[cfg(feature = "kubernetes")]
pub mod kubernetes;
pub mod local;
pub mod metrics;
pub mod platform;
pub mod revision;
pub mod routes;
pub mod split;
pub mod traffic;
