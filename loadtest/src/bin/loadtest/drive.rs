//! The load: goose users for REST (closed loop: a user sends its next request when the last
//! is answered; open loop: users share an [`openloop::Schedule`] and time each request
//! from its slot), and tonic tasks on the same schedule for gRPC. Every request becomes a
//! [`Sample`] in the shared [`Recorder`], with the `x-oxserve-revision` it was answered by.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use goose::config::GooseConfiguration;
use goose::prelude::*;
use oxserve_loadtest::openloop::{self, Schedule};
use oxserve_loadtest::record::{Protocol, Recorder, Sample, grpc_status};
use oxserve_protocol::grpc::inference::ModelInferRequest;
use oxserve_protocol::grpc::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use tonic::transport::Endpoint;

/// A request the users send: a V2 REST inference of one row.
#[derive(Clone)]
pub struct Call {
    /// The models requests go to, round robin per request (one for most scenarios).
    pub models: Vec<String>,
    pub body: String,
}

impl Call {
    pub fn one(model: &str, body: String) -> Call {
        Call { models: vec![model.to_owned()], body }
    }
}

/// How the users pace themselves.
#[derive(Clone)]
pub enum Pace {
    /// Back to back, following a goose test plan (`users,time;…`).
    Closed,
    /// A shared constant-rate schedule; it starts once every user is up (see [`Start`]).
    Open { schedule: Schedule, start: Start },
}

/// When an open-loop schedule starts: set once every goose user has made its first call
/// (goose builds its users one by one, which takes seconds on a busy machine; slots timed
/// from before that would charge the load generator's start-up to the server).
#[derive(Clone, Default)]
pub struct Start(Arc<OnceLock<Instant>>);

