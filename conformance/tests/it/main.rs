//! Integration tests of the conformance suite: it passes against oxserve in-process, and each
//! clause a deliberately broken server violates makes exactly the cases of that clause fail.

mod doubles;
mod support;

use oxserve_conformance::cases::catalog;
use oxserve_conformance::{Level, Outcome};

/// IDs are unique, stable-looking and every case says what it checks and where from.
#[test]
fn catalog_is_well_formed() {
    let cases = catalog();
    let mut ids: Vec<&str> = cases.iter().map(|c| c.id.as_str()).collect();
    ids.sort_unstable();
    let before = ids.len();
    ids.dedup();
    assert_eq!(before, ids.len(), "duplicate case IDs");
    for c in &cases {
        let ok_id = c.id.starts_with("rest.") || c.id.starts_with("grpc.");
        assert!(ok_id && !c.id.contains(' '), "bad id {}", c.id);
        assert!(!c.clause.is_empty() && !c.section.is_empty(), "{} lacks clause or section", c.id);
    }
    assert!(cases.iter().any(|c| matches!(c.level, Level::Extension(_))));
}

/// Against oxserve serving the reference models every case runs and passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oxserve_passes_every_case() {
    let server = support::Oxserve::start().await;
    let report = support::run_suite(&server.rest, Some(&server.grpc)).await;
    let not_passed: Vec<String> = report
        .results
        .iter()
        .filter(|r| r.outcome != Outcome::Pass)
        .map(|r| format!("{} {}: {}", r.id, r.outcome.label(), r.outcome.reason()))
        .collect();
    server.stop().await;
    assert!(
        not_passed.is_empty(),
        "cases that did not pass against oxserve:\n{}",
        not_passed.join("\n")
    );
}
