//! Integration tests of the controller's local backend with the real `oxserve` binary.
