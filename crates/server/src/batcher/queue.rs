//! The batcher's synchronous state machine: admission checks that turn a request into a
//! queue [`Entry`], and pure functions over the queue (plus "now") that decide which
//! batch to run next (or when to look again) and which entries expired.
//!
//! Nothing here touches a channel or a clock, so every rule is tested without a runtime.

use std::collections::VecDeque;
use std::time::Duration;

use oxserve_protocol::{DataType, InferRequest, Parameters};
use tokio::time::Instant;

use crate::error::{Error, Result};

/// What requests must share to be batched together: input names in order, datatypes and
/// non-batch dimensions, and the request parameters.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Signature {
    inputs: Vec<(String, DataType, Vec<i64>)>,
    parameters: Parameters,
}

impl Signature {
    /// Checks that `request` can be batched and returns its signature and its row count
    /// (dimension 0, shared by every input).
    pub(crate) fn of(request: &InferRequest) -> Result<(Signature, usize)> {
        let Some(first) = request.inputs.first() else {
            return Err(Error::invalid("request has no inputs"));
        };
        let mut rows = None;
        let mut inputs = Vec::with_capacity(request.inputs.len());
        for input in &request.inputs {
            input.validate()?;
            let Some((&dim0, rest)) = input.shape.split_first() else {
                return Err(Error::invalid(format!(
                    "input \"{}\" has no batch dimension (rank 0)",
                    input.name
                )));
            };
            // `validate` refused negative dimensions, so this conversion cannot fail.
            let dim0 = usize::try_from(dim0).unwrap_or(0);
            match rows {
                None => rows = Some(dim0),
                Some(r) if r != dim0 => {
                    return Err(Error::invalid(format!(
                        "inputs disagree on the batch dimension: \"{}\" has {} rows, \"{}\" has {}",
                        first.name, r, input.name, dim0
                    )));
                }
                Some(_) => {}
            }
            inputs.push((input.name.clone(), input.datatype(), rest.to_vec()));
        }
        let signature = Signature { inputs, parameters: request.parameters.clone() };
        Ok((signature, rows.unwrap_or(0)))
    }
}

/// One queued request: its batching key, rows, timing and an opaque payload (the request
/// and its reply channel in the batcher; anything in tests).
#[derive(Debug)]
pub(crate) struct Entry<T> {
    pub signature: Signature,
    pub rows: usize,
    pub arrived: Instant,
    pub deadline: Option<Instant>,
    pub payload: T,
}

/// The batch-forming rules of a batcher.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub max_batch_size: usize,
    pub max_queue_delay: Duration,
    pub preferred_batch_sizes: Vec<usize>,
}

/// What to do with the head of the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Run the first `n` entries as one batch now.
    Run(usize),
    /// The head batch may still grow; look again at this instant (or on a new arrival).
    WaitUntil(Instant),
    /// The queue is empty.
    Idle,
}

/// Decides the next batch. Only consecutive compatible entries from the front are taken,
/// so FIFO order holds and an incompatible request starts the next batch.
///
/// A batch runs now when its rows reach `max_batch_size`, when the next queued request
/// cannot join it (incompatible or too many rows), when `flush` is set (draining), or when
/// `max_queue_delay` has passed since its first request arrived. Before that, it runs at
/// the largest prefix whose rows equal a preferred size, if any. A head request with at
/// least `max_batch_size` rows runs alone.
pub(crate) fn plan<T>(
    queue: &VecDeque<Entry<T>>,
    now: Instant,
    policy: &Policy,
    flush: bool,
) -> Plan {
    let Some(head) = queue.front() else {
        return Plan::Idle;
    };
    let max = policy.max_batch_size.max(1);
    if head.rows >= max {
        return Plan::Run(1);
    }
    let preferred = |rows: usize| policy.preferred_batch_sizes.contains(&rows);
    let mut rows = head.rows;
    let mut count = 1;
    let mut best_preferred = preferred(rows).then_some(1);
    let mut blocked = false;
    for entry in queue.iter().skip(1) {
        if entry.signature != head.signature || rows.saturating_add(entry.rows) > max {
            blocked = true;
            break;
        }
        rows += entry.rows;
        count += 1;
        if rows == max {
            return Plan::Run(count);
        }
        if preferred(rows) {
            best_preferred = Some(count);
        }
    }
    let closes_at = head.arrived.checked_add(policy.max_queue_delay);
    if blocked || flush || closes_at.is_some_and(|t| now >= t) {
        return Plan::Run(count);
    }
    match (best_preferred, closes_at) {
        (Some(n), _) => Plan::Run(n),
        (None, Some(t)) => Plan::WaitUntil(t),
        // A delay too large to represent: wait for arrivals only.
        (None, None) => Plan::Idle,
    }
}

