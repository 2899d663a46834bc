//! Cases that need the suite's [reference models](crate::reference) on the server: a round
//! trip of every datatype over REST (JSON, or binary data for FP16/BF16) and gRPC (typed and
//! raw), FP16/BF16 refused as typed contents, and exact add/sub results with output
//! filtering. Each is skipped when its reference model is not loaded.

use std::collections::BTreeMap;

use oxserve_protocol::grpc::inference::model_infer_request::InferRequestedOutputTensor;
use oxserve_protocol::{DataType, TensorData};
use serde_json::json;
use tonic::Code;

use super::extensions::{BINARY, binary_body, parse_binary_response, post_binary};
use super::grpc::{decode_response, request_for};
use super::{Input, json_request, model_path};
use crate::catalog::{Case, Checked, Level, Stop, Transport, check};
use crate::context::Ctx;
use crate::reference::{self, ADD_SUB};
use crate::{ensure, fail};

const TYPES: &str = "Tensor Data Types";

/// The reference-model cases.
pub fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for dt in DataType::ALL {
        let lower = dt.as_str().to_lowercase();
        let (level, how) = if dt.is_raw_only() {
            (Level::Extension(BINARY), "as binary data (JSON cannot carry it)")
        } else {
            (Level::Must, "as JSON data")
        };
        cases.push(Case::new(
            format!("rest.infer.datatype.{lower}"),
            level,
            Transport::Rest,
            TYPES,
            format!("{dt} tensors sent {how} reach the model and come back unchanged (identity reference model)"),
            check(move |ctx| Box::pin(rest_identity(ctx, dt))),
        ));
    }
    for dt in DataType::ALL.into_iter().filter(|d| !d.is_raw_only()) {
        let lower = dt.as_str().to_lowercase();
        cases.push(Case::new(
            format!("grpc.infer.datatype.{lower}"),
            Level::Must,
            Transport::Grpc,
            TYPES,
            format!(
                "{dt} tensors sent as typed contents come back unchanged (identity reference model)"
            ),
            check(move |ctx| Box::pin(grpc_identity(ctx, dt, false))),
        ));
    }
    for dt in DataType::ALL {
        let lower = dt.as_str().to_lowercase();
        cases.push(Case::new(
            format!("grpc.infer.datatype.{lower}-raw"),
            Level::Must,
            Transport::Grpc,
            TYPES,
            format!("{dt} tensors sent as raw_input_contents come back unchanged (identity reference model)"),
            check(move |ctx| Box::pin(grpc_identity(ctx, dt, true))),
        ));
    }
    cases.push(Case::new(
        "grpc.infer.fp16-typed-rejected",
        Level::Should,
        Transport::Grpc,
        "GRPC: Tensor Data",
        "FP16 and BF16 travel only raw: an FP16 input carried in a typed contents field is rejected with INVALID_ARGUMENT",
        check(|ctx| Box::pin(grpc_fp16_typed_rejected(ctx))),
    ));
    cases.push(Case::new(
        "rest.infer.add-sub-exact",
        Level::Must,
        Transport::Rest,
        "REST: Inference",
        "a two-input, two-output model answers exact results for every output, and only OUTPUT1 when only OUTPUT1 is requested (add-sub reference model)",
        check(|ctx| Box::pin(rest_add_sub(ctx))),
    ));
    cases.push(Case::new(
        "grpc.infer.add-sub-exact",
        Level::Must,
        Transport::Grpc,
        "GRPC: Inference",
        "a two-input, two-output model answers exact results for every output, and only OUTPUT1 when only OUTPUT1 is requested (add-sub reference model)",
        check(|ctx| Box::pin(grpc_add_sub(ctx))),
    ));
    cases
}

fn identity_input(dt: DataType) -> Input {
    Input {
        name: "INPUT0".into(),
        datatype: dt,
        shape: reference::IDENTITY_REQUEST_SHAPE.to_vec(),
        data: reference::identity_values(dt),
    }
}

async fn rest_identity(ctx: &Ctx, dt: DataType) -> Checked {
    let name = reference::identity_name(dt);
    ctx.reference_model(&name)?;
    let input = identity_input(dt);
    let r = if dt.is_raw_only() {
        let outputs = json!([{"name": "OUTPUT0", "parameters": {"binary_data": true}}]);
        let (body, len) = binary_body(std::slice::from_ref(&input), Some(outputs));
        post_binary(ctx, &name, body, len).await?
    } else {
        let body = json_request(std::slice::from_ref(&input), false)?;
        ctx.post_json(&model_path(&name, None, "/infer"), &body).await?
    };
    let (parsed, data) = parse_binary_response(&r)?;
    let Some(out) = parsed.output("OUTPUT0") else {
        fail!("no OUTPUT0 in the response (outputs {:?})", parsed.names());
    };
    ensure!(out.datatype == dt, "OUTPUT0 is {}, expected {dt}", out.datatype);
    ensure!(
        out.shape == input.shape,
        "OUTPUT0 has shape {:?}, expected {:?}",
        out.shape,
        input.shape
    );
    let got = data.get("OUTPUT0");
    ensure!(got == Some(&input.data), "OUTPUT0 is {got:?}, expected {:?}", input.data);
    Ok(())
}

