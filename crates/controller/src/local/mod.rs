//! The local backend: replicas as `oxserve serve` child processes, state in a directory.
