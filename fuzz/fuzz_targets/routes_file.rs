//! The standalone router's routes file (YAML: services with weighted backends, or a whole
//! route table as the controller publishes it).
//!
//! Asserts: a refusal names the file and says why; an accepted table serializes to YAML that
//! parses back to the same table.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxserve_router::ConfigError;
use oxserve_router::standalone::parse;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let table = match parse(text, "routes.yaml") {
        Ok(t) => t,
        Err(ConfigError::File { path, reason }) => {
            assert_eq!(path, "routes.yaml");
            assert!(!reason.is_empty(), "a refusal must say why");
            return;
        }
        Err(other) => panic!("a bad routes file must be a file error, got {other:?}"),
    };
    let yaml = serde_yaml_ng::to_string(&table).expect("a route table serializes");
    let again = parse(&yaml, "again.yaml")
        .unwrap_or_else(|e| panic!("a serialized route table fails to parse ({e}):\n{yaml}"));
    assert_eq!(table, again, "parse → serialize → parse is not stable");
});
