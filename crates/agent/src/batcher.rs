//! Batching proxy (placeholder).
