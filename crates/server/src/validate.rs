//! Checks a request against a model's metadata before the model sees it: input names,
//! datatypes, ranks and fixed dimensions, and requested output names.

use oxserve_protocol::tensor::shape_string;
use oxserve_protocol::{InferRequest, ModelMetadata, RequestedOutput, Tensor};

use crate::error::{Error, Result};

/// Validates `request` against `metadata`; messages name the offending input or output.
pub fn validate_request(metadata: &ModelMetadata, request: &InferRequest) -> Result<()> {
    for input in &request.inputs {
        let Some(expected) = metadata.inputs.iter().find(|m| m.name == input.name) else {
            let known: Vec<&str> = metadata.inputs.iter().map(|m| m.name.as_str()).collect();
            return Err(Error::invalid(format!(
                "unknown input \"{}\" for model \"{}\" (inputs: {})",
                input.name,
                metadata.name,
                known.join(", ")
            )));
        };
        if input.datatype() != expected.datatype {
            return Err(Error::invalid(format!(
                "input \"{}\": datatype {} does not match the model's {}",
                input.name,
                input.datatype(),
                expected.datatype
            )));
        }
        if !shape_matches(&expected.shape, &input.shape) {
            return Err(Error::invalid(format!(
                "input \"{}\": shape {} does not match the model's {}",
                input.name,
                shape_string(&input.shape),
                shape_string(&expected.shape)
            )));
        }
        input.validate()?;
    }
    for expected in &metadata.inputs {
        if !request.inputs.iter().any(|t| t.name == expected.name) {
            return Err(Error::invalid(format!(
                "missing input \"{}\" for model \"{}\"",
                expected.name, metadata.name
            )));
        }
    }
    if let Some(dup) = duplicate(&request.inputs, |t| t.name.as_str()) {
        return Err(Error::invalid(format!("input \"{dup}\" appears more than once")));
    }
    for output in &request.outputs {
        if !metadata.outputs.iter().any(|m| m.name == output.name) {
            let known: Vec<&str> = metadata.outputs.iter().map(|m| m.name.as_str()).collect();
            return Err(Error::invalid(format!(
                "unknown output \"{}\" for model \"{}\" (outputs: {})",
                output.name,
                metadata.name,
                known.join(", ")
            )));
        }
    }
    if let Some(dup) = duplicate(&request.outputs, |o| o.name.as_str()) {
        return Err(Error::invalid(format!("output \"{dup}\" is requested more than once")));
    }
    Ok(())
}

/// `-1` in the model's shape matches any size; the ranks must agree.
pub fn shape_matches(model: &[i64], request: &[i64]) -> bool {
    model.len() == request.len() && model.iter().zip(request).all(|(&m, &r)| m < 0 || m == r)
}

/// The first name that repeats an earlier one. Requests name a few tensors, so short lists
/// are compared pairwise rather than hashed.
fn duplicate<'a, T>(items: &'a [T], name: impl Fn(&'a T) -> &'a str) -> Option<&'a str> {
    const PAIRWISE_UP_TO: usize = 16;
    if items.len() <= PAIRWISE_UP_TO {
        return items.iter().enumerate().find_map(|(i, item)| {
            let n = name(item);
            items.get(..i)?.iter().any(|earlier| name(earlier) == n).then_some(n)
        });
    }
    let mut seen = std::collections::HashSet::new();
    items.iter().map(name).find(|n| !seen.insert(*n))
}