/// Removes and returns the entries matching `pred`, keeping the order of the rest.
pub(crate) fn remove_where<T>(
    queue: &mut VecDeque<Entry<T>>,
    mut pred: impl FnMut(&Entry<T>) -> bool,
) -> Vec<Entry<T>> {
    if !queue.iter().any(&mut pred) {
        return Vec::new();
    }
    let (removed, kept): (VecDeque<_>, VecDeque<_>) = queue.drain(..).partition(|e| pred(e));
    *queue = kept;
    removed.into()
}

/// Removes and returns the entries whose deadline is at or before `now`.
pub(crate) fn take_expired<T>(queue: &mut VecDeque<Entry<T>>, now: Instant) -> Vec<Entry<T>> {
    remove_where(queue, |e| e.deadline.is_some_and(|d| d <= now))
}

#[cfg(test)]
mod tests {
    use oxserve_protocol::{Parameter, Tensor, TensorData};

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn policy(max: usize, delay_ms: u64, preferred: &[usize]) -> Policy {
        Policy {
            max_batch_size: max,
            max_queue_delay: MS * delay_ms as u32,
            preferred_batch_sizes: preferred.to_vec(),
        }
    }

    fn sig(width: i64) -> Signature {
        let x = Tensor::new("x", vec![1, width], TensorData::Fp32(vec![0.0; width as usize]));
        let request = InferRequest { inputs: vec![x], ..Default::default() };
        Signature::of(&request).unwrap().0
    }

    /// Entries of `rows` each, all with the same signature, arriving 1 ms apart from `t0`.
    fn queue(t0: Instant, rows: &[usize]) -> VecDeque<Entry<usize>> {
        rows.iter()
            .enumerate()
            .map(|(i, &r)| Entry {
                signature: sig(2),
                rows: r,
                arrived: t0 + MS * i as u32,
                deadline: None,
                payload: i,
            })
            .collect()
    }

    #[test]
    fn empty_queue_is_idle() {
        let q: VecDeque<Entry<()>> = VecDeque::new();
        assert_eq!(plan(&q, Instant::now(), &policy(4, 10, &[]), false), Plan::Idle);
    }

    #[test]
    fn waits_for_the_delay_then_runs_everything_compatible() {
        let t0 = Instant::now();
        let q = queue(t0, &[1, 1, 1]);
        let p = policy(8, 10, &[]);
        assert_eq!(plan(&q, t0 + MS * 2, &p, false), Plan::WaitUntil(t0 + MS * 10));
        assert_eq!(plan(&q, t0 + MS * 9, &p, false), Plan::WaitUntil(t0 + MS * 10));
        assert_eq!(plan(&q, t0 + MS * 10, &p, false), Plan::Run(3));
        // Flushing (shutdown) does not wait.
        assert_eq!(plan(&q, t0, &p, true), Plan::Run(3));
    }

    #[test]
    fn zero_delay_runs_what_is_queued_now() {
        let t0 = Instant::now();
        let q = queue(t0, &[2, 1]);
        assert_eq!(plan(&q, t0, &policy(8, 0, &[]), false), Plan::Run(2));
    }

    #[test]
    fn max_batch_size_closes_early_and_never_overfills() {
        let t0 = Instant::now();
        let p = policy(4, 1000, &[]);
        assert_eq!(plan(&queue(t0, &[1, 1, 1, 1, 1]), t0, &p, false), Plan::Run(4));
        // 2 + 1 = 3, and the next request (2 rows) would overflow: run the 3 rows now.
        assert_eq!(plan(&queue(t0, &[2, 1, 2]), t0, &p, false), Plan::Run(2));
        // Below the limit with nothing blocking: wait.
        assert_eq!(plan(&queue(t0, &[2, 1]), t0, &p, false), Plan::WaitUntil(t0 + MS * 1000));
    }

    #[test]
    fn oversized_head_runs_alone() {
        let t0 = Instant::now();
        let p = policy(4, 1000, &[]);
        assert_eq!(plan(&queue(t0, &[7, 1]), t0, &p, false), Plan::Run(1));
        assert_eq!(plan(&queue(t0, &[4, 1]), t0, &p, false), Plan::Run(1));
    }

    #[test]
    fn preferred_size_closes_at_the_largest_reachable_one() {
        let t0 = Instant::now();
        let p = policy(16, 1000, &[2, 4]);
        assert_eq!(plan(&queue(t0, &[1]), t0, &p, false), Plan::WaitUntil(t0 + MS * 1000));
        assert_eq!(plan(&queue(t0, &[1, 1]), t0, &p, false), Plan::Run(2));
        assert_eq!(plan(&queue(t0, &[1, 1, 1]), t0, &p, false), Plan::Run(2));
        assert_eq!(plan(&queue(t0, &[1, 1, 1, 1, 1]), t0, &p, false), Plan::Run(4));
        assert_eq!(plan(&queue(t0, &[3, 1]), t0, &p, false), Plan::Run(2));
    }