impl Start {
    /// The start, waiting for it to be set.
    pub async fn wait(&self) -> Instant {
        loop {
            if let Some(at) = self.0.get() {
                return *at;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn set_soon(&self) -> Instant {
        *self.0.get_or_init(|| Instant::now() + Duration::from_millis(200))
    }
}

struct Ctx {
    call: Call,
    pace: Pace,
    /// Every open-loop user waits here on its first call, so the schedule starts with all.
    barrier: tokio::sync::Barrier,
    recorder: Recorder,
    next_model: AtomicU64,
    missed: AtomicU64,
}

/// What one goose run gave back besides the samples.
pub struct Outcome {
    /// Open-loop slots sent more than a round late (the user pool was too small).
    pub missed_slots: u64,
}

/// Runs goose against `base` (the router's URL): `users` users, ending after `run_time`
/// or following `test_plan`; goose's own report goes to `out_dir`.
pub async fn goose(
    base: &str,
    users: usize,
    timing: GooseTiming<'_>,
    call: Call,
    pace: Pace,
    recorder: &Recorder,
    out_dir: &Path,
) -> Result<Outcome> {
    let ctx = Arc::new(Ctx {
        call,
        pace,
        barrier: tokio::sync::Barrier::new(users.max(1)),
        recorder: recorder.clone(),
        next_model: AtomicU64::new(0),
        missed: AtomicU64::new(0),
    });
    let mut args: Vec<String> = vec![
        "--host".into(),
        base.into(),
        "--output-dir".into(),
        out_dir.display().to_string(),
        // Goose's own HTML report of the run, in its run folder under `out_dir`.
        "--report-file".into(),
        "--timeout".into(),
        "30".into(),
        "--no-telnet".into(),
        "--no-error-summary".into(),
        "--quiet".into(),
        // The scenario prints its own summary; goose's tables are in its HTML report.
        "--no-print-metrics".into(),
    ];
    match timing {
        GooseTiming::RunTime(run) => {
            args.extend([
                "--users".into(),
                users.to_string(),
                "--increase-rate".into(),
                "100000".into(),
                "--run-time".into(),
                format!("{}s", run.as_secs().max(1)),
            ]);
            if run >= Duration::from_secs(30) {
                args.extend(["--running-metrics".into(), "15".into()]);
            }
        }
        GooseTiming::Plan(plan) => args.extend(["--test-plan".into(), plan.into()]),
        GooseTiming::Once => args.extend([
            "--users".into(),
            users.to_string(),
            "--increase-rate".into(),
            "100000".into(),
            "--iterations".into(),
            "1".into(),
        ]),
    }
    let config = GooseConfiguration::parse_args_default(&args)
        .map_err(|e| anyhow!("goose configuration {args:?}: {e}"))?;
    let txn_ctx = ctx.clone();
    let transaction = Transaction::new(Arc::new(move |user: &mut GooseUser| {
        let ctx = txn_ctx.clone();
        Box::pin(async move { infer(ctx, user).await })
    }))
    .set_name("infer");
    let metrics = GooseAttack::initialize_with_config(config)
        .map_err(|e| anyhow!("goose: {e}"))?
        .register_scenario(scenario!("infer").register_transaction(transaction))
        .execute()
        .await
        .map_err(|e| anyhow!("goose: {e:?}"))?;
    drop(metrics);
    Ok(Outcome { missed_slots: ctx.missed.load(Ordering::Relaxed) })
}

/// How long goose runs.
pub enum GooseTiming<'a> {
    RunTime(Duration),
    Plan(&'a str),
    /// Every user sends one request and the run ends.
    Once,
}

/// One transaction: wait for the slot (open loop), send, record.
async fn infer(ctx: Arc<Ctx>, user: &mut GooseUser) -> TransactionResult {
    let intended = match &ctx.pace {
        Pace::Closed => Instant::now(),
        Pace::Open { schedule, start } => {
            let schedule = *schedule;
            let first = user.get_session_data::<u64>().is_none();
            let n = *user.get_session_data::<u64>().unwrap_or(&0);
            user.set_session_data(n + 1);
            if first {
                ctx.barrier.wait().await;
            }
            let start = start.set_soon();
            let Some(slot) = schedule.slot(user.weighted_users_index, n) else {
                // The schedule is over for this user: idle until goose ends the run.
                tokio::time::sleep(Duration::from_millis(200)).await;
                return Ok(());
            };
            let at = start + slot.at;
            tokio::time::sleep_until(at.into()).await;
            if openloop::missed(&schedule, slot, start.elapsed()) {
                ctx.missed.fetch_add(1, Ordering::Relaxed);
            }
            at
        }
    };
    let i = ctx.next_model.fetch_add(1, Ordering::Relaxed) as usize;
    let model = &ctx.call.models[i % ctx.call.models.len()];
    let path = format!("/v2/models/{model}/infer");
    let builder = user
        .get_request_builder(&GooseMethod::Post, &path)?
        .header("content-type", "application/json")
        .body(ctx.call.body.clone());
    let request = GooseRequest::builder()
        .method(GooseMethod::Post)
        .path(path.as_str())
        .name("infer")
        .set_request_builder(builder)
        .build();
    let guard = ctx.recorder.in_flight();
    let goose = user.request(request).await?;
    let (status, revision) = match goose.response {
        Ok(r) => {
            let status = r.status().as_u16();
            let revision = r
                .headers()
                .get("x-oxserve-revision")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            match r.bytes().await {
                Ok(_) => (status, revision),
                Err(_) => (0, revision),
            }
        }
        Err(_) => (0, None),
    };
    drop(guard);
    ctx.recorder.sample(Sample {
        t_ms: ctx.recorder.ms(intended),
        latency_us: intended.elapsed().as_micros().max(1) as u64,
        status,
        revision,
        protocol: Protocol::Rest,
        model: (ctx.call.models.len() > 1).then(|| model.clone()),
    });
    Ok(())
}

/// Open-loop gRPC at `addr` on `schedule` from `start`, `users` tasks over 4 connections.
pub async fn grpc_open_loop(
    addr: &str,
    request: ModelInferRequest,
    schedule: Schedule,
    start: &Start,
    recorder: &Recorder,
    timeout: Duration,
) -> Result<()> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .with_context(|| format!("gRPC address {addr:?}"))?
        .tcp_nodelay(true)
        .timeout(timeout);
    let mut channels = Vec::new();
    for _ in 0..4 {
        channels.push(endpoint.connect().await.with_context(|| format!("connecting to {addr}"))?);
    }
    let start = start.wait().await;
    let tasks: Vec<_> = (0..schedule.users)
        .map(|u| {
            let mut client = GrpcInferenceServiceClient::new(channels[u % channels.len()].clone());
            let request = request.clone();
            let recorder = recorder.clone();
            tokio::spawn(async move {
                let mut n = 0;
                while let Some(slot) = schedule.slot(u, n) {
                    n += 1;
                    let at = start + slot.at;
                    tokio::time::sleep_until(at.into()).await;
                    let guard = recorder.in_flight();
                    let (status, revision) = match client.model_infer(request.clone()).await {
                        Ok(r) => (
                            200,
                            r.metadata()
                                .get("x-oxserve-revision")
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned),
                        ),
                        Err(s)
                            if s.code() == tonic::Code::Cancelled
                                || s.code() == tonic::Code::DeadlineExceeded =>
                        {
                            (0, None)
                        }
                        Err(s) => (grpc_status(s.code() as i32), None),
                    };
                    drop(guard);
                    recorder.sample(Sample {
                        t_ms: recorder.ms(at),
                        latency_us: at.elapsed().as_micros().max(1) as u64,
                        status,
                        revision,
                        protocol: Protocol::Grpc,
                        model: None,
                    });
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.context("a gRPC load task panicked")?;
    }
    Ok(())
}

/// The V2 REST body of one row of `n` features named `input`.
pub fn rest_body(input: &str, row: &[f32]) -> String {
    let data: Vec<String> = row.iter().map(|v| v.to_string()).collect();
    format!(
        r#"{{"inputs":[{{"name":"{input}","shape":[1,{}],"datatype":"FP32","data":[{}]}}]}}"#,
        row.len(),
        data.join(",")
    )
}

/// The gRPC request of the same row.
pub fn grpc_request(model: &str, input: &str, row: &[f32]) -> ModelInferRequest {
    use oxserve_protocol::grpc::inference::InferTensorContents;
    use oxserve_protocol::grpc::inference::model_infer_request::InferInputTensor;
    ModelInferRequest {
        model_name: model.to_owned(),
        inputs: vec![InferInputTensor {
            name: input.to_owned(),
            datatype: "FP32".to_owned(),
            shape: vec![1, row.len() as i64],
            contents: Some(InferTensorContents {
                fp32_contents: row.to_vec(),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}
