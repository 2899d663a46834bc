//! Integration tests of oxserve-api: the sample manifests, snapshots of their normalized form,
//! error messages, round trips and the generated CRDs.

mod samples;