async fn grpc_identity(ctx: &Ctx, dt: DataType, raw: bool) -> Checked {
    let name = reference::identity_name(dt);
    ctx.reference_model(&name)?;
    let input = identity_input(dt);
    let req = request_for(&name, std::slice::from_ref(&input), raw)?;
    let resp = ctx
        .grpc()?
        .model_infer(req)
        .await
        .map_err(|s| Stop::Fail(format!("ModelInfer answered {:?}: {}", s.code(), s.message())))?
        .into_inner();
    let outputs = decode_response(&resp)?;
    let Some(out) = outputs.iter().find(|o| o.name == "OUTPUT0") else {
        fail!("no OUTPUT0 in the response");
    };
    ensure!(out.datatype == dt, "OUTPUT0 is {}, expected {dt}", out.datatype);
    ensure!(
        out.shape == input.shape,
        "OUTPUT0 has shape {:?}, expected {:?}",
        out.shape,
        input.shape
    );
    ensure!(out.data == input.data, "OUTPUT0 is {:?}, expected {:?}", out.data, input.data);
    Ok(())
}

async fn grpc_fp16_typed_rejected(ctx: &Ctx) -> Checked {
    let name = reference::identity_name(DataType::Fp16);
    ctx.reference_model(&name)?;
    let input = identity_input(DataType::Fp16);
    let mut req = request_for(&name, std::slice::from_ref(&input), true)?;
    req.raw_input_contents.clear();
    let TensorData::Fp16(v) = &input.data else { fail!("internal: FP16 values expected") };
    req.inputs[0].contents = Some(oxserve_protocol::grpc::inference::InferTensorContents {
        fp32_contents: v.iter().map(|x| x.to_f32()).collect(),
        ..Default::default()
    });
    match ctx.grpc()?.model_infer(req).await {
        Ok(_) => fail!("ModelInfer accepted FP16 data in fp32_contents"),
        Err(s) if s.code() != Code::InvalidArgument => {
            fail!("ModelInfer answered {:?}: {} (expected INVALID_ARGUMENT)", s.code(), s.message())
        }
        Err(_) => Ok(()),
    }
}

fn add_sub_inputs() -> Vec<Input> {
    let (a, b) = reference::add_sub_inputs();
    let shape = reference::ADD_SUB_REQUEST_SHAPE.to_vec();
    vec![
        Input {
            name: "INPUT0".into(),
            datatype: DataType::Fp32,
            shape: shape.clone(),
            data: TensorData::Fp32(a),
        },
        Input { name: "INPUT1".into(), datatype: DataType::Fp32, shape, data: TensorData::Fp32(b) },
    ]
}

async fn rest_add_sub(ctx: &Ctx) -> Checked {
    ctx.reference_model(ADD_SUB)?;
    let (sum, diff) = reference::add_sub_expected();
    let inputs = add_sub_inputs();
    let path = model_path(ADD_SUB, None, "/infer");
    let body = json_request(&inputs, false)?;
    let (all, data) = parse_binary_response(&ctx.post_json(&path, &body).await?)?;
    let mut names = all.names();
    names.sort_unstable();
    ensure!(names == ["OUTPUT0", "OUTPUT1"], "outputs are {names:?}, expected OUTPUT0 and OUTPUT1");
    let want0 = TensorData::Fp32(sum);
    let want1 = TensorData::Fp32(diff);
    ensure!(
        data.get("OUTPUT0") == Some(&want0),
        "OUTPUT0 is {:?}, expected {want0:?}",
        data.get("OUTPUT0")
    );
    ensure!(
        data.get("OUTPUT1") == Some(&want1),
        "OUTPUT1 is {:?}, expected {want1:?}",
        data.get("OUTPUT1")
    );
    let mut body = body;
    body["outputs"] = json!([{"name": "OUTPUT1"}]);
    let (only, data) = parse_binary_response(&ctx.post_json(&path, &body).await?)?;
    ensure!(only.names() == ["OUTPUT1"], "requested OUTPUT1 only, got {:?}", only.names());
    ensure!(data.get("OUTPUT1") == Some(&want1), "filtered OUTPUT1 is {:?}", data.get("OUTPUT1"));
    Ok(())
}

async fn grpc_add_sub(ctx: &Ctx) -> Checked {
    ctx.reference_model(ADD_SUB)?;
    let (sum, diff) = reference::add_sub_expected();
    let inputs = add_sub_inputs();
    let want =
        BTreeMap::from([("OUTPUT0", TensorData::Fp32(sum)), ("OUTPUT1", TensorData::Fp32(diff))]);
    for raw in [false, true] {
        let req = request_for(ADD_SUB, &inputs, raw)?;
        let resp = ctx.grpc()?.model_infer(req).await.map_err(|s| {
            Stop::Fail(format!("ModelInfer answered {:?}: {}", s.code(), s.message()))
        })?;
        let outputs = decode_response(resp.get_ref())?;
        for (name, data) in &want {
            let got = outputs.iter().find(|o| o.name == *name).map(|o| &o.data);
            ensure!(
                got == Some(data),
                "{name} is {got:?}, expected {data:?} ({} request)",
                if raw { "raw" } else { "typed" }
            );
        }
    }
    let mut req = request_for(ADD_SUB, &inputs, false)?;
    req.outputs =
        vec![InferRequestedOutputTensor { name: "OUTPUT1".into(), parameters: BTreeMap::new() }];
    let resp =
        ctx.grpc()?.model_infer(req).await.map_err(|s| {
            Stop::Fail(format!("ModelInfer answered {:?}: {}", s.code(), s.message()))
        })?;
    let outputs = decode_response(resp.get_ref())?;
    let names: Vec<&str> = outputs.iter().map(|o| o.name.as_str()).collect();
    ensure!(names == ["OUTPUT1"], "requested OUTPUT1 only, got {names:?}");
    Ok(())
}
