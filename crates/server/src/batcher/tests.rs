//! Tests of the batcher on a paused clock (inline, and on the blocking pool where a batch
//! must hold its slot while the test submits more), a few on the real clock (a
//! multi-threaded runtime, the sub-millisecond delay), and a property test that every
//! request gets exactly its own rows back whatever the interleaving.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::mpsc as std_mpsc;
use std::task::Poll;
use std::thread::ThreadId;
use std::time::Duration;

use futures::poll;
use oxserve_protocol::{
    DataType, ErrorCode, InferRequest, ModelMetadata, Parameter, RequestedOutput, Tensor,
    TensorData, TensorMetadata,
};
use proptest::prelude::*;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::advance;

use super::{BatchInfo, Batcher, BatcherConfig, Execution};
use crate::error::{Error, Result};
use crate::model::Model;

const MS: Duration = Duration::from_millis(1);

/// An `x` value that makes the test model panic.
const PANIC_MARKER: f32 = -1.0;

type Behaviour = Box<dyn Fn(&InferRequest) -> Result<Vec<Tensor>> + Send + Sync>;

/// A model that reports each batch's rows, optionally blocks until released, and computes
/// `y = x * 2` (shape `[n, w]`) and `z[i] = x[i, 0] + 1000` (shape `[n]`) unless given
/// another behaviour. Any `x` element equal to [`PANIC_MARKER`] makes it panic.
struct TestModel {
    meta: ModelMetadata,
    started: mpsc::UnboundedSender<usize>,
    gate: Option<Mutex<std_mpsc::Receiver<()>>>,
    behaviour: Behaviour,
}

/// The test side of a [`TestModel`].
struct Probe {
    /// Rows of each batch, as the model starts it.
    started: mpsc::UnboundedReceiver<usize>,
    /// One message lets one gated batch finish; dropping it opens the gate for good.
    release: Option<std_mpsc::Sender<()>>,
}

impl Probe {
    /// Rows of every batch started so far.
    fn batches(&mut self) -> Vec<usize> {
        let mut rows = Vec::new();
        while let Ok(n) = self.started.try_recv() {
            rows.push(n);
        }
        rows
    }

    /// Waits until the model starts its next batch and returns its rows.
    async fn next_batch(&mut self) -> usize {
        self.started.recv().await.expect("model dropped")
    }

    fn release_one(&self) {
        self.release.as_ref().expect("model is not gated").send(()).unwrap();
    }
}

fn metadata() -> ModelMetadata {
    let tm = |name: &str, shape: Vec<i64>| TensorMetadata {
        name: name.into(),
        datatype: DataType::Fp32,
        shape,
        parameters: None,
    };
    ModelMetadata {
        name: "m".into(),
        versions: vec![],
        platform: "test".into(),
        inputs: vec![tm("x", vec![-1, -1])],
        outputs: vec![tm("y", vec![-1, -1]), tm("z", vec![-1])],
        parameters: None,
    }
}

fn double(request: &InferRequest) -> Result<Vec<Tensor>> {
    let x = &request.inputs[0];
    let TensorData::Fp32(v) = &x.data else {
        return Err(Error::invalid("x must be FP32"));
    };
    let n = x.shape[0];
    let width = if n == 0 { 0 } else { v.len() / n as usize };
    let y = v.iter().map(|e| e * 2.0).collect();
    let z = v.chunks(width.max(1)).take(n as usize).map(|row| row[0] + 1000.0).collect();
    Ok(vec![
        Tensor::new("y", x.shape.clone(), TensorData::Fp32(y)),
        Tensor::new("z", vec![n], TensorData::Fp32(z)),
    ])
}

fn model_with(gated: bool, behaviour: Behaviour) -> (Arc<dyn Model>, Probe) {
    let (started_tx, started) = mpsc::unbounded_channel();
    let (release, gate) = if gated {
        let (tx, rx) = std_mpsc::channel();
        (Some(tx), Some(Mutex::new(rx)))
    } else {
        (None, None)
    };
    let model = TestModel { meta: metadata(), started: started_tx, gate, behaviour };
    (Arc::new(model), Probe { started, release })
}

