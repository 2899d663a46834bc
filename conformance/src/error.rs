//! Errors that stop the suite before any case runs (bad arguments, unreachable setup).
//!
//! A failing case is not an error: it is an [`Outcome`](crate::Outcome) in the report.

/// Why the suite could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The REST base URL or gRPC address could not be used.
    #[error("invalid target: {0}")]
    Target(String),
    /// No model to test was given and none could be discovered.
    #[error("no model under test: {0}")]
    NoModel(String),
    /// Writing a report or a reference model failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being written.
        context: String,
        /// The underlying failure.
        #[source]
        source: std::io::Error,
    },
}

/// The suite's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
