//! YAML → types → YAML keeps every field: generated specs survive the round trip (defaults
//! may add fields, never drop or change one).

use proptest::prelude::*;
use serde_json::{Value, json};

const FRAMEWORKS: [&str; 10] = [
    "sklearn",
    "xgboost",
    "tensorflow",
    "pytorch",
    "triton",
    "onnx",
    "huggingface",
    "pmml",
    "lightgbm",
    "paddle",
];

fn label() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,10}[a-z0-9]"
}

fn string_map() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(label(), "[ -~]{0,12}", 0..3).prop_map(|m| json!(m))
}

fn extension() -> impl Strategy<Value = Value> {
    (
        prop::option::of(0i32..3),
        prop::option::of(3i32..10),
        prop::option::of(0i64..=100),
        prop::option::of(1i64..600),
        prop::option::of(0i64..50),
        prop::option::of((1i64..64, 1i64..5000)),
        prop::option::of(prop::sample::select(vec!["all", "request", "response"])),
        prop::option::of(string_map()),
        prop::option::of(prop::sample::select(vec!["concurrency", "rps"])),
    )
        .prop_map(|(min, max, canary, timeout, cc, batcher, logger, labels, metric)| {
            let mut m = serde_json::Map::new();
            let mut put = |k: &str, v: Option<Value>| {
                if let Some(v) = v {
                    m.insert(k.to_owned(), v);
                }
            };
            put("minReplicas", min.map(|v| json!(v)));
            put("maxReplicas", max.map(|v| json!(v)));
            put("canaryTrafficPercent", canary.map(|v| json!(v)));
            put("timeout", timeout.map(|v| json!(v)));
            put("containerConcurrency", cc.map(|v| json!(v)));
            put("batcher", batcher.map(|(s, l)| json!({"maxBatchSize": s, "maxLatency": l})));
            put("logger", logger.map(|mode| json!({"mode": mode, "url": "http://sink.default/"})));
            put("labels", labels);
            put("scaleMetric", metric.map(|v| json!(v)));
            Value::Object(m)
        })
}

fn container() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec("[a-z-]{1,8}", 0..3),
        prop::collection::vec(
            (label().prop_map(|s| s.to_uppercase().replace('-', "_")), "[a-z0-9]{0,6}"),
            0..3,
        ),
        prop::option::of((1u8..8, 1u8..16)),
        prop::option::of(1i32..65535),
    )
        .prop_map(|(args, env, resources, port)| {
            let mut c = serde_json::Map::new();
            if !args.is_empty() {
                c.insert("args".into(), json!(args));
            }
            if !env.is_empty() {
                let env: Vec<Value> =
                    env.into_iter().map(|(n, v)| json!({"name": n, "value": v})).collect();
                c.insert("env".into(), json!(env));
            }
            if let Some((cpu, mem)) = resources {
                c.insert(
                    "resources".into(),
                    json!({"limits": {"cpu": cpu.to_string(), "memory": format!("{mem}Gi")}}),
                );
            }
            if let Some(p) = port {
                c.insert(
                    "ports".into(),
                    json!([{"containerPort": p, "name": "h2c", "protocol": "TCP"}]),
                );
                c.insert(
                    "readinessProbe".into(),
                    json!({"httpGet": {"path": "/v2/health/ready", "port": p}, "periodSeconds": 5}),
                );
            }
            Value::Object(c)
        })
}

fn predictor() -> impl Strategy<Value = Value> {
    (
        0..FRAMEWORKS.len() + 2,
        extension(),
        container(),
        label(),
        prop::option::of(prop::sample::select(vec!["v1", "v2"])),
    )
        .prop_map(|(which, ext, container, path, protocol)| {
            let mut p = ext.as_object().cloned().unwrap_or_default();
            let uri = format!("s3://bucket/{path}");
            if which < FRAMEWORKS.len() {
                let mut f = container.as_object().cloned().unwrap_or_default();
                f.insert("storageUri".into(), json!(uri));
                if let Some(pv) = protocol {
                    f.insert("protocolVersion".into(), json!(pv));
                }
                p.insert(FRAMEWORKS[which].into(), Value::Object(f));
            } else if which == FRAMEWORKS.len() {
                let mut f = container.as_object().cloned().unwrap_or_default();
                f.insert("modelFormat".into(), json!({"name": path, "version": "1"}));
                f.insert("storageUri".into(), json!(uri));
                p.insert("model".into(), Value::Object(f));
            } else {
                let mut c = container.as_object().cloned().unwrap_or_default();
                c.insert("name".into(), json!("kserve-container"));
                c.insert("image".into(), json!(format!("example/{path}:v1")));
                p.insert("containers".into(), json!([c]));
            }
            Value::Object(p)
        })
}

fn inference_service() -> impl Strategy<Value = Value> {
    (label(), predictor(), prop::option::of(container()), prop::option::of(string_map()), prop::sample::select(vec![
        "serving.kserve.io",
        "serving.kubeflow.org",
        "serving.oxserve.dev",
    ]))
        .prop_map(|(name, predictor, transformer, annotations, group)| {
            let mut spec = json!({"predictor": predictor});
            if let Some(mut t) = transformer {
                t["name"] = json!("kserve-container");
                t["image"] = json!("example/transformer:v1");
                spec["transformer"] = json!({"containers": [t]});
            }
            let mut meta = json!({"name": name, "namespace": "default"});
            if let Some(a) = annotations {
                meta["annotations"] = a;
            }
            json!({"apiVersion": format!("{group}/v1beta1"), "kind": "InferenceService", "metadata": meta, "spec": spec})
        })
}

/// Every field of `input` is in `output` with the same value.
fn contains(input: &Value, output: &Value, path: &str) -> Result<(), String> {
    match (input, output) {
        (Value::Object(a), Value::Object(b)) => a.iter().try_for_each(|(k, v)| match b.get(k) {
            Some(w) => contains(v, w, &format!("{path}.{k}")),
            None => Err(format!("{path}.{k} dropped")),
        }),
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .try_for_each(|(i, (v, w))| contains(v, w, &format!("{path}[{i}]"))),
        (a, b) if a == b => Ok(()),
        (a, b) => Err(format!("{path}: {a} became {b}")),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn yaml_round_trip_keeps_every_field(isvc in inference_service()) {
        let yaml = serde_yaml_ng::to_string(&isvc).expect("yaml");
        let parsed = oxserve_api::parse(&yaml, "gen.yaml").map_err(|e| TestCaseError::fail(format!("{e}\n{yaml}")))?;
        prop_assert_eq!(parsed.len(), 1);
        let out_yaml = parsed[0].to_yaml();
        let back: Value = serde_yaml_ng::from_str(&out_yaml).expect("output parses");
        contains(&isvc, &back, "").map_err(TestCaseError::fail)?;
        // And the normalized output is a fixed point.
        let again = oxserve_api::parse(&out_yaml, "out.yaml").map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&again[0], &parsed[0]);
    }
}