fn model(gated: bool) -> (Arc<dyn Model>, Probe) {
    model_with(gated, Box::new(double))
}

impl Model for TestModel {
    fn metadata(&self) -> &ModelMetadata {
        &self.meta
    }

    fn infer(&self, request: InferRequest) -> Result<Vec<Tensor>> {
        let rows = request.inputs.first().and_then(|x| x.shape.first()).copied().unwrap_or(0);
        let _ = self.started.send(rows as usize);
        if let Some(gate) = &self.gate {
            // An error means the test dropped the sender: stay open.
            let _ = gate.lock().unwrap().recv();
        }
        if let TensorData::Fp32(v) = &request.inputs[0].data
            && v.contains(&PANIC_MARKER)
        {
            panic!("boom");
        }
        (self.behaviour)(&request)
    }
}

/// A request with `rows` rows of width 2; row `r` is `[base + r, base + r + 0.5]`.
fn request(base: f32, rows: usize) -> InferRequest {
    let data = (0..rows).flat_map(|r| [base + r as f32, base + r as f32 + 0.5]).collect();
    let x = Tensor::new("x", vec![rows as i64, 2], TensorData::Fp32(data));
    InferRequest { id: Some(format!("r{base}")), inputs: vec![x], ..Default::default() }
}

fn config(max_batch_size: usize, delay: Duration) -> BatcherConfig {
    BatcherConfig { max_batch_size, max_queue_delay: delay, ..BatcherConfig::default() }
}

/// A batcher running its batches on the blocking pool, so that a gated batch can hold its
/// slot while the test (on the same single-threaded runtime) submits more requests.
fn pooled(model: Arc<dyn Model>, config: BatcherConfig) -> Batcher {
    Batcher::spawn_with(model, config, Execution::BlockingPool)
}

type Answer = JoinHandle<Result<(Vec<Tensor>, BatchInfo)>>;

fn submit(batcher: &Batcher, request: InferRequest, timeout: Option<Duration>) -> Answer {
    let batcher = batcher.clone();
    tokio::spawn(async move { batcher.infer(request, timeout).await })
}

/// Lets every ready task run without moving the (paused) clock.
async fn settle() {
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
}

async fn ok(answer: Answer) -> (Vec<Tensor>, BatchInfo) {
    answer.await.unwrap().unwrap()
}

async fn err(answer: Answer) -> Error {
    answer.await.unwrap().unwrap_err()
}

fn fp32(t: &Tensor) -> &[f32] {
    match &t.data {
        TensorData::Fp32(v) => v,
        other => panic!("expected FP32, got {}", other.datatype()),
    }
}

#[tokio::test(start_paused = true)]
async fn delay_closes_a_batch() {
    let (m, mut probe) = model(false);
    let batcher = Batcher::spawn(m, config(8, 10 * MS));
    let answers: Vec<Answer> =
        (0..3).map(|i| submit(&batcher, request(10.0 * i as f32, 1), None)).collect();
    settle().await;
    advance(9 * MS).await;
    settle().await;
    assert_eq!(batcher.queue_len(), 3);
    assert!(probe.batches().is_empty());
    advance(MS).await;
    for answer in answers {
        let (_, info) = ok(answer).await;
        assert_eq!(info.batch_size, 3);
        assert_eq!(info.queue_time, 10 * MS);
    }
    assert_eq!(probe.batches(), [3]);
    assert_eq!(batcher.queue_len(), 0);
}

#[tokio::test(start_paused = true)]
async fn max_batch_size_closes_a_batch_early() {
    let (m, mut probe) = model(false);
    let batcher = Batcher::spawn(m, config(4, Duration::from_secs(1)));
    let answers: Vec<Answer> =
        (0..6).map(|i| submit(&batcher, request(10.0 * i as f32, 1), None)).collect();
    let mut infos = Vec::new();
    for answer in answers {
        infos.push(ok(answer).await.1);
    }
    let sizes: Vec<usize> = infos.iter().map(|i| i.batch_size).collect();
    let waits: Vec<Duration> = infos.iter().map(|i| i.queue_time).collect();
    assert_eq!(sizes, [4, 4, 4, 4, 2, 2]);
    // The full batch ran at once; the remainder waited for the delay.
    assert_eq!(
        waits,
        [Duration::ZERO; 4].into_iter().chain([Duration::from_secs(1); 2]).collect::<Vec<_>>()
    );
    assert_eq!(probe.batches(), [4, 2]);
}

