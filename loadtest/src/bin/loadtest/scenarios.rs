//! The six scenarios as they run against a [`Platform`]: apply the manifests, drive the load,
//! poll the platform, and hand what was recorded to the judgement in
//! [`oxserve_loadtest::scenario`].

use std::cell::RefCell;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use oxserve_loadtest::analysis::{histogram, percentile_ms, split, window};
use oxserve_loadtest::openloop::Schedule;
use oxserve_loadtest::prom;
use oxserve_loadtest::record::Recorder;
use oxserve_loadtest::scenario::{
    self, GRACE_S, STABLE_WINDOW_S, Service, isvc_path, revision, tm_path, trained_model_yaml,
};
use oxserve_loadtest::verdict::Criterion;
use serde_json::{Value, json};

use crate::drive::{self, Call, GooseTiming, Pace, Start};
use crate::platform::{Platform, signal};

/// One row of the xgb-binary fixture (10 features).
const XGB_ROW: [f32; 10] = [0.5, 2.39, 0.087, -1.6, 0.1, -0.75, -1.4, 2.65, 2.42, -0.08];
/// One row of the mlp fixture (8 features).
const MLP_ROW: [f32; 8] = [-0.06, -1.04, -0.35, -0.51, -0.49, 0.75, 0.65, -0.58];

/// What every scenario gets.
pub struct Run<'a> {
    pub platform: &'a Platform,
    pub recorder: Recorder,
    /// `file://…/fixtures/models` or another base the platform can pull from.
    pub model_base: String,
    /// Shorter steps and smaller counts (the `cargo xtask test` gate).
    pub quick: bool,
    pub duration: Option<Duration>,
    pub rate: Option<f64>,
    pub models: Option<usize>,
    pub requests: Option<usize>,
    /// Where goose writes its own run folder.
    pub goose_dir: PathBuf,
    /// The `oxserve-sleep` binary (the autoscale scenario's predictor) and its delay.
    pub sleep_server: PathBuf,
    pub delay_ms: u64,
}

/// What a scenario hands back for the report.
pub struct Outcome {
    pub figures: Value,
    pub criteria: Vec<Criterion>,
}

impl Run<'_> {
    fn xgb(&self, name: &str) -> Service {
        Service::new(name, "xgboost", &format!("{}/xgb-binary", self.model_base))
    }

    fn xgb_call(&self, model: &str) -> Call {
        Call::one(model, drive::rest_body("input-0", &XGB_ROW))
    }

    async fn apply(&self, svc: &Service, what: &str) -> Result<()> {
        self.platform.put(&isvc_path("default", &svc.name), &svc.yaml()).await?;
        self.recorder.event(format!("apply {}: {what}", svc.name));
        Ok(())
    }

    async fn wait_ready(&self, service: &str) -> Result<()> {
        self.platform
            .wait_for(service, "a ready replica", Duration::from_secs(120), |r| {
                r.iter().any(|r| r.ready > 0)
            })
            .await?;
        Ok(())
    }

    fn seconds(&self, full: u64, quick: u64) -> Duration {
        self.duration.unwrap_or(Duration::from_secs(if self.quick { quick } else { full }))
    }
}

