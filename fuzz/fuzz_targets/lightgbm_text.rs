//! LightGBM text model files (`model.txt`), loaded from their text as the lightgbm runtime
//! does.
//!
//! Asserts: a refusal is a load error naming the model; an accepted model predicts on rows
//! of zeros, NaNs and huge values without panicking, giving a whole number of values per row.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxserve_fuzz::check_tree_model;
use oxserve_server::runtimes::lightgbm::LightgbmModel;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check_tree_model(
        LightgbmModel::from_text("fuzz", text),
        LightgbmModel::num_features,
        LightgbmModel::predict,
    );
});
