//! `soak` (bounded, 5 min by default): mixed REST and gRPC open-loop traffic, a canary flip
//! a third of the way in and a `kill -9` of one replica half way. No request may be lost
//! except those in flight on the killed replica at the moment it died, and those must fail
//! fast with 502 (REST) or `UNAVAILABLE` (gRPC), not hang until the client gives up.

use crate::record::{Protocol, Sample, grpc_status};
use crate::verdict::Criterion;

/// Clock slack when deciding whether a request was in flight at the kill, ms.
pub const KILL_SLACK_MS: f64 = 5.0;
/// gRPC `UNAVAILABLE`.
pub const GRPC_UNAVAILABLE: i32 = 14;

/// Whether `s` was in flight at `kill_ms`.
pub fn in_flight_at(s: &Sample, kill_ms: f64) -> bool {
    s.t_ms <= kill_ms + KILL_SLACK_MS && s.end_ms() >= kill_ms - KILL_SLACK_MS
}

/// The criteria; `kill_ms` is `None` where no replica could be killed (remote targets),
/// `timeout_ms` the client's timeout (a request that reached it "hung").
pub fn judge(samples: &[Sample], kill_ms: Option<f64>, timeout_ms: f64) -> Vec<Criterion> {
    let failed: Vec<&Sample> = samples.iter().filter(|s| !s.ok()).collect();
    let excused = |s: &Sample| kill_ms.is_some_and(|k| in_flight_at(s, k));
    let lost = failed.iter().filter(|s| !excused(s)).count();
    let rest = samples.iter().filter(|s| s.protocol == Protocol::Rest).count();
    let mut out = vec![Criterion::check(
        "no lost request (except in flight on the killed replica)",
        "0 other failures",
        format!(
            "{lost} lost of {} ({rest} REST, {} gRPC); {} failed in flight at the kill",
            samples.len(),
            samples.len() - rest,
            failed.len() - lost
        ),
        lost == 0 && !samples.is_empty(),
    )];
    match kill_ms {
        Some(k) => {
            let at_kill: Vec<&&Sample> = failed.iter().filter(|s| in_flight_at(s, k)).collect();
            let wrong: Vec<u16> = at_kill
                .iter()
                .filter(|s| match s.protocol {
                    Protocol::Rest => s.status != 502,
                    Protocol::Grpc => s.status != grpc_status(GRPC_UNAVAILABLE),
                })
                .map(|s| s.status)
                .collect();
            out.push(Criterion::check(
                "the killed replica's requests fail with 502 / UNAVAILABLE",
                "every failure at the kill is 502 (REST) or UNAVAILABLE (gRPC)",
                if wrong.is_empty() {
                    format!("{} failed, all 502 / UNAVAILABLE", at_kill.len())
                } else {
                    format!("{} failed, other statuses {wrong:?} (0: no response)", at_kill.len())
                },
                wrong.is_empty(),
            ));
        }
        None => out.push(Criterion::skipped(
            "the killed replica's requests fail with 502 / UNAVAILABLE",
            "502 / UNAVAILABLE",
            "no replica process to kill on this target",
        )),
    }
    let slowest = samples.iter().map(|s| s.latency_us as f64 / 1000.0).fold(0.0, f64::max);
    let hung = samples
        .iter()
        .filter(|s| s.status == 0 || s.latency_us as f64 / 1000.0 >= timeout_ms)
        .count();
    out.push(Criterion::check(
        "no request hung",
        format!("every request answered before the {:.0} s client timeout", timeout_ms / 1000.0),
        format!("{hung} hung; slowest {slowest:.1} ms"),
        hung == 0,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::tests::ok;
    use crate::verdict::{Outcome, all_passed};

    fn run() -> Vec<Sample> {
        (0..1000)
            .map(|i| Sample {
                protocol: if i % 2 == 0 { Protocol::Rest } else { Protocol::Grpc },
                ..ok(i as f64 * 10.0, "r")
            })
            .collect()
    }

    #[test]
    fn failures_in_flight_at_the_kill_are_excused_when_502() {
        let mut s = run();
        // Sent at 4990 (20 ms long) and 5000 ms (2 ms): in flight at a kill at 5001 ms.
        s[499].status = grpc_status(GRPC_UNAVAILABLE);
        s[499].latency_us = 20_000;
        s[500].status = 502;
        assert!(all_passed(&judge(&s, Some(5001.0), 10_000.0)));
    }

    #[test]
    fn each_criterion_fails() {
        let outcomes = |s: &[Sample], k| {
            judge(s, k, 10_000.0).into_iter().map(|c| c.outcome).collect::<Vec<_>>()
        };
        let mut s = run();
        s[700].status = 503;
        assert_eq!(outcomes(&s, Some(5001.0))[0], Outcome::Fail);
        let mut s = run();
        s[500].status = 504;
        assert_eq!(outcomes(&s, Some(5001.0)), [Outcome::Pass, Outcome::Fail, Outcome::Pass]);
        let mut s = run();
        s[500].status = 0;
        s[500].latency_us = 10_000_000;
        assert_eq!(outcomes(&s, Some(5001.0)), [Outcome::Pass, Outcome::Fail, Outcome::Fail]);
        assert_eq!(outcomes(&run(), None)[1], Outcome::Skipped);
    }
}