#[tokio::test(start_paused = true)]
async fn preferred_size_closes_a_batch_early() {
    let (m, mut probe) = model(false);
    let cfg = BatcherConfig { preferred_batch_sizes: vec![3], ..config(8, Duration::from_secs(1)) };
    let batcher = Batcher::spawn(m, cfg);
    let a = submit(&batcher, request(0.0, 2), None);
    let b = submit(&batcher, request(10.0, 1), None);
    let (_, info) = ok(a).await;
    assert_eq!((info.batch_size, info.queue_time), (3, Duration::ZERO));
    assert_eq!(ok(b).await.1.queue_time, Duration::ZERO);
    assert_eq!(probe.batches(), [3]);
}

#[tokio::test(start_paused = true)]
async fn zero_delay_adds_no_waiting_and_batches_what_arrived_meanwhile() {
    let (m, mut probe) = model(true);
    let batcher = pooled(m, config(8, Duration::ZERO));
    let first = submit(&batcher, request(0.0, 1), None);
    assert_eq!(probe.next_batch().await, 1);
    // While the first batch runs, two more arrive; time passes meanwhile.
    let second = submit(&batcher, request(10.0, 2), None);
    let third = submit(&batcher, request(20.0, 1), None);
    settle().await;
    assert_eq!(batcher.queue_len(), 2);
    advance(5 * MS).await;
    probe.release_one();
    let (_, info) = ok(first).await;
    assert_eq!((info.batch_size, info.queue_time), (1, Duration::ZERO));
    assert_eq!(probe.next_batch().await, 3);
    probe.release_one();
    let (_, info) = ok(second).await;
    assert_eq!((info.batch_size, info.queue_time), (3, 5 * MS));
    assert_eq!(ok(third).await.1.batch_size, 3);
}

#[tokio::test(start_paused = true)]
async fn parallelism_runs_batches_at_once() {
    let (m, mut probe) = model(true);
    let cfg = BatcherConfig { parallelism: 2, ..config(1, Duration::ZERO) };
    let batcher = pooled(m, cfg);
    let answers: Vec<Answer> =
        (0..3).map(|i| submit(&batcher, request(10.0 * i as f32, 1), None)).collect();
    // Two batches start while both are blocked; the third waits for a free slot.
    assert_eq!(probe.next_batch().await, 1);
    assert_eq!(probe.next_batch().await, 1);
    settle().await;
    assert_eq!(batcher.queue_len(), 1);
    assert!(probe.batches().is_empty());
    drop(probe.release.take());
    for answer in answers {
        ok(answer).await;
    }
}

#[tokio::test(start_paused = true)]
async fn full_queue_rejects_at_once() {
    let (m, mut probe) = model(true);
    let cfg = BatcherConfig { max_queue_size: 2, ..config(1, Duration::ZERO) };
    let batcher = pooled(m, cfg);
    let running = submit(&batcher, request(0.0, 1), None);
    probe.next_batch().await;
    let waiting: Vec<Answer> =
        (1..3).map(|i| submit(&batcher, request(10.0 * i as f32, 1), None)).collect();
    settle().await;
    assert_eq!(batcher.queue_len(), 2);
    let e = batcher.infer(request(30.0, 1), None).await.unwrap_err();
    assert!(matches!(e, Error::Unavailable(_)), "{e:?}");
    assert_eq!(e.code(), ErrorCode::Unavailable);
    assert_eq!(e.to_string(), "model \"m\": queue is full (2 requests waiting)");
    drop(probe.release.take());
    ok(running).await;
    for answer in waiting {
        ok(answer).await;
    }
    // Room again once the queue drained.
    ok(submit(&batcher, request(40.0, 1), None)).await;
}

