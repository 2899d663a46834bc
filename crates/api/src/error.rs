//! Errors: a field path and a reason, and the positioned form `source:doc N: path: reason`.

use std::fmt;

/// What is wrong and where: `spec.predictor.minReplicas: must not be negative, got -1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted field path with `[i]` for list items (`spec.canary[0].predictor.name`); empty
    /// when the whole document is at fault.
    pub path: String,
    /// Lowercase, no trailing period.
    pub reason: String,
}

impl FieldError {
    /// A field error at `path`.
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> FieldError {
        FieldError { path: path.into(), reason: reason.into() }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "{}: {}", self.path, self.reason)
        }
    }
}

/// A [`FieldError`] in document `doc` (1-based) of `source` (a file name or `-`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The file name the text came from.
    pub source: String,
    /// 1-based index of the YAML document (or JSON value) in the file.
    pub doc: usize,
    /// The field and the reason.
    pub error: FieldError,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:doc {}: {}", self.source, self.doc, self.error)
    }
}

/// Every error found in a text, one per line when displayed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseErrors(pub Vec<ParseError>);

impl fmt::Display for ParseErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseErrors {}

/// The one error type of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A manifest text did not parse, default or validate.
    #[error("{0}")]
    Parse(ParseErrors),
    /// A resource is valid on its own but cannot be served as asked (runtime selection).
    #[error("{0}")]
    Field(FieldError),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
