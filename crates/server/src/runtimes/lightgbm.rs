//! placeholder: lightgbm runtime
