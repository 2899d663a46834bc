//! A conformance suite for the Open Inference Protocol ("V2", REST and gRPC) that certifies
//! any server.
//!
//! The suite is a [catalog](catalog) of cases. Each case has a stable ID, the clause of the
//! specification it checks (in our words, with the section it comes from), a [`Level`]
//! (MUST, SHOULD, MAY or the name of an extension), a [`Transport`] and a check that ends in
//! pass, fail or skip with a reason, never in a panic. The [runner](runner) discovers what the
//! server offers ([`Target`] → [`Ctx`]), runs the selected cases one at a time and produces a
//! [`Report`] that renders as a text table, JSON, JUnit XML or Markdown.
//!
//! Cases work against any model: inputs are synthesised from the model's metadata
//! ([`synth`]). When the suite's own [reference models](reference) are loaded on the server,
//! further cases check every datatype and exact numeric results.

pub mod cases;
pub mod catalog;
pub mod context;
pub mod error;
pub mod http;
pub mod onnx;
pub mod reference;
pub mod report;
pub mod runner;
pub mod synth;

pub use catalog::{Case, Level, Outcome, Stop, Transport};
pub use context::{Ctx, Target};
pub use error::{Error, Result};
pub use report::{Format, Report};
pub use runner::{LevelFilter, run};
