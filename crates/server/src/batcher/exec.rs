//! Running one batch: concatenating the requests' inputs along dimension 0, calling the
//! model (panics caught), checking its outputs and splitting them back per request.
//!
//! Everything here is synchronous: [`execute`] runs inline on whichever thread took the
//! batch, or on a blocking-pool thread.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use oxserve_protocol::tensor::{element_count, shape_string};
use oxserve_protocol::{InferRequest, RequestedOutput, Tensor, TensorData};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::BatchInfo;
use crate::error::{Error, Result};
use crate::model::Model;

/// Where one request's answer goes.
pub(crate) type Reply = oneshot::Sender<Result<(Vec<Tensor>, BatchInfo)>>;

/// One request of a batch, as the executor sees it.
#[derive(Debug)]
pub(crate) struct Part {
    pub request: InferRequest,
    pub rows: usize,
    pub queue_time: Duration,
    pub reply: Reply,
}

/// Runs `parts` as one batch on `model` and answers every part. Never panics because of
/// the model: a panic inside it fails every request of this batch with a runtime error.
pub(crate) fn execute(model: &dyn Model, name: &str, parts: Vec<Part>) {
    let mut requests = Vec::with_capacity(parts.len());
    let mut replies = Vec::with_capacity(parts.len());
    for part in parts {
        requests.push((part.rows, part.request));
        replies.push((part.reply, part.queue_time));
    }
    let batch_size = requests.iter().map(|(rows, _)| rows).sum();
    let started = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| run(model, name, requests)));
    let compute_time = started.elapsed();
    let answers: Vec<Result<Vec<Tensor>>> = match outcome {
        Ok(Ok(answers)) => answers,
        Ok(Err(e)) => vec![Err(e); replies.len()],
        Err(panic) => {
            let e = Error::runtime(name, format!("model panicked: {}", panic_message(&*panic)));
            vec![Err(e); replies.len()]
        }
    };
    for ((reply, queue_time), answer) in replies.into_iter().zip(answers) {
        let info = BatchInfo { queue_time, compute_time, batch_size };
        // The caller may have gone away meanwhile; nothing to do then.
        let _ = reply.send(answer.map(|outputs| (outputs, info)));
    }
}

/// Merges, runs and splits; the outer error fails the whole batch, the inner ones a single
/// request.
fn run(
    model: &dyn Model,
    name: &str,
    requests: Vec<(usize, InferRequest)>,
) -> Result<Vec<Result<Vec<Tensor>>>> {
    let rows: Vec<usize> = requests.iter().map(|(r, _)| *r).collect();
    let wanted: Vec<Vec<RequestedOutput>> =
        requests.iter().map(|(_, req)| req.outputs.clone()).collect();
    let batch = merge(requests.into_iter().map(|(_, req)| req).collect())
        .map_err(|e| Error::runtime(name, e))?;
    let outputs = model.infer(batch)?;
    split(name, outputs, &rows, &wanted)
}

/// One request from many compatible ones: inputs concatenated along dimension 0, the
/// parameters of the first (equal for all), id `None`, and the union of requested outputs
/// (empty, meaning all, as soon as one request asks for all). Batched input tensors keep
/// the tensor parameters of the first request.
pub(crate) fn merge(mut requests: Vec<InferRequest>) -> Result<InferRequest, String> {
    if requests.len() == 1 {
        let mut only = requests.pop().unwrap_or_default();
        only.id = None;
        return Ok(only);
    }
    let mut iter = requests.into_iter();
    let Some(mut first) = iter.next() else {
        return Err("empty batch".to_string());
    };
    let rest: Vec<InferRequest> = iter.collect();
    first.id = None;
    let all_outputs = first.outputs.is_empty() || rest.iter().any(|r| r.outputs.is_empty());
    if all_outputs {
        first.outputs.clear();
    } else {
        for r in &rest {
            for out in &r.outputs {
                if !first.outputs.iter().any(|o| o.name == out.name) {
                    first.outputs.push(out.clone());
                }
            }
        }
    }
    for (i, input) in first.inputs.iter_mut().enumerate() {
        let mut dim0 = input.shape.first().copied().unwrap_or(0);
        let total: usize = input.data.len()
            + rest.iter().map(|r| r.inputs.get(i).map_or(0, |t| t.data.len())).sum::<usize>();
        let mut data = TensorData::with_capacity(input.datatype(), total);
        data.extend_from(&input.data).map_err(|e| e.to_string())?;
        for r in &rest {
            let Some(other) = r.inputs.get(i) else {
                return Err(format!("a batched request lacks input \"{}\"", input.name));
            };
            data.extend_from(&other.data).map_err(|e| e.to_string())?;
            dim0 += other.shape.first().copied().unwrap_or(0);
        }
        input.data = data;
        if let Some(d) = input.shape.first_mut() {
            *d = dim0;
        }
    }
    Ok(first)
}

