//! Integration tests of oxserve-api: the sample manifests, snapshots of their normalized form,
//! error messages, runtime selection, warnings, round trips and the generated CRDs.

mod crds;
mod errors;
mod roundtrip;
mod samples;
mod select;
mod warnings;
