//! Runs the selected cases one after another (some change server state, e.g. unloading a
//! model) and collects a [`Report`].

use std::time::{Duration, Instant};

use crate::catalog::{Case, Level, Outcome};
use crate::context::Ctx;
use crate::report::{CaseResult, Report};

/// Which levels to run (`--level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LevelFilter {
    /// MUST cases and the cases of advertised extensions: what gates.
    Must,
    /// Those and SHOULD cases.
    Should,
    /// Everything, MAY included.
    #[default]
    All,
}

impl LevelFilter {
    /// True when cases of `level` run under this filter.
    pub fn includes(self, level: Level) -> bool {
        matches!(
            (self, level),
            (_, Level::Must | Level::Extension(_))
                | (LevelFilter::Should | LevelFilter::All, Level::Should)
                | (LevelFilter::All, Level::May)
        )
    }
}

impl std::str::FromStr for LevelFilter {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "must" => Ok(LevelFilter::Must),
            "should" => Ok(LevelFilter::Should),
            "all" => Ok(LevelFilter::All),
            other => Err(format!("unknown level \"{other}\" (must, should or all)")),
        }
    }
}

/// Longest a single case may take before it counts as failed.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs every case of `cases` that `filter` selects against `ctx`, in order. Cases of an
/// extension the server does not advertise are skipped.
pub async fn run(ctx: &Ctx, cases: &[Case], filter: LevelFilter) -> Report {
    let mut results = Vec::new();
    for case in cases.iter().filter(|c| filter.includes(c.level)) {
        let started = Instant::now();
        let outcome = match case.level {
            Level::Extension(ext) if !ctx.advertises(ext) => {
                Outcome::Skip(format!("the server does not advertise the {ext} extension"))
            }
            _ => match tokio::time::timeout(CASE_TIMEOUT, (case.check)(ctx)).await {
                Ok(Ok(())) => Outcome::Pass,
                Ok(Err(stop)) => stop.into(),
                Err(_) => Outcome::Fail(format!("no answer within {}s", CASE_TIMEOUT.as_secs())),
            },
        };
        results.push(CaseResult {
            id: case.id.clone(),
            level: case.level,
            transport: case.transport,
            section: case.section,
            clause: case.clause.clone(),
            outcome,
            millis: started.elapsed().as_millis() as u64,
        });
    }
    Report {
        rest: ctx.rest.clone(),
        grpc: ctx.target.grpc.clone(),
        model: ctx.model_name.clone(),
        extensions: ctx.extensions.clone().unwrap_or_default(),
        reference_models: ctx.reference.keys().cloned().collect(),
        notes: ctx.notes.clone(),
        results,
    }
}