#[tokio::test(start_paused = true)]
async fn queued_request_times_out_without_running() {
    let (m, mut probe) = model(true);
    let batcher = pooled(m, config(1, Duration::ZERO));
    let running = submit(&batcher, request(0.0, 1), Some(5 * MS));
    probe.next_batch().await;
    let late = submit(&batcher, request(10.0, 1), Some(5 * MS));
    settle().await;
    advance(4 * MS).await;
    settle().await;
    assert!(!late.is_finished());
    advance(MS).await;
    let e = err(late).await;
    assert!(matches!(e, Error::Timeout(_)), "{e:?}");
    assert_eq!(e.code(), ErrorCode::DeadlineExceeded);
    assert_eq!(e.to_string(), "model \"m\": request timed out after 5 ms in the queue");
    assert_eq!(batcher.queue_len(), 0);
    // The running request is past its deadline too, but it had started: it completes.
    probe.release_one();
    ok(running).await;
    assert!(probe.batches().is_empty());
}

#[tokio::test(start_paused = true)]
async fn abandoned_request_is_skipped() {
    let (m, mut probe) = model(true);
    let batcher = pooled(m, config(8, Duration::ZERO));
    let running = submit(&batcher, request(0.0, 1), None);
    probe.next_batch().await;
    let gone = submit(&batcher, request(10.0, 3), None);
    let kept = submit(&batcher, request(20.0, 1), None);
    settle().await;
    gone.abort();
    settle().await;
    drop(probe.release.take());
    ok(running).await;
    let (y, info) = ok(kept).await;
    assert_eq!(info.batch_size, 1);
    assert_eq!(fp32(&y[0]), [40.0, 41.0]);
    assert_eq!(probe.batches(), [1]);
}

#[tokio::test(start_paused = true)]
async fn incompatible_requests_run_separately_in_order() {
    let (m, mut probe) = model(false);
    let batcher = Batcher::spawn(m, config(8, 10 * MS));
    let wide = |base: f32| {
        let x = Tensor::new("x", vec![1, 3], TensorData::Fp32(vec![base; 3]));
        InferRequest { inputs: vec![x], ..Default::default() }
    };
    let mut with_param = request(30.0, 1);
    with_param.parameters.insert("mode".into(), Parameter::String("fast".into()));
    let answers = vec![
        submit(&batcher, request(0.0, 1), None),
        submit(&batcher, request(10.0, 1), None),
        submit(&batcher, wide(20.0), None),
        submit(&batcher, with_param, None),
        submit(&batcher, request(40.0, 2), None),
    ];
    let mut sizes = Vec::new();
    for answer in answers {
        sizes.push(ok(answer).await.1.batch_size);
    }
    assert_eq!(sizes, [2, 2, 1, 1, 2]);
    assert_eq!(probe.batches(), [2, 1, 1, 2]);
}

#[tokio::test(start_paused = true)]
async fn oversized_request_runs_alone() {
    let (m, mut probe) = model(false);
    let batcher = Batcher::spawn(m, config(2, Duration::from_secs(1)));
    let big = submit(&batcher, request(0.0, 5), None);
    let small = submit(&batcher, request(10.0, 1), None);
    let (y, info) = ok(big).await;
    assert_eq!((info.batch_size, info.queue_time), (5, Duration::ZERO));
    assert_eq!(y[0].shape, [5, 2]);
    assert_eq!(ok(small).await.1.batch_size, 1);
    assert_eq!(probe.batches(), [5, 1]);
}

#[tokio::test(start_paused = true)]
async fn panicking_model_fails_its_batch_and_keeps_serving() {
    let (m, mut probe) = model(true);
    let batcher = pooled(m, config(8, Duration::ZERO));
    let blocker = submit(&batcher, request(100.0, 1), None);
    probe.next_batch().await;
    // These two are batched together; one of them makes the model panic.
    let bad = submit(&batcher, request(PANIC_MARKER, 1), None);
    let neighbour = submit(&batcher, request(10.0, 1), None);
    settle().await;
    drop(probe.release.take());
    ok(blocker).await;
    for e in [err(bad).await, err(neighbour).await] {
        assert!(matches!(e, Error::Runtime { .. }), "{e:?}");
        assert_eq!(e.to_string(), "model \"m\": inference failed: model panicked: boom");
    }
    let (y, _) = ok(submit(&batcher, request(20.0, 1), None)).await;
    assert_eq!(fp32(&y[0]), [40.0, 41.0]);
    assert_eq!(probe.batches(), [2, 1]);
}