    #[test]
    fn incompatible_request_starts_the_next_batch() {
        let t0 = Instant::now();
        let mut q = queue(t0, &[1, 1, 1, 1]);
        q[2].signature = sig(3);
        let p = policy(8, 1000, &[]);
        // The head batch cannot grow past the incompatible entry, so it runs at once.
        assert_eq!(plan(&q, t0, &p, false), Plan::Run(2));
        q.drain(..2);
        // The incompatible entry is now the head; the entry after it is incompatible too.
        assert_eq!(plan(&q, t0, &p, false), Plan::Run(1));
        q.drain(..1);
        assert_eq!(plan(&q, t0, &p, false), Plan::WaitUntil(t0 + MS * 1003));
    }

    #[test]
    fn signature_covers_names_types_dims_and_parameters() {
        let req = |name: &str, data: TensorData, shape: Vec<i64>| InferRequest {
            inputs: vec![Tensor::new(name, shape, data)],
            ..Default::default()
        };
        let (a, rows) =
            Signature::of(&req("x", TensorData::Fp32(vec![0.0; 6]), vec![3, 2])).unwrap();
        assert_eq!(rows, 3);
        let (b, rows) =
            Signature::of(&req("x", TensorData::Fp32(vec![0.0; 2]), vec![1, 2])).unwrap();
        assert_eq!(rows, 1);
        assert_eq!(a, b);
        let (c, _) = Signature::of(&req("w", TensorData::Fp32(vec![0.0; 2]), vec![1, 2])).unwrap();
        assert_ne!(a, c);
        let (d, _) = Signature::of(&req("x", TensorData::Fp64(vec![0.0; 2]), vec![1, 2])).unwrap();
        assert_ne!(a, d);
        let (e, _) = Signature::of(&req("x", TensorData::Fp32(vec![0.0; 2]), vec![2, 1])).unwrap();
        assert_ne!(a, e);
        let mut with_params = req("x", TensorData::Fp32(vec![0.0; 2]), vec![1, 2]);
        with_params.parameters.insert("k".into(), Parameter::Int64(1));
        let (f, _) = Signature::of(&with_params).unwrap();
        assert_ne!(a, f);
    }

    #[test]
    fn admission_rejects_unbatchable_requests() {
        let err = Signature::of(&InferRequest::default()).unwrap_err();
        assert_eq!(err.to_string(), "request has no inputs");

        let scalar = Tensor::new("s", vec![], TensorData::Int32(vec![1]));
        let request = InferRequest { inputs: vec![scalar], ..Default::default() };
        let err = Signature::of(&request).unwrap_err();
        assert_eq!(err.code(), oxserve_protocol::ErrorCode::InvalidArgument);
        assert!(err.to_string().contains("\"s\" has no batch dimension"), "{err}");

        let a = Tensor::new("a", vec![2], TensorData::Int32(vec![1, 2]));
        let b = Tensor::new("b", vec![3], TensorData::Int32(vec![1, 2, 3]));
        let request = InferRequest { inputs: vec![a, b], ..Default::default() };
        let err = Signature::of(&request).unwrap_err();
        assert_eq!(
            err.to_string(),
            "inputs disagree on the batch dimension: \"a\" has 2 rows, \"b\" has 3"
        );

        let bad = Tensor::new("x", vec![2, 2], TensorData::Int32(vec![1]));
        let request = InferRequest { inputs: vec![bad], ..Default::default() };
        assert!(Signature::of(&request).unwrap_err().to_string().contains("needs 4 elements"));
    }

    #[test]
    fn expiry_removes_only_due_entries_in_order() {
        let t0 = Instant::now();
        let mut q = queue(t0, &[1, 1, 1, 1]);
        q[1].deadline = Some(t0 + MS * 5);
        q[3].deadline = Some(t0 + MS * 8);
        assert!(take_expired(&mut q, t0 + MS * 4).is_empty());
        let expired = take_expired(&mut q, t0 + MS * 5);
        assert_eq!(expired.iter().map(|e| e.payload).collect::<Vec<_>>(), [1]);
        assert_eq!(q.iter().map(|e| e.payload).collect::<Vec<_>>(), [0, 2, 3]);
        let removed = remove_where(&mut q, |e| e.payload == 0);
        assert_eq!(removed.len(), 1);
        assert_eq!(q.iter().map(|e| e.payload).collect::<Vec<_>>(), [2, 3]);
    }
}
