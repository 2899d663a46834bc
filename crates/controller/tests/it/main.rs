//! Integration tests of the controller's local backend with the real `oxserve` binary
//! (`cargo build -p oxserve-cli` first, or `OXSERVE_BIN=/path/to/oxserve`).

mod local;
mod support;