/// Keeps the outputs the request asked for, in the order asked (all when none were named).
pub fn select_outputs(
    requested: &[RequestedOutput],
    mut outputs: Vec<Tensor>,
    model: &str,
) -> Result<Vec<Tensor>> {
    if requested.is_empty() {
        return Ok(outputs);
    }
    let mut selected = Vec::with_capacity(requested.len());
    for wanted in requested {
        let i = outputs.iter().position(|t| t.name == wanted.name).ok_or_else(|| {
            Error::runtime(model, format!("the model did not produce output \"{}\"", wanted.name))
        })?;
        let mut t = outputs.swap_remove(i);
        t.parameters.clone_from(&wanted.parameters);
        selected.push(t);
    }
    Ok(selected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxserve_protocol::{DataType, TensorData, TensorMetadata};

    fn meta() -> ModelMetadata {
        ModelMetadata {
            name: "m".into(),
            versions: vec!["1".into()],
            platform: "test".into(),
            inputs: vec![TensorMetadata {
                name: "x".into(),
                datatype: DataType::Fp32,
                shape: vec![-1, 2],
                parameters: None,
            }],
            outputs: vec![TensorMetadata {
                name: "y".into(),
                datatype: DataType::Fp32,
                shape: vec![-1],
                parameters: None,
            }],
            parameters: None,
        }
    }

    fn req(t: Tensor) -> InferRequest {
        InferRequest { inputs: vec![t], ..Default::default() }
    }

    #[test]
    fn messages_name_the_field() {
        let m = meta();
        let ok = Tensor::new("x", vec![3, 2], TensorData::Fp32(vec![0.0; 6]));
        validate_request(&m, &req(ok.clone())).unwrap();
        let cases = [
            (Tensor::new("z", vec![1, 2], TensorData::Fp32(vec![0.0; 2])), "unknown input \"z\""),
            (
                Tensor::new("x", vec![1, 2], TensorData::Fp64(vec![0.0; 2])),
                "input \"x\": datatype FP64 does not match the model's FP32",
            ),
            (
                Tensor::new("x", vec![1, 3], TensorData::Fp32(vec![0.0; 3])),
                "input \"x\": shape [1,3] does not match the model's [-1,2]",
            ),
            (
                Tensor::new("x", vec![2, 2], TensorData::Fp32(vec![0.0; 3])),
                "tensor \"x\": shape [2,2] needs 4 elements, got 3",
            ),
        ];
        for (t, msg) in cases {
            let e = validate_request(&m, &req(t)).unwrap_err().to_string();
            assert!(e.contains(msg), "{e} should contain {msg}");
        }
        let mut r = req(ok);
        r.outputs.push(RequestedOutput { name: "w".into(), ..Default::default() });
        let e = validate_request(&m, &r).unwrap_err().to_string();
        assert!(e.contains("unknown output \"w\" for model \"m\" (outputs: y)"), "{e}");
        let e = validate_request(&m, &InferRequest::default()).unwrap_err().to_string();
        assert_eq!(e, "missing input \"x\" for model \"m\"");
    }

    #[test]
    fn selects_requested_outputs_in_order() {
        let outs = vec![
            Tensor::new("a", vec![1], TensorData::Int32(vec![1])),
            Tensor::new("b", vec![1], TensorData::Int32(vec![2])),
        ];
        assert_eq!(select_outputs(&[], outs.clone(), "m").unwrap().len(), 2);
        let wanted = [RequestedOutput { name: "b".into(), ..Default::default() }];
        let sel = select_outputs(&wanted, outs, "m").unwrap();
        assert_eq!(sel.len(), 1);
        assert_eq!(sel[0].name, "b");
    }

    #[test]
    fn finds_the_first_repeated_name_in_short_and_long_lists() {
        fn dup(names: &[&str]) -> Option<String> {
            duplicate(names, |n| *n).map(str::to_owned)
        }
        assert_eq!(dup(&[]), None);
        assert_eq!(dup(&["a", "b", "c"]), None);
        assert_eq!(dup(&["a", "b", "b", "a"]).as_deref(), Some("b"));
        assert_eq!(dup(&["a", "b", "c", "a", "b"]).as_deref(), Some("a"));
        for len in [16, 17, 40] {
            let names: Vec<String> = (0..len).map(|i| format!("t{i}")).collect();
            let mut list: Vec<&str> = names.iter().map(String::as_str).collect();
            assert_eq!(dup(&list), None, "{len} distinct names");
            list.push("t3");
            list.push("t1");
            assert_eq!(dup(&list).as_deref(), Some("t3"), "{len} names and a repeat");
        }
    }

    #[test]
    fn a_repeated_input_is_refused() {
        let m = meta();
        let x = Tensor::new("x", vec![1, 2], TensorData::Fp32(vec![0.0; 2]));
        let r = InferRequest { inputs: vec![x.clone(), x], ..Default::default() };
        let e = validate_request(&m, &r).unwrap_err().to_string();
        assert_eq!(e, "input \"x\" appears more than once");
    }
}
