//! XGBoost `model.ubj` (UBJSON) model files, loaded from bytes as the xgboost runtime does.
//!
//! Asserts: a refusal is a load error naming the model; an accepted model predicts on rows
//! of zeros, NaNs and huge values without panicking, giving a whole number of values per row.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxserve_fuzz::{assert_load_error, probe_rows};
use oxserve_server::runtimes::xgboost::XgboostModel;

fuzz_target!(|data: &[u8]| {
    let model = match XgboostModel::from_slice("fuzz", data, true) {
        Ok(m) => m,
        Err(e) => {
            assert_load_error(&e, "fuzz");
            return;
        }
    };
    let Some((n, rows)) = probe_rows(model.num_features()) else {
        return;
    };
    if let Ok(out) = model.predict(&rows) {
        assert!(!out.is_empty() && out.len() % n == 0, "{} values for {n} rows", out.len());
    }
});
