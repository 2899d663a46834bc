//! `model-settings.json` beside a model (MLServer's format), parsed and validated.
//!
//! Asserts: a refusal is a load error naming the model and the file, and says why; accepted
//! settings hold the invariants the batcher relies on (a queue of at least one, preferred
//! batch sizes between 1 and the max batch size).
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxserve_server::Error;
use oxserve_server::settings::ModelSettings;

fuzz_target!(|data: &[u8]| {
    match ModelSettings::parse(data, "fuzz") {
        Ok(s) => {
            assert!(s.max_queue_size >= 1, "max_queue_size {}", s.max_queue_size);
            for &p in &s.preferred_batch_sizes {
                assert!(p >= 1 && p <= s.max_batch_size.max(1), "preferred batch size {p}");
            }
            assert_ne!(s.sessions, Some(0));
            assert_ne!(s.intra_op_threads, Some(0));
        }
        Err(Error::Load { model, message }) => {
            assert_eq!(model, "fuzz");
            assert!(message.starts_with("model-settings.json: "), "unnamed file: {message}");
            assert!(message.len() > "model-settings.json: ".len(), "no reason: {message}");
        }
        Err(other) => panic!("bad settings must be a load error, got {other:?}"),
    }
});