#[tokio::test(start_paused = true)]
async fn shutdown_drains_everything_queued() {
    let (m, mut probe) = model(true);
    let batcher = pooled(m, config(2, Duration::from_secs(60)));
    let answers: Vec<Answer> =
        (0..5).map(|i| submit(&batcher, request(10.0 * i as f32, 1), None)).collect();
    assert_eq!(probe.next_batch().await, 2);
    settle().await;
    assert_eq!(batcher.queue_len(), 3);
    let stopper = batcher.clone();
    let shutdown = tokio::spawn(async move { stopper.shutdown().await });
    settle().await;
    assert!(!shutdown.is_finished());
    let e = batcher.infer(request(90.0, 1), None).await.unwrap_err();
    assert_eq!(e.to_string(), "model \"m\": batcher is shutting down");
    assert_eq!(e.code(), ErrorCode::Unavailable);
    drop(probe.release.take());
    shutdown.await.unwrap();
    // Everything was answered before shutdown returned, without waiting for the delay.
    for answer in answers {
        assert!(answer.is_finished());
        let (_, info) = ok(answer).await;
        assert!(info.queue_time < Duration::from_secs(60));
    }
    assert_eq!(probe.batches(), [2, 1]);
    // A second call returns at once.
    batcher.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn outputs_follow_each_requests_list() {
    let (m, _probe) = model(false);
    let batcher = Batcher::spawn(m, config(8, 10 * MS));
    let want = |names: &[&str]| {
        names.iter().map(|n| RequestedOutput { name: (*n).into(), ..Default::default() }).collect()
    };
    let mut only_z = request(0.0, 2);
    only_z.outputs = want(&["z"]);
    let mut z_then_y = request(10.0, 1);
    z_then_y.outputs = want(&["z", "y"]);
    let all = request(20.0, 1);
    let mut unknown = request(30.0, 1);
    unknown.outputs = want(&["y", "w"]);
    let answers = [
        submit(&batcher, only_z, None),
        submit(&batcher, z_then_y, None),
        submit(&batcher, all, None),
        submit(&batcher, unknown, None),
    ];
    let [a, b, c, d] = answers;
    let (out, info) = ok(a).await;
    assert_eq!(info.batch_size, 5);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].name.as_str(), out[0].shape.as_slice()), ("z", [2].as_slice()));
    assert_eq!(fp32(&out[0]), [1000.0, 1001.0]);
    let (out, _) = ok(b).await;
    let names: Vec<&str> = out.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["z", "y"]);
    assert_eq!(fp32(&out[0]), [1010.0]);
    assert_eq!(fp32(&out[1]), [20.0, 21.0]);
    let (out, _) = ok(c).await;
    let names: Vec<&str> = out.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["y", "z"]);
    assert_eq!(out[0].shape, [1, 2]);
    assert_eq!(fp32(&out[0]), [40.0, 41.0]);
    let e = err(d).await;
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    assert_eq!(e.to_string(), "model \"m\" has no output \"w\"");
}

