//! logger (placeholder).