/// Splits the model's outputs back to the requests: request `i` gets rows
/// `rows[..i].sum()..rows[..=i].sum()` of every output it asked for (`wanted[i]`, empty
/// meaning all, in the model's order). An output without the batch's rows in dimension 0
/// fails the whole batch; an unknown requested output fails only the request naming it.
pub(crate) fn split(
    name: &str,
    outputs: Vec<Tensor>,
    rows: &[usize],
    wanted: &[Vec<RequestedOutput>],
) -> Result<Vec<Result<Vec<Tensor>>>> {
    let total: usize = rows.iter().sum();
    let mut row_elems = Vec::with_capacity(outputs.len());
    for out in &outputs {
        let elems = check_output(out, total).map_err(|msg| Error::runtime(name, msg))?;
        row_elems.push(elems);
    }
    let select = |names: &[RequestedOutput]| -> Result<Vec<usize>> {
        if names.is_empty() {
            return Ok((0..outputs.len()).collect());
        }
        names
            .iter()
            .map(|want| {
                outputs.iter().position(|o| o.name == want.name).ok_or_else(|| {
                    Error::invalid(format!("model \"{name}\" has no output \"{}\"", want.name))
                })
            })
            .collect()
    };
    if rows.len() == 1 {
        // A batch of one: hand over the tensors themselves instead of copying slices.
        let picked = match select(&wanted[0]) {
            Ok(picked) => picked,
            Err(e) => return Ok(vec![Err(e)]),
        };
        let mut outputs: Vec<Option<Tensor>> = outputs.into_iter().map(Some).collect();
        let mut result = Vec::with_capacity(picked.len());
        for (pos, &i) in picked.iter().enumerate() {
            // An output asked for twice is cloned for all but its last mention.
            let again = picked[pos + 1..].contains(&i);
            result.extend(if again { outputs[i].clone() } else { outputs[i].take() });
        }
        return Ok(vec![Ok(result)]);
    }
    let mut start = 0;
    let mut answers = Vec::with_capacity(rows.len());
    for (&n, names) in rows.iter().zip(wanted) {
        let range = start..start + n;
        start += n;
        answers.push(select(names).map(|picked| {
            picked
                .into_iter()
                .map(|i| {
                    let out = &outputs[i];
                    let elems = row_elems[i];
                    let mut shape = out.shape.clone();
                    shape[0] = n as i64;
                    let data = out.data.slice(range.start * elems..range.end * elems);
                    Tensor {
                        name: out.name.clone(),
                        shape,
                        data,
                        parameters: out.parameters.clone(),
                    }
                })
                .collect()
        }));
    }
    Ok(answers)
}

/// Checks that `out` has `rows` rows in dimension 0 and a consistent element count, and
/// returns the number of elements per row.
fn check_output(out: &Tensor, rows: usize) -> Result<usize, String> {
    let Some((&dim0, rest)) = out.shape.split_first() else {
        return Err(format!(
            "output \"{}\" has no batch dimension (rank 0), the batch has {rows} rows",
            out.name
        ));
    };
    if usize::try_from(dim0).ok() != Some(rows) {
        return Err(format!(
            "output \"{}\" has {dim0} rows in dimension 0, the batch has {rows}",
            out.name
        ));
    }
    let per_row = element_count(&out.name, rest).map_err(|e| e.message)?;
    if per_row.checked_mul(rows) != Some(out.data.len()) {
        return Err(format!(
            "output \"{}\": shape {} does not match its {} elements",
            out.name,
            shape_string(&out.shape),
            out.data.len()
        ));
    }
    Ok(per_row)
}

/// The text of a panic payload.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    }
}
