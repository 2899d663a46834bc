//! Integration tests of oxserve-api: sample manifests, snapshots, error messages.
