//! The catalog's vocabulary: a [`Case`] with its stable ID, clause, [`Level`], [`Transport`]
//! and check, and the [`Outcome`] a check ends in.
//!
//! Checks are async functions of the discovered [`Ctx`] returning [`Checked`]: `Ok(())` is a
//! pass, [`Stop::Fail`] and [`Stop::Skip`] carry the reason. The [`fail!`](crate::fail),
//! [`skip!`](crate::skip) and [`ensure!`](crate::ensure) macros keep checks short.

use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Serialize;

use crate::context::Ctx;

/// How strongly the specification asks for what a case checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// A requirement: a server that fails it does not conform.
    Must,
    /// A recommendation: failing it is reported but does not fail the run.
    Should,
    /// Optional behaviour, checked when asked for (`--level all`).
    May,
    /// A requirement of the named protocol extension, checked only when the server advertises
    /// the extension in its metadata; then it gates like a MUST.
    Extension(&'static str),
}

impl Level {
    /// True when a failure of a case at this level makes the run fail.
    pub fn gates(self) -> bool {
        matches!(self, Level::Must | Level::Extension(_))
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Level::Must => f.write_str("MUST"),
            Level::Should => f.write_str("SHOULD"),
            Level::May => f.write_str("MAY"),
            Level::Extension(name) => write!(f, "ext:{name}"),
        }
    }
}

impl Serialize for Level {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The protocol binding a case exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Transport {
    /// HTTP/REST with JSON (and binary tensor data).
    #[serde(rename = "REST")]
    Rest,
    /// gRPC (`inference.GRPCInferenceService`).
    #[serde(rename = "gRPC")]
    Grpc,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Rest => "REST",
            Transport::Grpc => "gRPC",
        })
    }
}

/// How a case ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "reason", rename_all = "lowercase")]
pub enum Outcome {
    /// The server did what the clause asks.
    Pass,
    /// The server did not; the reason says what it did instead.
    Fail(String),
    /// The case could not apply (extension not advertised, no suitable model, …).
    Skip(String),
}

impl Outcome {
    /// `pass`, `fail` or `skip`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail(_) => "fail",
            Outcome::Skip(_) => "skip",
        }
    }

    /// The reason of a failure or skip, empty for a pass.
    pub fn reason(&self) -> &str {
        match self {
            Outcome::Pass => "",
            Outcome::Fail(r) | Outcome::Skip(r) => r,
        }
    }
}

/// Why a check stopped before passing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The clause is violated; what the server did.
    Fail(String),
    /// The case does not apply to this server or model.
    Skip(String),
}

impl From<Stop> for Outcome {
    fn from(s: Stop) -> Outcome {
        match s {
            Stop::Fail(r) => Outcome::Fail(r),
            Stop::Skip(r) => Outcome::Skip(r),
        }
    }
}

/// The result of a check: `Ok(())` passes.
pub type Checked = Result<(), Stop>;

/// A check: an async function of the context.
pub type Check = Arc<dyn for<'a> Fn(&'a Ctx) -> BoxFuture<'a, Checked> + Send + Sync>;

/// Wraps a function returning a boxed future into a [`Check`].
pub fn check<F>(f: F) -> Check
where
    F: for<'a> Fn(&'a Ctx) -> BoxFuture<'a, Checked> + Send + Sync + 'static,
{
    Arc::new(f)
}

/// One entry of the catalog.
#[derive(Clone)]
pub struct Case {
    /// Stable identifier, `<transport>.<area>.<what>`, e.g. `rest.infer.id-echo`.
    pub id: String,
    /// The requirement, in our words.
    pub clause: String,
    /// Where the requirement comes from (specification section).
    pub section: &'static str,
    /// How strongly it is required.
    pub level: Level,
    /// REST or gRPC.
    pub transport: Transport,
    /// The check itself.
    pub check: Check,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Case").field("id", &self.id).field("level", &self.level).finish()
    }
}

impl Case {
    /// A case; see the field docs.
    pub fn new(
        id: impl Into<String>,
        level: Level,
        transport: Transport,
        section: &'static str,
        clause: impl Into<String>,
        check: Check,
    ) -> Case {
        Case { id: id.into(), clause: clause.into(), section, level, transport, check }
    }
}

/// Ends the check with a failure: `fail!("status {}", s)`.
#[macro_export]
macro_rules! fail {
    ($($arg:tt)*) => {
        return Err($crate::catalog::Stop::Fail(format!($($arg)*)))
    };
}

/// Ends the check with a skip: `skip!("no BYTES input")`.
#[macro_export]
macro_rules! skip {
    ($($arg:tt)*) => {
        return Err($crate::catalog::Stop::Skip(format!($($arg)*)))
    };
}

/// Fails the check unless `cond` holds: `ensure!(status == 200, "status {status}")`.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            $crate::fail!($($arg)*);
        }
    };
}
