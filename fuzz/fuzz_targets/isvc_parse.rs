//! InferenceService, TrainedModel and ServingRuntime manifests (multi-document YAML or JSON,
//! `kind: List`) through `oxserve_api::parse`: typed decoding, unknown-field checks,
//! defaulting and validation.
//!
//! Asserts: every refusal names the source and a 1-based document and says why; every
//! accepted resource re-serializes (JSON and YAML) to a manifest that parses back to the same
//! resource, so defaulting is idempotent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxserve_api::parse;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let resources = match parse(text, "fuzz.yaml") {
        Ok(r) => r,
        Err(errors) => {
            assert!(!errors.0.is_empty(), "a refusal lists at least one error");
            for e in &errors.0 {
                assert_eq!(e.source, "fuzz.yaml");
                assert!(e.doc >= 1, "documents count from 1: {e}");
                assert!(!e.error.reason.is_empty(), "a refusal must say why: {e}");
            }
            return;
        }
    };
    for r in &resources {
        for text in [r.to_json(), r.to_yaml()] {
            let again = parse(&text, "again").unwrap_or_else(|e| {
                panic!("a re-serialized resource fails to parse ({e}):\n{text}")
            });
            assert_eq!(again.len(), 1);
            assert_eq!(&again[0], r, "parse → serialize → parse is not stable:\n{text}");
        }
    }
});
