//! XGBoost `model.ubj` (UBJSON) model files, loaded from bytes as the xgboost runtime does.
//!
//! Asserts: a refusal is a load error naming the model; an accepted model predicts on rows
//! of zeros, NaNs and huge values without panicking, giving a whole number of values per row.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxserve_fuzz::check_tree_model;
use oxserve_server::runtimes::xgboost::XgboostModel;

fuzz_target!(|data: &[u8]| {
    check_tree_model(
        XgboostModel::from_slice("fuzz", data, true),
        XgboostModel::num_features,
        XgboostModel::predict,
    );
});