/// `autoscale`: closed-loop steps 1 → 16 → 64 → 0 at target concurrency 4, against a
/// predictor whose every request takes `delay_ms` (`oxserve-sleep`), so the requests in
/// flight at the router are the ones the users have in flight.
pub async fn autoscale(run: &Run<'_>) -> Result<Outcome> {
    let (target, max) = (4.0, 8);
    let mut svc = Service::new("autoscale", "sleep", "");
    svc.command =
        vec![run.sleep_server.display().to_string(), format!("--delay-ms={}", run.delay_ms)];
    svc.min_replicas = Some(0);
    svc.max_replicas = Some(max);
    svc.autoscaling =
        vec![("target".into(), "4".into()), ("target-utilization-percentage".into(), "100".into())];
    run.apply(&svc, &format!("target 4, max 8, oxserve-sleep {} ms per request", run.delay_ms))
        .await?;
    run.wait_ready(&svc.name).await?;
    let step = run.seconds(12, 8);
    let (stop, poller) =
        run.platform.poll(vec![svc.name.clone()], Duration::from_millis(250), run.recorder.clone());
    let s = step.as_secs();
    let plan = format!("1,0s;1,{s}s;16,0s;16,{s}s;64,0s;64,{s}s;0,0s");
    run.recorder.event(format!("goose test plan {plan}"));
    let call = run.xgb_call(&svc.name);
    drive::goose(
        &run.platform.rest,
        64,
        GooseTiming::Plan(&plan),
        call,
        Pace::Closed,
        &run.recorder,
        &run.goose_dir,
    )
    .await?;
    run.recorder.event("load stopped");
    // The plan starts with goose's first request (goose takes a moment to set up).
    let started = run.recorder.snapshot().0.first().map_or(0.0, |s| s.t_ms);
    let steps: Vec<scenario::autoscale::Step> = [1, 16, 64]
        .iter()
        .enumerate()
        .map(|(i, &c)| scenario::autoscale::Step {
            concurrency: c,
            start_ms: started + (i as u64 * s * 1000) as f64,
            end_ms: started + ((i as u64 + 1) * s * 1000) as f64,
        })
        .collect();
    // Watch the scale-down to zero (bounded: the judgement says whether it came in time).
    let bound = Duration::from_secs_f64(STABLE_WINDOW_S + GRACE_S + 15.0);
    let _ = run
        .platform
        .wait_for(&svc.name, "zero replicas", bound, |r| {
            r.iter().all(|r| r.ready == 0 && r.desired == 0)
        })
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = stop.send(true);
    let _ = poller.await;
    let (samples, ticks, _) = run.recorder.snapshot();
    let plan = scenario::autoscale::Plan { target, max_replicas: max, steps: steps.clone() };
    let per_step: Vec<Value> = steps
        .iter()
        .map(|st| {
            let h = histogram(window(&samples, st.start_ms, st.end_ms));
            let seen = scenario::autoscale::observed(&ticks, st);
            json!({
                "concurrency": st.concurrency,
                "requests": h.len(),
                "rps": h.len() as f64 / step.as_secs_f64(),
                "p50_ms": percentile_ms(&h, 0.5),
                "p99_ms": percentile_ms(&h, 0.99),
                "client_in_flight_mean": seen.client_in_flight,
                "kpa_stable_at_end": seen.kpa_stable_at_end,
                "kpa_panic_max": seen.kpa_panic_max,
            })
        })
        .collect();
    Ok(Outcome {
        figures: json!({
            "step_s": s,
            "target": target,
            "max_replicas": max,
            "delay_ms": run.delay_ms,
            "steps": per_step,
        }),
        criteria: scenario::autoscale::judge(&plan, &samples, &ticks),
    })
}