#[tokio::test(start_paused = true)]
async fn output_with_wrong_batch_dimension_fails_the_batch() {
    let behaviour: Behaviour = Box::new(|request: &InferRequest| {
        let n = request.inputs[0].shape[0];
        Ok(vec![Tensor::new("y", vec![n + 1], TensorData::Fp32(vec![0.0; n as usize + 1]))])
    });
    let (m, _probe) = model_with(false, behaviour);
    let batcher = Batcher::spawn(m, config(8, 10 * MS));
    let a = submit(&batcher, request(0.0, 2), None);
    let b = submit(&batcher, request(10.0, 1), None);
    for e in [err(a).await, err(b).await] {
        assert!(matches!(e, Error::Runtime { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "model \"m\": inference failed: output \"y\" has 4 rows in dimension 0, the batch has 3"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn model_errors_reach_every_request_of_the_batch() {
    let behaviour: Behaviour = Box::new(|_: &InferRequest| Err(Error::runtime("m", "no luck")));
    let (m, _probe) = model_with(false, behaviour);
    let batcher = Batcher::spawn(m, config(8, 10 * MS));
    let a = submit(&batcher, request(0.0, 1), None);
    let b = submit(&batcher, request(10.0, 1), None);
    for e in [err(a).await, err(b).await] {
        assert_eq!(e.to_string(), "model \"m\": inference failed: no luck");
    }
}

#[tokio::test(start_paused = true)]
async fn unbatchable_request_is_rejected_before_queueing() {
    let (m, mut probe) = model(false);
    let batcher = Batcher::spawn(m, config(8, Duration::ZERO));
    let a = Tensor::new("x", vec![2, 1], TensorData::Fp32(vec![1.0, 2.0]));
    let b = Tensor::new("w", vec![1, 1], TensorData::Fp32(vec![1.0]));
    let request = InferRequest { inputs: vec![a, b], ..Default::default() };
    let e = batcher.infer(request, None).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidArgument);
    assert_eq!(batcher.queue_len(), 0);
    settle().await;
    assert!(probe.batches().is_empty());
}

/// A model like [`model`] that also records the thread each batch ran on.
fn model_on_threads() -> (Arc<dyn Model>, Probe, Arc<Mutex<Vec<ThreadId>>>) {
    let threads = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&threads);
    let behaviour: Behaviour = Box::new(move |request: &InferRequest| {
        seen.lock().unwrap().push(std::thread::current().id());
        double(request)
    });
    let (m, probe) = model_with(false, behaviour);
    (m, probe, threads)
}

#[tokio::test(start_paused = true)]
async fn lone_request_runs_inline_at_once() {
    let (m, mut probe, threads) = model_on_threads();
    let batcher = Batcher::spawn(m, config(8, Duration::ZERO));
    let started = tokio::time::Instant::now();
    let call = batcher.infer(request(0.0, 1), None);
    tokio::pin!(call);
    // The only suspension: one yield, so that other ready requests could join the batch.
    assert!(poll!(call.as_mut()).is_pending());
    let Poll::Ready(answer) = poll!(call.as_mut()) else {
        panic!("a lone request waited for something besides its one yield");
    };
    let (y, info) = answer.unwrap();
    assert_eq!(fp32(&y[0]), [0.0, 1.0]);
    assert_eq!((info.batch_size, info.queue_time), (1, Duration::ZERO));
    // It ran on this very thread (no blocking-pool hop) and no timer was involved.
    assert_eq!(*threads.lock().unwrap(), [std::thread::current().id()]);
    assert_eq!(tokio::time::Instant::now(), started);
    assert_eq!(probe.batches(), [1]);
    assert_eq!(batcher.queue_len(), 0);
}

#[tokio::test(start_paused = true)]
async fn concurrent_requests_are_batched_inline() {
    let (m, mut probe, threads) = model_on_threads();
    let batcher = Batcher::spawn(m, config(8, Duration::ZERO));
    // Ready together on one worker: the first one leads, the others queue behind it.
    let answers: Vec<Answer> =
        (0..5).map(|i| submit(&batcher, request(10.0 * i as f32, 1), None)).collect();
    for (i, answer) in answers.into_iter().enumerate() {
        let (y, info) = ok(answer).await;
        assert_eq!(info.batch_size, 5);
        let base = 10.0 * i as f32;
        assert_eq!(fp32(&y[0]), [2.0 * base, 2.0 * base + 1.0]);
    }
    assert_eq!(probe.batches(), [5]);
    assert_eq!(*threads.lock().unwrap(), [std::thread::current().id()]);
}

#[tokio::test(start_paused = true)]
async fn inline_batches_respect_max_batch_size() {
    let (m, mut probe) = model(false);
    let batcher = Batcher::spawn(m, config(3, Duration::ZERO));
    let answers: Vec<Answer> =
        (0..7).map(|i| submit(&batcher, request(10.0 * i as f32, 1), None)).collect();
    let mut sizes = Vec::new();
    for answer in answers {
        sizes.push(ok(answer).await.1.batch_size);
    }
    assert_eq!(sizes, [3, 3, 3, 3, 3, 3, 1]);
    assert_eq!(probe.batches(), [3, 3, 1]);
}

#[tokio::test(start_paused = true)]
async fn leader_cancelled_before_its_batch_leaves_the_others_answered() {
    let (m, mut probe) = model(false);
    let batcher = Batcher::spawn(m, config(8, Duration::ZERO));
    let leader = submit(&batcher, request(0.0, 1), None);
    // The leader queues its request and yields once before taking the batch.
    tokio::task::yield_now().await;
    assert_eq!(batcher.queue_len(), 1);
    let others: Vec<Answer> =
        (1..3).map(|i| submit(&batcher, request(10.0 * i as f32, 1), None)).collect();
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    for (i, answer) in others.into_iter().enumerate() {
        let (y, info) = ok(answer).await;
        assert_eq!(info.batch_size, 2);
        let base = 10.0 * (i + 1) as f32;
        assert_eq!(fp32(&y[0]), [2.0 * base, 2.0 * base + 1.0]);
    }
    // The withdrawn request never ran.
    assert_eq!(probe.batches(), [2]);
    assert_eq!(batcher.queue_len(), 0);
}

#[tokio::test(start_paused = true)]
async fn leader_cancelled_while_its_batch_runs_leaves_the_others_answered() {
    let (m, mut probe) = model(true);
    let batcher = pooled(m, config(8, Duration::ZERO));
    // Ready together: the first leads a batch holding both.
    let leader = submit(&batcher, request(0.0, 1), None);
    let other = submit(&batcher, request(10.0, 2), None);
    assert_eq!(probe.next_batch().await, 3);
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    probe.release_one();
    let (y, info) = ok(other).await;
    assert_eq!(info.batch_size, 3);
    assert_eq!(fp32(&y[0]), [20.0, 21.0, 22.0, 23.0]);
    // The slot was given back: the next request runs.
    drop(probe.release.take());
    assert_eq!(ok(submit(&batcher, request(30.0, 1), None)).await.1.batch_size, 1);
}

#[tokio::test(start_paused = true)]
async fn panicking_model_inline_fails_its_batch_and_keeps_serving() {
    let (m, mut probe) = model(false);
    let batcher = Batcher::spawn(m, config(8, Duration::ZERO));
    let bad = submit(&batcher, request(PANIC_MARKER, 1), None);
    let neighbour = submit(&batcher, request(10.0, 1), None);
    for e in [err(bad).await, err(neighbour).await] {
        assert_eq!(e.to_string(), "model \"m\": inference failed: model panicked: boom");
    }
    let (y, _) = ok(submit(&batcher, request(20.0, 1), None)).await;
    assert_eq!(fp32(&y[0]), [40.0, 41.0]);
    assert_eq!(probe.batches(), [2, 1]);
}

/// Waits (on the real clock) until `batcher` holds `n` queued requests.
async fn until_queued(batcher: &Batcher, n: usize) {
    let limit = std::time::Instant::now() + Duration::from_secs(10);
    while batcher.queue_len() != n {
        assert!(std::time::Instant::now() < limit, "never saw {n} queued requests");
        tokio::time::sleep(MS).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_requests_wait_for_the_slot_then_run_together() {
    let (m, mut probe) = model(true);
    let batcher = Batcher::spawn(m, config(8, Duration::ZERO));
    // Runs inline on one worker and holds the only slot until released.
    let first = submit(&batcher, request(0.0, 1), None);
    assert_eq!(probe.next_batch().await, 1);
    let waiting: Vec<Answer> =
        (1..4).map(|i| submit(&batcher, request(10.0 * i as f32, 1), None)).collect();
    until_queued(&batcher, 3).await;
    // A waiter that goes away leaves the queue and is not run.
    let [gone, kept @ ..] = <[Answer; 3]>::try_from(waiting).ok().unwrap();
    gone.abort();
    until_queued(&batcher, 2).await;
    probe.release_one();
    assert_eq!(ok(first).await.1.batch_size, 1);
    // The two left are picked up together once the slot is free.
    assert_eq!(probe.next_batch().await, 2);
    probe.release_one();
    for (i, answer) in kept.into_iter().enumerate() {
        let (y, info) = ok(answer).await;
        assert_eq!(info.batch_size, 2);
        let base = 10.0 * (i + 2) as f32;
        assert_eq!(fp32(&y[0]), [2.0 * base, 2.0 * base + 1.0]);
    }
    assert!(probe.batches().is_empty());
}

/// The real clock: a delay below the timer's millisecond is honoured, not rounded up to
/// it. The upper bound only catches a wait of the wrong order on a loaded machine.
#[tokio::test]
async fn sub_millisecond_delay_is_honoured() {
    let (m, _probe) = model(false);
    let delay = Duration::from_micros(500);
    let batcher = Batcher::spawn(m, config(8, delay));
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let (_, info) = batcher.infer(request(0.0, 1), None).await.unwrap();
        let took = started.elapsed();
        assert!(info.queue_time >= delay, "queued {:?}", info.queue_time);
        assert!(took >= delay && took < delay + 50 * MS, "took {took:?}");
    }
}

/// One request of the property test: rows, which outputs it asks for (`y`, `z`; none
/// meaning all), and how long after the previous one it arrives.
#[derive(Debug, Clone)]
struct Arrival {
    rows: usize,
    want_y: bool,
    want_z: bool,
    gap_ms: u64,
}

fn arrival() -> impl Strategy<Value = Arrival> {
    (1usize..5, any::<bool>(), any::<bool>(), prop_oneof![Just(0u64), 0u64..4])
        .prop_map(|(rows, want_y, want_z, gap_ms)| Arrival { rows, want_y, want_z, gap_ms })
}

/// Submits `arrivals` and checks each answer against what the request alone would give.
async fn check_routing(
    arrivals: Vec<Arrival>,
    cfg: BatcherConfig,
    execution: Execution,
) -> std::result::Result<(), String> {
    let max = cfg.max_batch_size;
    let (m, mut probe) = model(false);
    let batcher = Batcher::spawn_with(m, cfg, execution);
    let mut answers = Vec::new();
    for (i, a) in arrivals.iter().enumerate() {
        let base = 10.0 * i as f32;
        let mut req = request(base, a.rows);
        for (name, wanted) in [("y", a.want_y), ("z", a.want_z)] {
            if wanted {
                req.outputs.push(RequestedOutput { name: name.into(), ..Default::default() });
            }
        }
        answers.push((base, a.clone(), submit(&batcher, req, None)));
        if a.gap_ms > 0 {
            tokio::time::sleep(MS * a.gap_ms as u32).await;
        }
    }
    for (base, a, answer) in answers {
        let (outputs, info) =
            answer.await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
        if info.batch_size > max.max(a.rows) || info.batch_size < a.rows {
            return Err(format!("batch of {} rows for a request of {}", info.batch_size, a.rows));
        }
        let all = !a.want_y && !a.want_z;
        let mut expected = Vec::new();
        if all || a.want_y {
            let y =
                (0..a.rows).flat_map(|r| [2.0 * (base + r as f32), 2.0 * (base + r as f32) + 1.0]);
            expected.push(Tensor::new("y", vec![a.rows as i64, 2], TensorData::Fp32(y.collect())));
        }
        if all || a.want_z {
            let z = (0..a.rows).map(|r| base + r as f32 + 1000.0);
            expected.push(Tensor::new("z", vec![a.rows as i64], TensorData::Fp32(z.collect())));
        }
        if outputs != expected {
            return Err(format!("request at {base}: got {outputs:?}, expected {expected:?}"));
        }
    }
    let executed: usize = probe.batches().iter().sum();
    let submitted: usize = arrivals.iter().map(|a| a.rows).sum();
    if executed != submitted {
        return Err(format!("model ran {executed} rows for {submitted} submitted"));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_request_gets_exactly_its_own_rows(
        arrivals in proptest::collection::vec(arrival(), 1..24),
        max_batch_size in 1usize..9,
        delay_ms in prop_oneof![Just(0u64), 1u64..6],
        parallelism in 1usize..3,
        on_the_pool in any::<bool>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let cfg = BatcherConfig {
            max_batch_size,
            max_queue_delay: MS * delay_ms as u32,
            parallelism,
            ..BatcherConfig::default()
        };
        let execution = if on_the_pool { Execution::BlockingPool } else { Execution::Inline };
        let outcome = runtime.block_on(check_routing(arrivals, cfg, execution));
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    }
}
