//! placeholder: xgboost runtime
