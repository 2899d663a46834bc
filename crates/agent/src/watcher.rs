//! watcher (placeholder).