/// `scale-from-zero`: a burst of concurrent requests at a service with no replica.
pub async fn scale_from_zero(run: &Run<'_>) -> Result<Outcome> {
    let n = run.requests.unwrap_or(if run.quick { 100 } else { 1000 });
    let mut svc = run.xgb("cold");
    svc.min_replicas = Some(0);
    run.apply(&svc, "minReplicas 0").await?;
    run.wait_ready(&svc.name).await?;
    run.platform
        .wait_for(&svc.name, "scale to zero", Duration::from_secs(120), |r| {
            r.iter().all(|r| r.ready == 0 && r.desired == 0)
        })
        .await?;
    let ready_before: u32 = run.platform.revisions(&svc.name).await?.iter().map(|r| r.ready).sum();
    let (stop, poller) =
        run.platform.poll(vec![svc.name.clone()], Duration::from_millis(100), run.recorder.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    run.recorder.event(format!("goose starts {n} users, one request each"));
    let call = run.xgb_call(&svc.name);
    drive::goose(
        &run.platform.rest,
        n,
        GooseTiming::Once,
        call,
        Pace::Closed,
        &run.recorder,
        &run.goose_dir,
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = stop.send(true);
    let _ = poller.await;
    let (samples, ticks, _) = run.recorder.snapshot();
    // The burst starts with the first request sent; goose's set-up before it is not counted.
    let burst_ms = samples.first().map_or(0.0, |s| s.t_ms);
    let spread = samples.last().map_or(0.0, |s| s.t_ms) - burst_ms;
    let figures = scenario::scale_from_zero::figures(&samples, &ticks, burst_ms);
    Ok(Outcome {
        figures: json!({ "requests": n, "send_spread_ms": spread, "burst": figures }),
        criteria: scenario::scale_from_zero::judge(n, ready_before, burst_ms, &samples, &ticks),
    })
}

/// `canary`: 10 %, 50 %, promote under constant open-loop load.
pub async fn canary(run: &Run<'_>) -> Result<Outcome> {
    let phase = run.seconds(20, 10);
    let rate = run.rate.unwrap_or(if run.quick { 50.0 } else { 100.0 });
    let mut v1 = run.xgb("canary");
    v1.min_replicas = Some(1);
    v1.max_replicas = Some(1);
    run.apply(&v1, "v1").await?;
    run.wait_ready(&v1.name).await?;
    let mut v2 = v1.clone();
    v2.env = vec![("OXSERVE_LOADTEST_VERSION".into(), "2".into())];
    let schedule = Schedule {
        rate,
        users: Schedule::users_for(rate, Duration::from_secs(5)),
        duration: phase * 4,
    };
    let begin = Start::default();
    let (stop, poller) =
        run.platform.poll(vec![v1.name.clone()], Duration::from_millis(250), run.recorder.clone());
    let mut applies = Vec::new();
    let load = drive::goose(
        &run.platform.rest,
        schedule.users,
        GooseTiming::RunTime(phase * 4 + Duration::from_secs(2)),
        run.xgb_call(&v1.name),
        Pace::Open { schedule, start: begin.clone() },
        &run.recorder,
        &run.goose_dir,
    );
    let changes = async {
        let start = begin.wait().await;
        for (i, pct) in [Some(10), Some(50), None].into_iter().enumerate() {
            tokio::time::sleep_until((start + phase * (i as u32 + 1)).into()).await;
            let mut v = v2.clone();
            v.canary_percent = pct;
            let what = pct.map_or("v2 promoted".to_owned(), |p| format!("v2 canary {p} %"));
            let at = run.recorder.now_ms();
            run.apply(&v, &what).await?;
            applies.push(at);
        }
        anyhow::Ok(())
    };
    let (load, changes) = tokio::join!(load, changes);
    let load = load?;
    changes?;
    let _ = stop.send(true);
    let _ = poller.await;
    let (samples, _, _) = run.recorder.snapshot();
    let start_ms = run.recorder.ms(begin.wait().await);
    let (r1, r2) = (revision(&v1.name, 1), revision(&v1.name, 2));
    let end = start_ms + (phase * 4).as_secs_f64() * 1000.0;
    let bounds = [start_ms, applies[0], applies[1], applies[2], end];
    let phases: Vec<scenario::canary::Phase> =
        ["baseline (v1 100 %)", "10 % canary", "50 % canary", "promoted"]
            .iter()
            .zip([0.0, 10.0, 50.0, 100.0])
            .enumerate()
            .map(|(i, (name, pct))| scenario::canary::Phase {
                name: name.to_string(),
                apply_ms: bounds[i],
                end_ms: bounds[i + 1],
                stable: r1.clone(),
                canary: r2.clone(),
                canary_pct: pct,
            })
            .collect();
    let settle = (phase.as_secs_f64() * 1000.0 / 2.0).min(8000.0);
    let mut criteria = scenario::canary::judge(&phases, settle, &samples);
    // The load generator's own pace is the machine's, not the platform's: the quick form (a
    // gate on a small CI machine) tolerates 1 % of slots late; the full run none.
    let allowed = if run.quick { schedule.total() / 100 } else { 0 };
    criteria.push(Criterion::check(
        "open loop kept its schedule",
        if allowed == 0 {
            "no slot a whole round late (user pool large enough)".to_owned()
        } else {
            format!("at most {allowed} slots a whole round late (quick: the machine's pace)")
        },
        format!("{} late of {}", load.missed_slots, schedule.total()),
        load.missed_slots <= allowed,
    ));
    let splits: Vec<Value> = phases
        .iter()
        .map(
            |p| json!({ "phase": p.name, "split": split(&samples, p.apply_ms + settle, p.end_ms) }),
        )
        .collect();
    Ok(Outcome {
        figures: json!({ "rate": rate, "phase_s": phase.as_secs(), "settle_s": settle / 1000.0, "splits": splits }),
        criteria,
    })
}

/// `batching`: the MLP without and with the batcher at c = 1, 8, 64.
pub async fn batching(run: &Run<'_>) -> Result<Outcome> {
    let d = run.seconds(10, 4);
    let mlp = |name: &str| {
        let mut s = Service::new(name, "onnx", &format!("{}/mlp", run.model_base));
        s.min_replicas = Some(1);
        s.max_replicas = Some(1);
        s
    };
    let plain = mlp("mlp-plain");
    let mut batched = mlp("mlp-batched");
    batched.batcher = Some((32, 1));
    run.apply(&plain, "no batcher").await?;
    run.apply(&batched, "batcher maxBatchSize 32, maxLatency 1 ms").await?;
    run.wait_ready(&plain.name).await?;
    run.wait_ready(&batched.name).await?;
    let mut cells = Vec::new();
    let mut sizes = Vec::new();
    for svc in [&plain, &batched] {
        let before = batch_sizes(run, &revision(&svc.name, 1)).await;
        for c in [1u32, 8, 64] {
            let from = run.recorder.now_ms();
            run.recorder.event(format!("{} c={c}", svc.name));
            let call = Call::one(&svc.name, drive::rest_body("input", &MLP_ROW));
            drive::goose(
                &run.platform.rest,
                c as usize,
                GooseTiming::RunTime(d),
                call,
                Pace::Closed,
                &run.recorder,
                &run.goose_dir,
            )
            .await?;
            let to = run.recorder.now_ms();
            let (samples, _, _) = run.recorder.snapshot();
            let w: Vec<_> = window(&samples, from, to).cloned().collect();
            let h = histogram(&w);
            // Over the requests' own span: goose's set-up before the first is not load.
            let first = w.first().map_or(from, |s| s.t_ms);
            let last = w.iter().map(|s| s.end_ms()).fold(first, f64::max);
            let secs = ((last - first) / 1000.0).max(0.001);
            cells.push(scenario::batching::Cell {
                batched: svc.batcher.is_some(),
                concurrency: c,
                requests: h.len(),
                errors: w.iter().filter(|s| !s.ok()).count() as u64,
                rps: (h.len() as f64 / secs * 10.0).round() / 10.0,
                p50_ms: percentile_ms(&h, 0.5),
                p99_ms: percentile_ms(&h, 0.99),
            });
        }
        let after = batch_sizes(run, &revision(&svc.name, 1)).await;
        sizes.push(match (before, after) {
            (Some(b), Some(a)) => Some(scenario::batching::BatchSizes {
                executions: a.executions - b.executions,
                rows: a.rows - b.rows,
                buckets: a
                    .buckets
                    .iter()
                    .zip(b.buckets.iter().chain(std::iter::repeat(&(0.0, 0.0))))
                    .map(|(x, y)| (x.0, x.1 - y.1))
                    .collect(),
            }),
            _ => None,
        });
    }
    let top = 64;
    Ok(Outcome {
        figures: json!({
            "duration_s": d.as_secs(),
            "cells": cells,
            "batch_sizes": { "plain": sizes[0], "batched": sizes[1] },
            "gain_at_64": scenario::batching::gain(&cells, top),
        }),
        criteria: scenario::batching::judge(&cells, sizes[1].as_ref(), sizes[0].as_ref()),
    })
}

/// The `oxserve_batch_size` histogram summed over a revision's local replicas.
async fn batch_sizes(run: &Run<'_>, revision: &str) -> Option<scenario::batching::BatchSizes> {
    let urls = run.platform.replica_urls(revision);
    if urls.is_empty() {
        return None;
    }
    let mut total = scenario::batching::BatchSizes::default();
    for url in urls {
        let text =
            run.platform.http.get(format!("{url}/metrics")).send().await.ok()?.text().await.ok()?;
        let m = prom::parse(&text);
        total.executions += prom::sum(&m, "oxserve_batch_size_count", &[]);
        total.rows += prom::sum(&m, "oxserve_batch_size_sum", &[]);
        total.buckets = prom::per_bucket(&prom::buckets(&m, "oxserve_batch_size", &[]));
    }
    Some(total)
}

/// `multi-model`: N TrainedModels into one service while a hot model takes load.
pub async fn multi_model(run: &Run<'_>) -> Result<Outcome> {
    let n = run.models.unwrap_or(if run.quick { 20 } else { 1000 });
    let baseline = Duration::from_secs(5);
    let load_window = run.seconds(60, 20);
    let rate = run.rate.unwrap_or(50.0);
    let mut parent = run.xgb("mm");
    parent.min_replicas = Some(1);
    parent.max_replicas = Some(1);
    run.apply(&parent, "parent").await?;
    run.wait_ready(&parent.name).await?;
    let total = baseline + load_window;
    let schedule = Schedule {
        rate,
        users: Schedule::users_for(rate, Duration::from_secs(2)),
        duration: total,
    };
    let begin = Start::default();
    let (stop, poller) = run.platform.poll(
        vec![parent.name.clone()],
        Duration::from_millis(500),
        run.recorder.clone(),
    );
    let load = drive::goose(
        &run.platform.rest,
        schedule.users,
        GooseTiming::RunTime(total + Duration::from_secs(2)),
        run.xgb_call(&parent.name),
        Pace::Open { schedule, start: begin.clone() },
        &run.recorder,
        &run.goose_dir,
    );
    let loading = async {
        let start = begin.wait().await;
        tokio::time::sleep_until((start + baseline).into()).await;
        let rss_before = run.platform.replicas_rss();
        let from_ms = run.recorder.now_ms();
        run.recorder.event(format!("applying {n} TrainedModels"));
        let uri = format!("{}/xgb-binary", run.model_base);
        let deadline = start + total;
        // Apply the models one after the other while polling the applied ones for
        // readiness, so each load time runs from its own PUT. Models not applied by the
        // deadline count as not loaded.
        let put_at: RefCell<Vec<Instant>> = RefCell::new(Vec::with_capacity(n));
        let done = std::cell::Cell::new(false);
        let apply = async {
            for i in 0..n {
                if Instant::now() >= deadline {
                    break;
                }
                let name = format!("tm-{i:05}");
                run.platform
                    .put(
                        &tm_path("default", &name),
                        &trained_model_yaml(&name, &parent.name, "xgboost", &uri),
                    )
                    .await?;
                put_at.borrow_mut().push(Instant::now());
            }
            done.set(true);
            run.recorder.event(format!("{} of {n} TrainedModels applied", put_at.borrow().len()));
            anyhow::Ok(())
        };
        let mut loaded: Vec<Option<f64>> = vec![None; n];
        let poll = async {
            while Instant::now() < deadline {
                let applied = put_at.borrow().len();
                for (i, slot) in loaded.iter_mut().enumerate().take(applied) {
                    if slot.is_some() {
                        continue;
                    }
                    let url = format!("{}/v2/models/tm-{i:05}/ready", run.platform.rest);
                    if let Ok(r) = run.platform.http.get(&url).send().await
                        && r.status().is_success()
                    {
                        *slot = Some(put_at.borrow()[i].elapsed().as_secs_f64() * 1000.0);
                    }
                }
                if done.get() && loaded[..put_at.borrow().len()].iter().all(Option::is_some) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        let (applied, ()) = tokio::join!(apply, poll);
        applied?;
        let to_ms = run.recorder.now_ms();
        run.recorder
            .event(format!("{} of {n} TrainedModels ready", loaded.iter().flatten().count()));
        let rss_after = run.platform.replicas_rss();
        let delta = rss_before.zip(rss_after).map(|(b, a)| a as f64 - b as f64);
        anyhow::Ok((loaded, delta, from_ms, to_ms))
    };
    let (load, loading) = tokio::join!(load, loading);
    load?;
    let (loaded, delta, from_ms, to_ms) = loading?;
    let _ = stop.send(true);
    let _ = poller.await;
    let (samples, _, _) = run.recorder.snapshot();
    let start_ms = run.recorder.ms(begin.wait().await);
    let before: Vec<_> = window(&samples, start_ms, from_ms).cloned().collect();
    let during: Vec<_> = window(&samples, from_ms, to_ms).cloned().collect();
    let f = scenario::multi_model::figures(&loaded, delta, &before, &during);
    Ok(Outcome { criteria: scenario::multi_model::judge(&f, &before, &during), figures: json!(f) })
}

/// `soak`: mixed REST/gRPC open loop, a canary flip at 1/3 and a replica kill at 1/2.
pub async fn soak(run: &Run<'_>) -> Result<Outcome> {
    let total = run.seconds(300, 20);
    let rate = run.rate.unwrap_or(100.0);
    let timeout = Duration::from_secs(30);
    let mut v1 = run.xgb("soak");
    v1.min_replicas = Some(2);
    v1.max_replicas = Some(2);
    run.apply(&v1, "v1, 2 replicas").await?;
    run.platform
        .wait_for(&v1.name, "2 ready replicas", Duration::from_secs(120), |r| {
            r.iter().any(|r| r.ready >= 2)
        })
        .await?;
    let Some(grpc) = run.platform.grpc.clone() else {
        bail!("soak needs the router's gRPC address (--grpc)")
    };
    let half = |r: f64| Schedule {
        rate: r / 2.0,
        users: Schedule::users_for(r / 2.0, Duration::from_secs(2)),
        duration: total,
    };
    let begin = Start::default();
    let (stop, poller) =
        run.platform.poll(vec![v1.name.clone()], Duration::from_millis(500), run.recorder.clone());
    let rest = drive::goose(
        &run.platform.rest,
        half(rate).users,
        GooseTiming::RunTime(total + Duration::from_secs(2)),
        run.xgb_call(&v1.name),
        Pace::Open { schedule: half(rate), start: begin.clone() },
        &run.recorder,
        &run.goose_dir,
    );
    let grpc_load = drive::grpc_open_loop(
        &grpc,
        drive::grpc_request(&v1.name, "input-0", &XGB_ROW),
        half(rate),
        &begin,
        &run.recorder,
        timeout,
    );
    let chaos = async {
        let start = begin.wait().await;
        tokio::time::sleep_until((start + total / 3).into()).await;
        let mut v2 = v1.clone();
        v2.env = vec![("OXSERVE_LOADTEST_VERSION".into(), "2".into())];
        v2.canary_percent = Some(50);
        run.apply(&v2, "v2 canary 50 %").await?;
        tokio::time::sleep_until((start + total / 2).into()).await;
        let pids = run.platform.replica_pids();
        let Some(&pid) = pids.first() else { return anyhow::Ok(None) };
        let at = run.recorder.now_ms();
        signal(pid, "-KILL");
        run.recorder.event(format!("kill -9 replica pid {pid} (of {} replicas)", pids.len()));
        anyhow::Ok(Some(at))
    };
    let (rest, grpc_load, chaos) = tokio::join!(rest, grpc_load, chaos);
    rest?;
    grpc_load.context("gRPC load")?;
    let kill_ms = chaos?;
    let _ = stop.send(true);
    let _ = poller.await;
    let (samples, _, _) = run.recorder.snapshot();
    let h = histogram(&samples);
    Ok(Outcome {
        figures: json!({
            "duration_s": total.as_secs(),
            "rate": rate,
            "requests": samples.len(),
            "p50_ms": percentile_ms(&h, 0.5),
            "p99_ms": percentile_ms(&h, 0.99),
            "kill_ms": kill_ms,
            "split_after_flip": split(&samples, run.recorder.ms(begin.wait().await + total / 3) + 5000.0, f64::INFINITY),
        }),
        criteria: scenario::soak::judge(&samples, kill_ms, timeout.as_secs_f64() * 1000.0),
    })
}
