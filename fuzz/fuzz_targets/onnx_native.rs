//! ONNX model files through the native compiler: its protobuf reader (`ModelProto` and the
//! graph, nodes, attributes and value infos it reads) and the checks that turn a graph into a
//! plan.
//!
//! Asserts: a refusal says why; an accepted plan runs on zero-filled inputs of its declared
//! element types and widths and returns exactly the outputs it declares, with their types.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxserve_protocol::{Tensor, TensorData};
use oxserve_server::runtimes::onnx::native::{Elem, compile};

fuzz_target!(|data: &[u8]| {
    let plan = match compile(data) {
        Ok(plan) => plan,
        Err(reason) => {
            assert!(!reason.is_empty(), "a refusal must say why");
            return;
        }
    };
    let mut inputs = Vec::new();
    for input in plan.inputs() {
        if input.width > 1 << 12 {
            return;
        }
        let batch = input.batch.unwrap_or(2);
        let n = batch * input.width;
        let data = match input.elem {
            Elem::F32 => TensorData::Fp32(vec![0.0; n]),
            Elem::F64 => TensorData::Fp64(vec![0.0; n]),
            Elem::I64 => TensorData::Int64(vec![0; n]),
            Elem::I32 => TensorData::Int32(vec![0; n]),
            Elem::Str => TensorData::Bytes(vec![Default::default(); n]),
        };
        inputs.push(Tensor::new(input.name.clone(), vec![batch as i64, input.width as i64], data));
    }
    if let Ok(outputs) = plan.run("fuzz", inputs) {
        assert_eq!(outputs.len(), plan.outputs().len(), "a plan returns what it declares");
        for (t, o) in outputs.iter().zip(plan.outputs()) {
            assert_eq!(t.name, o.name);
            assert_eq!(t.datatype(), o.elem.datatype(), "output {}", o.name);
        }
    }
});
